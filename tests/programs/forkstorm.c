/* Forks while a signal comes every 50 microseconds: the kernel gives up
 * a fork a signal comes in during and makes it again once the handler
 * has run (ERESTARTNOINTR). Every fork must still make exactly one child,
 * which ends with its own status and is reaped by its pid. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int got;
static void on_usr1(int s) { (void)s; got++; }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, 0);
    pid_t me = getpid();
    pid_t pester = fork();
    if (pester == 0) {
        for (;;) { if (kill(me, SIGUSR1) != 0) _exit(0); usleep(50); }
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pid_t c = fork();
        if (c == 0) _exit(i % 7);
        if (c < 0) { perror("fork"); return 1; }
        int st;
        if (waitpid(c, &st, 0) != c || WEXITSTATUS(st) != i % 7) bad++;
    }
    kill(pester, SIGKILL);
    waitpid(pester, 0, 0);
    printf("%d forks, %d wrong\n", n, bad);
    return 0;
}
