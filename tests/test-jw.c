/* Tests for protocol/jw.c, the JSON writer: every byte and every kind of
 * UTF-8 sequence in strings, random trees and whole Varlink messages,
 * each compared byte for byte with what jansson writes for the same
 * values; the cap at its exact edge; misuse. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "jw-walk.h"
#include "varlink.h"
#include "varlink-internal.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

static char *jw_text(ph_jw *w, size_t *ret_len)
{
        char *out;
        size_t len;

        ck_assert_int_eq(ph_jw_finish(w, &out, &len), 0);
        ck_assert_uint_eq(len, strlen(out) + 1);
        if (ret_len)
                *ret_len = len;
        return out;
}

/* The writer's text for v equals jansson's. */
static void assert_same(const json_t *v)
{
        char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), *got;
        ph_jw w;

        ck_assert_ptr_nonnull(want);
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        jw_walk(&w, v);
        got = jw_text(&w, NULL);
        ck_assert_msg(strcmp(got, want) == 0, "writer: %s\njansson: %s", got, want);
        free(got);
        free(want);
}

/* The writer's text for n bytes of s, and jansson's for the same bytes
 * with what is not UTF-8 made '?' (what ph_varlink_text does). */
static void assert_same_string(const char *s, size_t n)
{
        char *copy = malloc(n + 1), *want, *got;
        json_t *j;
        ph_jw w;

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, s, n);
        copy[n] = '\0';
        ph__utf8_sanitise(copy, n);
        j = json_stringn(copy, n);
        ck_assert_ptr_nonnull(j);
        want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_stringn(&w, s, n);
        got = jw_text(&w, NULL);
        ck_assert_msg(strcmp(got, want) == 0, "writer: %s\njansson: %s", got, want);
        free(got);
        free(want);
        json_decref(j);
        free(copy);
}

static uint32_t rng = 0x2545f491u;

static uint32_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        return rng;
}

/* Random bytes, biased to what needs care: controls, quotes, backslashes,
 * slashes, DEL, and UTF-8 sequences of every length. */
static size_t random_text(char *buf, size_t cap)
{
        static const char *const pieces[] = {
                "\"", "\\", "/", "\x7f", "\x01", "\x1f", "\b", "\f", "\n", "\r", "\t",
                "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
                "\xf4\x8f\xbf\xbf", "\xe2\x82\xac", "a", "Z", "0", " ",
        };
        size_t n = 0, want = rnd() % 24;

        while (n < want) {
                const char *p = pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))];
                size_t len = strlen(p);

                if (n + len >= cap)
                        break;
                memcpy(buf + n, p, len);
                n += len;
        }
        return n;
}

static json_t *random_value(unsigned depth)
{
        char text[128];
        json_t *v;
        unsigned kind = depth >= 5 ? 2 + rnd() % 5 : rnd() % 7;

        switch (kind) {
        case 0:
                v = json_object();
                for (unsigned i = rnd() % 5; i > 0; i--) {
                        size_t n = random_text(text, sizeof(text));

                        text[n] = '\0';
                        /* (a key with a NUL would be cut: keys are C strings) */
                        json_object_set_new(v, text, random_value(depth + 1));
                }
                return v;
        case 1:
                v = json_array();
                for (unsigned i = rnd() % 5; i > 0; i--)
                        json_array_append_new(v, random_value(depth + 1));
                return v;
        case 2:
                return json_stringn(text, random_text(text, sizeof(text)));
        case 3: {
                static const long long edges[] = { 0, -1, 1, LLONG_MIN, LLONG_MAX, 1000000007 };

                return json_integer(rnd() % 2 ? (long long)(int32_t)rnd() : edges[rnd() % 6]);
        }
        case 4:
                return json_boolean(rnd() % 2);
        case 5:
                return json_null();
        default:
                return json_stringn("", 0);
        }
}

/* ---- strings ------------------------------------------------------------- */

START_TEST(test_string_every_byte)
{
        for (unsigned b = 0; b < 256; b++) {
                char s[4] = { 'a', (char)b, 'z', 0 };

                assert_same_string(s, 3);
                assert_same_string(s + 1, 1);
        }
}
END_TEST

START_TEST(test_string_utf8_edges)
{
        static const char *const valid[] = {
                "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "caf\xc3\xa9",
        };
        static const char *const invalid[] = {
                "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xed\xbf\xbf",
                "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\x80", "\xc3", "\xe2\x82",
                "\xf0\x90\x80", "ok\xc3", "\xc3(",
        };

        for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
                json_t *j = json_string(valid[i]);

                ck_assert_ptr_nonnull(j);
                assert_same(j);
                assert_same_string(valid[i], strlen(valid[i]));
                json_decref(j);
        }
        for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
                /* jansson refuses the bytes; we write '?' for each bad one. */
                ck_assert_ptr_null(json_string(invalid[i]));
                assert_same_string(invalid[i], strlen(invalid[i]));
        }
}
END_TEST

START_TEST(test_string_embedded_nul)
{
        json_t *j = json_stringn("a\0b", 3);
        ph_jw w;
        char *got;

        assert_same_string("a\0b", 3);
        ph_jw_init(&w, 64);
        ph_jw_stringn(&w, "a\0b", 3);
        got = jw_text(&w, NULL);
        ck_assert_str_eq(got, "\"a\\u0000b\"");
        free(got);
        json_decref(j);
}
END_TEST

START_TEST(test_text_null_and_string_null)
{
        ph_jw w;
        char *got;

        ph_jw_init(&w, 64);
        ph_jw_array_open(&w);
        ph_jw_text(&w, NULL);
        ph_jw_string(&w, NULL);
        ph_jw_text(&w, "/p/\xff.so");
        ph_jw_array_close(&w);
        got = jw_text(&w, NULL);
        ck_assert_str_eq(got, "[null,null,\"/p/?.so\"]");
        free(got);
}
END_TEST

/* ---- values and trees ---------------------------------------------------- */

START_TEST(test_scalars)
{
        json_t *v[] = { json_integer(0), json_integer(LLONG_MIN), json_integer(LLONG_MAX),
                        json_integer(-42), json_true(), json_false(), json_null(),
                        json_object(), json_array(), json_string("") };

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                assert_same(v[i]);
                json_decref(v[i]);
        }
}
END_TEST

START_TEST(test_random_trees)
{
        for (unsigned i = 0; i < 3000; i++) {
                json_t *v = random_value(0);

                ck_assert_ptr_nonnull(v);
                assert_same(v);
                json_decref(v);
        }
}
END_TEST

START_TEST(test_json_and_raw)
{
        json_t *v = json_pack("{s:f, s:[i, s, {}], s:s}", "pi", 0.1, "a", 1, "x\n", "k", "\xe2\x82\xac");
        char *want = json_dumps(v, JSON_COMPACT), *got, *expect;
        ph_jw w;

        /* A jansson value in the middle of written ones. */
        ph_jw_init(&w, 4096);
        ph_jw_array_open(&w);
        ph_jw_int(&w, 1);
        ph_jw_json(&w, v);
        ph_jw_raw(&w, "{\"r\":[1,2]}", 11);
        ph_jw_json(&w, NULL);
        ph_jw_array_close(&w);
        got = jw_text(&w, NULL);
        ck_assert_int_gt(asprintf(&expect, "[1,%s,{\"r\":[1,2]},null]", want), 0);
        ck_assert_str_eq(got, expect);
        free(expect);
        free(got);
        free(want);
        json_decref(v);
}
END_TEST

/* ---- messages ------------------------------------------------------------ */

static void write_params(ph_jw *w, const json_t *params)
{
        const char *key;
        json_t *item;

        json_object_foreach((json_t *)params, key, item) {
                ph_jw_key(w, key);
                jw_walk(w, item);
        }
}

START_TEST(test_messages_as_jansson)
{
        for (unsigned i = 0; i < 500; i++) {
                json_t *params = json_object(), *item;
                char *want, *got;
                size_t want_len, got_len;
                bool continues = i % 2;
                ph_jw w;

                for (unsigned k = rnd() % 4; k > 0; k--) {
                        char key[16];

                        snprintf(key, sizeof(key), "k%u", k);
                        json_object_set_new(params, key, random_value(1));
                }
                /* A reply. */
                json_incref(params);
                ck_assert_int_eq(ph_varlink_reply(params, continues, &want, &want_len), 0);
                ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
                ph_jw_reply_begin(&w);
                write_params(&w, params);
                ck_assert_int_eq(ph_jw_message_end(&w, continues, &got, &got_len), 0);
                ck_assert_uint_eq(got_len, want_len);
                ck_assert_str_eq(got, want);
                free(got);
                free(want);
                /* An error with the same parameters. */
                item = json_deep_copy(params);
                ck_assert_int_eq(ph_varlink_error(PH_VERR_CALL_FAILED, item, &want, &want_len), 0);
                ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
                ph_jw_error_begin(&w, ph_varlink_error_name(PH_VERR_CALL_FAILED));
                write_params(&w, params);
                ck_assert_int_eq(ph_jw_message_end(&w, false, &got, &got_len), 0);
                ck_assert_str_eq(got, want);
                free(got);
                free(want);
                json_decref(params);
        }
}
END_TEST

/* ---- the cap and misuse -------------------------------------------------- */

START_TEST(test_cap_edge)
{
        /* "xxxx..." of n bytes is n + 2 characters and the NUL. */
        for (size_t max = 3; max < 1200; max += 7) {
                for (size_t n = max > 8 ? max - 8 : 0; n < max; n++) {
                        char *s = malloc(n + 1), *out;
                        size_t len;
                        ph_jw w;
                        int r;

                        memset(s, 'x', n);
                        s[n] = '\0';
                        ph_jw_init(&w, max);
                        ph_jw_stringn(&w, s, n);
                        r = ph_jw_finish(&w, &out, &len);
                        if (n + 3 <= max) {
                                ck_assert_int_eq(r, 0);
                                ck_assert_uint_eq(len, n + 3);
                                ck_assert_uint_le(len, max);
                                free(out);
                        } else {
                                ck_assert_int_eq(r, -EMSGSIZE);
                                ck_assert_ptr_null(w.buf);
                        }
                        free(s);
                }
        }
}
END_TEST

START_TEST(test_error_is_sticky)
{
        ph_jw w;
        char *out;
        size_t len;

        ph_jw_init(&w, 16);
        ph_jw_array_open(&w);
        ph_jw_string(&w, "this will not fit in sixteen");
        ck_assert_int_eq(w.err, -EMSGSIZE);
        /* Later writes that would fit do nothing. */
        ph_jw_int(&w, 1);
        ph_jw_array_close(&w);
        ck_assert_int_eq(ph_jw_finish(&w, &out, &len), -EMSGSIZE);
        /* The default cap takes a long reply. */
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        for (int i = 0; i < 10000; i++) {
                ph_jw_key(&w, "k");
                ph_jw_int(&w, i);
        }
        ck_assert_int_eq(ph_jw_message_end(&w, false, &out, &len), 0);
        ck_assert_uint_eq(len, strlen(out) + 1);
        free(out);
}
END_TEST

START_TEST(test_misuse)
{
        ph_jw w;
        char *out;
        size_t len;

        ph_jw_init(&w, 64);
        ph_jw_object_close(&w);
        ck_assert_int_eq(ph_jw_finish(&w, &out, &len), -EINVAL);

        ph_jw_init(&w, 64);
        ph_jw_key(&w, "outside");
        ck_assert_int_eq(ph_jw_finish(&w, &out, &len), -EINVAL);

        ph_jw_init(&w, 64);
        ph_jw_object_open(&w);
        ck_assert_int_eq(ph_jw_finish(&w, &out, &len), -EINVAL);

        ph_jw_init(&w, 64);
        ph_jw_object_open(&w);
        ph_jw_key(&w, "a");
        ph_jw_object_close(&w);          /* a key without its value */
        ck_assert_int_eq(ph_jw_finish(&w, &out, &len), -EINVAL);

        ph_jw_init(&w, 4096);
        for (unsigned i = 0; i <= PH_JW_DEPTH_MAX; i++)
                ph_jw_array_open(&w);
        ck_assert_int_eq(w.err, -EINVAL);
        ph_jw_release(&w);

        /* Nothing written: an empty text, still NUL-terminated. */
        ph_jw_init(&w, 64);
        ck_assert_int_eq(ph_jw_finish(&w, &out, &len), 0);
        ck_assert_uint_eq(len, 1);
        ck_assert_str_eq(out, "");
        free(out);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("jw");
        TCase *strings = tcase_create("strings");
        TCase *values = tcase_create("values");
        TCase *messages = tcase_create("messages");
        TCase *limits = tcase_create("limits");

        tcase_add_test(strings, test_string_every_byte);
        tcase_add_test(strings, test_string_utf8_edges);
        tcase_add_test(strings, test_string_embedded_nul);
        tcase_add_test(strings, test_text_null_and_string_null);
        suite_add_tcase(s, strings);
        tcase_add_test(values, test_scalars);
        tcase_add_test(values, test_random_trees);
        tcase_add_test(values, test_json_and_raw);
        suite_add_tcase(s, values);
        tcase_set_timeout(messages, 30);
        tcase_add_test(messages, test_messages_as_jansson);
        suite_add_tcase(s, messages);
        tcase_add_test(limits, test_cap_edge);
        tcase_add_test(limits, test_error_is_sticky);
        tcase_add_test(limits, test_misuse);
        suite_add_tcase(s, limits);

        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
