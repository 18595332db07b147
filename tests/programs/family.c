/* Two processes: one looks up DIR/aN then DIR/bN three times over (so
 * that a host learns that bN follows aN), looks aN up once more, lets
 * the other remove DIR/bN, and looks bN up again at once, having made no
 * call of its own in between. Each round prints whether bN was still
 * there for it: at home it never is.
 *
 *   family memory DIR ROUNDS  the other is a fork that shares a
 *                             MAP_SHARED page with it, through which
 *                             each tells the other it may go on.
 *   family signal DIR ROUNDS  the other is a program of its own (a fork
 *                             that execs this one as "signaller"), told
 *                             to go on through a pipe, and telling back
 *                             with a SIGUSR1, which the first waits for
 *                             with sigwaitinfo.
 *   family made DIR 0         as memory, but the other makes what was
 *                             missing: an open of DIR/o, failed three
 *                             times, must then open it, and an exec of
 *                             DIR/x (a link to this program), failed
 *                             three times, must then run it.
 *
 * Every result is printed at the end. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char out[1 << 14];
static size_t used;

static void path(char *buffer, size_t size, const char *dir, char name, int round) {
    snprintf(buffer, size, "%s/%c%d", dir, name, round);
}

static int there(const char *dir, char name, int round) {
    char p[4096];
    struct stat st;
    path(p, sizeof p, dir, name, round);
    return stat(p, &st) == 0;
}

/* Teaches the host that bN follows aN, then looks aN up once more. */
static void train_and_look(const char *dir, int round) {
    for (int i = 0; i < 3; i++) {
        there(dir, 'a', round);
        there(dir, 'b', round);
    }
    there(dir, 'a', round);
}

static void report(int round, int b_there) {
    used += snprintf(out + used, sizeof out - used, "round %d: b %s\n", round,
                     b_there ? "still there" : "gone");
}

/* Waits until the other process has taken step `step`. */
static void await_step(volatile int *at, int step) {
    while (*at != step) {
        sched_yield();
    }
}

/* Forks, the two sharing a MAP_SHARED page of steps; NULL on failure. */
static volatile int *fork_sharing_steps(pid_t *child) {
    volatile int *step = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (step == MAP_FAILED) {
        perror("mmap");
        return NULL;
    }
    *child = fork();
    if (*child < 0) {
        perror("fork");
        return NULL;
    }
    return step;
}

static int memory(const char *dir, int rounds) {
    pid_t child;
    volatile int *step = fork_sharing_steps(&child);
    if (!step) {
        return 1;
    }
    if (child == 0) {
        for (int round = 0; round < rounds; round++) {
            await_step(step, 2 * round + 1);
            char p[4096];
            path(p, sizeof p, dir, 'b', round);
            unlink(p);
            *step = 2 * round + 2;
        }
        _exit(0);
    }
    for (int round = 0; round < rounds; round++) {
        train_and_look(dir, round);
        *step = 2 * round + 1;
        await_step(step, 2 * round + 2);
        report(round, there(dir, 'b', round));
    }
    waitpid(child, NULL, 0);
    fputs(out, stdout);
    return 0;
}

static int made(const char *self, const char *dir) {
    char opened[4096], program[4096], target[4096];
    snprintf(opened, sizeof opened, "%s/o", dir);
    snprintf(program, sizeof program, "%s/x", dir);
    if (!realpath(self, target)) {
        perror(self);
        return 1;
    }
    pid_t child;
    volatile int *step = fork_sharing_steps(&child);
    if (!step) {
        return 1;
    }
    if (child == 0) {
        await_step(step, 1);
        close(open(opened, O_WRONLY | O_CREAT, 0644));
        *step = 2;
        await_step(step, 3);
        if (symlink(target, program) < 0) {
            perror("symlink");
        }
        *step = 4;
        _exit(0);
    }
    /* A call home that is no lookup (getppid) before each look at aN:
     * the open or exec that follows it is then the one lookup asked
     * ahead behind it. */
    char *argv[] = {program, "ran", "-", "0", NULL};
    for (int i = 0; i < 3; i++) {
        getppid();
        there(dir, 'a', 0);
        close(open(opened, O_RDONLY));
    }
    getppid();
    there(dir, 'a', 0);
    *step = 1;
    await_step(step, 2);
    int fd = open(opened, O_RDONLY);
    printf("open: o %s\n", fd >= 0 ? "opened" : "still missing");
    /* Before the exec's lookups: a write home would end them. */
    fflush(stdout);
    for (int i = 0; i < 3; i++) {
        getppid();
        there(dir, 'a', 1);
        execv(program, argv);
    }
    getppid();
    there(dir, 'a', 1);
    *step = 3;
    await_step(step, 4);
    execv(program, argv);
    printf("exec: x still missing\n");
    return 1;
}

static int signal_mode(const char *self, const char *dir, int rounds) {
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    int go[2];
    if (pipe(go) < 0) {
        perror("pipe");
        return 1;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", rounds);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        dup2(go[0], 3);
        execl(self, self, "signaller", dir, count, (char *)NULL);
        perror("execl");
        _exit(127);
    }
    close(go[0]);
    for (int round = 0; round < rounds; round++) {
        if (write(go[1], "g", 1) != 1) {
            perror("write");
            return 1;
        }
        train_and_look(dir, round);
        siginfo_t info;
        if (sigwaitinfo(&usr1, &info) != SIGUSR1) {
            perror("sigwaitinfo");
            return 1;
        }
        report(round, there(dir, 'b', round));
    }
    waitpid(child, NULL, 0);
    fputs(out, stdout);
    return 0;
}

/* The signal mode's other program: at each line on fd 3, waits for the
 * first to have looked aN up, removes bN and signals its parent. */
static int signaller(const char *dir, int rounds) {
    for (int round = 0; round < rounds; round++) {
        char byte;
        if (read(3, &byte, 1) != 1) {
            return 1;
        }
        /* Its training and last look take a few round trips. */
        struct timespec pause = {0, 600 * 1000};
        nanosleep(&pause, NULL);
        char p[4096];
        path(p, sizeof p, dir, 'b', round);
        unlink(p);
        kill(getppid(), SIGUSR1);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: family memory|signal DIR ROUNDS\n");
        return 2;
    }
    int rounds = atoi(argv[3]);
    if (!strcmp(argv[1], "memory")) {
        return memory(argv[2], rounds);
    }
    if (!strcmp(argv[1], "signal")) {
        return signal_mode(argv[0], argv[2], rounds);
    }
    if (!strcmp(argv[1], "signaller")) {
        return signaller(argv[2], rounds);
    }
    if (!strcmp(argv[1], "made")) {
        return made(argv[0], argv[2]);
    }
    if (!strcmp(argv[1], "ran")) {
        printf("exec: x ran\n");
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
