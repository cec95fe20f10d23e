/* For the writer's differential checks (tests/test-jw.c, fuzz-protocol):
 * writes a jansson value through the writer's primitives, never through
 * ph_jw_json, so that the text can be compared with json_dumps's. */
#ifndef PH_JW_WALK_H
#define PH_JW_WALK_H

#include <jansson.h>

#include "jw.h"

static inline void jw_walk(ph_jw *w, const json_t *v)
{
        const char *key;
        json_t *item;
        size_t i;

        switch (json_typeof(v)) {
        case JSON_OBJECT:
                ph_jw_object_open(w);
                json_object_foreach((json_t *)v, key, item) {
                        ph_jw_key(w, key);
                        jw_walk(w, item);
                }
                ph_jw_object_close(w);
                break;
        case JSON_ARRAY:
                ph_jw_array_open(w);
                json_array_foreach(v, i, item)
                        jw_walk(w, item);
                ph_jw_array_close(w);
                break;
        case JSON_STRING:
                ph_jw_stringn(w, json_string_value(v), json_string_length(v));
                break;
        case JSON_INTEGER:
                ph_jw_int(w, json_integer_value(v));
                break;
        case JSON_TRUE:
                ph_jw_bool(w, true);
                break;
        case JSON_FALSE:
                ph_jw_bool(w, false);
                break;
        case JSON_REAL:         /* not written by us: spliced from jansson */
                ph_jw_json(w, v);
                break;
        default:
                ph_jw_null(w);
                break;
        }
}

#endif
