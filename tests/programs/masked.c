/* Waits for a signal the way make and event loops do: the signal is
 * blocked, and only a wait with a temporary mask (pselect, ppoll,
 * epoll_pwait) lets it in. The kernel runs the handler before the wait
 * returns EINTR, so one wakeup is enough; a wait that returned EINTR
 * without running the handler would show as many wakeups.
 *
 *   masked pselect|ppoll|epoll   waits for SIGUSR1 from outside
 *   masked child                 waits for SIGCHLD from a child it forks
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_signal(int sig) { (void)sig; handled = 1; }

static int wait_once(const char *mode, int fd, int epoll, const sigset_t *open) {
    if (strcmp(mode, "ppoll") == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        return ppoll(&p, 1, NULL, open);
    }
    if (strcmp(mode, "epoll") == 0) {
        struct epoll_event event;
        return epoll_pwait(epoll, &event, 1, -1, open);
    }
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(fd, &readable);
    return pselect(fd + 1, &readable, NULL, NULL, NULL, open);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    const char *mode = argv[1];
    int child = strcmp(mode, "child") == 0;
    int sig = child ? SIGCHLD : SIGUSR1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(sig, &sa, NULL);
    sigset_t blocked, open;
    sigemptyset(&blocked);
    sigaddset(&blocked, sig);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigemptyset(&open);

    int pipe_fds[2];
    if (pipe(pipe_fds) != 0)
        return 3;
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN};
    epoll_ctl(epoll, EPOLL_CTL_ADD, pipe_fds[0], &event);
    pid_t pid = 0;
    if (child) {
        pid = fork();
        if (pid == 0) {
            usleep(300000);
            _exit(5);
        }
        mode = "pselect";
    }
    printf("waiting\n");
    fflush(stdout);
    int wakeups = 0, rc = 0;
    while (!handled && wakeups < 1000) {
        rc = wait_once(mode, pipe_fds[0], epoll, &open);
        wakeups++;
        if (rc != -1)
            break;
    }
    printf("%s: handled=%d after %d wakeup(s), last rc=%d\n", argv[1], (int)handled, wakeups, rc);
    /* The wait's fds are still the program's own. */
    char back = 0;
    int sent = write(pipe_fds[1], "x", 1) == 1;
    printf("pipe works=%d\n", sent && read(pipe_fds[0], &back, 1) == 1 && back == 'x');
    if (child) {
        int status = 0;
        int reaped = waitpid(pid, &status, 0) == pid;
        printf("reaped=%d status=%d\n", reaped, WEXITSTATUS(status));
        /* A reaped child is gone: its pid names nobody. */
        printf("gone=%d\n", kill(pid, 0) == -1 && errno == ESRCH);
    }
    return 0;
}
