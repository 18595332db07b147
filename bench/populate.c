/* How long this machine takes to give a process MIB mebibytes of fresh
 * memory (MAP_POPULATE: allocate and zero every page), which every
 * restore pays for the memory it receives. On a VM whose memory the
 * hypervisor backs lazily, a first touch costs several times a warm one.
 *
 *   populate MIB */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: populate MIB\n");
        return 2;
    }
    size_t len = (size_t)atol(argv[1]) << 20;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    void *memory = mmap(NULL, len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (memory == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("%.0f\n", (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6);
    return 0;
}
