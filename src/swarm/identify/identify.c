/* /ipfs/id/1.0.0 and /ipfs/id/push/1.0.0 (libp2p/specs identify/README.md).
 * Every new connection asks the peer for its identify message; we answer the same question;
 * when our handler set changes we push the new message to the peers that support push.
 * A message is one uvarint-length-prefixed protobuf (CP2P_IDENTIFY_MAX_MSG at most).
 *
 * Identify is part of the host, not a service on it: its answer is what makes a peer ready for
 * the services (cp2p/service.h), it stores that answer in the connection and raises the
 * host's PEER_IDENTIFIED event, and it pushes when the host's handler set changes (an internal
 * event). So it lives in src/swarm/ and is registered by the bare host itself. */
#include <string.h>

#include <cp2p/codec.h>
#include <cp2p/protocols.h>

#include "swarm/identify/identify_msg.h"
#include "swarm/swarm.h"
#include "util/alloc.h"
#include "util/frame.h"
#include "util/log_internal.h"

typedef struct {
    cp2p_conn *conn;
    bool push;          /* a push: merge into what we have */
    cp2p_buf in;
    bool done;
} id_reader;

/* ---- our message ---- */

/* Build and append our identify message (length-prefixed) for connection c. */
static int build_message(cp2p_conn *c, cp2p_buf *out)
{
    cp2p_host *h = cp2p_conn_host(c);
    cp2p__identify_msg m = {0};
    cp2p_buf key, body;
    cp2p_multiaddr *addrs[CP2P_IDENTIFY_MAX_ADDRS] = {0};
    char *protos[CP2P_MSS_MAX_SUPPORTED];
    int rc;
    cp2p_buf_init(&key, CP2P_KEY_PB_MAX);
    cp2p_buf_init(&body, CP2P_IDENTIFY_MAX_MSG);
    m.protocol_version = h->protocol_version;
    m.agent_version = h->agent_version;
    if ((rc = cp2p_pubkey_marshal(cp2p_privkey_public(h->key), &key)) != 0) {
        goto done;
    }
    m.public_key = key.ptr;
    m.public_key_len = key.len;
    ptrdiff_t na = cp2p_host_addrs(h, false, addrs, sizeof(addrs) / sizeof(addrs[0]));
    m.n_listen_addrs = na > 0 ? (size_t)na : 0;
    m.listen_addrs = addrs;
    m.observed_addr = (cp2p_multiaddr *)cp2p_conn_remote_addr(c);
    for (size_t i = 0; i < h->nprotos && m.n_protocols < CP2P_IDENTIFY_MAX_PROTOCOLS; i++) {
        if (h->handlers[i].active) {
            protos[m.n_protocols++] = (char *)h->proto_names[i];
        }
    }
    m.protocols = protos;
    if ((rc = cp2p__identify_encode(&m, &body)) == 0 &&
        (rc = cp2p_uvarint_append(out, body.len)) == 0) {
        rc = cp2p_buf_append(out, body.ptr, body.len);
    }
done:
    for (size_t i = 0; i < m.n_listen_addrs; i++) {
        cp2p_multiaddr_free(addrs[i]);
    }
    cp2p_buf_fini(&key);
    cp2p_buf_fini(&body);
    return rc;
}

static int send_message(cp2p_stream *s)
{
    cp2p_buf msg;
    cp2p_buf_init(&msg, CP2P_IDENTIFY_MAX_MSG + CP2P_UVARINT_MAX);
    int rc = build_message(cp2p_stream_conn(s), &msg);
    if (rc == 0) {
        rc = cp2p_stream_write(s, msg.ptr, msg.len, NULL, NULL);
    }
    cp2p_buf_fini(&msg);
    return rc;
}

/* ---- the peer's message ---- */

static void msg_free(void *p)
{
    cp2p__identify_msg_fini(p);
    cp2p_free(p);
}

static void make_view(const cp2p__identify_msg *m, cp2p_identify_info *v)
{
    *v = (cp2p_identify_info){
        .agent_version = m->agent_version,
        .protocol_version = m->protocol_version,
        .protocols = (const char *const *)m->protocols,
        .n_protocols = m->n_protocols,
        .listen_addrs = (const cp2p_multiaddr *const *)m->listen_addrs,
        .n_listen_addrs = m->n_listen_addrs,
        .observed_addr = m->observed_addr,
    };
}

/* A push replaces only what it carries (the spec: "partial updates"). Moves fields of `from`
 * into `into`. */
static void merge(cp2p__identify_msg *into, cp2p__identify_msg *from)
{
#define TAKE(field)                                                                            \
    do {                                                                                       \
        void *tmp_ = (void *)into->field;                                                      \
        into->field = from->field;                                                             \
        from->field = tmp_;                                                                    \
    } while (0)
    if (from->protocol_version != NULL) {
        TAKE(protocol_version);
    }
    if (from->agent_version != NULL) {
        TAKE(agent_version);
    }
    if (from->n_protocols > 0) {
        size_t n = into->n_protocols;
        TAKE(protocols);
        into->n_protocols = from->n_protocols;
        from->n_protocols = n;
    }
    if (from->n_listen_addrs > 0) {
        size_t n = into->n_listen_addrs;
        TAKE(listen_addrs);
        into->n_listen_addrs = from->n_listen_addrs;
        from->n_listen_addrs = n;
    }
    if (from->observed_addr != NULL) {
        TAKE(observed_addr);
    }
#undef TAKE
}

/* Teach the host's peerstore what the peer told us: its listen addresses (without a /p2p/
 * suffix; one naming another peer is skipped), protocols, agent and key. `key` is the new
 * message's key, `v` the connection's view after a push was merged. Errors (a full store,
 * too many protocols) only cost the peerstore entry, never the connection. */
static void remember(cp2p_conn *c, const cp2p__identify_msg *key, const cp2p_identify_info *v)
{
    cp2p_host *h = cp2p_conn_host(c);
    cp2p_peerstore *ps = cp2p_host_peerstore(h);
    const cp2p_peer_id *peer = cp2p_conn_peer_id(c);
    uint64_t now = cp2p__host_wall_ms();
    uint64_t p2p_code = 0;
    cp2p_multiaddr *addrs[CP2P_IDENTIFY_MAX_ADDRS];
    size_t n = 0;
    (void)!cp2p_multiaddr_protocol_code("p2p", 3, &p2p_code);
    for (size_t i = 0; i < v->n_listen_addrs && n < CP2P_IDENTIFY_MAX_ADDRS; i++) {
        cp2p_peer_id other;
        if (cp2p_multiaddr_peer_id(v->listen_addrs[i], &other) == 0 &&
            !cp2p_peer_id_equal(&other, peer)) {
            continue;
        }
        n += cp2p_multiaddr_decapsulate_code(v->listen_addrs[i], p2p_code, &addrs[n]) == 0;
    }
    if (n > 0) {
        (void)!cp2p_peerstore_add_addrs(ps, peer, (const cp2p_multiaddr *const *)addrs, n,
                                        CP2P_HOST_IDENTIFY_ADDR_TTL_MS,
                                        CP2P_ADDR_SOURCE_IDENTIFY, now);
    }
    for (size_t i = 0; i < n; i++) {
        cp2p_multiaddr_free(addrs[i]);
    }
    if (v->n_protocols > 0) {
        (void)!cp2p_peerstore_set_protocols(ps, peer, v->protocols, v->n_protocols, now);
    }
    if (v->agent_version != NULL) {
        (void)!cp2p_peerstore_set_agent(ps, peer, v->agent_version, now);
    }
    if (key->public_key != NULL) {
        (void)!cp2p_peerstore_set_pubkey(ps, peer, key->public_key, key->public_key_len, now);
    }
}

/* One complete message from the peer: check it, store it, tell everyone. */
static void on_message(id_reader *r, const uint8_t *body, size_t len)
{
    cp2p_conn *c = r->conn;
    const char *why = NULL;
    cp2p__identify_msg *m = cp2p_calloc(1, sizeof(*m));
    char pid[CP2P_PEER_ID_STR_MAX];
    if (m == NULL) {
        return;
    }
    if (cp2p__identify_decode(body, len, m, &why) != 0) {
        CP2P_LOG(CP2P_LOG_INFO, "identify", cp2p_conn_id(c), "identify.bad_message peer=%s %s",
                 cp2p_peer_id_str(cp2p_conn_peer_id(c), pid), why);
        cp2p_free(m);
        return;
    }
    if (m->public_key != NULL) {
        /* The key must be the one the peer authenticated with in the handshake. */
        cp2p_peer_id claimed;
        if (cp2p_peer_id_from_pubkey_proto(m->public_key, m->public_key_len, &claimed) != 0 ||
            !cp2p_peer_id_equal(&claimed, cp2p_conn_peer_id(c))) {
            CP2P_LOG(CP2P_LOG_INFO, "identify", cp2p_conn_id(c),
                     "identify.key_mismatch peer=%s: message ignored",
                     cp2p_peer_id_str(cp2p_conn_peer_id(c), pid));
            msg_free(m);
            return;
        }
    }
    if (m->dropped_addrs + m->dropped_protocols + m->dropped_strings > 0) {
        CP2P_LOG(CP2P_LOG_DEBUG, "identify", cp2p_conn_id(c),
                 "identify.dropped_entries addrs=%u protocols=%u strings=%u", m->dropped_addrs,
                 m->dropped_protocols, m->dropped_strings);
    }
    if (r->push && c->identify != NULL) {
        cp2p__identify_msg *old = c->identify;
        merge(old, m); /* the key is not merged: m keeps the pushed one, if any */
        make_view(old, &c->identify_view);
        remember(c, m, &c->identify_view);
        msg_free(m);
    } else {
        cp2p_identify_info v;
        make_view(m, &v);
        cp2p__conn_set_identify(c, m, &v, msg_free);
        remember(c, m, &c->identify_view);
    }
    cp2p__host_emit(cp2p_conn_host(c), CP2P_EVENT_PEER_IDENTIFIED, c, 0, NULL);
}

static void reader_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    id_reader *r = ud;
    if (n > 0 && cp2p_buf_append(&r->in, data, (size_t)n) != 0) {
        n = CP2P_ELIMIT;
    }
    if (n > 0) {
        cp2p_slice body;
        const char *why = NULL;
        ptrdiff_t used = cp2p__frame_decode(r->in.ptr, r->in.len, CP2P_IDENTIFY_MAX_MSG, &body,
                                            &why);
        if (used < 0) {
            n = used;
        } else if (used > 0) {
            on_message(r, body.ptr, body.len);
            r->done = true;
        }
    }
    if (n > 0 && !r->done) {
        return; /* wait for more */
    }
    if (n < 0 && n != CP2P_EOF) {
        CP2P_LOG(CP2P_LOG_DEBUG, "identify", 0, "identify.read_failed %s",
                 cp2p_strerror((int)n));
    }
    cp2p_stream_read_stop(s);
    if (r->done || n == CP2P_EOF) {
        cp2p_stream_close(s);
    } else {
        cp2p_stream_reset(s);
    }
    cp2p_buf_fini(&r->in);
    cp2p_free(r);
}

static void read_message(cp2p_stream *s, bool push)
{
    id_reader *r = cp2p_calloc(1, sizeof(*r));
    if (r == NULL) {
        cp2p_stream_reset(s);
        return;
    }
    r->conn = cp2p_stream_conn(s);
    r->push = push;
    cp2p_buf_init(&r->in, CP2P_IDENTIFY_MAX_MSG + CP2P_UVARINT_MAX);
    if (cp2p_stream_read_start(s, reader_read, r) != 0) {
        cp2p_buf_fini(&r->in);
        cp2p_free(r);
        cp2p_stream_reset(s);
    }
}

/* ---- handlers and triggers ---- */

/* The peer asks who we are: answer and close. */
static void id_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    if (send_message(s) != 0) {
        cp2p_stream_reset(s);
        return;
    }
    cp2p_stream_close(s);
}

static void push_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    read_message(s, true);
}

static void on_id_open(cp2p_stream *s, int status, void *ud)
{
    (void)ud;
    if (status == 0) {
        (void)!cp2p_stream_close_write(s);
        read_message(s, false);
    }
}

static void on_push_open(cp2p_stream *s, int status, void *ud)
{
    (void)ud;
    if (status != 0) {
        return;
    }
    if (send_message(s) != 0) {
        cp2p_stream_reset(s);
        return;
    }
    cp2p_stream_close(s);
}

void cp2p__identify_on_event(cp2p_host *h, const cp2p_event *ev)
{
    static const char *const id_proto[] = {CP2P_IDENTIFY_PROTOCOL};
    static const char *const push_proto[] = {CP2P_IDENTIFY_PUSH_PROTOCOL};
    if (ev->type == CP2P_EVENT_CONN_OPENED) {
        if (cp2p_conn_open_stream(ev->conn, id_proto, 1, on_id_open, NULL) != 0) {
            CP2P_LOG(CP2P_LOG_DEBUG, "identify", cp2p_conn_id(ev->conn),
                     "identify.open_failed");
        }
    } else if ((int)ev->type == CP2P__EVENT_PROTOCOLS_CHANGED) {
        for (cp2p_conn *c = h->conns; c != NULL; c = c->next) {
            if (c->upgraded && !c->closing && c->stage == CONN_OPEN &&
                cp2p__conn_peer_lists(c, CP2P_IDENTIFY_PUSH_PROTOCOL)) {
                (void)!cp2p_conn_open_stream(c, push_proto, 1, on_push_open, NULL);
            }
        }
    }
}

int cp2p__identify_register(cp2p_host *h)
{
    int rc;
    if ((rc = cp2p_host_set_handler(h, CP2P_IDENTIFY_PROTOCOL, id_handler, NULL)) != 0 ||
        (rc = cp2p_host_set_handler(h, CP2P_IDENTIFY_PUSH_PROTOCOL, push_handler, NULL)) != 0) {
        return rc;
    }
    return 0;
}
