/* "Did you mean ...?": the closest of some names to a misspelt one. */
#ifndef PH_SUGGEST_H
#define PH_SUGGEST_H

#include <stddef.h>

/* Longest word compared; longer ones get no suggestion. */
#define PH_SUGGEST_MAX 128

/* Edit distance (insertions, deletions, substitutions) of a and b, letter
 * case ignored, or SIZE_MAX if either is longer than PH_SUGGEST_MAX. */
size_t ph_suggest_distance(const char *a, const char *b);

/* The candidate closest to word, if it is close: at most a third of the
 * longer one's letters differ (at least 1, at most 3). NULL if none is,
 * or if word itself is a candidate. Borrowed from cands. Any thread. */
const char *ph_suggest(const char *word, const char *const *cands, size_t n);

#endif
