/* Artifact gossip wire codec (proto/artifact.proto, docs/ARTIFACTS.md). One frame body is an
 * Envelope: a batch of adverts, partial adverts, haves, chunk requests, chunks, pushes and at
 * most one retransmission request.
 *
 * Decoding: cp2p__art_env_decode() checks the size, unpacks with protobuf-c (fixed schema depth:
 * no recursion driven by the input), validates every message and exposes them as plain C
 * structs whose slices point into memory owned by the cp2p__art_env (release it with
 * cp2p__art_env_fini). Any invalid message rejects the whole frame (the peer sent bytes no
 * correct sender produces): missing id or id that is not a multihash, size 0 or over the limit,
 * chunk size 0 or over CP2P_ART_MAX_CHUNK_SIZE, a manifest whose length is not 32 x the chunk
 * count, more than CP2P_ART_MAX_CHUNKS chunks or CP2P_ART_MAX_ATTRS attributes, a push whose
 * data length differs from its advert's size, more than CP2P_ART_MAX_FRAME_MSGS messages, a
 * partial advert invalid as an advert, a Have without id or without index or with more than
 * CP2P_ART_MAX_CHUNKS indexes, more than CP2P_ART_MAX_FRAME_HAVE_INDEXES Have indexes in one
 * frame. Whether a chunk or a Have belongs to a known artifact, and whether its index is in
 * range, is the core's business (art_core.h).
 *
 * Encoding is written by hand: each *_append adds one Envelope field (tag, length, body) to a
 * buffer, and since concatenated Envelopes are one Envelope, a sender batches by appending;
 * *_size gives the exact bytes a field adds, so frames can be cut under a limit.
 * Pure functions, no state; any thread. */
#ifndef CP2P_FLOWS_ART_MSG_H
#define CP2P_FLOWS_ART_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>

#define CP2P_ART_HASH_LEN 32 /* SHA-256, one manifest entry */

typedef struct cp2p__art_attr {
    cp2p_slice key, value;
} cp2p__art_attr;

typedef struct cp2p__art_advert {
    cp2p_slice id;
    uint64_t size;
    uint32_t chunk_size;
    uint32_t n_chunks;  /* ceil(size / chunk_size), derived */
    cp2p_slice hashes;  /* n_chunks x 32 bytes */
    const cp2p__art_attr *attrs;
    size_t n_attrs;
} cp2p__art_advert;

typedef struct cp2p__art_request {
    cp2p_slice id;
    uint32_t index;
} cp2p__art_request;

typedef struct cp2p__art_chunk {
    cp2p_slice id;
    uint32_t index;
    cp2p_slice data;
} cp2p__art_chunk;

/* Indexes point into the decoded protobuf (or the caller's array when encoding). */
typedef struct cp2p__art_have {
    cp2p_slice id;
    const uint32_t *indexes;
    size_t n_indexes; /* 1..CP2P_ART_MAX_CHUNKS */
} cp2p__art_have;

typedef struct cp2p__art_push {
    cp2p__art_advert advert;
    cp2p_slice data;
} cp2p__art_push;

typedef struct cp2p__art_env {
    cp2p__art_advert *adverts;
    size_t n_adverts;
    cp2p__art_request *requests;
    size_t n_requests;
    cp2p__art_chunk *chunks;
    size_t n_chunks;
    cp2p__art_push *pushes;
    size_t n_pushes;
    bool has_retrans;
    uint32_t retrans_max; /* 0: the receiver's bound */
    bool prune;           /* the sender asks us to advertise small artifacts, not push them */
    cp2p__art_advert *partials; /* partial adverts: the sender is fetching these */
    size_t n_partials;
    cp2p__art_have *haves;
    size_t n_haves;
    void *pb_;            /* internal: the unpacked protobuf the slices point into */
    void *mem_;           /* internal: our arrays */
} cp2p__art_env;

/* Chunks of an artifact of `size` bytes cut every `chunk_size` (> 0). */
static inline uint64_t cp2p__art_n_chunks(uint64_t size, uint32_t chunk_size)
{
    return size / chunk_size + (size % chunk_size != 0);
}

/* Decode one frame body (no length prefix). max_size bounds artifact sizes in adverts and
 * pushes. Returns 0 (release *out with cp2p__art_env_fini), CP2P_ELIMIT (len > max_frame, or a
 * count or size over its limit), CP2P_EPROTO (not a valid Envelope), CP2P_ENOMEM; on error *out
 * is empty and *why says why (static string). */
CP2P_NODISCARD int cp2p__art_env_decode(const uint8_t *in, size_t len, size_t max_frame,
                                        uint64_t max_size, cp2p__art_env *out, const char **why);
/* Release a decoded Envelope (safe on a zeroed or already released struct). */
void cp2p__art_env_fini(cp2p__art_env *e);

/* Encode a whole Envelope (as decoded or built by hand; pb_/mem_ unused). Returns 0 or buf
 * errors. */
CP2P_NODISCARD int cp2p__art_env_encode(const cp2p__art_env *e, cp2p_buf *out);

/* Envelope fields: 1 advert, 2 request, 3 chunk, 4 retransmission, 5 push, 6 prune, 7 partial
 * advert, 8 have.
 * An advert of one chunk whose id is a sha2-256 multihash equal to the SHA-256 of that chunk
 * is encoded without its manifest (field 4): the decoder takes the id's digest as the one
 * manifest entry (hashes then points into the id). */
size_t cp2p__art_advert_size(const cp2p__art_advert *a);
CP2P_NODISCARD int cp2p__art_advert_append(cp2p_buf *out, const cp2p__art_advert *a);
/* A partial advert (field 7): the same body as an advert. An encoded advert field becomes a
 * partial advert field by replacing its first byte, the key (one byte for both). */
#define CP2P_ART_KEY_ADVERT 0x0a  /* field 1, length-delimited */
#define CP2P_ART_KEY_PARTIAL 0x3a /* field 7, length-delimited */
size_t cp2p__art_partial_advert_size(const cp2p__art_advert *a);
CP2P_NODISCARD int cp2p__art_partial_advert_append(cp2p_buf *out, const cp2p__art_advert *a);
/* A Have (field 8) of indexes[0..n) of id, packed. */
size_t cp2p__art_have_size(cp2p_slice id, const uint32_t *indexes, size_t n);
CP2P_NODISCARD int cp2p__art_have_append(cp2p_buf *out, cp2p_slice id, const uint32_t *indexes,
                                         size_t n);
size_t cp2p__art_request_size(cp2p_slice id, uint32_t index);
CP2P_NODISCARD int cp2p__art_request_append(cp2p_buf *out, cp2p_slice id, uint32_t index);
size_t cp2p__art_chunk_size(cp2p_slice id, uint32_t index, size_t data_len);
CP2P_NODISCARD int cp2p__art_chunk_append(cp2p_buf *out, cp2p_slice id, uint32_t index,
                                          const uint8_t *data, size_t len);
size_t cp2p__art_retrans_size(uint32_t max_adverts);
CP2P_NODISCARD int cp2p__art_retrans_append(cp2p_buf *out, uint32_t max_adverts);
/* Field 6 (prune = true): 2 bytes. */
CP2P_NODISCARD int cp2p__art_prune_append(cp2p_buf *out);
size_t cp2p__art_push_size(const cp2p__art_advert *a, size_t data_len);
CP2P_NODISCARD int cp2p__art_push_append(cp2p_buf *out, const cp2p__art_advert *a,
                                         const uint8_t *data, size_t len);
/* The same from an advert already encoded as an Envelope field (field 1, which is also the
 * Push's field for its advert). */
size_t cp2p__art_push_raw_size(size_t advert_field_len, size_t data_len);
CP2P_NODISCARD int cp2p__art_push_append_raw(cp2p_buf *out, const uint8_t *advert_field,
                                             size_t advert_field_len, const uint8_t *data,
                                             size_t len);

#endif
