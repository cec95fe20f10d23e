/* plughostctl's daemon commands: each one is a row saying which method it
 * calls, which arguments fill which parameters (checked first) and how the
 * reply is shown (print.c). --json prints the reply's parameters as they
 * came; -F prints one field of them. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* How an argument is checked before it is sent. */
enum { ARG_NAME = 1, ARG_IFACE, ARG_METHOD, ARG_OBJECT };

typedef struct ctl_request {
        const char *name;               /* the command, for messages */
        const char *method;
        int min_args, max_args;
        const char *params[3];          /* parameter each argument fills */
        int kinds[3];                   /* and how it is checked */
        int (*print)(const ctl_opts *opts, json_t *params);
        bool stream;                    /* asked with "more": the parts, joined */
} ctl_request;

/* What -F may start with for info: the Plugin's fields (io.plughost.varlink)
 * and the other members of the reply. */
const char *const ctl_info_fields[] = {
        "name", "version", "interfaces", "description", "license", "url", "concurrency",
        "resident", "priority", "state", "file", "generation", "lastError", "pending",
        "isolation", "worker", "metadata", "counters", NULL,
};

/* The value for one argument; -EINVAL when it was refused (printed). */
static int request_arg(const ctl_request *rq, int i, const char *arg, json_t **ret)
{
        json_error_t jerr;
        json_t *v;

        switch (rq->kinds[i]) {
        case ARG_NAME:
                if (ctl_check_name("plugin name", arg) < 0)
                        return -EINVAL;
                break;
        case ARG_IFACE:
                if (ctl_check_interface(arg) < 0)
                        return -EINVAL;
                break;
        case ARG_METHOD:
                if (!*arg) {
                        ctl_usage_error("%s: METHOD is empty", rq->name);
                        return -EINVAL;
                }
                break;
        case ARG_OBJECT:
                v = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);
                if (!json_is_object(v)) {
                        ctl_usage_error("%s: PARAMS_JSON must be a JSON object%s%s", rq->name,
                                        v ? "" : ": ", v ? "" : jerr.text);
                        json_decref(v);
                        return -EINVAL;
                }
                *ret = v;
                return 0;
        }
        v = json_string(arg);
        if (!v) {
                ctl_usage_error("%s: argument %d is not UTF-8", rq->name, i + 1);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* Fills the method's parameters from the options and the arguments. */
static int request_params(const ctl_request *rq, const ctl_opts *opts, int argc, char **argv,
                          json_t **ret)
{
        json_t *params = json_object();

        if (!params)
                return -ENOMEM;
        if (opts->interface)
                json_object_set_new(params, "interface", json_string(opts->interface));
        if (opts->state)
                json_object_set_new(params, "state", json_string(opts->state));
        for (int i = 0; i < argc; i++) {
                json_t *v;
                int r = request_arg(rq, i, argv[i], &v);

                if (r < 0) {
                        json_decref(params);
                        return r;
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
                        return ctl_usage_error("%s: expects %d to %d arguments (see 'plughostctl help %s')",
                                               rq->name, rq->min_args, rq->max_args, rq->name);
                return ctl_usage_error("%s: expects %d argument%s (see 'plughostctl help %s')", rq->name,
                                       rq->min_args, rq->min_args == 1 ? "" : "s", rq->name);
        }
        if (opts->field && ctl_field_check(opts->field, ctl_info_fields) < 0)
                return CTL_EXIT_USAGE;
        r = request_params(rq, opts, argc, argv, &params);
        if (r < 0)
                return r == -EINVAL ? CTL_EXIT_USAGE : ctl_fail("plughostctl.Failed", NULL, "%s", strerror(-r));
        if (ctl_client_call(opts, rq->method, params, rq->stream, &reply) < 0)
                return CTL_EXIT_FAILED;
        if (opts->field) {
                /* The Plugin's fields first, then the reply's members. */
                json_t *plugin = json_object_get(reply, "plugin");
                size_t n = strcspn(opts->field, ".");

                r = json_is_object(plugin) ? 0 : ctl_fail("plughostctl.BadReply", NULL,
                                                          "malformed reply: 'plugin' is not an object");
                if (r == 0)
                        ctl_field_print((!strncmp(opts->field, "metadata", n) && n == 8) ||
                                        (!strncmp(opts->field, "counters", n) && n == 8) ? reply : plugin,
                                        opts->field, opts->json);
        } else if (rq->print == ctl_print_query && json_is_array(json_object_get(reply, "plugins")) &&
                   json_array_size(json_object_get(reply, "plugins")) == 0) {
                /* An interface nothing provides is an answer, but not the
                 * one asked for: said on stderr, and exit 1. */
                r = ctl_fail("plughostctl.NoProvider", json_pack("{s:s}", "interface", argv[0]),
                             "no plugin provides interface '%s'", argv[0]);
        } else if (opts->json) {
                ctl_print_json(reply, JSON_INDENT(2));
                r = 0;
        } else {
                r = rq->print ? rq->print(opts, reply) : 0;
        }
        json_decref(reply);
        if (r != 0)
                return CTL_EXIT_FAILED;
        return fflush(stdout) == 0 ? CTL_EXIT_OK : ctl_fail("plughostctl.Failed", NULL, "stdout: write failed");
}

#define CTL_REQUEST_HOW(cmd, meth, lo, hi, printer, names, kinds_, stream_)                    \
        int ctl_##cmd(const ctl_opts *opts, int argc, char **argv)                            \
        {                                                                                      \
                static const ctl_request rq = { #cmd, "io.plughost." meth, lo, hi,             \
                                                names, kinds_, printer, stream_ };             \
                return request_run(&rq, opts, argc, argv);                                     \
        }
#define CTL_REQUEST(cmd, meth, lo, hi, printer, names, kinds_)                                 \
        int ctl_##cmd(const ctl_opts *opts, int argc, char **argv)                            \
        {                                                                                      \
                static const ctl_request rq = { #cmd, "io.plughost." meth, lo, hi,             \
                                                names, kinds_, printer, false };               \
                return request_run(&rq, opts, argc, argv);                                     \
        }
#define LIST(...) { __VA_ARGS__ }

/* Streamed (list, query): any number of plugins, where one reply holds
 * some 2,500. */
CTL_REQUEST_HOW(list, "List", 0, 0, ctl_print_list, LIST(NULL), LIST(0), true)
CTL_REQUEST(info, "Info", 1, 1, ctl_print_info, LIST("name"), LIST(ARG_NAME))
CTL_REQUEST_HOW(query, "Query", 1, 1, ctl_print_query, LIST("interface"), LIST(ARG_IFACE), true)
CTL_REQUEST(load, "Load", 1, 1, ctl_print_load, LIST("name"), LIST(ARG_NAME))
CTL_REQUEST(unload, "Unload", 1, 1, NULL, LIST("name"), LIST(ARG_NAME))
CTL_REQUEST(call, "Call", 2, 3, ctl_print_call, LIST("name", "method", "parameters"),
            LIST(ARG_NAME, ARG_METHOD, ARG_OBJECT))
CTL_REQUEST(rescan, "Rescan", 0, 0, ctl_print_rescan, LIST(NULL), LIST(0))
CTL_REQUEST(status, "Status", 0, 0, ctl_print_status, LIST(NULL), LIST(0))

/* ---- monitor: a stream of replies until interrupted ---- */

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
        if (argc != 0)
                return ctl_usage_error("monitor: expects no arguments");
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
                        ctl_print_event(opts, params);
                json_decref(reply);
                fflush(stdout);
                if (r == 0 && !continues) {
                        ctl_fail("plughostctl.Disconnected", NULL, "plughostd ended the stream");
                        r = -ECONNRESET;
                }
        }
        ctl_client_free(c);
        return r == -EINTR ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}
