/* Loading exactly the bytes that were checked: the file is copied from the
 * caller's O_NOFOLLOW fd into a sealed memfd, the copy is checked and
 * scanned, and the copy is what dlopen maps, under a name that no other
 * loaded image has. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader-internal.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

__attribute__((format(printf, 4, 5)))
static int load_fail(int r, char *err, size_t err_size, const char *fmt, ...)
{
        va_list ap;

        if (err_size > 0) {
                va_start(ap, fmt);
                vsnprintf(err, err_size, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* A memfd that may be mapped executable (kernels with vm.memfd_noexec know
 * MFD_EXEC; older ones reject the flag). */
static int load_memfd(const char *name)
{
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);

        if (fd < 0 && errno == EINVAL)
                fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        return fd < 0 ? -errno : fd;
}

/* Copies size bytes from fd (from offset 0) into the memfd and seals it,
 * so nobody, us included, can change the bytes after this. */
static int load_copy(int fd, int memfd, uint64_t size)
{
        off_t off = 0;

        if (ftruncate(memfd, (off_t)size) < 0)
                return -errno;
        while ((uint64_t)off < size) {
                ssize_t n = sendfile(memfd, fd, &off, (size_t)(size - (uint64_t)off));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ENODATA;        /* the file shrank under us */
        }
        if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        return 0;
}

/* Resolves and checks the entry point before any plugin function runs. */
static int load_entry(ph_image *img, const char *name, char *err, size_t err_size)
{
        const struct plughost_plugin *e;

        dlerror();
        e = dlsym(img->handle, PLUGHOST_ENTRY_SYMBOL);
        if (!e) {
                const char *why = dlerror();
                return load_fail(-ENOENT, err, err_size, "%s: no entry point %s%s%s", name,
                                 PLUGHOST_ENTRY_SYMBOL, why ? ": " : "", why ? why : "");
        }
        if (e->abi != img->meta->abi || e->abi == 0 || e->abi > PLUGHOST_ABI_VERSION)
                return load_fail(-EPROTO, err, err_size,
                                 "%s: entry point ABI %u does not match metadata ABI %u (host %u)",
                                 name, e->abi, img->meta->abi, PLUGHOST_ABI_VERSION);
        if (e->size < PLUGHOST_PLUGIN_V1_SIZE)
                return load_fail(-EPROTO, err, err_size, "%s: entry point too small (%u bytes)",
                                 name, e->size);
        if (!e->call)
                return load_fail(-EPROTO, err, err_size, "%s: entry point has no call function", name);
        img->entry = e;
        return 0;
}

int ph__image_map(ph_image *img, const char *want_name, char *err, size_t err_size)
{
        char proc[64];

        /* glibc matches loaded objects by name and by inode. The inode of a
         * memfd is new; the name /proc/self/fd/N stays unique because N is
         * kept open for as long as glibc has the image (ph__image_close). */
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", img->memfd);
        dlerror();
        img->handle = dlopen(proc, RTLD_NOW | RTLD_LOCAL | (img->meta->resident ? RTLD_NODELETE : 0));
        if (!img->handle) {
                const char *why = dlerror();
                return load_fail(-ENOEXEC, err, err_size, "%s: dlopen: %s", want_name,
                                 why ? why : "failed");
        }
        return load_entry(img, want_name, err, err_size);
}

int ph__image_load(int fd, const char *want_name, uint64_t max_size, const ph_image_check *check,
                   bool map, ph_image *ret, char *err, size_t err_size)
{
        ph_image img = { .memfd = -1 };
        struct stat st;
        ph_scan scan;
        int memfd, r;

        if (fstat(fd, &st) < 0)
                return load_fail(-errno, err, err_size, "%s: fstat: %s", want_name, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return load_fail(-EBADFD, err, err_size, "%s: not a regular file", want_name);
        if ((uint64_t)st.st_size > max_size)
                return load_fail(-EFBIG, err, err_size, "%s: %lld bytes, more than the load limit %llu",
                                 want_name, (long long)st.st_size, (unsigned long long)max_size);

        memfd = load_memfd(want_name);
        if (memfd < 0)
                return load_fail(memfd, err, err_size, "%s: memfd_create: %s", want_name, strerror(-memfd));
        r = load_copy(fd, memfd, (uint64_t)st.st_size);
        if (r < 0) {
                load_fail(r, err, err_size, "%s: copying the file: %s", want_name,
                          r == -ENODATA ? "it shrank while being read" : strerror(-r));
                goto out;
        }

        /* The policy sees the file's own stat and the exact bytes that will run. */
        if (check && check->cb) {
                if (err_size > 0)
                        err[0] = '\0';
                r = check->cb(&st, memfd, check->req, err, err_size);
                if (r < 0) {
                        if (err_size > 0 && !err[0])
                                snprintf(err, err_size, "%s: refused by policy: %s", want_name,
                                         strerror(-r));
                        goto out;
                }
        }

        /* The verdict that counts is the one on the bytes that will run. */
        r = ph_scan_fd(memfd, &scan);
        if (r < 0) {
                load_fail(r, err, err_size, "%s: scan: %s", want_name, strerror(-r));
                goto out;
        }
        if (scan.reason != PH_REASON_OK) {
                load_fail(-ENOEXEC, err, err_size, "%s: %s: %s", want_name,
                          ph_reason_describe(scan.reason), scan.message);
                ph_scan_clear(&scan);
                r = -ENOEXEC;
                goto out;
        }
        img.meta = scan.meta;
        scan.meta = NULL;
        if (strcmp(img.meta->name, want_name) != 0) {
                r = load_fail(-ESTALE, err, err_size, "%s: the file now claims the name '%s'",
                              want_name, img.meta->name);
                goto out;
        }
        img.memfd = memfd;
        memfd = -1;
        if (map)
                r = ph__image_map(&img, want_name, err, err_size);
out:
        if (memfd >= 0)
                close(memfd);
        if (r < 0) {
                ph__image_close(&img);
                return r;
        }
        *ret = img;
        return 0;
}

void ph__image_close(ph_image *img)
{
        char proc[64];
        void *still;

        if (img->handle && !(img->meta && img->meta->resident)) {
                dlclose(img->handle);
                /* dlclose may keep the image (unique symbols, a dependent
                 * object): then its name must stay reserved, so its fd stays
                 * open for good. */
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", img->memfd);
                still = dlopen(proc, RTLD_NOW | RTLD_NOLOAD);
                if (still) {
                        dlclose(still);
                        img->memfd = -1;
                }
        } else if (img->handle) {
                img->memfd = -1;        /* resident: mapped, and named, forever */
        }
        if (img->memfd >= 0)
                close(img->memfd);
        ph_meta_free(img->meta);
        memset(img, 0, sizeof(*img));
        img->memfd = -1;
}
