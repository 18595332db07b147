// A thread asked after for by its pthread_t, as libraries ask: signalled
// (pthread_kill), its attributes (pthread_getattr_np) and CPUs
// (pthread_getaffinity_np) read, its clock (pthread_getcpuclockid). Waits
// for the file named by argv[1] between starting the thread and asking,
// so that it can be moved in between; prints what each call returned.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static pthread_t handled_by;
static volatile sig_atomic_t started;

static void on_usr1(int sig) {
  (void)sig;
  handled_by = pthread_self();
  handled = 1;
}

static void *worker(void *arg) {
  (void)arg;
  started = 1;
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  signal(SIGUSR1, on_usr1);
  pthread_t thread;
  pthread_create(&thread, NULL, worker, NULL);
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
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
  printf("kill %s, handled by the thread %s, attr %s, cpus %s, clock %s %s\n",
         strerror(killed), handled && pthread_equal(handled_by, thread) ? "yes" : "no", strerror(got_attr),
         strerror(got_cpus), strerror(got_clock), read_clock == 0 ? "read" : "unread");
  return 0;
}
