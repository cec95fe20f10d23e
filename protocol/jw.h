/* The JSON writer: replies as text appended straight into one growing
 * buffer, without a jansson tree (in the manner of Redis's addReply and
 * sd-varlink's output buffer). Its output is byte for byte what jansson's
 * json_dumps(JSON_COMPACT) writes for the same values, keys in the order
 * written (tests/test-jw.c compares the two, and fuzz-protocol feeds it).
 *
 * Errors are sticky: the first one (-ENOMEM, or -EMSGSIZE when the text
 * would pass the writer's cap) is kept, later calls do nothing, and
 * ph_jw_finish reports it. Callers write a whole reply, then check once.
 * The writer owns its buffer until ph_jw_finish hands it over. */
#ifndef PH_JW_H
#define PH_JW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting deeper than this is a programming error: -EINVAL. */
#define PH_JW_DEPTH_MAX 32u

typedef struct ph_jw {
        char *buf;
        size_t len, cap;
        size_t max;                     /* the text's cap, the NUL included */
        int err;                        /* the first error, or 0 */
        unsigned depth;
        bool key;                       /* a key was written: its value comes next */
        uint32_t more;                  /* bit d: depth d has a value already */
} ph_jw;

/* An empty writer whose text, NUL included, may reach max bytes. */
void ph_jw_init(ph_jw *w, size_t max);
/* Frees what a writer holds (after an error, or instead of finishing). */
void ph_jw_release(ph_jw *w);
/* The length of the text so far (NUL not included). */
static inline size_t ph_jw_len(const ph_jw *w)
{
        return w->len;
}

void ph_jw_object_open(ph_jw *w);
void ph_jw_object_close(ph_jw *w);
void ph_jw_array_open(ph_jw *w);
void ph_jw_array_close(ph_jw *w);
/* An object's key; its value is the next thing written. */
void ph_jw_key(ph_jw *w, const char *key);

/* Values. A string must be UTF-8 (the caller's promise: our own words,
 * names the reader checked); NULL writes null. */
void ph_jw_string(ph_jw *w, const char *s);
void ph_jw_stringn(ph_jw *w, const char *s, size_t n);
/* Text from outside (a file name, a plugin's message): bytes that are not
 * UTF-8 become '?', as ph_varlink_text does. NULL writes null. */
void ph_jw_text(ph_jw *w, const char *s);
void ph_jw_int(ph_jw *w, long long v);
void ph_jw_bool(ph_jw *w, bool v);
void ph_jw_null(ph_jw *w);
/* A complete JSON value, already valid and compact where it matters
 * (text rendered by this writer, or checked by jansson), copied as is. */
void ph_jw_raw(ph_jw *w, const char *json, size_t n);
/* Members of an object rendered elsewhere ("a":1,"b":2: an object's text
 * without its braces), spliced into the object being written. */
void ph_jw_members(ph_jw *w, const char *members, size_t n);
/* A jansson value, dumped as json_dumps(JSON_COMPACT) would (NULL: null). */
void ph_jw_json(ph_jw *w, const json_t *v);

/* Appends the NUL and hands the text over (*ret_len counts the NUL).
 * Returns 0, or the first error (the buffer is freed then). */
int ph_jw_finish(ph_jw *w, char **ret, size_t *ret_len);

/* Varlink messages. Begin writes {"parameters":{ and leaves the writer in
 * the parameters object; end closes it, adds "continues":true when asked,
 * and finishes. The error form writes {"error":"NAME","parameters":{. */
void ph_jw_reply_begin(ph_jw *w);
void ph_jw_error_begin(ph_jw *w, const char *error_name);
int ph_jw_message_end(ph_jw *w, bool continues, char **ret, size_t *ret_len);

#endif
