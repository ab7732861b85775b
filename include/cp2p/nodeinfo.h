/* A switch's node info (seed 004: CometBFT's DefaultNodeInfo), exchanged once each way when a
 * peer connects, before any reactor hears add_peer (cp2p/reactor.h, docs/CHANNELS.md).
 *
 * Wire: protocol CP2P_NODEINFO_PROTOCOL, one uvarint-length-prefixed protobuf message with
 * CometBFT's field numbers (proto/nodeinfo.proto), body at most CP2P_NODEINFO_MAX bytes, then
 * the sender closes the stream. Plain data: any thread. */
#ifndef CP2P_NODEINFO_H
#define CP2P_NODEINFO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_NODEINFO_PROTOCOL "/p2p/cometbft/1.0.0/nodeinfo"
/* Largest encoded node info (CometBFT's maxNodeInfoSize). */
#define CP2P_NODEINFO_MAX 10240
/* Field limits (bytes, without the terminating NUL). CometBFT caps only the channels (16) and
 * the whole message; ours bound each field so a node info fits a fixed struct. Channels: as
 * many as one switch declares (CP2P_SWITCH_MAX_CHANNELS). */
#define CP2P_NODEINFO_ID_MAX 128
#define CP2P_NODEINFO_ADDR_MAX 256
#define CP2P_NODEINFO_NETWORK_MAX 64
#define CP2P_NODEINFO_VERSION_MAX 64
#define CP2P_NODEINFO_MONIKER_MAX 128
#define CP2P_NODEINFO_TX_INDEX_MAX 3
#define CP2P_NODEINFO_CHANNELS_MAX 64
/* Defaults: CometBFT v0.38's P2P and block protocol versions, and our own names. */
#define CP2P_NODEINFO_P2P_VERSION 8
#define CP2P_NODEINFO_BLOCK_VERSION 11
#define CP2P_NODEINFO_NETWORK "cp2p"
#define CP2P_NODEINFO_MONIKER "cp2p"

/* Strings are NUL-terminated printable ASCII (0x20..0x7e), as CometBFT's ValidateBasic asks of
 * the moniker, version and RPC address; empty where CometBFT allows it. */
typedef struct cp2p_node_info {
    uint64_t p2p_version, block_version, app_version; /* ProtocolVersion */
    char node_id[CP2P_NODEINFO_ID_MAX + 1];           /* the peer id, base58 */
    char listen_addr[CP2P_NODEINFO_ADDR_MAX + 1];     /* a multiaddr (CometBFT: host:port) */
    char network[CP2P_NODEINFO_NETWORK_MAX + 1];      /* the chain id */
    char version[CP2P_NODEINFO_VERSION_MAX + 1];      /* software version */
    uint8_t channels[CP2P_NODEINFO_CHANNELS_MAX];     /* channel ids served, no duplicates */
    size_t n_channels;
    char moniker[CP2P_NODEINFO_MONIKER_MAX + 1];      /* non-blank */
    char tx_index[CP2P_NODEINFO_TX_INDEX_MAX + 1];    /* "", "on" or "off" */
    char rpc_address[CP2P_NODEINFO_ADDR_MAX + 1];
} cp2p_node_info;

#ifdef __cplusplus
}
#endif
#endif
