/* UDP round trip between two nodes: `udp_rtt serve PORT` echoes;
 * `udp_rtt ADDR PORT N` prints the mean round trip of N 64-byte pings. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    char buf[64] = {0};
    if (argc == 3 && !strcmp(argv[1], "serve")) {
        a.sin_port = htons(atoi(argv[2]));
        bind(s, (struct sockaddr *)&a, sizeof a);
        for (;;) {
            struct sockaddr_in from;
            socklen_t len = sizeof from;
            ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
            if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, len);
        }
    }
    if (argc != 4) return 2;
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    a.sin_port = htons(atoi(argv[2]));
    connect(s, (struct sockaddr *)&a, sizeof a);
    long n = atol(argv[3]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        send(s, buf, sizeof buf, 0);
        recv(s, buf, sizeof buf, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("udp_rtt %.2f us\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n / 1e3);
    return 0;
}
