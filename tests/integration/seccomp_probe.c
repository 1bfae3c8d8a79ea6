/* Escape attempts for tests/integration/test_seccomp.py, made with raw syscalls.
 *
 * Built static at test time (the busybox root has no libc). Each attempt is
 * one syscall with harmless arguments; the probe prints one line per
 * attempt, "NAME ERRNO", where ERRNO is 0 when the call succeeded, or
 * "NAME -SIGNAL" when the attempt was killed by that signal. Each
 * attempt runs in a child process of its own, which then exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NEWNS 0x00020000L
#define NEWUSER 0x10000000L
#define AF_VSOCK_FAMILY 40
#define AF_ALG_FAMILY 38
#define READ_IMPLIES_EXEC 0x0400000L

static long outside_pid = 999999;

/* A child made by clone/clone3 exits at once; the parent reaps it. */
static long reap(long pid) {
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, __WALL);
    return pid;
}

static long attempt(const char *name) {
    char buffer[64] = {0};
    if (!strcmp(name, "unshare_user")) return syscall(SYS_unshare, NEWUSER);
    if (!strcmp(name, "unshare_mount")) return syscall(SYS_unshare, NEWNS);
    if (!strcmp(name, "clone_newuser"))
        return reap(syscall(SYS_clone, NEWUSER | SIGCHLD, 0, 0, 0, 0));
    if (!strcmp(name, "clone3")) {
        uint64_t args[11] = {0};
        args[4] = SIGCHLD; /* exit_signal */
        return reap(syscall(SYS_clone3, args, sizeof args));
    }
    if (!strcmp(name, "mount_tmpfs"))
        return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0L, NULL);
    if (!strcmp(name, "setns")) {
        int fd = open("/proc/self/ns/net", O_RDONLY);
        return syscall(SYS_setns, fd, 0L);
    }
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0L /* GET_KEYRING_ID */, -3L, 0L);
    if (!strcmp(name, "add_key"))
        return syscall(SYS_add_key, "user", "lcd-probe", "x", 1L, -2L /* process keyring */);
    if (!strcmp(name, "bpf")) return syscall(SYS_bpf, 0L /* MAP_CREATE */, buffer, 48L);
    if (!strcmp(name, "ptrace_outside"))
        return syscall(SYS_ptrace, 16L /* PTRACE_ATTACH */, outside_pid, 0L, 0L);
    if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0L, 0L, NULL, 0L);
    if (!strcmp(name, "init_module")) return syscall(SYS_init_module, buffer, 0L, "");
    if (!strcmp(name, "finit_module")) return syscall(SYS_finit_module, 0L, "", 0L);
    if (!strcmp(name, "swapon")) return syscall(SYS_swapon, "/bin/busybox", 0L);
    if (!strcmp(name, "reboot"))
        return syscall(SYS_reboot, 0xfee1deadL, 672274793L, 0L /* CAD_OFF */, NULL);
    if (!strcmp(name, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1L, buffer, 0L);
    if (!strcmp(name, "io_uring_setup")) {
        char params[120] = {0};
        long fd = syscall(SYS_io_uring_setup, 1L, params);
        if (fd >= 0) close((int)fd);
        return fd;
    }
    if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0L);
    if (!strcmp(name, "personality"))
        return syscall(SYS_personality, READ_IMPLIES_EXEC) < 0 ? -1 : 0;
    if (!strcmp(name, "socket_vsock")) return syscall(SYS_socket, AF_VSOCK_FAMILY, 1L, 0L);
    if (!strcmp(name, "socket_alg")) return syscall(SYS_socket, AF_ALG_FAMILY, 5L, 0L);
    if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, buffer, 0L, -1L, -1L, 0L);
    if (!strcmp(name, "syslog")) return syscall(SYS_syslog, 10L /* SIZE_BUFFER */, NULL, 0L);
    if (!strcmp(name, "name_to_handle_at")) {
        int mount_id;
        unsigned char handle[136] = {0};
        *(unsigned int *)handle = 128;
        return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", handle, &mount_id, 0L);
    }
    if (!strcmp(name, "settimeofday")) return syscall(SYS_settimeofday, NULL, NULL);
    if (!strcmp(name, "acct")) return syscall(SYS_acct, NULL);
    if (!strcmp(name, "iopl")) return syscall(SYS_iopl, 3L);
#ifdef __x86_64__
    /* 32-bit programs' calls: i386's getpid (20) through int 0x80, and x32's
     * getpid (x86_64's 39 with the x32 bit). */
    if (!strcmp(name, "ia32_getpid")) {
        long result;
        __asm__ volatile("int $0x80" : "=a"(result) : "a"(20L) : "memory");
        if (result < 0) {
            errno = (int)-result;
            return -1;
        }
        return result;
    }
    if (!strcmp(name, "x32_getpid")) return syscall(0x40000000L | 39L);
#endif
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "--outside-pid")) {
        outside_pid = atol(argv[2]);
        argv += 2;
        argc -= 2;
    }
    /* Each attempt in a child of its own: one that succeeds (a new user
     * namespace, a personality) must not change what the next one sees. */
    for (int i = 1; i < argc; i++) {
        int status = 0;
        pid_t child = fork();
        if (child == 0) {
            errno = 0;
            long result = attempt(argv[i]);
            if (result == -2) {
                fprintf(stderr, "unknown attempt %s\n", argv[i]);
                _exit(2);
            }
            printf("%s %d\n", argv[i], result < 0 ? errno : 0);
            fflush(stdout);
            _exit(0);
        }
        if (child < 0 || waitpid(child, &status, 0) < 0) return 2;
        if (WIFSIGNALED(status)) {
            printf("%s -%d\n", argv[i], WTERMSIG(status)); /* killed, e.g. by SIGSYS */
            fflush(stdout);
        } else if (status != 0) {
            return 2;
        }
    }
    return 0;
}
