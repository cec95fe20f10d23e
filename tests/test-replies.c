/* Issue 15: every reply shape the daemon writes as text (protocol/jw.c)
 * compared with the jansson-built reply it replaced (tests/oracle-json.c),
 * byte for byte, and again after normalisation (parsed, keys sorted,
 * compact: what differs then is content or escaping, not order).
 *
 * The daemon's modules run in this process (daemon-inproc.c) on real
 * plugin files: the bundled examples and fixtures in every state a
 * plugin can show (discovered, loaded in-process and in a worker, a
 * worker that crashed and was started again, failed, a new file pending,
 * loading or failed beside a loaded one), refused and shadowed files, a
 * directory and file names with control characters and bytes that are
 * not UTF-8, a description full of escapes. Replies are read from the
 * socket, as a client reads them; the oracle is built from the same state
 * as the request is dispatched. Monitor events are caught as the daemon
 * emits them (ld --wrap=ph_event_emit) and compared with what arrives on
 * the stream.
 *
 * Intended changes, normalised explicitly here (never in the oracle):
 * - Call: the plugin's result is spliced as the plugin wrote it, where
 *   jansson parsed and wrote it again ("0.1" stayed "0.1", not
 *   0.10000000000000001; "\u00e9" stays escaped). Equal after
 *   normalisation; byte for byte only when the plugin wrote what jansson
 *   writes, and the test checks both halves of that.
 * - List: pages ("limit": a "next" member) and streams ("more": parts with
 *   "continues") are new; their entries put together are the old List. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon-inproc.h"
#include "events.h"
#include "lifecycle.h"
#include "oracle-json.h"
#include "testutil.h"
#include "varlink.h"

static ip_daemon H;

/* ---- the oracle, taken as a request is dispatched ------------------------------- */

/* The parameters the old daemon would have answered the last read with,
 * built from the state the new one answers from. */
static json_t *snap;
static bool snapped;

static const char *param_str(const ph_request *req, const char *name)
{
        return json_string_value(json_object_get(req->parameters, name));
}

static void dispatch(void *userdata, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_daemon *d = userdata;

        json_decref(snap);
        snap = NULL;
        snapped = true;
        switch (req->method->id) {
        case PH_M_LIST:
                snap = oracle_list(d, param_str(req, "interface"), param_str(req, "state"));
                break;
        case PH_M_QUERY:
                snap = oracle_query(d, param_str(req, "interface"));
                break;
        case PH_M_INFO:
                snap = oracle_info(d, param_str(req, "name"));
                break;
        case PH_M_STATUS:
                snap = oracle_status(d);
                break;
        default:
                snapped = false;
        }
        ph_methods_dispatch(userdata, c, req, r);
}

/* The last snapshot (a new reference), which must exist. */
static json_t *snap_take(void)
{
        json_t *s = snap;

        ck_assert_msg(snapped && s, "the oracle built no reply for the request");
        snap = NULL;
        snapped = false;
        return s;
}

/* ---- comparing ---------------------------------------------------------------------- */

static json_t *parse(const char *what, const char *text)
{
        json_error_t err;
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);

        ck_assert_msg(j != NULL, "%s: not JSON (%s): %.300s", what, err.text, text);
        return j;
}

/* Keys sorted, compact, escaping as jansson writes it. */
static char *norm(const char *what, const char *text)
{
        json_t *j = parse(what, text);
        char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);

        json_decref(j);
        ck_assert_ptr_nonnull(s);
        return s;
}

/* Where two texts part, for the failure message. */
static void differ(const char *what, const char *how, const char *got, const char *want)
{
        size_t i = 0, from;

        while (got[i] && got[i] == want[i])
                i++;
        from = i > 60 ? i - 60 : 0;
        ck_abort_msg("%s: %s at byte %zu\n  new: ...%.140s\n  old: ...%.140s", what, how, i,
                     got + from, want + from);
}

static void same_normalised(const char *what, const char *got, const char *want)
{
        char *g = norm(what, got), *w = norm(what, want);

        if (strcmp(g, w) != 0)
                differ(what, "differs after normalisation", g, w);
        free(g);
        free(w);
}

/* The writer's reply is the oracle's, normalised and as bytes. */
static void same(const char *what, const char *got, const char *want)
{
        same_normalised(what, got, want);
        if (strcmp(got, want) != 0)
                differ(what, "bytes differ", got, want);
}

/* text is what jansson writes for what it says (JSON_COMPACT, keys in
 * their order): no escape or number written another way. */
static bool canonical(const char *text)
{
        json_t *j = parse("canonical", text);
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        bool eq = s && strcmp(s, text) == 0;

        json_decref(j);
        free(s);
        return eq;
}

/* The old envelope around params (stolen; NULL: {}), as text without its
 * NUL. */
static char *old_reply(json_t *params, bool continues)
{
        char *text;
        size_t len;

        ck_assert_int_eq(oracle_reply(params, continues, &text, &len), 0);
        return text;
}

static void same_as_old(const char *what, const char *got, json_t *params)
{
        char *want = old_reply(params, false);

        same(what, got, want);
        free(want);
}

static ph_verr verr_from_name(const char *name)
{
        for (int e = 1; e < _PH_VERR_MAX; e++)
                if (ph_varlink_error_name((ph_verr)e) && strcmp(ph_varlink_error_name((ph_verr)e), name) == 0)
                        return (ph_verr)e;
        ck_abort_msg("unknown error %s", name);
        return PH_VERR_NONE;
}

/* An error reply is what the old ph_varlink_error wrote for the same
 * error and parameters; returns its name. */
static const char *error_as_old(const char *what, const char *got)
{
        static char name[128];
        json_t *j = parse(what, got);
        const char *e = json_string_value(json_object_get(j, "error"));
        char *want;
        size_t len;

        ck_assert_msg(e != NULL, "%s: not an error: %.300s", what, got);
        snprintf(name, sizeof(name), "%s", e);
        ck_assert_int_eq(oracle_error(verr_from_name(e), json_incref(json_object_get(j, "parameters")),
                                      &want, &len), 0);
        same(what, got, want);
        free(want);
        json_decref(j);
        return name;
}

static bool is_error(const char *text)
{
        return strncmp(text, "{\"error\":", 9) == 0;
}

/* ---- the plugins -------------------------------------------------------------------- */

/* The file name of upper in the odd directory: an escape, a lone lead
 * byte, a quote and a backslash. */
#define ODD_UPPER "up\x1bper\xc3(\"q\\.so"
/* A file that is no ELF, named with a control character and bytes that
 * are not UTF-8. */
#define ODD_JUNK "junk\x01\xff\xfe.so"

/* hello's description, "Greets whoever it is given." in its metadata note,
 * becomes as many bytes of escapes the reader lets through (it refuses
 * control, bidirectional and invisible characters): a quote, a backslash,
 * an escaped slash, é and U+1F600 written as escapes, then "xab". */
#define HELLO_DESC "\"description\":\"Greets whoever it is given.\""
#define ODD_DESC "\"description\":\"\\\"\\\\\\/\\u00e9\\ud83d\\ude00xab\""

static void copy_patched(const char *src, const char *old, const char *new, const char *dst)
{
        size_t size, n = strlen(old);
        unsigned char *data = tu_read_file(src, &size), *at = NULL;

        ck_assert_uint_eq(strlen(old), strlen(new));
        for (size_t i = 0; i + n <= size; i++)
                if (memcmp(data + i, old, n) == 0)
                        at = data + i;
        ck_assert_msg(at != NULL, "no %s in %s", old, src);
        memcpy(at, new, n);
        tu_write_file(dst, data, size);
        free(data);
}

static void put(const char *dir, const char *name, const char *src)
{
        char *tmp = tu_path(dir, ".tmp"), *path = tu_path(dir, name);

        tu_copy_file(src, tmp);
        ck_assert_int_eq(rename(tmp, path), 0);
        free(tmp);
        free(path);
}

static void touch(const char *name, bool on)
{
        char *path = tu_path(H.dir, name);

        if (on)
                tu_write_file(path, "", 0);
        else
                ck_assert_int_eq(unlink(path), 0);
        free(path);
}

static char *fixture_build(const char *name)
{
        char *path;

        ck_assert_int_ge(asprintf(&path, "%s/tests/fixtures/%s", getenv("PH_BUILDDIR"), name), 0);
        return path;
}

static void setup(void)
{
        char *conf, *path, *behave1 = fixture_build("behave-v1.so"), *second = fixture_build("second-v1.so");
        char *fault = fixture_build("fault-v1.so");

        ip_init(&H);
        ck_assert_int_ge(asprintf(&conf,
                                  "[Daemon]\nWorkerPath=%s/plughost-worker\n"
                                  "[Plugin upper]\nIsolation=process\n"
                                  "[Plugin fault]\nIsolation=process\n"
                                  "[Plugin second]\nConfig={\"initFail\":true,\"initFailRude\":true}\n"
                                  "[Plugin behave]\nConfig={\"initWaitFile\":\"%s/go\","
                                  "\"initRequireFile\":\"%s/allow\"}\n",
                                  getenv("PH_BUILDDIR"), H.dir, H.dir), 0);
        ip_write_config(&H, conf);
        free(conf);
        path = tu_path(H.plugins, "hello.so");
        copy_patched(tu_example("hello.so"), HELLO_DESC, ODD_DESC, path);
        free(path);
        put(H.plugins, "counter.so", tu_example("counter.so"));
        put(H.plugins, "behave.so", behave1);
        put(H.plugins, "second.so", second);
        put(H.plugins, "fault.so", fault);
        put(H.plugins, "bad-name.so", tu_fixture("bad-name.so"));
        put(H.plugins, "no-note.so", tu_fixture("no-note.so"));
        path = tu_path(H.plugins, ODD_JUNK);
        tu_write_file(path, "not a plugin\n", 13);
        free(path);
        put(H.odd, ODD_UPPER, tu_example("upper.so"));
        /* Shadowed: the first directory wins a tie. */
        put(H.odd, "counter.so", tu_example("counter.so"));
        touch("go", true);
        touch("allow", true);
        free(behave1);
        free(second);
        free(fault);
        ip_start(&H, dispatch);
        ip_clock_freeze(true);
}

static void teardown(void)
{
        ip_stop(&H);
        json_decref(snap);
        snap = NULL;
}

/* ---- reads: List, Query, Info, Status --------------------------------------------- */

static void check_list(const char *filter)
{
        char req[256], what[300], *got;

        snprintf(req, sizeof(req), "{\"method\":\"io.plughost.List\",\"parameters\":{%s}}", filter);
        snprintf(what, sizeof(what), "List {%s}", filter);
        got = ip_request(&H, req);
        same_as_old(what, got, snap_take());
        free(got);
}

/* Entries of pages or parts, put together. */
static void gather(json_t *all, json_t *params)
{
        json_array_extend(json_object_get(all, "plugins"), json_object_get(params, "plugins"));
        json_array_extend(json_object_get(all, "rejected"), json_object_get(params, "rejected"));
}

/* List in pages of limit entries: each page is canonical text, and the
 * pages' entries, without their "next", are the old List. */
static void check_list_paged(unsigned limit)
{
        json_t *all = json_pack("{s:[], s:[]}", "plugins", "rejected"), *want = NULL;
        char *cursor = NULL, what[64], *got, *gtext;
        unsigned pages = 0;

        snprintf(what, sizeof(what), "List pages of %u", limit);
        do {
                json_t *reply, *params, *next, *cur = cursor ? json_string(cursor) : json_null();
                char *cur_text = json_dumps(cur, JSON_ENCODE_ANY), *req;

                ck_assert_int_ge(asprintf(&req, "{\"method\":\"io.plughost.List\",\"parameters\":"
                                                "{\"limit\":%u%s%s}}", limit, cursor ? ",\"after\":" : "",
                                          cursor ? cur_text : ""), 0);
                got = ip_request(&H, req);
                if (!want)
                        want = snap_take();
                ck_assert_msg(!is_error(got), "%s: %s", what, got);
                ck_assert_msg(canonical(got), "%s: page %u is not as jansson writes it: %s", what, pages, got);
                reply = parse(what, got);
                params = json_object_get(reply, "parameters");
                gather(all, params);
                next = json_object_get(params, "next");
                free(cursor);
                cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
                json_decref(reply);
                json_decref(cur);
                free(cur_text);
                free(req);
                free(got);
                pages++;
        } while (cursor && pages < 100);
        ck_assert_ptr_null(cursor);
        gtext = old_reply(all, false);
        same_as_old(what, gtext, want);
        free(gtext);
}

/* List streamed: the parts say "continues" but the last; their entries
 * are the old List. */
static void check_list_streamed(void)
{
        json_t *all = json_pack("{s:[], s:[]}", "plugins", "rejected"), *want = NULL;
        ip_conn *c = ip_connect(&H);
        bool more = true;
        char *gtext;

        ip_send(c, "{\"method\":\"io.plughost.List\",\"parameters\":{},\"more\":true}");
        while (more) {
                char *got = ip_recv(&H, c);
                json_t *reply = parse("List stream", got);

                if (!want)
                        want = snap_take();
                ck_assert_msg(canonical(got), "List stream: a part not as jansson writes it: %s", got);
                gather(all, json_object_get(reply, "parameters"));
                more = json_is_true(json_object_get(reply, "continues"));
                json_decref(reply);
                free(got);
        }
        ip_close(c);
        gtext = old_reply(all, false);
        same_as_old("List stream", gtext, want);
        free(gtext);
}

static void check_query(const char *iface)
{
        char req[256], what[300], *got;

        snprintf(req, sizeof(req), "{\"method\":\"io.plughost.Query\",\"parameters\":{\"interface\":\"%s\"}}",
                 iface);
        snprintf(what, sizeof(what), "Query %s", iface);
        got = ip_request(&H, req);
        same_as_old(what, got, snap_take());
        free(got);
}

static void check_info(const char *name)
{
        char req[256], what[300], *got;
        json_t *want;

        snprintf(req, sizeof(req), "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"%s\"}}", name);
        snprintf(what, sizeof(what), "Info %s", name);
        got = ip_request(&H, req);
        ck_assert(snapped);
        want = snap;
        snap = NULL;
        snapped = false;
        if (want) {
                same_as_old(what, got, want);
        } else {
                /* acf1a73^ find_or_reply's error. */
                char *old;
                size_t len;

                ck_assert_int_eq(oracle_errorf(PH_VERR_NO_SUCH_PLUGIN, json_pack("{s:s}", "name", name),
                                               &old, &len, "no plugin named '%.64s'", name), 0);
                same(what, got, old);
                free(old);
        }
        free(got);
}

static void check_status(void)
{
        char *got = ip_request(&H, "{\"method\":\"io.plughost.Status\"}");

        same_as_old("Status", got, snap_take());
        free(got);
}

/* Every read, in the state the daemon is in now. */
static void check_reads(void)
{
        check_list("");
        check_list("\"state\":\"loaded\"");
        check_list("\"state\":\"failed\"");
        check_list("\"state\":\"discovered\"");
        check_list("\"interface\":\"org.example.Behave\"");
        check_list_paged(1);
        check_list_paged(3);
        check_list_streamed();
        for (ph_plugin *p = ph_registry_first(H.d.reg); p; p = ph_registry_next(H.d.reg, p)) {
                const ph_meta *m = ph_life_meta(p);

                check_info(p->name);
                for (size_t i = 0; i < m->n_interfaces; i++)
                        check_query(m->interfaces[i]);
        }
        check_info("nosuch");
        check_query("org.example.Nothing");
        check_status();
}

/* ---- Load, Unload and Call -------------------------------------------------------- */

static ph_plugin *plugin(const char *name)
{
        ph_plugin *p = ph_registry_lookup(H.d.reg, name);

        ck_assert_msg(p != NULL && p->life, "no plugin %s", name);
        return p;
}

static char *request_name(const char *method, const char *name)
{
        char req[256];

        snprintf(req, sizeof(req), "{\"method\":\"io.plughost.%s\",\"parameters\":{\"name\":\"%s\"}}",
                 method, name);
        return ip_request(&H, req);
}

/* A Load's reply: the old {"plugin": ...} of the plugin as it is when
 * the reply arrives (nothing runs between), or the old error. */
static void check_load_reply(const char *name, const char *got)
{
        char what[128];

        snprintf(what, sizeof(what), "Load %s", name);
        if (is_error(got)) {
                error_as_old(what, got);
                return;
        }
        same_as_old(what, got, oracle_load(&H.d, plugin(name)));
}

static void load(const char *name, bool ok)
{
        char *got = request_name("Load", name);

        ck_assert_msg(is_error(got) != ok, "Load %s: %s", name, got);
        check_load_reply(name, got);
        free(got);
}

static void unload(const char *name)
{
        char *got = request_name("Unload", name);

        same_as_old("Unload", got, json_object());
        free(got);
}

START_TEST(test_reads_discovered)
{
        check_reads();
}
END_TEST

/* Loaded in-process and in a worker, failed with a rude message, a newer
 * file beside a loaded one (loading, then failed: a file that changes
 * under a loaded plugin is loaded at once; then another, loading while
 * the failure is told, then serving), and unloaded again. */
START_TEST(test_reads_every_state)
{
        char *behave2 = fixture_build("behave-v2.so");

        load("counter", true);
        load("counter", true);          /* answered at once: already serving */
        load("upper", true);
        ck_assert_ptr_nonnull(ph_instance_runner_handle(plugin("upper")->life->serving->inst));
        load("behave", true);
        load("second", false);
        load("second", false);          /* refused again without a try */
        check_reads();

        /* v2's init waits for "go", then fails without "allow". */
        touch("go", false);
        put(H.plugins, "behave.so", behave2);
        ip_rescan(&H);
        ip_pump(&H, 50);
        ck_assert_ptr_nonnull(plugin("behave")->life->serving);
        ck_assert_ptr_nonnull(plugin("behave")->life->load);
        check_reads();
        touch("allow", false);
        touch("go", true);
        for (int i = 0; i < 2000 && plugin("behave")->life->load; i++)
                ip_pump(&H, 10);
        ck_assert_ptr_null(plugin("behave")->life->load);
        ck_assert_uint_eq(plugin("behave")->life->failed_generation, plugin("behave")->file->generation);
        check_reads();
        load("behave", false);          /* its new file failed: refused at once */

        /* A third file while the failure is still told, loading, then
         * serving: what is shown of behave is rendered again. */
        touch("go", false);
        put(H.plugins, "behave.so", behave2);
        ip_rescan(&H);
        ip_pump(&H, 50);
        ck_assert_ptr_nonnull(plugin("behave")->life->load);
        ck_assert_ptr_nonnull(plugin("behave")->life->error);
        check_reads();
        touch("allow", true);
        touch("go", true);
        for (int i = 0; i < 2000 && plugin("behave")->life->load; i++)
                ip_pump(&H, 10);
        ck_assert_uint_eq(plugin("behave")->life->serving->generation, plugin("behave")->file->generation);
        check_reads();

        unload("counter");
        unload("upper");
        check_reads();
        free(behave2);
}
END_TEST

/* The plugin's own text for a call, as the daemon asks for it (params
 * dumped compact), from the instance that serves it. */
static char *plugin_text(const char *name, const char *method, const char *params)
{
        ph_plugin *p = plugin(name);
        json_t *j = parse("params", params);
        char *text = json_dumps(j, JSON_COMPACT), *result = NULL, err[256];

        ck_assert_ptr_nonnull(p->life->serving);
        ck_assert_int_eq(ph_instance_call(p->life->serving->inst, method, text, &result, err, sizeof(err)), 0);
        json_decref(j);
        free(text);
        return result;
}

/* A Call, and the old reply for what the plugin writes; returns whether
 * the bytes were the same (they are, after normalisation). */
static bool check_call(const char *name, const char *method, const char *params)
{
        char *req, *got, *text, *want, what[128];
        json_t *old;
        bool eq;

        snprintf(what, sizeof(what), "Call %s.%s", name, method);
        ck_assert_int_ge(asprintf(&req, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                        "{\"name\":\"%s\",\"method\":\"%s\",\"parameters\":%s}}",
                                  name, method, params), 0);
        got = ip_request(&H, req);
        free(req);
        if (is_error(got)) {
                error_as_old(what, got);
                free(got);
                return true;
        }
        text = plugin_text(name, method, params);
        old = oracle_call(text);
        ck_assert_msg(old != NULL, "%s: the old daemon refused %s", what, text);
        want = old_reply(old, false);
        same_normalised(what, got, want);
        eq = strcmp(got, want) == 0;
        /* Spliced as written: the same bytes exactly when the plugin
         * wrote what jansson would. */
        ck_assert_msg(eq == (!text || canonical(text)), "%s: %s\n  new: %s\n  old: %s", what,
                      eq ? "same bytes for a result jansson writes otherwise" : "bytes differ",
                      got, want);
        free(text);
        free(want);
        free(got);
        return eq;
}

START_TEST(test_call)
{
        load("hello", true);
        load("behave", true);
        ck_assert(check_call("hello", "Hello", "{\"name\":\"wire\"}"));
        ck_assert(check_call("behave", "Echo", "{\"s\":\"\\u00e9\\u0001\\\"\\/\",\"n\":[1,-2.5,1e3]}"));
        ck_assert(check_call("behave", "Return", "{\"value\":null}"));
        ck_assert(check_call("behave", "Pad", "{\"bytes\":3000}"));
        /* The intended change: 0.1 as the plugin wrote it. */
        ck_assert(!check_call("behave", "Reals", "{\"n\":3}"));
        /* Errors: the plugin's message, a result that is no object. */
        check_call("behave", "Fail", "{}");
        check_call("behave", "Return", "{\"value\":1}");
        check_call("hello", "Nope", "{}");
        check_call("nosuch", "Nope", "{}");
        check_reads();
}
END_TEST

/* A worker that faulted and was started again: its counters and its
 * last fault in every plugin object, the crash as an error. */
START_TEST(test_worker_fault)
{
        load("fault", true);
        check_call("fault", "Segv", "{}");
        check_reads();
        ck_assert(check_call("fault", "Echo", "{\"after\":\"the crash\"}"));
        check_reads();
}
END_TEST

/* Call's reply from texts a plugin may write: the writer's function
 * against the old parse and dump. */
START_TEST(test_call_reply_texts)
{
        static const char *const texts[] = {
                NULL, "null", "{}", "{\"a\":1}", "{\"greeting\":\"Hello, world!\"}",
                "{ \"a\" : [ 1, 2 ] }\n", "{\"r\":[0.1,0.2,1e300,-0.0]}", "{\"u\":\"\\u00e9\\ud83d\\ude00\"}",
                "{\"s\":\"\\/\\b\\f\\n\\r\\t\\u001f\\u007f\"}", "{\"raw\":\"\xc3\xa9\xe2\x80\xa8\"}",
                "{\"big\":9223372036854775807,\"neg\":-9223372036854775808}",
                "{\"deep\":{\"a\":{\"b\":[{\"c\":null,\"d\":true,\"e\":false}]}}}",
                "{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}",
        };

        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                const char *t = texts[i];
                json_t *old = oracle_call(t);
                char *got, *want, what[64];
                size_t len;
                ph_jw jw;

                snprintf(what, sizeof(what), "result %zu", i);
                ck_assert_msg(old != NULL, "%s: refused by the old parse", what);
                /* ops.c hands "null" over as no result. */
                ph__life_result_reply(&jw, t && strcmp(t, "null") != 0 ? t : NULL,
                                      t && strcmp(t, "null") != 0 ? strlen(t) : 0);
                ck_assert_int_eq(ph_jw_message_end(&jw, false, &got, &len), 0);
                want = old_reply(old, false);
                same_normalised(what, got, want);
                if (!t || canonical(t))
                        same(what, got, want);
                else
                        ck_assert_msg(strcmp(got, want) != 0, "%s: %s", what, got);
                free(got);
                free(want);
        }
}
END_TEST

/* ---- Monitor events ----------------------------------------------------------------- */

/* Events as the daemon emitted them while a Monitor listened (the ones
 * it wrote), copied. */
typedef struct caught {
        ph_event ev;
        char *s[6];
} caught;

static caught events[64];
static size_t n_events;

void __real_ph_event_emit(struct ph_server *srv, const ph_event *e);
void __wrap_ph_event_emit(struct ph_server *srv, const ph_event *e);

static const char *keep(caught *c, int i, const char *s)
{
        if (!s)
                return NULL;
        c->s[i] = strdup(s);
        ck_assert_ptr_nonnull(c->s[i]);
        return c->s[i];
}

void __wrap_ph_event_emit(struct ph_server *srv, const ph_event *e)
{
        if (srv && ph_server_monitors(srv) > 0 && n_events < sizeof(events) / sizeof(events[0])) {
                caught *c = &events[n_events++];

                c->ev = *e;
                c->ev.name = keep(c, 0, e->name);
                c->ev.version = keep(c, 1, e->version);
                c->ev.file = keep(c, 2, e->file);
                c->ev.reason = keep(c, 3, e->reason);
                c->ev.message = keep(c, 4, e->message);
                c->ev.fix = keep(c, 5, e->fix);
        }
        __real_ph_event_emit(srv, e);
}

/* Every event caught since *seen arrived on the stream as the old daemon
 * wrote it; returns how many. */
static size_t check_events(ip_conn *mon, size_t *seen)
{
        size_t n = 0;

        ip_pump(&H, 20);
        for (; *seen < n_events; (*seen)++, n++) {
                char *got = ip_recv(&H, mon), *want, what[64];
                size_t len;

                snprintf(what, sizeof(what), "event %zu (%s)", *seen, ph_event_kind_name(events[*seen].ev.kind));
                ck_assert_int_eq(oracle_event_message(&events[*seen].ev, &want, &len), 0);
                same(what, got, want);
                free(want);
                free(got);
        }
        return n;
}

START_TEST(test_monitor)
{
        ip_conn *mon = ip_connect(&H);
        char *got, *want, *path, *behave2 = fixture_build("behave-v2.so");
        size_t seen = 0;

        ip_send(mon, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
        got = ip_recv(&H, mon);
        want = old_reply(NULL, true);
        same("Monitor's first reply", got, want);
        free(want);
        free(got);

        load("counter", true);
        ck_assert_uint_ge(check_events(mon, &seen), 1);
        unload("counter");
        ck_assert_uint_ge(check_events(mon, &seen), 1);
        load("second", false);
        ck_assert_uint_ge(check_events(mon, &seen), 1);
        load("upper", true);
        ck_assert_uint_ge(check_events(mon, &seen), 1);
        /* Added, refused (a name that is no UTF-8), shadowed. */
        put(H.odd, "hello-too.so", tu_example("hello.so"));
        put(H.odd, "\x02more\xc0junk.so", tu_fixture("no-note.so"));
        put(H.plugins, "good.so", tu_fixture("good.so"));
        ip_rescan(&H);
        ck_assert_uint_ge(check_events(mon, &seen), 3);
        /* Changed while loaded, then refused while loaded. */
        load("behave", true);
        put(H.plugins, "behave.so", behave2);
        ip_rescan(&H);
        ck_assert_uint_ge(check_events(mon, &seen), 1);
        path = tu_path(H.plugins, "behave.so");
        tu_write_file(path, "truncated", 9);
        ip_rescan(&H);
        ck_assert_uint_ge(check_events(mon, &seen), 1);
        /* Removed: a file deleted, and the odd name's winner. */
        ck_assert_int_eq(unlink(path), 0);
        free(path);
        path = tu_path(H.odd, ODD_UPPER);
        ck_assert_int_eq(unlink(path), 0);
        free(path);
        path = tu_path(H.plugins, "good.so");
        ck_assert_int_eq(unlink(path), 0);
        free(path);
        ip_rescan(&H);
        ck_assert_uint_ge(check_events(mon, &seen), 2);
        free(behave2);
        ip_close(mon);
        check_reads();
}
END_TEST

/* Events the daemon could emit, field by field, with text that is not
 * UTF-8, control characters and no fields at all. */
START_TEST(test_event_fields)
{
        static const char *const texts[] = {
                NULL, "", "plain", "\x01\x1f\x7f\"\\/", "\xff\xfe", "caf\xc3\xa9 \xe2\x80\xa8",
                "\xc3(", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "a\nb\tc\rd\be\ff",
        };
        size_t n = sizeof(texts) / sizeof(texts[0]);

        for (int kind = 0; kind <= _PH_EVENT_MAX; kind++)
                for (size_t i = 0; i < n; i++) {
                        const char *t = texts[i], *u = texts[(i + 3) % n];
                        ph_event ev = { .kind = (ph_event_kind)kind, .name = t, .version = u,
                                        .generation = i * 1000003u * (uint64_t)kind, .file = t,
                                        .reason = kind == PH_EVENT_REJECTED ? "untrusted" : NULL,
                                        .message = u, .fix = ph_event_fix("shadowed"), .uid = -1 };
                        char *got, *want, what[64];
                        size_t glen, wlen;

                        if (i % 2)
                                ev.fix = NULL;
                        snprintf(what, sizeof(what), "event kind %d text %zu", kind, i);
                        ck_assert_int_eq(ph__event_message(&ev, &got, &glen), 0);
                        ck_assert_int_eq(oracle_event_message(&ev, &want, &wlen), 0);
                        same(what, got, want);
                        ck_assert_uint_eq(glen, wlen);
                        free(got);
                        free(want);
                }
}
END_TEST

/* ---- the envelope: ph_varlink_reply, ph_varlink_error, ph_varlink_errorf ------------- */

static void check_envelope(const char *what, int r_new, char *got, int r_old, char *want)
{
        ck_assert_msg(r_new == r_old, "%s: returned %d, the old one %d", what, r_new, r_old);
        if (r_new == 0)
                same(what, got, want);
        if (r_new == 0)
                free(got);
        if (r_old == 0)
                free(want);
}

START_TEST(test_envelope)
{
        static const char *const params[] = {
                NULL, "{}", "{\"name\":\"hello\"}", "{\"limit\":1048576}",
                "{\"name\":\"x\",\"method\":\"Sleep\",\"seconds\":0.1}",
                "{\"file\":\"\\u0001\\u001f\\\"\\\\\\/\xc3\xa9\",\"n\":[1,2.5,null,true,{}]}",
                "[1]", "\"text\"",
        };
        static const char *const messages[] = {
                "", "no plugin named 'nosuch'", "bad\xff\xfe bytes \x1b[31m\xc2\x9b", "\xc3", "a\nb",
        };
        char *got, *want, what[64], big[PH_VARLINK_STRING_MAX + 64];
        size_t glen, wlen;

        for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
                json_t *p = params[i] ? parse("params", params[i]) : NULL;

                for (int cont = 0; cont <= 1; cont++) {
                        int rn, ro;

                        snprintf(what, sizeof(what), "reply %zu continues %d", i, cont);
                        rn = ph_varlink_reply(json_incref(p), cont, &got, &glen);
                        ro = oracle_reply(json_incref(p), cont, &want, &wlen);
                        check_envelope(what, rn, got, ro, want);
                }
                for (int e = 0; e <= _PH_VERR_MAX; e++) {
                        int rn, ro;

                        snprintf(what, sizeof(what), "error %d params %zu", e, i);
                        rn = ph_varlink_error((ph_verr)e, json_incref(p), &got, &glen);
                        ro = oracle_error((ph_verr)e, json_incref(p), &want, &wlen);
                        check_envelope(what, rn, got, ro, want);
                        for (size_t m = 0; m < sizeof(messages) / sizeof(messages[0]); m++) {
                                snprintf(what, sizeof(what), "errorf %d params %zu message %zu", e, i, m);
                                rn = ph_varlink_errorf((ph_verr)e, json_deep_copy(p), &got, &glen, "%s",
                                                       messages[m]);
                                ro = oracle_errorf((ph_verr)e, json_deep_copy(p), &want, &wlen, "%s",
                                                   messages[m]);
                                check_envelope(what, rn, got, ro, want);
                        }
                }
                json_decref(p);
        }
        /* A message cut at the cap, in the middle of a character. */
        memset(big, 'x', sizeof(big));
        memcpy(big + PH_VARLINK_STRING_MAX - 1, "\xe2\x82\xac", 3);
        big[sizeof(big) - 1] = '\0';
        {
                int rn = ph_varlink_errorf(PH_VERR_CALL_FAILED, NULL, &got, &glen, "%s", big);
                int ro = oracle_errorf(PH_VERR_CALL_FAILED, NULL, &want, &wlen, "%s", big);

                check_envelope("errorf cut", rn, got, ro, want);
        }
}
END_TEST

/* The replies still built as trees, through the envelope: each is the
 * old dump of the tree the method builds (acf1a73^:daemon/methods.c). */
START_TEST(test_tree_replies)
{
        char *got;

        got = ip_request(&H, "{\"method\":\"org.varlink.service.GetInfo\"}");
        same_as_old("GetInfo", got, ph_varlink_get_info(PACKAGE_VERSION));
        free(got);
        /* The interface's text: newlines, quotes, every escape it has. */
        got = ip_request(&H, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                             "\"parameters\":{\"interface\":\"io.plughost\"}}");
        same_as_old("GetInterfaceDescription", got,
                    json_pack("{s:s}", "description", ph_varlink_interface_description("io.plughost")));
        free(got);
        got = ip_request(&H, "{\"method\":\"io.plughost.Rescan\"}");
        same_as_old("Rescan", got, json_pack("{s:i, s:i, s:i}", "added", 0, "changed", 0, "removed", 0));
        free(got);
        unload("hello");
}
END_TEST

/* Errors the daemon answers with, as they reach a client: each is what
 * the old ph_varlink_error wrote for its name and parameters. */
START_TEST(test_errors)
{
        static const char *const reqs[] = {
                "{\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":0}}",
                "{\"method\":\"io.plughost.List\",\"parameters\":{\"limit\":1,\"after\":\"%zz\"}}",
                "{\"method\":\"io.plughost.Nope\"}",
                "{\"method\":\"org.example.Nope\"}",
                "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":7}}",
                "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"x\",\"extra\":1}}",
                "{\"method\":\"io.plughost.Monitor\"}",
                "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                "\"parameters\":{\"interface\":\"org.example.\\u00e9\"}}",
                "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"nosuch\"}}",
                "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"bad\\u0001name\\u00e9\"}}",
                "not json",
        };

        for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
                char *got = ip_request(&H, reqs[i]), what[64];

                snprintf(what, sizeof(what), "error for request %zu", i);
                error_as_old(what, got);
                free(got);
        }
}
END_TEST

static Suite *replies_suite(void)
{
        Suite *s = suite_create("replies");
        TCase *tc = tcase_create("oracle");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_reads_discovered);
        tcase_add_test(tc, test_reads_every_state);
        tcase_add_test(tc, test_call);
        tcase_add_test(tc, test_worker_fault);
        tcase_add_test(tc, test_monitor);
        tcase_add_test(tc, test_errors);
        tcase_add_test(tc, test_tree_replies);
        suite_add_tcase(s, tc);
        tc = tcase_create("direct");
        tcase_add_test(tc, test_call_reply_texts);
        tcase_add_test(tc, test_event_fields);
        tcase_add_test(tc, test_envelope);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(replies_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
