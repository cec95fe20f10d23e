/* Tests for the loader and the instance cache (lib/loader.c, lib/cache.c,
 * lib/instance.c) with real fixture plugins: single flight, remembered
 * failures, ABI checks, replacement while calls run, draining, resident
 * plugins, and a threaded stress run (meant for TSan and ASan builds). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phcount.h"
#include "plughost/plughost.h"
#include "testutil.h"

static char *tmp;
static ph_cache *cache;
static atomic_int garbage_signals;

static void garbage_cb(void *ud)
{
        (void)ud;
        atomic_fetch_add(&garbage_signals, 1);
}

static void setup(void)
{
        ph_cache_config cfg = { .garbage_cb = garbage_cb };

        tmp = tu_tmpdir();
        ck_assert_int_eq(ph_cache_new(&cfg, &cache), 0);
}

static void teardown(void)
{
        ph_cache_free(cache);
        cache = NULL;
        tu_tmpdir_free(tmp);
}

/* Copies a fixture into the test directory as name. */
static void place(const char *fixture, const char *name)
{
        char *to = tu_path(tmp, name), *part = tu_path(tmp, ".part");

        tu_copy_file(tu_fixture(fixture), part);
        ck_assert_int_eq(rename(part, to), 0);
        free(to);
        free(part);
}

static int get(const char *name, uint64_t gen, const char *file, ph_instance **ret,
               char *err, size_t err_size)
{
        char *path = tu_path(tmp, file);
        ph_load_request req = { .name = name, .generation = gen, .dirfd = AT_FDCWD, .path = path };
        int r = ph_cache_get(cache, &req, ret, err, err_size);

        free(path);
        return r;
}

static ph_instance *get_ok(const char *name, uint64_t gen, const char *file)
{
        char err[512] = "";
        ph_instance *inst = NULL;

        ck_assert_msg(get(name, gen, file, &inst, err, sizeof(err)) == 0, "get %s: %s", name, err);
        ck_assert_ptr_nonnull(inst);
        return inst;
}

/* Calls method and returns the malloc'd result (asserting success). */
static char *call_ok(ph_instance *inst, const char *method, const char *params)
{
        char err[512] = "", *res = NULL;
        int r = ph_instance_call(inst, method, params, &res, err, sizeof(err));

        ck_assert_msg(r == 0, "%s failed: %d %s", method, r, err);
        ck_assert_ptr_nonnull(res);
        return res;
}

static void assert_version(ph_instance *inst, const char *want)
{
        char *res = call_ok(inst, "Version", NULL), expect[64];

        snprintf(expect, sizeof(expect), "\"version\":\"%s\"", want);
        ck_assert_msg(strstr(res, expect), "%s lacks %s", res, expect);
        free(res);
}

START_TEST(test_load_and_call)
{
        ph_instance *inst;
        ph_cache_counters k;

        place("counted-v1.so", "counted.so");
        inst = get_ok("counted", 1, "counted.so");
        ck_assert_str_eq(ph_instance_meta(inst)->name, "counted");
        ck_assert_uint_eq(ph_instance_generation(inst), 1);
        assert_version(inst, "1.0.0");
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_INIT), 1);

        ph_cache_get_counters(cache, &k);
        ck_assert_uint_eq(k.loads, 1);
        ck_assert_uint_eq(k.misses, 1);
        ck_assert_uint_eq(k.calls, 1);
        ck_assert_int_eq(k.in_flight, 0);
        ck_assert_uint_eq(k.instances, 1);
        ph_instance_unref(inst);

        /* The second get is a hit on the same instance: no new init. */
        inst = get_ok("counted", 1, "counted.so");
        ph_cache_get_counters(cache, &k);
        ck_assert_uint_eq(k.hits, 1);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_INIT), 1);
        ph_instance_unref(inst);
        /* Nothing to reap while the cache holds its reference. */
        ck_assert_int_eq(ph_cache_reap(cache), 0);
}
END_TEST

START_TEST(test_config_reaches_init)
{
        char *path = tu_path(tmp, "counted.so"), err[256], *res;
        ph_load_request req = { .name = "counted", .generation = 1, .dirfd = AT_FDCWD, .path = path,
                                .config_json = "{\"greeting\":\"hi\"}" };
        ph_instance *inst;

        place("counted-v1.so", "counted.so");
        ck_assert_int_eq(ph_cache_get(cache, &req, &inst, err, sizeof(err)), 0);
        res = call_ok(inst, "Config", NULL);
        ck_assert_str_eq(res, "{\"greeting\":\"hi\"}");
        free(res);
        ph_instance_unref(inst);
        free(path);
}
END_TEST

START_TEST(test_call_failure_message)
{
        ph_instance *inst;
        char err[256] = "", *res = NULL;

        place("counted-v1.so", "counted.so");
        inst = get_ok("counted", 1, "counted.so");
        ck_assert_int_eq(ph_instance_call(inst, "Fail", "{\"x\":1}", &res, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_null(res);
        ck_assert_str_eq(err, "failing as asked, params {\"x\":1}");
        /* The message does not stick to the next failure. */
        ck_assert_int_eq(ph_instance_call(inst, "Nope", NULL, &res, err, sizeof(err)), -EOPNOTSUPP);
        ck_assert_str_eq(err, "no method Nope");
        ph_instance_unref(inst);
}
END_TEST

struct racer {
        pthread_barrier_t *start;
        ph_instance *inst;
        int r;
};

static void *race_get(void *arg)
{
        struct racer *rc = arg;
        char err[256];

        pthread_barrier_wait(rc->start);
        rc->r = get("slow", 7, "slow.so", &rc->inst, err, sizeof(err));
        return NULL;
}

/* 64 threads ask for one plugin whose init is slow: one load, one init,
 * one instance for all. */
START_TEST(test_single_flight_64_threads)
{
        enum { N = 64 };
        pthread_t th[N];
        struct racer rc[N];
        pthread_barrier_t start;
        ph_cache_counters k;

        place("slow-init.so", "slow.so");
        pthread_barrier_init(&start, NULL, N);
        for (int i = 0; i < N; i++) {
                rc[i] = (struct racer){ .start = &start };
                ck_assert_int_eq(pthread_create(&th[i], NULL, race_get, &rc[i]), 0);
        }
        for (int i = 0; i < N; i++)
                pthread_join(th[i], NULL);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(rc[i].r, 0);
                ck_assert_ptr_eq(rc[i].inst, rc[0].inst);
        }
        ck_assert_int_eq(ph_count_get("slow", PH_COUNT_INIT), 1);
        ph_cache_get_counters(cache, &k);
        ck_assert_uint_eq(k.loads, 1);
        ck_assert_uint_eq(k.hits + k.misses, N);
        ck_assert_uint_eq(k.instances, 1);
        for (int i = 0; i < N; i++)
                ph_instance_unref(rc[i].inst);
        pthread_barrier_destroy(&start);
}
END_TEST

/* A failed init is remembered for that generation: the same error, no retry. */
START_TEST(test_failure_remembered)
{
        char err1[256] = "", err2[256] = "";
        ph_instance *inst = NULL;
        ph_cache_counters k;

        place("init-fail.so", "initfail.so");
        ck_assert_int_eq(get("initfail", 3, "initfail.so", &inst, err1, sizeof(err1)), -EACCES);
        ck_assert_ptr_null(inst);
        ck_assert_ptr_nonnull(strstr(err1, "init failed: refusing to start: config {}"));
        ck_assert_int_eq(get("initfail", 3, "initfail.so", &inst, err2, sizeof(err2)), -EACCES);
        ck_assert_str_eq(err1, err2);
        ph_cache_get_counters(cache, &k);
        ck_assert_uint_eq(k.failures, 1);
        ck_assert_uint_eq(k.hits, 1);
        ck_assert_uint_eq(k.instances, 0);
        /* A new generation (the file changed) gets a new chance. */
        ck_assert_int_eq(get("initfail", 4, "initfail.so", &inst, err2, sizeof(err2)), -EACCES);
        ph_cache_get_counters(cache, &k);
        ck_assert_uint_eq(k.failures, 2);
}
END_TEST

START_TEST(test_abi_and_entry_checks)
{
        char err[512] = "";
        ph_instance *inst = NULL;

        place("abi-mismatch.so", "abimismatch.so");
        ck_assert_int_eq(get("abimismatch", 1, "abimismatch.so", &inst, err, sizeof(err)), -EPROTO);
        ck_assert_msg(strstr(err, "abimismatch: entry point ABI 7 does not match metadata ABI 1"), "%s", err);

        place("no-entry.so", "noentry.so");
        ck_assert_int_eq(get("noentry", 1, "noentry.so", &inst, err, sizeof(err)), -ENOENT);
        ck_assert_msg(strstr(err, "noentry: no entry point plughost_plugin_v1"), "%s", err);

        char *junk = tu_path(tmp, "junk.so");
        tu_write_file(junk, "junk", 4);
        free(junk);
        ck_assert_int_eq(get("junk", 1, "junk.so", &inst, err, sizeof(err)), -ENOEXEC);
        ck_assert_msg(strstr(err, "not an ELF file"), "%s", err);
        /* Neither ran init; both images were closed. */
        ck_assert_int_eq(ph_count_get("abimismatch", PH_COUNT_INIT), 0);
        ck_assert_int_eq(ph_count_get("noentry", PH_COUNT_INIT), 0);
        ck_assert_ptr_null(inst);
}
END_TEST

/* The file must carry the name the registry knows it by. */
START_TEST(test_name_mismatch)
{
        char err[512] = "";
        ph_instance *inst = NULL;

        place("counted-v1.so", "counted.so");
        ck_assert_int_eq(get("other", 1, "counted.so", &inst, err, sizeof(err)), -ESTALE);
        ck_assert_msg(strstr(err, "now claims the name 'counted'"), "%s", err);
}
END_TEST

START_TEST(test_symlink_refused)
{
        char err[512] = "", *link = tu_path(tmp, "link.so");
        ph_instance *inst = NULL;

        ck_assert_int_eq(symlink(tu_fixture("counted-v1.so"), link), 0);
        ck_assert_int_eq(get("counted", 1, "link.so", &inst, err, sizeof(err)), -ELOOP);
        ck_assert_msg(strstr(err, "symbolic link"), "%s", err);
        free(link);
}
END_TEST

struct seen {
        ino_t file_ino;
        int seals;
        off_t image_size;
};

/* Refuses everything, after noting what it was shown. */
static int refuse_all(const struct stat *file_st, int image_fd, const ph_load_request *req,
                      char *err, size_t err_size)
{
        struct seen *seen = req->userdata;

        seen->file_ino = file_st->st_ino;
        seen->seals = fcntl(image_fd, F_GET_SEALS);
        seen->image_size = lseek(image_fd, 0, SEEK_END);
        snprintf(err, err_size, "policy says no");
        return -EPERM;
}

/* The policy hook sees the file's own stat and the sealed copy that would
 * run, and a refusal stops the load before any plugin code runs. */
START_TEST(test_check_cb_sees_file_and_sealed_copy)
{
        struct seen seen = { 0 };
        ph_cache_config cfg = { .check_cb = refuse_all };
        char *path = tu_path(tmp, "counted.so"), err[256];
        ph_load_request req = { .name = "counted", .generation = 1, .dirfd = AT_FDCWD, .path = path,
                                .userdata = &seen };
        ph_cache *c;
        ph_instance *inst = NULL;
        struct stat st;

        place("counted-v1.so", "counted.so");
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(ph_cache_new(&cfg, &c), 0);
        ck_assert_int_eq(ph_cache_get(c, &req, &inst, err, sizeof(err)), -EPERM);
        ck_assert_str_eq(err, "policy says no");
        ck_assert_uint_eq(seen.file_ino, st.st_ino);
        ck_assert_int_eq(seen.seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW),
                         F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
        ck_assert_int_eq(seen.image_size, st.st_size);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_INIT), 0);
        ph_cache_free(c);
        free(path);
}
END_TEST

/* Asking for a generation older than the ready one loads nothing. */
START_TEST(test_older_generation_is_stale)
{
        char err[256];
        ph_instance *v2, *old = NULL;

        place("counted-v2.so", "counted.so");
        v2 = get_ok("counted", 5, "counted.so");
        ck_assert_int_eq(get("counted", 4, "counted.so", &old, err, sizeof(err)), -ESTALE);
        ck_assert_ptr_null(old);
        ck_assert_ptr_nonnull(strstr(err, "older than the one loaded"));
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_INIT), 1);
        ph_instance_unref(v2);
}
END_TEST

/* glibc returns an already-loaded image for a known name: v2 renamed over
 * v1's path must still run v2's code. */
START_TEST(test_replace_by_rename_runs_new_code)
{
        ph_instance *v1, *v2;

        place("counted-v1.so", "counted.so");
        v1 = get_ok("counted", 1, "counted.so");
        assert_version(v1, "1.0.0");
        place("counted-v2.so", "counted.so");
        v2 = get_ok("counted", 2, "counted.so");
        assert_version(v2, "2.0.0");
        /* The old instance still answers, on its own code, while referenced. */
        assert_version(v1, "1.0.0");
        ph_instance *cur;
        ck_assert_int_eq(ph_cache_lookup(cache, "counted", &cur), 0);
        ck_assert_ptr_eq(cur, v2);
        ph_instance_unref(cur);

        ck_assert_int_eq(ph_cache_reap(cache), 0);
        ph_instance_unref(v1);
        ck_assert_int_gt(atomic_load(&garbage_signals), 0);
        ck_assert_int_eq(ph_cache_reap(cache), 1);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_FINI), 1);
        ph_instance_unref(v2);
}
END_TEST

struct sleeper {
        ph_instance *inst;
        int ms;
        char *result;
        int r;
};

static void *sleep_call(void *arg)
{
        struct sleeper *s = arg;
        char params[64], err[128];

        snprintf(params, sizeof(params), "{\"ms\":%d}", s->ms);
        s->r = ph_instance_call(s->inst, "Sleep", params, &s->result, err, sizeof(err));
        ph_instance_unref(s->inst);
        return NULL;
}

/* Replace while calls run: they finish on the old version, new calls get
 * the new one, the old one is finalised only after its last call. */
START_TEST(test_replace_drains_in_flight_calls)
{
        struct sleeper s[4];
        pthread_t th[4];
        ph_instance *v1, *v2;
        ph_cache_counters k;

        place("counted-v1.so", "counted.so");
        v1 = get_ok("counted", 1, "counted.so");
        for (int i = 0; i < 4; i++) {
                s[i] = (struct sleeper){ .inst = ph_instance_ref(v1), .ms = 200 };
                ck_assert_int_eq(pthread_create(&th[i], NULL, sleep_call, &s[i]), 0);
        }
        ph_instance_unref(v1);
        usleep(50 * 1000);
        ph_cache_get_counters(cache, &k);
        ck_assert_int_eq(k.in_flight, 4);

        place("counted-v2.so", "counted.so");
        v2 = get_ok("counted", 2, "counted.so");
        assert_version(v2, "2.0.0");
        /* v1 is retired but still referenced by its calls. */
        ck_assert_int_eq(ph_cache_reap(cache), 0);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_FINI), 0);

        for (int i = 0; i < 4; i++) {
                pthread_join(th[i], NULL);
                ck_assert_int_eq(s[i].r, 0);
                ck_assert_ptr_nonnull(strstr(s[i].result, "\"version\":\"1.0.0\""));
                free(s[i].result);
        }
        ck_assert_int_eq(ph_cache_reap(cache), 1);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_FINI), 1);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_FINI_EARLY), 0);
        ph_instance_unref(v2);
}
END_TEST

/* A broken new version leaves the old one serving. */
START_TEST(test_broken_new_version_keeps_old)
{
        char err[256];
        ph_instance *v1, *cur, *bad = NULL;

        place("counted-v1.so", "counted.so");
        v1 = get_ok("counted", 1, "counted.so");
        ph_instance_unref(v1);
        char *path = tu_path(tmp, "counted.so");
        tu_write_file(path, "\177ELF broken", 11);
        free(path);
        ck_assert_int_lt(get("counted", 2, "counted.so", &bad, err, sizeof(err)), 0);
        ck_assert_int_eq(ph_cache_lookup(cache, "counted", &cur), 0);
        ck_assert_uint_eq(ph_instance_generation(cur), 1);
        assert_version(cur, "1.0.0");
        ph_instance_unref(cur);
        ck_assert_int_eq(ph_cache_reap(cache), 0);
}
END_TEST

START_TEST(test_unload)
{
        ph_instance *inst, *cur;

        place("counted-v1.so", "counted.so");
        inst = get_ok("counted", 1, "counted.so");
        ck_assert_int_eq(ph_cache_unload(cache, "counted"), 0);
        ck_assert_int_eq(ph_cache_lookup(cache, "counted", &cur), -ENOENT);
        /* Still usable by its holder; finalised after the last reference. */
        assert_version(inst, "1.0.0");
        ck_assert_int_eq(ph_cache_reap(cache), 0);
        ph_instance_unref(inst);
        ck_assert_int_eq(ph_cache_reap(cache), 1);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_FINI), 1);
        ck_assert_int_eq(ph_cache_unload(cache, "counted"), -ENOENT);
}
END_TEST

/* Counts mappings of a memfd-backed plugin image in this process. */
static int mapped(const char *memfd_name)
{
        char line[4096], want[128];
        FILE *f = fopen("/proc/self/maps", "re");
        int n = 0;

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "/memfd:%s ", memfd_name);
        while (fgets(line, sizeof(line), f))
                n += strstr(line, want) != NULL;
        fclose(f);
        return n;
}

/* Resident plugins are finalised but never unmapped; others are unmapped. */
START_TEST(test_resident_stays_mapped)
{
        ph_instance *r, *c;

        place("resident.so", "resident.so");
        place("counted-v1.so", "counted.so");
        r = get_ok("resident", 1, "resident.so");
        c = get_ok("counted", 1, "counted.so");
        ck_assert(ph_instance_meta(r)->resident);
        ck_assert_int_gt(mapped("resident"), 0);
        ck_assert_int_gt(mapped("counted"), 0);
        ph_instance_unref(r);
        ph_instance_unref(c);
        ph_cache_unload(cache, "resident");
        ph_cache_unload(cache, "counted");
        ck_assert_int_eq(ph_cache_reap(cache), 2);
        ck_assert_int_eq(ph_count_get("resident", PH_COUNT_FINI), 1);
        ck_assert_int_eq(ph_count_get("counted", PH_COUNT_FINI), 1);
        ck_assert_int_gt(mapped("resident"), 0);
        ck_assert_int_eq(mapped("counted"), 0);
}
END_TEST

/* Counts our open fds that refer to the memfd of a plugin image. */
static int open_memfds(const char *name)
{
        char link[64], target[256], want[128];
        int n = 0;

        snprintf(want, sizeof(want), "/memfd:%s ", name);
        for (int fd = 0; fd < 4096; fd++) {
                ssize_t len;

                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                len = readlink(link, target, sizeof(target) - 1);
                if (len < 0)
                        continue;
                target[len] = '\0';
                n += strncmp(target, want, strlen(want)) == 0;
        }
        return n;
}

/* An image dlclose cannot unmap keeps its name (its fd) reserved, so no
 * later load can be handed the old image; an ordinary one frees it. */
START_TEST(test_load_names_stay_reserved)
{
        ph_instance *nd, *c;

        place("nodelete.so", "nodelete.so");
        place("counted-v1.so", "counted.so");
        nd = get_ok("nodelete", 1, "nodelete.so");
        c = get_ok("counted", 1, "counted.so");
        ck_assert_int_eq(open_memfds("nodelete"), 1);
        ck_assert_int_eq(open_memfds("counted"), 1);
        ph_instance_unref(nd);
        ph_instance_unref(c);
        ph_cache_unload(cache, "nodelete");
        ph_cache_unload(cache, "counted");
        ck_assert_int_eq(ph_cache_reap(cache), 2);
        ck_assert_int_eq(open_memfds("nodelete"), 1);
        ck_assert_int_eq(open_memfds("counted"), 0);
        /* Loads after that get fresh images. */
        place("counted-v2.so", "counted.so");
        c = get_ok("counted", 2, "counted.so");
        assert_version(c, "2.0.0");
        ph_instance_unref(c);
}
END_TEST

struct conc {
        ph_instance *inst;
        pthread_barrier_t *start;
};

static void *conc_call(void *arg)
{
        struct conc *c = arg;
        char *res, err[64];

        pthread_barrier_wait(c->start);
        if (ph_instance_call(c->inst, "Sleep", "{\"ms\":30}", &res, err, sizeof(err)) == 0)
                free(res);
        return NULL;
}

static int max_concurrency(const char *name)
{
        enum { N = 4 };
        pthread_barrier_t start;
        pthread_t th[N];
        struct conc c[N];
        ph_instance *inst;
        char file[64];

        snprintf(file, sizeof(file), "%s.so", name);
        place(file, file);
        inst = get_ok(name, 1, file);
        pthread_barrier_init(&start, NULL, N);
        for (int i = 0; i < N; i++) {
                c[i] = (struct conc){ inst, &start };
                pthread_create(&th[i], NULL, conc_call, &c[i]);
        }
        for (int i = 0; i < N; i++)
                pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        ph_instance_unref(inst);
        return ph_count_get(name, PH_COUNT_CALLS_MAX);
}

/* "concurrency": "serial" is honoured; parallel plugins overlap. */
START_TEST(test_serial_plugins_one_call_at_a_time)
{
        ck_assert_int_eq(max_concurrency("serial"), 1);
        ck_assert_int_gt(max_concurrency("parallel"), 1);
}
END_TEST

/* What the hooks saw of one request. */
struct hook_log {
        const ph_load_request *req;     /* the request the hooks were given */
        int checks, inits_before, inits_after;
        bool check_before_init;
};

static int log_check(const struct stat *file_st, int image_fd, const ph_load_request *req,
                     char *err, size_t err_size)
{
        struct hook_log *log = req->userdata;

        (void)file_st;
        (void)image_fd;
        (void)err;
        (void)err_size;
        log->req = req;
        log->checks++;
        log->check_before_init = log->inits_before == 0;
        return 0;
}

static void log_init(const ph_load_request *req, bool done)
{
        struct hook_log *log = req->userdata;

        ck_assert_ptr_eq(log->req, req);
        if (done)
                log->inits_after++;
        else
                log->inits_before++;
}

/* Each hook gets the request it runs for, with that request's userdata:
 * two loads through one cache never see each other's. */
START_TEST(test_hooks_get_their_request)
{
        ph_cache_config cfg = { .check_cb = log_check, .init_cb = log_init };
        struct hook_log log1 = { 0 }, log2 = { 0 };
        char *p1 = tu_path(tmp, "counted.so"), *p2 = tu_path(tmp, "parallel.so"), err[256];
        ph_load_request r1 = { .name = "counted", .generation = 1, .dirfd = AT_FDCWD, .path = p1,
                               .userdata = &log1 };
        ph_load_request r2 = { .name = "parallel", .generation = 9, .dirfd = AT_FDCWD, .path = p2,
                               .userdata = &log2 };
        ph_instance *i1, *i2, *again;
        ph_cache *c;

        place("counted-v1.so", "counted.so");
        place("parallel.so", "parallel.so");
        ck_assert_int_eq(ph_cache_new(&cfg, &c), 0);
        ck_assert_int_eq(ph_cache_get(c, &r1, &i1, err, sizeof(err)), 0);
        ck_assert_int_eq(ph_cache_get(c, &r2, &i2, err, sizeof(err)), 0);
        ck_assert_ptr_eq(log1.req, &r1);
        ck_assert_ptr_eq(log2.req, &r2);
        ck_assert_int_eq(log1.checks, 1);
        ck_assert_int_eq(log2.checks, 1);
        ck_assert(log1.check_before_init);
        ck_assert_int_eq(log1.inits_before, 1);
        ck_assert_int_eq(log1.inits_after, 1);
        ck_assert_int_eq(log2.inits_before, 1);
        ck_assert_int_eq(log2.inits_after, 1);
        /* A hit loads nothing: no hook runs. */
        ck_assert_int_eq(ph_cache_get(c, &r1, &again, err, sizeof(err)), 0);
        ck_assert_int_eq(log1.checks, 1);
        ck_assert_int_eq(log1.inits_before, 1);
        ph_instance_unref(again);
        ph_instance_unref(i1);
        ph_instance_unref(i2);
        ph_cache_free(c);
        free(p1);
        free(p2);
}
END_TEST

static void count_init(const ph_load_request *req, bool done)
{
        if (!done)
                (*(int *)req->userdata)++;
}

/* A failure in init is remembered (the second get runs no init); after
 * ph_cache_forget, the next get runs init again. */
START_TEST(test_forget_failures)
{
        ph_cache_config cfg = { .init_cb = count_init };
        char *path = tu_path(tmp, "initfail.so"), *cpath = tu_path(tmp, "counted.so");
        char err1[256] = "", err2[256] = "";
        int inits = 0;
        ph_load_request req = { .name = "initfail", .generation = 3, .dirfd = AT_FDCWD, .path = path,
                                .userdata = &inits };
        ph_load_request creq = { .name = "counted", .generation = 1, .dirfd = AT_FDCWD,
                                 .path = cpath, .userdata = &inits };
        ph_instance *inst = NULL, *ready, *cur;
        ph_cache_counters k;
        ph_cache *c;

        place("init-fail.so", "initfail.so");
        place("counted-v1.so", "counted.so");
        ck_assert_int_eq(ph_cache_new(&cfg, &c), 0);
        ck_assert_int_eq(ph_cache_forget(c, "initfail"), -ENOENT);
        ck_assert_int_eq(ph_cache_get(c, &req, &inst, err1, sizeof(err1)), -EACCES);
        ck_assert_int_eq(inits, 1);
        ck_assert_int_eq(ph_cache_get(c, &req, &inst, err2, sizeof(err2)), -EACCES);
        ck_assert_str_eq(err1, err2);
        ck_assert_int_eq(inits, 1);                     /* remembered */
        ph_cache_get_counters(c, &k);
        ck_assert_uint_eq(k.failures, 1);
        ck_assert_uint_eq(k.hits, 1);

        ck_assert_int_eq(ph_cache_forget(c, "initfail"), 0);
        ck_assert_int_eq(ph_cache_get(c, &req, &inst, err2, sizeof(err2)), -EACCES);
        ck_assert_int_eq(inits, 2);                     /* tried again */
        ck_assert_ptr_nonnull(strstr(err2, "init failed: refusing to start: config {}"));
        ph_cache_get_counters(c, &k);
        ck_assert_uint_eq(k.failures, 2);
        ck_assert_uint_eq(k.hits, 1);
        ck_assert_ptr_null(inst);
        /* Every generation's failures go. */
        req.generation = 4;
        ck_assert_int_eq(ph_cache_get(c, &req, &inst, err2, sizeof(err2)), -EACCES);
        ck_assert_int_eq(inits, 3);
        ck_assert_int_eq(ph_cache_forget(c, "initfail"), 0);
        ck_assert_int_eq(ph_cache_get(c, &req, &inst, err2, sizeof(err2)), -EACCES);
        req.generation = 3;
        ck_assert_int_eq(ph_cache_get(c, &req, &inst, err2, sizeof(err2)), -EACCES);
        ck_assert_int_eq(inits, 5);

        /* A ready instance is left alone: the same one, no new init. */
        ck_assert_int_eq(ph_cache_get(c, &creq, &ready, err1, sizeof(err1)), 0);
        ck_assert_int_eq(inits, 6);
        ck_assert_int_eq(ph_cache_forget(c, "counted"), 0);
        ck_assert_int_eq(ph_cache_lookup(c, "counted", &cur), 0);
        ck_assert_ptr_eq(cur, ready);
        ph_instance_unref(cur);
        ck_assert_int_eq(ph_cache_get(c, &creq, &cur, err1, sizeof(err1)), 0);
        ck_assert_ptr_eq(cur, ready);
        ck_assert_int_eq(inits, 6);
        ck_assert_int_eq(ph_cache_reap(c), 0);
        ph_instance_unref(cur);
        ph_instance_unref(ready);
        ph_cache_free(c);
        free(path);
        free(cpath);
}
END_TEST

/* Two-step handshake between a load held in its check hook and the test. */
struct held_load {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool in_check, go;
        int inits;
        ph_cache *cache;
        ph_load_request req;
        int r;
};

static int hold_check(const struct stat *file_st, int image_fd, const ph_load_request *req,
                      char *err, size_t err_size)
{
        struct held_load *h = req->userdata;

        (void)file_st;
        (void)image_fd;
        (void)err;
        (void)err_size;
        pthread_mutex_lock(&h->lock);
        h->in_check = true;
        pthread_cond_broadcast(&h->cond);
        while (!h->go)
                pthread_cond_wait(&h->cond, &h->lock);
        pthread_mutex_unlock(&h->lock);
        return 0;
}

static void held_count_init(const ph_load_request *req, bool done)
{
        struct held_load *h = req->userdata;

        if (done)
                return;
        pthread_mutex_lock(&h->lock);   /* two gets may init at once */
        h->inits++;
        pthread_mutex_unlock(&h->lock);
}

static void *held_get(void *arg)
{
        struct held_load *h = arg;
        ph_instance *inst = NULL;
        char err[256];
        int r = ph_cache_get(h->cache, &h->req, &inst, err, sizeof(err));

        ph_instance_unref(inst);
        pthread_mutex_lock(&h->lock);
        h->r = r;
        pthread_mutex_unlock(&h->lock);
        return NULL;
}

/* Forgetting while a load runs: that load goes on, and its failure is
 * answered but not remembered, so the next get tries init again. */
START_TEST(test_forget_during_load)
{
        ph_cache_config cfg = { .check_cb = hold_check, .init_cb = held_count_init };
        struct held_load h = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        char *path = tu_path(tmp, "initfail.so"), err[256];
        ph_instance *inst = NULL;
        pthread_t th;

        place("init-fail.so", "initfail.so");
        ck_assert_int_eq(ph_cache_new(&cfg, &h.cache), 0);
        h.req = (ph_load_request){ .name = "initfail", .generation = 1, .dirfd = AT_FDCWD,
                                   .path = path, .userdata = &h };
        ck_assert_int_eq(pthread_create(&th, NULL, held_get, &h), 0);
        pthread_mutex_lock(&h.lock);
        while (!h.in_check)
                pthread_cond_wait(&h.cond, &h.lock);
        pthread_mutex_unlock(&h.lock);

        ck_assert_int_eq(ph_cache_forget(h.cache, "initfail"), 0);     /* known: loading */
        pthread_mutex_lock(&h.lock);
        h.go = true;
        pthread_cond_broadcast(&h.cond);
        pthread_mutex_unlock(&h.lock);
        pthread_join(th, NULL);
        ck_assert_int_eq(h.r, -EACCES);
        ck_assert_int_eq(h.inits, 1);

        ck_assert_int_eq(ph_cache_get(h.cache, &h.req, &inst, err, sizeof(err)), -EACCES);
        ck_assert_int_eq(h.inits, 2);
        /* Without a forget, that failure is remembered as usual. */
        ck_assert_int_eq(ph_cache_get(h.cache, &h.req, &inst, err, sizeof(err)), -EACCES);
        ck_assert_int_eq(h.inits, 2);
        ph_cache_free(h.cache);
        free(path);
}
END_TEST

/* A get after an unload does not join the load that was under way before
 * it: it loads (and inits) anew, and that instance is the one cached. */
START_TEST(test_get_after_unload_loads_anew)
{
        ph_cache_config cfg = { .check_cb = hold_check, .init_cb = held_count_init };
        struct held_load h = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        char *path = tu_path(tmp, "counted.so"), err[256];
        ph_instance *inst = NULL;
        pthread_t a, b;

        place("counted-v1.so", "counted.so");
        ck_assert_int_eq(ph_cache_new(&cfg, &h.cache), 0);
        h.req = (ph_load_request){ .name = "counted", .generation = 1, .dirfd = AT_FDCWD,
                                   .path = path, .userdata = &h };
        ck_assert_int_eq(pthread_create(&a, NULL, held_get, &h), 0);
        pthread_mutex_lock(&h.lock);
        while (!h.in_check)
                pthread_cond_wait(&h.cond, &h.lock);
        h.in_check = false;
        pthread_mutex_unlock(&h.lock);

        ck_assert_int_eq(ph_cache_unload(h.cache, "counted"), 0);
        /* The second get reaches the check hook itself: it did not join. */
        ck_assert_int_eq(pthread_create(&b, NULL, held_get, &h), 0);
        pthread_mutex_lock(&h.lock);
        while (!h.in_check)
                pthread_cond_wait(&h.cond, &h.lock);
        h.go = true;
        pthread_cond_broadcast(&h.cond);
        pthread_mutex_unlock(&h.lock);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        ck_assert_int_eq(h.inits, 2);
        /* The later load is the one kept. */
        ck_assert_int_eq(ph_cache_get(h.cache, &h.req, &inst, err, sizeof(err)), 0);
        ck_assert_int_eq(h.inits, 2);
        ph_instance_unref(inst);
        ph_cache_free(h.cache);
        free(path);
}
END_TEST

/* A plugin returning INT_MIN (no errno; negating it is undefined) gets
 * -EIO, from a call and from init. */
START_TEST(test_int_min_becomes_eio)
{
        char *path = tu_path(tmp, "counted.so"), err[256] = "", *res = NULL;
        ph_load_request req = { .name = "counted", .generation = 2, .dirfd = AT_FDCWD, .path = path,
                                .config_json = "{\"init\":\"int-min\"}" };
        ph_instance *inst = NULL;

        place("counted-v1.so", "counted.so");
        inst = get_ok("counted", 1, "counted.so");
        ck_assert_int_eq(ph_instance_call(inst, "ReturnIntMin", NULL, &res, err, sizeof(err)), -EIO);
        ck_assert_ptr_null(res);
        ck_assert_str_eq(err, strerror(EIO));
        /* Ordinary errnos pass through unchanged. */
        ck_assert_int_eq(ph_instance_call(inst, "Fail", NULL, &res, err, sizeof(err)), -EINVAL);
        ph_instance_unref(inst);

        inst = NULL;
        ck_assert_int_eq(ph_cache_get(cache, &req, &inst, err, sizeof(err)), -EIO);
        ck_assert_ptr_null(inst);
        ck_assert_msg(strstr(err, "counted: init failed: ") && strstr(err, strerror(EIO)), "%s", err);
        free(path);
}
END_TEST

/* ---- stress: random load / call / unload / replace from many threads ---- */

enum { STRESS_THREADS = 16 };
static int stress_ops = 10000;
static atomic_bool stress_done;

static const char *const stress_names[] = { "counted", "parallel", "serial" };

static void *stress_reaper(void *arg)
{
        (void)arg;
        while (!atomic_load(&stress_done)) {
                ph_cache_reap(cache);
                usleep(500);
        }
        return NULL;
}

/* The generation each name is at; a replace moves it on, as the daemon
 * does when a file changes. Odd generations of "counted" are v1, even v2. */
static atomic_ulong stress_gen[3] = { 1, 1, 1 };

static const char *stress_file(unsigned which, uint64_t gen)
{
        static const char *const files[] = { "counted.so", "parallel.so", "serial.so" };

        return which == 0 && gen % 2 == 0 ? "counted2.so" : files[which];
}

static void stress_call(ph_instance *inst)
{
        char err[256], *res;

        if (ph_instance_call(inst, "Version", NULL, &res, err, sizeof(err)) == 0)
                free(res);
        ph_instance_unref(inst);
}

static void *stress_worker(void *arg)
{
        unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
        char err[256];

        for (int i = 0; i < stress_ops; i++) {
                ph_instance *inst = NULL;
                unsigned op, which;
                uint64_t gen;

                seed = seed * 1103515245u + 12345u;
                op = (seed >> 14) % 1000;
                which = (seed >> 8) % 3;
                const char *name = stress_names[which];
                if (op < 800) {
                        /* Load (mostly a hit) and call. */
                        gen = atomic_load(&stress_gen[which]);
                        if (get(name, gen, stress_file(which, gen), &inst, err, sizeof(err)) == 0)
                                stress_call(inst);
                } else if (op < 970) {
                        if (ph_cache_lookup(cache, name, &inst) == 0)
                                stress_call(inst);
                } else if (op < 985) {
                        ph_cache_unload(cache, name);
                } else {
                        gen = atomic_fetch_add(&stress_gen[which], 1) + 1;
                        if (get(name, gen, stress_file(which, gen), &inst, err, sizeof(err)) == 0)
                                ph_instance_unref(inst);
                }
        }
        return NULL;
}

START_TEST(test_stress_threads)
{
        pthread_t th[STRESS_THREADS], reaper;
        ph_cache_counters k;
        const char *ops = getenv("PH_STRESS_OPS");

        if (ops)
                stress_ops = atoi(ops);
        place("counted-v1.so", "counted.so");
        place("counted-v2.so", "counted2.so");
        place("parallel.so", "parallel.so");
        place("serial.so", "serial.so");
        pthread_create(&reaper, NULL, stress_reaper, NULL);
        for (uintptr_t i = 0; i < STRESS_THREADS; i++)
                ck_assert_int_eq(pthread_create(&th[i], NULL, stress_worker, (void *)i), 0);
        for (int i = 0; i < STRESS_THREADS; i++)
                pthread_join(th[i], NULL);
        atomic_store(&stress_done, true);
        pthread_join(reaper, NULL);

        for (int i = 0; i < 3; i++)
                ph_cache_unload(cache, stress_names[i]);
        ph_cache_reap(cache);
        ph_cache_get_counters(cache, &k);
        printf("stress: %d ops x %d threads: %llu loads, %llu hits, %llu unloads, %llu calls\n",
               stress_ops, STRESS_THREADS, (unsigned long long)k.loads, (unsigned long long)k.hits,
               (unsigned long long)k.unloads, (unsigned long long)k.calls);
        ck_assert_uint_eq(k.instances, 0);
        ck_assert_int_eq(k.in_flight, 0);
        ck_assert_uint_eq(k.loads, k.unloads);
        ck_assert_uint_gt(k.loads, 3);
        for (int i = 0; i < 3; i++) {
                const char *n = stress_names[i];
                ck_assert_int_eq(ph_count_get(n, PH_COUNT_INIT), ph_count_get(n, PH_COUNT_FINI));
                ck_assert_int_eq(ph_count_get(n, PH_COUNT_FINI_EARLY), 0);
        }
        ck_assert_uint_eq(k.loads, (uint64_t)(ph_count_get("counted", PH_COUNT_INIT) +
                                              ph_count_get("parallel", PH_COUNT_INIT) +
                                              ph_count_get("serial", PH_COUNT_INIT)));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("cache");
        TCase *tc = tcase_create("cache");
        TCase *stress = tcase_create("stress");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_load_and_call);
        tcase_add_test(tc, test_config_reaches_init);
        tcase_add_test(tc, test_call_failure_message);
        tcase_add_test(tc, test_single_flight_64_threads);
        tcase_add_test(tc, test_failure_remembered);
        tcase_add_test(tc, test_abi_and_entry_checks);
        tcase_add_test(tc, test_name_mismatch);
        tcase_add_test(tc, test_symlink_refused);
        tcase_add_test(tc, test_check_cb_sees_file_and_sealed_copy);
        tcase_add_test(tc, test_older_generation_is_stale);
        tcase_add_test(tc, test_replace_by_rename_runs_new_code);
        tcase_add_test(tc, test_replace_drains_in_flight_calls);
        tcase_add_test(tc, test_broken_new_version_keeps_old);
        tcase_add_test(tc, test_unload);
        tcase_add_test(tc, test_resident_stays_mapped);
        tcase_add_test(tc, test_load_names_stay_reserved);
        tcase_add_test(tc, test_serial_plugins_one_call_at_a_time);
        tcase_add_test(tc, test_hooks_get_their_request);
        tcase_add_test(tc, test_forget_failures);
        tcase_add_test(tc, test_forget_during_load);
        tcase_add_test(tc, test_get_after_unload_loads_anew);
        tcase_add_test(tc, test_int_min_becomes_eio);
        suite_add_tcase(s, tc);

        tcase_add_checked_fixture(stress, setup, teardown);
        tcase_set_timeout(stress, 600);
        tcase_add_test(stress, test_stress_threads);
        suite_add_tcase(s, stress);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
