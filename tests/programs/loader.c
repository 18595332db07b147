/* Names the file its dynamic loader was mapped from, as its own
 * /proc/self/maps shows it (the mapping at AT_BASE), and ends with 3. */
#include <stdio.h>
#include <sys/auxv.h>

int main(void) {
    unsigned long base = getauxval(AT_BASE), start;
    char line[4096], path[4096];
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps)) {
        int fields = sscanf(line, "%lx-%*x %*s %*s %*s %*s %4095s", &start, path);
        if (fields == 2 && start == base) {
            printf("loader: %s\n", path);
            return 3;
        }
    }
    puts("loader: not found");
    return 4;
}
