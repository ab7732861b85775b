/* The identify message (libp2p/specs identify/README.md): decode with validation and limits,
 * encode. Pure functions; the stream handling lives in identify.c. */
#ifndef CP2P_PROTOCOLS_IDENTIFY_MSG_H
#define CP2P_PROTOCOLS_IDENTIFY_MSG_H

#include <stdbool.h>

#include <cp2p/buf.h>
#include <cp2p/multiaddr.h>

typedef struct cp2p__identify_msg {
    char *protocol_version;   /* NULL when absent */
    char *agent_version;      /* NULL when absent */
    uint8_t *public_key;      /* protobuf PublicKey bytes, NULL when absent */
    size_t public_key_len;
    cp2p_multiaddr **listen_addrs;
    size_t n_listen_addrs;
    cp2p_multiaddr *observed_addr; /* NULL when absent or invalid */
    char **protocols;
    size_t n_protocols;
    uint8_t *signed_peer_record;   /* raw envelope, not verified; NULL when absent */
    size_t signed_peer_record_len;
    /* What decode left out because it was invalid or over a limit (for counters). */
    uint32_t dropped_addrs;
    uint32_t dropped_protocols;
    uint32_t dropped_strings;
} cp2p__identify_msg;

/* Decode one message body (without its length prefix). Invalid addresses, protocols and
 * version strings are dropped and counted in the dropped_* fields, as go-libp2p skips them;
 * a body that is not protobuf, or is larger than CP2P_IDENTIFY_MAX_MSG, is refused.
 * On success *out owns its fields (free with cp2p__identify_msg_fini). Returns 0,
 * CP2P_ELIMIT, CP2P_EPROTO (with *why), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__identify_decode(const uint8_t *in, size_t len, cp2p__identify_msg *out,
                                         const char **why);
/* Encode the message body (no length prefix) into out. Absent (NULL) fields are omitted.
 * Returns 0, CP2P_ELIMIT (larger than CP2P_IDENTIFY_MAX_MSG or out's max), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__identify_encode(const cp2p__identify_msg *m, cp2p_buf *out);
/* Free what decode allocated; safe on a zeroed struct. */
void cp2p__identify_msg_fini(cp2p__identify_msg *m);

#endif
