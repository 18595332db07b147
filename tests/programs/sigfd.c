/* Takes SIGCHLD, SIGUSR1, SIGUSR2, SIGTERM and SIGPIPE from a signalfd it
 * polls beside a quiet pipe: a child it forks ends with 5, it raises
 * SIGUSR2 itself twice, the kernel raises SIGPIPE for its write to a pipe
 * no one reads, then its caller sends it SIGUSR1 and SIGTERM once it
 * says "ready". It then closes the signalfd,
 * and a SIGUSR1 sent after "closed" runs its handler instead. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_signal(int signal) { handled = signal; }

static struct signalfd_siginfo next_signal(int signals, int quiet) {
    struct pollfd fds[2] = {{signals, POLLIN, 0}, {quiet, POLLIN, 0}};
    struct signalfd_siginfo info;
    if (poll(fds, 2, 20000) != 1 || !(fds[0].revents & POLLIN)) {
        puts("poll: no signal");
        exit(2);
    }
    if (read(signals, &info, sizeof info) != sizeof info) {
        perror("read");
        exit(3);
    }
    return info;
}

int main(void) {
    sigset_t mask, none;
    sigemptyset(&none);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGPIPE);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int signals = signalfd(-1, &mask, SFD_CLOEXEC);
    int quiet[2];
    if (signals < 0 || pipe(quiet) != 0) {
        perror("signalfd");
        return 1;
    }
    pid_t child = fork();
    if (child == 0)
        _exit(5);
    struct signalfd_siginfo info = next_signal(signals, quiet[0]);
    printf("%s from the child: %d, status %d\n", strsignal(info.ssi_signo),
           (pid_t)info.ssi_pid == child, info.ssi_status);
    waitpid(child, NULL, 0);
    /* Raised by itself, as a thread and as a process. */
    for (int n = 0; n < 2; n++) {
        if (n == 0)
            raise(SIGUSR2);
        else
            kill(getpid(), SIGUSR2);
        info = next_signal(signals, quiet[0]);
        printf("%s from myself: %d\n", strsignal(info.ssi_signo),
               (pid_t)info.ssi_pid == getpid());
    }
    int broken[2];
    if (pipe(broken) != 0 || close(broken[0]) != 0) {
        perror("pipe");
        return 1;
    }
    int failed = write(broken[1], "x", 1) < 0 && errno == EPIPE;
    info = next_signal(signals, quiet[0]);
    printf("%s for a write: %d\n", strsignal(info.ssi_signo), failed);
    printf("ready\n");
    fflush(stdout);
    for (int n = 0; n < 2; n++) {
        info = next_signal(signals, quiet[0]);
        printf("%s from my parent: %d\n", strsignal(info.ssi_signo),
               (pid_t)info.ssi_pid == getppid());
    }
    close(signals);
    signal(SIGUSR1, on_signal);
    printf("closed\n");
    fflush(stdout);
    while (!handled)
        sigsuspend(&none);
    printf("handler: %s\n", strsignal(handled));
    return 0;
}
