/* plughostd configuration. The file is INI (systemd style keys), parsed by
 * libinih; drop-ins in FILE.d/\*.conf are read in name order after it. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <errno.h>
#include <pwd.h>
#include <unistd.h>
#include <limits.h>
#include <stdarg.h>
#include <ini.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "plughost/plughost.h"
#include "log.h"
#include "suggest.h"
#include "timespan.h"
#include "vec.h"

/* A config file of more is refused: it is read whole before parsing. */
#define CONFIG_FILE_MAX (1u << 20)
/* Untrusted text quoted in a message: at most this many bytes of it. */
#define CONFIG_QUOTE_MAX 80

/* Where a piece of a plugin's Config= text came from, to point a JSON
 * error at its line. */
struct json_seg {
        size_t plugin;              /* index in cfg->plugins */
        size_t start;               /* offset of the piece in its config_json */
        char *file;
        int line;
};

struct config_parse {
        ph_config *cfg;
        const char *file;
        const char *text;           /* the file, read whole */
        size_t len, pos;
        int lineno;                 /* of the line inih has last read */
        const char *line;           /* that line, in text */
        bool indented;              /* that line starts with a blank */
        int header_line;            /* of the last section header */
        char key[64];               /* of the last key line: an indented line continues it */
        char section[256];          /* the last section a key was in */
        char *err;
        size_t err_size;
        bool dirs_seen;             /* the first PluginDirectory= drops the defaults */
        char why[256];              /* detail of an invalid value */
        int failed;                 /* the first error, reported in err */
        int fail_line;
        struct json_seg *segs;
        size_t n_segs, cap_segs;
};

/* s made safe to print: printable ASCII as is, anything else (control
 * characters, bytes of UTF-8 or not) as \xNN, cut at CONFIG_QUOTE_MAX. */
static const char *esc(const char *s, char *buf, size_t size)
{
        size_t o = 0, i;

        for (i = 0; s[i] && i < CONFIG_QUOTE_MAX && o + 5 < size; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c >= 0x20 && c < 0x7f && c != '\\')
                        buf[o++] = (char)c;
                else
                        o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        }
        if (s[i] && o + 4 < size)
                o += (size_t)snprintf(buf + o, size - o, "...");
        buf[o] = '\0';
        return buf;
}

/* Records the first error, at line: "file:line: text". Returns r. */
static int __attribute__((format(printf, 4, 5)))
config_fail(struct config_parse *p, int line, int r, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        if (p->failed)
                return r;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        p->failed = r;
        p->fail_line = line;
        snprintf(p->err, p->err_size, "%s:%d: %s", p->file, line, msg);
        return r;
}

static int strv_push(char ***v, size_t *n, size_t *cap, const char *s)
{
        char *copy = strdup(s);

        if (!copy || ph__vec_push((void **)v, n, cap, sizeof(char *), &copy) < 0) {
                free(copy);
                return -ENOMEM;
        }
        return 0;
}

static int set_string(char **dst, const char *value)
{
        char *copy = strdup(value);

        if (!copy)
                return -ENOMEM;
        free(*dst);
        *dst = copy;
        return 0;
}

static int parse_uint(const char *value, unsigned long max, unsigned long *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(value, &end, 0);
        if (errno || end == value || *end || value[0] == '-' || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Bytes, with an optional K, M or G (powers of 1024), in [min, max]. */
static int parse_size(const char *value, size_t min, size_t max, size_t *ret)
{
        unsigned long long v, mult = 1;
        char *end;

        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno || end == value || value[0] == '-')
                return -EINVAL;
        if (*end == 'K' || *end == 'k')
                mult = 1ull << 10;
        else if (*end == 'M')
                mult = 1ull << 20;
        else if (*end == 'G')
                mult = 1ull << 30;
        if (mult > 1)
                end++;
        if (*end || v > max / mult || v * mult < min)
                return -EINVAL;
        *ret = (size_t)(v * mult);
        return 0;
}

static ph_plugin_conf *plugin_conf(ph_config *cfg, const char *name)
{
        ph_plugin_conf pc = { 0 };

        for (size_t i = 0; i < cfg->n_plugins; i++)
                if (strcmp(cfg->plugins[i].name, name) == 0)
                        return &cfg->plugins[i];
        if (!(pc.name = strdup(name)) ||
            ph__vec_push((void **)&cfg->plugins, &cfg->n_plugins, &cfg->cap_plugins, sizeof(pc), &pc) < 0) {
                free(pc.name);
                return NULL;
        }
        return &cfg->plugins[cfg->n_plugins - 1];
}

/* Keys by section, for "did you mean"; the isolation keys are
 * isolation.c's (test-config checks every one here is known). */
#define ISOLATION_KEYS "Isolation", "User", "Group", "LimitAS", "LimitCPU", "LimitNOFILE", "LimitNPROC"
static const char *const daemon_keys[] = {
        "PluginDirectory", "WorkerPath", "Socket", "SocketMode", "SocketGroup", "StateDirectory",
        "LogLevel", "CallTimeoutSec", "Workers", "MaxConnections", "MaxConnectionsPerUser",
        "MaxMessageSize", "ReservedConnections", "MaxBufferPerConnection", "MaxBufferTotal",
        "MonitorBufferMax", "MessageTimeoutSec", ISOLATION_KEYS,
};
static const char *const policy_keys[] = {
        "AllowUsers", "AllowGroups", "DigestsFile", "MaxCallsPerUser", "MaxCallsPerPlugin",
};
static const char *const plugin_keys[] = { "Config", "AllowUsers", "AllowGroups", ISOLATION_KEYS };
static const char *const dir_keys[] = { ISOLATION_KEYS };
#define N(a) (sizeof(a) / sizeof((a)[0]))

static int why(struct config_parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int why(struct config_parse *p, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(p->why, sizeof(p->why), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int absolute_path(struct config_parse *p, char **dst, const char *value)
{
        return value[0] == '/' ? set_string(dst, value) : why(p, "must be an absolute path");
}

/* An integer in [min, max] into *ret (unsigned), or why not. */
static int uint_in(struct config_parse *p, const char *value, unsigned long min, unsigned long max,
                   unsigned *ret)
{
        unsigned long u;

        if (parse_uint(value, max, &u) < 0 || u < min)
                return why(p, "must be an integer from %lu to %lu", min, max);
        *ret = (unsigned)u;
        return 0;
}

static int size_in(struct config_parse *p, const char *value, size_t min, const char *min_s, size_t max,
                   const char *max_s, size_t *ret)
{
        if (parse_size(value, min, max, ret) < 0)
                return why(p, "must be bytes with an optional K, M or G (powers of 1024), from %s to %s",
                           min_s, max_s);
        return 0;
}

/* The daemon arms its deadlines in whole milliseconds (ops.c, server.c):
 * a ...Sec= value below one would be a deadline of 0, passed at once. */
#define CONFIG_SEC_RESOLUTION_USEC UINT64_C(1000)

/* A ...Sec= key: a systemd time span, at least 1ms and at most a day. */
static int sec_in(struct config_parse *p, const char *value, double *ret)
{
        uint64_t usec;

        if (ph_timespan_parse(value, &usec, p->why, sizeof(p->why)) < 0)
                return -EINVAL;
        if (usec < CONFIG_SEC_RESOLUTION_USEC && ph_timespan_nonzero(value))
                return why(p, "rounds to 0 at this key's resolution of 1ms; the smallest accepted value "
                           "is 1ms");
        if (usec == 0 || usec > 86400 * PH_USEC_PER_SEC)
                return why(p, "must be above 0 and at most 1d (86400s); e.g. 30s, 500ms, 2min");
        *ret = (double)usec / (double)PH_USEC_PER_SEC;
        return 0;
}

/* SocketMode=: octal, a leading 0 optional, as systemd's SocketMode= reads
 * it ("666" is 0666); no setuid, setgid or sticky bit on a socket. */
static int socket_mode(struct config_parse *p, const char *value, mode_t *ret)
{
        unsigned long m = 0;
        size_t i;

        for (i = 0; value[i] >= '0' && value[i] <= '7' && m <= 0777; i++)
                m = m * 8 + (unsigned long)(value[i] - '0');
        if (i == 0 || value[i] || m > 0777)
                return why(p, "not a socket mode: octal digits up to 0777 (a leading 0 is optional), "
                           "e.g. 0660");
        *ret = (mode_t)m;
        return 0;
}

/* [Daemon] keys. Returns 0, -EINVAL (bad value, why in p->why) or -ENOENT
 * (unknown key). */
static int daemon_key(struct config_parse *p, const char *name, const char *value)
{
        ph_config *cfg = p->cfg;
        unsigned u;
        int r;

        if (strcmp(name, "PluginDirectory") == 0) {
                if (value[0] != '/')
                        return why(p, "must be an absolute path");
                return ph_config_add_dir(cfg, value, &p->dirs_seen);
        }
        if (strcmp(name, "WorkerPath") == 0)
                return absolute_path(p, &cfg->worker_path, value);
        r = ph_isolation_key(&cfg->iso, name, value, p->why, sizeof(p->why));
        if (r != -ENOENT)
                return r;
        if (strcmp(name, "Socket") == 0)
                return absolute_path(p, &cfg->socket_path, value);
        if (strcmp(name, "SocketMode") == 0)
                return socket_mode(p, value, &cfg->socket_mode);
        if (strcmp(name, "SocketGroup") == 0)
                return set_string(&cfg->socket_group, value);
        if (strcmp(name, "StateDirectory") == 0)
                return absolute_path(p, &cfg->state_dir, value);
        if (strcmp(name, "LogLevel") == 0) {
                r = ph_log_level_from_string(value);
                if (r < 0)
                        return why(p, "must be err, warning, notice, info or debug");
                cfg->log_level = r;
                return 0;
        }
        if (strcmp(name, "CallTimeoutSec") == 0)
                return sec_in(p, value, &cfg->call_timeout_sec);
        if (strcmp(name, "MessageTimeoutSec") == 0)
                return sec_in(p, value, &cfg->message_timeout_sec);
        if (strcmp(name, "Workers") == 0)
                return uint_in(p, value, 1, 256, &cfg->workers);
        if (strcmp(name, "MaxConnections") == 0)
                return uint_in(p, value, 1, 65536, &cfg->max_connections);
        if (strcmp(name, "MaxConnectionsPerUser") == 0)
                return uint_in(p, value, 1, 65536, &cfg->max_connections_per_uid);
        if (strcmp(name, "MaxMessageSize") == 0) {
                r = uint_in(p, value, 4096, 64ul << 20, &u);
                if (r < 0)
                        return why(p, "must be a number of bytes from 4096 to 67108864, no suffix");
                cfg->max_message = u;
                return 0;
        }
        if (strcmp(name, "ReservedConnections") == 0)
                return uint_in(p, value, 0, 65536, &cfg->reserved_connections);
        if (strcmp(name, "MaxBufferPerConnection") == 0)
                return size_in(p, value, 64u << 10, "64K", 1ul << 30, "1G", &cfg->max_buffer_per_conn);
        if (strcmp(name, "MaxBufferTotal") == 0)
                return size_in(p, value, 1u << 20, "1M", 64ul << 30, "64G", &cfg->max_buffer_total);
        if (strcmp(name, "MonitorBufferMax") == 0)
                return size_in(p, value, 4096, "4K", 1ul << 30, "1G", &cfg->monitor_buffer_max);
        return -ENOENT;
}

/* [Plugin NAME] keys. Config= is a JSON object; continuation lines (indented)
 * and later Config= lines are appended, so long configs can span lines. */
static int plugin_key(struct config_parse *p, const char *plugin, const char *name, const char *value)
{
        ph_plugin_conf *pc;
        struct json_seg seg;
        char *joined;

        pc = plugin_conf(p->cfg, plugin);
        if (!pc)
                return -ENOMEM;
        if (strcmp(name, "AllowUsers") == 0)
                return ph_acl_add_users(&pc->acl, value, p->why, sizeof(p->why));
        if (strcmp(name, "AllowGroups") == 0)
                return ph_acl_add_groups(&pc->acl, value, p->why, sizeof(p->why));
        if (strcmp(name, "Config") != 0)
                return ph_isolation_key(&pc->iso, name, value, p->why, sizeof(p->why));
        seg = (struct json_seg){ .plugin = (size_t)(pc - p->cfg->plugins),
                                 .start = pc->config_json ? strlen(pc->config_json) : 0,
                                 .file = strdup(p->file), .line = p->lineno };
        if (!seg.file ||
            ph__vec_push((void **)&p->segs, &p->n_segs, &p->cap_segs, sizeof(seg), &seg) < 0) {
                free(seg.file);
                return -ENOMEM;
        }
        if (asprintf(&joined, "%s%s", pc->config_json ? pc->config_json : "", value) < 0)
                return -ENOMEM;
        free(pc->config_json);
        pc->config_json = joined;
        return 0;
}

/* [Directory PATH] keys: isolation settings of the plugins found there. */
static int dir_key(struct config_parse *p, const char *dir, const char *name, const char *value)
{
        ph_config *cfg = p->cfg;
        ph_dir_conf dc = { 0 };
        size_t i;

        for (i = 0; i < cfg->n_dirs && strcmp(cfg->dirs[i].dir, dir) != 0; i++)
                ;
        if (i == cfg->n_dirs) {
                if (!(dc.dir = strdup(dir)) ||
                    ph__vec_push((void **)&cfg->dirs, &cfg->n_dirs, &cfg->cap_dirs, sizeof(dc), &dc) < 0) {
                        free(dc.dir);
                        return -ENOMEM;
                }
        }
        return ph_isolation_key(&cfg->dirs[i].iso, name, value, p->why, sizeof(p->why));
}

/* [Policy] keys. */
static int policy_key(struct config_parse *p, const char *name, const char *value)
{
        ph_config *cfg = p->cfg;

        if (strcmp(name, "AllowUsers") == 0)
                return ph_acl_add_users(&cfg->acl, value, p->why, sizeof(p->why));
        if (strcmp(name, "AllowGroups") == 0)
                return ph_acl_add_groups(&cfg->acl, value, p->why, sizeof(p->why));
        if (strcmp(name, "DigestsFile") == 0)
                return absolute_path(p, &cfg->digests_file, value);
        if (strcmp(name, "MaxCallsPerUser") == 0)
                return uint_in(p, value, 1, 65536, &cfg->max_calls_per_uid);
        if (strcmp(name, "MaxCallsPerPlugin") == 0)
                return uint_in(p, value, 1, 65536, &cfg->max_calls_per_plugin);
        return -ENOENT;
}

enum section_kind { SECTION_NONE, SECTION_DAEMON, SECTION_POLICY, SECTION_PLUGIN, SECTION_DIRECTORY };

static enum section_kind section_kind(const char *section)
{
        if (strcmp(section, "Daemon") == 0)
                return SECTION_DAEMON;
        if (strcmp(section, "Policy") == 0)
                return SECTION_POLICY;
        if (strncmp(section, "Plugin ", 7) == 0)
                return SECTION_PLUGIN;
        if (strncmp(section, "Directory ", 10) == 0)
                return SECTION_DIRECTORY;
        return SECTION_NONE;
}

/* A section header's name, at line: a known kind with a valid argument.
 * A [Plugin NAME] gets its entry (and its line) here, keys or not. */
static int section_check(struct config_parse *p, const char *section, int line)
{
        static const char *const kinds[] = { "Daemon", "Policy", "Plugin", "Directory" };
        char q[4 * CONFIG_QUOTE_MAX + 8], word[64];
        const char *guess;
        ph_plugin_conf *pc;

        switch (section_kind(section)) {
        case SECTION_DAEMON:
        case SECTION_POLICY:
                return 0;
        case SECTION_PLUGIN:
                if (!ph_name_valid(section + 7))
                        return config_fail(p, line, -EINVAL,
                                           "[%s]: \"%s\" is not a plugin name: write [Plugin NAME], "
                                           "NAME as in the plugin's metadata "
                                           "(^[a-z0-9][a-z0-9._-]{0,63}$)",
                                           esc(section, q, sizeof(q)), esc(section + 7, q + sizeof(q) / 2,
                                                                           sizeof(q) / 2));
                pc = plugin_conf(p->cfg, section + 7);
                if (!pc)
                        return config_fail(p, line, -ENOMEM, "out of memory");
                if (!pc->file) {
                        pc->file = strdup(p->file);
                        pc->line = line;
                        if (!pc->file)
                                return config_fail(p, line, -ENOMEM, "out of memory");
                }
                return 0;
        case SECTION_DIRECTORY:
                if (section[10] != '/')
                        return config_fail(p, line, -EINVAL,
                                           "[%s]: write [Directory PATH], PATH absolute, as given to "
                                           "PluginDirectory= or --plugin-dir",
                                           esc(section, q, sizeof(q)));
                return 0;
        case SECTION_NONE:
                break;
        }
        snprintf(word, sizeof(word), "%.*s", (int)strcspn(section, " "), section);
        guess = ph_suggest(word, kinds, N(kinds));
        if (!guess && (strcmp(word, "Plugin") == 0 || strcmp(word, "Directory") == 0))
                guess = word;
        return config_fail(p, line, -EINVAL, "unknown section [%s]%s%s%s; sections are [Daemon], "
                           "[Policy], [Plugin NAME] and [Directory PATH]", esc(section, q, sizeof(q)),
                           guess ? "; did you mean [" : "", guess ? guess : "",
                           !guess ? "" : strcmp(guess, "Plugin") == 0 ? " NAME]?" :
                           strcmp(guess, "Directory") == 0 ? " PATH]?" : "]?");
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
        struct config_parse *p = user;
        char qs[4 * CONFIG_QUOTE_MAX + 8], qk[4 * CONFIG_QUOTE_MAX + 8], qv[4 * CONFIG_QUOTE_MAX + 8];
        const char *const *keys = NULL;
        const char *guess;
        size_t n_keys = 0;
        int r;

        if (p->failed)
                return 1;
        /* inih passes "=5" on as a key without a name. */
        if (!name[0]) {
                const char *sep = p->line + strspn(p->line, " \t");

                return config_fail(p, p->lineno, -EINVAL, "%s%s%s=%s: a key name is missing before "
                                   "'%c' (Key=Value)", section[0] ? "[" : "",
                                   esc(section, qs, sizeof(qs)), section[0] ? "] " : "",
                                   esc(value, qv, sizeof(qv)), *sep), 1;
        }
        if (!section[0])
                return config_fail(p, p->lineno, -EINVAL, "%s=: a key before any section; put it "
                                   "under [Daemon], [Policy], [Plugin NAME] or [Directory PATH]",
                                   esc(name, qk, sizeof(qk))), 1;
        /* A header the reader did not see (indented) is checked here. */
        if (strcmp(section, p->section) != 0) {
                snprintf(p->section, sizeof(p->section), "%s", section);
                if (section_check(p, section, p->header_line ? p->header_line : p->lineno) < 0)
                        return 1;
        }
        snprintf(p->key, sizeof(p->key), "%s", name);
        p->why[0] = '\0';
        switch (section_kind(section)) {
        case SECTION_DAEMON:
                r = daemon_key(p, name, value);
                keys = daemon_keys, n_keys = N(daemon_keys);
                break;
        case SECTION_POLICY:
                r = policy_key(p, name, value);
                keys = policy_keys, n_keys = N(policy_keys);
                break;
        case SECTION_PLUGIN:
                r = plugin_key(p, section + 7, name, value);
                keys = plugin_keys, n_keys = N(plugin_keys);
                break;
        case SECTION_DIRECTORY:
                r = dir_key(p, section + 10, name, value);
                keys = dir_keys, n_keys = N(dir_keys);
                break;
        default:
                r = -ENOENT;
        }
        if (r == -ENOENT) {
                guess = ph_suggest(name, keys, n_keys);
                config_fail(p, p->lineno, r, "[%s] %s=: unknown key%s%s%s", esc(section, qs, sizeof(qs)),
                            esc(name, qk, sizeof(qk)), guess ? "; did you mean " : "",
                            guess ? guess : "", guess ? "=?" : "");
        } else if (r < 0)
                config_fail(p, p->lineno, r, "[%s] %s=%s: %s", esc(section, qs, sizeof(qs)),
                            esc(name, qk, sizeof(qk)), esc(value, qv, sizeof(qv)),
                            r == -ENOMEM ? "out of memory" : p->why[0] ? p->why : "invalid value");
        /* Errors are recorded, not returned: inih's own return then means
         * a line it could not parse. */
        return 1;
}

/* Whether the n bytes at line are a comment as inih reads one: '#' or ';'
 * after any blanks (and the first line's UTF-8 byte order mark). */
static bool is_comment(const char *line, size_t n, int lineno)
{
        size_t i = 0;

        if (lineno == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
                i = 3;
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
                i++;
        return i < n && (line[i] == '#' || line[i] == ';');
}

/* What to do about a line too long for inih, the n bytes at line: what
 * helps depends on the key it gives or, indented, continues. */
static const char *long_line_hint(struct config_parse *p, const char *line, size_t n, char *buf,
                                  size_t size)
{
        char key[64] = "";
        size_t i = 0, e;

        if (p->indented && p->key[0])
                snprintf(key, sizeof(key), "%s", p->key);
        else {
                while (i < n && (line[i] == ' ' || line[i] == '\t'))
                        i++;
                e = i + strcspn(line + i, "=:\n");
                while (e > i && (line[e - 1] == ' ' || line[e - 1] == '\t'))
                        e--;
                if (e - i < sizeof(key))
                        snprintf(key, sizeof(key), "%.*s", (int)(e - i), line + i);
        }
        if (section_kind(p->section) == SECTION_PLUGIN && strcmp(key, "Config") == 0)
                return "; split a long Config= over indented continuation lines";
        /* Lists: each line adds to them. */
        if (section_kind(p->section) != SECTION_DAEMON &&
            (strcmp(key, "AllowUsers") == 0 || strcmp(key, "AllowGroups") == 0)) {
                snprintf(buf, size, ", the most a line may hold; give %s= again on more lines (each "
                         "adds to the list)", key);
                return buf;
        }
        return ", the most a line may hold; no value can be that long";
}

/* inih's reader: the next line of the file in memory, counted. A line
 * that does not fit inih's buffer (num), or holds a NUL, ends the parse
 * with an error rather than reaching inih cut. Section headers are checked
 * here, so that a missing ']' is reported on its line, and a section
 * without keys is checked too. */
static char *config_read_line(char *str, int num, void *stream)
{
        struct config_parse *p = stream;
        const char *line = p->text + p->pos, *nl;
        size_t n, max = (size_t)num - 2;

        if (p->failed || p->pos >= p->len)
                return NULL;
        nl = memchr(line, '\n', p->len - p->pos);
        n = nl ? (size_t)(nl - line) : p->len - p->pos;
        p->pos += n + (nl != NULL);
        p->lineno++;
        p->line = line;
        if (memchr(line, '\0', n)) {
                config_fail(p, p->lineno, -EINVAL, "syntax error: a NUL byte in the line");
                return NULL;
        }
        if (n > 0 && line[n - 1] == '\r')
                n--;
        p->indented = n > 0 && (line[0] == ' ' || line[0] == '\t');
        /* A comment is no business of inih's, whatever its length; an
         * empty line in its place keeps inih's line count. */
        if (is_comment(line, n, p->lineno)) {
                strcpy(str, "\n");
                return str;
        }
        if (n > max) {
                char hint[128];

                config_fail(p, p->lineno, -EINVAL, "syntax error: a line longer than %zu characters%s",
                            max, long_line_hint(p, line, n, hint, sizeof(hint)));
                return NULL;
        }
        memcpy(str, line, n);
        str[n] = '\n';
        str[n + 1] = '\0';
        if (n > 0 && line[0] == '[') {
                /* inih's rule: the name ends at ']', or at a ';' comment
                 * after a blank. */
                size_t e = 1;
                char section[256];

                while (e < n && line[e] != ']' && !(line[e] == ';' && (line[e - 1] == ' ' ||
                                                                      line[e - 1] == '\t')))
                        e++;
                p->header_line = p->lineno;
                p->key[0] = '\0';
                if (e == n || line[e] != ']') {
                        config_fail(p, p->lineno, -EINVAL,
                                    "syntax error: a section header without its closing ']'");
                        return NULL;
                }
                snprintf(section, sizeof(section), "%.*s", (int)(e - 1), line + 1);
                snprintf(p->section, sizeof(p->section), "%s", section);
                if (section_check(p, section, p->lineno) < 0)
                        return NULL;
        }
        return str;
}

/* The whole file, if it is a regular file of at most CONFIG_FILE_MAX
 * bytes; NUL-terminated, owned by the caller. */
static int read_file(const char *path, char **ret, size_t *ret_len, char *why_buf, size_t why_size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        size_t len = 0;
        struct stat st;
        char *buf;
        ssize_t n;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                int r = fstat(fd, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;

                snprintf(why_buf, why_size, "%s", r == -EINVAL ? "not a regular file" : strerror(-r));
                close(fd);
                return r;
        }
        buf = malloc(CONFIG_FILE_MAX + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while ((n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len)) > 0 && len + (size_t)n <= CONFIG_FILE_MAX)
                len += (size_t)n;
        if (n != 0) {
                int r = n < 0 ? -errno : -EFBIG;

                snprintf(why_buf, why_size, "%s", r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
                free(buf);
                close(fd);
                return r;
        }
        close(fd);
        buf[len] = '\0';
        *ret = buf;
        *ret_len = len;
        return 0;
}

/* A line inih refused: what it looks like it meant. */
static const char *syntax_hint(const char *text, size_t len, int line)
{
        const char *s = text, *end = text + len;

        for (int i = 1; i < line && s < end; i++) {
                s = memchr(s, '\n', (size_t)(end - s));
                s = s ? s + 1 : end;
        }
        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        if (s < end && *s == '[')
                return "a section header without its closing ']'";
        return "expected Key=Value, a [Section] header, a comment (# or ;) or an indented "
               "continuation of a value";
}

static int config_file(struct config_parse *p, const char *path, bool must_exist)
{
        char *text = NULL, detail[128] = "";
        size_t len = 0;
        int line, r;

        p->file = path;
        r = read_file(path, &text, &len, detail, sizeof(detail));
        if (r == -ENOENT && !must_exist)
                return 0;
        if (r < 0) {
                snprintf(p->err, p->err_size, "%s: %s", path, detail[0] ? detail : strerror(-r));
                return r;
        }
        p->text = text;
        p->len = len;
        p->pos = 0;
        p->lineno = 0;
        p->header_line = 0;
        p->section[0] = '\0';
        line = ini_parse_stream(config_read_line, p, config_handler, p);
        /* inih's first refused line, unless an error of ours came first. */
        if (line > 0 && (!p->failed || line < p->fail_line)) {
                p->failed = 0;
                config_fail(p, line, -EINVAL, "syntax error: %s", syntax_hint(text, len, line));
        }
        free(text);
        p->text = NULL;
        if (p->failed)
                return p->failed == -ENOMEM ? -ENOMEM : -EINVAL;
        return line < 0 ? -ENOMEM : 0;
}

static int conf_filter(const struct dirent *d)
{
        size_t n = strlen(d->d_name);

        return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

/* Plugin configs must be JSON objects; an error points at the line of
 * the piece of text it is in. */
static int config_json_check(struct config_parse *p)
{
        ph_config *cfg = p->cfg;

        for (size_t i = 0; i < cfg->n_plugins; i++) {
                const struct json_seg *seg = NULL, *first = NULL;
                json_error_t jerr;
                size_t pos;
                json_t *j;
                bool ok;

                if (!cfg->plugins[i].config_json)
                        continue;
                j = json_loads(cfg->plugins[i].config_json, JSON_REJECT_DUPLICATES, &jerr);
                /* jansson's position is just past the token it refused. */
                pos = !j && jerr.position > 0 ? (size_t)jerr.position - 1 : 0;
                ok = json_is_object(j);
                for (size_t k = 0; k < p->n_segs; k++)
                        if (p->segs[k].plugin == i) {
                                if (!first)
                                        first = &p->segs[k];
                                if (!j && p->segs[k].start <= pos)
                                        seg = &p->segs[k];
                        }
                if (!seg)
                        seg = first;
                if (!ok && seg) {
                        p->file = seg->file;
                        if (j)
                                config_fail(p, first->line, -EINVAL,
                                            "[Plugin %s] Config=: not a JSON object but %s",
                                            cfg->plugins[i].name,
                                            json_is_array(j) ? "an array" : json_is_string(j) ? "a string" :
                                            json_is_number(j) ? "a number" : "true, false or null");
                        else
                                config_fail(p, seg->line, -EINVAL,
                                            "[Plugin %s] Config=: not a JSON object: %s, at column %zu of "
                                            "the value on this line", cfg->plugins[i].name, jerr.text,
                                            pos - seg->start + 1);
                }
                json_decref(j);
                if (!ok)
                        return -EINVAL;
        }
        return 0;
}

int ph_config_load(ph_config *cfg, const char *path, bool must_exist, char *err, size_t err_size)
{
        struct config_parse p = { .cfg = cfg, .err = err, .err_size = err_size };
        struct dirent **list = NULL;
        char dir[4096];
        int n, r;

        r = config_file(&p, path, must_exist);
        snprintf(dir, sizeof(dir), "%s.d", path);
        n = r < 0 ? 0 : scandir(dir, &list, conf_filter, alphasort);
        if (n < 0 && errno != ENOENT && errno != ENOTDIR) {
                r = -errno;
                snprintf(err, err_size, "%s: %s", dir, strerror(errno));
        }
        for (int i = 0; i < n; i++) {
                char file[4096 + 256];

                /* One removed since the listing is no longer part of it. */
                if (r == 0) {
                        snprintf(file, sizeof(file), "%s/%s", dir, list[i]->d_name);
                        r = config_file(&p, file, false);
                }
                free(list[i]);
        }
        free(list);
        if (r == 0)
                r = config_json_check(&p);
        for (size_t i = 0; i < p.n_segs; i++)
                free(p.segs[i].file);
        free(p.segs);
        return r;
}

static void config_free(ph_config *cfg);

int ph_config_new(ph_config **ret)
{
        ph_config *cfg = calloc(1, sizeof(*cfg));

        if (!cfg)
                return -ENOMEM;
        atomic_init(&cfg->refs, 1);
        cfg->socket_mode = 0660;
        cfg->log_level = PH_LOG_INFO;
        cfg->call_timeout_sec = 30;
        cfg->workers = 16;
        cfg->reserved_connections = 64;
        cfg->max_message = 1024 * 1024;
        cfg->max_buffer_per_conn = 8u << 20;
        cfg->max_buffer_total = 128u << 20;
        cfg->monitor_buffer_max = 1u << 20;
        cfg->message_timeout_sec = 10;
        {
                struct passwd *pw = getpwnam("nobody");

                cfg->nobody_uid = pw ? pw->pw_uid : 65534;
                cfg->nobody_gid = pw ? pw->pw_gid : 65534;
        }
        if (set_string(&cfg->socket_path, PH_DEFAULT_SOCKET) < 0 ||
            set_string(&cfg->state_dir, PH_DEFAULT_STATE_DIR) < 0 ||
            set_string(&cfg->worker_path, PKGLIBEXECDIR "/plughost-worker") < 0 ||
            set_string(&cfg->socket_group, "plughost") < 0 ||
            strv_push(&cfg->plugin_dirs, &cfg->n_plugin_dirs, &cfg->cap_plugin_dirs, LIBDIR "/plughost/plugins") < 0 ||
            strv_push(&cfg->plugin_dirs, &cfg->n_plugin_dirs, &cfg->cap_plugin_dirs, SYSCONFDIR "/plughost/plugins.d") < 0) {
                config_free(cfg);
                return -ENOMEM;
        }
        *ret = cfg;
        return 0;
}

ph_config *ph_config_ref(ph_config *cfg)
{
        atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
        return cfg;
}

void ph_config_unref(ph_config *cfg)
{
        if (cfg && atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
                config_free(cfg);
}

int ph_config_add_dir(ph_config *cfg, const char *dir, bool *replaced)
{
        if (!*replaced) {
                for (size_t i = 0; i < cfg->n_plugin_dirs; i++)
                        free(cfg->plugin_dirs[i]);
                cfg->n_plugin_dirs = 0;
                *replaced = true;
        }
        /* Named again: it keeps its first place (precedence), and is not
         * watched and scanned twice. */
        for (size_t i = 0; i < cfg->n_plugin_dirs; i++)
                if (strcmp(cfg->plugin_dirs[i], dir) == 0)
                        return 0;
        return strv_push(&cfg->plugin_dirs, &cfg->n_plugin_dirs, &cfg->cap_plugin_dirs, dir);
}

size_t ph_config_unknown_plugins(const ph_config *cfg, const char *const *names, size_t n,
                                 void (*warn)(const char *msg, void *userdata), void *userdata)
{
        size_t count = 0;

        for (size_t i = 0; i < cfg->n_plugins; i++) {
                const ph_plugin_conf *pc = &cfg->plugins[i];
                const char *guess;
                bool found = false;
                char msg[1024];

                for (size_t j = 0; j < n && !found; j++)
                        found = strcmp(names[j], pc->name) == 0;
                if (found || !pc->file)
                        continue;
                /* The name is valid (section_check), so safe to print. */
                guess = ph_suggest(pc->name, names, n);
                snprintf(msg, sizeof(msg), "%s:%d: [Plugin %s]: no plugin named \"%s\"%s%s%s", pc->file,
                         pc->line, pc->name, pc->name, guess ? "; did you mean \"" : "",
                         guess ? guess : "", guess ? "\"?" : "");
                warn(msg, userdata);
                count++;
        }
        return count;
}

/* Descriptors kept for what is not a connection: the listener, inotify,
 * the state files, scans, loads (a file and its sealed copy each), libuv. */
#define CONFIG_FD_SPARE 256u
#define CONFIG_CONNECTIONS_MAX 4096u

void ph_config_resolve(ph_config *cfg, unsigned long nofile)
{
        unsigned long room = nofile > 2 * CONFIG_FD_SPARE ? nofile - CONFIG_FD_SPARE : nofile / 2;

        if (cfg->max_connections == 0)
                cfg->max_connections = room < CONFIG_CONNECTIONS_MAX ? (unsigned)room
                                                                     : CONFIG_CONNECTIONS_MAX;
        else if (cfg->max_connections > room) {
                log_warning("MaxConnections=%u does not fit %lu file descriptors; using %lu",
                            cfg->max_connections, nofile, room);
                cfg->max_connections = (unsigned)room;
        }
        if (cfg->max_connections == 0)
                cfg->max_connections = 1;
        /* Root's share can never be all of it, nor none when there is room. */
        if (cfg->reserved_connections >= cfg->max_connections)
                cfg->reserved_connections = cfg->max_connections / 2;
        if (cfg->max_connections_per_uid == 0) {
                unsigned share = cfg->max_connections / 16;

                cfg->max_connections_per_uid = share < 4 ? 4 : share;
        }
        /* No user may hold every plugin thread, nor one plugin. */
        if (cfg->max_calls_per_uid == 0)
                cfg->max_calls_per_uid = cfg->workers / 2 ? cfg->workers / 2 : 1;
        if (cfg->max_calls_per_plugin == 0)
                cfg->max_calls_per_plugin = cfg->workers / 2 ? cfg->workers / 2 : 1;
}

const char *ph_config_plugin_json(const ph_config *cfg, const char *name)
{
        for (size_t i = 0; i < cfg->n_plugins; i++)
                if (strcmp(cfg->plugins[i].name, name) == 0 && cfg->plugins[i].config_json)
                        return cfg->plugins[i].config_json;
        return "{}";
}

const ph_acl *ph_config_plugin_acl(const ph_config *cfg, const char *name)
{
        for (size_t i = 0; i < cfg->n_plugins; i++)
                if (strcmp(cfg->plugins[i].name, name) == 0 && cfg->plugins[i].acl.set)
                        return &cfg->plugins[i].acl;
        return &cfg->acl;
}

/* An absolute path without "//", "/./" or a trailing "/" (no ".."
 * resolution, no symbolic links: those do not name a plugin directory as
 * configured). n bytes of in; false if it does not fit. */
static bool path_norm(const char *in, size_t n, char *out, size_t out_size)
{
        size_t o = 0;

        for (size_t i = 0; i < n;) {
                size_t j = i;

                while (j < n && in[j] == '/')
                        j++;
                i = j;
                while (j < n && in[j] != '/')
                        j++;
                if (j == i || (j - i == 1 && in[i] == '.')) {
                        i = j;
                        continue;
                }
                if (o + 1 + (j - i) + 1 > out_size)
                        return false;
                out[o++] = '/';
                memcpy(out + o, in + i, j - i);
                o += j - i;
                i = j;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = '\0';
        return true;
}

int ph_config_check(const ph_config *cfg, char *err, size_t err_size)
{
        char a[PATH_MAX], b[PATH_MAX];

        for (size_t i = 0; i < cfg->n_dirs; i++) {
                bool found = false;

                if (!path_norm(cfg->dirs[i].dir, strlen(cfg->dirs[i].dir), a, sizeof(a)))
                        return -EINVAL;
                for (size_t j = 0; j < cfg->n_plugin_dirs && !found; j++)
                        found = path_norm(cfg->plugin_dirs[j], strlen(cfg->plugin_dirs[j]), b,
                                          sizeof(b)) &&
                                strcmp(a, b) == 0;
                if (!found) {
                        snprintf(err, err_size,
                                 "[Directory %s]: not one of the plugin directories (PluginDirectory= "
                                 "or --plugin-dir, as written there); its settings would apply to "
                                 "nothing", cfg->dirs[i].dir);
                        return -EINVAL;
                }
        }
        return 0;
}

/* [Daemon], then the file's [Directory], then [Plugin NAME]: no defaults. */
static void isolation_merged(const ph_config *cfg, const char *name, const char *path,
                             ph_isolation *ret)
{
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX], d[PATH_MAX];
        bool have = cfg->n_dirs > 0 && slash &&
                    path_norm(path, (size_t)(slash - path), dir, sizeof(dir));

        *ret = cfg->iso;
        for (size_t i = 0; i < cfg->n_dirs && have; i++)
                if (path_norm(cfg->dirs[i].dir, strlen(cfg->dirs[i].dir), d, sizeof(d)) &&
                    strcmp(d, dir) == 0)
                        ph_isolation_merge(ret, &cfg->dirs[i].iso);
        for (size_t i = 0; i < cfg->n_plugins; i++)
                if (strcmp(cfg->plugins[i].name, name) == 0)
                        ph_isolation_merge(ret, &cfg->plugins[i].iso);
}

ph_isolation_mode ph_config_isolation_mode(const ph_config *cfg, const char *name, const char *path)
{
        ph_isolation iso;

        isolation_merged(cfg, name, path, &iso);
        return iso.mode == PH_ISOLATION_UNSET ? PH_ISOLATION_INPROCESS : iso.mode;
}

void ph_config_isolation(const ph_config *cfg, const char *name, const char *path,
                         ph_isolation *ret)
{
        isolation_merged(cfg, name, path, ret);
        if (ret->mode == PH_ISOLATION_UNSET)
                ret->mode = PH_ISOLATION_INPROCESS;
        if (!ret->limit_nofile)
                ret->limit_nofile = PH_ISOLATION_NOFILE_DEFAULT;
        if (!ret->limit_nproc)
                ret->limit_nproc = PH_ISOLATION_NPROC_DEFAULT;
        /* A root daemon's workers are not root by default: uid 0 without
         * capabilities still owns (and reads) root's files. */
        if (!ret->has_uid && geteuid() == 0) {
                ret->has_uid = true;
                ret->uid = cfg->nobody_uid;
                if (!ret->has_gid)
                        ret->gid = cfg->nobody_gid;
        }
}

static void config_free(ph_config *cfg)
{
        for (size_t i = 0; i < cfg->n_plugin_dirs; i++)
                free(cfg->plugin_dirs[i]);
        free(cfg->plugin_dirs);
        for (size_t i = 0; i < cfg->n_plugins; i++) {
                free(cfg->plugins[i].name);
                free(cfg->plugins[i].config_json);
                free(cfg->plugins[i].file);
                ph_acl_clear(&cfg->plugins[i].acl);
        }
        ph_acl_clear(&cfg->acl);
        for (size_t i = 0; i < cfg->n_dirs; i++)
                free(cfg->dirs[i].dir);
        free(cfg->dirs);
        free(cfg->worker_path);
        free(cfg->digests_file);
        free(cfg->plugins);
        free(cfg->socket_path);
        free(cfg->socket_group);
        free(cfg->state_dir);
        ph_digests_unref(cfg->digests);
        free(cfg);
}
