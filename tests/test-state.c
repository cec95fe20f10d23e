/* Tests for daemon/state.c on its own: the saved set of plugins clients
 * loaded, asked about for every plugin a scan adds (so looked up, not
 * walked), kept without duplicates and saved whole at every change. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "testutil.h"

/* The saved "loaded" list as "a,b,c". */
static char *saved(const char *dir)
{
        char *path = tu_path(dir, "loaded.json"), *s = calloc(1, 1 << 16);
        json_t *j = json_load_file(path, 0, NULL), *v;
        size_t i;

        ck_assert_ptr_nonnull(j);
        json_array_foreach(json_object_get(j, "loaded"), i, v) {
                if (i)
                        strcat(s, ",");
                strcat(s, json_string_value(v));
        }
        json_decref(j);
        free(path);
        return s;
}

START_TEST(test_wanted_set)
{
        char *dir = tu_tmpdir(), *list;
        ph_state *st;

        ck_assert_int_eq(ph_state_open(dir, &st), 0);
        ph_state_want(st, "mid", true);
        ph_state_want(st, "zeta", true);
        ph_state_want(st, "alpha", true);
        ph_state_want(st, "mid", true);         /* once is enough */
        ck_assert(ph_state_wanted(st, "alpha"));
        ck_assert(ph_state_wanted(st, "mid"));
        ck_assert(ph_state_wanted(st, "zeta"));
        ck_assert(!ph_state_wanted(st, "beta"));
        ck_assert(!ph_state_wanted(st, "zz"));
        ck_assert(!ph_state_wanted(st, "a"));
        list = saved(dir);
        ck_assert_str_eq(list, "alpha,mid,zeta");
        free(list);
        ph_state_want(st, "mid", false);
        ph_state_want(st, "nothere", false);
        ck_assert(!ph_state_wanted(st, "mid"));
        list = saved(dir);
        ck_assert_str_eq(list, "alpha,zeta");
        free(list);
        ph_state_free(st);
        tu_tmpdir_free(dir);
}
END_TEST

/* A name twice in loaded.json (written by hand, or by an older daemon):
 * one Unload takes it out of the set, not one copy of two. */
START_TEST(test_duplicates_in_file)
{
        char *dir = tu_tmpdir(), *list;
        ph_state *st;

        {
                char *path = tu_path(dir, "loaded.json");
                const char *text = "{\"loaded\":[\"zeta\",\"alpha\",\"zeta\",\"b\"]}";

                tu_write_file(path, text, strlen(text));
                free(path);
        }
        ck_assert_int_eq(ph_state_open(dir, &st), 0);
        ck_assert(ph_state_wanted(st, "zeta"));
        ck_assert(ph_state_wanted(st, "alpha"));
        ck_assert(ph_state_wanted(st, "b"));
        ck_assert(!ph_state_wanted(st, "mid"));
        ph_state_want(st, "zeta", false);
        ck_assert(!ph_state_wanted(st, "zeta"));        /* both copies went */
        list = saved(dir);
        ck_assert_str_eq(list, "alpha,b");
        free(list);
        ph_state_free(st);
        tu_tmpdir_free(dir);
}
END_TEST

/* 3,000 names wanted in scrambled order; 100,000 asked about (a start
 * with 100,000 plugins asks once per plugin). */
START_TEST(test_many_wanted)
{
        enum { WANTED = 3000, ASKED = 100000 };
        char *dir = tu_tmpdir(), name[32];
        ph_state *st;
        size_t found = 0;

        ck_assert_int_eq(ph_state_open(dir, &st), 0);
        for (unsigned i = 0; i < WANTED; i++) {
                snprintf(name, sizeof(name), "p%06u", (i * 7919u) % WANTED * 10);
                ph_state_want(st, name, true);
        }
        for (unsigned i = 0; i < ASKED; i++) {
                snprintf(name, sizeof(name), "p%06u", i);
                found += ph_state_wanted(st, name);
        }
        ck_assert_uint_eq(found, WANTED);
        ph_state_free(st);
        tu_tmpdir_free(dir);
}
END_TEST

static Suite *state_suite(void)
{
        Suite *s = suite_create("state");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_wanted_set);
        tcase_add_test(tc, test_duplicates_in_file);
        tcase_add_test(tc, test_many_wanted);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(state_suite()) == 0 ? 0 : 1;
}
