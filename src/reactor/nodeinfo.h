/* The node info codec and rules (cp2p/nodeinfo.h), sans-I/O: encode, decode (remote input,
 * fuzzed by tests/fuzz/fuzz_reactor_nodeinfo.c), CometBFT's ValidateBasic and CompatibleWith,
 * and an incremental reader for the stream. No clock, no I/O; any thread. */
#ifndef CP2P_REACTOR_NODEINFO_H
#define CP2P_REACTOR_NODEINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>
#include <cp2p/nodeinfo.h>

/* Most bytes of one node info on the wire: the body and its uvarint prefix. */
#define CP2P__NODEINFO_WIRE_MAX (CP2P_NODEINFO_MAX + 10)

/* Why a peer's node info is not compatible with ours (CompatibleWith), or 0. */
enum {
    CP2P__NI_OK = 0,
    CP2P__NI_BLOCK_VERSION, /* "incompatible block version" */
    CP2P__NI_NETWORK,       /* "incompatible network" */
    CP2P__NI_NO_CHANNELS,   /* "no common channels" */
};

/* CometBFT's ValidateBasic: strings printable ASCII within their limits and NUL-terminated,
 * moniker non-blank, version and RPC address empty or non-blank, tx_index "", "on" or "off",
 * channels at most CP2P_NODEINFO_CHANNELS_MAX without duplicates. Returns 0 or CP2P_EINVAL
 * with *why. */
CP2P_NODISCARD int cp2p__nodeinfo_check(const cp2p_node_info *ni, const char **why);
/* Encode a checked node info with its uvarint prefix into out[0..cap). Returns the bytes
 * written, CP2P_EINVAL (fails the check), CP2P_ELIMIT (over CP2P_NODEINFO_MAX or cap). */
CP2P_NODISCARD ptrdiff_t cp2p__nodeinfo_encode(const cp2p_node_info *ni, uint8_t *out,
                                               size_t cap);
/* Decode one body (no prefix) into *out and check it. Returns 0, CP2P_ELIMIT (over
 * CP2P_NODEINFO_MAX, a field over its limit), CP2P_EPROTO (not the protobuf, or fails the
 * check), CP2P_ENOMEM; with *why on an error. */
CP2P_NODISCARD int cp2p__nodeinfo_decode(const uint8_t *body, size_t len, cp2p_node_info *out,
                                         const char **why);
/* CometBFT's CompatibleWith: same block protocol version, same network, and a channel in
 * common unless `ours` has none. Returns CP2P__NI_OK or the reason, with *why. */
int cp2p__nodeinfo_compatible(const cp2p_node_info *ours, const cp2p_node_info *theirs,
                              const char **why);

/* Collects the one prefixed node info a stream carries. */
typedef struct cp2p__nodeinfo_reader {
    uint8_t buf[CP2P__NODEINFO_WIRE_MAX];
    size_t len;
    bool done;
} cp2p__nodeinfo_reader;

void cp2p__nodeinfo_reader_init(cp2p__nodeinfo_reader *r);
/* Bytes read from the stream. Returns 0 (more needed), 1 (complete: *out decoded and
 * checked), or CP2P_EPROTO (bad prefix, bytes after the message, bad body, or data after 1),
 * CP2P_ELIMIT (declared length over CP2P_NODEINFO_MAX), CP2P_ENOMEM; with *why. */
CP2P_NODISCARD int cp2p__nodeinfo_reader_feed(cp2p__nodeinfo_reader *r, const uint8_t *data,
                                              size_t len, cp2p_node_info *out, const char **why);

#endif
