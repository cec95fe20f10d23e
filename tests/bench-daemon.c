/* Benchmark of plughostd, run by `make bench` (never by `make check`):
 * requests/s of Info and Status over 50 connections with one and with 16
 * requests in flight, set against redis-server's PING and against
 * bench-echo (a bare libuv+jansson Varlink server) driven by the same
 * client; round trips on one connection; start-up time, RSS and Status
 * round trips with 10,000 and with 100,000 plugins, and List of 100,000
 * streamed, paged and whole; Call of a loaded plugin run in-process
 * against Info and against the same plugin isolated in a plughost-worker,
 * on one daemon. The machine is shared, so every compared figure is the
 * median of REPEATS runs made side by side, and a ratio the median of the
 * ratios of those pairs. Prints figures, whether each target is met, and
 * issue 15's targets together at the end; the servers it starts are
 * stopped, and its scratch directory removed, on every exit path.
 * PH_BENCH_ONLY=call runs section 6 alone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

#define N_CONNS 50u
#define DEPTH_PIPELINED 16u
#define DEPTH_MAX DEPTH_PIPELINED
#define WARMUP_MS 300u                  /* before each measured run */
#define RUN_MS 2000u                    /* each measured run, of REPEATS */
#define REPEATS 3u                      /* runs of each compared figure; odd: a median */
#define DRAIN_MS 2000u                  /* answers still owed after a run */
#define RTT_REQUESTS 20000u
#define RTT_WARMUP 1000u
#define REPLY_TIMEOUT_MS 10000
#define READY_TIMEOUT_MS 10000u         /* a server with one plugin, or redis */
#define N_PLUGINS_SMALL 10000u
#define N_PLUGINS_LARGE 100000u         /* p00000..p99999: names of one length */
#define STARTUP_RUNS 3u
#define STARTUP_TIMEOUT_MS 60000u
#define STARTUP_POLL_US 1000u
#define NOTIFY_WAIT_MS 1000u            /* for READY=1 once Status counts them all */
#define STATUS_RTT_REQUESTS 5000u       /* Status round trips with all plugins registered */
#define STOP_TIMEOUT_MS 5000u
#define WATCHDOG_SEC 600u               /* the whole run; a hang ends in cleanup */
#define PATH_SIZE 256u
#define READ_BUF (256u * 1024u)
#define LOG_SHOWN 3u                    /* warnings quoted from a server's log */

#define REDIS_SERVER "/usr/bin/redis-server"

#define TARGET_RATIO_ONE 0.5            /* plughostd / redis PING, one in flight */
#define TARGET_P99_US 100.0
#define TARGET_STARTUP_MS 1000.0
#define TARGET_RSS_KIB (40l * 1024l)
#define TARGET_CALL_RATIO 0.5           /* isolated / in-process Call req/s */
#define TARGET_CALL_P50_DELTA_US 20.0   /* isolated p50 - in-process p50 */
/* Issue 15. */
#define TARGET_ECHO_RATIO 1.0           /* plughostd Info, Status / bench-echo req/s */
#define TARGET_CALL_INFO_RATIO 0.8      /* in-process Call / Info req/s */
#define TARGET_P50_PING_RATIO 1.2       /* Info p50 / redis PING p50, at most */
#define TARGET_STARTUP_LARGE_MS 2000.0  /* with 100,000 plugins */
#define TARGET_RSS_LARGE_KIB (150l * 1024l)
#define TARGET_STATUS_SCALE 1.2         /* Status p50 with 100,000 / with 10,000, at most */

/* List of 100,000 plugins: pages of LIST_LIMIT; every message may be up
 * to 1 MiB, and what the daemon is refused for is read whole too. */
#define LIST_LIMIT 1000u
#define LIST_FRAME_MAX (8u * 1024u * 1024u)
#define LIST_TIMEOUT_MS 30000u          /* each way of listing, in all */
/* Query of the interface all of them provide: streamed, and the best one. */
#define QUERY_STREAM                                                                            \
        "{\"method\":\"io.plughost.Query\",\"more\":true,\"parameters\":"                        \
        "{\"interface\":\"org.example.Bench\"}}"
#define QUERY_BEST                                                                              \
        "{\"method\":\"io.plughost.Query\",\"parameters\":"                                    \
        "{\"interface\":\"org.example.Bench\",\"limit\":1}}"

/* A request, and how to tell its answers apart and good from bad. */
struct proto {
        const char *label;
        const char *request;            /* the whole frame, terminator included */
        size_t len;
        char terminator;                /* ends every reply */
        const char *ok_prefix;          /* a good reply starts with it */
};

static const char info_request[] = "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"hello\"}}";
static const char status_request[] = "{\"method\":\"io.plughost.Status\"}";
static const char ping_request[] = "PING\r\n";

/* sizeof keeps the string's NUL: Varlink's frame delimiter. */
static const struct proto proto_info = {
        "plughostd Info {\"name\": \"hello\"}", info_request, sizeof(info_request), '\0',
        "{\"parameters\":",
};
static const struct proto proto_status = {
        "plughostd Status", status_request, sizeof(status_request), '\0', "{\"parameters\":",
};
static const struct proto proto_ping = {
        "redis-server PING", ping_request, sizeof(ping_request) - 1, '\n', "+PONG",
};
/* The bytes plughostd gets for Info; bench-echo answers {"parameters":{"name":"hello"}}. */
static const struct proto proto_echo = {
        "bench-echo, sent the Info request", info_request, sizeof(info_request), '\0',
        "{\"parameters\":",
};

/* Section 4: the same Echo plugin under two names, one of them isolated
 * by the daemon's configuration. Echo answers with its parameters. */
#define CALL_IN "echo"
#define CALL_ISO "echox"
#define CALL_REQUEST(name)                                                              \
        "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"" name "\","         \
        "\"method\":\"Echo\",\"parameters\":{\"n\":1}}}"
#define CALL_REPLY "{\"parameters\":{\"result\":{\"n\":1}}}"
#define LOAD_REQUEST(name) "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"" name "\"}}"
#define INFO_REQUEST(name) "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"" name "\"}}"

static const char call_in_request[] = CALL_REQUEST(CALL_IN);
static const char call_iso_request[] = CALL_REQUEST(CALL_ISO);
static const char load_in_request[] = LOAD_REQUEST(CALL_IN);
static const char load_iso_request[] = LOAD_REQUEST(CALL_ISO);
static const char info_in_request[] = INFO_REQUEST(CALL_IN);
static const char info_iso_request[] = INFO_REQUEST(CALL_ISO);

/* The whole good reply is the prefix: every byte of each answer is checked. */
static const struct proto proto_call[2] = {
        { "plughostd Call " CALL_IN ".Echo (in-process)", call_in_request, sizeof(call_in_request),
          '\0', CALL_REPLY },
        { "plughostd Call " CALL_ISO ".Echo (isolated)", call_iso_request, sizeof(call_iso_request),
          '\0', CALL_REPLY },
};
static const struct proto proto_call_load[2] = {
        { "plughostd Load " CALL_IN, load_in_request, sizeof(load_in_request), '\0',
          "{\"parameters\":" },
        { "plughostd Load " CALL_ISO, load_iso_request, sizeof(load_iso_request), '\0',
          "{\"parameters\":" },
};
static const struct proto proto_call_info[2] = {
        { "plughostd Info " CALL_IN, info_in_request, sizeof(info_in_request), '\0',
          "{\"parameters\":" },
        { "plughostd Info " CALL_ISO, info_iso_request, sizeof(info_iso_request), '\0',
          "{\"parameters\":" },
};
static const char *const call_names[2] = { CALL_IN, CALL_ISO };
static const char *const call_modes[2] = { "inprocess", "process" };

/* Its source is these two around the plugin's name. */
static const char call_source_head[] =
        "/* Generated by bench-daemon: Echo answers with its parameters. */\n"
        "#include <errno.h>\n"
        "#include <plughost/plugin.h>\n"
        "#include <stdlib.h>\n"
        "#include <string.h>\n"
        "\n"
        "static int echo_call(void *self, const char *method, const char *params_json,\n"
        "                     char **ret_result_json)\n"
        "{\n"
        "        (void)self;\n"
        "        if (strcmp(method, \"Echo\") != 0) {\n"
        "                plughost_error(\"unknown method\");\n"
        "                return -EOPNOTSUPP;\n"
        "        }\n"
        "        *ret_result_json = strdup(params_json ? params_json : \"{}\");\n"
        "        return *ret_result_json ? 0 : -ENOMEM;\n"
        "}\n"
        "\n"
        "PLUGHOST_PLUGIN(\"{\\\"name\\\":\\\"";
static const char call_source_tail[] =
        "\\\",\\\"version\\\":\\\"1.0.0\\\","
        "\\\"interfaces\\\":[\\\"org.example.Echo\\\"],"
        "\\\"description\\\":\\\"Echo for bench-daemon.\\\"}\",\n"
        "                .call = echo_call);\n";

static const char plugin_source[] =
        "/* Generated by bench-daemon: a small plugin built with the SDK. */\n"
        "#include <plughost/plugin.h>\n"
        "\n"
        "static int bench_call(void *self, const char *method, const char *params_json,\n"
        "                      char **ret_result_json)\n"
        "{\n"
        "        (void)self;\n"
        "        (void)method;\n"
        "        (void)params_json;\n"
        "        *ret_result_json = 0;\n"
        "        return 0;\n"
        "}\n"
        "\n"
        "PLUGHOST_PLUGIN(\"{\\\"name\\\":\\\"p00000\\\",\\\"version\\\":\\\"1.0.0\\\","
        "\\\"interfaces\\\":[\\\"org.example.Bench\\\"],"
        "\\\"description\\\":\\\"A plugin for bench-daemon.\\\"}\",\n"
        "                .call = bench_call);\n";
/* Each copy gets its own name of the same length, patched into the note. */
#define PLUGIN_NAME_KEY "\"name\":\""
#define PLUGIN_NAME_0 "p00000"
#define PLUGIN_NAME_FMT "p%05u"

static char bench_dir[] = "/tmp/ph-benchd.XXXXXX";
/* Servers we started, stopped on every exit path. */
static volatile pid_t child_daemon, child_redis, child_echo;

/* Short enough for any file under it that we name to fit in PATH_SIZE. */
static char builddir[PATH_SIZE - 64];
static char daemon_bin[PATH_SIZE], daemon_libdir[PATH_SIZE];
static bool daemon_direct;              /* the real binary, not libtool's wrapper */

static void sleep_us(unsigned us)
{
        struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000l };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static __attribute__((noreturn)) void die(const char *what, int r)
{
        fflush(stdout);
        fprintf(stderr, "bench-daemon: %s: %s\n", what, strerror(-r));
        exit(1);
}

/* ---- cleanup: servers and the scratch directory ------------------------------ */

/* Only kill and waitpid: safe in a signal handler. */
static void children_kill(void)
{
        pid_t pids[3] = { child_daemon, child_redis, child_echo };

        if (!bu_is_owner())
                return;
        child_daemon = child_redis = child_echo = 0;
        for (unsigned i = 0; i < 3; i++)
                if (pids[i] > 0) {
                        kill(pids[i], SIGKILL);
                        waitpid(pids[i], NULL, 0);
                }
}

static void cleanup(void)
{
        children_kill();
        bu_dir_remove();
}

/* ---- files ------------------------------------------------------------------- */

static int file_copy(const char *from, const char *to)
{
        unsigned char *img;
        size_t size;
        int r = bu_file_get(from, &img, &size);

        if (r < 0)
                return r;
        r = bu_file_put(to, img, size, 0755);
        free(img);
        return r;
}

/* ---- servers: start, wait, stop --------------------------------------------------- */

/* The build tree: $PH_BUILDDIR, else the one this program was built in
 * (it is BUILDDIR/tests/bench-daemon, or under tests/.libs), made absolute:
 * the daemon is told where plughost-worker is by an absolute path. */
static void builddir_find(void)
{
        const char *env = getenv("PH_BUILDDIR");
        char self[PATH_MAX], *slash;
        ssize_t n;

        if (env && *env) {
                if (!realpath(env, self))
                        die(env, -errno);
        } else {
                n = readlink("/proc/self/exe", self, sizeof(self) - 1);
                if (n < 0)
                        die("PH_BUILDDIR is not set, and /proc/self/exe", -errno);
                self[n] = '\0';
                for (unsigned up = 0; up < 2; up++)
                        if ((slash = strrchr(self, '/')))
                                *slash = '\0';
                slash = strrchr(self, '/');
                if (slash && strcmp(slash, "/tests") == 0) /* it was tests/.libs/ */
                        *slash = '\0';
        }
        if (strlen(self) >= sizeof(builddir))
                die(self, -ENAMETOOLONG);
        snprintf(builddir, sizeof(builddir), "%s", self);
}

/* Finds the daemon: the real binary under .libs with the uninstalled
 * library beside it, so that the pid we watch is plughostd itself and not
 * libtool's wrapper script (nor a shell). */
static void daemon_locate(void)
{
        char libs[PATH_SIZE];

        builddir_find();
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

/* In a forked child: stdin from /dev/null, stdout and stderr to log. */
static void child_stdio(const char *log)
{
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

        if (in < 0 || out < 0)
                _exit(127);
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
}

/* Starts plughostd on plugin_dir with its socket, state directory,
 * configuration file (conf, or empty if NULL: the machine's does not count)
 * and log in the scratch directory, named after tag, and $NOTIFY_SOCKET set
 * to notify (or unset: ours, if we run under systemd, is not the daemon's).
 * Returns its pid or a negative errno. */
static pid_t daemon_start(const char *tag, const char *plugin_dir, const char *conf_text,
                          const char *notify)
{
        char sock[PATH_SIZE], state[PATH_SIZE], conf[PATH_SIZE], log[PATH_SIZE], name[64];
        pid_t pid;
        int r;

        snprintf(name, sizeof(name), "%s.sock", tag);
        bu_dir_path(sock, sizeof(sock), name);
        snprintf(name, sizeof(name), "%s.state", tag);
        bu_dir_path(state, sizeof(state), name);
        snprintf(name, sizeof(name), "%s.log", tag);
        bu_dir_path(log, sizeof(log), name);
        snprintf(name, sizeof(name), "%s.conf", tag);
        bu_dir_path(conf, sizeof(conf), name);
        if (!conf_text)
                conf_text = "";
        r = bu_file_put(conf, conf_text, strlen(conf_text), 0644);
        if (r < 0)
                return r;
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                const char *old = getenv("LD_LIBRARY_PATH");
                char ld[2 * PATH_SIZE];

                child_stdio(log);
                if (notify)
                        setenv("NOTIFY_SOCKET", notify, 1);
                else
                        unsetenv("NOTIFY_SOCKET");
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
        return pid;
}

static pid_t redis_start(const char *sock)
{
        char log[PATH_SIZE];
        pid_t pid;

        bu_dir_path(log, sizeof(log), "redis.log");
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                child_stdio(log);
                execl(REDIS_SERVER, "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                      "--appendonly", "no", "--daemonize", "no", (char *)NULL);
                _exit(127);
        }
        child_redis = pid;
        return pid;
}

/* bench-echo links nothing of ours: BUILDDIR/tests/bench-echo is the
 * program itself, never a libtool wrapper. */
static pid_t echo_start(const char *bin, const char *sock)
{
        char log[PATH_SIZE];
        pid_t pid;

        bu_dir_path(log, sizeof(log), "echo.log");
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                child_stdio(log);
                execl(bin, "bench-echo", sock, (char *)NULL);
                _exit(127);
        }
        child_echo = pid;
        return pid;
}

/* How a server ended, for the report. */
static void status_describe(int status, char *buf, size_t size)
{
        if (WIFEXITED(status))
                snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
        else
                snprintf(buf, size, "status 0x%x", status);
}

/* True (and a description) if pid has already ended on its own. */
static bool child_ended(pid_t pid, char *buf, size_t size)
{
        int status;

        if (waitpid(pid, &status, WNOHANG) != pid)
                return false;
        status_describe(status, buf, size);
        return true;
}

/* SIGTERM, then SIGKILL after STOP_TIMEOUT_MS. Describes how it ended. */
static void child_stop(volatile pid_t *slot, char *buf, size_t size)
{
        pid_t pid = *slot;
        uint64_t deadline = bu_now_ns() + STOP_TIMEOUT_MS * 1000000ull;
        int status;

        *slot = 0;
        if (pid <= 0) {
                snprintf(buf, size, "not running");
                return;
        }
        kill(pid, SIGTERM);
        while (waitpid(pid, &status, WNOHANG) == 0) {
                if (bu_now_ns() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        snprintf(buf, size, "did not stop within %u ms of SIGTERM; killed",
                                 STOP_TIMEOUT_MS);
                        return;
                }
                sleep_us(2000);
        }
        status_describe(status, buf, size);
}

/* Prints how many warnings and errors a server logged, and the first few. */
static void log_summary(const char *label, const char *log, const char *const *bad_marks)
{
        char line[1024], shown[LOG_SHOWN][160];
        unsigned lines = 0, bad = 0;
        FILE *f = fopen(log, "re");

        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                lines++;
                for (const char *const *m = bad_marks; *m; m++)
                        if (strstr(line, *m)) {
                                if (bad < LOG_SHOWN) {
                                        line[strcspn(line, "\n")] = '\0';
                                        snprintf(shown[bad], sizeof(shown[bad]), "%.150s", line);
                                }
                                bad++;
                                break;
                        }
        }
        fclose(f);
        printf("   %s log: %u lines, %u warnings or errors\n", label, lines, bad);
        for (unsigned i = 0; i < bad && i < LOG_SHOWN; i++)
                printf("      %s\n", shown[i]);
}

static const char *const daemon_bad_marks[] = { ": warning: ", ": err: ", NULL };

/* ---- one request, one answer ---------------------------------------------------------- */

static int sock_connect(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* Connect blocking (the backlog is never the question here), then
         * every read and write is non-blocking. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static int fd_wait(int fd, short events, uint64_t deadline)
{
        struct pollfd pfd = { .fd = fd, .events = events };
        uint64_t now = bu_now_ns();
        int n;

        if (now >= deadline)
                return -ETIMEDOUT;
        n = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        return n == 0 ? -ETIMEDOUT : 0;
}

/* Sends p's request on non-blocking fd and reads its answer into buf
 * (NUL-terminated, without the frame's terminator). Returns the answer's
 * length, -EBADMSG if it does not start as a good one should, -EPIPE on
 * EOF, -ETIMEDOUT or another negative errno. Only one request in flight:
 * what follows the terminator would be lost. */
static long exchange(int fd, const struct proto *p, char *buf, size_t size, int timeout_ms)
{
        uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000ull;
        size_t sent = 0, got = 0;
        char *end = NULL;
        int r;

        while (sent < p->len) {
                ssize_t n = send(fd, p->request + sent, p->len - sent, MSG_NOSIGNAL);

                if (n >= 0) {
                        sent += (size_t)n;
                        continue;
                }
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
                if ((r = fd_wait(fd, POLLOUT, deadline)) < 0)
                        return r;
        }
        while (!end) {
                ssize_t n;

                if ((r = fd_wait(fd, POLLIN, deadline)) < 0)
                        return r;
                n = read(fd, buf + got, size - 1 - got);
                if (n == 0)
                        return -EPIPE;
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        return -errno;
                }
                end = memchr(buf + got, p->terminator, (size_t)n);
                got += (size_t)n;
                if (!end && got == size - 1)
                        return -EMSGSIZE;
        }
        *end = '\0';
        if (strncmp(buf, p->ok_prefix, strlen(p->ok_prefix)) != 0)
                return -EBADMSG;
        return end - buf;
}

/* Waits until the server at path answers p well: plughostd listens
 * before its first scan is applied, and says NoSuchPlugin until then.
 * Returns a connected fd. */
static int server_wait(const char *path, const struct proto *p, pid_t pid, const char *label)
{
        static char buf[READ_BUF];
        uint64_t deadline = bu_now_ns() + READY_TIMEOUT_MS * 1000000ull;
        char how[128];
        long n = -ECONNREFUSED;
        int fd;

        for (;;) {
                if (child_ended(pid, how, sizeof(how))) {
                        fprintf(stderr, "bench-daemon: %s ended before it answered: %s\n", label, how);
                        exit(1);
                }
                fd = sock_connect(path);
                if (fd >= 0) {
                        n = exchange(fd, p, buf, sizeof(buf), REPLY_TIMEOUT_MS);
                        if (n >= 0)
                                return fd;
                        close(fd);
                }
                if (bu_now_ns() > deadline) {
                        if (n == -EBADMSG)
                                fprintf(stderr, "bench-daemon: %s still answers: %.200s\n", label, buf);
                        die(label, -ETIMEDOUT);
                }
                sleep_us(2000);
        }
}

/* ---- the load client: many connections, one epoll, one process -------------------------- */

struct conn {
        int fd;
        unsigned in_flight;             /* requests queued or sent, not yet answered */
        size_t out_off;                 /* where the next byte is in the request */
        size_t out_pending;             /* bytes queued, not yet written */
        size_t reply_pos;               /* bytes seen of the answer being read */
        bool reply_bad;
        bool want_out;                  /* EPOLLOUT armed */
        bool dead;
};

struct load {
        const struct proto *p;
        char *pattern;                  /* DEPTH_MAX + 1 requests back to back */
        int ep;
        struct conn conns[N_CONNS];
        unsigned n_conns;
        uint64_t replies, errors;       /* all answers, and the bad ones */
        unsigned conn_failures;
        int first_failure;              /* its errno, or EPIPE for EOF */
};

struct load_result {
        double rps;
        uint64_t counted;               /* answers in the measured window */
        uint64_t replies, errors, lost;
        unsigned conn_failures;
        int first_failure;
};

static void conn_fail(struct load *l, struct conn *c, int err)
{
        if (c->dead)
                return;
        c->dead = true;
        if (l->conn_failures++ == 0)
                l->first_failure = err;
        epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
}

static void conn_arm(struct load *l, struct conn *c, bool out)
{
        struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c };

        if (c->want_out == out)
                return;
        c->want_out = out;
        epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_queue(struct load *l, struct conn *c, unsigned n)
{
        c->out_pending += n * l->p->len;
        c->in_flight += n;
}

/* One write for everything queued: the pattern holds one request more than
 * can be in flight, so the queued bytes are always contiguous in it. */
static void conn_flush(struct load *l, struct conn *c)
{
        ssize_t n;

        if (c->dead)
                return;
        if (c->out_pending > 0) {
                n = send(c->fd, l->pattern + c->out_off, c->out_pending, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        conn_fail(l, c, errno);
                        return;
                }
                if (n > 0) {
                        c->out_off = (c->out_off + (size_t)n) % l->p->len;
                        c->out_pending -= (size_t)n;
                }
        }
        conn_arm(l, c, c->out_pending > 0);
}

/* Counts the complete answers in buf[0..n), checking each one's start. */
static unsigned conn_parse(struct load *l, struct conn *c, const char *buf, size_t n)
{
        const char *p = buf, *end = buf + n, *t;
        size_t prefix = strlen(l->p->ok_prefix);
        unsigned done = 0;

        while (p < end) {
                while (c->reply_pos < prefix && p < end && *p != l->p->terminator) {
                        if (*p != l->p->ok_prefix[c->reply_pos])
                                c->reply_bad = true;
                        c->reply_pos++;
                        p++;
                }
                if (p == end)
                        break;
                t = memchr(p, l->p->terminator, (size_t)(end - p));
                if (!t) {
                        c->reply_pos += (size_t)(end - p);
                        break;
                }
                if (c->reply_bad || c->reply_pos < prefix)
                        l->errors++;
                done++;
                c->reply_pos = 0;
                c->reply_bad = false;
                p = t + 1;
        }
        return done;
}

/* Reads what is there; returns the answers completed. */
static unsigned conn_read(struct load *l, struct conn *c)
{
        static char buf[READ_BUF];
        unsigned done = 0;
        ssize_t n;

        for (;;) {
                n = read(c->fd, buf, sizeof(buf));
                if (n > 0) {
                        done += conn_parse(l, c, buf, (size_t)n);
                        if ((size_t)n < sizeof(buf))
                                break;
                        continue;
                }
                if (n == 0)
                        conn_fail(l, c, EPIPE);
                else if (errno != EAGAIN && errno != EINTR)
                        conn_fail(l, c, errno);
                break;
        }
        return done;
}

static int load_open(struct load *l, const struct proto *p, const char *path)
{
        memset(l, 0, sizeof(*l));
        l->p = p;
        l->ep = -1;
        l->pattern = malloc((DEPTH_MAX + 1) * p->len);
        if (!l->pattern)
                return -ENOMEM;
        for (unsigned i = 0; i <= DEPTH_MAX; i++)
                memcpy(l->pattern + i * p->len, p->request, p->len);
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        if (l->ep < 0)
                return -errno;
        for (unsigned i = 0; i < N_CONNS; i++) {
                struct conn *c = &l->conns[i];
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

                c->fd = sock_connect(path);
                if (c->fd < 0)
                        return c->fd;
                l->n_conns++;
                if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                        return -errno;
        }
        return 0;
}

static void load_close(struct load *l)
{
        for (unsigned i = 0; i < l->n_conns; i++)
                close(l->conns[i].fd);
        if (l->ep >= 0)
                close(l->ep);
        free(l->pattern);
}

/* Closed loop: every answer sends the next request on its connection,
 * keeping depth in flight on each, for WARMUP_MS and then RUN_MS; answers
 * in the second window are counted. Then what is still owed is awaited
 * for up to DRAIN_MS; what does not come is lost. */
static void load_loop(struct load *l, unsigned depth, struct load_result *res)
{
        struct epoll_event evs[64];
        uint64_t t0 = bu_now_ns();
        uint64_t t_count = t0 + WARMUP_MS * 1000000ull;
        uint64_t t_stop = t_count + RUN_MS * 1000000ull;
        uint64_t t_give_up = t_stop + DRAIN_MS * 1000000ull;
        bool stopping = false;

        for (unsigned i = 0; i < l->n_conns; i++) {
                conn_queue(l, &l->conns[i], depth);
                conn_flush(l, &l->conns[i]);
        }
        for (;;) {
                uint64_t now = bu_now_ns(), next;
                unsigned owed = 0;
                int n;

                if (!stopping && now >= t_stop)
                        stopping = true;
                for (unsigned i = 0; stopping && i < l->n_conns; i++)
                        if (!l->conns[i].dead)
                                owed += l->conns[i].in_flight;
                if (stopping && (owed == 0 || now >= t_give_up))
                        break;
                next = now < t_count ? t_count : now < t_stop ? t_stop : t_give_up;
                n = epoll_wait(l->ep, evs, 64, (int)((next - now) / 1000000u) + 1);
                if (n < 0 && errno != EINTR)
                        die("epoll_wait", -errno);
                now = bu_now_ns();
                for (int i = 0; i < n; i++) {
                        struct conn *c = evs[i].data.ptr;
                        unsigned done = 0;

                        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                                done = conn_read(l, c);
                        if (done > c->in_flight) {
                                /* Answers nobody asked for are bad ones. */
                                l->errors += done - c->in_flight;
                                done = c->in_flight;
                        }
                        c->in_flight -= done;
                        l->replies += done;
                        if (now >= t_count && now < t_stop)
                                res->counted += done;
                        if (!stopping && now < t_stop && !c->dead)
                                conn_queue(l, c, done);
                        conn_flush(l, c);
                }
        }
        for (unsigned i = 0; i < l->n_conns; i++)
                res->lost += l->conns[i].in_flight;
        res->replies = l->replies;
        res->errors = l->errors;
        res->conn_failures = l->conn_failures;
        res->first_failure = l->first_failure;
        res->rps = (double)res->counted / (RUN_MS / 1000.0);
}

static void load_run(const struct proto *p, const char *path, unsigned depth, struct load_result *res)
{
        struct load *l = malloc(sizeof(*l));
        int r;

        memset(res, 0, sizeof(*res));
        if (!l)
                die("malloc", -ENOMEM);
        r = load_open(l, p, path);
        if (r < 0)
                die("connecting the load client", r);
        load_loop(l, depth, res);
        load_close(l);
        free(l);
}

static bool load_clean(const struct load_result *r)
{
        return r->errors == 0 && r->lost == 0 && r->conn_failures == 0 && r->counted > 0;
}

/* ---- round trips on one connection --------------------------------------------------- */

struct rtt_result {
        double p50_us, p99_us, p999_us, max_us, mean_us;
        unsigned n, bad;
        int failure;                    /* negative errno that ended the run early */
};

/* warmup + n requests, each sent when the previous answer is in. */
static void rtt_measure(const char *path, const struct proto *p, unsigned n, unsigned warmup,
                        struct rtt_result *res)
{
        static char buf[READ_BUF];
        uint64_t *lat = calloc(n, sizeof(*lat)), sum = 0;
        unsigned got = 0;
        int fd;

        memset(res, 0, sizeof(*res));
        if (!lat)
                die("calloc", -ENOMEM);
        fd = sock_connect(path);
        if (fd < 0)
                die("connecting for round trips", fd);
        for (unsigned i = 0; i < warmup + n; i++) {
                uint64_t t0 = bu_now_ns();
                long r = exchange(fd, p, buf, sizeof(buf), REPLY_TIMEOUT_MS);
                uint64_t t = bu_now_ns() - t0;

                if (r == -EBADMSG) {
                        res->bad++;
                } else if (r < 0) {
                        res->failure = (int)r;
                        break;
                }
                if (i >= warmup) {
                        lat[got++] = t;
                        sum += t;
                }
        }
        close(fd);
        res->n = got;
        if (got > 0) {
                qsort(lat, got, sizeof(*lat), bu_u64_cmp);
                res->p50_us = lat[got / 2] / 1e3;
                res->p99_us = lat[(size_t)got * 99 / 100] / 1e3;
                res->p999_us = lat[(size_t)got * 999 / 1000] / 1e3;
                res->max_us = lat[got - 1] / 1e3;
                res->mean_us = (double)sum / got / 1e3;
        }
        free(lat);
}

static void rtt_row(const char *label, const struct rtt_result *r)
{
        printf("   %-44s %8.1f %8.1f %8.1f %8.1f %8.1f us", label, r->p50_us, r->p99_us,
               r->p999_us, r->max_us, r->mean_us);
        if (r->bad || r->failure)
                printf("   %u bad answers%s%s", r->bad, r->failure ? ", stopped: " : "",
                       r->failure ? strerror(-r->failure) : "");
        printf("\n");
}

/* ---- repeated runs: medians, and ratios of runs made side by side ---------------------- */

/* One request's runs at one depth (or its round trips), REPEATS of them,
 * each made next to the runs it is compared with: the machine is shared,
 * and what else it does then falls on both sides of a ratio. */
struct load_set {
        struct load_result run[REPEATS];
};

struct rtt_set {
        struct rtt_result run[REPEATS];
};

static int double_cmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

/* Sorts v. REPEATS is odd, so this is a figure that was measured. */
static double median_of(double *v, unsigned n)
{
        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), double_cmp);
        return v[n / 2];
}

static double set_rps(const struct load_set *s)
{
        double v[REPEATS];

        for (unsigned k = 0; k < REPEATS; k++)
                v[k] = s->run[k].rps;
        return median_of(v, REPEATS);
}

static bool set_clean(const struct load_set *s)
{
        for (unsigned k = 0; k < REPEATS; k++)
                if (!load_clean(&s->run[k]))
                        return false;
        return true;
}

/* The median of a's run k / b's run k: each pair ran side by side. */
static double set_ratio(const struct load_set *a, const struct load_set *b)
{
        double v[REPEATS];

        for (unsigned k = 0; k < REPEATS; k++)
                v[k] = b->run[k].rps > 0 ? a->run[k].rps / b->run[k].rps : 0;
        return median_of(v, REPEATS);
}

/* The median, the spread, and the answers of all runs together. */
static void set_row(const struct proto *p, const struct load_set *s)
{
        struct load_result all = { .rps = 0 };
        double lo = s->run[0].rps, hi = s->run[0].rps;

        for (unsigned k = 0; k < REPEATS; k++) {
                const struct load_result *r = &s->run[k];

                lo = r->rps < lo ? r->rps : lo;
                hi = r->rps > hi ? r->rps : hi;
                all.replies += r->replies;
                all.errors += r->errors;
                all.lost += r->lost;
                if (r->conn_failures && !all.conn_failures)
                        all.first_failure = r->first_failure;
                all.conn_failures += r->conn_failures;
        }
        printf("   %-44s %10.0f req/s   (%.0f..%.0f", p->label, set_rps(s), lo, hi);
        if (set_clean(s)) {
                printf("; %llu answers, all good)\n", (unsigned long long)all.replies);
                return;
        }
        printf("; %llu answers, %llu bad, %llu lost, %u connections failed",
               (unsigned long long)all.replies, (unsigned long long)all.errors,
               (unsigned long long)all.lost, all.conn_failures);
        if (all.conn_failures)
                printf(", first: %s", strerror(all.first_failure));
        printf(")\n");
}

static double rtt_p50(const struct rtt_result *r)
{
        return r->p50_us;
}

static double rtt_p99(const struct rtt_result *r)
{
        return r->p99_us;
}

/* Each column's median over the runs (not one run's row); counts summed. */
static void rtt_median(const struct rtt_set *s, struct rtt_result *m)
{
        double v[5][REPEATS];

        memset(m, 0, sizeof(*m));
        for (unsigned k = 0; k < REPEATS; k++) {
                const struct rtt_result *r = &s->run[k];

                v[0][k] = r->p50_us;
                v[1][k] = r->p99_us;
                v[2][k] = r->p999_us;
                v[3][k] = r->max_us;
                v[4][k] = r->mean_us;
                m->n += r->n;
                m->bad += r->bad;
                if (!m->failure)
                        m->failure = r->failure;
        }
        m->p50_us = median_of(v[0], REPEATS);
        m->p99_us = median_of(v[1], REPEATS);
        m->p999_us = median_of(v[2], REPEATS);
        m->max_us = median_of(v[3], REPEATS);
        m->mean_us = median_of(v[4], REPEATS);
}

static bool rtt_set_clean(const struct rtt_set *s, unsigned n)
{
        for (unsigned k = 0; k < REPEATS; k++)
                if (s->run[k].n != n || s->run[k].bad || s->run[k].failure)
                        return false;
        return true;
}

/* The median of get(a's run k) / get(b's run k). */
static double rtt_ratio(const struct rtt_set *a, const struct rtt_set *b,
                        double (*get)(const struct rtt_result *))
{
        double v[REPEATS];

        for (unsigned k = 0; k < REPEATS; k++)
                v[k] = get(&b->run[k]) > 0 ? get(&a->run[k]) / get(&b->run[k]) : 0;
        return median_of(v, REPEATS);
}

/* ---- issue 15's targets, gathered for the end of the report ------------------------------- */

#define SUMMARY_MAX 32u

struct summary_row {
        char label[52], figure[40], target[40];
        const char *met;
};

static struct summary_row summary[SUMMARY_MAX];
static unsigned n_summary;

/* met is NULL for a figure that could not be measured. */
static __attribute__((format(printf, 4, 5))) void summary_add(const char *label, const char *target,
                                                              const char *met, const char *fmt, ...)
{
        struct summary_row *row;
        va_list ap;

        if (n_summary == SUMMARY_MAX)
                return;
        row = &summary[n_summary++];
        snprintf(row->label, sizeof(row->label), "%s", label);
        snprintf(row->target, sizeof(row->target), "%s", target);
        row->met = met ? met : "not measured";
        va_start(ap, fmt);
        vsnprintf(row->figure, sizeof(row->figure), fmt, ap);
        va_end(ap);
}

static void print_summary(void)
{
        unsigned met = 0, targets = 0;

        printf("\nIssue 15: the targets of this run (ratios: medians of %u runs made side by side)\n",
               REPEATS);
        for (unsigned i = 0; i < n_summary; i++) {
                const struct summary_row *row = &summary[i];

                printf("   %-47s %14s   %-19s %s\n", row->label, row->figure, row->target, row->met);
                met += strcmp(row->met, "met") == 0;
                targets += row->target[0] != '\0';
        }
        printf("   %u of %u targets met\n", met, targets);
}

/* ---- redis-server ------------------------------------------------------------------------ */

struct redis {
        bool have;
        char sock[PATH_SIZE];
        char version[128];
};

struct echo {
        bool have;
        char bin[PATH_SIZE];
        char sock[PATH_SIZE];
};

/* "Redis server v=7.0.15 sha=... malloc=..." -> "redis-server 7.0.15". */
static void redis_version(char *buf, size_t size)
{
        FILE *f = popen(REDIS_SERVER " --version 2>/dev/null", "re");
        char line[256] = "", *v;

        if (f) {
                if (!fgets(line, sizeof(line), f))
                        line[0] = '\0';
                pclose(f);
        }
        v = strstr(line, "v=");
        if (v)
                v[2 + strcspn(v + 2, " \n")] = '\0';
        snprintf(buf, size, "redis-server %s", v ? v + 2 : "(version unknown)");
}

/* ---- where the round trips run ---------------------------------------------------------- */

/* A wakeup on the CPU one is running on is a context switch; on another
 * CPU it may have to bring that CPU out of idle first, which in a virtual
 * machine can cost tens of microseconds. So (c) is measured both ways, the
 * client and the server's loop thread pinned. */
enum { PLACE_SAME, PLACE_APART, N_PLACES };

struct placement {
        int cpu[2];                     /* the first two CPUs we may run on */
        int n_cpus;
        cpu_set_t all;                  /* our affinity at start, put back after */
};

static void placement_init(struct placement *pl)
{
        memset(pl, 0, sizeof(*pl));
        if (sched_getaffinity(0, sizeof(pl->all), &pl->all) < 0)
                return;
        for (int i = 0; i < CPU_SETSIZE && pl->n_cpus < 2; i++)
                if (CPU_ISSET(i, &pl->all))
                        pl->cpu[pl->n_cpus++] = i;
}

static int cpu_pin(pid_t pid, int cpu)
{
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        return sched_setaffinity(pid, sizeof(set), &set) < 0 ? -errno : 0;
}

/* Pins server (its main thread: the loop) to the first CPU, and us to the
 * same one or to the second. False when that cannot be done. */
static bool placement_apply(const struct placement *pl, unsigned place, pid_t server)
{
        int client = place == PLACE_SAME ? 0 : 1;

        if (pl->n_cpus < client + 1)
                return false;
        return cpu_pin(server, pl->cpu[0]) == 0 && cpu_pin(0, pl->cpu[client]) == 0;
}

static void placement_reset(const struct placement *pl, pid_t server)
{
        if (pl->n_cpus == 0)
                return;
        sched_setaffinity(server, sizeof(pl->all), &pl->all);
        sched_setaffinity(0, sizeof(pl->all), &pl->all);
}

static void placement_title(const struct placement *pl, unsigned place)
{
        if (place == PLACE_SAME)
                printf("   client and server pinned to one CPU (%d)\n", pl->cpu[0]);
        else if (pl->n_cpus >= 2)
                printf("   client and server pinned to separate CPUs (client %d, server %d)\n",
                       pl->cpu[1], pl->cpu[0]);
}

static const char *const place_names[N_PLACES] = { "one CPU", "separate CPUs" };

/* ---- 1 and 2: the runs, and their report ----------------------------------------------- */

struct figures {
        struct load_set info[2], status[2], ping[2], echo[2];
        struct placement pl;
        bool placed[N_PLACES];
        struct rtt_set rtt_info[N_PLACES], rtt_status[N_PLACES], rtt_ping[N_PLACES];
};

static const unsigned depths[2] = { 1, DEPTH_PIPELINED };

static void depth_title(unsigned i)
{
        printf("   (%c) %u request%s in flight on each of %u connections%s\n", 'a' + i, depths[i],
               depths[i] == 1 ? "" : "s", N_CONNS, depths[i] == 1 ? "" : " (pipelined)");
}

static void rtt_title(void)
{
        printf("   (c) round trips on 1 connection: %u runs of %u requests after %u warm-up, each\n"
               "       sent when the previous answer is in (send, poll, read); each column the\n"
               "       median of the runs'\n", REPEATS, RTT_REQUESTS, RTT_WARMUP);
        printf("   %-44s %8s %8s %8s %8s %8s\n", "", "p50", "p99", "p99.9", "max", "mean");
}

static void rtt_set_row(const char *label, const struct rtt_set *s)
{
        struct rtt_result m;

        rtt_median(s, &m);
        rtt_row(label, &m);
}

/* A server that ended under load ends the benchmark: that is the finding. */
static void servers_check(const char *after)
{
        char how[128];

        if (child_daemon > 0 && child_ended(child_daemon, how, sizeof(how))) {
                child_daemon = 0;
                fflush(stdout);
                fprintf(stderr, "bench-daemon: plughostd ended during %s: %s\n", after, how);
                exit(1);
        }
        if (child_redis > 0 && child_ended(child_redis, how, sizeof(how))) {
                child_redis = 0;
                fflush(stdout);
                fprintf(stderr, "bench-daemon: redis-server ended during %s: %s\n", after, how);
                exit(1);
        }
        if (child_echo > 0 && child_ended(child_echo, how, sizeof(how))) {
                child_echo = 0;
                fflush(stdout);
                fprintf(stderr, "bench-daemon: bench-echo ended during %s: %s\n", after, how);
                exit(1);
        }
}

/* Each repetition runs every server at each depth back to back, so that
 * the runs a ratio pairs are a few seconds apart, never minutes. */
static void bench_measure(const char *dsock, const struct redis *rs, const struct echo *es,
                          struct figures *f)
{
        for (unsigned k = 0; k < REPEATS; k++)
                for (unsigned i = 0; i < 2; i++) {
                        load_run(&proto_info, dsock, depths[i], &f->info[i].run[k]);
                        servers_check("the Info load");
                        load_run(&proto_status, dsock, depths[i], &f->status[i].run[k]);
                        servers_check("the Status load");
                        if (es->have)
                                load_run(&proto_echo, es->sock, depths[i], &f->echo[i].run[k]);
                        servers_check("the bench-echo load");
                        if (rs->have)
                                load_run(&proto_ping, rs->sock, depths[i], &f->ping[i].run[k]);
                        servers_check("the PING load");
                }
        placement_init(&f->pl);
        for (unsigned p = 0; p < N_PLACES; p++) {
                f->placed[p] = placement_apply(&f->pl, p, child_daemon);
                placement_reset(&f->pl, child_daemon);
                for (unsigned k = 0; f->placed[p] && k < REPEATS; k++) {
                        if (placement_apply(&f->pl, p, child_daemon)) {
                                rtt_measure(dsock, &proto_info, RTT_REQUESTS, RTT_WARMUP,
                                            &f->rtt_info[p].run[k]);
                                rtt_measure(dsock, &proto_status, RTT_REQUESTS, RTT_WARMUP,
                                            &f->rtt_status[p].run[k]);
                        } else {
                                f->rtt_info[p].run[k].failure = -EPERM;
                                f->rtt_status[p].run[k].failure = -EPERM;
                        }
                        placement_reset(&f->pl, child_daemon);
                        if (rs->have) {
                                if (placement_apply(&f->pl, p, child_redis))
                                        rtt_measure(rs->sock, &proto_ping, RTT_REQUESTS, RTT_WARMUP,
                                                    &f->rtt_ping[p].run[k]);
                                else
                                        f->rtt_ping[p].run[k].failure = -EPERM;
                                placement_reset(&f->pl, child_redis);
                        }
                        servers_check("the round trips");
                }
        }
}

static void print_load(const struct figures *f)
{
        bool clean = true;

        printf("\n1. plughostd under load: one client process (epoll, non-blocking Unix sockets),\n"
               "   closed loop; %u ms warm-up, then answers counted over %u ms; each answer's\n"
               "   start checked, answers still owed after the run awaited for %u ms; each row\n"
               "   the median of %u runs (lowest..highest), made in turn with those of 2 and 3\n",
               WARMUP_MS, RUN_MS, DRAIN_MS, REPEATS);
        for (unsigned i = 0; i < 2; i++) {
                depth_title(i);
                set_row(&proto_info, &f->info[i]);
                set_row(&proto_status, &f->status[i]);
                clean = clean && set_clean(&f->info[i]) && set_clean(&f->status[i]);
        }
        rtt_title();
        for (unsigned p = 0; p < N_PLACES; p++) {
                if (!f->placed[p]) {
                        printf("   %s: not measured (pinning failed or too few CPUs)\n", place_names[p]);
                        continue;
                }
                placement_title(&f->pl, p);
                rtt_set_row(proto_info.label, &f->rtt_info[p]);
                rtt_set_row(proto_status.label, &f->rtt_status[p]);
        }
        for (unsigned p = 0; p < N_PLACES; p++) {
                struct rtt_result m;
                char label[64];

                rtt_median(&f->rtt_info[p], &m);
                snprintf(label, sizeof(label), "Info p99, %s", place_names[p]);
                if (!f->placed[p])
                        printf("   %-44s %8s      target <= %.0f us: not measured\n", label, "-",
                               TARGET_P99_US);
                else
                        printf("   %-44s %8.1f us   target <= %.0f us: %s\n", label, m.p99_us,
                               TARGET_P99_US, bu_met(rtt_set_clean(&f->rtt_info[p], RTT_REQUESTS) &&
                                                  m.p99_us <= TARGET_P99_US));
        }
        if (!clean)
                printf("   plughostd lost, refused or garbled answers: see the counts above\n");
}

/* Prints the median paired ratio of ours to ref and, with a target, whether
 * it is met; returns whether it is (false without a target). */
static bool ratio_row(const char *label, const struct load_set *ours, const struct load_set *ref,
                      double target)
{
        double ratio = set_ratio(ours, ref);
        bool met = ratio >= target && set_clean(ours) && set_clean(ref);

        printf("   %-44s %10.2f x", label, ratio);
        if (target > 0)
                printf("      target >= %.1fx: %s\n", target, bu_met(met));
        else
                printf("      (for information)\n");
        return target > 0 && met;
}

static void print_redis(const struct figures *f, const struct redis *rs)
{
        printf("\n2. The same client against redis-server PING (\"PING\\r\\n\" -> \"+PONG\\r\\n\")\n");
        if (!rs->have) {
                printf("   not measured: %s is missing. To measure it:\n"
                       "      apt-get install -y redis-server   (and stop the service if it starts one)\n"
                       "   %-44s %10s        target >= %.1fx in (a): not measured\n",
                       REDIS_SERVER, "ratios  Info, Status / PING, (a) and (b)", "-",
                       TARGET_RATIO_ONE);
                for (unsigned p = 0; p < N_PLACES; p++)
                        summary_add(p == PLACE_SAME ? "Info p50 / redis PING p50, one CPU"
                                                    : "Info p50 / redis PING p50, separate CPUs",
                                    "<= 1.2x", NULL, "-");
                return;
        }
        printf("   %s on its own Unix socket (one event-loop thread, as plughostd)\n", rs->version);
        for (unsigned i = 0; i < 2; i++) {
                double t = i == 0 ? TARGET_RATIO_ONE : 0;

                depth_title(i);
                set_row(&proto_ping, &f->ping[i]);
                ratio_row("ratio   plughostd Info / redis PING", &f->info[i], &f->ping[i], t);
                ratio_row("ratio   plughostd Status / redis PING", &f->status[i], &f->ping[i], t);
        }
        rtt_title();
        for (unsigned p = 0; p < N_PLACES; p++) {
                if (!f->placed[p])
                        continue;
                placement_title(&f->pl, p);
                rtt_set_row(proto_ping.label, &f->rtt_ping[p]);
        }
        for (unsigned p = 0; p < N_PLACES; p++) {
                char label[64], target[32];
                double ratio;
                bool met;

                if (!f->placed[p]) {
                        snprintf(label, sizeof(label), "Info p50 / redis PING p50, %s", place_names[p]);
                        summary_add(label, "<= 1.2x", NULL, "-");
                        continue;
                }
                ratio = rtt_ratio(&f->rtt_info[p], &f->rtt_ping[p], rtt_p50);
                met = rtt_set_clean(&f->rtt_info[p], RTT_REQUESTS) &&
                      rtt_set_clean(&f->rtt_ping[p], RTT_REQUESTS) && ratio <= TARGET_P50_PING_RATIO;
                snprintf(label, sizeof(label), "ratio   p50 Info / p50 PING, %s", place_names[p]);
                printf("   %-44s %8.2f x      target <= %.1fx: %s\n", label, ratio,
                       TARGET_P50_PING_RATIO, bu_met(met));
                snprintf(label, sizeof(label), "Info p50 / redis PING p50, %s", place_names[p]);
                snprintf(target, sizeof(target), "<= %.1fx", TARGET_P50_PING_RATIO);
                summary_add(label, target, bu_met(met), "%.2f x", ratio);
        }
        for (unsigned p = 0; p < N_PLACES; p++) {
                char label[64];

                if (!f->placed[p])
                        continue;
                snprintf(label, sizeof(label), "ratio   p99 Info / p99 PING, %s", place_names[p]);
                printf("   %-44s %8.2f x      (for information)\n", label,
                       rtt_ratio(&f->rtt_info[p], &f->rtt_ping[p], rtt_p99));
        }
}

static void print_echo(const struct figures *f, const struct echo *es)
{
        static const char *const summary_labels[2][2] = {
                { "Info / bench-echo req/s, 1 in flight", "Status / bench-echo req/s, 1 in flight" },
                { "Info / bench-echo req/s, 16 in flight", "Status / bench-echo req/s, 16 in flight" },
        };
        char target[32];

        snprintf(target, sizeof(target), ">= %.1fx", TARGET_ECHO_RATIO);
        printf("\n3. The same client against bench-echo: libuv and jansson and nothing else (parse\n"
               "   each message, answer {\"parameters\": its parameters}, one write for the answers\n"
               "   to one read); sent the bytes of 1's Info request, it answers\n"
               "   %s\n", "{\"parameters\":{\"name\":\"hello\"}}");
        if (!es->have) {
                printf("   not measured: %s is missing; build it with `make tests/bench-echo`\n",
                       es->bin);
                for (unsigned i = 0; i < 2; i++)
                        for (unsigned j = 0; j < 2; j++)
                                summary_add(summary_labels[i][j], target, NULL, "-");
                return;
        }
        for (unsigned i = 0; i < 2; i++) {
                const struct load_set *ours[2] = { &f->info[i], &f->status[i] };

                depth_title(i);
                set_row(&proto_echo, &f->echo[i]);
                for (unsigned j = 0; j < 2; j++) {
                        bool met = ratio_row(j == 0 ? "ratio   plughostd Info / bench-echo"
                                                    : "ratio   plughostd Status / bench-echo",
                                             ours[j], &f->echo[i], TARGET_ECHO_RATIO);

                        summary_add(summary_labels[i][j], target, bu_met(met), "%.2f x",
                                    set_ratio(ours[j], &f->echo[i]));
                }
        }
}

static void redis_setup(struct redis *rs)
{
        int r;

        memset(rs, 0, sizeof(*rs));
        if (access(REDIS_SERVER, X_OK) < 0) {
                printf("redis-server: %s not found, so section 2 is skipped; to measure it:\n"
                       "   apt-get install -y redis-server\n", REDIS_SERVER);
                return;
        }
        redis_version(rs->version, sizeof(rs->version));
        bu_dir_path(rs->sock, sizeof(rs->sock), "redis.sock");
        r = redis_start(rs->sock);
        if (r < 0)
                die("starting redis-server", r);
        close(server_wait(rs->sock, &proto_ping, child_redis, "redis-server"));
        rs->have = true;
        printf("%s: pid %d, on %s (--port 0 --save '' --appendonly no)\n", rs->version,
               (int)child_redis, rs->sock);
}

static void echo_setup(struct echo *es)
{
        int r;

        memset(es, 0, sizeof(*es));
        snprintf(es->bin, sizeof(es->bin), "%s/tests/bench-echo", builddir);
        if (access(es->bin, X_OK) < 0) {
                printf("bench-echo: %s not found, so section 3 is skipped\n", es->bin);
                return;
        }
        bu_dir_path(es->sock, sizeof(es->sock), "echo.sock");
        r = echo_start(es->bin, es->sock);
        if (r < 0)
                die("starting bench-echo", r);
        close(server_wait(es->sock, &proto_echo, child_echo, "bench-echo"));
        es->have = true;
        printf("bench-echo: pid %d, %s, on %s\n", (int)child_echo, es->bin, es->sock);
}

static void bench_load(void)
{
        char plugins[PATH_SIZE], hello[PATH_SIZE], to[PATH_SIZE + 16], dsock[PATH_SIZE];
        char log[PATH_SIZE];
        char how_d[128], how_r[128], how_e[128];
        struct figures *f = calloc(1, sizeof(*f));
        struct redis rs;
        struct echo es;
        uint64_t t0 = bu_now_ns();
        int r;

        if (!f)
                die("calloc", -ENOMEM);
        snprintf(hello, sizeof(hello), "%s/docs/examples/hello.so", builddir);
        bu_dir_path(plugins, sizeof(plugins), "plugins");
        if (mkdir(plugins, 0755) < 0)
                die("mkdir", -errno);
        snprintf(to, sizeof(to), "%s/hello.so", plugins);
        r = file_copy(hello, to);
        if (r < 0)
                die(hello, r);
        r = daemon_start("plughostd", plugins, NULL, NULL);
        if (r < 0)
                die("starting plughostd", r);
        bu_dir_path(dsock, sizeof(dsock), "plughostd.sock");
        close(server_wait(dsock, &proto_info, child_daemon, "plughostd"));
        printf("plughostd: pid %d, %s%s, plugin dir with hello.so, on %s\n", (int)child_daemon,
               daemon_bin, daemon_direct ? " (LD_LIBRARY_PATH=lib/.libs)" : "", dsock);
        redis_setup(&rs);
        echo_setup(&es);

        bench_measure(dsock, &rs, &es, f);
        print_load(f);
        print_redis(f, &rs);
        print_echo(f, &es);

        printf("\n");
        if (child_ended(child_daemon, how_d, sizeof(how_d))) {
                child_daemon = 0;
                printf("   plughostd DIED during the runs: %s\n", how_d);
        } else {
                child_stop(&child_daemon, how_d, sizeof(how_d));
                printf("   plughostd stopped by SIGTERM: %s\n", how_d);
        }
        bu_dir_path(log, sizeof(log), "plughostd.log");
        log_summary("plughostd", log, daemon_bad_marks);
        if (rs.have) {
                child_stop(&child_redis, how_r, sizeof(how_r));
                printf("   redis-server stopped by SIGTERM: %s\n", how_r);
        }
        if (es.have) {
                child_stop(&child_echo, how_e, sizeof(how_e));
                printf("   bench-echo stopped by SIGTERM: %s\n", how_e);
        }
        printf("   sections 1 to 3 took %.1f s\n", (double)(bu_now_ns() - t0) / 1e9);
        free(f);
}

/* ---- 4: start-up with 10,000 and with 100,000 plugins ------------------------------------ */

/* Builds the plugin and finds where its name is, to patch copies. */
static int plugin_make(unsigned char **ret_img, size_t *ret_size, size_t *ret_name_off)
{
        static const char key[] = PLUGIN_NAME_KEY PLUGIN_NAME_0;
        unsigned char *img, *m;
        size_t size;
        int r;

        r = bu_plugin_make(plugin_source, &img, &size);
        if (r < 0)
                return r;
        /* Exactly one place names it, or the copies would not be distinct. */
        m = memmem(img, size, key, sizeof(key) - 1);
        if (!m || memmem(m + 1, size - (size_t)(m + 1 - img), key, sizeof(key) - 1)) {
                free(img);
                return -EILSEQ;
        }
        *ret_img = img;
        *ret_size = size;
        *ret_name_off = (size_t)(m - img) + strlen(PLUGIN_NAME_KEY);
        return 0;
}

/* Copies from..to-1, one image patched in place and written under each
 * name: hard links would share the note, and so the name. The directory
 * grows from 10,000 to 100,000 by adding the rest. */
static int copies_make(const char *dir, unsigned char *img, size_t size, size_t name_off,
                       unsigned from, unsigned to)
{
        char path[PATH_SIZE + 32], name[16];

        for (unsigned i = from; i < to; i++) {
                int r;

                snprintf(name, sizeof(name), PLUGIN_NAME_FMT, i);
                memcpy(img + name_off, name, strlen(PLUGIN_NAME_0));
                snprintf(path, sizeof(path), "%s/%s.so", dir, name);
                r = bu_file_put(path, img, size, 0755);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Status's figures, by jansson; -1 where absent. */
static void status_parse(const char *reply, long *ret_plugins, long *ret_rejected)
{
        json_t *root = json_loads(reply, 0, NULL);
        json_t *params = json_object_get(root, "parameters");
        json_t *plugins = json_object_get(params, "plugins");
        json_t *rejected = json_object_get(params, "rejected");

        *ret_plugins = json_is_integer(plugins) ? (long)json_integer_value(plugins) : -1;
        *ret_rejected = json_is_integer(rejected) ? (long)json_integer_value(rejected) : -1;
        json_decref(root);
}

struct proc_mem {
        char name[64];
        long rss_kib, hwm_kib;
};

static int proc_mem_read(pid_t pid, struct proc_mem *m)
{
        char path[64], line[256];
        FILE *f;

        memset(m, 0, sizeof(*m));
        m->rss_kib = m->hwm_kib = -1;
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "Name:", 5) == 0)
                        sscanf(line + 5, "%63s", m->name);
                else if (strncmp(line, "VmRSS:", 6) == 0)
                        m->rss_kib = strtol(line + 6, NULL, 10);
                else if (strncmp(line, "VmHWM:", 6) == 0)
                        m->hwm_kib = strtol(line + 6, NULL, 10);
        }
        fclose(f);
        return 0;
}

/* The daemon's $NOTIFY_SOCKET: READY=1 is its own word that the first scan
 * is applied, as systemd would see it. */
static int notify_open(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* True once a READY=1 has come; every other message is read and dropped. */
static bool notify_ready(int fd)
{
        char msg[1024];
        ssize_t n;

        while ((n = recv(fd, msg, sizeof(msg) - 1, 0)) > 0) {
                msg[n] = '\0';
                if (strncmp(msg, "READY=1", 7) == 0 || strstr(msg, "\nREADY=1"))
                        return true;
        }
        return false;
}

/* ---- 5: List of 100,000 plugins ----------------------------------------------------------- */

/* Whole frames of any size up to LIST_FRAME_MAX from a non-blocking fd;
 * what follows one frame stays for the next (a stream's replies come
 * several to a read). */
struct frames {
        int fd;
        char *buf;
        size_t start, len, cap;         /* unread bytes: buf[start..len) */
        size_t scanned;                 /* of those, known to hold no NUL */
};

/* Points *ret at the next frame, NUL-terminated in place and good until
 * the next call, and returns its length; or -EPIPE on EOF, -EMSGSIZE,
 * -ETIMEDOUT or another negative errno. */
static long frame_next(struct frames *fr, char **ret, uint64_t deadline)
{
        for (;;) {
                size_t unread = fr->len - fr->start;
                char *from = fr->buf + fr->start, *nul = NULL;
                ssize_t n;
                int r;

                if (unread > fr->scanned)
                        nul = memchr(from + fr->scanned, '\0', unread - fr->scanned);
                if (nul) {
                        *ret = from;
                        fr->start += (size_t)(nul - from) + 1;
                        fr->scanned = 0;
                        return nul - from;
                }
                fr->scanned = unread;
                if (unread >= LIST_FRAME_MAX)
                        return -EMSGSIZE;
                if (fr->start > 0) {
                        memmove(fr->buf, from, unread);
                        fr->len = unread;
                        fr->start = 0;
                }
                if (fr->cap - fr->len < READ_BUF) {
                        size_t cap = fr->cap ? 2 * fr->cap : 4 * READ_BUF;
                        char *p = realloc(fr->buf, cap);

                        if (!p)
                                return -ENOMEM;
                        fr->buf = p;
                        fr->cap = cap;
                }
                n = read(fr->fd, fr->buf + fr->len, fr->cap - fr->len);
                if (n > 0) {
                        fr->len += (size_t)n;
                        continue;
                }
                if (n == 0)
                        return -EPIPE;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
                if ((r = fd_wait(fr->fd, POLLIN, deadline)) < 0)
                        return r;
        }
}

static int send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
        size_t sent = 0;
        int r;

        while (sent < len) {
                ssize_t n = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);

                if (n >= 0) {
                        sent += (size_t)n;
                        continue;
                }
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
                if ((r = fd_wait(fd, POLLOUT, deadline)) < 0)
                        return r;
        }
        return 0;
}

/* One way of listing: what came, and whether the daemon did it at all. */
struct list_way {
        bool supported;                 /* it answered as asked, to the end */
        bool refused;                   /* an error, or one whole answer, to the first request */
        char why[240];                  /* why not, or what went wrong */
        double ms;                      /* request to last reply */
        unsigned long plugins, rejected, replies;
        size_t bytes, largest;
        bool ascending;                 /* every name after the one before: none twice */
        size_t dups;
        char **names;
        size_t n_names, cap_names;
};

struct list_figures {
        unsigned expect;
        struct list_way stream, paged, whole;
        struct list_way query_stream, query_best;       /* Query: streamed, limit 1 */
        struct proc_mem mem_after;      /* of the daemon, after the three */
};

/* The answer of a daemon that does not do what was asked: its error. */
static bool reply_error(json_t *root, char *buf, size_t size)
{
        json_t *err = json_object_get(root, "error"), *params = json_object_get(root, "parameters");
        char *text = params ? json_dumps(params, JSON_COMPACT) : NULL;

        if (!json_is_string(err)) {
                free(text);
                return false;
        }
        snprintf(buf, size, "answered %s %.160s", json_string_value(err), text ? text : "");
        free(text);
        return true;
}

static int way_names_add(struct list_way *w, json_t *plugins)
{
        size_t i;
        json_t *p;

        json_array_foreach(plugins, i, p) {
                json_t *name = json_object_get(p, "name");
                char *copy = strdup(json_is_string(name) ? json_string_value(name) : "");

                if (!copy)
                        return -ENOMEM;
                if (w->n_names == w->cap_names) {
                        size_t cap = w->cap_names ? 2 * w->cap_names : 1024;
                        char **v = realloc(w->names, cap * sizeof(*v));

                        if (!v) {
                                free(copy);
                                return -ENOMEM;
                        }
                        w->names = v;
                        w->cap_names = cap;
                }
                w->names[w->n_names++] = copy;
        }
        w->plugins += json_array_size(plugins);
        return 0;
}

static int str_ptr_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ascending order (which says none came twice), else how many did. */
static void way_names_check(struct list_way *w)
{
        w->ascending = true;
        for (size_t i = 1; i < w->n_names; i++)
                if (strcmp(w->names[i - 1], w->names[i]) >= 0)
                        w->ascending = false;
        if (!w->ascending && w->n_names > 0) {
                qsort(w->names, w->n_names, sizeof(*w->names), str_ptr_cmp);
                for (size_t i = 1; i < w->n_names; i++)
                        w->dups += strcmp(w->names[i - 1], w->names[i]) == 0;
        }
        for (size_t i = 0; i < w->n_names; i++)
                free(w->names[i]);
        free(w->names);
        w->names = NULL;
        w->n_names = w->cap_names = 0;
}

/* Reads one reply: counts it, and returns its parameters' tree (*ret_root
 * to free), or NULL with why said. */
static json_t *way_reply(struct list_way *w, struct frames *fr, uint64_t deadline, json_t **ret_root)
{
        json_error_t jerr;
        json_t *root, *params;
        char *msg = NULL;
        long n = frame_next(fr, &msg, deadline);

        *ret_root = NULL;
        if (n < 0) {
                snprintf(w->why, sizeof(w->why), "%s after %lu replies",
                         n == -EPIPE ? "the connection was closed" : strerror((int)-n), w->replies);
                return NULL;
        }
        w->replies++;
        w->bytes += (size_t)n + 1;
        if ((size_t)n + 1 > w->largest)
                w->largest = (size_t)n + 1;
        root = json_loadb(msg, (size_t)n, 0, &jerr);
        if (!root) {
                snprintf(w->why, sizeof(w->why), "reply %lu is not JSON: %s", w->replies, jerr.text);
                return NULL;
        }
        if (reply_error(root, w->why, sizeof(w->why))) {
                w->refused = w->replies == 1;
                json_decref(root);
                return NULL;
        }
        params = json_object_get(root, "parameters");
        if (!json_is_array(json_object_get(params, "plugins"))) {
                snprintf(w->why, sizeof(w->why), "reply %lu has no \"plugins\" array", w->replies);
                json_decref(root);
                return NULL;
        }
        if (json_is_array(json_object_get(params, "rejected")))
                w->rejected += json_array_size(json_object_get(params, "rejected"));
        if (way_names_add(w, json_object_get(params, "plugins")) < 0) {
                snprintf(w->why, sizeof(w->why), "out of memory");
                json_decref(root);
                return NULL;
        }
        *ret_root = root;
        return params;
}

/* {"more":true}: replies with "continues" until the last. One reply
 * without it, or an error, is a daemon that does not stream List. */
static void list_streamed(const char *sock, const char *request, unsigned expect, struct list_way *w)
{
        uint64_t t0 = bu_now_ns(), deadline = t0 + LIST_TIMEOUT_MS * 1000000ull;
        struct frames fr = { .fd = sock_connect(sock) };
        bool last = false;
        int r;

        if (fr.fd < 0)
                die("connecting for List", fr.fd);
        if ((r = send_all(fr.fd, request, strlen(request) + 1, deadline)) < 0)
                snprintf(w->why, sizeof(w->why), "sending: %s", strerror(-r));
        while (r == 0 && !last) {
                json_t *root;

                if (!way_reply(w, &fr, deadline, &root))
                        break;
                last = !json_is_true(json_object_get(root, "continues"));
                json_decref(root);
                if (!last && w->plugins > 2ul * expect) {
                        snprintf(w->why, sizeof(w->why), "still streaming after %lu plugins", w->plugins);
                        break;
                }
        }
        w->ms = (double)(bu_now_ns() - t0) / 1e6;
        close(fr.fd);
        free(fr.buf);
        way_names_check(w);
        if (last && w->replies == 1) {
                snprintf(w->why, sizeof(w->why),
                         "did not stream: one reply, without \"continues\", of %lu plugins", w->plugins);
                w->refused = true;
        }
        w->supported = last && w->replies > 1;
}

/* {"limit":N}, then {"limit":N,"after":<next>} until a reply has no next. */
static void list_paged(const char *sock, unsigned expect, struct list_way *w)
{
        uint64_t t0 = bu_now_ns(), deadline = t0 + LIST_TIMEOUT_MS * 1000000ull;
        struct frames fr = { .fd = sock_connect(sock) };
        char *after = NULL;
        bool last = false;

        if (fr.fd < 0)
                die("connecting for List", fr.fd);
        while (!last) {
                json_t *req = json_pack("{s:s, s:{s:I}}", "method", "io.plughost.List", "parameters",
                                        "limit", (json_int_t)LIST_LIMIT);
                json_t *root, *params, *next;
                char *text;
                size_t got = w->plugins;
                int r;

                if (req && after)
                        json_object_set_new(json_object_get(req, "parameters"), "after",
                                            json_string(after));
                text = req ? json_dumps(req, JSON_COMPACT) : NULL;
                json_decref(req);
                if (!text)
                        die("building the List request", -ENOMEM);
                r = send_all(fr.fd, text, strlen(text) + 1, deadline);
                free(text);
                if (r < 0) {
                        snprintf(w->why, sizeof(w->why), "sending: %s", strerror(-r));
                        break;
                }
                if (!(params = way_reply(w, &fr, deadline, &root)))
                        break;
                next = json_object_get(params, "next");
                last = !json_is_string(next);
                if (w->plugins - got > LIST_LIMIT) {
                        snprintf(w->why, sizeof(w->why), "did not page: %lu plugins in reply %lu, "
                                 "limit %u", w->plugins - got, w->replies, LIST_LIMIT);
                        w->refused = w->replies == 1;
                        last = false;
                } else if (!last && after && strcmp(after, json_string_value(next)) == 0) {
                        snprintf(w->why, sizeof(w->why), "\"next\" did not move on after reply %lu",
                                 w->replies);
                } else if (!last && w->replies > expect / LIST_LIMIT + 10) {
                        snprintf(w->why, sizeof(w->why), "still paging after %lu replies", w->replies);
                } else if (!last) {
                        free(after);
                        after = strdup(json_string_value(next));
                        json_decref(root);
                        if (!after)
                                die("strdup", -ENOMEM);
                        continue;
                }
                json_decref(root);
                break;
        }
        w->ms = (double)(bu_now_ns() - t0) / 1e6;
        free(after);
        close(fr.fd);
        free(fr.buf);
        way_names_check(w);
        w->supported = last;
}

/* No more, no limit: at 100,000 the daemon answers ReplyTooLarge. */
static void list_whole(const char *sock, const char *request, struct list_way *w)
{
        uint64_t t0 = bu_now_ns(), deadline = t0 + LIST_TIMEOUT_MS * 1000000ull;
        struct frames fr = { .fd = sock_connect(sock) };
        json_t *root = NULL;
        int r;

        if (fr.fd < 0)
                die("connecting for List", fr.fd);
        if ((r = send_all(fr.fd, request, strlen(request) + 1, deadline)) < 0)
                snprintf(w->why, sizeof(w->why), "sending: %s", strerror(-r));
        else if (way_reply(w, &fr, deadline, &root))
                w->supported = true;
        json_decref(root);
        w->ms = (double)(bu_now_ns() - t0) / 1e6;
        close(fr.fd);
        free(fr.buf);
        way_names_check(w);
}

static void list_measure(const char *sock, unsigned expect, pid_t pid, struct list_figures *lf)
{
        lf->expect = expect;
        list_streamed(sock, "{\"method\":\"io.plughost.List\",\"more\":true}", expect, &lf->stream);
        servers_check("List, streamed");
        list_paged(sock, expect, &lf->paged);
        servers_check("List, paged");
        list_whole(sock, "{\"method\":\"io.plughost.List\"}", &lf->whole);
        servers_check("List, whole");
        list_streamed(sock, QUERY_STREAM, expect, &lf->query_stream);
        servers_check("Query, streamed");
        list_whole(sock, QUERY_BEST, &lf->query_best);
        servers_check("Query, limit 1");
        proc_mem_read(pid, &lf->mem_after);
}

static bool way_ok(const struct list_way *w, unsigned expect, bool ordered)
{
        return w->supported && w->plugins == expect && w->rejected == 0 && w->dups == 0 &&
               (w->ascending || !ordered);
}

static void way_print(const struct list_way *w, unsigned expect, bool ordered)
{
        const char *how = w->refused ? "not supported by this daemon" : "FAILED";

        if (w->replies == 0 || (!w->supported && w->plugins == 0)) {
                printf("      %s (%lu repl%s, %zu bytes, %.1f ms):\n      %s\n", how, w->replies,
                       w->replies == 1 ? "y" : "ies", w->bytes, w->ms, w->why);
                return;
        }
        printf("      %lu plugins, %lu rejected, in %lu repl%s (largest %zu bytes, %.1f MB in all),\n"
               "      %.1f ms to the last; names %s", w->plugins, w->rejected, w->replies,
               w->replies == 1 ? "y" : "ies", w->largest, (double)w->bytes / 1e6, w->ms,
               w->ascending ? "ascending, none twice" : "NOT in ascending order");
        if (!w->ascending)
                printf(", %zu twice", w->dups);
        printf(": %s\n", bu_met(way_ok(w, expect, ordered)));
        if (!w->supported)
                printf("      %s: %s\n", how, w->why);
}

static void print_list(const struct list_figures *lf)
{
        char figure[40], target[40];

        printf("\n5. List of %u plugins, on the last daemon of 4 (each way on its own connection,\n"
               "   %u s at most; every reply read whole, up to %u MiB)\n", lf->expect,
               LIST_TIMEOUT_MS / 1000, LIST_FRAME_MAX >> 20);
        printf("   streamed: {\"method\":\"io.plughost.List\",\"more\":true}, replies with \"continues\"\n"
               "   until the last; must bring %u plugins, none twice\n", lf->expect);
        way_print(&lf->stream, lf->expect, false);
        printf("   paged: {\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":%u}}, then with\n"
               "   \"after\": the reply's \"next\" until there is none; must bring %u plugins, ascending\n",
               LIST_LIMIT, lf->expect);
        way_print(&lf->paged, lf->expect, true);
        printf("   whole: {\"method\":\"io.plughost.List\"} (io.plughost.ReplyTooLarge is expected: %u\n"
               "   plugins do not fit in one message)\n", lf->expect);
        if (lf->whole.supported)
                printf("      answered with %lu plugins in one reply of %zu bytes, %.1f ms\n",
                       lf->whole.plugins, lf->whole.largest, lf->whole.ms);
        else
                printf("      in %.1f ms:\n      %s\n", lf->whole.ms, lf->whole.why);
        printf("   Query streamed: %s, replies with \"continues\"; all %u\n"
               "   plugins provide the interface, of one priority and version: name order\n",
               QUERY_STREAM, lf->expect);
        way_print(&lf->query_stream, lf->expect, true);
        printf("   Query, the best one: %s\n", QUERY_BEST);
        if (lf->query_best.supported)
                printf("      %lu plugin in one reply of %zu bytes, %.1f ms\n", lf->query_best.plugins,
                       lf->query_best.largest, lf->query_best.ms);
        else
                printf("      in %.1f ms:\n      %s\n", lf->query_best.ms, lf->query_best.why);
        printf("   plughostd after these: VmRSS %ld KiB, VmHWM %ld KiB\n", lf->mem_after.rss_kib,
               lf->mem_after.hwm_kib);

        snprintf(target, sizeof(target), "%u, none twice", lf->expect);
        if (lf->stream.supported)
                snprintf(figure, sizeof(figure), "%lu, %.0f ms", lf->stream.plugins, lf->stream.ms);
        else
                snprintf(figure, sizeof(figure), "%s", lf->stream.refused ? "not supported" : "failed");
        summary_add("List streamed: plugins, time to the last reply", target,
                    bu_met(way_ok(&lf->stream, lf->expect, false)), "%s", figure);
        snprintf(target, sizeof(target), "%u, ascending", lf->expect);
        if (lf->paged.supported)
                snprintf(figure, sizeof(figure), "%lu, %.0f ms", lf->paged.plugins, lf->paged.ms);
        else
                snprintf(figure, sizeof(figure), "%s", lf->paged.refused ? "not supported" : "failed");
        summary_add("List paged by 1000: plugins, total time", target,
                    bu_met(way_ok(&lf->paged, lf->expect, true)), "%s", figure);
        if (lf->query_stream.supported)
                snprintf(figure, sizeof(figure), "%lu, %.0f ms", lf->query_stream.plugins,
                         lf->query_stream.ms);
        else
                snprintf(figure, sizeof(figure), "%s", lf->query_stream.refused ? "not supported" : "failed");
        summary_add("Query streamed: plugins, time to the last reply", target,
                    bu_met(way_ok(&lf->query_stream, lf->expect, true)), "%s", figure);
        snprintf(figure, sizeof(figure), "%lu, %.0f ms", lf->query_best.plugins, lf->query_best.ms);
        summary_add("Query limit 1: plugins, time", "1", bu_met(lf->query_best.supported &&
                                                                lf->query_best.plugins == 1), "%s", figure);
}

/* ---- 4: the runs, and their report ------------------------------------------------------------ */

struct startup {
        bool ok;
        char failure[160];
        double listen_ms;               /* first answer from Status */
        double notify_ms;               /* READY=1 came */
        double ready_ms;                /* Status says every plugin is there */
        unsigned polls;
        long plugins, rejected;
        struct proc_mem mem;
        struct rtt_result status_rtt;
};

/* Starts the daemon on dir and polls Status until it counts all n plugins,
 * noting when READY=1 comes. The last run also times Status round trips
 * and, given lf, the three ways of List. */
static void startup_run(const char *dir, unsigned n, unsigned run, struct startup *s,
                        struct list_figures *lf)
{
        static char buf[READ_BUF];
        char tag[32], sock[PATH_SIZE], notify[PATH_SIZE], how[128];
        uint64_t t0, deadline;
        pid_t pid;
        int fd = -1, nfd;

        memset(s, 0, sizeof(*s));
        s->plugins = s->rejected = -1;
        snprintf(tag, sizeof(tag), "startup%u-%u", n, run);
        snprintf(sock, sizeof(sock), "%s/%s.sock", bench_dir, tag);
        snprintf(notify, sizeof(notify), "%s/%s.notify", bench_dir, tag);
        nfd = notify_open(notify);
        if (nfd < 0)
                die(notify, nfd);
        t0 = bu_now_ns();
        deadline = t0 + STARTUP_TIMEOUT_MS * 1000000ull;
        pid = daemon_start(tag, dir, NULL, notify);
        if (pid < 0)
                die("starting plughostd", pid);
        while (!s->ok) {
                long len;

                if (s->notify_ms == 0 && notify_ready(nfd))
                        s->notify_ms = (double)(bu_now_ns() - t0) / 1e6;
                if (child_ended(pid, how, sizeof(how))) {
                        child_daemon = 0;
                        snprintf(s->failure, sizeof(s->failure), "plughostd ended: %s", how);
                        close(nfd);
                        if (fd >= 0)
                                close(fd);
                        return;
                }
                if (bu_now_ns() > deadline) {
                        snprintf(s->failure, sizeof(s->failure),
                                 "not ready after %u ms (last Status: %ld plugins)", STARTUP_TIMEOUT_MS,
                                 s->plugins);
                        break;
                }
                if (fd < 0 && (fd = sock_connect(sock)) < 0) {
                        sleep_us(STARTUP_POLL_US);
                        continue;
                }
                len = exchange(fd, &proto_status, buf, sizeof(buf), REPLY_TIMEOUT_MS);
                s->polls++;
                if (len < 0) {
                        close(fd);
                        fd = -1;
                        continue;
                }
                if (s->listen_ms == 0)
                        s->listen_ms = (double)(bu_now_ns() - t0) / 1e6;
                status_parse(buf, &s->plugins, &s->rejected);
                if (s->plugins == (long)n) {
                        s->ready_ms = (double)(bu_now_ns() - t0) / 1e6;
                        s->ok = true;
                        break;
                }
                sleep_us(STARTUP_POLL_US);
        }
        if (fd >= 0)
                close(fd);
        /* The server starts just before READY=1 is sent: it may trail. */
        for (unsigned waited = 0; s->ok && s->notify_ms == 0 && waited < NOTIFY_WAIT_MS; waited++) {
                if (notify_ready(nfd))
                        s->notify_ms = (double)(bu_now_ns() - t0) / 1e6;
                else
                        sleep_us(1000);
        }
        close(nfd);
        if (s->ok && s->notify_ms == 0)
                snprintf(s->failure, sizeof(s->failure), "no READY=1 within %u ms of Status counting all",
                         NOTIFY_WAIT_MS);
        proc_mem_read(pid, &s->mem);
        if (s->ok && run == STARTUP_RUNS - 1) {
                rtt_measure(sock, &proto_status, STATUS_RTT_REQUESTS, 100, &s->status_rtt);
                if (lf)
                        list_measure(sock, n, pid, lf);
        }
        child_stop(&child_daemon, how, sizeof(how));
        if (s->ok && !s->failure[0] && strcmp(how, "exit status 0") != 0)
                snprintf(s->failure, sizeof(s->failure), "stop: %s", how);
}

/* One plugin count's figures, for the comparison of the two. */
struct scale {
        unsigned n;
        bool ok;                        /* every run ready, and the pid measured plughostd */
        double ready_ms;                /* median, READY=1 and Status counting them all */
        long rss_kib, hwm_kib;          /* highest of the runs */
        struct rtt_result status_rtt;   /* the last run's */
};

static void startup_section(const char *dir, unsigned n, double written_ms,
                            double target_ms, long target_rss_kib, struct list_figures *lf,
                            struct scale *sc)
{
        struct startup s[STARTUP_RUNS];
        char log[PATH_SIZE], label[64];
        double ready[STARTUP_RUNS];
        bool all_ok = true, is_daemon = true;
        unsigned ok_runs = 0;

        memset(sc, 0, sizeof(*sc));
        sc->n = n;
        sc->rss_kib = sc->hwm_kib = -1;
        printf("   %u plugins (p00000..p%05u; the copies written in %.0f ms, cache warm)\n", n, n - 1,
               written_ms);
        printf("   %-5s %13s %11s %12s %6s %8s %12s %12s  %s\n", "run", "first answer", "READY=1",
               "all plugins", "polls", "rejected", "VmRSS", "VmHWM", "process");
        for (unsigned i = 0; i < STARTUP_RUNS; i++) {
                startup_run(dir, n, i, &s[i], i == STARTUP_RUNS - 1 ? lf : NULL);
                printf("   %-5u %10.1f ms %8.1f ms %9.1f ms %6u %8ld %8ld KiB %8ld KiB  %s\n", i + 1,
                       s[i].listen_ms, s[i].notify_ms, s[i].ready_ms, s[i].polls, s[i].rejected,
                       s[i].mem.rss_kib, s[i].mem.hwm_kib, s[i].mem.name[0] ? s[i].mem.name : "?");
                if (s[i].failure[0])
                        printf("         %s\n", s[i].failure);
                all_ok = all_ok && s[i].ok && !s[i].failure[0];
                if (s[i].ok)
                        ready[ok_runs++] = s[i].ready_ms > s[i].notify_ms ? s[i].ready_ms : s[i].notify_ms;
                if (s[i].mem.rss_kib > sc->rss_kib)
                        sc->rss_kib = s[i].mem.rss_kib;
                if (s[i].mem.hwm_kib > sc->hwm_kib)
                        sc->hwm_kib = s[i].mem.hwm_kib;
                is_daemon = is_daemon && strcmp(s[i].mem.name, "plughostd") == 0;
        }
        sc->ok = all_ok && ok_runs == STARTUP_RUNS && is_daemon;
        sc->ready_ms = median_of(ready, ok_runs);
        sc->status_rtt = s[STARTUP_RUNS - 1].status_rtt;
        snprintf(label, sizeof(label), "READY=1 and all in Status, %u (median)", n);
        printf("   %-44s %10.1f ms    target < %.0f ms: %s\n", label, sc->ready_ms, target_ms,
               bu_met(sc->ok && sc->ready_ms < target_ms));
        snprintf(label, sizeof(label), "VmRSS after READY, %u (highest)", n);
        printf("   %-44s %10ld KiB   target < %ld MiB: %s\n", label, sc->rss_kib,
               target_rss_kib / 1024, bu_met(sc->ok && sc->rss_kib >= 0 && sc->rss_kib < target_rss_kib));
        snprintf(label, sizeof(label), "VmHWM after READY, %u (highest)", n);
        printf("   %-44s %10ld KiB   (for information)\n", label, sc->hwm_kib);
        if (!is_daemon)
                printf("   the pid measured was not plughostd itself: RSS figures are not the daemon's\n");
        if (sc->status_rtt.n > 0) {
                printf("   %-44s %8s %8s %8s %8s %8s\n", "", "p50", "p99", "p99.9", "max", "mean");
                snprintf(label, sizeof(label), "Status round trip, %u registered", n);
                rtt_row(label, &sc->status_rtt);
        }
        snprintf(log, sizeof(log), "%s/startup%u-%u.log", bench_dir, n, STARTUP_RUNS - 1);
        log_summary("plughostd (last run)", log, daemon_bad_marks);
}

static void bench_startup(void)
{
        struct scale small, large;
        struct list_figures *lf = calloc(1, sizeof(*lf));
        char dir[PATH_SIZE], target[32];
        unsigned char *img;
        size_t size, name_off;
        double ratio;
        bool met;
        uint64_t t0 = bu_now_ns(), t;
        int r;

        if (!lf)
                die("calloc", -ENOMEM);
        r = plugin_make(&img, &size, &name_off);
        if (r < 0)
                die("building the plugin with $CC, or finding its name in it", r);
        bu_dir_path(dir, sizeof(dir), "many");
        if (mkdir(dir, 0755) < 0)
                die("mkdir", -errno);

        printf("\n4. Start-up with %u and with %u plugins in one directory: copies of a %zu-byte\n"
               "   plugin built with $CC, each with its own name patched into the note; time from\n"
               "   fork+exec until the daemon has sent READY=1 ($NOTIFY_SOCKET) and Status answers\n"
               "   plugins == N (polled every %u us); memory read then\n",
               N_PLUGINS_SMALL, N_PLUGINS_LARGE, size, STARTUP_POLL_US);
        t = bu_now_ns();
        r = copies_make(dir, img, size, name_off, 0, N_PLUGINS_SMALL);
        if (r < 0)
                die("writing the plugin copies", r);
        startup_section(dir, N_PLUGINS_SMALL, (double)(bu_now_ns() - t) / 1e6, TARGET_STARTUP_MS,
                        TARGET_RSS_KIB, NULL, &small);

        t = bu_now_ns();
        r = copies_make(dir, img, size, name_off, N_PLUGINS_SMALL, N_PLUGINS_LARGE);
        free(img);
        if (r < 0)
                die("writing the plugin copies", r);
        startup_section(dir, N_PLUGINS_LARGE, (double)(bu_now_ns() - t) / 1e6,
                        TARGET_STARTUP_LARGE_MS, TARGET_RSS_LARGE_KIB, lf, &large);

        ratio = small.status_rtt.p50_us > 0 ? large.status_rtt.p50_us / small.status_rtt.p50_us : 0;
        met = small.status_rtt.n == STATUS_RTT_REQUESTS && large.status_rtt.n == STATUS_RTT_REQUESTS &&
              !small.status_rtt.bad && !large.status_rtt.bad && ratio <= TARGET_STATUS_SCALE;
        printf("   %-44s %10.2f x     target <= %.1fx: %s\n", "Status p50, 100000 / 10000 plugins",
               ratio, TARGET_STATUS_SCALE, bu_met(met));
        printf("   section 4 took %.1f s\n", (double)(bu_now_ns() - t0) / 1e9);

        snprintf(target, sizeof(target), "< %.0f ms", TARGET_STARTUP_LARGE_MS);
        summary_add("Start-up to READY, 100000 plugins (median)", target,
                    bu_met(large.ok && large.ready_ms < TARGET_STARTUP_LARGE_MS), "%.0f ms",
                    large.ready_ms);
        snprintf(target, sizeof(target), "< %ld MiB", TARGET_RSS_LARGE_KIB / 1024);
        summary_add("VmRSS after READY, 100000 plugins", target,
                    bu_met(large.ok && large.rss_kib >= 0 && large.rss_kib < TARGET_RSS_LARGE_KIB),
                    "%.1f MiB", (double)large.rss_kib / 1024.0);
        summary_add("VmHWM after READY, 100000 plugins", "", "for information", "%.1f MiB",
                    (double)large.hwm_kib / 1024.0);
        snprintf(target, sizeof(target), "<= %.1fx", TARGET_STATUS_SCALE);
        summary_add("Status p50 round trip, 100000 / 10000 plugins", target, bu_met(met), "%.2f x",
                    ratio);

        print_list(lf);
        free(lf);
}

/* ---- 6: Call, in-process against isolated ----------------------------------------------- */

/* What Load and Info say of one of the two plugins; -1 where absent. */
struct call_plugin {
        char state[32], isolation[32];
        long worker_pid, restarts, faults;
        long calls, calls_failed;
};

static void json_copy_string(json_t *v, char *buf, size_t size)
{
        snprintf(buf, size, "%s", json_is_string(v) ? json_string_value(v) : "?");
}

static long json_long(json_t *v)
{
        return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

/* Reads a Load or Info reply: parameters.plugin (and .counters from Info). */
static void call_plugin_parse(const char *reply, struct call_plugin *cp)
{
        json_t *root = json_loads(reply, 0, NULL);
        json_t *params = json_object_get(root, "parameters");
        json_t *plugin = json_object_get(params, "plugin");
        json_t *worker = json_object_get(plugin, "worker");
        json_t *counters = json_object_get(params, "counters");

        json_copy_string(json_object_get(plugin, "state"), cp->state, sizeof(cp->state));
        json_copy_string(json_object_get(plugin, "isolation"), cp->isolation, sizeof(cp->isolation));
        cp->worker_pid = json_long(json_object_get(worker, "pid"));
        cp->restarts = json_long(json_object_get(worker, "restarts"));
        cp->faults = json_long(json_object_get(worker, "faults"));
        cp->calls = json_long(json_object_get(counters, "calls"));
        cp->calls_failed = json_long(json_object_get(counters, "callsFailed"));
        json_decref(root);
}

/* Sends p on fd and reads its answer into cp; dies if there is none. */
static void call_plugin_ask(int fd, const struct proto *p, struct call_plugin *cp)
{
        static char buf[READ_BUF];
        long n = exchange(fd, p, buf, sizeof(buf), REPLY_TIMEOUT_MS);

        if (n == -EBADMSG) {
                fflush(stdout);
                fprintf(stderr, "bench-daemon: %s answered: %.300s\n", p->label, buf);
                exit(1);
        }
        if (n < 0)
                die(p->label, (int)n);
        call_plugin_parse(buf, cp);
}

/* PPid of a process, or -1. */
static long proc_ppid(pid_t pid)
{
        char path[64], line[256];
        long ppid = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "PPid:", 5) == 0)
                        ppid = strtol(line + 5, NULL, 10);
        fclose(f);
        return ppid;
}

struct call_figures {
        struct call_plugin before[2], after[2];
        struct proc_mem worker_mem;     /* of the isolated one's worker, after the runs */
        long worker_ppid;
        bool isolated_ok;               /* each runs where it should, one worker throughout */
        struct load_set load[2][2];     /* [depth][plugin] */
        struct load_set info[2];        /* [depth]: Info of the in-process one, beside its Calls */
        struct rtt_result rtt[2];       /* [plugin] */
};

/* Builds the Echo plugin as dir/NAME.so. */
static void call_plugin_build(const char *dir, const char *name)
{
        char source[sizeof(call_source_head) + sizeof(call_source_tail) + 64];
        char path[PATH_SIZE + 32];
        unsigned char *img;
        size_t size;
        int r;

        snprintf(source, sizeof(source), "%s%s%s", call_source_head, name, call_source_tail);
        r = bu_plugin_make(source, &img, &size);
        if (r < 0)
                die("building the Echo plugin with $CC", r);
        snprintf(path, sizeof(path), "%s/%s.so", dir, name);
        r = bu_file_put(path, img, size, 0755);
        free(img);
        if (r < 0)
                die(path, r);
}

static bool call_isolation_check(const struct call_figures *f, pid_t daemon)
{
        const struct call_plugin *in0 = &f->before[0], *in1 = &f->after[0];
        const struct call_plugin *x0 = &f->before[1], *x1 = &f->after[1];

        return strcmp(in0->isolation, call_modes[0]) == 0 && strcmp(in1->isolation, call_modes[0]) == 0 &&
               strcmp(x0->isolation, call_modes[1]) == 0 && strcmp(x1->isolation, call_modes[1]) == 0 &&
               strcmp(in1->state, "loaded") == 0 && strcmp(x1->state, "loaded") == 0 &&
               in0->worker_pid < 0 && x0->worker_pid > 0 && x1->worker_pid == x0->worker_pid &&
               x1->restarts == 0 && x1->faults == 0 && f->worker_ppid == (long)daemon &&
               (pid_t)x0->worker_pid != daemon;
}

static void call_measure(const char *sock, struct call_figures *f)
{
        int fd;

        /* Load both: the isolated one starts its worker. */
        fd = server_wait(sock, &proto_call_load[0], child_daemon, "plughostd");
        for (unsigned k = 0; k < 2; k++)
                call_plugin_ask(fd, &proto_call_load[k], &f->before[k]);
        close(fd);
        servers_check("the Loads");

        /* Interleaved, so that what else the machine does falls on all
         * three: Call is set against Info on the same daemon and plugin. */
        for (unsigned j = 0; j < REPEATS; j++)
                for (unsigned i = 0; i < 2; i++) {
                        load_run(&proto_call_info[0], sock, depths[i], &f->info[i].run[j]);
                        servers_check("the Info load");
                        for (unsigned k = 0; k < 2; k++) {
                                load_run(&proto_call[k], sock, depths[i], &f->load[i][k].run[j]);
                                servers_check("the Call load");
                        }
                }
        for (unsigned k = 0; k < 2; k++) {
                rtt_measure(sock, &proto_call[k], RTT_REQUESTS, RTT_WARMUP, &f->rtt[k]);
                servers_check("the Call round trips");
        }

        fd = sock_connect(sock);
        if (fd < 0)
                die("connecting for Info", fd);
        for (unsigned k = 0; k < 2; k++)
                call_plugin_ask(fd, &proto_call_info[k], &f->after[k]);
        close(fd);
        f->worker_ppid = -1;
        if (f->after[1].worker_pid > 0) {
                f->worker_ppid = proc_ppid((pid_t)f->after[1].worker_pid);
                proc_mem_read((pid_t)f->after[1].worker_pid, &f->worker_mem);
        }
        f->isolated_ok = call_isolation_check(f, child_daemon);
}

static bool rtt_clean(const struct rtt_result *r)
{
        return r->n == RTT_REQUESTS && r->bad == 0 && r->failure == 0;
}

static void print_call(const struct call_figures *f, const char *worker_path)
{
        const struct call_plugin *x = &f->after[1];
        double delta = f->rtt[1].p50_us - f->rtt[0].p50_us;
        bool rtt_ok = rtt_clean(&f->rtt[0]) && rtt_clean(&f->rtt[1]);

        printf("   plugins: %s (in-process) and %s ([Plugin %s] Isolation=process), built from one\n"
               "   source with $CC; Echo answers with its parameters: %s -> %s\n",
               CALL_IN, CALL_ISO, CALL_ISO, "{\"n\":1}", CALL_REPLY);
        printf("   %s: isolation %s; %s: isolation %s, worker pid %ld (%s, parent %ld), "
               "VmRSS %ld KiB\n", CALL_IN, f->after[0].isolation, CALL_ISO, x->isolation,
               x->worker_pid, f->worker_mem.name[0] ? f->worker_mem.name : "?", f->worker_ppid,
               f->worker_mem.rss_kib);
        printf("   WorkerPath=%s\n", worker_path);
        if (!f->isolated_ok)
                printf("   NOT AS CONFIGURED (isolation, worker pid, restarts %ld, faults %ld): the rows\n"
                       "   below do not compare what they should, and no target is met\n",
                       x->restarts, x->faults);
        printf("   each row the median of %u runs (lowest..highest); each repetition runs Info of\n"
               "   %s, then Call of %s and of %s, at each depth\n", REPEATS, CALL_IN, CALL_IN, CALL_ISO);
        for (unsigned i = 0; i < 2; i++) {
                depth_title(i);
                set_row(&proto_call_info[0], &f->info[i]);
                for (unsigned k = 0; k < 2; k++)
                        set_row(&proto_call[k], &f->load[i][k]);
        }
        printf("   (c) round trips on 1 connection: %u requests after %u warm-up, each sent when\n"
               "       the previous answer is in; not pinned\n", RTT_REQUESTS, RTT_WARMUP);
        printf("   %-44s %8s %8s %8s %8s %8s\n", "", "p50", "p99", "p99.9", "max", "mean");
        for (unsigned k = 0; k < 2; k++)
                rtt_row(proto_call[k].label, &f->rtt[k]);
        for (unsigned k = 0; k < 2; k++) {
                uint64_t got = f->rtt[k].n + (f->rtt[k].n ? RTT_WARMUP : 0);

                for (unsigned i = 0; i < 2; i++)
                        for (unsigned j = 0; j < REPEATS; j++)
                                got += f->load[i][k].run[j].replies;

                printf("   Info %-6s after the runs: calls %ld, failed %ld (the client got %llu answers)\n",
                       call_names[k], f->after[k].calls, f->after[k].calls_failed,
                       (unsigned long long)got);
        }
        printf("   worker of %s after the runs: pid %ld, restarts %ld, faults %ld\n", CALL_ISO,
               x->worker_pid, x->restarts, x->faults);

        printf("\n   %-26s %-10s %14s %14s %9s %9s\n", "Call of a loaded plugin", "isolation",
               "(a) 1/conn", "(b) 16/conn", "p50", "p99");
        for (unsigned k = 0; k < 2; k++)
                printf("   %-26s %-10s %10.0f r/s %10.0f r/s %6.1f us %6.1f us\n", call_names[k],
                       f->after[k].isolation, set_rps(&f->load[0][k]), set_rps(&f->load[1][k]),
                       f->rtt[k].p50_us,
                       f->rtt[k].p99_us);
        for (unsigned i = 0; i < 2; i++) {
                const struct load_set *in = &f->load[i][0], *iso = &f->load[i][1];
                double ratio = set_ratio(iso, in);
                char label[64];

                snprintf(label, sizeof(label), "isolated / in-process req/s, (%c)", 'a' + i);
                printf("   %-44s %8.2f x     target >= %.1fx: %s\n", label, ratio, TARGET_CALL_RATIO,
                       bu_met(f->isolated_ok && set_clean(in) && set_clean(iso) &&
                              ratio >= TARGET_CALL_RATIO));
        }
        for (unsigned i = 0; i < 2; i++) {
                const struct load_set *in = &f->load[i][0], *info = &f->info[i];
                double ratio = set_ratio(in, info);
                bool met = f->isolated_ok && set_clean(in) && set_clean(info) &&
                           ratio >= TARGET_CALL_INFO_RATIO;
                char label[64], target[32];

                snprintf(label, sizeof(label), "in-process Call / Info req/s, (%c)", 'a' + i);
                printf("   %-44s %8.2f x     target >= %.1fx: %s\n", label, ratio,
                       TARGET_CALL_INFO_RATIO, bu_met(met));
                snprintf(label, sizeof(label), "Call (in-process) / Info req/s, %u in flight", depths[i]);
                snprintf(target, sizeof(target), ">= %.1fx", TARGET_CALL_INFO_RATIO);
                summary_add(label, target, bu_met(met), "%.2f x", ratio);
        }
        printf("   %-44s %+8.1f us    target <= %.0f us: %s\n", "isolated p50 - in-process p50", delta,
               TARGET_CALL_P50_DELTA_US,
               bu_met(f->isolated_ok && rtt_ok && delta <= TARGET_CALL_P50_DELTA_US));
        printf("   %-44s %+8.1f us    (for information)\n", "isolated p99 - in-process p99",
               f->rtt[1].p99_us - f->rtt[0].p99_us);
        printf("\n");
}

static void bench_call(void)
{
        char dir[PATH_SIZE], sock[PATH_SIZE], log[PATH_SIZE], worker[PATH_SIZE + 32];
        char conf[2 * PATH_SIZE], how[128];
        struct call_figures *f = calloc(1, sizeof(*f));
        uint64_t t0 = bu_now_ns();
        int r;

        if (!f)
                die("calloc", -ENOMEM);
        snprintf(worker, sizeof(worker), "%s/plughost-worker", builddir);
        if (access(worker, X_OK) < 0)
                die(worker, -errno);
        bu_dir_path(dir, sizeof(dir), "calls");
        if (mkdir(dir, 0755) < 0)
                die("mkdir", -errno);
        for (unsigned k = 0; k < 2; k++)
                call_plugin_build(dir, call_names[k]);
        snprintf(conf, sizeof(conf), "[Daemon]\nWorkerPath=%s\n\n[Plugin %s]\nIsolation=process\n",
                 worker, CALL_ISO);

        printf("\n6. Call of a loaded plugin, in-process against Info and against isolated, on one\n"
               "   plughostd (the client of section 1; both plugins loaded first, then the runs\n"
               "   alternate between them)\n");
        r = daemon_start("calls", dir, conf, NULL);
        if (r < 0)
                die("starting plughostd", r);
        bu_dir_path(sock, sizeof(sock), "calls.sock");
        call_measure(sock, f);
        print_call(f, worker);

        if (child_ended(child_daemon, how, sizeof(how))) {
                child_daemon = 0;
                printf("   plughostd DIED during the runs: %s\n", how);
        } else {
                child_stop(&child_daemon, how, sizeof(how));
                printf("   plughostd stopped by SIGTERM: %s\n", how);
        }
        bu_dir_path(log, sizeof(log), "calls.log");
        log_summary("plughostd", log, daemon_bad_marks);
        printf("   section 6 took %.1f s\n", (double)(bu_now_ns() - t0) / 1e9);
        free(f);
}

/* ---- main ------------------------------------------------------------------------------ */

int main(void)
{
        uint64_t t0 = bu_now_ns();
        const char *only;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        bu_print_header("bench-daemon", sysconf(_SC_NPROCESSORS_ONLN));
        daemon_locate();
        r = bu_dir_make(bench_dir, 3, cleanup, WATCHDOG_SEC,
                        "bench-daemon: watchdog: the run took too long\n");
        if (r < 0)
                die("mkdtemp", r);
        printf("scratch %s\n", bench_dir);
        /* PH_BENCH_ONLY=call: section 6 alone, for comparing Call changes. */
        only = getenv("PH_BENCH_ONLY");
        if (only && *only && strcmp(only, "call") != 0)
                die("PH_BENCH_ONLY (only \"call\" is known)", -EINVAL);
        if (!only || !*only) {
                bench_load();
                bench_startup();
        }
        bench_call();
        print_summary();
        printf("\nbench-daemon took %.1f s\n", (double)(bu_now_ns() - t0) / 1e9);
        cleanup();
        return 0;
}
