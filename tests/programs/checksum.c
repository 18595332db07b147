/* Holds MIB mebibytes of pseudo-random data and folds it into a running
 * checksum, ROUNDS times over; prints the checksum after each round and
 * at the end, and its pid first and last. Its output depends only on its
 * arguments and pid, so a run that was moved while computing must print
 * exactly what an unmoved run prints.
 *
 *   checksum MIB ROUNDS [ready-file]
 * The ready file is created once the data is in memory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: checksum MIB ROUNDS [ready-file]\n");
        return 2;
    }
    size_t words = (size_t)atol(argv[1]) << 17; /* 8-byte words in MIB MiB */
    long rounds = atol(argv[2]);
    printf("pid %d\n", (int)getpid());
    fflush(stdout);
    uint64_t *data = malloc(words * sizeof *data);
    if (!data) {
        perror("malloc");
        return 1;
    }
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < words; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data[i] = state;
    }
    if (argc > 3) {
        int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            close(fd);
    }
    uint64_t sum = 0;
    for (long round = 1; round <= rounds; round++) {
        for (size_t i = 0; i < words; i++) {
            sum = (sum << 5 | sum >> 59) ^ (data[i] * (uint64_t)round);
            data[i] ^= sum;
        }
        printf("round %ld: %016llx\n", round, (unsigned long long)sum);
        fflush(stdout);
    }
    printf("checksum %016llx\n", (unsigned long long)sum);
    printf("pid %d\n", (int)getpid());
    return 0;
}
