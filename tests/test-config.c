/* daemon/config.c: what the configuration parser accepts and what its
 * errors say (file:line, what is valid), time spans (timespan.c),
 * suggestions (suggest.c); and plughostd itself: --check-config, a
 * relative --plugin-dir, and its warning of [Plugin NAME] sections that
 * name no plugin once the first scan is done. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../daemon/config.h"
#include "daemon-util.h"
#include "daemon-util2.h"
#include "../daemon/suggest.h"
#include "testutil.h"
#include "../daemon/timespan.h"

/* ---- helpers ---- */

typedef struct {
        char *dir, *path;
        ph_config *cfg;
        char err[1024];
        int r;
} conf;

/* Writes text (len bytes) as dir/plughostd.conf and loads it. */
static void load_n(conf *c, const char *text, size_t len)
{
        c->dir = tu_tmpdir();
        c->path = tu_path(c->dir, "plughostd.conf");
        tu_write_file(c->path, text, len);
        ck_assert_int_eq(ph_config_new(&c->cfg), 0);
        c->err[0] = '\0';
        c->r = ph_config_load(c->cfg, c->path, true, c->err, sizeof(c->err));
}

static void load(conf *c, const char *text)
{
        load_n(c, text, strlen(text));
}

static void conf_free(conf *c)
{
        ph_config_unref(c->cfg);
        tu_tmpdir_free(c->dir);
        free(c->path);
}

static void assert_ok(const char *text)
{
        conf c;

        load(&c, text);
        ck_assert_msg(c.r == 0, "refused: %s: %s", text, c.err);
        conf_free(&c);
}

/* The error is "PATH:LINE: " followed by text containing want. */
static void assert_err(const char *text, int line, const char *want)
{
        char prefix[4200];
        conf c;

        load(&c, text);
        ck_assert_msg(c.r < 0, "accepted: %s", text);
        snprintf(prefix, sizeof(prefix), "%s:%d: ", c.path, line);
        ck_assert_msg(strncmp(c.err, prefix, strlen(prefix)) == 0, "want prefix %s, got %s", prefix,
                      c.err);
        ck_assert_msg(strstr(c.err, want), "want \"%s\" in \"%s\"", want, c.err);
        conf_free(&c);
}

/* ---- values ---- */

START_TEST(test_socket_mode_octal_like_systemd)
{
        conf c;

        load(&c, "[Daemon]\nSocketMode=666\n");
        ck_assert_str_eq(c.err, "");
        ck_assert_int_eq(c.cfg->socket_mode, 0666);
        conf_free(&c);
        load(&c, "[Daemon]\nSocketMode=0640\n");
        ck_assert_int_eq(c.cfg->socket_mode, 0640);
        conf_free(&c);
        assert_err("[Daemon]\nSocketMode=0x1b6\n", 2,
                   "[Daemon] SocketMode=0x1b6: not a socket mode: octal digits up to 0777");
        assert_err("[Daemon]\nSocketMode=1777\n", 2, "e.g. 0660");
        assert_err("[Daemon]\nSocketMode=8\n", 2, "not a socket mode");
        assert_err("[Daemon]\nSocketMode=\n", 2, "not a socket mode");
}
END_TEST

START_TEST(test_values_say_what_is_valid)
{
        assert_err("[Daemon]\nPluginDirectory=plugins\n", 2,
                   "[Daemon] PluginDirectory=plugins: must be an absolute path");
        assert_err("[Daemon]\nSocket=sock\n", 2, "must be an absolute path");
        assert_err("[Daemon]\nStateDirectory=state\n", 2, "must be an absolute path");
        assert_err("[Policy]\nDigestsFile=pins\n", 2, "must be an absolute path");
        assert_err("[Daemon]\nLogLevel=loud\n", 2, "must be err, warning, notice, info or debug");
        assert_err("[Daemon]\nWorkers=0\n", 2, "must be an integer from 1 to 256");
        assert_err("[Daemon]\n\n# c\nMaxConnections=many\n", 4, "from 1 to 65536");
        assert_err("[Daemon]\nMaxMessageSize=1K\n", 2, "from 4096 to 67108864, no suffix");
        assert_err("[Daemon]\nMaxBufferTotal=1K\n", 2, "optional K, M or G (powers of 1024), from 1M");
        assert_err("[Policy]\nMaxCallsPerUser=0\n", 2, "from 1 to 65536");
}
END_TEST

START_TEST(test_sec_keys_take_time_spans)
{
        static const struct {
                const char *value;
                double sec;
        } ok[] = {
                { "5s", 5 }, { "500ms", 0.5 }, { "1min", 60 }, { "1min 30s", 90 }, { "2h", 7200 },
                { "1.5s", 1.5 }, { "30", 30 }, { "0.25", 0.25 }, { "1d", 86400 },
        };
        char text[256];
        conf c;

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                snprintf(text, sizeof(text), "[Daemon]\nCallTimeoutSec=%s\nMessageTimeoutSec=%s\n",
                         ok[i].value, ok[i].value);
                load(&c, text);
                ck_assert_msg(c.r == 0, "%s: %s", ok[i].value, c.err);
                ck_assert_double_eq_tol(c.cfg->call_timeout_sec, ok[i].sec, 1e-9);
                ck_assert_double_eq_tol(c.cfg->message_timeout_sec, ok[i].sec, 1e-9);
                conf_free(&c);
        }
        assert_err("[Daemon]\nCallTimeoutSec=0\n", 2, "must be above 0 and at most 1d");
        /* The daemon arms its deadlines in ms: less would be 0, at once. */
        assert_err("[Daemon]\nCallTimeoutSec=0.0000001s\n", 2,
                   "CallTimeoutSec=0.0000001s: rounds to 0 at this key's resolution of 1ms; the smallest "
                   "accepted value is 1ms");
        assert_err("[Daemon]\nMessageTimeoutSec=999us\n", 2, "rounds to 0 at this key's resolution of 1ms");
        load(&c, "[Daemon]\nCallTimeoutSec=1ms\nMessageTimeoutSec=0.001\n");
        ck_assert_msg(c.r == 0, "%s", c.err);
        ck_assert_double_eq_tol(c.cfg->call_timeout_sec, 0.001, 1e-12);
        ck_assert_double_eq_tol(c.cfg->message_timeout_sec, 0.001, 1e-12);
        conf_free(&c);
        assert_err("[Daemon]\nCallTimeoutSec=1d 1s\n", 2, "at most 1d");
        assert_err("[Daemon]\nMessageTimeoutSec=5 parsecs\n", 2,
                   "MessageTimeoutSec=5 parsecs: unknown time unit: use us, ms, s, min, h");
        assert_err("[Daemon]\nCallTimeoutSec=-5s\n", 2, "cannot be negative");
        assert_err("[Daemon]\nCallTimeoutSec=\n", 2, "empty");
        assert_err("[Daemon]\nCallTimeoutSec=99999999999999999999999\n", 2, "too large");
}
END_TEST

/* ---- timespan.c ---- */

static uint64_t span_ok(const char *s)
{
        char why[256] = "";
        uint64_t u = 42;

        ck_assert_msg(ph_timespan_parse(s, &u, why, sizeof(why)) == 0, "%s: %s", s, why);
        return u;
}

static void span_bad(const char *s, int r, const char *want)
{
        char why[256] = "";
        uint64_t u = 42;

        ck_assert_int_eq(ph_timespan_parse(s, &u, why, sizeof(why)), r);
        ck_assert_msg(strstr(why, want), "%s: want \"%s\" in \"%s\"", s, want, why);
        ck_assert_uint_eq(u, 42);       /* untouched on failure */
}

START_TEST(test_timespan)
{
        const uint64_t S = PH_USEC_PER_SEC;

        ck_assert_uint_eq(span_ok("5"), 5 * S);
        ck_assert_uint_eq(span_ok("5s"), 5 * S);
        ck_assert_uint_eq(span_ok(" 5 sec "), 5 * S);
        ck_assert_uint_eq(span_ok("500ms"), 500000);
        ck_assert_uint_eq(span_ok("1min 30s"), 90 * S);
        ck_assert_uint_eq(span_ok("1min30s"), 90 * S);
        ck_assert_uint_eq(span_ok("1m"), 60 * S);
        ck_assert_uint_eq(span_ok("2h"), 7200 * S);
        ck_assert_uint_eq(span_ok("1.5h"), 5400 * S);
        ck_assert_uint_eq(span_ok("1.5s"), 1500000);
        ck_assert_uint_eq(span_ok(".5s"), 500000);
        ck_assert_uint_eq(span_ok("1w 1d"), 8 * 86400 * S);
        ck_assert_uint_eq(span_ok("1M"), 2629800 * S);
        ck_assert_uint_eq(span_ok("1y"), 31557600 * S);
        ck_assert_uint_eq(span_ok("7us"), 7);
        ck_assert_uint_eq(span_ok("7\xce\xbcs"), 7);
        ck_assert_uint_eq(span_ok("0.0000001s"), 0);    /* below a microsecond */
        ck_assert(ph_timespan_nonzero("0.0000001s"));   /* for the caller to refuse */
        ck_assert(!ph_timespan_nonzero("0s 0.000ms"));
        ck_assert_uint_eq(span_ok("1.0000000000000000000000001s"), S);
        ck_assert_uint_eq(span_ok("18446744073709551615us"), UINT64_MAX);
        span_bad("", -EINVAL, "empty");
        span_bad("   ", -EINVAL, "empty");
        span_bad("-1s", -EINVAL, "negative");
        span_bad("s", -EINVAL, "not a time span");
        span_bad(".s", -EINVAL, "not a time span");
        span_bad("5 parsecs", -EINVAL, "us, ms, s, min, h, d, w, M");
        span_bad("5s garbage", -EINVAL, "not a time span");
        span_bad("5ss", -EINVAL, "unknown time unit");
        span_bad("infinity", -EINVAL, "not a time span");
        span_bad("1..5s", -EINVAL, "not a time span");
        span_bad("18446744073709551616us", -ERANGE, "too large");
        span_bad("99999999999999999999999", -ERANGE, "too large");
        span_bad("600000y", -ERANGE, "too large");
        span_bad("18446744073709551615us 1us", -ERANGE, "too large");
        span_bad("18446744073709.6s", -ERANGE, "too large");
}
END_TEST

/* ---- suggest.c ---- */

START_TEST(test_suggest)
{
        static const char *const keys[] = { "CallTimeoutSec", "MessageTimeoutSec", "Socket",
                                            "SocketMode" };
        static const char *const names[] = { "kv", "hello", "upper" };
        char long_word[PH_SUGGEST_MAX + 2];

        ck_assert_uint_eq(ph_suggest_distance("kitten", "sitting"), 3);
        ck_assert_uint_eq(ph_suggest_distance("", "abc"), 3);
        ck_assert_uint_eq(ph_suggest_distance("ABC", "abc"), 0);
        ck_assert_str_eq(ph_suggest("CallTimeoutSecs", keys, 4), "CallTimeoutSec");
        ck_assert_str_eq(ph_suggest("calltimeoutsec", keys, 4), "CallTimeoutSec");
        ck_assert_str_eq(ph_suggest("SocketMod", keys, 4), "SocketMode");
        ck_assert_str_eq(ph_suggest("kvv", names, 3), "kv");
        ck_assert_str_eq(ph_suggest("helo", names, 3), "hello");
        ck_assert_ptr_null(ph_suggest("Frobnicate", keys, 4));
        ck_assert_ptr_null(ph_suggest("zz", names, 3));
        ck_assert_ptr_null(ph_suggest("kv", names, 3));         /* itself */
        ck_assert_ptr_null(ph_suggest("x", names, 0));
        memset(long_word, 'a', sizeof(long_word) - 1);
        long_word[sizeof(long_word) - 1] = '\0';
        ck_assert_uint_eq(ph_suggest_distance(long_word, "a"), SIZE_MAX);
        ck_assert_ptr_null(ph_suggest(long_word, keys, 4));
}
END_TEST

/* ---- syntax and keys ---- */

START_TEST(test_syntax_errors)
{
        /* Not "unknown key" for the keys after it. */
        assert_err("[Daemon]\nWorkers=2\n[Plugin kv\nConfig={}\n", 3,
                   "syntax error: a section header without its closing ']'");
        assert_err("[Daemon\nSocketMode=0660\n", 1, "syntax error");
        assert_err("[Daemon]\nWorkers 4\n", 2, "syntax error: expected Key=Value");
        /* inih reads an indented header as a header when no key is
         * before it in its section (else it continues that key). */
        assert_err("[Daemon]\n\n  [Policy\n", 3, "syntax error: a section header without its closing");
        assert_err("Workers=4\n[Daemon]\n", 1, "a key before any section");
        /* Not "unknown key" with an empty name. */
        assert_err("[Daemon]\n=5\n", 2, "[Daemon] =5: a key name is missing before '=' (Key=Value)");
        assert_err("[Policy]\n  = x\n", 2, "[Policy] =x: a key name is missing before '='");
        assert_err("[Plugin kv]\n:{}\n", 2, "a key name is missing before ':' (Key=Value)");
        assert_err("=5\n[Daemon]\n", 1, "=5: a key name is missing before '='");
        /* A NUL would cut the line inih sees. */
        {
                conf c;

                load_n(&c, "[Daemon]\nWorkers=4\0junk\n", 24);
                ck_assert_int_lt(c.r, 0);
                ck_assert_msg(strstr(c.err, ":2: syntax error: a NUL byte"), "%s", c.err);
                conf_free(&c);
        }
}
END_TEST

START_TEST(test_unknown_keys_and_sections)
{
        assert_err("[Daemon]\nCallTimeoutSecs=5\n", 2,
                   "[Daemon] CallTimeoutSecs=: unknown key; did you mean CallTimeoutSec=?");
        assert_err("[Daemon]\nsocketmode=0660\n", 2, "did you mean SocketMode=?");
        assert_err("[Policy]\nAllowUser=root\n", 2, "did you mean AllowUsers=?");
        assert_err("[Plugin kv]\nConfg={}\n", 2, "did you mean Config=?");
        assert_err("[Directory /x]\nIsolaton=process\n", 2, "did you mean Isolation=?");
        assert_err("[Daemon]\nFrobnicate=1\n", 2, "[Daemon] Frobnicate=: unknown key");
        {
                conf c;

                load(&c, "[Daemon]\nFrobnicate=1\n");
                ck_assert_ptr_null(strstr(c.err, "did you mean"));
                conf_free(&c);
        }
        assert_err("[Deamon]\nWorkers=1\n", 1, "unknown section [Deamon]; did you mean [Daemon]?");
        assert_err("[Plugins kv]\n", 1, "did you mean [Plugin NAME]?");
        assert_err("[Plugin]\n", 1, "unknown section [Plugin]");
        assert_err("[Daemon]\n[Nonsense]\n", 2, "unknown section [Nonsense]; sections are");
        assert_err("[Directory relative/dir]\nIsolation=process\n", 1,
                   "write [Directory PATH], PATH absolute");
}
END_TEST

/* A directory named twice is one directory: scanned once, one series of
 * plughostctl metrics. */
START_TEST(test_plugin_directory_twice)
{
        conf c;

        load(&c, "[Daemon]\nPluginDirectory=/p\nPluginDirectory=/q\nPluginDirectory=/p\n");
        ck_assert_int_eq(c.r, 0);
        ck_assert_uint_eq(c.cfg->n_plugin_dirs, 2);
        ck_assert_str_eq(c.cfg->plugin_dirs[0], "/p");
        ck_assert_str_eq(c.cfg->plugin_dirs[1], "/q");
        conf_free(&c);
}
END_TEST

/* Every key a suggestion may name is one the parser knows. */
START_TEST(test_every_documented_key_known)
{
        static const char *const lines[] = {
                "[Daemon]\nPluginDirectory=/p\nWorkerPath=/w\nSocket=/s\nSocketMode=0660\n"
                "SocketGroup=g\nStateDirectory=/st\nLogLevel=info\nCallTimeoutSec=1\nWorkers=2\n"
                "MaxConnections=100\nMaxConnectionsPerUser=10\nMaxMessageSize=4096\n"
                "ReservedConnections=1\nMaxBufferPerConnection=1M\nMaxBufferTotal=2M\n"
                "MonitorBufferMax=1M\nMessageTimeoutSec=1\nIsolation=process\nLimitAS=1G\n"
                "LimitCPU=1\nLimitNOFILE=64\nLimitNPROC=64\n",
                "[Policy]\nAllowUsers=root\nAllowGroups=root\nDigestsFile=/d\nMaxCallsPerUser=1\n"
                "MaxCallsPerPlugin=1\n",
                "[Plugin kv]\nConfig={}\nAllowUsers=root\nAllowGroups=root\nIsolation=process\n",
                "[Directory /p]\nIsolation=process\nLimitCPU=1\n",
        };

        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                conf c;

                load(&c, lines[i]);
                ck_assert_msg(!strstr(c.err, "unknown key"), "%s", c.err);
                conf_free(&c);
        }
}
END_TEST

START_TEST(test_plugin_section_names)
{
        assert_err("[Plugin Bad Name]\nConfig={}\n", 1,
                   "[Plugin Bad Name]: \"Bad Name\" is not a plugin name: write [Plugin NAME]");
        /* Also without keys. */
        assert_err("[Daemon]\n[Plugin Bad Name]\n", 2, "^[a-z0-9][a-z0-9._-]{0,63}$");
        assert_err("[Plugin -kv]\n", 1, "is not a plugin name");
        assert_ok("[Plugin kv-2.x_y]\n");
}
END_TEST

/* Untrusted bytes of a section name are escaped in the message: no
 * terminal escape or invalid UTF-8 reaches the log. */
START_TEST(test_untrusted_text_escaped)
{
        conf c;

        load(&c, "[Plugin a\x1b[31mb]\n");
        ck_assert_int_lt(c.r, 0);
        ck_assert_ptr_null(strchr(c.err, '\x1b'));
        ck_assert_msg(strstr(c.err, "a\\x1b[31mb"), "%s", c.err);
        conf_free(&c);
        load(&c, "[Pl\xffugin kv]\n");
        ck_assert_int_lt(c.r, 0);
        ck_assert_ptr_null(strchr(c.err, '\xff'));
        ck_assert_msg(strstr(c.err, "Pl\\xffugin"), "%s", c.err);
        conf_free(&c);
        load(&c, "[Daemon]\nSocketGroup=ok\nLogLevel=\x07\x1b]0;title\x07\n");
        ck_assert_int_lt(c.r, 0);
        ck_assert_ptr_null(strchr(c.err, '\x1b'));
        ck_assert_ptr_null(strchr(c.err, '\x07'));
        conf_free(&c);
}
END_TEST

START_TEST(test_long_lines_and_files)
{
        size_t n = 100 * 1024;
        char *text = malloc(n + 64);
        int len;

        len = sprintf(text, "[Daemon]\nSocketGroup=");
        memset(text + len, 'x', n);
        strcpy(text + len + n, "\nWorkers=2\n");
        assert_err(text, 2, "syntax error: a line longer than 198 characters, the most a line may hold; "
                   "no value can be that long");
        {
                conf c;

                load(&c, text);
                ck_assert_ptr_null(strstr(c.err, "Config="));
                conf_free(&c);
        }
        free(text);

        /* Over 1 MiB of comments. */
        n = (1u << 20) + 10;
        text = malloc(n + 1);
        memset(text, '\n', n);
        memcpy(text, "#", 1);
        text[n] = '\0';
        {
                conf c;

                load(&c, text);
                ck_assert_int_lt(c.r, 0);
                ck_assert_msg(strstr(c.err, "larger than 1 MiB"), "%s", c.err);
                conf_free(&c);
        }
        free(text);
}
END_TEST

/* The line limit is inih's buffer: comments never reach it, and the
 * advice on a long line is the one for what the line is. */
START_TEST(test_long_lines_say_what_to_do)
{
        char pad[301], text[1024];

        memset(pad, 'x', 300);
        pad[300] = '\0';
        snprintf(text, sizeof(text), "[Daemon]\n# %s\n; %s\n  # %s\nWorkers=2\n", pad, pad, pad);
        assert_ok(text);
        /* Within Config=: a comment is no continuation. */
        snprintf(text, sizeof(text), "[Plugin kv]\nConfig={\"a\":\n# %s\n  1}\n", pad);
        assert_ok(text);

        snprintf(text, sizeof(text), "[Plugin kv]\nConfig={\"a\": \"%s\"}\n", pad);
        assert_err(text, 2, "a line longer than 198 characters; split a long Config= over indented "
                   "continuation lines");
        snprintf(text, sizeof(text), "[Plugin kv]\nConfig={\"a\":\n\n  \"%s\"}\n", pad);
        assert_err(text, 4, "split a long Config= over indented continuation lines");
        snprintf(text, sizeof(text), "[Plugin kv]\nAllowUsers=root\n  %s\n", pad);
        assert_err(text, 3, "give AllowUsers= again on more lines (each adds to the list)");
        snprintf(text, sizeof(text), "[Plugin kv]\nConfig={}\n[Daemon]\n  %s\n", pad);
        assert_err(text, 4, "the most a line may hold; no value can be that long");
        snprintf(text, sizeof(text), "[Plugin kv]\nIsolation=%s\n", pad);
        assert_err(text, 2, "the most a line may hold; no value can be that long");
}
END_TEST

START_TEST(test_file_errors)
{
        char *dir = tu_tmpdir(), *sub = tu_path(dir, "conf"), *missing = tu_path(dir, "missing.conf");
        char err[1024] = "";
        ph_config *cfg;

        ck_assert_int_eq(ph_config_new(&cfg), 0);
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        ck_assert_int_lt(ph_config_load(cfg, sub, true, err, sizeof(err)), 0);
        ck_assert_msg(strstr(err, "Is a directory") && strstr(err, sub), "%s", err);
        ck_assert_int_eq(ph_config_load(cfg, missing, false, err, sizeof(err)), 0);
        ck_assert_int_lt(ph_config_load(cfg, missing, true, err, sizeof(err)), 0);
        ck_assert_msg(strstr(err, "No such file"), "%s", err);
        ck_assert_int_eq(mkfifo(missing, 0600), 0);
        ck_assert_int_lt(ph_config_load(cfg, missing, true, err, sizeof(err)), 0);
        ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
        ph_config_unref(cfg);
        tu_tmpdir_free(dir);
        free(sub);
        free(missing);
}
END_TEST

/* ---- Config= ---- */

START_TEST(test_config_json_errors_name_the_line)
{
        conf c;
        char *dropdir, *drop, want[4300];

        assert_err("[Plugin kv]\nConfig={\"a\": 1,\n  \"b\": ,\n  \"c\": 3}\n", 3,
                   "[Plugin kv] Config=: not a JSON object: ");
        assert_err("[Plugin kv]\nAllowUsers=root\nConfig=[1, 2]\n", 3,
                   "[Plugin kv] Config=: not a JSON object but an array");
        /* A second Config= is appended: the error is in its piece. */
        assert_err("[Plugin kv]\nConfig={\"a\": 1}\n\n[Plugin kv]\nConfig=\"s\"\n", 5,
                   "not a JSON object: end of file expected");
        assert_ok("[Plugin kv]\nConfig={\"a\":\n  # comment\n\n  [1, 2]}\n");

        /* An error in a drop-in's piece names the drop-in. */
        load(&c, "");
        dropdir = malloc(strlen(c.path) + 3);
        sprintf(dropdir, "%s.d", c.path);
        ck_assert_int_eq(mkdir(dropdir, 0755), 0);
        drop = tu_path(dropdir, "50-kv.conf");
        tu_write_file(c.path, "[Plugin kv]\nConfig={\"a\": 1\n", 27);
        tu_write_file(drop, "[Plugin kv]\n\nConfig=,, }\n", 25);
        ck_assert_int_lt(ph_config_load(c.cfg, c.path, true, c.err, sizeof(c.err)), 0);
        snprintf(want, sizeof(want), "%s:3: [Plugin kv] Config=: not a JSON object: ", drop);
        ck_assert_msg(strncmp(c.err, want, strlen(want)) == 0, "want %s, got %s", want, c.err);
        free(drop);
        free(dropdir);
        conf_free(&c);
}
END_TEST

/* ---- [Plugin NAME] naming no plugin ---- */

static void collect(const char *msg, void *userdata)
{
        char *buf = userdata;

        strcat(buf, msg);
        strcat(buf, "\n");
}

START_TEST(test_unknown_plugins)
{
        static const char *const names[] = { "kv", "hello" };
        char got[4096] = "", want[4096];
        conf c;

        load(&c, "[Plugin kv]\nConfig={}\n[Plugin kvv]\n\n[Plugin zzz]\nAllowUsers=root\n[Plugin kvv]\n");
        ck_assert_msg(c.r == 0, "%s", c.err);
        ck_assert_uint_eq(ph_config_unknown_plugins(c.cfg, names, 2, collect, got), 2);
        snprintf(want, sizeof(want),
                 "%s:3: [Plugin kvv]: no plugin named \"kvv\"; did you mean \"kv\"?\n"
                 "%s:5: [Plugin zzz]: no plugin named \"zzz\"\n", c.path, c.path);
        ck_assert_str_eq(got, want);
        conf_free(&c);
}
END_TEST

/* ---- plughostd ---- */

/* Runs plughostd with args (a shell word list), stdout and stderr in
 * *ret_out; returns the exit status. */
static int run_daemon(const char *args, char **ret_out)
{
        char cmd[8192];
        char *argv[] = { "/bin/sh", "-c", cmd, NULL };

        snprintf(cmd, sizeof(cmd), "exec '%s/plughostd' %s 2>&1", getenv("PH_BUILDDIR"), args);
        return tu_run(argv, ret_out);
}

START_TEST(test_check_config)
{
        du_daemon d;
        char args[4096], *out, *sock, *state;

        du_init(&d);
        sock = tu_path(d.dir, "check.sock");
        state = tu_path(d.dir, "check-state");
        du_write_config(&d, "[Daemon]\nCallTimeoutSec=1min 30s\n[Plugin kv]\nConfig={}\n");
        snprintf(args, sizeof(args), "--check-config -c '%s' -p '%s' -s '%s' -S '%s'", d.config,
                 d.plugins, sock, state);
        ck_assert_int_eq(run_daemon(args, &out), 0);
        ck_assert_msg(strstr(out, "configuration valid"), "%s", out);
        /* Every line it prints says who speaks. */
        ck_assert_msg(strstr(out, "plughostd: note: [Plugin NAME] sections are not matched"), "%s", out);
        free(out);
        /* Nothing made: no socket, no state directory. */
        ck_assert_int_ne(access(sock, F_OK), 0);
        ck_assert_int_ne(access(state, F_OK), 0);

        du_write_config(&d, "[Daemon]\nCallTimeoutSec=5 parsecs\n");
        ck_assert_int_eq(run_daemon(args, &out), 1);
        ck_assert_msg(strstr(out, ":2: [Daemon] CallTimeoutSec=5 parsecs: unknown time unit"), "%s", out);
        free(out);
        ck_assert_int_ne(access(sock, F_OK), 0);
        ck_assert_int_ne(access(state, F_OK), 0);
        free(sock);
        free(state);
        du_stop(&d);
}
END_TEST

START_TEST(test_relative_plugin_dir_is_usage_error)
{
        char *out;

        ck_assert_int_eq(run_daemon("--check-config -c /dev/null/none -p relative/dir", &out), 2);
        ck_assert_msg(strstr(out, "--plugin-dir relative/dir: must be an absolute path"), "%s", out);
        free(out);
        ck_assert_int_eq(run_daemon("-p relative/dir", &out), 2);
        free(out);
}
END_TEST

START_TEST(test_daemon_warns_of_unknown_plugin_after_scan)
{
        du_daemon d;

        du_init(&d);
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_write_config(&d, "[Plugin hello]\nConfig={}\n\n[Plugin helo]\nConfig={}\n");
        du_start(&d);
        ck_assert(du2_log_wait(&d, ":4: [Plugin helo]: no plugin named \"helo\"; did you mean \"hello\"?",
                               DU_TIMEOUT_MS));
        /* After the scan: the ready line comes after the warning. */
        ck_assert(du2_log_wait(&d, "ready:", DU_TIMEOUT_MS));
        ck_assert(!du2_log_wait(&d, "[Plugin hello]:", 0));
        du_stop(&d);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_socket_mode_octal_like_systemd);
        tcase_add_test(tc, test_values_say_what_is_valid);
        tcase_add_test(tc, test_sec_keys_take_time_spans);
        tcase_add_test(tc, test_timespan);
        tcase_add_test(tc, test_suggest);
        tcase_add_test(tc, test_syntax_errors);
        tcase_add_test(tc, test_unknown_keys_and_sections);
        tcase_add_test(tc, test_every_documented_key_known);
        tcase_add_test(tc, test_plugin_directory_twice);
        tcase_add_test(tc, test_plugin_section_names);
        tcase_add_test(tc, test_untrusted_text_escaped);
        tcase_add_test(tc, test_long_lines_and_files);
        tcase_add_test(tc, test_long_lines_say_what_to_do);
        tcase_add_test(tc, test_file_errors);
        tcase_add_test(tc, test_config_json_errors_name_the_line);
        tcase_add_test(tc, test_unknown_plugins);
        suite_add_tcase(s, tc);
        tc = tcase_create("daemon");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_check_config);
        tcase_add_test(tc, test_relative_plugin_dir_is_usage_error);
        tcase_add_test(tc, test_daemon_warns_of_unknown_plugin_after_scan);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
