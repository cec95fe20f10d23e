/* Plugin metadata: parsing and validation of the JSON embedded in the note.
 * Every key has one rule; errors name the key and the rule, and never echo
 * more than a short, printable-ASCII rendering of the offending value. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plughost/plughost.h"
#include "scan-internal.h"

#define META_INTERFACES_MAX 64u
#define META_INTERFACE_LEN_MAX 255u
#define META_VERSION_LEN_MAX 64u
#define META_DESCRIPTION_MAX 1024u
#define META_LICENSE_MAX 128u
#define META_URL_MAX 512u
#define META_PRIORITY_MIN (-1000)
#define META_PRIORITY_MAX 1000

typedef struct meta_err {
        char *buf;
        size_t size;
} meta_err;

__attribute__((format(printf, 2, 3)))
static int meta_fail(meta_err *e, const char *fmt, ...)
{
        va_list ap;

        if (e->size > 0) {
                va_start(ap, fmt);
                vsnprintf(e->buf, e->size, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* A printable, bounded rendering of an untrusted value for messages. */
static const char *meta_quote_n(const char *s, char *out, size_t max)
{
        size_t i, n = 0;

        for (i = 0; s[i] && n < max; i++)
                out[n++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'') ? s[i] : '?';
        if (s[i])
                out[n++] = '.', out[n++] = '.', out[n++] = '.';
        out[n] = '\0';
        return out;
}

static const char *meta_quote(const char *s, char out[48])
{
        return meta_quote_n(s, out, 40);
}

static int is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* ^[a-z0-9][a-z0-9._-]{0,63}$ */
bool ph_name_valid(const char *s)
{
        size_t i;

        if (!is_lower_alnum(s[0]))
                return false;
        for (i = 1; s[i]; i++) {
                if (i >= PH_NAME_MAX)
                        return false;
                if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
                        return false;
        }
        return true;
}

/* Reverse-domain interface names, as Varlink spells them:
 * [A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+ */
bool ph_interface_valid(const char *s)
{
        size_t len = strlen(s), i, dots = 0;
        int seg_start = 1;

        if (len == 0 || len > META_INTERFACE_LEN_MAX)
                return 0;
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
                return 0;
        for (i = 0; i < len; i++) {
                char c = s[i];

                if (c == '.') {
                        if (seg_start || s[i - 1] == '-')
                                return 0;
                        dots++;
                        seg_start = 1;
                } else if (c == '-') {
                        if (seg_start)
                                return 0;
                } else if (is_alnum(c)) {
                        seg_start = 0;
                } else {
                        return 0;
                }
        }
        return dots > 0 && !seg_start && s[len - 1] != '-';
}

/* One dot-separated list of [0-9A-Za-z-] identifiers; n is the length.
 * With numeric_canonical, all-digit identifiers have no leading zero (the
 * pre-release rule; build metadata may have them). */
static int ident_list_valid(const char *s, size_t n, int numeric_canonical)
{
        size_t i = 0;

        if (n == 0)
                return 0;
        while (i <= n) {
                size_t start = i, digits = 0;

                for (; i < n && s[i] != '.'; i++) {
                        if (!is_alnum(s[i]) && s[i] != '-')
                                return 0;
                        digits += s[i] >= '0' && s[i] <= '9';
                }
                if (i == start)
                        return 0;
                if (numeric_canonical && digits == i - start && digits > 1 && s[start] == '0')
                        return 0;
                i++;
        }
        return 1;
}

/* MAJOR[.MINOR[.PATCH]][-PRE][+BUILD], numbers without leading zeros, at
 * most 9 digits each. */
static int version_valid(const char *s)
{
        size_t len = strlen(s), i = 0;
        int parts = 0;

        if (len == 0 || len > META_VERSION_LEN_MAX)
                return 0;
        for (;;) {
                size_t start = i;

                while (s[i] >= '0' && s[i] <= '9')
                        i++;
                if (i == start || i - start > 9 || (s[start] == '0' && i - start > 1))
                        return 0;
                parts++;
                if (s[i] != '.' || parts == 3)
                        break;
                i++;
        }
        if (s[i] == '-') {
                size_t end = strcspn(s + i + 1, "+");
                if (!ident_list_valid(s + i + 1, end, 1))
                        return 0;
                i += 1 + end;
        }
        if (s[i] == '+') {
                if (!ident_list_valid(s + i + 1, len - i - 1, 0))
                        return 0;
                i = len;
        }
        return s[i] == '\0';
}

/* Decodes one UTF-8 sequence (jansson already validated the encoding). */
static unsigned utf8_next(const unsigned char **p)
{
        const unsigned char *s = *p;
        unsigned c = s[0];

        if (c < 0x80) {
                *p = s + 1;
                return c;
        }
        if ((c & 0xe0) == 0xc0) {
                *p = s + 2;
                return ((c & 0x1f) << 6) | (s[1] & 0x3f);
        }
        if ((c & 0xf0) == 0xe0) {
                *p = s + 3;
                return ((c & 0x0f) << 12) | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        }
        *p = s + 4;
        return ((c & 0x07) << 18) | ((s[1] & 0x3f) << 12) | ((s[2] & 0x3f) << 6) | (s[3] & 0x3f);
}

/* Free text: no control characters, no bidirectional overrides or
 * invisible characters that make one string display as another. */
static int text_valid(const char *s)
{
        const unsigned char *p = (const unsigned char *)s;

        while (*p) {
                unsigned c = utf8_next(&p);

                if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
                        return 0;
                /* Invisible or direction-changing: soft hyphen, Arabic letter
                 * mark, Mongolian vowel separator, zero-width and bidi
                 * controls, line/paragraph separators, word joiners, BOM,
                 * interlinear annotations. */
                if (c == 0xad || c == 0x61c || c == 0x180e || (c >= 0x200b && c <= 0x200f) ||
                    (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2069) ||
                    c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb))
                        return 0;
        }
        return 1;
}

static int url_valid(const char *s)
{
        if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
                return 0;
        for (; *s; s++)
                if (*s <= 0x20 || *s >= 0x7f)
                        return 0;
        return 1;
}

static int meta_string(json_t *v, const char *key, size_t max, const char **ret, meta_err *e)
{
        const char *s;

        if (!json_is_string(v))
                return meta_fail(e, "key '%s': must be a string", key);
        s = json_string_value(v);
        if (json_string_length(v) > max)
                return meta_fail(e, "key '%s': longer than %zu bytes", key, max);
        if (!text_valid(s))
                return meta_fail(e, "key '%s': contains control, bidirectional or invisible characters", key);
        *ret = s;
        return 0;
}

static int meta_interfaces(json_t *v, ph_meta *m, meta_err *e)
{
        size_t i, j, n;
        char q[48];

        if (!json_is_array(v))
                return meta_fail(e, "key 'interfaces': must be an array of strings");
        n = json_array_size(v);
        if (n > META_INTERFACES_MAX)
                return meta_fail(e, "key 'interfaces': more than %u entries", META_INTERFACES_MAX);
        m->interfaces = calloc(n + 1, sizeof(*m->interfaces));
        if (!m->interfaces)
                return -ENOMEM;
        for (i = 0; i < n; i++) {
                json_t *it = json_array_get(v, i);
                const char *s;

                if (!json_is_string(it))
                        return meta_fail(e, "key 'interfaces': entry %zu is not a string", i);
                s = json_string_value(it);
                if (!ph_interface_valid(s))
                        return meta_fail(e, "key 'interfaces': entry %zu '%s' is not a reverse-domain "
                                         "interface name like org.example.Greeter", i, meta_quote(s, q));
                for (j = 0; j < i; j++)
                        if (strcmp(m->interfaces[j], s) == 0)
                                return meta_fail(e, "key 'interfaces': '%s' is listed twice",
                                                 meta_quote(s, q));
                m->interfaces[i] = s;
                m->n_interfaces = i + 1;
        }
        return 0;
}

static int meta_key(const char *key, json_t *v, ph_meta *m, meta_err *e)
{
        char q[48];
        int r;

        if (strcmp(key, "name") == 0) {
                if (!json_is_string(v))
                        return meta_fail(e, "key 'name': must be a string");
                if (!ph_name_valid(json_string_value(v)))
                        return meta_fail(e, "key 'name': '%s' must match ^[a-z0-9][a-z0-9._-]{0,63}$",
                                         meta_quote(json_string_value(v), q));
                m->name = json_string_value(v);
                return 0;
        }
        if (strcmp(key, "version") == 0) {
                if (!json_is_string(v))
                        return meta_fail(e, "key 'version': must be a string");
                if (!version_valid(json_string_value(v)))
                        return meta_fail(e, "key 'version': '%s' must be MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]",
                                         meta_quote(json_string_value(v), q));
                m->version = json_string_value(v);
                return 0;
        }
        if (strcmp(key, "interfaces") == 0)
                return meta_interfaces(v, m, e);
        if (strcmp(key, "description") == 0)
                return meta_string(v, key, META_DESCRIPTION_MAX, &m->description, e);
        if (strcmp(key, "license") == 0)
                return meta_string(v, key, META_LICENSE_MAX, &m->license, e);
        if (strcmp(key, "url") == 0) {
                r = meta_string(v, key, META_URL_MAX, &m->url, e);
                if (r == 0 && !url_valid(m->url))
                        return meta_fail(e, "key 'url': must be an http:// or https:// URL without spaces");
                return r;
        }
        if (strcmp(key, "concurrency") == 0) {
                const char *s = json_string_value(v);

                if (s && strcmp(s, "serial") == 0)
                        m->serial = true;
                else if (!s || strcmp(s, "parallel") != 0)
                        return meta_fail(e, "key 'concurrency': must be \"parallel\" or \"serial\"");
                return 0;
        }
        if (strcmp(key, "resident") == 0) {
                if (!json_is_boolean(v))
                        return meta_fail(e, "key 'resident': must be true or false");
                m->resident = json_is_true(v);
                return 0;
        }
        if (strcmp(key, "priority") == 0) {
                json_int_t p;

                if (!json_is_integer(v))
                        return meta_fail(e, "key 'priority': must be an integer");
                p = json_integer_value(v);
                if (p < META_PRIORITY_MIN || p > META_PRIORITY_MAX)
                        return meta_fail(e, "key 'priority': must be between %d and %d",
                                         META_PRIORITY_MIN, META_PRIORITY_MAX);
                m->priority = (int)p;
                return 0;
        }
        if (strncmp(key, "x-", 2) == 0)
                return 0;       /* vendor keys: kept in json, not interpreted */
        return meta_fail(e, "unknown key '%s' (vendor keys start with \"x-\")", meta_quote(key, q));
}

/* The strings move out of the tree into one block with the interfaces
 * vector (m->interfaces is that block): a meta then needs its tree for
 * nothing, and ph_meta_drop_tree can free it. */
static int meta_own_strings(ph_meta *m)
{
        const char **fields[] = { &m->name, &m->version, &m->description, &m->license, &m->url };
        size_t vec = (m->n_interfaces + 1) * sizeof(char *), size = vec;
        const char **ifaces;
        char *at;

        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
                size += *fields[i] ? strlen(*fields[i]) + 1 : 0;
        for (size_t i = 0; i < m->n_interfaces; i++)
                size += strlen(m->interfaces[i]) + 1;
        ifaces = malloc(size);
        if (!ifaces)
                return -ENOMEM;
        at = (char *)ifaces + vec;
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
                if (*fields[i]) {
                        size_t n = strlen(*fields[i]) + 1;

                        *fields[i] = memcpy(at, *fields[i], n);
                        at += n;
                }
        for (size_t i = 0; i < m->n_interfaces; i++) {
                size_t n = strlen(m->interfaces[i]) + 1;

                ifaces[i] = memcpy(at, m->interfaces[i], n);
                at += n;
        }
        ifaces[m->n_interfaces] = NULL;
        free(m->interfaces);
        m->interfaces = ifaces;
        return 0;
}

/* Validates on the jansson tree, then copies the strings out of it
 * (meta_own_strings); the tree stays in priv until ph_meta_drop_tree.
 * Takes ownership of json (size bytes of text followed by a NUL) on
 * success and on failure. */
int ph__meta_parse_owned(char *json, size_t size, ph_meta **ret_meta,
                         char *errbuf, size_t errbuf_size)
{
        meta_err e = { errbuf, errbuf_size };
        json_error_t jerr;
        const char *key;
        json_t *root, *v;
        ph_meta *m;
        int r = 0;

        if (size > PH_META_MAX) {
                free(json);
                return meta_fail(&e, "metadata is %zu bytes, more than %u", size, PH_META_MAX);
        }
        /* Without JSON_ALLOW_NUL, no string we get back holds a NUL. */
        root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char q[JSON_ERROR_TEXT_LENGTH + 4];

                free(json);
                /* jansson quotes the input near the error: keep it printable. */
                return meta_fail(&e, "invalid JSON at line %d column %d: %s",
                                 jerr.line, jerr.column,
                                 meta_quote_n(jerr.text, q, JSON_ERROR_TEXT_LENGTH - 1));
        }
        m = calloc(1, sizeof(*m));
        if (!m) {
                free(json);
                json_decref(root);
                return -ENOMEM;
        }
        m->json = json;
        m->priv = root;
        if (!json_is_object(root))
                r = meta_fail(&e, "metadata must be a JSON object");
        else
                json_object_foreach(root, key, v) {
                        r = meta_key(key, v, m, &e);
                        if (r < 0)
                                break;
                }
        if (r == 0 && !m->name)
                r = meta_fail(&e, "key 'name': required");
        if (r == 0 && !m->version)
                r = meta_fail(&e, "key 'version': required");
        if (r == 0)
                r = meta_own_strings(m);
        if (r < 0) {
                ph_meta_free(m);
                return r;
        }
        *ret_meta = m;
        return 0;
}

int ph_meta_parse(const char *json, size_t size, ph_meta **ret_meta,
                  char *errbuf, size_t errbuf_size)
{
        char *copy = malloc(size + 1);

        if (!copy)
                return -ENOMEM;
        memcpy(copy, json, size);
        copy[size] = '\0';
        return ph__meta_parse_owned(copy, size, ret_meta, errbuf, errbuf_size);
}

void ph_meta_drop_tree(ph_meta *m)
{
        if (!m)
                return;
        json_decref(m->priv);
        m->priv = NULL;
}

void *ph_meta_tree(ph_meta *m)
{
        if (m && !m->priv)
                m->priv = json_loads(m->json, JSON_REJECT_DUPLICATES, NULL);
        return m ? m->priv : NULL;
}

void ph_meta_free(ph_meta *m)
{
        if (!m)
                return;
        free(m->interfaces);
        json_decref(m->priv);
        free(m->json);
        free(m);
}
