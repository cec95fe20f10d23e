/* Typed red-black trees: the <sys/tree.h> macros of the BSDs (as tmux and
 * OpenSMTPD use them), from libbsd. Header-only: nothing is linked. */
#ifndef PH_TREE_H
#define PH_TREE_H

/* libbsd's copy marks its static functions __unused, a BSD spelling. */
#ifndef __unused
#define __unused __attribute__((unused))
#endif
#include <bsd/sys/tree.h>

#endif
