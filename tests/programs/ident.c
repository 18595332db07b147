/* Prints what a program can learn about where it runs: pid, parent,
 * host name, credentials, working directory, and whether stdin is a tty. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void) {
    struct utsname u;
    char cwd[4096];
    if (uname(&u) != 0 || getcwd(cwd, sizeof cwd) == NULL) {
        perror("ident");
        return 2;
    }
    printf("pid=%d\nppid=%d\nnodename=%s\nuid=%d\ngid=%d\ncwd=%s\nisatty=%d\n",
           (int)getpid(), (int)getppid(), u.nodename, (int)getuid(), (int)getgid(), cwd,
           isatty(0));
    return 0;
}
