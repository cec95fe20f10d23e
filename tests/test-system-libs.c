/* The reader against the machine's own shared objects: every ELF file under
 * the system library directory is scanned, none is a plugin, none crashes it. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plughost/plughost.h"
#include "testutil.h"

#ifndef SYSTEM_LIBDIR
#define SYSTEM_LIBDIR "/usr/lib/x86_64-linux-gnu"
#endif

static unsigned n_files, n_elf, n_plugins, n_io;
static unsigned by_reason[_PH_REASON_MAX];

static int scan_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        ph_scan s;

        (void)st;
        (void)ftw;
        if (flag != FTW_F)
                return 0;
        ck_assert_int_eq(ph_scan_path(AT_FDCWD, path, &s), 0);
        n_files++;
        ck_assert_int_lt(s.reason, _PH_REASON_MAX);
        by_reason[s.reason]++;
        if (s.reason == PH_REASON_IO)
                n_io++;
        else if (s.reason != PH_REASON_NOT_ELF && s.reason != PH_REASON_NOT_REGULAR)
                n_elf++;
        if (s.reason == PH_REASON_OK) {
                n_plugins++;
                fprintf(stderr, "reported as a plugin: %s (%s)\n", path, s.meta->name);
        }
        ph_scan_clear(&s);
        return 0;
}

START_TEST(test_no_system_library_is_a_plugin)
{
        ck_assert_int_eq(nftw(SYSTEM_LIBDIR, scan_cb, 32, FTW_PHYS), 0);
        printf("%s: %u files, %u ELF, %u unreadable\n", SYSTEM_LIBDIR, n_files, n_elf, n_io);
        for (int r = 0; r < _PH_REASON_MAX; r++)
                if (by_reason[r])
                        printf("  %-18s %u\n", ph_reason_name((ph_reason)r), by_reason[r]);
        ck_assert_uint_gt(n_elf, 100);
        ck_assert_uint_eq(n_plugins, 0);
        /* Real shared objects without a note must be told apart from junk. */
        ck_assert_uint_gt(by_reason[PH_REASON_NO_METADATA], 100);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("system-libs");
        TCase *tc = tcase_create("system-libs");

        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_no_system_library_is_a_plugin);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
