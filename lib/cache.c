/* The instance cache: one instance per (plugin name, generation), loaded
 * once however many threads ask (single flight), failures remembered per
 * generation, older generations retired when a newer one is ready.
 *
 * DESIGN: names hash to one of CACHE_SHARDS shards, each a mutex and a
 * chained table of slots (one per name) holding entries (one per
 * generation). Lock order: a shard lock is never held with another shard
 * lock, and dead_lock is a leaf taken alone; no cache lock is held across
 * open, dlopen, init, call, fini or dlclose (plugin constructors may call
 * back into the host). The one lock plugin code runs under is a serial
 * plugin's own call_lock, which serialises its calls and nothing else (so
 * a serial plugin must not call itself). Waiters for a load sleep on the entry's condition
 * variable; the loader grants each waiter its reference before waking it.
 * Instances (lib/instance.c) do not know the cache: each is made with
 * cache_bury as its last-unref function and the cache's call counters. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instance-internal.h"

#define CACHE_SHARDS 16u
#define CACHE_BUCKETS_INITIAL 16u

typedef enum entry_state {
        ENTRY_LOADING,
        ENTRY_READY,
        ENTRY_FAILED,
} entry_state;

typedef struct cache_entry {
        struct cache_entry *next;
        uint64_t generation;
        entry_state state;
        bool linked;                    /* still in its slot's list */
        bool cancelled;                 /* unloaded while loading */
        bool forgotten;                 /* forgotten while loading: a failure is not kept */
        ph_instance *inst;              /* READY: the cache's reference */
        ph_instance *result;            /* what waiters get (their ref is granted) */
        int error;                      /* FAILED */
        char *message;                  /* FAILED */
        unsigned waiters;
        pthread_cond_t done;
} cache_entry;

typedef struct cache_slot {
        struct cache_slot *next;        /* hash chain */
        uint64_t hash;
        cache_entry *entries;
        char name[];
} cache_slot;

typedef struct cache_shard {
        pthread_mutex_t lock;
        cache_slot **buckets;
        size_t n_buckets, n_slots;
        uint64_t hits, misses, loads, failures;
} __attribute__((aligned(64))) cache_shard;

struct ph_cache {
        ph_cache_config cfg;
        cache_shard shards[CACHE_SHARDS];
        pthread_mutex_t dead_lock;
        ph_instance *dead;
        atomic_uint_fast64_t unloads, instances;
        ph_call_counters calls;         /* every instance of this cache counts here */
};

static uint64_t cache_hash(const char *s)
{
        uint64_t h = 1469598103934665603ull;

        while (*s)
                h = (h ^ (unsigned char)*s++) * 1099511628211ull;
        return h;
}

static cache_shard *cache_shard_of(ph_cache *c, uint64_t hash)
{
        return &c->shards[hash % CACHE_SHARDS];
}

static cache_slot **cache_bucket(cache_shard *sh, uint64_t hash)
{
        return &sh->buckets[(hash / CACHE_SHARDS) & (sh->n_buckets - 1)];
}

static cache_slot *cache_slot_find(cache_shard *sh, const char *name, uint64_t hash)
{
        for (cache_slot *s = *cache_bucket(sh, hash); s; s = s->next)
                if (s->hash == hash && strcmp(s->name, name) == 0)
                        return s;
        return NULL;
}

/* Doubles the table when it holds more slots than buckets. */
static void cache_grow(cache_shard *sh)
{
        size_t n = sh->n_buckets * 2;
        cache_slot **b = calloc(n, sizeof(*b));

        if (!b)
                return;         /* longer chains, still correct */
        for (size_t i = 0; i < sh->n_buckets; i++) {
                cache_slot *s = sh->buckets[i], *next;

                for (; s; s = next) {
                        size_t at = (s->hash / CACHE_SHARDS) & (n - 1);

                        next = s->next;
                        s->next = b[at];
                        b[at] = s;
                }
        }
        free(sh->buckets);
        sh->buckets = b;
        sh->n_buckets = n;
}

static cache_slot *cache_slot_add(cache_shard *sh, const char *name, uint64_t hash)
{
        size_t len = strlen(name);
        cache_slot *s = calloc(1, sizeof(*s) + len + 1), **b;

        if (!s)
                return NULL;
        memcpy(s->name, name, len + 1);
        s->hash = hash;
        if (sh->n_slots >= sh->n_buckets)
                cache_grow(sh);
        b = cache_bucket(sh, hash);
        s->next = *b;
        *b = s;
        sh->n_slots++;
        return s;
}

static void cache_slot_drop_if_empty(cache_shard *sh, cache_slot *slot)
{
        cache_slot **p;

        if (slot->entries)
                return;
        for (p = cache_bucket(sh, slot->hash); *p != slot; p = &(*p)->next)
                ;
        *p = slot->next;
        sh->n_slots--;
        free(slot);
}

static void cache_entry_free(cache_entry *e)
{
        pthread_cond_destroy(&e->done);
        free(e->message);
        free(e);
}

/* Takes e out of its slot. Its READY reference goes to *retired (a chain
 * through next_dead, unreffed after unlocking). The entry itself is freed
 * now, or by its last waiter. Shard lock held. */
static void cache_entry_unlink(cache_slot *slot, cache_entry *e, ph_instance **retired)
{
        cache_entry **p;

        for (p = &slot->entries; *p != e; p = &(*p)->next)
                ;
        *p = e->next;
        e->linked = false;
        if (e->state == ENTRY_READY && e->inst) {
                e->inst->next_dead = *retired;
                *retired = e->inst;
                e->inst = NULL;
        }
        if (e->waiters == 0)
                cache_entry_free(e);
}

static void cache_unref_chain(ph_instance *chain)
{
        while (chain) {
                ph_instance *next = chain->next_dead;

                chain->next_dead = NULL;
                ph_instance_unref(chain);
                chain = next;
        }
}

__attribute__((format(printf, 4, 5)))
static int cache_fail(int r, char *err, size_t err_size, const char *fmt, ...)
{
        va_list ap;

        if (err_size > 0) {
                va_start(ap, fmt);
                vsnprintf(err, err_size, fmt, ap);
                va_end(ap);
        }
        return r;
}

bool ph_cache_error_transient(int r)
{
        return r == -EACCES || r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -ENOSPC ||
               r == -EAGAIN || r == -EINTR;
}

/* Where an instance of this cache goes when its last reference is gone:
 * onto the graveyard, for ph_cache_reap. Any thread, no lock held. */
static void cache_bury(ph_instance *inst, void *owner)
{
        ph_cache *c = owner;

        pthread_mutex_lock(&c->dead_lock);
        inst->next_dead = c->dead;
        c->dead = inst;
        pthread_mutex_unlock(&c->dead_lock);
        if (c->cfg.garbage_cb)
                c->cfg.garbage_cb(c->cfg.userdata);
}

/* Opens, checks, loads and initialises; no lock held. *ret_transient: the
 * load failed before init, for a reason of the host's. */
static int cache_load(ph_cache *c, const ph_load_request *req, ph_instance **ret,
                      bool *ret_transient, char *err, size_t err_size)
{
        ph_image_check check = { .cb = c->cfg.check_cb, .req = req };
        ph_image img;
        ph_instance *inst;
        bool has_init;
        int fd, r;

        fd = ph_scan_open(req->dirfd, req->path);
        *ret_transient = ph_cache_error_transient(fd);
        if (fd < 0)
                return cache_fail(fd, err, err_size, "%s: open %s: %s", req->name, req->path,
                                  fd == -ELOOP ? "a symbolic link" : strerror(-fd));
        r = ph__image_load(fd, req->name, c->cfg.max_image_size, &check, req->runner == NULL, &img,
                           err, err_size);
        close(fd);
        if (r < 0) {
                *ret_transient = ph_cache_error_transient(r);
                return r;
        }
        r = ph__instance_new(&img, req->generation, &c->calls, cache_bury, c, &inst);
        if (r < 0) {
                ph__image_close(&img);
                *ret_transient = true;
                return cache_fail(r, err, err_size, "%s: out of memory", req->name);
        }

        has_init = req->runner || inst->img.entry->init != NULL;
        if (has_init && c->cfg.init_cb)
                c->cfg.init_cb(req, false);
        r = ph__instance_start(inst, req, ret_transient, err, err_size);
        if (has_init && c->cfg.init_cb)
                c->cfg.init_cb(req, true);
        if (r < 0) {
                ph__instance_free(inst);        /* not started: no fini */
                return r;
        }
        atomic_fetch_add(&c->instances, 1);
        *ret = inst;
        return 0;
}

/* Retires every READY generation of slot other than keep, and forgets
 * older failures: called when keep became ready. Shard lock held. */
static void cache_retire_others(cache_slot *slot, cache_entry *keep, ph_instance **retired)
{
        cache_entry *e = slot->entries, *next;

        for (; e; e = next) {
                next = e->next;
                if (e == keep || e->state == ENTRY_LOADING)
                        continue;
                if (e->generation < keep->generation || e->state == ENTRY_READY)
                        cache_entry_unlink(slot, e, retired);
        }
}

/* True if a generation newer than gen is ready. Shard lock held. */
static bool cache_has_newer_gen(const cache_slot *slot, uint64_t gen)
{
        for (const cache_entry *o = slot->entries; o; o = o->next)
                if (o->state == ENTRY_READY && o->generation > gen)
                        return true;
        return false;
}

/* Waits for a load in progress; the loader granted us a reference. */
static int cache_wait(cache_shard *sh, cache_entry *e, ph_instance **ret, char *err, size_t err_size)
{
        int r = 0;

        e->waiters++;
        while (e->state == ENTRY_LOADING)
                pthread_cond_wait(&e->done, &sh->lock);
        e->waiters--;
        if (e->state == ENTRY_READY) {
                *ret = e->result;
        } else {
                r = e->error;
                cache_fail(r, err, err_size, "%s", e->message ? e->message : strerror(-r));
        }
        return r;
}

int ph_cache_get(ph_cache *c, const ph_load_request *req, ph_instance **ret,
                 char *err, size_t err_size)
{
        uint64_t hash;
        cache_shard *sh;
        cache_slot *slot;
        cache_entry *e;
        ph_instance *inst = NULL, *retired = NULL;
        bool transient = false;
        int r;

        if (!c || !req || !req->name || !req->path || !ret)
                return cache_fail(-EINVAL, err, err_size, "invalid load request");
        hash = cache_hash(req->name);
        sh = cache_shard_of(c, hash);

        pthread_mutex_lock(&sh->lock);
        slot = cache_slot_find(sh, req->name, hash);
        if (!slot && !(slot = cache_slot_add(sh, req->name, hash))) {
                pthread_mutex_unlock(&sh->lock);
                return cache_fail(-ENOMEM, err, err_size, "out of memory");
        }
        /* A load that began before an unload or a forget is not joined:
         * whoever asks after one gets a load of its own (with the
         * configuration of now, say). */
        for (e = slot->entries; e; e = e->next)
                if (e->generation == req->generation &&
                    !(e->state == ENTRY_LOADING && (e->cancelled || e->forgotten)))
                        break;
        if (e && e->state == ENTRY_READY) {
                sh->hits++;
                *ret = ph_instance_ref(e->inst);
                pthread_mutex_unlock(&sh->lock);
                return 0;
        }
        if (e && e->state == ENTRY_FAILED) {
                sh->hits++;
                r = cache_fail(e->error, err, err_size, "%s", e->message ? e->message : "load failed");
                pthread_mutex_unlock(&sh->lock);
                return r;
        }
        if (!e && cache_has_newer_gen(slot, req->generation)) {
                pthread_mutex_unlock(&sh->lock);
                return cache_fail(-ESTALE, err, err_size,
                                  "%s: generation %llu is older than the one loaded", req->name,
                                  (unsigned long long)req->generation);
        }
        sh->misses++;
        if (e) {
                r = cache_wait(sh, e, &inst, err, err_size);
                if (!e->linked && e->waiters == 0)
                        cache_entry_free(e);
                pthread_mutex_unlock(&sh->lock);
                if (r == 0)
                        *ret = inst;
                return r;
        }

        e = calloc(1, sizeof(*e));
        if (!e) {
                cache_slot_drop_if_empty(sh, slot);
                pthread_mutex_unlock(&sh->lock);
                return cache_fail(-ENOMEM, err, err_size, "out of memory");
        }
        e->generation = req->generation;
        e->state = ENTRY_LOADING;
        e->linked = true;
        pthread_cond_init(&e->done, NULL);
        e->next = slot->entries;
        slot->entries = e;
        pthread_mutex_unlock(&sh->lock);

        r = cache_load(c, req, &inst, &transient, err, err_size);

        pthread_mutex_lock(&sh->lock);
        if (r == 0) {
                e->state = ENTRY_READY;
                e->inst = inst;
                e->result = inst;
                /* Ours, and one for each waiter, on top of the cache's. */
                atomic_fetch_add(&inst->refs, 1 + (long)e->waiters);
                sh->loads++;
        } else {
                e->state = ENTRY_FAILED;
                e->error = r;
                e->message = err_size > 0 ? strdup(err) : NULL;
                sh->failures++;
        }
        /* Waiters run once we unlock; e lives until the last of them. */
        pthread_cond_broadcast(&e->done);
        /* A transient failure answers its waiters and is forgotten. */
        if (e->cancelled || transient || (r < 0 && e->forgotten) ||
            (r == 0 && cache_has_newer_gen(slot, e->generation)))
                cache_entry_unlink(slot, e, &retired);  /* serve our callers, then drain */
        else if (r == 0)
                cache_retire_others(slot, e, &retired);
        cache_slot_drop_if_empty(sh, slot);
        pthread_mutex_unlock(&sh->lock);

        cache_unref_chain(retired);
        if (r == 0)
                *ret = inst;
        return r;
}

int ph_cache_lookup(ph_cache *c, const char *name, ph_instance **ret)
{
        uint64_t hash = cache_hash(name);
        cache_shard *sh = cache_shard_of(c, hash);
        cache_entry *best = NULL;
        cache_slot *slot;

        pthread_mutex_lock(&sh->lock);
        slot = cache_slot_find(sh, name, hash);
        for (cache_entry *e = slot ? slot->entries : NULL; e; e = e->next)
                if (e->state == ENTRY_READY && (!best || e->generation > best->generation))
                        best = e;
        if (best)
                *ret = ph_instance_ref(best->inst);
        pthread_mutex_unlock(&sh->lock);
        return best ? 0 : -ENOENT;
}

int ph_cache_unload(ph_cache *c, const char *name)
{
        uint64_t hash = cache_hash(name);
        cache_shard *sh = cache_shard_of(c, hash);
        ph_instance *retired = NULL;
        cache_entry *e, *next;
        cache_slot *slot;

        pthread_mutex_lock(&sh->lock);
        slot = cache_slot_find(sh, name, hash);
        if (!slot) {
                pthread_mutex_unlock(&sh->lock);
                return -ENOENT;
        }
        for (e = slot->entries; e; e = next) {
                next = e->next;
                if (e->state == ENTRY_LOADING)
                        e->cancelled = true;
                else
                        cache_entry_unlink(slot, e, &retired);
        }
        cache_slot_drop_if_empty(sh, slot);
        pthread_mutex_unlock(&sh->lock);
        cache_unref_chain(retired);
        return 0;
}

int ph_cache_forget(ph_cache *c, const char *name)
{
        uint64_t hash = cache_hash(name);
        cache_shard *sh = cache_shard_of(c, hash);
        ph_instance *retired = NULL;
        cache_entry *e, *next;
        cache_slot *slot;

        pthread_mutex_lock(&sh->lock);
        slot = cache_slot_find(sh, name, hash);
        if (!slot) {
                pthread_mutex_unlock(&sh->lock);
                return -ENOENT;
        }
        for (e = slot->entries; e; e = next) {
                next = e->next;
                if (e->state == ENTRY_FAILED)
                        cache_entry_unlink(slot, e, &retired);
                else if (e->state == ENTRY_LOADING)
                        e->forgotten = true;
        }
        cache_slot_drop_if_empty(sh, slot);
        pthread_mutex_unlock(&sh->lock);
        /* A failed entry holds no instance: nothing was retired. */
        return 0;
}

int ph_cache_reap(ph_cache *c)
{
        ph_instance *list, *next;
        int n = 0;

        pthread_mutex_lock(&c->dead_lock);
        list = c->dead;
        c->dead = NULL;
        pthread_mutex_unlock(&c->dead_lock);

        for (; list; list = next) {
                next = list->next_dead;
                if (c->cfg.fini_cb)
                        c->cfg.fini_cb(c->cfg.userdata, list->img.meta->name, false);
                ph__instance_free(list);        /* fini, dlclose */
                if (c->cfg.fini_cb)
                        c->cfg.fini_cb(c->cfg.userdata, NULL, true);
                atomic_fetch_add(&c->unloads, 1);
                atomic_fetch_sub(&c->instances, 1);
                n++;
        }
        return n;
}

void ph_cache_get_counters(ph_cache *c, ph_cache_counters *ret)
{
        ph_cache_counters k = { 0 };

        for (unsigned i = 0; i < CACHE_SHARDS; i++) {
                cache_shard *sh = &c->shards[i];

                pthread_mutex_lock(&sh->lock);
                k.hits += sh->hits;
                k.misses += sh->misses;
                k.loads += sh->loads;
                k.failures += sh->failures;
                pthread_mutex_unlock(&sh->lock);
        }
        k.unloads = atomic_load(&c->unloads);
        ph__call_counters_read(&c->calls, &k.calls, &k.in_flight);
        k.instances = atomic_load(&c->instances);
        *ret = k;
}

int ph_cache_new(const ph_cache_config *cfg, ph_cache **ret)
{
        /* Its shards and call stripes are cache-line aligned: so is it. */
        size_t size = (sizeof(ph_cache) + PH_CACHE_LINE - 1) / PH_CACHE_LINE * PH_CACHE_LINE;
        ph_cache *c = aligned_alloc(PH_CACHE_LINE, size);
        unsigned i;

        if (!c)
                return -ENOMEM;
        memset(c, 0, size);
        if (cfg)
                c->cfg = *cfg;
        if (c->cfg.max_image_size == 0)
                c->cfg.max_image_size = PH_LOAD_MAX;
        for (i = 0; i < CACHE_SHARDS; i++)
                pthread_mutex_init(&c->shards[i].lock, NULL);
        pthread_mutex_init(&c->dead_lock, NULL);
        for (i = 0; i < CACHE_SHARDS; i++) {
                c->shards[i].n_buckets = CACHE_BUCKETS_INITIAL;
                c->shards[i].buckets = calloc(CACHE_BUCKETS_INITIAL, sizeof(cache_slot *));
                if (!c->shards[i].buckets) {
                        ph_cache_free(c);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

void ph_cache_free(ph_cache *c)
{
        if (!c)
                return;
        for (unsigned i = 0; i < CACHE_SHARDS; i++) {
                cache_shard *sh = &c->shards[i];

                for (size_t b = 0; sh->buckets && b < sh->n_buckets; b++) {
                        cache_slot *s = sh->buckets[b], *next;

                        for (; s; s = next) {
                                next = s->next;
                                ph_cache_unload(c, s->name);    /* frees s */
                        }
                }
                free(sh->buckets);
                pthread_mutex_destroy(&sh->lock);
        }
        ph_cache_reap(c);
        pthread_mutex_destroy(&c->dead_lock);
        free(c);
}
