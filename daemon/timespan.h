/* Time spans as systemd's ...Sec= keys take them (systemd.time(7)):
 * "5s", "500ms", "1min 30s", "1.5h"; a number without a unit is seconds. */
#ifndef PH_TIMESPAN_H
#define PH_TIMESPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PH_USEC_PER_SEC UINT64_C(1000000)
/* What an error message lists. */
#define PH_TIMESPAN_UNITS "us, ms, s, min, h, d, w, M (30.44 d), y (365.25 d)"

/* Parses s into microseconds. Returns 0, or -EINVAL (not a time span) or
 * -ERANGE (beyond 2^64-1 us) with a sentence in why that never echoes s.
 * A fraction finer than a microsecond is dropped. Any thread. */
int ph_timespan_parse(const char *s, uint64_t *ret_usec, char *why, size_t why_size);

/* Whether s, a span ph_timespan_parse() accepted, is written above 0: its
 * value is 0 all the same when it is all below a microsecond. */
bool ph_timespan_nonzero(const char *s);

#endif
