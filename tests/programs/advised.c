/* Asks things of its memory: a mapping not to be forked (MADV_DONTFORK),
 * one to be wiped in a child (MADV_WIPEONFORK), one locked (mlock), one
 * left out of core dumps, one with huge pages and one without, and no
 * transparent huge pages for the whole process (PR_SET_THP_DISABLE).
 * Then, for each line on stdin, reports what it can see of that: each
 * mapping's flags in /proc/self/smaps and its locked size, the process's
 * huge page setting, and what a child it forks finds in the first two.
 * Moved between lines, it must report the same each time. Ends at the
 * end of its input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define SMALL (64 << 10)
#define LARGE (4 << 20)

struct mapping {
    const char *name;
    size_t size;
    int advice; /* -1: mlock instead */
    char *at;
};

static struct mapping mappings[] = {
    {"dontfork", SMALL, MADV_DONTFORK, NULL},   {"wipeonfork", SMALL, MADV_WIPEONFORK, NULL},
    {"locked", SMALL, -1, NULL},                {"dontdump", SMALL, MADV_DONTDUMP, NULL},
    {"hugepage", LARGE, MADV_HUGEPAGE, NULL},   {"nohugepage", LARGE, MADV_NOHUGEPAGE, NULL},
};
#define MAPPINGS (sizeof mappings / sizeof mappings[0])

/* The flags of the mapping that starts at `at` that a program can ask
 * for, and its Locked size, from /proc/self/smaps. */
static void describe(const char *at, char *out, size_t room) {
    char line[1024], start[32];
    snprintf(start, sizeof start, "%lx-", (unsigned long)at);
    FILE *smaps = fopen("/proc/self/smaps", "r");
    if (smaps == NULL) {
        snprintf(out, room, "no smaps");
        return;
    }
    int inside = 0;
    long locked = -1;
    out[0] = 0;
    while (fgets(line, sizeof line, smaps) != NULL) {
        if (strncmp(line, start, strlen(start)) == 0)
            inside = 1;
        else if (inside && strncmp(line, "Locked:", 7) == 0)
            locked = atol(line + 7);
        else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            static const char *asked[] = {"dc", "wf", "lo", "lf", "dd", "hg", "nh"};
            size_t used = 0;
            for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
                char flag[8];
                snprintf(flag, sizeof flag, " %s", asked[i]);
                if (strstr(line + 8, flag) != NULL)
                    used += snprintf(out + used, room - used, "%s ", asked[i]);
            }
            snprintf(out + used, room - used, "locked %ld kB", locked);
            break;
        }
    }
    fclose(smaps);
    if (out[0] == 0)
        snprintf(out, room, "not found");
}

static void report(void) {
    for (size_t i = 0; i < MAPPINGS; i++) {
        char flags[256];
        describe(mappings[i].at, flags, sizeof flags);
        printf("%s: %s\n", mappings[i].name, flags);
    }
    printf("huge pages disabled: %d\n", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        unsigned char in_core;
        int forked = mincore(mappings[0].at, 4096, &in_core) == 0;
        char *wiped = mappings[1].at;
        printf("child: dontfork %s, wipeonfork %s, locked holds %c\n",
               forked ? "mapped" : "absent", wiped[100] == 0 ? "zeros" : "kept",
               mappings[2].at[100]);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("end of report (child status %d)\n", status);
    fflush(stdout);
}

int main(void) {
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
        perror("PR_SET_THP_DISABLE");
        return 1;
    }
    for (size_t i = 0; i < MAPPINGS; i++) {
        struct mapping *m = &mappings[i];
        m->at = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m->at == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        /* Told apart from its neighbours, whatever the kernel merges. */
        memset(m->at, 'a' + (int)i, m->size);
        int asked = m->advice < 0 ? mlock(m->at, m->size) : madvise(m->at, m->size, m->advice);
        if (asked != 0) {
            perror(m->name);
            return 1;
        }
    }
    char input[64];
    while (fgets(input, sizeof input, stdin) != NULL)
        report();
    return 0;
}
