/* The libp2p Noise secure channel as a sans-I/O core (see noise.h for the contract).
 * Spec: libp2p/specs noise/README.md r5; connections/inlined-muxer-negotiation.md r1. */
#include <assert.h>
#include <string.h>

#include <sodium.h>

#include <cp2p/buf.h>
#include <cp2p/keys.h>

#include "crypto/crypto_init.h"
#include "crypto/noise/noise.h"
#include "crypto/noise/noise_hs.h"
#include "noise.pb-c.h"
#include "util/bytes.h"
#include "util/limits.h"
#include "util/pb.h"
#include "util/log_internal.h"

#define LOG_MODULE "noise"
#define FRAME_HDR 2
#define TAG CP2P__NOISE_TAGLEN
/* Smallest slice of a writev encrypted in place rather than gathered with its neighbours. */
#define NOISE_DIRECT_MIN 4096

/* libp2p noise spec, "The libp2p Handshake Payload": the signed data is this UTF-8 prefix
 * followed by the 32-byte Noise static public key. */
#define SIG_PREFIX "noise-libp2p-static-key:"
#define SIG_PREFIX_LEN (sizeof(SIG_PREFIX) - 1)

static_assert(CP2P_NOISE_PLAINTEXT_MAX + TAG == CP2P_NOISE_MSG_MAX, "frame arithmetic");
static_assert(CP2P__NOISE_FRAME_OVERHEAD == FRAME_HDR + TAG, "frame overhead");
static_assert(CP2P_NOISE_HS_MSG_MAX_DEFAULT <= CP2P_NOISE_MSG_MAX, "handshake limit");

/* What the session expects next (STYLE.md section 7). */
typedef enum noise_state {
    NOISE_EXPECT_MSG1, /* responder: waiting for the initiator's "e" */
    NOISE_EXPECT_MSG2, /* initiator: sent "e", waiting for "e, ee, s, es" + payload */
    NOISE_EXPECT_MSG3, /* responder: sent message 2, waiting for "s, se" + payload */
    NOISE_TRANSPORT,   /* handshake done: transport frames both ways */
    NOISE_FAILED,      /* terminal: err and why say why */
} noise_state;

/* A list of names in one allocation: the pointer array, then the NUL-terminated strings. */
typedef struct name_list {
    char **names;
    size_t count;
} name_list;

struct cp2p__noise {
    noise_state state;
    bool initiator;
    int err;         /* terminal error once FAILED */
    const char *why; /* static string with err */
    uint64_t conn_id;
    uint64_t deadline;
    size_t max_hs;

    cp2p__noise_xx hs;           /* wiped once the transport keys are split off */
    cp2p__noise_cipher tx, rx;   /* transport keys, valid in NOISE_TRANSPORT */
    uint8_t *payload;            /* our encoded NoiseHandshakePayload, until sent */
    size_t payload_len;

    /* Decrypted bytes not yet read: in.ptr[in_off .. in.len). */
    cp2p_buf in;
    size_t in_off;
    /* Bytes to send: out.ptr[out_off .. out.len). */
    cp2p_buf out;
    size_t out_off;

    name_list local_muxers;
    name_list remote_muxers; /* published only once the handshake is done */
    const char *muxer;       /* the agreed muxer (one of local_muxers) or NULL */

    cp2p_pubkey *remote_key; /* authenticated identity, set when its payload verified */
    cp2p_peer_id remote_id;
    uint8_t remote_static[CP2P__NOISE_DHLEN];
    bool has_expected;
    cp2p_peer_id expected;
};

/* ---- small helpers ---- */

static const char *state_name(noise_state s)
{
    switch (s) {
    case NOISE_EXPECT_MSG1:
        return "EXPECT_MSG1";
    case NOISE_EXPECT_MSG2:
        return "EXPECT_MSG2";
    case NOISE_EXPECT_MSG3:
        return "EXPECT_MSG3";
    case NOISE_TRANSPORT:
        return "TRANSPORT";
    case NOISE_FAILED:
        return "FAILED";
    default:
        return "?";
    }
}

static void set_state(cp2p__noise *n, noise_state s)
{
    /* Terminal states stay terminal. */
    assert(n->state != NOISE_FAILED);
    CP2P_LOG(CP2P_LOG_TRACE, LOG_MODULE, n->conn_id, "noise.state %s -> %s",
             state_name(n->state), state_name(s));
    n->state = s;
}

static bool handshaking(const cp2p__noise *n)
{
    return n->state == NOISE_EXPECT_MSG1 || n->state == NOISE_EXPECT_MSG2 ||
           n->state == NOISE_EXPECT_MSG3;
}

static void wipe_secrets(cp2p__noise *n)
{
    cp2p__noise_xx_wipe(&n->hs);
    cp2p__noise_cipher_wipe(&n->tx);
    cp2p__noise_cipher_wipe(&n->rx);
}

/* Enter FAILED with err/why, log one line (STYLE.md section 9), and drop what the failed
 * handshake taught us: the spec says early data of a failed handshake MUST be discarded. */
static int fail(cp2p__noise *n, int err, const char *why)
{
    if (n->state == NOISE_FAILED) {
        return n->err;
    }
    bool hs = handshaking(n);
    n->err = err;
    n->why = why != NULL ? why : cp2p_strerror(err);
    CP2P_LOG(CP2P_LOG_INFO, LOG_MODULE, n->conn_id, "%s err=%s why=%s",
             hs ? "noise.handshake_failed" : "noise.session_failed", cp2p_strerror(err), n->why);
    set_state(n, NOISE_FAILED);
    wipe_secrets(n);
    if (hs) {
        cp2p_free(n->remote_muxers.names);
        n->remote_muxers = (name_list){0};
        cp2p_pubkey_free(n->remote_key);
        n->remote_key = NULL;
        n->muxer = NULL;
    }
    return err;
}

/* Copy `count` names into one allocation. The names were validated by the caller. */
static int names_copy(const cp2p_slice *src, size_t count, name_list *out)
{
    size_t total = count * sizeof(char *);
    for (size_t i = 0; i < count; i++) {
        total += src[i].len + 1; /* bounded: count and lengths are limited by the callers */
    }
    char **names = cp2p_malloc(total);
    if (names == NULL) {
        return CP2P_ENOMEM;
    }
    char *p = (char *)(names + count);
    for (size_t i = 0; i < count; i++) {
        names[i] = p;
        memcpy(p, src[i].ptr, src[i].len);
        p[src[i].len] = '\0';
        p += src[i].len + 1;
    }
    *out = (name_list){.names = names, .count = count};
    return 0;
}

/* A muxer name is 1..CP2P_NOISE_MUXER_NAME_MAX bytes without NUL (it becomes a C string). */
static bool muxer_name_ok(const uint8_t *p, size_t len)
{
    return len > 0 && len <= CP2P_NOISE_MUXER_NAME_MAX && memchr(p, 0, len) == NULL;
}

/* Bytes of the bounded buffer `b` (read offset `off`) that are not consumed yet. */
static size_t pending(const cp2p_buf *b, size_t off)
{
    return b->len - off;
}

/* Make room for `need` more bytes at the tail of `b`, moving the unconsumed bytes to the front
 * when the tail would cross the maximum. Returns a pointer to the room, or NULL with *rc set
 * (CP2P_ELIMIT: it does not fit even after compaction; CP2P_ENOMEM). */
static uint8_t *buf_room(cp2p_buf *b, size_t *off, size_t need, int *rc)
{
    if (b->max - pending(b, *off) < need) {
        *rc = CP2P_ELIMIT;
        return NULL;
    }
    if (b->max - b->len < need && *off > 0) {
        memmove(b->ptr, b->ptr + *off, b->len - *off);
        b->len -= *off;
        *off = 0;
    }
    if ((*rc = cp2p_buf_reserve(b, need)) != 0) {
        return NULL;
    }
    return b->ptr + b->len;
}

static void buf_done(cp2p_buf *b, size_t *off, size_t len)
{
    size_t have = pending(b, *off);
    *off += len < have ? len : have;
    if (*off == b->len) {
        /* Everything consumed: start again at the front, no copy needed. */
        *off = 0;
        b->len = 0;
    }
}

static size_t buf_peek(const cp2p_buf *b, size_t off, cp2p_slice *out)
{
    out->ptr = b->ptr != NULL ? b->ptr + off : NULL;
    out->len = pending(b, off);
    return out->len;
}

/* ---- protobuf ---- */


/* Encode our NoiseHandshakePayload: identity key, its signature over the static key, and the
 * muxer list when we have one (as the spec says, only in messages 2 and 3). */
static int payload_build(cp2p__noise *n, const cp2p_privkey *identity)
{
    uint8_t signed_data[SIG_PREFIX_LEN + CP2P__NOISE_DHLEN];
    cp2p_buf key, sig;
    ProtobufCBinaryData muxers[CP2P_NOISE_MUXERS_MAX];
    Cp2pPb__NoiseHandshakePayload pl = CP2P_PB__NOISE_HANDSHAKE_PAYLOAD__INIT;
    Cp2pPb__NoiseExtensions ext = CP2P_PB__NOISE_EXTENSIONS__INIT;
    int rc;

    cp2p_buf_init(&key, CP2P_KEY_MARSHAL_MAX);
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    memcpy(signed_data, SIG_PREFIX, SIG_PREFIX_LEN);
    memcpy(signed_data + SIG_PREFIX_LEN, cp2p__noise_xx_static_pub(&n->hs), CP2P__NOISE_DHLEN);
    if ((rc = cp2p_pubkey_marshal(cp2p_privkey_public(identity), &key)) != 0) {
        goto fail;
    }
    if ((rc = cp2p_privkey_sign(identity, signed_data, sizeof(signed_data), &sig)) != 0) {
        goto fail;
    }
    pl.has_identity_key = 1;
    pl.identity_key = (ProtobufCBinaryData){.len = key.len, .data = key.ptr};
    pl.has_identity_sig = 1;
    pl.identity_sig = (ProtobufCBinaryData){.len = sig.len, .data = sig.ptr};
    if (n->local_muxers.count > 0) {
        for (size_t i = 0; i < n->local_muxers.count; i++) {
            muxers[i].data = (uint8_t *)n->local_muxers.names[i];
            muxers[i].len = strlen(n->local_muxers.names[i]);
        }
        ext.n_stream_muxers = n->local_muxers.count;
        ext.stream_muxers = muxers;
        pl.extensions = &ext;
    }
    n->payload_len = cp2p_pb__noise_handshake_payload__get_packed_size(&pl);
    n->payload = cp2p_malloc(n->payload_len);
    if (n->payload == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    cp2p_pb__noise_handshake_payload__pack(&pl, n->payload);
    rc = 0;
fail:
    cp2p_buf_fini(&key);
    cp2p_buf_fini(&sig);
    return rc;
}

/* Validate the remote's payload from message 2 or 3 (spec: decode the identity key, verify its
 * signature over the static key we received, then derive the peer ID) and keep the identity and
 * the muxer list. Nothing is published until the handshake completes. */
static int payload_check(cp2p__noise *n, const uint8_t *p, size_t len, const char **why)
{
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    uint8_t signed_data[SIG_PREFIX_LEN + CP2P__NOISE_DHLEN];
    cp2p_slice names[CP2P_NOISE_MUXERS_MAX];
    cp2p_pubkey *key = NULL;
    int rc;

    /* Size check before unpacking (STYLE.md 6.10): len is at most max_handshake_msg. */
    Cp2pPb__NoiseHandshakePayload *pl = cp2p_pb__noise_handshake_payload__unpack(&pa.a, len, p);
    if (pl == NULL) {
        *why = pa.failed ? "out of memory decoding the noise handshake payload"
                         : "malformed noise handshake payload";
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    if (!pl->has_identity_key || !pl->has_identity_sig) {
        *why = "noise handshake payload lacks the identity key or signature";
        rc = CP2P_EPROTO;
        goto fail;
    }
    rc = cp2p_pubkey_unmarshal(pl->identity_key.data, pl->identity_key.len, &key);
    if (rc != 0) {
        *why = rc == CP2P_ENOTSUP ? "remote identity key type not supported"
               : rc == CP2P_ENOMEM ? "out of memory decoding the remote identity key"
                                   : "invalid remote identity key";
        goto fail;
    }
    memcpy(signed_data, SIG_PREFIX, SIG_PREFIX_LEN);
    memcpy(signed_data + SIG_PREFIX_LEN, cp2p__noise_xx_remote_static(&n->hs), CP2P__NOISE_DHLEN);
    rc = cp2p_pubkey_verify(key, signed_data, sizeof(signed_data), pl->identity_sig.data,
                            pl->identity_sig.len);
    if (rc != 0) {
        *why = "identity signature over the noise static key does not verify";
        rc = CP2P_EBADSIG;
        goto fail;
    }
    if ((rc = cp2p_peer_id_from_pubkey(key, &n->remote_id)) != 0) {
        *why = "cannot derive the remote peer ID";
        goto fail;
    }
    if (n->has_expected && !cp2p_peer_id_equal(&n->remote_id, &n->expected)) {
        *why = "remote peer ID differs from the expected one";
        rc = CP2P_EPEERID;
        goto fail;
    }
    /* Extensions: webtransport_certhashes are not ours to use on this transport and are
     * ignored; stream_muxers are kept for the early muxer negotiation. */
    size_t nm = pl->extensions != NULL ? pl->extensions->n_stream_muxers : 0;
    if (nm > CP2P_NOISE_MUXERS_MAX) {
        *why = "too many stream muxers in the noise handshake payload";
        rc = CP2P_ELIMIT;
        goto fail;
    }
    for (size_t i = 0; i < nm; i++) {
        const ProtobufCBinaryData *m = &pl->extensions->stream_muxers[i];
        if (!muxer_name_ok(m->data, m->len)) {
            *why = "invalid stream muxer name in the noise handshake payload";
            rc = m->len > CP2P_NOISE_MUXER_NAME_MAX ? CP2P_ELIMIT : CP2P_EPROTO;
            goto fail;
        }
        names[i] = (cp2p_slice){.ptr = m->data, .len = m->len};
    }
    if (nm > 0 && (rc = names_copy(names, nm, &n->remote_muxers)) != 0) {
        *why = "out of memory copying the remote muxer list";
        goto fail;
    }
    n->remote_key = key;
    memcpy(n->remote_static, cp2p__noise_xx_remote_static(&n->hs), CP2P__NOISE_DHLEN);
    cp2p_pb__noise_handshake_payload__free_unpacked(pl, &pa.a);
    return 0;
fail:
    cp2p_pubkey_free(key);
    cp2p_pb__noise_handshake_payload__free_unpacked(pl, &pa.a);
    return rc;
}

/* Early muxer negotiation (inlined-muxer-negotiation.md): "the first item from the initiator's
 * list that both parties support". No list on either side: nothing agreed, the caller falls
 * back to multistream-select. Both lists without overlap: "the handshake MUST fail". */
static int negotiate_muxer(cp2p__noise *n, const char **why)
{
    const name_list *ini = n->initiator ? &n->local_muxers : &n->remote_muxers;
    const name_list *resp = n->initiator ? &n->remote_muxers : &n->local_muxers;

    n->muxer = NULL;
    if (ini->count == 0 || resp->count == 0) {
        return 0;
    }
    for (size_t i = 0; i < ini->count; i++) {
        for (size_t j = 0; j < resp->count; j++) {
            if (strcmp(ini->names[i], resp->names[j]) == 0) {
                /* Point at our own copy: it lives as long as the session. */
                n->muxer = n->initiator ? ini->names[i] : resp->names[j];
                return 0;
            }
        }
    }
    *why = "no stream muxer in common (early muxer negotiation)";
    return CP2P_EPROTO;
}

/* ---- handshake ---- */

/* Queue our next handshake message with `payload` as one frame. */
static int queue_hs_msg(cp2p__noise *n, const uint8_t *payload, size_t plen, const char **why)
{
    size_t need = cp2p__noise_xx_write_size(&n->hs, plen);
    size_t w;
    int rc;

    assert(need > 0 && need <= CP2P_NOISE_MSG_MAX);
    uint8_t *dst = buf_room(&n->out, &n->out_off, FRAME_HDR + need, &rc);
    if (dst == NULL) {
        *why = rc == CP2P_ENOMEM ? "out of memory queueing a noise handshake message"
                                 : "no room for a noise handshake message";
        return rc;
    }
    if ((rc = cp2p__noise_xx_write(&n->hs, payload, plen, dst + FRAME_HDR, need, &w, why)) != 0) {
        return rc;
    }
    cp2p_store_be16(dst, (uint16_t)w);
    n->out.len += FRAME_HDR + w;
    return 0;
}

/* Read a handshake message; on success *payload is a new buffer with *plen bytes (the caller
 * frees it). */
static int read_hs_msg(cp2p__noise *n, const uint8_t *msg, size_t len, uint8_t **payload,
                       size_t *plen, const char **why)
{
    uint8_t *p = cp2p_malloc(len);
    if (p == NULL) {
        *why = "out of memory reading a noise handshake message";
        return CP2P_ENOMEM;
    }
    int rc = cp2p__noise_xx_read(&n->hs, msg, len, p, len, plen, why);
    if (rc != 0) {
        cp2p_free(p);
        return rc;
    }
    *payload = p;
    return 0;
}

/* Split the transport keys (c1 carries initiator-to-responder) and forget the handshake. */
static void enter_transport(cp2p__noise *n)
{
    cp2p__noise_cipher c1, c2;
    int rc = cp2p__noise_xx_split(&n->hs, &c1, &c2);
    assert(rc == 0); /* only called once the XX state is done */
    (void)rc;
    n->tx = n->initiator ? c1 : c2;
    n->rx = n->initiator ? c2 : c1;
    cp2p__noise_cipher_wipe(&c1);
    cp2p__noise_cipher_wipe(&c2);
    cp2p__noise_xx_wipe(&n->hs);
    sodium_memzero(n->payload, n->payload_len);
    cp2p_free(n->payload);
    n->payload = NULL;
    n->payload_len = 0;
    set_state(n, NOISE_TRANSPORT);
    char id[CP2P_PEER_ID_STR_MAX];
    CP2P_LOG(CP2P_LOG_DEBUG, LOG_MODULE, n->conn_id, "noise.handshake_done peer=%s muxer=%s",
             cp2p_peer_id_str(&n->remote_id, id), n->muxer != NULL ? n->muxer : "-");
}

/* Responder, message 1: "-> e". Its payload is plaintext and, per the libp2p spec, carries
 * nothing (go, rust and js send it empty); it is ignored rather than refused. */
static int on_msg1(cp2p__noise *n, const uint8_t *msg, size_t len, const char **why)
{
    uint8_t *payload;
    size_t plen;
    int rc = read_hs_msg(n, msg, len, &payload, &plen, why);
    if (rc != 0) {
        return rc;
    }
    cp2p_free(payload);
    if ((rc = queue_hs_msg(n, n->payload, n->payload_len, why)) != 0) {
        return rc;
    }
    set_state(n, NOISE_EXPECT_MSG3);
    return 0;
}

/* Messages 2 and 3 carry the remote's signed payload: read it, check the signature and the
 * expected peer ID, and agree on the muxer. */
static int accept_remote_payload(cp2p__noise *n, const uint8_t *msg, size_t len, const char **why)
{
    uint8_t *payload;
    size_t plen;
    int rc = read_hs_msg(n, msg, len, &payload, &plen, why);
    if (rc != 0) {
        return rc;
    }
    rc = payload_check(n, payload, plen, why);
    cp2p_free(payload);
    if (rc != 0) {
        return rc;
    }
    return negotiate_muxer(n, why);
}

/* Initiator, message 2: "<- e, ee, s, es" and the responder's signed payload. Verify it before
 * sending message 3, so that we never reveal our identity to a peer we did not mean to reach. */
static int on_msg2(cp2p__noise *n, const uint8_t *msg, size_t len, const char **why)
{
    int rc = accept_remote_payload(n, msg, len, why);
    if (rc != 0) {
        return rc;
    }
    if ((rc = queue_hs_msg(n, n->payload, n->payload_len, why)) != 0) {
        return rc;
    }
    enter_transport(n);
    return 0;
}

/* Responder, message 3: "-> s, se" and the initiator's signed payload. */
static int on_msg3(cp2p__noise *n, const uint8_t *msg, size_t len, const char **why)
{
    int rc = accept_remote_payload(n, msg, len, why);
    if (rc != 0) {
        return rc;
    }
    enter_transport(n);
    return 0;
}

/* ---- transport ---- */

/* Decrypt one transport frame body (ciphertext || tag) into the plaintext buffer. The caller
 * checked that len >= TAG and that the plaintext fits. */
static int on_transport(cp2p__noise *n, const uint8_t *body, size_t len, const char **why)
{
    int rc;
    size_t plen = len - TAG;
    uint8_t *dst = buf_room(&n->in, &n->in_off, plen, &rc);
    if (dst == NULL) {
        *why = "out of memory for decrypted noise data";
        return rc;
    }
    rc = cp2p__noise_cipher_decrypt(&n->rx, NULL, 0, body, plen, dst);
    if (rc != 0) {
        *why = rc == CP2P_ELIMIT ? "noise receive nonce exhausted (2^64-1 messages)"
                                 : "noise transport frame fails authentication";
        return rc;
    }
    n->in.len += plen;
    return 0;
}

/* Fail the session from cp2p__noise_recv: *why ends up as the session's reason. */
static ptrdiff_t recv_fail(cp2p__noise *n, int err, const char **why)
{
    fail(n, err, *why);
    *why = n->why;
    return n->err;
}

ptrdiff_t cp2p__noise_recv(cp2p__noise *n, const uint8_t *in, size_t len, uint64_t now,
                           const char **why)
{
    const char *ignored;
    size_t off = 0;

    if (why == NULL) {
        why = &ignored;
    }
    *why = NULL;
    if (n->state == NOISE_FAILED) {
        *why = n->why;
        return n->err;
    }
    if (handshaking(n) && now >= n->deadline) {
        *why = "noise handshake timed out";
        return recv_fail(n, CP2P_ETIMEDOUT, why);
    }
    while (len - off >= FRAME_HDR) {
        size_t flen = cp2p_load_be16(in + off);
        size_t avail = len - off - FRAME_HDR;
        const uint8_t *body = in + off + FRAME_HDR;
        int rc;

        /* Check the declared length against the state before waiting for the body. */
        if (n->state == NOISE_TRANSPORT) {
            if (flen < TAG) {
                *why = "noise transport frame shorter than its tag";
                return recv_fail(n, CP2P_EPROTO, why);
            }
            if (n->in.max - pending(&n->in, n->in_off) < flen - TAG) {
                break; /* backpressure: the reader must drain first */
            }
        } else if (flen > n->max_hs) {
            *why = "noise handshake message above the limit";
            return recv_fail(n, CP2P_ELIMIT, why);
        }
        if (avail < flen) {
            break;
        }
        switch (n->state) {
        case NOISE_EXPECT_MSG1:
            rc = on_msg1(n, body, flen, why);
            break;
        case NOISE_EXPECT_MSG2:
            rc = on_msg2(n, body, flen, why);
            break;
        case NOISE_EXPECT_MSG3:
            rc = on_msg3(n, body, flen, why);
            break;
        case NOISE_TRANSPORT:
            rc = on_transport(n, body, flen, why);
            break;
        default:
            *why = "noise input in an unexpected state";
            rc = CP2P_ESTATE;
            break;
        }
        if (rc != 0) {
            return recv_fail(n, rc, why);
        }
        off += FRAME_HDR + flen;
    }
    return (ptrdiff_t)off;
}

size_t cp2p__noise_read(cp2p__noise *n, cp2p_slice *out)
{
    return buf_peek(&n->in, n->in_off, out);
}

void cp2p__noise_read_done(cp2p__noise *n, size_t len)
{
    buf_done(&n->in, &n->in_off, len);
}

size_t cp2p__noise_write_space(const cp2p__noise *n)
{
    if (n->state != NOISE_TRANSPORT) {
        return 0;
    }
    size_t room = n->out.max - pending(&n->out, n->out_off);
    size_t frames = room / (CP2P_NOISE_MSG_MAX + FRAME_HDR);
    size_t rest = room % (CP2P_NOISE_MSG_MAX + FRAME_HDR);
    size_t space = frames * CP2P_NOISE_PLAINTEXT_MAX;
    if (rest > CP2P__NOISE_FRAME_OVERHEAD) {
        space += rest - CP2P__NOISE_FRAME_OVERHEAD;
    }
    return space;
}

ptrdiff_t cp2p__noise_writev(cp2p__noise *n, const cp2p_slice *iov, size_t cnt)
{
    size_t total = 0, taken = 0, i = 0, ioff = 0;
    int rc;

    if (n->state == NOISE_FAILED) {
        return n->err;
    }
    if (n->state != NOISE_TRANSPORT || (cnt > 0 && iov == NULL)) {
        return n->state != NOISE_TRANSPORT ? CP2P_ESTATE : CP2P_EINVAL;
    }
    for (size_t k = 0; k < cnt; k++) {
        if (iov[k].len > (size_t)PTRDIFF_MAX - total || (iov[k].len > 0 && iov[k].ptr == NULL)) {
            return CP2P_EINVAL;
        }
        total += iov[k].len;
    }
    if (n->out.cap == 0 && total > 0) {
        /* An empty buffer (new, trimmed or handed over): size it for what this call encrypts
         * at once, rather than doubling up to it with a copy per step. */
        size_t frames = total / CP2P_NOISE_PLAINTEXT_MAX + 1;
        size_t want = total + frames * CP2P__NOISE_FRAME_OVERHEAD;
        (void)!cp2p_buf_reserve(&n->out, want < n->out.max ? want : n->out.max);
    }
    while (taken < total) {
        size_t room = n->out.max - pending(&n->out, n->out_off);
        if (room <= CP2P__NOISE_FRAME_OVERHEAD) {
            break;
        }
        size_t chunk = room - CP2P__NOISE_FRAME_OVERHEAD;
        if (chunk > CP2P_NOISE_PLAINTEXT_MAX) {
            chunk = CP2P_NOISE_PLAINTEXT_MAX;
        }
        if (chunk > total - taken) {
            chunk = total - taken;
        }
        uint8_t *dst = buf_room(&n->out, &n->out_off, chunk + CP2P__NOISE_FRAME_OVERHEAD, &rc);
        if (dst == NULL) {
            return taken > 0 ? (ptrdiff_t)taken : rc;
        }
        while (iov[i].len == ioff) { /* skip empty and finished slices */
            i++;
            ioff = 0;
        }
        /* Frames follow the caller's slices where that saves a copy: a large slice (a yamux
         * Data frame) is encrypted straight from the caller's bytes, as one frame or several,
         * and small slices (control frames) are gathered up to the next large one. */
        size_t rem = iov[i].len - ioff;
        if (rem < chunk) {
            if (rem >= NOISE_DIRECT_MIN) {
                chunk = rem;
            } else {
                size_t g = rem;
                for (size_t j = i + 1; j < cnt && g < chunk && iov[j].len < NOISE_DIRECT_MIN; j++) {
                    g += iov[j].len;
                }
                chunk = g < chunk ? g : chunk;
            }
        }
        const uint8_t *src;
        if (iov[i].len - ioff >= chunk) {
            /* The common case: encrypt straight from the caller's bytes, no copy. */
            src = iov[i].ptr + ioff;
            ioff += chunk;
        } else {
            /* Gather the pieces in place, then encrypt in place. */
            size_t got = 0;
            while (got < chunk) {
                size_t k = iov[i].len - ioff;
                if (k > chunk - got) {
                    k = chunk - got;
                }
                if (k > 0) {
                    memcpy(dst + FRAME_HDR + got, iov[i].ptr + ioff, k);
                    got += k;
                    ioff += k;
                }
                if (ioff == iov[i].len) {
                    i++;
                    ioff = 0;
                }
            }
            src = dst + FRAME_HDR;
        }
        rc = cp2p__noise_cipher_encrypt(&n->tx, NULL, 0, src, chunk, dst + FRAME_HDR,
                                        dst + FRAME_HDR + chunk);
        if (rc != 0) {
            /* Spec: "MUST terminate the connection" rather than reuse a nonce. */
            return fail(n, rc, "noise send nonce exhausted (2^64-1 messages)");
        }
        cp2p_store_be16(dst, (uint16_t)(chunk + TAG));
        n->out.len += chunk + CP2P__NOISE_FRAME_OVERHEAD;
        taken += chunk;
    }
    return (ptrdiff_t)taken;
}

ptrdiff_t cp2p__noise_write(cp2p__noise *n, const uint8_t *p, size_t len)
{
    cp2p_slice s = {.ptr = p, .len = len};
    return cp2p__noise_writev(n, &s, 1);
}

size_t cp2p__noise_out(cp2p__noise *n, cp2p_slice *out)
{
    return buf_peek(&n->out, n->out_off, out);
}

void cp2p__noise_out_done(cp2p__noise *n, size_t len)
{
    buf_done(&n->out, &n->out_off, len);
}

bool cp2p__noise_out_take(cp2p__noise *n, uint8_t **ptr, size_t *len)
{
    if (n->out_off != 0 || n->out.len == 0) {
        return false;
    }
    *ptr = n->out.ptr;
    *len = n->out.len;
    cp2p_buf_init(&n->out, n->out.max);
    return true;
}

void cp2p__noise_out_give(cp2p__noise *n, uint8_t *ptr, size_t len)
{
    if (n->out.ptr == NULL && n->out_off == 0 && len > 0 && len < n->out.max) {
        n->out.ptr = ptr;
        n->out.cap = len + 1; /* a cp2p_buf keeps one byte spare: it held len */
        return;
    }
    cp2p_free(ptr);
}

/* ---- queries, timer ---- */

bool cp2p__noise_handshake_done(const cp2p__noise *n)
{
    return n->state == NOISE_TRANSPORT;
}

int cp2p__noise_error(const cp2p__noise *n, const char **why)
{
    if (n->state != NOISE_FAILED) {
        return 0;
    }
    if (why != NULL) {
        *why = n->why;
    }
    return n->err;
}

const cp2p_peer_id *cp2p__noise_remote_peer_id(const cp2p__noise *n)
{
    return n->state == NOISE_TRANSPORT ? &n->remote_id : NULL;
}

const cp2p_pubkey *cp2p__noise_remote_pubkey(const cp2p__noise *n)
{
    return n->state == NOISE_TRANSPORT ? n->remote_key : NULL;
}

const uint8_t *cp2p__noise_remote_static(const cp2p__noise *n)
{
    return n->state == NOISE_TRANSPORT ? n->remote_static : NULL;
}

size_t cp2p__noise_remote_muxer_count(const cp2p__noise *n)
{
    return n->state == NOISE_TRANSPORT ? n->remote_muxers.count : 0;
}

const char *cp2p__noise_remote_muxer(const cp2p__noise *n, size_t i)
{
    return i < cp2p__noise_remote_muxer_count(n) ? n->remote_muxers.names[i] : NULL;
}

const char *cp2p__noise_muxer(const cp2p__noise *n)
{
    return n->state == NOISE_TRANSPORT ? n->muxer : NULL;
}

uint64_t cp2p__noise_deadline(const cp2p__noise *n)
{
    return handshaking(n) ? n->deadline : UINT64_MAX;
}

int cp2p__noise_on_timeout(cp2p__noise *n, uint64_t now)
{
    if (handshaking(n) && now >= n->deadline) {
        return fail(n, CP2P_ETIMEDOUT, "noise handshake timed out");
    }
    return 0;
}

void cp2p__noise_test_set_nonces(cp2p__noise *n, uint64_t send, uint64_t recv)
{
    n->tx.n = send;
    n->rx.n = recv;
}

/* ---- lifecycle ---- */

void cp2p__noise_config_default(cp2p__noise_config *cfg)
{
    *cfg = (cp2p__noise_config){
        .handshake_timeout_ms = CP2P_NOISE_HANDSHAKE_TIMEOUT_MS,
        .max_handshake_msg = CP2P_NOISE_HS_MSG_MAX_DEFAULT,
        .rx_buf_max = CP2P_NOISE_RX_BUF_DEFAULT,
        .tx_buf_max = CP2P_NOISE_TX_BUF_DEFAULT,
    };
}

static bool config_ok(const cp2p__noise_config *cfg)
{
    if (cfg->max_handshake_msg < CP2P__NOISE_XX_MSG2_OVERHEAD ||
        cfg->max_handshake_msg > CP2P_NOISE_MSG_MAX ||
        cfg->rx_buf_max < CP2P_NOISE_PLAINTEXT_MAX ||
        cfg->tx_buf_max < FRAME_HDR + CP2P_NOISE_MSG_MAX || cfg->tx_buf_max == SIZE_MAX ||
        cfg->rx_buf_max == SIZE_MAX || cfg->n_muxers > CP2P_NOISE_MUXERS_MAX ||
        (cfg->n_muxers > 0 && cfg->muxers == NULL) ||
        (cfg->prologue_len > 0 && cfg->prologue == NULL)) {
        return false;
    }
    for (size_t i = 0; i < cfg->n_muxers; i++) {
        const char *m = cfg->muxers[i];
        if (m == NULL) {
            return false;
        }
        size_t len = strnlen(m, CP2P_NOISE_MUXER_NAME_MAX + 1);
        if (!muxer_name_ok((const uint8_t *)m, len)) {
            return false;
        }
    }
    return true;
}

int cp2p__noise_new(const cp2p__noise_config *cfg, bool initiator, const cp2p_privkey *identity,
                    const cp2p_peer_id *expected_remote, uint64_t now, cp2p__noise **out)
{
    cp2p_slice names[CP2P_NOISE_MUXERS_MAX];
    uint8_t s_priv[CP2P__NOISE_DHLEN];
    const char *why;
    cp2p__noise *n = NULL;
    int rc;

    if (cfg == NULL || identity == NULL || out == NULL || !config_ok(cfg)) {
        return CP2P_EINVAL;
    }
    if ((rc = cp2p__crypto_init()) != 0) {
        return rc;
    }
    if ((n = cp2p_calloc(1, sizeof(*n))) == NULL) {
        return CP2P_ENOMEM;
    }
    n->state = initiator ? NOISE_EXPECT_MSG2 : NOISE_EXPECT_MSG1;
    n->initiator = initiator;
    n->conn_id = cfg->conn_id;
    n->deadline = cfg->handshake_timeout_ms > UINT64_MAX - now ? UINT64_MAX
                                                               : now + cfg->handshake_timeout_ms;
    n->max_hs = cfg->max_handshake_msg;
    cp2p_buf_init(&n->in, cfg->rx_buf_max);
    cp2p_buf_init(&n->out, cfg->tx_buf_max);
    if (expected_remote != NULL) {
        n->has_expected = true;
        n->expected = *expected_remote;
    }
    if (cfg->static_key != NULL) {
        memcpy(s_priv, cfg->static_key, sizeof(s_priv));
    } else {
        randombytes_buf(s_priv, sizeof(s_priv));
    }
    rc = cp2p__noise_xx_init(&n->hs, initiator, cfg->prologue, cfg->prologue_len, s_priv,
                             cfg->ephemeral_key);
    sodium_memzero(s_priv, sizeof(s_priv));
    if (rc != 0) {
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_muxers; i++) {
        names[i] = (cp2p_slice){.ptr = (const uint8_t *)cfg->muxers[i],
                                .len = strlen(cfg->muxers[i])};
    }
    if (cfg->n_muxers > 0 && (rc = names_copy(names, cfg->n_muxers, &n->local_muxers)) != 0) {
        goto fail;
    }
    if ((rc = payload_build(n, identity)) != 0) {
        goto fail;
    }
    /* The initiator's message 1 ("-> e") has an empty payload: the spec puts nothing in it. */
    if (initiator && (rc = queue_hs_msg(n, NULL, 0, &why)) != 0) {
        goto fail;
    }
    CP2P_LOG(CP2P_LOG_TRACE, LOG_MODULE, n->conn_id, "noise.new initiator=%d state=%s",
             initiator, state_name(n->state));
    *out = n;
    return 0;
fail:
    cp2p__noise_free(n);
    return rc;
}

void cp2p__noise_trim(cp2p__noise *n)
{
    if (pending(&n->in, n->in_off) == 0) {
        size_t max = n->in.max;
        cp2p_buf_fini_wipe(&n->in); /* decrypted bytes, wiped as on free */
        cp2p_buf_init(&n->in, max);
        n->in_off = 0;
    }
    if (pending(&n->out, n->out_off) == 0) {
        size_t max = n->out.max;
        cp2p_buf_fini(&n->out);
        cp2p_buf_init(&n->out, max);
        n->out_off = 0;
    }
}

void cp2p__noise_free(cp2p__noise *n)
{
    if (n == NULL) {
        return;
    }
    wipe_secrets(n);
    if (n->payload != NULL) {
        sodium_memzero(n->payload, n->payload_len);
    }
    cp2p_free(n->payload);
    cp2p_buf_fini_wipe(&n->in);
    cp2p_buf_fini(&n->out);
    cp2p_free(n->local_muxers.names);
    cp2p_free(n->remote_muxers.names);
    cp2p_pubkey_free(n->remote_key);
    sodium_memzero(n, sizeof(*n));
    cp2p_free(n);
}
