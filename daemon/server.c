/* The control socket: accepts clients (credentials checked at accept,
 * connections capped in total, per uid, with a reserve only privileged
 * clients may use), reads Varlink messages, and answers them in request
 * order, however late each answer comes.
 *
 * DESIGN: every byte a connection makes us hold is counted, as what it
 * really costs: the framer's buffer, its reply slots, the messages queued
 * for it and those handed to the kernel path (a window of at most
 * SERVER_WRITE_WINDOW bytes; the rest stays in our queue, where it can be
 * dropped). A connection over its budget, a Monitor stream too far behind,
 * or the biggest holder when all connections together are over theirs, is
 * condemned: what it holds is freed at once, it gets a final
 * io.plughost.Disconnected error, and it is closed when that is written or
 * after a grace period. A sweep timer, armed only while something needs
 * watching, notices the hang-up of connections we stopped reading, times
 * out incomplete messages and ends condemned ones. Messages are reference
 * counted, so one Monitor event serves every subscriber.
 *
 * A connection is freed only from its uv_close callback. A reply slot
 * whose connection went away while its answer was being computed is
 * "orphaned" and freed by whoever completes it. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stddef.h>
#include <malloc.h>
#include <poll.h>
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
#include "ratelimit.h"
#include "server.h"
#include "varlink.h"
#include "vec.h"

/* Requests awaiting an answer on one connection (oneway ones included)
 * before we stop reading it. */
#define SERVER_PIPELINE_MAX 128u
/* What one connection gets per loop turn: this many requests, or this
 * much time, whichever ends first. A client with a deep pipeline of
 * costly requests (a List of many plugins) then waits its turn, and every
 * other connection gets its own in between. */
#define SERVER_TURN_MESSAGES 32u
#define SERVER_TURN_NS 250000u
/* ... and this many bytes read (libuv reads a readable connection up to 32
 * times in a row: 1000 clients streaming big messages would otherwise hold
 * a turn for seconds). */
#define SERVER_TURN_BYTES (64u << 10)
/* Room asked of the framer before a read: small, so an idle connection
 * costs little; a larger message grows the buffer as it comes. */
#define SERVER_READ_CHUNK 4096u
/* Connections accepted per loop turn. */
#define SERVER_ACCEPT_TURN 256u
/* What the listener is polled for: a hang-up is a shutdown(2) of it, after
 * which it stays readable and accept() says EAGAIN forever. */
#define SERVER_ACCEPT_EVENTS (UV_READABLE | UV_DISCONNECT)
/* After EMFILE, when to try accepting again (also on any close). */
#define SERVER_ACCEPT_RETRY_MS 250
/* Bytes of a connection handed to uv_write at once; the rest waits in
 * our queue, where a disconnect can free it. */
#define SERVER_WRITE_WINDOW (256u << 10)
/* Messages per uv_write: the replies to one read go out in one writev. */
#define SERVER_WRITE_BATCH 64
/* How often the sweep looks at paused, partial and condemned connections. */
#define SERVER_SWEEP_MS 250
/* How long a Monitor stream may stay more than MonitorBufferMax= behind. */
#define SERVER_MONITOR_GRACE_MS 5000
/* ... and how far it may fall behind at all. */
#define SERVER_MONITOR_HARD 4u
/* How long a condemned connection has to read its final error. */
#define SERVER_CONDEMNED_GRACE_MS 5000
/* Memory goes back to the system when this much was freed since the last
 * time, at most once per SERVER_TRIM_MS. */
#define SERVER_TRIM_BYTES (4u << 20)
#define SERVER_TRIM_MS 1000
/* Log lines about one uid's refused connections and disconnects. */
#define SERVER_LOG_PER_UID 5u
#define SERVER_LOG_TOTAL 50u
#define SERVER_LOG_INTERVAL_MS 10000

/* A message to send, shared by every connection it goes to. */
typedef struct ph_msg {
        unsigned refs;
        size_t len;                     /* NUL included */
        char *data;
} ph_msg;

/* What one queued message costs a connection besides its bytes: its
 * node, its share of the message header and the allocator's overhead. */
#define MSG_OVERHEAD 64u

/* Bytes of every message alive, each counted once however many
 * connections share it (one server per process: a file's counter). */
static size_t msg_bytes_live;

typedef struct out_node {
        struct out_node *next;
        ph_msg *msg;
} out_node;

typedef struct out_queue {
        out_node *head, *tail;
        size_t bytes;                   /* charged: len + MSG_OVERHEAD each */
        size_t n;
} out_queue;

struct ph_reply {
        ph_reply *next;
        ph_conn *conn;                  /* NULL: orphaned */
        ph_msg *msg;                    /* the answer, once done */
        bool done;
        bool stream;                    /* Monitor: open until the connection ends */
        bool silent;                    /* oneway: keeps its place, sends nothing */
        out_queue q;                    /* stream messages waiting for the head */
        ph_reply_part_fn produce;       /* a reply in parts (List with "more") */
        void *part_data;
        void (*part_free)(void *data);
        size_t part_charge;             /* what part_data holds, charged to the connection */
};

struct ph_conn {
        uv_pipe_t pipe;
        ph_server *srv;
        ph_conn *prev, *next;
        struct ucred cred;
        gid_t groups[64];               /* primary, then supplementary */
        size_t n_groups;
        bool privileged;                /* may use the reserved connections */
        ph_framer *framer;
        ph_reply *head, *tail;
        ph_reply *stream;               /* the Monitor slot, if any (it stays to the end) */
        unsigned n_replies;
        size_t parts_charged;           /* the part_charge of its replies */
        out_queue out;                  /* ready to be written, in order */
        size_t held, n_held;            /* done answers still in their slots */
        size_t inflight, n_inflight;    /* handed to uv_write, not yet written */
        unsigned writes;                /* uv_write requests outstanding */
        size_t charged;                 /* all it pins, shared messages whole: its budget */
        size_t gcharge;                 /* its part of the total: shared messages not
                                         * counted (msg_bytes_live has them once) */
        uint64_t over_since;            /* its stream over MonitorBufferMax since (ms) */
        uint64_t partial_since;         /* an incomplete message since (ms), or 0 */
        uint64_t condemned_at;
        bool reading;
        bool processing;                /* inside conn_process: no re-entry */
        bool deferred;                  /* had its turn: more on the next one */
        bool flush_soon;                /* answers came outside a read: written at the turn's end */
        ph_conn *flush_next;            /* in srv->flush_head */
        size_t turn_bytes;              /* read since its last deferral */
        bool closing;
        bool close_after_flush;         /* half-closed or oversize: answer, then go */
        bool shutdown_pending;          /* shut down once our queue is written */
        bool shutting_down;
        bool condemned;
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
        dev_t fd_dev;                   /* what fd was when we got it: */
        ino_t fd_ino;                   /* ph_server_check_listener */
        int lost;                       /* 0, or why accepting showed fd dead */
        char *sock_path;                /* the socket file clients connect to, if */
        dev_t path_dev;                 /* known, and what it was when we got it: */
        ino_t path_ino;                 /* ph_server_check_path */
        uv_poll_t poll;
        uv_timer_t retry;
        uv_timer_t sweep;
        uv_idle_t turn;                 /* active while connections are deferred
                                         * or have answers to write */
        unsigned n_deferred;
        ph_conn *flush_head;            /* connections with flush_soon set */
        bool sweeping;
        bool accepting;
        bool paused;                    /* EMFILE: waiting for fds */
        bool stopped;
        bool unlink_on_exit;
        char *path;                     /* the socket file we bound, if any */
        ph_conn *conns;
        unsigned n_conns, n_condemned;
        uid_count *uids;
        size_t n_uids, cap_uids;
        size_t conn_total;              /* the connections' gcharge, summed */
        size_t trimmed_at;              /* total after the last malloc_trim */
        uint64_t trim_ms;
        uint64_t disconnects;
        struct pollfd *pfds;            /* the sweep's, reused */
        ph_conn **pconns;
        size_t cap_pfds, cap_pconns;
        ph_ratelimit *rl_refused, *rl_disconnect;
};

typedef struct write_req {
        uv_write_t req;
        ph_conn *conn;
        size_t n, bytes;
        ph_msg *msgs[SERVER_WRITE_BATCH];
} write_req;

static void conn_close(ph_conn *c);
static void conn_process(ph_conn *c);
static void conn_pump(ph_conn *c);
static void conn_oversize(ph_conn *c);
static void conn_start_reading(ph_conn *c);
static void server_accept_cb(uv_poll_t *p, int status, int events);
static void server_arm_sweep(ph_server *s);

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

int ph_server_check_listener(const ph_server *s)
{
        struct pollfd pfd = { .fd = s->fd, .events = POLLIN | POLLRDHUP };
        struct stat st;
        int acc = 0;
        socklen_t len = sizeof(acc);

        if (s->fd < 0)
                return 0;       /* stopped: nothing to check */
        if (fstat(s->fd, &st) < 0)
                return -errno;
        if (st.st_dev != s->fd_dev || st.st_ino != s->fd_ino)
                return -ESTALE;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
                return -errno;
        if (!acc)
                return -EINVAL;
        if (s->lost < 0)
                return s->lost;
        /* shutdown(2) leaves it listening, but connect() is refused: a
         * listener reports no hang-up otherwise. */
        if (poll(&pfd, 1, 0) < 0)
                return -errno;
        return pfd.revents & (POLLHUP | POLLRDHUP | POLLERR) ? -ESHUTDOWN : 0;
}

/* The socket file's identity, or -errno. */
static int server_stat_path(const char *path, dev_t *ret_dev, ino_t *ret_ino)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        *ret_dev = st.st_dev;
        *ret_ino = st.st_ino;
        return 0;
}

int ph_server_check_path(const ph_server *s, const char **ret_path)
{
        dev_t dev;
        ino_t ino;
        int r;

        if (s->fd < 0 || !s->sock_path)
                return 0;
        r = server_stat_path(s->sock_path, &dev, &ino);
        if (r == 0 && (dev != s->path_dev || ino != s->path_ino))
                r = -ESTALE;
        if (r < 0)
                *ret_path = s->sock_path;
        return r;
}

/* Accepting showed the listener dead (shut down, or an fd that is no
 * longer a listening socket): stop polling it, which would only spin, and
 * leave the verdict to ph_server_check_listener. */
static void server_lost(ph_server *s, int r)
{
        if (s->lost < 0)
                return;
        s->lost = r;
        uv_poll_stop(&s->poll);
}

bool ph_server_activated(const ph_server *s)
{
        return !s->unlink_on_exit;
}

unsigned ph_server_clients(const ph_server *s)
{
        /* A condemned connection only waits to deliver its last error. */
        return s->n_conns - s->n_condemned;
}

uint64_t ph_server_requests(const ph_server *s)
{
        return s->requests;
}

/* What all connections hold, shared messages counted once. */
static size_t server_total(const ph_server *s)
{
        return s->conn_total + msg_bytes_live;
}

size_t ph_server_buffered(const ph_server *s)
{
        return server_total(s);
}

uint64_t ph_server_disconnects(const ph_server *s)
{
        return s->disconnects;
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

/* ---- messages and queues ---- */

/* Takes data (len bytes, the NUL included). NULL on ENOMEM (data freed). */
static ph_msg *msg_new(char *data, size_t len)
{
        ph_msg *m = malloc(sizeof(*m));

        if (!m) {
                free(data);
                return NULL;
        }
        m->refs = 1;
        m->len = len;
        m->data = data;
        msg_bytes_live += len + sizeof(*m);
        return m;
}

static ph_msg *msg_ref(ph_msg *m)
{
        m->refs++;
        return m;
}

static void msg_unref(ph_msg *m)
{
        if (m && --m->refs == 0) {
                msg_bytes_live -= m->len + sizeof(*m);
                free(m->data);
                free(m);
        }
}

static size_t msg_charge(const ph_msg *m)
{
        return m->len + MSG_OVERHEAD;
}

/* Takes a reference. Returns -ENOMEM (the reference is dropped). */
static int queue_push(out_queue *q, ph_msg *m)
{
        out_node *n = malloc(sizeof(*n));

        if (!n) {
                msg_unref(m);
                return -ENOMEM;
        }
        n->next = NULL;
        n->msg = m;
        if (q->tail)
                q->tail->next = n;
        else
                q->head = n;
        q->tail = n;
        q->bytes += msg_charge(m);
        q->n++;
        return 0;
}

/* The first message, whose reference the caller gets; NULL when empty. */
static ph_msg *queue_pop(out_queue *q)
{
        out_node *n = q->head;
        ph_msg *m;

        if (!n)
                return NULL;
        q->head = n->next;
        if (!q->head)
                q->tail = NULL;
        m = n->msg;
        q->bytes -= msg_charge(m);
        q->n--;
        free(n);
        return m;
}

static void queue_clear(out_queue *q)
{
        ph_msg *m;

        while ((m = queue_pop(q)))
                msg_unref(m);
}

/* An operation still owes r its answer, and frees it when it comes if
 * the connection has gone by then (ph_reply_send). Every other reply
 * (done, a stream, one made in parts) belongs to its connection. */
static bool reply_awaited(const ph_reply *r)
{
        return !r->done && !r->stream && !r->produce;
}

static void reply_free(ph_reply *r)
{
        if (r->part_free)
                r->part_free(r->part_data);
        if (r->conn)
                r->conn->parts_charged -= r->part_charge;
        queue_clear(&r->q);
        msg_unref(r->msg);
        free(r);
}

/* ---- accounting ---- */

/* Tracks the high-water mark of what connections hold, and arms the sweep
 * to give memory back once a burst has passed. */
static void server_note_total(ph_server *s)
{
        size_t total = server_total(s);

        if (total > s->trimmed_at)
                s->trimmed_at = total;
        else if (s->trimmed_at > total + SERVER_TRIM_BYTES)
                server_arm_sweep(s);
}

static size_t framer_bytes(const ph_conn *c)
{
        return c->framer ? ph_framer_allocated(c->framer) : 0;
}

/* Recounts what c holds and moves the server's total by the difference.
 * What replies made in parts keep (a Query's snapshot) counts in the
 * total only: it is the reply itself, which a client that reads takes
 * part by part, so a small MaxBufferPerConnection= must not make a long
 * Query impossible; MaxBufferTotal= still bounds those of clients that
 * do not read. */
static void conn_account(ph_conn *c)
{
        size_t base = sizeof(*c) + framer_bytes(c) + c->n_replies * sizeof(ph_reply) +
                      (size_t)c->writes * sizeof(write_req);
        size_t sq = c->stream ? c->stream->q.bytes : 0, sn = c->stream ? c->stream->q.n : 0;
        size_t g = base + c->parts_charged + MSG_OVERHEAD * (c->n_held + sn + c->out.n + c->n_inflight);
        ph_server *s = c->srv;

        c->charged = base + c->held + sq + c->out.bytes + c->inflight;
        if (!s)
                return;
        s->conn_total = s->conn_total - c->gcharge + g;
        c->gcharge = g;
        server_note_total(s);
}

static bool conn_has_stream(const ph_conn *c)
{
        return c->stream != NULL;
}

/* What a Monitor stream has not delivered: its queued events, and once it
 * holds the head, everything on the way out (its events). Answers held
 * behind it do not count: the pipeline bounds them. */
static size_t stream_backlog(const ph_conn *c)
{
        if (c->head == c->stream)
                return c->out.bytes + c->inflight;
        return c->stream->q.bytes;
}

static void conn_condemn(ph_conn *c, const char *reason, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The budgets, after c took more: its own, its stream's, everyone's. */
static void conn_enforce(ph_conn *c)
{
        const ph_config *cfg = c->srv ? c->srv->cfg : NULL;
        ph_server *s = c->srv;
        size_t backlog;

        if (!cfg || c->closing || c->condemned)
                return;
        conn_account(c);
        /* A stream may fall behind for a moment (a burst of events comes
         * faster than anyone reads); one that stays behind is cut. */
        if (conn_has_stream(c) && (backlog = stream_backlog(c)) > cfg->monitor_buffer_max) {
                uint64_t now = uv_now(s->loop);

                if (!c->over_since) {
                        c->over_since = now;
                        server_arm_sweep(s);
                }
                if (now - c->over_since >= SERVER_MONITOR_GRACE_MS ||
                    backlog > SERVER_MONITOR_HARD * cfg->monitor_buffer_max) {
                        conn_condemn(c, "too-slow",
                                     "the Monitor stream has been more than %zu bytes behind for %.1f s (%zu now)",
                                     cfg->monitor_buffer_max, (double)(now - c->over_since) / 1000, backlog);
                        return;
                }
        } else {
                c->over_since = 0;
        }
        if (c->charged > cfg->max_buffer_per_conn) {
                conn_condemn(c, "buffer-full",
                             "the connection holds %zu bytes (MaxBufferPerConnection=%zu)", c->charged,
                             cfg->max_buffer_per_conn);
                return;
        }
        /* All connections together: the biggest holders go first. What
         * condemned ones still hold is on its way out (their last writes):
         * it is not a reason to condemn anyone else, or a burst of big
         * holders would take every small client with them. */
        while (server_total(s) > cfg->max_buffer_total) {
                ph_conn *big = NULL;
                size_t leaving = 0;

                for (ph_conn *o = s->conns; o; o = o->next) {
                        if (o->closing || o->condemned)
                                leaving += o->charged;
                        else if (!big || o->charged + o->parts_charged > big->charged + big->parts_charged)
                                big = o;
                }
                if (server_total(s) <= cfg->max_buffer_total + leaving)
                        break;
                if (!big || big->charged + big->parts_charged <= sizeof(*big))
                        break;
                conn_condemn(big, "buffer-full",
                             "all connections hold %zu bytes (MaxBufferTotal=%zu); this one %zu",
                             server_total(s), cfg->max_buffer_total, big->charged + big->parts_charged);
        }
}

/* ---- writing ---- */

static void conn_close_when_written(ph_conn *c);
static void conn_flush(ph_conn *c);
static void conn_flush_soon(ph_conn *c);

/* The head is a reply made in parts, not yet whole. */
static bool conn_producing(const ph_conn *c)
{
        return c->head && c->head->produce && !c->head->done;
}


static void write_cb(uv_write_t *req, int status)
{
        write_req *w = (write_req *)req;
        ph_conn *c = w->conn;

        for (size_t i = 0; i < w->n; i++)
                msg_unref(w->msgs[i]);
        c->inflight -= w->bytes;
        c->n_inflight -= w->n;
        c->writes--;
        free(w);
        if (c->closing)
                return;
        conn_account(c);
        if (status < 0) {
                /* The peer is gone, or the socket broke: nothing more to do. */
                conn_close(c);
                return;
        }
        conn_pump(c);
        /* What was written makes room for the next part of a reply. */
        if (!c->closing && conn_producing(c))
                conn_flush(c);
}

/* Hands queued messages to the socket: one write at a time, of up to
 * SERVER_WRITE_BATCH messages and SERVER_WRITE_WINDOW bytes. Tried at once
 * first (uv_try_write: most answers fit the socket buffer, and a uv_write
 * would cost an epoll_ctl each time); what does not fit goes to uv_write.
 * What comes while one is under way waits in our queue and goes out in
 * the next batch (a write per message would cost a request each, ~700
 * bytes, unbounded for a peer that does not read). */
static void conn_pump(ph_conn *c)
{
        while (c->out.head && !c->closing && c->writes == 0) {
                uv_buf_t bufs[SERVER_WRITE_BATCH];
                ph_msg *msgs[SERVER_WRITE_BATCH];
                size_t n = 0, bytes = 0, charge = 0, skip = 0;
                write_req *w;
                int done;

                while (n < SERVER_WRITE_BATCH && c->out.head && bytes < SERVER_WRITE_WINDOW) {
                        ph_msg *m = queue_pop(&c->out);

                        bufs[n] = uv_buf_init(m->data, (unsigned)m->len);
                        msgs[n++] = m;
                        bytes += m->len;
                        charge += msg_charge(m);
                }
                /* A reply made in parts is paced by write_cb, which makes
                 * the next part: one batch per loop turn, so a list of
                 * 100,000 plugins does not hold the loop (and a part the
                 * socket took at once would leave nobody to make the next). */
                done = conn_producing(c) ? 0 : uv_try_write((uv_stream_t *)&c->pipe, bufs, (unsigned)n);
                if (done == UV_EAGAIN || done == UV_ENOSYS)
                        done = 0;
                if (done < 0) {
                        for (size_t i = 0; i < n; i++)
                                msg_unref(msgs[i]);
                        conn_close(c);
                        return;
                }
                if ((size_t)done == bytes) {
                        for (size_t i = 0; i < n; i++)
                                msg_unref(msgs[i]);
                        continue;
                }
                /* The rest, from where the socket stopped taking. */
                while ((size_t)done >= bufs[skip].len) {
                        done -= (int)bufs[skip].len;
                        skip++;
                }
                bufs[skip].base += done;
                bufs[skip].len -= (size_t)done;
                if (!(w = calloc(1, sizeof(*w)))) {
                        for (size_t i = 0; i < n; i++)
                                msg_unref(msgs[i]);
                        conn_close(c);
                        return;
                }
                w->conn = c;
                w->n = n;
                w->bytes = sizeof(*w) + charge;
                memcpy(w->msgs, msgs, n * sizeof(msgs[0]));
                if (uv_write(&w->req, (uv_stream_t *)&c->pipe, bufs + skip, (unsigned)(n - skip),
                             write_cb) < 0) {
                        for (size_t i = 0; i < n; i++)
                                msg_unref(msgs[i]);
                        free(w);
                        conn_close(c);
                        return;
                }
                c->inflight += w->bytes;
                c->n_inflight += w->n;
                c->writes++;
        }
        if (c->closing)
                return;
        conn_account(c);
        if (c->shutdown_pending && !c->out.head)
                conn_close_when_written(c);
}

/* Moves a message into the send queue (takes the reference). */
static void conn_send(ph_conn *c, ph_msg *m)
{
        if (c->closing || c->condemned) {
                msg_unref(m);
                return;
        }
        if (queue_push(&c->out, m) < 0)
                conn_close(c);
}

/* What a connection may have on the way out before the next part of a
 * reply is made: a client that does not read gets nothing more made. */
static size_t conn_part_low(const ph_conn *c)
{
        size_t low = SERVER_WRITE_WINDOW;

        if (c->srv && c->srv->cfg && c->srv->cfg->max_buffer_per_conn / 4 < low)
                low = c->srv->cfg->max_buffer_per_conn / 4;
        return low;
}

/* Makes parts of r (at the head) while there is room; the last part
 * completes it. False while it is not complete (or c was closed). */
static bool conn_produce(ph_conn *c, ph_reply *r)
{
        while (!c->closing && c->out.bytes + c->inflight < conn_part_low(c)) {
                char *msg;
                size_t len;
                ph_msg *m;
                int k = r->produce(r->part_data, &msg, &len);

                /* (msg_new frees msg when it fails) */
                if (k < 0 || !(m = msg_new(msg, len))) {
                        conn_close(c);
                        return false;
                }
                if (k == 0) {
                        r->done = true;
                        r->msg = m;
                        c->held += msg_charge(m);
                        c->n_held++;
                        return true;
                }
                conn_send(c, m);
        }
        return false;
}

/* Writes answers that are ready, in request order. */
static void conn_flush(ph_conn *c)
{
        /* Replies made while a read is being handled go out together at
         * its end (conn_process flushes). */
        if (c->processing || c->closing)
                return;
        /* A oneway request's place counts against the pipeline until its
         * work is done, but sends nothing: what comes after it does not
         * wait for it. */
        for (ph_reply **pp = &c->head, *prev = NULL; *pp;) {
                ph_reply *r = *pp;

                if (r->stream) {
                        ph_msg *m;

                        if (r != c->head)
                                break;  /* its events wait for what is before it */
                        while ((m = queue_pop(&r->q)))
                                conn_send(c, m);
                        break;          /* a stream holds the head until the end */
                }
                if (r->produce && !r->done && !conn_produce(c, r))
                        break;
                if (!r->done) {
                        if (!r->silent)
                                break;
                        prev = r;
                        pp = &r->next;
                        continue;
                }
                *pp = r->next;
                if (c->tail == r)
                        c->tail = prev;
                c->n_replies--;
                if (r->msg) {
                        c->held -= msg_charge(r->msg);
                        c->n_held--;
                        if (!r->silent)
                                conn_send(c, msg_ref(r->msg));
                }
                reply_free(r);
        }
        if (c->closing)
                return;
        conn_pump(c);
        if (c->closing)
                return;
        conn_enforce(c);
        if (c->closing || c->condemned)
                return;
        /* A stream never ends by itself: after a half-close it goes too. */
        if (c->close_after_flush && (!c->head || c->head->stream)) {
                conn_close_when_written(c);
                return;
        }
        /* Room again after a full pipeline: take the next messages. Never
         * after a half-close (nothing more to read), or the two would call
         * each other forever. */
        if (!c->reading && !c->processing && !c->deferred && !c->close_after_flush &&
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
        ph_conn *c;

        if (!r) {
                free(msg);
                return;
        }
        c = r->conn;
        if (!c) {
                free(msg);
                reply_free(r);
                return;
        }
        r->done = true;
        if (r->silent) {
                free(msg);
        } else if ((r->msg = msg_new(msg, len))) {
                c->held += msg_charge(r->msg);
                c->n_held++;
        }
        conn_flush_soon(c);
}

int ph_reply_stream(ph_reply *r, char *msg, size_t len)
{
        ph_conn *c = r->conn;
        ph_msg *m;

        if (r->silent && c) {
                /* A oneway request streams nothing: its place is free. */
                free(msg);
                r->done = true;
                conn_flush(c);
                return -EPIPE;
        }
        if (!c || c->closing || c->condemned) {
                free(msg);
                return -EPIPE;
        }
        if (!r->stream) {
                /* A second Monitor on one connection: the first holds the
                 * reply order for good, so this one could never stream. */
                free(msg);
                ph_reply_error(r, PH_VERR_INVALID_PARAMETER, json_pack("{s:s}", "parameter", "more"),
                               "this connection has a Monitor stream already");
                return -EPIPE;
        }
        if (!(m = msg_new(msg, len)))
                return -ENOMEM;
        if (c->head == r) {
                conn_send(c, m);
                conn_pump(c);
        } else {
                queue_push(&r->q, m);
        }
        conn_enforce(c);
        return c->closing || c->condemned ? -EPIPE : 0;
}

void ph_reply_parts(ph_reply *r, ph_reply_part_fn produce, void *data, void (*free_data)(void *),
                    size_t charge)
{
        if (!r || !r->conn) {
                if (free_data)
                        free_data(data);
                if (r)
                        reply_free(r);
                return;
        }
        r->produce = produce;
        r->part_data = data;
        r->part_free = free_data;
        r->part_charge = charge;
        r->conn->parts_charged += charge;
        conn_flush(r->conn);
}

/* Sends a reply message made with result e (0, -EMSGSIZE, or another
 * negative errno), or the error that says why it could not be made. */
static void reply_made(ph_reply *r, int e, char *msg, size_t len)
{
        if (e == -EMSGSIZE) {
                ph_reply_error(r, PH_VERR_REPLY_TOO_LARGE,
                               json_pack("{s:I}", "limit", (json_int_t)PH_VARLINK_MESSAGE_MAX),
                               "the reply would exceed %u bytes", PH_VARLINK_MESSAGE_MAX);
                return;
        }
        if (e < 0) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        ph_reply_send(r, msg, len);
}

void ph_reply_jw(ph_reply *r, ph_jw *w)
{
        char *msg = NULL;
        size_t len = 0;
        int e = ph_jw_message_end(w, false, &msg, &len);

        reply_made(r, e, msg, len);
}

void ph_reply_ok(ph_reply *r, json_t *params)
{
        char *msg = NULL;
        size_t len = 0;
        int e = ph_varlink_reply(params, false, &msg, &len);

        reply_made(r, e, msg, len);
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

/* A walk over the connections: events are rare, a counter kept right
 * through every way a stream ends is not worth it. */
unsigned ph_server_monitors(const ph_server *s)
{
        unsigned n = 0;

        for (const ph_conn *c = s->conns; c; c = c->next)
                n += conn_has_stream(c) && !c->closing && !c->condemned;
        return n;
}

void ph_server_broadcast(ph_server *s, char *msg, size_t len)
{
        ph_msg *m = msg_new(msg, len);

        if (!m)
                return;
        /* One message, a reference per subscriber. */
        for (ph_conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                if (!conn_has_stream(c) || c->closing || c->condemned)
                        continue;
                if (c->head == c->stream) {
                        conn_send(c, msg_ref(m));
                        conn_pump(c);
                } else {
                        queue_push(&c->stream->q, msg_ref(m));
                }
                conn_enforce(c);
        }
        msg_unref(m);
}

/* ---- condemning ---- */

/* Frees what c holds, sends it a final Disconnected error, and closes it
 * once that is written, or after a grace period. */
static void conn_condemn(ph_conn *c, const char *reason, const char *fmt, ...)
{
        ph_server *s = c->srv;
        ph_reply *r, *next;
        char text[512], *msg;
        size_t len;
        va_list ap;

        if (c->closing || c->condemned)
                return;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        if (ph_ratelimit_ok(s->rl_disconnect, c->cred.uid, uv_now(s->loop)))
                ph_log_fields(PH_LOG_NOTICE, &(ph_log_ctx){ .reason = "disconnected", .uid = c->cred.uid },
                              "disconnecting client pid %d uid %u: %s", (int)c->cred.pid,
                              (unsigned)c->cred.uid, text);
        s->disconnects++;
        s->n_condemned++;
        c->condemned = true;
        c->condemned_at = uv_now(s->loop);
        if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->pipe);
                c->reading = false;
        }
        /* Pending answers belong to their operations; the rest goes now. */
        for (r = c->head; r; r = next) {
                next = r->next;
                r->next = NULL;
                if (reply_awaited(r))
                        r->conn = NULL;
                else
                        reply_free(r);
        }
        c->head = c->tail = c->stream = NULL;
        c->n_replies = 0;
        c->held = c->n_held = 0;
        queue_clear(&c->out);
        c->partial_since = 0;
        ph_framer_free(c->framer);
        c->framer = NULL;
        c->shutdown_pending = true;
        if (ph_varlink_errorf(PH_VERR_DISCONNECTED, json_pack("{s:s}", "reason", reason), &msg, &len,
                              "%s", text) == 0) {
                ph_msg *m = msg_new(msg, len);

                if (m && queue_push(&c->out, m) < 0)
                        m = NULL;
        }
        conn_pump(c);
        server_arm_sweep(s);
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
        /* A oneway request keeps a (silent) place too: it counts against
         * the pipeline like any other, so it cannot queue work unbounded. */
        if (!(r = ph_reply_new(c))) {
                ph_request_clear(&req);
                conn_close(c);
                return;
        }
        r->silent = req.oneway;
        if (!req.oneway && req.more && (req.method->flags & PH_METHOD_ENDLESS) && !c->stream) {
                r->stream = true;
                c->stream = r;
        }
        c->srv->dispatch(c->srv->userdata, c, &req, r);
        ph_request_clear(&req);
}

/* Handles complete messages, as many as the pipeline allows; reads more
 * when it has room. */
/* The next loop turn: after every other ready connection had its own. */
/* Answers finished since the last turn (a batch of calls from the
 * plugin pool): one write per connection for all of them. */
static void server_flush_soon(ph_server *s)
{
        ph_conn *c;

        while ((c = s->flush_head)) {
                s->flush_head = c->flush_next;
                c->flush_next = NULL;
                c->flush_soon = false;
                conn_flush(c);
        }
}

static void server_turn_cb(uv_idle_t *h)
{
        ph_server *s = h->data;

        server_flush_soon(s);
        for (ph_conn *next, *c = s->conns; c && s->n_deferred; c = next) {
                next = c->next;
                if (!c->deferred)
                        continue;
                c->deferred = false;
                s->n_deferred--;
                c->turn_bytes = 0;
                if (!c->closing && !c->condemned)
                        conn_process(c);
        }
        if (!s->n_deferred && !s->flush_head)
                uv_idle_stop(&s->turn);
}

/* Writes c's finished answers at the start of the next loop turn, with
 * whatever else finishes before it, instead of one write per answer. */
static void conn_flush_soon(ph_conn *c)
{
        ph_server *s = c->srv;

        if (!s || s->stopped || c->closing) {
                conn_flush(c);
                return;
        }
        if (c->flush_soon)
                return;
        c->flush_soon = true;
        c->flush_next = s->flush_head;
        s->flush_head = c;
        uv_idle_start(&s->turn, server_turn_cb);
}

/* Whether c waits for the next turn now (not once the server stopped:
 * its handles are closed, and what is left is drained at once). */
static bool conn_defer(ph_conn *c)
{
        ph_server *s = c->srv;

        if (!s || s->stopped)
                return false;
        if (!c->deferred) {
                c->deferred = true;
                if (s->n_deferred++ == 0)
                        uv_idle_start(&s->turn, server_turn_cb);
        }
        return true;
}

static void conn_process(ph_conn *c)
{
        uint64_t t0 = uv_hrtime();
        const char *msg;
        size_t len;
        unsigned n = 0;
        int r;

        c->processing = true;
        while (!c->closing && !c->condemned && c->n_replies < SERVER_PIPELINE_MAX) {
                if (n > 0 && (n >= SERVER_TURN_MESSAGES || uv_hrtime() - t0 >= SERVER_TURN_NS) &&
                    conn_defer(c))
                        break;
                n++;
                r = ph_framer_next(c->framer, &msg, &len);
                if (r == 0)
                        break;
                if (r < 0) {
                        c->processing = false;
                        conn_oversize(c);
                        return;
                }
                c->partial_since = 0;
                conn_message(c, msg, len);
                /* Its budget, as each answer comes: not after 128 of them. */
                conn_enforce(c);
        }
        c->processing = false;
        if (c->closing || c->condemned)
                return;
        if (c->deferred) {
                if (c->reading) {
                        uv_read_stop((uv_stream_t *)&c->pipe);
                        c->reading = false;
                }
        } else if (c->n_replies >= SERVER_PIPELINE_MAX || c->close_after_flush) {
                if (c->reading) {
                        uv_read_stop((uv_stream_t *)&c->pipe);
                        c->reading = false;
                }
                /* Our backpressure, not the client's slowness. */
                c->partial_since = 0;
                server_arm_sweep(c->srv);       /* to see its hang-up */
        } else {
                if (!c->reading)
                        conn_start_reading(c);
                /* Bytes left after the complete messages: a message under
                 * way, which has MessageTimeoutSec= to complete. */
                if (ph_framer_pending(c->framer) > 0 && !c->partial_since) {
                        c->partial_since = uv_now(c->srv->loop);
                        server_arm_sweep(c->srv);
                } else if (ph_framer_pending(c->framer) == 0) {
                        c->partial_since = 0;
                }
        }
        conn_flush(c);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        ph_conn *c = h->data;
        char *space;
        size_t avail;

        (void)suggested;
        if (!c->framer || ph_framer_reserve(c->framer, SERVER_READ_CHUNK, &space, &avail) < 0) {
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
        if (ph_ratelimit_ok(c->srv->rl_disconnect, c->cred.uid, uv_now(c->srv->loop)))
                ph_log_fields(PH_LOG_NOTICE,
                              &(ph_log_ctx){ .reason = "message-too-large", .uid = c->cred.uid },
                              "client pid %d uid %u sent a message over %zu bytes; disconnecting",
                              (int)c->cred.pid, (unsigned)c->cred.uid, c->srv->cfg->max_message);
        c->close_after_flush = true;
        if (r)
                ph_reply_error(r, PH_VERR_INVALID_PARAMETER, json_pack("{s:s}", "parameter", "message"),
                               "message larger than %zu bytes; closing the connection",
                               c->srv->cfg->max_message);
        else
                conn_close(c);
}

static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
        ph_conn *c = st->data;

        (void)buf;
        if (nread == UV_ENOBUFS) {
                conn_oversize(c);
                return;
        }
        if (nread == UV_EOF) {
                /* Half-closed: answer what was asked, then close. */
                uv_read_stop(st);
                c->reading = false;
                c->close_after_flush = true;
                c->partial_since = 0;
                if (!c->head || c->head->stream)
                        conn_close_when_written(c);
                return;
        }
        if (nread < 0) {
                conn_close(c);
                return;
        }
        ph_framer_commit(c->framer, (size_t)nread);
        c->turn_bytes += (size_t)nread;
        conn_process(c);
        if (!c->closing && !c->condemned)
                conn_enforce(c);
        /* Enough read for this turn: the rest on the next one. */
        if (!c->closing && !c->condemned && c->reading && c->turn_bytes >= SERVER_TURN_BYTES &&
            conn_defer(c)) {
                uv_read_stop(st);
                c->reading = false;
        }
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
        if (s->lost == 0)
                uv_poll_start(&s->poll, SERVER_ACCEPT_EVENTS, server_accept_cb);
}

static void conn_free(ph_conn *c)
{
        for (ph_reply *r = c->head, *next; r; r = next) {
                next = r->next;
                reply_free(r);
        }
        queue_clear(&c->out);
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
        if (u && u->n > 0 && --u->n == 0)
                *u = s->uids[--s->n_uids];      /* a uid without connections takes no room */
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_conns--;
        if (c->condemned)
                s->n_condemned--;
        if (c->deferred)
                s->n_deferred--;
        if (c->flush_soon)
                for (ph_conn **pp = &s->flush_head; *pp; pp = &(*pp)->flush_next)
                        if (*pp == c) {
                                *pp = c->flush_next;
                                break;
                        }
        s->conn_total -= c->gcharge;
        server_note_total(s);
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
        if (c->out.head) {
                c->shutdown_pending = true;     /* conn_pump comes back here */
                return;
        }
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
         * them when it answers). Finished ones, streams and replies made
         * in parts (no operation owns those) stay listed and go in the
         * close callback: a caller up the stack (conn_flush) may still be
         * looking at one. */
        keep = &c->head;
        c->tail = NULL;
        for (r = c->head; r; r = next) {
                next = r->next;
                r->next = NULL;
                if (!reply_awaited(r)) {
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

/* ---- the sweep ---- */

static void server_sweep_cb(uv_timer_t *t)
{
        ph_server *s = t->data;
        uint64_t now = uv_now(s->loop);
        uint64_t timeout = (uint64_t)(s->cfg->message_timeout_sec * 1000);
        size_t n = 0;
        bool again = false;

        for (ph_conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                if (c->closing)
                        continue;
                if (c->condemned) {
                        if (now - c->condemned_at >= SERVER_CONDEMNED_GRACE_MS)
                                conn_close(c);
                        else
                                again = true;
                        continue;
                }
                if (c->partial_since && now - c->partial_since >= timeout) {
                        conn_condemn(c, "incomplete-message",
                                     "a message has been incomplete for %.1f s (MessageTimeoutSec=)",
                                     (double)(now - c->partial_since) / 1000);
                        again = true;
                        continue;
                }
                again |= c->partial_since != 0;
                /* A stream behind for its whole grace period, with no new
                 * event to notice it. */
                if (c->over_since) {
                        conn_enforce(c);
                        if (c->condemned)
                                continue;
                        again |= c->over_since != 0;
                }
                /* Not read by us: its hang-up would go unseen otherwise. */
                if (!c->reading) {
                        uv_os_fd_t fd;

                        if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0)
                                continue;
                        if (ph__vec_reserve((void **)&s->pfds, &s->cap_pfds, n + 1, sizeof(*s->pfds)) < 0 ||
                            ph__vec_reserve((void **)&s->pconns, &s->cap_pconns, n + 1,
                                            sizeof(*s->pconns)) < 0)
                                break;
                        s->pfds[n] = (struct pollfd){ .fd = fd, .events = POLLRDHUP };
                        s->pconns[n++] = c;
                }
        }
        if (n > 0 && poll(s->pfds, n, 0) > 0)
                for (size_t i = 0; i < n; i++)
                        if ((s->pfds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) ||
                            /* Half-closed behind its Monitor stream: what it
                             * sent can never be answered (the stream holds
                             * the reply order), and a stream goes after a
                             * half-close anyway (conn_flush). */
                            ((s->pfds[i].revents & POLLRDHUP) && s->pconns[i]->head &&
                             s->pconns[i]->head->stream))
                                conn_close(s->pconns[i]);
        again |= n > 0;
        ph_ratelimit_flush(s->rl_refused, now);
        ph_ratelimit_flush(s->rl_disconnect, now);
        again |= ph_ratelimit_pending(s->rl_refused) || ph_ratelimit_pending(s->rl_disconnect);
        /* Give memory back after a burst (freed memory stays with malloc). */
        if (s->trimmed_at > server_total(s) + SERVER_TRIM_BYTES && now - s->trim_ms >= SERVER_TRIM_MS) {
                malloc_trim(0);
                s->trim_ms = now;
                s->trimmed_at = server_total(s);
        }
        again |= s->trimmed_at > server_total(s) + SERVER_TRIM_BYTES;
        if (!again) {
                uv_timer_stop(&s->sweep);
                s->sweeping = false;
        }
}

static void server_arm_sweep(ph_server *s)
{
        if (s->sweeping || s->stopped)
                return;
        s->sweeping = true;
        uv_timer_start(&s->sweep, server_sweep_cb, SERVER_SWEEP_MS, SERVER_SWEEP_MS);
}

/* ---- accepting ---- */

static void server_refuse(ph_server *s, int fd, const struct ucred *cred, const char *why)
{
        if (ph_ratelimit_ok(s->rl_refused, cred->uid, uv_now(s->loop)))
                ph_log_fields(PH_LOG_WARNING,
                              &(ph_log_ctx){ .reason = "connection-refused", .uid = cred->uid },
                              "refusing a connection from pid %d uid %u: %s", (int)cred->pid,
                              (unsigned)cred->uid, why);
        close(fd);
        server_arm_sweep(s);    /* for the summary of what was not logged */
}

static void server_accept_one(ph_server *s, int fd)
{
        const ph_config *cfg = s->cfg;
        socklen_t len = sizeof(struct ucred), glen;
        gid_t groups[64];
        size_t n_groups = 1;
        struct ucred cred;
        bool privileged;
        uid_count *u;
        ph_conn *c;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                close(fd);
                return;
        }
        groups[0] = cred.gid;
        glen = sizeof(groups) - sizeof(gid_t);
        /* The peer's supplementary groups, for AllowGroups=. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, &groups[1], &glen) == 0)
                n_groups += glen / sizeof(gid_t);
        /* Root, our own user and the [Policy] access list may use the
         * reserve: no set of other users can lock them out. */
        privileged = ph_acl_allows(&cfg->acl, cred.uid, groups, n_groups);
        if (s->n_conns >= cfg->max_connections ||
            (!privileged && s->n_conns >= cfg->max_connections - cfg->reserved_connections)) {
                server_refuse(s, fd, &cred, "too many connections");
                return;
        }
        u = uid_slot(s, cred.uid, true);
        if (!u || (!privileged && u->n >= cfg->max_connections_per_uid)) {
                server_refuse(s, fd, &cred, "too many connections for this user");
                return;
        }
        c = calloc(1, sizeof(*c));
        if (!c || ph_framer_new(cfg->max_message, &c->framer) < 0) {
                free(c);
                close(fd);
                return;
        }
        c->cred = cred;
        memcpy(c->groups, groups, n_groups * sizeof(gid_t));
        c->n_groups = n_groups;
        c->privileged = privileged;
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
        conn_account(c);
        conn_start_reading(c);
}

static void server_retry_cb(uv_timer_t *t)
{
        server_resume(t->data);
}

static void server_accept_cb(uv_poll_t *p, int status, int events)
{
        ph_server *s = p->data;

        if (status < 0) {
                /* libuv stopped the poll itself (POLLERR). */
                server_lost(s, status);
                return;
        }
        if (events & UV_DISCONNECT) {
                server_lost(s, -ESHUTDOWN);
                return;
        }
        /* A few per turn: a client that connects as fast as we accept would
         * keep us here for good. The poll is level-triggered: the rest come
         * on the next turn, after the other connections had theirs. */
        for (unsigned n = 0; n < SERVER_ACCEPT_TURN; n++) {
                int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd >= 0) {
                        server_accept_one(s, fd);
                        continue;
                }
                if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                if (errno == EINVAL || errno == EBADF || errno == ENOTSOCK || errno == EOPNOTSUPP) {
                        server_lost(s, -errno);
                        return;
                }
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

/* Which file clients connect to, for ph_server_check_path: the one we
 * bound, or the one systemd bound (from getsockname; none if abstract or
 * unnamed). Without it, the path goes unchecked. */
static void server_path_init(ph_server *s)
{
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);

        if (s->path) {
                s->sock_path = strdup(s->path);
        } else if (getsockname(s->fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_family == AF_UNIX &&
                   len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0] == '/') {
                s->sock_path = strndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
        }
        if (s->sock_path && server_stat_path(s->sock_path, &s->path_dev, &s->path_ino) < 0) {
                free(s->sock_path);
                s->sock_path = NULL;
        }
}

int ph_server_new(uv_loop_t *loop, const ph_config *cfg, ph_server_dispatch_fn dispatch,
                  void *userdata, ph_server **ret)
{
        ph_server *s = calloc(1, sizeof(*s));
        struct stat st;
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
        if (fstat(s->fd, &st) < 0) {
                r = -errno;
                close(s->fd);
                free(s->path);
                free(s);
                return r;
        }
        s->fd_dev = st.st_dev;
        s->fd_ino = st.st_ino;
        server_path_init(s);
        s->rl_refused = ph_ratelimit_new("refused connections", SERVER_LOG_PER_UID, SERVER_LOG_TOTAL,
                                         SERVER_LOG_INTERVAL_MS);
        s->rl_disconnect = ph_ratelimit_new("disconnects", SERVER_LOG_PER_UID, SERVER_LOG_TOTAL,
                                            SERVER_LOG_INTERVAL_MS);
        uv_poll_init(loop, &s->poll, s->fd);
        s->poll.data = s;
        uv_timer_init(loop, &s->retry);
        s->retry.data = s;
        uv_timer_init(loop, &s->sweep);
        s->sweep.data = s;
        uv_idle_init(loop, &s->turn);
        s->turn.data = s;
        *ret = s;
        return 0;
}

void ph_server_start(ph_server *s)
{
        if (s && !s->stopped)
                uv_poll_start(&s->poll, SERVER_ACCEPT_EVENTS, server_accept_cb);
}

void ph_server_stop(ph_server *s)
{
        if (!s || s->stopped)
                return;
        s->stopped = true;
        /* Finished answers are written before idle connections close. */
        server_flush_soon(s);
        uv_poll_stop(&s->poll);
        uv_timer_stop(&s->retry);
        uv_timer_stop(&s->sweep);
        uv_idle_stop(&s->turn);
        uv_close((uv_handle_t *)&s->poll, NULL);
        uv_close((uv_handle_t *)&s->turn, NULL);
        uv_close((uv_handle_t *)&s->retry, NULL);
        uv_close((uv_handle_t *)&s->sweep, NULL);
        /* Not a socket file that replaced ours (another daemon's). */
        if (s->unlink_on_exit && ph_server_check_path(s, &(const char *){ NULL }) == 0)
                unlink(s->path);
        close(s->fd);
        s->fd = -1;
        /* Connections with nothing in flight can go now. */
        for (ph_conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                bool busy = false;
                for (ph_reply *r = c->head; r; r = r->next)
                        busy |= reply_awaited(r);
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
        ph_ratelimit_free(s->rl_refused);
        ph_ratelimit_free(s->rl_disconnect);
        free(s->pfds);
        free(s->pconns);
        free(s->uids);
        free(s->path);
        free(s->sock_path);
        free(s);
}
