/* Looks up six names in DIR the same way three times (stat, readlink and
 * access of each), then the first three once more; says so by creating
 * DIR.trained, waits for a line on stdin, looks up the last three, then
 * all six in another order. Every answer is printed at the end (stdout is
 * not written to before then): each must be the one home gives at the
 * time of the lookup. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[1 << 16];
static size_t used;

static void look(const char *dir, const char *name) {
    char path[4096], target[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int found = stat(path, &st);
    int stat_errno = errno;
    ssize_t len = readlink(path, target, sizeof target - 1);
    int link_errno = errno;
    int readable = access(path, R_OK);
    int access_errno = errno;
    if (len >= 0) {
        target[len] = 0;
    }
    used += snprintf(out + used, sizeof out - used, "%s stat=%s size=%ld link=%s access=%s\n", name,
                     found == 0 ? "ok" : strerror(stat_errno), found == 0 ? (long)st.st_size : -1L,
                     len >= 0 ? target : strerror(link_errno),
                     readable == 0 ? "ok" : strerror(access_errno));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: lookups DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    const char *names[] = {"a", "b", "c", "d", "e", "f"};
    const char *other_order[] = {"a", "c", "b", "f", "e", "d"};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 6; i++) {
            look(dir, names[i]);
        }
    }
    for (int i = 0; i < 3; i++) {
        look(dir, names[i]);
    }
    char marker[4096];
    snprintf(marker, sizeof marker, "%s.trained", dir);
    if (creat(marker, 0644) < 0) {
        perror(marker);
        return 1;
    }
    char line[64];
    if (read(0, line, sizeof line) <= 0) {
        return 1;
    }
    for (int i = 3; i < 6; i++) {
        look(dir, names[i]);
    }
    for (int i = 0; i < 6; i++) {
        look(dir, other_order[i]);
    }
    fwrite(out, 1, used, stdout);
    return 0;
}
