/* The control socket and its connections: accepts clients (credentials
 * taken at accept, connections capped), frames Varlink messages, hands each
 * validated request to a dispatch callback, and answers through reply
 * slots in request order. Loop thread only. */
#ifndef PH_SERVER_H
#define PH_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "jw.h"

typedef struct ph_server ph_server;
typedef struct ph_conn ph_conn;
typedef struct ph_reply ph_reply;
struct ph_request;

/* Runs a validated request; answers through r (NULL for oneway). The
 * request is the caller's: copy what outlives the call. */
typedef void (*ph_server_dispatch_fn)(void *userdata, ph_conn *c, struct ph_request *req,
                                      ph_reply *r);

/* Listens on cfg's socket, or on the one systemd passed; clients can
 * connect (they wait in the backlog) but are accepted only from
 * ph_server_start on. cfg is borrowed: see ph_server_set_config. */
int ph_server_new(uv_loop_t *loop, const ph_config *cfg, ph_server_dispatch_fn dispatch,
                  void *userdata, ph_server **ret);
/* After a reload: the limits of the new configuration apply to new
 * connections and messages (the socket stays as bound). */
void ph_server_set_config(ph_server *s, const ph_config *cfg);
/* Starts accepting: after the first scan, so no client sees an empty
 * registry. */
void ph_server_start(ph_server *s);
/* Stops accepting and closes idle connections. */
void ph_server_stop(ph_server *s);
void ph_server_free(ph_server *s);
unsigned ph_server_clients(const ph_server *s);
uint64_t ph_server_requests(const ph_server *s);
/* Bytes all connections hold (buffers, queued replies), as counted
 * against MaxBufferTotal=; connections disconnected for their budgets. */
size_t ph_server_buffered(const ph_server *s);
uint64_t ph_server_disconnects(const ph_server *s);
/* 0 while the listening fd is still the socket we listened on (same
 * st_dev and st_ino as at start, listening, not shut down); -EBADF when it
 * was closed, -ESTALE when something else now has its number, -EINVAL when
 * it no longer listens, -ESHUTDOWN when shutdown(2) was called on it (the
 * socket hangs up; or accepting said so), or the error accepting met.
 * Three system calls. Loop thread. */
int ph_server_check_listener(const ph_server *s);
/* 0 while the socket file clients connect to (ours, or systemd's under
 * socket activation) is still the one bound to the listener, or when it
 * is not known; else sets *ret_path to it (the server's) and returns
 * -ENOENT when it was removed, -ESTALE when another file took its name,
 * or another negative errno from stat. One system call. Loop thread. */
int ph_server_check_path(const ph_server *s, const char **ret_path);
/* True when the listener came from systemd (socket activation). */
bool ph_server_activated(const ph_server *s);

/* Connection facts for methods. */
uid_t ph_conn_uid(const ph_conn *c);
/* The peer's groups (primary and supplementary, from SO_PEERGROUPS). */
const gid_t *ph_conn_groups(const ph_conn *c, size_t *ret_n);
pid_t ph_conn_pid(const ph_conn *c);

/* Reply slots. Every request that expects an answer gets one, in order;
 * whoever holds a slot must complete it exactly once. A slot whose
 * connection went away frees itself when completed. */
ph_reply *ph_reply_new(ph_conn *c);
/* Completes a slot with a serialised message (taken). r may be NULL. */
void ph_reply_send(ph_reply *r, char *msg, size_t len);
/* For streams (Monitor): sends a message but keeps the slot open. Returns
 * -EPIPE when the connection is gone or cannot keep up. */
int ph_reply_stream(ph_reply *r, char *msg, size_t len);
/* A reply given in parts (List or Query with "more"). produce writes the next
 * part, a whole message, into *ret and returns 1 when more follow (the
 * part says "continues"), 0 for the last one, or a negative errno (the
 * connection is closed). The server asks for a part only while the reply
 * is at the head and the connection has less than a window on its way
 * out: a client that does not read gets nothing more made. free_data
 * runs once, when the reply is done or its connection goes. charge is
 * what data holds (a snapshot): it counts against the connection's and
 * the server's buffer budgets until then. */
typedef int (*ph_reply_part_fn)(void *data, char **ret, size_t *ret_len);
void ph_reply_parts(ph_reply *r, ph_reply_part_fn produce, void *data, void (*free_data)(void *),
                    size_t charge);
/* Ends the reply begun in w with ph_jw_reply_begin and completes r with
 * it: a message over the cap becomes io.plughost.ReplyTooLarge, no memory
 * io.plughost.Busy. */
void ph_reply_jw(ph_reply *r, ph_jw *w);
/* Helpers that build and send; params is stolen. */
void ph_reply_ok(ph_reply *r, json_t *params);
void ph_reply_error(ph_reply *r, int verr, json_t *params, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Monitor streams open now: an event nobody would get is not written. */
unsigned ph_server_monitors(const ph_server *s);
/* Sends a message (taken: the NUL-terminated text and its length, NUL
 * included) to every Monitor stream, shared by all of them. */
void ph_server_broadcast(ph_server *s, char *msg, size_t len);

#endif
