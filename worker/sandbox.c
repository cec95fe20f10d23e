/* The worker's sandbox, applied once before the plugin is loaded: limits,
 * ids, capabilities, no_new_privs, Landlock (worker/sandbox-landlock.c)
 * and the seccomp allowlist, whose table is below.
 *
 * Threading: ph_sandbox_apply() runs in the single-threaded worker before
 * any plugin code; sandbox_landlock_abi is written there and only read
 * afterwards. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"
#include "sandbox-internal.h"

static int sandbox_landlock_abi;

int ph__sandbox_fail(char *err, size_t err_size, int r, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (!err || err_size == 0)
                return r;
        va_start(ap, fmt);
        n = vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < err_size)
                snprintf(err + n, err_size - (size_t)n, ": %s", strerror(-r));
        return r;
}

/* ---- the seccomp allowlist ------------------------------------------------
 * Everything not listed fails with EPERM. A row may compare arguments; rows
 * for the same call are alternatives. Integer arguments are compared on
 * their low 32 bits, which is all the kernel reads of them. */
#define INT_MASK 0xffffffffULL

struct sc_cmp {
        unsigned arg;
        uint64_t mask;
        uint64_t value;
        bool self;              /* value is getpid() at apply time */
};

struct sc_rule {
        int nr;
        int err;                /* 0: allow; else fail with this errno */
        unsigned ncmp;
        struct sc_cmp cmp[2];
};

#define ALLOW(name)             { .nr = SCMP_SYS(name) }
#define ALLOW_INT(name, a, v)   { .nr = SCMP_SYS(name), .ncmp = 1, .cmp = { { (a), INT_MASK, (v), false } } }
#define ALLOW_SELF(name)        { .nr = SCMP_SYS(name), .ncmp = 1, .cmp = { { 0, INT_MASK, 0, true } } }
#define FAIL(name, e)           { .nr = SCMP_SYS(name), .err = (e) }

/* A thread shares everything; a process or a namespace is never made. */
#define CLONE_NEW_ANY (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                       CLONE_NEWPID | CLONE_NEWNET)

static const struct sc_rule sc_table[] = {
        /* Memory: malloc, the dynamic loader mapping the plugin and its
         * libraries, thread stacks. RLIMIT_AS bounds all of it. */
        ALLOW(mmap), ALLOW(munmap), ALLOW(mprotect), ALLOW(mremap), ALLOW(madvise), ALLOW(brk),
        ALLOW(mlock), ALLOW(munlock), ALLOW(msync),

        /* Files by descriptor, and opening by path: Landlock decides what
         * an open may do (read anything, write /dev/null only). access,
         * pipe and dup2: glibc calls these older x86-64 forms directly. */
        ALLOW(read), ALLOW(write), ALLOW(readv), ALLOW(writev), ALLOW(pread64), ALLOW(pwrite64),
        ALLOW(lseek), ALLOW(close), ALLOW(fstat), ALLOW(newfstatat), ALLOW(statx),
        ALLOW(dup), ALLOW(dup2), ALLOW(dup3), ALLOW(getdents64), ALLOW(openat),
        ALLOW(access), ALLOW(faccessat), ALLOW(faccessat2), ALLOW(readlink), ALLOW(readlinkat),
        ALLOW(pipe), ALLOW(pipe2), ALLOW(eventfd2), ALLOW(poll), ALLOW(ppoll), ALLOW(select), ALLOW(pselect6),
        ALLOW(epoll_create1), ALLOW(epoll_ctl), ALLOW(epoll_wait), ALLOW(epoll_pwait),
        ALLOW(epoll_pwait2),
        /* fcntl without F_SETOWN/F_SETSIG (signals to others) or leases. */
        ALLOW_INT(fcntl, 1, F_DUPFD), ALLOW_INT(fcntl, 1, F_DUPFD_CLOEXEC),
        ALLOW_INT(fcntl, 1, F_GETFD), ALLOW_INT(fcntl, 1, F_SETFD),
        ALLOW_INT(fcntl, 1, F_GETFL), ALLOW_INT(fcntl, 1, F_SETFL),
        ALLOW_INT(fcntl, 1, F_GETLK), ALLOW_INT(fcntl, 1, F_SETLK), ALLOW_INT(fcntl, 1, F_SETLKW),
        ALLOW_INT(fcntl, 1, F_GET_SEALS),
        /* ioctl: what stdio and event loops ask of a descriptor, no more. */
        ALLOW_INT(ioctl, 1, TCGETS), ALLOW_INT(ioctl, 1, TIOCGWINSZ), ALLOW_INT(ioctl, 1, FIONREAD),
        ALLOW_INT(ioctl, 1, FIONBIO), ALLOW_INT(ioctl, 1, FIOCLEX), ALLOW_INT(ioctl, 1, FIONCLEX),

        /* Sockets already open (the worker's socketpair end): no socket,
         * socketpair, connect, bind, listen or accept. */
        ALLOW(sendmsg), ALLOW(recvmsg), ALLOW(sendto), ALLOW(recvfrom), ALLOW(shutdown),
        ALLOW(getsockopt),

        /* Threads, not processes: clone only with CLONE_THREAD and no new
         * namespace. clone3 passes its flags in memory seccomp cannot read,
         * so it says ENOSYS and glibc's pthread_create falls back to clone. */
        { .nr = SCMP_SYS(clone), .ncmp = 1,
          .cmp = { { 0, CLONE_THREAD | CLONE_NEW_ANY, CLONE_THREAD, false } } },
        FAIL(clone3, ENOSYS),
        ALLOW(futex), ALLOW(set_robust_list), ALLOW(get_robust_list), ALLOW(rseq),
        ALLOW(set_tid_address), ALLOW(sched_yield), ALLOW(sched_getaffinity), ALLOW(gettid),
        ALLOW(exit),

        /* Time. */
        ALLOW(clock_gettime), ALLOW(clock_getres), ALLOW(clock_nanosleep), ALLOW(nanosleep),
        ALLOW(gettimeofday), ALLOW(time),

        /* Signals within the worker: abort() and raise() are tgkill on
         * getpid(); the daemon or anyone else is out of reach. tkill names a
         * thread id, which may be another process: only the main thread's. */
        ALLOW(rt_sigaction), ALLOW(rt_sigprocmask), ALLOW(rt_sigreturn), ALLOW(sigaltstack),
        ALLOW(rt_sigtimedwait), ALLOW(rt_sigsuspend), ALLOW(pause), ALLOW(rt_sigpending),
        ALLOW_SELF(kill), ALLOW_SELF(tgkill), ALLOW_SELF(tkill),

        /* Who am I (never who to become). */
        ALLOW(getpid), ALLOW(getppid), ALLOW(getuid), ALLOW(geteuid), ALLOW(getgid), ALLOW(getegid),
        ALLOW(getresuid), ALLOW(getresgid), ALLOW(getgroups),

        /* Odds and ends of libc: reading limits (prlimit64 on itself, no new
         * limit), naming threads, leaving. */
        ALLOW(getrandom), ALLOW(uname), ALLOW(sysinfo), ALLOW(getcwd), ALLOW(getrusage),
        { .nr = SCMP_SYS(prlimit64), .ncmp = 2,
          .cmp = { { 0, INT_MASK, 0, false }, { 2, ~0ULL, 0, false } } },
        ALLOW_INT(prctl, 0, PR_SET_NAME), ALLOW_INT(prctl, 0, PR_GET_NAME),
        ALLOW(exit_group), ALLOW(restart_syscall), ALLOW(membarrier),
        ALLOW(sched_get_priority_max), ALLOW(sched_get_priority_min),
};

static int sandbox_seccomp(char *err, size_t err_size)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        uint64_t pid = (uint64_t)getpid();
        int r = 0;

        if (!ctx)
                return ph__sandbox_fail(err, err_size, -ENOMEM, "seccomp: init");
        for (size_t i = 0; i < sizeof(sc_table) / sizeof(sc_table[0]); i++) {
                const struct sc_rule *rule = &sc_table[i];
                struct scmp_arg_cmp cmp[2];

                for (unsigned j = 0; j < rule->ncmp; j++)
                        cmp[j] = (struct scmp_arg_cmp){
                                .arg = rule->cmp[j].arg, .op = SCMP_CMP_MASKED_EQ,
                                .datum_a = rule->cmp[j].mask,
                                .datum_b = rule->cmp[j].self ? pid : rule->cmp[j].value,
                        };
                r = seccomp_rule_add_array(ctx, rule->err ? SCMP_ACT_ERRNO(rule->err) : SCMP_ACT_ALLOW,
                                           rule->nr, rule->ncmp, cmp);
                if (r < 0) {
                        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rule->nr);

                        ph__sandbox_fail(err, err_size, r, "seccomp: rule %zu (%s)", i, name ? name : "?");
                        free(name);
                        goto out;
                }
        }
        r = seccomp_load(ctx);
        if (r < 0)
                ph__sandbox_fail(err, err_size, r, "seccomp: load");
out:
        seccomp_release(ctx);
        return r;
}

/* ---- limits, ids, capabilities --------------------------------------------- */
static int sandbox_rlimit(int resource, uint64_t value)
{
        struct rlimit rl = { .rlim_cur = value, .rlim_max = value };

        return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int sandbox_limits(const ph_sandbox_opts *o, char *err, size_t err_size)
{
        int r;

        /* No core file: it would hold the plugin's and its callers' data. */
        if ((r = sandbox_rlimit(RLIMIT_CORE, 0)) < 0)
                return ph__sandbox_fail(err, err_size, r, "setrlimit(RLIMIT_CORE, 0)");
        if (o->limit_as && (r = sandbox_rlimit(RLIMIT_AS, o->limit_as)) < 0)
                return ph__sandbox_fail(err, err_size, r, "setrlimit(RLIMIT_AS, %llu)",
                                        (unsigned long long)o->limit_as);
        if (o->limit_cpu && (r = sandbox_rlimit(RLIMIT_CPU, o->limit_cpu)) < 0)
                return ph__sandbox_fail(err, err_size, r, "setrlimit(RLIMIT_CPU, %llu)",
                                        (unsigned long long)o->limit_cpu);
        if (o->limit_nofile && (r = sandbox_rlimit(RLIMIT_NOFILE, o->limit_nofile)) < 0)
                return ph__sandbox_fail(err, err_size, r, "setrlimit(RLIMIT_NOFILE, %llu)",
                                        (unsigned long long)o->limit_nofile);
        if (o->limit_nproc && (r = sandbox_rlimit(RLIMIT_NPROC, o->limit_nproc)) < 0)
                return ph__sandbox_fail(err, err_size, r, "setrlimit(RLIMIT_NPROC, %llu)",
                                        (unsigned long long)o->limit_nproc);
        return 0;
}

static int sandbox_ids(const ph_sandbox_opts *o, char *err, size_t err_size)
{
        uid_t ru, eu, su;
        gid_t rg, eg, sg, groups[2];

        if (setgroups(1, &o->gid) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "setgroups({%u})", (unsigned)o->gid);
        if (setresgid(o->gid, o->gid, o->gid) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "setresgid(%u)", (unsigned)o->gid);
        if (setresuid(o->uid, o->uid, o->uid) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "setresuid(%u)", (unsigned)o->uid);

        /* Check that it stuck, and that root cannot be had back. */
        if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "getresuid");
        if (ru != o->uid || eu != o->uid || su != o->uid || rg != o->gid || eg != o->gid || sg != o->gid ||
            getgroups(2, groups) != 1 || groups[0] != o->gid)
                return ph__sandbox_fail(err, err_size, -EPERM, "ids did not change to %u:%u",
                                        (unsigned)o->uid, (unsigned)o->gid);
        if (o->uid != 0 && setresuid(0, 0, 0) == 0)
                return ph__sandbox_fail(err, err_size, -EPERM, "setresuid(0) works after dropping to %u",
                                        (unsigned)o->uid);
        return 0;
}

/* Empties the bounding, ambient, inheritable, permitted and effective sets. */
static int sandbox_drop_caps(char *err, size_t err_size)
{
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0 } };

        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return ph__sandbox_fail(err, err_size, -errno, "clearing the ambient capabilities");
        /* The bounding set first: dropping from it needs CAP_SETPCAP. Past
         * the kernel's last capability, the answer is EINVAL. */
        for (int cap = 0;; cap++) {
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
                        continue;
                if (errno == EINVAL && cap > 0)
                        break;
                return ph__sandbox_fail(err, err_size, -errno, "PR_CAPBSET_DROP(%d)", cap);
        }
        if (syscall(SYS_capset, &hdr, data) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "capset(empty)");
        if (syscall(SYS_capget, &hdr, data) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "capget");
        for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
                if (data[i].effective || data[i].permitted || data[i].inheritable)
                        return ph__sandbox_fail(err, err_size, -EPERM, "capabilities remain after capset");
        return 0;
}

/* Landlock and seccomp bind the calling thread (and its future threads)
 * only: a thread already running would stay free. */
static int sandbox_single_threaded(char *err, size_t err_size)
{
        DIR *d = opendir("/proc/self/task");
        struct dirent *e;
        int n = 0;

        if (!d)
                return ph__sandbox_fail(err, err_size, -errno, "opendir(/proc/self/task)");
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        if (n != 1)
                return ph__sandbox_fail(err, err_size, -EINVAL, "called with %d threads running", n);
        return 0;
}

int ph_sandbox_apply(const ph_sandbox_opts *o, char *err, size_t err_size)
{
        int r, abi;

        if (err && err_size)
                err[0] = '\0';
        if ((r = sandbox_single_threaded(err, err_size)) < 0)
                return r;
        if ((r = sandbox_limits(o, err, err_size)) < 0)
                return r;
        if (o->set_ids && (r = sandbox_ids(o, err, err_size)) < 0)
                return r;
        if (geteuid() == 0 && (r = sandbox_drop_caps(err, err_size)) < 0)
                return r;
        /* Not dumpable: no core, and no ptrace or /proc/PID access by
         * processes of the same uid. */
        /* After the ids: a change of credentials clears it. */
        if (o->parent > 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                        return ph__sandbox_fail(err, err_size, -errno, "PR_SET_PDEATHSIG");
                if (getppid() != o->parent)
                        return ph__sandbox_fail(err, err_size, -ESRCH, "the parent is gone");
        }
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "PR_SET_DUMPABLE");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return ph__sandbox_fail(err, err_size, -errno, "PR_SET_NO_NEW_PRIVS");
        abi = ph__sandbox_landlock(err, err_size);
        if (abi < 0)
                return abi;
        if ((r = sandbox_seccomp(err, err_size)) < 0)
                return r;
        sandbox_landlock_abi = abi;
        if (abi == 0 && err && err_size)
                snprintf(err, err_size, "landlock: not available on this kernel; files are limited by "
                         "seccomp and permissions only");
        return 0;
}

int ph_sandbox_landlock_abi(void)
{
        return sandbox_landlock_abi;
}
