/* The connection manager wired into the host (issue 4): inbound admission through the
 * sans-I/O core (connmgr.c), per-IP counts of every started connection, the per-peer limit at
 * the end of an upgrade, trimming above the high water mark, protected peers and persistent
 * peers that are redialed when they drop. See docs/ARCHITECTURE.md, "Connection manager".
 *
 * Persistent peers: one heap entry per peer (its address is the dial callback's user data, so
 * entries never move), one timer for all redials. A redial goes through cp2p_host_dial_peer,
 * so it shares a dial in flight and respects the dialer's backoff: when the dialer says
 * CP2P_ESTATE (in backoff) or a dial fails, the next attempt is scheduled for the end of the
 * backoff; other refusals (no address, too many dials, no memory) wait dial_backoff_base_ms,
 * doubled per refusal up to dial_backoff_max_ms.
 *
 * Reconnecting at start: one 0 ms timer (so never inside cp2p_host_new) dials, once, the known
 * peers of the peerstore we once connected to, most recent first (reconnect_known_peers). */
#include <stdlib.h>
#include <string.h>

#include "swarm/swarm.h"
#include "util/alloc.h"
#include "util/log_internal.h"

struct host_persist {
    host_persist *next;
    cp2p_host *h;
    cp2p_peer_id peer;
    uint64_t retry_at;    /* loop time of the next dial; 0 = none scheduled */
    uint64_t retry_delay; /* for refusals without a dialer backoff */
    bool dialing;
};

static uint32_t or_default(uint32_t v, uint32_t def)
{
    return v != 0 ? v : def;
}

static cp2p_slice conn_peer_key(const void *item)
{
    const cp2p_conn *c = item;
    return (cp2p_slice){c->peer.bytes, c->peer.len};
}

int cp2p__host_cm_new(cp2p_host *h)
{
    /* Resolve the zeros in the host's copy, so the rest of the host reads real values. */
    cp2p_host_config *cfg = &h->cfg;
    cfg->conn_low_water = or_default(cfg->conn_low_water, CP2P_CONNMGR_LOW_WATER);
    cfg->conn_high_water = or_default(cfg->conn_high_water, CP2P_CONNMGR_HIGH_WATER);
    cfg->conn_grace_ms = cfg->conn_grace_ms != 0 ? cfg->conn_grace_ms : CP2P_CONNMGR_GRACE_MS;
    cfg->max_conns_per_ip = or_default(cfg->max_conns_per_ip, CP2P_CONNMGR_MAX_PER_IP);
    cfg->inbound_per_sec = or_default(cfg->inbound_per_sec, CP2P_CONNMGR_INBOUND_PER_SEC);
    cfg->inbound_burst = or_default(cfg->inbound_burst, CP2P_CONNMGR_INBOUND_BURST);
    cfg->max_conns_per_peer = or_default(cfg->max_conns_per_peer, CP2P_CONNMGR_MAX_PER_PEER);
    cfg->reconnect_known_peers = or_default(cfg->reconnect_known_peers,
                                            CP2P_HOST_RECONNECT_PEERS);
    cp2p__connmgr_config cc = {
        .low_water = cfg->conn_low_water,
        .high_water = cfg->conn_high_water,
        .grace_ms = cfg->conn_grace_ms == CP2P_HOST_NO_GRACE ? 0 : cfg->conn_grace_ms,
        .max_per_ip = cfg->max_conns_per_ip,
        .exempt_loopback = !cfg->limit_loopback_per_ip,
        .inbound_per_sec = cfg->inbound_per_sec,
        .inbound_burst = cfg->inbound_burst,
    };
    int rc = cp2p__hashmap_init(&h->peer_conns, CP2P_HASHMAP_MAX_ITEMS, conn_peer_key);
    return rc != 0 ? rc : cp2p__connmgr_new(&cc, uv_now(h->loop), &h->cm);
}

static void on_cm_timer(uv_timer_t *t)
{
    (void)cp2p__host_cm_trim(t->data);
}

static void on_cm_timer_closed(uv_handle_t *handle)
{
    cp2p_host *h = handle->data;
    h->cm_timer_open = false;
}

static void on_persist_timer_closed(uv_handle_t *handle)
{
    cp2p_host *h = handle->data;
    h->persist_timer_open = false;
}

static void on_reconnect_timer_closed(uv_handle_t *handle)
{
    cp2p_host *h = handle->data;
    h->reconnect_timer_open = false;
}

static void on_reconnect_timer(uv_timer_t *t);

void cp2p__host_cm_start(cp2p_host *h)
{
    /* Unreferenced: the periodic check alone does not keep the loop running. The redial timer
     * is referenced while a redial is pending: that is work the application asked for. */
    (void)uv_timer_init(h->loop, &h->cm_timer);
    h->cm_timer.data = h;
    h->cm_timer_open = true;
    (void)uv_timer_start(&h->cm_timer, on_cm_timer, CP2P_CONNMGR_CHECK_MS, CP2P_CONNMGR_CHECK_MS);
    uv_unref((uv_handle_t *)&h->cm_timer);
    (void)uv_timer_init(h->loop, &h->persist_timer);
    h->persist_timer.data = h;
    h->persist_timer_open = true;
    /* Reconnecting to known peers starts from the loop, never inside cp2p_host_new. */
    (void)uv_timer_init(h->loop, &h->reconnect_timer);
    h->reconnect_timer.data = h;
    h->reconnect_timer_open = true;
    if (h->cfg.reconnect_known_peers != CP2P_HOST_NO_RECONNECT &&
        cp2p_peerstore_peers(h->peerstore, NULL, 0) > 0) {
        (void)uv_timer_start(&h->reconnect_timer, on_reconnect_timer, 0, 0);
    }
}

void cp2p__host_cm_close(cp2p_host *h)
{
    if (h->cm_timer_open && !uv_is_closing((uv_handle_t *)&h->cm_timer)) {
        uv_close((uv_handle_t *)&h->cm_timer, on_cm_timer_closed);
    }
    if (h->persist_timer_open && !uv_is_closing((uv_handle_t *)&h->persist_timer)) {
        uv_close((uv_handle_t *)&h->persist_timer, on_persist_timer_closed);
    }
    if (h->reconnect_timer_open && !uv_is_closing((uv_handle_t *)&h->reconnect_timer)) {
        uv_close((uv_handle_t *)&h->reconnect_timer, on_reconnect_timer_closed);
    }
}

bool cp2p__host_cm_idle(const cp2p_host *h)
{
    return !h->cm_timer_open && !h->persist_timer_open && !h->reconnect_timer_open;
}

void cp2p__host_cm_free(cp2p_host *h)
{
    while (h->persist != NULL) {
        host_persist *p = h->persist;
        h->persist = p->next;
        cp2p_free(p);
    }
    cp2p__connmgr_free(h->cm);
    h->cm = NULL;
    cp2p__hashmap_fini(&h->peer_conns, NULL, NULL); /* the connections are freed elsewhere */
}

const cp2p__connmgr_stats *cp2p__host_cm_stats(const cp2p_host *h)
{
    return cp2p__connmgr_stats_get(h->cm);
}

/* ---- admission and per-IP counts ---- */

int cp2p__host_cm_admit(cp2p_host *h, cp2p__tconn *sock, const char **why)
{
    uint8_t ip[16];
    size_t n = sock->ops->remote_ip(sock, ip);
    return cp2p__connmgr_admit(h->cm, ip, n, uv_now(h->loop), why);
}

/* ---- connections by peer ---- */

cp2p_conn *cp2p__host_peer_conns(const cp2p_host *h, const cp2p_peer_id *peer)
{
    return cp2p__hashmap_find(&h->peer_conns, peer->bytes, peer->len);
}

/* The new connection becomes the head of its peer's chain. Only the map's slot array can fail
 * to grow; the connection then stays out of the index (found by no lookup by peer) and the
 * failure is logged. */
static void peer_index_add(cp2p_conn *c)
{
    cp2p_host *h = c->host;
    cp2p_conn *head = cp2p__host_peer_conns(h, &c->peer);
    if (head != NULL) {
        (void)cp2p__hashmap_remove(&h->peer_conns, head);
    }
    if (cp2p__hashmap_insert(&h->peer_conns, c) != 0) {
        if (head != NULL) {
            (void)!cp2p__hashmap_insert(&h->peer_conns, head); /* it was there: no growth */
        }
        CP2P_LOG(CP2P_LOG_WARN, "host", c->id, "host.peer_index_failed");
        return;
    }
    c->peer_next = head;
    c->peer_prev = NULL;
    if (head != NULL) {
        head->peer_prev = c;
    }
    c->peer_indexed = true;
}

void cp2p__host_peer_index_remove(cp2p_conn *c)
{
    cp2p_host *h = c->host;
    if (!c->peer_indexed || h->peer_conns.key == NULL /* the host freed its map */) {
        return;
    }
    c->peer_indexed = false;
    if (c->peer_next != NULL) {
        c->peer_next->peer_prev = c->peer_prev;
    }
    if (c->peer_prev != NULL) {
        c->peer_prev->peer_next = c->peer_next;
    } else {
        (void)cp2p__hashmap_remove(&h->peer_conns, c);
        /* The map just held this peer's item: putting the next one back needs no growth. */
        if (c->peer_next != NULL && cp2p__hashmap_insert(&h->peer_conns, c->peer_next) != 0) {
            CP2P_LOG(CP2P_LOG_WARN, "host", c->id, "host.peer_index_failed");
        }
    }
    c->peer_next = c->peer_prev = NULL;
}

void cp2p__host_conn_track(cp2p_conn *c)
{
    uint8_t ip[16];
    /* The per-IP limit is about what others open to us: our own dials are not counted (a
     * node dialing many peers behind one address, e.g. a loopback testnet, must still accept
     * their inbound connections). */
    if (c->outbound) {
        return;
    }
    size_t n = c->t->ops->remote_ip(c->t, ip);
    /* Without memory for the table the connection is simply not counted. */
    if (n != 0 && cp2p__connmgr_conn_opened(c->host->cm, ip, n) == 0) {
        memcpy(c->ip, ip, n);
        c->iplen = (uint8_t)n;
    }
}

/* ---- reconnecting to known peers at start ---- */

typedef struct {
    cp2p_peer_id peer;
    uint64_t last_connected_ms;
} reconnect_cand;

static int cmp_recent_first(const void *a, const void *b)
{
    uint64_t x = ((const reconnect_cand *)a)->last_connected_ms;
    uint64_t y = ((const reconnect_cand *)b)->last_connected_ms;
    return (x < y) - (x > y);
}

/* ud: a heap copy of the peer ID (for the log line), or NULL when that copy failed. */
static void on_reconnect_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    cp2p_peer_id *peer = ud;
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)h;
    (void)conn;
    if (status != 0) {
        CP2P_LOG(CP2P_LOG_DEBUG, "host", 0, "host.reconnect_failed peer=%s err=%s",
                 peer != NULL ? cp2p_peer_id_str(peer, pid) : "?", cp2p_strerror(status));
    }
    cp2p_free(peer);
}

/* Once, 0 ms after the host started: dial up to reconnect_known_peers peers of the peerstore
 * that we once connected to and that have an unexpired address, most recently connected
 * first. Stops early when the dialer is full (CP2P_EFULL); other refusals (backoff, no
 * dialable address) skip the peer. */
static void on_reconnect_timer(uv_timer_t *t)
{
    cp2p_host *h = t->data;
    char pid[CP2P_PEER_ID_STR_MAX];
    size_t n = cp2p_peerstore_peers(h->peerstore, NULL, 0);
    if (h->closing || n == 0) {
        return;
    }
    cp2p_peer_id *ids = cp2p_calloc(n, sizeof(*ids));
    reconnect_cand *cand = cp2p_calloc(n, sizeof(*cand));
    if (ids == NULL || cand == NULL) {
        CP2P_LOG(CP2P_LOG_WARN, "host", 0, "host.reconnect_skipped err=%s",
                 cp2p_strerror(CP2P_ENOMEM));
        goto done;
    }
    size_t total = cp2p_peerstore_peers(h->peerstore, ids, n);
    n = total < n ? total : n;
    uint64_t now = cp2p__host_wall_ms();
    size_t ncand = 0;
    for (size_t i = 0; i < n; i++) {
        cp2p_peerstore_info info;
        if (cp2p_peer_id_equal(&ids[i], &h->id) ||
            cp2p_peerstore_info_get(h->peerstore, &ids[i], &info) != 0 ||
            info.last_connected_ms == 0 ||
            cp2p_peerstore_addrs(h->peerstore, &ids[i], now, NULL, 0) == 0 ||
            cp2p_host_conn_to(h, &ids[i]) != NULL) {
            continue;
        }
        cand[ncand++] = (reconnect_cand){ids[i], info.last_connected_ms};
    }
    qsort(cand, ncand, sizeof(*cand), cmp_recent_first);
    size_t started = 0;
    for (size_t i = 0; i < ncand && started < h->cfg.reconnect_known_peers; i++) {
        cp2p_peer_id *copy = cp2p__memdup(&cand[i].peer, sizeof(cand[i].peer));
        int rc = cp2p_host_dial_peer(h, &cand[i].peer, on_reconnect_dialed, copy);
        if (rc == 0) {
            started++;
            continue;
        }
        cp2p_free(copy);
        CP2P_LOG(CP2P_LOG_DEBUG, "host", 0, "host.reconnect_refused peer=%s err=%s",
                 cp2p_peer_id_str(&cand[i].peer, pid), cp2p_strerror(rc));
        if (rc == CP2P_EFULL || rc == CP2P_ECLOSED) {
            break; /* the dialer's host-wide cap: the rest would be refused too */
        }
    }
    if (ncand > 0) {
        CP2P_LOG(CP2P_LOG_INFO, "host", 0, "host.reconnect dialing=%zu known=%zu", started,
                 ncand);
    }
done:
    cp2p_free(ids);
    cp2p_free(cand);
}

/* ---- persistent peers ---- */

static host_persist *persist_find(const cp2p_host *h, const cp2p_peer_id *peer)
{
    for (host_persist *p = h->persist; p != NULL; p = p->next) {
        if (cp2p_peer_id_equal(&p->peer, peer)) {
            return p;
        }
    }
    return NULL;
}

static void on_persist_timer(uv_timer_t *t);

/* Arm the redial timer for the earliest scheduled redial, or stop it. */
static void persist_arm(cp2p_host *h)
{
    uint64_t at = UINT64_MAX, now = uv_now(h->loop);
    if (h->closing || !h->persist_timer_open) {
        return;
    }
    for (host_persist *p = h->persist; p != NULL; p = p->next) {
        if (p->retry_at != 0 && p->retry_at < at) {
            at = p->retry_at;
        }
    }
    if (at == UINT64_MAX) {
        uv_timer_stop(&h->persist_timer);
    } else {
        (void)uv_timer_start(&h->persist_timer, on_persist_timer, at > now ? at - now : 0, 0);
    }
}

/* Schedule the next dial: when the dialer's backoff ends, or after our own delay. */
static void persist_retry_later(host_persist *p, int err)
{
    cp2p_host *h = p->h;
    char pid[CP2P_PEER_ID_STR_MAX];
    uint64_t now = uv_now(h->loop);
    uint64_t until = cp2p__dialer_backoff_until(h->dialer, &p->peer);
    if (until > now) {
        p->retry_at = until;
    } else {
        p->retry_at = now + p->retry_delay;
        p->retry_delay = p->retry_delay > h->cfg.dial_backoff_max_ms / 2
                             ? h->cfg.dial_backoff_max_ms
                             : p->retry_delay * 2;
    }
    CP2P_LOG(CP2P_LOG_DEBUG, "host", 0, "host.persistent_retry peer=%s err=%s in_ms=%llu",
             cp2p_peer_id_str(&p->peer, pid), cp2p_strerror(err),
             (unsigned long long)(p->retry_at - now));
    persist_arm(h);
}

static void on_persist_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    host_persist *p = ud;
    (void)conn;
    p->dialing = false;
    if (status == 0) {
        p->retry_delay = h->cfg.dial_backoff_base_ms;
        return;
    }
    if (h->closing) {
        return;
    }
    persist_retry_later(p, status);
}

static void persist_dial(host_persist *p)
{
    cp2p_host *h = p->h;
    if (p->dialing || h->closing) {
        return;
    }
    p->retry_at = 0;
    int rc = cp2p_host_dial_peer(h, &p->peer, on_persist_dialed, p);
    if (rc == 0) {
        p->dialing = true;
        return;
    }
    persist_retry_later(p, rc);
}

static void on_persist_timer(uv_timer_t *t)
{
    cp2p_host *h = t->data;
    uint64_t now = uv_now(h->loop);
    for (host_persist *p = h->persist; p != NULL && !h->closing; p = p->next) {
        if (p->retry_at != 0 && p->retry_at <= now) {
            persist_dial(p);
        }
    }
    persist_arm(h);
}

void cp2p__host_conn_untrack(cp2p_conn *c)
{
    cp2p_host *h = c->host;
    if (c->iplen != 0) {
        cp2p__connmgr_conn_closed(h->cm, c->ip, c->iplen);
        c->iplen = 0;
    }
    if (!c->upgraded) {
        return;
    }
    h->nopen--;
    /* The last connection to a persistent peer went: redial from the loop (not inside the
     * teardown), through the dialer and its backoff. */
    host_persist *p = h->closing ? NULL : persist_find(h, &c->peer);
    if (p != NULL && !p->dialing && p->retry_at == 0 && cp2p_host_conn_to(h, &c->peer) == NULL) {
        p->retry_at = uv_now(h->loop);
        persist_arm(h);
    }
}

static int strip_p2p(const cp2p_multiaddr *ma, cp2p_multiaddr **out)
{
    uint64_t code = 0;
    int rc = cp2p_multiaddr_protocol_code("p2p", 3, &code);
    return rc != 0 ? rc : cp2p_multiaddr_decapsulate_code(ma, code, out);
}

int cp2p_host_add_persistent_peer(cp2p_host *h, const cp2p_multiaddr *ma)
{
    bool has_peer = false;
    cp2p_peer_id peer;
    cp2p_multiaddr *addr = NULL;
    const char *why = NULL;
    uint64_t now = cp2p__host_wall_ms();
    int rc;
    if (h == NULL || ma == NULL) {
        return CP2P_EINVAL;
    }
    if (h->closing) {
        return CP2P_ECLOSED;
    }
    if ((rc = cp2p__transport_addr_peer(ma, &has_peer, &peer, &why)) != 0) {
        return rc;
    }
    if (!has_peer || cp2p_peer_id_equal(&peer, &h->id)) {
        return CP2P_EINVAL;
    }
    host_persist *p = persist_find(h, &peer);
    if (p == NULL && h->npersist >= CP2P_HOST_MAX_PERSISTENT_PEERS) {
        return CP2P_EFULL;
    }
    if ((rc = strip_p2p(ma, &addr)) != 0) {
        return rc;
    }
    const cp2p_multiaddr *a = addr;
    rc = cp2p_peerstore_add_addrs(h->peerstore, &peer, &a, 1, CP2P_PEERSTORE_TTL_PERMANENT,
                                  CP2P_ADDR_SOURCE_MANUAL, now);
    cp2p_multiaddr_free(addr);
    if (rc == 0) {
        rc = cp2p_peerstore_set_protected(h->peerstore, &peer, true, now);
    }
    if (rc != 0 || p != NULL) {
        return rc;
    }
    if ((p = cp2p_calloc(1, sizeof(*p))) == NULL) {
        return CP2P_ENOMEM; /* the address and the protection stay: both are harmless */
    }
    p->h = h;
    p->peer = peer;
    p->retry_delay = h->cfg.dial_backoff_base_ms;
    p->next = h->persist;
    h->persist = p;
    h->npersist++;
    persist_dial(p);
    return 0;
}

int cp2p_host_protect(cp2p_host *h, const cp2p_peer_id *peer, bool on)
{
    if (h == NULL || peer == NULL) {
        return CP2P_EINVAL;
    }
    if (!on && persist_find(h, peer) != NULL) {
        return CP2P_ESTATE;
    }
    return cp2p_peerstore_set_protected(h->peerstore, peer, on, cp2p__host_wall_ms());
}

void cp2p_conn_set_tag(cp2p_conn *c, int32_t value)
{
    c->tag = value;
}

/* ---- per-peer limit and trimming ---- */

static bool counted_open(const cp2p_conn *c)
{
    return c->upgraded && !c->closing && c->stage == CONN_OPEN;
}

int cp2p__host_conn_peer_check(cp2p_conn *c)
{
    cp2p_host *h = c->host;
    uint32_t n = 0;
    char pid[CP2P_PEER_ID_STR_MAX];
    for (const cp2p_conn *o = cp2p__host_peer_conns(h, &c->peer); o != NULL; o = o->peer_next) {
        if (o != c && counted_open(o)) {
            n++;
        }
    }
    if (n < h->cfg.max_conns_per_peer) {
        return 0;
    }
    h->stats.conns_over_peer_limit++;
    CP2P_LOG(CP2P_LOG_INFO, "host", c->id, "host.peer_limit peer=%s open=%u outbound=%d",
             cp2p_peer_id_str(&c->peer, pid), n, c->outbound);
    cp2p__conn_close(c, CP2P_ELIMIT, "too many connections to this peer");
    return CP2P_ELIMIT;
}

void cp2p__host_conn_upgraded(cp2p_conn *c)
{
    cp2p_host *h = c->host;
    c->opened_ms = uv_now(h->loop);
    c->last_active_ms = c->opened_ms;
    peer_index_add(c);
    h->nopen++;
    if (h->nopen > h->cfg.conn_high_water && h->cm_timer_open) {
        /* Trim from the loop, not inside this connection's run: restart the periodic timer
         * at 0 ms. */
        (void)uv_timer_start(&h->cm_timer, on_cm_timer, 0, CP2P_CONNMGR_CHECK_MS);
    }
}

static bool peer_protected(const cp2p_host *h, const cp2p_peer_id *peer)
{
    cp2p_peerstore_info info;
    if (persist_find(h, peer) != NULL) {
        return true;
    }
    return cp2p_peerstore_info_get(h->peerstore, peer, &info) == 0 && info.protected_peer;
}

size_t cp2p__host_cm_trim(cp2p_host *h)
{
    size_t n = 0, k, closed = 0;
    char pid[CP2P_PEER_ID_STR_MAX];
    if (h->closing) {
        return 0;
    }
    for (const cp2p_conn *c = h->conns; c != NULL; c = c->next) {
        n += counted_open(c);
    }
    cp2p__connmgr_conn *arr = NULL;
    uint64_t *victims = NULL;
    if (n == 0 || (arr = cp2p_calloc(n, sizeof(*arr))) == NULL ||
        (victims = cp2p_calloc(n, sizeof(*victims))) == NULL) {
        cp2p_free(arr);
        return 0;
    }
    size_t i = 0;
    for (const cp2p_conn *c = h->conns; c != NULL && i < n; c = c->next) {
        if (counted_open(c)) {
            arr[i++] = (cp2p__connmgr_conn){
                .id = c->id,
                .peer = c->peer,
                .protect = peer_protected(h, &c->peer),
                .tag = c->tag,
                .opened_ms = c->opened_ms,
                .last_active_ms = c->last_active_ms,
                .streams = c->app_streams > UINT32_MAX ? UINT32_MAX : (uint32_t)c->app_streams,
            };
        }
    }
    k = cp2p__connmgr_trim(h->cm, arr, i, uv_now(h->loop), victims, i);
    /* Closing runs CONN_CLOSED callbacks, which may close anything: look each victim up. */
    for (size_t v = 0; v < k && !h->closing; v++) {
        for (cp2p_conn *c = h->conns; c != NULL; c = c->next) {
            if (c->id == victims[v] && counted_open(c)) {
                h->stats.conns_trimmed++;
                closed++;
                CP2P_LOG(CP2P_LOG_DEBUG, "host", c->id, "host.conn_trimmed peer=%s",
                         cp2p_peer_id_str(&c->peer, pid));
                cp2p__conn_close(c, CP2P_ELIMIT, "trimmed by the connection manager");
                break;
            }
        }
    }
    if (k > 0) {
        CP2P_LOG(CP2P_LOG_INFO, "host", 0, "host.trimmed %zu of %zu connections", closed, n);
    }
    cp2p_free(arr);
    cp2p_free(victims);
    return closed;
}
