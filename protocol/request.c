/* Request validation: one message becomes a ph_request whose method is in
 * the table and whose parameters have the declared names, types and sizes,
 * or it is refused with the complete Varlink error reply to send. Nothing a
 * method handler sees has to be checked again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "varlink.h"
#include "varlink-internal.h"

/* Longest "method" accepted: an interface name (255) and a member name. */
#define METHOD_NAME_MAX 511u
/* Client-supplied names echoed in errors are cut to this many bytes. */
#define ECHO_MAX 255u

/* Builds the error reply {key: value} for a refusal and returns r, or
 * -ENOMEM when even that could not be built. value is client text already
 * checked to be UTF-8 by jansson; it is cut short to bound the reply. */
static int refuse(int r, ph_verr e, const char *key, const char *value,
                  char **ret_error, size_t *ret_error_len)
{
        json_t *params = NULL;
        int q;

        if (key) {
                size_t len = ph__utf8_cut(value, strlen(value), ECHO_MAX);

                params = json_object();
                if (!params || json_object_set_new(params, key, json_stringn(value, len)) < 0) {
                        json_decref(params);
                        return -ENOMEM;
                }
        }
        q = ph_varlink_error(e, params, ret_error, ret_error_len);
        return q < 0 ? q : r;
}

/* A message that is not a JSON object: InvalidParameter with an empty
 * parameter name, and the reason (jansson's, which may quote the input:
 * errorf makes it valid UTF-8) as "message". */
static int refuse_unparsable(const char *why, char **ret_error, size_t *ret_error_len)
{
        json_t *params = json_pack("{s:s}", "parameter", "");
        int r;

        if (!params)
                return -ENOMEM;
        r = ph_varlink_errorf(PH_VERR_INVALID_PARAMETER, params, ret_error, ret_error_len,
                              "not a JSON object: %s", why);
        return r < 0 ? r : -EBADMSG;
}

/* Optional top-level boolean: absent and null read as false. */
static int get_flag(json_t *root, const char *key, bool *ret)
{
        json_t *v = json_object_get(root, key);

        if (!v || json_is_null(v)) {
                *ret = false;
                return 0;
        }
        if (!json_is_boolean(v))
                return -EBADMSG;
        *ret = json_is_true(v);
        return 0;
}

/* True when a string anywhere in v holds a NUL byte. Object keys cannot:
 * jansson refuses them while parsing. The parser's depth limit (2048)
 * bounds the recursion. */
static bool has_nul(json_t *v)
{
        const char *key;
        json_t *item;
        size_t i;

        switch (json_typeof(v)) {
        case JSON_STRING:
                return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
        case JSON_ARRAY:
                json_array_foreach(v, i, item)
                        if (has_nul(item))
                                return true;
                return false;
        case JSON_OBJECT:
                json_object_foreach(v, key, item)
                        if (has_nul(item))
                                return true;
                return false;
        default:
                return false;
        }
}

static bool param_ok(const ph_param *p, json_t *v)
{
        size_t max = p->max_len ? p->max_len : PH_VARLINK_STRING_MAX;

        switch (p->type) {
        case PH_PARAM_STRING:
                return json_is_string(v) && json_string_length(v) <= max && !has_nul(v);
        case PH_PARAM_INT:
                return json_is_integer(v);
        case PH_PARAM_BOOL:
                return json_is_boolean(v);
        case PH_PARAM_OBJECT:
                return json_is_object(v) && !has_nul(v);
        }
        return false;
}

static const ph_param *param_find(const ph_method *m, const char *name)
{
        for (const ph_param *p = m->params; p < m->params + PH_METHOD_PARAMS_MAX && p->name; p++)
                if (strcmp(p->name, name) == 0)
                        return p;
        return NULL;
}

/* Checks params against m's list, dropping optional ones given as null so
 * that a handler only ever sees absent or well-typed values. Returns the
 * name of the first bad parameter (a key of params or a table name), or
 * NULL when all are good. */
static const char *params_check(const ph_method *m, json_t *params)
{
        const char *key;
        json_t *v;
        void *tmp;

        json_object_foreach_safe(params, tmp, key, v) {
                const ph_param *p = param_find(m, key);

                if (!p)
                        return key;
                if (json_is_null(v) && !p->required) {
                        json_object_del(params, key);
                        continue;
                }
                if (!param_ok(p, v))
                        return key;
        }
        for (const ph_param *p = m->params; p < m->params + PH_METHOD_PARAMS_MAX && p->name; p++)
                if (p->required && !json_object_get(params, p->name))
                        return p->name;
        return NULL;
}

/* "method": a string without NUL, "interface.Member" with both parts
 * non-empty. Returns the position of the last dot, or NULL. */
static const char *method_split(json_t *v)
{
        const char *s, *dot;
        size_t len;

        if (!json_is_string(v))
                return NULL;
        s = json_string_value(v);
        len = json_string_length(v);
        if (len > METHOD_NAME_MAX || strlen(s) != len)
                return NULL;
        dot = strrchr(s, '.');
        if (!dot || dot == s || dot[1] == '\0')
                return NULL;
        return dot;
}

static bool interface_known(const char *name, size_t len)
{
        for (size_t i = 0; i < ph_methods_count; i++) {
                const char *dot = strrchr(ph_methods[i].name, '.');

                if ((size_t)(dot - ph_methods[i].name) == len &&
                    memcmp(ph_methods[i].name, name, len) == 0)
                        return true;
        }
        return false;
}

/* Refusals, in the order they are checked:
 *   -EBADMSG  InvalidParameter {parameter: ""} when the message is not a
 *             JSON object (jansson also refuses bad UTF-8, duplicate keys,
 *             nesting past 2048 and numbers past int64 or double); and
 *             {parameter: the field} for "method" missing or not
 *             "interface.Member", "parameters" not an object, a flag not a
 *             boolean, "upgrade" true, "oneway" together with "more".
 *   -ENOENT   InterfaceNotFound {interface}, MethodNotFound {method}.
 *   -EINVAL   ExpectedMore {}; then InvalidParameter {parameter} for an
 *             unknown, missing, mistyped, too long or NUL-holding one.
 * null reads as absent, for top-level fields and optional parameters. */
static int request_check(json_t *root, ph_request *req, char **ret_error, size_t *ret_error_len)
{
        json_t *method = json_object_get(root, "method");
        json_t *params = json_object_get(root, "parameters");
        const ph_method *m;
        const char *dot, *name, *bad;
        bool oneway, more, upgrade;

        if (!json_is_object(root))
                return refuse_unparsable("the top level is not an object",
                                         ret_error, ret_error_len);
        dot = method_split(method);
        if (!dot)
                return refuse(-EBADMSG, PH_VERR_INVALID_PARAMETER, "parameter", "method",
                              ret_error, ret_error_len);
        if (params && !json_is_null(params) && !json_is_object(params))
                return refuse(-EBADMSG, PH_VERR_INVALID_PARAMETER, "parameter", "parameters",
                              ret_error, ret_error_len);
        if (get_flag(root, "oneway", &oneway) < 0)
                return refuse(-EBADMSG, PH_VERR_INVALID_PARAMETER, "parameter", "oneway",
                              ret_error, ret_error_len);
        if (get_flag(root, "more", &more) < 0)
                return refuse(-EBADMSG, PH_VERR_INVALID_PARAMETER, "parameter", "more",
                              ret_error, ret_error_len);
        /* We never hand the connection over to another protocol. */
        if (get_flag(root, "upgrade", &upgrade) < 0 || upgrade)
                return refuse(-EBADMSG, PH_VERR_INVALID_PARAMETER, "parameter", "upgrade",
                              ret_error, ret_error_len);
        /* No reply cannot also be a stream of replies. */
        if (oneway && more)
                return refuse(-EBADMSG, PH_VERR_INVALID_PARAMETER, "parameter", "oneway",
                              ret_error, ret_error_len);

        name = json_string_value(method);
        if (!interface_known(name, (size_t)(dot - name))) {
                char interface[METHOD_NAME_MAX + 1];

                memcpy(interface, name, (size_t)(dot - name));
                interface[dot - name] = '\0';
                return refuse(-ENOENT, PH_VERR_INTERFACE_NOT_FOUND, "interface", interface,
                              ret_error, ret_error_len);
        }
        m = ph_method_find(name);
        if (!m)
                return refuse(-ENOENT, PH_VERR_METHOD_NOT_FOUND, "method", name,
                              ret_error, ret_error_len);
        if ((m->flags & PH_METHOD_NEEDS_MORE) && !more)
                return refuse(-EINVAL, PH_VERR_EXPECTED_MORE, NULL, NULL,
                              ret_error, ret_error_len);

        if (params && json_is_object(params))
                json_incref(params);
        else
                params = json_object();
        if (!params)
                return -ENOMEM;
        bad = params_check(m, params);
        if (bad) {
                /* bad may be a key of params: refuse before letting go. */
                int r = refuse(-EINVAL, PH_VERR_INVALID_PARAMETER, "parameter", bad,
                               ret_error, ret_error_len);

                json_decref(params);
                return r;
        }

        req->method = m;
        req->parameters = params;
        req->oneway = oneway;
        /* A method that does not stream answers once, even when asked for
         * more; Varlink allows that, and the daemon need not check. */
        req->more = more && (m->flags & PH_METHOD_MORE);
        return 0;
}

int ph_request_parse(const char *msg, size_t len, ph_request *req,
                     char **ret_error, size_t *ret_error_len)
{
        json_error_t jerr;
        json_t *root;
        int r;

        *req = (ph_request) { 0 };
        *ret_error = NULL;
        *ret_error_len = 0;
        /* NULs inside strings are let through so that a parameter holding
         * one is refused by its name rather than as unparsable. */
        root = json_loadb(msg, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!root)
                return refuse_unparsable(jerr.text, ret_error, ret_error_len);
        r = request_check(root, req, ret_error, ret_error_len);
        json_decref(root);
        return r;
}

void ph_request_clear(ph_request *req)
{
        if (!req)
                return;
        json_decref(req->parameters);
        *req = (ph_request) { 0 };
}
