/* Waits for a signalfd of SIGUSR1 and SIGALRM with poll, select or epoll,
 * among pipes of its own, and reads it once the wait says it is ready:
 *
 *   1. a SIGUSR1 sent to it by its pid, from elsewhere;
 *   2. the SIGALRM of an alarm(1) set just before the wait;
 *   3. the SIGALRM of an alarm(1) that came while it slept, with a pipe
 *      made readable before the wait, so that the wait has two fds ready.
 *
 * Prints, for each, what the wait reported (how many ready, and which of
 * "sigfd", "full" and "empty"), the signal read, and for 2 how long it
 * took in tenths of a second (`second 14 after N tenths`). Creates the file its argument names once
 * it waits for 1.
 *
 *   sigfd_wait poll|select|epoll READY-FILE */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static const char *mode;
static int sigfd, full[2], empty[2], epfd = -1;

static void print_ready(const char *step, int count, int sig_ready, int full_ready,
                        int empty_ready) {
    printf("%s ready=%d%s%s%s", step, count, sig_ready ? " sigfd" : "", full_ready ? " full" : "",
           empty_ready ? " empty" : "");
}

/* Waits for the signalfd (and the pipes) and prints what was ready. */
static int wait_ready(const char *step) {
    int count, sig_ready = 0, full_ready = 0, empty_ready = 0;
    if (!strcmp(mode, "poll")) {
        struct pollfd fds[3] = {{empty[0], POLLIN, 0}, {sigfd, POLLIN, 0}, {full[0], POLLIN, 0}};
        count = poll(fds, 3, 20000);
        empty_ready = fds[0].revents != 0;
        sig_ready = fds[1].revents == POLLIN;
        full_ready = fds[2].revents != 0;
    } else if (!strcmp(mode, "select")) {
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(sigfd, &readable);
        FD_SET(full[0], &readable);
        FD_SET(empty[0], &readable);
        int top = sigfd > full[0] ? sigfd : full[0];
        top = top > empty[0] ? top : empty[0];
        count = select(top + 1, &readable, NULL, NULL, NULL);
        sig_ready = FD_ISSET(sigfd, &readable);
        full_ready = FD_ISSET(full[0], &readable);
        empty_ready = FD_ISSET(empty[0], &readable);
    } else {
        struct epoll_event events[8];
        count = epoll_wait(epfd, events, 8, 20000);
        for (int i = 0; i < count; i++) {
            sig_ready |= events[i].data.u64 == 1001 && events[i].events == EPOLLIN;
            full_ready |= events[i].data.u64 == 1002;
            empty_ready |= events[i].data.u64 == 1003;
        }
    }
    if (count < 0) {
        perror(mode);
        return -1;
    }
    print_ready(step, count, sig_ready, full_ready, empty_ready);
    return 0;
}

static int read_one(void) {
    struct signalfd_siginfo info;
    if (read(sigfd, &info, sizeof info) != sizeof info) {
        perror("read");
        return -1;
    }
    return (int)info.ssi_signo;
}

static void watch(int fd, unsigned long long data) {
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = data};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) < 0) perror("epoll_ctl");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: sigfd_wait poll|select|epoll READY-FILE\n");
        return 2;
    }
    mode = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sigfd < 0 || pipe(full) < 0 || pipe(empty) < 0) {
        perror("setup");
        return 1;
    }
    if (!strcmp(mode, "epoll")) {
        epfd = epoll_create1(EPOLL_CLOEXEC);
        watch(sigfd, 1001);
        watch(full[0], 1002);
        watch(empty[0], 1003);
    }
    close(open(argv[2], O_WRONLY | O_CREAT, 0644));
    if (wait_ready("first") < 0) return 1;
    printf(" signal %d\n", read_one());

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    alarm(1);
    if (wait_ready("second") < 0) return 1;
    clock_gettime(CLOCK_MONOTONIC, &end);
    long tenths = (end.tv_sec - start.tv_sec) * 10 + (end.tv_nsec - start.tv_nsec) / 100000000;
    int second = read_one();
    printf(" signal %d\nsecond %d after %ld tenths\n", second, second, tenths);

    alarm(1);
    sleep(2);
    if (write(full[1], "x", 1) != 1) return 1;
    if (wait_ready("third") < 0) return 1;
    printf(" signal %d\n", read_one());
    return 0;
}
