/* Directory scans on libuv's pool.
 *
 * DESIGN: each configured directory has one slot of pending work: "the
 * whole listing" or a set of names, and the batches (Rescan, reload, the
 * first scan) waiting for its next full scan. Requests merge into the slot,
 * so work is bounded by the number of directories. One job runs at a time
 * (an older listing never lands after a newer one); it takes a slot's work
 * whole, scans on a pool thread touching only the job, and is applied on
 * the loop. The only shared state is the cancel flag (atomic). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "policy.h"
#include "scan.h"
#include "vec.h"

/* Names of one directory merged into a slot before it becomes a full scan. */
#define SCAN_NAMES_MAX 1024u
/* A listing is read by one thread; its files are scanned by up to this
 * many (the CPUs there are, one per SCAN_THREAD_MIN files: a hot add stays
 * on one), SCAN_CHUNK at a time: opening and reading 100,000 plugins is
 * CPU work in the kernel. */
#define SCAN_THREADS_MAX 8u
#define SCAN_THREAD_MIN 512u
#define SCAN_CHUNK 64u

typedef struct scan_batch {
        ph_scan_done_fn done;
        void *userdata;
        unsigned pending;               /* slots and jobs still holding it */
        bool answered;
        ph_scan_result res;
} scan_batch;

typedef struct batch_list {
        scan_batch **v;
        size_t n, cap;
} batch_list;

typedef struct dir_work {
        bool full;
        char **names;
        size_t n_names, cap_names;
        batch_list batches;
} dir_work;

typedef struct scan_job {
        uv_work_t req;
        ph_scanner *s;
        unsigned dir_index;
        char *dir;
        bool full;
        char **names;                   /* names mode: what to look at */
        size_t n_names;
        char **keep;                    /* being written: leave as they are (sorted) */
        size_t n_keep;
        batch_list batches;
        uint64_t max_size;
        /* results */
        int error;                      /* the directory could not be read, -errno */
        atomic_bool cancelled;          /* set by any of the scanning threads */
        char dir_trust[256];            /* the directory chain fails the policy */
        ph_scanned *items;
        size_t n_items, cap_items;
} scan_job;

struct ph_scanner {
        uv_loop_t *loop;
        const ph_config *cfg;
        ph_scanner_hooks hooks;
        dir_work *work;                 /* one per configured directory */
        size_t n_work;
        unsigned next_dir;              /* where the next pick starts: fairness */
        scan_job *running;
        atomic_int cancel;
        bool stopped;
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

/* ---- batches ---- */

static void batch_answer(scan_batch *b)
{
        if (!b->answered) {
                b->answered = true;
                if (b->done)
                        b->done(b->userdata, &b->res);
        }
}

/* One holder of b is done with it. */
static void batch_release(scan_batch *b)
{
        if (--b->pending > 0)
                return;
        batch_answer(b);
        free(b);
}

static void batches_release(batch_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                batch_release(l->v[i]);
        free(l->v);
        memset(l, 0, sizeof(*l));
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void work_clear(dir_work *w)
{
        strv_free(w->names, w->n_names);
        batches_release(&w->batches);
        memset(w, 0, sizeof(*w));
}

/* ---- the scan itself, on a pool thread ---- */

static int scan_cancelled(void *userdata)
{
        return atomic_load_explicit(&((ph_scanner *)userdata)->cancel, memory_order_relaxed);
}

static void id_from_stat(ph_scanned *it, const struct stat *st)
{
        ph_file_id *id = &it->id;

        it->owner = st->st_uid;
        id->dev = st->st_dev;
        id->ino = st->st_ino;
        id->size = st->st_size;
        id->mtime = st->st_mtim;
        id->ctime = st->st_ctim;
}

static void refuse(ph_scanned *it, ph_reason reason, const char *why)
{
        it->reason = reason;
        it->message = strdup(why);
}

/* Moves the reader's verdict into the item; the metadata is kept without
 * its tree (ph_registry_find brings it back for a client). */
static void take_verdict(ph_scanned *it, ph_scan *sc)
{
        it->reason = sc->reason;
        if (sc->reason == PH_REASON_OK) {
                it->meta = sc->meta;
                sc->meta = NULL;
                ph_meta_drop_tree(it->meta);
        } else {
                it->message = strdup(sc->message);
        }
        ph_scan_clear(sc);
}

/* The verdict on one name. The trust policy is judged on what was opened
 * (not on the path), and before a byte of it is read. Any thread. */
static void scan_one(scan_job *job, int dirfd, ph_scanned *it)
{
        ph_scan_opts opts = { .max_size = job->max_size, .cancelled = scan_cancelled,
                              .userdata = job->s };
        char why[256];
        struct stat st;
        ph_scan sc;
        int fd, r;

        it->present = true;
        fd = ph_scan_open(dirfd, it->name);
        if (fd < 0) {
                /* A symlink, unreadable: the verdict says which. */
                ph_scan_path(dirfd, it->name, &sc);
                take_verdict(it, &sc);
                if (fstatat(dirfd, it->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        id_from_stat(it, &st);
                return;
        }
        if (fstat(fd, &st) < 0) {
                snprintf(why, sizeof(why), "fstat: %s", strerror(errno));
                refuse(it, PH_REASON_IO, why);
                close(fd);
                return;
        }
        id_from_stat(it, &st);
        if (job->dir_trust[0]) {
                refuse(it, PH_REASON_UNTRUSTED, job->dir_trust);
        } else if (S_ISREG(st.st_mode) && ph_policy_check_file(&st, why, sizeof(why)) < 0) {
                refuse(it, PH_REASON_UNTRUSTED, why);
        } else if ((r = ph_scan_fd_opts(fd, &opts, &sc)) < 0) {
                if (r == -ECANCELED)
                        atomic_store(&job->cancelled, true);
                refuse(it, PH_REASON_IO, strerror(-r));
        } else {
                take_verdict(it, &sc);
        }
        close(fd);
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool job_keeps(const scan_job *job, const char *name)
{
        return job->n_keep > 0 &&
               bsearch(&name, job->keep, job->n_keep, sizeof(char *), str_cmp) != NULL;
}

/* A new item for name (taken: freed on failure): there (to be scanned, or
 * kept as it is while it is being written) or gone. */
static ph_scanned *job_item_take(scan_job *job, char *name, bool there)
{
        ph_scanned *it;

        if (!name || ph__vec_reserve((void **)&job->items, &job->cap_items, job->n_items + 1,
                                     sizeof(*job->items)) < 0) {
                free(name);
                job->error = -ENOMEM;
                return NULL;
        }
        it = &job->items[job->n_items++];
        memset(it, 0, sizeof(*it));
        it->name = name;
        it->present = there;
        /* Written again since the event: left as it is until closed. */
        it->keep = there && job_keeps(job, name);
        return it;
}

static bool stopping(scan_job *job)
{
        return atomic_load_explicit(&job->cancelled, memory_order_relaxed) || scan_cancelled(job->s);
}

/* The names of a listing, without reading a file, in name order: the
 * registry then finds and inserts them in order, along the same path of
 * its trees (in readdir's hash order, every look-up is a walk of cache
 * misses). */
static void scan_listing(scan_job *job, int dirfd)
{
        struct dirent *de;
        DIR *dir = fdopendir(dup(dirfd));
        char **names = NULL, *name;
        size_t n = 0, cap = 0;

        if (!dir) {
                job->error = -errno;
                return;
        }
        errno = 0;
        while (!stopping(job) && job->error == 0 && (de = readdir(dir))) {
                if (ph_scan_ignored_name(de->d_name) || de->d_type == DT_DIR)
                        continue;
                if (de->d_type == DT_UNKNOWN) {
                        struct stat st;

                        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                            S_ISDIR(st.st_mode))
                                continue;
                }
                if (!(name = strdup(de->d_name)) ||
                    ph__vec_push((void **)&names, &n, &cap, sizeof(char *), &name) < 0) {
                        free(name);
                        job->error = -ENOMEM;
                }
                errno = 0;
        }
        /* A listing cut short is not a listing: applying it would remove
         * every file not reached yet. */
        if (errno && job->error == 0)
                job->error = -errno;
        closedir(dir);
        if (n > 0)
                qsort(names, n, sizeof(char *), str_cmp);
        if (job->error == 0 &&
            ph__vec_reserve((void **)&job->items, &job->cap_items, n, sizeof(*job->items)) < 0)
                job->error = -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (job->error == 0)
                        job_item_take(job, names[i], true);
                else
                        free(names[i]);
        free(names);
}

/* The names asked for: there (to scan) or gone. */
static void scan_names(scan_job *job, int dirfd)
{
        for (size_t i = 0; i < job->n_names && !stopping(job) && job->error == 0; i++) {
                struct stat st;

                job_item_take(job, strdup(job->names[i]),
                              fstatat(dirfd, job->names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                                      !S_ISDIR(st.st_mode));
        }
}

/* The scanning threads take the items SCAN_CHUNK at a time, whoever is
 * free next: no thread idles while another has a long slice left. */
typedef struct scan_share {
        scan_job *job;
        int dirfd;
        atomic_size_t next;
} scan_share;

static void scan_share_run(void *arg)
{
        scan_share *sh = arg;
        scan_job *job = sh->job;
        size_t from;

        while (!stopping(job) &&
               (from = atomic_fetch_add(&sh->next, SCAN_CHUNK)) < job->n_items) {
                size_t to = from + SCAN_CHUNK < job->n_items ? from + SCAN_CHUNK : job->n_items;

                for (size_t i = from; i < to; i++) {
                        ph_scanned *it = &job->items[i];

                        if (it->present && !it->keep)
                                scan_one(job, sh->dirfd, it);
                }
        }
}

/* Scans the items on this thread and, for a large directory, up to
 * SCAN_THREADS_MAX - 1 more (one per CPU, one per SCAN_THREAD_MIN items),
 * and waits for them. A thread that cannot start is one fewer. */
static void scan_items(scan_job *job, int dirfd)
{
        uv_thread_t threads[SCAN_THREADS_MAX];
        scan_share sh = { .job = job, .dirfd = dirfd };
        size_t n = uv_available_parallelism(), started = 0;

        atomic_init(&sh.next, 0);
        if (n > SCAN_THREADS_MAX)
                n = SCAN_THREADS_MAX;
        if (n > job->n_items / SCAN_THREAD_MIN)
                n = job->n_items / SCAN_THREAD_MIN;
        for (size_t k = 1; k < n; k++)
                if (uv_thread_create(&threads[started], scan_share_run, &sh) == 0)
                        started++;
        scan_share_run(&sh);
        for (size_t k = 0; k < started; k++)
                uv_thread_join(&threads[k]);
}

static void scan_work_cb(uv_work_t *req)
{
        scan_job *job = req->data;
        int dirfd = -1, r;

        /* The directory as the policy walked it: nothing on the way can be
         * swapped for a symlink between the check and the listing. */
        r = ph_policy_open_dir(job->dir, &dirfd, job->dir_trust, sizeof(job->dir_trust));
        if (r == -EPERM) {
                /* Every plugin in it is refused, with this reason, unread:
                 * listed by name only (reading names trusts nothing). */
                dirfd = open(job->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0) {
                        job->error = -errno;
                        return;
                }
        } else if (r < 0) {
                job->error = r;
                return;
        } else {
                job->dir_trust[0] = '\0';
        }
        /* Sorted once: each name is then looked up in it, not compared
         * with every one. */
        if (job->n_keep > 0)
                qsort(job->keep, job->n_keep, sizeof(char *), str_cmp);
        if (job->full)
                scan_listing(job, dirfd);
        else
                scan_names(job, dirfd);
        if (job->error == 0 && !stopping(job))
                scan_items(job, dirfd);
        close(dirfd);
        if (stopping(job))
                atomic_store(&job->cancelled, true);
}

/* ---- on the loop ---- */

static void job_free(scan_job *job)
{
        for (size_t i = 0; i < job->n_items; i++)
                ph_scanned_clear(&job->items[i]);
        free(job->items);
        strv_free(job->names, job->n_names);
        strv_free(job->keep, job->n_keep);
        free(job->dir);
        free(job);
}

static void scan_next(ph_scanner *s);

static bool dir_current(const ph_scanner *s, unsigned index, const char *dir)
{
        return index < s->cfg->n_plugin_dirs && strcmp(s->cfg->plugin_dirs[index], dir) == 0;
}

static void scan_after_cb(uv_work_t *req, int status)
{
        scan_job *job = req->data;
        ph_scanner *s = job->s;
        ph_apply_counts counts = { 0 };
        bool current = dir_current(s, job->dir_index, job->dir);
        int error = job->error;

        s->running = NULL;
        if (status < 0 || atomic_load(&job->cancelled) || s->stopped)
                error = error ? error : -ECANCELED;
        if (error == -ENOENT || error == -ENOTDIR) {
                /* A directory that is gone is an empty one: its plugins leave. */
                if (current && !s->stopped)
                        s->hooks.apply(s->hooks.userdata, job->dir_index, job->dir, true, NULL, 0,
                                       &counts);
                error = 0;
        } else if (error < 0) {
                /* Unreadable: what we know stays until it can be read again. */
                if (error != -ECANCELED)
                        log_warning("plugin directory %s: %s", job->dir, strerror(-error));
        } else if (current) {
                s->hooks.apply(s->hooks.userdata, job->dir_index, job->dir, job->full, job->items,
                               job->n_items, &counts);
        }
        for (size_t i = 0; i < job->batches.n; i++) {
                ph_scan_result *res = &job->batches.v[i]->res;

                res->counts.added += counts.added;
                res->counts.changed += counts.changed;
                res->counts.removed += counts.removed;
                if (error < 0 && res->error == 0) {
                        res->error = error;
                        snprintf(res->error_dir, sizeof(res->error_dir), "%s", job->dir);
                }
        }
        batches_release(&job->batches);
        job_free(job);
        scan_next(s);
}

static bool work_pending(const dir_work *w)
{
        return w->full || w->n_names > 0 || w->batches.n > 0;
}

/* Starts a job for the next directory with work, if none runs. */
static void scan_next(ph_scanner *s)
{
        dir_work *w = NULL;
        scan_job *job;
        unsigned i;

        if (s->running || s->stopped)
                return;
        for (size_t k = 0; k < s->n_work && !w; k++) {
                i = (unsigned)((s->next_dir + k) % s->n_work);
                if (work_pending(&s->work[i]))
                        w = &s->work[i];
        }
        if (!w)
                return;
        s->next_dir = i + 1;
        job = calloc(1, sizeof(*job));
        if (!job || !(job->dir = strdup(s->cfg->plugin_dirs[i]))) {
                free(job);
                log_err("scan of %s: out of memory", s->cfg->plugin_dirs[i]);
                work_clear(w);
                return;
        }
        atomic_init(&job->cancelled, false);
        job->s = s;
        job->dir_index = i;
        job->max_size = PH_LOAD_MAX;
        /* A slot with batches is a full scan: a batch asks for the truth. */
        job->full = w->full || w->batches.n > 0;
        if (job->full) {
                strv_free(w->names, w->n_names);
        } else {
                job->names = w->names;
                job->n_names = w->n_names;
        }
        job->batches = w->batches;
        memset(w, 0, sizeof(*w));
        /* What is being written right now is left alone. */
        if (s->hooks.writing)
                s->hooks.writing(s->hooks.userdata, i, &job->keep, &job->n_keep);
        job->req.data = job;
        s->running = job;
        if (uv_queue_work(s->loop, &job->req, scan_work_cb, scan_after_cb) < 0) {
                job->error = -EAGAIN;
                scan_after_cb(&job->req, 0);
        }
}

static int batch_list_add(batch_list *l, scan_batch *b)
{
        return ph__vec_push((void **)&l->v, &l->n, &l->cap, sizeof(scan_batch *), &b);
}

int ph_scan_all(ph_scanner *s, ph_scan_done_fn done, void *userdata)
{
        scan_batch *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->done = done;
        b->userdata = userdata;
        b->pending = 1;         /* held until every slot has it */
        if (s->stopped)
                b->res.error = -ECANCELED;
        for (size_t i = 0; i < s->n_work && !s->stopped; i++)
                if (batch_list_add(&s->work[i].batches, b) == 0)
                        b->pending++;
                else if (b->res.error == 0)
                        b->res.error = -ENOMEM;
        batch_release(b);
        scan_next(s);
        return 0;
}

void ph_scan_dir(ph_scanner *s, unsigned dir_index)
{
        dir_work *w;

        if (dir_index >= s->n_work || s->stopped)
                return;
        w = &s->work[dir_index];
        w->full = true;
        strv_free(w->names, w->n_names);
        w->names = NULL;
        w->n_names = w->cap_names = 0;
        scan_next(s);
}

void ph_scan_names(ph_scanner *s, unsigned dir_index, char **names, size_t n_names)
{
        dir_work *w = dir_index < s->n_work && !s->stopped ? &s->work[dir_index] : NULL;

        for (size_t i = 0; i < n_names; i++) {
                bool have = !w || w->full;

                for (size_t j = 0; w && !have && j < w->n_names; j++)
                        have = strcmp(w->names[j], names[i]) == 0;
                if (!have && w->n_names >= SCAN_NAMES_MAX) {
                        /* So many names: the whole directory is cheaper. */
                        strv_free(w->names, w->n_names);
                        w->names = NULL;
                        w->n_names = w->cap_names = 0;
                        w->full = true;
                        have = true;
                }
                if (have || ph__vec_push((void **)&w->names, &w->n_names, &w->cap_names,
                                         sizeof(char *), &names[i]) < 0)
                        free(names[i]);
        }
        if (w)
                scan_next(s);
}

int ph_scanner_new(uv_loop_t *loop, const ph_config *cfg, const ph_scanner_hooks *hooks,
                   ph_scanner **ret)
{
        ph_scanner *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->cfg = cfg;
        s->hooks = *hooks;
        s->n_work = cfg->n_plugin_dirs;
        s->work = calloc(s->n_work ? s->n_work : 1, sizeof(*s->work));
        if (!s->work) {
                free(s);
                return -ENOMEM;
        }
        atomic_init(&s->cancel, 0);
        *ret = s;
        return 0;
}

void ph_scanner_set_config(ph_scanner *s, const ph_config *cfg)
{
        size_t n = cfg->n_plugin_dirs;
        dir_work *work = calloc(n ? n : 1, sizeof(*work));

        if (!work) {
                /* Keep the old slots: their directories are checked when
                 * applied (dir_current). */
                s->cfg = cfg;
                return;
        }
        for (size_t i = 0; i < s->n_work; i++) {
                size_t j;

                for (j = 0; j < n; j++)
                        if (strcmp(s->cfg->plugin_dirs[i], cfg->plugin_dirs[j]) == 0)
                                break;
                if (j < n)
                        work[j] = s->work[i];
                else
                        work_clear(&s->work[i]);
        }
        free(s->work);
        s->work = work;
        s->n_work = n;
        s->cfg = cfg;
        s->next_dir = 0;
        scan_next(s);
}

void ph_scanner_stop(ph_scanner *s)
{
        if (!s || s->stopped)
                return;
        s->stopped = true;
        atomic_store(&s->cancel, 1);
        for (size_t i = 0; i < s->n_work; i++) {
                for (size_t k = 0; k < s->work[i].batches.n; k++)
                        if (s->work[i].batches.v[k]->res.error == 0)
                                s->work[i].batches.v[k]->res.error = -ECANCELED;
                work_clear(&s->work[i]);
        }
}

bool ph_scanner_busy(const ph_scanner *s)
{
        return s && s->running;
}

void ph_scanner_free(ph_scanner *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n_work; i++)
                work_clear(&s->work[i]);
        free(s->work);
        free(s);
}
