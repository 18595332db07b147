/* Counts the SIGRTMIN signals it is sent (real-time signals queue: each
 * one sent is delivered once) while it computes over MIB mebibytes, until
 * SIGUSR2; then prints the count. A run moved while signals arrive must
 * count every one.
 *
 *   tally MIB [ready-file] */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t count, done;

static void on_rtmin(int sig) { (void)sig; count++; }
static void on_usr2(int sig) { (void)sig; done = 1; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tally MIB [ready-file]\n");
        return 2;
    }
    size_t len = (size_t)atol(argv[1]) << 20;
    unsigned char *data = malloc(len);
    if (!data) {
        perror("malloc");
        return 1;
    }
    memset(data, 1, len);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_rtmin;
    sigaction(SIGRTMIN, &sa, NULL);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    if (argc > 2) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            close(fd);
    }
    unsigned long sum = 0;
    for (size_t i = 0; !done; i = (i + 4096) % len)
        sum += data[i]++;
    printf("count %d\n", (int)count);
    return sum == 0;
}
