/* Forks a child that reports its identity and exits 7; the parent reports
 * the pid its fork returned, waits for the child and reports the pid and
 * status its wait returned. */
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
    printf("forked pid=%d\n", (int)child);
    fflush(stdout);
    int status;
    pid_t reaped = wait(&status);
    if (reaped < 0) {
        perror("wait");
        return 1;
    }
    printf("reaped pid=%d exited=%d status=%d\n", (int)reaped, WIFEXITED(status),
           WEXITSTATUS(status));
    return 0;
}
