/* Monitor events and their log lines: one place builds both. */
#include <jansson.h>
#include <string.h>

#include "events.h"
#include "jw.h"
#include "log.h"
#include "server.h"
#include "varlink.h"

static const char *const event_names[_PH_EVENT_MAX] = {
        [PH_EVENT_ADDED] = "added", [PH_EVENT_CHANGED] = "changed",
        [PH_EVENT_REMOVED] = "removed", [PH_EVENT_LOADED] = "loaded",
        [PH_EVENT_UNLOADED] = "unloaded", [PH_EVENT_FAILED] = "failed",
        [PH_EVENT_REJECTED] = "rejected",
};

const char *ph_event_kind_name(ph_event_kind k)
{
        return (unsigned)k < _PH_EVENT_MAX ? event_names[k] : "unknown";
}

static const struct {
        const char *reason;
        const char *fix;
} fixes[] = {
        { "untrusted", "make what the message names (the file, or a directory on its way) owned by "
                       "root or the daemon's user and writable by nobody else: chown root: PATH && "
                       "chmod go-w PATH" },
        { "shadowed", "remove the file you do not want, or give the one you want a higher version" },
        { "not-regular", "place a regular file; symlinks, devices and directories are never followed" },
        { "not-elf", "place a shared object built with -shared -fPIC, or move the file out" },
        { "wrong-class", "rebuild the plugin for this machine's word size" },
        { "wrong-byte-order", "rebuild the plugin for this machine" },
        { "wrong-machine", "rebuild the plugin for this machine" },
        { "not-shared-object", "link it with -shared -fPIC" },
        { "debug-only", "keep separate debug-symbol files out of plugin directories" },
        { "truncated", "the file is incomplete: copy it to a dotfile in the directory, then rename "
                       "it into place" },
        { "no-metadata", "declare it with PLUGHOST_PLUGIN (plughost/plugin.h); see the plugin guide" },
        { "bad-metadata", "fix the metadata; `plughostctl inspect FILE` shows what is wrong" },
        { "abi-too-new", "rebuild it against this host's plughost SDK" },
        { "too-large", "shrink it: the message names the limit it exceeds" },
        { "io-error", "check the file's permissions and the disk" },
};

const char *ph_event_fix(const char *reason)
{
        if (!reason)
                return NULL;
        for (size_t i = 0; i < sizeof(fixes) / sizeof(fixes[0]); i++)
                if (strcmp(fixes[i].reason, reason) == 0)
                        return fixes[i].fix;
        return NULL;
}

static void event_log(const ph_event *ev)
{
        ph_log_ctx ctx = { .plugin = ev->name, .file = ev->file, .reason = ev->reason, .uid = ev->uid };
        const char *msg = ev->message ? ev->message : "";
        const char *sep = ev->message ? ": " : "";
        const char *fix = ev->fix ? "; fix: " : "", *fixtext = ev->fix ? ev->fix : "";

        switch (ev->kind) {
        case PH_EVENT_REJECTED:
                ph_log_fields(PH_LOG_WARNING, &ctx, "%s refused: %s%s%s%s%s", ev->file ? ev->file : "?",
                              ev->reason ? ev->reason : "refused", sep, msg, fix, fixtext);
                return;
        case PH_EVENT_FAILED:
                ph_log_fields(PH_LOG_WARNING, &ctx, "plugin %s: %s%s%s", ev->name,
                              ev->message ? ev->message : "failed", fix, fixtext);
                return;
        case PH_EVENT_REMOVED:
                ph_log_fields(ev->reason && strcmp(ev->reason, "deleted") != 0 ? PH_LOG_WARNING
                                                                              : PH_LOG_INFO,
                              &ctx, "plugin %s removed%s%s", ev->name, sep, msg);
                return;
        default:
                ph_log_fields(ev->quiet ? PH_LOG_DEBUG : PH_LOG_INFO, &ctx, "plugin %s %s%s%s%s%s", ev->name,
                              ph_event_kind_name(ev->kind), sep, msg, fix, fixtext);
                return;
        }
}

static void event_member(ph_jw *w, const char *key, const char *text)
{
        if (text) {
                ph_jw_key(w, key);
                ph_jw_text(w, text);
        }
}

int ph__event_message(const ph_event *e, char **ret, size_t *ret_len)
{
        ph_jw w;

        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        ph_jw_key(&w, "event");
        ph_jw_object_open(&w);
        event_member(&w, "kind", ph_event_kind_name(e->kind));
        event_member(&w, "name", e->name);
        event_member(&w, "version", e->version);
        if (e->generation) {
                ph_jw_key(&w, "generation");
                ph_jw_int(&w, (long long)e->generation);
        }
        event_member(&w, "file", e->file);
        event_member(&w, "reason", e->reason);
        event_member(&w, "message", e->message);
        event_member(&w, "fix", e->fix);
        ph_jw_object_close(&w);
        return ph_jw_message_end(&w, true, ret, ret_len);
}

void ph_event_emit(struct ph_server *srv, const ph_event *e)
{
        char *msg;
        size_t len;

        if (!e->unlogged)
                event_log(e);
        /* Written once, for every subscriber, and only when there is one
         * (the first scan runs before anyone can subscribe). */
        if (!srv || !ph_server_monitors(srv))
                return;
        if (ph__event_message(e, &msg, &len) == 0)
                ph_server_broadcast(srv, msg, len);
}
