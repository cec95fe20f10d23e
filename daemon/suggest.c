/* "Did you mean ...?" for unknown configuration keys, sections and plugin
 * names: Levenshtein distance, case-insensitive, on short words. */
#include <stdint.h>
#include <string.h>

#include "suggest.h"

static char lower(char c)
{
        return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

size_t ph_suggest_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b), row[PH_SUGGEST_MAX + 1];

        if (la > PH_SUGGEST_MAX || lb > PH_SUGGEST_MAX)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];

                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j], best = diag + (lower(a[i - 1]) != lower(b[j - 1]));

                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        diag = up;
                        row[j] = best;
                }
        }
        return row[lb];
}

const char *ph_suggest(const char *word, const char *const *cands, size_t n)
{
        const char *best = NULL;
        size_t best_d = SIZE_MAX;

        for (size_t i = 0; i < n; i++) {
                size_t d = ph_suggest_distance(word, cands[i]);
                size_t len = strlen(word) > strlen(cands[i]) ? strlen(word) : strlen(cands[i]);
                size_t limit = len / 3 < 1 ? 1 : len / 3 > 3 ? 3 : len / 3;

                if (strcmp(word, cands[i]) == 0)
                        return NULL;
                if (d <= limit && d < best_d) {
                        best = cands[i];
                        best_d = d;
                }
        }
        return best;
}
