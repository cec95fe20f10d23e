/* plughostd logging to stderr; the journal gets priority prefixes, and
 * lines with fields go to it natively (sd_journal_sendv). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "log.h"
#include "varlink.h"

static int log_level = PH_LOG_INFO;
static int log_journal;

static const char *const level_names[] = {
        [PH_LOG_ERR] = "err", [PH_LOG_WARNING] = "warning", [PH_LOG_NOTICE] = "notice",
        [PH_LOG_INFO] = "info", [PH_LOG_DEBUG] = "debug",
};

/* $JOURNAL_STREAM is "dev:ino" of the journal's stream socket. */
static int log_stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return st.st_dev == dev && st.st_ino == ino;
}

void ph_log_init(int level)
{
        log_level = level;
        log_journal = log_stderr_is_journal();
}

bool ph_log_is_journal(void)
{
        return log_journal;
}

void ph_log_set_level(int level)
{
        log_level = level;
}

int ph_log_level_from_string(const char *s)
{
        for (int i = PH_LOG_ERR; i <= PH_LOG_DEBUG; i++)
                if (strcmp(s, level_names[i]) == 0)
                        return i;
        return -EINVAL;
}

/* Formats a message into line (at most size - 2 bytes), made safe for a
 * terminal and for the journal: one line (a newline inside would forge a
 * new entry: it becomes a space), and the other control characters (C0,
 * DEL and C1, which drive terminals) and bytes that are not UTF-8 written
 * as \xNN, whatever file name or plugin message the text came from; a
 * backslash is \x5c, so that \xNN is always an escape.
 * Returns its length. */
__attribute__((format(printf, 3, 0)))
static int log_format(char *line, size_t size, const char *fmt, va_list ap)
{
        char raw[2048];
        size_t i = 0, o = 0, len;
        int n = vsnprintf(raw, sizeof(raw), fmt, ap);

        len = n < 0 ? 0 : (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;
        while (i < len) {
                const unsigned char *s = (const unsigned char *)raw + i;
                size_t seq = ph_varlink_utf8_len(s, len - i), esc = 0;

                if (seq == 0)
                        esc = 1;                /* not UTF-8 */
                else if (seq == 1 && (*s < 0x20 || *s == 0x7f) && *s != '\n' && *s != '\r')
                        esc = 1;                /* C0 control, DEL */
                else if (*s == '\\')
                        esc = 1;                /* or \xNN would be ambiguous */
                else if (seq == 2 && s[0] == 0xc2 && s[1] < 0xa0)
                        esc = 2;                /* C1 control */
                if (o + (esc ? 4 * esc : seq) > size - 2)
                        break;
                if (esc) {
                        for (size_t k = 0; k < esc; k++)
                                o += (size_t)snprintf(line + o, size - o, "\\x%02x", s[k]);
                        i += esc;
                        continue;
                }
                if (*s == '\n' || *s == '\r') {
                        line[o++] = ' ';
                } else {
                        memcpy(line + o, s, seq);
                        o += seq;
                }
                i += seq;
        }
        line[o] = '\0';
        return (int)o;
}

static void log_write(int level, const char *msg, int len)
{
        char line[2100];
        int n;

        if (log_journal)
                n = snprintf(line, sizeof(line), "<%d>%.*s\n", level, len, msg);
        else
                n = snprintf(line, sizeof(line), "plughostd: %s: %.*s\n", level_names[level], len, msg);
        if (n > (int)sizeof(line) - 1)
                n = (int)sizeof(line) - 1;
        if (write(STDERR_FILENO, line, (size_t)n) < 0) {
                /* Nowhere left to report it. */
        }
}

void ph_log(int level, const char *fmt, ...)
{
        char msg[2048];
        int n, saved = errno;
        va_list ap;

        if (level > log_level)
                return;
        va_start(ap, fmt);
        n = log_format(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_write(level, msg, n);
        errno = saved;
}

/* One "NAME=value" field; value is cut at a newline (the native protocol
 * would take it as the end of the field). */
static void field_add(struct iovec *iov, int *n, char *buf, size_t size, const char *name,
                      const char *value)
{
        int len;

        if (!value)
                return;
        len = snprintf(buf, size, "%s=%.*s", name, (int)strcspn(value, "\n"), value);
        iov[(*n)++] = (struct iovec){ buf, len < (int)size ? (size_t)len : size - 1 };
}

void ph_log_fields(int level, const ph_log_ctx *ctx, const char *fmt, ...)
{
        char msg[2048 + 8], prio[16], plugin[300], file[4200], reason[64], uid[40];
        struct iovec iov[8];
        int n, k = 0, saved = errno;
        va_list ap;

        if (level > log_level)
                return;
        memcpy(msg, "MESSAGE=", 8);
        va_start(ap, fmt);
        n = log_format(msg + 8, sizeof(msg) - 8, fmt, ap);
        va_end(ap);
        if (!log_journal) {
                log_write(level, msg + 8, n);
                errno = saved;
                return;
        }
        iov[k++] = (struct iovec){ msg, (size_t)n + 8 };
        snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
        iov[k++] = (struct iovec){ prio, strlen(prio) };
        iov[k++] = (struct iovec){ (char *)"SYSLOG_IDENTIFIER=plughostd", 27 };
        field_add(iov, &k, plugin, sizeof(plugin), "PLUGHOST_PLUGIN", ctx->plugin);
        field_add(iov, &k, file, sizeof(file), "PLUGHOST_FILE", ctx->file);
        field_add(iov, &k, reason, sizeof(reason), "PLUGHOST_REASON", ctx->reason);
        if (ctx->uid >= 0) {
                snprintf(uid, sizeof(uid), "PLUGHOST_UID=%lld", ctx->uid);
                iov[k++] = (struct iovec){ uid, strlen(uid) };
        }
        /* No journal socket after all (a container, say): the stream. */
        if (sd_journal_sendv(iov, k) < 0)
                log_write(level, msg + 8, n);
        errno = saved;
}
