/* Tests for plughostctl (daemon/ctl*.c): inspect's table, JSON and exit codes. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char ctl[4096];

static void setup(void)
{
        const char *b = getenv("PH_BUILDDIR");

        ck_assert_ptr_nonnull(b);
        snprintf(ctl, sizeof(ctl), "%s/plughostctl", b);
}

START_TEST(test_inspect_plugin_table)
{
        char *out;
        char *argv[] = { ctl, "inspect", (char *)tu_example("hello.so"), NULL };

        ck_assert_int_eq(tu_run(argv, &out), 0);
        ck_assert_ptr_nonnull(strstr(out, "FILE"));
        ck_assert_ptr_nonnull(strstr(out, "hello"));
        ck_assert_ptr_nonnull(strstr(out, "1.0.0"));
        ck_assert_ptr_nonnull(strstr(out, "org.example.Greeter"));
        free(out);
}
END_TEST

START_TEST(test_inspect_json_mixed)
{
        char good[4096], debug[4096];
        json_error_t err;
        json_t *root, *a, *b;
        char *out;

        snprintf(good, sizeof(good), "%s", tu_fixture("good.so"));
        snprintf(debug, sizeof(debug), "%s", tu_fixture("good-debug.so"));
        char *argv[] = { ctl, "--json", "inspect", good, debug, NULL };
        /* One file is not a plugin: exit 1, yet every file is reported. */
        ck_assert_int_eq(tu_run(argv, &out), 1);
        root = json_loads(out, 0, &err);
        ck_assert_msg(root != NULL, "bad JSON: %s", err.text);
        ck_assert_uint_eq(json_array_size(root), 2);
        a = json_array_get(root, 0);
        b = json_array_get(root, 1);
        ck_assert(json_is_true(json_object_get(a, "plugin")));
        ck_assert_str_eq(json_string_value(json_object_get(a, "name")), "good");
        ck_assert_str_eq(json_string_value(json_object_get(a, "found_via")), "program-headers");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "metadata"),
                                                            "priority")), 5);
        ck_assert(json_is_false(json_object_get(b, "plugin")));
        ck_assert_str_eq(json_string_value(json_object_get(b, "reason")), "debug-only");
        json_decref(root);
        free(out);
}
END_TEST

START_TEST(test_inspect_option_after_command)
{
        char *out;
        char *argv[] = { ctl, "inspect", "--json", (char *)tu_example("upper.so"), NULL };

        ck_assert_int_eq(tu_run(argv, &out), 0);
        ck_assert_ptr_nonnull(strstr(out, "\"name\": \"upper\""));
        free(out);
}
END_TEST

START_TEST(test_usage_errors)
{
        char *none[] = { ctl, NULL };
        char *unknown[] = { ctl, "frobnicate", NULL };
        char *noargs[] = { ctl, "inspect", NULL };
        char *badopt[] = { ctl, "--bogus", "inspect", "x", NULL };
        char *help[] = { ctl, "--help", NULL };
        char *version[] = { ctl, "--version", NULL };
        char *missing[] = { ctl, "inspect", "/nonexistent.so", NULL };
        char *out;

        ck_assert_int_eq(tu_run(none, NULL), 2);
        ck_assert_int_eq(tu_run(unknown, NULL), 2);
        ck_assert_int_eq(tu_run(noargs, NULL), 2);
        ck_assert_int_eq(tu_run(badopt, NULL), 2);
        ck_assert_int_eq(tu_run(help, &out), 0);
        ck_assert_ptr_nonnull(strstr(out, "inspect"));
        free(out);
        ck_assert_int_eq(tu_run(version, &out), 0);
        ck_assert_ptr_nonnull(strstr(out, "plughostctl "));
        free(out);
        ck_assert_int_eq(tu_run(missing, &out), 1);
        ck_assert_ptr_nonnull(strstr(out, "io-error"));
        free(out);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ctl");
        TCase *tc = tcase_create("ctl");

        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, test_inspect_plugin_table);
        tcase_add_test(tc, test_inspect_json_mixed);
        tcase_add_test(tc, test_inspect_option_after_command);
        tcase_add_test(tc, test_usage_errors);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
