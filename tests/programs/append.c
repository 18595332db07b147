/* Appends COUNT numbered lines to FILE, one write each, PAUSE_MS apart. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: append FILE COUNT PAUSE_MS\n");
        return 2;
    }
    int count = atoi(argv[2]), pause_ms = atoi(argv[3]);
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    for (int i = 1; i <= count; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", i);
        if (write(fd, line, n) != n) {
            perror("write");
            return 1;
        }
        usleep(pause_ms * 1000);
    }
    return close(fd) == 0 ? 0 : 1;
}
