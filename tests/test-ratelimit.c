/* daemon/ratelimit.c: log lines per uid and in total per interval, and the
 * summary of what was suppressed. Pure logic with a made-up clock; the
 * summary lines go to stderr (ph_log) and are counted from a pipe. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../daemon/log.h"
#include "../daemon/ratelimit.h"
#include "testutil.h"

/* How many of n lines from uid are let through at time now. */
static unsigned allowed(ph_ratelimit *rl, uid_t uid, unsigned n, uint64_t now)
{
        unsigned ok = 0;

        for (unsigned i = 0; i < n; i++)
                ok += ph_ratelimit_ok(rl, uid, now);
        return ok;
}

START_TEST(test_per_uid_and_total)
{
        ph_ratelimit *rl = ph_ratelimit_new("things", 5, 50, 10000);

        ck_assert_ptr_nonnull(rl);
        ck_assert_uint_eq(allowed(rl, 1000, 20, 1), 5);
        ck_assert(ph_ratelimit_pending(rl));
        /* Other uids have their own 5, until the total of 50. */
        for (uid_t u = 2000; u < 2020; u++)
                allowed(rl, u, 20, 2);
        ck_assert_uint_eq(allowed(rl, 3000, 20, 3), 0);
        /* A new interval: the same again. */
        ck_assert_uint_eq(allowed(rl, 1000, 20, 10001), 5);
        ph_ratelimit_free(rl);
}
END_TEST

/* Found by the black-box attack: with more uids than the table holds, a
 * uid without an entry was capped by the total only (up to 50 lines). */
START_TEST(test_many_uids_each_capped)
{
        ph_ratelimit *rl = ph_ratelimit_new("things", 5, 50, 10000);

        ck_assert_ptr_nonnull(rl);
        /* The uid table fills in the middle of the total's interval... */
        for (uid_t u = 80000; u < 82000; u++)
                allowed(rl, u, 1, 5000);
        /* ... so after the total's rollover it is still full: a new uid
         * has no entry of its own, and still gets no more than 5. */
        ck_assert_uint_le(allowed(rl, 90000, 20, 10001), 5);
        ph_ratelimit_free(rl);
}
END_TEST

/* The summary says how many were suppressed, once the interval ended. */
START_TEST(test_summary)
{
        ph_ratelimit *rl = ph_ratelimit_new("refused things", 5, 50, 10000);
        int p[2], saved = dup(STDERR_FILENO);
        char buf[4096] = "";
        ssize_t n;

        ck_assert_int_eq(pipe(p), 0);
        ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
        dup2(p[1], STDERR_FILENO);
        ph_log_init(PH_LOG_INFO);
        allowed(rl, 1000, 12, 1);
        ph_ratelimit_flush(rl, 9000);           /* not yet */
        ph_ratelimit_flush(rl, 10001);
        dup2(saved, STDERR_FILENO);
        n = read(p[0], buf, sizeof(buf) - 1);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        ck_assert_msg(strstr(buf, "uid 1000: 7 log lines about refused things suppressed") != NULL, "%s", buf);
        ck_assert(!ph_ratelimit_pending(rl));
        ph_ratelimit_free(rl);
        close(p[0]);
        close(p[1]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ratelimit");
        TCase *tc = tcase_create("ratelimit");

        tcase_add_test(tc, test_per_uid_and_total);
        tcase_add_test(tc, test_many_uids_each_capped);
        tcase_add_test(tc, test_summary);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
