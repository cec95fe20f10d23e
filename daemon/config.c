/* plughostd configuration. The file is INI (systemd style keys), parsed by
 * libinih; drop-ins in FILE.d/\*.conf are read in name order after it. */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <unistd.h>
#include <limits.h>
#include <ini.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "vec.h"

struct config_parse {
        ph_config *cfg;
        const char *file;
        char *err;
        size_t err_size;
        bool dirs_seen;             /* the first PluginDirectory= drops the defaults */
        char why[160];              /* detail of an invalid value */
        int failed;
};

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

/* [Daemon] keys. Returns 0, -EINVAL (bad value) or -ENOENT (unknown key). */
static int daemon_key(struct config_parse *p, const char *name, const char *value)
{
        ph_config *cfg = p->cfg;
        unsigned long u;
        char *end;
        int r;

        if (strcmp(name, "PluginDirectory") == 0) {
                if (value[0] != '/')
                        return -EINVAL;
                return ph_config_add_dir(cfg, value, &p->dirs_seen);
        }
        if (strcmp(name, "WorkerPath") == 0)
                return value[0] == '/' ? set_string(&cfg->worker_path, value) : -EINVAL;
        r = ph_isolation_key(&cfg->iso, name, value, p->why, sizeof(p->why));
        if (r != -ENOENT)
                return r;
        if (strcmp(name, "Socket") == 0)
                return value[0] == '/' ? set_string(&cfg->socket_path, value) : -EINVAL;
        if (strcmp(name, "SocketMode") == 0) {
                if (parse_uint(value, 0777, &u) < 0 || value[0] != '0')
                        return -EINVAL;
                cfg->socket_mode = (mode_t)u;
                return 0;
        }
        if (strcmp(name, "SocketGroup") == 0)
                return set_string(&cfg->socket_group, value);
        if (strcmp(name, "StateDirectory") == 0)
                return value[0] == '/' ? set_string(&cfg->state_dir, value) : -EINVAL;
        if (strcmp(name, "LogLevel") == 0) {
                r = ph_log_level_from_string(value);
                if (r < 0)
                        return r;
                cfg->log_level = r;
                return 0;
        }
        if (strcmp(name, "CallTimeoutSec") == 0) {
                double d = strtod(value, &end);
                if (end == value || *end || !(d > 0) || d > 86400)
                        return -EINVAL;
                cfg->call_timeout_sec = d;
                return 0;
        }
        if (strcmp(name, "Workers") == 0) {
                if (parse_uint(value, 256, &u) < 0 || u == 0)
                        return -EINVAL;
                cfg->workers = (unsigned)u;
                return 0;
        }
        if (strcmp(name, "MaxConnections") == 0) {
                if (parse_uint(value, 65536, &u) < 0 || u == 0)
                        return -EINVAL;
                cfg->max_connections = (unsigned)u;
                return 0;
        }
        if (strcmp(name, "MaxConnectionsPerUser") == 0) {
                if (parse_uint(value, 65536, &u) < 0 || u == 0)
                        return -EINVAL;
                cfg->max_connections_per_uid = (unsigned)u;
                return 0;
        }
        if (strcmp(name, "MaxMessageSize") == 0) {
                if (parse_uint(value, 64ul << 20, &u) < 0 || u < 4096)
                        return -EINVAL;
                cfg->max_message = u;
                return 0;
        }
        if (strcmp(name, "ReservedConnections") == 0) {
                if (parse_uint(value, 65536, &u) < 0)
                        return -EINVAL;
                cfg->reserved_connections = (unsigned)u;
                return 0;
        }
        if (strcmp(name, "MaxBufferPerConnection") == 0)
                return parse_size(value, 64u << 10, 1ul << 30, &cfg->max_buffer_per_conn);
        if (strcmp(name, "MaxBufferTotal") == 0)
                return parse_size(value, 1u << 20, 64ul << 30, &cfg->max_buffer_total);
        if (strcmp(name, "MonitorBufferMax") == 0)
                return parse_size(value, 4096, 1ul << 30, &cfg->monitor_buffer_max);
        if (strcmp(name, "MessageTimeoutSec") == 0) {
                double d = strtod(value, &end);
                if (end == value || *end || !(d > 0) || d > 86400)
                        return -EINVAL;
                cfg->message_timeout_sec = d;
                return 0;
        }
        return -ENOENT;
}

/* [Plugin NAME] keys. Config= is a JSON object; continuation lines (indented)
 * are appended, so long configs can span lines. */
static int plugin_key(struct config_parse *p, const char *plugin, const char *name, const char *value)
{
        ph_plugin_conf *pc;
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

        if (dir[0] != '/') {
                snprintf(p->why, sizeof(p->why), "the directory must be an absolute path");
                return -EINVAL;
        }
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
        unsigned long u;

        if (strcmp(name, "AllowUsers") == 0)
                return ph_acl_add_users(&cfg->acl, value, p->why, sizeof(p->why));
        if (strcmp(name, "AllowGroups") == 0)
                return ph_acl_add_groups(&cfg->acl, value, p->why, sizeof(p->why));
        if (strcmp(name, "DigestsFile") == 0)
                return value[0] == '/' ? set_string(&cfg->digests_file, value) : -EINVAL;
        if (strcmp(name, "MaxCallsPerUser") == 0) {
                if (parse_uint(value, 65536, &u) < 0 || u == 0)
                        return -EINVAL;
                cfg->max_calls_per_uid = (unsigned)u;
                return 0;
        }
        if (strcmp(name, "MaxCallsPerPlugin") == 0) {
                if (parse_uint(value, 65536, &u) < 0 || u == 0)
                        return -EINVAL;
                cfg->max_calls_per_plugin = (unsigned)u;
                return 0;
        }
        return -ENOENT;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
        struct config_parse *p = user;
        int r;

        p->why[0] = '\0';
        if (strcmp(section, "Daemon") == 0)
                r = daemon_key(p, name, value);
        else if (strcmp(section, "Policy") == 0)
                r = policy_key(p, name, value);
        else if (strncmp(section, "Plugin ", 7) == 0 && section[7])
                r = plugin_key(p, section + 7, name, value);
        else if (strncmp(section, "Directory ", 10) == 0 && section[10])
                r = dir_key(p, section + 10, name, value);
        else
                r = -ENOENT;
        if (r < 0 && !p->failed) {
                p->failed = r;
                snprintf(p->err, p->err_size, "%s: [%s] %s=%s: %s", p->file, section, name, value,
                         r == -ENOENT ? "unknown key" : r == -ENOMEM ? "out of memory" :
                         p->why[0] ? p->why : "invalid value");
        }
        return r < 0 ? 0 : 1;
}

static int config_file(struct config_parse *p, const char *path, bool must_exist)
{
        FILE *f = fopen(path, "re");
        int line;

        if (!f) {
                if (errno == ENOENT && !must_exist)
                        return 0;
                snprintf(p->err, p->err_size, "%s: %s", path, strerror(errno));
                return -errno;
        }
        p->file = path;
        line = ini_parse_file(f, config_handler, p);
        fclose(f);
        if (p->failed)
                return p->failed == -ENOMEM ? -ENOMEM : -EINVAL;
        if (line != 0) {
                snprintf(p->err, p->err_size,
                         "%s:%d: syntax error (or a line longer than 199 characters)", path, line);
                return -EINVAL;
        }
        return 0;
}

static int conf_filter(const struct dirent *d)
{
        size_t n = strlen(d->d_name);

        return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

int ph_config_load(ph_config *cfg, const char *path, bool must_exist, char *err, size_t err_size)
{
        struct config_parse p = { .cfg = cfg, .err = err, .err_size = err_size };
        struct dirent **list = NULL;
        char dir[4096];
        int n, r;

        r = config_file(&p, path, must_exist);
        if (r < 0)
                return r;
        snprintf(dir, sizeof(dir), "%s.d", path);
        n = scandir(dir, &list, conf_filter, alphasort);
        for (int i = 0; i < n; i++) {
                char file[4096 + 256];

                if (r == 0) {
                        snprintf(file, sizeof(file), "%s/%s", dir, list[i]->d_name);
                        r = config_file(&p, file, true);
                }
                free(list[i]);
        }
        free(list);
        if (r < 0)
                return r;

        /* Plugin configs must be JSON objects. */
        for (size_t i = 0; i < cfg->n_plugins; i++) {
                json_error_t jerr;
                json_t *j;

                if (!cfg->plugins[i].config_json)
                        continue;
                j = json_loads(cfg->plugins[i].config_json, JSON_REJECT_DUPLICATES, &jerr);
                bool ok = json_is_object(j);

                json_decref(j);
                if (!ok) {
                        snprintf(err, err_size, "[Plugin %s] Config= is not a JSON object: %s",
                                 cfg->plugins[i].name, j ? "wrong type" : jerr.text);
                        return -EINVAL;
                }
        }
        return 0;
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
        return strv_push(&cfg->plugin_dirs, &cfg->n_plugin_dirs, &cfg->cap_plugin_dirs, dir);
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

void ph_config_isolation(const ph_config *cfg, const char *name, const char *path,
                         ph_isolation *ret)
{
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX], d[PATH_MAX];
        bool have = slash && path_norm(path, (size_t)(slash - path), dir, sizeof(dir));

        *ret = cfg->iso;
        for (size_t i = 0; i < cfg->n_dirs && have; i++)
                if (path_norm(cfg->dirs[i].dir, strlen(cfg->dirs[i].dir), d, sizeof(d)) &&
                    strcmp(d, dir) == 0)
                        ph_isolation_merge(ret, &cfg->dirs[i].iso);
        for (size_t i = 0; i < cfg->n_plugins; i++)
                if (strcmp(cfg->plugins[i].name, name) == 0)
                        ph_isolation_merge(ret, &cfg->plugins[i].iso);
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
