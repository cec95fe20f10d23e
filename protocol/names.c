/* The enumerated words of the io.plughost interface, for the clients that
 * check them before sending (plughostctl's list --state). */
#include <stddef.h>

#include "varlink.h"

const char *const ph_varlink_plugin_states[] = {
        "discovered", "loading", "loaded", "failed", "quarantined", NULL,
};
