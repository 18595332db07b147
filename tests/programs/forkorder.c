/* Two children forked one after the other, the second making its first
 * call while the first still computes: each must still be itself (its
 * getpid is what fork told the parent), write through the pipe it was
 * given and end with its own status, as at home. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void compute_for_ms(long ms) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
}

static void say(int fd, const char *who) {
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", who, (int)getpid());
    if (write(fd, line, n) != n)
        _exit(99);
}

int main(void) {
    int lines[2];
    if (pipe(lines) != 0)
        return 1;
    pid_t first = fork();
    if (first == 0) {
        compute_for_ms(300);
        close(lines[0]);
        say(lines[1], "first");
        _exit(3);
    }
    pid_t second = fork();
    if (second == 0) {
        close(lines[0]);
        say(lines[1], "second");
        _exit(4);
    }
    close(lines[1]);
    char got[256] = {0};
    size_t have = 0;
    ssize_t n;
    while ((n = read(lines[0], got + have, sizeof got - 1 - have)) > 0)
        have += n;
    char first_line[64], second_line[64];
    snprintf(first_line, sizeof first_line, "first %d\n", (int)first);
    snprintf(second_line, sizeof second_line, "second %d\n", (int)second);
    printf("first is itself: %s\n", strstr(got, first_line) ? "yes" : "no");
    printf("second is itself: %s\n", strstr(got, second_line) ? "yes" : "no");
    int status;
    pid_t reaped = waitpid(second, &status, 0);
    printf("second ended: %s, status %d\n", reaped == second ? "yes" : "no", WEXITSTATUS(status));
    reaped = waitpid(first, &status, 0);
    printf("first ended: %s, status %d\n", reaped == first ? "yes" : "no", WEXITSTATUS(status));
    return 0;
}
