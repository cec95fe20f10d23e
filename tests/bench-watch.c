/* Benchmark of the watcher and hot reload, run by `make bench` (never by
 * `make check`): hot-add latency, from rename(2) into a plugin directory to
 * the 'added' event read by a Monitor client; replace latency, from renaming
 * a new version over a loaded plugin to the first Call it answers; and the
 * floor under both, rename(2) to a raw inotify read (IN_MOVED_TO) in this
 * process. Prints percentiles and whether each target is met; the daemon it
 * starts is stopped, and its scratch directory removed, on every exit path. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

#define ADD_WARMUP 50u
#define ADD_ROUNDS 600u                 /* hot-add samples, each a fresh name */
#define REPLACE_WARMUP 10u
#define REPLACE_ROUNDS 150u             /* replace samples, alternating v1 and v2 */
#define FLOOR_WARMUP 100u
#define FLOOR_ROUNDS 2000u
#define EVENT_TIMEOUT_MS 5000
#define READY_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 5000
#define WATCHDOG_SEC 300u
#define PATH_SIZE 512u
#define BUF_SIZE (256u * 1024u)

#define TARGET_ADD_P50_US 200.0
#define TARGET_ADD_P99_US 1000.0
#define TARGET_REPLACE_P99_US 5000.0

/* The fixture's name in its metadata; copies get names of the same length. */
#define FIXTURE_NAME "counted"

static char bench_dir[] = "/tmp/ph-benchw.XXXXXX";
static volatile sig_atomic_t bench_dir_made;
static pid_t bench_owner;
static volatile pid_t child_daemon;
static char daemon_bin[PATH_SIZE], daemon_libdir[PATH_SIZE];
static bool daemon_direct;

static void sleep_ms(unsigned ms)
{
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static __attribute__((noreturn)) void die(const char *what, int r)
{
        fprintf(stderr, "bench-watch: %s: %s\n", what, r ? strerror(-r) : "failed");
        exit(EXIT_FAILURE);
}

/* ---- scratch directory and the daemon's lifetime ---------------------------- */

static int rm_tree(const char *path)
{
        char sub[PATH_SIZE];
        struct stat st;
        int dfd;

        if (lstat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return unlink(path) < 0 ? -errno : 0;
        dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                DIR *dir = fdopendir(dfd);
                struct dirent *de;

                while (dir && (de = readdir(dir))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                        rm_tree(sub);
                }
                if (dir)
                        closedir(dir);
                else
                        close(dfd);
        }
        return rmdir(path) < 0 ? -errno : 0;
}

static void cleanup(void)
{
        pid_t pid = child_daemon;

        if (getpid() != bench_owner)
                return;
        if (pid > 0) {
                child_daemon = 0;
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        if (bench_dir_made) {
                bench_dir_made = 0;
                rm_tree(bench_dir);
        }
}

static void on_signal(int sig)
{
        static const char msg[] = "bench-watch: watchdog: the run took too long\n";

        if (sig == SIGALRM && write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
                /* Nowhere to say it. */
        }
        cleanup();
        signal(sig, SIG_DFL);
        raise(sig);
}

static void dir_make(void)
{
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGSEGV, SIGBUS,
                                    SIGABRT, SIGFPE, SIGILL, SIGALRM };

        bench_owner = getpid();
        if (!mkdtemp(bench_dir))
                die("mkdtemp", -errno);
        bench_dir_made = 1;
        atexit(cleanup);
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
                signal(sigs[i], on_signal);
        alarm(WATCHDOG_SEC);
}

static void join(char *buf, size_t size, const char *dir, const char *name)
{
        if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size)
                die(name, -ENAMETOOLONG);
}

static void dir_path(char *buf, size_t size, const char *name)
{
        join(buf, size, bench_dir, name);
}

static void mkdir_in(const char *name, char *ret_path)
{
        dir_path(ret_path, PATH_SIZE, name);
        if (mkdir(ret_path, 0755) < 0)
                die(ret_path, -errno);
}

/* ---- files -------------------------------------------------------------------- */

static void file_put(const char *path, const void *buf, size_t size)
{
        const char *p = buf;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0)
                die(path, -errno);
        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        die(path, -errno);
                p += n;
                size -= (size_t)n;
        }
        if (close(fd) < 0)
                die(path, -errno);
}

static unsigned char *file_get(const char *path, size_t *ret_size)
{
        struct stat st;
        unsigned char *buf;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat(fd, &st) < 0)
                die(path, -errno);
        buf = malloc((size_t)st.st_size);
        if (!buf)
                die("malloc", -ENOMEM);
        if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
                die(path, -EIO);
        close(fd);
        *ret_size = (size_t)st.st_size;
        return buf;
}

/* Writes img with its metadata name FIXTURE_NAME replaced by name (same
 * length), so that every copy is a plugin of its own. */
static void put_renamed(const unsigned char *img, size_t size, const char *name, const char *path)
{
        static const char key[] = "\"name\":\"" FIXTURE_NAME "\"";
        unsigned char *copy = malloc(size);
        size_t at = SIZE_MAX;

        if (!copy || strlen(name) != strlen(FIXTURE_NAME))
                die("put_renamed", -EINVAL);
        memcpy(copy, img, size);
        for (size_t i = 0; i + sizeof(key) - 1 <= size; i++)
                if (memcmp(copy + i, key, sizeof(key) - 1) == 0) {
                        at = i;
                        break;
                }
        if (at == SIZE_MAX)
                die("no metadata name in the fixture", -EINVAL);
        memcpy(copy + at + strlen("\"name\":\""), name, strlen(name));
        file_put(path, copy, size);
        free(copy);
}

/* ---- the daemon ----------------------------------------------------------------- */

static void daemon_locate(void)
{
        const char *builddir = getenv("PH_BUILDDIR");
        char libs[PATH_SIZE];

        if (!builddir)
                die("PH_BUILDDIR is not set (run me with `make bench`)", -EINVAL);
        snprintf(libs, sizeof(libs), "%s/.libs/plughostd", builddir);
        snprintf(daemon_libdir, sizeof(daemon_libdir), "%s/lib/.libs", builddir);
        daemon_direct = access(libs, X_OK) == 0;
        if (daemon_direct)
                snprintf(daemon_bin, sizeof(daemon_bin), "%s", libs);
        else
                snprintf(daemon_bin, sizeof(daemon_bin), "%s/plughostd", builddir);
        if (access(daemon_bin, X_OK) < 0)
                die(daemon_bin, -errno);
}

static void daemon_start(const char *plugin_dir, const char *sock)
{
        char state[PATH_SIZE], conf[PATH_SIZE], log[PATH_SIZE];
        pid_t pid;

        dir_path(state, sizeof(state), "state");
        dir_path(conf, sizeof(conf), "plughostd.conf");
        dir_path(log, sizeof(log), "plughostd.log");
        file_put(conf, "", 0);
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                die("fork", -errno);
        if (pid == 0) {
                const char *old = getenv("LD_LIBRARY_PATH");
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
                int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                char ld[2 * PATH_SIZE];

                if (in < 0 || out < 0)
                        _exit(127);
                dup2(in, STDIN_FILENO);
                dup2(out, STDOUT_FILENO);
                dup2(out, STDERR_FILENO);
                if (daemon_direct) {
                        snprintf(ld, sizeof(ld), "%s%s%s", daemon_libdir, old && *old ? ":" : "",
                                 old && *old ? old : "");
                        setenv("LD_LIBRARY_PATH", ld, 1);
                }
                execl(daemon_bin, "plughostd", "-c", conf, "-p", plugin_dir, "-s", sock, "-S", state,
                      (char *)NULL);
                _exit(127);
        }
        child_daemon = pid;
}

/* SIGTERM and a clean exit expected; says how it went. */
static void daemon_stop(void)
{
        pid_t pid = child_daemon;
        uint64_t deadline = bu_now_ns() + STOP_TIMEOUT_MS * 1000000ull;
        int status;

        child_daemon = 0;
        kill(pid, SIGTERM);
        while (waitpid(pid, &status, WNOHANG) == 0) {
                if (bu_now_ns() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        printf("plughostd did not stop within %d ms of SIGTERM\n", STOP_TIMEOUT_MS);
                        return;
                }
                sleep_ms(2);
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                printf("plughostd stopped cleanly\n");
        else
                printf("plughostd ended with status 0x%x\n", status);
}

/* ---- a small Varlink client ------------------------------------------------------ */

typedef struct conn {
        int fd;
        char *buf;
        size_t len, consumed;       /* consumed: the message handed out last */
} conn;

static int conn_open(const char *path, conn *c)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >= sizeof(sa.sun_path)) {
                close(fd);
                return -ENAMETOOLONG;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        c->fd = fd;
        c->len = c->consumed = 0;
        c->buf = malloc(BUF_SIZE);
        if (!c->buf)
                die("malloc", -ENOMEM);
        return 0;
}

static void conn_close(conn *c)
{
        close(c->fd);
        free(c->buf);
}

static void conn_send(conn *c, const char *msg)
{
        size_t n = strlen(msg) + 1;
        const char *p = msg;

        while (n > 0) {
                ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        die("send", -errno);
                p += w;
                n -= (size_t)w;
        }
}

/* The next message (NUL-terminated, in c->buf until the next call), and the
 * time its bytes were read. NULL on timeout or when the daemon hung up. */
static const char *conn_next(conn *c, int timeout_ms, uint64_t *ret_at)
{
        uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000ull;
        char *nul;

        if (c->consumed) {
                memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
                c->len -= c->consumed;
                c->consumed = 0;
        }
        *ret_at = bu_now_ns();
        while (!(nul = c->len ? memchr(c->buf, '\0', c->len) : NULL)) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
                int64_t left = (int64_t)(deadline - bu_now_ns()) / 1000000;
                ssize_t n;

                if ((int64_t)(deadline - bu_now_ns()) <= 0 || c->len == BUF_SIZE)
                        return NULL;
                if (poll(&pfd, 1, (int)(left > 0 ? left : 1)) < 0 && errno != EINTR)
                        die("poll", -errno);
                n = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
                *ret_at = bu_now_ns();
                if (n == 0)
                        return NULL;
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        die("read", -errno);
                if (n > 0)
                        c->len += (size_t)n;
        }
        c->consumed = (size_t)(nul - c->buf) + 1;
        return c->buf;
}

static const char *conn_call(conn *c, const char *msg)
{
        uint64_t at;

        conn_send(c, msg);
        return conn_next(c, EVENT_TIMEOUT_MS, &at);
}

/* Waits for the daemon's socket and a good Status. */
static void daemon_wait(const char *sock)
{
        uint64_t deadline = bu_now_ns() + READY_TIMEOUT_MS * 1000000ull;

        for (;;) {
                conn c;
                const char *reply;

                if (conn_open(sock, &c) == 0) {
                        reply = conn_call(&c, "{\"method\":\"io.plughost.Status\"}");
                        if (!reply || strncmp(reply, "{\"parameters\":", 14) != 0)
                                die("Status", -EPROTO);
                        conn_close(&c);
                        return;
                }
                if (waitpid(child_daemon, NULL, WNOHANG) == child_daemon) {
                        child_daemon = 0;
                        die("plughostd exited during start-up", -ECHILD);
                }
                if (bu_now_ns() > deadline)
                        die("plughostd did not start in time", -ETIMEDOUT);
                sleep_ms(1);
        }
}

/* Whether an event message is of kind for name (raw text: JSON_COMPACT). */
static bool event_is(const char *msg, const char *kind, const char *name)
{
        char k[64], n[64];

        snprintf(k, sizeof(k), "\"kind\":\"%s\"", kind);
        snprintf(n, sizeof(n), "\"name\":\"%s\"", name);
        return strstr(msg, k) && strstr(msg, n);
}

/* Reads Monitor events until kind for name; returns when its bytes came. */
static uint64_t wait_event(conn *m, const char *kind, const char *name)
{
        for (;;) {
                uint64_t at;
                const char *msg = conn_next(m, EVENT_TIMEOUT_MS, &at);

                if (!msg) {
                        fprintf(stderr, "bench-watch: no '%s' event for %s\n", kind, name);
                        exit(EXIT_FAILURE);
                }
                if (event_is(msg, kind, name))
                        return at;
        }
}

/* ---- figures -------------------------------------------------------------------- */

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, unsigned pct)
{
        size_t rank = (n * pct + 99) / 100;

        return (double)v[rank ? rank - 1 : 0] / 1000.0;
}

static void row(const char *label, uint64_t *v, size_t n, double *ret_p50, double *ret_p99)
{
        qsort(v, n, sizeof(*v), bu_u64_cmp);
        *ret_p50 = pct_us(v, n, 50);
        *ret_p99 = pct_us(v, n, 99);
        printf("  %-34s n %4zu  min %8.1f  p50 %8.1f  p90 %8.1f  p99 %8.1f  max %8.1f us\n", label,
               n, (double)v[0] / 1000.0, *ret_p50, pct_us(v, n, 90), *ret_p99,
               (double)v[n - 1] / 1000.0);
}

/* ---- the runs --------------------------------------------------------------------- */

static char plugin_dir[PATH_SIZE], stage_dir[PATH_SIZE], floor_dir[PATH_SIZE], sock_path[PATH_SIZE];

/* rename(2) into a directory nobody but us watches, to our own inotify
 * read: what the kernel costs, with nothing on top. */
static void bench_floor(void)
{
        uint64_t *v = calloc(FLOOR_ROUNDS, sizeof(*v));
        char from[PATH_SIZE], to[PATH_SIZE];
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        int fd = inotify_init1(IN_CLOEXEC);
        double p50, p99;

        if (!v || fd < 0 || inotify_add_watch(fd, floor_dir, IN_MOVED_TO) < 0)
                die("inotify", -errno);
        join(from, sizeof(from), stage_dir, "floor.so");
        join(to, sizeof(to), floor_dir, "floor.so");
        file_put(from, "x", 1);
        for (unsigned i = 0; i < FLOOR_WARMUP + FLOOR_ROUNDS; i++) {
                uint64_t t0 = bu_now_ns();

                if (rename(from, to) < 0)
                        die("rename", -errno);
                if (read(fd, buf, sizeof(buf)) <= 0)
                        die("inotify read", -errno);
                if (i >= FLOOR_WARMUP)
                        v[i - FLOOR_WARMUP] = bu_now_ns() - t0;
                if (rename(to, from) < 0)
                        die("rename", -errno);
        }
        close(fd);
        row("rename -> inotify read (floor)", v, FLOOR_ROUNDS, &p50, &p99);
        free(v);
}

/* rename(2) of a new plugin into the watched directory, to the 'added'
 * event on a Monitor stream; each name is fresh, and leaves (renamed back
 * out) before the next. */
static void bench_hot_add(const unsigned char *img, size_t size)
{
        const unsigned n = ADD_WARMUP + ADD_ROUNDS;
        uint64_t *v = calloc(ADD_ROUNDS, sizeof(*v));
        double p50, p99;
        conn m;
        uint64_t at;
        const char *first;

        if (!v || conn_open(sock_path, &m) < 0)
                die("monitor", -errno);
        conn_send(&m, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
        first = conn_next(&m, EVENT_TIMEOUT_MS, &at);
        if (!first || strstr(first, "\"error\""))
                die("Monitor", -EPROTO);
        for (unsigned i = 0; i < n; i++) {
                char name[16], file[32], from[PATH_SIZE];

                snprintf(name, sizeof(name), "a%06u", i);
                snprintf(file, sizeof(file), "%s.so", name);
                join(from, sizeof(from), stage_dir, file);
                put_renamed(img, size, name, from);
        }
        for (unsigned i = 0; i < n; i++) {
                char name[16], file[32], from[PATH_SIZE], to[PATH_SIZE];
                uint64_t t0, t1;

                snprintf(name, sizeof(name), "a%06u", i);
                snprintf(file, sizeof(file), "%s.so", name);
                join(from, sizeof(from), stage_dir, file);
                join(to, sizeof(to), plugin_dir, file);
                t0 = bu_now_ns();
                if (rename(from, to) < 0)
                        die("rename", -errno);
                t1 = wait_event(&m, "added", name);
                if (i >= ADD_WARMUP)
                        v[i - ADD_WARMUP] = t1 - t0;
                if (rename(to, from) < 0)
                        die("rename", -errno);
                wait_event(&m, "removed", name);
        }
        conn_close(&m);
        row("rename -> 'added' event", v, ADD_ROUNDS, &p50, &p99);
        printf("    target p50 <= %.0f us: %s; p99 <= %.0f us: %s\n", TARGET_ADD_P50_US,
               bu_met(p50 <= TARGET_ADD_P50_US), TARGET_ADD_P99_US, bu_met(p99 <= TARGET_ADD_P99_US));
        free(v);
}

/* A loaded plugin; a new version renamed over it; Calls in a loop on one
 * connection until one is answered by the new version. Versions alternate
 * (v2, v1, v2, ...), each a fresh file. */
static void bench_replace(const unsigned char *v1, size_t v1_size, const unsigned char *v2,
                          size_t v2_size)
{
        static const char call[] = "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                   "{\"name\":\"" FIXTURE_NAME "\",\"method\":\"Version\"}}";
        uint64_t *v = calloc(REPLACE_ROUNDS, sizeof(*v));
        char next[PATH_SIZE], live[PATH_SIZE];
        unsigned long calls = 0, failed = 0;
        const char *reply;
        double p50, p99;
        conn c;

        join(next, sizeof(next), plugin_dir, ".next.so");
        join(live, sizeof(live), plugin_dir, FIXTURE_NAME ".so");
        if (!v || conn_open(sock_path, &c) < 0)
                die("connect", -errno);
        file_put(next, v1, v1_size);
        if (rename(next, live) < 0)
                die("rename", -errno);
        /* Until the daemon has it, Load says NoSuchPlugin. */
        for (uint64_t deadline = bu_now_ns() + EVENT_TIMEOUT_MS * 1000000ull;;) {
                reply = conn_call(&c, "{\"method\":\"io.plughost.Load\",\"parameters\":"
                                      "{\"name\":\"" FIXTURE_NAME "\"}}");
                if (reply && strstr(reply, "\"state\":\"loaded\""))
                        break;
                if (bu_now_ns() > deadline)
                        die("Load " FIXTURE_NAME, -ETIMEDOUT);
                sleep_ms(1);
        }
        for (unsigned i = 0; i < REPLACE_WARMUP + REPLACE_ROUNDS; i++) {
                bool to_v2 = i % 2 == 0;
                const char *want = to_v2 ? "\"version\":\"2.0.0\"" : "\"version\":\"1.0.0\"";
                uint64_t t0, deadline;

                file_put(next, to_v2 ? v2 : v1, to_v2 ? v2_size : v1_size);
                t0 = bu_now_ns();
                if (rename(next, live) < 0)
                        die("rename", -errno);
                for (deadline = t0 + EVENT_TIMEOUT_MS * 1000000ull;;) {
                        reply = conn_call(&c, call);
                        calls++;
                        if (!reply)
                                die("Call: no answer", -ETIMEDOUT);
                        if (strstr(reply, "\"error\"")) {
                                failed++;
                                if (failed <= 3)
                                        fprintf(stderr, "bench-watch: call failed: %.300s\n", reply);
                        } else if (strstr(reply, want)) {
                                break;
                        }
                        if (bu_now_ns() > deadline)
                                die("the new version never answered", -ETIMEDOUT);
                }
                if (i >= REPLACE_WARMUP)
                        v[i - REPLACE_WARMUP] = bu_now_ns() - t0;
        }
        conn_close(&c);
        row("rename over -> first new answer", v, REPLACE_ROUNDS, &p50, &p99);
        printf("    %lu calls, %lu failed\n", calls, failed);
        printf("    target p99 <= %.0f us: %s%s\n", TARGET_REPLACE_P99_US,
               bu_met(p99 <= TARGET_REPLACE_P99_US && failed == 0),
               failed ? " (calls failed)" : "");
        free(v);
}

int main(void)
{
        const char *fixtures = getenv("PH_FIXTURES");
        char path[PATH_SIZE];
        unsigned char *v1, *v2;
        size_t v1_size, v2_size;

        setvbuf(stdout, NULL, _IOLBF, 0);
        bu_print_header("bench-watch", sysconf(_SC_NPROCESSORS_ONLN));
        if (!fixtures)
                die("PH_FIXTURES is not set (run me with `make bench`)", -EINVAL);
        daemon_locate();
        snprintf(path, sizeof(path), "%s/counted-v1.so", fixtures);
        v1 = file_get(path, &v1_size);
        snprintf(path, sizeof(path), "%s/counted-v2.so", fixtures);
        v2 = file_get(path, &v2_size);
        dir_make();
        printf("scratch %s (plughostd at its default log level, info)\n", bench_dir);
        mkdir_in("plugins", plugin_dir);
        mkdir_in("stage", stage_dir);
        mkdir_in("floor", floor_dir);
        dir_path(sock_path, sizeof(sock_path), "sock");

        printf("watch latency, rename(2) to what a client sees:\n");
        bench_floor();
        daemon_start(plugin_dir, sock_path);
        daemon_wait(sock_path);
        bench_hot_add(v1, v1_size);
        bench_replace(v1, v1_size, v2, v2_size);
        daemon_stop();
        free(v1);
        free(v2);
        cleanup();
        return 0;
}
