/* Under a process limit its user is already at, a call that may wait:
   at home it waits as any other; its deputy has no thread to spare for
   it. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

int main(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NPROC, &limit) != 0) { perror("getrlimit"); return 1; }
    limit.rlim_cur = 1;
    if (setrlimit(RLIMIT_NPROC, &limit) != 0) { perror("setrlimit"); return 1; }
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(fds[0], &readable);
    struct timeval wait = {0, 200000};
    int ready = select(fds[0] + 1, &readable, NULL, NULL, &wait);
    if (write(fds[1], "x", 1) != 1) { perror("write"); return 1; }
    wait.tv_usec = 200000;
    FD_SET(fds[0], &readable);
    int then = select(fds[0] + 1, &readable, NULL, NULL, &wait);
    printf("ready %d then %d\n", ready, then);
    return 0;
}
