/* plughostd configuration: defaults, then the INI file and its drop-ins
 * (parsed with libinih), then the command line. */
#ifndef PH_CONFIG_H
#define PH_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "isolation.h"
#include "policy.h"

#define PH_CONFIG_DEFAULT_PATH SYSCONFDIR "/plughost/plughostd.conf"
#define PH_DEFAULT_SOCKET "/run/plughost/io.plughost"
#define PH_DEFAULT_STATE_DIR LOCALSTATEDIR "/lib/plughost"

typedef struct ph_plugin_conf {
        char *name;
        char *config_json;          /* validated JSON object text; NULL: {} */
        ph_acl acl;                 /* who may Load/Unload/Call it, if set */
        ph_isolation iso;           /* Isolation=, User=, Limit...= */
        char *file;                 /* where its first [Plugin NAME] header is */
        int line;
} ph_plugin_conf;

/* [Directory PATH]: settings for the plugins found in PATH. */
typedef struct ph_dir_conf {
        char *dir;
        ph_isolation iso;
} ph_dir_conf;

/* A configuration is built once (ph_config_new, then ph_config_load and
 * the command line), then published and never changed: a reload builds a
 * new one and swaps the pointer on the loop. Whoever reads it off the loop
 * (a load on a plugin thread) holds a reference. */
typedef struct ph_config {
        atomic_int refs;
        char **plugin_dirs;         /* in precedence order */
        size_t n_plugin_dirs, cap_plugin_dirs;
        char *socket_path;
        mode_t socket_mode;
        char *socket_group;         /* NULL: leave the group alone */
        char *state_dir;
        int log_level;
        double call_timeout_sec;
        unsigned workers;           /* most threads running plugin code */
        unsigned max_connections;   /* 0 until resolved: from the fd budget */
        unsigned max_connections_per_uid;       /* 0 until resolved */
        unsigned reserved_connections;  /* of max_connections, for privileged clients */
        size_t max_message;
        size_t max_buffer_per_conn; /* bytes a connection may hold (in and out) */
        size_t max_buffer_total;    /* ... all connections together */
        size_t monitor_buffer_max;  /* how far a Monitor stream may fall behind */
        double message_timeout_sec; /* an incomplete message may wait this long */
        ph_plugin_conf *plugins;
        size_t n_plugins, cap_plugins;
        ph_acl acl;                 /* [Policy] AllowUsers=, AllowGroups= */
        char *digests_file;         /* [Policy] DigestsFile=; NULL: no pinning */
        ph_digests *digests;        /* its pins, read when the config is built */
        unsigned max_calls_per_uid; /* [Policy] MaxCallsPerUser=; 0 until resolved */
        unsigned max_calls_per_plugin;  /* [Policy] MaxCallsPerPlugin=; 0 until resolved */
        ph_isolation iso;           /* [Daemon] Isolation=, User=, Limit...= */
        ph_dir_conf *dirs;          /* [Directory PATH] sections */
        size_t n_dirs, cap_dirs;
        char *worker_path;          /* [Daemon] WorkerPath=: the plughost-worker binary */
        uid_t nobody_uid;           /* a root daemon's workers' user by default */
        gid_t nobody_gid;
} ph_config;

/* A new configuration with the built-in defaults and one reference.
 * Returns 0 or -ENOMEM. */
int ph_config_new(ph_config **ret);
ph_config *ph_config_ref(ph_config *cfg);
/* Any thread; the last reference frees it. Accepts NULL. */
void ph_config_unref(ph_config *cfg);

/* Reads path (and path.d/\*.conf, in name order) into cfg. A missing file
 * is an error only if must_exist. On a syntax or value error returns
 * -EINVAL and writes "file:line: what" into err. */
int ph_config_load(ph_config *cfg, const char *path, bool must_exist, char *err, size_t err_size);

/* Fills the values left to the daemon (0 above) from the descriptors it
 * may open (its RLIMIT_NOFILE) and Workers=, and caps what does not fit.
 * Call once the file and the command line are read. */
void ph_config_resolve(ph_config *cfg, unsigned long nofile);

/* The config JSON for a plugin ("{}" if none). Borrowed from cfg. */
const char *ph_config_plugin_json(const ph_config *cfg, const char *name);

/* The access list for a plugin's changing methods: its own, else the
 * global one. */
const ph_acl *ph_config_plugin_acl(const ph_config *cfg, const char *name);

/* What can only be judged once the file and the command line are read:
 * every [Directory PATH] names a plugin directory. -EINVAL with err. */
int ph_config_check(const ph_config *cfg, char *err, size_t err_size);

/* Where and how the plugin name, found at file path, runs: [Daemon],
 * then its directory's section, then its own. */
void ph_config_isolation(const ph_config *cfg, const char *name, const char *path,
                         ph_isolation *ret);
/* Only its mode (what List shows): no system call. */
ph_isolation_mode ph_config_isolation_mode(const ph_config *cfg, const char *name, const char *path);

/* The [Plugin NAME] sections whose NAME is none of names (n of them, the
 * plugins found): calls warn with "FILE:LINE: [Plugin NAME]: no plugin
 * named "NAME"" and, if one is close, "; did you mean "OTHER"?". Returns
 * how many. The caller's thread; cfg is only read. */
size_t ph_config_unknown_plugins(const ph_config *cfg, const char *const *names, size_t n,
                                 void (*warn)(const char *msg, void *userdata), void *userdata);

/* Adds a plugin directory (command line); the first call drops the ones
 * the file gave. */
int ph_config_add_dir(ph_config *cfg, const char *dir, bool *replaced);


#endif
