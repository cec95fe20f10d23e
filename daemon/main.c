/* plughostd: the plugin host daemon. Parses its options and configuration,
 * then runs the libuv loop until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "daemon.h"
#include "lifecycle.h"
#include "listing.h"
#include "log.h"
#include "ratelimit.h"
#include "signals.h"
#include "vec.h"

/* How long a stop waits for calls in flight before finalising anyway. */
#define STOP_DRAIN_MS 10000
/* Jobs that may wait for a plugin thread before callers get Busy. */
#define POOL_QUEUE_MAX 4096
/* How often the listening socket is checked (listen_check_cb). */
#define LISTEN_CHECK_MS 1000

uint64_t ph_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
        fprintf(out,
                "Usage: plughostd [OPTIONS]\n"
                "\n"
                "  -c, --config FILE       configuration file (default %s)\n"
                "  -p, --plugin-dir DIR    plugin directory; repeat for more (replaces the config's)\n"
                "  -s, --socket PATH       control socket (default %s)\n"
                "  -S, --state-dir DIR     state directory (default %s)\n"
                "  -l, --log-level LEVEL   err, warning, notice, info or debug\n"
                "      --check-config      check the configuration and the options, then exit\n"
                "  -h, --help              show this help\n"
                "  -V, --version           show the version\n",
                PH_CONFIG_DEFAULT_PATH, PH_DEFAULT_SOCKET, PH_DEFAULT_STATE_DIR);
}

/* What the command line said, applied again on every configuration reload.
 * Paths are made absolute at start: nothing later depends on the working
 * directory (a plugin may chdir). */
static struct {
        char *config;
        char **dirs;
        size_t n_dirs, cap_dirs;
        char *socket_path, *state_dir;
        int log_level;                  /* -1: from the file */
        bool check_config;              /* --check-config: check, print, exit */
} cli = { .log_level = -1 };

/* path made absolute against the working directory, without resolving
 * links (a socket or state directory need not exist yet). */
static char *absolute(const char *path)
{
        char cwd[4096], *abs;

        if (path[0] == '/')
                return strdup(path);
        if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, path) < 0)
                return NULL;
        return abs;
}

/* The descriptors we may open: the hard limit, to which the soft one is
 * raised at start (the daemon never uses select(), so a high limit costs
 * nothing; systemd expects daemons to raise it themselves). */
static unsigned long nofile = 1024;

static void raise_nofile(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        if (rl.rlim_cur < rl.rlim_max) {
                rlim_t want = rl.rlim_max;

                rl.rlim_cur = want;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        getrlimit(RLIMIT_NOFILE, &rl);
        }
        nofile = rl.rlim_cur == RLIM_INFINITY ? 1ul << 20 : (unsigned long)rl.rlim_cur;
}

/* Builds a configuration from defaults, the file and the command line. */
static int config_build(ph_config **ret, char *err, size_t err_size)
{
        bool replaced = false;
        ph_config *cfg;
        int r;

        r = ph_config_new(&cfg);
        if (r < 0) {
                snprintf(err, err_size, "out of memory");
                return r;
        }
        r = ph_config_load(cfg, cli.config ? cli.config : PH_CONFIG_DEFAULT_PATH, cli.config != NULL,
                           err, err_size);
        for (size_t i = 0; i < cli.n_dirs && r == 0; i++)
                r = ph_config_add_dir(cfg, cli.dirs[i], &replaced);
        if (r == 0 && cli.socket_path &&
            (free(cfg->socket_path), !(cfg->socket_path = strdup(cli.socket_path))))
                r = -ENOMEM;
        if (r == 0 && cli.state_dir && (free(cfg->state_dir), !(cfg->state_dir = strdup(cli.state_dir))))
                r = -ENOMEM;
        if (cli.log_level >= 0)
                cfg->log_level = cli.log_level;
        if (r == 0)
                ph_config_resolve(cfg, nofile);
        if (r == 0)
                r = ph_config_check(cfg, err, err_size);
        if (r == -ENOMEM)
                snprintf(err, err_size, "out of memory");
        if (r == 0 && cfg->digests_file &&
            (r = ph_digests_load(cfg->digests_file, &cfg->digests, err, err_size)) < 0) {
                char why[1024];

                snprintf(why, sizeof(why), "DigestsFile=: %s", err);
                snprintf(err, err_size, "%s", why);
        }
        if (r < 0) {
                ph_config_unref(cfg);
                return r;
        }
        *ret = cfg;
        return 0;
}

/* --check-config: the file and the options are read (config_build), and
 * nothing else is done: no socket, no state directory, no scan. */
static void check_config_exit(const ph_config *cfg, int r)
{
        const char *path = cli.config ? cli.config : PH_CONFIG_DEFAULT_PATH;

        if (r < 0)
                exit(EXIT_FAILURE);
        if (cfg->n_plugins > 0)
                printf("plughostd: note: [Plugin NAME] sections are not matched against the plugins "
                       "installed here; the daemon warns of those naming no plugin after its first scan\n");
        printf("%s: configuration valid\n", path);
        exit(EXIT_SUCCESS);
}

static int parse_args(ph_daemon *d, int argc, char **argv)
{
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "plugin-dir", required_argument, NULL, 'p' },
                { "socket", required_argument, NULL, 's' },
                { "state-dir", required_argument, NULL, 'S' },
                { "log-level", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "check-config", no_argument, NULL, 'C' },
                { 0 },
        };
        char err[1024];
        int c, r;

        while ((c = getopt_long(argc, argv, "c:p:s:S:l:hV", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        if (!(cli.config = absolute(optarg)))
                                return -ENOMEM;
                        break;
                case 'p': {
                        /* Absolute, as PluginDirectory= must be: [Directory
                         * PATH] sections match it as written. Not resolved:
                         * the trust walk (ph_policy_open_dir) checks each
                         * component as named, symlinks too. */
                        char *abs;

                        if (optarg[0] != '/') {
                                fprintf(stderr, "plughostd: --plugin-dir %s: must be an absolute path\n",
                                        optarg);
                                exit(2);
                        }
                        abs = strdup(optarg);
                        if (!abs || ph__vec_push((void **)&cli.dirs, &cli.n_dirs, &cli.cap_dirs,
                                                 sizeof(char *), &abs) < 0)
                                return -ENOMEM;
                        break;
                }
                case 's':
                        if (!(cli.socket_path = absolute(optarg)))
                                return -ENOMEM;
                        break;
                case 'S':
                        if (!(cli.state_dir = absolute(optarg)))
                                return -ENOMEM;
                        break;
                case 'l':
                        cli.log_level = ph_log_level_from_string(optarg);
                        if (cli.log_level < 0) {
                                fprintf(stderr, "plughostd: unknown log level '%s'\n", optarg);
                                exit(2);
                        }
                        break;
                case 'h':
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                case 'V':
                        printf("plughostd %s\n", PACKAGE_VERSION);
                        exit(EXIT_SUCCESS);
                case 'C':
                        cli.check_config = true;
                        break;
                default:
                        usage(stderr);
                        exit(2);
                }
        }
        if (optind < argc) {
                fprintf(stderr, "plughostd: unexpected argument '%s'\n", argv[optind]);
                exit(2);
        }
        r = config_build(&d->cfg, err, sizeof(err));
        if (r < 0)
                fprintf(stderr, "plughostd: %s\n", err);
        if (cli.check_config)
                check_config_exit(d->cfg, r);
        return r;
}

/* Every module reads the current configuration through its own pointer. */
static void daemon_publish(ph_daemon *d, ph_config *cfg)
{
        ph_config *old = d->cfg;

        d->cfg = cfg;
        ph_ops_set_config(d->ops, cfg);
        ph_server_set_config(d->server, cfg);
        ph_scanner_set_config(d->scanner, cfg);
        ph_watch_set_config(d->watch, cfg);
        ph_log_set_level(cfg->log_level);
        ph_config_unref(old);
}

static void unknown_plugin_cb(const char *msg, void *userdata)
{
        (void)userdata;
        log_warning("config %s", msg);
}

/* Once a scan of every plugin directory is done, the plugin names are
 * known: a [Plugin NAME] section naming none of them is a likely typo. */
static void warn_unknown_plugins(ph_daemon *d)
{
        const char **names;
        size_t n = 0, cap = ph_registry_count(d->reg, NULL);

        if (d->cfg->n_plugins == 0)
                return;
        names = calloc(cap + 1, sizeof(*names));
        if (!names)
                return;
        for (ph_plugin *p = ph_registry_first(d->reg); p && n < cap; p = ph_registry_next(d->reg, p))
                names[n++] = p->name;
        ph_config_unknown_plugins(d->cfg, names, n, unknown_plugin_cb, NULL);
        free(names);
}

static void reload_done(void *userdata, const ph_scan_result *res)
{
        ph_daemon *d = userdata;

        (void)res;
        if (d->stopping)
                return;
        warn_unknown_plugins(d);
        ph_notify_reloaded(d);
}

/* SIGHUP: a new configuration, or the old one if the new one is wrong. */
static void daemon_reload(ph_daemon *d)
{
        ph_config *next, *old = d->cfg;
        char err[1024];
        int *map;

        if (config_build(&next, err, sizeof(err)) < 0) {
                log_err("reload: %s; keeping the running configuration", err);
                ph_notify_reloaded(d);
                return;
        }
        map = calloc(old->n_plugin_dirs + 1, sizeof(int));
        if (!map) {
                log_err("reload: out of memory; keeping the running configuration");
                ph_config_unref(next);
                ph_notify_reloaded(d);
                return;
        }
        /* The socket stays as bound, the state where it is. */
        if (strcmp(next->socket_path, old->socket_path) != 0)
                log_notice("reload: Socket= changes take effect at restart");
        if (strcmp(next->state_dir, old->state_dir) != 0)
                log_notice("reload: StateDirectory= changes take effect at restart");
        free(next->socket_path);
        free(next->state_dir);
        if (!(next->socket_path = strdup(old->socket_path)) ||
            !(next->state_dir = strdup(old->state_dir))) {
                log_err("reload: out of memory; keeping the running configuration");
                ph_config_unref(next);
                free(map);
                ph_notify_reloaded(d);
                return;
        }
        for (size_t i = 0; i < old->n_plugin_dirs; i++) {
                map[i] = -1;
                for (size_t j = 0; j < next->n_plugin_dirs; j++)
                        if (strcmp(old->plugin_dirs[i], next->plugin_dirs[j]) == 0)
                                map[i] = (int)j;
        }
        ph_config_ref(old);
        daemon_publish(d, next);
        ph_registry_remap_dirs(d->reg, map, (unsigned)old->n_plugin_dirs);
        ph_life_config_changed(d, old, next);
        ph_metrics_free(d);             /* a kept reply was cut for the old limits */
        ph_config_unref(old);
        free(map);
        if (ph_scan_all(d->scanner, reload_done, d) < 0)
                ph_notify_reloaded(d);
        log_info("reloaded: %zu plugin directories", d->cfg->n_plugin_dirs);
}

/* ---- start and stop ---- */

static void first_scan_done(void *userdata, const ph_scan_result *res)
{
        ph_daemon *d = userdata;
        size_t rejected, n = ph_registry_count(d->reg, &rejected);

        (void)res;
        /* A stop that came first wins: no READY=1 after STOPPING=1. */
        if (d->stopping)
                return;
        d->ready = true;
        warn_unknown_plugins(d);
        /* What clients had loaded before a stop or a crash is loaded again. */
        ph_life_restore(d);
        ph_server_start(d->server);
        ph_notify_ready(d);
        log_info("ready: %zu plugins, %zu files refused or shadowed, listening on %s", n, rejected,
                 ph_server_activated(d->server) ? "the socket passed by systemd" : d->cfg->socket_path);
}

static uint64_t stop_deadline;

static void stop_poll_cb(uv_timer_t *t)
{
        ph_daemon *d = t->data;
        /* ph_ops_running: isolated calls hold no pool thread, but drain too. */
        bool busy = ph_life_finalising(d) || ph_pool_busy(d->pool) > 0 ||
                    ph_ops_running(d->ops) > 0 || ph_scanner_busy(d->scanner);

        if (busy && uv_now(d->loop) < stop_deadline) {
                /* Draining slow calls: tell systemd how much longer. */
                ph_notify_extend((stop_deadline - uv_now(d->loop) + 1000) * 1000);
                return;
        }
        /* Whoever still waits is answered before we go. */
        ph_life_stop_end(d);
        uv_timer_stop(t);
        uv_stop(d->loop);
}

/* Every second: a plugin may have closed the listening socket, dup2'd
 * something over it or shut it down, or somebody removed or replaced the
 * socket file. Serving on without them would look alive to systemd and
 * reach no client: exit with a failure instead, for Restart=on-failure
 * (with socket activation, systemd still holds the socket for the next
 * start; but the file is systemd's to make again, so its loss is only
 * logged, once). _exit: plugin code may still run on other threads (see
 * main). And a plugin may have taken the daemon's signals: they are put
 * back (signals.c). */
static void listen_check_cb(uv_timer_t *t)
{
        static bool path_logged;
        ph_daemon *d = t->data;
        const char *path = NULL;
        int r;

        if (d->stopping)
                return;
        ph_signals_check();
        r = ph_server_check_listener(d->server);
        if (r < 0) {
                log_err("the listening socket was lost (%s): a plugin closed, replaced or shut it "
                        "down; exiting to be restarted", strerror(-r));
                _exit(EXIT_FAILURE);
        }
        r = ph_server_check_path(d->server, &path);
        if (r == 0 || path_logged)
                return;
        if (ph_server_activated(d->server)) {
                log_err("the socket file %s was removed or replaced (%s): clients cannot reach the "
                        "daemon until the socket unit makes it again", path, strerror(-r));
                path_logged = true;
                return;
        }
        log_err("the socket file %s was removed or replaced (%s): clients cannot reach the daemon; "
                "exiting to be restarted", path, strerror(-r));
        _exit(EXIT_FAILURE);
}

static void signal_cb(void *userdata, int signum)
{
        ph_daemon *d = userdata;

        if (signum == SIGHUP) {
                /* A SIGHUP handled after SIGTERM (both in one loop pass). */
                if (d->stopping)
                        return;
                ph_notify_reloading();
                daemon_reload(d);
                return;
        }
        if (d->stopping)
                return;
        d->stopping = true;
        ph_notify_stopping();
        ph_notify_stop(d);
        log_info("%s: stopping", strsignal(signum));
        ph_server_stop(d->server);
        ph_watch_free(d->watch);
        d->watch = NULL;
        ph_scanner_stop(d->scanner);
        ph_life_stop_begin(d);
        stop_deadline = uv_now(d->loop) + STOP_DRAIN_MS;
        uv_timer_start(&d->stop_timer, stop_poll_cb, 0, 50);
}

static void scan_apply_hook(void *userdata, unsigned dir_index, const char *dir, bool full,
                            ph_scanned *items, size_t n_items, ph_apply_counts *counts)
{
        ph_daemon *d = userdata;

        ph_registry_apply(d->reg, dir_index, dir, full, items, n_items, counts);
}

static void scan_writing_hook(void *userdata, unsigned dir_index, char ***ret_names, size_t *ret_n)
{
        ph_watch_writing(((ph_daemon *)userdata)->watch, dir_index, ret_names, ret_n);
}

static void watch_scan_dir_hook(void *userdata, unsigned dir_index)
{
        ph_scan_dir(((ph_daemon *)userdata)->scanner, dir_index);
}

static void watch_scan_names_hook(void *userdata, unsigned dir_index, char **names, size_t n)
{
        ph_scan_names(((ph_daemon *)userdata)->scanner, dir_index, names, n);
}

static int daemon_start(ph_daemon *d)
{
        ph_cache_config cc = { .garbage_cb = ph_life_garbage_cb, .init_cb = ph_ops_init_cb,
                               .check_cb = ph_ops_check_cb, .fini_cb = ph_life_fini_cb,
                               .userdata = d };
        ph_scanner_hooks sh = { .apply = scan_apply_hook, .writing = scan_writing_hook,
                                .userdata = d };
        ph_watch_hooks wh = { .scan_dir = watch_scan_dir_hook,
                              .scan_names = watch_scan_names_hook, .userdata = d };
        int r;

        d->loop = uv_default_loop();
        d->started_ms = ph_now_ms();
        ph_notify_start(d);
        if ((r = ph_cache_new(&cc, &d->cache)) < 0 ||
            (r = ph_registry_new(ph_life_registry_event, ph_life_held, ph_life_registry_rejected, d,
                                     &d->reg)) < 0 ||
            (r = ph_pool_new(d->loop, d->cfg->workers, POOL_QUEUE_MAX, &d->pool)) < 0 ||
            (r = ph_ops_new(d->loop, d->pool, d, &d->ops)) < 0 ||
            (r = ph_life_reaper_init(d)) < 0 ||
            (r = ph_scanner_new(d->loop, d->cfg, &sh, &d->scanner)) < 0) {
                log_err("cannot start: %s", strerror(-r));
                return r;
        }
        ph_ops_set_config(d->ops, d->cfg);
        d->rl_denied = ph_ratelimit_new("refused requests", 5, 50, 10000);
        /* Whoever may write a plugin directory could otherwise fill the
         * log with files: their lines are bounded by owner. */
        d->rl_rejected = ph_ratelimit_new("refused plugin files", 20, 100, 10000);
        r = ph_server_new(d->loop, d->cfg, ph_methods_dispatch, d, &d->server);
        if (r < 0)
                return r;
        /* After the socket: a second daemon on the same state is refused
         * before it touches the files. */
        r = ph_state_open(d->cfg->state_dir, &d->state);
        if (r < 0) {
                log_err("cannot start: %s", strerror(-r));
                return r;
        }
        r = ph_watch_new(d->loop, d->cfg, &wh, &d->watch);
        if (r < 0)
                log_warning("cannot watch the plugin directories: %s; use Rescan", strerror(-r));
        uv_timer_init(d->loop, &d->stop_timer);
        d->stop_timer.data = d;
        uv_timer_init(d->loop, &d->listen_timer);
        d->listen_timer.data = d;
        uv_timer_start(&d->listen_timer, listen_check_cb, LISTEN_CHECK_MS, LISTEN_CHECK_MS);
        r = ph_signals_new(d->loop, signal_cb, d, &d->signals);
        if (r < 0) {
                log_err("cannot read signals: %s", strerror(-r));
                return r;
        }
        return ph_scan_all(d->scanner, first_scan_done, d);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
        (void)arg;
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

int main(int argc, char **argv)
{
        ph_daemon d = { 0 };
        int r;

        signal(SIGPIPE, SIG_IGN);
        /* A full disk or a file size limit is an error to report, not death. */
        signal(SIGXFSZ, SIG_IGN);
        ph_log_init(PH_LOG_INFO);
        /* Before any thread starts, so that every thread inherits the mask
         * (signals.c), and a crash anywhere gets its line (crash.c). */
        r = ph_signals_block();
        if (r == 0)
                r = ph_crash_init();
        if (r < 0) {
                log_err("cannot set up signals: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        raise_nofile();
        if (parse_args(&d, argc, argv) < 0)
                return EXIT_FAILURE;
        /* Nothing depends on the directory we started in (paths are
         * absolute), and no mount is kept busy by us. */
        if (chdir("/") < 0)
                log_warning("chdir /: %s", strerror(errno));
        ph_log_set_level(d.cfg->log_level);
        r = daemon_start(&d);
        if (r < 0)
                return EXIT_FAILURE;
        uv_run(d.loop, UV_RUN_DEFAULT);

        if (ph_pool_busy(d.pool) > 0 || ph_scanner_busy(d.scanner)) {
                /* Threads still inside plugin code (or a scan) use the
                 * registry, the cache, the configuration and the code of
                 * their plugins: nothing can be freed or finalised under
                 * them, and exit() would run destructors they may be in. */
                ph_ops_log_running(d.ops, "stopping anyway");
                if (ph_life_reaping(&d))
                        log_warning("stopping anyway: %u finalising jobs still in plugin code (fini)",
                                    ph_life_reaping(&d));
                /* A stop is not a crash: no quarantine for an init that
                 * was merely slow. */
                ph_ops_clear_load_markers(d.ops);
                log_info("stopped, leaving %u operations and %u finalising jobs in plugin code",
                         ph_ops_running(d.ops), ph_life_reaping(&d));
                _exit(EXIT_SUCCESS);
        }
        /* Finalise what is loaded: drop the registry's plugins from the
         * cache and run fini here, on this thread, outside any plugin code. */
        ph_server_free(d.server);
        d.server = NULL;
        ph_life_shutdown(&d);
        ph_listing_free(&d);
        ph_metrics_free(&d);
        ph_registry_free(d.reg);
        ph_cache_free(d.cache);
        ph_pool_free(d.pool);
        ph_scanner_free(d.scanner);
        ph_state_free(d.state);
        ph_ratelimit_free(d.rl_denied);
        ph_ratelimit_free(d.rl_rejected);
        ph_ops_free(d.ops);
        ph_signals_free(d.signals);
        uv_walk(d.loop, close_walk_cb, NULL);
        uv_run(d.loop, UV_RUN_DEFAULT);
        uv_loop_close(d.loop);
        ph_config_unref(d.cfg);
        log_info("stopped");
        return EXIT_SUCCESS;
}
