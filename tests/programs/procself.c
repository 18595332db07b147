/* Reads its own /proc files and prints, as yes or no, whether each tells
 * the truth about this process: that it runs, its pid and parent, its
 * four threads (counted and listed by their tids), the 64 MiB it holds, the signal it blocks, where its
 * stack is (as glibc's pthread_getattr_np finds it, through
 * /proc/self/maps), the files it maps (by their paths, devices and
 * inodes). Run at home every answer is yes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define HELD (64L << 20)

static pthread_barrier_t started, finished;
static pid_t tids[4];

static void *wait_for_the_end(void *slot) {
    *(pid_t *)slot = gettid();
    pthread_barrier_wait(&started);
    pthread_barrier_wait(&finished);
    return NULL;
}

static char *slurp(const char *path) {
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        perror(path);
        exit(2);
    }
    size_t cap = 1 << 16, len = 0, n;
    char *text = malloc(cap);
    while ((n = fread(text + len, 1, cap - len - 1, file)) > 0) {
        len += n;
        if (cap - len < 4096)
            text = realloc(text, cap *= 2);
    }
    text[len] = 0;
    fclose(file);
    return text;
}

/* The number after "\nKEY:" in a status-like text, or -1. */
static long number_after(const char *text, const char *key) {
    const char *at = strstr(text, key);
    return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

static const char *yes(int truth) { return truth ? "yes" : "no"; }

static int holds(uintptr_t start, uintptr_t end, const void *address) {
    return start <= (uintptr_t)address && (uintptr_t)address < end;
}

int main(void) {
    long page = sysconf(_SC_PAGESIZE);
    int local = 0;
    char *held = malloc(HELD);
    memset(held, 1, HELD);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    pthread_barrier_init(&started, NULL, 4);
    pthread_barrier_init(&finished, NULL, 4);
    pthread_t threads[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&threads[i], NULL, wait_for_the_end, &tids[i + 1]);
    tids[0] = getpid();
    pthread_barrier_wait(&started);

    char *status = slurp("/proc/self/status");
    printf("status: running %s, pid %s, parent %s, threads %s, resident %s, blocked %s\n",
           yes(strstr(status, "\nState:\tR (running)\n") != NULL),
           yes(number_after(status, "\nPid:") == getpid()),
           yes(number_after(status, "\nPPid:") == getppid()),
           yes(number_after(status, "\nThreads:") == 4),
           yes(number_after(status, "\nVmRSS:") * 1024 >= HELD),
           yes(strstr(status, "\nSigBlk:\t0000000000000800\n") != NULL));

    char by_pid[64];
    snprintf(by_pid, sizeof by_pid, "/proc/%d/status", (int)getpid());
    printf("status by pid: threads %s\n", yes(number_after(slurp(by_pid), "\nThreads:") == 4));

    /* Its task directory lists its four threads by their tids. */
    for (int by = 0; by < 2; by++) {
        char task[64];
        snprintf(task, sizeof task, by ? "/proc/%d/task" : "/proc/self/task", (int)getpid());
        DIR *dir = opendir(task);
        int listed = 0, known = 0;
        for (struct dirent *entry; dir && (entry = readdir(dir));) {
            if (entry->d_name[0] == '.')
                continue;
            listed++;
            for (int i = 0; i < 4; i++)
                known += atoi(entry->d_name) == tids[i];
        }
        if (dir)
            closedir(dir);
        printf("task%s: threads %s, theirs %s\n", by ? " by pid" : "", yes(listed == 4),
               yes(known == 4));
    }

    /* Field N of stat is words[N - 3]: the words after the comm. */
    char *stat_text = slurp("/proc/self/stat");
    long pid = strtol(stat_text, NULL, 10);
    char *words[64];
    int count = 0;
    for (char *word = strtok(strrchr(stat_text, ')') + 1, " \n"); word && count < 64;
         word = strtok(NULL, " \n"))
        words[count++] = word;
    printf("stat: pid %s, running %s, parent %s, threads %s, virtual %s, resident %s\n",
           yes(pid == getpid()), yes(count > 21 && strcmp(words[0], "R") == 0),
           yes(count > 21 && atol(words[1]) == getppid()),
           yes(count > 21 && atol(words[17]) == 4),
           yes(count > 21 && strtol(words[20], NULL, 10) >= HELD),
           yes(count > 21 && atol(words[21]) * page >= HELD));

    long size = 0, resident = 0;
    sscanf(slurp("/proc/self/statm"), "%ld %ld", &size, &resident);
    printf("statm: resident %s\n", yes(resident * page >= HELD));

    printf("smaps_rollup: resident %s\n",
           yes(number_after(slurp("/proc/self/smaps_rollup"), "\nRss:") * 1024 >= HELD));

    /* Each mapped file by the path, device and inode it has here. */
    int heap_found = 0, stack_found = 0, files = 0, files_right = 0;
    char *maps = slurp("/proc/self/maps");
    for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long start, end, inode;
        unsigned int major_dev, minor_dev;
        if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &start, &end, &major_dev, &minor_dev,
                   &inode) != 5)
            continue;
        heap_found |= holds(start, end, held);
        stack_found |= holds(start, end, &local) && strstr(line, "[stack]") != NULL;
        char *path = strchr(line, '/');
        struct stat file;
        if (path == NULL)
            continue;
        files++;
        files_right += stat(path, &file) == 0 && major(file.st_dev) == major_dev &&
                       minor(file.st_dev) == minor_dev && file.st_ino == inode;
    }
    printf("maps: held memory %s, stack %s, files %s\n", yes(heap_found), yes(stack_found),
           yes(files > 0 && files_right == files));

    pthread_attr_t attr;
    void *stack;
    size_t stack_size;
    int got = pthread_getattr_np(pthread_self(), &attr) == 0 &&
              pthread_attr_getstack(&attr, &stack, &stack_size) == 0;
    printf("pthread_getattr_np: stack %s\n",
           yes(got && holds((uintptr_t)stack, (uintptr_t)stack + stack_size, &local)));

    pthread_barrier_wait(&finished);
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
