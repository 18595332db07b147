/* Rewrites every page of its 64 MiB, pass after pass, faster than any
 * link carries them, each pass depending on the one before; stops once a
 * line (or the end) comes on its input, and prints how many passes it
 * made and a checksum of its memory. Given the passes instead, it makes
 * that many and prints the same: what a run that was moved while it
 * wrote must match. Meanwhile a second thread waits in epoll_wait for an
 * eventfd written at the end: it prints how often it woke, and how often
 * epoll_wait failed with EINTR (no signal comes: never). A third asks
 * for its parent's pid every 100 us, between short sleeps, and prints
 * how often the answer was not the parent's (never).
 *
 *   rewrite ready-file        until told to stop
 *   rewrite --passes N */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define WORDS ((size_t)(64 << 20) / 8)

static void pass(uint64_t *memory, uint64_t number) {
    /* One word in every 64 bytes, each from its neighbour a page on. */
    for (size_t i = 0; i < WORDS; i += 8)
        memory[i] = memory[i] * 6364136223846793005ull + memory[(i + 512) % WORDS] + number;
}

static int waiting;
static unsigned woken, interrupted, wrong_parent;
static volatile int ended;

static void *ask_for_the_parent(void *unused) {
    (void)unused;
    pid_t parent = getppid();
    while (!ended) {
        if (getppid() != parent)
            wrong_parent++;
        usleep(100);
    }
    return NULL;
}

static void *wait_for_the_end(void *unused) {
    (void)unused;
    struct epoll_event event;
    for (;;) {
        int n = epoll_wait(waiting, &event, 1, -1);
        if (n == 1)
            return NULL;
        if (n < 0 && errno == EINTR)
            interrupted++;
        else if (n < 0)
            return NULL;
        else
            woken++;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: rewrite ready-file | rewrite --passes N\n");
        return 2;
    }
    uint64_t *memory = mmap(NULL, WORDS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (size_t i = 0; i < WORDS; i++)
        memory[i] = i;
    int end = eventfd(0, 0);
    waiting = epoll_create1(0);
    struct epoll_event at_end = {.events = EPOLLIN};
    pthread_t waiter, asker;
    if (end < 0 || waiting < 0 || epoll_ctl(waiting, EPOLL_CTL_ADD, end, &at_end) < 0 ||
        pthread_create(&waiter, NULL, wait_for_the_end, NULL) != 0 ||
        pthread_create(&asker, NULL, ask_for_the_parent, NULL) != 0) {
        perror("the waiting thread");
        return 1;
    }
    uint64_t passes = 0;
    if (strcmp(argv[1], "--passes") == 0) {
        uint64_t wanted = strtoull(argv[2], NULL, 10);
        while (passes < wanted)
            pass(memory, passes++);
    } else {
        close(open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644));
        struct pollfd input = {.fd = 0, .events = POLLIN};
        while (poll(&input, 1, 0) == 0)
            pass(memory, passes++);
    }
    uint64_t one = 1;
    if (write(end, &one, sizeof one) != sizeof one || pthread_join(waiter, NULL) != 0) {
        perror("ending the waiting thread");
        return 1;
    }
    woken++;
    ended = 1;
    if (pthread_join(asker, NULL) != 0) {
        perror("ending the asking thread");
        return 1;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < WORDS; i++)
        sum = sum * 31 + memory[i];
    printf("passes %llu checksum %016llx woken %u eintr %u wrong parent %u\n",
           (unsigned long long)passes, (unsigned long long)sum, woken, interrupted, wrong_parent);
    return 0;
}
