/* Every named limit of cp2p, with where its value comes from (STYLE.md section 1).
 * Layers append their own section; nothing else defines a numeric limit. */
#ifndef CP2P_UTIL_LIMITS_H
#define CP2P_UTIL_LIMITS_H

/* ---- util ---- */
/* Base58 is quadratic; the longest base58 text we need is a CIDv0/peer ID (~50 chars).
 * Our choice: 256 bytes of binary (about 350 characters) is far above any real use. */
#define CP2P_BASE58_MAX_BYTES 256
/* Log lines are formatted into a stack buffer of this size and truncated past it (our choice). */
#define CP2P_LOG_LINE_MAX 1024
/* Per-module log level overrides (our choice). */
#define CP2P_LOG_MODULE_OVERRIDES 16

/* ---- crypto (keys) ---- */
/* Largest protobuf PublicKey/PrivateKey we parse. Our choice: the largest real keys are RSA;
 * a 4096-bit RSA PrivateKey (PKCS#1) encodes to about 2,350 bytes (the spec's test vector) and
 * an 8192-bit RSA PublicKey (go-libp2p's MaxRsaKeyBits) to about 1,070 bytes. */
#define CP2P_KEY_PB_MAX 4096
/* Largest key file cp2p_privkey_load() reads: one PrivateKey message (our choice). */
#define CP2P_KEY_FILE_MAX CP2P_KEY_PB_MAX

/* ---- negotiate (multistream-select 1.0) ---- */
/* Largest message (length prefix value, newline included). go-multistream and js-libp2p both
 * refuse messages over 1024 bytes; protocol IDs are short paths. */
#define CP2P_MSS_MAX_MSG 1024
/* Proposals a listener answers with "na" before giving up on the stream (our choice: a dialer
 * with more than a handful of alternatives is probing, not negotiating). */
#define CP2P_MSS_MAX_PROPOSALS 16
/* Protocols a dialer may offer in one negotiation (our choice, same bound). */
#define CP2P_MSS_MAX_OFFER 16

/* ---- multiformats ---- */
/* Largest binary multiaddr accepted. Our choice: the multiaddr spec sets no limit; real
 * addresses are under 200 bytes (a circuit address with two peer IDs is about 120), and 1024
 * leaves room for webtransport certhashes and unix paths while bounding every copy. */
#define CP2P_MULTIADDR_MAX_BYTES 1024
/* Most components in one multiaddr. Our choice: a relayed webtransport address has about ten. */
#define CP2P_MULTIADDR_MAX_COMPONENTS 32
/* Base36 (multibase 'k') is quadratic like base58: same bound, for the same reason. */
#define CP2P_BASE36_MAX_BYTES CP2P_BASE58_MAX_BYTES

/* ---- crypto (noise) ---- */
/* Largest Noise message, the body of one frame: the 2-byte big-endian length prefix cannot say
 * more (libp2p noise spec, "Wire Format"; Noise spec section 3: 65535 bytes). */
#define CP2P_NOISE_MSG_MAX 65535
/* Largest plaintext in one transport frame: the message minus the 16-byte Poly1305 tag (as
 * js-libp2p-noise's NOISE_MSG_MAX_LENGTH_BYTES_WITHOUT_TAG). */
#define CP2P_NOISE_PLAINTEXT_MAX (CP2P_NOISE_MSG_MAX - 16)
/* Default limit on a handshake message (pre-authentication, STYLE.md 6.8). Our choice: real
 * messages carry one identity key, one signature and a few extension strings, a few hundred
 * bytes for Ed25519/secp256k1 (under 2 KiB even for RSA-4096 identities). Configurable up to
 * CP2P_NOISE_MSG_MAX. */
#define CP2P_NOISE_HS_MSG_MAX_DEFAULT 8192
/* Default time for the whole handshake, from the core's creation (our choice; js-libp2p allows
 * 10 s for a whole inbound upgrade, INBOUND_UPGRADE_TIMEOUT). */
#define CP2P_NOISE_HANDSHAKE_TIMEOUT_MS 10000
/* Stream muxers we accept in the remote's early-negotiation list, and the longest name (our
 * choice: real peers list one to three names of about 15 bytes; multistream-select protocol IDs
 * are short too). */
#define CP2P_NOISE_MUXERS_MAX 16
#define CP2P_NOISE_MUXER_NAME_MAX 256
/* Default bounds of the decrypted-plaintext buffer and of the outgoing-ciphertext buffer of one
 * session (our choice: four full frames each, 256 KiB; the minimum is one full frame, enforced
 * by cp2p__noise_new: CP2P_NOISE_PLAINTEXT_MAX in, 2 + CP2P_NOISE_MSG_MAX out). */
#define CP2P_NOISE_RX_BUF_DEFAULT (256 * 1024)
#define CP2P_NOISE_TX_BUF_DEFAULT (256 * 1024)

#endif
