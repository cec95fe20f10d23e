/* The crash line, in the manner of Redis's crash report: a handler for the
 * fatal signals writes one line naming the plugin the thread was running
 * (from the thread-local context ops.c and lifecycle.c set around plugin
 * code), then lets the signal take its default action. The handler only
 * formats integers by hand and calls write(2), sigaction, sigprocmask and
 * raise: all async-signal-safe. */
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

static const struct {
        int sig;
        const char *name;
} crash_signals[] = {
        { SIGSEGV, "SIGSEGV" }, { SIGBUS, "SIGBUS" }, { SIGILL, "SIGILL" },
        { SIGFPE, "SIGFPE" }, { SIGABRT, "SIGABRT" }, { SIGSYS, "SIGSYS" },
};
#define N_CRASH_SIGNALS (sizeof(crash_signals) / sizeof(crash_signals[0]))

/* What was installed before us, chained to after the line. Set once in
 * ph_crash_init, before any thread; only read afterwards. */
static struct sigaction crash_prev[N_CRASH_SIGNALS];
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
        put(&b, i < N_CRASH_SIGNALS ? crash_signals[i].name : "?");
        put(&b, ") in ");
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
        if (i < N_CRASH_SIGNALS && (crash_prev[i].sa_flags & SA_SIGINFO) &&
            crash_prev[i].sa_sigaction) {
                sigaction(sig, &crash_prev[i], NULL);
                crash_prev[i].sa_sigaction(sig, si, uc);
        } else if (i < N_CRASH_SIGNALS && crash_prev[i].sa_handler != SIG_DFL &&
                   crash_prev[i].sa_handler != SIG_IGN) {
                sigaction(sig, &crash_prev[i], NULL);
                crash_prev[i].sa_handler(sig);
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

int ph_crash_init(void)
{
        stack_t ss = { .ss_sp = main_altstack, .ss_size = sizeof(main_altstack) };
        struct sigaction sa = { .sa_sigaction = crash_handler,
                                .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND };
        stack_t old;

        crash_journal = ph_log_is_journal();
        /* A sanitizer's stack, if there is one, stays: it frees it itself. */
        if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE) && sigaltstack(&ss, NULL) < 0)
                return -errno;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < N_CRASH_SIGNALS; i++) {
                if (sigaction(crash_signals[i].sig, NULL, &crash_prev[i]) < 0 ||
                    sigaction(crash_signals[i].sig, &sa, NULL) < 0)
                        return -errno;
                /* Chaining to SIG_DFL is what we do anyway. */
                if (crash_prev[i].sa_handler == SIG_IGN)
                        crash_prev[i].sa_handler = SIG_DFL;
        }
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
