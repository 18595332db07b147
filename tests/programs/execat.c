/* Execs programs with execveat, each in a child it waits for: relative
 * to a directory's fd, of an fd itself (fexecve), of a script by its fd
 * (open, or closed by the exec: ENOENT), with a link not to be followed,
 * and the ways it fails. Each child's output, then how it ended, in
 * order: the same at home and away.
 *
 *   execat   (in a directory holding script.sh, link -> /bin/cat, and
 *             plain, a file nobody may execute) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AT_EXECVE_CHECK
#define AT_EXECVE_CHECK 0x10000
#endif

extern char **environ;

static long execat(int dirfd, const char *path, char *const argv[], int flags) {
    return syscall(SYS_execveat, dirfd, path, argv, environ, flags);
}

/* Runs `how` in a child and says how it ended (or why the exec failed). */
static void run(const char *what, int dirfd, const char *path, char *const argv[], int flags) {
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        execat(dirfd, path, argv, flags);
        printf("%s: %s\n", what, strerror(errno));
        fflush(stdout);
        _exit(99);
    }
    int status;
    waitpid(child, &status, 0);
    printf("%s: ended %d\n", what, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(void) {
    int bin = open("/bin", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int cat = open("/bin/cat", O_RDONLY | O_CLOEXEC);
    int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int script = open("script.sh", O_RDONLY);
    int sealed = open("script.sh", O_RDONLY | O_CLOEXEC);
    char *echo[] = {"echo", "relative to a directory", NULL};
    char *comm[] = {"cat", "/proc/self/comm", NULL};
    char *args[] = {"script.sh", "first", NULL};

    run("relative", bin, "echo", echo, 0);
    run("absolute", bin, "/bin/echo", echo, 0);
    run("from the cwd", AT_FDCWD, "../../../bin/echo", echo, 0);
    /* Named after the file, not the fd's number (Linux 6.12 on). */
    run("the fd itself", cat, "", comm, AT_EMPTY_PATH);
    /* Its interpreter gets /dev/fd/N as the script's path. */
    run("a script by its fd", script, "", args, AT_EMPTY_PATH);
    /* ...which it could not open were the fd closed by the exec: ENOENT. */
    run("a script by a close-on-exec fd", sealed, "", args, AT_EMPTY_PATH);
    run("a script relative to a close-on-exec fd", here, "script.sh", args, 0);
    run("a link followed", here, "link", comm, 0);
    run("a link not followed", here, "link", comm, AT_SYMLINK_NOFOLLOW);
    run("not a link, not followed", bin, "cat", comm, AT_SYMLINK_NOFOLLOW);
    run("an empty path", bin, "", echo, 0);
    run("an fd not open", 77, "echo", echo, 0);
    run("not a directory", cat, "echo", echo, 0);
    run("no such program", bin, "no-such-program", echo, 0);
    run("not executable", here, "plain", echo, 0);
    run("an unknown flag", bin, "echo", echo, 0x4000);
    /* Only asks: nothing runs, and the call returns. */
    printf("check, executable: %ld\n", execat(bin, "echo", echo, AT_EXECVE_CHECK));
    long refused = execat(here, "plain", echo, AT_EXECVE_CHECK);
    printf("check, not executable: %ld %s\n", refused, refused ? strerror(errno) : "");
    refused = execat(here, "", echo, AT_EXECVE_CHECK | AT_EMPTY_PATH);
    printf("check, a directory: %ld %s\n", refused, refused ? strerror(errno) : "");
    return 0;
}
