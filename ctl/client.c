/* plughostctl's Varlink client: blocking, one connection per command. A
 * request goes out as JSON and a NUL; replies are split at each NUL by
 * protocol/'s framer, never more than PH_VARLINK_MESSAGE_MAX bytes, and
 * parsed with jansson. Every failure is printed here, once, on stderr. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "varlink.h"

/* Bytes asked of the framer for each read. */
#define CLIENT_READ_MIN 16384u

struct ctl_client {
        int fd;
        ph_framer *framer;
        const sigset_t *wait_mask;      /* signals that may end a wait */
};

const char *ctl_socket_path(const ctl_opts *opts)
{
        const char *env = getenv("PLUGHOST_SOCKET");

        if (opts->socket_path)
                return opts->socket_path;
        return env && *env ? env : PH_VARLINK_DEFAULT_SOCKET;
}

/* "plughostctl: what: why", or plughostctl.Failed with --json. */
static void client_fail(const char *what, const char *why)
{
        ctl_fail("plughostctl.Failed", NULL, "%s: %s", what, why);
}

/* A reply we cannot use: the daemon (or what answers in its place) is
 * broken or hostile. */
static void client_bad_reply(const char *why)
{
        ctl_fail("plughostctl.BadReply", NULL, "malformed reply: %s", why);
}

/* For a socket missing or refusing, a hint; systemd's unit only for the
 * default path, the one plughostd.socket listens on. */
static void client_connect_fail(const char *path, int err)
{
        const char *hint = "";

        if (err == ENOENT || err == ECONNREFUSED)
                hint = strcmp(path, PH_VARLINK_DEFAULT_SOCKET) == 0
                               ? " (is plughostd running? see systemctl status plughostd.socket)"
                               : " (is plughostd running?)";
        ctl_fail("plughostctl.ConnectFailed", json_pack("{s:s, s:i}", "socket", path, "errno", err),
                 "cannot connect to %s: %s%s", path, strerror(err), hint);
}

int ctl_client_open(const ctl_opts *opts, ctl_client **ret)
{
        const char *path = ctl_socket_path(opts);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ctl_client *c;
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                client_connect_fail(path, ENAMETOOLONG);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = -errno;
                client_connect_fail(path, errno);
                if (fd >= 0)
                        close(fd);
                return r;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                client_fail("connect", strerror(ENOMEM));
                return -ENOMEM;
        }
        r = ph_framer_new(PH_VARLINK_MESSAGE_MAX, &c->framer);
        if (r < 0) {
                close(fd);
                free(c);
                client_fail("connect", strerror(-r));
                return r;
        }
        c->fd = fd;
        *ret = c;
        return 0;
}

void ctl_client_set_wait_mask(ctl_client *c, const sigset_t *mask)
{
        c->wait_mask = mask;
}

void ctl_client_free(ctl_client *c)
{
        if (!c)
                return;
        if (c->fd >= 0)
                close(c->fd);
        ph_framer_free(c->framer);
        free(c);
}

int ctl_client_send(ctl_client *c, const char *method, json_t *params, bool more)
{
        json_t *req = json_pack("{s:s, s:o}", "method", method, "parameters",
                                params ? params : json_object());
        char *msg;
        size_t len, off = 0;

        if (req && more)
                json_object_set_new(req, "more", json_true());
        msg = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!msg) {
                client_fail(method, strerror(ENOMEM));
                return -ENOMEM;
        }
        /* The NUL that ends the string is the frame delimiter. */
        len = strlen(msg) + 1;
        if (len > PH_VARLINK_MESSAGE_MAX) {
                free(msg);
                client_fail(method, "request too large");
                return -EMSGSIZE;
        }
        while (off < len) {
                ssize_t n = send(c->fd, msg + off, len - off, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;

                        client_fail("send", strerror(errno));
                        free(msg);
                        return r;
                }
                off += (size_t)n;
        }
        free(msg);
        return 0;
}

int ctl_client_recv(ctl_client *c, json_t **ret_reply)
{
        json_error_t jerr;
        const char *msg;
        json_t *reply;
        size_t len, room;
        char *buf;
        ssize_t n;
        int r;

        while ((r = ph_framer_next(c->framer, &msg, &len)) == 0) {
                /* We take every message as it comes, so -ENOBUFS cannot
                 * happen: only -EMSGSIZE and -ENOMEM. */
                r = ph_framer_reserve(c->framer, CLIENT_READ_MIN, &buf, &room);
                if (r < 0)
                        break;
                /* The signals are blocked but while waiting here: one that
                 * comes while we print is not lost, it ends the next wait. */
                if (c->wait_mask) {
                        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

                        if (ppoll(&pfd, 1, NULL, c->wait_mask) < 0 && errno == EINTR)
                                return -EINTR;
                }
                n = read(c->fd, buf, room);
                if (n < 0 && errno == EINTR)
                        return -EINTR;  /* the caller was interrupted: not an error to print */
                if (n < 0) {
                        r = -errno;
                        client_fail("read", strerror(errno));
                        return r;
                }
                if (n == 0) {
                        ctl_fail("plughostctl.Disconnected", NULL, "plughostd closed the connection%s",
                                 ph_framer_pending(c->framer) > 0 ? " mid-reply" : "");
                        return -ECONNRESET;
                }
                ph_framer_commit(c->framer, (size_t)n);
        }
        if (r < 0) {
                if (r == -EMSGSIZE)
                        client_bad_reply("larger than the message limit (1 MiB)");
                else
                        client_fail("reply", strerror(-r));
                return r;
        }
        reply = json_loadb(msg, len, 0, &jerr);
        if (!json_is_object(reply) ||
            !json_is_object(json_object_get(reply, "parameters"))) {
                client_bad_reply(reply ? "not a Varlink reply" : jerr.text);
                json_decref(reply);
                return -EBADMSG;
        }
        *ret_reply = reply;
        return 0;
}

int ctl_reply_check(json_t *reply)
{
        if (!json_object_get(reply, "error"))
                return 0;
        ctl_fail_reply(reply);
        return -EREMOTEIO;
}

/* Adds a part's members to what came before: arrays are extended. */
static int join_part(json_t *all, json_t *part)
{
        const char *key;
        json_t *v, *have;

        json_object_foreach(part, key, v) {
                have = json_object_get(all, key);
                if (json_is_array(have) && json_is_array(v)) {
                        if (json_array_extend(have, v) < 0)
                                return -ENOMEM;
                } else if (json_object_set(all, key, v) < 0) {
                        return -ENOMEM;
                }
        }
        return 0;
}

int ctl_client_call(const ctl_opts *opts, const char *method, json_t *params, bool more,
                    json_t **ret_params)
{
        json_t *reply, *all = NULL;
        ctl_client *c;
        int r;

        r = ctl_client_open(opts, &c);
        if (r < 0) {
                json_decref(params);
                return r;
        }
        r = ctl_client_send(c, method, params, more);
        while (r == 0 && (r = ctl_client_recv(c, &reply)) == 0) {
                bool continues = json_is_true(json_object_get(reply, "continues"));

                r = ctl_reply_check(reply);
                if (r == 0 && !all)
                        all = json_incref(json_object_get(reply, "parameters"));
                else if (r == 0 && (r = join_part(all, json_object_get(reply, "parameters"))) < 0)
                        client_fail(method, strerror(-r));
                json_decref(reply);
                if (!continues || !more)
                        break;
        }
        ctl_client_free(c);
        if (r < 0) {
                json_decref(all);
                return r;
        }
        *ret_params = all;
        return 0;
}
