/* Sandboxes itself as a program may: sets no_new_privs and installs a
 * seccomp filter that refuses uname(2) with EPERM. Prints its seccomp
 * mode and no_new_privs before and after (as prctl gives them and as
 * its /proc/self/status says), and what uname gives; then
 * reads lines from stdin and, for each, prints what uname gives again.
 * With `early`, first tries the filter without no_new_privs (refused
 * with EACCES, as the kernel refuses a process without CAP_SYS_ADMIN).
 * With `nnp`, sets no_new_privs only, and for each line prints its state
 * again. Ends at the end of its input. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

static int install(void) {
    struct sock_filter refuse_uname[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof refuse_uname / sizeof refuse_uname[0], refuse_uname};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program);
}

static void state(const char *when) {
    printf("%s: seccomp mode %d, no_new_privs %d", when, prctl(PR_GET_SECCOMP, 0, 0, 0, 0),
           prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    /* What its /proc/self/status says of the same. */
    char line[256];
    FILE *status = fopen("/proc/self/status", "r");
    while (status != NULL && fgets(line, sizeof line, status) != NULL) {
        if (strncmp(line, "NoNewPrivs:", 11) == 0 || strncmp(line, "Seccomp", 7) == 0) {
            line[strcspn(line, "\n")] = 0;
            printf("; %s", line);
        }
    }
    if (status != NULL)
        fclose(status);
    printf("\n");
}

static void try_uname(void) {
    struct utsname name;
    if (uname(&name) == 0)
        printf("uname: %s\n", name.nodename);
    else
        printf("uname: %s\n", strerror(errno));
    fflush(stdout);
}

int main(int argc, char **argv) {
    state("before");
    if (argc > 1 && strcmp(argv[1], "early") == 0) {
        int early = install();
        printf("filter without no_new_privs: %s\n", early == 0 ? "installed" : strerror(errno));
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("PR_SET_NO_NEW_PRIVS");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "nnp") == 0) {
        char line[64];
        state("no_new_privs set");
        fflush(stdout);
        while (fgets(line, sizeof line, stdin) != NULL) {
            state("now");
            fflush(stdout);
        }
        return 0;
    }
    if (install() != 0) {
        perror("seccomp");
        return 1;
    }
    state("after");
    try_uname();
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL)
        try_uname();
    return 0;
}
