/* The crash line: when a thread dies of a fatal signal, one line on stderr
 * says which plugin it was running, and in what phase, before the default
 * action (a core, the real signal as the exit status). */
#ifndef PH_CRASH_H
#define PH_CRASH_H

/* What the thread runs now; all NULL outside plugin code. The strings are
 * the caller's and must outlive the span between enter and leave (for a
 * call or a load: the operation's name and method). Written by its own
 * thread only, read by that thread's signal handler. */
typedef struct ph_crash_ctx {
        const char *plugin;
        const char *phase;              /* "call", "init" or "fini" */
        const char *method;             /* calls only */
} ph_crash_ctx;

extern __thread ph_crash_ctx ph__crash_ctx;

/* Around plugin code, on the thread that runs it: three stores, nothing
 * more, so the call path is no slower. */
static inline void ph_crash_enter(const char *plugin, const char *phase, const char *method)
{
        ph__crash_ctx.plugin = plugin;
        ph__crash_ctx.phase = phase;
        ph__crash_ctx.method = method;
}

static inline void ph_crash_leave(void)
{
        ph__crash_ctx.plugin = ph__crash_ctx.phase = ph__crash_ctx.method = NULL;
}

/* For fini, whose plugin name lives in the instance being freed: the name
 * is copied into the thread's own buffer (truncated if long). */
void ph_crash_enter_fini(const char *plugin);

/* Installs the handler for every signal whose default action ends the
 * process, but SIGKILL, the daemon's own (SIGTERM, SIGINT, SIGHUP: see
 * signals.h) and the ignored SIGPIPE and SIGXFSZ (the list is in crash.c;
 * the real-time signals are included), and an alternate signal stack for
 * the calling thread. A handler that was there before is chained to after
 * the line for a fault (a sanitizer's report), and left in place instead
 * of ours for the other signals.
 * main(), once, after ph_log_init (the line takes the journal's prefix
 * when stderr is the journal) and before any thread starts. Returns 0 or a
 * negative errno. */
int ph_crash_init(void);

/* An alternate signal stack for the calling thread (a pool thread), so
 * that a stack overflow in plugin code still gets its line; kept if the
 * thread already has one (a sanitizer's). ph_crash_thread_done removes
 * and frees it before the thread exits. */
void ph_crash_thread_init(void);
void ph_crash_thread_done(void);

#endif
