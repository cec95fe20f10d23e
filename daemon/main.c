/* plughostd: the plugin host daemon. Parses its options and configuration,
 * then runs the libuv loop until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

/* How long a stop waits for calls in flight before finalising anyway. */
#define STOP_DRAIN_MS 10000
/* Jobs that may wait for a plugin thread before callers get Busy. */
#define POOL_QUEUE_MAX 4096

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
                "  -h, --help              show this help\n"
                "  -V, --version           show the version\n",
                PH_CONFIG_DEFAULT_PATH, PH_DEFAULT_SOCKET, PH_DEFAULT_STATE_DIR);
}

/* What the command line said, applied again on every configuration reload. */
static struct {
        const char *config;
        char **dirs;
        size_t n_dirs;
        const char *socket_path, *state_dir;
        int log_level;                  /* -1: from the file */
} cli = { .log_level = -1 };

/* Builds a configuration from defaults, the file and the command line. */
static int config_build(ph_config *cfg, char *err, size_t err_size)
{
        bool replaced = false;
        int r;

        r = ph_config_defaults(cfg);
        if (r == 0)
                r = ph_config_load(cfg, cli.config ? cli.config : PH_CONFIG_DEFAULT_PATH,
                                   cli.config != NULL, err, err_size);
        for (size_t i = 0; i < cli.n_dirs && r == 0; i++)
                r = ph_config_add_dir(cfg, cli.dirs[i], &replaced);
        if (r == 0 && cli.socket_path &&
            (free(cfg->socket_path), !(cfg->socket_path = strdup(cli.socket_path))))
                r = -ENOMEM;
        if (r == 0 && cli.state_dir &&
            (free(cfg->state_dir), !(cfg->state_dir = strdup(cli.state_dir))))
                r = -ENOMEM;
        if (cli.log_level >= 0)
                cfg->log_level = cli.log_level;
        if (r == -ENOMEM)
                snprintf(err, err_size, "out of memory");
        if (r < 0)
                ph_config_clear(cfg);
        return r;
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
                { 0 },
        };
        char err[1024];
        int c, r;

        while ((c = getopt_long(argc, argv, "c:p:s:S:l:hV", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        cli.config = optarg;
                        break;
                case 'p': {
                        /* Resolved once: a symlinked directory is followed
                         * now, never again. One that does not exist yet is
                         * watched for. */
                        char *abs = realpath(optarg, NULL), **grown;

                        grown = realloc(cli.dirs, (cli.n_dirs + 1) * sizeof(char *));
                        if (!grown || !(grown[cli.n_dirs] = abs ? abs : strdup(optarg)))
                                return -ENOMEM;
                        cli.dirs = grown;
                        cli.n_dirs++;
                        break;
                }
                case 's':
                        cli.socket_path = optarg;
                        break;
                case 'S':
                        cli.state_dir = optarg;
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
        return r;
}

static void reload_done(ph_daemon *d, unsigned added, unsigned changed, unsigned removed, void *ud)
{
        (void)added;
        (void)changed;
        (void)removed;
        (void)ud;
        ph_notify_reloaded(d);
}

/* The pins of DigestsFile=, or NULL without one. */
static int daemon_load_digests(ph_daemon *d, ph_digests **ret)
{
        char err[1024];
        int r;

        *ret = NULL;
        if (!d->cfg.digests_file)
                return 0;
        r = ph_digests_load(d->cfg.digests_file, ret, err, sizeof(err));
        if (r < 0)
                log_err("DigestsFile=: %s", err);
        return r;
}

/* SIGHUP: a new configuration, or the old one if the new one is wrong. */
static void daemon_reload(ph_daemon *d)
{
        ph_config next;
        char err[1024];
        int *map;

        if (config_build(&next, err, sizeof(err)) < 0) {
                log_err("reload: %s; keeping the running configuration", err);
                ph_notify_reloaded(d);
                return;
        }
        if (strcmp(next.socket_path, d->cfg.socket_path) != 0)
                log_notice("reload: Socket= changes take effect at restart");
        map = calloc(d->cfg.n_plugin_dirs + 1, sizeof(int));
        if (!map) {
                ph_config_clear(&next);
                return;
        }
        for (size_t i = 0; i < d->cfg.n_plugin_dirs; i++) {
                map[i] = -1;
                for (size_t j = 0; j < next.n_plugin_dirs; j++)
                        if (strcmp(d->cfg.plugin_dirs[i], next.plugin_dirs[j]) == 0)
                                map[i] = (int)j;
        }
        /* The socket stays as it was bound. */
        free(next.socket_path);
        next.socket_path = d->cfg.socket_path;
        d->cfg.socket_path = NULL;
        /* Queued scans stay queued: their batches answer Rescans and end
         * reloads, and scan_apply ignores a directory that moved or left. */
        {
                unsigned n_old = (unsigned)d->cfg.n_plugin_dirs;

                ph_config_clear(&d->cfg);
                d->cfg = next;
                ph_registry_remap_dirs(d->reg, map, n_old);
        }
        free(map);
        {
                ph_digests *dg, *old;

                if (daemon_load_digests(d, &dg) < 0)
                        log_err("reload: keeping the previous digests");
                else {
                        pthread_mutex_lock(&d->digests_lock);
                        old = d->digests;
                        d->digests = dg;
                        pthread_mutex_unlock(&d->digests_lock);
                        ph_digests_unref(old);
                }
        }
        ph_log_set_level(d->cfg.log_level);
        ph_watch_reconfigure(d->watch);
        ph_scan_all(d, reload_done, NULL);
        log_info("reloaded: %zu plugin directories", d->cfg.n_plugin_dirs);
}

/* ---- garbage: finalising retired instances on the plugin pool ---- */

typedef struct reap_job {
        ph_job job;
        ph_daemon *d;
} reap_job;

static void reap_work(ph_job *job)
{
        ph_cache_reap(((reap_job *)job)->d->cache);
}

static void reap_done(ph_job *job)
{
        reap_job *rj = (reap_job *)job;

        rj->d->reap_running = false;
        free(rj);
}

static void reap_async_cb(uv_async_t *a)
{
        ph_daemon *d = a->data;
        reap_job *rj;

        /* One reap at a time; a later signal finds the next batch. */
        if (d->reap_running || !(rj = calloc(1, sizeof(*rj))))
                return;
        rj->d = d;
        rj->job.work = reap_work;
        rj->job.done = reap_done;
        if (ph_pool_submit(d->pool, &rj->job) < 0) {
                free(rj);
                return;
        }
        d->reap_running = true;
}

void ph_daemon_garbage_cb(void *ud)
{
        ph_daemon *d = ud;

        uv_async_send(&d->reap_async);
}

/* ---- start and stop ---- */

static void first_scan_done(ph_daemon *d, unsigned added, unsigned changed, unsigned removed, void *ud)
{
        size_t loaded, rejected, n = ph_registry_count(d->reg, &loaded, &rejected);

        (void)added;
        (void)changed;
        (void)removed;
        (void)ud;
        d->ready = true;
        /* What clients had loaded before a stop or a crash is loaded again. */
        ph_methods_restore(d);
        ph_server_start(d->server);
        ph_notify_ready(d);
        log_info("ready: %zu plugins, %zu files refused or shadowed, listening on %s", n, rejected,
                 ph_server_activated(d->server) ? "the socket passed by systemd" : d->cfg.socket_path);
}

static uint64_t stop_deadline;

static void stop_poll_cb(uv_timer_t *t)
{
        ph_daemon *d = t->data;

        /* A scan applies its listing to the registry when it ends: it must
         * not end after the registry is freed. */
        if ((ph_pool_busy(d->pool) > 0 || d->scan_running) && uv_now(d->loop) < stop_deadline) {
                /* Draining slow calls: tell systemd how much longer. */
                ph_notify_extend((stop_deadline - uv_now(d->loop) + 1000) * 1000);
                return;
        }
        if (ph_pool_busy(d->pool) > 0)
                log_warning("stopping with %u operations still running in plugin code",
                            ph_pool_busy(d->pool));
        uv_timer_stop(t);
        uv_stop(d->loop);
}

static void signal_cb(uv_signal_t *s, int signum)
{
        ph_daemon *d = s->data;

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
        ph_scan_drop_queue(d);
        stop_deadline = uv_now(d->loop) + STOP_DRAIN_MS;
        uv_timer_start(&d->stop_timer, stop_poll_cb, 0, 50);
}

static int daemon_start(ph_daemon *d)
{
        ph_cache_config cc = { .garbage_cb = ph_daemon_garbage_cb, .init_cb = ph_daemon_init_cb,
                               .check_cb = ph_daemon_check_cb, .userdata = d };
        int r;

        d->loop = uv_default_loop();
        d->started_ms = ph_now_ms();
        pthread_mutex_init(&d->digests_lock, NULL);
        r = daemon_load_digests(d, &d->digests);
        if (r < 0)
                return r;
        ph_notify_start(d);
        if (mkdir(d->cfg.state_dir, 0750) < 0 && errno != EEXIST)
                log_warning("state directory %s: %s", d->cfg.state_dir, strerror(errno));
        if ((r = ph_cache_new(&cc, &d->cache)) < 0 ||
            (r = ph_registry_new(ph_methods_on_event, d, &d->reg)) < 0 ||
            (r = ph_pool_new(d->loop, d->cfg.workers, POOL_QUEUE_MAX, &d->pool)) < 0) {
                log_err("cannot start: %s", strerror(-r));
                return r;
        }
        uv_async_init(d->loop, &d->reap_async, reap_async_cb);
        d->reap_async.data = d;
        ph_state_load(d);
        r = ph_server_new(d, &d->server);
        if (r < 0)
                return r;
        r = ph_watch_new(d, &d->watch);
        if (r < 0)
                log_warning("cannot watch the plugin directories: %s; use Rescan", strerror(-r));
        uv_timer_init(d->loop, &d->stop_timer);
        d->stop_timer.data = d;
        uv_signal_init(d->loop, &d->sigterm);
        uv_signal_init(d->loop, &d->sigint);
        uv_signal_init(d->loop, &d->sighup);
        d->sigterm.data = d->sigint.data = d->sighup.data = d;
        uv_signal_start(&d->sigterm, signal_cb, SIGTERM);
        uv_signal_start(&d->sigint, signal_cb, SIGINT);
        uv_signal_start(&d->sighup, signal_cb, SIGHUP);
        return ph_scan_all(d, first_scan_done, NULL);
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
        bool stuck;
        int r;

        signal(SIGPIPE, SIG_IGN);
        /* A full disk or a file size limit is an error to report, not death. */
        signal(SIGXFSZ, SIG_IGN);
        ph_log_init(PH_LOG_INFO);
        if (parse_args(&d, argc, argv) < 0)
                return EXIT_FAILURE;
        ph_log_set_level(d.cfg.log_level);
        r = daemon_start(&d);
        if (r < 0) {
                ph_config_clear(&d.cfg);
                return EXIT_FAILURE;
        }
        uv_run(d.loop, UV_RUN_DEFAULT);

        /* Finalise what is loaded: drop the registry's plugins from the
         * cache and run fini here, on this thread, outside any plugin code. */
        ph_server_free(d.server);
        d.server = NULL;
        /* A thread stuck in plugin code still holds its instance (and may
         * be checking digests): then those are left to the exit rather than
         * freed under it. */
        stuck = ph_pool_busy(d.pool) > 0;
        if (!stuck)
                ph_cache_free(d.cache);
        ph_pool_free(d.pool);
        ph_registry_free(d.reg);
        for (size_t i = 0; i < d.n_wanted; i++)
                free(d.wanted[i]);
        free(d.wanted);
        json_decref(d.quarantine);
        free(d.uid_calls);
        if (!stuck)
                ph_digests_unref(d.digests);
        d.reg = NULL;           /* for a scan that outlived the drain (scan.c) */
        uv_walk(d.loop, close_walk_cb, NULL);
        uv_run(d.loop, UV_RUN_DEFAULT);
        uv_loop_close(d.loop);
        ph_config_clear(&d.cfg);
        log_info("stopped");
        return EXIT_SUCCESS;
}
