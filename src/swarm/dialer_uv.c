/* The dialer: cp2p_host_dial_peer (cp2p/host.h) — dial a peer by ID from its peerstore
 * addresses.
 *
 * Design notes.
 * - One `peer_dial` per peer in flight, found by a linear scan of at most max_peer_dials
 *   entries. Callers that ask for a peer already being dialed become waiters of the same
 *   peer_dial, so every one of them gets the same result, once.
 * - Each address dial is an ordinary host dial (cp2p__host_dial) of addr/p2p/<peer>, so the
 *   peer ID check, the upgrade and the connection limits are the host's. The first address is
 *   dialed inside the call (a host dial never calls back inside its call); the next one starts
 *   CP2P_DIALER_STAGGER_MS later, or at once when an earlier one fails, with at most
 *   CP2P_DIALER_MAX_PARALLEL in flight (go-libp2p's TCP dial ranking). The first connection
 *   to finish its upgrade wins; the others are canceled through cp2p__host_dial_cancel, so a
 *   loser never shows up as a connection.
 * - Backoff entries live in a small array keyed by peer, on loop time (uv_now): a backoff
 *   need not survive a restart. Failures grow the delay exponentially with "equal jitter"; a
 *   success removes the entry; an entry expired for longer than the max is forgotten, so a peer
 *   that failed long ago starts again from the base.
 * - A peer_dial owns two timers (stagger, overall deadline), closed asynchronously; its memory
 *   goes once both are closed and every address dial has called back. The host waits for
 *   cp2p__dialer_idle() before it frees itself. */
#include <string.h>

#include <sodium.h>

#include "swarm/swarm.h"
#include "util/alloc.h"
#include "util/log_internal.h"

typedef struct peer_dial peer_dial;

typedef struct dial_waiter {
    struct dial_waiter *next;
    cp2p_dial_cb cb;
    void *ud;
} dial_waiter;

/* One address dial: the host dial's user data, so it can be canceled. */
typedef struct {
    peer_dial *pd;
    size_t slot;
} dial_attempt;

struct peer_dial {
    cp2p__dialer *d;
    peer_dial *next, *prev;     /* in d->dials while not finished */
    cp2p_peer_id peer;
    dial_waiter *waiters, **wtail;
    cp2p_multiaddr *addrs[CP2P_DIALER_MAX_ADDRS]; /* each with /p2p/<peer> */
    size_t naddrs, next_addr;
    dial_attempt *att[CP2P_DIALER_MAX_ADDRS];
    size_t running;             /* address dials that have not called back */
    uv_timer_t stagger, deadline;
    int handles;                /* timers not yet closed */
    bool finished;
    bool dialed;                /* at least one address dial started */
    int last_err;
};

typedef struct {
    cp2p_peer_id peer;
    uint64_t until;     /* loop time (ms) */
    uint32_t failures;  /* consecutive */
} dial_backoff;

struct cp2p__dialer {
    cp2p_host *h;
    peer_dial *dials;   /* in flight */
    size_t ndials;
    size_t nalive;      /* peer_dials not yet freed (in flight or closing) */
    dial_backoff *bo;   /* CP2P_DIALER_MAX_BACKOFFS entries, allocated at the first failure */
    size_t nbo;
};

int cp2p__dialer_new(cp2p_host *h, cp2p__dialer **out)
{
    cp2p__dialer *d = cp2p_calloc(1, sizeof(*d));
    if (d == NULL) {
        return CP2P_ENOMEM;
    }
    d->h = h;
    *out = d;
    return 0;
}

bool cp2p__dialer_idle(const cp2p__dialer *d)
{
    return d == NULL || d->nalive == 0;
}

void cp2p__dialer_free(cp2p__dialer *d)
{
    if (d == NULL) {
        return;
    }
    cp2p_free(d->bo);
    cp2p_free(d);
}

/* ---- backoff ---- */

static dial_backoff *backoff_find(cp2p__dialer *d, const cp2p_peer_id *peer)
{
    for (size_t i = 0; i < d->nbo; i++) {
        if (cp2p_peer_id_equal(&d->bo[i].peer, peer)) {
            return &d->bo[i];
        }
    }
    return NULL;
}

static void backoff_clear(cp2p__dialer *d, const cp2p_peer_id *peer)
{
    dial_backoff *b = backoff_find(d, peer);
    if (b != NULL) {
        *b = d->bo[--d->nbo];
    }
}

uint64_t cp2p__dialer_backoff_until(const cp2p__dialer *d, const cp2p_peer_id *peer)
{
    for (size_t i = 0; i < d->nbo; i++) {
        if (cp2p_peer_id_equal(&d->bo[i].peer, peer)) {
            return d->bo[i].until;
        }
    }
    return 0;
}

/* A failed dial: the next one waits base * 2^(failures-1), capped at max, jittered to
 * [delay/2, delay]. Returns the delay chosen (0 when no entry could be kept). */
static uint64_t backoff_add(cp2p__dialer *d, const cp2p_peer_id *peer, uint64_t now)
{
    const cp2p_host_config *cfg = &d->h->cfg;
    dial_backoff *b = backoff_find(d, peer);
    if (b != NULL && now > b->until && now - b->until > cfg->dial_backoff_max_ms) {
        b->failures = 0; /* expired long ago: start again from the base */
    }
    if (b == NULL) {
        if (d->bo == NULL && (d->bo = cp2p_calloc(CP2P_DIALER_MAX_BACKOFFS, sizeof(*d->bo))) ==
                                 NULL) {
            return 0;
        }
        if (d->nbo < CP2P_DIALER_MAX_BACKOFFS) {
            b = &d->bo[d->nbo++];
        } else {
            b = &d->bo[0]; /* full: replace the entry that ends first */
            for (size_t i = 1; i < d->nbo; i++) {
                if (d->bo[i].until < b->until) {
                    b = &d->bo[i];
                }
            }
        }
        *b = (dial_backoff){.peer = *peer};
    }
    if (b->failures < 64) {
        b->failures++;
    }
    uint64_t delay = cfg->dial_backoff_base_ms;
    for (uint32_t i = 1; i < b->failures && delay < cfg->dial_backoff_max_ms &&
                         delay <= UINT64_MAX / 2; i++) {
        delay *= 2;
    }
    if (delay > cfg->dial_backoff_max_ms) {
        delay = cfg->dial_backoff_max_ms;
    }
    if (delay > UINT32_MAX) {
        delay = UINT32_MAX;
    }
    delay = delay / 2 + randombytes_uniform((uint32_t)(delay - delay / 2) + 1);
    b->until = now + delay;
    return delay;
}

/* ---- one dial by peer ID ---- */

static void on_pd_handle_closed(uv_handle_t *handle);
static void on_stagger(uv_timer_t *t);
static void on_deadline(uv_timer_t *t);

static void pd_maybe_free(peer_dial *pd)
{
    if (pd->handles > 0 || pd->running > 0) {
        return;
    }
    for (size_t i = 0; i < pd->naddrs; i++) {
        cp2p_multiaddr_free(pd->addrs[i]);
    }
    pd->d->nalive--;
    cp2p_free(pd);
}

static void on_pd_handle_closed(uv_handle_t *handle)
{
    peer_dial *pd = handle->data;
    pd->handles--;
    pd_maybe_free(pd);
}

static void pd_unlink(peer_dial *pd)
{
    cp2p__dialer *d = pd->d;
    if (pd->prev != NULL) {
        pd->prev->next = pd->next;
    } else {
        d->dials = pd->next;
    }
    if (pd->next != NULL) {
        pd->next->prev = pd->prev;
    }
    pd->next = pd->prev = NULL;
    d->ndials--;
}

static void pd_close_handles(peer_dial *pd)
{
    uv_close((uv_handle_t *)&pd->stagger, on_pd_handle_closed);
    uv_close((uv_handle_t *)&pd->deadline, on_pd_handle_closed);
}

/* Report `status` to every waiter, cancel the address dials still running, and let go. */
static void pd_finish(peer_dial *pd, int status, cp2p_conn *conn)
{
    cp2p__dialer *d = pd->d;
    cp2p_host *h = d->h;
    char pid[CP2P_PEER_ID_STR_MAX];
    pd->finished = true;
    pd_unlink(pd);
    uv_timer_stop(&pd->stagger);
    uv_timer_stop(&pd->deadline);
    if (status == 0) {
        backoff_clear(d, &pd->peer);
    } else if (pd->dialed && status != CP2P_ECANCELED) {
        uint64_t delay = backoff_add(d, &pd->peer, uv_now(h->loop));
        (void)!cp2p_peerstore_record_failure(h->peerstore, &pd->peer, cp2p__host_wall_ms());
        CP2P_LOG(CP2P_LOG_DEBUG, "dialer", 0, "dialer.failed peer=%s err=%s backoff_ms=%llu",
                 cp2p_peer_id_str(&pd->peer, pid), cp2p_strerror(status),
                 (unsigned long long)delay);
    }
    /* A cancel may call back at once (the slot is cleared then), or later from the loop. */
    for (size_t i = 0; i < pd->naddrs; i++) {
        if (pd->att[i] != NULL) {
            cp2p__host_dial_cancel(h, pd->att[i]);
        }
    }
    dial_waiter *w = pd->waiters;
    pd->waiters = NULL;
    pd->wtail = &pd->waiters;
    while (w != NULL) {
        dial_waiter *next = w->next;
        w->cb(h, status, conn, w->ud);
        cp2p_free(w);
        w = next;
    }
    pd_close_handles(pd);
}

static void on_attempt(cp2p_host *h, int status, cp2p_conn *conn, void *ud);

/* Start the next address that can be started. Returns true if one did; errors of those that
 * could not start go to last_err. */
static bool pd_launch(peer_dial *pd)
{
    while (pd->next_addr < pd->naddrs) {
        size_t i = pd->next_addr++;
        dial_attempt *a = cp2p_calloc(1, sizeof(*a));
        int rc = CP2P_ENOMEM;
        if (a != NULL) {
            a->pd = pd;
            a->slot = i;
            rc = cp2p__host_dial(pd->d->h, pd->addrs[i], true, on_attempt, a);
        }
        if (rc == 0) {
            pd->att[i] = a;
            pd->running++;
            pd->dialed = true;
            return true;
        }
        cp2p_free(a);
        pd->last_err = rc;
    }
    return false;
}

/* Arm the stagger timer while addresses remain. */
static void pd_schedule(peer_dial *pd)
{
    if (pd->next_addr < pd->naddrs) {
        (void)uv_timer_start(&pd->stagger, on_stagger, CP2P_DIALER_STAGGER_MS, 0);
    } else {
        uv_timer_stop(&pd->stagger);
    }
}

static void on_attempt(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    dial_attempt *a = ud;
    peer_dial *pd = a->pd;
    (void)h;
    pd->att[a->slot] = NULL;
    pd->running--;
    cp2p_free(a);
    if (pd->finished) {
        if (status == 0) {
            cp2p_conn_close(conn); /* a loser that finished anyway */
        }
        pd_maybe_free(pd);
        return;
    }
    if (status == 0) {
        pd_finish(pd, 0, conn);
        return;
    }
    pd->last_err = status;
    if (pd_launch(pd)) {
        pd_schedule(pd);
    } else if (pd->running == 0) {
        pd_finish(pd, pd->last_err, NULL);
    }
}

static void on_stagger(uv_timer_t *t)
{
    peer_dial *pd = t->data;
    cp2p_conn *c = cp2p_host_conn_to(pd->d->h, &pd->peer);
    if (c != NULL) {
        pd_finish(pd, 0, c); /* connected meanwhile (or already at the call) */
        return;
    }
    if (pd->running < CP2P_DIALER_MAX_PARALLEL) {
        (void)pd_launch(pd);
    }
    if (pd->running == 0 && pd->next_addr >= pd->naddrs) {
        pd_finish(pd, pd->last_err, NULL);
        return;
    }
    pd_schedule(pd);
}

static void on_deadline(uv_timer_t *t)
{
    pd_finish(t->data, CP2P_ETIMEDOUT, NULL);
}

static peer_dial *pd_find(cp2p__dialer *d, const cp2p_peer_id *peer)
{
    for (peer_dial *pd = d->dials; pd != NULL; pd = pd->next) {
        if (cp2p_peer_id_equal(&pd->peer, peer)) {
            return pd;
        }
    }
    return NULL;
}

static peer_dial *pd_new(cp2p__dialer *d, const cp2p_peer_id *peer)
{
    peer_dial *pd = cp2p_calloc(1, sizeof(*pd));
    if (pd == NULL) {
        return NULL;
    }
    pd->d = d;
    pd->peer = *peer;
    pd->wtail = &pd->waiters;
    pd->last_err = CP2P_ECLOSED;
    (void)uv_timer_init(d->h->loop, &pd->stagger);
    (void)uv_timer_init(d->h->loop, &pd->deadline);
    pd->stagger.data = pd;
    pd->deadline.data = pd;
    pd->handles = 2;
    pd->next = d->dials;
    if (d->dials != NULL) {
        d->dials->prev = pd;
    }
    d->dials = pd;
    d->ndials++;
    d->nalive++;
    return pd;
}

/* Fill pd->addrs with the peer's best unexpired addresses, each ending in /p2p/<peer>. */
static int pd_load_addrs(peer_dial *pd)
{
    cp2p_host *h = pd->d->h;
    cp2p_peerstore_addr pa[CP2P_DIALER_MAX_ADDRS];
    cp2p_multiaddr *p2p = NULL;
    char text[CP2P_PEER_ID_STR_MAX + 8], pid[CP2P_PEER_ID_STR_MAX];
    size_t n = cp2p_peerstore_addrs(h->peerstore, &pd->peer, cp2p__host_wall_ms(), pa,
                                    CP2P_DIALER_MAX_ADDRS);
    int rc;
    if (n == 0) {
        return CP2P_ENOENT;
    }
    n = n < CP2P_DIALER_MAX_ADDRS ? n : CP2P_DIALER_MAX_ADDRS;
    int len = snprintf(text, sizeof(text), "/p2p/%s", cp2p_peer_id_str(&pd->peer, pid));
    if (len < 0 || (size_t)len >= sizeof(text)) {
        return CP2P_EINVAL;
    }
    if ((rc = cp2p_multiaddr_parse(text, (size_t)len, &p2p)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = cp2p_multiaddr_encapsulate(pa[i].addr, p2p, &pd->addrs[pd->naddrs]);
        if (rc == 0) {
            pd->naddrs++;
        } else if (rc == CP2P_ELIMIT) {
            rc = 0; /* too long with /p2p/: skip it */
        }
    }
    cp2p_multiaddr_free(p2p);
    return rc;
}

int cp2p_host_dial_peer(cp2p_host *h, const cp2p_peer_id *peer, cp2p_dial_cb cb, void *ud)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    int rc;
    if (h == NULL || peer == NULL || cb == NULL) {
        return CP2P_EINVAL;
    }
    if (h->closing) {
        return CP2P_ECLOSED;
    }
    if (cp2p_peer_id_equal(peer, &h->id)) {
        return CP2P_EINVAL;
    }
    cp2p__dialer *d = h->dialer;
    dial_waiter *w = cp2p_calloc(1, sizeof(*w));
    if (w == NULL) {
        return CP2P_ENOMEM;
    }
    w->cb = cb;
    w->ud = ud;
    peer_dial *pd = pd_find(d, peer);
    if (pd != NULL) { /* share the dial in flight */
        *pd->wtail = w;
        pd->wtail = &w->next;
        return 0;
    }
    cp2p_conn *c = cp2p_host_conn_to(h, peer);
    if (c == NULL) {
        dial_backoff *b = backoff_find(d, peer);
        if (b != NULL && uv_now(h->loop) < b->until) {
            CP2P_LOG(CP2P_LOG_DEBUG, "dialer", 0, "dialer.backoff peer=%s for %llu ms",
                     cp2p_peer_id_str(peer, pid),
                     (unsigned long long)(b->until - uv_now(h->loop)));
            cp2p_free(w);
            return CP2P_ESTATE;
        }
        if (d->ndials >= h->cfg.max_peer_dials) {
            cp2p_free(w);
            return CP2P_EFULL;
        }
    }
    if ((pd = pd_new(d, peer)) == NULL) {
        cp2p_free(w);
        return CP2P_ENOMEM;
    }
    *pd->wtail = w;
    pd->wtail = &w->next;
    if (c != NULL) {
        /* Already connected: answer from the loop, never inside this call. */
        (void)uv_timer_start(&pd->stagger, on_stagger, 0, 0);
        return 0;
    }
    rc = pd_load_addrs(pd);
    if (rc == 0 && !pd_launch(pd)) {
        rc = pd->last_err;
    }
    if (rc != 0) {
        /* Nothing started, so nothing calls back: undo quietly. */
        pd->finished = true;
        pd_unlink(pd);
        pd->waiters = NULL;
        cp2p_free(w);
        pd_close_handles(pd);
        return rc;
    }
    (void)uv_timer_start(&pd->deadline, on_deadline, h->cfg.dial_peer_timeout_ms, 0);
    pd_schedule(pd);
    return 0;
}

void cp2p__dialer_close(cp2p__dialer *d)
{
    if (d == NULL) {
        return;
    }
    while (d->dials != NULL) {
        pd_finish(d->dials, CP2P_ECANCELED, NULL);
    }
}
