/* The libp2p Noise secure channel (protocol id "/noise"), as a sans-I/O core.
 * Spec: libp2p/specs noise/README.md (r5) and connections/inlined-muxer-negotiation.md.
 *
 * The core is fed the bytes read from the connection with cp2p__noise_recv() and a time in
 * milliseconds (any monotonic origin), and hands back the bytes to send (cp2p__noise_out), the
 * decrypted application bytes (cp2p__noise_read) and its deadline. It never touches a socket or a
 * clock (STYLE.md section 7).
 *
 * Wire: every message is a frame, a 2-byte big-endian length and that many bytes (at most
 * 65535). Three handshake messages, Noise_XX_25519_ChaChaPoly_SHA256 with an empty prologue:
 *   1. initiator -> e                    (empty payload)
 *   2. responder <- e, ee, s, es         payload: NoiseHandshakePayload (proto/noise.proto)
 *   3. initiator -> s, se                payload: NoiseHandshakePayload
 * Each payload carries the sender's identity public key and its signature over
 * "noise-libp2p-static-key:" || the sender's Noise static public key, and optionally the
 * stream muxers for early negotiation. Then transport frames: ChaCha20-Poly1305 ciphertext of at
 * most 65519 plaintext bytes plus the 16-byte tag, empty associated data.
 *
 * Lifecycle: the initiator's first message is queued by cp2p__noise_new(), so the caller should
 * flush cp2p__noise_out() right away. The initiator's handshake is done once message 3 is
 * queued (on the cp2p__noise_recv() that processed message 2), the responder's once message 3
 * has been read. Application data may be written from then on; the initiator's first transport
 * frames follow message 3 in the same output.
 *
 * Rekeying: the libp2p spec defines none (go-, rust- and js-libp2p never call Noise's Rekey()).
 * Each direction may carry 2^64-1 messages (nonces 0 .. 2^64-2; spec: "MUST terminate the
 * connection" before reuse); past that, writing fails with CP2P_ELIMIT and receiving fails the
 * session with CP2P_ELIMIT. At 65519 bytes per frame that is about 2^80 bytes: unreachable in
 * practice, enforced anyway.
 *
 * Threads: one session is used by one thread at a time (the loop thread that owns the
 * connection). Internal to cp2p. */
#ifndef CP2P_CRYPTO_NOISE_H
#define CP2P_CRYPTO_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>
#include <cp2p/keys.h>
#include <cp2p/peer_id.h>

#define CP2P__NOISE_PROTOCOL_ID "/noise"
/* Bytes a transport frame adds to its plaintext: length prefix and tag. */
#define CP2P__NOISE_FRAME_OVERHEAD (2 + 16)

typedef struct cp2p__noise cp2p__noise;

/* Settings of one session. Fill with cp2p__noise_config_default() and change what you need.
 * Every pointer is borrowed for the duration of cp2p__noise_new() only. */
typedef struct cp2p__noise_config {
    /* The whole handshake must end this long after cp2p__noise_new() (default
     * CP2P_NOISE_HANDSHAKE_TIMEOUT_MS). */
    uint64_t handshake_timeout_ms;
    /* Early stream-muxer negotiation (inlined-muxer-negotiation.md): our muxers in preference
     * order, e.g. {"/yamux/1.0.0"}. NULL / 0: we send no list, and no muxer is negotiated in the
     * handshake (the caller runs multistream-select afterwards). At most CP2P_NOISE_MUXERS_MAX
     * names of 1..CP2P_NOISE_MUXER_NAME_MAX bytes. */
    const char *const *muxers;
    size_t n_muxers;
    /* Largest handshake message accepted from the remote, at most CP2P_NOISE_MSG_MAX
     * (default CP2P_NOISE_HS_MSG_MAX_DEFAULT). Checked against the length prefix, before
     * waiting for the body. */
    size_t max_handshake_msg;
    /* Bounds of the decrypted-plaintext buffer (at least CP2P_NOISE_PLAINTEXT_MAX) and of the
     * outgoing buffer (at least 2 + CP2P_NOISE_MSG_MAX). Defaults CP2P_NOISE_RX_BUF_DEFAULT and
     * CP2P_NOISE_TX_BUF_DEFAULT. */
    size_t rx_buf_max;
    size_t tx_buf_max;
    /* Our X25519 static private key (32 bytes) to reuse across sessions; NULL: a fresh one per
     * session (the spec allows both, and forbids storing it on disk). */
    const uint8_t *static_key;
    /* Tests and fuzzing only: a fixed ephemeral private key (32 bytes). NULL in production. */
    const uint8_t *ephemeral_key;
    /* Noise prologue. libp2p uses an empty one; other values are for tests. */
    const uint8_t *prologue;
    size_t prologue_len;
    /* Connection id for log lines. */
    uint64_t conn_id;
} cp2p__noise_config;

void cp2p__noise_config_default(cp2p__noise_config *cfg);

/* Create a session. `identity` (borrowed for the call) signs our static key; `expected_remote`
 * (borrowed, NULL allowed) is the peer we dialled: the handshake fails with CP2P_EPEERID if the
 * remote authenticates as someone else. `now` starts the handshake timer. The initiator's first
 * message is queued for cp2p__noise_out().
 * Returns 0 and *out (free with cp2p__noise_free), or CP2P_EINVAL (NULL argument, a config value
 * out of range, a muxer name empty, too long or too many), CP2P_ENOMEM, or an error from signing
 * with `identity`. */
CP2P_NODISCARD int cp2p__noise_new(const cp2p__noise_config *cfg, bool initiator,
                                   const cp2p_privkey *identity,
                                   const cp2p_peer_id *expected_remote, uint64_t now,
                                   cp2p__noise **out);

/* Free a session, wiping its keys and buffers. NULL is allowed. */
void cp2p__noise_free(cp2p__noise *n);

/* Feed bytes read from the connection. Complete frames are consumed, as many as fit: handshake
 * messages advance the handshake (and may queue our next message for cp2p__noise_out), transport
 * frames are decrypted into the plaintext buffer (cp2p__noise_read).
 * Returns the number of bytes consumed: the caller keeps the rest and passes it again, followed
 * by new bytes (a partial frame leaves no state behind). 0 means no complete frame is available,
 * or the plaintext buffer cannot hold the next frame: drain it with cp2p__noise_read_done and
 * call again. A negative cp2p_err means the session failed; it stays failed (every later call
 * returns the same error) and the connection must be closed:
 *  - CP2P_EPROTO: malformed message, authentication failure (tag, all-zero DH), bad payload
 *    (missing identity key or signature, bad protobuf, no common stream muxer);
 *  - CP2P_EBADSIG: the identity signature over the static key does not verify;
 *  - CP2P_EPEERID: the remote is not `expected_remote`;
 *  - CP2P_ELIMIT: a handshake message above max_handshake_msg, a muxer list past its limits,
 *    or the receive nonce is exhausted;
 *  - CP2P_ENOTSUP: the remote's identity key type is not supported (RSA, ECDSA);
 *  - CP2P_ETIMEDOUT: `now` is at or past the handshake deadline and the handshake is not done;
 *  - CP2P_ENOMEM.
 * *why (why may be NULL) is set to a static string for every error. */
CP2P_NODISCARD ptrdiff_t cp2p__noise_recv(cp2p__noise *n, const uint8_t *in, size_t len,
                                          uint64_t now, const char **why);

/* Borrow the decrypted bytes waiting to be read (contiguous). Returns their number; out->ptr is
 * valid until the next call on the session. */
size_t cp2p__noise_read(cp2p__noise *n, cp2p_slice *out);
/* Mark `len` of those bytes as read (len <= what cp2p__noise_read returned). */
void cp2p__noise_read_done(cp2p__noise *n, size_t len);

/* Encrypt application bytes into transport frames of at most CP2P_NOISE_PLAINTEXT_MAX bytes,
 * queued for cp2p__noise_out(). As much as fits in the outgoing buffer is taken.
 * Returns the number of bytes taken (0..len; fewer than len when the buffer is full: drain it
 * and call again with the rest), or CP2P_ESTATE before the handshake is done, the session's
 * error once it failed, CP2P_ELIMIT when the send nonce is exhausted (the session fails),
 * CP2P_ENOMEM. */
CP2P_NODISCARD ptrdiff_t cp2p__noise_write(cp2p__noise *n, const uint8_t *p, size_t len);
/* The same for a sequence of slices, packed into as few frames as possible (e.g. a muxer's
 * 12-byte header and its data). Returns the number of bytes taken, counted across the slices. */
CP2P_NODISCARD ptrdiff_t cp2p__noise_writev(cp2p__noise *n, const cp2p_slice *iov,
                                           size_t cnt);
/* How many plaintext bytes cp2p__noise_write() would take now (0 before the handshake is
 * done). */
size_t cp2p__noise_write_space(const cp2p__noise *n);

/* Borrow the bytes waiting to be sent (contiguous). Returns their number; out->ptr is valid
 * until the next call on the session. */
size_t cp2p__noise_out(cp2p__noise *n, cp2p_slice *out);
/* Mark `len` of those bytes as sent. */
void cp2p__noise_out_done(cp2p__noise *n, size_t len);
/* Hand over the buffer holding the bytes waiting to be sent, instead of copying them out:
 * *ptr (release with cp2p_free) holds *len bytes, which count as sent. Returns false, and
 * hands over nothing, when no bytes wait or part of them was already marked sent (use
 * cp2p__noise_out then). The next write allocates a buffer for what it encrypts. */
bool cp2p__noise_out_take(cp2p__noise *n, uint8_t **ptr, size_t *len);
/* Give back a buffer that cp2p__noise_out_take() handed over, with the length it had, once the
 * transport wrote it: the next write encrypts into it instead of allocating, if the output
 * holds no buffer; else it is freed. A busy connection thus reuses one buffer instead of
 * a malloc and free per batch (which made glibc trim and regrow the top of the heap, two brk
 * calls per batch, when nothing else held the memory). cp2p__noise_trim() frees it. */
void cp2p__noise_out_give(cp2p__noise *n, uint8_t *ptr, size_t len);

/* Give back the receive and send buffers while they hold nothing: they grow to the largest
 * burst (a 64 KiB frame makes each 128 KiB) and would otherwise keep that memory for the life
 * of the session. The next message allocates again. The binding calls it on idle ticks. */
void cp2p__noise_trim(cp2p__noise *n);

/* True once the handshake has completed (and the session has not failed since). */
bool cp2p__noise_handshake_done(const cp2p__noise *n);
/* 0 while the session is healthy, else its terminal error (with *why set if why != NULL). */
int cp2p__noise_error(const cp2p__noise *n, const char **why);

/* The authenticated remote, once the handshake is done (NULL before). Borrowed from the
 * session. */
const cp2p_peer_id *cp2p__noise_remote_peer_id(const cp2p__noise *n);
const cp2p_pubkey *cp2p__noise_remote_pubkey(const cp2p__noise *n);
/* The remote's Noise static public key (32 bytes), once the handshake is done (NULL before). */
const uint8_t *cp2p__noise_remote_static(const cp2p__noise *n);

/* Early muxer negotiation results, once the handshake is done. The remote's list in its order
 * (count 0 when it sent none), and the agreed muxer: the first of the initiator's muxers that
 * the responder also listed, or NULL when either side sent no list (negotiate with
 * multistream-select). Both lists non-empty without a common muxer fails the handshake
 * (CP2P_EPROTO), as the spec requires. Strings are NUL-terminated and borrowed. */
size_t cp2p__noise_remote_muxer_count(const cp2p__noise *n);
const char *cp2p__noise_remote_muxer(const cp2p__noise *n, size_t i);
const char *cp2p__noise_muxer(const cp2p__noise *n);

/* The handshake deadline while the handshake runs, UINT64_MAX once it is done or failed. */
uint64_t cp2p__noise_deadline(const cp2p__noise *n);
/* Handle the deadline: when `now` >= the deadline and the handshake is not done, the session
 * fails and CP2P_ETIMEDOUT is returned; otherwise 0 (also after a failure for another reason,
 * which the caller already saw). */
CP2P_NODISCARD int cp2p__noise_on_timeout(cp2p__noise *n, uint64_t now);

/* Tests only: set the next send and receive nonces of an established session, to exercise nonce
 * exhaustion without 2^64 messages. */
void cp2p__noise_test_set_nonces(cp2p__noise *n, uint64_t send, uint64_t recv);

#endif
