/* Deadlines: every wait the daemon answers with a timeout, in one binary
 * min-heap driven by one uv_timer (instead of a uv_timer per operation).
 * Loop thread only. */
#ifndef PH_DEADLINE_H
#define PH_DEADLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ph_deadline ph_deadline;
typedef struct ph_deadlines ph_deadlines;

/* Embedded in whatever waits; zero-initialised means "not armed". */
struct ph_deadline {
        uint64_t at;                    /* uv_now() milliseconds */
        size_t index;                   /* in the heap, + 1; 0: not armed */
        void (*cb)(ph_deadline *dl);    /* runs once, disarmed, on the loop */
};

int ph_deadlines_new(uv_loop_t *loop, ph_deadlines **ret);
/* Closes the timer; armed deadlines never fire. */
void ph_deadlines_free(ph_deadlines *q);

/* Arms dl to fire cb after ms milliseconds (re-arms it if it was armed).
 * Returns 0 or -ENOMEM. */
int ph_deadline_arm(ph_deadlines *q, ph_deadline *dl, uint64_t ms, void (*cb)(ph_deadline *dl));
/* Disarms dl; harmless when it is not armed. */
void ph_deadline_cancel(ph_deadlines *q, ph_deadline *dl);

static inline bool ph_deadline_armed(const ph_deadline *dl)
{
        return dl->index != 0;
}

size_t ph_deadlines_count(const ph_deadlines *q);

#endif
