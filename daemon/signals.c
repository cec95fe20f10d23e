/* The daemon's signals through a signalfd. A signal that every thread
 * blocks stays pending for the process whatever handler a plugin installs
 * (the kernel never discards a blocked signal as ignored), and only the
 * signalfd takes it.
 *
 * A plugin thread may unblock them, though, and the kernel then delivers
 * the process's SIGTERM to that thread. So the three also have a handler
 * of ours, which runs only on such a thread: it counts the signal and
 * wakes the loop with uv_async_send (async-signal-safe, and no descriptor
 * of its own), where it goes the same way as one from the signalfd. A plugin that replaces that handler (SIG_IGN, its own) gets it
 * back from ph_signals_check, with a warning, within a second.
 *
 * Children: the mask is inherited across fork and exec. fork() gets it
 * cleared by the pthread_atfork handler below, and libuv's uv_spawn resets
 * the mask itself; posix_spawn (and system(), popen()) do neither: whoever
 * uses them must pass POSIX_SPAWN_SETSIGMASK with an empty set. */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "signals.h"

struct ph_signals {
        uv_poll_t poll;                 /* the signalfd */
        uv_async_t async;               /* woken by signals_forward */
        int fd;
        unsigned open_handles;          /* freed when both are closed */
        ph_signals_fn cb;
        void *userdata;
};

static const struct {
        int sig;
        const char *name;
} daemon_signals[] = { { SIGTERM, "SIGTERM" }, { SIGINT, "SIGINT" }, { SIGHUP, "SIGHUP" } };
#define N_DAEMON_SIGNALS (sizeof(daemon_signals) / sizeof(daemon_signals[0]))

/* Signals the handler took and the loop has not seen, by index in
 * daemon_signals: any thread adds (lock-free atomics, so async-signal-
 * safe), the loop takes them all at once; several of a kind count as one,
 * as the kernel's own pending signals do. */
static atomic_uint forwarded[N_DAEMON_SIGNALS];
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "the handler's atomics must be lock-free");
/* The loop's wake-up: set by ph_signals_new, cleared by ph_signals_free
 * and in a fork child. Before it is set, counts wait for it. */
static _Atomic(uv_async_t *) forward_async;

/* On a thread that unblocked the signal (a plugin's): async-signal-safe. */
static void signals_forward(int sig)
{
        uv_async_t *a;
        int saved = errno;

        for (size_t i = 0; i < N_DAEMON_SIGNALS; i++)
                if (daemon_signals[i].sig == sig)
                        atomic_fetch_add(&forwarded[i], 1);
        if ((a = atomic_load(&forward_async)))
                uv_async_send(a);
        errno = saved;
}

static void signals_handler(struct sigaction *sa)
{
        memset(sa, 0, sizeof(*sa));
        sa->sa_handler = signals_forward;
        /* A plugin's system calls go on as if the signal was not its. */
        sa->sa_flags = SA_RESTART;
        sigfillset(&sa->sa_mask);
}

static void signals_set(sigset_t *set)
{
        sigemptyset(set);
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGINT);
        sigaddset(set, SIGHUP);
}

/* In the child of a fork(): the signals are its own, not the daemon's to
 * read (our handler goes back to SIG_DFL, as exec would do, and forgets
 * the daemon's loop), and an exec'd program starts with a clean mask. */
static void signals_child(void)
{
        struct sigaction old, dfl = { .sa_handler = SIG_DFL };
        sigset_t set;

        sigemptyset(&dfl.sa_mask);
        for (size_t i = 0; i < N_DAEMON_SIGNALS; i++)
                if (sigaction(daemon_signals[i].sig, NULL, &old) == 0 && old.sa_handler == signals_forward)
                        sigaction(daemon_signals[i].sig, &dfl, NULL);
        atomic_store(&forward_async, NULL);
        signals_set(&set);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int ph_signals_block(void)
{
        struct sigaction sa;
        sigset_t set;
        int r;

        signals_handler(&sa);
        for (size_t i = 0; i < N_DAEMON_SIGNALS; i++)
                if (sigaction(daemon_signals[i].sig, &sa, NULL) < 0)
                        return -errno;
        signals_set(&set);
        r = pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (r != 0)
                return -r;
        r = pthread_atfork(NULL, NULL, signals_child);
        return r != 0 ? -r : 0;
}

unsigned ph_signals_check(void)
{
        struct sigaction sa, old;
        unsigned restored = 0;

        signals_handler(&sa);
        for (size_t i = 0; i < N_DAEMON_SIGNALS; i++) {
                if (sigaction(daemon_signals[i].sig, &sa, &old) < 0 ||
                    (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == signals_forward))
                        continue;
                log_warning("the disposition of %s was changed to %s, by plugin code: restored",
                            daemon_signals[i].name,
                            old.sa_flags & SA_SIGINFO ? "a handler" :
                            old.sa_handler == SIG_IGN ? "SIG_IGN" :
                            old.sa_handler == SIG_DFL ? "SIG_DFL" : "a handler");
                restored++;
        }
        return restored;
}

/* What signals_forward counted. */
static void signals_async_cb(uv_async_t *a)
{
        ph_signals *s = a->data;

        for (size_t i = 0; i < N_DAEMON_SIGNALS; i++)
                if (atomic_exchange(&forwarded[i], 0) > 0)
                        s->cb(s->userdata, daemon_signals[i].sig);
}

static void signals_poll_cb(uv_poll_t *p, int status, int events)
{
        ph_signals *s = p->data;
        struct signalfd_siginfo si;
        ssize_t n;

        (void)status;
        (void)events;
        while ((n = read(s->fd, &si, sizeof(si))) == (ssize_t)sizeof(si))
                s->cb(s->userdata, (int)si.ssi_signo);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
                log_warning("reading signals: %s", strerror(errno));
}

int ph_signals_new(uv_loop_t *loop, ph_signals_fn cb, void *userdata, ph_signals **ret)
{
        ph_signals *s = calloc(1, sizeof(*s));
        sigset_t set;
        int r;

        if (!s)
                return -ENOMEM;
        signals_set(&set);
        s->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->fd < 0) {
                r = -errno;
                free(s);
                return r;
        }
        s->cb = cb;
        s->userdata = userdata;
        s->poll.data = s;
        s->async.data = s;
        if ((r = uv_poll_init(loop, &s->poll, s->fd)) < 0) {
                close(s->fd);
                free(s);
                return r;
        }
        s->open_handles = 1;
        if ((r = uv_async_init(loop, &s->async, signals_async_cb)) < 0) {
                ph_signals_free(s);
                return r;
        }
        s->open_handles = 2;
        if ((r = uv_poll_start(&s->poll, UV_READABLE, signals_poll_cb)) < 0) {
                ph_signals_free(s);
                return r;
        }
        atomic_store(&forward_async, &s->async);
        /* Any forwarded before now. */
        uv_async_send(&s->async);
        *ret = s;
        return 0;
}

static void signals_close_cb(uv_handle_t *h)
{
        ph_signals *s = h->data;

        if (--s->open_handles > 0)
                return;
        close(s->fd);
        free(s);
}

void ph_signals_free(ph_signals *s)
{
        if (!s)
                return;
        /* A handler running right now on a plugin's thread may still wake
         * the handle: it is freed only on the next loop pass. */
        atomic_store(&forward_async, NULL);
        if (s->open_handles == 2)
                uv_close((uv_handle_t *)&s->async, signals_close_cb);
        uv_close((uv_handle_t *)&s->poll, signals_close_cb);
}
