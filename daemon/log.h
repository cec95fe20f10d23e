/* plughostd logging: one line per message on stderr, with sd-daemon
 * priority prefixes ("<3>...") when stderr is the journal. */
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
 * %s of ph_log_escape'd text or be validated first. */
void ph_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) ph_log(PH_LOG_ERR, __VA_ARGS__)
#define log_warning(...) ph_log(PH_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) ph_log(PH_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) ph_log(PH_LOG_INFO, __VA_ARGS__)
#define log_debug(...) ph_log(PH_LOG_DEBUG, __VA_ARGS__)

#endif
