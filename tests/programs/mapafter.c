/* Looks at a file with fstat, says so by creating FILE.seen, waits for a
 * line on stdin, then maps the file and prints the size it saw first and
 * the 14 bytes it maps: the mapping must hold the file as it is when
 * mapped. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: mapafter FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat seen;
    if (fd < 0 || fstat(fd, &seen) != 0) {
        perror(argv[1]);
        return 1;
    }
    char marker[4096];
    snprintf(marker, sizeof marker, "%s.seen", argv[1]);
    if (creat(marker, 0644) < 0) {
        perror(marker);
        return 1;
    }
    /* read, not stdio: stdio would look at stdin with fstat first. */
    char line[64];
    if (read(0, line, sizeof line) <= 0) {
        return 1;
    }
    const int len = 14;
    const char *mapped = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("%ld %.*s\n", (long)seen.st_size, len, mapped);
    return 0;
}
