/* Monitor events and their log lines: one place builds both. */
#include <jansson.h>

#include "events.h"
#include "log.h"
#include "server.h"

static const char *const event_names[_PH_EVENT_MAX] = {
        [PH_EVENT_ADDED] = "added", [PH_EVENT_CHANGED] = "changed",
        [PH_EVENT_REMOVED] = "removed", [PH_EVENT_LOADED] = "loaded",
        [PH_EVENT_UNLOADED] = "unloaded", [PH_EVENT_FAILED] = "failed",
};

const char *ph_event_kind_name(ph_event_kind k)
{
        return (unsigned)k < _PH_EVENT_MAX ? event_names[k] : "unknown";
}

void ph_event_emit(struct ph_server *srv, ph_event_kind kind, const char *name,
                   const char *version, uint64_t generation, const char *message)
{
        json_t *ev;

        if (kind == PH_EVENT_FAILED)
                log_warning("plugin %s: %s", name, message ? message : "failed");
        else if (message)
                log_info("plugin %s %s: %s", name, ph_event_kind_name(kind), message);
        else
                log_info("plugin %s %s", name, ph_event_kind_name(kind));
        if (!srv)
                return;
        ev = json_pack("{s:s, s:s}", "kind", ph_event_kind_name(kind), "name", name);
        if (!ev)
                return;
        if (version)
                json_object_set_new(ev, "version", json_string(version));
        if (generation)
                json_object_set_new(ev, "generation", json_integer((json_int_t)generation));
        if (message)
                json_object_set_new(ev, "message", json_string(message));
        ph_server_broadcast(srv, ev);
}
