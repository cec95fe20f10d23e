/* The reader: decides whether an open file is a plugin and reads its metadata
 * without loading it. Order: ELF header, program headers (PT_NOTE), section
 * headers (any SHT_NOTE), then a streaming search for the note's magic.
 * Every offset and size is checked against the file size before use. The
 * caller may cap the file size and stop the scan between stages and between
 * search chunks (ph_scan_opts). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plughost/abi.h"
#include "scan-internal.h"

/* Caps on tables read from untrusted headers. Real objects have < 20
 * program headers and < 100 sections. */
#define SCAN_PHNUM_MAX 512u
#define SCAN_SHNUM_MAX 65535u
#define SCAN_DYN_MAX 4096u
/* Chunk of the fallback search; memory stays this size for any file. */
#define SCAN_SEARCH_CHUNK (64u * 1024u)

#if defined(__x86_64__)
#define SCAN_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define SCAN_MACHINE EM_AARCH64
#elif defined(__riscv)
#define SCAN_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define SCAN_MACHINE EM_PPC64
#elif defined(__s390x__)
#define SCAN_MACHINE EM_S390
#else
#error "unsupported machine: add its EM_ constant"
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SCAN_DATA ELFDATA2LSB
#else
#define SCAN_DATA ELFDATA2MSB
#endif

#if UINTPTR_MAX != UINT64_MAX
#error "the reader expects a 64-bit host (ELFCLASS64)"
#endif

/* A read that ran past the end (or into a shrinking file) is a verdict;
 * any other error is reported as I/O. */
static int scan_read_failed(ph_scan *scan, int r, const char *what)
{
        if (r == -ERANGE)
                return ph__scan_refuse(scan, PH_REASON_TRUNCATED, "file ends inside the %s", what);
        if (r == -ENOMEM)
                return r;
        return ph__scan_refuse(scan, PH_REASON_IO, "reading the %s: %s", what, strerror(-r));
}

static int scan_ehdr(ph_source *src, Elf64_Ehdr *eh, ph_scan *scan)
{
        int r;

        memset(eh, 0, sizeof(*eh));
        if (src->size < SELFMAG)
                return ph__scan_refuse(scan, PH_REASON_NOT_ELF, "%s",
                                       src->size == 0 ? "empty file" : "too short for an ELF header");
        r = ph__source_read(src, 0, src->size < sizeof(*eh) ? (size_t)src->size : sizeof(*eh), eh);
        if (r < 0)
                return scan_read_failed(scan, r, "ELF header");
        if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
                return ph__scan_refuse(scan, PH_REASON_NOT_ELF, "no ELF magic");
        if (src->size < sizeof(*eh) && src->size < EI_NIDENT)
                return ph__scan_refuse(scan, PH_REASON_TRUNCATED, "file ends inside the ELF header");
        if (eh->e_ident[EI_CLASS] != ELFCLASS64)
                return ph__scan_refuse(scan, PH_REASON_WRONG_CLASS, "ELF class %u, this host is ELFCLASS64",
                                       eh->e_ident[EI_CLASS]);
        if (eh->e_ident[EI_DATA] != SCAN_DATA)
                return ph__scan_refuse(scan, PH_REASON_WRONG_ENDIAN, "byte order %u, this host uses %u",
                                       eh->e_ident[EI_DATA], SCAN_DATA);
        if (src->size < sizeof(*eh))
                return ph__scan_refuse(scan, PH_REASON_TRUNCATED, "file ends inside the ELF header");
        if (eh->e_ident[EI_VERSION] != EV_CURRENT || eh->e_version != EV_CURRENT)
                return ph__scan_refuse(scan, PH_REASON_NOT_ELF, "unknown ELF version %u",
                                       eh->e_ident[EI_VERSION]);
        if (eh->e_machine != SCAN_MACHINE)
                return ph__scan_refuse(scan, PH_REASON_WRONG_MACHINE, "machine %u, this host is %u",
                                       eh->e_machine, SCAN_MACHINE);
        if (eh->e_type != ET_DYN)
                return ph__scan_refuse(scan, PH_REASON_NOT_SHARED, "ELF type %u, not a shared object",
                                       eh->e_type);
        if (eh->e_ehsize < sizeof(*eh))
                return ph__scan_refuse(scan, PH_REASON_NOT_ELF, "ELF header size %u is too small",
                                       eh->e_ehsize);
        return 0;
}

struct phdr_facts {
        int dynamic;        /* PT_DYNAMIC with file data */
        int dynamic_nobits; /* PT_DYNAMIC whose data is not in the file */
        int exec_load;      /* executable PT_LOAD with file data */
        int interp;         /* PT_INTERP: an executable, or a library like libc */
        uint64_t dyn_off, dyn_size;
};

/* A PIE executable is ET_DYN too; glibc refuses to dlopen one that carries
 * DF_1_PIE, so we tell it apart the same way. Only objects with PT_INTERP
 * are asked, so a plugin pays no read for it. */
static int scan_is_pie(ph_source *src, const struct phdr_facts *f)
{
        uint64_t n = f->dyn_size / sizeof(Elf64_Dyn);

        if (n > SCAN_DYN_MAX)
                n = SCAN_DYN_MAX;
        for (uint64_t i = 0; i < n; i++) {
                Elf64_Dyn d;

                if (ph__source_read(src, f->dyn_off + i * sizeof(d), sizeof(d), &d) < 0 ||
                    d.d_tag == DT_NULL)
                        return 0;
                if (d.d_tag == DT_FLAGS_1)
                        return (d.d_un.d_val & DF_1_PIE) != 0;
        }
        return 0;
}

/* Walks the program headers twice (facts first, then notes), so a debug-only
 * file is refused before its kept notes could pass it off as a plugin. */
static int scan_phdrs(ph_source *src, const Elf64_Ehdr *eh, ph_scan *scan)
{
        struct phdr_facts f = { 0 };
        uint64_t table;
        int pass, r;

        if (eh->e_phnum == 0)
                return ph__scan_refuse(scan, PH_REASON_NOT_SHARED, "no program headers");
        if (eh->e_phentsize != sizeof(Elf64_Phdr))
                return ph__scan_refuse(scan, PH_REASON_NOT_ELF, "program header size %u, expected %zu",
                                       eh->e_phentsize, sizeof(Elf64_Phdr));
        if (eh->e_phnum > SCAN_PHNUM_MAX)
                return ph__scan_refuse(scan, PH_REASON_TOO_LARGE, "%u program headers, the limit is %u",
                                       eh->e_phnum, SCAN_PHNUM_MAX);
        table = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
        if (!ph__source_contains(src, eh->e_phoff, table))
                return ph__scan_refuse(scan, PH_REASON_TRUNCATED,
                                       "program headers (offset %llu) run past the end of the file",
                                       (unsigned long long)eh->e_phoff);

        for (pass = 0; pass < 2; pass++) {
                for (unsigned i = 0; i < eh->e_phnum; i++) {
                        Elf64_Phdr ph;

                        r = ph__source_read(src, eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph), &ph);
                        if (r < 0)
                                return scan_read_failed(scan, r, "program headers");
                        if (pass == 0) {
                                /* dlopen maps these bytes: a cut file would fail there. */
                                if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) &&
                                    !ph__source_contains(src, ph.p_offset, ph.p_filesz))
                                        return ph__scan_refuse(scan, PH_REASON_TRUNCATED,
                                                               "segment %u runs past the end of the file", i);
                                if (ph.p_type == PT_DYNAMIC && ph.p_filesz == 0)
                                        f.dynamic_nobits = 1;
                                if (ph.p_type == PT_DYNAMIC && ph.p_filesz > 0) {
                                        f.dynamic = 1;
                                        f.dyn_off = ph.p_offset;
                                        f.dyn_size = ph.p_filesz;
                                }
                                else if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ph.p_filesz > 0)
                                        f.exec_load = 1;
                                else if (ph.p_type == PT_INTERP)
                                        f.interp = 1;
                                continue;
                        }
                        if (ph.p_type != PT_NOTE || ph.p_filesz == 0)
                                continue;
                        if (!ph__source_contains(src, ph.p_offset, ph.p_filesz))
                                return ph__scan_refuse(scan, PH_REASON_TRUNCATED,
                                                       "note segment %u runs past the end of the file", i);
                        r = ph__note_find(src, ph.p_offset, ph.p_filesz, scan);
                        if (r > 0 || r == -ENOMEM) {
                                scan->via = PH_VIA_PROGRAM_HEADERS;
                                return r;
                        }
                        if (r < 0)
                                return scan_read_failed(scan, r, "note segment");
                }
                if (pass > 0)
                        break;
                /* objcopy --only-keep-debug keeps the program headers but
                 * not the bytes: the dynamic section (and, unless the code
                 * shares a segment with the headers, the code) has none. */
                if (!f.dynamic && (f.dynamic_nobits || !f.exec_load))
                        return ph__scan_refuse(scan, PH_REASON_DEBUG_ONLY, "%s",
                                               f.exec_load ? "separate debug-symbol file: its dynamic section has no bytes in the file"
                                                           : "separate debug-symbol file: no code and no dynamic section in the file");
                if (!f.dynamic)
                        return ph__scan_refuse(scan, PH_REASON_NOT_SHARED, "no dynamic section");
                if (!f.exec_load)
                        return ph__scan_refuse(scan, PH_REASON_NOT_SHARED, "no executable segment");
                if (f.interp && scan_is_pie(src, &f))
                        return ph__scan_refuse(scan, PH_REASON_NOT_SHARED,
                                               "a position-independent executable (DF_1_PIE)");
        }
        return 0;
}

static int scan_shdrs(ph_source *src, const Elf64_Ehdr *eh, ph_scan *scan)
{
        uint64_t count = eh->e_shnum;
        int r;

        if (eh->e_shoff == 0)
                return 0;
        if (eh->e_shentsize != sizeof(Elf64_Shdr))
                return 0;       /* no usable section table: leave it to the search */
        if (count == 0) {
                /* SHN_LORESERVE or more sections: the count is in section 0. */
                Elf64_Shdr sh0;

                r = ph__source_read(src, eh->e_shoff, sizeof(sh0), &sh0);
                if (r < 0)
                        return r == -ERANGE ? 0 : scan_read_failed(scan, r, "section headers");
                count = sh0.sh_size;
        }
        if (count > SCAN_SHNUM_MAX)
                return ph__scan_refuse(scan, PH_REASON_TOO_LARGE, "%llu sections, the limit is %u",
                                       (unsigned long long)count, SCAN_SHNUM_MAX);
        if (!ph__source_contains(src, eh->e_shoff, count * sizeof(Elf64_Shdr)))
                return 0;       /* a stripped or cut table: the search still may find the note */

        for (uint64_t i = 0; i < count; i++) {
                Elf64_Shdr sh;

                r = ph__source_read(src, eh->e_shoff + i * sizeof(sh), sizeof(sh), &sh);
                if (r < 0)
                        return scan_read_failed(scan, r, "section headers");
                if (sh.sh_type != SHT_NOTE || sh.sh_size == 0)
                        continue;
                if (!ph__source_contains(src, sh.sh_offset, sh.sh_size))
                        continue;
                r = ph__note_find(src, sh.sh_offset, sh.sh_size, scan);
                if (r > 0 || r == -ENOMEM) {
                        scan->via = PH_VIA_SECTION_HEADERS;
                        return r;
                }
                if (r < 0)
                        return scan_read_failed(scan, r, "note section");
        }
        return 0;
}

/* -ECANCELED if the caller's cancelled() says to stop, else 0. */
static int scan_poll(const ph_scan_opts *opts)
{
        return opts && opts->cancelled && opts->cancelled(opts->userdata) ? -ECANCELED : 0;
}

struct search_ctx {
        ph_source *src;
        ph_search *search;
        ph_scan *scan;
        const ph_scan_opts *opts;
        int verdict;            /* from ph__note_desc: > 0 found, < 0 error */
};

/* Feeds one chunk; every match is validated at once, and a stray magic
 * lets the search go on within the same chunk, so no byte is read twice. */
static int search_chunk_cb(const void *data, size_t len, uint64_t at, void *ud)
{
        struct search_ctx *c = ud;
        size_t pos = 0;

        /* Once per chunk: a huge file is read for as long as the caller wants. */
        if (scan_poll(c->opts) < 0)
                return -ECANCELED;
        while (pos < len) {
                long end = ph_search_feed(c->search, (const char *)data + pos, len - pos);
                uint64_t candidate;

                if (end < 0)
                        return 0;
                pos += (size_t)end;
                /* The match ends at at+pos; the descriptor starts at the magic. */
                candidate = at + pos - PLUGHOST_NOTE_MAGIC_SIZE;
                if (candidate >= at && pos - PLUGHOST_NOTE_MAGIC_SIZE + sizeof(struct plughost_note_header) <= len) {
                        struct plughost_note_header h;

                        /* Header in this chunk: a stray magic costs no read. */
                        memcpy(&h, (const char *)data + pos - PLUGHOST_NOTE_MAGIC_SIZE, sizeof(h));
                        if (!ph__note_header_plausible(&h))
                                continue;
                }
                c->verdict = ph__note_desc(c->src, candidate, c->src->size - candidate, c->scan);
                if (c->verdict != 0) {
                        if (c->verdict > 0) {
                                c->scan->via = PH_VIA_SEARCH;
                                c->scan->note_offset = candidate;
                        }
                        return 1;
                }
        }
        return 0;
}

static int scan_search(ph_source *src, const ph_scan_opts *opts, ph_scan *scan)
{
        struct search_ctx c = { .src = src, .scan = scan, .opts = opts };
        void *buf;
        int r;

        r = ph_search_new(PLUGHOST_NOTE_MAGIC, PLUGHOST_NOTE_MAGIC_SIZE, &c.search);
        if (r < 0)
                return r;
        buf = malloc(SCAN_SEARCH_CHUNK);
        if (!buf) {
                ph_search_free(c.search);
                return -ENOMEM;
        }
        r = ph__source_stream(src, 0, src->size, buf, SCAN_SEARCH_CHUNK, search_chunk_cb, &c);
        free(buf);
        ph_search_free(c.search);
        if (r > 0)
                r = c.verdict;
        if (r < 0 && r != -ENOMEM && r != -ECANCELED)
                return scan_read_failed(scan, r, "file");
        return r;
}

int ph_scan_open(int dirfd, const char *path)
{
        int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

        return fd < 0 ? -errno : fd;
}

int ph_scan_fd_opts(int fd, const ph_scan_opts *opts, ph_scan *ret)
{
        ph_source src_buf, *src = &src_buf;
        Elf64_Ehdr eh;
        struct stat st;
        int r;

        memset(ret, 0, sizeof(*ret));
        if (fstat(fd, &st) < 0) {
                ph__scan_refuse(ret, PH_REASON_IO, "fstat: %s", strerror(errno));
                return 0;
        }
        if (!S_ISREG(st.st_mode)) {
                ph__scan_refuse(ret, PH_REASON_NOT_REGULAR, "not a regular file");
                return 0;
        }
        ret->file_size = (uint64_t)st.st_size;
        if (opts && opts->max_size > 0 && ret->file_size > opts->max_size) {
                ph__scan_refuse(ret, PH_REASON_TOO_LARGE, "%llu bytes, the limit is %llu",
                                (unsigned long long)ret->file_size,
                                (unsigned long long)opts->max_size);
                return 0;
        }
        memset(src, 0, offsetof(ph_source, win));
        src->fd = fd;
        src->size = ret->file_size;

        /* The stages, with a look at cancelled() before each. */
        r = scan_poll(opts);
        if (r == 0)
                r = scan_ehdr(src, &eh, ret);
        if (r == 0 && (r = scan_poll(opts)) == 0)
                r = scan_phdrs(src, &eh, ret);
        if (r == 0 && (r = scan_poll(opts)) == 0)
                r = scan_shdrs(src, &eh, ret);
        if (r == 0 && (r = scan_poll(opts)) == 0)
                r = scan_search(src, opts, ret);
        if (r == 0)
                ph__scan_refuse(ret, PH_REASON_NO_METADATA, "no plughost metadata note");
        ret->bytes_read = src->bytes_read;
        ret->reads = src->reads;
        if (r == -ENOMEM || r == -ECANCELED) {
                ph_scan_clear(ret);
                return r;
        }
        return 0;
}

int ph_scan_fd(int fd, ph_scan *ret)
{
        return ph_scan_fd_opts(fd, NULL, ret);
}

int ph_scan_path(int dirfd, const char *path, ph_scan *ret)
{
        int fd = ph_scan_open(dirfd, path);
        int r;

        if (fd < 0) {
                memset(ret, 0, sizeof(*ret));
                if (fd == -ELOOP)
                        ph__scan_refuse(ret, PH_REASON_NOT_REGULAR, "a symbolic link");
                else
                        ph__scan_refuse(ret, PH_REASON_IO, "open: %s", strerror(-fd));
                return 0;
        }
        r = ph_scan_fd(fd, ret);
        close(fd);
        return r;
}

void ph_scan_clear(ph_scan *scan)
{
        if (!scan)
                return;
        ph_meta_free(scan->meta);
        memset(scan, 0, sizeof(*scan));
}
