/* Rate limits for log lines, per uid and in total, with a summary of what
 * was suppressed. The uid table is small and fixed: the lines of a uid
 * that finds no free entry are suppressed, in the total's summary. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ratelimit.h"

#define RL_UIDS 64u

typedef struct rl_entry {
        uid_t uid;
        bool used;
        uint64_t start;                 /* this uid's interval began */
        unsigned count, suppressed;
} rl_entry;

struct ph_ratelimit {
        char *what;
        unsigned per_uid, total;
        uint64_t interval;
        uint64_t start;                 /* the total's interval began */
        unsigned count, suppressed;     /* suppressed: beyond the total */
        rl_entry e[RL_UIDS];
};

ph_ratelimit *ph_ratelimit_new(const char *what, unsigned per_uid, unsigned total,
                               uint64_t interval_ms)
{
        ph_ratelimit *rl = calloc(1, sizeof(*rl));

        if (!rl || !(rl->what = strdup(what))) {
                free(rl);
                return NULL;
        }
        rl->per_uid = per_uid;
        rl->total = total;
        rl->interval = interval_ms;
        return rl;
}

void ph_ratelimit_free(ph_ratelimit *rl)
{
        if (!rl)
                return;
        free(rl->what);
        free(rl);
}

static void entry_end(ph_ratelimit *rl, rl_entry *e)
{
        if (e->suppressed)
                log_notice("uid %u: %u log lines about %s suppressed in the last %llu s", (unsigned)e->uid,
                           e->suppressed, rl->what, (unsigned long long)(rl->interval / 1000));
        e->used = false;
        e->count = e->suppressed = 0;
}

void ph_ratelimit_flush(ph_ratelimit *rl, uint64_t now)
{
        if (!rl)
                return;
        for (unsigned i = 0; i < RL_UIDS; i++)
                if (rl->e[i].used && now - rl->e[i].start >= rl->interval)
                        entry_end(rl, &rl->e[i]);
        if (now - rl->start >= rl->interval) {
                if (rl->suppressed)
                        log_notice("%u log lines about %s suppressed in the last %llu s (all users)",
                                   rl->suppressed, rl->what,
                                   (unsigned long long)(rl->interval / 1000));
                rl->start = now;
                rl->count = rl->suppressed = 0;
        }
}

bool ph_ratelimit_pending(const ph_ratelimit *rl)
{
        if (!rl)
                return false;
        if (rl->suppressed)
                return true;
        for (unsigned i = 0; i < RL_UIDS; i++)
                if (rl->e[i].used && rl->e[i].suppressed)
                        return true;
        return false;
}

bool ph_ratelimit_ok(ph_ratelimit *rl, uid_t uid, uint64_t now)
{
        rl_entry *e = NULL, *free_e = NULL;

        if (!rl)
                return true;
        ph_ratelimit_flush(rl, now);
        for (unsigned i = 0; i < RL_UIDS && !e; i++) {
                if (rl->e[i].used && rl->e[i].uid == uid)
                        e = &rl->e[i];
                else if (!rl->e[i].used && !free_e)
                        free_e = &rl->e[i];
        }
        if (!e && free_e) {
                e = free_e;
                e->used = true;
                e->uid = uid;
                e->start = now;
        }
        /* A uid without an entry (the table is full: many uids at once)
         * cannot be capped on its own: it goes in the total's summary. */
        if (!e || rl->count >= rl->total || e->count >= rl->per_uid) {
                if (e && e->count >= rl->per_uid)
                        e->suppressed++;
                else
                        rl->suppressed++;
                return false;
        }
        rl->count++;
        e->count++;
        return true;
}
