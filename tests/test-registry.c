/* Tests for daemon/registry.c on its own: applies of made-up scans, the
 * events they report, the counts Status shows and the index of files
 * refused or shadowed, which must follow every change without a recount;
 * and the metadata trees, dropped for every file but the last few a
 * client asked for. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "testutil.h"

#define DIR0 "/plugins"
#define DIR1 "/more"

typedef struct recorder {
        char log[8192];                 /* "added a; rejected /plugins/x.so; ..." */
} recorder;

static recorder rec;

static void on_event(ph_event_kind kind, ph_plugin *p, const ph_registry_why *why, void *userdata)
{
        static const char *const words[] = { "added", "changed", "removed", "loaded",
                                             "unloaded", "failed", "rejected" };
        size_t n = strlen(rec.log);

        (void)why;
        (void)userdata;
        snprintf(rec.log + n, sizeof(rec.log) - n, "%s %s; ", words[kind], p->name);
}

static void on_rejected(const ph_file *f, void *userdata)
{
        size_t n = strlen(rec.log);

        (void)userdata;
        snprintf(rec.log + n, sizeof(rec.log) - n, "rejected %s %s; ", f->path, ph_file_reason_name(f));
}

static ph_registry *registry(void)
{
        ph_registry *reg = NULL;

        ck_assert_int_eq(ph_registry_new(on_event, NULL, on_rejected, NULL, &reg), 0);
        rec.log[0] = '\0';
        return reg;
}

static ph_meta *meta(const char *name, const char *version)
{
        char json[256], err[128];
        ph_meta *m = NULL;
        int n = snprintf(json, sizeof(json),
                         "{\"name\":\"%s\",\"version\":\"%s\",\"interfaces\":[\"org.example.T\"]}",
                         name, version);

        ck_assert_int_eq(ph_meta_parse(json, (size_t)n, &m, err, sizeof(err)), 0);
        ph_meta_drop_tree(m);   /* as the scanner hands them over */
        return m;
}

/* A file named file claiming plugin name at version (ino tells versions
 * of the file apart); name NULL: refused as not-elf. */
static ph_scanned item(const char *file, const char *name, const char *version, unsigned ino)
{
        ph_scanned it = { .name = strdup(file), .present = true, .id = { .ino = ino, .size = 1 } };

        if (name) {
                it.reason = PH_REASON_OK;
                it.meta = meta(name, version);
        } else {
                it.reason = PH_REASON_NOT_ELF;
                it.message = strdup("not an ELF file");
        }
        return it;
}

static ph_scanned gone(const char *file)
{
        return (ph_scanned){ .name = strdup(file) };
}

static void apply(ph_registry *reg, unsigned dir_index, const char *dir, bool full, ph_scanned *items,
                  size_t n)
{
        ph_apply_counts counts = { 0 };

        ph_registry_apply(reg, dir_index, dir, full, items, n, &counts);
        for (size_t i = 0; i < n; i++)
                ph_scanned_clear(&items[i]);
}

/* The refused-or-shadowed files as "path reason, ...", in listing order. */
static const char *rejected_list(ph_registry *reg)
{
        static char out[4096];
        size_t n = 0, counted;

        out[0] = '\0';
        for (ph_file *f = ph_registry_rejected_first(reg); f; f = ph_registry_rejected_next(reg, f))
                n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s %s", n ? ", " : "", f->path,
                                      ph_file_reason_name(f));
        ph_registry_count(reg, &counted);
        /* The counter and the index agree, whatever happened before. */
        {
                size_t walked = 0;

                for (ph_file *f = ph_registry_rejected_first(reg); f; f = ph_registry_rejected_next(reg, f))
                        walked++;
                ck_assert_uint_eq(counted, walked);
        }
        return out;
}

static size_t plugins(ph_registry *reg)
{
        return ph_registry_count(reg, NULL);
}

START_TEST(test_counts_follow_every_change)
{
        ph_registry *reg = registry();
        ph_scanned a[] = {
                item("a.so", "alpha", "1.0.0", 1),
                item("b.so", "beta", "1.0.0", 2),
                item("junk.so", NULL, NULL, 3),
                item("a-old.so", "alpha", "0.9.0", 4),
        };

        apply(reg, 0, DIR0, true, a, 4);
        ck_assert_uint_eq(plugins(reg), 2);
        ck_assert_str_eq(rejected_list(reg), DIR0 "/a-old.so shadowed, " DIR0 "/junk.so not-elf");
        ck_assert_str_eq(rec.log, "added alpha; added beta; rejected " DIR0 "/junk.so not-elf; "
                                  "rejected " DIR0 "/a-old.so shadowed; ");

        /* The winner leaves: the shadowed file takes the name and is no
         * longer rejected; the junk becomes a plugin. */
        rec.log[0] = '\0';
        {
                ph_scanned b[] = { gone("a.so"), item("junk.so", "gamma", "1.0.0", 5) };

                apply(reg, 0, DIR0, false, b, 2);
        }
        ck_assert_uint_eq(plugins(reg), 3);
        ck_assert_str_eq(rejected_list(reg), "");
        ck_assert_str_eq(rec.log, "changed alpha; added gamma; ");

        /* A full listing without beta, and with gamma refused. */
        rec.log[0] = '\0';
        {
                ph_scanned c[] = { item("a-old.so", "alpha", "0.9.0", 4), item("junk.so", NULL, NULL, 6) };

                apply(reg, 0, DIR0, true, c, 2);
        }
        ck_assert_uint_eq(plugins(reg), 1);
        ck_assert_str_eq(rejected_list(reg), DIR0 "/junk.so not-elf");
        ck_assert_str_eq(rec.log, "removed beta; removed gamma; rejected " DIR0 "/junk.so not-elf; ");

        /* The same name in a second directory: the first directory wins a
         * tie; losing the first directory hands the name over. */
        rec.log[0] = '\0';
        {
                ph_scanned d[] = { item("alpha.so", "alpha", "0.9.0", 7) };

                apply(reg, 1, DIR1, true, d, 1);
        }
        ck_assert_str_eq(rejected_list(reg), DIR1 "/alpha.so shadowed, " DIR0 "/junk.so not-elf");
        ck_assert_str_eq(rec.log, "rejected " DIR1 "/alpha.so shadowed; ");
        {
                int map[] = { -1, 0 };  /* the first directory goes */

                rec.log[0] = '\0';
                ph_registry_remap_dirs(reg, map, 2);
        }
        ck_assert_str_eq(rec.log, "changed alpha; ");
        ck_assert_uint_eq(plugins(reg), 1);
        ck_assert_str_eq(rejected_list(reg), "");
        ck_assert_str_eq(ph_registry_lookup(reg, "alpha")->file->path, DIR1 "/alpha.so");
        ph_registry_free(reg);
}
END_TEST

/* Three files claim one name, and leave one by one: the candidates grow
 * past the one kept inline and shrink back. */
/* A file that loses its claim and gets it back later (the newer file
 * that shadowed it is deleted) gets a newer generation than any the name
 * had: a loaded plugin reloads only onto a newer generation, so without
 * it the deleted file's code would go on serving. */
START_TEST(test_claim_back_is_newer)
{
        ph_registry *reg = registry();
        uint64_t gen_new;

        {
                ph_scanned a[] = { item("old.so", "alpha", "0.9.0", 1) };

                apply(reg, 0, DIR0, false, a, 1);
        }
        {
                ph_scanned a[] = { item("new.so", "alpha", "1.0.0", 2) };

                apply(reg, 0, DIR0, false, a, 1);
        }
        ck_assert_str_eq(ph_registry_find(reg, "alpha")->file->path, DIR0 "/new.so");
        gen_new = ph_registry_find(reg, "alpha")->file->generation;
        rec.log[0] = '\0';
        {
                ph_scanned a[] = { gone("new.so") };

                apply(reg, 0, DIR0, false, a, 1);
        }
        ck_assert_str_eq(rec.log, "changed alpha; ");
        ck_assert_str_eq(ph_registry_find(reg, "alpha")->file->path, DIR0 "/old.so");
        ck_assert_uint_gt(ph_registry_find(reg, "alpha")->file->generation, gen_new);
        ph_registry_free(reg);
}
END_TEST

START_TEST(test_many_candidates)
{
        ph_registry *reg = registry();
        ph_scanned a[] = {
                item("x1.so", "x", "1.0.0", 1), item("x2.so", "x", "2.0.0", 2),
                item("x3.so", "x", "3.0.0", 3), item("x4.so", "x", "0.1.0", 4),
        };

        apply(reg, 0, DIR0, true, a, 4);
        ck_assert_str_eq(ph_registry_lookup(reg, "x")->file->path, DIR0 "/x3.so");
        ck_assert_uint_eq(ph_registry_lookup(reg, "x")->n_candidates, 4);
        ck_assert_str_eq(rejected_list(reg), DIR0 "/x1.so shadowed, " DIR0 "/x2.so shadowed, "
                                             DIR0 "/x4.so shadowed");
        {
                ph_scanned b[] = { gone("x3.so"), gone("x2.so") };

                apply(reg, 0, DIR0, false, b, 2);
        }
        ck_assert_str_eq(ph_registry_lookup(reg, "x")->file->path, DIR0 "/x1.so");
        ck_assert_str_eq(rejected_list(reg), DIR0 "/x4.so shadowed");
        {
                ph_scanned c[] = { gone("x1.so"), gone("x4.so") };

                apply(reg, 0, DIR0, false, c, 2);
        }
        ck_assert_ptr_null(ph_registry_lookup(reg, "x"));
        ck_assert_uint_eq(plugins(reg), 0);
        ck_assert_str_eq(rejected_list(reg), "");
        ph_registry_free(reg);
}
END_TEST

/* No file keeps its metadata tree, but a plugin asked for by name gets it
 * back (Info shows it), and the last REGISTRY_TREES_KEPT keep theirs. */
START_TEST(test_trees_on_demand)
{
        ph_registry *reg = registry();
        enum { N = REGISTRY_TREES_KEPT + 8 };
        ph_scanned items[N];
        char file[32], name[32];
        ph_plugin *p;
        json_t *tree;

        for (unsigned i = 0; i < N; i++) {
                snprintf(file, sizeof(file), "p%03u.so", i);
                snprintf(name, sizeof(name), "p%03u", i);
                items[i] = item(file, name, "1.0.0", i + 1);
        }
        apply(reg, 0, DIR0, true, items, N);
        for (p = ph_registry_first(reg); p; p = ph_registry_next(reg, p))
                ck_assert_ptr_null(p->file->meta->priv);
        ck_assert_ptr_null(ph_registry_lookup(reg, "p000")->file->meta->priv);

        p = ph_registry_find(reg, "p000");
        tree = p->file->meta->priv;
        ck_assert_ptr_nonnull(tree);
        ck_assert_str_eq(json_string_value(json_object_get(tree, "name")), "p000");
        json_incref(tree);      /* as Info holds it while it answers */
        for (unsigned i = 1; i < N; i++) {
                snprintf(name, sizeof(name), "p%03u", i);
                ck_assert_ptr_nonnull(ph_registry_find(reg, name)->file->meta->priv);
        }
        /* p000 was the oldest: its tree went (Info's reference lives on). */
        ck_assert_ptr_null(p->file->meta->priv);
        ck_assert_str_eq(json_string_value(json_object_get(tree, "version")), "1.0.0");
        json_decref(tree);
        {
                size_t kept = 0;

                for (p = ph_registry_first(reg); p; p = ph_registry_next(reg, p))
                        kept += p->file->meta->priv != NULL;
                ck_assert_uint_eq(kept, REGISTRY_TREES_KEPT);
        }
        /* A file with a tree replaced, and one removed: nothing dangles
         * (ASan), and the new version's tree comes on the next find. */
        ck_assert_int_eq(N - 1, 39);
        {
                ph_scanned b[] = { item("p039.so", "p039", "2.0.0", 1000), gone("p038.so") };

                apply(reg, 0, DIR0, false, b, 2);
        }
        ck_assert_ptr_null(ph_registry_lookup(reg, "p038"));
        p = ph_registry_find(reg, "p039");
        ck_assert_str_eq(json_string_value(json_object_get(p->file->meta->priv, "version")), "2.0.0");
        ph_registry_free(reg);
}
END_TEST

/* 20,000 names in one apply, then a full listing that changes nothing:
 * no event, and every name still there. */
START_TEST(test_large_listing)
{
        enum { N = 20000 };
        ph_registry *reg = registry();
        ph_scanned *items = calloc(N, sizeof(*items));
        char file[32], name[32];

        for (unsigned round = 0; round < 2; round++) {
                for (unsigned i = 0; i < N; i++) {
                        snprintf(file, sizeof(file), "q%05u.so", (i * 7919u) % N);
                        snprintf(name, sizeof(name), "q%05u", (i * 7919u) % N);
                        items[i] = item(file, name, "1.0.0", (i * 7919u) % N + 1);
                }
                rec.log[0] = '\0';
                apply(reg, 0, DIR0, true, items, N);
                ck_assert_uint_eq(plugins(reg), N);
                if (round == 1)
                        ck_assert_str_eq(rec.log, "");
                else
                        ck_assert(strncmp(rec.log, "added q00000; added q00001; ", 28) == 0);
        }
        ck_assert_str_eq(ph_registry_after(reg, "q09998")->name, "q09999");
        free(items);
        ph_registry_free(reg);
}
END_TEST

static Suite *registry_suite(void)
{
        Suite *s = suite_create("registry");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_counts_follow_every_change);
        tcase_add_test(tc, test_claim_back_is_newer);
        tcase_add_test(tc, test_many_candidates);
        tcase_add_test(tc, test_trees_on_demand);
        tcase_add_test(tc, test_large_listing);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(registry_suite()) == 0 ? 0 : 1;
}
