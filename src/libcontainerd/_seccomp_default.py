"""The default seccomp profile, as data grouped by reason.

Equal in effect to Docker 20.10's default profile (the anchor of the
project), with three deliberate changes that later Docker releases made too,
all of them stricter or about calls 20.10 did not know:

- ``io_uring_*`` refused: a large kernel surface with a long record of
  privilege escalations (Docker 25 refuses it too);
- ``socket`` refused for ``AF_VSOCK`` (40), the channel to a hypervisor
  (Docker 23), and ``AF_ALG`` (38), the kernel crypto API, another
  escalation surface;
- calls of newer kernels that only do what an allowed call already does
  (``fchmodat2``, ``futex_wait``, ``getxattrat``, ...) allowed, so a newer
  libc uses them instead of failing with EPERM.

Everything not allowed here fails with EPERM, except ``clone3`` (ENOSYS, so
that libc falls back to ``clone``, whose flags a filter can check).
:func:`libcontainerd.seccomp.default_profile` renders these groups in
Docker's profile format.
"""

from __future__ import annotations

from dataclasses import dataclass

EPERM = 1
ENOSYS = 38

# clone(2) flags that create namespaces: NEWNS 0x20000, NEWCGROUP 0x2000000,
# NEWUTS 0x4000000, NEWIPC 0x8000000, NEWUSER 0x10000000, NEWPID 0x20000000,
# NEWNET 0x40000000. Without CAP_SYS_ADMIN, clone must have none of them.
CLONE_NAMESPACE_FLAGS = 0x7E020000

AF_ALG = 38
AF_NFC = 39
AF_VSOCK = 40

# personality(2) values a container may switch to: PER_LINUX, PER_LINUX32,
# UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (which only queries). Others
# (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) weaken memory protections.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


@dataclass(frozen=True)
class Condition:
    """One argument test: ``args[index] <op> value``.

    For MASKED_EQ: ``args[index] & value == value_two``.
    """

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Group:
    """Syscalls allowed (or answered) for one reason, under the same conditions."""

    why: str
    names: str  # whitespace-separated
    action: str = "SCMP_ACT_ALLOW"
    errno: int | None = None
    # every condition must hold (one OCI rule); a Group per alternative
    conditions: tuple[Condition, ...] = ()
    needs_caps: tuple[str, ...] = ()  # only when all are in the bounding set
    unless_caps: tuple[str, ...] = ()  # only when none is in the bounding set
    arches: tuple[str, ...] = ()  # only on these machines (Go's GOARCH names)
    not_arches: tuple[str, ...] = ()
    min_kernel: str = ""  # only on this kernel or newer ("4.8")


# The machines a profile targets: the native one and the ones its kernel
# runs as a compat ABI (a 64-bit x86 kernel also runs i386 and x32 code).
ARCH_MAP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    ("SCMP_ARCH_PPC64LE", ()),
    ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    ("SCMP_ARCH_RISCV64", ()),
)

_NO_ADMIN = ("CAP_SYS_ADMIN",)

GROUPS: tuple[Group, ...] = (
    # --- what every program does -------------------------------------------
    Group(
        "run programs, make processes and threads, wait for them, end",
        """execve execveat exit exit_group fork vfork wait4 waitid waitpid restart_syscall
        set_tid_address set_robust_list get_robust_list set_thread_area get_thread_area rseq
        membarrier""",
    ),
    Group(
        "know and change oneself within what the capabilities allow (setuid needs CAP_SETUID,"
        " capset can only drop, prctl and seccomp can only narrow)",
        """getpid getppid gettid getpgid getpgrp getsid setpgid setsid prctl seccomp capget
        capset uname sysinfo umask getrusage times getrlimit setrlimit prlimit64 ugetrlimit
        getcpu getpriority setpriority ioprio_get ioprio_set
        sched_getaffinity sched_setaffinity sched_getattr sched_setattr sched_getparam
        sched_setparam sched_getscheduler sched_setscheduler sched_get_priority_max
        sched_get_priority_min sched_rr_get_interval sched_rr_get_interval_time64 sched_yield""",
    ),
    Group(
        "user and group identity (changing it still needs CAP_SETUID/CAP_SETGID)",
        """getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getgroups
        getgroups32 getresuid getresuid32 getresgid getresgid32 setuid setuid32 setgid setgid32
        setreuid setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32
        setfsuid setfsuid32 setfsgid setfsgid32 setgroups setgroups32""",
    ),
    Group(
        "signals and timers (kill reaches only the container's own pid namespace)",
        """kill tkill tgkill pidfd_open pidfd_send_signal process_mrelease rt_sigaction
        rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
        rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack sigprocmask sigreturn signalfd
        signalfd4 pause alarm getitimer setitimer timer_create timer_delete timer_getoverrun
        timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
        timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64""",
    ),
    Group(
        "read the clocks and sleep (adjtimex and clock_adjtime only read without CAP_SYS_TIME)",
        """clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
        clock_nanosleep_time64 gettimeofday time nanosleep adjtimex clock_adjtime
        clock_adjtime64""",
    ),
    Group(
        "memory of one's own process",
        """brk mmap mmap2 munmap mremap mprotect madvise mincore msync remap_file_pages mlock
        mlock2 mlockall munlock munlockall memfd_create memfd_secret""",
    ),
    Group(
        "files and directories (permissions, CAP_MKNOD and the device cgroup still apply)",
        """access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat chown chown32
        fchown fchown32 fchownat lchown lchown32 creat open openat openat2 close close_range
        dup dup2 dup3 fcntl fcntl64 flock link linkat symlink symlinkat unlink unlinkat rename
        renameat renameat2 mkdir mkdirat rmdir mknod mknodat readlink readlinkat stat stat64
        lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64
        getdents getdents64 truncate truncate64 ftruncate ftruncate64 fallocate utime utimes
        utimensat utimensat_time64 futimesat getxattr lgetxattr fgetxattr listxattr llistxattr
        flistxattr setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr sync
        syncfs fsync fdatasync sync_file_range fadvise64 fadvise64_64 readahead""",
    ),
    Group(
        "read and write descriptors, pipes",
        """read write readv writev pread64 pwrite64 preadv preadv2 pwritev pwritev2 lseek _llseek
        sendfile sendfile64 splice tee vmsplice copy_file_range ioctl pipe pipe2""",
    ),
    Group(
        "wait for events on descriptors, futexes, randomness",
        """select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create
        epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait
        epoll_pwait2 eventfd eventfd2 inotify_init inotify_init1 inotify_add_watch
        inotify_rm_watch fanotify_mark futex futex_time64 futex_waitv getrandom""",
    ),
    Group(
        "asynchronous I/O (io_uring is not here: see the module docstring)",
        "io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64",
    ),
    Group(
        "sockets, in the container's network namespace (socket itself is filtered below;"
        " socketcall, the 32-bit multiplexer, cannot be filtered by argument)",
        """socketcall socketpair bind connect listen accept accept4 getsockname getpeername
        getsockopt setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg
        recvmmsg_time64 shutdown""",
    ),
    Group(
        "System V and POSIX IPC, in the container's IPC namespace",
        """ipc msgctl msgget msgrcv msgsnd semctl semget semop semtimedop semtimedop_time64
        shmat shmctl shmdt shmget mq_getsetattr mq_notify mq_open mq_timedreceive
        mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink""",
    ),
    Group(
        "confine oneself further (Landlock)",
        "landlock_add_rule landlock_create_ruleset landlock_restrict_self",
    ),
    Group(
        "newer kernels' forms of calls allowed above (a newer libc prefers them)",
        """cachestat fchmodat2 futex_requeue futex_wait futex_wake map_shadow_stack mseal
        pkey_alloc pkey_free pkey_mprotect getxattrat setxattrat listxattrat removexattrat
        statmount listmount""",
    ),
    # --- allowed with argument filters --------------------------------------
    Group(
        "sockets of every family but AF_ALG (the kernel's crypto API) and AF_VSOCK"
        " (the hypervisor's channel)",
        "socket",
        conditions=(Condition(0, "SCMP_CMP_LT", AF_ALG),),
    ),
    Group(
        "socket: AF_NFC, between the two refused families",
        "socket",
        conditions=(Condition(0, "SCMP_CMP_EQ", AF_NFC),),
    ),
    Group(
        "socket: the families above AF_VSOCK",
        "socket",
        conditions=(Condition(0, "SCMP_CMP_GT", AF_VSOCK),),
    ),
    *(
        Group(
            f"personality {value:#x} only (see PERSONALITIES)",
            "personality",
            conditions=(Condition(0, "SCMP_CMP_EQ", value),),
        )
        for value in PERSONALITIES
    ),
    Group(
        "clone without namespace flags: a new namespace (a user namespace above all) opens"
        " kernel surface meant for the host's root",
        "clone",
        conditions=(Condition(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),),
        unless_caps=_NO_ADMIN,
        not_arches=("s390", "s390x"),
    ),
    Group(
        "clone without namespace flags, on s390 (whose clone takes the flags second)",
        "clone",
        conditions=(Condition(1, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),),
        unless_caps=_NO_ADMIN,
        arches=("s390", "s390x"),
    ),
    Group(
        "clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes libc fall"
        " back to clone",
        "clone3",
        action="SCMP_ACT_ERRNO",
        errno=ENOSYS,
        unless_caps=_NO_ADMIN,
    ),
    Group(
        "ptrace of one's own processes: since Linux 4.8 a traced process cannot escape its"
        " filter (tracing anything else needs CAP_SYS_PTRACE)",
        "ptrace",
        min_kernel="4.8",
    ),
    # --- one machine's own calls --------------------------------------------
    Group("x86: thread-local storage setup", "arch_prctl", arches=("amd64", "x32")),
    Group(
        "x86: per-process segment table (Wine, old threads)",
        "modify_ldt",
        arches=("amd64", "x32", "x86"),
    ),
    Group(
        "arm: its own forms of common calls",
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
        arches=("arm", "arm64"),
    ),
    Group(
        "ppc64le: its own forms of common calls",
        "sync_file_range2 swapcontext",
        arches=("ppc64le",),
    ),
    Group(
        "s390: its own calls",
        "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
        arches=("s390", "s390x"),
    ),
    Group("riscv64: its own call", "riscv_flush_icache", arches=("riscv64",)),
    # --- what a capability in the bounding set unlocks ------------------------
    Group(
        "CAP_SYS_ADMIN: mounts, namespaces, BPF, perf, quotas, host names, kernel log",
        """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
        mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl
        quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare
        lsm_get_self_attr lsm_list_modules lsm_set_self_attr""",
        needs_caps=("CAP_SYS_ADMIN",),
    ),
    Group(
        "CAP_DAC_READ_SEARCH: open files by handle",
        "open_by_handle_at",
        needs_caps=("CAP_DAC_READ_SEARCH",),
    ),
    Group("CAP_SYS_BOOT: reboot", "reboot", needs_caps=("CAP_SYS_BOOT",)),
    Group("CAP_SYS_CHROOT: chroot", "chroot", needs_caps=("CAP_SYS_CHROOT",)),
    Group(
        "CAP_SYS_MODULE: kernel modules",
        "init_module finit_module delete_module",
        needs_caps=("CAP_SYS_MODULE",),
    ),
    Group("CAP_SYS_PACCT: process accounting", "acct", needs_caps=("CAP_SYS_PACCT",)),
    Group(
        "CAP_SYS_PTRACE: inspect other processes",
        "ptrace kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev",
        needs_caps=("CAP_SYS_PTRACE",),
    ),
    Group("CAP_SYS_RAWIO: I/O ports", "iopl ioperm", needs_caps=("CAP_SYS_RAWIO",)),
    Group(
        "CAP_SYS_TIME: set the clock",
        "settimeofday stime clock_settime clock_settime64",
        needs_caps=("CAP_SYS_TIME",),
    ),
    Group(
        "CAP_SYS_TTY_CONFIG: hang up the terminal", "vhangup", needs_caps=("CAP_SYS_TTY_CONFIG",)
    ),
    Group(
        "CAP_SYS_NICE: NUMA memory policy",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
        needs_caps=("CAP_SYS_NICE",),
    ),
    Group("CAP_SYSLOG: the kernel log", "syslog", needs_caps=("CAP_SYSLOG",)),
    Group("CAP_BPF: BPF programs", "bpf", needs_caps=("CAP_BPF",)),
    Group("CAP_PERFMON: performance counters", "perf_event_open", needs_caps=("CAP_PERFMON",)),
)
"""Refused by omission, among others: keyctl, add_key, request_key (the kernel
keyring is not namespaced), kexec_load, swapon/swapoff, userfaultfd, io_uring,
create_module, uselib, nfsservctl, vm86, _sysctl, and everything a capability
above unlocks when the capability is absent."""
