/* Micro-benchmarks of the syscalls a remote program forwards home.
 * Each mode prints one line: NAME VALUE UNIT. Run natively and under
 * `homing run` to compare. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: micro MODE ARG [N]\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    long n = argc > 3 ? atol(argv[3]) : 1000;
    struct stat st;
    char buf[4096];
    double start = now();
    if (!strcmp(mode, "getppid")) {
        for (long i = 0; i < n; i++) getppid();
    } else if (!strcmp(mode, "fstat")) {
        int fd = open(path, O_RDONLY);
        start = now();
        for (long i = 0; i < n; i++) fstat(fd, &st);
    } else if (!strcmp(mode, "stat")) {
        for (long i = 0; i < n; i++) stat(path, &st);
    } else if (!strcmp(mode, "openread")) {
        for (long i = 0; i < n; i++) {
            int fd = open(path, O_RDONLY);
            if (read(fd, buf, sizeof buf) < 0) return 1;
            close(fd);
        }
    } else if (!strcmp(mode, "seqread") || !strcmp(mode, "seqwrite") || !strcmp(mode, "rewrite")) {
        size_t chunk = 1 << 20, total = 0;
        char *big = calloc(1, chunk);
        int writing = strcmp(mode, "seqread") != 0;
        /* rewrite: over the file's own pages, which the home node's
           storage already holds, so its speed at taking new pages is
           left out. */
        int how = !strcmp(mode, "seqwrite") ? O_WRONLY | O_CREAT | O_TRUNC : writing ? O_WRONLY : O_RDONLY;
        int fd = open(path, how, 0644);
        if (fd < 0) { perror(path); return 1; }
        start = now();
        if (writing) {
            for (long i = 0; i < n; i++) total += write(fd, big, chunk);
            fsync(fd);
        } else {
            ssize_t got;
            while ((got = read(fd, big, chunk)) > 0) total += got;
        }
        double secs = now() - start;
        printf("%s %.0f MB/s\n", mode, total / secs / 1e6);
        return 0;
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("%s %.2f us\n", mode, (now() - start) / n * 1e6);
    return 0;
}
