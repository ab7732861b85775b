/* The generic Noise XX handshake: CipherState, SymmetricState and HandshakeState of the Noise
 * Protocol Framework, revision 34 (https://noiseprotocol.org/noise.html, sections 5.1-5.3),
 * for the one protocol libp2p uses, Noise_XX_25519_ChaChaPoly_SHA256:
 *
 *   XX:
 *     -> e
 *     <- e, ee, s, es
 *     -> s, se
 *
 * Nothing here knows about libp2p, framing or sockets: messages are whole byte strings, and the
 * caller chooses the prologue, the static key, optionally the ephemeral key (test vectors) and
 * the payloads. The libp2p core (noise.c) builds on it. Internal; plain values, no allocation.
 * One object is used by one thread at a time.
 *
 * Errors: CP2P_EINVAL (our misuse: wrong order, output too small, bad key), CP2P_EPROTO (the
 * remote's message is malformed or fails authentication; *why is set), CP2P_ELIMIT (the nonce
 * counter is exhausted, spec section 5.1: no message may use nonce 2^64-1). */
#ifndef CP2P_CRYPTO_NOISE_HS_H
#define CP2P_CRYPTO_NOISE_HS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>

#define CP2P__NOISE_DHLEN 32   /* X25519 public key and shared secret (spec 12.1) */
#define CP2P__NOISE_HASHLEN 32 /* SHA-256 (spec 12.5) */
#define CP2P__NOISE_KEYLEN 32  /* ChaChaPoly key (spec 12.3) */
#define CP2P__NOISE_TAGLEN 16  /* Poly1305 tag */

/* The protocol name the handshake hash starts from (libp2p noise spec, "Noise Protocol Name"). */
#define CP2P__NOISE_PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_SHA256"

/* Encoded sizes of the three XX messages around a payload of `p` bytes. */
#define CP2P__NOISE_XX_MSG1_OVERHEAD CP2P__NOISE_DHLEN
#define CP2P__NOISE_XX_MSG2_OVERHEAD                                                            \
    (CP2P__NOISE_DHLEN + CP2P__NOISE_DHLEN + CP2P__NOISE_TAGLEN + CP2P__NOISE_TAGLEN)
#define CP2P__NOISE_XX_MSG3_OVERHEAD (CP2P__NOISE_DHLEN + CP2P__NOISE_TAGLEN + CP2P__NOISE_TAGLEN)

/* CipherState (spec 5.1). A transport direction after Split(). */
typedef struct cp2p__noise_cipher {
    uint8_t k[CP2P__NOISE_KEYLEN];
    uint64_t n;   /* next nonce; UINT64_MAX is never used (spec 5.1) */
    bool has_key; /* false: EncryptWithAd/DecryptWithAd pass bytes through (handshake only) */
} cp2p__noise_cipher;

/* SymmetricState (spec 5.2). */
typedef struct cp2p__noise_symmetric {
    cp2p__noise_cipher cs;
    uint8_t ck[CP2P__NOISE_HASHLEN];
    uint8_t h[CP2P__NOISE_HASHLEN];
} cp2p__noise_symmetric;

/* HandshakeState (spec 5.3), specialised to XX. */
typedef struct cp2p__noise_xx {
    cp2p__noise_symmetric ss;
    uint8_t s_priv[CP2P__NOISE_DHLEN], s_pub[CP2P__NOISE_DHLEN];
    uint8_t e_priv[CP2P__NOISE_DHLEN], e_pub[CP2P__NOISE_DHLEN];
    uint8_t rs[CP2P__NOISE_DHLEN], re[CP2P__NOISE_DHLEN];
    bool has_e;     /* the ephemeral was injected (test vectors) or already generated */
    bool initiator;
    uint8_t next;   /* index of the next message, 0..2; 3 once the handshake is complete */
} cp2p__noise_xx;

/* ---- CipherState, used directly for transport messages ---- */

/* Encrypt `len` bytes from `in` into `out` (out == in allowed, or disjoint) with associated data
 * `ad`, writing the 16-byte tag to `tag` (e.g. out + len), then increment the nonce.
 * Returns 0, or CP2P_ELIMIT when the nonce is exhausted (nothing written). With no key the bytes
 * are copied and no tag is written (handshake use only). */
CP2P_NODISCARD int cp2p__noise_cipher_encrypt(cp2p__noise_cipher *c, const uint8_t *ad,
                                              size_t adlen, const uint8_t *in, size_t len,
                                              uint8_t *out, uint8_t *tag);

/* Decrypt a ciphertext of `len` bytes followed by its 16-byte tag at `in + len` into `out`
 * (out == in allowed, or disjoint), then increment the nonce. Returns 0, CP2P_EPROTO when the
 * tag does not verify (out is wiped, the nonce is unchanged), or CP2P_ELIMIT when the nonce is
 * exhausted. With no key the bytes are copied and no tag is read. */
CP2P_NODISCARD int cp2p__noise_cipher_decrypt(cp2p__noise_cipher *c, const uint8_t *ad,
                                              size_t adlen, const uint8_t *in, size_t len,
                                              uint8_t *out);

/* Wipe the key. */
void cp2p__noise_cipher_wipe(cp2p__noise_cipher *c);

/* ---- HandshakeState ---- */

/* Initialize(): protocol name Noise_XX_25519_ChaChaPoly_SHA256, the prologue (borrowed for the
 * call, may be NULL when plen is 0), our static private key `s_priv` (32 bytes, required: XX
 * sends it) and optionally an ephemeral private key `e_priv` (NULL: a fresh one from libsodium's
 * CSPRNG when the first message that needs it is written; a fixed one is for test vectors only).
 * Returns 0, CP2P_EINVAL for a NULL key, or CP2P_EIO if libsodium failed to initialise. */
CP2P_NODISCARD int cp2p__noise_xx_init(cp2p__noise_xx *hs, bool initiator,
                                       const uint8_t *prologue, size_t plen,
                                       const uint8_t s_priv[CP2P__NOISE_DHLEN],
                                       const uint8_t e_priv[CP2P__NOISE_DHLEN]);

/* The size WriteMessage() produces for the next message with a payload of `plen` bytes, or 0
 * when no message is ours to write. */
size_t cp2p__noise_xx_write_size(const cp2p__noise_xx *hs, size_t plen);

/* The smallest size of the next message we read (its payload empty), or 0 when no message is
 * ours to read. */
size_t cp2p__noise_xx_read_min(const cp2p__noise_xx *hs);

/* WriteMessage(): write the next message, carrying `payload` (plen bytes, may be NULL when 0),
 * into `out` (cap bytes, disjoint from payload); *outlen is its size.
 * Returns 0; CP2P_EINVAL when it is not our turn or cap is too small; CP2P_EPROTO when a DH
 * gives the all-zero output (the remote sent a low-order key; *why set). */
CP2P_NODISCARD int cp2p__noise_xx_write(cp2p__noise_xx *hs, const uint8_t *payload,
                                        size_t plen, uint8_t *out, size_t cap, size_t *outlen,
                                        const char **why);

/* ReadMessage(): process the remote's next message `msg` (len bytes) and decrypt its payload into
 * `payload` (cap bytes, must not overlap msg; len bytes always suffice); *plen is the payload
 * size. On error the state must not be used again (the caller fails the
 * session), as the spec requires.
 * Returns 0; CP2P_EPROTO for a short message, a tag that does not verify or an all-zero DH
 * (*why set); CP2P_EINVAL when it is not our turn or cap is too small. */
CP2P_NODISCARD int cp2p__noise_xx_read(cp2p__noise_xx *hs, const uint8_t *msg, size_t len,
                                       uint8_t *payload, size_t cap, size_t *plen,
                                       const char **why);

/* True after the third message was written or read. */
bool cp2p__noise_xx_done(const cp2p__noise_xx *hs);

/* Split() (spec 5.2): the initiator-to-responder CipherState `c1` and the responder-to-initiator
 * `c2`. Only after the handshake is done (CP2P_EINVAL otherwise). */
CP2P_NODISCARD int cp2p__noise_xx_split(const cp2p__noise_xx *hs, cp2p__noise_cipher *c1,
                                        cp2p__noise_cipher *c2);

/* Our static public key (valid after init), and the remote's (valid once received). */
const uint8_t *cp2p__noise_xx_static_pub(const cp2p__noise_xx *hs);
const uint8_t *cp2p__noise_xx_remote_static(const cp2p__noise_xx *hs);

/* The handshake hash h (spec 5.2: GetHandshakeHash), for channel binding and test vectors. */
const uint8_t *cp2p__noise_xx_hash(const cp2p__noise_xx *hs);

/* Wipe every key in the state. */
void cp2p__noise_xx_wipe(cp2p__noise_xx *hs);

#endif
