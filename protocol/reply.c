/* Replies and errors as Varlink messages: compact JSON followed by the NUL
 * delimiter, never longer than PH_VARLINK_MESSAGE_MAX. The one place where
 * our error kinds and errnos become Varlink error names. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "varlink.h"
#include "varlink-internal.h"

/* A formatted "message" is cut to this many bytes (at a character). */
#define ERROR_MESSAGE_MAX PH_VARLINK_STRING_MAX

static const char *const error_names[_PH_VERR_MAX] = {
        [PH_VERR_INTERFACE_NOT_FOUND] = "org.varlink.service.InterfaceNotFound",
        [PH_VERR_METHOD_NOT_FOUND] = "org.varlink.service.MethodNotFound",
        [PH_VERR_METHOD_NOT_IMPLEMENTED] = "org.varlink.service.MethodNotImplemented",
        [PH_VERR_INVALID_PARAMETER] = "org.varlink.service.InvalidParameter",
        [PH_VERR_EXPECTED_MORE] = "org.varlink.service.ExpectedMore",
        [PH_VERR_NO_SUCH_PLUGIN] = "io.plughost.NoSuchPlugin",
        [PH_VERR_LOAD_FAILED] = "io.plughost.LoadFailed",
        [PH_VERR_CALL_FAILED] = "io.plughost.CallFailed",
        [PH_VERR_TIMEOUT] = "io.plughost.Timeout",
        [PH_VERR_PERMISSION_DENIED] = "io.plughost.PermissionDenied",
        [PH_VERR_BUSY] = "io.plughost.Busy",
        [PH_VERR_RESULT_TOO_LARGE] = "io.plughost.ResultTooLarge",
        [PH_VERR_SCAN_FAILED] = "io.plughost.ScanFailed",
        [PH_VERR_DISCONNECTED] = "io.plughost.Disconnected",
        [PH_VERR_PLUGIN_CRASHED] = "io.plughost.PluginCrashed",
        [PH_VERR_REPLY_TOO_LARGE] = "io.plughost.ReplyTooLarge",
};

/* NULL for PH_VERR_NONE and for values outside the enum. */
const char *ph_varlink_error_name(ph_verr e)
{
        if ((unsigned)e >= _PH_VERR_MAX)
                return NULL;
        return error_names[e];
}

ph_verr ph_varlink_error_from_errno(int negative_errno)
{
        switch (negative_errno) {
        case -ENOENT:
                return PH_VERR_NO_SUCH_PLUGIN;
        case -ETIMEDOUT:
                return PH_VERR_TIMEOUT;
        case -EPERM:
        case -EACCES:
                return PH_VERR_PERMISSION_DENIED;
        case -EAGAIN:
        case -EBUSY:
        case -EMFILE:
        case -ENFILE:
        case -ENOMEM:
                return PH_VERR_BUSY;
        case -EINVAL:
                return PH_VERR_INVALID_PARAMETER;
        default:
                return PH_VERR_CALL_FAILED;
        }
}

/* ---- serialisation --------------------------------------------------------- */

struct dump {
        char *data;
        size_t len;
        size_t size;
        bool too_big;
};

/* Collects jansson's output, refusing to go past the cap (one byte is kept
 * for the NUL), so a huge reply fails early instead of being built whole. */
static int dump_cb(const char *buffer, size_t size, void *userdata)
{
        struct dump *d = userdata;

        if (size > PH_VARLINK_MESSAGE_MAX - 1 - d->len) {
                d->too_big = true;
                return -1;
        }
        if (d->len + size + 1 > d->size) {
                size_t n = d->size ? d->size * 2 : 256;
                char *p;

                while (n < d->len + size + 1)
                        n *= 2;
                if (n > PH_VARLINK_MESSAGE_MAX)
                        n = PH_VARLINK_MESSAGE_MAX;
                p = realloc(d->data, n);
                if (!p)
                        return -1;
                d->data = p;
                d->size = n;
        }
        memcpy(d->data + d->len, buffer, size);
        d->len += size;
        return 0;
}

/* Serialises and releases root (a new reference). */
static int message_dump(json_t *root, char **ret, size_t *ret_len)
{
        struct dump d = { 0 };
        int r;

        if (!root)
                return -ENOMEM;
        r = json_dump_callback(root, dump_cb, &d, JSON_COMPACT);
        json_decref(root);
        if (r < 0 || !d.data) {
                free(d.data);
                return d.too_big ? -EMSGSIZE : -ENOMEM;
        }
        d.data[d.len] = '\0';
        *ret = d.data;
        *ret_len = d.len + 1;
        return 0;
}

/* {"parameters": params} (params stolen; NULL means {}), with key: value
 * (stolen) first when key is set. */
static json_t *message_new(const char *key, json_t *value, json_t *params)
{
        json_t *root = json_object();

        if (!params)
                params = json_object();
        if (!root || !params) {
                json_decref(value);
                json_decref(root);
                json_decref(params);
                return NULL;
        }
        /* json_object_set_new takes value even when it fails. */
        if (key && json_object_set_new(root, key, value) < 0) {
                json_decref(root);
                json_decref(params);
                return NULL;
        }
        if (json_object_set_new(root, "parameters", params) < 0) {
                json_decref(root);
                return NULL;
        }
        return root;
}

/* -EINVAL when params is not an object. */
int ph_varlink_reply(json_t *params, bool continues, char **ret, size_t *ret_len)
{
        json_t *root;

        if (params && !json_is_object(params)) {
                json_decref(params);
                return -EINVAL;
        }
        root = message_new(NULL, NULL, params);
        if (root && continues && json_object_set_new(root, "continues", json_true()) < 0) {
                json_decref(root);
                return -ENOMEM;
        }
        return message_dump(root, ret, ret_len);
}

/* -EINVAL when e has no name (PH_VERR_NONE, out of range) or params is not
 * an object. */
int ph_varlink_error(ph_verr e, json_t *params, char **ret, size_t *ret_len)
{
        const char *name = ph_varlink_error_name(e);

        if (!name || (params && !json_is_object(params))) {
                json_decref(params);
                return -EINVAL;
        }
        return message_dump(message_new("error", json_string(name), params), ret, ret_len);
}

/* The message is cut to ERROR_MESSAGE_MAX bytes, and bytes that are not
 * UTF-8 (a file name, a plugin's text) become '?', so formatting never
 * makes the error fail. A "message" already in params is replaced. */
int ph_varlink_errorf(ph_verr e, json_t *params, char **ret, size_t *ret_len,
                      const char *fmt, ...)
{
        /* Three spare bytes: a character starting before the cut is whole. */
        char text[ERROR_MESSAGE_MAX + 4];
        va_list ap;
        size_t len;
        int n;

        if (!ph_varlink_error_name(e) || (params && !json_is_object(params))) {
                json_decref(params);
                return -EINVAL;
        }
        if (!params)
                params = json_object();
        va_start(ap, fmt);
        n = vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        len = n < 0 ? 0 : (size_t)n;
        if (len > sizeof(text) - 1)
                len = sizeof(text) - 1;
        ph__utf8_sanitise(text, len);
        len = ph__utf8_cut(text, len, ERROR_MESSAGE_MAX);
        if (!params || json_object_set_new(params, "message", json_stringn(text, len)) < 0) {
                json_decref(params);
                return -ENOMEM;
        }
        return ph_varlink_error(e, params, ret, ret_len);
}
