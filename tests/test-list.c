/* Tests of List at scale, on the real plughostd: the whole list, pages
 * (limit/after/next) and the stream ("more"), each against the others;
 * cursors that name nothing; a client that does not read its stream; a
 * stream while files go. Thousands of files are copies of one plugin under
 * other file names: one plugin wins the name, the others are shadowed and
 * listed as rejected, which is what makes a list long. Query needs
 * plugins of their own: copies of hello with the name in the note
 * patched, all providing one interface. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon-util.h"
#include "testutil.h"

/* Enough that the whole list passes one message (1 MiB) and a stream is
 * many parts and more than the daemon's write window (256 KiB). */
#define N_COPIES 3000

static du_daemon D;

static char *copy_name(unsigned i)
{
        char *name;

        /* Long names (some 200 bytes): long entries, so few files make a
         * long list. */
        ck_assert_int_ge(asprintf(&name, "copy-%05u-%0180u.so", i, 0), 0);
        return name;
}

static void setup_with(const char *config)
{
        du_init(&D);
        if (config)
                du_write_config(&D, config);
        du_add_plugin(&D, tu_example("upper.so"), "upper.so");
        for (unsigned i = 0; i < N_COPIES; i++) {
                char *name = copy_name(i);

                du_add_plugin(&D, tu_example("hello.so"), name);
                free(name);
        }
        du_start(&D);
}

static void setup(void)
{
        setup_with(NULL);
}

/* All connections together may hold 2 MiB: a few unread streams pass it. */
static void setup_small_total(void)
{
        setup_with("[Daemon]\nMaxBufferTotal=2M\n");
}

/* A connection may hold 64 KiB: the daemon makes a part (16 KiB) at a
 * time, and the socket takes each one whole. */
static void setup_small_window(void)
{
        setup_with("[Daemon]\nMaxBufferPerConnection=64K\n");
}

/* Plugins h0000.. h2999: hello under names of its own, all providing
 * org.example.Greeter, of one priority; one in seven (h0003, h0010, ...)
 * is version 1.0.1, the others 1.0.0. Best first: the 1.0.1s by name,
 * then the 1.0.0s by name. */
#define N_RANKED 3000

static void ranked_write(unsigned from, unsigned to)
{
        static const char key[] = "\"name\":\"hello\"", vkey[] = "\"version\":\"1.0.0\"";
        size_t size;
        unsigned char *img = tu_read_file(tu_example("hello.so"), &size), *at, *ver;

        at = memmem(img, size, key, sizeof(key) - 1);
        ck_assert_ptr_nonnull(at);
        ck_assert_ptr_null(memmem(at + 1, size - (size_t)(at + 1 - img), key, sizeof(key) - 1));
        at += strlen("\"name\":\"");
        ver = memmem(img, size, vkey, sizeof(vkey) - 1);
        ck_assert_ptr_nonnull(ver);
        ver += sizeof(vkey) - 3;        /* the last digit */
        for (unsigned i = from; i < to; i++) {
                char name[16], *path, *tmp;

                snprintf(name, sizeof(name), "h%04u", i);
                memcpy(at, name, 5);
                *ver = i % 7 == 3 ? '1' : '0';
                ck_assert_int_ge(asprintf(&tmp, "%s/.%s.tmp", D.plugins, name), 0);
                path = tu_path(D.plugins, name);
                tu_write_file(tmp, img, size);
                ck_assert_int_eq(rename(tmp, path), 0);
                free(tmp);
                free(path);
        }
        free(img);
}

static void setup_ranked(void)
{
        du_init(&D);
        ranked_write(0, N_RANKED);
        du_start(&D);
}

/* The same, with the smallest MaxBufferPerConnection= (64 KiB). */
static void setup_ranked_small(void)
{
        du_init(&D);
        du_write_config(&D, "[Daemon]\nMaxBufferPerConnection=64K\n");
        ranked_write(0, N_RANKED);
        du_start(&D);
}

static void teardown(void)
{
        du_stop(&D);
}

/* All entries of a list, as two arrays. */
typedef struct listing {
        json_t *plugins, *rejected;
        unsigned replies;
} listing;

static void listing_init(listing *l)
{
        l->plugins = json_array();
        l->rejected = json_array();
        l->replies = 0;
}

static void listing_clear(listing *l)
{
        json_decref(l->plugins);
        json_decref(l->rejected);
}

static void listing_add(listing *l, json_t *params)
{
        json_t *p = json_object_get(params, "plugins"), *r = json_object_get(params, "rejected");

        ck_assert(json_is_array(p) && json_is_array(r));
        ck_assert_int_eq(json_array_extend(l->plugins, p), 0);
        ck_assert_int_eq(json_array_extend(l->rejected, r), 0);
        l->replies++;
}

/* Names, then paths, strictly ascending: none twice, none out of order. */
static void listing_check_order(const listing *l)
{
        const char *prev = "";
        json_t *e;
        size_t i;

        json_array_foreach(l->plugins, i, e) {
                ck_assert_msg(strcmp(prev, du_str(e, "name")) < 0, "%s then %s", prev, du_str(e, "name"));
                prev = du_str(e, "name");
        }
        prev = "";
        json_array_foreach(l->rejected, i, e) {
                ck_assert_msg(strcmp(prev, du_str(e, "file")) < 0, "%s then %s", prev, du_str(e, "file"));
                prev = du_str(e, "file");
        }
}

static void listing_assert_equal(const listing *a, const listing *b)
{
        ck_assert_uint_eq(json_array_size(a->plugins), json_array_size(b->plugins));
        ck_assert_uint_eq(json_array_size(a->rejected), json_array_size(b->rejected));
        ck_assert(json_equal(a->plugins, b->plugins));
        ck_assert(json_equal(a->rejected, b->rejected));
}

/* Reads a stream to its end (a reply without "continues"), handing each
 * reply's parameters to add. */
static void stream_each(du_conn *c, void (*add)(void *ctx, json_t *params), void *ctx)
{
        json_t *r;

        for (;;) {
                r = du_recv(c);
                ck_assert_ptr_nonnull(r);
                ck_assert_msg(du_error(r) == NULL, "stream error: %s", du_error(r));
                add(ctx, du_params(r));
                if (!json_is_true(json_object_get(r, "continues"))) {
                        json_decref(r);
                        return;
                }
                json_decref(r);
        }
}

static void listing_add_cb(void *l, json_t *params)
{
        listing_add(l, params);
}

static void stream_read(du_conn *c, listing *l)
{
        stream_each(c, listing_add_cb, l);
}

static void stream_list(listing *l)
{
        du_conn *c = du_connect(&D);

        du_send(c, "{\"method\":\"io.plughost.List\",\"more\":true}");
        stream_read(c, l);
        du_close(c);
}

/* Pages of limit entries from after (NULL: the start) to the end. */
static void page_list(unsigned limit, const char *after, listing *l)
{
        char *cursor = after ? strdup(after) : NULL;

        for (;;) {
                json_t *r, *next, *cur = cursor ? json_string(cursor) : json_null();
                char *cur_text = json_dumps(cur, JSON_ENCODE_ANY);
                size_t before = json_array_size(l->plugins) + json_array_size(l->rejected);

                r = du_requestf(&D, "{\"method\":\"io.plughost.List\",\"parameters\":"
                                    "{\"limit\":%u,\"after\":%s}}", limit, cur_text);
                free(cur_text);
                json_decref(cur);
                ck_assert_msg(du_error(r) == NULL, "page error: %s", du_error(r));
                listing_add(l, du_params(r));
                ck_assert_uint_le(json_array_size(l->plugins) + json_array_size(l->rejected) - before, limit);
                next = json_object_get(du_params(r), "next");
                free(cursor);
                cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
                json_decref(r);
                if (!cursor)
                        break;
                ck_assert_uint_le(l->replies, 2 * N_COPIES + 2);
        }
}

START_TEST(test_whole_is_too_large)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.List\"}");

        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "\"more\""));
        du_assert_error(&D, r, "io.plughost.ReplyTooLarge");     /* (releases r) */
        /* A page of one fits, and says where to go on from. */
        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":1}}");
        ck_assert_ptr_null(du_error(r));
        ck_assert_uint_eq(json_array_size(json_object_get(du_params(r), "plugins")), 1);
        ck_assert_str_eq(du_str(du_params(r), "next"), "hello");
        json_decref(r);
}
END_TEST

START_TEST(test_stream_and_pages_agree)
{
        listing streamed, paged, big;

        listing_init(&streamed);
        stream_list(&streamed);
        ck_assert_uint_eq(json_array_size(streamed.plugins), 2);
        ck_assert_uint_eq(json_array_size(streamed.rejected), N_COPIES - 1);
        ck_assert_uint_gt(streamed.replies, 4);
        listing_check_order(&streamed);

        listing_init(&paged);
        page_list(7, NULL, &paged);
        listing_check_order(&paged);
        listing_assert_equal(&streamed, &paged);

        /* Pages as large as asked for stop short of the message cap. */
        listing_init(&big);
        page_list(N_COPIES * 2, NULL, &big);
        ck_assert_uint_gt(big.replies, 1);
        listing_assert_equal(&streamed, &big);
        listing_clear(&streamed);
        listing_clear(&paged);
        listing_clear(&big);
}
END_TEST

START_TEST(test_cursors)
{
        listing l;
        json_t *r;
        char *last;

        /* A name that is not there: the list goes on after where it would be. */
        listing_init(&l);
        page_list(5, "i", &l);
        ck_assert_uint_eq(json_array_size(l.plugins), 1);
        ck_assert_str_eq(du_str(json_array_get(l.plugins, 0), "name"), "upper");
        ck_assert_uint_eq(json_array_size(l.rejected), N_COPIES - 1);
        listing_clear(&l);
        /* Past every name: the rejected files, from the first. */
        listing_init(&l);
        page_list(100, "zzzz", &l);
        ck_assert_uint_eq(json_array_size(l.plugins), 0);
        ck_assert_uint_eq(json_array_size(l.rejected), N_COPIES - 1);
        listing_clear(&l);
        /* A path: rejected files after it. */
        listing_init(&l);
        page_list(100, "/", &l);
        ck_assert_uint_eq(json_array_size(l.plugins), 0);
        ck_assert_uint_eq(json_array_size(l.rejected), N_COPIES - 1);
        last = strdup(du_str(json_array_get(l.rejected, N_COPIES - 2), "file"));
        listing_clear(&l);
        /* After the last one: nothing, and no next. */
        r = du_requestf(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":3,\"after\":\"%s\"}}",
                        last);
        ck_assert_ptr_null(du_error(r));
        ck_assert_uint_eq(json_array_size(json_object_get(du_params(r), "rejected")), 0);
        ck_assert_ptr_null(json_object_get(du_params(r), "next"));
        json_decref(r);
        free(last);
        /* A limit below 1 is refused. */
        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":0}}");
        ck_assert_str_eq(du_str(du_params(r), "parameter"), "limit");
        du_assert_error(&D, r, "org.varlink.service.InvalidParameter");
        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":-3}}");
        du_assert_error(&D, r, "org.varlink.service.InvalidParameter");
        /* A stream from a cursor, with a limit. */
        {
                du_conn *c = du_connect(&D);

                listing_init(&l);
                du_send(c, "{\"method\":\"io.plughost.List\",\"parameters\":{\"after\":\"hello\",\"limit\":10},"
                           "\"more\":true}");
                stream_read(c, &l);
                ck_assert_uint_eq(json_array_size(l.plugins), 1);
                ck_assert_uint_eq(json_array_size(l.rejected), 9);
                listing_clear(&l);
                du_close(c);
        }
}
END_TEST

/* Status's bufferedBytes while a client does not read its stream. */
static long long buffered(void)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
        long long n = du_int(du_params(r), "bufferedBytes");

        json_decref(r);
        return n;
}

START_TEST(test_stream_reader_that_does_not_read)
{
        du_conn *c = du_connect(&D);
        listing l;
        long long held;

        du_send(c, "{\"method\":\"io.plughost.List\",\"more\":true}");
        usleep(500 * 1000);
        /* The daemon made what fits its window and the socket, not the
         * whole list (over 1 MiB). */
        held = buffered();
        ck_assert_msg(held < 600 * 1024, "the daemon holds %lld bytes for a client that does not read",
                      held);
        /* Other clients are served meanwhile, and the stream is whole. */
        listing_init(&l);
        stream_read(c, &l);
        ck_assert_uint_eq(json_array_size(l.rejected), N_COPIES - 1);
        listing_check_order(&l);
        listing_clear(&l);
        du_close(c);
        /* A stream whose client goes away in the middle costs nothing after. */
        c = du_connect(&D);
        du_send(c, "{\"method\":\"io.plughost.List\",\"more\":true}");
        json_decref(du_recv(c));
        du_close(c);
        for (int i = 0; i < 50 && buffered() > 64 * 1024; i++)
                usleep(20 * 1000);
        ck_assert_int_lt(buffered(), 64 * 1024);
}
END_TEST

/* plughostctl list asks for a stream: a list no single reply holds. */
START_TEST(test_ctl_list)
{
        const char *b = getenv("PH_BUILDDIR");
        char ctl[4096], *out = NULL;
        char *const argv[] = { ctl, "--json", "-s", D.socket, "list", NULL };
        json_t *j;

        ck_assert_ptr_nonnull(b);
        snprintf(ctl, sizeof(ctl), "%s/plughostctl", b);
        ck_assert_int_eq(tu_run(argv, &out), 0);
        j = json_loads(out, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_uint_eq(json_array_size(json_object_get(j, "plugins")), 2);
        ck_assert_uint_eq(json_array_size(json_object_get(j, "rejected")), N_COPIES - 1);
        json_decref(j);
        free(out);
}
END_TEST

START_TEST(test_stream_while_files_go)
{
        du_conn *c = du_connect(&D);
        listing l;
        json_t *r;

        listing_init(&l);
        du_send(c, "{\"method\":\"io.plughost.List\",\"more\":true}");
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        listing_add(&l, du_params(r));
        ck_assert(json_is_true(json_object_get(r, "continues")));
        json_decref(r);
        /* Half of the files go while the stream is under way. */
        for (unsigned i = 0; i < N_COPIES; i += 2) {
                char *name = copy_name(i), *path = tu_path(D.plugins, name);

                ck_assert_int_eq(unlink(path), 0);
                free(path);
                free(name);
        }
        r = du_request(&D, "{\"method\":\"io.plughost.Rescan\"}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        stream_read(c, &l);
        /* In order, none twice, and it ended. */
        listing_check_order(&l);
        ck_assert_uint_le(json_array_size(l.rejected), N_COPIES - 1);
        ck_assert_uint_ge(json_array_size(l.rejected), N_COPIES / 2 - 1);
        listing_clear(&l);
        du_close(c);
}
END_TEST

/* A file name that is not UTF-8 is sent with '?' for its bytes: as a
 * cursor it would name another place (and a pager would go round for
 * ever), so "next" encodes it, and it comes back to the same place. */
START_TEST(test_cursor_not_utf8)
{
        static const char *const odd[] = { "zz\xc3.so", "zz\xff\x01.so" };
        char *from, *path;
        listing l;
        json_t *r;

        for (size_t i = 0; i < 2; i++) {
                path = tu_path(D.plugins, odd[i]);
                tu_write_file(path, "not an ELF file\n", 16);
                free(path);
        }
        r = du_request(&D, "{\"method\":\"io.plughost.Rescan\"}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        from = tu_path(D.plugins, "copy-99999");
        listing_init(&l);
        page_list(1, from, &l);
        ck_assert_uint_eq(json_array_size(l.rejected), 2);
        ck_assert_uint_eq(l.replies, 2);
        ck_assert_str_eq(strrchr(du_str(json_array_get(l.rejected, 0), "file"), '/'), "/zz?.so");
        ck_assert_str_eq(strrchr(du_str(json_array_get(l.rejected, 1), "file"), '/'), "/zz?\x01.so");
        listing_clear(&l);
        free(from);
        /* A cursor that is not one this daemon makes. */
        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":1,\"after\":\"%zz\"}}");
        ck_assert_str_eq(du_str(du_params(r), "parameter"), "after");
        du_assert_error(&D, r, "org.varlink.service.InvalidParameter");
        /* The longest path, as hex, is a cursor too (not a string too long). */
        {
                char *after = malloc(2 * (4096 + 1 + 255) + 2);

                after[0] = '%';
                for (size_t i = 0; i < 4096 + 1 + 255; i++)
                        memcpy(after + 1 + 2 * i, i == 0 ? "2f" : "61", 2);
                after[1 + 2 * (4096 + 1 + 255)] = '\0';
                r = du_requestf(&D, "{\"method\":\"io.plughost.List\",\"parameters\":"
                                    "{\"limit\":1,\"after\":\"%s\"}}", after);
                ck_assert_msg(du_error(r) == NULL, "%s", du_error(r));
                json_decref(r);
                free(after);
        }
}
END_TEST

/* Unread streams pass MaxBufferTotal: the biggest holders go, and what
 * they still hold on its way out takes nobody else with them. */
START_TEST(test_total_cap_spares_small_clients)
{
        du_conn *c[12];
        json_t *r;

        for (size_t i = 0; i < 12; i++) {
                c[i] = du_connect(&D);
                du_send(c[i], "{\"method\":\"io.plughost.List\",\"more\":true}");
        }
        usleep(300 * 1000);
        for (int i = 0; i < 20; i++) {
                r = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
                ck_assert_msg(du_error(r) == NULL, "Status %d: %s", i, du_error(r));
                json_decref(r);
                usleep(20 * 1000);
        }
        for (size_t i = 0; i < 12; i++)
                du_close(c[i]);
}
END_TEST

/* A client that reads as fast as the daemon writes: every part goes to
 * the socket at once, and the next must still be made (nothing waits on
 * a write to finish). */
START_TEST(test_stream_fast_reader)
{
        listing l;

        listing_init(&l);
        stream_list(&l);
        listing_check_order(&l);
        ck_assert_uint_eq(json_array_size(l.plugins), 2);
        ck_assert_uint_eq(json_array_size(l.rejected), N_COPIES - 1);
        ck_assert_uint_gt(l.replies, 10);
        listing_clear(&l);
}
END_TEST

static void query_add(void *all, json_t *params)
{
        json_t *p = json_object_get(params, "plugins");

        ck_assert(json_is_array(p));
        ck_assert_int_eq(json_array_extend(all, p), 0);
}

/* The plugins of a Query stream, read to its end, in order. */
static json_t *query_stream(du_conn *c)
{
        json_t *all = json_array();

        stream_each(c, query_add, all);
        return all;
}

/* Best first, none twice: the 1.0.1s, then the 1.0.0s, each by name. */
static void ranked_check(json_t *plugins)
{
        const char *prev = "", *prev_version = "1.0.1";
        json_t *e;
        size_t i;

        json_array_foreach(plugins, i, e) {
                const char *name = du_str(e, "name"), *version = du_str(e, "version");

                if (strcmp(version, prev_version) != 0) {
                        ck_assert_str_eq(version, "1.0.0");
                        ck_assert_str_eq(prev_version, "1.0.1");
                        prev_version = version;
                        prev = "";
                }
                ck_assert_msg(strcmp(prev, name) < 0, "%s then %s", prev, name);
                prev = name;
        }
}

/* More plugins than one message holds: plain is ReplyTooLarge, saying
 * how to ask; streamed gives them all, best first. */
START_TEST(test_query_stream)
{
        du_conn *c = du_connect(&D);
        json_t *r, *all;

        r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                           "{\"interface\":\"org.example.Greeter\"}}");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "\"more\""));
        du_assert_error(&D, r, "io.plughost.ReplyTooLarge");
        du_send(c, "{\"method\":\"io.plughost.Query\",\"more\":true,\"parameters\":"
                   "{\"interface\":\"org.example.Greeter\"}}");
        all = query_stream(c);
        ck_assert_uint_eq(json_array_size(all), N_RANKED);
        ranked_check(all);
        ck_assert_str_eq(du_str(json_array_get(all, 0), "name"), "h0003");
        ck_assert_str_eq(du_str(json_array_get(all, (N_RANKED + 3) / 7), "name"), "h0000");
        json_decref(all);
        du_close(c);
}
END_TEST

/* limit: the best ones, plain or streamed; below 1 is refused. */
START_TEST(test_query_limit)
{
        du_conn *c = du_connect(&D);
        json_t *r, *r2, *plugins;

        r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                           "{\"interface\":\"org.example.Greeter\",\"limit\":3}}");
        ck_assert_ptr_null(du_error(r));
        plugins = json_object_get(du_params(r), "plugins");
        ck_assert_uint_eq(json_array_size(plugins), 3);
        ck_assert_str_eq(du_str(json_array_get(plugins, 0), "name"), "h0003");
        ck_assert_str_eq(du_str(json_array_get(plugins, 2), "name"), "h0017");
        json_decref(r);
        /* The best 64 (picked in one pass) are the first 64 of the best
         * 500 (sorted; past the 429 1.0.1s). */
        r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                           "{\"interface\":\"org.example.Greeter\",\"limit\":64}}");
        ck_assert_ptr_null(du_error(r));
        r2 = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                            "{\"interface\":\"org.example.Greeter\",\"limit\":500}}");
        ck_assert_ptr_null(du_error(r2));
        plugins = json_object_get(du_params(r2), "plugins");
        ck_assert_uint_eq(json_array_size(plugins), 500);
        ranked_check(plugins);
        ck_assert_str_eq(du_str(json_array_get(plugins, 429), "name"), "h0000");
        plugins = json_object_get(du_params(r), "plugins");
        ck_assert_uint_eq(json_array_size(plugins), 64);
        for (size_t i = 0; i < 64; i++)
                ck_assert_str_eq(du_str(json_array_get(plugins, i), "name"),
                                 du_str(json_array_get(json_object_get(du_params(r2), "plugins"), i), "name"));
        json_decref(r2);
        json_decref(r);
        du_send(c, "{\"method\":\"io.plughost.Query\",\"more\":true,\"parameters\":"
                   "{\"interface\":\"org.example.Greeter\",\"limit\":100}}");
        plugins = query_stream(c);
        ck_assert_uint_eq(json_array_size(plugins), 100);
        ranked_check(plugins);
        json_decref(plugins);
        du_close(c);
        r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                           "{\"interface\":\"org.example.Greeter\",\"limit\":0}}");
        du_assert_error(&D, r, "org.varlink.service.InvalidParameter");
        r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"more\":true,\"parameters\":"
                           "{\"interface\":\"org.example.Nothing\"}}");
        ck_assert_ptr_null(du_error(r));
        ck_assert_uint_eq(json_array_size(json_object_get(du_params(r), "plugins")), 0);
        ck_assert(!json_is_true(json_object_get(r, "continues")));
        json_decref(r);
}
END_TEST

/* plughostctl query streams: all of them, where one reply would not do. */
START_TEST(test_ctl_query)
{
        const char *b = getenv("PH_BUILDDIR");
        char ctl[4096], *out = NULL;
        char *const argv[] = { ctl, "--json", "-s", D.socket, "query", "org.example.Greeter", NULL };
        json_t *j;

        ck_assert_ptr_nonnull(b);
        snprintf(ctl, sizeof(ctl), "%s/plughostctl", b);
        ck_assert_int_eq(tu_run(argv, &out), 0);
        j = json_loads(out, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_uint_eq(json_array_size(json_object_get(j, "plugins")), N_RANKED);
        json_decref(j);
        free(out);
}
END_TEST

/* Plugins go while a stream is under way: those gone by their part are
 * left out; the rest come in order, none twice, and the stream ends.
 * Last in its case: it removes files. */
START_TEST(test_query_stream_while_files_go)
{
        du_conn *c = du_connect(&D);
        json_t *r, *all;

        du_send(c, "{\"method\":\"io.plughost.Query\",\"more\":true,\"parameters\":"
                   "{\"interface\":\"org.example.Greeter\"}}");
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ck_assert(json_is_true(json_object_get(r, "continues")));
        all = json_array();
        ck_assert_int_eq(json_array_extend(all, json_object_get(du_params(r), "plugins")), 0);
        json_decref(r);
        for (unsigned i = 1; i < N_RANKED; i += 2) {
                char name[16], *path;

                snprintf(name, sizeof(name), "h%04u", i);
                path = tu_path(D.plugins, name);
                ck_assert_int_eq(unlink(path), 0);
                free(path);
        }
        r = du_request(&D, "{\"method\":\"io.plughost.Rescan\"}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        r = query_stream(c);
        ck_assert_int_eq(json_array_extend(all, r), 0);
        json_decref(r);
        ranked_check(all);
        ck_assert_uint_lt(json_array_size(all), N_RANKED);
        ck_assert_uint_ge(json_array_size(all), N_RANKED / 2);
        json_decref(all);
        du_close(c);
        /* A Query after the change sees it: the best three 1.0.1s left
         * are the even ones. */
        r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                           "{\"interface\":\"org.example.Greeter\",\"limit\":3}}");
        ck_assert_ptr_null(du_error(r));
        all = json_object_get(du_params(r), "plugins");
        ck_assert_uint_eq(json_array_size(all), 3);
        ck_assert_str_eq(du_str(json_array_get(all, 0), "name"), "h0010");
        ck_assert_str_eq(du_str(json_array_get(all, 2), "name"), "h0038");
        json_decref(r);
}
END_TEST

/* Four Query streams asked at once on one connection keep four
 * snapshots of 3,000 names (some 40 KiB each): more than the connection
 * may hold, but they are the replies themselves, read part by part; all
 * four come whole. */
START_TEST(test_query_streams_small_buffer)
{
        du_conn *c = du_connect(&D);
        json_t *all;

        for (int i = 0; i < 4; i++)
                du_send(c, "{\"method\":\"io.plughost.Query\",\"more\":true,\"parameters\":"
                           "{\"interface\":\"org.example.Greeter\"}}");
        for (int i = 0; i < 4; i++) {
                all = query_stream(c);
                ck_assert_uint_eq(json_array_size(all), N_RANKED);
                ranked_check(all);
                json_decref(all);
        }
        du_close(c);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("list");
        TCase *tc = tcase_create("list");

        /* One daemon for the suite (thousands of files are slow to copy
         * under the sanitizers); the test that removes files comes last. */
        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, test_whole_is_too_large);
        tcase_add_test(tc, test_stream_and_pages_agree);
        tcase_add_test(tc, test_cursors);
        tcase_add_test(tc, test_stream_reader_that_does_not_read);
        tcase_add_test(tc, test_ctl_list);
        tcase_add_test(tc, test_stream_while_files_go);
        tcase_add_test(tc, test_cursor_not_utf8);
        suite_add_tcase(s, tc);
        {
                TCase *cap = tcase_create("cap");

                tcase_add_unchecked_fixture(cap, setup_small_total, teardown);
                tcase_set_timeout(cap, 120);
                tcase_add_test(cap, test_total_cap_spares_small_clients);
                suite_add_tcase(s, cap);
        }
        {
                TCase *win = tcase_create("window");

                tcase_add_unchecked_fixture(win, setup_small_window, teardown);
                tcase_set_timeout(win, 120);
                tcase_add_test(win, test_stream_fast_reader);
                suite_add_tcase(s, win);
        }
        {
                TCase *q = tcase_create("query");

                tcase_add_unchecked_fixture(q, setup_ranked, teardown);
                tcase_set_timeout(q, 300);
                tcase_add_test(q, test_query_stream);
                tcase_add_test(q, test_query_limit);
                tcase_add_test(q, test_ctl_query);
                tcase_add_test(q, test_query_stream_while_files_go);
                suite_add_tcase(s, q);
        }
        {
                TCase *qs = tcase_create("query-small");

                tcase_add_unchecked_fixture(qs, setup_ranked_small, teardown);
                tcase_set_timeout(qs, 300);
                tcase_add_test(qs, test_query_streams_small_buffer);
                suite_add_tcase(s, qs);
        }

        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
