/* Forks a child that reports its identity and exits 7; the parent waits
 * for it and reports the status it saw. */
#include <stdio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    printf("parent pid=%d\n", (int)getpid());
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        struct utsname u;
        uname(&u);
        printf("child pid=%d ppid=%d nodename=%s\n", (int)getpid(), (int)getppid(), u.nodename);
        fflush(stdout);
        _exit(7);
    }
    int status;
    if (waitpid(child, &status, 0) != child) {
        perror("waitpid");
        return 1;
    }
    printf("reaped exited=%d status=%d\n", WIFEXITED(status), WEXITSTATUS(status));
    return 0;
}
