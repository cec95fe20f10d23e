/* What clients see of a plugin: the serving instance's metadata while one
 * serves (with the file now in place as "pending" if it differs), else the
 * file's. Written as text: what changes only with a generation (name,
 * version, interfaces, description...) is rendered once and spliced;
 * state, file and counters are written for each request. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "jw.h"
#include "lifecycle.h"
#include "varlink.h"
#include "worker.h"

/* The generation whose metadata is shown. */
static uint64_t shown_generation(const ph_plugin *p)
{
        return p->life->serving ? p->life->serving->generation : p->file->generation;
}

/* Renders one part into *ret (NUL-terminated, not counted); false when
 * there was no memory (the reply then writes it without the cache). */
static bool render(ph_jw *w, char **ret, size_t *ret_len)
{
        char *text;
        size_t len;

        if (ph_jw_finish(w, &text, &len) < 0)
                return false;
        *ret = text;
        *ret_len = len - 1;
        return true;
}

/* Writes the members "name" .. "priority" into w (an open object). */
static void static_write(ph_jw *w, const ph_plugin *p)
{
        const ph_meta *m = ph_life_meta(p);

        ph_jw_key(w, "name");
        ph_jw_string(w, p->name);
        ph_jw_key(w, "version");
        ph_jw_text(w, m->version);
        ph_jw_key(w, "interfaces");
        ph_jw_array_open(w);
        for (size_t i = 0; i < m->n_interfaces; i++)
                ph_jw_text(w, m->interfaces[i]);
        ph_jw_array_close(w);
        ph_jw_key(w, "description");
        ph_jw_text(w, m->description);
        ph_jw_key(w, "license");
        ph_jw_text(w, m->license);
        ph_jw_key(w, "url");
        ph_jw_text(w, m->url);
        ph_jw_key(w, "concurrency");
        ph_jw_string(w, m->serial ? "serial" : "parallel");
        ph_jw_key(w, "resident");
        ph_jw_bool(w, m->resident);
        ph_jw_key(w, "priority");
        ph_jw_int(w, m->priority);
}

/* The static members, from the cache (rendered when the generation shown
 * changed). They are written as members of an object: a helper object
 * around them is rendered and its braces left out. */
static void static_splice(ph_jw *w, ph_plugin *p)
{
        ph_life *l = p->life;
        uint64_t g = shown_generation(p);

        if (l->json_generation != g || !l->json_static) {
                ph_jw part;
                char *text;
                size_t len;

                free(l->json_static);
                l->json_static = NULL;
                l->json_generation = 0;
                ph_jw_init(&part, PH_VARLINK_MESSAGE_MAX);
                ph_jw_object_open(&part);
                static_write(&part, p);
                ph_jw_object_close(&part);
                if (!render(&part, &text, &len)) {
                        static_write(w, p);
                        return;
                }
                /* Without its braces: {...} -> ... */
                memmove(text, text + 1, len - 2);
                text[len - 2] = '\0';
                l->json_static = text;
                l->json_static_len = len - 2;
                l->json_generation = g;
        }
        ph_jw_members(w, l->json_static, l->json_static_len);
}

/* The file in place, when it is not what serves. */
static void pending_write(ph_jw *w, const ph_plugin *p)
{
        const ph_life *l = p->life;
        const char *state = "discovered";
        bool failed;

        if (!l->serving || l->serving->generation == p->file->generation) {
                ph_jw_null(w);
                return;
        }
        failed = l->failed_generation == p->file->generation;
        if (l->load && l->load->generation == p->file->generation)
                state = "loading";
        else if (failed)
                state = "failed";
        ph_jw_object_open(w);
        ph_jw_key(w, "version");
        ph_jw_text(w, p->file->meta->version);
        ph_jw_key(w, "generation");
        ph_jw_int(w, (long long)p->file->generation);
        ph_jw_key(w, "file");
        ph_jw_text(w, p->file->path);
        ph_jw_key(w, "state");
        ph_jw_string(w, state);
        ph_jw_key(w, "error");
        ph_jw_text(w, failed ? l->error : NULL);
        ph_jw_object_close(w);
}

/* An isolated plugin's worker process, while a generation serves. */
static void worker_write(ph_jw *w, const ph_serving *srv)
{
        void *h = srv ? ph_instance_runner_handle(srv->inst) : NULL;
        ph_worker_stats st;

        if (!h) {
                ph_jw_null(w);
                return;
        }
        ph_worker_stats_get(h, &st);
        ph_jw_object_open(w);
        ph_jw_key(w, "pid");
        ph_jw_int(w, (long long)st.pid);
        ph_jw_key(w, "restarts");
        ph_jw_int(w, (long long)st.restarts);
        ph_jw_key(w, "faults");
        ph_jw_int(w, (long long)st.faults);
        ph_jw_key(w, "quarantined");
        ph_jw_bool(w, st.quarantined);
        ph_jw_key(w, "lastFault");
        ph_jw_text(w, st.last_fault[0] ? st.last_fault : NULL);
        ph_jw_object_close(w);
}

/* Where its code runs: the serving instance's mode, else the configured. */
static const char *isolation_name(const ph_daemon *d, const ph_plugin *p, const ph_serving *srv)
{
        if (srv)
                return ph_instance_runner_handle(srv->inst) ? "process" : "inprocess";
        return ph_isolation_mode_name(ph_config_isolation_mode(d->cfg, p->name, p->file->path));
}

void ph_plugin_write(ph_jw *w, const ph_daemon *d, ph_plugin *p)
{
        const ph_life *l = p->life;
        const ph_serving *srv = l->serving;

        ph_jw_object_open(w);
        static_splice(w, p);
        ph_jw_key(w, "state");
        ph_jw_string(w, ph_pstate_name(l->state));
        ph_jw_key(w, "file");
        ph_jw_text(w, srv ? srv->file : p->file->path);
        ph_jw_key(w, "generation");
        ph_jw_int(w, (long long)(srv ? srv->generation : p->file->generation));
        ph_jw_key(w, "lastError");
        ph_jw_text(w, l->error);
        ph_jw_key(w, "pending");
        pending_write(w, p);
        ph_jw_key(w, "isolation");
        ph_jw_string(w, isolation_name(d, p, srv));
        ph_jw_key(w, "worker");
        worker_write(w, srv);
        ph_jw_object_close(w);
}

/* The metadata object, rendered once per generation from the tree, or
 * from the text when the registry dropped the tree (most plugins of a big
 * directory keep only the text). */
void ph_plugin_write_metadata(ph_jw *w, ph_plugin *p)
{
        ph_life *l = p->life;
        const ph_meta *m = ph_life_meta(p);
        uint64_t g = shown_generation(p);
        json_t *loaded = NULL;
        const json_t *tree;
        ph_jw part;

        if (l->json_metadata && l->json_metadata_generation == g) {
                ph_jw_raw(w, l->json_metadata, l->json_metadata_len);
                return;
        }
        free(l->json_metadata);
        l->json_metadata = NULL;
        l->json_metadata_generation = 0;
        tree = m->priv;
        if (!tree && m->json)
                tree = loaded = json_loads(m->json, JSON_REJECT_DUPLICATES, NULL);
        if (!tree) {
                ph_jw_raw(w, "{}", 2);
                return;
        }
        ph_jw_init(&part, PH_VARLINK_MESSAGE_MAX);
        ph_jw_json(&part, tree);
        if (!render(&part, &l->json_metadata, &l->json_metadata_len)) {
                l->json_metadata = NULL;
                ph_jw_json(w, tree);
        } else {
                l->json_metadata_generation = g;
                ph_jw_raw(w, l->json_metadata, l->json_metadata_len);
        }
        json_decref(loaded);
}
