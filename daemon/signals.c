/* The daemon's signals through a signalfd. A signal that every thread
 * blocks stays pending for the process whatever handler a plugin installs
 * (the kernel never discards a blocked signal as ignored), and only the
 * signalfd takes it.
 *
 * Children: the mask is inherited across fork and exec. fork() gets it
 * cleared by the pthread_atfork handler below, and libuv's uv_spawn resets
 * the mask itself; posix_spawn (and system(), popen()) do neither: whoever
 * uses them must pass POSIX_SPAWN_SETSIGMASK with an empty set. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "signals.h"

struct ph_signals {
        uv_poll_t poll;
        int fd;
        ph_signals_fn cb;
        void *userdata;
};

static void signals_set(sigset_t *set)
{
        sigemptyset(set);
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGINT);
        sigaddset(set, SIGHUP);
}

/* In the child of a fork(): an exec'd program starts with a clean mask. */
static void signals_child(void)
{
        sigset_t set;

        signals_set(&set);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int ph_signals_block(void)
{
        sigset_t set;
        int r;

        signals_set(&set);
        r = pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (r != 0)
                return -r;
        r = pthread_atfork(NULL, NULL, signals_child);
        return r != 0 ? -r : 0;
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
        if ((r = uv_poll_init(loop, &s->poll, s->fd)) < 0) {
                close(s->fd);
                free(s);
                return r;
        }
        if ((r = uv_poll_start(&s->poll, UV_READABLE, signals_poll_cb)) < 0) {
                ph_signals_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static void signals_close_cb(uv_handle_t *h)
{
        ph_signals *s = h->data;

        close(s->fd);
        free(s);
}

void ph_signals_free(ph_signals *s)
{
        if (s)
                uv_close((uv_handle_t *)&s->poll, signals_close_cb);
}
