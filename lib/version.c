/* Version precedence, semantic-versioning style, for choosing between two
 * files that claim the same plugin name. */
#include <string.h>

#include "plughost/plughost.h"

static int is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* Reads a run of digits (at most 9, as validated) and advances *s. */
static unsigned long take_number(const char **s)
{
        unsigned long v = 0;

        while (is_digit(**s))
                v = v * 10 + (unsigned long)(*(*s)++ - '0');
        return v;
}

static int cmp_ulong(unsigned long a, unsigned long b)
{
        return (a > b) - (a < b);
}

/* Compares dot-separated pre-release identifiers: numeric ones numerically
 * and below alphanumeric ones; a shorter list that is a prefix sorts first. */
static int compare_pre(const char *a, const char *b)
{
        for (;;) {
                size_t la = strcspn(a, ".+"), lb = strcspn(b, ".+");
                int na = la > 0 && strspn(a, "0123456789") >= la;
                int nb = lb > 0 && strspn(b, "0123456789") >= lb;
                int c;

                if (na && nb)
                        /* No leading zeros (validated): longer is larger. */
                        c = la != lb ? (la > lb) - (la < lb) : memcmp(a, b, la);
                else if (na != nb)
                        c = na ? -1 : 1;
                else {
                        c = memcmp(a, b, la < lb ? la : lb);
                        if (c == 0)
                                c = (la > lb) - (la < lb);
                }
                if (c != 0)
                        return c;
                a += la;
                b += lb;
                if (*a != '.' || *b != '.')
                        return (*a == '.') - (*b == '.');
                a++;
                b++;
        }
}

int ph_version_compare(const char *a, const char *b)
{
        for (int i = 0; i < 3; i++) {
                int c = cmp_ulong(take_number(&a), take_number(&b));

                if (c != 0)
                        return c;
                if (*a == '.')
                        a++;
                if (*b == '.')
                        b++;
        }
        /* A pre-release sorts before the release; build metadata is ignored. */
        if (*a == '-' && *b == '-')
                return compare_pre(a + 1, b + 1);
        return (*b == '-') - (*a == '-');
}
