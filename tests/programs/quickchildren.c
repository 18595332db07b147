/* Forks children that end at once, one after another, each reaped before
 * the next is forked: the fork of a shell's subshell or of `make`'s
 * commands that fail. Prints how many were forked, and any whose pid or
 * status the wait did not give back as it should. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 100, wrong = 0;
    for (int i = 0; i < count; i++) {
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
        if (child == 0) _exit(i % 200);
        int status;
        pid_t reaped = waitpid(child, &status, 0);
        if (reaped != child || !WIFEXITED(status) || WEXITSTATUS(status) != i % 200) {
            printf("child %d: forked %d, reaped %d, status %#x\n", i, (int)child, (int)reaped, status);
            wrong++;
        }
    }
    printf("%d children forked, %d wrong\n", count, wrong);
    return wrong != 0;
}
