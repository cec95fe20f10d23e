/* plughostctl metrics: the daemon's Metrics reply in Prometheus's text
 * exposition format (0.0.4), on stdout or, with --output FILE, written to
 * a new temporary file of its own beside FILE, synced and renamed over
 * FILE, so that a reader (node_exporter's textfile collector) sees the old
 * file or the new one, whole. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

/* Every name starts with this. */
#define METRICS_PREFIX "plughost_"

/* Set when the text goes to a terminal: label values then also have
 * their other control characters escaped (see label_value). */
static bool to_terminal;

/* A label value as the format wants it: \, " and newline escaped. On a
 * terminal also the other C0 controls and DEL as \xHH and the C1 controls
 * (U+0080..U+009F) as \u00HH, the forms of ctl_escape(), so a plugin's
 * file name cannot drive the terminal; a \ of the value itself is \\,
 * so the two never read alike. Files and pipes get the exact bytes. */
static void label_value(FILE *out, const char *s)
{
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;

                if (c == '\\')
                        fputs("\\\\", out);
                else if (c == '"')
                        fputs("\\\"", out);
                else if (c == '\n')
                        fputs("\\n", out);
                else if (to_terminal && (c < 0x20 || c == 0x7f))
                        fprintf(out, "\\x%02x", c);
                else if (to_terminal && c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f)
                        fprintf(out, "\\u%04x", (unsigned char)*++s);
                else
                        fputc(c, out);
        }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
        fprintf(out, "# HELP " METRICS_PREFIX "%s %s\n# TYPE " METRICS_PREFIX "%s %s\n", name, help,
                name, type);
}

/* One sample without labels. */
static void sample(FILE *out, const char *name, long long v)
{
        fprintf(out, METRICS_PREFIX "%s %lld\n", name, v);
}

/* One sample with one label. */
static void sample1(FILE *out, const char *name, const char *label, const char *value, long long v)
{
        fprintf(out, METRICS_PREFIX "%s{%s=\"", name, label);
        label_value(out, value);
        fprintf(out, "\"} %lld\n", v);
}

/* The reply's members, checked for their type before anything is
 * written: a reply of the wrong shape writes nothing. */
typedef struct metrics_reply {
        json_t *root, *counters, *dirs, *latency, *le, *buckets, *plugins, *states;
} metrics_reply;

static int reply_int(json_t *obj, const char *key, long long *ret)
{
        json_t *v = json_object_get(obj, key);

        if (!json_is_integer(v))
                return ctl_fail("plughostctl.BadReply", NULL, "malformed reply: '%s' is not an integer",
                                key), -EBADMSG;
        *ret = json_integer_value(v);
        return 0;
}

static long long get_int(json_t *obj, const char *key)
{
        return json_integer_value(json_object_get(obj, key));
}

static const char *const status_ints[] = {
        "uptimeSeconds", "plugins", "loaded", "rejected", "clients", "bufferedBytes",
        "disconnected", "workerRestarts", "workerFaults", "pluginsOmitted", NULL,
};
static const char *const counter_ints[] = {
        "calls", "callsFailed", "callsInFlight", "loads", "loadFailures", "unloads", NULL,
};
static const char *const state_names[] = {
        "discovered", "loading", "loaded", "failed", "quarantined", NULL,
};

static int check_ints(json_t *obj, const char *const *keys)
{
        long long v;

        for (size_t i = 0; keys[i]; i++)
                if (reply_int(obj, keys[i], &v) < 0)
                        return -EBADMSG;
        return 0;
}

static int reply_check(json_t *root, metrics_reply *m)
{
        size_t i;
        json_t *p;

        m->root = root;
        m->counters = json_object_get(root, "counters");
        m->dirs = json_object_get(root, "pluginDirectories");
        m->latency = json_object_get(root, "latency");
        m->le = json_object_get(m->latency, "le");
        m->buckets = json_object_get(m->latency, "buckets");
        m->plugins = json_object_get(root, "pluginCounters");
        m->states = json_object_get(root, "states");
        if (!json_is_string(json_object_get(root, "version")) || !json_is_object(m->counters) ||
            !json_is_array(m->dirs) || !json_is_array(m->le) || !json_is_array(m->buckets) ||
            json_array_size(m->le) != json_array_size(m->buckets) || !json_is_array(m->plugins) ||
            !json_is_object(m->states))
                return ctl_fail("plughostctl.BadReply", NULL, "malformed Metrics reply"), -EBADMSG;
        if (check_ints(root, status_ints) < 0 || check_ints(m->counters, counter_ints) < 0 ||
            check_ints(m->states, state_names) < 0 || check_ints(m->latency, (const char *const[]){
                    "count", "sumNanoseconds", NULL }) < 0)
                return -EBADMSG;
        for (i = 0; i < json_array_size(m->le); i++)
                if (!json_is_number(json_array_get(m->le, i)) || !json_is_integer(json_array_get(m->buckets, i)))
                        return ctl_fail("plughostctl.BadReply", NULL, "malformed latency buckets"), -EBADMSG;
        for (i = 0; i < json_array_size(m->dirs); i++)
                if (!json_is_string(json_array_get(m->dirs, i)))
                        return ctl_fail("plughostctl.BadReply", NULL, "malformed pluginDirectories"), -EBADMSG;
        json_array_foreach(m->plugins, i, p) {
                if (!json_is_string(json_object_get(p, "name")) || !json_is_string(json_object_get(p, "state")) ||
                    !json_is_string(json_object_get(p, "file")) || check_ints(p, counter_ints) < 0)
                        return ctl_fail("plughostctl.BadReply", NULL, "malformed plugin in pluginCounters"),
                               -EBADMSG;
        }
        return 0;
}

/* Whether dirs[i] is one of the earlier ones: a directory configured
 * twice, or two names that are not UTF-8 (both "?"), would otherwise be
 * one series twice, which a Prometheus scrape rejects whole. label_value
 * maps distinct strings to distinct text, so equal strings are the only
 * equal labels. A few directories: the quadratic walk is fine. */
static bool dir_seen(json_t *dirs, size_t i)
{
        const char *d = json_string_value(json_array_get(dirs, i));

        for (size_t j = 0; j < i; j++)
                if (strcmp(json_string_value(json_array_get(dirs, j)), d) == 0)
                        return true;
        return false;
}

/* The daemon's own figures. */
static void write_daemon(FILE *out, const metrics_reply *m)
{
        json_t *root = m->root, *k = m->counters;
        size_t i;

        family(out, "info", "gauge", "plughostd's version, as a label; always 1.");
        sample1(out, "info", "version", json_string_value(json_object_get(root, "version")), 1);
        family(out, "uptime_seconds", "gauge", "Seconds since plughostd started.");
        sample(out, "uptime_seconds", get_int(root, "uptimeSeconds"));
        family(out, "plugin_directory_info", "gauge", "A configured plugin directory, as a label; always 1.");
        for (i = 0; i < json_array_size(m->dirs); i++)
                if (!dir_seen(m->dirs, i))
                        sample1(out, "plugin_directory_info", "directory",
                                json_string_value(json_array_get(m->dirs, i)), 1);
        family(out, "plugins", "gauge", "Plugins known (names), by state.");
        for (i = 0; state_names[i]; i++)
                sample1(out, "plugins", "state", state_names[i], get_int(m->states, state_names[i]));
        family(out, "rejected_files", "gauge", "Files in the plugin directories refused or shadowed.");
        sample(out, "rejected_files", get_int(root, "rejected"));
        family(out, "clients", "gauge", "Client connections open.");
        sample(out, "clients", get_int(root, "clients"));
        family(out, "buffered_bytes", "gauge", "Bytes held for all connections (what MaxBufferTotal= caps).");
        sample(out, "buffered_bytes", get_int(root, "bufferedBytes"));
        family(out, "disconnected_total", "counter", "Connections closed with io.plughost.Disconnected.");
        sample(out, "disconnected_total", get_int(root, "disconnected"));
        family(out, "calls_total", "counter", "Calls run on a plugin thread, failed ones included.");
        sample(out, "calls_total", get_int(k, "calls"));
        family(out, "calls_failed_total", "counter", "Calls that failed.");
        sample(out, "calls_failed_total", get_int(k, "callsFailed"));
        family(out, "calls_in_flight", "gauge", "Calls waiting for a plugin thread or running.");
        sample(out, "calls_in_flight", get_int(k, "callsInFlight"));
        family(out, "loads_total", "counter", "Loads that made an instance serve.");
        sample(out, "loads_total", get_int(k, "loads"));
        family(out, "load_failures_total", "counter", "Loads that failed.");
        sample(out, "load_failures_total", get_int(k, "loadFailures"));
        family(out, "unloads_total", "counter", "Instances that stopped serving.");
        sample(out, "unloads_total", get_int(k, "unloads"));
        family(out, "worker_restarts_total", "counter", "Worker processes of isolated plugins started again.");
        sample(out, "worker_restarts_total", get_int(root, "workerRestarts"));
        family(out, "worker_faults_total", "counter", "Faults of worker processes (crashes, exits, missed deadlines).");
        sample(out, "worker_faults_total", get_int(root, "workerFaults"));
}

static void write_latency(FILE *out, const metrics_reply *m)
{
        long long count = get_int(m->latency, "count"), sum = get_int(m->latency, "sumNanoseconds");

        family(out, "call_duration_seconds", "histogram",
               "Calls by the time from their submission to a plugin thread to their outcome.");
        for (size_t i = 0; i < json_array_size(m->le); i++)
                fprintf(out, METRICS_PREFIX "call_duration_seconds_bucket{le=\"%g\"} %" JSON_INTEGER_FORMAT "\n",
                        json_number_value(json_array_get(m->le, i)),
                        json_integer_value(json_array_get(m->buckets, i)));
        fprintf(out, METRICS_PREFIX "call_duration_seconds_bucket{le=\"+Inf\"} %lld\n", count);
        fprintf(out, METRICS_PREFIX "call_duration_seconds_sum %lld.%09lld\n", sum / 1000000000,
                sum % 1000000000);
        fprintf(out, METRICS_PREFIX "call_duration_seconds_count %lld\n", count);
}

/* The per-plugin families, each with every plugin's sample. */
static void write_plugins(FILE *out, const metrics_reply *m)
{
        static const struct {
                const char *key, *name, *type, *help;
        } per[] = {
                { "calls", "plugin_calls_total", "counter", "Calls of the plugin run on a plugin thread." },
                { "callsFailed", "plugin_calls_failed_total", "counter", "Calls of the plugin that failed." },
                { "callsInFlight", "plugin_calls_in_flight", "gauge", "Calls of the plugin waiting or running." },
                { "loads", "plugin_loads_total", "counter", "Loads of the plugin that made an instance serve." },
                { "loadFailures", "plugin_load_failures_total", "counter", "Loads of the plugin that failed." },
                { "unloads", "plugin_unloads_total", "counter", "Instances of the plugin that stopped serving." },
                { "workerRestarts", "plugin_worker_restarts", "gauge",
                  "Restarts of the serving generation's worker process (isolated plugins)." },
                { "workerFaults", "plugin_worker_faults", "gauge",
                  "Faults of the serving generation's worker process (isolated plugins)." },
        };
        size_t i;
        json_t *p;

        family(out, "plugin_info", "gauge", "A plugin with counters: version, state and file as labels; always 1.");
        json_array_foreach(m->plugins, i, p) {
                const char *version = json_string_value(json_object_get(p, "version"));

                fputs(METRICS_PREFIX "plugin_info{plugin=\"", out);
                label_value(out, json_string_value(json_object_get(p, "name")));
                fputs("\",version=\"", out);
                label_value(out, version ? version : "");
                fputs("\",state=\"", out);
                label_value(out, json_string_value(json_object_get(p, "state")));
                fputs("\",file=\"", out);
                label_value(out, json_string_value(json_object_get(p, "file")));
                fputs("\"} 1\n", out);
        }
        for (size_t f = 0; f < sizeof(per) / sizeof(per[0]); f++) {
                family(out, per[f].name, per[f].type, per[f].help);
                json_array_foreach(m->plugins, i, p) {
                        json_t *v = json_object_get(p, per[f].key);

                        if (json_is_integer(v))
                                sample1(out, per[f].name, "plugin", json_string_value(json_object_get(p, "name")),
                                        json_integer_value(v));
                }
        }
        family(out, "plugins_omitted", "gauge",
               "Plugins with counters left out of the per-plugin families (the reply's size cap).");
        sample(out, "plugins_omitted", get_int(m->root, "pluginsOmitted"));
}

/* The text, in a malloc'd buffer; -ENOMEM. */
static int render(json_t *params, bool json, char **ret, size_t *ret_len)
{
        metrics_reply m;
        FILE *out;
        int r = 0;

        if (!json && reply_check(params, &m) < 0)
                return -EBADMSG;
        out = open_memstream(ret, ret_len);
        if (!out)
                return -ENOMEM;
        if (json) {
                if (json_dumpf(params, out, JSON_INDENT(2) | JSON_ENSURE_ASCII) < 0)
                        r = -ENOMEM;
                fputc('\n', out);
        } else {
                write_daemon(out, &m);
                write_latency(out, &m);
                write_plugins(out, &m);
        }
        if (ferror(out))
                r = -ENOMEM;
        if (fclose(out) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0) {
                free(*ret);
                *ret = NULL;
        }
        return r;
}

static int write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Tries for a free temporary name before giving up: 62^6 names each. */
#define TMP_TRIES 100

/* Creates a new file named .BASE.XXXXXX in the directory dfd, the X's
 * random: O_EXCL, so two runs at once never share one and nothing planted
 * there (a FIFO, a link, someone else's file) is opened, followed or
 * reused. A leading dot and no .prom suffix keep node_exporter from
 * reading it. Returns the fd, its name in *ret_name (caller frees), or
 * -errno. */
static int tmp_create(int dfd, const char *base, char **ret_name)
{
        static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        unsigned char rnd[6];
        char *name;
        size_t n;
        int fd = -EEXIST;

        if (asprintf(&name, ".%s.XXXXXX", base) < 0)
                return -ENOMEM;
        n = strlen(name);
        for (int i = 0; i < TMP_TRIES && fd == -EEXIST; i++) {
                if (getentropy(rnd, sizeof(rnd)) < 0) {
                        fd = -errno;
                        break;
                }
                for (size_t j = 0; j < sizeof(rnd); j++)
                        name[n - sizeof(rnd) + j] = chars[rnd[j] % (sizeof(chars) - 1)];
                fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
                if (fd < 0)
                        fd = -errno;
        }
        if (fd < 0) {
                free(name);
                return fd;
        }
        *ret_name = name;
        return fd;
}

/* FILE's directory and last component: "." for a FILE without a slash. */
static int path_split(const char *path, char **ret_dir, const char **ret_base)
{
        const char *slash = strrchr(path, '/');
        char *dir;

        if (!slash)
                dir = strdup(".");
        else if (slash == path)
                dir = strdup("/");
        else
                dir = strndup(path, (size_t)(slash - path));
        if (!dir)
                return -ENOMEM;
        *ret_dir = dir;
        *ret_base = slash ? slash + 1 : path;
        return 0;
}

/* A temporary file of our own beside FILE, written, synced and renamed
 * over FILE; on any failure that file (and only it) is removed and FILE
 * stays as it was. Returns an exit code (the failure printed). */
static int output_atomic(const char *path, const char *text, size_t len)
{
        char *dir, *name = NULL, *shown = NULL;
        const char *base, *step = "create";
        int fd = -1, r, dfd;

        if (path_split(path, &dir, &base) < 0)
                return ctl_fail("plughostctl.Failed", NULL, "out of memory");
        if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
                free(dir);
                return ctl_usage_error("metrics: --output: '%s' does not name a file", path);
        }
        /* Every step below is relative to this one directory, whatever is
         * renamed or planted along the path meanwhile. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) {
                int e = errno;

                ctl_fail("plughostctl.OutputFailed", json_pack("{s:s, s:i}", "file", path, "errno", e),
                         "cannot open the directory %s: %s; %s is left as it was", dir, strerror(e), path);
                free(dir);
                return CTL_EXIT_FAILED;
        }
        r = fd = tmp_create(dfd, base, &name);
        if (r >= 0) {
                r = 0;
                /* Readable by node_exporter whatever the umask; nothing in
                 * it is secret from those who may read the directory. */
                if (fchmod(fd, 0644) < 0)
                        r = -errno, step = "set the mode of";
                if (r == 0 && (r = write_all(fd, text, len)) < 0)
                        step = "write";
                if (r == 0 && fsync(fd) < 0)
                        r = -errno, step = "sync";
                if (close(fd) < 0 && r == 0)
                        r = -errno, step = "write";
                if (r == 0 && renameat(dfd, name, dfd, base) < 0)
                        r = -errno, step = "rename";
                if (r < 0)
                        unlinkat(dfd, name, 0);
        }
        if (r < 0) {
                /* The name this run made, or the pattern it could not fill. */
                const char *sep = strcmp(dir, "/") == 0 ? "" : "/";

                if ((name ? asprintf(&shown, "%s%s%s", dir, sep, name) :
                            asprintf(&shown, "%s%s.%s.XXXXXX", dir, sep, base)) < 0)
                        shown = NULL;
                ctl_fail("plughostctl.OutputFailed", json_pack("{s:s, s:i}", "file", path, "errno", -r),
                         "cannot %s %s: %s; %s is left as it was", step, shown ? shown : "a temporary file",
                         strerror(-r), path);
                free(shown);
        } else {
                /* The rename itself to disk: best effort, the file is in place. */
                fsync(dfd);
        }
        close(dfd);
        free(name);
        free(dir);
        return r < 0 ? CTL_EXIT_FAILED : 0;
}

int ctl_metrics(const ctl_opts *opts, int argc, char **argv)
{
        json_t *reply;
        char *text = NULL;
        size_t len = 0;
        int r;

        (void)argv;
        if (argc != 0)
                return ctl_usage_error("metrics: expects no arguments (see 'plughostctl help metrics')");
        if (opts->output && !*opts->output)
                return ctl_usage_error("metrics: --output: the path is empty");
        if (ctl_client_call(opts, "io.plughost.Metrics", NULL, false, &reply) < 0)
                return CTL_EXIT_FAILED;
        /* The exact bytes into FILE and pipes, where Prometheus reads them. */
        to_terminal = !opts->output && isatty(STDOUT_FILENO);
        r = render(reply, opts->json, &text, &len);
        json_decref(reply);
        if (r == -ENOMEM)
                return ctl_fail("plughostctl.Failed", NULL, "out of memory");
        if (r < 0)
                return CTL_EXIT_FAILED;
        if (opts->output) {
                /* Over a file size limit, write() fails with EFBIG and the
                 * temporary file is removed, rather than a signal killing
                 * us and leaving it behind. */
                signal(SIGXFSZ, SIG_IGN);
                r = output_atomic(opts->output, text, len);
                free(text);
                return r;
        }
        r = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0;
        free(text);
        return r ? CTL_EXIT_OK : ctl_fail("plughostctl.Failed", NULL, "stdout: write failed");
}
