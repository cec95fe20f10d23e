/* The oracle of tests/test-replies.c: the daemon's replies as jansson trees,
 * built the way the daemon built them before they were written as text
 * (commit acf1a73 for the replies, e55914b for the message envelope), kept
 * here so the writer can be compared with what it replaced. Test-only. */
#ifndef PH_ORACLE_JSON_H
#define PH_ORACLE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"
#include "events.h"
#include "varlink.h"

/* ---- daemon/plugin-json.c ---- */

/* A plugin (Query, List, Info, Load): a new reference, NULL as before
 * when json_pack refused a value. */
json_t *oracle_plugin_json(const ph_daemon *d, const ph_plugin *p);

/* ---- daemon/methods.c: the parameters of each reply ---- */

/* List without paging (iface, state: the filters, or NULL). */
json_t *oracle_list(ph_daemon *d, const char *iface, const char *state);
/* Query: best first. */
json_t *oracle_query(ph_daemon *d, const char *iface);
/* Info: {"plugin", "metadata", "counters"}; NULL for no such plugin. Looks
 * the name up as the method did (ph_registry_find). */
json_t *oracle_info(ph_daemon *d, const char *name);
json_t *oracle_status(ph_daemon *d);

/* ---- daemon/lifecycle.c ---- */

/* Load's {"plugin": ...}. */
json_t *oracle_load(ph_daemon *d, ph_plugin *p);
/* Call's {"result": ...} from the plugin's text (NULL: no result), parsed
 * as ops.c parsed it; NULL when that parse refused the text. */
json_t *oracle_call(const char *result_text);

/* ---- daemon/events.c ---- */

/* The Monitor event object (without its {"event": } wrapper). */
json_t *oracle_event_json(const ph_event *e);
/* The whole Monitor message: {"parameters":{"event":...},"continues":true}. */
int oracle_event_message(const ph_event *e, char **ret, size_t *ret_len);

/* ---- protocol/reply.c before the writer ---- */

/* ph_varlink_reply, ph_varlink_error and ph_varlink_errorf as they were:
 * the tree dumped by jansson (JSON_COMPACT) under the message cap. params
 * is stolen. Same returns (-EINVAL, -EMSGSIZE, -ENOMEM). */
int oracle_reply(json_t *params, bool continues, char **ret, size_t *ret_len);
int oracle_error(ph_verr e, json_t *params, char **ret, size_t *ret_len);
int oracle_errorf(ph_verr e, json_t *params, char **ret, size_t *ret_len, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

#endif
