/* Takes SIGUSR1 and SIGUSR2 from a signalfd only. Says "ready", then
 * each time a SIGUSR1 comes (its caller moves it between them), raises
 * SIGUSR2 itself, as a thread and as a process, and says where each
 * came from; a signal that does not come within 5 s ends it with 2. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static struct signalfd_siginfo next_signal(int signals) {
    struct pollfd wanted = {signals, POLLIN, 0};
    struct signalfd_siginfo info;
    if (poll(&wanted, 1, 5000) != 1) {
        puts("poll: no signal");
        exit(2);
    }
    if (read(signals, &info, sizeof info) != sizeof info) {
        perror("read");
        exit(3);
    }
    return info;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int signals = signalfd(-1, &mask, SFD_CLOEXEC);
    if (signals < 0) {
        perror("signalfd");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (int round = 0; round < rounds; round++) {
        struct signalfd_siginfo info;
        do
            info = next_signal(signals);
        while (info.ssi_signo != SIGUSR1);
        raise(SIGUSR2);
        info = next_signal(signals);
        printf("%s raised: %d\n", strsignal(info.ssi_signo), (pid_t)info.ssi_pid == getpid());
        kill(getpid(), SIGUSR2);
        info = next_signal(signals);
        printf("%s sent: %d\n", strsignal(info.ssi_signo), (pid_t)info.ssi_pid == getpid());
        fflush(stdout);
    }
    return 0;
}
