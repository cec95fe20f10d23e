/* The daemon's side of isolated plugins: spawning plughost-worker, the
 * exchanges with it (protocol/worker.h), and what a fault becomes. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "varlink.h"
#include "worker-internal.h"
#include "../protocol/worker.h"

/* How long a worker that hung up may take to exit before it is killed. */
#define WK_EXIT_GRACE_MS 500u
/* fini's own deadline is the call timeout; past it, a kill. */


static __thread ph_fault wk_fault;
/* Every worker's restarts and faults since the daemon started (Metrics):
 * a worker's own counts start again with each generation. */
static atomic_uint_fast64_t wk_restarts_total, wk_faults_total;

uint64_t wk_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool ph_worker_take_fault(ph_fault *ret)
{
        if (wk_fault.kind == PH_FAULT_NONE)
                return false;
        *ret = wk_fault;
        memset(&wk_fault, 0, sizeof(wk_fault));
        return true;
}

void ph_worker_totals(uint64_t *ret_restarts, uint64_t *ret_faults)
{
        *ret_restarts = atomic_load(&wk_restarts_total);
        *ret_faults = atomic_load(&wk_faults_total);
}

void ph_worker_stats_get(void *handle, ph_worker_stats *ret)
{
        wk *w = handle;

        pthread_mutex_lock(&w->stats_lock);
        *ret = w->stats;
        pthread_mutex_unlock(&w->stats_lock);
}

static void wk_stats_pid(wk *w, pid_t pid, bool restart)
{
        pthread_mutex_lock(&w->stats_lock);
        w->stats.pid = pid;
        if (restart) {
                w->stats.restarts++;
                atomic_fetch_add(&wk_restarts_total, 1);
        }
        pthread_mutex_unlock(&w->stats_lock);
}

/* ---- the process ---- */

/* Reaps the worker (killing it first if kill_now, or if it is still alive
 * after the grace) and says how it ended in f. Closes our end. */
void wk_reap(wk *w, bool kill_now, ph_fault *f)
{
        int status = 0;
        pid_t r = 0;

        if (!kill_now) {
                for (unsigned waited = 0; waited < WK_EXIT_GRACE_MS; waited += 5) {
                        r = waitpid(w->pid, &status, WNOHANG);
                        if (r != 0)
                                break;
                        usleep(5000);
                }
        }
        bool killed = r == 0;

        if (r == 0) {
                /* Its own process group: threads and all. */
                kill(-w->pid, SIGKILL);
                kill(w->pid, SIGKILL);
                do
                        r = waitpid(w->pid, &status, 0);
                while (r < 0 && errno == EINTR);
        }
        if (f) {
                f->signal = 0;
                f->exit_status = -1;
                if (r > 0 && WIFSIGNALED(status)) {
                        f->signal = WTERMSIG(status);
                        snprintf(f->what, sizeof(f->what), "signal %d (SIG%s)", f->signal,
                                 sigabbrev_np(f->signal) ? sigabbrev_np(f->signal) : "?");
                        if (killed && !kill_now)
                                snprintf(f->what, sizeof(f->what),
                                         "it closed its connection without exiting; killed");
                } else if (r > 0 && WIFEXITED(status)) {
                        f->exit_status = WEXITSTATUS(status);
                        snprintf(f->what, sizeof(f->what), "exit status %d%s", f->exit_status,
                                 f->exit_status == PH_WORKER_EXIT_NOMEM
                                         ? " (out of memory for a request: LimitAS=)" : "");
                } else {
                        snprintf(f->what, sizeof(f->what), "lost (waitpid: %s)", strerror(errno));
                }
        }
        close(w->fd);
        w->fd = -1;
        ph_framer_free(w->fr);
        w->fr = NULL;
        w->pid = 0;
        wk_stats_pid(w, 0, false);
}

/* exec, not fork: the worker starts from a clean image with the socket on
 * PH_WORKER_FD, /dev/null for input, our stderr for its output, no other
 * descriptor, no environment, every signal at its default and unblocked,
 * in a session of its own. */
static int wk_spawn(wk *w, char *err, size_t err_size)
{
        char pid[24];
        char *argv[] = { "plughost-worker", w->name, pid, NULL };
        char *envp[] = { NULL };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        int sv[2], child, r, out = -1;

        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                r = -errno;
                snprintf(err, err_size, "%s: socketpair: %s", w->name, strerror(-r));
                return r;
        }
        child = sv[1];
        if (child == PH_WORKER_FD) {
                /* dup2 onto itself would keep FD_CLOEXEC. */
                child = fcntl(sv[1], F_DUPFD_CLOEXEC, PH_WORKER_FD + 1);
                close(sv[1]);
                if (child < 0) {
                        r = -errno;
                        close(sv[0]);
                        snprintf(err, err_size, "%s: dup: %s", w->name, strerror(-r));
                        return r;
                }
        }
        /* Under journald the worker writes to a stream of its own, so
         * that nothing it prints passes for the daemon's. */
        if (ph_log_is_journal()) {
                char ident[PH_NAME_MAX + 24];

                snprintf(ident, sizeof(ident), "plughost-worker-%s", w->name);
                out = sd_journal_stream_fd(ident, LOG_INFO, 0);
                if (out >= 0 && out <= PH_WORKER_FD) {
                        int moved = fcntl(out, F_DUPFD_CLOEXEC, PH_WORKER_FD + 1);

                        close(out);
                        out = moved;
                }
        }
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (out >= 0) {
                posix_spawn_file_actions_adddup2(&fa, out, 1);
                posix_spawn_file_actions_adddup2(&fa, out, 2);
        } else {
                posix_spawn_file_actions_adddup2(&fa, 2, 1);
        }
        posix_spawn_file_actions_adddup2(&fa, child, PH_WORKER_FD);
        posix_spawn_file_actions_addclosefrom_np(&fa, PH_WORKER_FD + 1);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETSID);
        r = -posix_spawn(&w->pid, w->path, &fa, &attr, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(child);
        if (out >= 0)
                close(out);
        if (r < 0) {
                close(sv[0]);
                w->pid = 0;
                snprintf(err, err_size, "%s: cannot start %s: %s", w->name, w->path, strerror(-r));
                return r;
        }
        w->fd = sv[0];
        r = ph_framer_new(WK_MESSAGE_MAX, &w->fr);
        if (r < 0) {
                wk_reap(w, true, NULL);
                snprintf(err, err_size, "%s: out of memory", w->name);
                return r;
        }
        return 0;
}

/* ---- one exchange ---- */

/* Sends msg (taken), with fd as SCM_RIGHTS if >= 0, before deadline_ms:
 * a worker that stops reading cannot hold the thread (-ETIMEDOUT). */
static int wk_send(wk *w, json_t *msg, int fd, uint64_t deadline_ms)
{
        char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
        char cbuf[CMSG_SPACE(sizeof(int))];
        size_t len, off = 0;
        int r = 0;

        json_decref(msg);
        if (!text)
                return -ENOMEM;
        len = strlen(text) + 1;
        while (off < len) {
                struct iovec iov = { text + off, len - off };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t n;

                if (fd >= 0 && off == 0) {
                        struct cmsghdr *c;

                        memset(cbuf, 0, sizeof(cbuf));
                        mh.msg_control = cbuf;
                        mh.msg_controllen = sizeof(cbuf);
                        c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(c), &fd, sizeof(int));
                }
                n = sendmsg(w->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd pfd = { .fd = w->fd, .events = POLLOUT };
                        uint64_t now = wk_now_ms();

                        if (now >= deadline_ms) {
                                r = -ETIMEDOUT;
                                break;
                        }
                        if (poll(&pfd, 1, (int)(deadline_ms - now)) < 0 && errno != EINTR) {
                                r = -errno;
                                break;
                        }
                        continue;
                }
                if (n < 0) {
                        r = -errno;
                        break;
                }
                off += (size_t)n;
        }
        free(text);
        return r;
}

/* The worker's answer within deadline_ms: 0 with *ret, -ETIMEDOUT, or
 * -EPIPE when it hung up, died or sent garbage. */
static int wk_recv(wk *w, uint64_t deadline_ms, json_t **ret)
{
        for (;;) {
                struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
                const char *msg;
                char *buf;
                size_t len, room;
                uint64_t now;
                ssize_t n;
                int r = ph_framer_next(w->fr, &msg, &len);

                if (r < 0)
                        return -EPIPE;
                if (r > 0) {
                        *ret = json_loadb(msg, len, 0, NULL);
                        return *ret ? 0 : -EPIPE;
                }
                now = wk_now_ms();
                if (now >= deadline_ms)
                        return -ETIMEDOUT;
                r = poll(&pfd, 1, (int)(deadline_ms - now));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -EPIPE;
                if (r == 0)
                        return -ETIMEDOUT;
                if (ph_framer_reserve(w->fr, 65536, &buf, &room) < 0)
                        return -EPIPE;
                n = recv(w->fd, buf, room, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -EPIPE;
                ph_framer_commit(w->fr, (size_t)n);
        }
}

/* Sends msg and waits for the answer; on a fault the worker is gone
 * (killed at the deadline, or reaped) and f says how. */
static int wk_exchange(wk *w, json_t *msg, int fd, json_t **ret, ph_fault *f)
{
        uint64_t deadline = wk_now_ms() + w->timeout_ms;
        int r = wk_send(w, msg, fd, deadline);

        if (r == 0)
                r = wk_recv(w, deadline, ret);
        if (r == -ETIMEDOUT) {
                f->kind = PH_FAULT_TIMEOUT;
                wk_reap(w, true, f);
                snprintf(f->what, sizeof(f->what), "no answer within %u ms; the worker was killed",
                         w->timeout_ms);
        } else if (r < 0) {
                f->kind = PH_FAULT_CRASHED;
                wk_reap(w, false, f);
        }
        return r;
}

/* A fault: counted, a backoff before the next start, and a quarantine
 * when they come too often. Under lock. */
void wk_faulted(wk *w, ph_fault *f, const char *during)
{
        uint64_t now = wk_now_ms(), oldest;
        unsigned recent = 0, n;

        w->fault_ms[w->n_faults % PH_WORKER_CRASH_LIMIT] = now;
        w->n_faults++;
        atomic_fetch_add(&wk_faults_total, 1);
        n = w->n_faults < PH_WORKER_CRASH_LIMIT ? w->n_faults : PH_WORKER_CRASH_LIMIT;
        for (unsigned i = 0; i < n; i++)
                recent += now - w->fault_ms[i] < PH_WORKER_CRASH_WINDOW_MS;
        oldest = PH_WORKER_BACKOFF_MS << (recent > 1 ? recent - 1 : 0);
        w->next_start_ms = now + oldest;
        if (recent >= PH_WORKER_CRASH_LIMIT && !w->quarantined) {
                w->quarantined = true;
                f->quarantined_now = true;
        }
        log_warning("plugin %s: worker fault during %s: %s%s", w->name, during, f->what,
                    f->quarantined_now ? "; quarantined until its file changes" : "");
        pthread_mutex_lock(&w->stats_lock);
        w->stats.faults = w->n_faults;
        w->stats.quarantined = w->quarantined;
        snprintf(w->stats.last_fault, sizeof(w->stats.last_fault), "%s: %s", during, f->what);
        pthread_mutex_unlock(&w->stats_lock);
}

/* The error a worker reported: its errno and message. */
int wk_failed(json_t *reply, char *err, size_t err_size)
{
        const char *message = NULL;
        int e = EIO;

        json_unpack(reply, "{s:{s?i, s?s}}", "parameters", "errno", &e, "message", &message);
        if (e <= 0 || e > 4095)
                e = EIO;
        snprintf(err, err_size, "%s", message ? message : strerror(e));
        return -e;
}

/* Starts a worker and the plugin in it (sandbox, map, init). Under lock. */
int wk_start(wk *w, ph_fault *f, bool *ret_host, char *err, size_t err_size)
{
        json_t *sandbox, *msg, *reply = NULL;
        int r;

        r = wk_spawn(w, err, err_size);
        if (ret_host)
                *ret_host = r < 0;
        if (r < 0)
                return r;
        sandbox = json_object();
        if (w->iso.has_uid || w->iso.has_gid) {
                json_object_set_new(sandbox, "uid", json_integer(w->iso.has_uid ? w->iso.uid : geteuid()));
                json_object_set_new(sandbox, "gid", json_integer(w->iso.gid));
        }
        if (w->iso.limit_as)
                json_object_set_new(sandbox, "limitAS", json_integer((json_int_t)w->iso.limit_as));
        if (w->iso.limit_cpu)
                json_object_set_new(sandbox, "limitCPU", json_integer((json_int_t)w->iso.limit_cpu));
        if (w->iso.limit_nofile)
                json_object_set_new(sandbox, "limitNOFILE", json_integer((json_int_t)w->iso.limit_nofile));
        /* RLIMIT_NPROC counts every task of the user: only for a user of
         * the workers' own, never the daemon's. */
        if (w->iso.limit_nproc && w->iso.has_uid && w->iso.uid != geteuid())
                json_object_set_new(sandbox, "limitNPROC", json_integer((json_int_t)w->iso.limit_nproc));
        msg = json_pack("{s:s, s:{s:s, s:s, s:o}}", "method", PH_WORKER_START, "parameters", "name",
                        w->name, "config", w->config, "sandbox", sandbox);
        r = wk_exchange(w, msg, w->image_fd, &reply, f);
        if (r < 0) {
                snprintf(err, err_size, "%s: the worker %s during init: %s", w->name,
                         f->kind == PH_FAULT_TIMEOUT ? "hung" : "died", f->what);
                return r;
        }
        if (json_object_get(reply, "error")) {
                r = wk_failed(reply, err, err_size);
                json_decref(reply);
                wk_reap(w, false, NULL);        /* it exits after a failed Start */
                return r;
        }
        json_decref(reply);
        wk_stats_pid(w, w->pid, w->starts++ > 0);
        return 0;
}

/* ---- the runner ---- */

static void wk_free(wk *w)
{
        if (w->image_fd >= 0)
                close(w->image_fd);
        free(w->name);
        free(w->config);
        free(w->path);
        pthread_mutex_destroy(&w->lock);
        pthread_mutex_destroy(&w->stats_lock);
        free(w);
}

static int wk_runner_start(const ph_load_request *req, int image_fd, const ph_meta *meta,
                           void **ret_handle, bool *ret_transient, char *err, size_t err_size)
{
        const ph_worker_opts *o = req->runner_data;
        ph_fault f = { 0 };
        bool host = false;
        wk *w = calloc(1, sizeof(*w));
        int r;

        (void)meta;
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_mutex_init(&w->stats_lock, NULL);
        w->fd = -1;
        w->image_fd = fcntl(image_fd, F_DUPFD_CLOEXEC, 3);
        w->name = strdup(req->name);
        w->config = strdup(req->config_json ? req->config_json : "{}");
        w->path = strdup(o->path);
        w->iso = o->iso;
        w->timeout_ms = o->timeout_ms ? o->timeout_ms : 1;
        if (w->image_fd < 0 || !w->name || !w->config || !w->path) {
                r = w->image_fd < 0 ? -errno : -ENOMEM;
                snprintf(err, err_size, "%s: %s", req->name, strerror(-r));
                wk_free(w);
                return r;
        }
        r = wk_start(w, &f, &host, err, err_size);
        if (r < 0) {
                /* No process or fd to start it with now: the host's trouble,
                 * not this file's; the next Load tries again. */
                *ret_transient = host && ph_cache_error_transient(r);
                if (w->pid)
                        wk_reap(w, true, NULL);
                wk_free(w);
                return r;
        }
        *ret_handle = w;
        return 0;
}

/* A worker for the next call: the running one, or a new one once the
 * backoff of the last fault is over. Under lock. */
static int wk_ready(wk *w, ph_fault *f, char *err, size_t err_size)
{
        uint64_t now = wk_now_ms();
        int r;

        if (w->pid)
                return 0;
        if (now < w->next_start_ms) {
                uint64_t wait = w->next_start_ms - now;

                /* A short backoff is waited out; a long one answers now. */
                if (wait >= w->timeout_ms / 2) {
                        f->kind = PH_FAULT_CRASHED;
                        snprintf(f->what, sizeof(f->what), "restarting after a fault; try again in %llu ms",
                                 (unsigned long long)wait);
                        snprintf(err, err_size, "%s: %s", w->name, f->what);
                        return -EAGAIN;
                }
                usleep((useconds_t)(wait * 1000u));
        }
        r = wk_start(w, f, NULL, err, err_size);
        if (r < 0 && f->kind != PH_FAULT_NONE)
                wk_faulted(w, f, "init");
        return r;
}

static int wk_runner_call(void *handle, const char *method, const char *params_json,
                          char **ret_result, char *err, size_t err_size)
{
        wk *w = handle;
        ph_fault f = { .exit_status = -1 };
        json_t *reply = NULL, *result;
        int r;

        memset(&wk_fault, 0, sizeof(wk_fault));
        pthread_mutex_lock(&w->lock);
        if (w->quarantined) {
                f.kind = PH_FAULT_QUARANTINED;
                snprintf(f.what, sizeof(f.what), "quarantined after %u faults within %u s",
                         PH_WORKER_CRASH_LIMIT, PH_WORKER_CRASH_WINDOW_MS / 1000u);
                snprintf(err, err_size, "%s: %s; replace its file to try again", w->name, f.what);
                r = -EIO;
                goto out;
        }
        r = wk_ready(w, &f, err, err_size);
        if (r < 0)
                goto out;
        r = wk_exchange(w, json_pack("{s:s, s:{s:s, s:s}}", "method", PH_WORKER_CALL, "parameters",
                                     "method", method, "params", params_json),
                        -1, &reply, &f);
        if (r < 0) {
                char during[PH_NAME_MAX + 16];

                snprintf(during, sizeof(during), "call \"%.*s\"", (int)PH_NAME_MAX, method);
                wk_faulted(w, &f, during);
                snprintf(err, err_size, "%s.%s: the worker %s: %s%s", w->name, method,
                         f.kind == PH_FAULT_TIMEOUT ? "hung" : "died", f.what,
                         f.quarantined_now ? "; quarantined after too many faults, until its file "
                                             "changes" : "");
                goto out;
        }
        if (json_object_get(reply, "error")) {
                r = wk_failed(reply, err, err_size);
                goto out;
        }
        result = json_object_get(json_object_get(reply, "parameters"), "result");
        if (json_is_string(result)) {
                *ret_result = strndup(json_string_value(result), json_string_length(result));
                r = *ret_result ? 0 : -ENOMEM;
        } else {
                *ret_result = NULL;
                r = json_is_null(result) ? 0 : -EPROTO;
        }
        if (r < 0)
                snprintf(err, err_size, "%s.%s: %s", w->name, method, strerror(-r));
out:
        pthread_mutex_unlock(&w->lock);
        json_decref(reply);
        if (f.kind != PH_FAULT_NONE)
                wk_fault = f;
        return r;
}

/* fini in the worker, then its end; on the reaper's thread. */
static void wk_runner_stop(void *handle)
{
        wk *w = handle;
        json_t *reply = NULL;

        pthread_mutex_lock(&w->lock);
        if (w->pid) {
                ph_fault f = { 0 };

                if (wk_exchange(w, json_pack("{s:s}", "method", PH_WORKER_STOP), -1, &reply, &f) < 0)
                        log_warning("plugin %s: worker fault during fini: %s", w->name, f.what);
                else
                        wk_reap(w, false, NULL);
                json_decref(reply);
        }
        pthread_mutex_unlock(&w->lock);
        wk_free(w);
}

const ph_runner ph_worker_runner = {
        .start = wk_runner_start,
        .call = wk_runner_call,
        .stop = wk_runner_stop,
};
