/* The yardstick of bench-daemon (never part of `make check`): a bare
 * libuv+jansson Varlink server. It listens on the Unix socket named by its
 * argument, parses each NUL-delimited message with jansson and answers
 * {"parameters": <the request's "parameters" object, or {}>}, the answers
 * to everything one read brought in one write. It is what any server on
 * these two libraries pays per message; what plughostd does on top (the
 * method table, permissions, the registry, budgets) is what the ratios
 * bench-daemon prints put a price on. SIGTERM ends it with status 0. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MESSAGE_MAX (1024u * 1024u)     /* as plughostd's PH_VARLINK_MESSAGE_MAX */
#define READ_MIN (64u * 1024u)          /* free space offered to each read */
#define QUEUE_MAX (1024u * 1024u)       /* unwritten bytes before we stop reading */

struct conn {
        uv_pipe_t pipe;
        char *in;                       /* bytes read, not yet a whole message */
        size_t in_len, in_cap;
        bool paused;                    /* reading stopped until the peer reads */
};

/* The answers to one read: one uv_write, freed when it is done. */
struct out {
        uv_write_t req;
        char *buf;
        size_t len, cap;
};

static void conn_closed(uv_handle_t *h)
{
        struct conn *c = h->data;

        free(c->in);
        free(c);
}

static void conn_close(struct conn *c)
{
        if (!uv_is_closing((uv_handle_t *)&c->pipe))
                uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void out_free(struct out *o)
{
        if (o)
                free(o->buf);
        free(o);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct conn *c = h->data;
        size_t cap = c->in_cap ? c->in_cap : READ_MIN;
        char *p;

        (void)suggested;
        while (cap - c->in_len < READ_MIN)
                cap *= 2;
        if (cap != c->in_cap) {
                if (!(p = realloc(c->in, cap))) {
                        *buf = uv_buf_init(NULL, 0);    /* libuv reports UV_ENOBUFS */
                        return;
                }
                c->in = p;
                c->in_cap = cap;
        }
        *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

/* Appends the answer to msg, and its NUL, to *po (made on first use). */
static int answer(struct out **po, const char *msg, size_t len)
{
        json_t *req = json_loadb(msg, len, 0, NULL), *params, *reply;
        struct out *o = *po;
        char *text = NULL;
        size_t n;
        int r = -ENOMEM;

        if (!json_is_object(req)) {
                json_decref(req);
                return -EBADMSG;
        }
        params = json_object_get(req, "parameters");
        reply = json_object();
        if (reply && json_object_set_new(reply, "parameters",
                                         json_is_object(params) ? json_incref(params) : json_object()) == 0)
                text = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        json_decref(req);
        if (!text)
                return -ENOMEM;
        n = strlen(text) + 1;
        if (!o && !(o = *po = calloc(1, sizeof(*o))))
                goto out;
        if (o->cap - o->len < n) {
                size_t cap = o->cap ? o->cap : 4096;
                char *p;

                while (cap - o->len < n)
                        cap *= 2;
                if (!(p = realloc(o->buf, cap)))
                        goto out;
                o->buf = p;
                o->cap = cap;
        }
        memcpy(o->buf + o->len, text, n);
        o->len += n;
        r = 0;
out:
        free(text);
        return r;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
        struct out *o = (struct out *)req;
        uv_stream_t *s = req->handle;
        struct conn *c = s->data;

        out_free(o);
        if (status < 0) {
                conn_close(c);
                return;
        }
        if (c->paused && uv_stream_get_write_queue_size(s) <= QUEUE_MAX / 2 &&
            uv_read_start(s, on_alloc, on_read) == 0)
                c->paused = false;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        struct conn *c = s->data;
        struct out *o = NULL;
        size_t start = 0;
        char *nul;

        (void)buf;
        if (nread < 0) {
                conn_close(c);
                return;
        }
        c->in_len += (size_t)nread;
        while ((nul = memchr(c->in + start, '\0', c->in_len - start))) {
                size_t len = (size_t)(nul - (c->in + start));

                /* What does not parse ends the connection: no error replies here. */
                if (answer(&o, c->in + start, len) < 0) {
                        out_free(o);
                        conn_close(c);
                        return;
                }
                start += len + 1;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if (c->in_len > MESSAGE_MAX) {
                out_free(o);
                conn_close(c);
                return;
        }
        if (o) {
                uv_buf_t b = uv_buf_init(o->buf, (unsigned)o->len);

                if (uv_write(&o->req, s, &b, 1, on_written) < 0) {
                        out_free(o);
                        conn_close(c);
                        return;
                }
        }
        /* A peer that does not read its answers does not get to queue more. */
        if (uv_stream_get_write_queue_size(s) > QUEUE_MAX) {
                uv_read_stop(s);
                c->paused = true;
        }
}

static void on_connection(uv_stream_t *server, int status)
{
        struct conn *c;

        if (status < 0 || !(c = calloc(1, sizeof(*c))))
                return;
        uv_pipe_init(server->loop, &c->pipe, 0);
        c->pipe.data = c;
        if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 ||
            uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
                conn_close(c);
}

static void on_term(uv_signal_t *sig, int signum)
{
        (void)signum;
        uv_stop(sig->loop);
}

int main(int argc, char **argv)
{
        uv_loop_t *loop = uv_default_loop();
        uv_pipe_t server;
        uv_signal_t term;
        int r;

        if (argc != 2) {
                fprintf(stderr, "usage: bench-echo SOCKET\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        unlink(argv[1]);
        uv_pipe_init(loop, &server, 0);
        if ((r = uv_pipe_bind(&server, argv[1])) < 0 ||
            (r = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection)) < 0) {
                fprintf(stderr, "bench-echo: %s: %s\n", argv[1], uv_strerror(r));
                return 1;
        }
        uv_signal_init(loop, &term);
        uv_signal_start(&term, on_term, SIGTERM);
        uv_run(loop, UV_RUN_DEFAULT);
        unlink(argv[1]);
        return 0;
}
