/* Scaffolding shared by the benchmarks: see bench-util.h. The cleanup paths
 * use only async-signal-safe calls, as they also run from signal handlers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

static char *bu_dir;
static unsigned bu_dir_depth;
static volatile sig_atomic_t bu_dir_made;
static pid_t bu_owner;
static void (*bu_cleanup)(void);
static const char *bu_watchdog_msg;
static size_t bu_watchdog_len;

const char *bu_met(bool ok)
{
        return ok ? "met" : "NOT met";
}

uint64_t bu_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bu_u64_cmp(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

void bu_print_header(const char *prog, long nproc)
{
        char buf[4096], *model = NULL;
        struct utsname u;
        FILE *f;

        uname(&u);
        f = fopen("/proc/cpuinfo", "re");
        while (f && fgets(buf, sizeof(buf), f))
                if (strncmp(buf, "model name", 10) == 0 && (model = strchr(buf, ':'))) {
                        model += 2;
                        model[strcspn(model, "\n")] = '\0';
                        break;
                }
        if (f)
                fclose(f);
        printf("plughost %s on %s: nproc %ld, %s %s %s%s%s\n", prog, u.nodename, nproc,
               u.sysname, u.release, u.machine, model ? ", " : "", model ? model : "");
}

/* ---- scratch directory ------------------------------------------------------ */

/* Removes what the directory open on fd holds, going down into
 * subdirectories while depth > 0. Only getdents64, openat, unlinkat and
 * close: safe in a signal handler. One static buffer per level. */
static void dir_empty(int fd, unsigned depth)
{
        static char dbuf[BU_DIR_DEPTH_MAX + 1][16384] __attribute__((aligned(8)));
        int removed;

        do {
                ssize_t n;

                removed = 0;
                lseek(fd, 0, SEEK_SET);
                while ((n = getdents64(fd, dbuf[depth], sizeof(dbuf[depth]))) > 0) {
                        for (ssize_t at = 0; at < n;) {
                                struct dirent64 *d = (struct dirent64 *)(void *)(dbuf[depth] + at);
                                const char *name = d->d_name;
                                int sub;

                                at += d->d_reclen;
                                if (name[0] == '.' && (name[1] == '\0' ||
                                                       (name[1] == '.' && name[2] == '\0')))
                                        continue;
                                if (unlinkat(fd, name, 0) == 0) {
                                        removed++;
                                        continue;
                                }
                                if (depth == 0)
                                        continue;
                                sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                if (sub < 0)
                                        continue;
                                dir_empty(sub, depth - 1);
                                close(sub);
                                if (unlinkat(fd, name, AT_REMOVEDIR) == 0)
                                        removed++;
                        }
                }
        } while (removed > 0);
}

bool bu_is_owner(void)
{
        return getpid() == bu_owner;
}

void bu_dir_remove(void)
{
        int fd;

        if (!bu_dir_made || !bu_is_owner())
                return;
        fd = open(bu_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                dir_empty(fd, bu_dir_depth);
                close(fd);
        }
        rmdir(bu_dir);
        bu_dir_made = 0;
}

static void on_signal(int sig)
{
        if (sig == SIGALRM && bu_watchdog_msg && bu_is_owner() &&
            write(STDERR_FILENO, bu_watchdog_msg, bu_watchdog_len) < 0) {
                /* Nowhere to say it. */
        }
        bu_cleanup();
        signal(sig, SIG_DFL);
        raise(sig);
}

int bu_dir_make(char *tmpl, unsigned depth, void (*cleanup)(void), unsigned watchdog_sec,
                const char *watchdog_msg)
{
        static const int sigs[] = {
                SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL,
                SIGALRM,
        };
        size_t n_sigs = sizeof(sigs) / sizeof(sigs[0]) - (watchdog_sec ? 0 : 1);

        bu_dir = tmpl;
        bu_dir_depth = depth < BU_DIR_DEPTH_MAX ? depth : BU_DIR_DEPTH_MAX;
        bu_cleanup = cleanup ? cleanup : bu_dir_remove;
        bu_watchdog_msg = watchdog_msg;
        bu_watchdog_len = watchdog_msg ? strlen(watchdog_msg) : 0;
        bu_owner = getpid();
        if (!mkdtemp(tmpl))
                return -errno;
        bu_dir_made = 1;
        atexit(bu_cleanup);
        for (size_t i = 0; i < n_sigs; i++)
                signal(sigs[i], on_signal);
        if (watchdog_sec)
                alarm(watchdog_sec);
        return 0;
}

void bu_dir_path(char *buf, size_t size, const char *name)
{
        snprintf(buf, size, "%s/%s", bu_dir, name);
}

/* ---- files ------------------------------------------------------------------- */

int bu_fd_write_all(int fd, const void *buf, size_t size)
{
        const char *p = buf;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

int bu_file_put(const char *path, const void *buf, size_t size, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        int r;

        if (fd < 0)
                return -errno;
        r = bu_fd_write_all(fd, buf, size);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        return r;
}

int bu_file_get(const char *path, unsigned char **ret, size_t *ret_size)
{
        struct stat st;
        unsigned char *buf;
        ssize_t n;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                close(fd);
                return -errno;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        n = pread(fd, buf, (size_t)st.st_size, 0);
        close(fd);
        if (n != st.st_size) {
                free(buf);
                return -EIO;
        }
        *ret = buf;
        *ret_size = (size_t)n;
        return 0;
}

void bu_files_warm(bu_path *paths, unsigned n, size_t size)
{
        unsigned char buf[64 * 1024];

        for (unsigned i = 0; i < n; i++) {
                int fd = open(paths[i], O_RDONLY | O_CLOEXEC);

                if (fd < 0)
                        continue;
                for (off_t off = 0; off < (off_t)size; off += (off_t)sizeof(buf))
                        if (pread(fd, buf, sizeof(buf), off) <= 0)
                                break;
                close(fd);
        }
}

/* ---- the small plugin ------------------------------------------------------------ */

/* Compiles the generated plugin with $CC as a plugin author would. CC may
 * hold arguments ("ccache gcc"), so the shell splits it; our arguments go
 * through "$@" unsplit. */
static int plugin_build(const char *srcdir, const char *src, const char *out)
{
        char inc[4096];
        int status;
        pid_t pid;

        snprintf(inc, sizeof(inc), "-I%s/lib", srcdir);
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", "exec ${CC:-cc} \"$@\"", "sh",
                      "-O2", "-fPIC", "-shared", inc, "-o", out, src, (char *)NULL);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ENOEXEC;
}

int bu_plugin_make(const char *source, unsigned char **ret_img, size_t *ret_size)
{
        const char *srcdir = getenv("PH_SRCDIR");
        char src[4096], out[4096];
        int r;

        bu_dir_path(src, sizeof(src), "plugin.c");
        bu_dir_path(out, sizeof(out), "plugin.so");
        r = bu_file_put(src, source, strlen(source), 0644);
        if (r < 0)
                return r;
        r = plugin_build(srcdir ? srcdir : ".", src, out);
        if (r < 0)
                return r;
        return bu_file_get(out, ret_img, ret_size);
}
