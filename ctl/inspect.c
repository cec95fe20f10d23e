/* plughostctl inspect: reads plugin metadata from files, offline, through
 * the same reader the daemon uses. Never loads a file. */
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

static int inspect_row(ctl_table *t, const char *file, const ph_scan *s)
{
        char *ifaces = NULL, *verdict = NULL;
        size_t len = 0;
        FILE *f;
        int r;

        if (s->reason == PH_REASON_OK) {
                f = open_memstream(&ifaces, &len);
                if (!f)
                        return -ENOMEM;
                for (size_t i = 0; i < s->meta->n_interfaces; i++)
                        fprintf(f, "%s%s", i ? "," : "", s->meta->interfaces[i]);
                fclose(f);
        } else if (asprintf(&verdict, "%s: %s", ph_reason_name(s->reason), s->message) < 0) {
                return -ENOMEM;
        }
        r = ctl_table_add(t, (const char *const[]){
                file,
                s->meta ? s->meta->name : NULL,
                s->meta ? s->meta->version : NULL,
                ifaces && *ifaces ? ifaces : NULL,
                verdict ? verdict : "plugin",
        });
        free(ifaces);
        free(verdict);
        return r;
}

int ctl_inspect(const ctl_opts *opts, int argc, char **argv)
{
        static const char *const headers[] = { "FILE", "NAME", "VERSION", "INTERFACES", "VERDICT" };
        ctl_table *table = NULL;
        json_t *list = NULL;
        int all_plugins = 1;

        if (argc < 1) {
                fprintf(stderr, "plughostctl inspect: needs at least one FILE\n");
                return CTL_EXIT_USAGE;
        }
        if (opts->json)
                list = json_array();
        else
                table = ctl_table_new(5, headers);
        if (!list && !table) {
                fprintf(stderr, "plughostctl: out of memory\n");
                return CTL_EXIT_FAILED;
        }

        for (int i = 0; i < argc; i++) {
                ph_scan s;
                int r = ph_scan_path(AT_FDCWD, argv[i], &s);

                if (r == 0 && s.reason != PH_REASON_OK)
                        all_plugins = 0;
                if (r == 0)
                        r = list ? json_array_append_new(list, inspect_json(argv[i], &s)) ? -ENOMEM : 0
                                 : inspect_row(table, argv[i], &s);
                ph_scan_clear(&s);
                if (r < 0) {
                        fprintf(stderr, "plughostctl: %s: %s\n", argv[i], strerror(-r));
                        all_plugins = 0;
                }
        }

        if (list) {
                json_dumpf(list, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
                fputc('\n', stdout);
                json_decref(list);
        } else {
                ctl_table_print(table, stdout);
                ctl_table_free(table);
        }
        return all_plugins ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}
