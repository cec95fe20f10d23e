/* plughostd logging: one line per message on stderr, with sd-daemon
 * priority prefixes ("<3>...") when stderr is the journal. Lines about a
 * plugin, a file or a client carry fields (ph_log_fields): in the journal
 * they are PLUGHOST_PLUGIN=, PLUGHOST_FILE=, PLUGHOST_REASON= and
 * PLUGHOST_UID=, for `journalctl PLUGHOST_PLUGIN=kv`. */
#ifndef PH_LOG_H
#define PH_LOG_H

#include <stdbool.h>

enum {
        PH_LOG_ERR = 3,
        PH_LOG_WARNING = 4,
        PH_LOG_NOTICE = 5,
        PH_LOG_INFO = 6,
        PH_LOG_DEBUG = 7,
};

/* Decides the format from $JOURNAL_STREAM and sets the level. Call once at
 * start, before threads. */
void ph_log_init(int level);
void ph_log_set_level(int level);
/* Whether stderr is the journal (lines then start with "<N>"). */
bool ph_log_is_journal(void);
/* "err", "warning", "notice", "info", "debug" -> level, or -EINVAL. */
int ph_log_level_from_string(const char *s);

/* Thread-safe (one write(2) per line). Untrusted text must go through a
 * be validated first: newlines become spaces, nothing else is escaped. */
void ph_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What a line is about; NULL members and uid -1 are left out. */
typedef struct ph_log_ctx {
        const char *plugin;
        const char *file;
        const char *reason;
        long long uid;
} ph_log_ctx;

/* ph_log with fields: sent natively when stderr is the journal (the
 * stream if that fails), else the same plain line as ph_log. */
void ph_log_fields(int level, const ph_log_ctx *ctx, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define log_err(...) ph_log(PH_LOG_ERR, __VA_ARGS__)
#define log_warning(...) ph_log(PH_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) ph_log(PH_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) ph_log(PH_LOG_INFO, __VA_ARGS__)
#define log_debug(...) ph_log(PH_LOG_DEBUG, __VA_ARGS__)

#endif
