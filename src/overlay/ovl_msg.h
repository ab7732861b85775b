/* Overlay wire codec: OvlFrame (proto/overlay.proto) to and from plain structs, with every
 * field checked against src/util/limits.h ("overlay"). Pure functions over (ptr, len).
 *
 * Decoding fills a caller-owned cp2p__ovl_frame (about 90 KiB: keep one and reuse it); its
 * packet payload is borrowed from the unpacked protobuf held in the frame until
 * cp2p__ovl_frame_release(). Signatures are checked by the core, not here. */
#ifndef CP2P_OVERLAY_OVL_MSG_H
#define CP2P_OVERLAY_OVL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>
#include <cp2p/keys.h>
#include <cp2p/peer_id.h>

#include "util/limits.h"

typedef struct cp2p__ovl_route {
    cp2p_peer_id origin;
    uint32_t seqno;
    uint16_t metric; /* CP2P_OVL_INF: retraction */
    uint8_t sig_len;
    uint8_t sig[CP2P_SIG_MAX];
} cp2p__ovl_route;

typedef struct cp2p__ovl_req {
    cp2p_peer_id origin;
    uint32_t seqno;
    uint8_t hop_count;
} cp2p__ovl_req;

typedef struct cp2p__ovl_link {
    cp2p_peer_id peer;
    uint32_t cost; /* 1..CP2P_OVL_MAX_COST */
} cp2p__ovl_link;

typedef struct cp2p__ovl_lsa {
    cp2p_peer_id origin;
    uint64_t seq;
    uint32_t n_links;
    cp2p__ovl_link links[CP2P_OVL_MAX_LINKS];
    uint8_t sig_len;
    uint8_t sig[CP2P_SIG_MAX];
} cp2p__ovl_lsa;

typedef enum cp2p__ovl_pkt_kind {
    CP2P_OVL_PKT_DATA = 0,
    CP2P_OVL_PKT_ACK = 1,
} cp2p__ovl_pkt_kind;

#define CP2P_OVL_F_RELIABLE 1u
#define CP2P_OVL_F_SOURCE 2u
#define CP2P_OVL_F_ALL (CP2P_OVL_F_RELIABLE | CP2P_OVL_F_SOURCE)

typedef struct cp2p__ovl_packet {
    cp2p__ovl_pkt_kind kind;
    cp2p_peer_id src, dst;
    uint64_t id;
    uint8_t hop_limit; /* 0..CP2P_OVL_MAX_HOPS */
    uint32_t flags;    /* CP2P_OVL_F_* */
    uint8_t n_path;    /* source routed: 1..CP2P_OVL_MAX_HOPS, path[n_path - 1] == dst */
    uint8_t path_idx;  /* < n_path */
    cp2p_peer_id path[CP2P_OVL_MAX_HOPS];
    cp2p_slice payload; /* data: borrowed; ack: empty */
} cp2p__ovl_packet;

typedef struct cp2p__ovl_frame {
    uint32_t version;
    uint32_t n_routes, n_reqs, n_lsas;
    cp2p__ovl_route routes[CP2P_OVL_MAX_ROUTES_PER_FRAME];
    cp2p__ovl_req reqs[CP2P_OVL_MAX_REQS_PER_FRAME];
    cp2p__ovl_lsa lsas[CP2P_OVL_MAX_LSAS_PER_FRAME];
    bool has_packet;
    cp2p__ovl_packet packet;
    void *pb_; /* decoded: the unpacked message the payload points into */
} cp2p__ovl_frame;

/* Empty a frame for building (counts zero, no packet); does not touch the arrays. Release a
 * decoded frame first. */
void cp2p__ovl_frame_clear(cp2p__ovl_frame *f);

/* Decode one frame body into *f (cleared first; release it with cp2p__ovl_frame_release
 * after a success, nothing to release after an error). Returns 0; CP2P_ELIMIT (frame over
 * CP2P_OVL_MAX_FRAME, too many entries, payload over CP2P_OVL_MAX_PAYLOAD, hop limit or path
 * over CP2P_OVL_MAX_HOPS); CP2P_EPROTO (not protobuf, an invalid peer ID, a bad kind, flags,
 * metric, cost, path index, a signature of a wrong size, an ack with a payload);
 * CP2P_ENOTSUP (another wire version: *why says so, checked before anything else is looked
 * at); CP2P_ENOMEM. *why is set on every error. */
CP2P_NODISCARD int cp2p__ovl_frame_decode(const uint8_t *in, size_t len, cp2p__ovl_frame *f,
                                          const char **why);
void cp2p__ovl_frame_release(cp2p__ovl_frame *f);

/* Append the encoding of f (version CP2P_OVL_VERSION whatever f->version says, unless
 * f->version is not 0: then that one, for tests of the version check) to out. Returns 0,
 * CP2P_ELIMIT (over out's max or CP2P_OVL_MAX_FRAME), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__ovl_frame_encode(const cp2p__ovl_frame *f, cp2p_buf *out);

/* The bytes an origin signs: for a route update (out must hold CP2P_OVL_ROUTE_SIGIN_MAX) and
 * for an LSA (appended to out). */
#define CP2P_OVL_ROUTE_SIGIN_MAX (19 + CP2P_PEER_ID_MAX + 4)
size_t cp2p__ovl_route_sigin(const cp2p_peer_id *origin, uint32_t seqno, uint8_t *out);
CP2P_NODISCARD int cp2p__ovl_lsa_sigin(const cp2p__ovl_lsa *l, cp2p_buf *out);

#endif
