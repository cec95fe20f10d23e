/* Directory and file scans on libuv's thread pool, one job at a time in
 * request order (so an older listing never lands after a newer one); each
 * result is applied to the registry on the loop thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "policy.h"

typedef struct scan_batch {
        ph_scan_done_fn done;
        void *ud;
        unsigned pending, added, changed, removed;
} scan_batch;

struct scan_job {
        uv_work_t work;
        ph_daemon *d;
        scan_job *next;
        scan_batch *batch;              /* NULL for watcher jobs */
        unsigned dir_index;
        char *dir;
        bool full;                      /* the whole directory, else names[] */
        char **names;
        size_t n_names;
        char **keep;                    /* being written: leave as they are */
        size_t n_keep;
        int error;                      /* opendir failure, -errno */
        char dir_trust[256];            /* the directory chain fails the policy */
        ph_scanned *items;              /* full: what is there; else one per name */
        size_t n_items;
        bool *present;                  /* files: whether names[i] exists */
};

bool ph_scan_ignored_name(const char *name)
{
        static const char *const suffixes[] = {
                ".tmp", "~", ".part", ".swp", ".swx", ".dpkg-new", ".dpkg-tmp", ".dpkg-old",
                ".dpkg-dist", ".dpkg-bak", ".rpmnew", ".rpmsave", ".ucf-new", ".crdownload",
        };
        size_t n = strlen(name);

        if (name[0] == '.' || n == 0)
                return true;
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                size_t m = strlen(suffixes[i]);
                if (n >= m && strcmp(name + n - m, suffixes[i]) == 0)
                        return true;
        }
        return false;
}

static void id_from_stat(ph_file_id *id, const struct stat *st)
{
        id->dev = st->st_dev;
        id->ino = st->st_ino;
        id->size = st->st_size;
        id->mtime = st->st_mtim;
        id->ctime = st->st_ctim;
}

static void scan_one(const scan_job *job, int dirfd, const char *name, ph_scanned *it)
{
        struct stat st;
        int fd;

        memset(it, 0, sizeof(*it));
        it->name = strdup(name);
        fd = ph_scan_open(dirfd, name);
        if (fd < 0) {
                /* A symlink, unreadable: the verdict says which. */
                ph_scan_path(dirfd, name, &it->scan);
                if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        id_from_stat(&it->id, &st);
                return;
        }
        if (fstat(fd, &st) == 0)
                id_from_stat(&it->id, &st);
        if (ph_scan_fd(fd, &it->scan) < 0) {
                it->scan.reason = PH_REASON_IO;
                strcpy(it->scan.message, "out of memory");
        }
        /* The trust policy, on what was opened (not on the path). */
        if (it->scan.reason == PH_REASON_OK) {
                if (job->dir_trust[0])
                        snprintf(it->trust, sizeof(it->trust), "%s", job->dir_trust);
                else
                        ph_policy_check_file(&st, it->trust, sizeof(it->trust));
        }
        close(fd);
}

static bool job_keeps(const scan_job *job, const char *name)
{
        for (size_t i = 0; i < job->n_keep; i++)
                if (strcmp(job->keep[i], name) == 0)
                        return true;
        return false;
}

static bool is_dir(int dirfd, const char *name)
{
        struct stat st;

        return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static void scan_listing(scan_job *job, int dirfd)
{
        size_t cap = 0;
        struct dirent *de;
        DIR *dir = fdopendir(dirfd);

        if (!dir) {
                job->error = -errno;
                close(dirfd);
                return;
        }
        while ((de = readdir(dir))) {
                ph_scanned *it;

                if (ph_scan_ignored_name(de->d_name) || de->d_type == DT_DIR ||
                    (de->d_type == DT_UNKNOWN && is_dir(dirfd, de->d_name)))
                        continue;
                if (job->n_items == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        ph_scanned *grown = realloc(job->items, ncap * sizeof(*grown));
                        if (!grown)
                                break;
                        job->items = grown;
                        cap = ncap;
                }
                it = &job->items[job->n_items++];
                if (job_keeps(job, de->d_name)) {
                        memset(it, 0, sizeof(*it));
                        it->name = strdup(de->d_name);
                        it->keep = true;
                } else {
                        scan_one(job, dirfd, de->d_name, it);
                }
        }
        closedir(dir);
}

static void scan_names(scan_job *job, int dirfd)
{
        job->items = calloc(job->n_names, sizeof(*job->items));
        job->present = calloc(job->n_names, sizeof(bool));
        if (!job->items || !job->present) {
                job->error = -ENOMEM;
                close(dirfd);
                return;
        }
        for (size_t i = 0; i < job->n_names; i++) {
                struct stat st;

                if (fstatat(dirfd, job->names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
                        continue;       /* gone */
                job->present[i] = true;
                if (job_keeps(job, job->names[i])) {
                        /* Written again since the event: left as it is until closed. */
                        job->items[i].name = strdup(job->names[i]);
                        job->items[i].keep = true;
                        continue;
                }
                scan_one(job, dirfd, job->names[i], &job->items[i]);
        }
        job->n_items = job->n_names;
        close(dirfd);
}

static void scan_work_cb(uv_work_t *w)
{
        scan_job *job = w->data;
        int dirfd = open(job->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dirfd < 0) {
                job->error = -errno;
                return;
        }
        if (ph_policy_check_dir(job->dir, job->dir_trust, sizeof(job->dir_trust)) == -EPERM)
                ; /* every plugin in it is refused, with this reason */
        else
                job->dir_trust[0] = '\0';
        if (job->full)
                scan_listing(job, dirfd);
        else
                scan_names(job, dirfd);
}

static void scan_next(ph_daemon *d);

static void job_free(scan_job *job)
{
        for (size_t i = 0; i < job->n_items; i++) {
                free(job->items[i].name);
                ph_scan_clear(&job->items[i].scan);
        }
        for (size_t i = 0; i < job->n_names; i++)
                free(job->names[i]);
        for (size_t i = 0; i < job->n_keep; i++)
                free(job->keep[i]);
        free(job->names);
        free(job->keep);
        free(job->items);
        free(job->present);
        free(job->dir);
        free(job);
}

static void scan_apply(scan_job *job, unsigned *added, unsigned *changed, unsigned *removed)
{
        ph_daemon *d = job->d;
        unsigned a, c, r;

        /* A directory that is gone is an empty one: its plugins leave. */
        if (job->error < 0 && job->error != -ENOENT && job->error != -ENOTDIR)
                log_warning("plugin directory %s: %s", job->dir, strerror(-job->error));
        if (job->dir_index >= d->cfg.n_plugin_dirs ||
            strcmp(d->cfg.plugin_dirs[job->dir_index], job->dir) != 0)
                return;         /* the configuration changed meanwhile */
        if (job->error < 0) {
                /* Unreadable: what we know stays until it can be read again. */
                if (job->error == -ENOENT || job->error == -ENOTDIR)
                        ph_registry_apply_dir(d->reg, job->dir_index, job->dir, NULL, 0,
                                              added, changed, removed);
                return;
        }
        if (job->full) {
                ph_registry_apply_dir(d->reg, job->dir_index, job->dir, job->items, job->n_items,
                                      added, changed, removed);
                return;
        }
        for (size_t i = 0; i < job->n_names; i++) {
                ph_registry_apply_file(d->reg, job->dir_index, job->dir, job->names[i],
                                       job->present[i] ? &job->items[i] : NULL, &a, &c, &r);
                *added += a;
                *changed += c;
                *removed += r;
        }
}

static void scan_after_cb(uv_work_t *w, int status)
{
        scan_job *job = w->data;
        ph_daemon *d = job->d;
        scan_batch *b = job->batch;
        unsigned added = 0, changed = 0, removed = 0;

        (void)status;
        if (!d->reg) {
                /* The stop did not wait for us (main.c): nothing to apply to. */
                job_free(job);
                return;
        }
        scan_apply(job, &added, &changed, &removed);
        job_free(job);
        d->scan_running = false;
        if (b) {
                b->added += added;
                b->changed += changed;
                b->removed += removed;
                if (--b->pending == 0) {
                        if (b->done)
                                b->done(d, b->added, b->changed, b->removed, b->ud);
                        free(b);
                }
        }
        scan_next(d);
}

/* Starts the next queued job if none runs. */
static void scan_next(ph_daemon *d)
{
        scan_job *job = d->scanq_head;

        if (d->scan_running || !job)
                return;
        d->scanq_head = job->next;
        if (!d->scanq_head)
                d->scanq_tail = NULL;
        /* What is being written right now is left alone. */
        ph_watch_writing(d->watch, job->dir_index, &job->keep, &job->n_keep);
        job->work.data = job;
        d->scan_running = true;
        if (uv_queue_work(d->loop, &job->work, scan_work_cb, scan_after_cb) < 0) {
                d->scan_running = false;
                job->error = -EAGAIN;
                scan_after_cb(&job->work, 0);
        }
}

static scan_job *job_new(ph_daemon *d, unsigned dir_index)
{
        scan_job *job = calloc(1, sizeof(*job));

        if (!job)
                return NULL;
        job->d = d;
        job->dir_index = dir_index;
        job->dir = strdup(d->cfg.plugin_dirs[dir_index]);
        if (!job->dir) {
                free(job);
                return NULL;
        }
        return job;
}

static void job_enqueue(ph_daemon *d, scan_job *job)
{
        if (d->scanq_tail)
                d->scanq_tail->next = job;
        else
                d->scanq_head = job;
        d->scanq_tail = job;
        scan_next(d);
}

int ph_scan_all(ph_daemon *d, ph_scan_done_fn done, void *ud)
{
        scan_batch *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->done = done;
        b->ud = ud;
        b->pending = 1;         /* held until every job is queued */
        for (unsigned i = 0; i < d->cfg.n_plugin_dirs; i++) {
                scan_job *job = job_new(d, i);

                if (!job)
                        continue;
                job->full = true;
                job->batch = b;
                b->pending++;
                job_enqueue(d, job);
        }
        if (--b->pending == 0) {
                if (done)
                        done(d, 0, 0, 0, ud);
                free(b);
        }
        return 0;
}

int ph_scan_dir(ph_daemon *d, unsigned dir_index)
{
        scan_job *job = dir_index < d->cfg.n_plugin_dirs ? job_new(d, dir_index) : NULL;

        if (!job)
                return -ENOMEM;
        job->full = true;
        job_enqueue(d, job);
        return 0;
}

int ph_scan_files(ph_daemon *d, unsigned dir_index, char **names, size_t n_names)
{
        scan_job *job = dir_index < d->cfg.n_plugin_dirs ? job_new(d, dir_index) : NULL;

        if (!job) {
                for (size_t i = 0; i < n_names; i++)
                        free(names[i]);
                free(names);
                return -ENOMEM;
        }
        job->names = names;
        job->n_names = n_names;
        job_enqueue(d, job);
        return 0;
}

void ph_scan_drop_queue(ph_daemon *d)
{
        scan_job *job, *next;

        for (job = d->scanq_head; job; job = next) {
                next = job->next;
                if (job->batch && --job->batch->pending == 0)
                        free(job->batch);
                job_free(job);
        }
        d->scanq_head = d->scanq_tail = NULL;
}
