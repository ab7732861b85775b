/* Multiaddr (multiformats/multiaddr): binary <code varint>[<length varint>]<value>... and the
 * text form "/name/value/...", compatible with @multiformats/multiaddr v13 (the public header
 * has the text rules). Where js is laxer we refuse, on purpose: an empty segment anywhere but
 * the end (js collapses the first "//" only), a p2p value that is not a valid peer ID (js takes
 * any base58 bytes), a p2p CID without the libp2p-key codec (as go does), ipcidr with a leading
 * zero or above 255 (js writes two bytes), NUL in text values, invalid UTF-8 anywhere (js
 * cannot even represent it), IPv6 text with tabs or newlines (the URL parser drops them), an
 * empty certhash or one that is not a multihash, and an empty binary multiaddr.
 *
 * A cp2p_multiaddr holds only validated bytes, so every accessor can decode without checks
 * failing; each parse builds the binary form and validates it again before it is kept. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include <cp2p/multiaddr.h>
#include <cp2p/multiformats.h>

#include "util/text.h"
#include "util/utf8.h"
#include "util/bytes.h"
#include "util/limits.h"

static_assert(CP2P_MULTIADDR_MAX_BYTES <= UINT16_MAX, "offsets are stored as uint16_t");

/* How a protocol's value is written and checked. */
typedef enum value_kind {
    VK_NONE,     /* no value */
    VK_IP4,      /* 4 bytes, dotted decimal */
    VK_IP6,      /* 16 bytes, RFC 5952-like text as the WHATWG URL serializer prints it */
    VK_PORT,     /* 2 bytes big-endian, decimal */
    VK_CIDR,     /* 1 byte, decimal */
    VK_TEXT,     /* UTF-8 text: dns, dns4, dns6, dnsaddr, sni, ip6zone, memory */
    VK_UNIX,     /* UTF-8 path, percent-encoded in text */
    VK_P2P,      /* a peer ID multihash, base58btc in text */
    VK_CERTHASH, /* a multihash, multibase (base64url on output) in text */
    VK_ONION,    /* 10-byte address + port, "<16 base32>:<port>" */
    VK_ONION3,   /* 35-byte address + port, "<56 base32>:<port>" */
} value_kind;

#define VAR (-1) /* value is length-prefixed */

typedef struct proto {
    uint16_t code;
    int16_t size; /* value bytes: 0 none, > 0 fixed, VAR length-prefixed */
    value_kind kind;
    const char *name;
} proto;

/* multiformats/multiaddr protocols.csv, restricted to the protocols whose binary and text forms
 * the js and go implementations agree on (garlic32/64 and http-path are left out: the two
 * implementations encode them differently). `memory` (777) is the exception: go encodes it as
 * a fixed 8-byte integer, js (@multiformats/multiaddr, and @libp2p/memory's `/memory/NAME`
 * addresses) as a length-prefixed UTF-8 name without a converter, like dns. cp2p's memory
 * transport follows js, its interop peer. */
static const proto PROTOS[] = {
    {CP2P_MA_IP4, 4, VK_IP4, "ip4"},
    {CP2P_MA_TCP, 2, VK_PORT, "tcp"},
    {CP2P_MA_UDP, 2, VK_PORT, "udp"},
    {CP2P_MA_DCCP, 2, VK_PORT, "dccp"},
    {CP2P_MA_IP6, 16, VK_IP6, "ip6"},
    {CP2P_MA_IP6ZONE, VAR, VK_TEXT, "ip6zone"},
    {CP2P_MA_IPCIDR, 1, VK_CIDR, "ipcidr"},
    {CP2P_MA_DNS, VAR, VK_TEXT, "dns"},
    {CP2P_MA_DNS4, VAR, VK_TEXT, "dns4"},
    {CP2P_MA_DNS6, VAR, VK_TEXT, "dns6"},
    {CP2P_MA_DNSADDR, VAR, VK_TEXT, "dnsaddr"},
    {CP2P_MA_SCTP, 2, VK_PORT, "sctp"},
    {CP2P_MA_UDT, 0, VK_NONE, "udt"},
    {CP2P_MA_UTP, 0, VK_NONE, "utp"},
    {CP2P_MA_UNIX, VAR, VK_UNIX, "unix"},
    {CP2P_MA_P2P, VAR, VK_P2P, "p2p"},
    {CP2P_MA_ONION, 12, VK_ONION, "onion"},
    {CP2P_MA_ONION3, 37, VK_ONION3, "onion3"},
    {CP2P_MA_TLS, 0, VK_NONE, "tls"},
    {CP2P_MA_SNI, VAR, VK_TEXT, "sni"},
    {CP2P_MA_NOISE, 0, VK_NONE, "noise"},
    {CP2P_MA_QUIC, 0, VK_NONE, "quic"},
    {CP2P_MA_QUIC_V1, 0, VK_NONE, "quic-v1"},
    {CP2P_MA_WEBTRANSPORT, 0, VK_NONE, "webtransport"},
    {CP2P_MA_CERTHASH, VAR, VK_CERTHASH, "certhash"},
    {CP2P_MA_HTTP, 0, VK_NONE, "http"},
    {CP2P_MA_HTTPS, 0, VK_NONE, "https"},
    {CP2P_MA_WS, 0, VK_NONE, "ws"},
    {CP2P_MA_WSS, 0, VK_NONE, "wss"},
    {CP2P_MA_P2P_WEBSOCKET_STAR, 0, VK_NONE, "p2p-websocket-star"},
    {CP2P_MA_P2P_STARDUST, 0, VK_NONE, "p2p-stardust"},
    {CP2P_MA_P2P_WEBRTC_STAR, 0, VK_NONE, "p2p-webrtc-star"},
    {CP2P_MA_P2P_WEBRTC_DIRECT, 0, VK_NONE, "p2p-webrtc-direct"},
    {CP2P_MA_WEBRTC_DIRECT, 0, VK_NONE, "webrtc-direct"},
    {CP2P_MA_WEBRTC, 0, VK_NONE, "webrtc"},
    {CP2P_MA_P2P_CIRCUIT, 0, VK_NONE, "p2p-circuit"},
    {CP2P_MA_MEMORY, VAR, VK_TEXT, "memory"},
};
#define NPROTOS (sizeof(PROTOS) / sizeof(PROTOS[0]))

/* Longest protocol name ("p2p-websocket-star"), used in the text-length bound below. */
#define NAME_MAX_LEN 18
/* Each value's text is at most 3 characters per value byte plus 8 (the worst cases are unix,
 * fully percent-encoded, and ip4: 15 characters for 4 bytes). With the separators and the
 * longest name, the text of any valid multiaddr fits CP2P_MULTIADDR_STR_MAX with its NUL. */
static_assert(CP2P_MULTIADDR_MAX_COMPONENTS * (2 + NAME_MAX_LEN + 8) +
                      3 * CP2P_MULTIADDR_MAX_BYTES + 1 <=
                  CP2P_MULTIADDR_STR_MAX,
              "CP2P_MULTIADDR_STR_MAX must hold the text of any valid multiaddr");

struct cp2p_multiaddr {
    size_t len;                                         /* bytes[0..len) */
    size_t n;                                           /* components */
    uint16_t off[CP2P_MULTIADDR_MAX_COMPONENTS + 1];    /* component starts; off[n] == len */
    uint8_t bytes[];
};

static const proto *proto_by_code(uint64_t code)
{
    for (size_t i = 0; i < NPROTOS; i++) {
        if (PROTOS[i].code == code) {
            return &PROTOS[i];
        }
    }
    return NULL;
}

static const proto *proto_by_name(const char *name, size_t len)
{
    /* "ipfs" is the legacy name of p2p (protocols.csv); it is never printed. */
    if (len == 4 && memcmp(name, "ipfs", 4) == 0) {
        return proto_by_code(CP2P_MA_P2P);
    }
    for (size_t i = 0; i < NPROTOS; i++) {
        if (strlen(PROTOS[i].name) == len && memcmp(PROTOS[i].name, name, len) == 0) {
            return &PROTOS[i];
        }
    }
    return NULL;
}

/* ---- small text helpers ----------------------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Canonical decimal (no sign, no leading zero unless "0"), value <= max. js validates ports the
 * same way: parseInt(v).toString() === v, then 0 <= v <= 65535. */
static int parse_decimal(const char *s, size_t len, unsigned max, unsigned *out)
{
    unsigned v = 0;
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0')) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Strict dotted decimal as @chainsafe/is-ip (used by js) accepts it: four parts of one to
 * three digits, no leading zeros, each at most 255. */
static int parse_ip4(const char *s, size_t len, uint8_t out[4])
{
    size_t p = 0;
    for (int i = 0; i < 4; i++) {
        if (i > 0) {
            if (p >= len || s[p] != '.') {
                return -1;
            }
            p++;
        }
        size_t start = p;
        unsigned v = 0;
        while (p < len && p - start < 3 && is_digit(s[p])) {
            v = v * 10 + (unsigned)(s[p] - '0');
            p++;
        }
        size_t digits = p - start;
        if (digits == 0 || (digits > 1 && s[start] == '0') || v > 255) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return p == len ? 0 : -1;
}

/* The WHATWG URL Standard's IPv6 parser (section 3.5, "IPv6 parser"), which js runs through
 * `new URL()`: hex pieces of up to four digits, one "::", and an optional dotted IPv4 tail
 * (strict: no leading zeros) in the last two pieces. Zone suffixes ("%eth0") are refused. */
static int parse_ip6(const char *s, size_t len, uint8_t out[16])
{
    unsigned a[8] = {0};
    size_t piece = 0, p = 0, compress = 0;
    bool compressed = false;

    if (p < len && s[p] == ':') {
        if (len - p < 2 || s[p + 1] != ':') {
            return -1;
        }
        p += 2;
        piece++;
        compress = piece;
        compressed = true;
    }
    while (p < len) {
        if (piece == 8) {
            return -1;
        }
        if (s[p] == ':') {
            if (compressed) {
                return -1;
            }
            p++;
            piece++;
            compress = piece;
            compressed = true;
            continue;
        }
        unsigned value = 0;
        size_t length = 0;
        while (length < 4 && p < len && cp2p__hex_digit(s[p]) >= 0) {
            value = value * 16 + (unsigned)cp2p__hex_digit(s[p]);
            p++;
            length++;
        }
        if (p < len && s[p] == '.') {
            if (length == 0 || piece > 6) {
                return -1;
            }
            p -= length;
            int seen = 0;
            while (p < len) {
                int v4 = -1;
                if (seen > 0) {
                    if (s[p] != '.' || seen >= 4) {
                        return -1;
                    }
                    p++;
                }
                if (p >= len || !is_digit(s[p])) {
                    return -1;
                }
                while (p < len && is_digit(s[p])) {
                    int d = s[p] - '0';
                    if (v4 < 0) {
                        v4 = d;
                    } else if (v4 == 0) {
                        return -1; /* leading zero */
                    } else {
                        v4 = v4 * 10 + d;
                    }
                    if (v4 > 255) {
                        return -1;
                    }
                    p++;
                }
                a[piece] = a[piece] * 0x100 + (unsigned)v4;
                seen++;
                if (seen == 2 || seen == 4) {
                    piece++;
                }
            }
            if (seen != 4) {
                return -1;
            }
            break;
        }
        if (p < len && s[p] == ':') {
            p++;
            if (p >= len) {
                return -1;
            }
        } else if (p < len) {
            return -1;
        }
        a[piece++] = value;
    }
    if (compressed) {
        size_t swaps = piece - compress;
        piece = 7;
        while (piece != 0 && swaps > 0) {
            unsigned t = a[piece];
            a[piece] = a[compress + swaps - 1];
            a[compress + swaps - 1] = t;
            piece--;
            swaps--;
        }
    } else if (piece != 8) {
        return -1;
    }
    for (size_t i = 0; i < 8; i++) {
        cp2p_store_be16(out + 2 * i, (uint16_t)a[i]);
    }
    return 0;
}

/* The WHATWG URL Standard's IPv6 serializer: lower-case hex without leading zeros, the first
 * longest run of at least two zero pieces written as "::", never a dotted IPv4 tail. */
static int format_ip6(cp2p_buf *out, const uint8_t in[16])
{
    unsigned a[8];
    size_t best = 8, best_len = 1, run = 0;
    for (size_t i = 0; i < 8; i++) {
        a[i] = cp2p_load_be16(in + 2 * i);
    }
    for (size_t i = 0; i <= 8; i++) {
        if (i < 8 && a[i] == 0) {
            run++;
            continue;
        }
        if (run > best_len) {
            best = i - run;
            best_len = run;
        }
        run = 0;
    }
    char txt[48];
    size_t n = 0;
    bool ignore0 = false;
    for (size_t i = 0; i < 8; i++) {
        if (ignore0 && a[i] == 0) {
            continue;
        }
        ignore0 = false;
        if (i == best) {
            n += (size_t)snprintf(txt + n, sizeof(txt) - n, "%s", i == 0 ? "::" : ":");
            ignore0 = true;
            continue;
        }
        n += (size_t)snprintf(txt + n, sizeof(txt) - n, "%x%s", a[i], i != 7 ? ":" : "");
    }
    return cp2p_buf_append(out, txt, n);
}

/* encodeURIComponent (ECMAScript): everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) is written as
 * %XX (upper case) per UTF-8 byte. */
static int percent_encode(cp2p_buf *out, const uint8_t *v, size_t len)
{
    static const char HEXU[] = "0123456789ABCDEF";
    static const char KEEP[] = "-_.!~*'()";
    for (size_t i = 0; i < len; i++) {
        uint8_t c = v[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c != 0 && memchr(KEEP, c, sizeof(KEEP) - 1) != NULL);
        uint8_t esc[3] = {'%', (uint8_t)HEXU[c >> 4], (uint8_t)HEXU[c & 15]};
        int rc = keep ? cp2p_buf_append_byte(out, c) : cp2p_buf_append(out, esc, 3);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Read "%XX" at s[*p]; returns the byte or -1. */
static int read_escape(const char *s, size_t len, size_t *p)
{
    if (len - *p < 3 || s[*p] != '%') {
        return -1;
    }
    int hi = cp2p__hex_digit(s[*p + 1]), lo = cp2p__hex_digit(s[*p + 2]);
    if (hi < 0 || lo < 0) {
        return -1;
    }
    *p += 3;
    return hi << 4 | lo;
}

/* decodeURIComponent (ECMAScript "Decode" with an empty reserved set): %XX escapes of a
 * multi-byte character must all be escapes and form one valid UTF-8 sequence. Writes at most
 * cap bytes to out. Returns the decoded length, or -1 if the text is malformed or the result
 * does not fit. The input is valid UTF-8 already. */
static ptrdiff_t percent_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    size_t p = 0, o = 0;
    while (p < len) {
        if (s[p] != '%') {
            if (o == cap) {
                return -1;
            }
            out[o++] = (uint8_t)s[p++];
            continue;
        }
        int b = read_escape(s, len, &p);
        if (b < 0) {
            return -1;
        }
        size_t n;
        if (b < 0x80) {
            n = 1;
        } else if ((b & 0xe0) == 0xc0) {
            n = 2;
        } else if ((b & 0xf0) == 0xe0) {
            n = 3;
        } else if ((b & 0xf8) == 0xf0) {
            n = 4;
        } else {
            return -1;
        }
        uint8_t seq[4] = {(uint8_t)b};
        for (size_t k = 1; k < n; k++) {
            int c = read_escape(s, len, &p);
            if (c < 0) {
                return -1;
            }
            seq[k] = (uint8_t)c;
        }
        if (!cp2p__utf8_valid(seq, n) || cap - o < n) {
            return -1;
        }
        memcpy(out + o, seq, n);
        o += n;
    }
    return (ptrdiff_t)o;
}

/* ---- values: binary validation, text to binary, binary to text -------------------------- */

/* Peer-supplied text values must be non-empty UTF-8 without NUL (and without '/' where the
 * text form could not carry it). NUL is refused because these values end up in C strings. */
static bool text_ok(const uint8_t *v, size_t len, bool allow_slash)
{
    if (len == 0 || memchr(v, 0, len) != NULL || !cp2p__utf8_valid(v, len)) {
        return false;
    }
    return allow_slash || memchr(v, '/', len) == NULL;
}

static bool value_valid(const proto *p, const uint8_t *v, size_t len)
{
    if (p->size >= 0 && len != (size_t)p->size) {
        return false;
    }
    switch (p->kind) {
    case VK_NONE:
    case VK_IP4:
    case VK_IP6:
    case VK_PORT:
    case VK_CIDR:
        return true; /* the length was the only constraint */
    case VK_TEXT:
        return text_ok(v, len, false);
    case VK_UNIX:
        return text_ok(v, len, true);
    case VK_P2P: {
        cp2p_peer_id id;
        return cp2p_peer_id_from_bytes(v, len, &id) == 0;
    }
    case VK_CERTHASH:
        return cp2p_multihash_validate(v, len) == 0;
    case VK_ONION:
    case VK_ONION3:
        /* js and go refuse port 0 in the text form, so it cannot round-trip. */
        return cp2p_load_be16(v + len - 2) != 0;
    default:
        return false;
    }
}

/* "<base32 address>:<port>" for onion (16 characters) and onion3 (56). */
static int onion_from_text(const char *s, size_t len, size_t addr_chars, uint8_t *out,
                           size_t out_len)
{
    const char *colon = memchr(s, ':', len);
    unsigned port;
    int rc;
    if (colon == NULL || (size_t)(colon - s) != addr_chars ||
        parse_decimal(colon + 1, len - addr_chars - 1, 65535, &port) != 0 || port == 0) {
        return CP2P_EINVAL;
    }
    cp2p_buf b;
    cp2p_buf_init(&b, out_len);
    rc = cp2p_base32_decode(&b, s, addr_chars);
    if (rc == 0 && b.len != out_len - 2) {
        rc = CP2P_EINVAL;
    }
    if (rc == 0) {
        memcpy(out, b.ptr, b.len);
        cp2p_store_be16(out + b.len, (uint16_t)port);
    }
    cp2p_buf_fini(&b);
    return rc == CP2P_ENOMEM ? rc : (rc != 0 ? CP2P_EINVAL : 0);
}

/* Convert the text value s[0..len) of protocol p into binary at out[0..cap). Returns the
 * value length, CP2P_EINVAL or CP2P_ENOMEM. */
static ptrdiff_t value_from_text(const proto *p, const char *s, size_t len, uint8_t *out,
                                 size_t cap)
{
    unsigned v;
    int rc;

    if (p->size > 0 && cap < (size_t)p->size) {
        return CP2P_EINVAL;
    }
    switch (p->kind) {
    case VK_IP4:
        return parse_ip4(s, len, out) == 0 ? 4 : CP2P_EINVAL;
    case VK_IP6:
        return parse_ip6(s, len, out) == 0 ? 16 : CP2P_EINVAL;
    case VK_PORT:
        if (parse_decimal(s, len, 65535, &v) != 0) {
            return CP2P_EINVAL;
        }
        cp2p_store_be16(out, (uint16_t)v);
        return 2;
    case VK_CIDR:
        if (parse_decimal(s, len, 255, &v) != 0) {
            return CP2P_EINVAL;
        }
        out[0] = (uint8_t)v;
        return 1;
    case VK_TEXT:
        if (len > cap || !text_ok((const uint8_t *)s, len, false)) {
            return CP2P_EINVAL;
        }
        memcpy(out, s, len);
        return (ptrdiff_t)len;
    case VK_UNIX: {
        ptrdiff_t n = percent_decode(s, len, out, cap);
        if (n <= 0 || !text_ok(out, (size_t)n, true)) {
            return CP2P_EINVAL;
        }
        return n;
    }
    case VK_P2P: {
        cp2p_peer_id id;
        rc = cp2p_peer_id_parse(s, len, &id);
        if (rc != 0) {
            return rc == CP2P_ENOMEM ? rc : CP2P_EINVAL;
        }
        if (id.len > cap) {
            return CP2P_EINVAL;
        }
        memcpy(out, id.bytes, id.len);
        return (ptrdiff_t)id.len;
    }
    case VK_CERTHASH: {
        cp2p_buf b;
        ptrdiff_t n = CP2P_EINVAL;
        cp2p_buf_init(&b, cap);
        rc = cp2p_multibase_decode(&b, s, len);
        if (rc == CP2P_ENOMEM) {
            n = rc;
        } else if (rc == 0 && cp2p_multihash_validate(b.ptr, b.len) == 0) {
            memcpy(out, b.ptr, b.len);
            n = (ptrdiff_t)b.len;
        }
        cp2p_buf_fini(&b);
        return n;
    }
    case VK_ONION:
        rc = onion_from_text(s, len, 16, out, 12);
        return rc != 0 ? rc : 12;
    case VK_ONION3:
        rc = onion_from_text(s, len, 56, out, 37);
        return rc != 0 ? rc : 37;
    default:
        return CP2P_EINVAL;
    }
}

/* Append the text of a valid value. */
static int value_to_text(const proto *p, const uint8_t *v, size_t len, cp2p_buf *out)
{
    char txt[24];
    int n;
    switch (p->kind) {
    case VK_NONE:
        return 0;
    case VK_IP4:
        n = snprintf(txt, sizeof(txt), "%u.%u.%u.%u", v[0], v[1], v[2], v[3]);
        return cp2p_buf_append(out, txt, (size_t)n);
    case VK_IP6:
        return format_ip6(out, v);
    case VK_PORT:
        n = snprintf(txt, sizeof(txt), "%u", (unsigned)cp2p_load_be16(v));
        return cp2p_buf_append(out, txt, (size_t)n);
    case VK_CIDR:
        n = snprintf(txt, sizeof(txt), "%u", (unsigned)v[0]);
        return cp2p_buf_append(out, txt, (size_t)n);
    case VK_TEXT:
        return cp2p_buf_append(out, v, len);
    case VK_UNIX:
        return percent_encode(out, v, len);
    case VK_P2P:
        return cp2p_base58btc_encode(out, v, len);
    case VK_CERTHASH:
        return cp2p_multibase_encode(out, CP2P_MULTIBASE_BASE64URL, v, len);
    case VK_ONION:
    case VK_ONION3: {
        int rc = cp2p_base32_encode(out, v, len - 2);
        if (rc != 0) {
            return rc;
        }
        n = snprintf(txt, sizeof(txt), ":%u", (unsigned)cp2p_load_be16(v + len - 2));
        return cp2p_buf_append(out, txt, (size_t)n);
    }
    default:
        return CP2P_EINVAL;
    }
}

/* ---- binary scanning -------------------------------------------------------------------- */

/* Decode the header of the component at in[0..len). Sets its protocol and value range.
 * Returns the component's total length, or CP2P_EPROTO. */
static ptrdiff_t component_decode(const uint8_t *in, size_t len, const proto **pp,
                                  size_t *voff, size_t *vlen)
{
    uint64_t code, n64;
    ptrdiff_t r = cp2p_uvarint_decode(in, len, &code);
    if (r <= 0) {
        return CP2P_EPROTO; /* 0 (truncated) is an error too: the input is complete */
    }
    const proto *p = proto_by_code(code);
    if (p == NULL) {
        return CP2P_EPROTO;
    }
    size_t off = (size_t)r;
    if (p->size == VAR) {
        r = cp2p_uvarint_decode(in + off, len - off, &n64);
        if (r <= 0) {
            return CP2P_EPROTO;
        }
        off += (size_t)r;
    } else {
        n64 = (uint64_t)p->size;
    }
    if (len - off < n64) {
        return CP2P_EPROTO;
    }
    *pp = p;
    *voff = off;
    *vlen = (size_t)n64;
    return (ptrdiff_t)(off + (size_t)n64);
}

/* Validate in[0..len) completely and record where each component starts. */
static int scan(const uint8_t *in, size_t len, uint16_t off[CP2P_MULTIADDR_MAX_COMPONENTS + 1],
                size_t *count)
{
    size_t pos = 0, n = 0;
    if (len > CP2P_MULTIADDR_MAX_BYTES) {
        return CP2P_EPROTO;
    }
    while (pos < len) {
        const proto *p;
        size_t voff, vlen;
        if (n == CP2P_MULTIADDR_MAX_COMPONENTS) {
            return CP2P_EPROTO;
        }
        ptrdiff_t r = component_decode(in + pos, len - pos, &p, &voff, &vlen);
        if (r < 0 || !value_valid(p, in + pos + voff, vlen)) {
            return CP2P_EPROTO;
        }
        off[n++] = (uint16_t)pos;
        pos += (size_t)r;
    }
    off[n] = (uint16_t)len;
    *count = n;
    return 0;
}

/* New multiaddr from validated bytes and their offsets (off[0..n], off[n] == len). */
static int ma_new(const uint8_t *bytes, size_t len, const uint16_t *off, size_t n,
                  cp2p_multiaddr **out)
{
    cp2p_multiaddr *ma = cp2p_malloc(sizeof(*ma) + len);
    if (ma == NULL) {
        return CP2P_ENOMEM;
    }
    memset(ma->off, 0, sizeof(ma->off));
    ma->len = len;
    ma->n = n;
    memcpy(ma->off, off, (n + 1) * sizeof(off[0]));
    if (len > 0) {
        memcpy(ma->bytes, bytes, len);
    }
    *out = ma;
    return 0;
}

/* The first i components of a (a prefix is always valid). */
static int ma_prefix(const cp2p_multiaddr *a, size_t i, cp2p_multiaddr **out)
{
    uint16_t off[CP2P_MULTIADDR_MAX_COMPONENTS + 1];
    memcpy(off, a->off, (i + 1) * sizeof(off[0]));
    return ma_new(a->bytes, a->off[i], off, i, out);
}

/* ---- public API ------------------------------------------------------------------------- */

int cp2p_multiaddr_from_bytes(const uint8_t *in, size_t len, cp2p_multiaddr **out)
{
    uint16_t off[CP2P_MULTIADDR_MAX_COMPONENTS + 1];
    size_t n;
    if (in == NULL || len == 0 || scan(in, len, off, &n) != 0) {
        return CP2P_EPROTO;
    }
    return ma_new(in, len, off, n, out);
}

/* Length of the segment at s[0..len) up to the next '/'. */
static size_t segment(const char *s, size_t len)
{
    const char *slash = memchr(s, '/', len);
    return slash == NULL ? len : (size_t)(slash - s);
}

int cp2p_multiaddr_parse(const char *s, size_t len, cp2p_multiaddr **out)
{
    uint8_t bin[CP2P_MULTIADDR_MAX_BYTES];
    uint8_t val[CP2P_MULTIADDR_MAX_BYTES];
    uint16_t off[CP2P_MULTIADDR_MAX_COMPONENTS + 1];
    size_t blen = 0, n = 0, pos = 1;

    if (s == NULL || len == 0 || s[0] != '/' || len >= CP2P_MULTIADDR_STR_MAX ||
        !cp2p__utf8_valid((const uint8_t *)s, len)) {
        return CP2P_EINVAL;
    }
    /* Trailing slashes are ignored, as in js and go ("/ip4/1.2.3.4/" == "/ip4/1.2.3.4"). */
    while (len > 1 && s[len - 1] == '/') {
        len--;
    }
    while (pos < len) {
        size_t nlen = segment(s + pos, len - pos);
        const proto *p = nlen > 0 ? proto_by_name(s + pos, nlen) : NULL;
        if (p == NULL) {
            return CP2P_EINVAL; /* empty segment ("//") or unknown protocol */
        }
        pos += nlen;
        ptrdiff_t vlen = 0;
        if (p->size != 0) {
            if (pos == len) {
                return CP2P_EINVAL; /* "/ip4" without a value */
            }
            pos++; /* the '/' before the value */
            size_t tlen = segment(s + pos, len - pos);
            if (tlen == 0) {
                return CP2P_EINVAL;
            }
            vlen = value_from_text(p, s + pos, tlen, val, sizeof(val));
            if (vlen < 0) {
                return (int)vlen;
            }
            pos += tlen;
        }
        if (pos < len) {
            pos++; /* the '/' before the next protocol; never the last character */
        }
        /* Append <code>[<length>]<value>, checking the total first (STYLE.md 6.7). */
        uint8_t hdr[2 * CP2P_UVARINT_MAX];
        size_t h = cp2p_uvarint_encode(hdr, p->code);
        if (p->size == VAR) {
            h += cp2p_uvarint_encode(hdr + h, (uint64_t)vlen);
        }
        if (n == CP2P_MULTIADDR_MAX_COMPONENTS || sizeof(bin) - blen < h ||
            sizeof(bin) - blen - h < (size_t)vlen) {
            return CP2P_EINVAL;
        }
        memcpy(bin + blen, hdr, h);
        memcpy(bin + blen + h, val, (size_t)vlen);
        blen += h + (size_t)vlen;
        n++;
    }
    /* Validate what we built with the binary parser, so both paths accept the same set. */
    if (scan(bin, blen, off, &n) != 0) {
        return CP2P_EINVAL;
    }
    return ma_new(bin, blen, off, n, out);
}

void cp2p_multiaddr_free(cp2p_multiaddr *ma)
{
    cp2p_free(ma);
}

int cp2p_multiaddr_dup(const cp2p_multiaddr *ma, cp2p_multiaddr **out)
{
    return ma_new(ma->bytes, ma->len, ma->off, ma->n, out);
}

cp2p_slice cp2p_multiaddr_bytes(const cp2p_multiaddr *ma)
{
    cp2p_slice s = {ma->bytes, ma->len};
    return s;
}

bool cp2p_multiaddr_equal(const cp2p_multiaddr *a, const cp2p_multiaddr *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
}

size_t cp2p_multiaddr_count(const cp2p_multiaddr *ma)
{
    return ma->n;
}

int cp2p_multiaddr_component_at(const cp2p_multiaddr *ma, size_t i, cp2p_multiaddr_component *out)
{
    const proto *p;
    size_t voff, vlen;
    if (i >= ma->n) {
        return CP2P_ENOENT;
    }
    const uint8_t *c = ma->bytes + ma->off[i];
    ptrdiff_t r = component_decode(c, ma->off[i + 1] - ma->off[i], &p, &voff, &vlen);
    assert(r > 0); /* the bytes were validated when the multiaddr was made */
    if (r <= 0) {
        return CP2P_ENOENT;
    }
    out->code = p->code;
    out->name = p->name;
    out->value.ptr = c + voff;
    out->value.len = vlen;
    return 0;
}

int cp2p_multiaddr_component_value_string(const cp2p_multiaddr_component *c, cp2p_buf *out)
{
    const proto *p = proto_by_code(c->code);
    size_t start = out->len;
    if (p == NULL || (c->value.len > 0 && c->value.ptr == NULL) ||
        !value_valid(p, c->value.ptr, c->value.len)) {
        return CP2P_EINVAL;
    }
    int rc = value_to_text(p, c->value.ptr, c->value.len, out);
    if (rc != 0 && out->ptr != NULL && out->len > start) {
        out->len = start;
        out->ptr[start] = 0;
    }
    return rc;
}

int cp2p_multiaddr_to_string(const cp2p_multiaddr *ma, cp2p_buf *out)
{
    size_t start = out->len;
    int rc = 0;
    if (ma->n == 0) {
        return cp2p_buf_append_byte(out, '/');
    }
    for (size_t i = 0; i < ma->n && rc == 0; i++) {
        cp2p_multiaddr_component c;
        const proto *p = NULL;
        rc = cp2p_multiaddr_component_at(ma, i, &c);
        if (rc == 0) {
            p = proto_by_code(c.code);
            rc = cp2p_buf_append_byte(out, '/');
        }
        if (rc == 0) {
            rc = cp2p_buf_append(out, c.name, strlen(c.name));
        }
        if (rc == 0 && p->size != 0) {
            rc = cp2p_buf_append_byte(out, '/');
            if (rc == 0) {
                rc = value_to_text(p, c.value.ptr, c.value.len, out);
            }
        }
    }
    if (rc != 0 && out->ptr != NULL && out->len > start) {
        out->len = start;
        out->ptr[start] = 0;
    }
    return rc;
}

int cp2p_multiaddr_encapsulate(const cp2p_multiaddr *a, const cp2p_multiaddr *b,
                               cp2p_multiaddr **out)
{
    uint8_t bin[CP2P_MULTIADDR_MAX_BYTES];
    uint16_t off[CP2P_MULTIADDR_MAX_COMPONENTS + 1];
    if (a->n + b->n > CP2P_MULTIADDR_MAX_COMPONENTS ||
        a->len + b->len > CP2P_MULTIADDR_MAX_BYTES) {
        return CP2P_ELIMIT;
    }
    memcpy(bin, a->bytes, a->len);
    memcpy(bin + a->len, b->bytes, b->len);
    memcpy(off, a->off, a->n * sizeof(off[0]));
    for (size_t i = 0; i <= b->n; i++) {
        off[a->n + i] = (uint16_t)(a->len + b->off[i]);
    }
    return ma_new(bin, a->len + b->len, off, a->n + b->n, out);
}

int cp2p_multiaddr_decapsulate(const cp2p_multiaddr *a, const cp2p_multiaddr *b,
                               cp2p_multiaddr **out)
{
    if (b->n == 0 || b->n > a->n) {
        return cp2p_multiaddr_dup(a, out);
    }
    /* Components are self-delimiting and canonical (minimal varints), so a byte-equal run of
     * whole components is a component-wise match. Search from the end for the last one. */
    for (size_t i = a->n - b->n + 1; i-- > 0;) {
        size_t run = (size_t)a->off[i + b->n] - a->off[i];
        if (run == b->len && memcmp(a->bytes + a->off[i], b->bytes, b->len) == 0) {
            return ma_prefix(a, i, out);
        }
    }
    return cp2p_multiaddr_dup(a, out);
}

int cp2p_multiaddr_decapsulate_code(const cp2p_multiaddr *a, uint64_t code,
                                    cp2p_multiaddr **out)
{
    for (size_t i = a->n; i-- > 0;) {
        cp2p_multiaddr_component c;
        if (cp2p_multiaddr_component_at(a, i, &c) == 0 && c.code == code) {
            return ma_prefix(a, i, out);
        }
    }
    return cp2p_multiaddr_dup(a, out);
}

int cp2p_multiaddr_peer_id(const cp2p_multiaddr *ma, cp2p_peer_id *out)
{
    for (size_t i = ma->n; i-- > 0;) {
        cp2p_multiaddr_component c;
        if (cp2p_multiaddr_component_at(ma, i, &c) == 0 && c.code == CP2P_MA_P2P) {
            return cp2p_peer_id_from_bytes(c.value.ptr, c.value.len, out) == 0 ? 0
                                                                                : CP2P_ENOENT;
        }
    }
    return CP2P_ENOENT;
}

const char *cp2p_multiaddr_protocol_name(uint64_t code)
{
    const proto *p = proto_by_code(code);
    return p != NULL ? p->name : NULL;
}

int cp2p_multiaddr_protocol_code(const char *name, size_t len, uint64_t *code)
{
    const proto *p = name != NULL ? proto_by_name(name, len) : NULL;
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    *code = p->code;
    return 0;
}
