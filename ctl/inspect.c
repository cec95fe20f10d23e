/* plughostctl inspect: reads plugin metadata from files, offline, through
 * the same reader the daemon uses. Never loads a file. Each file becomes
 * one JSON object; the table, --json and -F are views of those. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "plughost/plughost.h"

static json_t *inspect_json(const char *file, const ph_scan *s)
{
        json_t *o = json_object(), *ifaces, *meta;

        if (!o)
                return NULL;
        json_object_set_new(o, "file", json_string(file));
        json_object_set_new(o, "plugin", json_boolean(s->reason == PH_REASON_OK));
        json_object_set_new(o, "size", json_integer((json_int_t)s->file_size));
        if (s->reason != PH_REASON_OK) {
                json_object_set_new(o, "reason", json_string(ph_reason_name(s->reason)));
                json_object_set_new(o, "message", json_string(s->message));
                return o;
        }
        ifaces = json_array();
        for (size_t i = 0; i < s->meta->n_interfaces; i++)
                json_array_append_new(ifaces, json_string(s->meta->interfaces[i]));
        json_object_set_new(o, "name", json_string(s->meta->name));
        json_object_set_new(o, "version", json_string(s->meta->version));
        json_object_set_new(o, "interfaces", ifaces);
        if (s->meta->description)
                json_object_set_new(o, "description", json_string(s->meta->description));
        json_object_set_new(o, "abi", json_integer(s->meta->abi));
        json_object_set_new(o, "found_via", json_string(ph_via_name(s->via)));
        json_object_set_new(o, "note_offset", json_integer((json_int_t)s->note_offset));
        meta = json_loads(s->meta->json, 0, NULL);
        if (meta)
                json_object_set_new(o, "metadata", meta);
        return o;
}

/* The metadata keys the table shows in columns of their own, beyond the
 * fixed ones: every other key of any file, in the order first seen. */
static int inspect_extra_keys(json_t *objs, json_t **ret)
{
        static const char *const fixed[] = { "name", "version", "interfaces", NULL };
        json_t *keys = json_array(), *o, *v;
        const char *key;
        size_t i, j, k;

        if (!keys)
                return -ENOMEM;
        json_array_foreach(objs, i, o)
                json_object_foreach(json_object_get(o, "metadata"), key, v) {
                        bool seen = false;
                        json_t *e;

                        for (k = 0; fixed[k]; k++)
                                seen = seen || strcmp(fixed[k], key) == 0;
                        json_array_foreach(keys, j, e)
                                seen = seen || strcmp(json_string_value(e), key) == 0;
                        if (!seen)
                                json_array_append_new(keys, json_string(key));
                }
        *ret = keys;
        return 0;
}

static char *upper(const char *s)
{
        char *u = strdup(s);

        for (char *p = u; p && *p; p++)
                if (*p >= 'a' && *p <= 'z')
                        *p = (char)(*p - 'a' + 'A');
        return u;
}

/* One table for every file: FILE NAME VERSION INTERFACES, a column for each
 * other metadata key, VERDICT. */
static int inspect_table(const ctl_opts *opts, json_t *objs)
{
        size_t n_extra, n_cols, i, j;
        const char **cells = NULL;
        char **owned = NULL;
        json_t *keys, *o, *k;
        ctl_table *t = NULL;
        int r;

        r = inspect_extra_keys(objs, &keys);
        if (r < 0)
                return r;
        n_extra = json_array_size(keys);
        n_cols = 5 + n_extra;
        cells = calloc(n_cols, sizeof(*cells));
        owned = calloc(n_cols, sizeof(*owned));
        if (!cells || !owned) {
                r = -ENOMEM;
                goto out;
        }
        cells[0] = "FILE", cells[1] = "NAME", cells[2] = "VERSION", cells[3] = "INTERFACES";
        json_array_foreach(keys, j, k)
                cells[4 + j] = owned[4 + j] = upper(json_string_value(k));
        cells[n_cols - 1] = "VERDICT";
        t = ctl_table_new(n_cols, cells);
        for (j = 0; j < n_cols; j++) {
                free(owned[j]);
                owned[j] = NULL;
        }
        if (!t) {
                r = -ENOMEM;
                goto out;
        }
        json_array_foreach(objs, i, o) {
                json_t *meta = json_object_get(o, "metadata"), *ifaces = json_object_get(o, "interfaces");
                bool ok = json_is_true(json_object_get(o, "plugin"));

                cells[0] = json_string_value(json_object_get(o, "file"));
                cells[1] = json_string_value(json_object_get(o, "name"));
                cells[2] = json_string_value(json_object_get(o, "version"));
                if (json_array_size(ifaces)) {
                        char *joined = NULL;
                        size_t len = 0;
                        FILE *f = open_memstream(&joined, &len);
                        json_t *e;

                        if (f) {
                                json_array_foreach(ifaces, j, e)
                                        fprintf(f, "%s%s", j ? "," : "", json_string_value(e));
                                fclose(f);
                        }
                        owned[3] = joined;
                }
                cells[3] = owned[3];
                json_array_foreach(keys, j, k) {
                        json_t *v = json_object_get(meta, json_string_value(k));

                        owned[4 + j] = !v ? NULL : json_is_string(v) ? strdup(json_string_value(v))
                                                  : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                        cells[4 + j] = owned[4 + j];
                }
                if (!ok && asprintf(&owned[n_cols - 1], "%s: %s",
                                    json_string_value(json_object_get(o, "reason")),
                                    json_string_value(json_object_get(o, "message"))) < 0)
                        owned[n_cols - 1] = NULL;
                cells[n_cols - 1] = ok ? "plugin" : owned[n_cols - 1];
                r = ctl_table_add(t, cells);
                for (j = 0; j < n_cols; j++) {
                        free(owned[j]);
                        owned[j] = NULL;
                }
                if (r < 0)
                        goto out;
        }
        ctl_table_print(t, !opts->no_legend, stdout);
        r = 0;
out:
        ctl_table_free(t);
        free(cells);
        free(owned);
        json_decref(keys);
        return r;
}

/* What -F may start with: the members of inspect_json's objects. */
const char *const ctl_inspect_fields[] = {
        "file", "plugin", "size", "reason", "message", "name", "version", "interfaces",
        "description", "abi", "found_via", "note_offset", "metadata", NULL,
};

int ctl_inspect(const ctl_opts *opts, int argc, char **argv)
{
        json_t *list;
        int all_plugins = 1, r = 0;
        size_t i;
        json_t *o;

        if (argc < 1)
                return ctl_usage_error("inspect: needs at least one FILE");
        if (opts->field && ctl_field_check(opts->field, ctl_inspect_fields) < 0)
                return CTL_EXIT_USAGE;
        list = json_array();
        if (!list)
                return ctl_fail("plughostctl.Failed", NULL, "out of memory");

        for (int a = 0; a < argc; a++) {
                ph_scan s;
                int sr = ph_scan_path(AT_FDCWD, argv[a], &s);

                if (sr == 0 && s.reason != PH_REASON_OK)
                        all_plugins = 0;
                if (sr == 0)
                        sr = json_array_append_new(list, inspect_json(argv[a], &s)) ? -ENOMEM : 0;
                ph_scan_clear(&s);
                if (sr < 0) {
                        ctl_fail("plughostctl.Failed", NULL, "%s: %s", argv[a], strerror(-sr));
                        all_plugins = 0;
                }
        }

        if (opts->field) {
                /* One value per plugin; a file that is not one says why. */
                json_array_foreach(list, i, o) {
                        char *first = strndup(opts->field, strcspn(opts->field, "."));
                        bool has = first && json_object_get(o, first);

                        free(first);
                        if (json_is_true(json_object_get(o, "plugin")) || has)
                                ctl_field_print(o, opts->field, opts->json);
                        else
                                ctl_fail("plughostctl.NotAPlugin", json_pack("{s:O}", "file",
                                                                              json_object_get(o, "file")),
                                         "%s: %s: %s", json_string_value(json_object_get(o, "file")),
                                         json_string_value(json_object_get(o, "reason")),
                                         json_string_value(json_object_get(o, "message")));
                }
        } else if (opts->json) {
                ctl_print_json(list, JSON_INDENT(2));
        } else {
                r = inspect_table(opts, list);
                if (r < 0)
                        ctl_fail("plughostctl.Failed", NULL, "%s", strerror(-r));
        }
        json_decref(list);
        return all_plugins && r == 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}
