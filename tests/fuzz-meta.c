/* libFuzzer target for the metadata validator: each input is the metadata
 * JSON handed to ph_meta_parse. Validated metadata is checked against the
 * rules of lib/plughost/plughost.h, written again here independently of
 * lib/meta.c; a refusal must be -EINVAL with a message, or -ENOMEM. A
 * violation aborts. Seeds, and how they were made: tests/fuzz-seeds-meta/README. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plughost/plughost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "fuzz-meta: invariant violated: %s (%s:%d)\n", \
                                #cond, __FILE__, __LINE__);                    \
                        abort();                                               \
                }                                                              \
        } while (0)

#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* ^[a-z0-9][a-z0-9._-]{0,63}$ */
static int name_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > PH_NAME_MAX || !strchr(LOWER_DIGITS, s[0]))
                return 0;
        return strspn(s, LOWER_DIGITS "._-") == n;
}

/* Decodes the UTF-8 character at *p, or returns -1 for an invalid one. */
static long utf8_decode(const unsigned char **p)
{
        const unsigned char *s = *p;
        long c;
        int n;

        if (s[0] < 0x80) {
                *p = s + 1;
                return s[0];
        }
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 1, c = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 2, c = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 3, c = s[0] & 0x07;
        else
                return -1;
        for (int i = 1; i <= n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return -1;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000) || c > 0x10ffff ||
            (c >= 0xd800 && c <= 0xdfff))
                return -1;
        *p = s + n + 1;
        return c;
}

/* Valid UTF-8 without C0 or C1 controls, DEL, or the bidirectional
 * overrides and isolates (the characters that make text lie about its
 * order). NULL passes when optional. */
static int text_ok(const char *s, int optional)
{
        const unsigned char *p = (const unsigned char *)s;

        if (!s)
                return optional;
        while (*p) {
                long c = utf8_decode(&p);

                if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
                        return 0;
                if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0xfeff)
                        return 0;
        }
        return 1;
}

/* Letters, digits, dots and dashes, a letter first, at most 255 bytes; a
 * dot-separated list whose parts neither are empty nor begin or end with a dash. */
static int interface_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 255 || !strchr(LOWER_DIGITS UPPER, s[0]) ||
            (s[0] >= '0' && s[0] <= '9'))
                return 0;
        if (strspn(s, LOWER_DIGITS UPPER ".-") != n)
                return 0;
        return strchr(s, '.') && s[n - 1] != '.' && s[n - 1] != '-' && !strstr(s, "..") &&
               !strstr(s, ".-") && !strstr(s, "-.");
}

static int sign(int v)
{
        return (v > 0) - (v < 0);
}

/* Versions in ascending precedence (the examples of semver.org, and more). */
static const char *const ladder[] = {
        "0", "0.0.1-a", "1.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
        "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1",
        "1.2", "2.1", "10.0.0", "999999999.0.0-a", "999999999.999999999.999999999",
};
#define LADDER_SIZE (sizeof(ladder) / sizeof(ladder[0]))

/* Precedence is a total order that ignores build metadata and puts a
 * pre-release before its release: v is checked against the ladder (its
 * place in it is one place), against itself without "+..." and without
 * "-...", and against the next major version. */
static void check_version(const char *v)
{
        static bool ladder_checked;
        char core[128], next[16];
        size_t n_bare = strcspn(v, "+"), n_core = strcspn(v, "-+");
        int prev = 1;

        if (!ladder_checked) {
                for (size_t i = 0; i < LADDER_SIZE; i++)
                        for (size_t j = 0; j < LADDER_SIZE; j++)
                                CHECK(sign(ph_version_compare(ladder[i], ladder[j])) ==
                                      (i > j) - (i < j));
                ladder_checked = true;
        }
        CHECK(text_ok(v, 0) && strlen(v) <= 64 && strspn(v, "0123456789") > 0);
        CHECK(ph_version_compare(v, v) == 0);
        for (size_t i = 0; i < LADDER_SIZE; i++) {
                int c = sign(ph_version_compare(v, ladder[i]));

                CHECK(c == -sign(ph_version_compare(ladder[i], v)));
                CHECK(c <= prev);
                prev = c;
        }
        CHECK(n_bare < sizeof(core));
        memcpy(core, v, n_bare);
        core[n_bare] = '\0';
        CHECK(ph_version_compare(v, core) == 0 && ph_version_compare(core, v) == 0);
        core[n_core] = '\0';
        if (n_core < n_bare)
                CHECK(ph_version_compare(v, core) < 0 && ph_version_compare(core, v) > 0);
        snprintf(next, sizeof(next), "%lu", strtoul(v, NULL, 10) + 1);
        CHECK(ph_version_compare(v, next) < 0 && ph_version_compare(next, v) > 0);
}

static void check_meta(const ph_meta *m, const uint8_t *data, size_t size)
{
        CHECK(m != NULL);
        CHECK(m->name && name_ok(m->name));
        CHECK(m->version);
        check_version(m->version);
        CHECK(m->interfaces != NULL && m->n_interfaces <= 64);
        for (size_t i = 0; i < m->n_interfaces; i++) {
                CHECK(m->interfaces[i] && interface_ok(m->interfaces[i]));
                for (size_t j = 0; j < i; j++)
                        CHECK(strcmp(m->interfaces[i], m->interfaces[j]) != 0);
        }
        CHECK(m->interfaces[m->n_interfaces] == NULL);
        CHECK(text_ok(m->description, 1) && text_ok(m->license, 1) && text_ok(m->url, 1));
        CHECK(!m->description || strlen(m->description) <= 1024);
        CHECK(!m->license || strlen(m->license) <= 128);
        if (m->url) {
                CHECK(strlen(m->url) <= 512);
                CHECK(strncmp(m->url, "https://", 8) == 0 || strncmp(m->url, "http://", 7) == 0);
                CHECK(!strpbrk(m->url, " \x7f"));
        }
        CHECK(m->priority >= -1000 && m->priority <= 1000);
        CHECK(m->abi == 0 && m->format == 0);
        CHECK(m->json != NULL && m->priv != NULL);
        CHECK(memcmp(m->json, data, size) == 0 && m->json[size] == '\0');
}

/* The same input parsed again, without an error buffer, gives the same
 * verdict and the same metadata. */
static void check_again(const uint8_t *data, size_t size, int r, const ph_meta *first)
{
        ph_meta *meta = NULL;
        int q = ph_meta_parse((const char *)data, size, &meta, NULL, 0);

        if (q == -ENOMEM || r == -ENOMEM)
                return;
        CHECK(q == r);
        if (q < 0) {
                CHECK(meta == NULL);
                return;
        }
        CHECK(strcmp(meta->name, first->name) == 0 && strcmp(meta->version, first->version) == 0);
        CHECK(meta->n_interfaces == first->n_interfaces && meta->priority == first->priority);
        CHECK(meta->serial == first->serial && meta->resident == first->resident);
        ph_meta_free(meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[256];
        ph_meta *meta = NULL;
        int r;

        memset(err, 0xaa, sizeof(err));
        r = ph_meta_parse((const char *)data, size, &meta, err, sizeof(err));
        if (r == 0) {
                check_meta(meta, data, size);
                check_again(data, size, r, meta);
                ph_meta_free(meta);
                return 0;
        }
        CHECK(r == -EINVAL || r == -ENOMEM);
        CHECK(meta == NULL);
        if (r == -EINVAL) {
                /* A message, NUL-terminated, printable: it names the key and
                 * quotes at most a sanitised rendering of the value. */
                CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
                for (const char *p = err; *p; p++)
                        CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
        }
        check_again(data, size, r, NULL);
        return 0;
}
