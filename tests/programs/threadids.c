// A thread asked after for by its pthread_t, as libraries ask: signalled
// (pthread_kill), its attributes (pthread_getattr_np) and CPUs
// (pthread_getaffinity_np) read, its clock (pthread_getcpuclockid); and
// by the tid the program kept itself (gettid when it started, signalled
// with tgkill, and compared with its gettid now). Waits for the file
// named by argv[1] between starting the thread and asking, so that it
// can be moved in between; prints what each call returned.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static pthread_t handled_by;
static volatile sig_atomic_t started;
static volatile pid_t kept_tid;
static volatile sig_atomic_t tid_now_kept;
static volatile sig_atomic_t by_tid;

static void on_usr2(int sig) {
  (void)sig;
  tid_now_kept = syscall(SYS_gettid) == kept_tid;
  by_tid = 1;
}

static void on_usr1(int sig) {
  (void)sig;
  handled_by = pthread_self();
  handled = 1;
}

static void *worker(void *arg) {
  (void)arg;
  kept_tid = syscall(SYS_gettid);
  started = 1;
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  signal(SIGUSR1, on_usr1);
  signal(SIGUSR2, on_usr2);
  pthread_t thread;
  pthread_create(&thread, NULL, worker, NULL);
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigaddset(&usr1, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);  // only the worker takes it
  while (!started) usleep(1000);
  printf("ready\n");
  fflush(stdout);
  while (argc > 1 && access(argv[1], F_OK) != 0) usleep(20000);
  int killed = pthread_kill(thread, SIGUSR1);
  for (int i = 0; i < 500 && !handled; i++) usleep(2000);
  pthread_attr_t attr;
  int got_attr = pthread_getattr_np(thread, &attr);
  cpu_set_t cpus;
  int got_cpus = pthread_getaffinity_np(thread, sizeof cpus, &cpus);
  clockid_t clock;
  struct timespec used;
  int got_clock = pthread_getcpuclockid(thread, &clock);
  int read_clock = got_clock == 0 ? clock_gettime(clock, &used) : -1;
  int tgkilled = syscall(SYS_tgkill, getpid(), kept_tid, SIGUSR2) == 0 ? 0 : errno;
  for (int i = 0; i < 500 && !tgkilled && !by_tid; i++) usleep(2000);
  printf("kill %s, handled by the thread %s, attr %s, cpus %s, clock %s %s\n",
         strerror(killed), handled && pthread_equal(handled_by, thread) ? "yes" : "no", strerror(got_attr),
         strerror(got_cpus), strerror(got_clock), read_clock == 0 ? "read" : "unread");
  printf("tgkill by its kept tid %s, its tid the same %s\n", strerror(tgkilled),
         by_tid && tid_now_kept ? "yes" : "no");
  return 0;
}
