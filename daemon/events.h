/* What happens to plugins and their files, as Monitor events and log
 * lines. Loop thread. */
#ifndef PH_EVENTS_H
#define PH_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ph_event_kind {
        PH_EVENT_ADDED,                 /* a name appeared */
        PH_EVENT_CHANGED,               /* its file changed: a new generation */
        PH_EVENT_REMOVED,               /* the name left (reason: why) */
        PH_EVENT_LOADED,
        PH_EVENT_UNLOADED,
        PH_EVENT_FAILED,                /* a load failed, or a loaded plugin's new file was refused */
        PH_EVENT_REJECTED,              /* a file was refused or shadowed */
        _PH_EVENT_MAX,
} ph_event_kind;

const char *ph_event_kind_name(ph_event_kind k);

typedef struct ph_event {
        ph_event_kind kind;
        const char *name;               /* the plugin; NULL only for a file whose metadata is unread */
        const char *version;            /* NULL: unknown */
        uint64_t generation;            /* 0: none */
        const char *file;               /* the file it is about, or NULL */
        const char *reason;             /* machine word: "untrusted", "deleted"..., or NULL */
        const char *message;            /* what happened, or NULL */
        const char *fix;                /* what to do about it, or NULL */
        long long uid;                  /* the file's owner, or -1 */
        bool unlogged;                  /* a Monitor event only (the line was rate-limited) */
        bool quiet;                     /* its line at debug, not info (the first scan's
                                         * "added": "ready: N plugins" sums them up) */
} ph_event;

struct ph_server;

/* Logs the event (one line, with journal fields) and sends it to every
 * Monitor stream of srv (may be NULL; with no client connected, no event
 * is built). */
void ph_event_emit(struct ph_server *srv, const ph_event *ev);

/* The Monitor message for ev, as ph_event_emit sends it: 0 and the
 * NUL-terminated text (*ret_len counts the NUL), or a negative errno. For
 * ph_event_emit and tests/test-replies.c. */
int ph__event_message(const ph_event *ev, char **ret, size_t *ret_len);

/* What to do about a file refused for reason (ph_file_reason_name's
 * words), or NULL. */
const char *ph_event_fix(const char *reason);

#endif
