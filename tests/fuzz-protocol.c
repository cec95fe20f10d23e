/* libFuzzer target for the protocol layer: one connection's bytes go through
 * a ph_framer in chunks whose sizes come from the input, every complete
 * message through ph_request_parse, and each gets a reply (its parameters
 * echoed) or an error. The framer is checked against a model of the stream;
 * every produced message must be NUL-terminated JSON within
 * PH_VARLINK_MESSAGE_MAX that jansson reads back. A violation aborts.
 * Input layout, seeds and how they were made: tests/fuzz-seeds-protocol/README. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw-walk.h"
#include "varlink.h"
#include "varlink-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "fuzz-protocol: invariant violated: %s (%s:%d)\n", \
                                #cond, __FILE__, __LINE__);                    \
                        abort();                                               \
                }                                                              \
        } while (0)

/* Header bytes before the stream: a seed for the chunk sizes (2), the
 * message cap, chunk size class and take policy (1), min_free (1). */
#define HEADER_SIZE 4

enum take_policy {
        TAKE_ALL,               /* every complete message after each read */
        TAKE_ONE,               /* one message per read: a pipeline limit */
        TAKE_LAZY,              /* only when the framer says -ENOBUFS */
        TAKE_RANDOM,            /* none, one or all, by the chunk generator */
};

/* Malloc returns NULL under ASan only with allocator_may_return_null=1;
 * otherwise an -ENOMEM is some other failure reported as one. */
static bool enomem_possible;

typedef struct conn {
        ph_framer *framer;
        size_t max;             /* the framer's cap */
        const uint8_t *stream;  /* the connection's bytes */
        size_t fed;             /* bytes committed to the framer */
        size_t taken;           /* bytes returned by next, NULs included */
        bool dead;              /* -EMSGSIZE: the connection is dropped */
        uint32_t rng;
} conn;

static uint32_t rng_next(conn *c)
{
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 17;
        c->rng ^= c->rng << 5;
        return c->rng;
}

/* A message as the daemon sends it: NUL-terminated compact JSON, an object
 * with an object "parameters", within the cap. Returns the parsed root. */
static json_t *check_message(const char *msg, size_t len)
{
        json_error_t jerr;
        json_t *root;

        CHECK(msg != NULL && len >= 1 && len <= PH_VARLINK_MESSAGE_MAX);
        CHECK(msg[len - 1] == '\0' && strlen(msg) == len - 1);
        root = json_loadb(msg, len - 1, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                fprintf(stderr, "fuzz-protocol: jansson: %s in %s\n", jerr.text, msg);
        CHECK(root != NULL && json_is_object(root));
        CHECK(json_is_object(json_object_get(root, "parameters")));
        return root;
}

static void check_enomem(int r)
{
        CHECK(r != -ENOMEM || enomem_possible);
}

/* Only declared parameters, of their types and sizes, no nulls, the
 * required ones present. */
static void check_request(const ph_request *req)
{
        const ph_method *m = req->method;
        const char *key;
        json_t *v;

        CHECK(m != NULL && ph_method_find(m->name) == m && json_is_object(req->parameters));
        CHECK(!(req->oneway && req->more));
        CHECK(!req->more || (m->flags & PH_METHOD_MORE));
        json_object_foreach(req->parameters, key, v) {
                const ph_param *p = m->params;

                while (p < m->params + PH_METHOD_PARAMS_MAX && p->name && strcmp(p->name, key) != 0)
                        p++;
                CHECK(p < m->params + PH_METHOD_PARAMS_MAX && p->name);
                CHECK(!json_is_null(v));
                switch (p->type) {
                case PH_PARAM_STRING:
                        CHECK(json_is_string(v) &&
                              json_string_length(v) == strlen(json_string_value(v)) &&
                              json_string_length(v) <= (p->max_len ? p->max_len
                                                                   : PH_VARLINK_STRING_MAX));
                        break;
                case PH_PARAM_INT:
                        CHECK(json_is_integer(v));
                        break;
                case PH_PARAM_BOOL:
                        CHECK(json_is_boolean(v));
                        break;
                case PH_PARAM_OBJECT:
                        CHECK(json_is_object(v));
                        break;
                }
        }
        for (const ph_param *p = m->params; p < m->params + PH_METHOD_PARAMS_MAX && p->name; p++)
                CHECK(!p->required || json_object_get(req->parameters, p->name));
}

static void reply_ok(const ph_request *req)
{
        char *out;
        size_t len;
        json_t *root;
        int r;

        r = ph_varlink_reply(json_incref(req->parameters), req->more, &out, &len);
        check_enomem(r);
        if (r < 0)
                return;
        root = check_message(out, len);
        CHECK(json_equal(json_object_get(root, "parameters"), req->parameters));
        CHECK(json_is_true(json_object_get(root, "continues")) == req->more);
        CHECK(!json_object_get(root, "error"));
        json_decref(root);
        free(out);
}

/* The echo padded with a string to within a few bytes of
 * PH_VARLINK_MESSAGE_MAX, on either side: the reply is refused with
 * -EMSGSIZE exactly when it would not fit. */
static void reply_big(const ph_request *req, uint32_t rnd)
{
        json_t *params, *pad;
        size_t base, want, len;
        char *out, *text;
        int r;

        params = json_pack("{s:O,s:s}", "echo", req->parameters, "pad", "");
        CHECK(params != NULL);
        base = json_dumpb(params, NULL, 0, JSON_COMPACT) + sizeof("{\"parameters\":}") - 1;
        /* base + pad bytes + the NUL, from MESSAGE_MAX - 2 to + 2. */
        want = PH_VARLINK_MESSAGE_MAX - 1 - base - 2 + rnd % 5;
        text = malloc(want);
        CHECK(text != NULL);
        memset(text, 'x', want);
        pad = json_stringn_nocheck(text, want);
        free(text);
        CHECK(pad != NULL && json_object_set_new(params, "pad", pad) == 0);
        len = json_dumpb(params, NULL, 0, JSON_COMPACT) + sizeof("{\"parameters\":}") - 1;
        CHECK(len == base + want);
        r = ph_varlink_reply(params, false, &out, &len);
        check_enomem(r);
        if (r == -ENOMEM)
                return;
        if (base + want + 1 > PH_VARLINK_MESSAGE_MAX) {
                CHECK(r == -EMSGSIZE);
                return;
        }
        CHECK(r == 0 && len == base + want + 1);
        json_decref(check_message(out, len));
        free(out);
}

/* The error's name fits the refusal, and the name it echoes (of a
 * parameter, an interface or a method) is a string cut to 255 bytes. */
static void check_refusal(int r, json_t *root)
{
        const char *name = json_string_value(json_object_get(root, "error"));
        json_t *params = json_object_get(root, "parameters");
        const char *key;
        json_t *echo;

        CHECK(name != NULL);
        if (strcmp(name, "org.varlink.service.InvalidParameter") == 0)
                key = "parameter";
        else if (strcmp(name, "org.varlink.service.InterfaceNotFound") == 0)
                key = "interface";
        else if (strcmp(name, "org.varlink.service.MethodNotFound") == 0)
                key = "method";
        else
                key = NULL;
        if (r == -EBADMSG)
                CHECK(key && strcmp(key, "parameter") == 0);
        else if (r == -ENOENT)
                CHECK(key && strcmp(key, "parameter") != 0);
        else
                CHECK(key ? strcmp(key, "parameter") == 0
                          : strcmp(name, "org.varlink.service.ExpectedMore") == 0);
        if (!key)
                return;
        echo = json_object_get(params, key);
        CHECK(json_is_string(echo) && json_string_length(echo) <= 255);
}

/* The refusal ph_request_parse built, then one of our own with the raw
 * message in it: bytes that are not UTF-8 become '?', and it is cut. */
static void reply_refused(int r, const char *msg, size_t len, char *err, size_t err_len)
{
        static const char prefix[] = "refused: ";
        const char *text;
        json_t *root;
        char *out;
        size_t out_len, n;

        root = check_message(err, err_len);
        check_refusal(r, root);
        json_decref(root);
        free(err);

        r = ph_varlink_errorf(ph_varlink_error_from_errno(r), NULL, &out, &out_len,
                              "%s%.*s", prefix, (int)len, msg);
        check_enomem(r);
        if (r < 0)
                return;
        root = check_message(out, out_len);
        text = json_string_value(json_object_get(json_object_get(root, "parameters"), "message"));
        CHECK(text != NULL);
        n = strlen(text);
        CHECK(n <= PH_VARLINK_STRING_MAX && n <= sizeof(prefix) - 1 + len);
        CHECK(memcmp(text, prefix, sizeof(prefix) - 1) == 0);
        for (size_t i = sizeof(prefix) - 1; i < n; i++)
                CHECK(text[i] == msg[i - (sizeof(prefix) - 1)] || text[i] == '?');
        json_decref(root);
        free(out);
}

/* The writer against jansson: the request's parameters written through
 * its primitives, and the raw message as one string (bytes that are not
 * UTF-8 become '?' in both), byte for byte. */
static void check_writer(const char *msg, size_t len, const json_t *params)
{
        char *want, *got, *copy;
        size_t got_len;
        json_t *j;
        ph_jw w;
        int r;

        if (params) {
                want = json_dumps(params, JSON_COMPACT);
                ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
                jw_walk(&w, params);
                r = ph_jw_finish(&w, &got, &got_len);
                check_enomem(r);
                if (want && r == 0) {
                        CHECK(strcmp(want, got) == 0 && got_len == strlen(want) + 1);
                        free(got);
                }
                free(want);
        }
        if (!(copy = malloc(len + 1)))
                return;
        memcpy(copy, msg, len);
        copy[len] = '\0';
        ph__utf8_sanitise(copy, len);
        j = json_stringn(copy, len);
        want = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX + 8 * len);
        ph_jw_stringn(&w, msg, len);
        r = ph_jw_finish(&w, &got, &got_len);
        check_enomem(r);
        if (want && r == 0)
                CHECK(strcmp(want, got) == 0);
        if (r == 0)
                free(got);
        free(want);
        json_decref(j);
        free(copy);
}

static void handle_message(conn *c, const char *msg, size_t len)
{
        ph_request req;
        char *err;
        size_t err_len;
        int r;

        r = ph_request_parse(msg, len, &req, &err, &err_len);
        check_enomem(r);
        check_writer(msg, len, r == 0 ? req.parameters : NULL);
        if (r == 0) {
                CHECK(err == NULL && err_len == 0);
                check_request(&req);
                reply_ok(&req);
                /* Costly: for about one message in 16. */
                if (rng_next(c) % 16 == 0)
                        reply_big(&req, rng_next(c));
                ph_request_clear(&req);
                CHECK(req.method == NULL && req.parameters == NULL);
                return;
        }
        CHECK(req.method == NULL && req.parameters == NULL && !req.oneway && !req.more);
        if (r == -ENOMEM) {
                CHECK(err == NULL);
                return;
        }
        CHECK(r == -EBADMSG || r == -ENOENT || r == -EINVAL);
        reply_refused(r, msg, len, err, err_len);
}

/* The stream's pending bytes hold no message the framer should return. */
static bool model_no_message(const conn *c)
{
        size_t pending = c->fed - c->taken;

        return pending < c->max && !memchr(c->stream + c->taken, '\0', pending);
}

/* The next message is over the cap: no NUL in the first max bytes. */
static bool model_oversize(const conn *c)
{
        size_t pending = c->fed - c->taken;

        return pending >= c->max && !memchr(c->stream + c->taken, '\0', c->max);
}

/* Takes one message; returns 1, 0 when none is complete, or -1 when the
 * connection is dropped. */
static int take_one(conn *c)
{
        const char *msg;
        size_t len;
        int r;

        r = ph_framer_next(c->framer, &msg, &len);
        if (r == 0) {
                CHECK(model_no_message(c));
                return 0;
        }
        if (r < 0) {
                CHECK(r == -EMSGSIZE && model_oversize(c));
                c->dead = true;
                return -1;
        }
        CHECK(r == 1 && len < c->max && c->taken + len < c->fed);
        CHECK(!memchr(msg, '\0', len) && msg[len] == '\0');
        CHECK(memcmp(msg, c->stream + c->taken, len) == 0 && c->stream[c->taken + len] == '\0');
        c->taken += len + 1;
        CHECK(ph_framer_pending(c->framer) == c->fed - c->taken);
        handle_message(c, msg, len);
        return 1;
}

static int take_all(conn *c)
{
        int n = 0, r;

        while ((r = take_one(c)) > 0)
                n++;
        return r < 0 ? -1 : n;
}

static void run(conn *c, size_t size, unsigned chunk_class, unsigned policy, size_t min_free)
{
        size_t want = min_free == 0 ? 1 : min_free > c->max ? c->max : min_free;

        while (c->fed < size && !c->dead) {
                size_t avail, pending = c->fed - c->taken, n;
                char *buf;
                int r;

                r = ph_framer_reserve(c->framer, min_free, &buf, &avail);
                check_enomem(r);
                if (r == -ENOMEM)
                        return;
                if (r == -EMSGSIZE) {
                        CHECK(model_oversize(c));
                        return;
                }
                if (r == -ENOBUFS) {
                        /* At the cap with complete messages: taking them is
                         * always enough to make room. */
                        CHECK(pending == c->max && memchr(c->stream + c->taken, '\0', pending));
                        CHECK(take_all(c) > 0);
                        continue;
                }
                CHECK(r == 0 && avail > 0 && pending + avail <= c->max);
                CHECK(avail >= want || pending + avail == c->max);
                n = 1 + rng_next(c) % (1u << (2 * chunk_class));
                if (n > avail)
                        n = avail;
                if (n > size - c->fed)
                        n = size - c->fed;
                /* The whole space is writable (ASan checks its last byte);
                 * NULs just past what is committed must never be taken for
                 * delimiters. */
                buf[avail - 1] = '\0';
                memset(buf + n, 0, avail - n < 64 ? avail - n : 64);
                memcpy(buf, c->stream + c->fed, n);
                ph_framer_commit(c->framer, n);
                c->fed += n;
                CHECK(ph_framer_pending(c->framer) == c->fed - c->taken);

                switch (policy == TAKE_RANDOM ? rng_next(c) % 3 : policy) {
                case TAKE_ALL:
                        take_all(c);
                        break;
                case TAKE_ONE:
                        take_one(c);
                        break;
                default:
                        break;
                }
        }
        /* End of the stream: every complete message comes out. */
        if (!c->dead)
                take_all(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        const char *opts = getenv("ASAN_OPTIONS");

        enomem_possible = opts && strstr(opts, "allocator_may_return_null=1");
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const size_t caps[8] = {
                4096, 4096, 4096, PH_VARLINK_MESSAGE_MAX, 1024, 256, 64, 16,
        };
        conn c = { 0 };
        unsigned chunk_class, policy;
        size_t min_free;

        if (size < HEADER_SIZE)
                return 0;
        c.rng = (uint32_t)data[0] | (uint32_t)data[1] << 8 | 0x10000u;
        c.max = caps[data[2] & 7];
        chunk_class = (data[2] >> 3) & 7;
        policy = data[2] >> 6;
        min_free = data[3] == 0 ? 0 : (size_t)1 << (data[3] % 18);
        c.stream = data + HEADER_SIZE;
        CHECK(ph_framer_new(c.max, &c.framer) == 0);
        run(&c, size - HEADER_SIZE, chunk_class, policy, min_free);
        ph_framer_free(c.framer);
        return 0;
}
