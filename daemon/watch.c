/* The watcher: inotify on every plugin directory, read through a uv_poll on
 * the loop. A file renamed into place is scanned at once; a file written in
 * place is scanned when its writer closes it, and until then full scans
 * leave it alone. Deleted files leave. A directory that does not exist yet,
 * or goes away, is tried again every WATCH_RETRY_MS; an event queue
 * overflow rescans everything. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "scan.h"
#include "vec.h"
#include "watch.h"

#define WATCH_RETRY_MS 500
#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | \
                    IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | \
                    IN_EXCL_UNLINK)
/* Files written in place at once, per directory, that we track. */
#define WATCH_WRITING_MAX 4096

/* A set of names, kept small. */
typedef struct strv {
        char **v;
        size_t n, cap;
} strv;

typedef struct watch_dir {
        int wd;                         /* -1: not watched (missing) */
        strv writing;                   /* names open for writing */
        strv pending;                   /* names to scan after this read */
        bool rescan;                    /* the whole directory */
} watch_dir;

struct ph_watch {
        const ph_config *cfg;           /* borrowed: the daemon's current one */
        ph_watch_hooks hooks;
        int fd;
        uv_poll_t poll;
        uv_timer_t retry;
        watch_dir *dirs;
        size_t n_dirs;
        unsigned closing;               /* handles still closing (ph_watch_free) */
};

static bool strv_has(const strv *l, const char *s)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i], s) == 0)
                        return true;
        return false;
}

/* Returns false when s could not be kept (the set is full). */
static bool strv_add(strv *l, const char *s)
{
        char *copy;

        if (strv_has(l, s))
                return true;
        if (l->n >= WATCH_WRITING_MAX || !(copy = strdup(s)))
                return false;
        if (ph__vec_push((void **)&l->v, &l->n, &l->cap, sizeof(char *), &copy) < 0) {
                free(copy);
                return false;
        }
        return true;
}

static void strv_del(strv *l, const char *s)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i], s) == 0) {
                        free(l->v[i]);
                        l->v[i] = l->v[--l->n];
                        return;
                }
}

static void strv_clear(strv *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        memset(l, 0, sizeof(*l));
}

void ph_watch_writing(ph_watch *w, unsigned dir_index, char ***ret_names, size_t *ret_n)
{
        const strv *from = w && dir_index < w->n_dirs ? &w->dirs[dir_index].writing : NULL;
        char **v = from && from->n ? calloc(from->n, sizeof(char *)) : NULL;
        size_t n = 0;

        /* Copied as they are: a set already (strv_add on each would compare
         * every name with every other, 4096 of them at most). */
        for (size_t i = 0; v && i < from->n; i++)
                if ((v[n] = strdup(from->v[i])))
                        n++;
        *ret_names = v;
        *ret_n = n;
}

/* Tries to watch every directory not watched yet; returns how many are
 * still missing. A directory that appears is scanned whole. */
static size_t watch_add_missing(ph_watch *w)
{
        size_t missing = 0;

        for (size_t i = 0; i < w->n_dirs; i++) {
                watch_dir *wd = &w->dirs[i];

                if (wd->wd >= 0)
                        continue;
                wd->wd = inotify_add_watch(w->fd, w->cfg->plugin_dirs[i], WATCH_MASK);
                if (wd->wd < 0) {
                        if (errno != ENOENT && errno != ENOTDIR)
                                log_warning("cannot watch %s: %s", w->cfg->plugin_dirs[i],
                                            strerror(errno));
                        missing++;
                        continue;
                }
                w->hooks.scan_dir(w->hooks.userdata, (unsigned)i);
        }
        return missing;
}

static void watch_retry_cb(uv_timer_t *t)
{
        ph_watch *w = t->data;

        if (watch_add_missing(w) == 0)
                uv_timer_stop(t);
}

/* A name that appeared with IN_CREATE: a new empty file is being written
 * (its writer will close it); a symlink, or a hard link to an existing file
 * (ln), is complete already and would see no close. One lstat of directory
 * metadata, on the loop. A file copied in with cp -l or ln is the hard link. */
static bool watch_created_complete(ph_watch *w, unsigned index, const char *name)
{
        char path[4096];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", w->cfg->plugin_dirs[index], name);
        if (lstat(path, &st) < 0)
                return false;
        /* Not "has data": a writer's first bytes may land before we look. */
        return S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink > 1);
}

static watch_dir *watch_find(ph_watch *w, int wd, unsigned *ret_index)
{
        for (size_t i = 0; i < w->n_dirs; i++)
                if (w->dirs[i].wd == wd) {
                        *ret_index = (unsigned)i;
                        return &w->dirs[i];
                }
        return NULL;
}

static void watch_event(ph_watch *w, const struct inotify_event *ev)
{
        unsigned index;
        watch_dir *wd;

        if (ev->mask & IN_Q_OVERFLOW) {
                /* Events were lost, writers' closes among them: forget who
                 * was writing (a file still open is scanned now and again
                 * at its close) and look at everything. */
                log_notice("inotify queue overflow: rescanning every plugin directory");
                for (size_t i = 0; i < w->n_dirs; i++) {
                        strv_clear(&w->dirs[i].writing);
                        w->dirs[i].rescan = true;
                }
                return;
        }
        wd = watch_find(w, ev->wd, &index);
        if (!wd)
                return;
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                /* The directory went away: forget it, and look for it again. */
                if (!(ev->mask & IN_IGNORED))
                        inotify_rm_watch(w->fd, wd->wd);
                wd->wd = -1;
                wd->rescan = true;
                strv_clear(&wd->writing);
                uv_timer_start(&w->retry, watch_retry_cb, WATCH_RETRY_MS, WATCH_RETRY_MS);
                return;
        }
        if (!ev->len && (ev->mask & IN_ATTRIB)) {
                /* The directory's own mode or owner: the trust verdict of
                 * every file in it may change. */
                wd->rescan = true;
                return;
        }
        if (!ev->len || (ev->mask & IN_ISDIR) || ph_scan_ignored_name(ev->name))
                return;
        if ((ev->mask & IN_CREATE) && watch_created_complete(w, index, ev->name)) {
                /* ln, ln -s: complete the moment they appear. */
        } else if (ev->mask & (IN_CREATE | IN_MODIFY)) {
                /* Being written: not ours until the writer closes it. */
                strv_add(&wd->writing, ev->name);
                return;
        }
        if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))
                strv_del(&wd->writing, ev->name);
        if ((ev->mask & IN_ATTRIB) && strv_has(&wd->writing, ev->name))
                return;
        /* More names in one read than we keep: the whole directory then. */
        if (!wd->rescan && !strv_add(&wd->pending, ev->name))
                wd->rescan = true;
}

/* After a read: one scan per directory that had events. */
static void watch_flush(ph_watch *w)
{
        for (size_t i = 0; i < w->n_dirs; i++) {
                watch_dir *wd = &w->dirs[i];

                if (wd->rescan) {
                        wd->rescan = false;
                        strv_clear(&wd->pending);
                        w->hooks.scan_dir(w->hooks.userdata, (unsigned)i);
                } else if (wd->pending.n) {
                        /* All the names of one read in one go: a rename
                         * inside the directory is one change. */
                        w->hooks.scan_names(w->hooks.userdata, (unsigned)i, wd->pending.v, wd->pending.n);
                        free(wd->pending.v);
                        memset(&wd->pending, 0, sizeof(wd->pending));
                }
        }
}

static void watch_poll_cb(uv_poll_t *p, int status, int events)
{
        ph_watch *w = p->data;
        char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n;

        (void)events;
        if (status < 0)
                return;
        while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
                for (char *at = buf; at < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)at;

                        watch_event(w, ev);
                        at += sizeof(*ev) + ev->len;
                }
        }
        watch_flush(w);
}

static int watch_dirs_alloc(ph_watch *w)
{
        w->n_dirs = w->cfg->n_plugin_dirs;
        w->dirs = calloc(w->n_dirs ? w->n_dirs : 1, sizeof(*w->dirs));
        if (!w->dirs)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_dirs; i++)
                w->dirs[i].wd = -1;
        return 0;
}

static void watch_dirs_free(ph_watch *w)
{
        for (size_t i = 0; i < w->n_dirs; i++) {
                if (w->dirs[i].wd >= 0)
                        inotify_rm_watch(w->fd, w->dirs[i].wd);
                strv_clear(&w->dirs[i].writing);
                strv_clear(&w->dirs[i].pending);
        }
        free(w->dirs);
        w->dirs = NULL;
        w->n_dirs = 0;
}

int ph_watch_new(uv_loop_t *loop, const ph_config *cfg, const ph_watch_hooks *hooks,
                 ph_watch **ret)
{
        ph_watch *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->cfg = cfg;
        w->hooks = *hooks;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0 || watch_dirs_alloc(w) < 0) {
                int r = w->fd < 0 ? -errno : -ENOMEM;

                if (w->fd >= 0)
                        close(w->fd);
                free(w);
                return r;
        }
        uv_poll_init(loop, &w->poll, w->fd);
        w->poll.data = w;
        uv_timer_init(loop, &w->retry);
        w->retry.data = w;
        uv_poll_start(&w->poll, UV_READABLE, watch_poll_cb);
        /* Watches first, so nothing falls between them and the first scan. */
        for (size_t i = 0; i < w->n_dirs; i++) {
                w->dirs[i].wd = inotify_add_watch(w->fd, cfg->plugin_dirs[i], WATCH_MASK);
                if (w->dirs[i].wd < 0)
                        log_notice("plugin directory %s: %s; watching for it", cfg->plugin_dirs[i],
                                   strerror(errno));
        }
        for (size_t i = 0; i < w->n_dirs; i++)
                if (w->dirs[i].wd < 0) {
                        uv_timer_start(&w->retry, watch_retry_cb, WATCH_RETRY_MS, WATCH_RETRY_MS);
                        break;
                }
        *ret = w;
        return 0;
}

void ph_watch_set_config(ph_watch *w, const ph_config *cfg)
{
        if (!w)
                return;
        watch_dirs_free(w);
        w->cfg = cfg;
        if (watch_dirs_alloc(w) < 0)
                return;
        uv_timer_start(&w->retry, watch_retry_cb, 0, WATCH_RETRY_MS);
}

/* Both handles live inside w: it goes when the last one is closed,
 * whatever order libuv finishes them in. */
static void watch_close_cb(uv_handle_t *h)
{
        ph_watch *w = h->data;

        if (--w->closing > 0)
                return;
        close(w->fd);
        free(w);
}

void ph_watch_free(ph_watch *w)
{
        if (!w)
                return;
        watch_dirs_free(w);
        uv_poll_stop(&w->poll);
        w->closing = 2;
        uv_close((uv_handle_t *)&w->retry, watch_close_cb);
        uv_close((uv_handle_t *)&w->poll, watch_close_cb);
}
