/* plughost-worker: runs one isolated plugin generation for plughostd.
 *
 * Started by the daemon with exec (never a bare fork of it), with the
 * socketpair end on fd PH_WORKER_FD, /dev/null on stdin and the daemon's
 * stderr on stdout and stderr, an empty environment, a clean signal mask
 * and its own session. It takes the Start message and the sealed image,
 * locks itself in (worker/sandbox.c), checks the image (sealed, carrying the
 * name it was sent for), maps it, runs init, then serves calls one at a time
 * until Stop (fini, exit 0) or until the daemon goes (exit at once, no
 * fini). protocol/worker.h has the messages. Single-threaded (the plugin
 * may start threads of its own). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../lib/instance-internal.h"
#include "../lib/loader-internal.h"
#include "varlink.h"
#include "worker.h"
#include "sandbox.h"

/* Largest message the daemon sends: a call's parameters fit its own
 * message limit, escaped. */
#define WORKER_MESSAGE_MAX (64u * 1024u * 1024u)
#define WORKER_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

/* In sanitizer builds the worker must still die of the plugin's signal and
 * exit with the plugin's status (that is what the daemon reports), and a
 * plugin's leaks at exit are not the worker's to report. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
        return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0:detect_leaks=0";
}
#endif
#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
        return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0";
}
#endif

typedef struct worker {
        ph_framer *fr;
        int image_fd;                   /* received with Start */
        ph_instance *inst;
        ph_call_counters counters;
        const char *name;
        bool nomem;                     /* the last read failed for want of memory */
} worker;

static void worker_log(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void worker_log(const char *name, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "plughost-worker[%d] %s: ", (int)getpid(), name ? name : "?");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int send_all(const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = send(PH_WORKER_FD, buf, len, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -errno;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Sends j (taken) and its NUL. */
static int send_json(json_t *j)
{
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        int r;

        json_decref(j);
        if (!text)
                return -ENOMEM;
        r = send_all(text, strlen(text) + 1);
        free(text);
        return r;
}

/* A failure's message is the plugin's text (or the loader's, naming the
 * plugin's file): what is not UTF-8 becomes '?' (ph_varlink_text), or
 * jansson would refuse it and the worker would die of a plugin's error
 * message, counted as a crash. */
static int send_failed(int r, const char *message)
{
        return send_json(json_pack("{s:s, s:{s:i, s:o}}", "error", PH_WORKER_FAILED, "parameters",
                                   "errno", r < 0 ? -r : EIO, "message", ph_varlink_text(message)));
}

/* A call's answer carries the call's id: the daemon matches answers to
 * calls by it, not by position alone. */
static int send_call_failed(json_int_t id, int r, const char *message)
{
        return send_json(json_pack("{s:s, s:{s:I, s:i, s:o}}", "error", PH_WORKER_FAILED,
                                   "parameters", "id", id, "errno", r < 0 ? -r : EIO, "message",
                                   ph_varlink_text(message)));
}

static uint64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The next message, parsed; an fd that came with it goes to *ret_fd (or is
 * closed when ret_fd is NULL). NULL at the daemon's end or on garbage. */
static json_t *recv_json(worker *w, int *ret_fd)
{
        const char *msg;
        size_t len;

        for (;;) {
                char cbuf[CMSG_SPACE(sizeof(int))], *buf;
                size_t room;
                struct iovec iov;
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                                     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
                ssize_t n;
                int r = ph_framer_next(w->fr, &msg, &len);

                if (r < 0)
                        return NULL;
                if (r > 0) {
                        json_t *j = json_loadb(msg, len, 0, NULL);

                        w->nomem = !j;  /* our message is JSON: no memory to parse it */
                        return j;
                }
                if (ph_framer_reserve(w->fr, 65536, &buf, &room) < 0) {
                        w->nomem = true;
                        return NULL;
                }
                iov.iov_base = buf;
                iov.iov_len = room;
                n = recvmsg(PH_WORKER_FD, &mh, MSG_CMSG_CLOEXEC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return NULL;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        int fd;

                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        memcpy(&fd, CMSG_DATA(c), sizeof(fd));
                        if (ret_fd && *ret_fd < 0)
                                *ret_fd = fd;
                        else
                                close(fd);
                }
                ph_framer_commit(w->fr, (size_t)n);
        }
}

static int sandbox_opts(json_t *j, ph_sandbox_opts *o)
{
        json_int_t uid = -1, gid = -1, as = 0, cpu = 0, nofile = 0, nproc = 0;

        if (json_unpack(j, "{s?I, s?I, s?I, s?I, s?I, s?I}", "uid", &uid, "gid", &gid, "limitAS",
                        &as, "limitCPU", &cpu, "limitNOFILE", &nofile, "limitNPROC", &nproc) < 0)
                return -EINVAL;
        memset(o, 0, sizeof(*o));
        o->set_ids = uid >= 0 && gid >= 0;
        o->uid = (uid_t)uid;
        o->gid = (gid_t)gid;
        o->limit_as = (uint64_t)as;
        o->limit_cpu = (uint64_t)cpu;
        o->limit_nofile = (uint64_t)nofile;
        o->limit_nproc = (uint64_t)nproc;
        o->keep_fd = PH_WORKER_FD;
        o->parent = getppid();
        return 0;
}

/* The image as the daemon checked it: sealed against any change, and
 * carrying the name it was sent for; then mapped, and init run. */
static int worker_start(worker *w, json_t *params, char *err, size_t err_size)
{
        const char *config = NULL;
        json_t *sandbox = NULL;
        ph_image img = { .memfd = -1 };
        ph_load_request req = { 0 };
        ph_sandbox_opts so;
        ph_scan scan;
        int seals, r;

        if (json_unpack(params, "{s:s, s?s, s?o}", "name", &w->name, "config", &config, "sandbox",
                        &sandbox) < 0 || sandbox_opts(sandbox, &so) < 0) {
                snprintf(err, err_size, "malformed Start");
                return -EPROTO;
        }
        if (w->image_fd < 0) {
                snprintf(err, err_size, "%s: no image came with Start", w->name);
                return -EBADF;
        }
        r = ph_sandbox_apply(&so, err, err_size);
        if (r < 0)
                return r;
        seals = fcntl(w->image_fd, F_GET_SEALS);
        if (seals < 0 || (seals & WORKER_SEALS) != WORKER_SEALS) {
                snprintf(err, err_size, "%s: the image is not sealed", w->name);
                return -EPERM;
        }
        r = ph_scan_fd(w->image_fd, &scan);
        if (r < 0 || scan.reason != PH_REASON_OK) {
                snprintf(err, err_size, "%s: scan of the image: %s", w->name,
                         r < 0 ? strerror(-r) : scan.message);
                ph_scan_clear(&scan);
                return r < 0 ? r : -ENOEXEC;
        }
        img.meta = scan.meta;
        scan.meta = NULL;
        ph_scan_clear(&scan);
        img.memfd = w->image_fd;
        w->image_fd = -1;
        if (strcmp(img.meta->name, w->name) != 0) {
                snprintf(err, err_size, "%s: the image claims the name '%s'", w->name, img.meta->name);
                ph__image_close(&img);
                return -ESTALE;
        }
        r = ph__image_map(&img, w->name, err, err_size);
        if (r < 0) {
                ph__image_close(&img);
                return r;
        }
        r = ph__instance_new(&img, 0, &w->counters, NULL, NULL, &w->inst);
        if (r < 0) {
                ph__image_close(&img);
                snprintf(err, err_size, "%s: out of memory", w->name);
                return r;
        }
        req.name = w->name;
        req.config_json = config;
        r = ph__instance_start(w->inst, &req, &(bool){ false }, err, err_size);
        if (r < 0) {
                ph__instance_free(w->inst);
                w->inst = NULL;
        }
        return r;
}

static int worker_call(worker *w, json_t *params)
{
        const char *method, *args;
        char err[1024] = "", *result = NULL;
        json_int_t id = 0, deadline = 0;
        json_t *res;
        int r;

        if (json_unpack(params, "{s:s, s:s, s?I, s?I}", "method", &method, "params", &args, "id",
                        &id, "deadline", &deadline) < 0)
                return send_failed(-EPROTO, "malformed Call");
        /* Its client was told Timeout already: it does not run. */
        if (deadline > 0 && mono_ms() >= (uint64_t)deadline)
                return send_call_failed(id, -ETIMEDOUT, "its deadline passed before it ran");
        r = ph_instance_call(w->inst, method, args, &result, err, sizeof(err));
        if (r < 0) {
                free(result);
                return send_call_failed(id, r, err);
        }
        /* Not UTF-8 is not JSON either: refused here as the daemon would. */
        res = result ? json_stringn(result, strlen(result)) : json_null();
        free(result);
        if (!res)
                return send_call_failed(id, -EINVAL, "the result is not valid UTF-8 text");
        return send_json(json_pack("{s:{s:I, s:o}}", "parameters", "id", id, "result", res));
}

/* Messages until Stop or the daemon's end. */
static int worker_serve(worker *w)
{
        for (;;) {
                json_t *m = recv_json(w, NULL), *params = NULL;
                const char *method = NULL;
                int r;

                if (!m && w->nomem) {
                        /* LimitAS= too small for a message: say so, not "the
                         * daemon went". */
                        worker_log(w->name, "out of memory reading a request (LimitAS=)");
                        _exit(PH_WORKER_EXIT_NOMEM);
                }
                if (!m)
                        return 0;       /* the daemon went: no fini, as after a crash */
                if (json_unpack(m, "{s:s, s?o}", "method", &method, "parameters", &params) < 0) {
                        json_decref(m);
                        return -EPROTO;
                }
                if (strcmp(method, PH_WORKER_CALL) == 0) {
                        r = worker_call(w, params);
                } else if (strcmp(method, PH_WORKER_STOP) == 0) {
                        ph__instance_free(w->inst);     /* fini */
                        w->inst = NULL;
                        json_decref(m);
                        return send_json(json_pack("{s:{}}", "parameters"));
                } else {
                        r = send_failed(-EPROTO, "unknown method");
                }
                json_decref(m);
                if (r < 0)
                        return r;
        }
}

int main(int argc, char **argv)
{
        worker w = { .image_fd = -1 };
        char err[1024] = "";
        json_t *m, *params = NULL;
        const char *method = NULL;
        int r;

        /* argv: NAME (for ps) and the daemon's pid. The worker dies with
         * the daemon (the thread that started it, which lives as long),
         * even inside a plugin that loops. */
        if (argc < 3 || prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
            getppid() != (pid_t)strtol(argv[2], NULL, 10))
                return 127;
        /* Only the socket (and stdio) may come from the daemon, whatever it
         * left open by mistake. */
        if (close_range(PH_WORKER_FD + 1, ~0U, 0) < 0 ||
            fcntl(PH_WORKER_FD, F_SETFD, FD_CLOEXEC) < 0 || chdir("/") < 0)
                return 127;
        if (ph_framer_new(WORKER_MESSAGE_MAX, &w.fr) < 0)
                return 127;
        m = recv_json(&w, &w.image_fd);
        if (!m || json_unpack(m, "{s:s, s:o}", "method", &method, "parameters", &params) < 0 ||
            strcmp(method, PH_WORKER_START) != 0) {
                worker_log(NULL, "no Start from the daemon");
                return 127;
        }
        r = worker_start(&w, params, err, sizeof(err));
        if (r < 0) {
                send_failed(r, err);
                return 1;
        }
        if (send_json(json_pack("{s:{s:i}}", "parameters", "pid", (int)getpid())) < 0)
                return 0;
        r = worker_serve(&w);
        json_decref(m);
        return r < 0 ? 1 : 0;
}
