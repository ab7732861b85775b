/* The overlay as a service (cp2p/overlay.h): the core (ovl_core.h) driven by framed links
 * (cp2p/framed.h), one libuv timer armed at the core's deadline, and an id generator
 * (ovl_id.h) whose floor lives in a file.
 *
 * Re-entrancy: cp2p_overlay_send runs the core and hands its frames to the framed links
 * (which never call back); the core's events (deliveries, results) are dispatched from a
 * zero-delay timer, so no user callback runs inside the call that caused it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <cp2p/framed.h>
#include <cp2p/overlay.h>

#include "overlay/ovl_core.h"
#include "overlay/ovl_id.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/hashmap.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define OLOG(lvl, ...) CP2P_LOG(CP2P_LOG_##lvl, "overlay", 0, __VA_ARGS__)
#define MAX_REFUSED_PEERS 64

static const char *const PROTOS[] = {CP2P_OVERLAY_PROTOCOL};

struct cp2p_overlay {
    cp2p_host *h;
    cp2p_overlay_config cfg;
    void *ud;
    cp2p_framed *fr;
    cp2p__ovl *core;
    cp2p__ovl_idgen ids;
    char *floor_path;
    uv_timer_t *timer, *dispatch;
    bool dispatching;
    uint64_t link_refused;
    /* Peers that spoke another wire version: not neighbours (bounded, oldest replaced). */
    cp2p_peer_id refused[MAX_REFUSED_PEERS];
    uint32_t n_refused, next_refused;
};

static uint64_t ov_now(const cp2p_overlay *ov)
{
    return uv_now(cp2p_host_loop(ov->h));
}

static uint64_t ov_rand(void *ud)
{
    (void)ud;
    uint64_t r;
    randombytes_buf(&r, sizeof(r));
    return r;
}

/* ---- the id floor file ---- */

static int floor_write(void *ud, uint64_t floor)
{
    cp2p_overlay *ov = ud;
    char tmp[4096], text[32];
    int fd, n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)floor);
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", ov->floor_path) >= (int)sizeof(tmp)) {
        return CP2P_EINVAL;
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        OLOG(WARN, "overlay.floor_write: %s: %s", tmp, strerror(errno));
        return CP2P_EIO;
    }
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, ov->floor_path) != 0) {
        OLOG(WARN, "overlay.floor_write: %s: %s", ov->floor_path, strerror(errno));
        (void)unlink(tmp);
        return CP2P_EIO;
    }
    return 0;
}

static int floor_read(const char *path, uint64_t *out)
{
    char text[32] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *out = 0;
    if (fd < 0) {
        return errno == ENOENT ? 0 : CP2P_EIO;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    (void)close(fd);
    char *end = NULL;
    errno = 0;
    unsigned long long v = n > 0 ? strtoull(text, &end, 10) : 0;
    if (n <= 0 || errno != 0 || end == text || (*end != '\n' && *end != '\0')) {
        OLOG(WARN, "overlay.floor_read: %s is not a floor written by cp2p", path);
        return CP2P_EIO;
    }
    *out = v;
    return 0;
}

/* ---- driving the core ---- */

static void on_timer(uv_timer_t *t);

static void on_dispatch(uv_timer_t *t);

/* After every call into the core: frames to the links, the timer re-armed, events queued. */
static void after_core(cp2p_overlay *ov)
{
    cp2p_peer_id to;
    cp2p_buf frame;
    while (cp2p__ovl_take_out(ov->core, &to, &frame)) {
        int rc = cp2p_framed_send(ov->fr, &to, frame.ptr, frame.len);
        if (rc != 0) {
            ov->link_refused++; /* reliable messages are retransmitted; routes re-sent */
        }
        cp2p_buf_fini(&frame);
    }
    uint64_t now = ov_now(ov), d = cp2p__ovl_deadline(ov->core);
    uv_timer_start(ov->timer, on_timer, d > now ? d - now : 0, 0);
    if (!ov->dispatching && cp2p__ovl_events_pending(ov->core)) {
        ov->dispatching = true;
        uv_timer_start(ov->dispatch, on_dispatch, 0, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    cp2p_overlay *ov = t->data;
    cp2p__ovl_on_timeout(ov->core, ov_now(ov));
    after_core(ov);
}

static void on_dispatch(uv_timer_t *t)
{
    cp2p_overlay *ov = t->data;
    cp2p__ovl_event ev;
    ov->dispatching = false;
    /* Bounded work per turn; the rest on the next. */
    for (int n = 0; n < 256 && cp2p__ovl_poll_event(ov->core, &ev); n++) {
        if (ev.kind == CP2P_OVL_EV_DELIVER) {
            if (ov->cfg.deliver != NULL) {
                ov->cfg.deliver(ov, &ev.peer, ev.id, ev.data.ptr, ev.data.len, ev.reliable,
                                ov->ud);
            }
        } else if (ov->cfg.result != NULL) {
            ov->cfg.result(ov, &ev.peer, ev.id, ev.kind == CP2P_OVL_EV_ACKED ? 0 : ev.status,
                           ov->ud);
        }
        cp2p__ovl_event_fini(&ev);
    }
    after_core(ov); /* re-arms dispatch only when events remain */
}

static bool is_refused(const cp2p_overlay *ov, const cp2p_peer_id *peer)
{
    for (uint32_t i = 0; i < ov->n_refused; i++) {
        if (cp2p_peer_id_equal(&ov->refused[i], peer)) {
            return true;
        }
    }
    return false;
}

/* ---- framed links ---- */

static void fr_up(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol, void *ud)
{
    cp2p_overlay *ov = ud;
    (void)f;
    (void)protocol;
    if (is_refused(ov, peer)) {
        return;
    }
    int rc = cp2p__ovl_add_neighbour(ov->core, peer, 1, ov_now(ov));
    if (rc != 0) {
        OLOG(INFO, "overlay.neighbour_refused: %s", cp2p_strerror(rc));
    }
    after_core(ov);
}

static void fr_down(cp2p_framed *f, const cp2p_peer_id *peer, int err, void *ud)
{
    cp2p_overlay *ov = ud;
    (void)f;
    (void)err;
    cp2p__ovl_remove_neighbour(ov->core, peer, ov_now(ov));
    after_core(ov);
}

static int fr_frame(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol,
                    const uint8_t *data, size_t len, void *ud)
{
    cp2p_overlay *ov = ud;
    const char *why = NULL;
    (void)f;
    (void)protocol;
    if (is_refused(ov, peer)) {
        return CP2P_ENOTSUP;
    }
    int rc = cp2p__ovl_on_frame(ov->core, peer, data, len, ov_now(ov), &why);
    if (rc == CP2P_ENOTSUP) {
        char s[CP2P_PEER_ID_STR_MAX];
        OLOG(INFO, "overlay.version_mismatch: peer %s: %s (we speak wire version %d); not "
                   "routing through it",
             cp2p_peer_id_str(peer, s), why, CP2P_OVL_VERSION);
        ov->refused[ov->next_refused] = *peer;
        ov->next_refused = (ov->next_refused + 1) % MAX_REFUSED_PEERS;
        if (ov->n_refused < MAX_REFUSED_PEERS) {
            ov->n_refused++;
        }
        cp2p__ovl_remove_neighbour(ov->core, peer, ov_now(ov));
    } else if (rc != 0) {
        char s[CP2P_PEER_ID_STR_MAX];
        OLOG(INFO, "overlay.bad_frame: peer %s: %s, stream reset", cp2p_peer_id_str(peer, s),
             why != NULL ? why : cp2p_strerror(rc));
    }
    after_core(ov);
    return rc;
}

static void ov_free(cp2p_overlay *ov);

static void fr_closing(cp2p_framed *f, void *ud)
{
    cp2p_overlay *ov = ud;
    (void)f;
    ov->fr = NULL;
    ov_free(ov);
}

/* ---- public ---- */

void cp2p_overlay_config_default(cp2p_overlay_config *cfg)
{
    cp2p__ovl_config c;
    cp2p__ovl_config_default(&c);
    *cfg = (cp2p_overlay_config){
        .hop_limit = c.hop_limit,
        .max_nodes = c.max_nodes,
        .max_unacked = c.max_unacked,
        .max_unacked_per_dst = c.max_unacked_per_dst,
        .retry_limit = c.retry_limit,
        .rto_initial_ms = c.rto_initial_ms,
        .rto_min_ms = c.rto_min_ms,
        .rto_max_ms = c.rto_max_ms,
        .update_interval_ms = c.update_interval_ms,
        .lsa_refresh_ms = c.lsa_refresh_ms,
        .dedup_window = c.dedup_window,
    };
}

static void on_handle_closed(uv_handle_t *h)
{
    cp2p_free(h);
}

int cp2p_overlay_new(cp2p_host *h, const cp2p_overlay_config *cfg, void *ud, cp2p_overlay **out)
{
    cp2p_overlay *ov;
    int rc;
    if (h == NULL || cfg == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    if ((ov = cp2p_calloc(1, sizeof(*ov))) == NULL) {
        return CP2P_ENOMEM;
    }
    ov->h = h;
    ov->cfg = *cfg;
    ov->ud = ud;
    uint64_t floor = 0;
    if (cfg->id_floor_path != NULL) {
        if ((ov->floor_path = cp2p__memdup(cfg->id_floor_path,
                                           strlen(cfg->id_floor_path) + 1)) == NULL) {
            rc = CP2P_ENOMEM;
            goto fail;
        }
        if ((rc = floor_read(ov->floor_path, &floor)) != 0) {
            goto fail;
        }
    }
    const cp2p_peer_id *self = cp2p_host_peer_id(h);
    uint16_t host_bits = (uint16_t)(cp2p__hashmap_hash(self->bytes, self->len) & 0x3ff);
    cp2p__ovl_idgen_init(&ov->ids, host_bits, floor, 0,
                         ov->floor_path != NULL ? floor_write : NULL, ov);
    uint64_t first_id;
    uint64_t wall = cp2p__wall_ms();
    if ((rc = cp2p__ovl_idgen_next(&ov->ids, wall, &first_id)) != 0) {
        goto fail;
    }
    cp2p__ovl_config c;
    cp2p__ovl_config_default(&c);
    c.key = cp2p_host_privkey(h);
    c.initial_seqno = (uint32_t)(wall / 1000);
    c.initial_lsa_seq = first_id;
    c.max_nodes = cfg->max_nodes;
    c.update_interval_ms = cfg->update_interval_ms;
    c.lsa_refresh_ms = cfg->lsa_refresh_ms;
    c.hop_limit = cfg->hop_limit;
    c.source_routing = cfg->source_routing;
    c.random_fallback = cfg->random_fallback;
    c.max_unacked = cfg->max_unacked;
    c.max_unacked_per_dst = cfg->max_unacked_per_dst;
    c.retry_limit = cfg->retry_limit;
    c.rto_initial_ms = cfg->rto_initial_ms;
    c.rto_min_ms = cfg->rto_min_ms;
    c.rto_max_ms = cfg->rto_max_ms;
    c.dedup_window = cfg->dedup_window;
    c.rand = ov_rand;
    if ((rc = cp2p__ovl_new(&c, ov_now(ov), &ov->core)) != 0) {
        goto fail;
    }
    ov->timer = cp2p_calloc(1, sizeof(*ov->timer));
    ov->dispatch = cp2p_calloc(1, sizeof(*ov->dispatch));
    if (ov->timer == NULL || ov->dispatch == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    cp2p_framed_config fc;
    cp2p_framed_config_default(&fc);
    fc.name = "overlay";
    fc.protocols = PROTOS;
    fc.n_protocols = 1;
    fc.ready = CP2P_SERVICE_READY_IDENTIFIED;
    fc.max_frame = CP2P_OVL_MAX_FRAME;
    fc.up = fr_up;
    fc.down = fr_down;
    fc.frame = fr_frame;
    fc.closing = fr_closing;
    if ((rc = cp2p_framed_new(h, &fc, ov, &ov->fr)) != 0) {
        goto fail;
    }
    uv_timer_init(cp2p_host_loop(h), ov->timer);
    uv_timer_init(cp2p_host_loop(h), ov->dispatch);
    ov->timer->data = ov->dispatch->data = ov;
    after_core(ov);
    *out = ov;
    return 0;
fail:
    cp2p__ovl_free(ov->core);
    cp2p_free(ov->timer);
    cp2p_free(ov->dispatch);
    cp2p_free(ov->floor_path);
    cp2p_free(ov);
    return rc;
}

static void ov_free(cp2p_overlay *ov)
{
    uv_timer_stop(ov->timer);
    uv_timer_stop(ov->dispatch);
    uv_close((uv_handle_t *)ov->timer, on_handle_closed);
    uv_close((uv_handle_t *)ov->dispatch, on_handle_closed);
    cp2p__ovl_free(ov->core);
    cp2p_free(ov->floor_path);
    cp2p_free(ov);
}

void cp2p_overlay_close(cp2p_overlay *ov)
{
    if (ov == NULL) {
        return;
    }
    cp2p_framed_close(ov->fr);
    ov->fr = NULL;
    ov_free(ov);
}

int cp2p_overlay_send(cp2p_overlay *ov, const cp2p_peer_id *dst, const void *data, size_t len,
                      uint32_t flags, uint64_t *id)
{
    uint64_t mid;
    int rc;
    if (ov == NULL || dst == NULL ||
        (flags & ~(CP2P_OVERLAY_RELIABLE | CP2P_OVERLAY_SOURCE_ROUTE)) != 0) {
        return CP2P_EINVAL;
    }
    if ((rc = cp2p__ovl_idgen_next(&ov->ids, cp2p__wall_ms(), &mid)) != 0) {
        return rc;
    }
    uint32_t cf = ((flags & CP2P_OVERLAY_RELIABLE) ? CP2P_OVL_F_RELIABLE : 0) |
                  ((flags & CP2P_OVERLAY_SOURCE_ROUTE) ? CP2P_OVL_F_SOURCE : 0);
    rc = cp2p__ovl_send(ov->core, dst, data, len, cf, 0, mid, ov_now(ov));
    after_core(ov);
    if (rc == 0 && id != NULL) {
        *id = mid;
    }
    return rc;
}

size_t cp2p_overlay_routes(const cp2p_overlay *ov, cp2p_overlay_route *out, size_t max)
{
    size_t cur = 0, n = 0;
    cp2p__ovl_route_info ri;
    while (cp2p__ovl_route_next(ov->core, &cur, &ri)) {
        if (n < max) {
            out[n] = (cp2p_overlay_route){.dst = ri.dst, .next_hop = ri.next_hop,
                                          .metric = ri.metric, .seqno = ri.seqno};
        }
        n++;
    }
    return n;
}

size_t cp2p_overlay_topology(const cp2p_overlay *ov, cp2p_overlay_link *out, size_t max)
{
    size_t cur = 0, n = 0;
    const cp2p__ovl_lsa *l;
    while (cp2p__ovl_lsa_next(ov->core, &cur, &l)) {
        for (uint32_t i = 0; i < l->n_links; i++) {
            if (n < max) {
                out[n] = (cp2p_overlay_link){.from = l->origin, .to = l->links[i].peer,
                                             .cost = l->links[i].cost, .seq = l->seq};
            }
            n++;
        }
    }
    return n;
}

int cp2p_overlay_path(cp2p_overlay *ov, const cp2p_peer_id *dst, cp2p_peer_id *path, size_t max)
{
    return cp2p__ovl_source_route(ov->core, dst, path, max, NULL);
}

uint32_t cp2p_overlay_unacked(const cp2p_overlay *ov, const cp2p_peer_id *dst)
{
    return cp2p__ovl_unacked_to(ov->core, dst);
}

void cp2p_overlay_stats_get(const cp2p_overlay *ov, cp2p_overlay_stats *out)
{
    cp2p__ovl_stats_get(ov->core, out);
    out->link_refused = ov->link_refused;
}
