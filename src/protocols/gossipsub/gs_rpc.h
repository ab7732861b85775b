/* Pubsub RPC codec (floodsub / gossipsub v1.0-v1.2 wire format, proto/gossipsub.proto; field
 * numbers as go-libp2p-pubsub pb/rpc.proto and js @chainsafe/libp2p-gossipsub).
 *
 * Decoding: cp2p__gs_rpc_decode() checks the size, unpacks with protobuf-c (the schema has a
 * fixed depth: no recursion driven by the input), then validates and exposes the content as
 * plain C structs whose slices point into memory owned by the cp2p__gs_rpc (release it with
 * cp2p__gs_rpc_fini). Entries past the per-RPC limits of src/util/limits.h (CP2P_GS_MAX_RPC_*)
 * and invalid entries (topic missing, empty, too long or with a NUL; message ID empty or too
 * long; PX peer ID invalid) are dropped and counted in `dropped`; the rest of the RPC is kept.
 *
 * Encoding is written by hand (fields in tag order, as gogo-protobuf and protons emit them) so
 * that a caller can size frames exactly: the *_size functions give the bytes an item adds to
 * an RPC (outer tag and length included). Signing uses cp2p__gs_msg_encode with
 * with_sig=false (the spec's "Message without signature and key").
 * Pure functions, no state; any thread. */
#ifndef CP2P_PROTOCOLS_GOSSIPSUB_GS_RPC_H
#define CP2P_PROTOCOLS_GOSSIPSUB_GS_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>
#include <cp2p/peer_id.h>

typedef struct cp2p__gs_msg {
    cp2p_slice from, data, seqno, signature, key;
    bool has_from, has_data, has_seqno, has_signature, has_key;
    const char *topic; /* NUL-terminated, 1..CP2P_GS_MAX_TOPIC_LEN bytes, no NUL inside */
} cp2p__gs_msg;

typedef struct cp2p__gs_subopt {
    bool subscribe;
    const char *topic;
} cp2p__gs_subopt;

typedef struct cp2p__gs_ihave {
    const char *topic;
    cp2p_slice *ids;
    size_t n_ids;
} cp2p__gs_ihave;

typedef struct cp2p__gs_idlist { /* IWANT and IDONTWANT */
    cp2p_slice *ids;
    size_t n_ids;
} cp2p__gs_idlist;

typedef struct cp2p__gs_px {
    cp2p_peer_id peer;
    cp2p_slice record; /* signed peer record envelope, len 0 when absent */
} cp2p__gs_px;

typedef struct cp2p__gs_prune {
    const char *topic;
    cp2p__gs_px *peers;
    size_t n_peers;
    bool has_backoff;
    uint64_t backoff_s; /* seconds, as on the wire */
} cp2p__gs_prune;

typedef struct cp2p__gs_rpc_drops {
    uint32_t subs, msgs, control, bad_topic, bad_id, bad_px;
} cp2p__gs_rpc_drops;

typedef struct cp2p__gs_rpc {
    cp2p__gs_subopt *subs;
    size_t n_subs;
    cp2p__gs_msg *msgs;
    size_t n_msgs;
    cp2p__gs_ihave *ihave;
    size_t n_ihave;
    cp2p__gs_idlist *iwant;
    size_t n_iwant;
    const char **graft; /* topics */
    size_t n_graft;
    cp2p__gs_prune *prune;
    size_t n_prune;
    cp2p__gs_idlist *idontwant;
    size_t n_idontwant;
    cp2p__gs_rpc_drops dropped;
    void *pb_; /* internal: the unpacked protobuf the slices point into */
    void *mem_; /* internal: our arrays */
} cp2p__gs_rpc;

/* Decode one RPC body (no length prefix). Returns 0 (release *out with cp2p__gs_rpc_fini),
 * CP2P_ELIMIT (len > max_size), CP2P_EPROTO (not a valid RPC protobuf), CP2P_ENOMEM; on error
 * *out is empty and *why says why (static string). */
CP2P_NODISCARD int cp2p__gs_rpc_decode(const uint8_t *in, size_t len, size_t max_size,
                                       cp2p__gs_rpc *out, const char **why);
/* Release a decoded RPC (safe on a zeroed or already released struct). */
void cp2p__gs_rpc_fini(cp2p__gs_rpc *r);

/* Encode a whole RPC struct (as decoded or built by hand; mem_/pb_ unused). Returns 0 or buf
 * errors (out may hold a partial RPC then: reset it). */
CP2P_NODISCARD int cp2p__gs_rpc_encode(const cp2p__gs_rpc *r, cp2p_buf *out);

/* Building blocks. Each *_append writes one RPC-level or control-level field (tag, length,
 * body) and returns 0 or buf errors; *_size gives its exact length. */
/* A Message body (no outer tag); with_sig=false leaves out signature and key (signing). */
CP2P_NODISCARD int cp2p__gs_msg_encode(const cp2p__gs_msg *m, bool with_sig, cp2p_buf *out);
size_t cp2p__gs_msg_body_size(const cp2p__gs_msg *m, bool with_sig);
/* RPC field 2 (publish) around an already encoded Message body. */
size_t cp2p__gs_rpc_msg_size(size_t body_len);
CP2P_NODISCARD int cp2p__gs_rpc_msg_append(cp2p_buf *out, const uint8_t *body, size_t len);
/* RPC field 1 (subscriptions). */
size_t cp2p__gs_rpc_sub_size(const char *topic);
CP2P_NODISCARD int cp2p__gs_rpc_sub_append(cp2p_buf *out, const char *topic, bool subscribe);
/* RPC field 3 (control) around an already encoded ControlMessage body. */
size_t cp2p__gs_rpc_control_size(size_t body_len);
CP2P_NODISCARD int cp2p__gs_rpc_control_append(cp2p_buf *out, const uint8_t *body, size_t len);
/* ControlMessage fields: ihave (1), iwant (2), graft (3), prune (4), idontwant (5). */
size_t cp2p__gs_ctl_ihave_size(const char *topic, const cp2p_slice *ids, size_t n);
CP2P_NODISCARD int cp2p__gs_ctl_ihave_append(cp2p_buf *out, const char *topic,
                                             const cp2p_slice *ids, size_t n);
/* field: 2 = IWANT, 5 = IDONTWANT */
size_t cp2p__gs_ctl_idlist_size(const cp2p_slice *ids, size_t n);
CP2P_NODISCARD int cp2p__gs_ctl_idlist_append(cp2p_buf *out, unsigned field,
                                              const cp2p_slice *ids, size_t n);
size_t cp2p__gs_ctl_graft_size(const char *topic);
CP2P_NODISCARD int cp2p__gs_ctl_graft_append(cp2p_buf *out, const char *topic);
/* backoff_s is written when has_backoff (v1.1 peers). */
size_t cp2p__gs_ctl_prune_size(const cp2p__gs_prune *p);
CP2P_NODISCARD int cp2p__gs_ctl_prune_append(cp2p_buf *out, const cp2p__gs_prune *p);

#endif
