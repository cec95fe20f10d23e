/* plughostctl's messages: every error is reported here, once, either as a
 * "plughostctl: ..." line with untrusted text escaped, or with --json as
 * one JSON object (ASCII only) on stderr. stdout carries results only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"

/* Set once by main() before any message. */
static bool error_json;

void ctl_error_set_json(bool json)
{
        error_json = json;
}

static void error_emit(json_t *obj, const char *text)
{
        char *t;

        if (error_json) {
                json_dumpf(obj, stderr, JSON_COMPACT | JSON_ENSURE_ASCII);
                fputc('\n', stderr);
                return;
        }
        t = ctl_escape(text ? text : "?");
        fprintf(stderr, "plughostctl: %s\n", t ? t : "out of memory");
        free(t);
}

__attribute__((format(printf, 3, 0)))
static int error_local(const char *kind, json_t *extra, const char *fmt, va_list ap)
{
        char *text = NULL;
        json_t *obj;

        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        obj = json_pack("{s:s, s:s?}", "error", kind, "message", text);
        if (obj && extra)
                json_object_update_missing(obj, extra);
        error_emit(obj, text);
        json_decref(obj);
        json_decref(extra);
        free(text);
        return 0;
}

int ctl_usage_error(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        error_local("plughostctl.Usage", NULL, fmt, ap);
        va_end(ap);
        return CTL_EXIT_USAGE;
}

int ctl_fail(const char *kind, json_t *extra, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        error_local(kind, extra, fmt, ap);
        va_end(ap);
        return CTL_EXIT_FAILED;
}

int ctl_fail_reply(json_t *reply)
{
        json_t *error = json_object_get(reply, "error");
        json_t *params = json_object_get(reply, "parameters");
        const char *name = json_is_string(error) ? json_string_value(error) : "(unnamed error)";
        const char *message = json_string_value(json_object_get(params, "message"));
        json_t *obj = json_pack("{s:O, s:O}", "error", error, "parameters", params);
        char *text = NULL, *dump = NULL;
        int n;

        if (message && json_is_integer(json_object_get(params, "errno")))
                /* CallFailed: the plugin's errno says more than its text may. */
                n = asprintf(&text, "%s: %s (errno %lld)", name, message,
                             (long long)json_integer_value(json_object_get(params, "errno")));
        else if (message)
                n = asprintf(&text, "%s: %s", name, message);
        else {
                /* No message: the parameters say what was wrong (InvalidParameter). */
                dump = json_dumps(params, JSON_COMPACT | JSON_ENSURE_ASCII);
                n = asprintf(&text, "%s: %s", name, dump ? dump : "");
        }
        error_emit(obj, n < 0 ? NULL : text);
        json_decref(obj);
        free(dump);
        free(n < 0 ? NULL : text);
        return CTL_EXIT_FAILED;
}
