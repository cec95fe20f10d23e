/* Tests for protocol/: framing at every byte boundary and at the cap,
 * every request refusal with its exact error, reply and error
 * serialisation, and the method table against docs/io.plughost.varlink. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "varlink.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

#define MSGS_MAX 16

struct msgs {
        char *m[MSGS_MAX];
        size_t len[MSGS_MAX];
        size_t n;
};

static void msgs_clear(struct msgs *ms)
{
        for (size_t i = 0; i < ms->n; i++)
                free(ms->m[i]);
        ms->n = 0;
}

/* Feeds data through reserve and commit, at most chunk bytes a time. */
static void feed(ph_framer *f, const char *data, size_t len, size_t chunk)
{
        while (len > 0) {
                char *buf;
                size_t room, n;
                int r = ph_framer_reserve(f, chunk, &buf, &room);

                ck_assert_int_eq(r, 0);
                ck_assert_uint_gt(room, 0);
                n = len < room ? len : room;
                if (n > chunk)
                        n = chunk;
                memcpy(buf, data, n);
                ph_framer_commit(f, n);
                data += n;
                len -= n;
        }
}

/* Takes every complete message into ms. */
static void drain(ph_framer *f, struct msgs *ms)
{
        const char *m;
        size_t len;
        int r;

        while ((r = ph_framer_next(f, &m, &len)) == 1) {
                ck_assert_uint_lt(ms->n, MSGS_MAX);
                ms->m[ms->n] = malloc(len + 1);
                ck_assert_ptr_nonnull(ms->m[ms->n]);
                memcpy(ms->m[ms->n], m, len);
                ms->m[ms->n][len] = '\0';
                ms->len[ms->n++] = len;
        }
        ck_assert_int_eq(r, 0);
}

/* Parses a reply or error message: exactly one NUL, at the end. */
static json_t *message_parse(const char *msg, size_t len)
{
        json_error_t e;
        json_t *j;

        ck_assert_uint_gt(len, 0);
        ck_assert_int_eq(msg[len - 1], '\0');
        ck_assert_uint_eq(strlen(msg), len - 1);
        j = json_loadb(msg, len - 1, JSON_REJECT_DUPLICATES, &e);
        ck_assert_msg(j != NULL, "reply is not JSON (%s): %s", e.text, msg);
        ck_assert(json_is_object(j));
        return j;
}

static void parse_ok(const char *json, ph_request *req)
{
        char *err = (char *)"x";
        size_t err_len = 1;
        int r = ph_request_parse(json, strlen(json), req, &err, &err_len);

        ck_assert_msg(r == 0, "refused (%d) %s: %s", r, json, r < 0 && err ? err : "");
        ck_assert_ptr_null(err);
        ck_assert_uint_eq(err_len, 0);
        ck_assert_ptr_nonnull(req->method);
        ck_assert(json_is_object(req->parameters));
}

/* Asserts a refusal with return value want_r and error name want_error;
 * when key is set, parameters[key] must be the string value. */
static void parse_bad_len(const char *msg, size_t len, int want_r, const char *want_error,
                          const char *key, const char *value)
{
        ph_request req;
        char *err = NULL;
        size_t err_len = 0;
        json_t *j, *params;
        int r = ph_request_parse(msg, len, &req, &err, &err_len);

        ck_assert_msg(r == want_r, "got %d, want %d for %.200s", r, want_r, msg);
        ck_assert_ptr_null(req.method);
        ck_assert_ptr_null(req.parameters);
        ck_assert_ptr_nonnull(err);
        j = message_parse(err, err_len);
        ck_assert_str_eq(json_string_value(json_object_get(j, "error")), want_error);
        params = json_object_get(j, "parameters");
        ck_assert(json_is_object(params));
        if (key)
                ck_assert_msg(json_is_string(json_object_get(params, key)) &&
                              strcmp(json_string_value(json_object_get(params, key)), value) == 0,
                              "error %s lacks %s=%s", err, key, value);
        json_decref(j);
        free(err);
        ph_request_clear(&req);
}

static void parse_bad(const char *json, int want_r, const char *want_error,
                      const char *key, const char *value)
{
        parse_bad_len(json, strlen(json), want_r, want_error, key, value);
}

#define INVALID_PARAMETER "org.varlink.service.InvalidParameter"

static void bad_param(const char *json, const char *name)
{
        parse_bad(json, -EINVAL, INVALID_PARAMETER, "parameter", name);
}

static void bad_envelope(const char *json, const char *name)
{
        parse_bad(json, -EBADMSG, INVALID_PARAMETER, "parameter", name);
}

static char *repeat(const char *s, size_t times)
{
        size_t n = strlen(s);
        char *r = malloc(n * times + 1);

        ck_assert_ptr_nonnull(r);
        for (size_t i = 0; i < times; i++)
                memcpy(r + i * n, s, n);
        r[n * times] = '\0';
        return r;
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);
        return s;
}

/* ---- framing ------------------------------------------------------------- */

static const char stream[] = "{\"method\":\"io.plughost.Status\"}\0\0{\"a\":[1,2]}\0x\0partial";
#define STREAM_LEN (sizeof(stream) - 1)
static const char *const stream_msgs[] = {
        "{\"method\":\"io.plughost.Status\"}", "", "{\"a\":[1,2]}", "x",
};
#define STREAM_N 4
#define STREAM_TAIL (sizeof("partial") - 1)

static void check_stream(ph_framer *f, struct msgs *ms)
{
        ck_assert_uint_eq(ms->n, STREAM_N);
        for (size_t i = 0; i < STREAM_N; i++) {
                ck_assert_uint_eq(ms->len[i], strlen(stream_msgs[i]));
                ck_assert_str_eq(ms->m[i], stream_msgs[i]);
        }
        ck_assert_uint_eq(ph_framer_pending(f), STREAM_TAIL);
}

START_TEST(test_framer_split_everywhere)
{
        struct msgs ms = { 0 };

        /* Two feeds, cut at every boundary. */
        for (size_t k = 0; k <= STREAM_LEN; k++) {
                ph_framer *f;

                ck_assert_int_eq(ph_framer_new(64, &f), 0);
                feed(f, stream, k, 4096);
                drain(f, &ms);
                feed(f, stream + k, STREAM_LEN - k, 4096);
                drain(f, &ms);
                check_stream(f, &ms);
                msgs_clear(&ms);
                ph_framer_free(f);
        }
        /* Every byte alone, and with chunks of every size. */
        for (size_t chunk = 1; chunk <= STREAM_LEN; chunk++) {
                ph_framer *f;

                ck_assert_int_eq(ph_framer_new(64, &f), 0);
                for (size_t i = 0; i < STREAM_LEN; i += chunk) {
                        size_t n = STREAM_LEN - i < chunk ? STREAM_LEN - i : chunk;

                        feed(f, stream + i, n, chunk);
                        drain(f, &ms);
                }
                check_stream(f, &ms);
                msgs_clear(&ms);
                ph_framer_free(f);
        }
}
END_TEST

START_TEST(test_framer_several_in_one_feed)
{
        struct msgs ms = { 0 };
        ph_framer *f;

        ck_assert_int_eq(ph_framer_new(PH_VARLINK_MESSAGE_MAX, &f), 0);
        feed(f, stream, STREAM_LEN, STREAM_LEN);
        ck_assert_uint_eq(ph_framer_pending(f), STREAM_LEN);
        drain(f, &ms);
        check_stream(f, &ms);
        msgs_clear(&ms);
        /* The tail completes later. */
        feed(f, "\0", 1, 1);
        drain(f, &ms);
        ck_assert_uint_eq(ms.n, 1);
        ck_assert_str_eq(ms.m[0], "partial");
        ck_assert_uint_eq(ph_framer_pending(f), 0);
        msgs_clear(&ms);
        ph_framer_free(f);
}
END_TEST

START_TEST(test_framer_empty_messages)
{
        struct msgs ms = { 0 };
        ph_framer *f;

        /* A cap of 1 holds one empty message: take each before the next. */
        ck_assert_int_eq(ph_framer_new(1, &f), 0);
        for (size_t i = 0; i < 3; i++) {
                feed(f, "\0", 1, 1);
                drain(f, &ms);
        }
        ck_assert_uint_eq(ms.n, 3);
        for (size_t i = 0; i < 3; i++)
                ck_assert_uint_eq(ms.len[i], 0);
        ck_assert_uint_eq(ph_framer_pending(f), 0);
        msgs_clear(&ms);
        ph_framer_free(f);
        /* With room, in one read. */
        ck_assert_int_eq(ph_framer_new(64, &f), 0);
        feed(f, "\0\0\0", 3, 3);
        ck_assert_uint_eq(ph_framer_pending(f), 3);
        drain(f, &ms);
        ck_assert_uint_eq(ms.n, 3);
        ck_assert_uint_eq(ms.len[0] + ms.len[1] + ms.len[2], 0);
        ck_assert_uint_eq(ph_framer_pending(f), 0);
        msgs_clear(&ms);
        ph_framer_free(f);
        ck_assert_int_eq(ph_framer_new(0, &f), -EINVAL);
}
END_TEST

/* Pipelined: 300,000 messages read at once, then taken one by one. Taking
 * must not move the remaining bytes each time (that would take minutes). */
START_TEST(test_framer_pipelined)
{
        enum { N = 300000 };
        char *all = malloc(3 * N);
        ph_framer *f;
        const char *m;
        size_t len, count = 0;
        int r;

        ck_assert_ptr_nonnull(all);
        for (size_t i = 0; i < N; i++)
                memcpy(all + 3 * i, "ab", 3);
        ck_assert_int_eq(ph_framer_new(PH_VARLINK_MESSAGE_MAX, &f), 0);
        feed(f, all, 3 * N, 3 * N);
        /* Plain ifs in the loops: a Check assertion writes to a pipe. */
        while ((r = ph_framer_next(f, &m, &len)) == 1) {
                if (len != 2 || memcmp(m, "ab", 2) != 0)
                        ck_abort_msg("message %zu is wrong", count);
                count++;
        }
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(count, N);
        ck_assert_uint_eq(ph_framer_pending(f), 0);
        ph_framer_free(f);
        free(all);
}
END_TEST

/* A message of max bytes with its NUL fits, after a small one that forces
 * the buffer to be compacted at the cap; one more byte does not. */
START_TEST(test_framer_cap)
{
        enum { MAX = 16 };
        struct msgs ms = { 0 };
        char full[MAX];
        ph_framer *f;
        const char *m;
        size_t len;
        char *buf;
        size_t room;

        memset(full, 'y', sizeof(full));
        full[MAX - 1] = '\0';
        ck_assert_int_eq(ph_framer_new(MAX, &f), 0);
        feed(f, "ab\0", 3, 3);
        drain(f, &ms);
        ck_assert_uint_eq(ms.n, 1);
        feed(f, full, MAX, 1);
        drain(f, &ms);
        ck_assert_uint_eq(ms.n, 2);
        ck_assert_uint_eq(ms.len[1], MAX - 1);
        msgs_clear(&ms);

        /* MAX - 1 bytes without NUL: still waiting for it. */
        feed(f, full, MAX - 1, 5);
        ck_assert_int_eq(ph_framer_next(f, &m, &len), 0);
        ck_assert_int_eq(ph_framer_reserve(f, 100, &buf, &room), 0);
        ck_assert_uint_eq(room, 1);
        /* And one more is over. */
        ph_framer_commit(f, 0);
        buf[0] = 'z';
        ph_framer_commit(f, 1);
        ck_assert_int_eq(ph_framer_next(f, &m, &len), -EMSGSIZE);
        ck_assert_int_eq(ph_framer_reserve(f, 1, &buf, &room), -EMSGSIZE);
        ck_assert_int_eq(ph_framer_next(f, &m, &len), -EMSGSIZE);
        ph_framer_free(f);
}
END_TEST

/* With the default cap: exactly PH_VARLINK_MESSAGE_MAX works, one over fails. */
START_TEST(test_framer_default_cap)
{
        size_t n = PH_VARLINK_MESSAGE_MAX;
        char *big = malloc(n + 1);
        ph_framer *f;
        const char *m;
        size_t len;

        ck_assert_ptr_nonnull(big);
        memset(big, ' ', n + 1);
        big[n - 1] = '\0';
        ck_assert_int_eq(ph_framer_new(PH_VARLINK_MESSAGE_MAX, &f), 0);
        feed(f, big, n, 65536);
        ck_assert_int_eq(ph_framer_next(f, &m, &len), 1);
        ck_assert_uint_eq(len, n - 1);
        ck_assert_int_eq(ph_framer_next(f, &m, &len), 0);
        big[n - 1] = ' ';
        feed(f, big, n, 65536);
        ck_assert_int_eq(ph_framer_next(f, &m, &len), -EMSGSIZE);
        ph_framer_free(f);
        free(big);
}
END_TEST

/* At the cap and full of messages not taken yet: -ENOBUFS, not -EMSGSIZE. */
START_TEST(test_framer_full_of_complete)
{
        ph_framer *f;
        const char *m;
        size_t len, room;
        char *buf;

        ck_assert_int_eq(ph_framer_new(8, &f), 0);
        feed(f, "a\0b\0c\0d\0", 8, 8);
        ck_assert_int_eq(ph_framer_reserve(f, 1, &buf, &room), -ENOBUFS);
        ck_assert_int_eq(ph_framer_next(f, &m, &len), 1);
        ck_assert_int_eq(ph_framer_reserve(f, 1, &buf, &room), 0);
        ck_assert_uint_eq(room, 2);
        ck_assert_uint_eq(ph_framer_pending(f), 6);
        ph_framer_free(f);
}
END_TEST

/* One byte at a time up to a cap of 8 MiB: each byte must be scanned once.
 * A framer that scans from the start of the message each time does 3e13
 * steps here and is stopped by the test timeout. */
START_TEST(test_framer_scan_is_linear)
{
        size_t n = 8u << 20;
        ph_framer *f;
        const char *m;
        size_t len, room;
        char *buf;

        ck_assert_int_eq(ph_framer_new(n, &f), 0);
        for (size_t i = 0; i < n; i++) {
                int r = ph_framer_reserve(f, 1, &buf, &room);

                if (r != 0 || room == 0)
                        ck_abort_msg("reserve at %zu: %d", i, r);
                buf[0] = i == n - 1 ? '\0' : 'q';
                ph_framer_commit(f, 1);
                r = ph_framer_next(f, &m, &len);
                if (r != (i == n - 1))
                        ck_abort_msg("next at %zu: %d", i, r);
        }
        ck_assert_uint_eq(len, n - 1);
        ph_framer_free(f);
}
END_TEST

/* Random bytes: every message the framer returns is refused with an error
 * reply that is itself a valid message. */
START_TEST(test_framer_binary_garbage)
{
        enum { SIZE = 1 << 16 };
        unsigned char *data = malloc(SIZE);
        uint32_t x = 2463534242u;
        size_t nuls = 0, seen = 0;
        ph_framer *f;
        const char *m;
        size_t len;
        int r;

        ck_assert_ptr_nonnull(data);
        for (size_t i = 0; i < SIZE; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                /* About one NUL in 64 bytes, so messages vary in length. */
                data[i] = (x & 63) == 0 ? 0 : (unsigned char)(x >> 8);
                nuls += data[i] == 0;
        }
        ck_assert_int_eq(ph_framer_new(PH_VARLINK_MESSAGE_MAX, &f), 0);
        for (size_t i = 0; i < SIZE;) {
                size_t n = 1 + (i * 7919) % 997;

                if (n > SIZE - i)
                        n = SIZE - i;
                feed(f, (const char *)data + i, n, n);
                i += n;
                while ((r = ph_framer_next(f, &m, &len)) == 1) {
                        ph_request req;
                        char *err = NULL;
                        size_t err_len = 0;
                        json_t *j;

                        ck_assert_ptr_null(memchr(m, '\0', len));
                        r = ph_request_parse(m, len, &req, &err, &err_len);
                        ck_assert_int_eq(r, -EBADMSG);
                        j = message_parse(err, err_len);
                        ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                                         INVALID_PARAMETER);
                        json_decref(j);
                        free(err);
                        seen++;
                }
                ck_assert_int_eq(r, 0);
        }
        ck_assert_uint_eq(seen, nuls);
        ph_framer_free(f);
        free(data);
}
END_TEST

/* ---- requests ------------------------------------------------------------ */

START_TEST(test_request_envelope)
{
        bad_envelope("nope", "");
        bad_envelope("", "");
        bad_envelope("[]", "");
        bad_envelope("\"io.plughost.List\"", "");
        bad_envelope("{\"method\":\"io.plughost.List\"} {}", "");
        bad_envelope("{}", "method");
        bad_envelope("{\"parameters\":{}}", "method");
        bad_envelope("{\"method\":42}", "method");
        bad_envelope("{\"method\":null}", "method");
        bad_envelope("{\"method\":\"NoDot\"}", "method");
        bad_envelope("{\"method\":\".List\"}", "method");
        bad_envelope("{\"method\":\"io.plughost.\"}", "method");
        bad_envelope("{\"method\":\"io.plughost.List\\u0000x\"}", "method");
        bad_envelope("{\"method\":\"io.plughost.List\",\"parameters\":[]}", "parameters");
        bad_envelope("{\"method\":\"io.plughost.List\",\"parameters\":\"x\"}", "parameters");
        bad_envelope("{\"method\":\"io.plughost.List\",\"oneway\":\"yes\"}", "oneway");
        bad_envelope("{\"method\":\"io.plughost.List\",\"more\":1}", "more");
        bad_envelope("{\"method\":\"io.plughost.List\",\"upgrade\":true}", "upgrade");
        bad_envelope("{\"method\":\"io.plughost.List\",\"upgrade\":0}", "upgrade");
        bad_envelope("{\"method\":\"io.plughost.Monitor\",\"more\":true,\"oneway\":true}", "oneway");
}
END_TEST

START_TEST(test_request_unknown_names)
{
        char *long_iface, *msg;

        parse_bad("{\"method\":\"com.example.Foo\"}", -ENOENT,
                  "org.varlink.service.InterfaceNotFound", "interface", "com.example");
        parse_bad("{\"method\":\"io.plughos.List\"}", -ENOENT,
                  "org.varlink.service.InterfaceNotFound", "interface", "io.plughos");
        parse_bad("{\"method\":\"io.plughost.Nope\"}", -ENOENT,
                  "org.varlink.service.MethodNotFound", "method", "io.plughost.Nope");
        parse_bad("{\"method\":\"io.plughost.list\"}", -ENOENT,
                  "org.varlink.service.MethodNotFound", "method", "io.plughost.list");
        parse_bad("{\"method\":\"org.varlink.service.Nope\"}", -ENOENT,
                  "org.varlink.service.MethodNotFound", "method", "org.varlink.service.Nope");
        /* A method of one interface under the other's name. */
        parse_bad("{\"method\":\"io.plughost.GetInfo\"}", -ENOENT,
                  "org.varlink.service.MethodNotFound", "method", "io.plughost.GetInfo");

        /* Echoed names are cut to 255 bytes, at a character. */
        long_iface = repeat("\xc3\xa9", 200);
        msg = strf("{\"method\":\"%s.X\"}", long_iface);
        long_iface[254] = '\0';
        parse_bad(msg, -ENOENT, "org.varlink.service.InterfaceNotFound", "interface", long_iface);
        free(msg);
        free(long_iface);
        /* And a method name too long to be one is refused outright. */
        long_iface = repeat("a", 600);
        msg = strf("{\"method\":\"%s.X\"}", long_iface);
        bad_envelope(msg, "method");
        free(msg);
        free(long_iface);
}
END_TEST

START_TEST(test_request_parameters)
{
        /* Unknown, missing, null when required, wrong type. */
        bad_param("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"x\",\"bogus\":1}}", "bogus");
        bad_param("{\"method\":\"io.plughost.Status\",\"parameters\":{\"x\":null}}", "x");
        bad_param("{\"method\":\"io.plughost.Info\",\"parameters\":{}}", "name");
        bad_param("{\"method\":\"io.plughost.Info\"}", "name");
        bad_param("{\"method\":\"io.plughost.Info\",\"parameters\":null}", "name");
        bad_param("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":null}}", "name");
        bad_param("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":5}}", "name");
        bad_param("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":[\"x\"]}}", "name");
        bad_param("{\"method\":\"io.plughost.List\",\"parameters\":{\"interface\":true}}", "interface");
        bad_param("{\"method\":\"io.plughost.List\",\"parameters\":{\"state\":{}}}", "state");
        bad_param("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\",\"method\":\"b\","
                  "\"parameters\":\"x\"}}", "parameters");
        bad_param("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\",\"method\":\"b\","
                  "\"parameters\":[]}}", "parameters");
        bad_param("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\"}}", "method");
        /* NUL in a string, and anywhere inside an object parameter. */
        bad_param("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"a\\u0000b\"}}", "name");
        bad_param("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\",\"method\":\"b\","
                  "\"parameters\":{\"k\":[1,{\"z\":\"\\u0000\"}]}}}", "parameters");
        /* A NUL in an object key is refused by the parser itself. */
        bad_envelope("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\\u0000\":\"a\"}}", "");
}
END_TEST

START_TEST(test_request_string_limits)
{
        static const struct {
                const char *method, *param;
                size_t max;
        } limits[] = {
                { "io.plughost.Info", "name", 64 },
                { "io.plughost.Load", "name", 64 },
                { "io.plughost.Unload", "name", 64 },
                { "io.plughost.Query", "interface", 255 },
                { "io.plughost.List", "interface", 255 },
                { "org.varlink.service.GetInterfaceDescription", "interface", 255 },
        };

        for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
                char *s = repeat("n", limits[i].max + 1);
                char *msg = strf("{\"method\":\"%s\",\"parameters\":{\"%s\":\"%s\"}}",
                                 limits[i].method, limits[i].param, s);
                ph_request req;

                bad_param(msg, limits[i].param);
                free(msg);
                s[limits[i].max] = '\0';
                msg = strf("{\"method\":\"%s\",\"parameters\":{\"%s\":\"%s\"}}",
                           limits[i].method, limits[i].param, s);
                parse_ok(msg, &req);
                ck_assert_uint_eq(json_string_length(json_object_get(req.parameters, limits[i].param)),
                                  limits[i].max);
                ph_request_clear(&req);
                free(msg);
                free(s);
        }
        /* Call: name 64, method 255, counted in bytes, not characters. */
        {
                char *s = repeat("\xc3\xa9", 128);
                char *msg = strf("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\","
                                 "\"method\":\"%s\"}}", s);

                bad_param(msg, "method");
                free(msg);
                free(s);
                s = repeat("\xc3\xa9", 32);
                msg = strf("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"%se\","
                           "\"method\":\"m\"}}", s);
                bad_param(msg, "name");
                free(msg);
                free(s);
        }
}
END_TEST

START_TEST(test_request_flags)
{
        ph_request req;

        parse_ok("{\"method\":\"io.plughost.Rescan\",\"oneway\":true}", &req);
        ck_assert_int_eq(req.method->id, PH_M_RESCAN);
        ck_assert(req.oneway);
        ck_assert(!req.more);
        ph_request_clear(&req);
        ck_assert_ptr_null(req.parameters);

        parse_ok("{\"method\":\"io.plughost.Monitor\",\"more\":true}", &req);
        ck_assert_int_eq(req.method->id, PH_M_MONITOR);
        ck_assert(req.more);
        ck_assert(!req.oneway);
        ck_assert_uint_eq(json_object_size(req.parameters), 0);
        ph_request_clear(&req);

        /* more on a method that does not stream: accepted, answered once. */
        parse_ok("{\"method\":\"io.plughost.Status\",\"more\":true}", &req);
        ck_assert(!req.more);
        ph_request_clear(&req);
        /* List streams when asked to. */
        parse_ok("{\"method\":\"io.plughost.List\",\"more\":true}", &req);
        ck_assert(req.more);
        ph_request_clear(&req);

        /* false, null and absent flags are all false; upgrade false is fine. */
        parse_ok("{\"method\":\"io.plughost.Status\",\"oneway\":false,\"more\":null,"
                 "\"upgrade\":false,\"parameters\":null}", &req);
        ck_assert(!req.oneway && !req.more);
        ph_request_clear(&req);

        /* Unknown top-level keys are ignored. */
        parse_ok("{\"x-extension\":[1],\"method\":\"io.plughost.Status\",\"zzz\":{}}", &req);
        ck_assert_int_eq(req.method->id, PH_M_STATUS);
        ph_request_clear(&req);

        /* Monitor needs more, also when oneway. */
        parse_bad("{\"method\":\"io.plughost.Monitor\"}", -EINVAL,
                  "org.varlink.service.ExpectedMore", NULL, NULL);
        parse_bad("{\"method\":\"io.plughost.Monitor\",\"more\":false}", -EINVAL,
                  "org.varlink.service.ExpectedMore", NULL, NULL);
        parse_bad("{\"method\":\"io.plughost.Monitor\",\"oneway\":true}", -EINVAL,
                  "org.varlink.service.ExpectedMore", NULL, NULL);
        ph_request_clear(NULL);
}
END_TEST

START_TEST(test_request_optional_null_dropped)
{
        ph_request req;

        parse_ok("{\"method\":\"io.plughost.List\",\"parameters\":{\"interface\":null,"
                 "\"state\":\"loaded\"}}", &req);
        ck_assert_int_eq(req.method->id, PH_M_LIST);
        ck_assert_ptr_null(json_object_get(req.parameters, "interface"));
        ck_assert_str_eq(json_string_value(json_object_get(req.parameters, "state")), "loaded");
        ph_request_clear(&req);

        parse_ok("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\",\"method\":\"b\","
                 "\"parameters\":{\"n\":9223372036854775807,\"x\":null}}}", &req);
        ck_assert_int_eq(req.method->id, PH_M_CALL);
        ck_assert(json_integer_value(json_object_get(json_object_get(req.parameters, "parameters"),
                                                     "n")) == INT64_MAX);
        ph_request_clear(&req);
}
END_TEST

/* Every method of the table accepts its required parameters, and refuses
 * each one missing or of another type with that parameter's name. */
START_TEST(test_request_table_driven)
{
        for (size_t i = 0; i < ph_methods_count; i++) {
                const ph_method *m = &ph_methods[i];
                json_t *params = json_object();
                const char *wrong[] = {
                        [PH_PARAM_STRING] = "1",
                        [PH_PARAM_INT] = "\"1\"",
                        [PH_PARAM_BOOL] = "{}",
                        [PH_PARAM_OBJECT] = "true",
                };
                char *ps, *msg;
                ph_request req;

                for (const ph_param *p = m->params; p->name; p++) {
                        json_t *v = NULL;

                        switch (p->type) {
                        case PH_PARAM_STRING: v = json_string("v"); break;
                        case PH_PARAM_INT: v = json_integer(1); break;
                        case PH_PARAM_BOOL: v = json_true(); break;
                        case PH_PARAM_OBJECT: v = json_object(); break;
                        }
                        if (p->required)
                                json_object_set_new(params, p->name, v);
                        else
                                json_decref(v);
                }
                ps = json_dumps(params, JSON_COMPACT);
                msg = strf("{\"method\":\"%s\",\"parameters\":%s,\"more\":true}", m->name, ps);
                parse_ok(msg, &req);
                ck_assert_ptr_eq(req.method, m);
                ck_assert_ptr_eq(ph_method_find(m->name), m);
                ck_assert(req.more == !!(m->flags & PH_METHOD_MORE));
                ph_request_clear(&req);
                free(msg);

                for (const ph_param *p = m->params; p->name; p++) {
                        json_t *copy = json_deep_copy(params);
                        char *cs;

                        if (p->required) {
                                json_object_del(copy, p->name);
                                cs = json_dumps(copy, JSON_COMPACT);
                                msg = strf("{\"method\":\"%s\",\"parameters\":%s}", m->name, cs);
                                bad_param(msg, p->name);
                                free(msg);
                                free(cs);
                        }
                        json_object_del(copy, p->name);
                        cs = json_dumps(copy, JSON_COMPACT);
                        /* Insert the wrong value as the first key. */
                        msg = strf("{\"method\":\"%s\",\"parameters\":{\"%s\":%s%s%s}",
                                   m->name, p->name, wrong[p->type],
                                   json_object_size(copy) ? "," : "", cs + 1);
                        bad_param(msg, p->name);
                        free(msg);
                        free(cs);
                        json_decref(copy);
                }
                free(ps);
                json_decref(params);
        }
}
END_TEST

START_TEST(test_request_hostile_json)
{
        char *deep, *msg;
        ph_request req;

        /* 100,000 levels: refused by the parser's depth limit, no crash. */
        deep = repeat("[", 100000);
        bad_envelope(deep, "");
        msg = strf("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\",\"method\":\"b\","
                   "\"parameters\":{\"x\":%s}}}", deep);
        bad_envelope(msg, "");
        free(msg);
        free(deep);
        /* Deep but within the limit: accepted, walked for NULs. */
        {
                char *open = repeat("[", 2000), *close = repeat("]", 2000);

                msg = strf("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"a\","
                           "\"method\":\"b\",\"parameters\":{\"x\":%s\"s\"%s}}}", open, close);
                parse_ok(msg, &req);
                ph_request_clear(&req);
                free(msg);
                free(open);
                free(close);
        }

        /* Numbers past int64 and double. */
        bad_envelope("{\"method\":\"io.plughost.Status\",\"x\":99999999999999999999}", "");
        bad_envelope("{\"method\":\"io.plughost.Status\",\"x\":-9223372036854775809}", "");
        bad_envelope("{\"method\":\"io.plughost.Status\",\"x\":1e99999}", "");
        parse_ok("{\"method\":\"io.plughost.Status\",\"x\":-9223372036854775808}", &req);
        ph_request_clear(&req);

        /* Invalid UTF-8, in a value and in the method name; the error
         * reply quoting the input is still valid UTF-8 (message_parse). */
        bad_envelope("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"\xff\"}}", "");
        bad_envelope("{\"method\":\"io.plughost.\xc0\xafInfo\"}", "");
        bad_envelope("{\"method\":\"io.plughost.Info\xed\xa0\x80\"}", "");
        bad_envelope("\xfe\xff{}", "");

        /* Duplicate keys, at the top and in parameters. */
        bad_envelope("{\"method\":\"com.x.Y\",\"method\":\"io.plughost.Status\"}", "");
        bad_envelope("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"a\",\"name\":\"b\"}}", "");

        /* A NUL byte inside the message (a framer never passes one). */
        parse_bad_len("{\"method\":\"io.plughost.Status\"}\0", 33, -EBADMSG, INVALID_PARAMETER,
                      "parameter", "");
}
END_TEST

/* ---- replies and errors -------------------------------------------------- */

START_TEST(test_reply)
{
        char *out;
        size_t len;
        json_t *j;

        ck_assert_int_eq(ph_varlink_reply(NULL, false, &out, &len), 0);
        ck_assert_uint_eq(len, sizeof("{\"parameters\":{}}"));
        ck_assert(memcmp(out, "{\"parameters\":{}}", len) == 0);
        free(out);

        ck_assert_int_eq(ph_varlink_reply(json_pack("{s:i}", "added", 3), true, &out, &len), 0);
        j = message_parse(out, len);
        ck_assert(json_is_true(json_object_get(j, "continues")));
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "parameters"), "added")), 3);
        ck_assert_uint_eq(json_object_size(j), 2);
        ck_assert_ptr_null(strchr(out, ' '));
        json_decref(j);
        free(out);

        ck_assert_int_eq(ph_varlink_reply(json_pack("{s:s}", "s", "x"), false, &out, &len), 0);
        ck_assert_ptr_null(strstr(out, "continues"));
        free(out);

        out = NULL;
        ck_assert_int_eq(ph_varlink_reply(json_array(), false, &out, &len), -EINVAL);
        ck_assert_ptr_null(out);
}
END_TEST

/* The cap counts the NUL: a reply of exactly PH_VARLINK_MESSAGE_MAX bytes
 * is built, one byte more is -EMSGSIZE. */
START_TEST(test_reply_cap)
{
        size_t overhead = strlen("{\"parameters\":{\"s\":\"\"}}") + 1;
        size_t n = PH_VARLINK_MESSAGE_MAX - overhead;
        char *s = malloc(n + 2);
        char *out;
        size_t len;

        ck_assert_ptr_nonnull(s);
        memset(s, 'a', n + 1);
        s[n] = '\0';
        ck_assert_int_eq(ph_varlink_reply(json_pack("{s:s}", "s", s), false, &out, &len), 0);
        ck_assert_uint_eq(len, PH_VARLINK_MESSAGE_MAX);
        ck_assert_int_eq(out[len - 1], '\0');
        free(out);
        s[n] = 'a';
        s[n + 1] = '\0';
        out = NULL;
        ck_assert_int_eq(ph_varlink_reply(json_pack("{s:s}", "s", s), false, &out, &len), -EMSGSIZE);
        ck_assert_ptr_null(out);
        ck_assert_int_eq(ph_varlink_error(PH_VERR_BUSY, json_pack("{s:s}", "message", s), &out, &len),
                         -EMSGSIZE);
        free(s);
}
END_TEST

START_TEST(test_error)
{
        char *out = NULL;
        size_t len;
        json_t *j;

        ck_assert_int_eq(ph_varlink_error(PH_VERR_NO_SUCH_PLUGIN, json_pack("{s:s}", "name", "x"),
                                          &out, &len), 0);
        ck_assert_str_eq(out, "{\"error\":\"io.plughost.NoSuchPlugin\",\"parameters\":{\"name\":\"x\"}}");
        ck_assert_uint_eq(len, strlen(out) + 1);
        free(out);

        ck_assert_int_eq(ph_varlink_error(PH_VERR_EXPECTED_MORE, NULL, &out, &len), 0);
        ck_assert_str_eq(out, "{\"error\":\"org.varlink.service.ExpectedMore\",\"parameters\":{}}");
        free(out);

        out = NULL;
        ck_assert_int_eq(ph_varlink_error(PH_VERR_NONE, NULL, &out, &len), -EINVAL);
        ck_assert_int_eq(ph_varlink_error(_PH_VERR_MAX, json_object(), &out, &len), -EINVAL);
        ck_assert_int_eq(ph_varlink_error(PH_VERR_BUSY, json_string("x"), &out, &len), -EINVAL);
        ck_assert_int_eq(ph_varlink_errorf(PH_VERR_NONE, NULL, &out, &len, "x"), -EINVAL);
        ck_assert_ptr_null(out);

        /* Control characters, quotes and backslashes are escaped. */
        ck_assert_int_eq(ph_varlink_errorf(PH_VERR_CALL_FAILED, json_pack("{s:s,s:s}", "name", "p",
                                                                          "message", "old"),
                                           &out, &len, "bad %s: %d", "a\x01\x1b[2J\n\"\\\x7f", 5), 0);
        for (size_t i = 0; i + 1 < len; i++)
                ck_assert_msg((unsigned char)out[i] >= 0x20, "raw control byte at %zu: %s", i, out);
        ck_assert_ptr_nonnull(strstr(out, "\\u0001\\u001B[2J\\n\\\"\\\\"));
        j = message_parse(out, len);
        ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "io.plughost.CallFailed");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "parameters"), "message")),
                         "bad a\x01\x1b[2J\n\"\\\x7f: 5");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "parameters"), "name")), "p");
        json_decref(j);
        free(out);
}
END_TEST

START_TEST(test_errorf_text)
{
        char *out, *s;
        size_t len;
        json_t *j;
        const char *msg;

        /* Bytes that are not UTF-8 become '?'. */
        ck_assert_int_eq(ph_varlink_errorf(PH_VERR_LOAD_FAILED, NULL, &out, &len,
                                           "file %s", "a\xff\xc3(b\xed\xa0\x80\xc3\xa9"), 0);
        j = message_parse(out, len);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "parameters"), "message")),
                         "file a?\?(b?\?\?\xc3\xa9");
        json_decref(j);
        free(out);

        /* Long text is cut to 4096 bytes without splitting a character. */
        s = repeat("\xc3\xa9", 3000);
        ck_assert_int_eq(ph_varlink_errorf(PH_VERR_BUSY, NULL, &out, &len, "x%s", s), 0);
        j = message_parse(out, len);
        msg = json_string_value(json_object_get(json_object_get(j, "parameters"), "message"));
        ck_assert_uint_eq(strlen(msg), 4095);
        ck_assert(msg[0] == 'x' && memcmp(msg + 1, s, 4094) == 0);
        json_decref(j);
        free(out);
        free(s);
}
END_TEST

START_TEST(test_error_names)
{
        for (int e = PH_VERR_NONE + 1; e < _PH_VERR_MAX; e++) {
                const char *name = ph_varlink_error_name((ph_verr)e);

                ck_assert_ptr_nonnull(name);
                ck_assert(strncmp(name, "org.varlink.service.", 20) == 0 ||
                          strncmp(name, "io.plughost.", 12) == 0);
                for (int o = PH_VERR_NONE + 1; o < e; o++)
                        ck_assert_str_ne(name, ph_varlink_error_name((ph_verr)o));
        }
        ck_assert_ptr_null(ph_varlink_error_name(PH_VERR_NONE));
        ck_assert_ptr_null(ph_varlink_error_name(_PH_VERR_MAX));
        ck_assert_ptr_null(ph_varlink_error_name((ph_verr)-1));
        ck_assert_str_eq(ph_varlink_error_name(PH_VERR_INVALID_PARAMETER), INVALID_PARAMETER);
        ck_assert_str_eq(ph_varlink_error_name(PH_VERR_TIMEOUT), "io.plughost.Timeout");
}
END_TEST

START_TEST(test_error_from_errno)
{
        static const struct {
                int err;
                ph_verr want;
        } map[] = {
                { -ENOENT, PH_VERR_NO_SUCH_PLUGIN },
                { -ETIMEDOUT, PH_VERR_TIMEOUT },
                { -EPERM, PH_VERR_PERMISSION_DENIED },
                { -EACCES, PH_VERR_PERMISSION_DENIED },
                { -EAGAIN, PH_VERR_BUSY },
                { -EBUSY, PH_VERR_BUSY },
                { -EMFILE, PH_VERR_BUSY },
                { -ENFILE, PH_VERR_BUSY },
                { -ENOMEM, PH_VERR_BUSY },
                { -EINVAL, PH_VERR_INVALID_PARAMETER },
                { -EIO, PH_VERR_CALL_FAILED },
                { -ENOEXEC, PH_VERR_CALL_FAILED },
                { -EBADMSG, PH_VERR_CALL_FAILED },
                { ENOENT, PH_VERR_CALL_FAILED },
                { 0, PH_VERR_CALL_FAILED },
        };

        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
                ck_assert_msg(ph_varlink_error_from_errno(map[i].err) == map[i].want,
                              "errno %d", map[i].err);
}
END_TEST

/* ---- service description -------------------------------------------------- */

START_TEST(test_get_info)
{
        json_t *info = ph_varlink_get_info("1.2.3"), *ifaces;

        ck_assert_ptr_nonnull(info);
        ck_assert_str_eq(json_string_value(json_object_get(info, "vendor")), "plughost");
        ck_assert_str_eq(json_string_value(json_object_get(info, "product")), "plughostd");
        ck_assert_str_eq(json_string_value(json_object_get(info, "version")), "1.2.3");
        ck_assert(json_is_string(json_object_get(info, "url")));
        ifaces = json_object_get(info, "interfaces");
        ck_assert_uint_eq(json_array_size(ifaces), 2);
        ck_assert_str_eq(json_string_value(json_array_get(ifaces, 0)), "org.varlink.service");
        ck_assert_str_eq(json_string_value(json_array_get(ifaces, 1)), "io.plughost");
        for (size_t i = 0; i < 2; i++)
                ck_assert_ptr_nonnull(ph_varlink_interface_description(
                        json_string_value(json_array_get(ifaces, i))));
        json_decref(info);

        info = ph_varlink_get_info(NULL);
        ck_assert_str_eq(json_string_value(json_object_get(info, "version")), PACKAGE_VERSION);
        json_decref(info);
        ck_assert_ptr_null(ph_varlink_get_info("\xff"));
}
END_TEST

START_TEST(test_interface_description)
{
        const char *io = ph_varlink_interface_description("io.plughost");
        const char *svc = ph_varlink_interface_description("org.varlink.service");
        unsigned char *file;
        size_t size;

        ck_assert_ptr_nonnull(io);
        ck_assert(strncmp(io, "# The plughost daemon", 21) == 0);
        /* Byte for byte the file: the generated literal escapes right. */
        file = tu_read_file(PH_VARLINK_IDL, &size);
        ck_assert_uint_eq(strlen(io), size);
        ck_assert(memcmp(io, file, size) == 0);
        free(file);

        ck_assert_ptr_nonnull(svc);
        ck_assert_ptr_nonnull(strstr(svc, "\ninterface org.varlink.service\n"));
        ck_assert_ptr_nonnull(strstr(io, "\ninterface io.plughost\n"));
        ck_assert_ptr_null(ph_varlink_interface_description("io.plughost.List"));
        ck_assert_ptr_null(ph_varlink_interface_description("io.plughos"));
        ck_assert_ptr_null(ph_varlink_interface_description(""));
        ck_assert_ptr_null(ph_varlink_interface_description(NULL));
}
END_TEST

/* One "name: ?type" of a method line. */
static void check_param(const ph_method *m, const ph_param *p, const char *decl, size_t len)
{
        static const char *const types[] = {
                [PH_PARAM_STRING] = "string",
                [PH_PARAM_INT] = "int",
                [PH_PARAM_BOOL] = "bool",
                [PH_PARAM_OBJECT] = "object",
        };
        const char *colon = memchr(decl, ':', len);
        const char *type;
        bool optional;

        ck_assert_msg(colon != NULL, "%s: bad declaration %.*s", m->name, (int)len, decl);
        ck_assert_msg((size_t)(colon - decl) == strlen(p->name) &&
                      memcmp(decl, p->name, strlen(p->name)) == 0,
                      "%s: table has %s, file has %.*s", m->name, p->name, (int)len, decl);
        type = colon + 1;
        while (*type == ' ')
                type++;
        optional = *type == '?';
        type += optional;
        ck_assert_msg(optional == !p->required, "%s: %s required-ness differs", m->name, p->name);
        ck_assert_msg((size_t)(decl + len - type) == strlen(types[p->type]) &&
                      memcmp(type, types[p->type], strlen(types[p->type])) == 0,
                      "%s: %s is %.*s in the file", m->name, p->name, (int)(decl + len - type), type);
}

/* Compares the "method Name(...)" lines of an interface text with the
 * table rows of that interface, both ways, parameters included. */
static void check_interface(const char *iface)
{
        const char *text = ph_varlink_interface_description(iface);
        size_t in_table = 0, in_text = 0;

        ck_assert_ptr_nonnull(text);
        for (size_t i = 0; i < ph_methods_count; i++)
                if (strncmp(ph_methods[i].name, iface, strlen(iface)) == 0 &&
                    ph_methods[i].name[strlen(iface)] == '.')
                        in_table++;

        for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
                const char *open, *close, *s;
                const ph_method *m;
                const ph_param *p;
                char *full;

                if (strncmp(line, "method ", 7) == 0) {
                        open = strchr(line, '(');
                        close = open ? strchr(open, ')') : NULL;
                        ck_assert_msg(close && close < strchr(line, '\n'), "bad line %.40s", line);
                        full = strf("%s.%.*s", iface, (int)(open - line - 7), line + 7);
                        m = ph_method_find(full);
                        ck_assert_msg(m != NULL, "%s is in the text, not in the table", full);
                        free(full);
                        in_text++;
                        p = m->params;
                        for (s = open + 1; s < close;) {
                                const char *comma = memchr(s, ',', (size_t)(close - s));
                                const char *e = comma ? comma : close;

                                ck_assert_msg(p->name != NULL, "%s: more parameters in the text", m->name);
                                check_param(m, p, s, (size_t)(e - s));
                                p++;
                                s = comma ? comma + 1 : close;
                                while (*s == ' ')
                                        s++;
                        }
                        ck_assert_msg(p->name == NULL, "%s: %s is not in the text", m->name, p->name);
                }
                if (!strchr(line, '\n'))
                        break;
        }
        ck_assert_uint_eq(in_text, in_table);
}

START_TEST(test_table_matches_text)
{
        check_interface("io.plughost");
        check_interface("org.varlink.service");
}
END_TEST

/* Each error name is declared in its interface's text. */
START_TEST(test_errors_declared)
{
        for (int e = PH_VERR_NONE + 1; e < _PH_VERR_MAX; e++) {
                const char *name = ph_varlink_error_name((ph_verr)e);
                const char *dot = strrchr(name, '.');
                char *iface = strf("%.*s", (int)(dot - name), name);
                char *decl = strf("\nerror %s (", dot + 1);
                const char *text = ph_varlink_interface_description(iface);

                ck_assert_ptr_nonnull(text);
                ck_assert_msg(strstr(text, decl) != NULL, "%s is not declared", name);
                free(iface);
                free(decl);
        }
}
END_TEST

START_TEST(test_table_shape)
{
        ck_assert_uint_eq(ph_methods_count, _PH_M_MAX);
        for (size_t i = 0; i < ph_methods_count; i++) {
                const ph_method *m = &ph_methods[i];
                bool write = strcmp(m->name, "io.plughost.Load") == 0 ||
                             strcmp(m->name, "io.plughost.Unload") == 0 ||
                             strcmp(m->name, "io.plughost.Call") == 0 ||
                             strcmp(m->name, "io.plughost.Rescan") == 0;
                bool monitor = strcmp(m->name, "io.plughost.Monitor") == 0;
                bool streams = monitor || strcmp(m->name, "io.plughost.List") == 0 ||
                               strcmp(m->name, "io.plughost.Query") == 0;

                ck_assert_int_eq(m->id, (int)i);
                ck_assert_msg(!!(m->flags & PH_METHOD_WRITE) == write, "%s write flag", m->name);
                ck_assert_msg(!!(m->flags & PH_METHOD_MORE) == streams, "%s more flag", m->name);
                ck_assert_msg(!!(m->flags & PH_METHOD_ENDLESS) == monitor, "%s endless flag", m->name);
                ck_assert_msg(!!(m->flags & PH_METHOD_NEEDS_MORE) == monitor, "%s needs-more flag", m->name);
                ck_assert_ptr_null(m->params[PH_METHOD_PARAMS_MAX - 1].name);
        }
        ck_assert_ptr_null(ph_method_find("io.plughost"));
        ck_assert_ptr_null(ph_method_find(NULL));
        ck_assert_int_eq(ph_method_find("io.plughost.Call")->params[2].type, PH_PARAM_OBJECT);
        ck_assert(!ph_method_find("io.plughost.Call")->params[2].required);
}
END_TEST

/* Every byte value goes out and back; either case comes in; the first
 * character that is not a digit stops decoding there. */
START_TEST(test_hex)
{
        unsigned char in[256], out[256];
        char text[2 * 256 + 1];

        for (int i = 0; i < 256; i++)
                in[i] = (unsigned char)i;
        ph_hex_encode(in, sizeof(in), text);
        ck_assert_uint_eq(strlen(text), 512);
        ck_assert(strncmp(text, "000102", 6) == 0);
        ck_assert_str_eq(text + 500, "fafbfcfdfeff");
        ck_assert_int_eq(ph_hex_decode(text, sizeof(out), out), 0);
        ck_assert(memcmp(in, out, sizeof(in)) == 0);

        ck_assert_int_eq(ph_hex_decode("AbCdEf09", 4, out), 0);
        ck_assert(memcmp(out, "\xab\xcd\xef\x09", 4) == 0);
        for (size_t bad = 0; bad < 8; bad++) {
                char s[9] = "a0a0a0a0";

                s[bad] = bad % 2 ? 'g' : ' ';
                ck_assert_int_eq(ph_hex_decode(s, 4, out), -EINVAL);
        }
        /* Stops at the NUL: an odd digit count never reads past the string. */
        ck_assert_int_eq(ph_hex_decode("a", 1, out), -EINVAL);
        ck_assert_int_eq(ph_hex_decode("", 1, out), -EINVAL);
        ph_hex_encode(in, 0, text);
        ck_assert_str_eq(text, "");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("varlink");
        TCase *framing = tcase_create("framing");
        TCase *requests = tcase_create("requests");
        TCase *replies = tcase_create("replies");
        TCase *service = tcase_create("service");

        tcase_set_timeout(framing, 20);
        tcase_add_test(framing, test_framer_split_everywhere);
        tcase_add_test(framing, test_framer_several_in_one_feed);
        tcase_add_test(framing, test_framer_empty_messages);
        tcase_add_test(framing, test_framer_pipelined);
        tcase_add_test(framing, test_framer_cap);
        tcase_add_test(framing, test_framer_default_cap);
        tcase_add_test(framing, test_framer_full_of_complete);
        tcase_add_test(framing, test_framer_scan_is_linear);
        tcase_add_test(framing, test_framer_binary_garbage);
        suite_add_tcase(s, framing);

        tcase_add_test(requests, test_request_envelope);
        tcase_add_test(requests, test_request_unknown_names);
        tcase_add_test(requests, test_request_parameters);
        tcase_add_test(requests, test_request_string_limits);
        tcase_add_test(requests, test_request_flags);
        tcase_add_test(requests, test_request_optional_null_dropped);
        tcase_add_test(requests, test_request_table_driven);
        tcase_add_test(requests, test_request_hostile_json);
        suite_add_tcase(s, requests);

        tcase_add_test(replies, test_reply);
        tcase_add_test(replies, test_reply_cap);
        tcase_add_test(replies, test_error);
        tcase_add_test(replies, test_errorf_text);
        tcase_add_test(replies, test_error_names);
        tcase_add_test(replies, test_error_from_errno);
        tcase_add_test(replies, test_hex);
        suite_add_tcase(s, replies);

        tcase_add_test(service, test_get_info);
        tcase_add_test(service, test_interface_description);
        tcase_add_test(service, test_table_matches_text);
        tcase_add_test(service, test_errors_declared);
        tcase_add_test(service, test_table_shape);
        suite_add_tcase(s, service);

        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
