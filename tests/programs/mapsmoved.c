/* Maps FILE privately and writes one byte of its second page (the rest
 * of it stays the file's), and maps it shared, read-only, too; then, for
 * each line on stdin, prints what it can see of its mappings: every line
 * of its /proc/self/maps (range, permissions, offset, device, inode and
 * path, as the kernel lays them out), its open fds and what they name,
 * and a checksum of what each file mapping holds. With `churn`, it rewrites 16 MiB
 * of its own between lines, too fast to be sent while it runs.
 * Moved between lines, it must print the same each time. Ends at the
 * end of its input. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long checksum(const unsigned char *bytes, size_t size) {
    unsigned long sum = 0;
    for (size_t i = 0; i < size; i++)
        sum = sum * 31 + bytes[i];
    return sum;
}

static void report(const unsigned char *mapped, const unsigned char *shared, size_t size) {
    char line[4096];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) {
        perror("/proc/self/maps");
        return;
    }
    int files = 0;
    while (fgets(line, sizeof line, maps) != NULL) {
        fputs(line, stdout);
        if (strchr(line, '/') != NULL)
            files++;
    }
    fclose(maps);
    DIR *fds = opendir("/proc/self/fd");
    if (fds == NULL) {
        perror("/proc/self/fd");
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(fds)) != NULL) {
        if (entry->d_name[0] == '.' || atoi(entry->d_name) == dirfd(fds))
            continue;
        char path[64], target[256] = "";
        snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        printf("fd %s -> %s\n", entry->d_name, n > 0 ? target : "?");
    }
    closedir(fds);
    printf("%d files mapped; checksums %lu %lu\n", files, checksum(mapped, size),
           checksum(shared, size));
    fflush(stdout);
}

int main(int argc, char **argv) {
    int churning = argc == 3 && strcmp(argv[2], "churn") == 0;
    if (argc != 2 && !churning) {
        fprintf(stderr, "usage: mapsmoved FILE [churn]\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 8192) {
        fprintf(stderr, "%s: need a file of 8 KiB or more\n", argv[1]);
        return 1;
    }
    unsigned char *mapped = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    unsigned char *shared = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED || shared == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    close(fd);
    mapped[4096 + 7] ^= 0x5a;
    if (!churning) {
        char input[64];
        while (fgets(input, sizeof input, stdin) != NULL)
            report(mapped, shared, st.st_size);
        return 0;
    }
    /* Rewrites 16 MiB over and over between reports, faster than it could
     * be sent while it runs: it is paced. */
    size_t churned = 16 << 20;
    unsigned char *busy = malloc(churned);
    struct pollfd input = {.fd = 0, .events = POLLIN};
    for (unsigned round = 0;; round++) {
        memset(busy, round, churned);
        if (poll(&input, 1, 0) == 1) {
            char line[64];
            if (read(0, line, sizeof line) <= 0)
                return 0;
            report(mapped, shared, st.st_size);
        }
    }
}
