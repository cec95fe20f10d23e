/* Internal to the reader: a bounded read window over an fd, the note walk,
 * and verdict formatting. */
#ifndef PH_SCAN_INTERNAL_H
#define PH_SCAN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "plughost/plughost.h"

/* One pread of the window's size usually brings in the ELF header, the
 * program headers and the notes of a small shared object. */
#define PH_SOURCE_WINDOW 4096u

typedef struct ph_source {
        int fd;
        uint64_t size;               /* from fstat */
        uint64_t win_off;
        size_t win_len;
        uint64_t bytes_read;
        uint32_t reads;
        int err;                     /* first read error (-errno), 0 if none */
        unsigned notes_walked;       /* across every note area of the file */
        unsigned char win[PH_SOURCE_WINDOW];
} ph_source;

/* Copies size bytes at off into dst. Returns 0, -ERANGE if [off, off+size)
 * is not inside the file (overflow-checked), or -errno from pread (also
 * -ERANGE when the file shrank under us). */
int ph__source_read(ph_source *src, uint64_t off, size_t size, void *dst);

/* Reads size bytes at off in pieces of at most bufsize into buf, handing each
 * to fn; stops early when fn returns non-zero (and returns that). */
int ph__source_stream(ph_source *src, uint64_t off, uint64_t size, void *buf,
                      size_t bufsize,
                      int (*fn)(const void *data, size_t len, uint64_t at, void *ud),
                      void *ud);

/* True if [off, off+size) lies inside the file, without overflow. */
static inline int ph__source_contains(const ph_source *src, uint64_t off, uint64_t size)
{
        return off <= src->size && size <= src->size - off;
}

/* Looks for our note in the note area [off, off+size) of the file.
 * Returns 1 and fills scan (reason, meta, note_offset) when it found our note
 * (valid or not: a bad note is a verdict too), 0 if none is there, or a
 * negative errno (-ERANGE: the area or a note in it runs past the end). */
int ph__note_find(ph_source *src, uint64_t off, uint64_t size, ph_scan *scan);

struct plughost_note_header;

/* True if h starts with the magic and its reserved fields are zero: worth
 * validating. A stray copy of the magic is not. */
bool ph__note_header_plausible(const struct plughost_note_header *h);

/* Validates the descriptor that starts at off (the magic), which may extend
 * at most avail bytes. Fills scan like ph__note_find. Returns 1 when a
 * verdict was reached, 0 when the bytes do not hold a note header at all
 * (used by the search, where a stray magic is no verdict), or -errno. */
int ph__note_desc(ph_source *src, uint64_t off, uint64_t avail, ph_scan *scan);

/* ph_meta_parse without the copy: takes ownership of json (size bytes of
 * text, then a NUL), on success and on failure. */
int ph__meta_parse_owned(char *json, size_t size, ph_meta **ret_meta,
                         char *errbuf, size_t errbuf_size);

/* Sets scan->reason and formats scan->message. Returns 1 (a verdict).
 * In lib/reason.c, so that the ELF walk (elf-scan.c) and the note walk
 * (elf-note.c) both use it without depending on each other both ways. */
int ph__scan_refuse(ph_scan *scan, ph_reason reason, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
