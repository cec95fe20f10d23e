/* What happens to plugins, as Monitor events and log lines. Loop thread. */
#ifndef PH_EVENTS_H
#define PH_EVENTS_H

#include <stdint.h>

typedef enum ph_event_kind {
        PH_EVENT_ADDED,                 /* a name appeared */
        PH_EVENT_CHANGED,               /* its file changed: a new generation */
        PH_EVENT_REMOVED,               /* the name left */
        PH_EVENT_LOADED,
        PH_EVENT_UNLOADED,
        PH_EVENT_FAILED,                /* a load failed, or a loaded plugin's new file was refused */
        _PH_EVENT_MAX,
} ph_event_kind;

const char *ph_event_kind_name(ph_event_kind k);

struct ph_server;

/* Logs the event and sends it to every Monitor stream of srv (may be
 * NULL). version and message may be NULL. */
void ph_event_emit(struct ph_server *srv, ph_event_kind kind, const char *name,
                   const char *version, uint64_t generation, const char *message);

#endif
