/* plughostd logging to stderr; the journal gets priority prefixes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

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

void ph_log(int level, const char *fmt, ...)
{
        char line[2048];
        int n, saved = errno;
        va_list ap;

        if (level > log_level)
                return;
        if (log_journal)
                n = snprintf(line, sizeof(line), "<%d>", level);
        else
                n = snprintf(line, sizeof(line), "plughostd: %s: ", level_names[level]);
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if ((size_t)n > sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        /* One line per message: a newline inside would forge a new entry. */
        for (char *p = line; p < line + n; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        line[n++] = '\n';
        if (write(STDERR_FILENO, line, (size_t)n) < 0) {
                /* Nowhere left to report it. */
        }
        errno = saved;
}
