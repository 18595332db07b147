/* Opens, closes and duplicates files the ways programs do, and prints what
 * each call gave: the fd numbers, their close-on-exec and status flags,
 * offsets, errors, and the fds a child's exec keeps. Run at home and away,
 * the output must be the same. Expects a.txt, b.txt, link (-> a.txt) and
 * secret (no permissions) in its directory. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, int fd) {
    if (fd < 0) {
        printf("%s: %s\n", what, strerror(errno));
        return;
    }
    char start[8] = {0};
    ssize_t got = pread(fd, start, 5, 0);
    /* Its link in /proc names the file, from its directory on. */
    char link[64], target[4096] = "";
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t length = readlink(link, target, sizeof target - 1);
    if (length >= 0) target[length] = 0;
    const char *name = strrchr(target, '/');
    printf("%s: fd %d cloexec %d status %o offset %ld pread %zd %s link %s\n", what, fd,
           fcntl(fd, F_GETFD) & FD_CLOEXEC, fcntl(fd, F_GETFL),
           (long)lseek(fd, 0, SEEK_CUR), got, got > 0 ? start : "-", name ? name : target);
}

static void *wait_for_a_byte(void *pipe_ends) {
    char byte;
    if (read(((int *)pipe_ends)[0], &byte, 1) != 1) perror("read");
    return NULL;
}

int main(void) {
    int a = open("a.txt", O_RDONLY);
    show("a", a);
    int b = open("b.txt", O_RDONLY | O_CLOEXEC);
    show("b close-on-exec", b);
    show("a non-blocking", open("a.txt", O_RDONLY | O_NONBLOCK));
    show("link without following", open("link", O_RDONLY | O_NOFOLLOW));
    show("link followed", open("link", O_RDONLY));
    show("secret", open("secret", O_RDONLY));
    show("missing", open("missing", O_RDONLY));
    show("directory", open(".", O_RDONLY | O_DIRECTORY));

    close(a);
    int c = open("b.txt", O_RDONLY);
    show("in a's place", c);
    int d = dup(c);
    char bytes[4];
    if (read(c, bytes, 3) != 3) perror("read");
    show("dup after a read", d);
    close(b);
    close(d);
    show("after two closes", open("a.txt", O_RDONLY));
    show("then", open("a.txt", O_RDONLY | O_CLOEXEC));

    /* Another thread waits at home, in a read of a pipe. */
    int ends[2];
    if (pipe(ends)) perror("pipe");
    pthread_t waiter;
    pthread_create(&waiter, NULL, wait_for_a_byte, ends);
    usleep(200 * 1000);
    show("while a thread waits", open("b.txt", O_RDONLY));
    if (write(ends[1], "x", 1) != 1) perror("write");
    pthread_join(waiter, NULL);
    close(ends[0]);
    close(ends[1]);
    show("after it", open("b.txt", O_RDONLY));

    fflush(stdout);
    if (fork() == 0) {
        printf("an exec keeps:\n");
        fflush(stdout);
        execl("/bin/ls", "ls", "/proc/self/fd", (char *)0);
        _exit(127);
    }
    wait(NULL);

    /* Three files opened in a row, the middle one closed and its number
       given again, then each looked at: which file is where. */
    int p = open("a.txt", O_RDONLY);
    int q = open("b.txt", O_RDONLY | O_CLOEXEC);
    int r = open("a.txt", O_RDONLY);
    close(q);
    int s = open("b.txt", O_RDONLY);
    printf("the freed number given again: %s\n", s == q ? "yes" : "no");
    show("first of three", p);
    show("in the middle one's place", s);
    show("third", r);

    /* A record lock is the process's, on the file: closing any fd of that
       file lets it go, one opened after the lock was taken too. */
    int locked = open("a.txt", O_RDWR);
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(locked, F_SETLK, &lock)) perror("F_SETLK");
    close(open("a.txt", O_RDONLY));
    fflush(stdout);
    if (fork() == 0) {
        struct flock probe = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(open("a.txt", O_RDONLY), F_GETLK, &probe)) perror("F_GETLK");
        printf("after another fd of it closed, the lock is %s\n",
               probe.l_type == F_UNLCK ? "gone" : "held");
        fflush(stdout);
        _exit(0);
    }
    wait(NULL);

    int last = -1;
    for (int i = 0; i < 40; i++) last = open("a.txt", O_RDONLY);
    show("forty more", last);
    struct rlimit limit = {(rlim_t)last + 2, (rlim_t)last + 2};
    if (setrlimit(RLIMIT_NOFILE, &limit)) perror("setrlimit");
    show("under the limit", open("a.txt", O_RDONLY));
    show("at the limit", open("a.txt", O_RDONLY));
    return 0;
}
