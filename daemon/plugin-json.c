/* What clients see of a plugin: the serving instance's metadata while one
 * serves (with the file now in place as "pending" if it differs), else the
 * file's. */
#include <jansson.h>

#include "daemon.h"
#include "lifecycle.h"

static json_t *str_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

/* The file in place, when it is not what serves. */
static json_t *pending_json(const ph_plugin *p)
{
        const ph_life *l = p->life;
        const char *state = "discovered";

        if (!l->serving || l->serving->generation == p->file->generation)
                return json_null();
        if (l->load && l->load->generation == p->file->generation)
                state = "loading";
        else if (l->failed_generation == p->file->generation)
                state = "failed";
        return json_pack("{s:s, s:I, s:s, s:s, s:o}", "version", p->file->meta->version,
                         "generation", (json_int_t)p->file->generation, "file", p->file->path,
                         "state", state, "error",
                         str_or_null(l->failed_generation == p->file->generation ? l->error : NULL));
}

json_t *ph_plugin_json(const ph_plugin *p)
{
        const ph_life *l = p->life;
        const ph_meta *m = ph_life_meta(p);
        const ph_serving *srv = l->serving;
        json_t *ifaces = json_array();

        for (size_t i = 0; i < m->n_interfaces; i++)
                json_array_append_new(ifaces, json_string(m->interfaces[i]));
        return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:b, s:i, s:s, s:s, s:I, s:o, s:o}",
                         "name", p->name, "version", m->version, "interfaces", ifaces,
                         "description", str_or_null(m->description),
                         "license", str_or_null(m->license), "url", str_or_null(m->url),
                         "concurrency", m->serial ? "serial" : "parallel", "resident", m->resident,
                         "priority", m->priority, "state", ph_pstate_name(l->state),
                         "file", srv ? srv->file : p->file->path,
                         "generation", (json_int_t)(srv ? srv->generation : p->file->generation),
                         "lastError", str_or_null(l->error), "pending", pending_json(p));
}
