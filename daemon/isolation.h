/* Where a plugin's code runs, as configured: in plughostd (the default,
 * for trusted code) or in a sandboxed plughost-worker process of its own,
 * with the user and limits it gets there. Set globally ([Daemon]), per
 * directory ([Directory PATH]) and per plugin ([Plugin NAME]); the most
 * specific setting of each key wins. Loop thread (config parsing). */
#ifndef PH_ISOLATION_H
#define PH_ISOLATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum ph_isolation_mode {
        PH_ISOLATION_UNSET,
        PH_ISOLATION_INPROCESS,
        PH_ISOLATION_PROCESS,
} ph_isolation_mode;

/* Defaults for a worker, unless configured, and the smallest values that
 * still let it start and read a request. */
#define PH_ISOLATION_NOFILE_DEFAULT 256u
#define PH_ISOLATION_NOFILE_MIN 16u
#define PH_ISOLATION_NPROC_DEFAULT 512u
#define PH_ISOLATION_NPROC_MIN 16u
#define PH_ISOLATION_AS_MIN (64ull << 20)

typedef struct ph_isolation {
        ph_isolation_mode mode;
        bool has_uid, has_gid;          /* User=, Group= */
        uid_t uid;
        gid_t gid;
        uint64_t limit_as;              /* LimitAS= bytes; 0: unset */
        uint64_t limit_cpu;             /* LimitCPU= seconds; 0: unset */
        uint64_t limit_nofile;          /* LimitNOFILE=; 0: unset */
        uint64_t limit_nproc;           /* LimitNPROC=; 0: unset */
} ph_isolation;

/* Parses one of the keys above into iso. -ENOENT for another key,
 * -EINVAL with why filled for a bad value. */
int ph_isolation_key(ph_isolation *iso, const char *name, const char *value, char *why,
                     size_t why_size);

/* Lays over's set keys on top of base. */
void ph_isolation_merge(ph_isolation *base, const ph_isolation *over);

const char *ph_isolation_mode_name(ph_isolation_mode m);

#endif
