/* Tests for lib/meta.c and lib/version.c: each metadata rule accepts what it
 * should and refuses the rest with a message naming the key. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "plughost/plughost.h"
#include "testutil.h"

static ph_meta *parse_ok(const char *json)
{
        char err[256] = "";
        ph_meta *m = NULL;
        int r = ph_meta_parse(json, strlen(json), &m, err, sizeof(err));

        ck_assert_msg(r == 0, "refused %s: %s", json, err);
        ck_assert_ptr_nonnull(m);
        return m;
}

/* Asserts a refusal whose message contains want. */
static void parse_bad(const char *json, size_t len, const char *want)
{
        char err[256] = "";
        ph_meta *m = NULL;
        int r = ph_meta_parse(json, len, &m, err, sizeof(err));

        ck_assert_msg(r == -22, "accepted %s", json);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err, want) != NULL, "message '%s' lacks '%s'", err, want);
}

#define BAD(json, want) parse_bad(json, strlen(json), want)

START_TEST(test_full_metadata)
{
        ph_meta *m = parse_ok("{\"name\":\"a.b_c-d\",\"version\":\"1.2.3-rc.1+build.5\","
                              "\"interfaces\":[\"org.example.A\",\"io.x-y.B2\"],"
                              "\"description\":\"Grüße, «ok»\",\"license\":\"MIT OR Apache-2.0\","
                              "\"url\":\"https://example.org/x\",\"concurrency\":\"serial\","
                              "\"resident\":true,\"priority\":-7,\"x-anything\":[1,{\"z\":null}]}");

        ck_assert_str_eq(m->name, "a.b_c-d");
        ck_assert_str_eq(m->version, "1.2.3-rc.1+build.5");
        ck_assert_uint_eq(m->n_interfaces, 2);
        ck_assert_str_eq(m->interfaces[1], "io.x-y.B2");
        ck_assert_ptr_null(m->interfaces[2]);
        ck_assert_str_eq(m->description, "Grüße, «ok»");
        ck_assert(m->serial);
        ck_assert(m->resident);
        ck_assert_int_eq(m->priority, -7);
        ck_assert_ptr_nonnull(strstr(m->json, "x-anything"));
        ph_meta_free(m);
}
END_TEST

/* A meta kept without its tree (as the daemon keeps every file's) reads
 * the same; the tree comes back, parsed again, on demand. */
START_TEST(test_drop_tree)
{
        ph_meta *m = parse_ok("{\"name\":\"kept\",\"version\":\"2.0.1\","
                              "\"interfaces\":[\"org.example.A\",\"org.example.B\"],"
                              "\"description\":\"d\\u00e9j\\u00e0\",\"license\":\"MIT\","
                              "\"url\":\"https://example.org/\",\"x-v\":{\"k\":[1]}}");
        json_t *tree;
        char *text;

        ck_assert_ptr_nonnull(m->priv);
        ph_meta_drop_tree(m);
        ck_assert_ptr_null(m->priv);
        ph_meta_drop_tree(m);   /* twice is harmless */
        ck_assert_str_eq(m->name, "kept");
        ck_assert_str_eq(m->version, "2.0.1");
        ck_assert_uint_eq(m->n_interfaces, 2);
        ck_assert_str_eq(m->interfaces[0], "org.example.A");
        ck_assert_str_eq(m->interfaces[1], "org.example.B");
        ck_assert_ptr_null(m->interfaces[2]);
        ck_assert_str_eq(m->description, "déjà");
        ck_assert_str_eq(m->license, "MIT");
        ck_assert_str_eq(m->url, "https://example.org/");
        tree = ph_meta_tree(m);
        ck_assert_ptr_nonnull(tree);
        ck_assert_ptr_eq(tree, m->priv);
        ck_assert_ptr_eq(ph_meta_tree(m), tree);        /* kept until dropped */
        text = json_dumps(tree, JSON_COMPACT);
        ck_assert_str_eq(text, "{\"name\":\"kept\",\"version\":\"2.0.1\",\"interfaces\":"
                               "[\"org.example.A\",\"org.example.B\"],\"description\":\"d\u00e9j\u00e0\","
                               "\"license\":\"MIT\",\"url\":\"https://example.org/\",\"x-v\":{\"k\":[1]}}");
        free(text);
        ph_meta_free(m);
}
END_TEST

START_TEST(test_minimal_defaults)
{
        ph_meta *m = parse_ok("{\"name\":\"x\",\"version\":\"0\"}");

        ck_assert_uint_eq(m->n_interfaces, 0);
        ck_assert_ptr_nonnull(m->interfaces);
        ck_assert_ptr_null(m->interfaces[0]);
        ck_assert_ptr_null(m->description);
        ck_assert(!m->serial);
        ck_assert(!m->resident);
        ck_assert_int_eq(m->priority, 0);
        ph_meta_free(m);
}
END_TEST

START_TEST(test_name_rule)
{
        char json[200];
        static const char *const bad[] = { "", "Hello", "-x", ".x", "_x", "a b", "a/b", "é",
                                           "a\\nb", "a\\u202eb" };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(json, sizeof(json), "{\"name\":\"%s\",\"version\":\"1\"}", bad[i]);
                BAD(json, "key 'name'");
        }
        /* 64 characters pass, 65 do not. */
        snprintf(json, sizeof(json), "{\"name\":\"%.64s\",\"version\":\"1\"}",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        ph_meta_free(parse_ok(json));
        snprintf(json, sizeof(json), "{\"name\":\"%.65s\",\"version\":\"1\"}",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        BAD(json, "key 'name'");
        BAD("{\"name\":\"a\\u0000b\",\"version\":\"1\"}", "invalid JSON");
        BAD("{\"name\":7,\"version\":\"1\"}", "key 'name': must be a string");
        BAD("{\"version\":\"1\"}", "key 'name': required");
}
END_TEST

START_TEST(test_version_rule)
{
        static const char *const good[] = { "0", "1.0", "1.2.3", "10.20.30", "1.0.0-alpha",
                                            "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0+20130313144700",
                                            "1.0.0-beta+exp.sha.5114f85", "999999999.0.0",
                                            "1.0-0", "1.0-0a", "1.0+001" };
        static const char *const bad[] = { "", "v1", "1.", "1..2", "01.0", "1.02", "1.2.3.4",
                                           "1.2.3-", "1.2.3+", "1.2.3-a..b", "1.2.3-ä", "1.0-01", "1.0-a.007",
                                           "1000000000", "1 .2", "-1" };
        char json[200];

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                snprintf(json, sizeof(json), "{\"name\":\"x\",\"version\":\"%s\"}", good[i]);
                ph_meta_free(parse_ok(json));
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(json, sizeof(json), "{\"name\":\"x\",\"version\":\"%s\"}", bad[i]);
                BAD(json, "key 'version'");
        }
        BAD("{\"name\":\"x\"}", "key 'version': required");
}
END_TEST

START_TEST(test_interfaces_rule)
{
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interfaces\":\"org.a.B\"}", "must be an array");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interfaces\":[1]}", "entry 0 is not a string");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interfaces\":[\"nodots\"]}", "reverse-domain");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interfaces\":[\"org..B\"]}", "reverse-domain");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interfaces\":[\"1org.B\"]}", "reverse-domain");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interfaces\":[\"org.B-\"]}", "reverse-domain");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interfaces\":[\"org.a.B\",\"org.a.B\"]}", "listed twice");

        char *json = malloc(65 * 20 + 100), *p = json;
        p += sprintf(p, "{\"name\":\"x\",\"version\":\"1\",\"interfaces\":[");
        for (int i = 0; i < 65; i++)
                p += sprintf(p, "%s\"org.i%d\"", i ? "," : "", i);
        strcpy(p, "]}");
        BAD(json, "more than 64 entries");
        free(json);
}
END_TEST

START_TEST(test_hostile_text)
{
        /* Bidi override, zero-width joiner, BOM, C1 control, escape. */
        BAD("{\"name\":\"x\",\"version\":\"1\",\"description\":\"abc\\u202edcba\"}", "bidirectional");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"description\":\"a\\u200db\"}", "invisible");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"description\":\"\\ufeffa\"}", "key 'description'");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"description\":\"a\\u0085b\"}", "control");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"description\":\"\\u001b[31mred\"}", "control");
        /* Arabic letter mark, line separator, soft hyphen, Mongolian vowel
         * separator, interlinear annotation anchor. */
        static const char *const invisible[] = { "\\u061c", "\\u2028", "\\u2029", "\\u00ad",
                                                 "\\u180e", "\\ufff9" };
        for (size_t i = 0; i < sizeof(invisible) / sizeof(invisible[0]); i++) {
                char j[128];
                snprintf(j, sizeof(j), "{\"name\":\"x\",\"version\":\"1\",\"description\":\"a%sb\"}",
                         invisible[i]);
                BAD(j, "key 'description'");
        }
        BAD("{\"name\":\"x\",\"version\":\"1\",\"license\":\"a\\u0000b\"}", "invalid JSON");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"url\":\"ftp://x\"}", "key 'url'");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"url\":\"https://a b\"}", "key 'url'");

        char *json = malloc(2000);
        snprintf(json, 2000, "{\"name\":\"x\",\"version\":\"1\",\"description\":\"%01025d\"}", 0);
        BAD(json, "longer than 1024");
        free(json);
}
END_TEST

/* Messages never carry raw control characters from the input. */
START_TEST(test_messages_are_sanitised)
{
        char err[256];
        ph_meta *m;
        const char *json = "{\"name\":\"\\u001b]0;pwned\\u0007\",\"version\":\"1\"}";

        ck_assert_int_eq(ph_meta_parse(json, strlen(json), &m, err, sizeof(err)), -22);
        for (const char *p = err; *p; p++)
                ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "raw byte in '%s'", err);
}
END_TEST

START_TEST(test_structure_rules)
{
        BAD("[1,2]", "must be a JSON object");
        BAD("{\"name\":\"x\",", "invalid JSON");
        BAD("{\"name\":\"x\",\"name\":\"y\",\"version\":\"1\"}", "invalid JSON");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"interface\":[]}", "unknown key 'interface'");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"concurrency\":\"many\"}", "key 'concurrency'");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"resident\":1}", "key 'resident'");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"priority\":1001}", "key 'priority'");
        BAD("{\"name\":\"x\",\"version\":\"1\",\"priority\":1.5}", "key 'priority'");
        /* Only size bytes are read: the same text cut short is invalid. */
        const char *ok = "{\"name\":\"x\",\"version\":\"1\"}";
        parse_bad(ok, strlen(ok) - 1, "invalid JSON");

        char *big = malloc(PH_META_MAX + 2);
        memset(big, ' ', PH_META_MAX + 1);
        memcpy(big, ok, strlen(ok));
        big[PH_META_MAX + 1] = '\0';
        parse_bad(big, PH_META_MAX + 1, "more than");
        free(big);
}
END_TEST

START_TEST(test_version_compare)
{
        /* Each is strictly lower than the next (semver 2.0 section 11). */
        static const char *const order[] = {
                "0.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2",
                "1.10.0", "2", "10.0.0",
        };
        size_t n = sizeof(order) / sizeof(order[0]);

        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                        int c = ph_version_compare(order[i], order[j]);
                        int want = (i > j) - (i < j);
                        ck_assert_msg((c > 0) - (c < 0) == want, "%s vs %s gave %d",
                                      order[i], order[j], c);
                }
        ck_assert_int_eq(ph_version_compare("1", "1.0.0"), 0);
        /* Numeric identifiers past any integer type still order by value. */
        ck_assert_int_lt(ph_version_compare("1.0.0-99999999999999999999998",
                                            "1.0.0-99999999999999999999999"), 0);
        ck_assert_int_lt(ph_version_compare("1.0.0-9", "1.0.0-10"), 0);
        ck_assert_int_eq(ph_version_compare("1.0.0+a", "1.0.0+b"), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("meta");
        TCase *tc = tcase_create("meta");

        tcase_add_test(tc, test_full_metadata);
        tcase_add_test(tc, test_minimal_defaults);
        tcase_add_test(tc, test_drop_tree);
        tcase_add_test(tc, test_name_rule);
        tcase_add_test(tc, test_version_rule);
        tcase_add_test(tc, test_interfaces_rule);
        tcase_add_test(tc, test_hostile_text);
        tcase_add_test(tc, test_messages_are_sanitised);
        tcase_add_test(tc, test_structure_rules);
        tcase_add_test(tc, test_version_compare);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
