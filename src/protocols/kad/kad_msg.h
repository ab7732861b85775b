/* The kad-dht RPC message (libp2p kad-dht spec, "RPC messages"; proto/kad.proto): decode with
 * validation and limits into plain structs, encode. Pure functions; the stream handling lives
 * in kad_uv.c. */
#ifndef CP2P_PROTOCOLS_KAD_MSG_H
#define CP2P_PROTOCOLS_KAD_MSG_H

#include <stdbool.h>

#include <cp2p/buf.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

typedef enum cp2p__kad_type {
    CP2P__KAD_PUT_VALUE = 0,
    CP2P__KAD_GET_VALUE = 1,
    CP2P__KAD_ADD_PROVIDER = 2,
    CP2P__KAD_GET_PROVIDERS = 3,
    CP2P__KAD_FIND_NODE = 4,
    CP2P__KAD_PING = 5,
} cp2p__kad_type;

typedef enum cp2p__kad_conn_type {
    CP2P__KAD_NOT_CONNECTED = 0,
    CP2P__KAD_CONNECTED = 1,
    CP2P__KAD_CAN_CONNECT = 2,
    CP2P__KAD_CANNOT_CONNECT = 3,
} cp2p__kad_conn_type;

typedef struct cp2p__kad_peer {
    cp2p_peer_id id;
    cp2p_multiaddr **addrs;   /* owned; invalid ones dropped at decode (counted) */
    size_t n_addrs;
    cp2p__kad_conn_type connection;
} cp2p__kad_peer;

typedef struct cp2p__kad_record {
    uint8_t *key;             /* owned */
    size_t key_len;
    uint8_t *value;           /* owned; NULL when empty */
    size_t value_len;
    char *time_received;      /* owned; NULL when absent (RFC 3339 text, set by receivers) */
} cp2p__kad_record;

typedef struct cp2p__kad_msg {
    cp2p__kad_type type;
    uint8_t *key;             /* owned; NULL when absent */
    size_t key_len;
    bool has_record;
    cp2p__kad_record record;
    cp2p__kad_peer *closer;   /* owned */
    size_t n_closer;
    cp2p__kad_peer *providers; /* owned */
    size_t n_providers;
    /* What decode left out (for counters): peers with an invalid ID or over
     * CP2P_KAD_MAX_PEERS_PER_MSG, addresses invalid or over CP2P_KAD_MAX_ADDRS_PER_PEER. */
    uint32_t dropped_peers;
    uint32_t dropped_addrs;
} cp2p__kad_msg;

/* Decode one message body (without its uvarint length prefix). Refused: larger than
 * CP2P_KAD_MAX_MSG (CP2P_ELIMIT), not protobuf, unknown type, key over CP2P_KAD_MAX_KEY, value
 * over CP2P_KAD_MAX_VALUE (CP2P_EPROTO with *why). On success *out owns everything (free with
 * cp2p__kad_msg_fini). Returns 0, CP2P_ELIMIT, CP2P_EPROTO, CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_msg_decode(const uint8_t *in, size_t len, cp2p__kad_msg *out,
                                        const char **why);
/* Append the message body (no length prefix) to out. Returns 0, CP2P_ELIMIT (larger than
 * CP2P_KAD_MAX_MSG or out's max), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_msg_encode(const cp2p__kad_msg *m, cp2p_buf *out);
/* Free what decode allocated; safe on a zeroed struct. Never call on a caller-built message
 * whose fields point to borrowed memory. */
void cp2p__kad_msg_fini(cp2p__kad_msg *m);

#endif
