/* Exercises file semantics a program relies on, printing results that do
 * not depend on where it runs (so a run at home and one away compare). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(x) do { if (!(x)) { perror(#x); return 1; } } while (0)

int main(void) {
    char buf[64];
    struct stat st, st2;
    /* O_APPEND: two descriptors appending never overwrite each other. */
    int a = open("sem.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0640);
    int b = open("sem.txt", O_WRONLY | O_APPEND);
    CHECK(a >= 0 && b >= 0);
    CHECK(write(a, "one\n", 4) == 4 && write(b, "two\n", 4) == 4 && write(a, "three\n", 6) == 6);
    CHECK(fsync(a) == 0);
    /* lseek, pread, pwrite. */
    int r = open("sem.txt", O_RDWR);
    CHECK(lseek(r, 4, SEEK_SET) == 4);
    CHECK(read(r, buf, 4) == 4);
    printf("after seek: %.3s\n", buf);
    CHECK(pwrite(r, "ONE", 3, 0) == 3);
    CHECK(pread(r, buf, 3, 0) == 3);
    printf("pread: %.3s offset still %ld\n", buf, (long)lseek(r, 0, SEEK_CUR));
    /* fstat agrees with stat of the path. */
    CHECK(fstat(r, &st) == 0 && stat("sem.txt", &st2) == 0);
    printf("size=%ld same_ino=%d same_dev=%d mode=%o\n", (long)st.st_size,
           st.st_ino == st2.st_ino, st.st_dev == st2.st_dev, st.st_mode & 07777);
    /* mkdir, rename, symlink, readlink, chmod, utimensat, unlink, getdents. */
    CHECK(mkdir("semdir", 0755) == 0);
    CHECK(rename("sem.txt", "semdir/moved.txt") == 0);
    CHECK(symlink("moved.txt", "semdir/link") == 0);
    ssize_t n = readlink("semdir/link", buf, sizeof buf);
    CHECK(n > 0);
    printf("readlink: %.*s\n", (int)n, buf);
    CHECK(chmod("semdir/moved.txt", 0600) == 0);
    struct timespec times[2] = {{1000000000, 0}, {1234567890, 500}};
    CHECK(utimensat(AT_FDCWD, "semdir/moved.txt", times, 0) == 0);
    CHECK(stat("semdir/moved.txt", &st) == 0);
    printf("mode=%o mtime=%ld.%09ld\n", st.st_mode & 07777, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    DIR *d = opendir("semdir");
    CHECK(d != NULL);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) entries++;
    closedir(d);
    printf("entries=%d\n", entries);
    CHECK(unlink("semdir/link") == 0 && unlink("semdir/moved.txt") == 0 && rmdir("semdir") == 0);
    printf("gone=%d\n", access("semdir", F_OK) != 0);
    /* poll, select and epoll on a home pipe. */
    int p[2];
    CHECK(pipe(p) == 0);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    printf("poll empty=%d\n", poll(&pfd, 1, 50));
    CHECK(write(p[1], "x", 1) == 1);
    int ready = poll(&pfd, 1, 1000);
    printf("poll ready=%d revents=%d\n", ready, pfd.revents);
    fd_set set;
    FD_ZERO(&set);
    FD_SET(p[0], &set);
    struct timeval tv = {1, 0};
    printf("select ready=%d\n", select(p[0] + 1, &set, NULL, NULL, &tv));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42}, out;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    ready = epoll_wait(ep, &out, 1, 1000);
    printf("epoll ready=%d data=%lu\n", ready, (unsigned long)out.data.u64);
    return 0;
}
