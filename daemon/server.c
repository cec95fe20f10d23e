/* The control socket: accepts clients (credentials checked at accept,
 * connections capped in total and per uid), reads Varlink messages, and
 * answers them in request order, however late each answer comes.
 *
 * A connection is freed only from its uv_close callback. A reply slot
 * whose connection went away while its answer was being computed is
 * "orphaned" and freed by whoever completes it. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "varlink.h"
#include "vec.h"

/* Requests awaiting an answer on one connection before we stop reading it. */
#define SERVER_PIPELINE_MAX 128u
/* Bytes queued to a client that does not read, before we drop it. */
#define SERVER_WRITE_QUEUE_MAX (8u << 20)
/* How much we read at a time. */
#define SERVER_READ_CHUNK 65536u
/* After EMFILE, when to try accepting again (also on any close). */
#define SERVER_ACCEPT_RETRY_MS 250

typedef struct stream_msg {
        struct stream_msg *next;
        char *msg;
        size_t len;
} stream_msg;

struct ph_reply {
        ph_reply *next;
        ph_conn *conn;                  /* NULL: orphaned */
        char *msg;                      /* the answer, once done */
        size_t len;
        bool done;
        bool stream;                    /* Monitor: open until the connection ends */
        stream_msg *q_head, *q_tail;    /* stream messages waiting for the head */
        size_t q_bytes;
};

struct ph_conn {
        uv_pipe_t pipe;
        ph_server *srv;
        ph_conn *prev, *next;
        struct ucred cred;
        gid_t groups[64];               /* primary, then supplementary */
        size_t n_groups;
        ph_framer *framer;
        ph_reply *head, *tail;
        unsigned n_replies;
        bool reading;
        bool processing;                /* inside conn_process: no re-entry */
        bool closing;
        bool close_after_flush;         /* stream out of sync: answer, then go */
        bool shutting_down;             /* closes once the replies are written */
        uv_shutdown_t shutdown;
};

typedef struct uid_count {
        uid_t uid;
        unsigned n;
} uid_count;

struct ph_server {
        uv_loop_t *loop;
        const ph_config *cfg;           /* the daemon's current one (borrowed) */
        ph_server_dispatch_fn dispatch;
        void *userdata;
        uint64_t requests;
        int fd;
        uv_poll_t poll;
        uv_timer_t retry;
        bool accepting;
        bool paused;                    /* EMFILE: waiting for fds */
        bool stopped;
        bool unlink_on_exit;
        char *path;                     /* the socket file we bound, if any */
        ph_conn *conns;
        unsigned n_conns;
        uid_count *uids;
        size_t n_uids, cap_uids;
};

/* One uv_write of several messages: the replies to one read go out in
 * one writev, not one write each. */
#define WRITE_BATCH 64

typedef struct write_req {
        uv_write_t req;
        size_t n;
        char *msgs[WRITE_BATCH];
} write_req;

static void conn_close(ph_conn *c);
static void conn_close_when_written(ph_conn *c);
static void conn_process(ph_conn *c);
static void conn_oversize(ph_conn *c);
static void server_accept_cb(uv_poll_t *p, int status, int events);

const gid_t *ph_conn_groups(const ph_conn *c, size_t *ret_n)
{
        *ret_n = c->n_groups;
        return c->groups;
}

uid_t ph_conn_uid(const ph_conn *c)
{
        return c->cred.uid;
}

pid_t ph_conn_pid(const ph_conn *c)
{
        return c->cred.pid;
}

bool ph_server_activated(const ph_server *s)
{
        return !s->unlink_on_exit;
}

unsigned ph_server_clients(const ph_server *s)
{
        return s->n_conns;
}

uint64_t ph_server_requests(const ph_server *s)
{
        return s->requests;
}

void ph_server_set_config(ph_server *s, const ph_config *cfg)
{
        s->cfg = cfg;
}

static uid_count *uid_slot(ph_server *s, uid_t uid, bool create)
{
        uid_count u = { uid, 0 };

        for (size_t i = 0; i < s->n_uids; i++)
                if (s->uids[i].uid == uid)
                        return &s->uids[i];
        if (!create || ph__vec_push((void **)&s->uids, &s->n_uids, &s->cap_uids, sizeof(u), &u) < 0)
                return NULL;
        return &s->uids[s->n_uids - 1];
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status)
{
        write_req *w = (write_req *)req;

        (void)status;
        for (size_t i = 0; i < w->n; i++)
                free(w->msgs[i]);
        free(w);
}

/* A batch being gathered by conn_flush. */
typedef struct write_batch {
        write_req *w;
        uv_buf_t bufs[WRITE_BATCH];
} write_batch;

static void batch_send(ph_conn *c, write_batch *b)
{
        write_req *w = b->w;

        b->w = NULL;
        if (!w || w->n == 0) {
                free(w);
                return;
        }
        if (c->closing || uv_write(&w->req, (uv_stream_t *)&c->pipe, b->bufs, (unsigned)w->n, write_cb) < 0) {
                for (size_t i = 0; i < w->n; i++)
                        free(w->msgs[i]);
                free(w);
                conn_close(c);
                return;
        }
        if (c->pipe.write_queue_size > SERVER_WRITE_QUEUE_MAX) {
                log_notice("client pid %d uid %u does not read its replies; disconnecting",
                           (int)c->cred.pid, (unsigned)c->cred.uid);
                conn_close(c);
        }
}

/* Takes msg into the batch, sending the batch when it is full. */
static void batch_add(ph_conn *c, write_batch *b, char *msg, size_t len)
{
        if (c->closing) {
                free(msg);
                return;
        }
        if (!b->w && !(b->w = calloc(1, sizeof(*b->w)))) {
                free(msg);
                conn_close(c);
                return;
        }
        b->bufs[b->w->n] = uv_buf_init(msg, (unsigned)len);
        b->w->msgs[b->w->n++] = msg;
        if (b->w->n == WRITE_BATCH)
                batch_send(c, b);
}

/* Takes msg. */
static void conn_write(ph_conn *c, char *msg, size_t len)
{
        write_batch b = { 0 };

        batch_add(c, &b, msg, len);
        batch_send(c, &b);
}

static void reply_free(ph_reply *r)
{
        stream_msg *m, *next;

        for (m = r->q_head; m; m = next) {
                next = m->next;
                free(m->msg);
                free(m);
        }
        free(r->msg);
        free(r);
}

/* Writes answers that are ready, in request order. */
static void conn_flush(ph_conn *c)
{
        write_batch b = { 0 };

        /* Replies made while a read is being handled go out together at
         * its end (conn_process flushes). */
        if (c->processing)
                return;
        while (c->head && !c->closing) {
                ph_reply *r = c->head;

                if (r->stream) {
                        while (r->q_head && !c->closing) {
                                stream_msg *m = r->q_head;
                                r->q_head = m->next;
                                r->q_bytes -= m->len;
                                batch_add(c, &b, m->msg, m->len);
                                free(m);
                        }
                        r->q_tail = NULL;
                        break;          /* a stream holds the head until the end */
                }
                if (!r->done)
                        break;
                c->head = r->next;
                if (!c->head)
                        c->tail = NULL;
                c->n_replies--;
                batch_add(c, &b, r->msg, r->len);
                r->msg = NULL;
                reply_free(r);
        }
        batch_send(c, &b);
        if (c->closing)
                return;
        /* A stream never ends by itself: after a half-close it goes too. */
        if (c->close_after_flush && (!c->head || c->head->stream)) {
                conn_close_when_written(c);
                return;
        }
        /* Room again after a full pipeline: take the next messages. Never
         * after a half-close (nothing more to read), or the two would call
         * each other forever. */
        if (!c->reading && !c->processing && !c->close_after_flush &&
            c->n_replies < SERVER_PIPELINE_MAX)
                conn_process(c);
}

ph_reply *ph_reply_new(ph_conn *c)
{
        ph_reply *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->conn = c;
        if (c->tail)
                c->tail->next = r;
        else
                c->head = r;
        c->tail = r;
        c->n_replies++;
        return r;
}

void ph_reply_send(ph_reply *r, char *msg, size_t len)
{
        if (!r) {
                free(msg);
                return;
        }
        if (!r->conn) {
                free(msg);
                reply_free(r);
                return;
        }
        r->msg = msg;
        r->len = len;
        r->done = true;
        conn_flush(r->conn);
}

int ph_reply_stream(ph_reply *r, char *msg, size_t len)
{
        ph_conn *c = r->conn;
        stream_msg *m;

        if (!c || c->closing) {
                free(msg);
                return -EPIPE;
        }
        if (c->head == r) {
                conn_write(c, msg, len);
                return c->closing ? -EPIPE : 0;
        }
        if (r->q_bytes + len > SERVER_WRITE_QUEUE_MAX || !(m = calloc(1, sizeof(*m)))) {
                free(msg);
                conn_close(c);
                return -EPIPE;
        }
        m->msg = msg;
        m->len = len;
        if (r->q_tail)
                r->q_tail->next = m;
        else
                r->q_head = m;
        r->q_tail = m;
        r->q_bytes += len;
        return 0;
}

void ph_reply_ok(ph_reply *r, json_t *params)
{
        char *msg;
        size_t len;

        if (ph_varlink_reply(params, false, &msg, &len) < 0) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "reply too large or out of memory");
                return;
        }
        ph_reply_send(r, msg, len);
}

void ph_reply_error(ph_reply *r, int verr, json_t *params, const char *fmt, ...)
{
        char text[1024], *msg;
        size_t len;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        if (ph_varlink_errorf((ph_verr)verr, params, &msg, &len, "%s", text) < 0) {
                if (r && r->conn)
                        conn_close(r->conn);
                if (r && !r->conn)
                        reply_free(r);
                return;
        }
        ph_reply_send(r, msg, len);
}

void ph_server_broadcast(ph_server *s, json_t *event)
{
        for (ph_conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                for (ph_reply *r = c->head; r; r = r->next) {
                        char *msg;
                        size_t len;

                        if (!r->stream)
                                continue;
                        json_incref(event);
                        if (ph_varlink_reply(json_pack("{s:o}", "event", event), true, &msg, &len) == 0)
                                ph_reply_stream(r, msg, len);
                        break;
                }
        }
        json_decref(event);
}

/* ---- reading ---- */

static void conn_message(ph_conn *c, const char *msg, size_t len)
{
        ph_request req;
        char *err;
        size_t err_len;
        ph_reply *r;

        c->srv->requests++;
        if (ph_request_parse(msg, len, &req, &err, &err_len) < 0) {
                r = err ? ph_reply_new(c) : NULL;
                if (!r) {
                        free(err);
                        conn_close(c);
                        return;
                }
                ph_reply_send(r, err, err_len);
                return;
        }
        r = NULL;
        if (!req.oneway && !(r = ph_reply_new(c))) {
                ph_request_clear(&req);
                conn_close(c);
                return;
        }
        if (r && req.more && (req.method->flags & PH_METHOD_MORE))
                r->stream = true;
        c->srv->dispatch(c->srv->userdata, c, &req, r);
        ph_request_clear(&req);
}

/* Handles complete messages, as many as the pipeline allows; reads more
 * when it has room. */
static void conn_start_reading(ph_conn *c);

static void conn_process(ph_conn *c)
{
        const char *msg;
        size_t len;
        int r;

        c->processing = true;
        while (!c->closing && c->n_replies < SERVER_PIPELINE_MAX) {
                r = ph_framer_next(c->framer, &msg, &len);
                if (r == 0)
                        break;
                if (r < 0) {
                        c->processing = false;
                        conn_oversize(c);
                        return;
                }
                conn_message(c, msg, len);
        }
        c->processing = false;
        if (c->closing)
                return;
        if (c->n_replies >= SERVER_PIPELINE_MAX || c->close_after_flush) {
                if (c->reading) {
                        uv_read_stop((uv_stream_t *)&c->pipe);
                        c->reading = false;
                }
        } else if (!c->reading) {
                conn_start_reading(c);
        }
        conn_flush(c);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        ph_conn *c = h->data;
        char *space;
        size_t avail;

        (void)suggested;
        if (ph_framer_reserve(c->framer, SERVER_READ_CHUNK, &space, &avail) < 0) {
                buf->base = NULL;
                buf->len = 0;
                return;
        }
        buf->base = space;
        buf->len = avail;
}

/* A message over the size limit: the stream cannot be resynchronised. */
static void conn_oversize(ph_conn *c)
{
        ph_reply *r = ph_reply_new(c);

        if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->pipe);
                c->reading = false;
        }
        log_notice("client pid %d uid %u sent a message over %zu bytes; disconnecting",
                   (int)c->cred.pid, (unsigned)c->cred.uid, c->srv->cfg->max_message);
        c->close_after_flush = true;
        if (r)
                ph_reply_error(r, PH_VERR_INVALID_PARAMETER, json_pack("{s:s}", "parameter", "message"),
                               "message larger than %zu bytes; closing the connection",
                               c->srv->cfg->max_message);
        else
                conn_close(c);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        ph_conn *c = s->data;

        (void)buf;
        if (nread == UV_ENOBUFS) {
                conn_oversize(c);
                return;
        }
        if (nread == UV_EOF) {
                /* Half-closed: answer what was asked, then close. */
                uv_read_stop(s);
                c->reading = false;
                c->close_after_flush = true;
                if (!c->head || c->head->stream)
                        conn_close_when_written(c);
                return;
        }
        if (nread < 0) {
                conn_close(c);
                return;
        }
        ph_framer_commit(c->framer, (size_t)nread);
        conn_process(c);
}

static void conn_start_reading(ph_conn *c)
{
        if (uv_read_start((uv_stream_t *)&c->pipe, conn_alloc_cb, conn_read_cb) == 0)
                c->reading = true;
}

/* ---- connection lifetime ---- */

static void server_resume(ph_server *s)
{
        if (!s->paused || s->stopped)
                return;
        s->paused = false;
        uv_timer_stop(&s->retry);
        uv_poll_start(&s->poll, UV_READABLE, server_accept_cb);
}

static void conn_free(ph_conn *c)
{
        for (ph_reply *r = c->head, *next; r; r = next) {
                next = r->next;
                reply_free(r);
        }
        ph_framer_free(c->framer);
        free(c);
}

static void conn_close_cb(uv_handle_t *h)
{
        ph_conn *c = h->data;
        ph_server *s = c->srv;
        uid_count *u;

        if (!s) {               /* never counted, or ph_server_free went first */
                conn_free(c);
                return;
        }
        u = uid_slot(s, c->cred.uid, false);
        if (u && u->n > 0)
                u->n--;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_conns--;
        conn_free(c);
        server_resume(s);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
        (void)status;
        conn_close(req->data);
}

/* uv_close drops writes still queued: let them go out first. */
static void conn_close_when_written(ph_conn *c)
{
        if (c->closing || c->shutting_down)
                return;
        c->shutdown.data = c;
        if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, conn_shutdown_cb) < 0)
                conn_close(c);
        else
                c->shutting_down = true;
}

static void conn_close(ph_conn *c)
{
        ph_reply *r, *next, **keep;

        if (c->closing)
                return;
        c->closing = true;
        c->reading = false;
        uv_read_stop((uv_stream_t *)&c->pipe);
        /* Pending slots belong to their operation from now on (it frees
         * them when it answers). Finished ones and streams stay listed and
         * go in the close callback: a caller up the stack (conn_flush) may
         * still be looking at one. */
        keep = &c->head;
        c->tail = NULL;
        for (r = c->head; r; r = next) {
                next = r->next;
                r->next = NULL;
                if (r->done || r->stream) {
                        *keep = r;
                        keep = &r->next;
                        c->tail = r;
                } else {
                        r->conn = NULL;
                }
        }
        *keep = NULL;
        c->n_replies = 0;
        uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
}

static void server_accept_one(ph_server *s, int fd)
{
        const ph_config *cfg = s->cfg;
        socklen_t len = sizeof(struct ucred);
        struct ucred cred;
        uid_count *u;
        ph_conn *c;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                close(fd);
                return;
        }
        u = uid_slot(s, cred.uid, true);
        if (s->n_conns >= cfg->max_connections || !u ||
            u->n >= cfg->max_connections_per_uid) {
                log_warning("refusing a connection from pid %d uid %u: %s", (int)cred.pid,
                            (unsigned)cred.uid,
                            s->n_conns >= cfg->max_connections ? "too many connections"
                                                                 : "too many connections for this user");
                close(fd);
                return;
        }
        c = calloc(1, sizeof(*c));
        if (!c || ph_framer_new(cfg->max_message, &c->framer) < 0) {
                free(c);
                close(fd);
                return;
        }
        c->cred = cred;
        c->groups[0] = cred.gid;
        c->n_groups = 1;
        {
                socklen_t glen = sizeof(c->groups) - sizeof(gid_t);

                /* The peer's supplementary groups, for AllowGroups=. */
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, &c->groups[1], &glen) == 0)
                        c->n_groups += glen / sizeof(gid_t);
        }
        uv_pipe_init(s->loop, &c->pipe, 0);
        c->pipe.data = c;
        if (uv_pipe_open(&c->pipe, fd) < 0) {
                /* Not counted yet (c->srv unset): the close callback frees it. */
                close(fd);
                c->closing = true;
                uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
                return;
        }
        c->srv = s;
        u->n++;
        s->n_conns++;
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        conn_start_reading(c);
}

static void server_retry_cb(uv_timer_t *t)
{
        server_resume(t->data);
}

static void server_accept_cb(uv_poll_t *p, int status, int events)
{
        ph_server *s = p->data;

        (void)events;
        if (status < 0)
                return;
        for (;;) {
                int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd >= 0) {
                        server_accept_one(s, fd);
                        continue;
                }
                if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        /* Out of fds: stop polling until a connection closes
                         * or the timer fires, instead of spinning. */
                        log_warning("cannot accept: %s; pausing", strerror(errno));
                        s->paused = true;
                        uv_poll_stop(&s->poll);
                        uv_timer_start(&s->retry, server_retry_cb, SERVER_ACCEPT_RETRY_MS, 0);
                }
                return;
        }
}

/* Socket activation: the listener systemd passed under the name "varlink"
 * (FileDescriptorName=). Returns 1 and sets s->fd when there is one, 0 when
 * we were not activated, or a negative errno. The socket file is systemd's:
 * never unlinked here. */
static int server_inherited(ph_server *s)
{
        char **names = NULL;
        int n = sd_listen_fds_with_names(1, &names), found = -1;

        if (n <= 0) {
                free(names);
                return n;
        }
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;

                if (found < 0 && names && names[i] && strcmp(names[i], "varlink") == 0)
                        found = fd;
                else
                        close(fd);
                free(names ? names[i] : NULL);
        }
        free(names);
        if (found < 0) {
                log_err("socket activation: no file descriptor named \"varlink\" (FileDescriptorName=varlink)");
                return -EBADF;
        }
        if (sd_is_socket_unix(found, SOCK_STREAM, 1, NULL, 0) <= 0) {
                log_err("socket activation: \"varlink\" is not a listening Unix stream socket");
                close(found);
                return -ENOTSOCK;
        }
        if (fcntl(found, F_SETFL, fcntl(found, F_GETFL) | O_NONBLOCK) < 0 ||
            fcntl(found, F_SETFD, FD_CLOEXEC) < 0) {
                close(found);
                return -errno;
        }
        s->fd = found;
        s->unlink_on_exit = false;
        log_info("using the socket passed by systemd");
        return 1;
}

/* Creates the listening socket: a stale socket file is removed, a live one
 * (another daemon) or any other file is an error. */
static int server_listen(ph_server *s)
{
        const ph_config *cfg = s->cfg;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        mode_t old_umask;
        int fd, r;

        if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
                log_err("socket path %s is too long", cfg->socket_path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, cfg->socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (lstat(cfg->socket_path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        log_err("%s exists and is not a socket", cfg->socket_path);
                        close(fd);
                        return -EEXIST;
                }
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                r = probe >= 0 ? connect(probe, (struct sockaddr *)&sa, sizeof(sa)) : -1;
                if (probe >= 0)
                        close(probe);
                if (r == 0) {
                        log_err("another daemon listens on %s", cfg->socket_path);
                        close(fd);
                        return -EADDRINUSE;
                }
                unlink(cfg->socket_path);
        }
        old_umask = umask(0177);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old_umask);
        if (r < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                log_err("cannot listen on %s: %s", cfg->socket_path, strerror(errno));
                close(fd);
                return r;
        }
        if (cfg->socket_group && cfg->socket_group[0]) {
                struct group *g = getgrnam(cfg->socket_group);

                if (!g)
                        log_notice("socket group %s does not exist; group left as is", cfg->socket_group);
                else if (chown(cfg->socket_path, (uid_t)-1, g->gr_gid) < 0)
                        log_warning("chown %s: %s", cfg->socket_path, strerror(errno));
        }
        if (chmod(cfg->socket_path, cfg->socket_mode) < 0)
                log_warning("chmod %s: %s", cfg->socket_path, strerror(errno));
        s->path = strdup(cfg->socket_path);
        if (!s->path) {
                close(fd);
                unlink(cfg->socket_path);
                return -ENOMEM;
        }
        s->fd = fd;
        s->unlink_on_exit = true;
        return 0;
}

int ph_server_new(uv_loop_t *loop, const ph_config *cfg, ph_server_dispatch_fn dispatch,
                  void *userdata, ph_server **ret)
{
        ph_server *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->cfg = cfg;
        s->dispatch = dispatch;
        s->userdata = userdata;
        s->fd = -1;
        r = server_inherited(s);
        if (r == 0)
                r = server_listen(s);
        if (r < 0) {
                free(s);
                return r;
        }
        uv_poll_init(loop, &s->poll, s->fd);
        s->poll.data = s;
        uv_timer_init(loop, &s->retry);
        s->retry.data = s;
        *ret = s;
        return 0;
}

void ph_server_start(ph_server *s)
{
        if (s && !s->stopped)
                uv_poll_start(&s->poll, UV_READABLE, server_accept_cb);
}

void ph_server_stop(ph_server *s)
{
        if (!s || s->stopped)
                return;
        s->stopped = true;
        uv_poll_stop(&s->poll);
        uv_timer_stop(&s->retry);
        uv_close((uv_handle_t *)&s->poll, NULL);
        uv_close((uv_handle_t *)&s->retry, NULL);
        if (s->unlink_on_exit)
                unlink(s->path);
        close(s->fd);
        s->fd = -1;
        /* Connections with nothing in flight can go now. */
        for (ph_conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                bool busy = false;
                for (ph_reply *r = c->head; r; r = r->next)
                        busy |= !r->done && !r->stream;
                if (!busy)
                        conn_close(c);
        }
}

void ph_server_free(ph_server *s)
{
        if (!s)
                return;
        for (ph_conn *c = s->conns; c; c = c->next) {
                conn_close(c);
                c->srv = NULL;  /* its close callback runs after s is gone */
        }
        free(s->uids);
        free(s->path);
        free(s);
}
