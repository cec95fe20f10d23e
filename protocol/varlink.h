/* Varlink for plughost: message framing, request validation against the
 * method table, and reply and error building, with jansson. No I/O: the
 * daemon feeds bytes in and writes the strings out.
 *
 * Functions return >= 0 on success or a negative errno. Strings returned
 * as ret_ parameters are malloc'd and NUL-terminated; the terminating NUL
 * is the Varlink frame delimiter and is included in *ret_len. */
#ifndef PH_VARLINK_H
#define PH_VARLINK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Where plughostd listens unless configured otherwise; plughostd.socket
 * and daemon/config.h say the same. */
#define PH_VARLINK_DEFAULT_SOCKET "/run/plughost/io.plughost"

/* Default cap on one message (request or reply), bytes, NUL included. */
#define PH_VARLINK_MESSAGE_MAX (1024u * 1024u)

/* ---- framing ------------------------------------------------------------- */

/* Accumulates a connection's bytes and splits them at NUL bytes. */
typedef struct ph_framer ph_framer;

int ph_framer_new(size_t max_message, ph_framer **ret);
void ph_framer_free(ph_framer *f);

/* Space to read into: at least min_free bytes (the buffer grows up to the
 * cap). Returns -EMSGSIZE when a message without its NUL would exceed the
 * cap: the stream cannot be resynchronised, drop the connection.
 * Near the cap *ret_free may be less than min_free (never 0). Returns
 * -ENOBUFS when the cap is reached by complete messages not yet taken:
 * take them with ph_framer_next before reading more. */
int ph_framer_reserve(ph_framer *f, size_t min_free, char **ret_buf, size_t *ret_free);
/* Records that n bytes were written into the reserved space. */
void ph_framer_commit(ph_framer *f, size_t n);
/* The next complete message (without its NUL), valid until the next call
 * on f. Returns 1 and fills ret_msg/ret_len, 0 if none is complete, or
 * -EMSGSIZE (see above). */
int ph_framer_next(ph_framer *f, const char **ret_msg, size_t *ret_len);
/* Bytes held (complete or partial), for accounting. */
size_t ph_framer_pending(const ph_framer *f);
/* Bytes allocated for the buffer (what it really costs). */
size_t ph_framer_allocated(const ph_framer *f);

/* ---- errors -------------------------------------------------------------- */

/* Our errors and the standard ones, one table; see ph_varlink_error_name. */
typedef enum ph_verr {
        PH_VERR_NONE = 0,
        PH_VERR_INTERFACE_NOT_FOUND,    /* org.varlink.service.InterfaceNotFound */
        PH_VERR_METHOD_NOT_FOUND,       /* org.varlink.service.MethodNotFound */
        PH_VERR_METHOD_NOT_IMPLEMENTED, /* org.varlink.service.MethodNotImplemented */
        PH_VERR_INVALID_PARAMETER,      /* org.varlink.service.InvalidParameter */
        PH_VERR_EXPECTED_MORE,          /* org.varlink.service.ExpectedMore */
        PH_VERR_NO_SUCH_PLUGIN,         /* io.plughost.NoSuchPlugin */
        PH_VERR_LOAD_FAILED,            /* io.plughost.LoadFailed */
        PH_VERR_CALL_FAILED,            /* io.plughost.CallFailed */
        PH_VERR_TIMEOUT,                /* io.plughost.Timeout */
        PH_VERR_PERMISSION_DENIED,      /* io.plughost.PermissionDenied */
        PH_VERR_BUSY,                   /* io.plughost.Busy */
        PH_VERR_RESULT_TOO_LARGE,       /* io.plughost.ResultTooLarge */
        PH_VERR_SCAN_FAILED,            /* io.plughost.ScanFailed */
        PH_VERR_DISCONNECTED,           /* io.plughost.Disconnected */
        PH_VERR_PLUGIN_CRASHED,         /* io.plughost.PluginCrashed */
        PH_VERR_REPLY_TOO_LARGE,        /* io.plughost.ReplyTooLarge */
        _PH_VERR_MAX,
} ph_verr;

const char *ph_varlink_error_name(ph_verr e);

/* Builds an error reply. params (may be NULL) is stolen (its reference is
 * taken over). The one place that turns our error kinds into Varlink. */
int ph_varlink_error(ph_verr e, json_t *params, char **ret, size_t *ret_len);

/* Same, with printf-style "message" added to params (created if NULL).
 * Control characters in the formatted message are escaped by JSON; it is
 * cut to PH_VARLINK_STRING_MAX bytes and bytes that are not UTF-8 become
 * '?'. */
int ph_varlink_errorf(ph_verr e, json_t *params, char **ret, size_t *ret_len,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Maps a negative errno from the library or the daemon to the error kind a
 * client should see when no more specific one applies: -ENOENT ->
 * NO_SUCH_PLUGIN, -ETIMEDOUT -> TIMEOUT, -EPERM/-EACCES -> PERMISSION_DENIED,
 * -EAGAIN/-EBUSY/-EMFILE/-ENFILE/-ENOMEM -> BUSY, -EINVAL -> INVALID_PARAMETER,
 * anything else -> CALL_FAILED. */
ph_verr ph_varlink_error_from_errno(int negative_errno);

/* ---- requests ------------------------------------------------------------ */

/* What the daemon may do with a method. */
enum {
        PH_METHOD_WRITE = 1 << 0,       /* changes state: needs permission */
        PH_METHOD_MORE = 1 << 1,        /* answers "more" with a stream */
        PH_METHOD_NEEDS_MORE = 1 << 2,  /* only makes sense with "more" */
        PH_METHOD_ENDLESS = 1 << 3,     /* its stream never ends (Monitor) */
};

typedef enum ph_ptype {
        PH_PARAM_STRING,
        PH_PARAM_INT,
        PH_PARAM_BOOL,
        PH_PARAM_OBJECT,                /* any JSON object */
} ph_ptype;

typedef struct ph_param {
        const char *name;
        ph_ptype type;
        bool required;
        size_t max_len;                 /* strings: bytes; 0 = PH_VARLINK_STRING_MAX */
} ph_param;

#define PH_VARLINK_STRING_MAX 4096u
#define PH_METHOD_PARAMS_MAX 5

/* One row of the method table (tmux's cmd_table style). */
typedef struct ph_method {
        const char *name;               /* fully qualified: io.plughost.List */
        unsigned flags;
        ph_param params[PH_METHOD_PARAMS_MAX];  /* ended by a NULL name */
        int id;                         /* the daemon's dispatch key */
} ph_method;

/* Method ids, for the daemon's dispatch. */
enum {
        PH_M_GET_INFO,
        PH_M_GET_INTERFACE_DESCRIPTION,
        PH_M_LIST,
        PH_M_INFO,
        PH_M_QUERY,
        PH_M_LOAD,
        PH_M_UNLOAD,
        PH_M_CALL,
        PH_M_RESCAN,
        PH_M_STATUS,
        PH_M_MONITOR,
        PH_M_METRICS,
        _PH_M_MAX,
};

/* A validated request. Owns parameters (a reference). */
typedef struct ph_request {
        const ph_method *method;
        json_t *parameters;             /* always an object; may be empty */
        bool oneway;                    /* send no reply */
        bool more;                      /* the client accepts continues; always
                                         * false for a method without
                                         * PH_METHOD_MORE: it answers once */
} ph_request;

/* Parses and validates one message against the method table. On success
 * returns 0 and fills req (release with ph_request_clear). When the request
 * is to be refused, returns -EBADMSG (not JSON, not an object, bad field
 * types), -ENOENT (unknown interface or method) or -EINVAL (parameters),
 * and *ret_error holds the complete error reply to send (and
 * *ret_error_len its length). A message that is refused this way still gets
 * its error reply even if it asked for oneway. On failure *req is zeroed
 * (ph_request_clear on it is harmless); on success *ret_error is NULL.
 * -ENOMEM alone leaves nothing to send. See request.c for which refusal
 * gets which code. */
int ph_request_parse(const char *msg, size_t len, ph_request *req,
                     char **ret_error, size_t *ret_error_len);
void ph_request_clear(ph_request *req);

/* The method table, and lookup by fully qualified name. */
extern const ph_method ph_methods[];
extern const size_t ph_methods_count;
const ph_method *ph_method_find(const char *name);

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not UTF-8 (overlong forms and surrogates included). */
size_t ph_varlink_utf8_len(const unsigned char *s, size_t n);

/* A JSON string of text from outside (a file name, a plugin's message):
 * bytes that are not UTF-8 become '?', where json_string would fail and
 * take the whole object it was meant for with it. NULL for NULL text (or
 * no memory). */
json_t *ph_varlink_text(const char *s);

/* ---- replies ------------------------------------------------------------- */

/* Serialises {"parameters": params} (params stolen; NULL means {}), with
 * "continues": true when continues is set. -EMSGSIZE if the reply would
 * exceed PH_VARLINK_MESSAGE_MAX. */
int ph_varlink_reply(json_t *params, bool continues, char **ret, size_t *ret_len);

/* ---- names -------------------------------------------------------------- */

/* The words of Plugin.state (docs/io.plughost.varlink, protocol.md), in
 * the order a plugin meets them; NULL-terminated. For clients that check
 * a List filter before sending it. */
extern const char *const ph_varlink_plugin_states[];

/* ---- service description -------------------------------------------------- */

/* org.varlink.service.GetInfo parameters (a new reference). */
json_t *ph_varlink_get_info(const char *version);

/* The interface description text for GetInterfaceDescription, or NULL for
 * an interface we do not serve. Static storage. */
const char *ph_varlink_interface_description(const char *interface);

#endif
