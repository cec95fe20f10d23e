/* plughostctl's daemon commands: each one is a row saying which method it
 * calls, which arguments fill which parameters and how the reply is shown.
 * Text from the daemon is escaped before it reaches the terminal; --json
 * prints the reply's parameters as they came. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

typedef struct ctl_request {
        const char *name;               /* the command, for messages */
        const char *method;
        int min_args, max_args;
        const char *params[3];          /* parameter each argument fills */
        void (*print)(const ctl_opts *opts, json_t *params);
} ctl_request;

/* ---- output ---- */

static const char *str(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static long long num(json_t *o, const char *key)
{
        return (long long)json_integer_value(json_object_get(o, key));
}

static void print_json(json_t *v, size_t flags)
{
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

static void print_plugin_table(json_t *plugins)
{
        static const char *const headers[] = { "NAME", "VERSION", "STATE", "INTERFACES", "FILE" };
        ctl_table *t = ctl_table_new(5, headers);
        size_t i;
        json_t *p;

        if (!t)
                return;
        json_array_foreach(plugins, i, p) {
                char *ifaces = join(json_object_get(p, "interfaces"));

                ctl_table_add(t, (const char *const[]){ str(p, "name"), str(p, "version"),
                                                        str(p, "state"), ifaces, str(p, "file") });
                free(ifaces);
        }
        ctl_table_print(t, stdout);
        ctl_table_free(t);
}

static void print_list(const ctl_opts *opts, json_t *params)
{
        static const char *const headers[] = { "REJECTED FILE", "REASON", "MESSAGE" };
        json_t *rejected = json_object_get(params, "rejected"), *f;
        ctl_table *t;
        size_t i;

        (void)opts;
        print_plugin_table(json_object_get(params, "plugins"));
        if (json_array_size(rejected) == 0 || !(t = ctl_table_new(3, headers)))
                return;
        json_array_foreach(rejected, i, f)
                ctl_table_add(t, (const char *const[]){ str(f, "file"), str(f, "reason"),
                                                        str(f, "message") });
        fputc('\n', stdout);
        ctl_table_print(t, stdout);
        ctl_table_free(t);
}

static void print_query(const ctl_opts *opts, json_t *params)
{
        (void)opts;
        print_plugin_table(json_object_get(params, "plugins"));
}

static void print_counters(json_t *k)
{
        fieldf("Calls:", "%lld (%lld failed, %lld in flight)", num(k, "calls"),
               num(k, "callsFailed"), num(k, "callsInFlight"));
        fieldf("Loads:", "%lld (%lld failed), %lld unloads", num(k, "loads"),
               num(k, "loadFailures"), num(k, "unloads"));
}

static void print_info(const ctl_opts *opts, json_t *params)
{
        json_t *p = json_object_get(params, "plugin");
        char *ifaces = join(json_object_get(p, "interfaces"));

        (void)opts;
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
        field("File:", str(p, "file"));
        fieldf("Generation:", "%lld", num(p, "generation"));
        field("Last error:", str(p, "lastError"));
        if (json_is_object(json_object_get(p, "pending"))) {
                json_t *n = json_object_get(p, "pending");

                fieldf("Pending:", "%s (generation %lld, %s%s%s)",
                       str(n, "version") ? str(n, "version") : "?", num(n, "generation"),
                       str(n, "state") ? str(n, "state") : "?", str(n, "error") ? ": " : "",
                       str(n, "error") ? str(n, "error") : "");
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
}

static void print_load(const ctl_opts *opts, json_t *params)
{
        json_t *p = json_object_get(params, "plugin");
        char *name = ctl_escape(str(p, "name") ? str(p, "name") : "?");
        char *version = ctl_escape(str(p, "version") ? str(p, "version") : "?");

        (void)opts;
        printf("%s %s: %s\n", name ? name : "?", version ? version : "?",
               str(p, "state") ? str(p, "state") : "?");
        free(name);
        free(version);
}

static void print_nothing(const ctl_opts *opts, json_t *params)
{
        (void)opts;
        (void)params;
}

static void print_call(const ctl_opts *opts, json_t *params)
{
        json_t *result = json_object_get(params, "result");

        (void)opts;
        /* ENSURE_ASCII: no control character (C1 included) reaches the terminal. */
        if (result && !json_is_null(result))
                print_json(result, JSON_INDENT(2));
}

static void print_rescan(const ctl_opts *opts, json_t *params)
{
        (void)opts;
        printf("added %lld, changed %lld, removed %lld\n", num(params, "added"),
               num(params, "changed"), num(params, "removed"));
}

static void print_status(const ctl_opts *opts, json_t *params)
{
        json_t *dirs = json_object_get(params, "pluginDirectories");
        char *joined = join(dirs);

        (void)opts;
        field("Version:", str(params, "version"));
        fieldf("Uptime:", "%lld s", num(params, "uptimeSeconds"));
        field("Directories:", joined);
        fieldf("Plugins:", "%lld (%lld loaded, %lld rejected)", num(params, "plugins"),
               num(params, "loaded"), num(params, "rejected"));
        fieldf("Clients:", "%lld", num(params, "clients"));
        print_counters(json_object_get(params, "counters"));
        free(joined);
}

/* ---- running a request ---- */

/* Fills the method's parameters from the arguments; -EINVAL (printed) when
 * PARAMS_JSON is not a JSON object. */
static int request_params(const ctl_request *rq, const ctl_opts *opts, int argc, char **argv,
                          json_t **ret)
{
        json_t *params = json_object();
        json_error_t jerr;

        if (!params)
                return -ENOMEM;
        if (opts->interface)
                json_object_set_new(params, "interface", json_string(opts->interface));
        if (opts->state)
                json_object_set_new(params, "state", json_string(opts->state));
        for (int i = 0; i < argc; i++) {
                json_t *v;

                if (strcmp(rq->params[i], "parameters") == 0) {
                        v = json_loads(argv[i], JSON_REJECT_DUPLICATES, &jerr);
                        if (!json_is_object(v)) {
                                fprintf(stderr, "plughostctl %s: PARAMS_JSON must be a JSON object%s%s\n",
                                        rq->name, v ? "" : ": ", v ? "" : jerr.text);
                                json_decref(v);
                                json_decref(params);
                                return -EINVAL;
                        }
                } else {
                        v = json_string(argv[i]);
                        if (!v) {
                                fprintf(stderr, "plughostctl %s: argument %d is not UTF-8\n",
                                        rq->name, i + 1);
                                json_decref(params);
                                return -EINVAL;
                        }
                }
                json_object_set_new(params, rq->params[i], v);
        }
        *ret = params;
        return 0;
}

static int request_run(const ctl_request *rq, const ctl_opts *opts, int argc, char **argv)
{
        json_t *params, *reply;
        int r;

        if (argc < rq->min_args || argc > rq->max_args) {
                if (rq->max_args > rq->min_args)
                        fprintf(stderr, "plughostctl %s: expects %d to %d arguments (see --help)\n",
                                rq->name, rq->min_args, rq->max_args);
                else
                        fprintf(stderr, "plughostctl %s: expects %d argument%s (see --help)\n",
                                rq->name, rq->min_args, rq->min_args == 1 ? "" : "s");
                return CTL_EXIT_USAGE;
        }
        r = request_params(rq, opts, argc, argv, &params);
        if (r < 0)
                return r == -EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_FAILED;
        if (ctl_client_call(opts, rq->method, params, &reply) < 0)
                return CTL_EXIT_FAILED;
        if (opts->json)
                print_json(reply, JSON_INDENT(2));
        else
                rq->print(opts, reply);
        json_decref(reply);
        return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

#define CTL_REQUEST(cmd, meth, lo, hi, printer, ...)                                         \
        int ctl_##cmd(const ctl_opts *opts, int argc, char **argv)                            \
        {                                                                                      \
                static const ctl_request rq = { #cmd, "io.plughost." meth, lo, hi,             \
                                                { __VA_ARGS__ }, printer };                    \
                return request_run(&rq, opts, argc, argv);                                     \
        }

CTL_REQUEST(list, "List", 0, 0, print_list, NULL)
CTL_REQUEST(info, "Info", 1, 1, print_info, "name")
CTL_REQUEST(query, "Query", 1, 1, print_query, "interface")
CTL_REQUEST(load, "Load", 1, 1, print_load, "name")
CTL_REQUEST(unload, "Unload", 1, 1, print_nothing, "name")
CTL_REQUEST(call, "Call", 2, 3, print_call, "name", "method", "parameters")
CTL_REQUEST(rescan, "Rescan", 0, 0, print_rescan, NULL)
CTL_REQUEST(status, "Status", 0, 0, print_status, NULL)

/* ---- monitor: a stream of replies until interrupted ---- */

static void monitor_event(const ctl_opts *opts, json_t *params)
{
        json_t *ev = json_object_get(params, "event");
        char *name, *message = NULL;

        if (opts->json) {
                print_json(params, JSON_COMPACT);
                return;
        }
        name = ctl_escape(str(ev, "name") ? str(ev, "name") : "?");
        if (str(ev, "message"))
                message = ctl_escape(str(ev, "message"));
        printf("%-9s %s", str(ev, "kind") ? str(ev, "kind") : "?", name ? name : "?");
        if (str(ev, "version") && *str(ev, "version")) {
                char *version = ctl_escape(str(ev, "version"));

                printf(" %s", version ? version : "?");
                free(version);
        }
        if (json_integer_value(json_object_get(ev, "generation")) > 0)
                printf(" (generation %lld)", num(ev, "generation"));
        if (message)
                printf(": %s", message);
        fputc('\n', stdout);
        free(name);
        free(message);
}

static void monitor_signal_cb(int sig)
{
        (void)sig;              /* only there to interrupt ppoll() */
}

int ctl_monitor(const ctl_opts *opts, int argc, char **argv)
{
        struct sigaction sa = { .sa_handler = monitor_signal_cb };
        sigset_t stop, wait;
        ctl_client *c;
        json_t *reply;
        int r;

        (void)argv;
        if (argc != 0) {
                fprintf(stderr, "plughostctl monitor: expects no arguments\n");
                return CTL_EXIT_USAGE;
        }
        /* SIGINT and SIGTERM stay blocked but while the client waits for
         * the daemon: then they end the wait, and we exit 0. */
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_BLOCK, &stop, &wait);
        sigdelset(&wait, SIGINT);
        sigdelset(&wait, SIGTERM);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (ctl_client_open(opts, &c) < 0)
                return CTL_EXIT_FAILED;
        ctl_client_set_wait_mask(c, &wait);
        r = ctl_client_send(c, "io.plughost.Monitor", NULL, true);
        while (r == 0 && (r = ctl_client_recv(c, &reply)) == 0) {
                json_t *params = json_object_get(reply, "parameters");
                bool continues = json_is_true(json_object_get(reply, "continues"));

                r = ctl_reply_check(reply);
                /* The first reply carries no event: the subscription is live. */
                if (r == 0 && json_object_get(params, "event"))
                        monitor_event(opts, params);
                json_decref(reply);
                fflush(stdout);
                if (r == 0 && !continues) {
                        fprintf(stderr, "plughostctl: plughostd ended the stream\n");
                        r = -ECONNRESET;
                }
        }
        ctl_client_free(c);
        return r == -EINTR ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}
