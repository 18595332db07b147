/* Reads SIGUSR1 and SIGALRM from one signalfd: first a SIGUSR1 sent to it
 * (by its pid, from elsewhere), then the SIGALRM of an alarm(1) it sets
 * once it has that. Prints what each read gave, and how long the alarm
 * took in tenths of a second. Creates the file its argument names once
 * the signalfd is made.
 *
 *   timer_sigfd READY-FILE */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static int read_one(int fd) {
    struct signalfd_siginfo info;
    if (read(fd, &info, sizeof info) != sizeof info) {
        perror("read");
        return -1;
    }
    return (int)info.ssi_signo;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: timer_sigfd READY-FILE\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0) {
        perror("signalfd");
        return 1;
    }
    close(open(argv[1], O_WRONLY | O_CREAT, 0644));
    printf("first %d\n", read_one(fd));
    fflush(stdout);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    alarm(1);
    int second = read_one(fd);
    clock_gettime(CLOCK_MONOTONIC, &end);
    long tenths = (end.tv_sec - start.tv_sec) * 10 + (end.tv_nsec - start.tv_nsec) / 100000000;
    printf("second %d after %ld tenths\n", second, tenths);
    return 0;
}
