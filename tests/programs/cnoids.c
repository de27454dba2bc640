/*
 * Runs a program as on a kernel before 6.16: a seccomp filter makes
 * prctl(PR_TIMER_CREATE_RESTORE_IDS, ...) fail with EINVAL, so that
 * timer_create cannot be given an id and hands out the next free one.
 *
 * Usage: cnoids [--nnp-only] PROGRAM [ARGS...]: execs PROGRAM under the
 * filter, or with --nnp-only only with no_new_privs (which the filter
 * needs, and which a restore requires the image's process to have had).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PR_TIMER_CREATE_RESTORE_IDS 77

int main(int argc, char **argv)
{
    int nnp_only = argc > 1 && strcmp(argv[1], "--nnp-only") == 0;
    if (nnp_only) {
        argv++;
        argc--;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: cnoids [--nnp-only] PROGRAM [ARGS...]\n");
        return 2;
    }
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_TIMER_CREATE_RESTORE_IDS, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = sizeof code / sizeof code[0],
        .filter = code,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        (!nnp_only && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)) {
        perror("cnoids: seccomp");
        return 2;
    }
    execvp(argv[1], argv + 1);
    perror("cnoids: exec");
    return 127;
}
