/* plughostctl's text output of the daemon's replies. A reply of the wrong
 * shape (a list that is not an array, a plugin that is not an object) is
 * a failure, said once; a member of the wrong type prints as "-". Text
 * from the daemon is escaped before it reaches the terminal. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char *str(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static long long num(json_t *o, const char *key)
{
        return (long long)json_integer_value(json_object_get(o, key));
}

static int malformed(const char *what)
{
        ctl_fail("plughostctl.BadReply", NULL, "malformed reply: %s", what);
        return -EBADMSG;
}

/* An array whose members are all objects. */
static bool array_of_objects(json_t *a)
{
        size_t i;
        json_t *v;

        if (!json_is_array(a))
                return false;
        json_array_foreach(a, i, v)
                if (!json_is_object(v))
                        return false;
        return true;
}

void ctl_print_json(json_t *v, size_t flags)
{
        /* ENSURE_ASCII: no control character (C1 included) reaches the terminal. */
        json_dumpf(v, stdout, flags | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        fputc('\n', stdout);
}

/* "label: value", value escaped; NULL shows as "-". */
static void field(const char *label, const char *value)
{
        char *v = ctl_escape(value ? value : "-");

        printf("%-13s %s\n", label, v ? v : "?");
        free(v);
}

static void fieldf(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fieldf(const char *label, const char *fmt, ...)
{
        char *text = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&text, fmt, ap);
        va_end(ap);
        field(label, n < 0 ? NULL : text);
        free(n < 0 ? NULL : text);
}

/* The strings of an array joined with ","; caller frees. */
static char *join(json_t *array)
{
        char *out = NULL;
        size_t len = 0, i;
        json_t *v;
        FILE *f = open_memstream(&out, &len);

        if (!f)
                return NULL;
        json_array_foreach(array, i, v)
                fprintf(f, "%s%s", i ? "," : "", json_is_string(v) ? json_string_value(v) : "?");
        fclose(f);
        return out;
}

static int print_plugin_table(const ctl_opts *opts, json_t *plugins)
{
        static const char *const headers[] = { "NAME", "VERSION", "STATE", "INTERFACES", "FILE" };
        ctl_table *t;
        size_t i;
        json_t *p;

        if (!array_of_objects(plugins))
                return malformed("'plugins' is not an array of objects");
        t = ctl_table_new(5, headers);
        if (!t)
                return -ENOMEM;
        json_array_foreach(plugins, i, p) {
                char *ifaces = json_is_array(json_object_get(p, "interfaces"))
                                       ? join(json_object_get(p, "interfaces")) : NULL;

                ctl_table_add(t, (const char *const[]){ str(p, "name"), str(p, "version"),
                                                        str(p, "state"), ifaces, str(p, "file") });
                free(ifaces);
        }
        ctl_table_print(t, !opts->no_legend, stdout);
        ctl_table_free(t);
        return 0;
}

int ctl_print_list(const ctl_opts *opts, json_t *params)
{
        static const char *const headers[] = { "REJECTED FILE", "REASON", "MESSAGE" };
        json_t *rejected = json_object_get(params, "rejected"), *f;
        ctl_table *t;
        size_t i;
        int r;

        if (rejected && !array_of_objects(rejected))
                return malformed("'rejected' is not an array of objects");
        r = print_plugin_table(opts, json_object_get(params, "plugins"));
        if (r < 0 || json_array_size(rejected) == 0)
                return r;
        t = ctl_table_new(3, headers);
        if (!t)
                return -ENOMEM;
        json_array_foreach(rejected, i, f)
                ctl_table_add(t, (const char *const[]){ str(f, "file"), str(f, "reason"),
                                                        str(f, "message") });
        /* The empty line stays without the legend: it ends the plugins. */
        fputc('\n', stdout);
        ctl_table_print(t, !opts->no_legend, stdout);
        ctl_table_free(t);
        return 0;
}

int ctl_print_query(const ctl_opts *opts, json_t *params)
{
        return print_plugin_table(opts, json_object_get(params, "plugins"));
}

static void print_counters(json_t *k)
{
        fieldf("Calls:", "%lld (%lld failed, %lld in flight)", num(k, "calls"),
               num(k, "callsFailed"), num(k, "callsInFlight"));
        fieldf("Loads:", "%lld (%lld failed), %lld unloads", num(k, "loads"),
               num(k, "loadFailures"), num(k, "unloads"));
}

/* The metadata keys info does not show under a label of their own. */
static void print_other_metadata(json_t *meta)
{
        static const char *const shown[] = { "name", "version", "interfaces", "description", "license",
                                             "url", "concurrency", "resident", "priority", NULL };
        const char *key;
        json_t *v;

        json_object_foreach(meta, key, v) {
                char label[80], *text;
                size_t i;

                for (i = 0; shown[i] && strcmp(shown[i], key) != 0; i++)
                        ;
                if (shown[i])
                        continue;
                snprintf(label, sizeof(label), "%s:", key);
                text = json_is_string(v) ? strdup(json_string_value(v))
                                         : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                field(label, text);
                free(text);
        }
}

int ctl_print_info(const ctl_opts *opts, json_t *params)
{
        json_t *p = json_object_get(params, "plugin");
        char *ifaces;

        (void)opts;
        if (!json_is_object(p))
                return malformed("'plugin' is not an object");
        ifaces = join(json_object_get(p, "interfaces"));
        field("Name:", str(p, "name"));
        field("Version:", str(p, "version"));
        field("State:", str(p, "state"));
        field("Interfaces:", ifaces);
        field("Description:", str(p, "description"));
        field("License:", str(p, "license"));
        field("URL:", str(p, "url"));
        field("Concurrency:", str(p, "concurrency"));
        field("Resident:", json_is_true(json_object_get(p, "resident")) ? "yes" : "no");
        fieldf("Priority:", "%lld", num(p, "priority"));
        print_other_metadata(json_object_get(params, "metadata"));
        field("File:", str(p, "file"));
        fieldf("Generation:", "%lld", num(p, "generation"));
        field("Last error:", str(p, "lastError"));
        if (json_is_object(json_object_get(p, "pending"))) {
                json_t *n = json_object_get(p, "pending");

                fieldf("Pending:", "%s (generation %lld, %s)",
                       str(n, "version") ? str(n, "version") : "?", num(n, "generation"),
                       str(n, "state") ? str(n, "state") : "?");
                if (str(n, "error"))
                        field("Pending error:", str(n, "error"));
        }
        field("Isolation:", str(p, "isolation"));
        if (json_is_object(json_object_get(p, "worker"))) {
                json_t *w = json_object_get(p, "worker");

                fieldf("Worker:", "pid %lld, %lld restarts, %lld faults%s", num(w, "pid"),
                       num(w, "restarts"), num(w, "faults"),
                       json_is_true(json_object_get(w, "quarantined")) ? ", quarantined" : "");
                field("Last fault:", str(w, "lastFault"));
        }
        print_counters(json_object_get(params, "counters"));
        free(ifaces);
        return 0;
}

int ctl_print_load(const ctl_opts *opts, json_t *params)
{
        json_t *p = json_object_get(params, "plugin");
        char *name = ctl_escape(str(p, "name") ? str(p, "name") : "?");
        char *version = ctl_escape(str(p, "version") ? str(p, "version") : "?");
        char *state = ctl_escape(str(p, "state") ? str(p, "state") : "?");

        (void)opts;
        printf("%s %s: %s\n", name ? name : "?", version ? version : "?", state ? state : "?");
        free(name);
        free(version);
        free(state);
        return 0;
}

int ctl_print_call(const ctl_opts *opts, json_t *params)
{
        json_t *result = json_object_get(params, "result");

        (void)opts;
        if (result && !json_is_null(result))
                ctl_print_json(result, JSON_INDENT(2));
        return 0;
}

int ctl_print_rescan(const ctl_opts *opts, json_t *params)
{
        (void)opts;
        printf("added %lld, changed %lld, removed %lld\n", num(params, "added"),
               num(params, "changed"), num(params, "removed"));
        return 0;
}

int ctl_print_status(const ctl_opts *opts, json_t *params)
{
        char *joined = join(json_object_get(params, "pluginDirectories"));

        (void)opts;
        field("Version:", str(params, "version"));
        fieldf("Uptime:", "%lld s", num(params, "uptimeSeconds"));
        field("Directories:", joined);
        fieldf("Plugins:", "%lld (%lld loaded, %lld rejected)", num(params, "plugins"),
               num(params, "loaded"), num(params, "rejected"));
        fieldf("Clients:", "%lld", num(params, "clients"));
        print_counters(json_object_get(params, "counters"));
        free(joined);
        return 0;
}

/* One printable copy of ev's key, or NULL when absent (free it). */
static char *ev_text(json_t *ev, const char *key)
{
        return str(ev, key) && *str(ev, key) ? ctl_escape(str(ev, key)) : NULL;
}

/* "KIND NAME VERSION (generation N): MESSAGE", and for a refusal the file
 * it is about and, on a second line, the fix. */
void ctl_print_event(const ctl_opts *opts, json_t *params)
{
        json_t *ev = json_object_get(params, "event");
        char *kind, *name, *version, *file, *reason, *message, *fix;
        bool rejected;

        if (opts->json) {
                ctl_print_json(params, JSON_COMPACT);
                return;
        }
        kind = ev_text(ev, "kind");
        name = ev_text(ev, "name");
        version = ev_text(ev, "version");
        file = ev_text(ev, "file");
        reason = ev_text(ev, "reason");
        message = ev_text(ev, "message");
        fix = ev_text(ev, "fix");
        rejected = kind && strcmp(kind, "rejected") == 0;
        printf("%-9s %s", kind ? kind : "?", name ? name : file ? file : "?");
        if (version)
                printf(" %s", version);
        if (json_integer_value(json_object_get(ev, "generation")) > 0)
                printf(" (generation %lld)", num(ev, "generation"));
        if (rejected && name && file)
                printf(" in %s", file);
        if (rejected && reason)
                printf(": %s", reason);
        if (message)
                printf(": %s", message);
        fputc('\n', stdout);
        if (fix)
                printf("%-9s fix: %s\n", "", fix);
        free(kind);
        free(name);
        free(version);
        free(file);
        free(reason);
        free(message);
        free(fix);
}
