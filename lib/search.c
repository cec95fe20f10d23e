/* Streaming substring search, linear in the input whatever the needle.
 *
 * Knuth-Morris-Pratt: each input byte moves the match state forward once,
 * and the failure links only give back what was gained, so the work is at
 * most 2n steps. While no prefix is matched, memchr skips to the next
 * occurrence of the needle's first byte, which makes random data run at
 * memchr speed. The state lives in the object, so a match split across two
 * chunks is found without re-reading any byte. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plughost/plughost.h"

#define SEARCH_NEEDLE_MAX 256

struct ph_search {
        size_t size;
        size_t matched;                     /* bytes of needle matched so far */
        unsigned char needle[SEARCH_NEEDLE_MAX];
        unsigned short fail[SEARCH_NEEDLE_MAX]; /* KMP failure function */
};

int ph_search_new(const void *needle, size_t needle_size, ph_search **ret)
{
        ph_search *s;
        size_t i, k;

        if (!needle || needle_size == 0 || needle_size > SEARCH_NEEDLE_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->size = needle_size;
        memcpy(s->needle, needle, needle_size);

        /* fail[i]: length of the longest proper border of needle[0..i]. */
        k = 0;
        for (i = 1; i < needle_size; i++) {
                while (k > 0 && s->needle[i] != s->needle[k])
                        k = s->fail[k - 1];
                if (s->needle[i] == s->needle[k])
                        k++;
                s->fail[i] = (unsigned short)k;
        }
        *ret = s;
        return 0;
}

void ph_search_free(ph_search *s)
{
        free(s);
}

void ph_search_reset(ph_search *s)
{
        s->matched = 0;
}

long ph_search_feed(ph_search *s, const void *buf, size_t size)
{
        const unsigned char *p = buf, *end = p + size;
        const unsigned char *n = s->needle;
        size_t k = s->matched;

        while (p < end) {
                if (k == 0) {
                        p = memchr(p, n[0], (size_t)(end - p));
                        if (!p)
                                break;
                        p++;
                        k = 1;
                } else if (*p == n[k]) {
                        p++;
                        k++;
                } else {
                        k = s->fail[k - 1];
                        continue;
                }
                if (k == s->size) {
                        s->matched = s->fail[k - 1];
                        return (long)(p - (const unsigned char *)buf);
                }
        }
        s->matched = p ? k : 0;
        return -1;
}
