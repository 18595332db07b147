/* Four threads work on one shared array, ROUNDS rounds, meeting at a
 * barrier after each: thread i mixes its quarter with its neighbour's,
 * reading last round's array and writing this round's (two buffers, so
 * no thread reads what another writes in the same round). Prints the
 * checksum at the end; it depends only on MIB and ROUNDS.
 *
 *   threads MIB ROUNDS ready-file */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define THREADS 4

static uint64_t *data, *spare;
static size_t words;
static long rounds;
static pthread_barrier_t barrier;

static void *work(void *arg) {
    size_t index = (size_t)arg;
    size_t share = words / THREADS;
    uint64_t *from = data, *to = spare;
    for (long round = 1; round <= rounds; round++) {
        uint64_t *mine = from + index * share;
        uint64_t *next = from + ((index + 1) % THREADS) * share;
        uint64_t *out = to + index * share;
        for (size_t i = 0; i < share; i++)
            out[i] = (mine[i] << 7 | mine[i] >> 57) ^ (next[i] + (uint64_t)round);
        pthread_barrier_wait(&barrier);
        uint64_t *swap = from;
        from = to;
        to = swap;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: threads MIB ROUNDS ready-file\n");
        return 2;
    }
    words = (size_t)atol(argv[1]) << 17;
    rounds = atol(argv[2]);
    data = malloc(words * sizeof *data);
    spare = malloc(words * sizeof *spare);
    for (size_t i = 0; i < words; i++)
        data[i] = i * 0x9e3779b97f4a7c15ull;
    pthread_barrier_init(&barrier, NULL, THREADS);
    pthread_t threads[THREADS];
    for (size_t t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, work, (void *)t);
    close(open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644));
    for (size_t t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    uint64_t *last = rounds % 2 ? spare : data;
    uint64_t sum = 0;
    for (size_t i = 0; i < words; i++)
        sum = (sum << 3 | sum >> 61) ^ last[i];
    printf("checksum %016llx\n", (unsigned long long)sum);
    return 0;
}
