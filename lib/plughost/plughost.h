/* libplughost: the host side. Reads plugin metadata from unloaded ELF files.
 *
 * Functions return >= 0 on success and a negative errno on failure, and fill
 * their ret_ parameters only on success. Nothing here logs, keeps global
 * state or needs an event loop; every function is safe to call from any
 * thread on distinct objects. */
#ifndef PLUGHOST_PLUGHOST_H
#define PLUGHOST_PLUGHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why a file is not a usable plugin. PH_REASON_OK means it is one. */
typedef enum ph_reason {
        PH_REASON_OK = 0,
        PH_REASON_NOT_REGULAR,    /* directory, FIFO, device, symlink */
        PH_REASON_NOT_ELF,
        PH_REASON_WRONG_CLASS,    /* not ELFCLASS64 (or the host's class) */
        PH_REASON_WRONG_ENDIAN,
        PH_REASON_WRONG_MACHINE,
        PH_REASON_NOT_SHARED,     /* not ET_DYN, a PIE executable, no dynamic section */
        PH_REASON_DEBUG_ONLY,     /* separate debug-symbol file */
        PH_REASON_TRUNCATED,      /* a header or table points past the end */
        PH_REASON_NO_METADATA,
        PH_REASON_BAD_METADATA,   /* the message names the key and the rule */
        PH_REASON_ABI_TOO_NEW,
        PH_REASON_TOO_LARGE,      /* a count or the metadata exceeds our caps */
        PH_REASON_IO,             /* open/read failed: the message has strerror */
        PH_REASON_UNTRUSTED,      /* refused by the host's trust policy before being
                                   * read; the reader never returns it, the host sets it */
        _PH_REASON_MAX,
} ph_reason;

/* Stable machine name ("not-elf", "debug-only", ...); "unknown" if out of range. */
const char *ph_reason_name(ph_reason reason);
/* Short human phrase ("not an ELF file", ...). */
const char *ph_reason_describe(ph_reason reason);

/* Caps applied to every file, whatever its size. */
#define PH_META_MAX 65536u          /* metadata JSON, bytes */
#define PH_NAME_MAX 64u             /* plugin name, bytes */

/* How the metadata note was reached. */
typedef enum ph_via {
        PH_VIA_NONE = 0,
        PH_VIA_PROGRAM_HEADERS,     /* a PT_NOTE segment */
        PH_VIA_SECTION_HEADERS,     /* an SHT_NOTE section, whatever its name */
        PH_VIA_SEARCH,              /* streaming search for the note's magic */
} ph_via;

const char *ph_via_name(ph_via via);

/* Validated metadata. Immutable once built; strings are NUL-terminated UTF-8
 * without control characters, all owned by the ph_meta. Owned by whoever
 * got it; free with ph_meta_free. */
typedef struct ph_meta {
        const char *name;           /* ^[a-z0-9][a-z0-9._-]{0,63}$ */
        const char *version;        /* MAJOR[.MINOR[.PATCH]][-pre][+build] */
        const char **interfaces;    /* n_interfaces reverse-domain names, NULL-terminated */
        size_t n_interfaces;
        const char *description;    /* NULL if absent */
        const char *license;        /* SPDX expression, NULL if absent */
        const char *url;            /* NULL if absent */
        bool serial;                /* "concurrency": "serial" */
        bool resident;              /* "resident": true: never dlclose */
        int priority;               /* -1000..1000, default 0: higher is preferred */
        uint16_t abi;               /* from the note header */
        uint16_t format;
        char *json;                 /* the metadata as embedded, NUL-terminated */
        void *priv;                 /* the parsed tree (a jansson json_t *), or NULL
                                     * once dropped; the strings above never live in it */
} ph_meta;

void ph_meta_free(ph_meta *meta);

/* The parsed tree costs about 1 KiB, the rest of a ph_meta a few hundred
 * bytes: whoever keeps many drops it (priv becomes NULL; every other field
 * stays as it was), and gets it back, parsed again from json, with
 * ph_meta_tree, which returns priv (NULL only without memory). */
void ph_meta_drop_tree(ph_meta *meta);
void *ph_meta_tree(ph_meta *meta);

/* Whether s is a valid plugin name (^[a-z0-9][a-z0-9._-]{0,63}$), and a
 * valid interface name (reverse-domain, as Varlink spells them, like
 * org.example.Greeter): the metadata's rules, for whoever checks a name
 * before asking for it (a configuration file, a command line). */
bool ph_name_valid(const char *s);
bool ph_interface_valid(const char *s);

/* Parses and validates metadata JSON (size bytes, not necessarily
 * NUL-terminated). On a rule violation returns -EINVAL and writes a message
 * naming the key and the rule to errbuf (if errbuf_size > 0). */
int ph_meta_parse(const char *json, size_t size, ph_meta **ret_meta,
                  char *errbuf, size_t errbuf_size);

/* Compares two version strings by semantic-versioning precedence:
 * < 0, 0, > 0 like strcmp. Missing MINOR/PATCH count as 0. */
int ph_version_compare(const char *a, const char *b);

/* The verdict on one file. */
typedef struct ph_scan {
        ph_reason reason;           /* PH_REASON_OK: meta is set */
        char message[256];          /* human explanation of reason */
        ph_via via;
        uint64_t note_offset;       /* file offset of the metadata header, i.e. of
                                     * the magic that opens the note's descriptor */
        uint64_t file_size;
        ph_meta *meta;              /* owned by the ph_scan; see ph_scan_clear */
        /* What it cost, for benchmarks and the daemon's status. */
        uint64_t bytes_read;
        uint32_t reads;
} ph_scan;

/* Opens path for scanning: O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, so a FIFO
 * never blocks and a symlink is refused. dirfd may be AT_FDCWD. Returns the
 * fd or a negative errno (-ELOOP for a symlink). */
int ph_scan_open(int dirfd, const char *path);

/* Reads the metadata of the plugin open on fd, with pread only (the file
 * offset is untouched; fd stays the caller's). Never maps or loads the file;
 * memory use is bounded whatever the file size. Always fills ret with a
 * verdict and returns 0, or returns -ENOMEM. Call ph_scan_clear on ret.
 * The same as ph_scan_fd_opts(fd, NULL, ret). */
int ph_scan_fd(int fd, ph_scan *ret);

typedef struct ph_scan_opts {
        uint64_t max_size;      /* 0: no limit. A larger file gets PH_REASON_TOO_LARGE
                                 * ("N bytes, the limit is M") without a byte being read */
        int (*cancelled)(void *userdata); /* may be NULL; polled between stages and between
                                           * search chunks; non-zero stops the scan */
        void *userdata;
} ph_scan_opts;

/* ph_scan_fd with options. Returns 0 with a verdict, -ENOMEM, or -ECANCELED when
 * cancelled() said so (then ret holds no verdict and needs no clear). cancelled
 * runs on the calling thread, at least once per 64 KiB the search reads.
 * opts may be NULL; it is not kept after the call. */
int ph_scan_fd_opts(int fd, const ph_scan_opts *opts, ph_scan *ret);

/* Opens and scans in one step; the open's failure becomes the verdict. */
int ph_scan_path(int dirfd, const char *path, ph_scan *ret);

/* Frees what ret owns and zeroes it. Accepts a zeroed ph_scan. */
void ph_scan_clear(ph_scan *scan);

/* Linear-time streaming search (Knuth-Morris-Pratt with a memchr skip),
 * usable on data fed in chunks of any size. */
typedef struct ph_search ph_search;

/* needle_size must be 1..256. The needle is copied. */
int ph_search_new(const void *needle, size_t needle_size, ph_search **ret);
void ph_search_free(ph_search *s);
/* Forgets any partial match. */
void ph_search_reset(ph_search *s);
/* Feeds the next size bytes of the stream. Returns the offset within buf just
 * past the first complete match, or -1 if none ends in buf. After a match,
 * feed buf + returned offset to go on searching. */
long ph_search_feed(ph_search *s, const void *buf, size_t size);


/* ---- Loading: verified images and the instance cache --------------------- */

struct stat;

/* Largest plugin file the loader copies and maps (the copy is what runs). */
#define PH_LOAD_MAX (256u * 1024u * 1024u)

typedef struct ph_cache ph_cache;
typedef struct ph_instance ph_instance;
struct ph_runner;

/* What to load: a name and generation (which changes whenever the file
 * does) and where the file is. The file must carry that name. */
typedef struct ph_load_request {
        const char *name;
        uint64_t generation;
        int dirfd;              /* AT_FDCWD or a directory fd */
        const char *path;       /* relative to dirfd; opened with O_NOFOLLOW */
        const char *config_json;/* passed to init; NULL means "{}" */
        void *userdata;         /* passed to check_cb and init_cb */
        /* Where the plugin's code runs: NULL, in this process (dlopen);
         * otherwise these hooks run it elsewhere (plughostd's worker
         * processes) and the cache maps nothing. */
        const struct ph_runner *runner;
        const void *runner_data;/* the runner's, for its start hook */
} ph_load_request;

/* A plugin run outside the calling process. The cache copies, checks and
 * scans the file as for any load, then hands the sealed copy to start
 * instead of mapping it; the instance's calls and its end go through the
 * hooks. Each runs on the thread of the load, call or reap, without
 * cache locks. */
typedef struct ph_runner {
        /* Starts the plugin from image_fd (the sealed copy, with meta read
         * from it; dup what you keep) and runs its init with
         * req->config_json. 0 with *ret_handle, or a negative errno with a
         * message in err; *ret_transient (false on entry) true when the
         * failure was the host's (no process, fd or memory to start it
         * with), which the cache then does not remember. */
        int (*start)(const ph_load_request *req, int image_fd, const ph_meta *meta,
                     void **ret_handle, bool *ret_transient, char *err, size_t err_size);
        /* As ph_instance_call. */
        int (*call)(void *handle, const char *method, const char *params_json,
                    char **ret_result, char *err, size_t err_size);
        /* fini, then the end of whatever ran it; frees handle. */
        void (*stop)(void *handle);
} ph_runner;

/* The hooks below run for the request that loads. Others that asked for
 * the same (name, generation) meanwhile wait for that load and share its
 * outcome; their hooks do not run. req is the caller's, valid during the
 * hook only. */
typedef struct ph_cache_config {
        /* Files larger than this are refused; 0 means PH_LOAD_MAX. */
        uint64_t max_image_size;
        /* Trust check before a byte of the plugin runs: file_st is the
         * fstat of the file as opened (O_NOFOLLOW), image_fd a sealed copy of
         * its bytes, the very bytes that will be loaded (hash these). Return
         * 0, or a negative errno with a message in err. May be NULL. */
        int (*check_cb)(const struct stat *file_st, int image_fd, const ph_load_request *req,
                        char *err, size_t err_size);
        /* Called before (done = false) and after (done = true) a plugin's
         * init, on the loading thread, without locks. May be NULL. */
        void (*init_cb)(const ph_load_request *req, bool done);
        /* Called, without locks, when an instance's last reference is gone
         * and ph_cache_reap has work. May be NULL. Gets userdata below. */
        void (*garbage_cb)(void *userdata);
        void *userdata;         /* for garbage_cb and fini_cb */
        /* Called before (done = false) and after (done = true) an instance
         * is finalised (fini, then dlclose) by ph_cache_reap or
         * ph_cache_free, on that thread, without locks; name is valid until
         * the call with done = true returns, not after. May be NULL. */
        void (*fini_cb)(void *userdata, const char *name, bool done);
} ph_cache_config;

typedef struct ph_cache_counters {
        uint64_t hits;          /* gets answered by a ready or remembered entry */
        uint64_t misses;        /* gets that had to load (or wait for a load) */
        uint64_t loads;         /* successful loads (dlopen + init) */
        uint64_t failures;      /* failed loads */
        uint64_t unloads;       /* instances finalised by ph_cache_reap */
        uint64_t calls;         /* ph_instance_call invocations */
        int64_t in_flight;      /* calls running now */
        uint64_t instances;     /* instances alive (ready, draining or dead) */
} ph_cache_counters;

/* Creates a cache. Copies cfg. Returns 0 or a negative errno. */
int ph_cache_new(const ph_cache_config *cfg, ph_cache **ret);

/* Retires every instance and reaps them. All references must have been
 * released; call from a thread outside plugin code. Accepts NULL. */
void ph_cache_free(ph_cache *c);

/* Returns a new reference to the instance of (name, generation): the cached
 * one, or one loaded now; -ESTALE, without loading, for a generation older
 * than one already ready. However many threads ask at once, one of them
 * loads and the others wait for it and get the same instance or the same
 * error. A failure is remembered for that generation and returned again
 * without a retry, unless it came before init with an error of the
 * environment (see ph_cache_error_transient). On success, older generations
 * of the name are retired: they finish the calls in flight, then are
 * finalised. Any thread; it may block for the whole load. err gets a
 * message on failure. A plugin's init that fails with a value that is not
 * an errno (below -4095) fails the load with -EIO. */
int ph_cache_get(ph_cache *c, const ph_load_request *req, ph_instance **ret,
                 char *err, size_t err_size);

/* True for the errors of ph_cache_get that say more about the host than
 * about the file version (no fd, no memory, no permission to open it):
 * before init they are not remembered, and a later get tries again. */
bool ph_cache_error_transient(int r);

/* A new reference to the newest ready instance of name, without loading;
 * -ENOENT when there is none. */
int ph_cache_lookup(ph_cache *c, const char *name, ph_instance **ret);

/* Drops the cache's reference to every generation of name and forgets its
 * failures. The instances finish their calls, then are finalised. A load in
 * progress answers its callers and is not kept; a get after the unload
 * does not join it but loads anew. Returns 0, or -ENOENT when the cache
 * knew nothing of name. */
int ph_cache_unload(ph_cache *c, const char *name);

/* Forgets the remembered load failures of every generation of name, so the
 * next ph_cache_get of any of them loads again (after the plugin's
 * configuration changed, say). Ready instances are left alone; so are loads
 * in progress, except that if one of them fails, its callers get the error
 * and the failure is not remembered either, and a get after the forget
 * does not join it but loads anew. Returns 0, or -ENOENT when the cache
 * knew nothing of name. Any thread. */
int ph_cache_forget(ph_cache *c, const char *name);

/* Runs fini and dlclose for instances whose last reference is gone. Call
 * from a thread that holds no host lock and is not inside plugin code.
 * Returns how many it finalised. */
int ph_cache_reap(ph_cache *c);

void ph_cache_get_counters(ph_cache *c, ph_cache_counters *ret);

/* Reference counting; unref never finalises inline (see ph_cache_reap). */
ph_instance *ph_instance_ref(ph_instance *inst);
void ph_instance_unref(ph_instance *inst);

/* The metadata read from the bytes that were loaded. Valid while a
 * reference is held. */
const ph_meta *ph_instance_meta(const ph_instance *inst);
uint64_t ph_instance_generation(const ph_instance *inst);
/* The runner's handle of an instance it started, or NULL for one that
 * runs in this process. */
void *ph_instance_runner_handle(const ph_instance *inst);

/* Calls the plugin; the caller holds a reference (its own, or one it
 * borrows from a holder that outlives the call). On success *ret_result
 * is malloc'd JSON text or NULL (meaning null). On failure returns the
 * plugin's negative errno and its message (or strerror) in err; a plugin
 * return below -4095, which is no errno, becomes -EIO. Serial plugins are
 * called one at a time. Any thread; many may call one instance at once. */
int ph_instance_call(ph_instance *inst, const char *method, const char *params_json,
                     char **ret_result, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
