//! One timer for every call out at home.
//!
//! A call out at home looks now and then whether its thread still waits
//! for it, or a signal from elsewhere on the host waits for that thread
//! (see `Context::call_while_waited_for`). A timer armed for each call
//! cost each call a write to the runtime's wakeup eventfd: tokio wakes
//! its reactor whenever a timer is armed that ends before every other
//! one. One ticker instead runs while any call is out, and every call
//! waiting looks at each of its ticks: the first look comes within a
//! period of the call's start, as before, only sometimes sooner.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Ticks every `period` while calls are out.
#[derive(Debug)]
pub struct Ticker {
    period: Duration,
    calls_out: AtomicUsize,
    running: AtomicBool,
    tick: Notify,
}

impl Ticker {
    /// A ticker of `period`, not running until a call goes out.
    pub fn new(period: Duration) -> Arc<Self> {
        Arc::new(Self {
            period,
            calls_out: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            tick: Notify::new(),
        })
    }

    /// Counts a call out until the guard goes; the ticker runs (on the
    /// current runtime) while any is.
    pub fn call_out(self: &Arc<Self>) -> CallOut {
        self.calls_out.fetch_add(1, Ordering::SeqCst);
        if !self.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().run());
        }
        CallOut {
            ticker: self.clone(),
        }
    }

    /// The next tick. Made before the look it follows, it misses none.
    pub fn next_tick(&self) -> Notified<'_> {
        self.tick.notified()
    }

    async fn run(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.period).await;
            self.tick.notify_waiters();
            if self.calls_out.load(Ordering::SeqCst) > 0 {
                continue;
            }
            self.running.store(false, Ordering::SeqCst);
            // A call that went out just now found it running: run on for
            // it, unless one since started another ticker.
            if self.calls_out.load(Ordering::SeqCst) == 0
                || self.running.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }
}

/// A call out at home, counted by its ticker while it lives.
#[derive(Debug)]
pub struct CallOut {
    ticker: Arc<Ticker>,
}

impl Drop for CallOut {
    fn drop(&mut self) {
        self.ticker.calls_out.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_out_hears_a_tick_within_a_period_and_the_ticker_then_stops() {
        let ticker = Ticker::new(Duration::from_millis(20));
        let started = tokio::time::Instant::now();
        let out = ticker.call_out();
        ticker.next_tick().await;
        assert!(started.elapsed() <= Duration::from_millis(20));
        // It goes on ticking for the call still out.
        ticker.next_tick().await;
        assert!(ticker.running.load(Ordering::SeqCst));
        drop(out);
        // One more tick finds no call out, and it stops.
        ticker.next_tick().await;
        tokio::task::yield_now().await;
        assert!(!ticker.running.load(Ordering::SeqCst));
        // A call going out starts it again.
        let _out = ticker.call_out();
        let again = tokio::time::Instant::now();
        ticker.next_tick().await;
        assert!(again.elapsed() <= Duration::from_millis(20));
    }
}
