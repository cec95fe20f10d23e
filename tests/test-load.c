/* Load and soak test of plughostd: 1,000 connections from one process
 * pipeline a mix of List, Info and Call (2 to 4 requests in flight each), a
 * few more hold Monitor streams, while counted is hot-replaced every 100 ms.
 * Every reply must be the right one for its request, in order; the daemon
 * must keep its memory and fds, and stop cleanly (no sanitizer report).
 * PH_SOAK_SECONDS (`make soak`) runs the main phase that long instead. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon-util.h"
#include "testutil.h"

#define N_CONNS 1000u                   /* in all, monitors included */
#define N_MONITORS 8u
#define DEPTH_MIN 2u
#define DEPTH_MAX 4u
#define OUT_MAX 1024u                   /* DEPTH_MAX requests, each < 200 bytes */
#define MAIN_REQUESTS 100000u           /* after the warm-up, unless soaking */
#define TOTAL_REQUESTS 100000u          /* at least, warm-up included */
#define RUN_DEADLINE_MS 60000           /* the main phase, unless soaking */
#define DRAIN_MS 30000                  /* replies still owed when we stop asking */
#define REPLACE_MS 100
#define QUIET_MS 1000                   /* no Monitor event for this long: settled */
#define SETTLE_MS 15000
#define SOAK_REPORT_MS 30000
#define FD_SLACK 2
#define STOP_MS 30000
/* Warm-up: rounds of WARMUP_REQUESTS until the RSS stayed within
 * WARM_CALM_PCT of its highest for WARM_CALM_ROUNDS rounds in a row
 * (allocators take a while to reach their working set), or the budget
 * is spent. */
#define WARMUP_REQUESTS 20000u
#define WARM_CALM_PCT 1
#define WARM_CALM_ROUNDS 3u
#ifdef __SANITIZE_ADDRESS__
/* ASan's allocator climbs for some 300,000 requests before its footprint
 * levels off (measured; the plain build's within a second), and swings by
 * 15% after: its bound only catches gross growth. Leaks are
 * LeakSanitizer's to find, at exit. */
#define ASAN_QUARANTINE_MB 16           /* the daemon's */
#define WARMUP_BUDGET_MS 20000
#define RSS_SLACK_PCT 50
#else
#define WARMUP_BUDGET_MS 30000
#define RSS_SLACK_PCT 10
#endif

/* What a request asked, to check its reply against. */
enum kind { K_LIST, K_INFO, K_VERSION, K_HELLO, _K_MAX };
static const char *const kind_names[_K_MAX] = { "List", "Info", "Call Version", "Call Hello" };
static const char *const info_names[] = { "hello", "counted" };

typedef struct expect {
        uint8_t kind;
        uint32_t arg;                   /* Info: index in info_names; Hello: sequence */
} expect;

typedef struct lclient {
        du_conn *c;                     /* fd and read buffer */
        unsigned idx;
        bool monitor;
        unsigned depth;
        expect q[DEPTH_MAX];
        unsigned q_head, q_n;
        char out[OUT_MAX];
        size_t out_len;
        bool want_out;
        uint32_t seq;
        uint64_t events, ev_hash;       /* monitors: what they saw */
} lclient;

typedef struct load {
        du_daemon d;
        lclient *cl;
        int ep;
        uint32_t rng;
        /* requests */
        uint64_t issued, replied, busy, by_kind[_K_MAX], versions[2];
        uint64_t issue_limit;
        /* hot replacement */
        unsigned char *img[2];
        size_t img_size[2];
        char *target, *tmp;
        bool replacing;
        unsigned replaces, current;     /* current: 0 v1, 1 v2 on disk */
        long long next_replace_ms;
        /* events */
        uint64_t ev_changed, ev_loaded, ev_other;
        long long last_event_ms;
} load;

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

static uint32_t rnd(load *L)
{
        L->rng ^= L->rng << 13;
        L->rng ^= L->rng >> 17;
        L->rng ^= L->rng << 5;
        return L->rng;
}

static uint64_t fnv(uint64_t h, const char *s)
{
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
        return h;
}

/* Open file descriptors of pid. */
static long fd_count(pid_t pid)
{
        char path[64];
        struct dirent *e;
        long n = 0;
        DIR *dir;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        dir = opendir(path);
        ck_assert_msg(dir != NULL, "%s: %s", path, strerror(errno));
        while ((e = readdir(dir)))
                n += e->d_name[0] != '.';
        closedir(dir);
        return n;
}

/* ---- the daemon ---- */

/* What the daemon logged, but the routine lines of the replacement, to
 * explain a failure. */
static void log_dump(const load *L)
{
        char line[1024];
        FILE *f = fopen(L->d.log, "re");

        if (!f)
                return;
        fprintf(stderr, "---- %s, without the lines on counted changed or loaded ----\n", L->d.log);
        while (fgets(line, sizeof(line), f))
                if (!strstr(line, "plugin counted changed") && !strstr(line, "plugin counted loaded"))
                        fputs(line, stderr);
        fclose(f);
}

/* ck_assert_msg, with the daemon's log on failure. */
#define load_assert(L, cond, ...)                                       \
        do {                                                            \
                if (!(cond)) {                                          \
                        log_dump(L);                                    \
                        ck_abort_msg(__VA_ARGS__);                      \
                }                                                       \
        } while (0)

/* Copies the other version of counted over the plugin's file name: the
 * bytes to a dotfile, then a rename, as a package manager does. */
static void replace_tick(load *L, long long now)
{
        unsigned next = L->current ^ 1u;

        if (!L->replacing || now < L->next_replace_ms)
                return;
        tu_write_file(L->tmp, L->img[next], L->img_size[next]);
        ck_assert_msg(rename(L->tmp, L->target) == 0, "rename: %s", strerror(errno));
        L->current = next;
        L->replaces++;
        L->next_replace_ms += REPLACE_MS;
        if (L->next_replace_ms <= now)
                L->next_replace_ms = now + REPLACE_MS;
}

/* SIGTERM, and the daemon must exit 0 with nothing from the sanitizers in
 * its log (its stderr); du_stop would remove the log with the directory. */
static void stop_clean(load *L)
{
        static const char *const marks[] = { "ERROR: AddressSanitizer", "LeakSanitizer",
                                             "runtime error:", "ERROR: ThreadSanitizer" };
        long long deadline = now_ms() + STOP_MS;
        unsigned char *log;
        size_t size;
        int status = 0;
        pid_t r;

        ck_assert_int_eq(kill(L->d.pid, SIGTERM), 0);
        while ((r = waitpid(L->d.pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
                nap_ms(10);
        if (r == 0)
                kill(L->d.pid, SIGKILL), waitpid(L->d.pid, &status, 0);
        L->d.pid = 0;
        log = tu_read_file(L->d.log, &size);
        log[size] = '\0';
        for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
                const char *at = strstr((char *)log, marks[i]);

                ck_assert_msg(!at, "the daemon's log has \"%s\":\n%.4000s", marks[i],
                              at > (char *)log + 200 ? at - 200 : (char *)log);
        }
        ck_assert_msg(r != 0, "plughostd did not stop within %d ms of SIGTERM", STOP_MS);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "plughostd ended with status 0x%x:\n%.4000s", status,
                      size > 4000 ? (char *)log + size - 4000 : (char *)log);
        free(log);
        du_stop(&L->d);         /* not running any more: removes the directory */
}

static json_t *status(load *L)
{
        json_t *r = du_request(&L->d, "{\"method\":\"io.plughost.Status\"}");

        ck_assert_ptr_null(du_error(r));
        return r;
}

/* ---- clients ---- */

static void client_arm(load *L, lclient *cl, bool out)
{
        struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = cl };

        if (cl->want_out == out)
                return;
        cl->want_out = out;
        ck_assert_int_eq(epoll_ctl(L->ep, EPOLL_CTL_MOD, cl->c->fd, &ev), 0);
}

static void client_flush(load *L, lclient *cl)
{
        while (cl->out_len > 0) {
                ssize_t n = send(cl->c->fd, cl->out, cl->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                ck_assert_msg(n > 0, "client %u: send: %s", cl->idx, strerror(errno));
                memmove(cl->out, cl->out + n, cl->out_len - (size_t)n);
                cl->out_len -= (size_t)n;
        }
        client_arm(L, cl, cl->out_len > 0);
}

/* Asks for more while the phase allows, up to the client's depth. */
static void client_issue(load *L, lclient *cl)
{
        while (!cl->monitor && cl->q_n < cl->depth && L->issued < L->issue_limit) {
                expect *e = &cl->q[(cl->q_head + cl->q_n) % DEPTH_MAX];
                uint32_t pick = rnd(L) % 100;
                char *at = cl->out + cl->out_len;
                size_t room = OUT_MAX - cl->out_len;
                int n;

                if (pick < 10) {
                        e->kind = K_LIST;
                        n = snprintf(at, room, "{\"method\":\"io.plughost.List\"}");
                } else if (pick < 40) {
                        e->kind = K_INFO;
                        e->arg = rnd(L) % 2;
                        n = snprintf(at, room, "{\"method\":\"io.plughost.Info\",\"parameters\":"
                                     "{\"name\":\"%s\"}}", info_names[e->arg]);
                } else if (pick < 65) {
                        e->kind = K_VERSION;
                        n = snprintf(at, room, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                     "{\"name\":\"counted\",\"method\":\"Version\"}}");
                } else {
                        e->kind = K_HELLO;
                        e->arg = cl->seq++;
                        n = snprintf(at, room, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                     "{\"name\":\"hello\",\"method\":\"Hello\","
                                     "\"parameters\":{\"name\":\"c%u-%u\"}}}", cl->idx, e->arg);
                }
                ck_assert(n > 0 && (size_t)n < room);
                cl->out_len += (size_t)n + 1;   /* the NUL delimiter */
                cl->q_n++;
                L->issued++;
        }
        client_flush(L, cl);
}

static bool plugins_have(json_t *plugins, const char *name)
{
        size_t i;
        json_t *p;

        json_array_foreach(plugins, i, p)
                if (json_is_string(json_object_get(p, "name")) &&
                    strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
                        return true;
        return false;
}

static int version_index(const char *v)
{
        return strcmp(v, "1.0.0") == 0 ? 0 : strcmp(v, "2.0.0") == 0 ? 1 : -1;
}

/* Checks the reply against the oldest request of the client. */
static void client_reply(load *L, lclient *cl, json_t *r, const char *text)
{
        expect e;
        json_t *p;
        const char *err = du_error(r);

        load_assert(L, cl->q_n > 0, "client %u: a reply nobody asked for: %.2000s", cl->idx, text);
        e = cl->q[cl->q_head];
        cl->q_head = (cl->q_head + 1) % DEPTH_MAX;
        cl->q_n--;
        L->replied++;
        L->by_kind[e.kind]++;
        load_assert(L, !json_is_true(json_object_get(r, "continues")),
                    "client %u: %s answered with continues: %.2000s", cl->idx, kind_names[e.kind], text);
        if (err && strcmp(err, "io.plughost.Busy") == 0) {
                if (L->busy++ == 0)
                        printf("load: first Busy, to %s: %.2000s\n", kind_names[e.kind], text);
                return;
        }
        load_assert(L, !err, "client %u: %s got an error: %.2000s", cl->idx, kind_names[e.kind], text);
        p = json_object_get(r, "parameters");
        load_assert(L, json_is_object(p), "client %u: %s: no parameters: %.2000s", cl->idx,
                    kind_names[e.kind], text);
        switch (e.kind) {
        case K_LIST:
                load_assert(L, plugins_have(json_object_get(p, "plugins"), "hello") &&
                            plugins_have(json_object_get(p, "plugins"), "counted") &&
                            json_is_array(json_object_get(p, "rejected")) &&
                            json_array_size(json_object_get(p, "rejected")) == 0,
                            "client %u: List without hello or counted, or with a rejected "
                            "file: %.2000s", cl->idx, text);
                break;
        case K_INFO:
                load_assert(L, strcmp(du_str(p, "plugin.name"), info_names[e.arg]) == 0,
                            "client %u: Info of %s answered with %.2000s", cl->idx,
                            info_names[e.arg], text);
                load_assert(L, e.arg == 0 || version_index(du_str(p, "plugin.version")) >= 0,
                            "client %u: counted's version: %.2000s", cl->idx, text);
                load_assert(L, json_is_object(json_object_get(p, "counters")),
                            "client %u: Info without counters: %.2000s", cl->idx, text);
                break;
        case K_VERSION: {
                int v = version_index(du_str(p, "result.version"));

                load_assert(L, v >= 0, "client %u: Version answered with %.2000s", cl->idx, text);
                L->versions[v]++;
                break;
        }
        case K_HELLO: {
                char want[64];

                snprintf(want, sizeof(want), "Hello, c%u-%u!", cl->idx, e.arg);
                load_assert(L, strcmp(du_str(p, "result.greeting"), want) == 0,
                            "client %u: Hello expected \"%s\", got %.2000s", cl->idx, want, text);
                break;
        }
        }
}

static void monitor_event(load *L, lclient *cl, json_t *r, const char *text)
{
        const char *kind, *name;

        load_assert(L, json_is_true(json_object_get(r, "continues")) && !du_error(r),
                    "monitor %u: %.2000s", cl->idx, text);
        kind = du_str(du_params(r), "event.kind");
        name = du_str(du_params(r), "event.name");
        cl->events++;
        cl->ev_hash = fnv(fnv(fnv(cl->ev_hash, kind), name), text);
        L->last_event_ms = now_ms();
        if (cl != &L->cl[0])
                return;         /* one monitor counts for all: they must agree */
        if (strcmp(name, "counted") == 0 && strcmp(kind, "changed") == 0)
                L->ev_changed++;
        else if (strcmp(name, "counted") == 0 && strcmp(kind, "loaded") == 0)
                L->ev_loaded++;
        else {
                if (L->ev_other++ == 0)
                        printf("load: unexpected event: %.2000s\n", text);
        }
}

static void client_read(load *L, lclient *cl)
{
        du_conn *c = cl->c;

        for (;;) {
                ssize_t n;
                char *nul, *at;

                if (c->cap - c->len < 65536) {
                        c->cap = c->cap ? c->cap * 2 : 131072;
                        c->buf = realloc(c->buf, c->cap);
                        ck_assert_ptr_nonnull(c->buf);
                }
                n = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                load_assert(L, n >= 0, "client %u: read: %s", cl->idx, strerror(errno));
                load_assert(L, n > 0, "client %u: the daemon hung up with %u replies owed", cl->idx,
                            cl->q_n);
                c->len += (size_t)n;
                at = c->buf;
                while ((nul = memchr(at, '\0', c->len - (size_t)(at - c->buf)))) {
                        json_error_t jerr;
                        json_t *r = json_loadb(at, (size_t)(nul - at), 0, &jerr);

                        load_assert(L, json_is_object(r), "client %u: not a JSON object: %s: %.2000s",
                                    cl->idx, jerr.text, at);
                        if (cl->monitor)
                                monitor_event(L, cl, r, at);
                        else
                                client_reply(L, cl, r, at);
                        json_decref(r);
                        at = nul + 1;
                }
                memmove(c->buf, at, c->len - (size_t)(at - c->buf));
                c->len -= (size_t)(at - c->buf);
        }
        if (!cl->monitor)
                client_issue(L, cl);
}

/* Runs the loop once: replacement, then what the sockets have for us. */
static void loop_once(load *L, int max_ms)
{
        struct epoll_event ev[256];
        long long now = now_ms();
        int n, wait = max_ms;

        replace_tick(L, now);
        if (L->replacing && L->next_replace_ms - now < wait)
                wait = (int)(L->next_replace_ms - now);
        n = epoll_wait(L->ep, ev, 256, wait < 0 ? 0 : wait);
        ck_assert_msg(n >= 0 || errno == EINTR, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
                lclient *cl = ev[i].data.ptr;

                if (ev[i].events & EPOLLOUT)
                        client_flush(L, cl);
                if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                        client_read(L, cl);
        }
}

static void progress(load *L, long long start, uint64_t replied_before, long long now)
{
        double s = (double)(now - start) / 1000.0;
        uint64_t n = L->replied - replied_before;

        printf("load: %6.0f s: %llu replies, %.0f req/s, %u replaces, RSS %ld kB, %ld fds\n", s,
               (unsigned long long)n, s > 0 ? (double)n / s : 0.0, L->replaces,
               du_rss_kb(L->d.pid), fd_count(L->d.pid));
        fflush(stdout);
}

/* Asks until limit requests were sent or until_ms, then waits for every
 * reply owed. */
static void phase(load *L, uint64_t limit, long long until_ms, bool report)
{
        long long start = now_ms(), next_report = start + SOAK_REPORT_MS, drain_deadline = 0;
        uint64_t replied_before = L->replied;

        L->issue_limit = limit;
        for (unsigned i = N_MONITORS; i < N_CONNS; i++)
                client_issue(L, &L->cl[i]);
        for (;;) {
                long long now = now_ms();

                if (L->issue_limit > L->issued && now >= until_ms)
                        L->issue_limit = L->issued;     /* time is up */
                if (L->issued == L->issue_limit) {
                        if (L->replied == L->issued)
                                return;
                        if (!drain_deadline)
                                drain_deadline = now + DRAIN_MS;
                        load_assert(L, now < drain_deadline, "%llu replies never came",
                                    (unsigned long long)(L->issued - L->replied));
                }
                if (report && now >= next_report) {
                        progress(L, start, replied_before, now);
                        next_report += SOAK_REPORT_MS;
                }
                loop_once(L, 50);
        }
}

static long warm_up(load *L, long long deadline)
{
        long rss = 0, high = 0;
        unsigned calm = 0, rounds = 0;

        while (calm < WARM_CALM_ROUNDS && now_ms() < deadline) {
                phase(L, L->issued + WARMUP_REQUESTS, deadline, false);
                rss = du_rss_kb(L->d.pid);
                rounds++;
                calm = high && rss * 100 <= high * (100 + WARM_CALM_PCT) ? calm + 1 : 0;
                if (rss > high)
                        high = rss;
        }
        if (calm < WARM_CALM_ROUNDS)
                printf("load: warm-up: the RSS still grew after %u rounds\n", rounds);
        return rss;
}

/* Runs the loop until no Monitor event came for QUIET_MS. */
static void settle(load *L)
{
        long long deadline = now_ms() + SETTLE_MS;

        L->last_event_ms = now_ms();
        while (now_ms() - L->last_event_ms < QUIET_MS) {
                ck_assert_msg(now_ms() < deadline, "Monitor events still flow %d ms after the "
                              "last replacement", SETTLE_MS);
                loop_once(L, 50);
        }
}

static void clients_open(load *L)
{
        L->ep = epoll_create1(EPOLL_CLOEXEC);
        ck_assert_int_ge(L->ep, 0);
        L->cl = calloc(N_CONNS, sizeof(*L->cl));
        ck_assert_ptr_nonnull(L->cl);
        for (unsigned i = 0; i < N_CONNS; i++) {
                lclient *cl = &L->cl[i];
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = cl };

                cl->idx = i;
                cl->monitor = i < N_MONITORS;
                cl->depth = DEPTH_MIN + i % (DEPTH_MAX - DEPTH_MIN + 1);
                cl->ev_hash = 0xcbf29ce484222325ull;
                cl->c = du_connect(&L->d);
                if (cl->monitor) {
                        /* Subscribed before anything changes: all see the same. */
                        json_t *r;

                        du_send(cl->c, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
                        r = du_recv(cl->c);
                        ck_assert_ptr_nonnull(r);
                        ck_assert(json_is_true(json_object_get(r, "continues")) && !du_error(r));
                        json_decref(r);
                }
                ck_assert_int_eq(fcntl(cl->c->fd, F_SETFL, O_NONBLOCK), 0);
                ck_assert_int_eq(epoll_ctl(L->ep, EPOLL_CTL_ADD, cl->c->fd, &ev), 0);
        }
}

/* Closes every client; nothing may be owed or left unread. */
static void clients_close(load *L)
{
        loop_once(L, 200);      /* a stray reply would fail here */
        for (unsigned i = 0; i < N_CONNS; i++) {
                ck_assert_uint_eq(L->cl[i].q_n, 0);
                ck_assert_msg(L->cl[i].c->len == 0, "client %u: a partial reply is left", i);
                du_close(L->cl[i].c);
        }
        free(L->cl);
        L->cl = NULL;
        close(L->ep);
}

/* After a replacement stops, the daemon ends up serving the file's version. */
static void assert_converged(load *L)
{
        const char *want = L->current ? "2.0.0" : "1.0.0";
        long long deadline = now_ms() + DU_TIMEOUT_MS;
        json_t *r;

        for (;;) {
                r = du_request(&L->d, "{\"method\":\"io.plughost.Info\","
                                      "\"parameters\":{\"name\":\"counted\"}}");
                ck_assert_ptr_null(du_error(r));
                if (strcmp(du_str(du_params(r), "plugin.version"), want) == 0 &&
                    strcmp(du_str(du_params(r), "plugin.state"), "loaded") == 0)
                        break;
                ck_assert_msg(now_ms() < deadline, "counted never settled on %s: %s, %s", want,
                              du_str(du_params(r), "plugin.version"), du_str(du_params(r), "plugin.state"));
                json_decref(r);
                nap_ms(20);
        }
        json_decref(r);
        r = du_request(&L->d, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counted\","
                              "\"method\":\"Version\"}}");
        ck_assert_ptr_null(du_error(r));
        ck_assert_str_eq(du_str(du_params(r), "result.version"), want);
        json_decref(r);
}

static unsigned soak_seconds(void)
{
        const char *s = getenv("PH_SOAK_SECONDS");

        return s && *s ? (unsigned)strtoul(s, NULL, 10) : 0;
}

START_TEST(test_load)
{
        static load L;
        unsigned soak = soak_seconds();
        struct rlimit rl;
        long fds_before, fds_after, rss_warm, rss_end, rss_idle;
        long long t0, t_warm, t_end, deadline;
        uint64_t warm;
        json_t *r;

        /* 1,000 sockets and the test's own files. */
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        ck_assert_msg(rl.rlim_cur > N_CONNS + 64, "RLIMIT_NOFILE is %llu",
                      (unsigned long long)rl.rlim_cur);

#ifdef __SANITIZE_ADDRESS__
        {
                /* ASan holds freed memory back (256 MB by default) and the
                 * daemon's RSS grows until that is full: a small quarantine
                 * fills during the warm-up. */
                const char *old = getenv("ASAN_OPTIONS");
                char *opts;

                ck_assert_int_ge(asprintf(&opts, "%s%squarantine_size_mb=%d", old ? old : "",
                                          old && *old ? ":" : "", ASAN_QUARANTINE_MB), 0);
                setenv("ASAN_OPTIONS", opts, 1);
                free(opts);
        }
#endif
        memset(&L, 0, sizeof(L));
        L.rng = 0x9e3779b9u;
        du_init(&L.d);
        du_write_config(&L.d, "[Daemon]\nWorkers=16\nMaxConnectionsPerUser=2048\n"
                              "[Policy]\nMaxCallsPerUser=65536\n");
        L.img[0] = tu_read_file(tu_fixture("counted-v1.so"), &L.img_size[0]);
        L.img[1] = tu_read_file(tu_fixture("counted-v2.so"), &L.img_size[1]);
        du_add_plugin(&L.d, tu_example("hello.so"), "hello.so");
        du_add_plugin(&L.d, tu_fixture("counted-v1.so"), "counted.so");
        L.target = tu_path(L.d.plugins, "counted.so");
        L.tmp = tu_path(L.d.plugins, ".counted.so.new");
        du_start(&L.d);

        /* Both loaded: a replacement then loads the new version at once. */
        r = du_request(&L.d, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counted\","
                             "\"method\":\"Version\"}}");
        ck_assert_str_eq(du_str(du_params(r), "result.version"), "1.0.0");
        json_decref(r);
        r = du_request(&L.d, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\","
                             "\"method\":\"Hello\"}}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        fds_before = fd_count(L.d.pid);

        clients_open(&L);
        r = status(&L);
        ck_assert_int_eq(du_int(du_params(r), "clients"), N_CONNS + 1);
        json_decref(r);

        t0 = now_ms();
        L.replacing = true;
        L.next_replace_ms = t0 + REPLACE_MS;
        rss_warm = warm_up(&L, t0 + WARMUP_BUDGET_MS);
        t_warm = now_ms();
        warm = L.replied;
        printf("load: warm-up: %llu requests in %.1f s, %u replaces, RSS %ld kB\n",
               (unsigned long long)warm, (double)(t_warm - t0) / 1000.0, L.replaces, rss_warm);
        fflush(stdout);

        if (soak)
                phase(&L, UINT64_MAX, t_warm + soak * 1000ll, true);
        else
                phase(&L, warm + MAIN_REQUESTS, t_warm + RUN_DEADLINE_MS, false);
        t_end = now_ms();
        rss_end = du_rss_kb(L.d.pid);
        L.replacing = false;
        settle(&L);

        printf("load: %llu requests (%llu List, %llu Info, %llu Version, %llu Hello) in %.1f s, "
               "%.0f req/s\n",
               (unsigned long long)L.replied, (unsigned long long)L.by_kind[K_LIST],
               (unsigned long long)L.by_kind[K_INFO], (unsigned long long)L.by_kind[K_VERSION],
               (unsigned long long)L.by_kind[K_HELLO], (double)(t_end - t0) / 1000.0,
               (double)L.replied * 1000.0 / (double)(t_end - t0));
        printf("load: %u replaces; Version answered 1.0.0 %llu times, 2.0.0 %llu times; "
               "Busy %llu\n", L.replaces, (unsigned long long)L.versions[0],
               (unsigned long long)L.versions[1], (unsigned long long)L.busy);
        printf("load: Monitor: %llu events each (%llu changed, %llu loaded, %llu other)\n",
               (unsigned long long)L.cl[0].events, (unsigned long long)L.ev_changed,
               (unsigned long long)L.ev_loaded, (unsigned long long)L.ev_other);
        printf("load: RSS %ld kB after warm-up, %ld kB after the run (%+.1f%%), %.1f s and "
               "%llu requests later\n", rss_warm, rss_end,
               100.0 * (double)(rss_end - rss_warm) / (double)rss_warm,
               (double)(t_end - t_warm) / 1000.0, (unsigned long long)(L.replied - warm));
        fflush(stdout);

        ck_assert_msg(L.replied >= TOTAL_REQUESTS, "only %llu requests, %llu after the warm-up, "
                      "within %d ms", (unsigned long long)L.replied,
                      (unsigned long long)(L.replied - warm), RUN_DEADLINE_MS);
        ck_assert_msg(L.busy == 0, "%llu Busy replies within the caps", (unsigned long long)L.busy);
        ck_assert_msg(L.versions[0] > 0 && L.versions[1] > 0, "one version never answered");
        ck_assert_msg(L.replaces >= 10, "only %u replaces", L.replaces);
        for (unsigned i = 1; i < N_MONITORS; i++)
                ck_assert_msg(L.cl[i].events == L.cl[0].events && L.cl[i].ev_hash == L.cl[0].ev_hash,
                              "monitor %u saw %llu events, monitor 0 %llu", i,
                              (unsigned long long)L.cl[i].events, (unsigned long long)L.cl[0].events);
        ck_assert_msg(L.ev_other == 0, "%llu unexpected events", (unsigned long long)L.ev_other);
        ck_assert_msg(L.ev_changed > 0 && L.ev_loaded > 0, "no changed or loaded events");
        ck_assert_msg(rss_end * 100 <= rss_warm * (100 + RSS_SLACK_PCT),
                      "RSS grew from %ld kB after warm-up to %ld kB", rss_warm, rss_end);

        assert_converged(&L);
        r = status(&L);
        ck_assert_int_eq(du_int(du_params(r), "counters.callsFailed"), 0);
        json_decref(r);

        clients_close(&L);
        /* The daemon closes its ends, and reaps retired instances, on its own time. */
        deadline = now_ms() + DU_TIMEOUT_MS;
        while ((fds_after = fd_count(L.d.pid)) > fds_before + FD_SLACK && now_ms() < deadline)
                nap_ms(20);
        r = status(&L);
        ck_assert_int_eq(du_int(du_params(r), "clients"), 1);
        json_decref(r);
        rss_idle = du_rss_kb(L.d.pid);
        printf("load: fds %ld before the clients, %ld after; RSS %ld kB with no clients\n",
               fds_before, fds_after, rss_idle);
        fflush(stdout);
        ck_assert_msg(fds_after <= fds_before + FD_SLACK && fds_after >= fds_before - FD_SLACK,
                      "the daemon had %ld fds before and %ld after", fds_before, fds_after);

        stop_clean(&L);
        free(L.img[0]);
        free(L.img[1]);
        free(L.target);
        free(L.tmp);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("load");
        TCase *tc = tcase_create("load");
        unsigned soak = soak_seconds();

        tcase_set_timeout(tc, soak ? (double)soak + 600 : 300);
        tcase_add_test(tc, test_load);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
