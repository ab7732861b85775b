/* cp2p: multiaddr (multiformats/multiaddr), binary and text forms.
 *
 * A cp2p_multiaddr is an opaque, immutable, validated address holding the binary form. Once
 * created it never changes, so several threads may read the same one at once; creating and
 * freeing follow the usual rule (one owner). Every function may be called from any thread.
 *
 * Text form (compatible with @multiformats/multiaddr v13, the js implementation):
 * - "/<name>[/<value>]..." with the names and value formats of the protocol table below;
 *   "/" alone is the empty multiaddr; trailing slashes are ignored ("/tcp/1/" == "/tcp/1");
 *   an empty segment elsewhere ("//ip4/...", "/ip4//1.2.3.4") is an error.
 * - ip6 is printed as the WHATWG URL serializer (and so js) prints it: lower-case hex, no
 *   leading zeros, the first longest run of two or more zero groups compressed to "::", no
 *   dotted IPv4 tail ("::ffff:1.2.3.4" prints as "::ffff:102:304"). Parsing accepts what the
 *   WHATWG IPv6 parser accepts (a dotted IPv4 tail included) except that zone suffixes and
 *   control characters are refused.
 * - ip4 is strict dotted decimal (no leading zeros); ports are decimal 0..65535 without sign
 *   or leading zeros.
 * - unix: the value is one percent-encoded segment (encodeURIComponent / decodeURIComponent),
 *   e.g. "/unix/%2Ftmp%2Fp2p.sock" is the path "/tmp/p2p.sock".
 * - p2p (alias "ipfs" on input): printed as base58btc; accepted as base58btc ("Qm...",
 *   "1...") or as a CIDv1 with the libp2p-key codec in any supported multibase.
 * - certhash: printed as base64url multibase ('u'); accepted in any supported multibase.
 * The binary form is printed from the bytes, so the text of a multiaddr is always the text
 * that js prints for the same bytes (js keeps some input text verbatim, e.g. a CID-form p2p
 * value; cp2p canonicalises it).
 */
#ifndef CP2P_MULTIADDR_H
#define CP2P_MULTIADDR_H

#include <stdbool.h>
#include <cp2p/buf.h>
#include <cp2p/peer_id.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol codes (multiformats/multiaddr protocols.csv). All of these are supported. */
#define CP2P_MA_IP4 4
#define CP2P_MA_TCP 6
#define CP2P_MA_DCCP 33
#define CP2P_MA_IP6 41
#define CP2P_MA_IP6ZONE 42
#define CP2P_MA_IPCIDR 43
#define CP2P_MA_DNS 53
#define CP2P_MA_DNS4 54
#define CP2P_MA_DNS6 55
#define CP2P_MA_DNSADDR 56
#define CP2P_MA_SCTP 132
#define CP2P_MA_UDP 273
#define CP2P_MA_P2P_WEBRTC_STAR 275
#define CP2P_MA_P2P_WEBRTC_DIRECT 276
#define CP2P_MA_P2P_STARDUST 277
#define CP2P_MA_WEBRTC_DIRECT 280
#define CP2P_MA_WEBRTC 281
#define CP2P_MA_P2P_CIRCUIT 290
#define CP2P_MA_UDT 301
#define CP2P_MA_UTP 302
#define CP2P_MA_UNIX 400
#define CP2P_MA_P2P 421
#define CP2P_MA_HTTPS 443
#define CP2P_MA_ONION 444
#define CP2P_MA_ONION3 445
#define CP2P_MA_TLS 448
#define CP2P_MA_SNI 449
#define CP2P_MA_NOISE 454
#define CP2P_MA_QUIC 460
#define CP2P_MA_QUIC_V1 461
#define CP2P_MA_WEBTRANSPORT 465
#define CP2P_MA_CERTHASH 466
#define CP2P_MA_WS 477
#define CP2P_MA_WSS 478
#define CP2P_MA_P2P_WEBSOCKET_STAR 479
#define CP2P_MA_HTTP 480
#define CP2P_MA_MEMORY 777 /* /memory/NAME: cp2p's in-memory transport (cp2p/memnet.h) */

/* Room for the text of any valid multiaddr plus its NUL: a cp2p_buf with this max never fails
 * with CP2P_ELIMIT in cp2p_multiaddr_to_string(). It is also the longest text accepted by
 * cp2p_multiaddr_parse() (including room for a NUL, so at most CP2P_MULTIADDR_STR_MAX - 1). */
#define CP2P_MULTIADDR_STR_MAX 4096

typedef struct cp2p_multiaddr cp2p_multiaddr;

/* One component, borrowed from its multiaddr: valid while the multiaddr lives.
 * `name` is static ("ip4"); `value` is the binary value (len 0 for protocols without one). */
typedef struct cp2p_multiaddr_component {
    uint64_t code;
    const char *name;
    cp2p_slice value;
} cp2p_multiaddr_component;

/* Parse the text form s[0..len) (need not be NUL-terminated). On success *out is a new
 * multiaddr owned by the caller (free with cp2p_multiaddr_free). Returns 0, CP2P_EINVAL for
 * any malformed text (no leading '/', unknown protocol, missing or invalid value, empty
 * segment, invalid UTF-8, over the length or component limits) with *out untouched, or
 * CP2P_ENOMEM. Never returns a partial result. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_parse(const char *s, size_t len,
                                                cp2p_multiaddr **out);
/* Validate and copy the binary form in[0..len) (in stays the caller's). Every component must
 * have a known code, a value of the right length and a valid value (ip4: 4 bytes; tcp: 2; p2p:
 * a valid peer ID; dns*, sni, ip6zone: non-empty UTF-8 without '/' or NUL; unix: non-empty
 * UTF-8 without NUL; certhash: one multihash; ...). The empty byte string is refused: an
 * address on the wire is never empty. Returns 0 with *out owned by the caller, CP2P_EPROTO for
 * any invalid input (including over 1024 bytes or 32 components, CP2P_MULTIADDR_MAX_BYTES
 * and CP2P_MULTIADDR_MAX_COMPONENTS in src/util/limits.h)
 * with *out untouched, or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_from_bytes(const uint8_t *in, size_t len,
                                                     cp2p_multiaddr **out);
/* Free a multiaddr. NULL is ignored. */
CP2P_API void cp2p_multiaddr_free(cp2p_multiaddr *ma);
/* Copy. Returns 0 with *out owned by the caller, or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_dup(const cp2p_multiaddr *ma, cp2p_multiaddr **out);
/* The binary form, borrowed from ma (len 0 for the empty multiaddr). */
CP2P_API cp2p_slice cp2p_multiaddr_bytes(const cp2p_multiaddr *ma);
/* Append the text form to out ("/" for the empty multiaddr). At most
 * CP2P_MULTIADDR_STR_MAX - 1 bytes are appended. Returns 0, or CP2P_ELIMIT/CP2P_ENOMEM from
 * the buffer with out unchanged. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_to_string(const cp2p_multiaddr *ma, cp2p_buf *out);
/* True when both have the same binary form. */
CP2P_API bool cp2p_multiaddr_equal(const cp2p_multiaddr *a, const cp2p_multiaddr *b);

/* New multiaddr a + b (both stay the caller's). Returns 0 with *out owned by the caller,
 * CP2P_ELIMIT if the result would pass the byte or component limits, or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_encapsulate(const cp2p_multiaddr *a,
                                                      const cp2p_multiaddr *b,
                                                      cp2p_multiaddr **out);
/* New multiaddr: a without the LAST occurrence of b's run of components and everything after
 * it. If b does not occur in a (or b is empty), the result is an unchanged copy of a, as
 * go-multiaddr does; if b is a prefix of a, the result is the empty multiaddr. Components
 * are compared whole, so "/tcp/8" does not match inside "/tcp/80". Returns 0 with *out owned
 * by the caller, or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_decapsulate(const cp2p_multiaddr *a,
                                                      const cp2p_multiaddr *b,
                                                      cp2p_multiaddr **out);
/* New multiaddr: a without its last component whose code is `code` and everything after it;
 * an unchanged copy if there is none. Returns 0 with *out owned by the caller, or
 * CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_decapsulate_code(const cp2p_multiaddr *a,
                                                           uint64_t code,
                                                           cp2p_multiaddr **out);

/* Number of components (0 for the empty multiaddr). */
CP2P_API size_t cp2p_multiaddr_count(const cp2p_multiaddr *ma);
/* Component i (0-based). Returns 0 with *out borrowing from ma, or CP2P_ENOENT if
 * i >= cp2p_multiaddr_count(ma). */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_component_at(const cp2p_multiaddr *ma, size_t i,
                                                       cp2p_multiaddr_component *out);
/* Append the text of c's value as it appears in the text form (e.g. "1.2.3.4", "4001",
 * "%2Ftmp%2Fx.sock"; nothing for a protocol without a value). Returns 0, CP2P_EINVAL if c
 * does not hold a known code with a valid value, or CP2P_ELIMIT/CP2P_ENOMEM from the buffer
 * (out unchanged on any error). */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_component_value_string(
    const cp2p_multiaddr_component *c, cp2p_buf *out);
/* The peer ID of the last /p2p/ component. Returns 0 with *out set, or CP2P_ENOENT if there is
 * no /p2p/ component. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_peer_id(const cp2p_multiaddr *ma, cp2p_peer_id *out);

/* The text name of a supported protocol code ("ip4"), or NULL if the code is not supported. */
CP2P_API const char *cp2p_multiaddr_protocol_name(uint64_t code);
/* The code of the protocol named name[0..len) (the alias "ipfs" gives 421). Returns 0 with
 * *code set, or CP2P_ENOENT if the name is not supported. */
CP2P_API CP2P_NODISCARD int cp2p_multiaddr_protocol_code(const char *name, size_t len,
                                                        uint64_t *code);

#ifdef __cplusplus
}
#endif
#endif
