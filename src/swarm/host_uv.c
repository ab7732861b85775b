/* The host: listeners, dials, the handler table and events. Connections are in conn_uv.c. */
#include <string.h>
#include <time.h>

#include "swarm/swarm.h"
#include "transport/memnet_uv.h"
#include "transport/tcp_uv.h"
#include "util/clock.h"
#include "util/alloc.h"
#include "util/log_internal.h"

struct swarm_dial {
    cp2p_host *host;
    swarm_dial *next, *prev;
    cp2p__tdial *td;
    cp2p_dial_cb cb;
    void *ud;
    bool expect_peer;
    cp2p_peer_id peer;
};

void cp2p_host_config_default(cp2p_host_config *c)
{
    *c = (cp2p_host_config){
        .identity = NULL,
        .agent_version = NULL,
        .protocol_version = NULL,
        .dial_timeout_ms = CP2P_HOST_DIAL_TIMEOUT_MS,
        .upgrade_timeout_ms = CP2P_HOST_UPGRADE_TIMEOUT_MS,
        .negotiate_timeout_ms = CP2P_HOST_NEGOTIATE_TIMEOUT_MS,
        .keepalive_ms = CP2P_HOST_KEEPALIVE_MS,
        .max_conns = CP2P_HOST_MAX_CONNS,
        .max_pending_inbound = CP2P_HOST_MAX_PENDING_INBOUND,
        .yamux_max_window = CP2P_YAMUX_MAX_WINDOW,
        .max_stream_write_buffer = CP2P_HOST_STREAM_WRITE_BUFFER,
        .max_conn_write_buffer = CP2P_HOST_CONN_WRITE_BUFFER,
        .max_streams_per_conn = CP2P_YAMUX_MAX_INBOUND_STREAMS,
        .max_inbound_per_protocol = CP2P_HOST_MAX_INBOUND_PER_PROTOCOL,
        .peerstore_path = NULL,
        .peerstore_max_peers = 0,
        .dial_peer_timeout_ms = CP2P_DIALER_PEER_TIMEOUT_MS,
        .dial_backoff_base_ms = CP2P_DIALER_BACKOFF_BASE_MS,
        .dial_backoff_max_ms = CP2P_DIALER_BACKOFF_MAX_MS,
        .max_peer_dials = CP2P_DIALER_MAX_DIALS,
        .conn_low_water = CP2P_CONNMGR_LOW_WATER,
        .conn_high_water = CP2P_CONNMGR_HIGH_WATER,
        .conn_grace_ms = CP2P_CONNMGR_GRACE_MS,
        .max_conns_per_ip = CP2P_CONNMGR_MAX_PER_IP,
        .inbound_per_sec = CP2P_CONNMGR_INBOUND_PER_SEC,
        .inbound_burst = CP2P_CONNMGR_INBOUND_BURST,
        .max_conns_per_peer = CP2P_CONNMGR_MAX_PER_PEER,
        .reconnect_known_peers = CP2P_HOST_RECONNECT_PEERS,
    };
}

uint64_t cp2p__host_wall_ms(void)
{
    return cp2p__wall_ms();
}

cp2p_peerstore *cp2p_host_peerstore(cp2p_host *h)
{
    return h->peerstore;
}

/* Write what changed and drop expired addresses. A failed flush keeps its changes pending and
 * is retried by the next one (the peerstore logs it). */
static void on_ps_timer(uv_timer_t *t)
{
    cp2p_host *h = t->data;
    uint64_t now = cp2p__host_wall_ms();
    (void)cp2p_peerstore_gc(h->peerstore, now);
    (void)!cp2p_peerstore_flush(h->peerstore, now);
}

static void on_ps_timer_closed(uv_handle_t *handle)
{
    cp2p_host *h = handle->data;
    h->ps_timer_open = false;
}

static char *dup_str(const char *s)
{
    return cp2p__memdup(s, strlen(s) + 1);
}

static void host_free(cp2p_host *h)
{
    for (size_t i = 0; i < h->nprotos; i++) {
        cp2p_free((void *)h->proto_names[i]);
    }
    for (size_t i = 0; i < h->nlisteners; i++) {
        cp2p_multiaddr_free(h->listeners[i].addr);
    }
    cp2p__dialer_free(h->dialer);
    cp2p__host_cm_free(h);
    cp2p__host_services_free(h);
    if (h->tcp != NULL) {
        h->tcp->ops->free(h->tcp);
    }
    if (h->mem != NULL) {
        h->mem->ops->free(h->mem);
    }
    cp2p_peerstore_close(h->peerstore);
    cp2p_privkey_free(h->key);
    cp2p_free(h->agent_version);
    cp2p_free(h->protocol_version);
    cp2p_free(h->read_buf);
    cp2p_free(h);
}

int cp2p__swarm_new(uv_loop_t *loop, const cp2p_host_config *cfg, cp2p_host **out)
{
    cp2p_buf kb;
    int rc;
    if (loop == NULL || cfg == NULL || cfg->identity == NULL || cfg->max_conns == 0 ||
        cfg->dial_timeout_ms == 0 || cfg->upgrade_timeout_ms == 0 ||
        cfg->negotiate_timeout_ms == 0 || cfg->yamux_max_window < CP2P_YAMUX_INITIAL_WINDOW ||
        cfg->max_streams_per_conn == 0 || cfg->max_inbound_per_protocol == 0 ||
        cfg->max_conn_write_buffer == 0 ||
        cfg->dial_peer_timeout_ms == 0 || cfg->dial_backoff_base_ms == 0 ||
        cfg->dial_backoff_max_ms < cfg->dial_backoff_base_ms || cfg->max_peer_dials == 0) {
        return CP2P_EINVAL;
    }
    cp2p_host *h = cp2p_calloc(1, sizeof(*h));
    if (h == NULL) {
        return CP2P_ENOMEM;
    }
    h->loop = loop;
    h->cfg = *cfg;
    h->cfg.identity = NULL;
    h->cfg.peerstore_path = NULL; /* borrowed: only read here */
    h->next_conn_id = 1;
    char version[64];
    snprintf(version, sizeof(version), "cp2p/%s", cp2p_version());
    h->agent_version = dup_str(cfg->agent_version != NULL ? cfg->agent_version : version);
    h->protocol_version =
        dup_str(cfg->protocol_version != NULL ? cfg->protocol_version : "ipfs/0.1.0");
    /* Our own copy of the key, through its encoding. */
    cp2p_buf_init(&kb, CP2P_KEY_PB_MAX);
    rc = cp2p_privkey_marshal(cfg->identity, &kb);
    if (rc == 0) {
        rc = cp2p_privkey_unmarshal(kb.ptr, kb.len, &h->key);
    }
    cp2p_buf_fini_wipe(&kb);
    if (rc == 0) {
        rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(h->key), &h->id);
    }
    if (rc == 0 && (h->agent_version == NULL || h->protocol_version == NULL)) {
        rc = CP2P_ENOMEM;
    }
    if (rc == 0) {
        cp2p_peerstore_config pc;
        cp2p_peerstore_config_default(&pc);
        if (cfg->peerstore_max_peers != 0) {
            pc.max_peers = cfg->peerstore_max_peers;
        }
        rc = cp2p_peerstore_open(&pc, cfg->peerstore_path, cp2p__host_wall_ms(), &h->peerstore);
    }
    /* The memory transport models the same option, so its links queue what TCP would. */
    uint32_t lowat = cfg->tcp_notsent_lowat != 0 ? cfg->tcp_notsent_lowat
                                                 : CP2P_HOST_NOTSENT_LOWAT_DEFAULT;
    lowat = lowat == CP2P_HOST_NOTSENT_LOWAT_OFF ? 0 : lowat;
    if (rc == 0) {
        rc = cp2p__tcp_transport_new(loop, lowat, &h->tcp);
    }
    if (rc == 0 && cfg->memnet != NULL) {
        rc = cp2p__memnet_transport_new(cfg->memnet, loop, lowat, &h->mem);
    }
    if (rc == 0) {
        rc = cp2p__dialer_new(h, &h->dialer);
    }
    if (rc == 0) {
        rc = cp2p__host_cm_new(h);
    }
    if (rc == 0) {
        rc = cp2p__identify_register(h); /* handlers and an observer: nothing to undo */
    }
    if (rc != 0) {
        host_free(h);
        return rc;
    }
    /* Last, so nothing above has a handle to close on failure. Unreferenced: the flush timer
     * alone does not keep the loop running. */
    (void)uv_timer_init(loop, &h->ps_timer);
    h->ps_timer.data = h;
    h->ps_timer_open = true;
    (void)uv_timer_start(&h->ps_timer, on_ps_timer, CP2P_HOST_PEERSTORE_FLUSH_MS,
                         CP2P_HOST_PEERSTORE_FLUSH_MS);
    uv_unref((uv_handle_t *)&h->ps_timer);
    cp2p__host_cm_start(h);
    (void)!cp2p__host_services_init(h); /* a timer: cannot fail once the loop is valid */
    *out = h;
    return 0;
}

const cp2p_peer_id *cp2p_host_peer_id(const cp2p_host *h)
{
    return &h->id;
}

uv_loop_t *cp2p_host_loop(const cp2p_host *h)
{
    return h->loop;
}

const cp2p__host_stats *cp2p__host_stats_get(const cp2p_host *h)
{
    return &h->stats;
}

/* ---- events ---- */

void cp2p_host_set_event_cb(cp2p_host *h, cp2p_event_cb cb, void *ud)
{
    h->event_cb = cb;
    h->event_ud = ud;
}

const cp2p_privkey *cp2p_host_privkey(const cp2p_host *h)
{
    return h->key;
}

void cp2p__host_emit(cp2p_host *h, cp2p_event_type type, cp2p_conn *c, int err, const char *why)
{
    cp2p_event ev = {.type = type, .conn = c, .err = err, .why = why};
    cp2p__identify_on_event(h, &ev);
    cp2p__host_services_on_event(h, &ev);
    if (h->event_cb != NULL && (int)type < CP2P__EVENT_PROTOCOLS_CHANGED) {
        h->event_cb(h, &ev, h->event_ud);
    }
}

cp2p_conn *cp2p_host_conn_to(const cp2p_host *h, const cp2p_peer_id *peer)
{
    /* The peer's chain is newest first, so the first match is the most recent. */
    for (cp2p_conn *c = cp2p__host_peer_conns(h, peer); c != NULL; c = c->peer_next) {
        if (c->upgraded && !c->closing && !c->goaway_received && c->stage == CONN_OPEN) {
            return c;
        }
    }
    return NULL;
}

/* ---- handlers ---- */

static bool valid_protocol(const char *p)
{
    size_t n = p == NULL ? 0 : strlen(p);
    return n >= 2 && p[0] == '/' && n < CP2P_MSS_MAX_MSG && strchr(p, '\n') == NULL;
}

static ptrdiff_t find_protocol(const cp2p_host *h, const char *p)
{
    for (size_t i = 0; i < h->nprotos; i++) {
        if (strcmp(h->proto_names[i], p) == 0) {
            return (ptrdiff_t)i;
        }
    }
    return -1;
}

static int set_handler(cp2p_host *h, const char *protocol, cp2p_stream_handler cb, void *ud,
                       uint32_t max_inbound, bool replace)
{
    if (!valid_protocol(protocol) || cb == NULL) {
        return CP2P_EINVAL;
    }
    ptrdiff_t i = find_protocol(h, protocol);
    bool was_active = i >= 0 && h->handlers[i].active;
    if (was_active && !replace) {
        return CP2P_ESTATE;
    }
    if (i < 0) {
        if (h->nprotos == CP2P_MSS_MAX_SUPPORTED) {
            return CP2P_EFULL;
        }
        char *name = dup_str(protocol);
        if (name == NULL) {
            return CP2P_ENOMEM;
        }
        i = (ptrdiff_t)h->nprotos++;
        h->proto_names[i] = name;
    }
    h->handlers[i] = (swarm_handler){cb, ud, true, max_inbound};
    if (!was_active) {
        cp2p__host_emit(h, (cp2p_event_type)CP2P__EVENT_PROTOCOLS_CHANGED, NULL, 0, NULL);
    }
    return 0;
}

int cp2p_host_set_handler(cp2p_host *h, const char *protocol, cp2p_stream_handler cb, void *ud)
{
    return set_handler(h, protocol, cb, ud, 0, true);
}

int cp2p__host_add_handler(cp2p_host *h, const char *protocol, cp2p_stream_handler cb,
                           void *ud, uint32_t max_inbound)
{
    return set_handler(h, protocol, cb, ud, max_inbound, false);
}

int cp2p_host_remove_handler(cp2p_host *h, const char *protocol)
{
    ptrdiff_t i = protocol == NULL ? -1 : find_protocol(h, protocol);
    if (i < 0 || !h->handlers[i].active) {
        return CP2P_ENOENT;
    }
    h->handlers[i].active = false;
    cp2p__host_emit(h, (cp2p_event_type)CP2P__EVENT_PROTOCOLS_CHANGED, NULL, 0, NULL);
    return 0;
}

bool cp2p__host_handler_active(void *host, size_t idx)
{
    cp2p_host *h = host;
    return idx < h->nprotos && h->handlers[idx].active;
}

/* ---- listening ---- */

static void on_orphan_closed(cp2p__tconn *t)
{
    (void)t;
}

/* The transport of an address: chosen by its first component. NULL (with *why) when the host
 * has none for it. */
static cp2p__transport *transport_for(cp2p_host *h, const cp2p_multiaddr *ma, const char **why)
{
    if (cp2p__transport_is_memory(ma)) {
        if (h->mem == NULL) {
            *why = "a /memory/ address needs a host on a memory network (cfg.memnet)";
        }
        return h->mem;
    }
    return h->tcp;
}

static void on_accept(cp2p__tlistener *l, cp2p__tconn *sock, void *ud)
{
    cp2p_host *h = ud;
    const char *why = NULL;
    (void)l;
    if (h->closing) {
        why = "host closing";
    } else if (h->nconns >= h->cfg.max_conns) {
        why = "connection limit reached";
    } else if (h->npending_inbound >= h->cfg.max_pending_inbound) {
        why = "too many inbound connections still upgrading";
    } else if (cp2p__host_cm_admit(h, sock, &why) != 0) {
        /* rate or per-IP limit: counted by the connmgr too (cp2p__host_cm_stats) */
    }
    if (why != NULL) {
        /* A flood must not become a log flood: one line per second at most, with a count. */
        uint64_t now = uv_now(h->loop);
        h->stats.inbound_refused++;
        h->refused_unlogged++;
        if (now >= h->refused_log_at) {
            CP2P_LOG(CP2P_LOG_INFO, "host", 0, "host.inbound_refused %s (%llu since last line)",
                     why, (unsigned long long)h->refused_unlogged);
            h->refused_unlogged = 0;
            h->refused_log_at = now + 1000;
        }
        sock->ops->close(sock, on_orphan_closed);
        cp2p__host_emit(h, CP2P_EVENT_INBOUND_REFUSED, NULL, CP2P_ELIMIT, why);
        return;
    }
    (void)cp2p__conn_start(h, sock, false, NULL, NULL, NULL);
}

int cp2p_host_listen(cp2p_host *h, const cp2p_multiaddr *ma)
{
    const char *why = "";
    if (h->closing) {
        return CP2P_ECLOSED;
    }
    if (h->nlisteners == CP2P_HOST_MAX_LISTENERS) {
        return CP2P_EFULL;
    }
    swarm_listener *sl = &h->listeners[h->nlisteners];
    cp2p__transport *tr = transport_for(h, ma, &why);
    if (tr == NULL) {
        CP2P_LOG(CP2P_LOG_WARN, "host", 0, "host.listen_failed %s", why);
        return CP2P_ENOTSUP;
    }
    int rc = tr->ops->listen(tr, ma, on_accept, h, &sl->l, &why);
    if (rc != 0) {
        CP2P_LOG(CP2P_LOG_WARN, "host", 0, "host.listen_failed %s", why);
        return rc;
    }
    rc = tr->ops->listener_addr(sl->l, &sl->addr);
    if (rc != 0) {
        tr->ops->listener_close(sl->l);
        return rc;
    }
    h->nlisteners++;
    return 0;
}

int cp2p_host_listen_addr(const cp2p_host *h, size_t n, bool with_peer_id, cp2p_multiaddr **out)
{
    if (n >= h->nlisteners) {
        return CP2P_ENOENT;
    }
    if (!with_peer_id) {
        return cp2p_multiaddr_dup(h->listeners[n].addr, out);
    }
    cp2p_buf s;
    cp2p_multiaddr *p2p = NULL;
    int rc;
    cp2p_buf_init(&s, 256);
    if ((rc = cp2p_buf_append(&s, "/p2p/", 5)) == 0 && (rc = cp2p_peer_id_to_base58(&h->id, &s)) == 0 &&
        (rc = cp2p_multiaddr_parse((const char *)s.ptr, s.len, &p2p)) == 0) {
        rc = cp2p_multiaddr_encapsulate(h->listeners[n].addr, p2p, out);
    }
    cp2p_multiaddr_free(p2p);
    cp2p_buf_fini(&s);
    return rc;
}

/* /ip4|ip6/<ip>/tcp/<port>[/p2p/<id>] as a new multiaddr. */
static int make_addr(const cp2p_host *h, const char *family, const char *ip, unsigned port,
                     bool with_peer_id, cp2p_multiaddr **out)
{
    char text[256], pid[CP2P_PEER_ID_STR_MAX];
    int n = snprintf(text, sizeof(text), "/%s/%s/tcp/%u%s%s", family, ip, port,
                     with_peer_id ? "/p2p/" : "", with_peer_id ? cp2p_peer_id_str(&h->id, pid) : "");
    if (n < 0 || (size_t)n >= sizeof(text)) {
        return CP2P_EINVAL;
    }
    return cp2p_multiaddr_parse(text, (size_t)n, out);
}

ptrdiff_t cp2p_host_addrs(const cp2p_host *h, bool with_peer_id, cp2p_multiaddr **out,
                          size_t max)
{
    size_t n = 0;
    uv_interface_address_t *ifs = NULL;
    int nifs = 0;
    for (size_t i = 0; i < h->nlisteners && n < max; i++) {
        cp2p__tcp_target t;
        const char *why;
        int rc;
        if (cp2p__tcp_target_parse(h->listeners[i].addr, &t, &why) != 0) {
            t.kind = CP2P_TCP_DNS; /* another transport's address (memory): as it is */
        }
        bool any4 = t.kind == CP2P_TCP_IP4 && strcmp(t.host, "0.0.0.0") == 0;
        bool any6 = t.kind == CP2P_TCP_IP6 && strcmp(t.host, "::") == 0;
        if (!any4 && !any6) {
            rc = cp2p_host_listen_addr(h, i, with_peer_id, &out[n]);
            if (rc == CP2P_ENOMEM) {
                goto fail;
            }
            n += rc == 0;
            continue;
        }
        if (ifs == NULL && uv_interface_addresses(&ifs, &nifs) != 0) {
            ifs = NULL;
            nifs = 0;
        }
        for (int k = 0; k < nifs && n < max; k++) {
            char ip[64];
            int fam = ifs[k].address.address4.sin_family;
            if ((any4 && fam != AF_INET) || (any6 && fam != AF_INET6)) {
                continue;
            }
            if (fam == AF_INET) {
                uv_ip4_name(&ifs[k].address.address4, ip, sizeof(ip));
            } else {
                uv_ip6_name(&ifs[k].address.address6, ip, sizeof(ip));
            }
            rc = make_addr(h, any4 ? "ip4" : "ip6", ip, t.port, with_peer_id, &out[n]);
            if (rc == CP2P_ENOMEM) {
                goto fail;
            }
            n += rc == 0; /* e.g. a link-local IPv6 with a zone: not a multiaddr ip6 */
        }
    }
    if (ifs != NULL) {
        uv_free_interface_addresses(ifs, nifs);
    }
    return (ptrdiff_t)n;
fail:
    if (ifs != NULL) {
        uv_free_interface_addresses(ifs, nifs);
    }
    while (n > 0) {
        cp2p_multiaddr_free(out[--n]);
    }
    return CP2P_ENOMEM;
}

/* ---- dialing ---- */

static void dial_unlink(cp2p_host *h, swarm_dial *d)
{
    if (d->prev != NULL) {
        d->prev->next = d->next;
    } else {
        h->dials = d->next;
    }
    if (d->next != NULL) {
        d->next->prev = d->prev;
    }
}

/* What a host dial remembers for the peerstore, wrapped around the caller's callback. */
typedef struct {
    cp2p_dial_cb cb;
    void *ud;
    bool from_dialer;
    bool has_peer;
    cp2p_peer_id peer;
    cp2p_multiaddr *addr; /* as dialed, without /p2p/ */
} dial_rec;

/* The peer's address as stored: without the trailing /p2p/<id>. */
static int strip_p2p(const cp2p_multiaddr *ma, cp2p_multiaddr **out)
{
    uint64_t code = 0;
    int rc = cp2p_multiaddr_protocol_code("p2p", 3, &code);
    return rc != 0 ? rc : cp2p_multiaddr_decapsulate_code(ma, code, out);
}

static void on_dial_done(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    dial_rec *r = ud;
    cp2p_dial_cb cb = r->cb;
    void *cb_ud = r->ud;
    uint64_t now = cp2p__host_wall_ms();
    if (status == 0) {
        const cp2p_peer_id *peer = cp2p_conn_peer_id(conn);
        const cp2p_multiaddr *a = r->addr;
        if (!r->from_dialer && a != NULL) {
            (void)!cp2p_peerstore_add_addrs(h->peerstore, peer, &a, 1,
                                            CP2P_HOST_DIALED_ADDR_TTL_MS,
                                            CP2P_ADDR_SOURCE_MANUAL, now);
        }
        (void)!cp2p_peerstore_record_connected(h->peerstore, peer, now);
    } else if (!r->from_dialer && r->has_peer && status != CP2P_ECANCELED) {
        (void)!cp2p_peerstore_record_failure(h->peerstore, &r->peer, now);
    }
    cp2p_multiaddr_free(r->addr);
    cp2p_free(r);
    cb(h, status, conn, cb_ud);
}

static void on_transport_dialed(int status, cp2p__tconn *sock, void *ud)
{
    swarm_dial *d = ud;
    cp2p_host *h = d->host;
    dial_unlink(h, d);
    if (status == 0 && h->closing) {
        sock->ops->close(sock, on_orphan_closed);
        status = CP2P_ECANCELED;
    } else if (status == 0 && h->nconns >= h->cfg.max_conns) {
        sock->ops->close(sock, on_orphan_closed);
        status = CP2P_ELIMIT;
    }
    if (status != 0) {
        d->cb(h, status, NULL, d->ud);
    } else if (cp2p__conn_start(h, sock, true, d->expect_peer ? &d->peer : NULL, d->cb,
                                d->ud) == NULL) {
        d->cb(h, CP2P_ENOMEM, NULL, d->ud);
    }
    cp2p_free(d);
}

int cp2p_host_dial(cp2p_host *h, const cp2p_multiaddr *ma, cp2p_dial_cb cb, void *ud)
{
    return cp2p__host_dial(h, ma, false, cb, ud);
}

void cp2p__host_dial_cancel(cp2p_host *h, void *ud)
{
    for (swarm_dial *d = h->dials; d != NULL; d = d->next) {
        if (((dial_rec *)d->ud)->ud == ud) {
            d->td->tr->ops->dial_cancel(d->td); /* runs on_transport_dialed, which frees d */
            return;
        }
    }
    for (cp2p_conn *c = h->conns; c != NULL; c = c->next) {
        if (c->dial_cb == on_dial_done && ((dial_rec *)c->dial_ud)->ud == ud) {
            cp2p__conn_close(c, CP2P_ECANCELED, "dial canceled");
            return;
        }
    }
}

int cp2p__host_dial(cp2p_host *h, const cp2p_multiaddr *ma, bool from_dialer, cp2p_dial_cb cb,
                    void *ud)
{
    bool has_peer = false;
    cp2p_peer_id peer;
    const char *why = NULL;
    if (h->closing) {
        return CP2P_ECLOSED;
    }
    int rc = cp2p__transport_addr_peer(ma, &has_peer, &peer, &why);
    if (rc != 0) {
        return rc;
    }
    cp2p__transport *tr = transport_for(h, ma, &why);
    if (tr == NULL) {
        return CP2P_ENOTSUP;
    }
    if (has_peer && cp2p_peer_id_equal(&peer, &h->id)) {
        return CP2P_EINVAL; /* dialing ourselves */
    }
    swarm_dial *d = cp2p_calloc(1, sizeof(*d));
    dial_rec *r = cp2p_calloc(1, sizeof(*r));
    if (d == NULL || r == NULL || (rc = strip_p2p(ma, &r->addr)) != 0) {
        cp2p_free(d);
        cp2p_free(r);
        return CP2P_ENOMEM;
    }
    *r = (dial_rec){.cb = cb, .ud = ud, .from_dialer = from_dialer, .has_peer = has_peer,
                    .peer = peer, .addr = r->addr};
    d->host = h;
    d->cb = on_dial_done;
    d->ud = r;
    d->expect_peer = has_peer;
    d->peer = peer;
    rc = tr->ops->dial(tr, ma, h->cfg.dial_timeout_ms, on_transport_dialed, d, &d->td, &why);
    if (rc != 0) {
        cp2p_multiaddr_free(r->addr);
        cp2p_free(r);
        cp2p_free(d);
        return rc;
    }
    d->next = h->dials;
    if (h->dials != NULL) {
        h->dials->prev = d;
    }
    h->dials = d;
    return 0;
}

/* ---- closing ---- */

static void on_idle_closed(uv_handle_t *handle)
{
    cp2p_host *h = handle->data;
    cp2p_host_close_cb cb = h->close_cb;
    void *ud = h->close_ud;
    /* Everything that could still change the peerstore is gone: write it one last time. */
    (void)!cp2p_peerstore_flush(h->peerstore, cp2p__host_wall_ms());
    host_free(h);
    if (cb != NULL) {
        cb(NULL, ud);
    }
}

/* Polls until every connection has finished closing its handles, then frees the host. */
static void on_close_idle(uv_idle_t *idle)
{
    cp2p_host *h = idle->data;
    if (h->conns == NULL && h->dials == NULL && !h->ps_timer_open &&
        cp2p__dialer_idle(h->dialer) && cp2p__host_cm_idle(h) && cp2p__host_services_idle(h)) {
        uv_idle_stop(idle);
        uv_close((uv_handle_t *)idle, on_idle_closed);
    }
}

void cp2p_host_close(cp2p_host *h, cp2p_host_close_cb cb, void *ud)
{
    if (h->closing) {
        return;
    }
    h->closing = true;
    h->close_cb = cb;
    h->close_ud = ud;
    for (size_t i = 0; i < h->nlisteners; i++) {
        cp2p__tlistener *l = h->listeners[i].l;
        l->tr->ops->listener_close(l);
    }
    cp2p__dialer_close(h->dialer); /* before the host dials: it cancels its own */
    cp2p__host_cm_close(h);
    if (h->ps_timer_open) {
        uv_close((uv_handle_t *)&h->ps_timer, on_ps_timer_closed);
    }
    for (swarm_dial *d = h->dials, *next; d != NULL; d = next) {
        next = d->next; /* the cancel runs the dial callback, which frees d */
        d->td->tr->ops->dial_cancel(d->td);
    }
    /* Services close first (from the loop), while their peers are still connected; the
     * connections follow once every service is done (cp2p__host_close_conns). */
    cp2p__host_services_close(h);
}

void cp2p__host_close_conns(cp2p_host *h)
{
    if (h->conns_closed) {
        return;
    }
    h->conns_closed = true;
    for (cp2p_conn *c = h->conns, *next; c != NULL; c = next) {
        next = c->next;
        cp2p__conn_close(c, 0, "host closing");
    }
    uv_idle_init(h->loop, &h->close_idle);
    h->close_idle.data = h;
    uv_idle_start(&h->close_idle, on_close_idle);
}
