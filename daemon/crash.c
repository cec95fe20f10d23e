/* The crash line, in the manner of Redis's crash report: a handler for
 * every signal that would kill the process and that the daemon does not
 * take otherwise writes one line naming the plugin the thread was running
 * (from the thread-local context ops.c and lifecycle.c set around plugin
 * code), then lets the signal take its default action. The handler only
 * formats integers by hand and calls write(2), getpid, sigaction,
 * sigprocmask and raise: all async-signal-safe. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "crash.h"
#include "log.h"

/* Big enough for the handler and what a chained sanitizer handler needs. */
#define CRASH_ALTSTACK_SIZE (64 * 1024)
/* Longest plugin name or method written; longer ones are cut. */
#define CRASH_NAME_MAX 128

__thread ph_crash_ctx ph__crash_ctx;

/* fini's copy of the plugin name (ph_crash_enter_fini). */
static __thread char fini_name[CRASH_NAME_MAX + 1];
/* The pool thread's alternate stack, if we made it. */
static __thread void *thread_altstack;

/* Every signal whose default action ends the process, but SIGKILL (no
 * handler possible), SIGTERM, SIGINT and SIGHUP (signals.c: they stop or
 * reload the daemon), SIGPIPE and SIGXFSZ (ignored, main.c), and the
 * real-time ones (named SIGRTMIN+n, all SIGRTMIN..SIGRTMAX that sigaction
 * accepts: glibc keeps two below SIGRTMIN for itself). "fault": raised by
 * what the thread itself did, where a handler installed before ours (a
 * sanitizer's report) is chained to; for the others such a handler means
 * somebody handles the signal, and ours is not installed. */
static const struct {
        int sig;
        const char *name;
        bool fault;
} crash_signals[] = {
        { SIGSEGV, "SIGSEGV", true },   { SIGBUS, "SIGBUS", true },
        { SIGILL, "SIGILL", true },     { SIGFPE, "SIGFPE", true },
        { SIGABRT, "SIGABRT", true },   { SIGSYS, "SIGSYS", true },
        { SIGTRAP, "SIGTRAP", true },   { SIGQUIT, "SIGQUIT", false },
        { SIGXCPU, "SIGXCPU", false },  { SIGALRM, "SIGALRM", false },
        { SIGUSR1, "SIGUSR1", false },  { SIGUSR2, "SIGUSR2", false },
        { SIGVTALRM, "SIGVTALRM", false }, { SIGPROF, "SIGPROF", false },
#ifdef SIGSTKFLT
        { SIGSTKFLT, "SIGSTKFLT", false },
#endif
#ifdef SIGPWR
        { SIGPWR, "SIGPWR", false },
#endif
        { SIGIO, "SIGIO", false },
};
#define N_CRASH_SIGNALS (sizeof(crash_signals) / sizeof(crash_signals[0]))

/* What was installed before us, by signal number, chained to after the
 * line. Set once in ph_crash_init, before any thread; only read
 * afterwards. */
static struct sigaction crash_prev[NSIG];
/* SIGRTMIN is a function call in glibc: read once, outside the handler. */
static int crash_rtmin, crash_rtmax;
static bool crash_journal;
/* The main thread's alternate stack (static: never freed). */
static char main_altstack[CRASH_ALTSTACK_SIZE];

void ph_crash_enter_fini(const char *plugin)
{
        size_t n = strnlen(plugin, CRASH_NAME_MAX);

        memcpy(fini_name, plugin, n);
        fini_name[n] = '\0';
        ph_crash_enter(fini_name, "fini", NULL);
}

/* ---- the handler: async-signal-safe only ---- */

typedef struct crash_buf {
        char text[512];
        size_t len;
} crash_buf;

static void put(crash_buf *b, const char *s)
{
        while (*s && b->len < sizeof(b->text) - 1)
                b->text[b->len++] = *s++;
}

/* A name from a plugin or a client: at most CRASH_NAME_MAX bytes, and one
 * line without quotes. */
static void put_name(crash_buf *b, const char *s)
{
        for (size_t i = 0; s[i] && i < CRASH_NAME_MAX && b->len < sizeof(b->text) - 1; i++) {
                unsigned char ch = (unsigned char)s[i];

                b->text[b->len++] = ch < 0x20 || ch == 0x7f || ch == '"' ? '?' : (char)ch;
        }
}

static void put_uint(crash_buf *b, unsigned long v)
{
        char digits[24];
        size_t n = 0;

        do
                digits[n++] = (char)('0' + v % 10);
        while ((v /= 10) && n < sizeof(digits));
        while (n > 0 && b->len < sizeof(b->text) - 1)
                b->text[b->len++] = digits[--n];
}

static void crash_write(const crash_buf *b)
{
        size_t off = 0;

        while (off < b->len) {
                ssize_t n = write(STDERR_FILENO, b->text + off, b->len - off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                off += (size_t)n;
        }
}

static void crash_handler(int sig, siginfo_t *si, void *uc)
{
        const ph_crash_ctx *ctx = &ph__crash_ctx;
        const struct sigaction *prev;
        crash_buf b = { .len = 0 };
        int saved = errno;
        size_t i;
        sigset_t set;

        for (i = 0; i < N_CRASH_SIGNALS && crash_signals[i].sig != sig; i++)
                ;
        if (crash_journal)
                put(&b, "<2>");
        put(&b, "plughostd: fatal: signal ");
        put_uint(&b, (unsigned long)sig);
        put(&b, " (");
        if (i < N_CRASH_SIGNALS) {
                put(&b, crash_signals[i].name);
        } else if (sig >= crash_rtmin && sig <= crash_rtmax) {
                put(&b, "SIGRTMIN+");
                put_uint(&b, (unsigned long)(sig - crash_rtmin));
        } else {
                put(&b, "?");
        }
        put(&b, ")");
        /* Sent by another process (kill, sigqueue): whatever this thread
         * was running did not ask for it. */
        if (si && (si->si_code == SI_USER || si->si_code == SI_QUEUE || si->si_code == SI_TKILL) &&
            si->si_pid != getpid()) {
                put(&b, " sent by pid ");
                put_uint(&b, (unsigned long)si->si_pid);
        }
        put(&b, " in ");
        if (ctx->plugin) {
                put(&b, "plugin ");
                put_name(&b, ctx->plugin);
                put(&b, ", ");
                put(&b, ctx->phase ? ctx->phase : "?");
                if (ctx->method) {
                        put(&b, " \"");
                        put_name(&b, ctx->method);
                        put(&b, "\"");
                }
        } else {
                put(&b, "the daemon");
        }
        put(&b, " (thread ");
        put_uint(&b, (unsigned long)syscall(SYS_gettid));
        put(&b, "); the daemon stops\n");
        crash_write(&b);
        errno = saved;

        /* SA_RESETHAND put back SIG_DFL. A handler from before us (ASan's
         * report) runs now, as if we had not been there. */
        prev = sig > 0 && sig < NSIG ? &crash_prev[sig] : NULL;
        if (prev && (prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
                sigaction(sig, prev, NULL);
                prev->sa_sigaction(sig, si, uc);
        } else if (prev && prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
                sigaction(sig, prev, NULL);
                prev->sa_handler(sig);
        }
        /* The default action, for the real exit status and core: a fault
         * would come back on return, but raise() and abort() would not. */
        signal(sig, SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
}

/* ---- set-up ---- */

/* Our handler for sig. An ignored signal gets it too (it would be SIG_DFL
 * after any exec; a plugin that raises it then dies with a line, not
 * silently). A handler already there is chained to for a fault, and left
 * alone otherwise (a profiler's SIGPROF, say). */
static int crash_install(int sig, bool fault, const struct sigaction *sa)
{
        struct sigaction *prev = &crash_prev[sig];

        if (sigaction(sig, NULL, prev) < 0)
                return -errno;
        if (!fault && prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN)
                return 0;
        if (sigaction(sig, sa, NULL) < 0)
                return -errno;
        /* Chaining to SIG_DFL is what we do anyway. */
        if (prev->sa_handler == SIG_IGN)
                prev->sa_handler = SIG_DFL;
        return 0;
}

int ph_crash_init(void)
{
        stack_t ss = { .ss_sp = main_altstack, .ss_size = sizeof(main_altstack) };
        struct sigaction sa = { .sa_sigaction = crash_handler,
                                .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND };
        stack_t old;
        int r;

        crash_journal = ph_log_is_journal();
        /* A sanitizer's stack, if there is one, stays: it frees it itself. */
        if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE) && sigaltstack(&ss, NULL) < 0)
                return -errno;
        sigemptyset(&sa.sa_mask);
        crash_rtmin = SIGRTMIN;
        crash_rtmax = SIGRTMAX;
        for (size_t i = 0; i < N_CRASH_SIGNALS; i++)
                if ((r = crash_install(crash_signals[i].sig, crash_signals[i].fault, &sa)) < 0)
                        return r;
        for (int sig = crash_rtmin; sig <= crash_rtmax; sig++)
                if ((r = crash_install(sig, false, &sa)) < 0 && r != -EINVAL)
                        return r;
        return 0;
}

void ph_crash_thread_init(void)
{
        stack_t ss, old;

        if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
                return;         /* a sanitizer's: it frees it itself */
        ss.ss_sp = malloc(CRASH_ALTSTACK_SIZE);
        ss.ss_size = CRASH_ALTSTACK_SIZE;
        ss.ss_flags = 0;
        if (!ss.ss_sp)
                return;         /* no line for a stack overflow then: still a crash */
        if (sigaltstack(&ss, NULL) < 0) {
                free(ss.ss_sp);
                return;
        }
        thread_altstack = ss.ss_sp;
}

void ph_crash_thread_done(void)
{
        stack_t ss = { .ss_flags = SS_DISABLE };

        if (!thread_altstack)
                return;
        if (sigaltstack(&ss, NULL) == 0)
                free(thread_altstack);
        thread_altstack = NULL;
}
