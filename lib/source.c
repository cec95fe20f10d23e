/* A bounded read window over an open file: pread only, never mmap, so a file
 * truncated under us yields a short read (a verdict), not SIGBUS. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "scan-internal.h"

static int source_pread(ph_source *src, void *dst, size_t size, uint64_t off)
{
        size_t done = 0;

        while (done < size) {
                ssize_t n = pread(src->fd, (char *)dst + done, size - done,
                                  (off_t)(off + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                src->reads++;
                if (n == 0)
                        return (int)done;     /* the file shrank */
                src->bytes_read += (uint64_t)n;
                done += (size_t)n;
        }
        return (int)done;
}

int ph__source_read(ph_source *src, uint64_t off, size_t size, void *dst)
{
        int n;

        if (!ph__source_contains(src, off, size))
                return -ERANGE;
        if (size == 0)
                return 0;

        if (off >= src->win_off && off - src->win_off <= src->win_len &&
            size <= src->win_len - (off - src->win_off)) {
                memcpy(dst, src->win + (off - src->win_off), size);
                return 0;
        }

        if (size > sizeof(src->win)) {
                n = source_pread(src, dst, size, off);
                if (n < 0)
                        return src->err = n;
                return (size_t)n == size ? 0 : -ERANGE;
        }

        /* Refill the window starting at off. */
        size_t want = sizeof(src->win);
        if (src->size - off < want)
                want = (size_t)(src->size - off);
        n = source_pread(src, src->win, want, off);
        if (n < 0) {
                src->win_len = 0;
                return src->err = n;
        }
        src->win_off = off;
        src->win_len = (size_t)n;
        if ((size_t)n < size)
                return -ERANGE;
        memcpy(dst, src->win, size);
        return 0;
}

int ph__source_stream(ph_source *src, uint64_t off, uint64_t size, void *buf,
                      size_t bufsize,
                      int (*fn)(const void *data, size_t len, uint64_t at, void *ud),
                      void *ud)
{
        if (!ph__source_contains(src, off, size))
                return -ERANGE;
        while (size > 0) {
                size_t want = size < bufsize ? (size_t)size : bufsize;
                int n = source_pread(src, buf, want, off);
                if (n < 0)
                        return src->err = n;
                if (n == 0)
                        return -ERANGE;
                int r = fn(buf, (size_t)n, off, ud);
                if (r != 0)
                        return r;
                off += (uint64_t)n;
                size -= (uint64_t)n;
        }
        return 0;
}
