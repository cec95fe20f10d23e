/* A growable array in three variables (items, n, cap), for lib/ and the
 * daemon; internal, never installed. The array is owned by whoever owns
 * the variables and freed with free(items).
 *
 *     struct foo *v = NULL;
 *     size_t n = 0, cap = 0;
 *     if (ph__vec_push((void **)&v, &n, &cap, sizeof(*v), &one) < 0)
 *             return -ENOMEM;
 *
 * (The cast is to void **, which GCC and Clang let alias every pointer type.) */
#ifndef PH_VEC_H
#define PH_VEC_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PH_VEC_MIN 8u

/* Grows *items (doubling, at least PH_VEC_MIN elements) so that it holds at
 * least need elements of elem_size bytes; *cap is its size in elements.
 * Returns 0 (also when it already did), or -ENOMEM on overflow or failed
 * allocation, leaving *items and *cap untouched; -EINVAL if elem_size is 0. */
static inline int ph__vec_reserve(void **items, size_t *cap, size_t need, size_t elem_size)
{
        size_t n;
        void *p;

        if (elem_size == 0)
                return -EINVAL;
        if (need <= *cap)
                return 0;
        n = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
        if (n < PH_VEC_MIN)
                n = PH_VEC_MIN;
        if (n < need)
                n = need;
        if (n > SIZE_MAX / elem_size) {
                /* Doubling would overflow: settle for exactly need, if that fits. */
                if (need > SIZE_MAX / elem_size)
                        return -ENOMEM;
                n = need;
        }
        p = realloc(*items, n * elem_size);
        if (!p)
                return -ENOMEM;
        *items = p;
        *cap = n;
        return 0;
}

/* Appends a copy of the elem_size bytes at elem as element *n, growing the
 * array as ph__vec_reserve does, and counts it. Returns 0 or -ENOMEM (then
 * nothing changed). elem must not point into the array. */
static inline int ph__vec_push(void **items, size_t *n, size_t *cap, size_t elem_size,
                               const void *elem)
{
        int r;

        if (*n == SIZE_MAX)
                return -ENOMEM;
        r = ph__vec_reserve(items, cap, *n + 1, elem_size);
        if (r < 0)
                return r;
        memcpy((char *)*items + *n * elem_size, elem, elem_size);
        (*n)++;
        return 0;
}

#endif
