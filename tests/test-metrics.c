/* io.plughost.Metrics and `plughostctl metrics`: the text passes a strict
 * parser of the Prometheus text format (0.0.4) of our own and `promtool
 * check metrics`, its numbers are those of Status and Info at the same
 * quiet moment, label values are escaped, --output replaces its file
 * whole or not at all, and the timer's units verify.
 *
 * promtool: when it is missing the promtool case is not run and the suite
 * exits 77 (automake's SKIP: not counted as passed), unless
 * PH_REQUIRE_PROMTOOL=1, which makes its absence a failure. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon-util.h"
#include "testutil.h"

static char ctl[4096];
static du_daemon D;

/* ---- a strict parser of the text format ---- */

#define MX_MAX 4096

typedef struct mx_series {
        char *name;                     /* the sample's name */
        char *family;
        char *labels;                   /* name=value pairs, values unescaped, "\x1f" between */
        char *le;                       /* a histogram bucket's le, or NULL */
        double value;
} mx_series;

typedef struct mx_family {
        char *name, *type;
        bool help;
        bool has_samples;
} mx_family;

typedef struct mx {
        mx_series s[MX_MAX];
        size_t n;
        mx_family f[512];
        size_t nf;
} mx;

static bool name_ok(const char *s, size_t n, bool label)
{
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                             (!label && c == ':');

                if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
                        return false;
        }
        return true;
}

static mx_family *mx_family_find(mx *m, const char *name)
{
        for (size_t i = 0; i < m->nf; i++)
                if (strcmp(m->f[i].name, name) == 0)
                        return &m->f[i];
        return NULL;
}

static bool has_suffix(const char *s, const char *suffix)
{
        size_t a = strlen(s), b = strlen(suffix);

        return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The family a sample belongs to: its name, or a histogram's base name. */
static mx_family *sample_family(mx *m, const char *name)
{
        static const char *const sfx[] = { "_bucket", "_sum", "_count" };
        mx_family *f = mx_family_find(m, name);

        if (f)
                return f;
        for (size_t i = 0; i < 3; i++)
                if (has_suffix(name, sfx[i])) {
                        char *base = strndup(name, strlen(name) - strlen(sfx[i]));

                        f = mx_family_find(m, base);
                        free(base);
                        if (f && strcmp(f->type, "histogram") == 0)
                                return f;
                }
        return NULL;
}

/* Parses text into m; fails the test at the first line that breaks the
 * format or our rules. */
static void mx_parse(mx *m, const char *text)
{
        const char *p = text, *last_family = NULL;
        unsigned lineno = 0;

        memset(m, 0, sizeof(*m));
        ck_assert_msg(*text, "empty output");
        ck_assert_msg(text[strlen(text) - 1] == '\n', "the text does not end with a newline");
        while (*p) {
                const char *eol = strchr(p, '\n');
                char *line = strndup(p, (size_t)(eol - p));

                lineno++;
                p = eol + 1;
                ck_assert_msg(*line, "line %u is empty", lineno);
                if (line[0] == '#') {
                        char kw[8], name[256];
                        int off = 0;
                        mx_family *f;

                        ck_assert_msg(sscanf(line, "# %7s %255s %n", kw, name, &off) == 2 && off > 0,
                                      "line %u: a comment that is neither HELP nor TYPE: %s", lineno, line);
                        ck_assert_msg(name_ok(name, strlen(name), false), "line %u: bad name %s", lineno, name);
                        f = mx_family_find(m, name);
                        if (!f) {
                                ck_assert(m->nf < 512);
                                f = &m->f[m->nf++];
                                f->name = strdup(name);
                        }
                        ck_assert_msg(!f->has_samples, "line %u: %s %s after its samples", lineno, kw, name);
                        if (strcmp(kw, "HELP") == 0) {
                                ck_assert_msg(!f->help, "line %u: a second HELP for %s", lineno, name);
                                f->help = true;
                                /* HELP text escapes only \\ and \n. */
                                for (const char *c = line + off; *c; c++)
                                        if (*c == '\\') {
                                                ck_assert_msg(c[1] == '\\' || c[1] == 'n',
                                                              "line %u: bad escape in HELP", lineno);
                                                c++;
                                        }
                        } else {
                                ck_assert_msg(strcmp(kw, "TYPE") == 0, "line %u: '# %s' is neither HELP nor TYPE",
                                              lineno, kw);
                                ck_assert_msg(!f->type, "line %u: a second TYPE for %s", lineno, name);
                                ck_assert_msg(!strcmp(line + off, "counter") || !strcmp(line + off, "gauge") ||
                                              !strcmp(line + off, "histogram") || !strcmp(line + off, "summary") ||
                                              !strcmp(line + off, "untyped"),
                                              "line %u: unknown type '%s'", lineno, line + off);
                                f->type = strdup(line + off);
                                if (strcmp(f->type, "counter") == 0)
                                        ck_assert_msg(has_suffix(name, "_total"), "counter %s does not end in _total",
                                                      name);
                        }
                        free(line);
                        continue;
                }
                {
                        size_t n = strcspn(line, "{ ");
                        char *c = line + n, *end;
                        mx_series *s;
                        mx_family *f;
                        char labels[8192] = "";
                        size_t ll = 0;

                        ck_assert_msg(name_ok(line, n, false), "line %u: bad sample name: %s", lineno, line);
                        ck_assert(m->n < MX_MAX);
                        s = &m->s[m->n];
                        s->name = strndup(line, n);
                        f = sample_family(m, s->name);
                        ck_assert_msg(f && f->type, "line %u: %s has no TYPE before it", lineno, s->name);
                        if (strcmp(f->type, "counter") == 0)
                                ck_assert_msg(strcmp(s->name, f->name) == 0, "line %u: counter sample %s", lineno,
                                              s->name);
                        /* A family's samples are together. */
                        if (!last_family || strcmp(last_family, f->name) != 0)
                                ck_assert_msg(!f->has_samples, "line %u: %s's samples are not together", lineno,
                                              f->name);
                        f->has_samples = true;
                        last_family = f->name;
                        s->family = f->name;
                        if (*c == '{') {
                                c++;
                                while (*c != '}') {
                                        size_t ln = strcspn(c, "=");
                                        char lname[128];

                                        ck_assert_msg(name_ok(c, ln, true) && ln < sizeof(lname),
                                                      "line %u: bad label name", lineno);
                                        memcpy(lname, c, ln);
                                        lname[ln] = '\0';
                                        c += ln;
                                        ck_assert_msg(c[0] == '=' && c[1] == '"', "line %u: label without =\"",
                                                      lineno);
                                        c += 2;
                                        ll += (size_t)snprintf(labels + ll, sizeof(labels) - ll, "%s%s=",
                                                               ll ? "\x1f" : "", lname);
                                        {
                                                char val[4096];
                                                size_t vn = 0;

                                                for (; *c != '"'; c++) {
                                                        ck_assert_msg(*c, "line %u: unterminated label value", lineno);
                                                        ck_assert(vn + 1 < sizeof(val));
                                                        if (*c == '\\') {
                                                                c++;
                                                                ck_assert_msg(*c == '\\' || *c == '"' || *c == 'n',
                                                                              "line %u: bad escape \\%c", lineno, *c);
                                                                val[vn++] = *c == 'n' ? '\n' : *c;
                                                        } else {
                                                                val[vn++] = *c;
                                                        }
                                                }
                                                val[vn] = '\0';
                                                c++;
                                                if (strcmp(lname, "le") == 0)
                                                        s->le = strdup(val);
                                                ll += (size_t)snprintf(labels + ll, sizeof(labels) - ll, "%s", val);
                                        }
                                        ck_assert_msg(*c == ',' || *c == '}', "line %u: bad label list", lineno);
                                        if (*c == ',')
                                                c++;
                                }
                                c++;
                        }
                        ck_assert_msg(*c == ' ', "line %u: no space before the value", lineno);
                        c++;
                        if (strcmp(c, "+Inf") == 0)
                                s->value = INFINITY;
                        else {
                                errno = 0;
                                s->value = strtod(c, &end);
                                ck_assert_msg(end != c && *end == '\0' && errno == 0,
                                              "line %u: bad value '%s'", lineno, c);
                        }
                        s->labels = strdup(labels);
                        /* No duplicate series. */
                        for (size_t i = 0; i < m->n; i++)
                                ck_assert_msg(strcmp(m->s[i].name, s->name) || strcmp(m->s[i].labels, s->labels),
                                              "line %u: duplicate series %s{%s}", lineno, s->name, s->labels);
                        m->n++;
                }
                free(line);
        }
        /* Histograms: buckets ascending by le, cumulative, the last +Inf
         * and equal to _count; a _sum. */
        for (size_t i = 0; i < m->nf; i++) {
                mx_family *f = &m->f[i];
                double prev_le = -INFINITY, prev = 0, count = -1;
                bool inf = false, sum = false;
                char *b, *cnt, *sm;

                ck_assert_msg(f->type, "family %s has no TYPE", f->name);
                if (strcmp(f->type, "histogram") != 0)
                        continue;
                ck_assert_int_ge(asprintf(&b, "%s_bucket", f->name), 0);
                ck_assert_int_ge(asprintf(&cnt, "%s_count", f->name), 0);
                ck_assert_int_ge(asprintf(&sm, "%s_sum", f->name), 0);
                for (size_t j = 0; j < m->n; j++) {
                        mx_series *s = &m->s[j];

                        if (strcmp(s->name, b) == 0) {
                                double le;

                                ck_assert_msg(s->le, "%s without le", b);
                                ck_assert_msg(!inf, "%s: a bucket after +Inf", b);
                                le = strcmp(s->le, "+Inf") == 0 ? INFINITY : strtod(s->le, NULL);
                                inf = isinf(le);
                                ck_assert_msg(le > prev_le, "%s: le %s not ascending", b, s->le);
                                ck_assert_msg(s->value >= prev, "%s: le %s not cumulative", b, s->le);
                                prev_le = le;
                                prev = s->value;
                        } else if (strcmp(s->name, cnt) == 0) {
                                count = s->value;
                        } else if (strcmp(s->name, sm) == 0) {
                                sum = true;
                        }
                }
                ck_assert_msg(inf, "%s: no +Inf bucket", f->name);
                ck_assert_msg(sum, "%s: no _sum", f->name);
                ck_assert_msg(count == prev, "%s: +Inf bucket %g is not _count %g", f->name, prev, count);
                free(b);
                free(cnt);
                free(sm);
        }
}

/* The value of a series, labels written "a=x\x1fb=y"; fails if missing. */
static double mx_get(const mx *m, const char *name, const char *labels)
{
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->s[i].name, name) == 0 && strcmp(m->s[i].labels, labels ? labels : "") == 0)
                        return m->s[i].value;
        ck_abort_msg("no series %s{%s}", name, labels ? labels : "");
        return 0;
}

static bool mx_has(const mx *m, const char *name, const char *labels)
{
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->s[i].name, name) == 0 && strcmp(m->s[i].labels, labels ? labels : "") == 0)
                        return true;
        return false;
}

static void mx_free(mx *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->s[i].name);
                free(m->s[i].labels);
                free(m->s[i].le);
        }
        for (size_t i = 0; i < m->nf; i++) {
                free(m->f[i].name);
                free(m->f[i].type);
        }
}

/* ---- running plughostctl ---- */

/* sh -c cmd; stdout into *ret_out (may be NULL). Returns the exit status. */
static int sh(char **ret_out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **ret_out, const char *fmt, ...)
{
        char *cmd, *out = NULL, *argv[] = { "/bin/sh", "-c", NULL, NULL };
        va_list ap;
        int r;

        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
        va_end(ap);
        argv[2] = cmd;
        r = tu_run(argv, &out);
        free(cmd);
        if (ret_out)
                *ret_out = out;
        else
                free(out);
        return r;
}

/* plughostctl ARGS against the test daemon; its stdout. */
static char *ctl_out(const char *args)
{
        char *out;

        ck_assert_int_eq(sh(&out, "%s --socket %s %s", ctl, D.socket, args), 0);
        return out;
}

static json_t *ctl_json(const char *args)
{
        char *out = ctl_out(args);
        json_error_t e;
        json_t *j = json_loads(out, 0, &e);

        ck_assert_msg(j, "not JSON from plughostctl %s: %s", args, e.text);
        free(out);
        return j;
}

static void call_ok(const char *json)
{
        json_t *r = du_request(&D, json);

        ck_assert_msg(!du_error(r), "%s: %s", json, du_error(r));
        json_decref(r);
}

static void call_err(const char *json)
{
        json_t *r = du_request(&D, json);

        ck_assert_msg(du_error(r), "%s did not fail", json);
        json_decref(r);
}

static void setup(void)
{
        const char *b = getenv("PH_BUILDDIR");

        ck_assert_ptr_nonnull(b);
        snprintf(ctl, sizeof(ctl), "%s/plughostctl", b);
        du_init(&D);
        du_add_plugin(&D, tu_example("hello.so"), "hello.so");
        du_add_plugin(&D, tu_example("upper.so"), "upper.so");
        du_add_plugin(&D, tu_example("counter.so"), "counter.so");
        du_add_plugin(&D, tu_fixture("init-fail.so"), "initfail.so");
        du_add_plugin(&D, tu_fixture("serial.so"), "serial.so");
}

static void teardown(void)
{
        du_stop(&D);
}

/* Loads, calls and failures of each kind; then the daemon is quiet. */
static void make_traffic(void)
{
        for (int i = 0; i < 5; i++)
                call_ok("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\",\"method\":\"Hello\","
                        "\"parameters\":{\"name\":\"Ada\"}}}");
        call_ok("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"upper\",\"method\":\"Upper\","
                "\"parameters\":{\"text\":\"a\"}}}");
        call_err("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"upper\",\"method\":\"Upper\","
                 "\"parameters\":{}}}");
        call_ok("{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"counter\"}}");
        call_ok("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counter\",\"method\":\"Next\"}}");
        call_ok("{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"counter\"}}");
        call_err("{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"initfail\"}}");
}

/* Waits until the unloaded instance is gone and nothing is in flight:
 * two Status replies a little apart agree. */
static json_t *status_quiet(void)
{
        json_t *a = ctl_json("--json status"), *b;

        for (int i = 0; i < 100; i++) {
                usleep(50000);
                b = ctl_json("--json status");
                json_object_del(a, "uptimeSeconds");
                json_object_del(b, "uptimeSeconds");
                if (json_equal(a, b) && du_int(b, "counters.callsInFlight") == 0) {
                        json_decref(a);
                        return b;
                }
                json_decref(a);
                a = b;
        }
        ck_abort_msg("the daemon did not become quiet");
        return NULL;
}

static char *labels1(const char *name, const char *value)
{
        static char buf[4200];

        snprintf(buf, sizeof(buf), "%s=%s", name, value);
        return buf;
}

/* The text's figures are Status's and Info's, taken with the daemon quiet
 * (Status before and after agree); every line passes the strict parser. */
START_TEST(test_numbers_match_status_and_info)
{
        static const char *const names[] = { "hello", "upper", "counter", "initfail", "serial" };
        static const struct {
                const char *status, *metric;
        } daemon_figs[] = {
                { "rejected", "plughost_rejected_files" },
                { "clients", "plughost_clients" },
                { "disconnected", "plughost_disconnected_total" },
                { "counters.calls", "plughost_calls_total" },
                { "counters.callsFailed", "plughost_calls_failed_total" },
                { "counters.callsInFlight", "plughost_calls_in_flight" },
                { "counters.loads", "plughost_loads_total" },
                { "counters.loadFailures", "plughost_load_failures_total" },
                { "counters.unloads", "plughost_unloads_total" },
        };
        static const struct {
                const char *info, *metric;
        } plugin_figs[] = {
                { "counters.calls", "plughost_plugin_calls_total" },
                { "counters.callsFailed", "plughost_plugin_calls_failed_total" },
                { "counters.callsInFlight", "plughost_plugin_calls_in_flight" },
                { "counters.loads", "plughost_plugin_loads_total" },
                { "counters.loadFailures", "plughost_plugin_load_failures_total" },
                { "counters.unloads", "plughost_plugin_unloads_total" },
        };
        static mx m;
        json_t *before, *after;
        char *text;
        double sum_states = 0;

        du_start(&D);
        make_traffic();
        before = status_quiet();
        text = ctl_out("metrics");
        after = ctl_json("--json status");
        mx_parse(&m, text);
        /* Nothing moved meanwhile. */
        json_object_del(after, "uptimeSeconds");
        ck_assert_msg(json_equal(before, after), "the daemon was not quiet");

        for (size_t i = 0; i < sizeof(daemon_figs) / sizeof(daemon_figs[0]); i++)
                ck_assert_msg(mx_get(&m, daemon_figs[i].metric, NULL) == (double)du_int(after, daemon_figs[i].status),
                              "%s is %g, Status's %s %lld", daemon_figs[i].metric,
                              mx_get(&m, daemon_figs[i].metric, NULL), daemon_figs[i].status,
                              du_int(after, daemon_figs[i].status));
        ck_assert(mx_get(&m, "plughost_buffered_bytes", NULL) > 0);
        ck_assert(mx_get(&m, "plughost_calls_total", NULL) == 8);
        ck_assert(mx_get(&m, "plughost_calls_failed_total", NULL) == 1);
        ck_assert(mx_get(&m, "plughost_load_failures_total", NULL) == 1);
        ck_assert(mx_get(&m, "plughost_unloads_total", NULL) == 1);
        ck_assert_str_eq(du_str(after, "version"), "0.1.0");
        ck_assert(mx_get(&m, "plughost_info", labels1("version", du_str(after, "version"))) == 1);
        ck_assert(mx_get(&m, "plughost_plugin_directory_info", labels1("directory", D.plugins)) == 1);
        /* Plugins by state add up to Status's plugins; loaded is its loaded. */
        for (const char *const *s = (const char *const[]){ "discovered", "loading", "loaded", "failed",
                                                             "quarantined", NULL }; *s; s++)
                sum_states += mx_get(&m, "plughost_plugins", labels1("state", *s));
        ck_assert(sum_states == (double)du_int(after, "plugins"));
        ck_assert(mx_get(&m, "plughost_plugins", "state=loaded") == (double)du_int(after, "loaded"));
        ck_assert(mx_get(&m, "plughost_plugins", "state=failed") == 1);
        /* The histogram counts every call. */
        ck_assert(mx_get(&m, "plughost_call_duration_seconds_count", NULL) == (double)du_int(after, "counters.calls"));
        ck_assert(mx_get(&m, "plughost_call_duration_seconds_bucket", "le=+Inf") == 8);
        ck_assert(mx_get(&m, "plughost_call_duration_seconds_bucket", "le=10") == 8);
        ck_assert(mx_get(&m, "plughost_call_duration_seconds_sum", NULL) > 0);
        ck_assert(mx_get(&m, "plughost_call_duration_seconds_sum", NULL) < 8 * 10.0);

        /* Per plugin: Info's counters and state; a plugin never loaded
         * with every counter 0 (serial) has no samples. */
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                char args[128], lab[4400];
                json_t *info;

                snprintf(args, sizeof(args), "--json info %s", names[i]);
                info = ctl_json(args);
                if (strcmp(names[i], "serial") == 0) {
                        ck_assert(!mx_has(&m, "plughost_plugin_calls_total", "plugin=serial"));
                        ck_assert_str_eq(du_str(info, "plugin.state"), "discovered");
                        json_decref(info);
                        continue;
                }
                for (size_t j = 0; j < sizeof(plugin_figs) / sizeof(plugin_figs[0]); j++)
                        ck_assert_msg(mx_get(&m, plugin_figs[j].metric, labels1("plugin", names[i])) ==
                                              (double)du_int(info, plugin_figs[j].info),
                                      "%s{plugin=%s} is not Info's %s", plugin_figs[j].metric, names[i],
                                      plugin_figs[j].info);
                snprintf(lab, sizeof(lab), "plugin=%s\x1fversion=%s\x1fstate=%s\x1f" "file=%s", names[i],
                         du_str(info, "plugin.version"), du_str(info, "plugin.state"), du_str(info, "plugin.file"));
                ck_assert_msg(mx_get(&m, "plughost_plugin_info", lab) == 1, "no plugin_info %s", lab);
                json_decref(info);
        }
        ck_assert(mx_get(&m, "plughost_plugins_omitted", NULL) == 0);
        mx_free(&m);
        json_decref(before);
        json_decref(after);
        free(text);
}
END_TEST

/* The Metrics reply itself: one moment, the same figures as Status. */
START_TEST(test_metrics_reply_is_status_and_more)
{
        json_t *st, *mt, *p;
        long long prev = 0;

        du_start(&D);
        make_traffic();
        json_decref(status_quiet());
        st = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
        mt = du_request(&D, "{\"method\":\"io.plughost.Metrics\"}");
        ck_assert_ptr_null(du_error(mt));
        /* Every member of Status, with Status's value. */
        {
                const char *key;
                json_t *v;

                json_object_foreach(du_params(st), key, v) {
                        if (strcmp(key, "uptimeSeconds") == 0)
                                continue;
                        ck_assert_msg(json_equal(v, json_object_get(du_params(mt), key)), "Metrics' %s differs", key);
                }
        }
        p = json_object_get(du_params(mt), "latency");
        ck_assert_int_eq(json_array_size(json_object_get(p, "le")), 16);
        ck_assert(json_real_value(json_array_get(json_object_get(p, "le"), 0)) == 0.0001);
        ck_assert(json_real_value(json_array_get(json_object_get(p, "le"), 15)) == 10.0);
        for (size_t i = 0; i < 16; i++) {
                long long b = json_integer_value(json_array_get(json_object_get(p, "buckets"), i));

                ck_assert_int_ge(b, prev);
                prev = b;
        }
        ck_assert_int_le(prev, du_int(p, "count"));
        ck_assert_int_eq(du_int(p, "count"), 8);
        ck_assert_int_eq(du_int(du_params(mt), "states.discovered"), 2);      /* counter, serial */
        ck_assert_int_eq(du_int(du_params(mt), "states.loaded"), 2);
        ck_assert_int_eq(du_int(du_params(mt), "states.failed"), 1);
        ck_assert_int_eq(json_array_size(json_object_get(du_params(mt), "pluginCounters")), 4);
        ck_assert_int_eq(du_int(du_params(mt), "pluginsOmitted"), 0);
        ck_assert_int_eq(du_int(du_params(mt), "workerRestarts"), 0);
        json_decref(st);
        json_decref(mt);
}
END_TEST

/* promtool check metrics accepts the text (promtool's own parser and
 * lint: _total counters, snake_case, HELP on every family). */
START_TEST(test_promtool_check)
{
        char *path, *out;
        int r;

        ck_assert_msg(sh(NULL, "command -v promtool >/dev/null") == 0,
                      "promtool is not installed and PH_REQUIRE_PROMTOOL=1 (apt-get install prometheus)");
        du_start(&D);
        make_traffic();
        path = tu_path(D.dir, "m.prom");
        ck_assert_int_eq(sh(NULL, "%s --socket %s metrics --output %s", ctl, D.socket, path), 0);
        r = sh(&out, "promtool check metrics < %s 2>&1", path);
        ck_assert_msg(r == 0, "promtool check metrics (exit %d): %s", r, out);
        free(out);
        free(path);
}
END_TEST

/* A file name with ", \ and a newline: escaped in the label, and read
 * back as the very path. */
START_TEST(test_label_escaping)
{
        static const char fname[] = "we\"ird\\na\nme.so";
        static mx m;
        char *path = tu_path(D.plugins, fname), *text, *out, *file = NULL;

        char *plain = tu_path(D.plugins, "hello.so");

        /* The only file claiming hello (hello.so would win the tie). */
        du_add_plugin(&D, tu_example("hello.so"), fname);
        ck_assert_int_eq(unlink(plain), 0);
        free(plain);
        du_start(&D);
        call_ok("{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        text = ctl_out("metrics");
        mx_parse(&m, text);
        for (size_t i = 0; i < m.n; i++)
                if (strcmp(m.s[i].name, "plughost_plugin_info") == 0 && strstr(m.s[i].labels, "plugin=hello\x1f"))
                        file = strstr(m.s[i].labels, "file=") + 5;
        ck_assert_ptr_nonnull(file);
        ck_assert_str_eq(file, path);
        /* Written escaped: one line, no raw quote inside the value. */
        ck_assert_ptr_nonnull(strstr(text, "we\\\"ird\\\\na\\nme.so\""));
        if (sh(NULL, "command -v promtool >/dev/null") == 0) {
                char *f = tu_path(D.dir, "m.prom");

                tu_write_file(f, text, strlen(text));
                ck_assert_msg(sh(&out, "promtool check metrics < %s 2>&1", f) == 0, "promtool: %s", out);
                free(out);
                free(f);
        }
        mx_free(&m);
        free(text);
        free(path);
}
END_TEST

/* A file name with an OSC sequence (ESC ] 0 ; X BEL), a CR and a C1 CSI:
 * on a terminal (a pty, through script(1)) none of them reaches it raw,
 * each is shown as \xHH or \u00HH; through a pipe the bytes are exact. */
START_TEST(test_label_terminal)
{
        static const char fname[] = "t\x1b]0;X\x07\r\xc2\x9bm.so";
        char *plain = tu_path(D.plugins, "hello.so"), *out;

        du_add_plugin(&D, tu_example("hello.so"), fname);
        ck_assert_int_eq(unlink(plain), 0);
        free(plain);
        du_start(&D);
        call_ok("{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_int_eq(sh(&out, "command -v script >/dev/null"), 0);
        free(out);
        ck_assert_int_eq(sh(&out, "timeout 20 script -qec '%s --socket %s metrics' /dev/null </dev/null", ctl,
                            D.socket), 0);
        ck_assert_msg(strstr(out, "plughost_plugin_info{"), "no metrics through the pty: %s", out);
        ck_assert_msg(!strchr(out, '\x1b') && !strchr(out, '\x07') && !strstr(out, "\xc2\x9b"),
                      "a control character reached the terminal raw");
        ck_assert_msg(strstr(out, "t\\x1b]0;X\\x07\\x0d\\u009bm.so\""), "not escaped as documented: %s", out);
        free(out);
        out = ctl_out("metrics");
        ck_assert_ptr_nonnull(strstr(out, "t\x1b]0;X\x07\r\xc2\x9bm.so\""));
        free(out);
}
END_TEST

/* One directory configured twice and two whose names are not UTF-8
 * (the daemon says "?" for each): one plugin_directory_info series each,
 * never the same series twice (the strict parser rejects duplicates, as
 * a Prometheus scrape does). */
START_TEST(test_directory_duplicates)
{
        static mx m;
        char *a = tu_path(D.dir, "\xff"), *b = tu_path(D.dir, "\xfe"), *conf, *text, *q;
        size_t n = 0;

        ck_assert_int_eq(mkdir(a, 0755), 0);
        ck_assert_int_eq(mkdir(b, 0755), 0);
        ck_assert_int_ge(asprintf(&conf, "[Daemon]\nPluginDirectory=%s\nPluginDirectory=%s\n"
                                         "PluginDirectory=%s\nPluginDirectory=%s\n",
                                  D.plugins, D.plugins, a, b), 0);
        du_write_config(&D, conf);
        D.dirs_from_config = true;
        du_start(&D);
        text = ctl_out("metrics");
        mx_parse(&m, text);
        ck_assert(mx_has(&m, "plughost_plugin_directory_info", labels1("directory", D.plugins)));
        ck_assert_int_ge(asprintf(&q, "%s/?", D.dir), 0);
        ck_assert(mx_has(&m, "plughost_plugin_directory_info", labels1("directory", q)));
        for (size_t i = 0; i < m.n; i++)
                n += strcmp(m.s[i].name, "plughost_plugin_directory_info") == 0;
        ck_assert_int_eq(n, 2);
        mx_free(&m);
        free(q);
        free(text);
        free(conf);
        free(b);
        free(a);
}
END_TEST

static bool exists(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0;
}

/* --output replaces FILE by a rename: a reader holding the old file still
 * reads the old whole text, the new one is another inode, whole, and no
 * temporary file is left. */
START_TEST(test_output_atomic)
{
        char *path, *tmp, *text, oldbuf[64];
        struct stat a, b;
        size_t n;
        int fd;
        static mx m;

        du_start(&D);
        path = tu_path(D.dir, "plughost.prom");
        ck_assert_int_ge(asprintf(&tmp, "%s.tmp", path), 0);
        tu_write_file(path, "old whole content\n", 18);
        fd = open(path, O_RDONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &a), 0);
        ck_assert_int_eq(sh(NULL, "%s --socket %s metrics --output %s", ctl, D.socket, path), 0);
        ck_assert_int_eq(pread(fd, oldbuf, sizeof(oldbuf), 0), 18);
        ck_assert_int_eq(memcmp(oldbuf, "old whole content\n", 18), 0);
        close(fd);
        ck_assert_int_eq(stat(path, &b), 0);
        ck_assert_msg(a.st_ino != b.st_ino, "FILE was written in place, not renamed over");
        ck_assert_int_eq(b.st_mode & 0777, 0644);
        ck_assert(!exists(tmp));
        text = (char *)tu_read_file(path, &n);
        text = realloc(text, n + 1);
        text[n] = '\0';
        mx_parse(&m, text);
        ck_assert(mx_get(&m, "plughost_clients", NULL) == 1);
        mx_free(&m);
        free(text);
        free(tmp);
        free(path);
}
END_TEST

/* Failures leave FILE as it was, no temporary file, a message and exit 1: a
 * file size limit (a full disk to write()), a directory it may not
 * write, a daemon that does not answer. */
START_TEST(test_output_failures)
{
        char *path, *tmp, *ro, *rofile, *out, *got;
        size_t n;

        du_start(&D);
        path = tu_path(D.dir, "plughost.prom");
        ck_assert_int_ge(asprintf(&tmp, "%s.tmp", path), 0);
        tu_write_file(path, "old\n", 4);

        /* 1 KiB of file size: the text is longer. */
        ck_assert_int_eq(sh(&out, "ulimit -f 1; %s --socket %s metrics --output %s 2>&1", ctl, D.socket, path), 1);
        ck_assert_msg(strstr(out, "cannot write") && strstr(out, "File too large") && strstr(out, "left as it was"),
                      "%s", out);
        free(out);
        ck_assert(!exists(tmp));
        ck_assert_int_ne(sh(NULL, "ls -A %s | grep -q '^\\.plughost\\.prom\\.'", D.dir), 0);
        got = (char *)tu_read_file(path, &n);
        ck_assert(n == 4 && memcmp(got, "old\n", 4) == 0);
        free(got);

        /* A directory it may not write (root without its capabilities). */
        ro = tu_path(D.dir, "ro");
        ck_assert_int_eq(mkdir(ro, 0555), 0);
        ck_assert_int_eq(chmod(ro, 0555), 0);
        rofile = tu_path(ro, "plughost.prom");
        ck_assert_int_eq(sh(&out, "%s %s --socket %s metrics --output %s 2>&1",
                            geteuid() == 0 ? "setpriv --bounding-set=-all --inh-caps=-all" : "", ctl, D.socket,
                            rofile), 1);
        ck_assert_msg(strstr(out, "cannot create") && strstr(out, "Permission denied"), "%s", out);
        free(out);
        ck_assert(!exists(rofile));

        /* No daemon: nothing written at all. */
        ck_assert_int_eq(sh(&out, "%s --socket %s/nope metrics --output %s 2>&1", ctl, D.dir, path), 1);
        ck_assert_msg(strstr(out, "cannot connect"), "%s", out);
        free(out);
        ck_assert(!exists(tmp));
        got = (char *)tu_read_file(path, &n);
        ck_assert(n == 4 && memcmp(got, "old\n", 4) == 0);
        free(got);
        free(rofile);
        free(ro);
        free(tmp);
        free(path);
}
END_TEST

/* The names in dir other than those in keep (NULL-terminated), joined
 * by spaces; "" when there are none. */
static char *dir_extra(const char *dir, const char *const *keep)
{
        char *out;

        ck_assert_int_eq(sh(&out, "cd %s && ls -A | tr '\\n' ' '", dir), 0);
        for (size_t i = 0; keep[i]; i++) {
                char *at, *w;

                ck_assert_int_ge(asprintf(&w, "%s ", keep[i]), 0);
                at = strstr(out, w);
                ck_assert_msg(at, "%s is missing from %s (%s)", keep[i], dir, out);
                memmove(at, at + strlen(w), strlen(at + strlen(w)) + 1);
                free(w);
        }
        return out;
}

static void assert_whole(const char *path)
{
        static mx m;
        size_t n;
        char *text = (char *)tu_read_file(path, &n);

        text = realloc(text, n + 1);
        text[n] = '\0';
        mx_parse(&m, text);
        ck_assert(mx_has(&m, "plughost_clients", NULL));
        mx_free(&m);
        free(text);
}

/* The timer and an admin's run at once, many times over: every run
 * succeeds, FILE is always one whole text, and no temporary file of
 * either is left behind. */
START_TEST(test_output_concurrent)
{
        static const char *const keep[] = { "plughost.prom", NULL };
        char *dir, *path, *out;
        int r;

        du_start(&D);
        dir = tu_path(D.dir, "out");
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        path = tu_path(dir, "plughost.prom");
        for (int round = 0; round < 40; round++) {
                r = sh(&out, "%s --socket %s metrics --output %s 2>&1 & a=$!; "
                             "%s --socket %s metrics --output %s 2>&1; b=$?; wait $a; a=$?; "
                             "test $a = 0 && test $b = 0",
                       ctl, D.socket, path, ctl, D.socket, path);
                ck_assert_msg(r == 0, "round %d: a run failed: %s", round, out);
                free(out);
                assert_whole(path);
                out = dir_extra(dir, keep);
                ck_assert_msg(!*out, "round %d: left behind: %s", round, out);
                free(out);
        }
        free(path);
        free(dir);
}
END_TEST

/* What someone who may write the directory plants at the old FILE.tmp
 * and at names like ours (a FIFO, a link, a file of theirs kept by a
 * second link) is never opened, followed, reused or removed: the run
 * neither hangs nor fails, FILE is a new file of our own. */
START_TEST(test_output_planted)
{
        static const char *const kinds[] = { "fifo", "symlink", "file" };
        static const char *const names[] = { "plughost.prom.tmp", ".plughost.prom.tmp", ".plughost.prom.XXXXXX",
                                             ".plughost.prom.000000" };

        du_start(&D);
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
                char *dir, *path, *target, *keepfile, *out, *got;
                const char *keep[8] = { "plughost.prom", "target", "kept", NULL };
                struct stat st, planted;
                size_t n, nk = 3;

                ck_assert_int_ge(asprintf(&dir, "%s/out-%s", D.dir, kinds[k]), 0);
                ck_assert_int_eq(mkdir(dir, 0755), 0);
                path = tu_path(dir, "plughost.prom");
                target = tu_path(dir, "target");
                keepfile = tu_path(dir, "kept");
                tu_write_file(target, "target\n", 7);
                tu_write_file(keepfile, "planted\n", 8);
                ck_assert_int_eq(lstat(keepfile, &planted), 0);
                for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                        char *p = tu_path(dir, names[i]);

                        if (strcmp(kinds[k], "fifo") == 0)
                                ck_assert_int_eq(mkfifo(p, 0666), 0);
                        else if (strcmp(kinds[k], "symlink") == 0)
                                ck_assert_int_eq(symlink(target, p), 0);
                        else
                                ck_assert_int_eq(link(keepfile, p), 0);
                        keep[nk++] = names[i];
                        free(p);
                }
                /* timeout: an open that waits for a FIFO's reader fails the test, not hangs it. */
                ck_assert_int_eq(sh(&out, "timeout 10 %s --socket %s metrics --output %s 2>&1; echo \"exit $?\"",
                                    ctl, D.socket, path), 0);
                ck_assert_msg(strcmp(out, "exit 0\n") == 0, "%s: %s", kinds[k], out);
                free(out);
                assert_whole(path);
                ck_assert_int_eq(lstat(path, &st), 0);
                ck_assert_msg(S_ISREG(st.st_mode) && st.st_ino != planted.st_ino && st.st_uid == geteuid() &&
                              (st.st_mode & 0777) == 0644, "%s: FILE is not a new file of ours", kinds[k]);
                got = (char *)tu_read_file(target, &n);
                ck_assert(n == 7 && memcmp(got, "target\n", 7) == 0);
                free(got);
                got = (char *)tu_read_file(keepfile, &n);
                ck_assert(n == 8 && memcmp(got, "planted\n", 8) == 0);
                free(got);
                for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                        char *p = tu_path(dir, names[i]);

                        ck_assert_msg(exists(p), "%s: the planted %s was removed", kinds[k], names[i]);
                        free(p);
                }
                out = dir_extra(dir, keep);
                ck_assert_msg(!*out, "%s: left behind: %s", kinds[k], out);
                free(out);
                free(keepfile);
                free(target);
                free(path);
                free(dir);
        }
}
END_TEST

/* An isolated plugin whose worker crashed once and was started again:
 * the daemon-wide totals and the plugin's own figures are Info's. */
START_TEST(test_worker_counts)
{
        static mx m;
        char *conf, *text;
        json_t *r, *info;

        ck_assert_int_ge(asprintf(&conf, "[Daemon]\nWorkerPath=%s/plughost-worker\n"
                                         "[Plugin fault]\nIsolation=process\n", getenv("PH_BUILDDIR")), 0);
        du_write_config(&D, conf);
        free(conf);
        du_add_plugin(&D, tu_fixture("fault-v1.so"), "fault.so");
        du_start(&D);
        call_ok("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\",\"method\":\"Count\"}}");
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\",\"method\":\"Segv\"}}");
        ck_assert_str_eq(du_error(r), "io.plughost.PluginCrashed");
        json_decref(r);
        /* The next call starts the worker again (after its backoff). */
        for (int i = 0; i < 50; i++) {
                r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\",\"method\":\"Count\"}}");
                if (!du_error(r)) {
                        json_decref(r);
                        break;
                }
                json_decref(r);
                usleep(100000);
        }
        call_ok("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\",\"method\":\"Hello\"}}");
        json_decref(status_quiet());
        info = ctl_json("--json info fault");
        text = ctl_out("metrics");
        mx_parse(&m, text);
        ck_assert_int_ge(du_int(info, "plugin.worker.restarts"), 1);
        ck_assert_int_eq(du_int(info, "plugin.worker.faults"), 1);
        ck_assert(mx_get(&m, "plughost_plugin_worker_restarts", "plugin=fault") ==
                  (double)du_int(info, "plugin.worker.restarts"));
        ck_assert(mx_get(&m, "plughost_plugin_worker_faults", "plugin=fault") == 1);
        ck_assert(mx_get(&m, "plughost_worker_restarts_total", NULL) == (double)du_int(info, "plugin.worker.restarts"));
        ck_assert(mx_get(&m, "plughost_worker_faults_total", NULL) == 1);
        /* In-process plugins have no worker figures. */
        ck_assert(mx_has(&m, "plughost_plugin_calls_total", "plugin=hello"));
        ck_assert(!mx_has(&m, "plughost_plugin_worker_restarts", "plugin=hello"));
        mx_free(&m);
        free(text);
        json_decref(info);
}
END_TEST

/* 2,500 plugins with counters: more than half a message of them. The
 * list stops there and pluginsOmitted counts the rest, the reply stays
 * under the cap, and a reply that long is given again for a second. */
#define SCALE_N 2500
/* n copies of hello.so named h0000.so..., each with its name (h0000...)
 * patched into its note. */
static void write_copies(int count)
{
        unsigned char *img;
        size_t n, at = 0;

        img = tu_read_file(tu_example("hello.so"), &n);
        for (size_t i = 0; i + 14 <= n; i++)
                if (memcmp(img + i, "\"name\":\"hello\"", 14) == 0) {
                        ck_assert_msg(!at, "the name is in hello.so twice");
                        at = i + 8;
                }
        ck_assert(at);
        for (int i = 0; i < count; i++) {
                char name[16], *path;

                snprintf(name, sizeof(name), "h%04d", i);
                memcpy(img + at, name, 5);
                strcat(name, ".so");
                path = tu_path(D.plugins, name);
                tu_write_file(path, img, n);
                chmod(path, 0755);
                free(path);
        }
        free(img);
}

/* Calls each of the count copies once, 100 at a time on one connection. */
static void call_copies(int count)
{
        du_conn *conn = du_connect(&D);

        for (int base = 0; base < count; base += 100) {
                int end = base + 100 < count ? base + 100 : count;

                for (int i = base; i < end; i++) {
                        char req[160];

                        snprintf(req, sizeof(req), "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                                   "{\"name\":\"h%04d\",\"method\":\"Hello\"}}", i);
                        du_send(conn, req);
                }
                for (int i = base; i < end; i++) {
                        json_t *r = du_recv(conn);

                        ck_assert_msg(r && !du_error(r), "call %d: %s", i, r ? du_error(r) : "closed");
                        json_decref(r);
                }
        }
        du_close(conn);
}

/* Metrics asked twice within a second, then after it, around one call:
 * the second reply is the first one again, the third counts the call. */
static void assert_reused(long long calls)
{
        json_t *b, *c;

        call_ok("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"h0000\",\"method\":\"Hello\"}}");
        b = du_request(&D, "{\"method\":\"io.plughost.Metrics\"}");
        usleep(1100000);
        c = du_request(&D, "{\"method\":\"io.plughost.Metrics\"}");
        ck_assert_int_eq(du_int(du_params(b), "counters.calls"), calls);
        ck_assert_int_eq(du_int(du_params(c), "counters.calls"), calls + 1);
        json_decref(b);
        json_decref(c);
}

START_TEST(test_list_bounded_and_reused)
{
        size_t listed, omitted;
        json_t *a;

        write_copies(SCALE_N);
        du_start(&D);
        call_copies(SCALE_N);
        a = du_request(&D, "{\"method\":\"io.plughost.Metrics\"}");
        ck_assert_ptr_null(du_error(a));
        listed = json_array_size(json_object_get(du_params(a), "pluginCounters"));
        omitted = (size_t)du_int(du_params(a), "pluginsOmitted");
        ck_assert_int_eq(listed + omitted, SCALE_N);
        ck_assert_msg(omitted > 0 && listed > 1000, "listed %zu, omitted %zu", listed, omitted);
        ck_assert_int_eq(du_int(du_params(a), "states.loaded"), SCALE_N);
        {
                char *text = json_dumps(a, JSON_COMPACT);

                ck_assert_msg(strlen(text) < 1024 * 1024 && strlen(text) > 512 * 1024, "%zu bytes", strlen(text));
                free(text);
        }
        assert_reused(du_int(du_params(a), "counters.calls"));
        json_decref(a);
}
END_TEST

/* With the smallest MaxBufferPerConnection= (64K), one Metrics of 600
 * plugins with counters (some 130 KB in full) is cut to fit the
 * connection's budget instead of disconnecting the client. */
START_TEST(test_list_fits_small_buffer)
{
        size_t listed, omitted;
        char *out;
        json_t *a;

        du_write_config(&D, "[Daemon]\nMaxBufferPerConnection=64K\n");
        write_copies(600);
        du_start(&D);
        call_copies(600);
        a = du_request(&D, "{\"method\":\"io.plughost.Metrics\"}");
        ck_assert_msg(!du_error(a), "Metrics: %s", du_error(a));
        listed = json_array_size(json_object_get(du_params(a), "pluginCounters"));
        omitted = (size_t)du_int(du_params(a), "pluginsOmitted");
        ck_assert_int_eq(listed + omitted, 600);
        ck_assert_msg(omitted > 0 && listed > 50, "listed %zu, omitted %zu", listed, omitted);
        json_decref(a);
        ck_assert_int_eq(sh(&out, "'%s' --socket '%s' metrics", ctl, D.socket), 0);
        ck_assert_msg(strstr(out, "plughost_plugins_omitted"), "%.300s", out);
        free(out);
}
END_TEST

/* 10,000 plugins, none with counters: a short reply, but a walk of every
 * plugin, which is kept for a second too. */
START_TEST(test_walk_reused)
{
        json_t *a;

        write_copies(10000);
        du_start(&D);
        a = du_request(&D, "{\"method\":\"io.plughost.Metrics\"}");
        ck_assert_ptr_null(du_error(a));
        ck_assert_int_eq(du_int(du_params(a), "states.discovered"), 10000 + 5);
        assert_reused(du_int(du_params(a), "counters.calls"));
        json_decref(a);
}
END_TEST

/* The timer and its service as make install writes them verify clean,
 * the service is hardened as the main unit is, and it runs metrics
 * --output into node_exporter's directory. */
START_TEST(test_units_verify)
{
        const char *b = getenv("PH_BUILDDIR"), *s = getenv("PH_SRCDIR");
        char *out;
        int r;

        ck_assert_ptr_nonnull(s);
        r = sh(&out, "set -e; cd %s; mkdir -p man/man1 units; cp %s/docs/man/plughostctl.1 man/man1/; "
                     "sed 's|^ExecStart=[^ ]*|ExecStart=%s/plughostctl|' %s/systemd/plughost-metrics.service "
                     "> units/plughost-metrics.service; cp %s/systemd/plughost-metrics.timer units/; "
                     "cd units; MANPATH=%s/man systemd-analyze verify plughost-metrics.service "
                     "plughost-metrics.timer 2>&1",
               D.dir, s, b, b, s, D.dir);
        ck_assert_msg(r == 0 && out[0] == '\0', "systemd-analyze verify (exit %d) said: %s", r, out);
        free(out);
        r = sh(&out, "grep -x 'ExecStart=.*/plughostctl metrics --output /var/lib/prometheus/node-exporter/plughost.prom' "
                     "%s/systemd/plughost-metrics.service && grep -x 'Type=oneshot' %s/systemd/plughost-metrics.service && "
                     "grep -x 'OnUnitActiveSec=15s' %s/systemd/plughost-metrics.timer", b, b, s);
        ck_assert_msg(r == 0, "the units do not run metrics --output every 15 s: %s", out);
        free(out);
        r = sh(&out, "systemd-analyze security --offline=yes %s/systemd/plughost-metrics.service 2>&1 "
                     "| sed -n 's/.*Overall exposure level for [^:]*: \\([0-9.]*\\).*/\\1/p'", b);
        ck_assert_int_eq(r, 0);
        ck_assert_msg(*out && strtod(out, NULL) <= 2.0, "exposure '%s'", out);
        free(out);
}
END_TEST

/* debian/plughostd.postrm, its /var/lib moved under the test directory:
 * purge removes the file the timer writes and nothing else of
 * node_exporter's, remove leaves it, and purge without it succeeds. */
START_TEST(test_postrm_purge)
{
        const char *s = getenv("PH_SRCDIR");
        char *out;
        int r;

        ck_assert_ptr_nonnull(s);
        r = sh(&out, "set -e; cd %s; r=$PWD/root; ne=$r/var/lib/prometheus/node-exporter; mkdir -p $ne; "
                     "sed \"s|/var/lib/|$r/var/lib/|g\" %s/debian/plughostd.postrm > postrm; "
                     "echo x > $ne/plughost.prom; echo y > $ne/other.prom; "
                     "sh postrm remove; test -f $ne/plughost.prom || { echo 'remove removed it'; exit 1; }; "
                     "sh postrm purge; test ! -e $ne/plughost.prom || { echo 'purge left it'; exit 1; }; "
                     "test -f $ne/other.prom || { echo 'purge removed other.prom'; exit 1; }; "
                     "sh postrm purge || { echo 'purge without the file failed'; exit 1; } 2>&1",
               D.dir, s);
        ck_assert_msg(r == 0, "postrm (exit %d): %s", r, out);
        free(out);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("metrics");
        TCase *tc = tcase_create("metrics");
        const char *req = getenv("PH_REQUIRE_PROMTOOL");
        bool required = req && strcmp(req, "1") == 0;
        bool have = system("command -v promtool >/dev/null 2>&1") == 0;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_numbers_match_status_and_info);
        tcase_add_test(tc, test_metrics_reply_is_status_and_more);
        if (have || required)
                tcase_add_test(tc, test_promtool_check);
        tcase_add_test(tc, test_label_escaping);
        tcase_add_test(tc, test_label_terminal);
        tcase_add_test(tc, test_directory_duplicates);
        tcase_add_test(tc, test_output_atomic);
        tcase_add_test(tc, test_output_failures);
        tcase_add_test(tc, test_output_concurrent);
        tcase_add_test(tc, test_output_planted);
        tcase_add_test(tc, test_worker_counts);
        tcase_add_test(tc, test_units_verify);
        tcase_add_test(tc, test_postrm_purge);
        suite_add_tcase(s, tc);
        /* Thousands of loads, slower under the sanitizers. */
        tc = tcase_create("scale");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, test_list_bounded_and_reused);
        tcase_add_test(tc, test_walk_reused);
        tcase_add_test(tc, test_list_fits_small_buffer);
        suite_add_tcase(s, tc);
        failed = tu_run_suite(s);
        if (failed)
                return EXIT_FAILURE;
        if (!have) {
                printf("SKIP: promtool check metrics not run: promtool is not installed "
                       "(apt-get install prometheus; PH_REQUIRE_PROMTOOL=1 makes this a failure)\n");
                return 77;
        }
        return EXIT_SUCCESS;
}
