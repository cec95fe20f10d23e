/* Internal to lib/: one verified plugin image, as lib/loader.c makes it.
 * The loader knows nothing of instances or of the cache. */
#ifndef PH_LOADER_INTERNAL_H
#define PH_LOADER_INTERNAL_H

#include <stdbool.h>
#include <sys/stat.h>

#include "plughost/plughost.h"
#include "plughost/abi.h"

/* A loaded, not yet initialised plugin image. Owned by whoever holds it;
 * released with ph__image_close. */
typedef struct ph_image {
        void *handle;                           /* from dlopen */
        int memfd;                              /* the sealed copy; names the image */
        const struct plughost_plugin *entry;
        ph_meta *meta;                          /* read from the loaded bytes */
} ph_image;

/* The host's trust hook and the request it judges (both the caller's). */
typedef struct ph_image_check {
        int (*cb)(const struct stat *file_st, int image_fd, const ph_load_request *req,
                  char *err, size_t err_size);
        const ph_load_request *req;
} ph_image_check;

/* Copies the file open on fd into a sealed memfd, lets check (if any) judge
 * the file's stat and the sealed copy, scans that copy, checks
 * that it carries want_name, and (if map) maps it with ph__image_map. Not
 * mapped, the image is the sealed memfd and its metadata (handle and entry
 * NULL), for a runner to start elsewhere. fd stays the caller's. On failure
 * returns a negative errno with a message in err. Thread-safe. */
int ph__image_load(int fd, const char *want_name, uint64_t max_size, const ph_image_check *check,
                   bool map, ph_image *ret, char *err, size_t err_size);

/* dlopens img->memfd (with img->meta read from it) as /proc/self/fd/N
 * (glibc hands back an already-loaded image for a known name, so N stays
 * open while the image lives) and checks the entry point's ABI against the
 * note's. On failure img keeps its memfd and meta (ph__image_close frees
 * them) and a negative errno comes back with a message in err. */
int ph__image_map(ph_image *img, const char *want_name, char *err, size_t err_size);

/* dlclose (unless the plugin is resident) and free; the memfd is closed
 * once glibc no longer has the image. Accepts an image from a failed load. */
void ph__image_close(ph_image *img);

#endif
