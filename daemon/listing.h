/* List and Query: replies that can be longer than one message. */
#ifndef PH_LISTING_H
#define PH_LISTING_H

#include "daemon.h"
#include "server.h"
#include "varlink.h"

typedef struct ph_rank_index ph_rank_index;

/* io.plughost.List: whole, paged (limit/after/next) or streamed ("more"). */
void ph_listing_list(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r);
/* io.plughost.Query: whole, the best limit, or streamed ("more"). */
void ph_listing_query(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r);

/* Frees Query's index (d->ranks). */
void ph_listing_free(ph_daemon *d);

#endif
