/* Finds and validates our metadata note inside a note area (a PT_NOTE
 * segment or an SHT_NOTE section), reading only note headers and our own
 * descriptor. */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plughost/abi.h"
#include "scan-internal.h"

/* A file holds a few notes; a hostile one (many areas, or many section
 * headers pointing at one area of empty notes) cannot make us walk long:
 * the budget is per file, across all areas. */
#define NOTE_WALK_MAX 4096u

static const char note_owner[] = PLUGHOST_NOTE_OWNER;

static uint64_t align_up(uint64_t v, uint64_t a)
{
        return (v + a - 1) & ~(a - 1);
}

bool ph__note_header_plausible(const struct plughost_note_header *h)
{
        return memcmp(h->magic, PLUGHOST_NOTE_MAGIC, PLUGHOST_NOTE_MAGIC_SIZE) == 0 &&
               h->format != 0 && h->flags == 0 && h->reserved == 0;
}

int ph__note_desc(ph_source *src, uint64_t off, uint64_t avail, ph_scan *scan)
{
        struct plughost_note_header h;
        char err[160];
        ph_meta *meta;
        char *json;
        int r;

        r = ph__source_read(src, off, sizeof(h), &h);
        if (r == -ERANGE)
                return avail < sizeof(h) ? 0 :
                       ph__scan_refuse(scan, PH_REASON_TRUNCATED,
                                       "file ends inside the metadata header at offset %llu",
                                       (unsigned long long)off);
        if (r < 0)
                return r;
        if (avail < sizeof(h) || !ph__note_header_plausible(&h))
                return 0;
        if (h.format > PLUGHOST_NOTE_FORMAT)
                return ph__scan_refuse(scan, PH_REASON_ABI_TOO_NEW,
                                       "metadata format %u is newer than the supported %u",
                                       h.format, PLUGHOST_NOTE_FORMAT);
        if (h.abi == 0)
                return ph__scan_refuse(scan, PH_REASON_BAD_METADATA,
                                       "metadata header: ABI version 0 is invalid");
        if (h.abi > PLUGHOST_ABI_VERSION)
                return ph__scan_refuse(scan, PH_REASON_ABI_TOO_NEW,
                                       "plugin ABI %u is newer than the host's %u",
                                       h.abi, PLUGHOST_ABI_VERSION);
        if (h.json_size > PH_META_MAX)
                return ph__scan_refuse(scan, PH_REASON_TOO_LARGE,
                                       "metadata is %u bytes, more than the limit of %u",
                                       h.json_size, PH_META_MAX);
        if (!ph__source_contains(src, off + sizeof(h), (uint64_t)h.json_size + 1))
                return ph__scan_refuse(scan, PH_REASON_TRUNCATED,
                                       "file ends inside the metadata (%u bytes at offset %llu)",
                                       h.json_size, (unsigned long long)(off + sizeof(h)));
        if ((uint64_t)h.json_size + 1 > avail - sizeof(h))
                return ph__scan_refuse(scan, PH_REASON_BAD_METADATA,
                                       "metadata (%u bytes) overruns its note", h.json_size);

        json = malloc((size_t)h.json_size + 1);
        if (!json)
                return -ENOMEM;
        r = ph__source_read(src, off + sizeof(h), (size_t)h.json_size + 1, json);
        if (r < 0) {
                free(json);
                if (r == -ERANGE)
                        return ph__scan_refuse(scan, PH_REASON_TRUNCATED,
                                               "file shrank while reading the metadata");
                return r;
        }
        if (json[h.json_size] != '\0' || memchr(json, '\0', h.json_size)) {
                free(json);
                return ph__scan_refuse(scan, PH_REASON_BAD_METADATA,
                                       "metadata is not one NUL-terminated text of %u bytes",
                                       h.json_size);
        }
        r = ph__meta_parse_owned(json, h.json_size, &meta, err, sizeof(err));
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return ph__scan_refuse(scan, PH_REASON_BAD_METADATA, "%s", err);

        meta->abi = h.abi;
        meta->format = h.format;
        scan->meta = meta;
        scan->reason = PH_REASON_OK;
        scan->message[0] = '\0';
        return 1;
}

int ph__note_find(ph_source *src, uint64_t off, uint64_t size, ph_scan *scan)
{
        uint64_t pos = 0;

        if (!ph__source_contains(src, off, size))
                return -ERANGE;

        /* Notes are 4-byte aligned in ELF64 on Linux (8-byte areas such as
         * .note.gnu.property pad the descriptor but never hold ours). */
        while (size - pos >= sizeof(Elf64_Nhdr)) {
                Elf64_Nhdr nh;
                char name[sizeof(note_owner)];
                uint64_t name_off, desc_off, next;
                int r;

                if (++src->notes_walked > NOTE_WALK_MAX)
                        return ph__scan_refuse(scan, PH_REASON_TOO_LARGE,
                                               "more than %u notes in the file", NOTE_WALK_MAX);
                r = ph__source_read(src, off + pos, sizeof(nh), &nh);
                if (r < 0)
                        return r;
                name_off = pos + sizeof(nh);
                desc_off = name_off + align_up(nh.n_namesz, 4);
                next = desc_off + align_up(nh.n_descsz, 4);
                if (desc_off > size || next > size)
                        return 0;       /* a malformed tail: no note of ours here */

                if (nh.n_namesz == sizeof(note_owner) && nh.n_type == PLUGHOST_NOTE_TYPE) {
                        r = ph__source_read(src, off + name_off, sizeof(name), name);
                        if (r < 0)
                                return r;
                        if (memcmp(name, note_owner, sizeof(name)) == 0) {
                                r = ph__note_desc(src, off + desc_off, nh.n_descsz, scan);
                                if (r != 0) {
                                        scan->note_offset = off + desc_off;
                                        return r;
                                }
                                return ph__scan_refuse(scan, PH_REASON_BAD_METADATA,
                                                       "plughost note without a valid header");
                        }
                }
                pos = next;
        }
        return 0;
}
