/* What clients see of a plugin: the serving instance's metadata while one
 * serves (with the file now in place as "pending" if it differs), else the
 * file's. */
#include <jansson.h>

#include "daemon.h"
#include "lifecycle.h"
#include "varlink.h"
#include "worker.h"

/* Text from files and plugins (paths, messages): never a reason for the
 * whole object to fail (ph_varlink_text). */
static json_t *str_or_null(const char *s)
{
        return s ? ph_varlink_text(s) : json_null();
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
        return json_pack("{s:s, s:I, s:o, s:s, s:o}", "version", p->file->meta->version,
                         "generation", (json_int_t)p->file->generation, "file",
                         str_or_null(p->file->path),
                         "state", state, "error",
                         str_or_null(l->failed_generation == p->file->generation ? l->error : NULL));
}

/* An isolated plugin's worker process, while a generation serves. */
static json_t *worker_json(const ph_serving *srv)
{
        void *h = srv ? ph_instance_runner_handle(srv->inst) : NULL;
        ph_worker_stats st;

        if (!h)
                return json_null();
        ph_worker_stats_get(h, &st);
        return json_pack("{s:I, s:i, s:i, s:b, s:o}", "pid", (json_int_t)st.pid, "restarts",
                         (int)st.restarts, "faults", (int)st.faults, "quarantined", st.quarantined,
                         "lastFault", str_or_null(st.last_fault[0] ? st.last_fault : NULL));
}

/* Where its code runs: the serving instance's mode, else the configured. */
static const char *isolation_name(const ph_daemon *d, const ph_plugin *p, const ph_serving *srv)
{
        ph_isolation iso;

        if (srv)
                return ph_instance_runner_handle(srv->inst) ? "process" : "inprocess";
        ph_config_isolation(d->cfg, p->name, p->file->path, &iso);
        return ph_isolation_mode_name(iso.mode);
}

json_t *ph_plugin_json(const ph_daemon *d, const ph_plugin *p)
{
        const ph_life *l = p->life;
        const ph_meta *m = ph_life_meta(p);
        const ph_serving *srv = l->serving;
        json_t *ifaces = json_array(), *j;

        for (size_t i = 0; i < m->n_interfaces; i++)
                json_array_append_new(ifaces, json_string(m->interfaces[i]));
        j = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:b, s:i, s:s, s:o, s:I, s:o, s:o}",
                         "name", p->name, "version", m->version, "interfaces", ifaces,
                         "description", str_or_null(m->description),
                         "license", str_or_null(m->license), "url", str_or_null(m->url),
                         "concurrency", m->serial ? "serial" : "parallel", "resident", m->resident,
                         "priority", m->priority, "state", ph_pstate_name(l->state),
                         "file", str_or_null(srv ? srv->file : p->file->path),
                         "generation", (json_int_t)(srv ? srv->generation : p->file->generation),
                         "lastError", str_or_null(l->error), "pending", pending_json(p));
        if (j) {
                json_object_set_new(j, "isolation", json_string(isolation_name(d, p, srv)));
                json_object_set_new(j, "worker", worker_json(srv));
        }
        return j;
}
