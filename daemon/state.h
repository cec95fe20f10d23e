/* What survives a restart, in the state directory: the plugins clients
 * loaded (restored at start), and the quarantine markers around init. Loop
 * thread, except the two marker functions. */
#ifndef PH_STATE_H
#define PH_STATE_H

#include <stdbool.h>

#include "registry.h"

typedef struct ph_state ph_state;

/* Reads dir's saved set and markers, and removes temporary files a crash
 * left behind. A missing or unreadable directory is logged, not fatal: the
 * daemon serves without memory. */
int ph_state_open(const char *dir, ph_state **ret);
void ph_state_free(ph_state *st);

/* The saved set of plugins clients loaded; saved at once on change. */
void ph_state_want(ph_state *st, const char *name, bool want);
bool ph_state_wanted(const ph_state *st, const char *name);

/* True if name's file (id) was being initialised when the daemon died.
 * A changed file gets a new chance (its marker is dropped). */
bool ph_state_quarantined(ph_state *st, const char *name, const ph_file_id *id);

/* Plugin threads, around a plugin's init: dir is the state directory. */
void ph_state_init_mark(const char *dir, const char *name, const ph_file_id *id);
void ph_state_init_clear(const char *dir, const char *name);

#endif
