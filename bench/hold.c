/* Holds MIB mebibytes of pseudo-random data (resident), as much again
 * allocated but never touched, and 16 MiB touched but all zero; then
 * keeps computing over its data until killed (given "idle", sleeps
 * until killed; given "rewrite", keeps rewriting its data, faster than
 * any link carries it). The migration benchmark moves it: only the
 * random pages should travel.
 *
 *   hold MIB ready-file [idle|rewrite] */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: hold MIB ready-file\n");
        return 2;
    }
    size_t bytes = (size_t)atol(argv[1]) << 20;
    uint64_t *data = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *untouched = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *zeros = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED || untouched == MAP_FAILED || zeros == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(zeros, 0, 16 << 20);
    uint64_t state = 0x9e3779b97f4a7c15ull;
    size_t words = bytes / 8;
    for (size_t i = 0; i < words; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data[i] = state;
    }
    close(open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644));
    if (argc > 3 && strcmp(argv[3], "idle") == 0)
        for (;;)
            pause();
    if (argc > 3 && strcmp(argv[3], "rewrite") == 0)
        for (;;)
            for (size_t i = 0; i < words; i++)
                data[i] = data[i] * 6364136223846793005ull + 1;
    uint64_t sum = 0;
    for (;;)
        for (size_t i = 0; i < words; i += 512)
            sum += data[i];
}
