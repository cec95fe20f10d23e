/* plughostctl output helpers: aligned tables and escaping of untrusted text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct ctl_table {
        size_t n_columns;
        size_t n_rows;
        char **cells;            /* (n_rows + 1) * n_columns; row 0: headers */
        size_t *widths;
};

char *ctl_escape(const char *s)
{
        size_t n = strlen(s);
        char *out = malloc(n * 6 + 1), *o = out;

        if (!out)
                return NULL;
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;

                if (c == '\n')
                        o += sprintf(o, "\\n");
                else if (c == '\t')
                        o += sprintf(o, "\\t");
                else if (c < 0x20 || c == 0x7f)
                        o += sprintf(o, "\\x%02x", c);
                else if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f)
                        /* C1 controls (U+0080..U+009F): CSI and OSC in one byte. */
                        o += sprintf(o, "\\u%04x", (unsigned char)*++s);
                else
                        *o++ = (char)c;
        }
        *o = '\0';
        return out;
}

ctl_table *ctl_table_new(size_t n_columns, const char *const *headers)
{
        ctl_table *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->n_columns = n_columns;
        t->widths = calloc(n_columns, sizeof(size_t));
        if (!t->widths || ctl_table_add(t, headers) < 0) {
                ctl_table_free(t);
                return NULL;
        }
        t->n_rows = 0;  /* the header row is not a data row */
        return t;
}

int ctl_table_add(ctl_table *t, const char *const *cells)
{
        size_t base = (t->cells ? t->n_rows + 1 : 0) * t->n_columns;
        char **grown = realloc(t->cells, (base + t->n_columns) * sizeof(char *));

        if (!grown)
                return -ENOMEM;
        t->cells = grown;
        for (size_t i = 0; i < t->n_columns; i++) {
                char *c = ctl_escape(cells[i] ? cells[i] : "-");
                size_t w;

                if (!c) {
                        while (i-- > 0)
                                free(t->cells[base + i]);
                        return -ENOMEM;
                }
                t->cells[base + i] = c;
                w = strlen(c);
                if (w > t->widths[i])
                        t->widths[i] = w;
        }
        if (base > 0)
                t->n_rows++;
        return 0;
}

void ctl_table_print(const ctl_table *t, bool legend, FILE *out)
{
        for (size_t r = legend ? 0 : 1; r <= t->n_rows; r++) {
                for (size_t c = 0; c < t->n_columns; c++) {
                        const char *cell = t->cells[r * t->n_columns + c];

                        if (c + 1 == t->n_columns)
                                fprintf(out, "%s\n", cell);
                        else
                                fprintf(out, "%-*s  ", (int)t->widths[c], cell);
                }
        }
}

void ctl_table_free(ctl_table *t)
{
        if (!t)
                return;
        if (t->cells)
                for (size_t i = 0; i < (t->n_rows + 1) * t->n_columns; i++)
                        free(t->cells[i]);
        free(t->cells);
        free(t->widths);
        free(t);
}
