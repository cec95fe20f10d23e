/* Replies and errors as Varlink messages: compact JSON followed by the NUL
 * delimiter, never longer than PH_VARLINK_MESSAGE_MAX. The one place where
 * our error kinds and errnos become Varlink error names. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
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

/* {"error": NAME (when set), "parameters": params (NULL: {})} with
 * "continues": true when asked, through the writer, which refuses to go
 * past the cap as it goes: a huge reply fails early, never built whole.
 * params is released. */
static int message_write(const char *error, json_t *params, bool continues, char **ret,
                         size_t *ret_len)
{
        ph_jw w;
        int r;

        if (params && !json_is_object(params)) {
                json_decref(params);
                return -EINVAL;
        }
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_object_open(&w);
        if (error) {
                ph_jw_key(&w, "error");
                ph_jw_string(&w, error);
        }
        ph_jw_key(&w, "parameters");
        if (params)
                ph_jw_json(&w, params);
        else
                ph_jw_raw(&w, "{}", 2);
        if (continues) {
                ph_jw_key(&w, "continues");
                ph_jw_bool(&w, true);
        }
        ph_jw_object_close(&w);
        json_decref(params);
        r = ph_jw_finish(&w, ret, ret_len);
        return r == -EINVAL ? -ENOMEM : r;
}

/* -EINVAL when params is not an object. */
int ph_varlink_reply(json_t *params, bool continues, char **ret, size_t *ret_len)
{
        return message_write(NULL, params, continues, ret, ret_len);
}

/* -EINVAL when e has no name (PH_VERR_NONE, out of range) or params is not
 * an object. */
int ph_varlink_error(ph_verr e, json_t *params, char **ret, size_t *ret_len)
{
        const char *name = ph_varlink_error_name(e);

        if (!name) {
                json_decref(params);
                return -EINVAL;
        }
        return message_write(name, params, false, ret, ret_len);
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
