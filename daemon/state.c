/* Persistent state in the state directory:
 *   loaded.json      the plugins clients loaded, restored at start;
 *   loading/NAME     written (and synced) before a plugin's init and removed
 *                    after it: one left behind means the daemon died in
 *                    init, so that file version is quarantined.
 * Every write goes to a temporary file, is synced and renamed, so a crash or
 * a full disk never leaves a torn file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "state.h"
#include "vec.h"

#define STATE_LOADED "loaded.json"
#define STATE_LOADING "loading"

struct ph_state {
        char *dir;
        char **wanted;                  /* loaded by clients: restored at start (sorted:
                                         * every plugin added asks whether it is in) */
        size_t n_wanted, cap_wanted;
        json_t *quarantine;             /* name -> file identity that died in init */
};

/* Writes text to dir/name atomically. Returns 0 or -errno. */
static int state_write(const char *dir, const char *name, const char *text)
{
        char tmp[4096], path[4096];
        size_t len = strlen(text), done = 0;
        int fd, dfd, r = 0;

        snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (done < len) {
                ssize_t n = write(fd, text + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                done += (size_t)n;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
        }
        return 0;
}

static json_t *id_json(const ph_file_id *id)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "dev", (json_int_t)id->dev,
                         "ino", (json_int_t)id->ino, "size", (json_int_t)id->size,
                         "mtime", (json_int_t)id->mtime.tv_sec, "mtimeNs", (json_int_t)id->mtime.tv_nsec,
                         "ctime", (json_int_t)id->ctime.tv_sec, "ctimeNs", (json_int_t)id->ctime.tv_nsec);
}

static bool id_matches(json_t *j, const ph_file_id *id)
{
        return json_integer_value(json_object_get(j, "dev")) == (json_int_t)id->dev &&
               json_integer_value(json_object_get(j, "ino")) == (json_int_t)id->ino &&
               json_integer_value(json_object_get(j, "size")) == (json_int_t)id->size &&
               json_integer_value(json_object_get(j, "mtime")) == (json_int_t)id->mtime.tv_sec &&
               json_integer_value(json_object_get(j, "mtimeNs")) == (json_int_t)id->mtime.tv_nsec;
}

void ph_state_init_mark(const char *state_dir, const char *name, const ph_file_id *id)
{
        char dir[4096];
        json_t *j = id_json(id);
        char *text = json_dumps(j, JSON_COMPACT);
        int r;

        json_decref(j);
        snprintf(dir, sizeof(dir), "%s/%s", state_dir, STATE_LOADING);
        if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
                log_warning("state: %s: %s", dir, strerror(errno));
                free(text);
                return;
        }
        r = text ? state_write(dir, name, text) : -ENOMEM;
        if (r < 0)
                log_warning("state: cannot record the init of %s: %s", name, strerror(-r));
        free(text);
}

void ph_state_init_clear(const char *state_dir, const char *name)
{
        char path[4096];

        snprintf(path, sizeof(path), "%s/%s/%s", state_dir, STATE_LOADING, name);
        unlink(path);
}

static int state_save_loaded(ph_state *st)
{
        json_t *list = json_array(), *root;
        char *text;
        int r;

        for (size_t i = 0; i < st->n_wanted; i++)
                json_array_append_new(list, json_string(st->wanted[i]));
        root = json_pack("{s:o}", "loaded", list);
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        if (!text)
                return -ENOMEM;
        r = state_write(st->dir, STATE_LOADED, text);
        free(text);
        if (r < 0)
                log_warning("state: cannot save the loaded set in %s: %s (still serving)", st->dir,
                            strerror(-r));
        return r;
}

/* Where name is in the wanted set, or would go: *ret_at. */
static bool wanted_find(const ph_state *st, const char *name, size_t *ret_at)
{
        size_t lo = 0, hi = st->n_wanted;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(st->wanted[mid], name);

                if (c == 0) {
                        *ret_at = mid;
                        return true;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_at = lo;
        return false;
}

/* Adds name in its place; false if it was there or without memory. */
static bool wanted_add(ph_state *st, const char *name)
{
        char *copy;
        size_t at;

        if (wanted_find(st, name, &at) || !(copy = strdup(name)))
                return false;
        if (ph__vec_reserve((void **)&st->wanted, &st->cap_wanted, st->n_wanted + 1,
                            sizeof(char *)) < 0) {
                free(copy);
                return false;
        }
        memmove(&st->wanted[at + 1], &st->wanted[at], (st->n_wanted - at) * sizeof(char *));
        st->wanted[at] = copy;
        st->n_wanted++;
        return true;
}

void ph_state_want(ph_state *st, const char *name, bool want)
{
        size_t at;

        if (!want && wanted_find(st, name, &at)) {
                free(st->wanted[at]);
                memmove(&st->wanted[at], &st->wanted[at + 1], (st->n_wanted - at - 1) * sizeof(char *));
                st->n_wanted--;
                state_save_loaded(st);
        } else if (want && wanted_add(st, name)) {
                state_save_loaded(st);
        }
}

bool ph_state_wanted(const ph_state *st, const char *name)
{
        size_t at;

        return wanted_find(st, name, &at);
}

/* A name made by state_write's mkostemp: ".NAME.XXXXXX". */
static bool is_temporary(const char *name)
{
        size_t n = strlen(name);

        return name[0] == '.' && n > 8 && name[n - 7] == '.';
}

/* Temporaries a crash (kill -9, power loss) left behind: nobody else
 * writes here, and no write of ours is under way at start. */
static void remove_temporaries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        while (d && (de = readdir(d)))
                if (is_temporary(de->d_name) && unlinkat(dirfd(d), de->d_name, 0) == 0)
                        log_notice("state: removed %s/%s, left by an interrupted write", dir,
                                   de->d_name);
        if (d)
                closedir(d);
}

int ph_state_open(const char *dir, ph_state **ret)
{
        ph_state *st = calloc(1, sizeof(*st));
        char path[4096];
        json_error_t jerr;
        json_t *j, *v;
        size_t i;
        DIR *ld;
        struct dirent *de;

        if (!st || !(st->dir = strdup(dir))) {
                free(st);
                return -ENOMEM;
        }
        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
                log_warning("state directory %s: %s", dir, strerror(errno));
        snprintf(path, sizeof(path), "%s/%s", dir, STATE_LOADING);
        remove_temporaries(dir);
        remove_temporaries(path);

        snprintf(path, sizeof(path), "%s/%s", dir, STATE_LOADED);
        j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!j && access(path, F_OK) == 0)
                log_warning("state: %s is not JSON (%s); no plugin is restored", path, jerr.text);
        else if (j && !json_is_array(json_object_get(j, "loaded")))
                log_warning("state: %s has no \"loaded\" list; no plugin is restored", path);
        json_array_foreach(json_object_get(j, "loaded"), i, v)
                if (json_is_string(v))
                        wanted_add(st, json_string_value(v));
                else
                        log_warning("state: %s: ignoring an entry that is not a name", path);
        json_decref(j);

        snprintf(path, sizeof(path), "%s/%s", dir, STATE_LOADING);
        ld = opendir(path);
        while (ld && (de = readdir(ld))) {
                char file[4096 + 256];

                if (de->d_name[0] == '.')
                        continue;
                snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
                j = json_load_file(file, 0, &jerr);
                if (!j)
                        continue;
                st->quarantine = json_is_object(st->quarantine) ? st->quarantine : json_object();
                json_object_set_new(st->quarantine, de->d_name, j);
                log_warning("plugin %s: the daemon stopped during its init; quarantined until its file changes",
                            de->d_name);
        }
        if (ld)
                closedir(ld);
        *ret = st;
        return 0;
}

void ph_state_free(ph_state *st)
{
        if (!st)
                return;
        for (size_t i = 0; i < st->n_wanted; i++)
                free(st->wanted[i]);
        free(st->wanted);
        json_decref(st->quarantine);
        free(st->dir);
        free(st);
}

bool ph_state_quarantined(ph_state *st, const char *name, const ph_file_id *id)
{
        json_t *q = json_object_get(st->quarantine, name);

        if (!q)
                return false;
        if (id_matches(q, id))
                return true;
        /* A changed file gets a new chance. */
        json_object_del(st->quarantine, name);
        ph_state_init_clear(st->dir, name);
        return false;
}
