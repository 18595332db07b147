/* Arms alarm(SECS) with a SIGALRM handler, creates the ready file, then
 * waits in pause() until the alarm has fired and a second more has passed
 * (a second delivery would be counted). Prints how many times the handler
 * ran and after how long.
 *
 *   alarm SECS ready-file */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fired;

static void on_alarm(int signal) {
    (void)signal;
    fired++;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: alarm SECS ready-file\n");
        return 2;
    }
    struct sigaction action = {0};
    action.sa_handler = on_alarm;
    sigaction(SIGALRM, &action, NULL);
    double start = now();
    alarm((unsigned)atoi(argv[1]));
    close(open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644));
    while (!fired)
        pause();
    double after = now() - start;
    sleep(1);
    printf("fired %d time(s) after %.1f s\n", (int)fired, after);
    return 0;
}
