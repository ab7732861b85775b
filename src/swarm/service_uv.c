/* Services (cp2p/service.h): the host's side of how protocols attach to peers.
 *
 * Readiness. A service's slot index is its bit in every connection's svc_bits: set while that
 * connection makes its peer usable for the service (upgraded, open, and — identified mode —
 * its identify lists one of the service's protocols). A peer is ready while any of its
 * connections has the bit; peer_ready fires when the first bit of a peer is set, peer_gone when
 * its last one clears. Host events (upgrade, identify, close) re-evaluate the bits of the
 * event's connection, so the cost of an event is O(services x connections to the same peer
 * found by a walk of the host's list) — the same walk as cp2p_host_conn_to. A new service is
 * synced with every connection on the next loop turn (the svc timer), never inside
 * cp2p_host_add_service.
 *
 * Lifetime. A service callback may remove its own service: the struct is freed only when no
 * callback of it is on the stack (in_cb). Removal clears the service's bits and slot at once,
 * so no further callback can be dispatched to it.
 *
 * Host close. cp2p_host_close starts the svc timer; its run calls each service's close
 * callback, newest first. When the last service reports cp2p_service_close_done, the timer
 * runs again and starts close phase 2 (the connections): never inside close_done, so that no
 * connection event reaches the application inside the call of a service. */
#include <string.h>

#include <cp2p/service.h>

#include "swarm/swarm.h"
#include "util/alloc.h"
#include "util/log_internal.h"

struct cp2p_service {
    cp2p_host *h;
    size_t idx;
    cp2p_service_desc d; /* strings point to the copies below */
    char *name;
    char *protos[CP2P_SERVICE_MAX_PROTOCOLS];
    bool handlers[CP2P_SERVICE_MAX_PROTOCOLS]; /* registered as a host handler */
    void *ud;
    size_t nready;
    bool synced;   /* the first sync with existing connections ran */
    bool removed;  /* detached: freed once in_cb drops to 0 */
    bool closing;  /* its close callback was called */
    int in_cb;
};

/* ---- bits ---- */

static bool bit_get(const cp2p_conn *c, size_t i)
{
    return i / 8 < c->svc_bits_len && (c->svc_bits[i / 8] >> (i % 8) & 1) != 0;
}

static int bit_put(cp2p_conn *c, size_t i, bool on)
{
    if (i / 8 >= c->svc_bits_len) {
        if (!on) {
            return 0;
        }
        size_t n = i / 8 + 1 > 2 * c->svc_bits_len ? i / 8 + 1 : 2 * c->svc_bits_len;
        uint8_t *b = cp2p_realloc(c->svc_bits, n);
        if (b == NULL) {
            return CP2P_ENOMEM;
        }
        memset(b + c->svc_bits_len, 0, n - c->svc_bits_len);
        c->svc_bits = b;
        c->svc_bits_len = n;
    }
    if (on) {
        c->svc_bits[i / 8] |= (uint8_t)(1u << (i % 8));
    } else {
        c->svc_bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
    }
    return 0;
}

void cp2p__conn_services_free(cp2p_conn *c)
{
    cp2p_free(c->svc_bits);
    c->svc_bits = NULL;
    c->svc_bits_len = 0;
}

/* ---- readiness ---- */

static bool speaks(const cp2p_service *svc, const cp2p_conn *c)
{
    if (svc->d.ready == CP2P_SERVICE_READY_CONNECTED) {
        return true;
    }
    if (c->identify == NULL) {
        return false;
    }
    const cp2p_identify_info *v = &c->identify_view;
    for (size_t i = 0; i < v->n_protocols; i++) {
        for (size_t j = 0; j < svc->d.n_protocols; j++) {
            if (strcmp(v->protocols[i], svc->protos[j]) == 0) {
                return true;
            }
        }
    }
    return false;
}

static bool usable(const cp2p_service *svc, const cp2p_conn *c)
{
    return c->upgraded && c->stage == CONN_OPEN && !c->closing && speaks(svc, c);
}

/* Another connection to c's peer that has the service's bit. */
static cp2p_conn *other_ready(const cp2p_service *svc, const cp2p_conn *c)
{
    for (cp2p_conn *o = cp2p__host_peer_conns(svc->h, &c->peer); o != NULL; o = o->peer_next) {
        if (o != c && bit_get(o, svc->idx)) {
            return o;
        }
    }
    return NULL;
}

static void svc_maybe_free(cp2p_service *svc)
{
    if (!svc->removed || svc->in_cb > 0) {
        return;
    }
    cp2p_free(svc->name);
    for (size_t i = 0; i < svc->d.n_protocols; i++) {
        cp2p_free(svc->protos[i]);
    }
    cp2p_free(svc);
}

/* Re-evaluate c for svc; runs peer_ready / peer_gone on a change of the peer's state. */
static void svc_update(cp2p_service *svc, cp2p_conn *c)
{
    bool now = usable(svc, c), was = bit_get(c, svc->idx);
    if (now == was) {
        return;
    }
    if (bit_put(c, svc->idx, now) != 0) {
        CP2P_LOG(CP2P_LOG_WARN, "service", c->id, "service.ready_lost %s: out of memory",
                 svc->name);
        return; /* stays not ready on this connection */
    }
    if (other_ready(svc, c) != NULL) {
        return; /* the peer's state does not change */
    }
    svc->in_cb++;
    if (now) {
        svc->nready++;
        if (svc->d.peer_ready != NULL) {
            svc->d.peer_ready(svc, &c->peer, c, svc->ud);
        }
    } else {
        svc->nready--;
        if (svc->d.peer_gone != NULL) {
            int err = c->stage == CONN_OPEN && !c->closing ? CP2P_ENOTSUP : c->close_err;
            svc->d.peer_gone(svc, &c->peer, err, svc->ud);
        }
    }
    svc->in_cb--;
}

/* Tracks readiness now: attached, not closing, synced, and listening for peers (a service
 * that only serves inbound streams costs nothing per host event). */
static bool svc_active(const cp2p_service *svc)
{
    return svc != NULL && !svc->removed && !svc->closing && svc->synced &&
           (svc->d.peer_ready != NULL || svc->d.peer_gone != NULL);
}

void cp2p__host_services_on_event(cp2p_host *h, const cp2p_event *ev)
{
    if (ev->conn == NULL ||
        (ev->type != CP2P_EVENT_CONN_OPENED && ev->type != CP2P_EVENT_PEER_IDENTIFIED &&
         ev->type != CP2P_EVENT_CONN_CLOSED)) {
        return;
    }
    /* By index: a callback may add or remove services (new ones sync on their own). */
    for (size_t i = 0; i < h->nservices; i++) {
        cp2p_service *svc = h->services[i];
        if (svc_active(svc)) {
            svc_update(svc, ev->conn);
            svc_maybe_free(svc);
        }
    }
}

/* ---- the deferred work ---- */

static void on_svc_timer(uv_timer_t *t);

/* Run the deferred work on the next loop turn. The timer keeps the loop alive only while work
 * is pending. */
static void svc_kick(cp2p_host *h)
{
    if (h->svc_timer_open) {
        uv_ref((uv_handle_t *)&h->svc_timer);
        (void)uv_timer_start(&h->svc_timer, on_svc_timer, 0, 0);
    }
}

static void on_svc_timer_closed(uv_handle_t *t)
{
    cp2p_host *h = t->data;
    h->svc_timer_open = false;
}

/* Close phase: every service not yet closing gets its close callback, newest first. */
static void svc_close_all(cp2p_host *h)
{
    for (size_t i = h->nservices; i-- > 0;) {
        cp2p_service *svc = h->services[i];
        if (svc == NULL || svc->removed || svc->closing) {
            continue;
        }
        svc->closing = true;
        if (svc->d.close == NULL) {
            cp2p_service_close_done(svc);
            continue;
        }
        svc->in_cb++;
        svc->d.close(svc, svc->ud);
        svc->in_cb--;
        svc_maybe_free(svc);
    }
}

static void on_svc_timer(uv_timer_t *t)
{
    cp2p_host *h = t->data;
    if (h->closing) {
        svc_close_all(h);
        if (h->services_live == 0) {
            uv_close((uv_handle_t *)&h->svc_timer, on_svc_timer_closed);
            cp2p__host_close_conns(h);
        }
        return;
    }
    uv_unref((uv_handle_t *)&h->svc_timer);
    if (!h->svc_sync) {
        return;
    }
    h->svc_sync = false;
    for (size_t i = 0; i < h->nservices; i++) {
        cp2p_service *svc = h->services[i];
        if (svc == NULL || svc->removed || svc->synced) {
            continue;
        }
        svc->synced = true;
        for (cp2p_conn *c = h->conns, *next; c != NULL && svc_active(svc); c = next) {
            next = c->next;
            svc_update(svc, c);
        }
        svc_maybe_free(svc);
    }
}

int cp2p__host_services_init(cp2p_host *h)
{
    if (uv_timer_init(h->loop, &h->svc_timer) != 0) {
        return CP2P_EIO;
    }
    h->svc_timer.data = h;
    h->svc_timer_open = true;
    uv_unref((uv_handle_t *)&h->svc_timer);
    return 0;
}

void cp2p__host_services_close(cp2p_host *h)
{
    if (!h->svc_timer_open) {
        cp2p__host_close_conns(h);
        return;
    }
    svc_kick(h);
}

bool cp2p__host_services_idle(const cp2p_host *h)
{
    return !h->svc_timer_open;
}

void cp2p__host_services_free(cp2p_host *h)
{
    for (size_t i = 0; i < h->nservices; i++) {
        cp2p_service *svc = h->services[i];
        if (svc != NULL) {
            svc->removed = true;
            svc->in_cb = 0;
            svc_maybe_free(svc);
        }
    }
    cp2p_free(h->services);
    h->services = NULL;
    h->nservices = h->services_cap = 0;
}

/* ---- API ---- */

static void svc_inbound(cp2p_stream *s, void *ud)
{
    cp2p_service *svc = ud;
    if (svc->removed || svc->closing) {
        cp2p_stream_reset(s);
        return;
    }
    svc->in_cb++;
    svc->d.inbound(svc, s, svc->ud);
    svc->in_cb--;
    svc_maybe_free(svc);
}

/* Detach: handlers, bits, slot. No callback. */
static void svc_detach(cp2p_service *svc)
{
    cp2p_host *h = svc->h;
    for (size_t i = 0; i < svc->d.n_protocols; i++) {
        if (svc->handlers[i]) {
            (void)!cp2p_host_remove_handler(h, svc->protos[i]);
            svc->handlers[i] = false;
        }
    }
    for (cp2p_conn *c = h->conns; c != NULL; c = c->next) {
        (void)bit_put(c, svc->idx, false);
    }
    h->services[svc->idx] = NULL;
    svc->removed = true;
    h->services_live--;
}

static int valid_desc(const cp2p_service_desc *d)
{
    if (d == NULL || d->name == NULL || d->n_protocols > CP2P_SERVICE_MAX_PROTOCOLS ||
        (d->n_protocols > 0 && d->protocols == NULL) ||
        (d->ready != CP2P_SERVICE_READY_IDENTIFIED && d->ready != CP2P_SERVICE_READY_CONNECTED) ||
        (d->ready == CP2P_SERVICE_READY_IDENTIFIED && d->n_protocols == 0) ||
        (d->inbound != NULL && d->n_protocols == 0) ||
        (d->stream_priority != 0 && (d->stream_priority < CP2P_STREAM_PRIORITY_MIN ||
                                     d->stream_priority > CP2P_STREAM_PRIORITY_MAX))) {
        return CP2P_EINVAL;
    }
    for (size_t i = 0; i < d->n_protocols; i++) {
        if (d->protocols[i] == NULL) {
            return CP2P_EINVAL;
        }
    }
    return 0;
}

static char *dup_cstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = cp2p_malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

/* A free slot: a NULL one, or a new one at the end. */
static ptrdiff_t svc_slot(cp2p_host *h)
{
    for (size_t i = 0; i < h->nservices; i++) {
        if (h->services[i] == NULL) {
            return (ptrdiff_t)i;
        }
    }
    if (h->nservices == h->services_cap) {
        size_t n = h->services_cap == 0 ? 8 : 2 * h->services_cap;
        cp2p_service **a = cp2p_realloc(h->services, n * sizeof(*a));
        if (a == NULL) {
            return CP2P_ENOMEM;
        }
        h->services = a;
        h->services_cap = n;
    }
    h->services[h->nservices] = NULL;
    return (ptrdiff_t)h->nservices++;
}

int cp2p_host_add_service(cp2p_host *h, const cp2p_service_desc *desc, void *ud,
                          cp2p_service **out)
{
    int rc;
    if (h == NULL || out == NULL || (rc = valid_desc(desc)) != 0) {
        return CP2P_EINVAL;
    }
    if (h->closing) {
        return CP2P_ECLOSED;
    }
    cp2p_service *svc = cp2p_calloc(1, sizeof(*svc));
    if (svc == NULL) {
        return CP2P_ENOMEM;
    }
    svc->h = h;
    svc->d = *desc;
    svc->ud = ud;
    svc->name = dup_cstr(desc->name);
    rc = svc->name == NULL ? CP2P_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < desc->n_protocols; i++) {
        if ((svc->protos[i] = dup_cstr(desc->protocols[i])) == NULL) {
            rc = CP2P_ENOMEM;
        }
    }
    svc->d.name = svc->name;
    svc->d.protocols = (const char *const *)svc->protos;
    ptrdiff_t slot = rc == 0 ? svc_slot(h) : CP2P_ENOMEM;
    if (slot < 0) {
        svc->removed = true;
        svc_maybe_free(svc);
        return rc != 0 ? rc : (int)slot;
    }
    svc->idx = (size_t)slot;
    h->services[slot] = svc;
    h->services_live++;
    for (size_t i = 0; desc->inbound != NULL && i < desc->n_protocols; i++) {
        rc = cp2p__host_add_handler(h, svc->protos[i], svc_inbound, svc,
                                    desc->max_inbound_per_conn);
        if (rc != 0) {
            svc_detach(svc);
            svc_maybe_free(svc);
            return rc;
        }
        svc->handlers[i] = true;
    }
    h->svc_sync = true;
    svc_kick(h);
    CP2P_LOG(CP2P_LOG_DEBUG, "service", 0, "service.added %s protocols=%zu", svc->name,
             svc->d.n_protocols);
    *out = svc;
    return 0;
}

void cp2p_service_remove(cp2p_service *svc)
{
    if (svc == NULL || svc->removed) {
        return;
    }
    cp2p_host *h = svc->h;
    svc_detach(svc);
    svc_maybe_free(svc);
    if (h->closing && h->services_live == 0) {
        svc_kick(h); /* the last one: the close moves on to the connections */
    }
}

void cp2p_service_close_done(cp2p_service *svc)
{
    cp2p_service_remove(svc);
}

cp2p_host *cp2p_service_host(const cp2p_service *svc)
{
    return svc->h;
}

void *cp2p_service_ud(const cp2p_service *svc)
{
    return svc->ud;
}

cp2p_service *cp2p_host_find_service(const cp2p_host *h, const char *protocol,
                                     void (*inbound)(cp2p_service *, cp2p_stream *, void *))
{
    for (size_t i = 0; protocol != NULL && i < h->nservices; i++) {
        cp2p_service *svc = h->services[i];
        if (svc == NULL || svc->removed || svc->d.inbound != inbound) {
            continue;
        }
        for (size_t j = 0; j < svc->d.n_protocols; j++) {
            if (strcmp(svc->protos[j], protocol) == 0) {
                return svc;
            }
        }
    }
    return NULL;
}

unsigned cp2p__host_protocol_priority(const cp2p_host *h, const char *protocol)
{
    for (size_t i = 0; i < h->nservices; i++) {
        cp2p_service *svc = h->services[i];
        if (svc == NULL || svc->removed || svc->d.stream_priority == 0) {
            continue;
        }
        for (size_t j = 0; j < svc->d.n_protocols; j++) {
            if (strcmp(svc->protos[j], protocol) == 0) {
                return svc->d.stream_priority;
            }
        }
    }
    return 0;
}

bool cp2p_service_peer_is_ready(const cp2p_service *svc, const cp2p_peer_id *peer)
{
    for (cp2p_conn *c = svc->h->conns; c != NULL; c = c->next) {
        if (bit_get(c, svc->idx) && cp2p_peer_id_equal(&c->peer, peer)) {
            return true;
        }
    }
    return false;
}

size_t cp2p_service_peer_count(const cp2p_service *svc)
{
    return svc->nready;
}
