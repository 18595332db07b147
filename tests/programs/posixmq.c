// POSIX message queues shared between a program and processes around it.
// Two queues: NAME-in (to the program) and NAME-out (from it).
//
//   posixmq make NAME       creates both
//   posixmq away NAME       the program: answers a message, asks to be
//                           told by SIGUSR2 of the next one, waits for it
//   posixmq send NAME TEXT  posixmq recv NAME       (at home)
//   posixmq thread NAME     asks for a thread to start at the next message
//   posixmq remove NAME
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t told;

static void on_usr2(int sig, siginfo_t *info, void *context) {
  (void)context;
  told = info->si_code == SI_MESGQ ? sig : -sig;
}

static void die(const char *what) {
  printf("%s: %s\n", what, strerror(errno));
  exit(1);
}

static mqd_t queue(const char *name, const char *end, int flags) {
  char path[128];
  snprintf(path, sizeof path, "/%s-%s", name, end);
  struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
  mqd_t q = mq_open(path, flags, 0600, &attr);
  if (q == (mqd_t)-1) die("mq_open");
  return q;
}

static void away(const char *name) {
  mqd_t in = queue(name, "in", O_RDONLY), out = queue(name, "out", O_WRONLY);
  char text[64];
  unsigned priority;
  ssize_t n = mq_receive(in, text, sizeof text, &priority);
  if (n < 0) die("mq_receive");
  printf("got %.*s at priority %u\n", (int)n, text, priority);
  struct mq_attr attr;
  if (mq_getattr(out, &attr) < 0) die("mq_getattr");
  printf("out holds at most %ld of %ld bytes\n", attr.mq_maxmsg, attr.mq_msgsize);
  struct sigaction sa = {.sa_sigaction = on_usr2, .sa_flags = SA_SIGINFO};
  sigaction(SIGUSR2, &sa, NULL);
  struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2};
  if (mq_notify(in, &ev) < 0) die("mq_notify");
  if (mq_notify(in, &ev) < 0) printf("second notify: %s\n", strerror(errno));
  if (mq_send(out, "armed", 5, 3) < 0) die("mq_send");
  while (!told) pause();
  printf("told %d\n", told);
  n = mq_receive(in, text, sizeof text, NULL);
  printf("then %.*s\n", (int)n, text);
  struct timespec soon;
  clock_gettime(CLOCK_REALTIME, &soon);
  soon.tv_nsec += 20 * 1000 * 1000;
  if (soon.tv_nsec >= 1000000000) soon.tv_sec++, soon.tv_nsec -= 1000000000;
  if (mq_timedreceive(in, text, sizeof text, NULL, &soon) < 0) printf("timed: %s\n", strerror(errno));
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) return 2;
  const char *mode = argv[1], *name = argv[2];
  if (!strcmp(mode, "make")) {
    queue(name, "in", O_RDWR | O_CREAT | O_EXCL);
    queue(name, "out", O_RDWR | O_CREAT | O_EXCL);
  } else if (!strcmp(mode, "away")) {
    away(name);
  } else if (!strcmp(mode, "send") && argc == 4) {
    if (mq_send(queue(name, "in", O_WRONLY), argv[3], strlen(argv[3]), 7) < 0) die("mq_send");
  } else if (!strcmp(mode, "recv")) {
    char text[64];
    ssize_t n = mq_receive(queue(name, "out", O_RDONLY), text, sizeof text, NULL);
    if (n < 0) die("mq_receive");
    printf("%.*s\n", (int)n, text);
  } else if (!strcmp(mode, "thread")) {
    struct sigevent ev = {.sigev_notify = SIGEV_THREAD};
    int rc = mq_notify(queue(name, "in", O_RDONLY), &ev);
    printf("thread notify %d %s\n", rc, rc ? strerror(errno) : "");
  } else if (!strcmp(mode, "remove")) {
    char path[128];
    snprintf(path, sizeof path, "/%s-in", name);
    if (mq_unlink(path) < 0) die("mq_unlink");
    snprintf(path, sizeof path, "/%s-out", name);
    if (mq_unlink(path) < 0) die("mq_unlink");
  } else {
    return 2;
  }
  return 0;
}
