/* Keeps changing its memory while it is moved, the way pre-copy must
 * follow: it writes pages here and there, drops runs of pages
 * (MADV_DONTNEED, after which they read as zeros) and maps and unmaps
 * memory, at a pace that lets most of its pages travel while it runs.
 * Everything it does follows from a fixed seed, so the checksum it prints
 * at the end is the same however often, and whenever, it was moved.
 *
 *   churn STEPS [ready-file] */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define PAGES 32768 /* 128 MiB */

static uint64_t next(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: churn STEPS [ready-file]\n");
        return 2;
    }
    long steps = atol(argv[1]);
    uint64_t state = 0x9e3779b97f4a7c15ull;
    uint64_t *memory = mmap(NULL, (size_t)PAGES * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (size_t i = 0; i < (size_t)PAGES * PAGE / 8; i++)
        memory[i] = next(&state);
    if (argc > 2)
        close(open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644));
    uint8_t *extra = NULL;
    size_t extra_len = 0;
    struct timespec pause = {0, 1000000};
    for (long step = 0; step < steps; step++) {
        for (int k = 0; k < 8; k++) {
            uint64_t *page = memory + (next(&state) % PAGES) * (PAGE / 8);
            page[next(&state) % (PAGE / 8)] ^= next(&state);
        }
        if (step % 50 == 0) {
            size_t first = next(&state) % (PAGES - 16);
            madvise((char *)memory + first * PAGE, 16 * PAGE, MADV_DONTNEED);
        }
        if (step % 100 == 0) {
            if (extra)
                munmap(extra, extra_len);
            extra_len = (1 + next(&state) % 64) * PAGE;
            extra = mmap(NULL, extra_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (extra == MAP_FAILED) {
                perror("mmap");
                return 1;
            }
            memset(extra, (int)(step / 100) | 1, extra_len);
        }
        nanosleep(&pause, NULL);
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < (size_t)PAGES * PAGE / 8; i++)
        sum = (sum << 7 | sum >> 57) ^ memory[i];
    for (size_t i = 0; i < extra_len; i++)
        sum = (sum << 7 | sum >> 57) ^ extra[i];
    printf("checksum %016llx\n", (unsigned long long)sum);
    return 0;
}
