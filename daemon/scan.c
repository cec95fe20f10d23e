/* Directory scans: each plugin directory is read and every file in it
 * scanned on libuv's thread pool; the listing is applied to the registry
 * on the loop thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

typedef struct scan_batch {
        ph_daemon *d;
        ph_scan_done_fn done;
        void *ud;
        unsigned pending, added, changed, removed;
} scan_batch;

typedef struct scan_job {
        uv_work_t work;
        scan_batch *batch;
        unsigned dir_index;
        char *dir;
        int error;                      /* opendir failure, -errno */
        ph_scanned *items;
        size_t n_items;
} scan_job;

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

static void scan_one(int dirfd, const char *name, ph_scanned *it)
{
        struct stat st;
        int fd;

        memset(it, 0, sizeof(*it));
        it->name = strdup(name);
        fd = ph_scan_open(dirfd, name);
        if (fd < 0) {
                /* Vanished, a symlink, unreadable: the verdict says which. */
                ph_scan_path(dirfd, name, &it->scan);
                if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                        it->id.dev = st.st_dev;
                        it->id.ino = st.st_ino;
                        it->id.size = st.st_size;
                        it->id.mtime = st.st_mtim;
                        it->id.ctime = st.st_ctim;
                }
                return;
        }
        if (fstat(fd, &st) == 0) {
                it->id.dev = st.st_dev;
                it->id.ino = st.st_ino;
                it->id.size = st.st_size;
                it->id.mtime = st.st_mtim;
                it->id.ctime = st.st_ctim;
        }
        if (ph_scan_fd(fd, &it->scan) < 0) {
                it->scan.reason = PH_REASON_IO;
                strcpy(it->scan.message, "out of memory");
        }
        close(fd);
}

static void scan_work_cb(uv_work_t *w)
{
        scan_job *job = w->data;
        size_t cap = 0;
        struct dirent *de;
        DIR *dir;
        int dirfd;

        dirfd = open(job->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0 || !(dir = fdopendir(dirfd))) {
                job->error = -errno;
                if (dirfd >= 0)
                        close(dirfd);
                return;
        }
        while ((de = readdir(dir))) {
                struct stat st;

                if (ph_scan_ignored_name(de->d_name) || de->d_type == DT_DIR)
                        continue;
                if (de->d_type == DT_UNKNOWN &&
                    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
                        continue;
                if (job->n_items == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        ph_scanned *grown = realloc(job->items, ncap * sizeof(*grown));
                        if (!grown)
                                break;
                        job->items = grown;
                        cap = ncap;
                }
                scan_one(dirfd, de->d_name, &job->items[job->n_items++]);
        }
        closedir(dir);
}

static void scan_after_cb(uv_work_t *w, int status)
{
        scan_job *job = w->data;
        scan_batch *b = job->batch;
        ph_daemon *d = b->d;
        unsigned added = 0, changed = 0, removed = 0;

        (void)status;
        /* A directory that went away is an empty one: its plugins leave. */
        if (job->error < 0 && job->error != -ENOENT)
                log_warning("plugin directory %s: %s", job->dir, strerror(-job->error));
        if (d->reg && job->dir_index < d->cfg.n_plugin_dirs &&
            strcmp(d->cfg.plugin_dirs[job->dir_index], job->dir) == 0)
                ph_registry_apply_dir(d->reg, job->dir_index, job->dir, job->items, job->n_items,
                                      &added, &changed, &removed);
        for (size_t i = 0; i < job->n_items; i++) {
                free(job->items[i].name);
                ph_scan_clear(&job->items[i].scan);
        }
        free(job->items);
        free(job->dir);
        free(job);
        b->added += added;
        b->changed += changed;
        b->removed += removed;
        if (--b->pending == 0) {
                d->scans_running--;
                /* No registry: the daemon stopped without waiting for us. */
                if (b->done && d->reg)
                        b->done(d, b->added, b->changed, b->removed, b->ud);
                free(b);
        }
}

int ph_scan_all(ph_daemon *d, ph_scan_done_fn done, void *ud)
{
        scan_batch *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->d = d;
        b->done = done;
        b->ud = ud;
        b->pending = 1;         /* held until every job is queued */
        d->scans_running++;
        for (unsigned i = 0; i < d->cfg.n_plugin_dirs; i++) {
                scan_job *job = calloc(1, sizeof(*job));

                if (!job || !(job->dir = strdup(d->cfg.plugin_dirs[i]))) {
                        free(job);
                        continue;
                }
                job->batch = b;
                job->dir_index = i;
                job->work.data = job;
                if (uv_queue_work(d->loop, &job->work, scan_work_cb, scan_after_cb) < 0) {
                        free(job->dir);
                        free(job);
                        continue;
                }
                b->pending++;
        }
        /* Drop the hold; if no job was queued this completes now. */
        if (--b->pending == 0) {
                d->scans_running--;
                if (done)
                        done(d, 0, 0, 0, ud);
                free(b);
        }
        return 0;
}
