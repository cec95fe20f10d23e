/* The JSON writer (see jw.h): commas, escaping and the cap in one place. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "varlink-internal.h"

/* Most replies (an Info is some 600 bytes) fit the first buffer whole. */
#define JW_FIRST_SIZE 1024u

void ph_jw_init(ph_jw *w, size_t max)
{
        memset(w, 0, sizeof(*w));
        w->max = max;
}

void ph_jw_release(ph_jw *w)
{
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
}

static void jw_fail(ph_jw *w, int err)
{
        if (!w->err)
                w->err = err;
}

/* Room for n more bytes and the NUL. */
static bool jw_reserve(ph_jw *w, size_t n)
{
        size_t need, cap;
        char *p;

        if (w->err)
                return false;
        if (n >= w->max || w->len > w->max - 1 - n) {
                jw_fail(w, -EMSGSIZE);
                return false;
        }
        need = w->len + n + 1;
        if (need <= w->cap)
                return true;
        cap = w->cap ? w->cap : JW_FIRST_SIZE;
        while (cap < need)
                cap *= 2;
        if (cap > w->max)
                cap = w->max;
        if (!(p = realloc(w->buf, cap))) {
                jw_fail(w, -ENOMEM);
                return false;
        }
        w->buf = p;
        w->cap = cap;
        return true;
}

static void jw_put(ph_jw *w, const char *s, size_t n)
{
        if (jw_reserve(w, n)) {
                memcpy(w->buf + w->len, s, n);
                w->len += n;
        }
}

static void jw_putc(ph_jw *w, char c)
{
        if (jw_reserve(w, 1))
                w->buf[w->len++] = c;
}

/* Before a value or a key: the comma that separates it from the one
 * before, unless it is the value of the key just written. */
static void jw_sep(ph_jw *w)
{
        if (w->key) {
                w->key = false;
                return;
        }
        if (w->depth > 0 && (w->more & (1u << (w->depth - 1))))
                jw_putc(w, ',');
}

/* After a value: its container has one now. */
static void jw_done(ph_jw *w)
{
        if (w->depth > 0)
                w->more |= 1u << (w->depth - 1);
}

static void jw_open(ph_jw *w, char c)
{
        if (w->err)
                return;
        if (w->depth >= PH_JW_DEPTH_MAX) {
                jw_fail(w, -EINVAL);
                return;
        }
        jw_sep(w);
        jw_putc(w, c);
        w->depth++;
        w->more &= ~(1u << (w->depth - 1));
}

static void jw_close(ph_jw *w, char c)
{
        if (w->err)
                return;
        if (w->depth == 0 || w->key) {
                jw_fail(w, -EINVAL);
                return;
        }
        w->depth--;
        jw_putc(w, c);
        jw_done(w);
}

void ph_jw_object_open(ph_jw *w)
{
        jw_open(w, '{');
}

void ph_jw_object_close(ph_jw *w)
{
        jw_close(w, '}');
}

void ph_jw_array_open(ph_jw *w)
{
        jw_open(w, '[');
}

void ph_jw_array_close(ph_jw *w)
{
        jw_close(w, ']');
}

/* Bytes copied as they are in a JSON string: ASCII from the space up,
 * DEL included, but '"' (0x22) and '\\' (0x5c). */
static const unsigned char jw_plain[256] = {
        [0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7f] = 1,
};

/* The string body, as jansson writes it: '"' and '\\' escaped, the five
 * control characters with short forms as \b \f \n \r \t, the others as
 * \u00XX (upper-case hex), everything else (DEL, '/', all of UTF-8) as it
 * is. Bytes that are not UTF-8 become '?'. Runs are copied whole. */
static void jw_escaped(ph_jw *w, const char *s, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0, run = 0;

        while (i < n && jw_plain[u[i]])
                i++;
        if (i == n) {                   /* nothing to escape: one copy */
                if (jw_reserve(w, n + 2)) {
                        w->buf[w->len] = '"';
                        memcpy(w->buf + w->len + 1, s, n);
                        w->buf[w->len + 1 + n] = '"';
                        w->len += n + 2;
                }
                return;
        }
        jw_putc(w, '"');
        while (i < n) {
                unsigned char c = u[i];
                char esc[6];
                size_t elen = 2, seq;

                if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0x80) {
                        if ((seq = ph__utf8_seq_len(u + i, n - i)) > 0) {
                                i += seq;
                                continue;
                        }
                        jw_put(w, s + run, i - run);
                        jw_putc(w, '?');
                        run = ++i;
                        continue;
                }
                esc[0] = '\\';
                switch (c) {
                case '"': esc[1] = '"'; break;
                case '\\': esc[1] = '\\'; break;
                case '\b': esc[1] = 'b'; break;
                case '\f': esc[1] = 'f'; break;
                case '\n': esc[1] = 'n'; break;
                case '\r': esc[1] = 'r'; break;
                case '\t': esc[1] = 't'; break;
                default:
                        memcpy(esc + 1, "u00", 3);
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 0xf];
                        elen = 6;
                }
                jw_put(w, s + run, i - run);
                jw_put(w, esc, elen);
                run = ++i;
        }
        jw_put(w, s + run, n - run);
        jw_putc(w, '"');
}

/* Keys are names of ours: plain ASCII, copied in one piece. A key that
 * needs escaping takes the general path. */
void ph_jw_key(ph_jw *w, const char *key)
{
        size_t n = 0;

        if (w->err)
                return;
        if (w->key || w->depth == 0) {
                jw_fail(w, -EINVAL);
                return;
        }
        jw_sep(w);
        while (jw_plain[(unsigned char)key[n]])
                n++;
        if (key[n] == '\0') {
                if (jw_reserve(w, n + 3)) {
                        w->buf[w->len] = '"';
                        memcpy(w->buf + w->len + 1, key, n);
                        memcpy(w->buf + w->len + 1 + n, "\":", 2);
                        w->len += n + 3;
                }
        } else {
                jw_escaped(w, key, strlen(key));
                jw_putc(w, ':');
        }
        w->key = true;
}

void ph_jw_stringn(ph_jw *w, const char *s, size_t n)
{
        if (w->err)
                return;
        jw_sep(w);
        jw_escaped(w, s, n);
        jw_done(w);
}

void ph_jw_string(ph_jw *w, const char *s)
{
        if (!s)
                ph_jw_null(w);
        else
                ph_jw_stringn(w, s, strlen(s));
}

void ph_jw_text(ph_jw *w, const char *s)
{
        ph_jw_string(w, s);
}

void ph_jw_raw(ph_jw *w, const char *json, size_t n)
{
        if (w->err)
                return;
        jw_sep(w);
        jw_put(w, json, n);
        jw_done(w);
}

void ph_jw_members(ph_jw *w, const char *members, size_t n)
{
        if (w->err || n == 0)
                return;
        if (w->key || w->depth == 0) {
                jw_fail(w, -EINVAL);
                return;
        }
        ph_jw_raw(w, members, n);
}

void ph_jw_int(ph_jw *w, long long v)
{
        char num[24], *p = num + sizeof(num);
        unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

        do
                *--p = (char)('0' + u % 10);
        while ((u /= 10) > 0);
        if (v < 0)
                *--p = '-';
        ph_jw_raw(w, p, (size_t)(num + sizeof(num) - p));
}

void ph_jw_bool(ph_jw *w, bool v)
{
        if (v)
                ph_jw_raw(w, "true", 4);
        else
                ph_jw_raw(w, "false", 5);
}

void ph_jw_null(ph_jw *w)
{
        ph_jw_raw(w, "null", 4);
}

static int jw_dump_cb(const char *buffer, size_t size, void *userdata)
{
        ph_jw *w = userdata;

        jw_put(w, buffer, size);
        return w->err ? -1 : 0;
}

void ph_jw_json(ph_jw *w, const json_t *v)
{
        if (w->err)
                return;
        if (!v) {
                ph_jw_null(w);
                return;
        }
        jw_sep(w);
        if (json_dump_callback(v, jw_dump_cb, w, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
                jw_fail(w, -ENOMEM);
        jw_done(w);
}

int ph_jw_finish(ph_jw *w, char **ret, size_t *ret_len)
{
        int r;

        if (!w->err && (w->depth != 0 || w->key))
                jw_fail(w, -EINVAL);
        if (!w->err && !w->buf)
                jw_reserve(w, 0);
        if ((r = w->err) < 0) {
                ph_jw_release(w);
                return r;
        }
        w->buf[w->len] = '\0';
        *ret = w->buf;
        *ret_len = w->len + 1;
        w->buf = NULL;
        w->len = w->cap = 0;
        return 0;
}

void ph_jw_reply_begin(ph_jw *w)
{
        ph_jw_object_open(w);
        ph_jw_key(w, "parameters");
        ph_jw_object_open(w);
}

void ph_jw_error_begin(ph_jw *w, const char *error_name)
{
        ph_jw_object_open(w);
        ph_jw_key(w, "error");
        ph_jw_string(w, error_name);
        ph_jw_key(w, "parameters");
        ph_jw_object_open(w);
}

int ph_jw_message_end(ph_jw *w, bool continues, char **ret, size_t *ret_len)
{
        ph_jw_object_close(w);
        if (continues) {
                ph_jw_key(w, "continues");
                ph_jw_bool(w, true);
        }
        ph_jw_object_close(w);
        return ph_jw_finish(w, ret, ret_len);
}
