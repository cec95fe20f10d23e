/* Time spans in systemd's syntax (systemd.time(7)): numbers, each with an
 * optional fraction and unit, added up. libsystemd does not export its
 * parse_sec(), so this is ours. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "timespan.h"

#define SEC PH_USEC_PER_SEC

/* systemd's names; its month and year are 30.44 and 365.25 days. */
static const struct {
        const char *name;
        uint64_t usec;
} units[] = {
        { "seconds", SEC },          { "second", SEC },          { "sec", SEC },
        { "s", SEC },                { "minutes", 60 * SEC },    { "minute", 60 * SEC },
        { "min", 60 * SEC },         { "m", 60 * SEC },          { "hours", 3600 * SEC },
        { "hour", 3600 * SEC },      { "hr", 3600 * SEC },       { "h", 3600 * SEC },
        { "days", 86400 * SEC },     { "day", 86400 * SEC },     { "d", 86400 * SEC },
        { "weeks", 604800 * SEC },   { "week", 604800 * SEC },   { "w", 604800 * SEC },
        { "months", 2629800 * SEC }, { "month", 2629800 * SEC }, { "M", 2629800 * SEC },
        { "years", 31557600 * SEC }, { "year", 31557600 * SEC }, { "y", 31557600 * SEC },
        { "msec", 1000 },            { "ms", 1000 },             { "usec", 1 },
        { "us", 1 },                 { "\xce\xbcs", 1 },         { "\xc2\xb5s", 1 },
};

#define EXAMPLES "e.g. 5s, 500ms or 1min 30s; a number alone is seconds"
#define NOT_A_SPAN "not a time span: write numbers with units (" PH_TIMESPAN_UNITS "), " EXAMPLES
#define TOO_LARGE "time span too large"

static bool is_space(char c)
{
        return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static int fail(char *why, size_t why_size, int r, const char *what)
{
        snprintf(why, why_size, "%s", what);
        return r;
}

/* The unit at *p (a run of anything but digits, '.', '-' and blanks),
 * seconds if there is none. -EINVAL for an unknown one. */
static int unit_parse(const char **p, uint64_t *ret)
{
        const char *s = *p;
        size_t n = 0;

        while (s[n] && !is_digit(s[n]) && !is_space(s[n]) && s[n] != '.' && s[n] != '-')
                n++;
        if (n == 0) {
                *ret = SEC;
                return 0;
        }
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (strlen(units[i].name) == n && memcmp(units[i].name, s, n) == 0) {
                        *ret = units[i].usec;
                        *p = s + n;
                        return 0;
                }
        return -EINVAL;
}

int ph_timespan_parse(const char *s, uint64_t *ret_usec, char *why, size_t why_size)
{
        uint64_t total = 0;
        bool any = false;

        for (;;) {
                uint64_t whole = 0, unit, add, part, frac = 0, scale = 1;
                bool digits = false;

                while (is_space(*s))
                        s++;
                if (!*s)
                        break;
                if (*s == '-')
                        return fail(why, why_size, -EINVAL, "a time span cannot be negative");
                for (; is_digit(*s); s++, digits = true) {
                        uint64_t digit = (uint64_t)(*s - '0');

                        if (whole > UINT64_MAX / 10 || whole * 10 > UINT64_MAX - digit)
                                return fail(why, why_size, -ERANGE, TOO_LARGE);
                        whole = whole * 10 + digit;
                }
                if (*s == '.') {
                        /* Past 15 digits nothing reaches a microsecond of
                         * the largest unit (2^45 us). */
                        for (s++; is_digit(*s); s++, digits = true)
                                if (scale < UINT64_C(1000000000000000)) {
                                        frac = frac * 10 + (uint64_t)(*s - '0');
                                        scale *= 10;
                                }
                }
                if (!digits)
                        return fail(why, why_size, -EINVAL, NOT_A_SPAN);
                while (is_space(*s))
                        s++;
                if (*s == '.')
                        return fail(why, why_size, -EINVAL, NOT_A_SPAN);
                if (unit_parse(&s, &unit) < 0)
                        return fail(why, why_size, -EINVAL,
                                    "unknown time unit: use " PH_TIMESPAN_UNITS ", " EXAMPLES);
                /* frac < scale <= 10^15, unit < 2^45: fits 128 bits. */
                part = (uint64_t)((unsigned __int128)frac * unit / scale);
                if (whole > UINT64_MAX / unit || whole * unit > UINT64_MAX - part)
                        return fail(why, why_size, -ERANGE, TOO_LARGE);
                add = whole * unit + part;
                if (total > UINT64_MAX - add)
                        return fail(why, why_size, -ERANGE, TOO_LARGE);
                total += add;
                any = true;
        }
        if (!any)
                return fail(why, why_size, -EINVAL, "empty: " NOT_A_SPAN);
        *ret_usec = total;
        return 0;
}

bool ph_timespan_nonzero(const char *s)
{
        /* No unit has a digit in its name. */
        return strpbrk(s, "123456789") != NULL;
}
