/* The daemon's own signals (SIGTERM, SIGINT, SIGHUP): blocked in every
 * thread and read from a signalfd on the loop, so that no plugin can take
 * them with a handler of its own or SIG_IGN; a plugin thread that unblocks
 * them meets our handler, which forwards them to the loop. */
#ifndef PH_SIGNALS_H
#define PH_SIGNALS_H

#include <uv.h>

typedef struct ph_signals ph_signals;

/* Runs on the loop for each signal read. */
typedef void (*ph_signals_fn)(void *userdata, int signum);

/* Blocks the daemon's signals in the calling thread and installs the
 * forwarding handler. main(), before any thread starts (ours, libuv's
 * threadpool, the plugin pool), so every thread inherits the mask; a
 * child made with fork() gets them unblocked again, with SIG_DFL. Returns
 * 0 or a negative errno. */
int ph_signals_block(void);

/* Puts the forwarding handler back for each of the three signals whose
 * disposition plugin code changed, with a warning naming the signal and
 * what it had been changed to; returns how many. Loop thread, from the
 * daemon's once-a-second check. */
unsigned ph_signals_check(void);

/* Starts reading the blocked signals on loop, and those the handler
 * forwarded. Loop thread. Returns 0 or a negative errno. */
int ph_signals_new(uv_loop_t *loop, ph_signals_fn cb, void *userdata, ph_signals **ret);

/* Stops reading; the signals stay blocked (one that comes later is never
 * delivered). Frees s from its close callback. Accepts NULL. */
void ph_signals_free(ph_signals *s);

#endif
