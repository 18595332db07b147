// System V message queues and semaphores, shared between a program and
// the processes around it. Each mode is one step of a dialogue; both
// objects are found by keys made from a file's name (ftok).
//
//   sysv make FILE          a queue, and a set of two semaphores at 0 and 5
//   sysv away FILE          the program: answers a message (type 1 with
//                           type 2), takes and waits on semaphores, is
//                           interrupted by SIGUSR1 and says so (type 3)
//   sysv send FILE TYPE TEXT    sysv recv FILE TYPE
//   sysv waiters FILE N     waits until N processes wait on semaphore 0
//   sysv post FILE          adds 1 to semaphore 0
//   sysv show FILE          the semaphores' values
//   sysv remove FILE        removes both
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

union semun {
  int val;
  struct semid_ds *buf;
  unsigned short *array;
};

struct message {
  long type;
  char text[64];
};

static volatile sig_atomic_t handled;

static void on_usr1(int sig) { handled = sig; }

static void die(const char *what) {
  printf("%s: %s\n", what, strerror(errno));
  exit(1);
}

static int queue(const char *file, int flags) {
  int id = msgget(ftok(file, 'q'), flags | 0600);
  if (id < 0) die("msgget");
  return id;
}

static int semaphores(const char *file, int flags) {
  int id = semget(ftok(file, 's'), 2, flags | 0600);
  if (id < 0) die("semget");
  return id;
}

static void show(int set) {
  unsigned short values[2] = {99, 99};
  union semun arg = {.array = values};
  if (semctl(set, 0, GETALL, arg) < 0) die("GETALL");
  printf("values %d %d\n", values[0], values[1]);
}

static int op(int set, unsigned short num, short delta, short flags) {
  struct sembuf b = {.sem_num = num, .sem_op = delta, .sem_flg = flags};
  return semop(set, &b, 1);
}

static void away(const char *file) {
  struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
  sigaction(SIGUSR1, &sa, NULL);
  int q = queue(file, 0), set = semaphores(file, 0);
  struct message m;
  ssize_t n = msgrcv(q, &m, sizeof m.text, 1, 0);
  if (n < 0) die("msgrcv");
  printf("got %.*s\n", (int)n, m.text);
  struct message reply = {.type = 2};
  int len = snprintf(reply.text, sizeof reply.text, "pong from %d", getpid());
  if (msgsnd(q, &reply, len, 0) < 0) die("msgsnd");
  struct msqid_ds qs;
  if (msgctl(q, IPC_STAT, &qs) < 0) die("IPC_STAT");
  printf("last sender is me %d\n", qs.msg_lspid == getpid());
  if (op(set, 1, -2, SEM_UNDO) < 0) die("semop undo");
  show(set);
  if (op(set, 0, -1, IPC_NOWAIT) < 0) printf("no wait: %s\n", strerror(errno));
  fflush(stdout);
  // A semop is never restarted after a handler (signal(7)).
  if (op(set, 0, -1, 0) < 0) printf("wait: %s, handler saw %d\n", strerror(errno), handled);
  struct message told = {.type = 3, .text = "interrupted"};
  if (msgsnd(q, &told, strlen(told.text), 0) < 0) die("msgsnd");
  if (op(set, 0, -1, 0) < 0) die("semop");
  printf("released\n");
  struct timespec brief = {0, 20 * 1000 * 1000};
  struct sembuf b = {.sem_num = 0, .sem_op = -1};
  if (semtimedop(set, &b, 1, &brief) < 0) printf("timed: %s\n", strerror(errno));
  show(set);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) return 2;
  const char *mode = argv[1], *file = argv[2];
  if (!strcmp(mode, "make")) {
    queue(file, IPC_CREAT | IPC_EXCL);
    unsigned short values[2] = {0, 5};
    union semun arg = {.array = values};
    if (semctl(semaphores(file, IPC_CREAT | IPC_EXCL), 0, SETALL, arg) < 0) die("SETALL");
  } else if (!strcmp(mode, "away")) {
    away(file);
  } else if (!strcmp(mode, "send") && argc == 5) {
    struct message m = {.type = atol(argv[3])};
    snprintf(m.text, sizeof m.text, "%s", argv[4]);
    if (msgsnd(queue(file, 0), &m, strlen(m.text), 0) < 0) die("msgsnd");
  } else if (!strcmp(mode, "recv") && argc == 4) {
    struct message m;
    ssize_t n = msgrcv(queue(file, 0), &m, sizeof m.text, atol(argv[3]), 0);
    if (n < 0) die("msgrcv");
    printf("%.*s\n", (int)n, m.text);
  } else if (!strcmp(mode, "waiters") && argc == 4) {
    int set = semaphores(file, 0);
    while (semctl(set, 0, GETNCNT) != atoi(argv[3])) usleep(2000);
  } else if (!strcmp(mode, "post")) {
    if (op(semaphores(file, 0), 0, 1, 0) < 0) die("post");
  } else if (!strcmp(mode, "show")) {
    show(semaphores(file, 0));
  } else if (!strcmp(mode, "remove")) {
    if (msgctl(queue(file, 0), IPC_RMID, NULL) < 0) die("msgctl");
    if (semctl(semaphores(file, 0), 0, IPC_RMID) < 0) die("semctl");
  } else {
    return 2;
  }
  return 0;
}
