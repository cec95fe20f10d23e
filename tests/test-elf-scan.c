/* Tests for the reader (lib/elf-scan.c, lib/elf-note.c, lib/source.c):
 * real plugins built by the test build, their stripped, debug-only and
 * patched copies, hostile and truncated files, and non-files. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plughost/abi.h"
#include "plughost/plughost.h"
#include "testutil.h"

static char *tmp;

static void setup(void)
{
        tmp = tu_tmpdir();
}

static void teardown(void)
{
        tu_tmpdir_free(tmp);
        tmp = NULL;
}

/* Scans path and asserts the verdict; returns the scan for more checks. */
static ph_scan scan_expect(const char *path, ph_reason want)
{
        ph_scan s;

        ck_assert_int_eq(ph_scan_path(AT_FDCWD, path, &s), 0);
        ck_assert_msg(s.reason == want, "%s: got %s (%s), want %s", path,
                      ph_reason_name(s.reason), s.message, ph_reason_name(want));
        if (want == PH_REASON_OK) {
                ck_assert_ptr_nonnull(s.meta);
        } else {
                ck_assert_ptr_null(s.meta);
                ck_assert_msg(s.message[0] != '\0', "%s: empty message", path);
        }
        return s;
}

/* A copy of a fixture in memory, to patch and write out. */
typedef struct image {
        unsigned char *data;
        size_t size;
} image;

static image image_load(const char *fixture)
{
        image im;

        im.data = tu_read_file(tu_fixture(fixture), &im.size);
        return im;
}

static Elf64_Ehdr *image_ehdr(image *im)
{
        return (Elf64_Ehdr *)im->data;
}

static Elf64_Phdr *image_phdr(image *im, unsigned i)
{
        return (Elf64_Phdr *)(im->data + image_ehdr(im)->e_phoff) + i;
}

/* Turns every PT_NOTE into PT_NULL: no program header leads to a note. */
static void image_hide_pt_note(image *im)
{
        for (unsigned i = 0; i < image_ehdr(im)->e_phnum; i++)
                if (image_phdr(im, i)->p_type == PT_NOTE)
                        image_phdr(im, i)->p_type = PT_NULL;
}

/* Removes the section header table as `strip` tools that drop it do. */
static void image_drop_shdrs(image *im)
{
        image_ehdr(im)->e_shoff = 0;
        image_ehdr(im)->e_shnum = 0;
        image_ehdr(im)->e_shstrndx = 0;
}

static char *image_save(image *im, const char *name)
{
        char *path = tu_path(tmp, name);

        tu_write_file(path, im->data, im->size);
        return path;
}

/* Offset of our note's descriptor header (its magic) in the image. */
static size_t image_note_header(image *im)
{
        unsigned char *p = memmem(im->data, im->size, PLUGHOST_NOTE_MAGIC, PLUGHOST_NOTE_MAGIC_SIZE);

        ck_assert_ptr_nonnull(p);
        return (size_t)(p - im->data);
}

START_TEST(test_good_plugin)
{
        ph_scan s = scan_expect(tu_fixture("good.so"), PH_REASON_OK);

        ck_assert_str_eq(s.meta->name, "good");
        ck_assert_str_eq(s.meta->version, "1.2.3");
        ck_assert_uint_eq(s.meta->n_interfaces, 2);
        ck_assert_str_eq(s.meta->interfaces[0], "org.example.Ping");
        ck_assert_str_eq(s.meta->description, "A fixture that answers Ping.");
        ck_assert(s.meta->serial);
        ck_assert_int_eq(s.meta->priority, 5);
        ck_assert_uint_eq(s.meta->abi, PLUGHOST_ABI_VERSION);
        ck_assert_int_eq(s.via, PH_VIA_PROGRAM_HEADERS);
        /* Header, program headers and notes come in with one window read. */
        ck_assert_uint_eq(s.reads, 1);
        ck_assert_uint_le(s.bytes_read, 4096);
        ph_scan_clear(&s);
        ck_assert_ptr_null(s.meta);
}
END_TEST

START_TEST(test_examples_are_plugins)
{
        static const char *const names[] = { "hello.so", "upper.so", "counter.so" };

        for (size_t i = 0; i < 3; i++) {
                ph_scan s = scan_expect(tu_example(names[i]), PH_REASON_OK);
                ck_assert_uint_ge(s.meta->n_interfaces, 1);
                ph_scan_clear(&s);
        }
}
END_TEST

/* -O2 with --gc-sections, and strip --strip-all, keep the note. */
START_TEST(test_stripped_and_gc_sections)
{
        ph_scan s = scan_expect(tu_fixture("good-gc.so"), PH_REASON_OK);
        ck_assert_str_eq(s.meta->name, "good");
        ph_scan_clear(&s);
        s = scan_expect(tu_fixture("good-stripped.so"), PH_REASON_OK);
        ck_assert_str_eq(s.meta->name, "good");
        ph_scan_clear(&s);
}
END_TEST

/* The name decides nothing: x.debug that is a plugin is a plugin. */
START_TEST(test_debug_suffix_is_not_special)
{
        char *path = tu_path(tmp, "x.debug");

        tu_copy_file(tu_fixture("good.so"), path);
        ph_scan s = scan_expect(path, PH_REASON_OK);
        ph_scan_clear(&s);
        free(path);
}
END_TEST

/* objcopy --only-keep-debug output keeps our note, yet is refused by content. */
START_TEST(test_debug_only_file_refused)
{
        char *path = tu_path(tmp, "x.so");

        tu_copy_file(tu_fixture("good-debug.so"), path);
        ph_scan s = scan_expect(path, PH_REASON_DEBUG_ONLY);
        ck_assert_ptr_nonnull(strstr(s.message, "debug"));
        free(path);
}
END_TEST

/* Where code shares the first segment with the headers, the debug copy
 * still has "code" bytes; its dynamic section without bytes gives it away. */
START_TEST(test_debug_only_noseparate_code)
{
        ph_scan s = scan_expect(tu_fixture("good-debug-nosep.so"), PH_REASON_DEBUG_ONLY);

        ph_scan_clear(&s);
}
END_TEST

/* 65,000 section headers all pointing at one area of 4,000 empty notes:
 * the note budget is per file, so this ends fast with a clean verdict. */
START_TEST(test_note_walk_budget_per_file)
{
        image im = image_load("good.so");
        size_t area = 4000 * 12, n_sh = 65000, off_area, off_sh, size;
        unsigned char *big;
        char *path = tu_path(tmp, "notes.so");

        image_hide_pt_note(&im);
        /* Wipe our note so nothing valid is found on the way. */
        memset(im.data + image_note_header(&im), 0, PLUGHOST_NOTE_MAGIC_SIZE);
        off_area = (im.size + 7) & ~(size_t)7;
        off_sh = off_area + area;
        size = off_sh + n_sh * sizeof(Elf64_Shdr);
        big = calloc(1, size);
        memcpy(big, im.data, im.size);
        for (size_t i = 0; i < n_sh; i++) {
                Elf64_Shdr *sh = (Elf64_Shdr *)(big + off_sh) + i;
                sh->sh_type = SHT_NOTE;
                sh->sh_offset = off_area;
                sh->sh_size = area;
        }
        ((Elf64_Ehdr *)big)->e_shoff = off_sh;
        ((Elf64_Ehdr *)big)->e_shnum = (uint16_t)n_sh;
        ((Elf64_Ehdr *)big)->e_shstrndx = 0;
        tu_write_file(path, big, size);
        ph_scan s = scan_expect(path, PH_REASON_TOO_LARGE);
        ck_assert_ptr_nonnull(strstr(s.message, "notes in the file"));
        ck_assert_uint_le(s.bytes_read, 4 * size);
        free(big);
        free(path);
        free(im.data);
}
END_TEST

START_TEST(test_found_without_section_headers)
{
        image im = image_load("good.so");
        char *path;

        image_drop_shdrs(&im);
        path = image_save(&im, "noshdr.so");
        ph_scan s = scan_expect(path, PH_REASON_OK);
        ck_assert_int_eq(s.via, PH_VIA_PROGRAM_HEADERS);
        ph_scan_clear(&s);
        free(path);
        free(im.data);
}
END_TEST

/* patchelf-style: no PT_NOTE leads to it, and the section was renamed. */
START_TEST(test_found_through_renamed_section)
{
        image im = image_load("good.so");
        unsigned char *name;
        char *path;

        image_hide_pt_note(&im);
        name = memmem(im.data, im.size, ".note.plughost", 15);
        ck_assert_ptr_nonnull(name);
        memcpy(name, ".zzzz.elsewhere", 15);
        path = image_save(&im, "renamed.so");
        ph_scan s = scan_expect(path, PH_REASON_OK);
        ck_assert_int_eq(s.via, PH_VIA_SECTION_HEADERS);
        ck_assert_str_eq(s.meta->name, "good");
        ph_scan_clear(&s);
        free(path);
        free(im.data);
}
END_TEST

START_TEST(test_found_by_search)
{
        image im = image_load("good.so");
        char *path;

        image_hide_pt_note(&im);
        image_drop_shdrs(&im);
        path = image_save(&im, "hidden.so");
        ph_scan s = scan_expect(path, PH_REASON_OK);
        ck_assert_int_eq(s.via, PH_VIA_SEARCH);
        ck_assert_uint_eq(s.note_offset, image_note_header(&im));
        ck_assert_str_eq(s.meta->name, "good");
        ph_scan_clear(&s);
        free(path);
        free(im.data);
}
END_TEST

/* A note only the search can reach, far past the first chunk, split
 * across the search's 64 KiB chunk boundary. */
START_TEST(test_search_far_and_across_chunks)
{
        image im = image_load("good.so");
        size_t hdr = image_note_header(&im);
        size_t note_len = 32 + strlen((char *)im.data + hdr + 32) + 1;
        size_t at = 3 * 65536 - 7, size = at + note_len + 1000;
        unsigned char *big = calloc(1, size);
        char *path;

        image_hide_pt_note(&im);
        image_drop_shdrs(&im);
        memcpy(big, im.data, im.size < at ? im.size : at);
        /* Wipe the original, so only the moved copy can be found. */
        memset(big + hdr, 0, PLUGHOST_NOTE_MAGIC_SIZE);
        memcpy(big + at, im.data + hdr, note_len);
        path = tu_path(tmp, "far.so");
        tu_write_file(path, big, size);
        ph_scan s = scan_expect(path, PH_REASON_OK);
        ck_assert_int_eq(s.via, PH_VIA_SEARCH);
        ck_assert_uint_eq(s.note_offset, at);
        ph_scan_clear(&s);
        free(path);
        free(big);
        free(im.data);
}
END_TEST

/* A hostile file packed with stray magics (no valid header after them):
 * every byte is still read once, and the verdict is "no metadata". */
START_TEST(test_stray_magics_read_once)
{
        size_t size = 4u << 20;
        unsigned char *data = calloc(1, size);
        char *path = tu_path(tmp, "stray.so");
        image im = image_load("good.so");

        image_hide_pt_note(&im);
        image_drop_shdrs(&im);
        memcpy(data, im.data, im.size);
        memset(data + image_note_header(&im), 0, PLUGHOST_NOTE_MAGIC_SIZE);
        for (size_t at = 65536; at + PLUGHOST_NOTE_MAGIC_SIZE <= size; at += PLUGHOST_NOTE_MAGIC_SIZE)
                memcpy(data + at, PLUGHOST_NOTE_MAGIC, PLUGHOST_NOTE_MAGIC_SIZE);
        tu_write_file(path, data, size);
        ph_scan s = scan_expect(path, PH_REASON_NO_METADATA);
        /* 64 chunks of the search, plus a handful of window reads. */
        ck_assert_uint_le(s.bytes_read, size + 64 * 4096);
        ck_assert_uint_le(s.reads, 64 + 64 + 8);
        free(path);
        free(data);
        free(im.data);
}
END_TEST

/* note_offset names the same byte whichever way the note was reached. */
START_TEST(test_note_offset_is_the_header)
{
        image im = image_load("good.so");
        ph_scan s = scan_expect(tu_fixture("good.so"), PH_REASON_OK);

        ck_assert_uint_eq(s.note_offset, image_note_header(&im));
        ph_scan_clear(&s);
        free(im.data);
}
END_TEST

/* Memory and reads do not grow with the file: a 1 GiB sparse plugin. */
START_TEST(test_huge_sparse_plugin)
{
        char *path = tu_path(tmp, "huge.so");
        int fd;

        tu_copy_file(tu_fixture("good.so"), path);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 1LL << 30), 0);
        close(fd);
        ph_scan s = scan_expect(path, PH_REASON_OK);
        ck_assert_uint_eq(s.file_size, 1ULL << 30);
        ck_assert_uint_eq(s.reads, 1);
        ph_scan_clear(&s);
        free(path);
}
END_TEST

START_TEST(test_metadata_refusals)
{
        ph_scan s = scan_expect(tu_fixture("bad-name.so"), PH_REASON_BAD_METADATA);
        ck_assert_ptr_nonnull(strstr(s.message, "key 'name'"));
        scan_expect(tu_fixture("no-note.so"), PH_REASON_NO_METADATA);
}
END_TEST

/* Patches one field of our note header and expects the verdict. */
static void patch_header(size_t field_off, const void *val, size_t len, ph_reason want,
                         const char *msg_part)
{
        image im = image_load("good.so");
        size_t hdr = image_note_header(&im);
        char *path;

        memcpy(im.data + hdr + field_off, val, len);
        path = image_save(&im, "patched.so");
        ph_scan s = scan_expect(path, want);
        ck_assert_msg(strstr(s.message, msg_part), "'%s' lacks '%s'", s.message, msg_part);
        free(path);
        free(im.data);
}

START_TEST(test_note_header_refusals)
{
        uint16_t abi = PLUGHOST_ABI_VERSION + 1, fmt = PLUGHOST_NOTE_FORMAT + 1, zero16 = 0;
        uint32_t big = PH_META_MAX + 1, longer = 4000;

        patch_header(offsetof(struct plughost_note_header, abi), &abi, 2,
                     PH_REASON_ABI_TOO_NEW, "newer than the host");
        patch_header(offsetof(struct plughost_note_header, abi), &zero16, 2,
                     PH_REASON_BAD_METADATA, "ABI version 0");
        patch_header(offsetof(struct plughost_note_header, format), &fmt, 2,
                     PH_REASON_ABI_TOO_NEW, "metadata format");
        patch_header(offsetof(struct plughost_note_header, json_size), &big, 4,
                     PH_REASON_TOO_LARGE, "limit");
        patch_header(offsetof(struct plughost_note_header, json_size), &longer, 4,
                     PH_REASON_BAD_METADATA, "overruns its note");
        patch_header(offsetof(struct plughost_note_header, format), &zero16, 2,
                     PH_REASON_BAD_METADATA, "without a valid header");
}
END_TEST

START_TEST(test_elf_header_refusals)
{
        static const struct {
                size_t off;
                unsigned char val;
                ph_reason want;
        } cases[] = {
                { EI_CLASS, ELFCLASS32, PH_REASON_WRONG_CLASS },
                { EI_DATA, ELFDATA2MSB, PH_REASON_WRONG_ENDIAN },
                { offsetof(Elf64_Ehdr, e_machine), EM_AARCH64 == EM_X86_64 ? EM_386 : EM_AARCH64,
                  PH_REASON_WRONG_MACHINE },
                { offsetof(Elf64_Ehdr, e_type), ET_EXEC, PH_REASON_NOT_SHARED },
                { offsetof(Elf64_Ehdr, e_type), ET_REL, PH_REASON_NOT_SHARED },
                { EI_VERSION, 9, PH_REASON_NOT_ELF },
                { 1, 'X', PH_REASON_NOT_ELF },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                image im = image_load("good.so");
                char *path;

                im.data[cases[i].off] = cases[i].val;
                path = image_save(&im, "hdr.so");
                scan_expect(path, cases[i].want);
                free(path);
                free(im.data);
        }
}
END_TEST

START_TEST(test_tables_past_the_end)
{
        image im = image_load("good.so");
        char *path;

        image_ehdr(&im)->e_phoff = im.size - 10;
        path = image_save(&im, "phoff.so");
        scan_expect(path, PH_REASON_TRUNCATED);
        free(path);
        free(im.data);

        im = image_load("good.so");
        image_ehdr(&im)->e_phoff = UINT64_MAX - 8;      /* offset + size overflows */
        path = image_save(&im, "phoff2.so");
        scan_expect(path, PH_REASON_TRUNCATED);
        free(path);
        free(im.data);

        im = image_load("good.so");
        image_ehdr(&im)->e_phnum = 60000;
        path = image_save(&im, "phnum.so");
        scan_expect(path, PH_REASON_TOO_LARGE);
        free(path);
        free(im.data);

        im = image_load("good.so");
        for (unsigned i = 0; i < image_ehdr(&im)->e_phnum; i++)
                if (image_phdr(&im, i)->p_type == PT_NOTE)
                        image_phdr(&im, i)->p_filesz = UINT64_MAX;
        path = image_save(&im, "notesz.so");
        scan_expect(path, PH_REASON_TRUNCATED);
        free(path);
        free(im.data);
}
END_TEST

/* Cut at >= 200 points: always a verdict; a cut into loaded bytes is never OK. */
START_TEST(test_truncated_everywhere)
{
        image im = image_load("good.so");
        uint64_t loaded_end = 0;
        char *path = tu_path(tmp, "cut.so");
        unsigned cuts = 0;

        for (unsigned i = 0; i < image_ehdr(&im)->e_phnum; i++) {
                Elf64_Phdr *ph = image_phdr(&im, i);
                if (ph->p_type == PT_LOAD && ph->p_offset + ph->p_filesz > loaded_end)
                        loaded_end = ph->p_offset + ph->p_filesz;
        }
        ck_assert_uint_gt(loaded_end, 0);
        for (size_t cut = 0; cut < im.size; cut += (cut < 1024 ? 3 : im.size / 150 + 1)) {
                ph_scan s;

                tu_write_file(path, im.data, cut);
                ck_assert_int_eq(ph_scan_path(AT_FDCWD, path, &s), 0);
                ck_assert_int_lt(s.reason, _PH_REASON_MAX);
                if (cut < loaded_end)
                        ck_assert_msg(s.reason != PH_REASON_OK, "cut at %zu accepted", cut);
                if (s.reason != PH_REASON_OK)
                        ck_assert_msg(s.message[0] && !s.meta, "cut at %zu: no message", cut);
                ph_scan_clear(&s);
                cuts++;
        }
        ck_assert_uint_ge(cuts, 200);
        free(path);
        free(im.data);
}
END_TEST

/* 10,000 random byte flips: a clean verdict each, never a crash (run this
 * suite under ASan to catch reads out of bounds). */
START_TEST(test_random_byte_flips)
{
        image im = image_load("good.so");
        unsigned char *work = malloc(im.size);
        unsigned seed = 0xdecafbad, ok = 0;
        int fd = memfd_create("flips", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        for (int round = 0; round < 10000; round++) {
                ph_scan s;
                int flips = 1 + round % 4;

                memcpy(work, im.data, im.size);
                for (int f = 0; f < flips; f++) {
                        seed = seed * 1664525u + 1013904223u;
                        /* Bias towards the headers and notes, where it matters. */
                        size_t at = (round & 1) ? (seed >> 8) % 1024 : (seed >> 8) % im.size;
                        work[at] ^= (unsigned char)(1u << (seed % 8)) | (unsigned char)(seed >> 24);
                }
                ck_assert_int_eq(pwrite(fd, work, im.size, 0), (ssize_t)im.size);
                ck_assert_int_eq(ph_scan_fd(fd, &s), 0);
                ck_assert_int_lt(s.reason, _PH_REASON_MAX);
                if (s.reason == PH_REASON_OK) {
                        ck_assert_ptr_nonnull(s.meta);
                        ck_assert_ptr_nonnull(s.meta->name);
                        ok++;
                } else {
                        ck_assert_ptr_null(s.meta);
                        ck_assert(s.message[0] != '\0');
                }
                ph_scan_clear(&s);
        }
        /* Flips in code or padding leave a plugin: the test saw both kinds. */
        ck_assert_uint_gt(ok, 0);
        ck_assert_uint_lt(ok, 10000);
        close(fd);
        free(work);
        free(im.data);
}
END_TEST

START_TEST(test_not_files)
{
        char *text = tu_path(tmp, "text.so"), *empty = tu_path(tmp, "empty.so");
        char *fifo = tu_path(tmp, "fifo.so"), *link = tu_path(tmp, "link.so");
        char *tiny = tu_path(tmp, "tiny.so");
        ph_scan s;

        tu_write_file(text, "#!/bin/sh\necho not a plugin\n", 28);
        tu_write_file(empty, "", 0);
        tu_write_file(tiny, "\177ELF\002\001", 6);
        ck_assert_int_eq(mkfifo(fifo, 0600), 0);
        ck_assert_int_eq(symlink(tu_fixture("good.so"), link), 0);

        scan_expect(text, PH_REASON_NOT_ELF);
        s = scan_expect(empty, PH_REASON_NOT_ELF);
        ck_assert_str_eq(s.message, "empty file");
        scan_expect(tiny, PH_REASON_TRUNCATED);
        scan_expect(tmp, PH_REASON_NOT_REGULAR);
        /* Opened non-blocking: a FIFO with no writer must not hang the scan. */
        scan_expect(fifo, PH_REASON_NOT_REGULAR);
        s = scan_expect(link, PH_REASON_NOT_REGULAR);
        ck_assert_str_eq(s.message, "a symbolic link");
        s = scan_expect("/nonexistent/x.so", PH_REASON_IO);
        ck_assert_ptr_nonnull(strstr(s.message, "No such file"));
        scan_expect("/dev/null", PH_REASON_NOT_REGULAR);
        /* A PIE executable is ET_DYN too, and still no plugin. */
        scan_expect("/bin/true", PH_REASON_NOT_SHARED);
        free(text);
        free(empty);
        free(fifo);
        free(link);
        free(tiny);
}
END_TEST

/* The reader works on the fd it is given and leaves its offset alone. */
START_TEST(test_fd_offset_untouched)
{
        int fd = ph_scan_open(AT_FDCWD, tu_fixture("good.so"));
        ph_scan s;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(lseek(fd, 123, SEEK_SET), 123);
        ck_assert_int_eq(ph_scan_fd(fd, &s), 0);
        ck_assert_int_eq(s.reason, PH_REASON_OK);
        ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 123);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ph_scan_clear(&s);
        close(fd);
        ck_assert_int_eq(ph_scan_open(AT_FDCWD, "/nonexistent"), -ENOENT);
}
END_TEST

#define HUGE_SIZE (20ULL << 30)

/* A copy of a fixture, made size bytes long by ftruncate (sparse). */
static char *sparse_copy(const char *fixture, const char *name, unsigned long long size)
{
        char *path = tu_path(tmp, name);
        int fd;

        tu_copy_file(tu_fixture(fixture), path);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        close(fd);
        return path;
}

static double now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct poll_state {
        unsigned calls;
        unsigned stop_at;       /* 0: never */
};

static int count_polls(void *userdata)
{
        struct poll_state *p = userdata;

        p->calls++;
        return p->stop_at && p->calls >= p->stop_at;
}

/* A 20 GiB shared object with no note (its search would read all of it):
 * with max_size, refused at once, without a byte read. */
START_TEST(test_scan_max_size)
{
        char *path = sparse_copy("no-note.so", "huge.so", HUGE_SIZE), want[128];
        ph_scan_opts opts = { .max_size = PH_LOAD_MAX };
        struct stat st;
        double t0, ms;
        ph_scan s;
        int fd = ph_scan_open(AT_FDCWD, path);

        ck_assert_int_ge(fd, 0);
        t0 = now_ms();
        ck_assert_int_eq(ph_scan_fd_opts(fd, &opts, &s), 0);
        ms = now_ms() - t0;
        ck_assert_int_eq(s.reason, PH_REASON_TOO_LARGE);
        snprintf(want, sizeof(want), "%llu bytes, the limit is %u", HUGE_SIZE, PH_LOAD_MAX);
        ck_assert_str_eq(s.message, want);
        ck_assert_uint_eq(s.file_size, HUGE_SIZE);
        ck_assert_uint_eq(s.bytes_read, 0);
        ck_assert_uint_eq(s.reads, 0);
        ck_assert_ptr_null(s.meta);
        ck_assert_msg(ms < 100, "took %.1f ms", ms);
        ph_scan_clear(&s);
        close(fd);

        /* A file of exactly max_size is read as usual. */
        fd = ph_scan_open(AT_FDCWD, tu_fixture("good.so"));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        opts.max_size = (uint64_t)st.st_size;
        ck_assert_int_eq(ph_scan_fd_opts(fd, &opts, &s), 0);
        ck_assert_int_eq(s.reason, PH_REASON_OK);
        ph_scan_clear(&s);
        opts.max_size--;
        ck_assert_int_eq(ph_scan_fd_opts(fd, &opts, &s), 0);
        ck_assert_int_eq(s.reason, PH_REASON_TOO_LARGE);
        ck_assert_uint_eq(s.bytes_read, 0);
        ph_scan_clear(&s);
        close(fd);
        free(path);
}
END_TEST

/* The same file without a limit: cancelled() stops the search. */
START_TEST(test_scan_cancelled)
{
        char *path = sparse_copy("no-note.so", "huge.so", HUGE_SIZE);
        struct poll_state polls = { .stop_at = 20 };
        ph_scan_opts opts = { .cancelled = count_polls, .userdata = &polls };
        double t0, ms;
        ph_scan s;
        int fd = ph_scan_open(AT_FDCWD, path);

        ck_assert_int_ge(fd, 0);
        t0 = now_ms();
        ck_assert_int_eq(ph_scan_fd_opts(fd, &opts, &s), -ECANCELED);
        ms = now_ms() - t0;
        ck_assert_msg(ms < 1000, "took %.1f ms", ms);
        ck_assert_uint_eq(polls.calls, 20);
        /* No verdict, nothing to clear. */
        ck_assert_int_eq(s.reason, PH_REASON_OK);
        ck_assert_ptr_null(s.meta);
        close(fd);
        free(path);
}
END_TEST

/* cancelled() is asked at least once per 64 KiB the search reads, and a
 * scan it never stops gives the verdict ph_scan_fd gives. */
START_TEST(test_scan_polls_every_chunk)
{
        const unsigned long long size = 4ULL << 20;
        char *path = sparse_copy("no-note.so", "long.so", size);
        struct poll_state polls = { 0 };
        ph_scan_opts opts = { .cancelled = count_polls, .userdata = &polls };
        ph_scan s, plain;
        int fd = ph_scan_open(AT_FDCWD, path);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ph_scan_fd_opts(fd, &opts, &s), 0);
        ck_assert_int_eq(s.reason, PH_REASON_NO_METADATA);
        ck_assert_uint_ge(s.bytes_read, size);
        ck_assert_uint_ge(polls.calls, size / 65536);
        ck_assert_int_eq(ph_scan_fd(fd, &plain), 0);
        ck_assert_int_eq(plain.reason, s.reason);
        ck_assert_str_eq(plain.message, s.message);
        ck_assert_uint_eq(plain.bytes_read, s.bytes_read);
        ph_scan_clear(&s);
        ph_scan_clear(&plain);

        /* A plugin found before the search: polled between stages only. */
        polls.calls = 0;
        close(fd);
        fd = ph_scan_open(AT_FDCWD, tu_fixture("good.so"));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ph_scan_fd_opts(fd, &opts, &s), 0);
        ck_assert_int_eq(s.reason, PH_REASON_OK);
        ck_assert_uint_ge(polls.calls, 1);
        ck_assert_uint_le(polls.calls, 4);
        ph_scan_clear(&s);
        /* Cancelled before the first stage: nothing read. */
        polls = (struct poll_state){ .stop_at = 1 };
        ck_assert_int_eq(ph_scan_fd_opts(fd, &opts, &s), -ECANCELED);
        ck_assert_uint_eq(polls.calls, 1);
        close(fd);
        free(path);
}
END_TEST

START_TEST(test_reason_names)
{
        for (int r = 0; r < _PH_REASON_MAX; r++) {
                ck_assert_ptr_nonnull(ph_reason_name((ph_reason)r));
                ck_assert_str_ne(ph_reason_name((ph_reason)r), "unknown");
                ck_assert_str_ne(ph_reason_describe((ph_reason)r), "unknown");
        }
        ck_assert_str_eq(ph_reason_name(_PH_REASON_MAX), "unknown");
        ck_assert_str_eq(ph_reason_name(PH_REASON_DEBUG_ONLY), "debug-only");
        /* The host's own verdict, last before the end of the list. */
        ck_assert_int_eq(PH_REASON_UNTRUSTED + 1, _PH_REASON_MAX);
        ck_assert_str_eq(ph_reason_name(PH_REASON_UNTRUSTED), "untrusted");
        ck_assert_str_eq(ph_reason_describe(PH_REASON_UNTRUSTED), "refused by the host's trust policy");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("elf-scan");
        TCase *tc = tcase_create("elf-scan");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_good_plugin);
        tcase_add_test(tc, test_examples_are_plugins);
        tcase_add_test(tc, test_stripped_and_gc_sections);
        tcase_add_test(tc, test_debug_suffix_is_not_special);
        tcase_add_test(tc, test_debug_only_file_refused);
        tcase_add_test(tc, test_debug_only_noseparate_code);
        tcase_add_test(tc, test_note_walk_budget_per_file);
        tcase_add_test(tc, test_found_without_section_headers);
        tcase_add_test(tc, test_found_through_renamed_section);
        tcase_add_test(tc, test_found_by_search);
        tcase_add_test(tc, test_search_far_and_across_chunks);
        tcase_add_test(tc, test_huge_sparse_plugin);
        tcase_add_test(tc, test_stray_magics_read_once);
        tcase_add_test(tc, test_note_offset_is_the_header);
        tcase_add_test(tc, test_metadata_refusals);
        tcase_add_test(tc, test_note_header_refusals);
        tcase_add_test(tc, test_elf_header_refusals);
        tcase_add_test(tc, test_tables_past_the_end);
        tcase_add_test(tc, test_truncated_everywhere);
        tcase_add_test(tc, test_random_byte_flips);
        tcase_add_test(tc, test_not_files);
        tcase_add_test(tc, test_fd_offset_untouched);
        tcase_add_test(tc, test_scan_max_size);
        tcase_add_test(tc, test_scan_cancelled);
        tcase_add_test(tc, test_scan_polls_every_chunk);
        tcase_add_test(tc, test_reason_names);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
