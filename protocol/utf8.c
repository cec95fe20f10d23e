/* UTF-8 checks for text that reaches JSON without jansson's decoder having
 * seen it first: formatted error messages, client names echoed back in
 * errors after being shortened, file names and plugins' messages. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "varlink-internal.h"
#include "varlink.h"

static bool is_cont(unsigned char c)
{
        return (c & 0xc0) == 0x80;
}

size_t ph__utf8_seq_len(const unsigned char *s, size_t n)
{
        unsigned char c, lo = 0x80, hi = 0xbf;
        size_t len;

        if (n == 0)
                return 0;
        c = s[0];
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef)
                len = 3;
        else if (c >= 0xf0 && c <= 0xf4)
                len = 4;
        else
                return 0;
        /* The second byte carries the overlong, surrogate and range rules. */
        if (c == 0xe0)
                lo = 0xa0;
        else if (c == 0xed)
                hi = 0x9f;
        else if (c == 0xf0)
                lo = 0x90;
        else if (c == 0xf4)
                hi = 0x8f;
        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (!is_cont(s[i]))
                        return 0;
        return len;
}

size_t ph__utf8_cut(const char *s, size_t len, size_t max)
{
        const unsigned char *u = (const unsigned char *)s;

        if (len <= max)
                return len;
        /* Back off over continuation bytes to the start of the character
         * that straddles max. */
        while (max > 0 && is_cont(u[max]))
                max--;
        return max;
}

void ph__utf8_sanitise(char *s, size_t len)
{
        unsigned char *u = (unsigned char *)s;
        size_t i = 0;

        while (i < len) {
                size_t n = ph__utf8_seq_len(u + i, len - i);

                if (n == 0) {
                        u[i] = '?';
                        n = 1;
                }
                i += n;
        }
}

json_t *ph_varlink_text(const char *s)
{
        json_t *j;
        char *copy;

        if (!s)
                return NULL;
        if ((j = json_string(s)))
                return j;
        if (!(copy = strdup(s)))
                return NULL;
        ph__utf8_sanitise(copy, strlen(copy));
        j = json_string(copy);
        free(copy);
        return j;
}

size_t ph_varlink_utf8_len(const unsigned char *s, size_t n)
{
        return ph__utf8_seq_len(s, n);
}
