/* Waits for SIGUSR1 from outside, then signals itself and its parent:
 * each step prints what it saw, so a test can tell where signals went. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, usr2;

static void on_usr1(int sig) { (void)sig; usr1 = 1; }
static void on_usr2(int sig) { (void)sig; usr2 = 1; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    while (!usr1)
        pause();
    printf("got SIGUSR1\n");
    raise(SIGUSR2);
    while (!usr2)
        pause();
    printf("got SIGUSR2 from itself\n");
    printf("parent alive=%d\n", kill(getppid(), 0) == 0);
    return 0;
}
