// Who sent each signal, as a handler taking siginfo sees it: takes
// SIGUSR1, SIGUSR2 and SIGRTMIN COUNT times (argv[2]) with sigwaitinfo
// and prints, for each, its number, si_code, whether si_pid is argv[1],
// si_uid and, for a sigqueue, its value. Says "ready" once they are
// blocked, on stdout.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int sender = atoi(argv[1]), count = atoi(argv[2]);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGRTMIN);
  sigprocmask(SIG_BLOCK, &set, NULL);
  printf("ready\n");
  fflush(stdout);
  for (int i = 0; i < count; i++) {
    siginfo_t info;
    int signo = sigwaitinfo(&set, &info);
    if (signo < 0) return 1;
    printf("signal %d code %d from sender %d uid %u", signo, info.si_code, info.si_pid == sender,
           info.si_uid);
    if (info.si_code == SI_QUEUE) printf(" value %d", info.si_value.sival_int);
    printf("\n");
    fflush(stdout);
  }
  return 0;
}
