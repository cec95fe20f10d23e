/* Rate-limited logging of what clients cause (refused connections and
 * requests, disconnects): at most a few lines per uid per interval, and a
 * cap for all uids together; the rest are counted and reported in one line
 * when the interval ends. Loop thread. */
#ifndef PH_RATELIMIT_H
#define PH_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ph_ratelimit ph_ratelimit;

/* what names the lines in the summary ("refused connections"). */
ph_ratelimit *ph_ratelimit_new(const char *what, unsigned per_uid, unsigned total,
                               uint64_t interval_ms);
void ph_ratelimit_free(ph_ratelimit *rl);

/* True when a line about uid may be logged now; false counts it as
 * suppressed. Logs the summaries of intervals that ended. */
bool ph_ratelimit_ok(ph_ratelimit *rl, uid_t uid, uint64_t now_ms);
/* Whether lines were suppressed whose summary is still to come. */
bool ph_ratelimit_pending(const ph_ratelimit *rl);
/* Logs the summaries of intervals that ended (from a timer). */
void ph_ratelimit_flush(ph_ratelimit *rl, uint64_t now_ms);

#endif
