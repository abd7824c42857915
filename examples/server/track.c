/*
 * track.c - the tracking service: a validated batch of tracker events
 * (api_track.c parses and checks them) gets each visitor's variant, is
 * committed through the store, and is applied by this replica's follower
 * before the answer, so that the visitor's next request (a prediction of
 * this session) already sees it.
 */
#include <stdio.h>

#include "server.h"
#include "store.h"

/* How long an acknowledged batch may wait for this replica's follower; past
 * it the batch is still acknowledged (it is committed), it only shows in the
 * session a little later. */
#define APPLY_WAIT_MS 2000

int track_submit(srv *s, srv_event *ev, size_t n) {
    uint64_t by_type[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int v = srv_variant_for(s, ev[i].visitor_id);
        ev[i].variant = s->cfg.variants[v >= 0 && v < s->cfg.n_variants ? v : 0].name;
        by_type[ev[i].type == SRV_PURCHASE ? SRV_PURCHASE : SRV_PAGEVIEW]++;
    }
    int64_t seq = 0;
    if (srv_store_append(s->store, ev, n, &seq) != 0)
        return -1;
    metrics_events(s->metrics, SRV_PAGEVIEW, by_type[SRV_PAGEVIEW]);
    metrics_events(s->metrics, SRV_PURCHASE, by_type[SRV_PURCHASE]);
    live_wait(s, seq, APPLY_WAIT_MS);
    return 0;
}
