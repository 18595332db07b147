/* Lists a directory to its end on one fd, and again from its end; then,
 * once a line has come on stdin, from its start again: what was added to
 * it meanwhile is listed as it is at home. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Lists what is left of fd's directory, one getdents64 at a time, until
 * one returns nothing; prints each name and the calls' results. */
static void list(int fd, const char *label) {
    char buf[4096];
    long got;
    printf("%s:", label);
    while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long at = 0; at < got;) {
            struct dirent64 *entry = (struct dirent64 *)(buf + at);
            printf(" %s", entry->d_name);
            at += entry->d_reclen;
        }
    }
    printf(" (end %ld)\n", got);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: listing DIR\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    list(fd, "first");
    list(fd, "again");
    char line[64];
    if (!fgets(line, sizeof line, stdin) || lseek(fd, 0, SEEK_SET) != 0)
        return 1;
    list(fd, "then");
    return 0;
}
