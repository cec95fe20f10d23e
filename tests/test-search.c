/* Tests for lib/search.c: the streaming search agrees with a naive search
 * on random and adversarial inputs, whatever the chunking. Also for the
 * other small generic helper of lib/, the growable array of lib/vec.h. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plughost/plughost.h"
#include "testutil.h"
#include "vec.h"

/* Offset just past the first match at or after from, or -1. */
static long naive_find(const unsigned char *h, size_t hn, const unsigned char *n, size_t nn,
                       size_t from)
{
        for (size_t i = from; i + nn <= hn; i++)
                if (memcmp(h + i, n, nn) == 0)
                        return (long)(i + nn);
        return -1;
}

/* All match ends found by feeding h in chunks of the given size. */
static size_t stream_all(ph_search *s, const unsigned char *h, size_t hn, size_t chunk,
                         long *ends, size_t max)
{
        size_t found = 0;

        ph_search_reset(s);
        for (size_t off = 0; off < hn; off += chunk) {
                size_t len = hn - off < chunk ? hn - off : chunk, pos = 0;

                while (pos < len) {
                        long e = ph_search_feed(s, h + off + pos, len - pos);
                        if (e < 0)
                                break;
                        pos += (size_t)e;
                        if (found < max)
                                ends[found] = (long)(off + pos);
                        found++;
                }
        }
        return found;
}

static size_t naive_all(const unsigned char *h, size_t hn, const unsigned char *n, size_t nn,
                        long *ends, size_t max)
{
        size_t found = 0;
        long e;

        for (size_t from = 0; (e = naive_find(h, hn, n, nn, from)) >= 0; from = (size_t)e - nn + 1) {
                if (found < max)
                        ends[found] = e;
                found++;
        }
        return found;
}

START_TEST(test_rejects_bad_needles)
{
        ph_search *s = NULL;

        ck_assert_int_lt(ph_search_new("", 0, &s), 0);
        ck_assert_int_lt(ph_search_new(NULL, 3, &s), 0);
        char big[257] = { 0 };
        ck_assert_int_lt(ph_search_new(big, sizeof(big), &s), 0);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(ph_search_new(big, 256, &s), 0);
        ph_search_free(s);
}
END_TEST

START_TEST(test_match_across_chunks)
{
        static const char needle[] = "\177PLUGHOST-META\001";
        unsigned char hay[100];
        ph_search *s;
        long ends[4];

        memset(hay, 'x', sizeof(hay));
        memcpy(hay + 40, needle, 16);
        ck_assert_int_eq(ph_search_new(needle, 16, &s), 0);
        for (size_t chunk = 1; chunk <= sizeof(hay); chunk++) {
                ck_assert_uint_eq(stream_all(s, hay, sizeof(hay), chunk, ends, 4), 1);
                ck_assert_int_eq(ends[0], 56);
        }
        ph_search_free(s);
}
END_TEST

/* Overlapping matches (aa in aaaa) and self-similar needles, against naive. */
START_TEST(test_agrees_with_naive)
{
        static const char *const needles[] = { "a", "aa", "ab", "aab", "abab", "abaabab",
                                               "aaaaaaab", "abcabcabd", "bbbbb" };
        unsigned char hay[600];
        long got[700], want[700];
        unsigned seed = 12345;

        for (int round = 0; round < 200; round++) {
                for (size_t i = 0; i < sizeof(hay); i++)
                        hay[i] = "ab"[(seed = seed * 1103515245u + 12345u) >> 30 & 1];
                if (round % 3 == 0)
                        memset(hay, 'a', sizeof(hay) / 2);
                for (size_t k = 0; k < sizeof(needles) / sizeof(needles[0]); k++) {
                        const char *n = needles[k];
                        size_t nn = strlen(n), chunk = 1 + (size_t)(round * 7 + k) % 97;
                        ph_search *s;

                        ck_assert_int_eq(ph_search_new(n, nn, &s), 0);
                        size_t a = stream_all(s, hay, sizeof(hay), chunk, got, 700);
                        size_t b = naive_all(hay, sizeof(hay), (const unsigned char *)n, nn, want, 700);
                        ck_assert_uint_eq(a, b);
                        for (size_t i = 0; i < a && i < 700; i++)
                                ck_assert_int_eq(got[i], want[i]);
                        ph_search_free(s);
                }
        }
}
END_TEST

START_TEST(test_no_false_match_on_prefix_at_end)
{
        ph_search *s;

        ck_assert_int_eq(ph_search_new("abc", 3, &s), 0);
        ck_assert_int_eq(ph_search_feed(s, "xxab", 4), -1);
        ph_search_reset(s);
        /* After a reset, the "ab" tail of the last chunk is forgotten. */
        ck_assert_int_eq(ph_search_feed(s, "cxx", 3), -1);
        ck_assert_int_eq(ph_search_feed(s, "ab", 2), -1);
        ck_assert_int_eq(ph_search_feed(s, "c", 1), 1);
        ph_search_free(s);
}
END_TEST

struct vec_item {
        int a;
        char pad[13];
};

/* Pushes keep every element; capacity doubles from 8, so n pushes cost
 * O(log n) reallocations, not n. */
START_TEST(test_vec_push_doubles)
{
        struct vec_item *v = NULL, one;
        size_t n = 0, cap = 0, last_cap = 0;
        unsigned grows = 0;

        for (int i = 0; i < 10000; i++) {
                memset(&one, 0, sizeof(one));
                one.a = i;
                ck_assert_int_eq(ph__vec_push((void **)&v, &n, &cap, sizeof(*v), &one), 0);
                ck_assert_uint_eq(n, (size_t)i + 1);
                ck_assert_uint_ge(cap, n);
                if (cap != last_cap) {
                        ck_assert(last_cap == 0 ? cap == 8 : cap == 2 * last_cap);
                        last_cap = cap;
                        grows++;
                }
        }
        for (int i = 0; i < 10000; i++)
                ck_assert_int_eq(v[i].a, i);
        ck_assert_uint_eq(grows, 12);           /* 8, 16, ..., 16384 */
        free(v);
}
END_TEST

START_TEST(test_vec_reserve)
{
        int *v = NULL, *before;
        size_t cap = 0;

        /* Nothing needed: nothing allocated. */
        ck_assert_int_eq(ph__vec_reserve((void **)&v, &cap, 0, sizeof(*v)), 0);
        ck_assert_ptr_null(v);
        ck_assert_uint_eq(cap, 0);
        /* More than doubling gives: exactly what was asked. */
        ck_assert_int_eq(ph__vec_reserve((void **)&v, &cap, 100, sizeof(*v)), 0);
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq(cap, 100);
        v[99] = 7;
        ck_assert_int_eq(ph__vec_reserve((void **)&v, &cap, 50, sizeof(*v)), 0);
        ck_assert_uint_eq(cap, 100);
        ck_assert_int_eq(ph__vec_reserve((void **)&v, &cap, 101, sizeof(*v)), 0);
        ck_assert_uint_eq(cap, 200);
        ck_assert_int_eq(v[99], 7);

        /* Overflowing sizes fail without touching the array. */
        before = v;
        ck_assert_int_eq(ph__vec_reserve((void **)&v, &cap, SIZE_MAX / 2, sizeof(*v)), -ENOMEM);
        ck_assert_int_eq(ph__vec_reserve((void **)&v, &cap, SIZE_MAX / 2 + 1, 2), -ENOMEM);
        ck_assert_ptr_eq(v, before);
        ck_assert_uint_eq(cap, 200);
        ck_assert_int_eq(v[99], 7);
        ck_assert_int_eq(ph__vec_reserve((void **)&v, &cap, 300, 0), -EINVAL);
        free(v);
}
END_TEST

/* A push that cannot grow the array changes nothing. */
START_TEST(test_vec_push_overflow)
{
        char *v = NULL, c = 'x';
        size_t n = SIZE_MAX, cap = SIZE_MAX;

        ck_assert_int_eq(ph__vec_push((void **)&v, &n, &cap, 1, &c), -ENOMEM);
        ck_assert_ptr_null(v);
        ck_assert_uint_eq(n, SIZE_MAX);
        n = 3;
        cap = 3;
        ck_assert_int_eq(ph__vec_push((void **)&v, &n, &cap, SIZE_MAX / 2, &c), -ENOMEM);
        ck_assert_uint_eq(n, 3);
        ck_assert_uint_eq(cap, 3);
        ck_assert_ptr_null(v);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("search");
        TCase *tc = tcase_create("search");
        TCase *vec = tcase_create("vec");

        tcase_add_test(tc, test_rejects_bad_needles);
        tcase_add_test(tc, test_match_across_chunks);
        tcase_add_test(tc, test_agrees_with_naive);
        tcase_add_test(tc, test_no_false_match_on_prefix_at_end);
        suite_add_tcase(s, tc);
        tcase_add_test(vec, test_vec_push_doubles);
        tcase_add_test(vec, test_vec_reserve);
        tcase_add_test(vec, test_vec_push_overflow);
        suite_add_tcase(s, vec);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
