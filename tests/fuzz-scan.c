/* libFuzzer target for the reader: each input becomes the content of a memfd
 * handed to ph_scan_fd (and to ph_scan_fd_opts, cancelled after a few polls
 * and with a size limit), or, when its first byte is FUZZ_META_SELECTOR, the
 * bytes after it go to ph_meta_parse directly. Invariants of the verdict and
 * of validated metadata are checked; a violation aborts. Seeds, and how they
 * were made: tests/fuzz-seeds/README. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plughost/abi.h"
#include "plughost/plughost.h"

/* 'M' selects the metadata path. ELF inputs start with 0x7f, so a bit test
 * (data[0] & 1) would send every ELF seed there; an exact byte does not. */
#define FUZZ_META_SELECTOR 'M'

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "fuzz-scan: invariant violated: %s (%s:%d)\n", \
                                #cond, __FILE__, __LINE__);                    \
                        abort();                                               \
                }                                                              \
        } while (0)

/* ^[a-z0-9][a-z0-9._-]{0,63}$, written independently of lib/meta.c. */
static int name_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > PH_NAME_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") == 0)
                return 0;
        return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* NUL-terminated, no C0 control characters (NULL allowed when optional). */
static int text_ok(const char *s, int optional)
{
        if (!s)
                return optional;
        for (; *s; s++)
                if ((unsigned char)*s < 0x20)
                        return 0;
        return 1;
}

static int sign(int v)
{
        return (v > 0) - (v < 0);
}

static void check_meta(const ph_meta *m)
{
        CHECK(m != NULL);
        CHECK(m->name && name_ok(m->name));
        CHECK(m->version && text_ok(m->version, 0));
        CHECK(ph_version_compare(m->version, m->version) == 0);
        CHECK(sign(ph_version_compare(m->version, "1.0.0")) ==
              -sign(ph_version_compare("1.0.0", m->version)));
        CHECK(m->interfaces != NULL);
        for (size_t i = 0; i < m->n_interfaces; i++)
                CHECK(m->interfaces[i] && text_ok(m->interfaces[i], 0));
        CHECK(m->interfaces[m->n_interfaces] == NULL);
        CHECK(text_ok(m->description, 1) && text_ok(m->license, 1) && text_ok(m->url, 1));
        CHECK(m->priority >= -1000 && m->priority <= 1000);
        CHECK(m->json != NULL);
}

static void fuzz_meta(const uint8_t *data, size_t size)
{
        char err[256];
        ph_meta *meta = NULL;
        int r;

        memset(err, 0xaa, sizeof(err));
        r = ph_meta_parse((const char *)data, size, &meta, err, sizeof(err));
        if (r == -ENOMEM)
                return;
        if (r == 0) {
                check_meta(meta);
                CHECK(memcmp(meta->json, data, size) == 0 && meta->json[size] == '\0');
                ph_meta_free(meta);
                return;
        }
        CHECK(r == -EINVAL);
        CHECK(meta == NULL);
        CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
}

static void check_scan(const ph_scan *s)
{
        CHECK((unsigned)s->reason < _PH_REASON_MAX);
        CHECK(s->reason != PH_REASON_UNTRUSTED);        /* the host's verdict, never the reader's */
        CHECK(memchr(s->message, '\0', sizeof(s->message)) != NULL);
        if (s->reason != PH_REASON_OK) {
                CHECK(s->meta == NULL);
                CHECK(s->message[0] != '\0');
                return;
        }
        check_meta(s->meta);
        CHECK(s->via != PH_VIA_NONE);
        CHECK(s->note_offset < s->file_size);
        CHECK(s->meta->abi >= 1 && s->meta->abi <= PLUGHOST_ABI_VERSION);
        CHECK(s->meta->format >= 1 && s->meta->format <= PLUGHOST_NOTE_FORMAT);
        CHECK(strlen(s->meta->json) < s->file_size);
}

/* One memfd for the whole run, resized to each input. */
static int fuzz_memfd(const uint8_t *data, size_t size)
{
        static int fd = -1;
        size_t done = 0;

        if (fd < 0) {
                fd = memfd_create("fuzz-scan", MFD_CLOEXEC);
                if (fd < 0) {
                        perror("fuzz-scan: memfd_create");
                        abort();
                }
        }
        if (ftruncate(fd, (off_t)size) < 0) {
                perror("fuzz-scan: ftruncate");
                abort();
        }
        while (done < size) {
                ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        perror("fuzz-scan: pwrite");
                        abort();
                }
                done += (size_t)n;
        }
        return fd;
}

/* Says "stop" at its stop_at-th poll. */
struct fuzz_polls {
        unsigned calls, stop_at;
};

static int fuzz_cancelled(void *userdata)
{
        struct fuzz_polls *p = userdata;

        return ++p->calls >= p->stop_at;
}

/* The same file, stopped after a few polls: the plain verdict, or no
 * verdict at all (and nothing left to free); then over a size limit:
 * refused unread. */
static void fuzz_scan_opts(int fd, size_t size, const ph_scan *plain)
{
        struct fuzz_polls polls = { .stop_at = 1 + (unsigned)(size % 5) };
        ph_scan_opts opts = { .cancelled = fuzz_cancelled, .userdata = &polls };
        ph_scan scan;
        int r;

        r = ph_scan_fd_opts(fd, &opts, &scan);
        if (r == -ENOMEM)
                return;
        CHECK(r == 0 || r == -ECANCELED);
        if (r == -ECANCELED) {
                CHECK(polls.calls == polls.stop_at);
                CHECK(scan.meta == NULL && scan.reason == PH_REASON_OK);
        } else {
                check_scan(&scan);
                CHECK(scan.reason == plain->reason && scan.bytes_read == plain->bytes_read);
                ph_scan_clear(&scan);
        }
        if (size < 2)
                return;         /* max_size 0 is no limit */
        opts = (ph_scan_opts){ .max_size = size - 1 };
        CHECK(ph_scan_fd_opts(fd, &opts, &scan) == 0);
        CHECK(scan.reason == PH_REASON_TOO_LARGE && scan.bytes_read == 0 && scan.meta == NULL);
}

static void fuzz_scan(const uint8_t *data, size_t size)
{
        int fd = fuzz_memfd(data, size);
        ph_scan scan;
        int r;

        r = ph_scan_fd(fd, &scan);
        if (r == -ENOMEM)
                return;
        CHECK(r == 0);
        CHECK(scan.file_size == size);
        check_scan(&scan);
        fuzz_scan_opts(fd, size, &scan);
        ph_scan_clear(&scan);
        CHECK(scan.meta == NULL && scan.reason == PH_REASON_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 0 && data[0] == FUZZ_META_SELECTOR)
                fuzz_meta(data + 1, size - 1);
        else
                fuzz_scan(data, size);
        return 0;
}
