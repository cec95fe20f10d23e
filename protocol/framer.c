/* Varlink framing: a connection's bytes accumulate in one growable buffer
 * and come out as NUL-terminated messages. Every byte is scanned once, and
 * consumed bytes are reclaimed by moving the unread ones down only when
 * that moves no more bytes than were consumed, or when the cap leaves no
 * other way to make room. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "varlink.h"

/* First allocation, and the size an idle connection's buffer shrinks back
 * under once a large message has been taken. */
#define FRAMER_ALLOC_MIN 4096u
#define FRAMER_KEEP_IDLE (64u * 1024u)

struct ph_framer {
        char *buf;
        size_t size;            /* allocated bytes, never more than max */
        size_t max;             /* cap on one message, NUL included */
        size_t start;           /* first byte not yet returned by next */
        size_t end;             /* one past the last committed byte */
        size_t scanned;         /* [start, scanned) is known to hold no NUL */
        size_t reserved;        /* free bytes handed out by the last reserve */
};

int ph_framer_new(size_t max_message, ph_framer **ret)
{
        ph_framer *f;

        /* Half of SIZE_MAX keeps the doubling in framer_grow from wrapping. */
        if (max_message == 0 || max_message > SIZE_MAX / 2)
                return -EINVAL;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->max = max_message;
        *ret = f;
        return 0;
}

void ph_framer_free(ph_framer *f)
{
        if (!f)
                return;
        free(f->buf);
        free(f);
}

/* The first NUL at or after start, or NULL; never looks at a byte twice. */
static char *framer_find(ph_framer *f)
{
        char *nul = memchr(f->buf + f->scanned, '\0', f->end - f->scanned);

        f->scanned = nul ? (size_t)(nul - f->buf) : f->end;
        return nul;
}

static void framer_compact(ph_framer *f)
{
        size_t held = f->end - f->start;

        memmove(f->buf, f->buf + f->start, held);
        f->scanned -= f->start;
        f->end = held;
        f->start = 0;
}

static int framer_grow(ph_framer *f, size_t want)
{
        size_t size = f->size * 2;
        char *buf;

        if (size < f->end + want)
                size = f->end + want;
        if (size < FRAMER_ALLOC_MIN)
                size = FRAMER_ALLOC_MIN;
        if (size > f->max)
                size = f->max;
        if (size <= f->size)
                return 0;
        buf = realloc(f->buf, size);
        if (!buf)
                return -ENOMEM;
        f->buf = buf;
        f->size = size;
        return 0;
}

/* Returns -ENOBUFS when the buffer is at the cap and full of complete
 * messages that were not taken with ph_framer_next yet: there is nothing
 * wrong with the stream, the caller has to take messages before reading. */
int ph_framer_reserve(ph_framer *f, size_t min_free, char **ret_buf, size_t *ret_free)
{
        size_t want = min_free == 0 ? 1 : min_free;
        int r;

        if (want > f->max)
                want = f->max;
        if (f->start == f->end) {
                /* Empty: start over at 0 for free, and give back what a
                 * past large message made us allocate. */
                f->start = f->end = f->scanned = 0;
                if (f->size > FRAMER_KEEP_IDLE) {
                        free(f->buf);
                        f->buf = NULL;
                        f->size = 0;
                }
        }
        if (f->size - f->end < want && f->start > 0 && f->start >= f->end - f->start)
                framer_compact(f);
        if (f->size - f->end < want) {
                r = framer_grow(f, want);
                if (r < 0)
                        return r;
        }
        /* At the cap, moving down is the only way left to make room. */
        if (f->size - f->end < want && f->start > 0)
                framer_compact(f);
        if (f->size == f->end) {
                /* size == max here, and start == 0 after the compaction. */
                if (!framer_find(f))
                        return -EMSGSIZE;
                return -ENOBUFS;
        }
        f->reserved = f->size - f->end;
        *ret_buf = f->buf + f->end;
        *ret_free = f->reserved;
        return 0;
}

void ph_framer_commit(ph_framer *f, size_t n)
{
        assert(n <= f->reserved);
        f->end += n;
        f->reserved -= n;
}

int ph_framer_next(ph_framer *f, const char **ret_msg, size_t *ret_len)
{
        char *nul;
        size_t len;

        if (f->start == f->end)
                return 0;
        nul = framer_find(f);
        if (!nul)
                return f->end - f->start >= f->max ? -EMSGSIZE : 0;
        len = (size_t)(nul - (f->buf + f->start));
        if (len >= f->max)
                return -EMSGSIZE;
        *ret_msg = f->buf + f->start;
        *ret_len = len;
        /* The message stays where it is until the next call moves bytes. */
        f->start += len + 1;
        f->scanned = f->start;
        return 1;
}

size_t ph_framer_pending(const ph_framer *f)
{
        return f->end - f->start;
}

size_t ph_framer_allocated(const ph_framer *f)
{
        return f->size;
}
