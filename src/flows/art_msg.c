/* Artifact gossip wire codec: protobuf-c decoding with validation, hand-written encoding. */
#include <assert.h>
#include <string.h>

#include <cp2p/codec.h>
#include <cp2p/multiformats.h>

#include "artifact.pb-c.h"
#include "flows/art_msg.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/pb.h"

/* ---- decoding ---- */

void cp2p__art_env_fini(cp2p__art_env *e)
{
    if (e->pb_ != NULL) {
        cp2p__pb_alloc pa;
        cp2p__pb_alloc_init(&pa);
        cp2p_artifact_pb__envelope__free_unpacked(e->pb_, &pa.a);
    }
    cp2p_free(e->mem_);
    *e = (cp2p__art_env){0};
}

static cp2p_slice slice_of(ProtobufCBinaryData d)
{
    return (cp2p_slice){d.data, d.len};
}

static int take_id(bool has, ProtobufCBinaryData d, cp2p_slice *out, const char **why)
{
    if (!has || d.len == 0) {
        *why = "artifact id missing";
        return CP2P_EPROTO;
    }
    if (d.len > CP2P_ART_MAX_ID || cp2p_multihash_validate(d.data, d.len) != 0) {
        *why = "artifact id is not a multihash";
        return CP2P_EPROTO;
    }
    *out = slice_of(d);
    return 0;
}

static bool is_sha256_mh(cp2p_slice id)
{
    return id.len == 2 + CP2P_ART_HASH_LEN && id.ptr[0] == 0x12 && id.ptr[1] == 0x20;
}

static int take_advert(const Cp2pArtifactPb__Advert *a, uint64_t max_size, cp2p__art_attr **attrs,
                       cp2p__art_advert *o, const char **why)
{
    int rc = take_id(a->has_id, a->id, &o->id, why);
    if (rc != 0) {
        return rc;
    }
    if (!a->has_size || a->size == 0) {
        *why = "advert without a size";
        return CP2P_EPROTO;
    }
    if (a->size > max_size) {
        *why = "advert over the artifact size limit";
        return CP2P_ELIMIT;
    }
    if (!a->has_chunk_size || a->chunk_size == 0 || a->chunk_size > CP2P_ART_MAX_CHUNK_SIZE) {
        *why = "advert chunk size out of range";
        return CP2P_EPROTO;
    }
    uint64_t n = cp2p__art_n_chunks(a->size, a->chunk_size);
    if (n > CP2P_ART_MAX_CHUNKS) {
        *why = "advert with too many chunks";
        return CP2P_ELIMIT;
    }
    bool implied = !a->has_chunk_hashes && n == 1 && is_sha256_mh(o->id);
    if (!implied && (!a->has_chunk_hashes || a->chunk_hashes.len != n * CP2P_ART_HASH_LEN)) {
        *why = "advert manifest length is not 32 x chunks";
        return CP2P_EPROTO;
    }
    if (a->n_attributes > CP2P_ART_MAX_ATTRS) {
        *why = "advert with too many attributes";
        return CP2P_ELIMIT;
    }
    o->size = a->size;
    o->chunk_size = a->chunk_size;
    o->n_chunks = (uint32_t)n;
    /* One chunk under a sha2-256 id: the manifest entry is the id's digest. */
    o->hashes = implied ? (cp2p_slice){o->id.ptr + 2, CP2P_ART_HASH_LEN}
                        : slice_of(a->chunk_hashes);
    o->attrs = *attrs;
    o->n_attrs = a->n_attributes;
    for (size_t i = 0; i < a->n_attributes; i++) {
        const Cp2pArtifactPb__Attribute *t = a->attributes[i];
        if (!t->has_key || t->key.len == 0 || t->key.len > CP2P_ART_MAX_ATTR_KEY ||
            (t->has_value && t->value.len > CP2P_ART_MAX_ATTR_VALUE)) {
            *why = "advert attribute key or value out of range";
            return CP2P_EPROTO;
        }
        (*attrs)[i] = (cp2p__art_attr){slice_of(t->key), t->has_value ? slice_of(t->value)
                                                                      : (cp2p_slice){NULL, 0}};
    }
    *attrs += a->n_attributes;
    return 0;
}

static int decode_fields(const Cp2pArtifactPb__Envelope *m, uint64_t max_size, cp2p__art_env *e,
                         const char **why)
{
    size_t n_attrs = 0;
    for (size_t i = 0; i < m->n_adverts; i++) {
        n_attrs += m->adverts[i]->n_attributes;
    }
    for (size_t i = 0; i < m->n_partial_adverts; i++) {
        n_attrs += m->partial_adverts[i]->n_attributes;
    }
    for (size_t i = 0; i < m->n_pushes; i++) {
        if (m->pushes[i]->advert != NULL) {
            n_attrs += m->pushes[i]->advert->n_attributes;
        }
    }
    /* The counts are bounded by the frame size and checked against CP2P_ART_MAX_FRAME_MSGS
     * first, so this one allocation is bounded too. */
    size_t bytes = m->n_adverts * sizeof(cp2p__art_advert) +
                   m->n_requests * sizeof(cp2p__art_request) +
                   m->n_chunks * sizeof(cp2p__art_chunk) + m->n_pushes * sizeof(cp2p__art_push) +
                   m->n_partial_adverts * sizeof(cp2p__art_advert) +
                   m->n_haves * sizeof(cp2p__art_have) + n_attrs * sizeof(cp2p__art_attr);
    if (bytes == 0) {
        return 0;
    }
    uint8_t *mem = cp2p_calloc(1, bytes);
    if (mem == NULL) {
        *why = "no memory for a decoded envelope";
        return CP2P_ENOMEM;
    }
    e->mem_ = mem;
    e->adverts = (cp2p__art_advert *)(void *)mem;
    mem += m->n_adverts * sizeof(cp2p__art_advert);
    e->pushes = (cp2p__art_push *)(void *)mem;
    mem += m->n_pushes * sizeof(cp2p__art_push);
    e->requests = (cp2p__art_request *)(void *)mem;
    mem += m->n_requests * sizeof(cp2p__art_request);
    e->chunks = (cp2p__art_chunk *)(void *)mem;
    mem += m->n_chunks * sizeof(cp2p__art_chunk);
    e->partials = (cp2p__art_advert *)(void *)mem;
    mem += m->n_partial_adverts * sizeof(cp2p__art_advert);
    e->haves = (cp2p__art_have *)(void *)mem;
    mem += m->n_haves * sizeof(cp2p__art_have);
    cp2p__art_attr *attrs = (cp2p__art_attr *)(void *)mem;
    int rc;
    for (size_t i = 0; i < m->n_adverts; i++) {
        if ((rc = take_advert(m->adverts[i], max_size, &attrs, &e->adverts[i], why)) != 0) {
            return rc;
        }
        e->n_adverts++;
    }
    for (size_t i = 0; i < m->n_requests; i++) {
        const Cp2pArtifactPb__Request *r = m->requests[i];
        if ((rc = take_id(r->has_id, r->id, &e->requests[i].id, why)) != 0) {
            return rc;
        }
        if (!r->has_index) {
            *why = "request without an index";
            return CP2P_EPROTO;
        }
        e->requests[i].index = r->index;
        e->n_requests++;
    }
    for (size_t i = 0; i < m->n_chunks; i++) {
        const Cp2pArtifactPb__Chunk *c = m->chunks[i];
        if ((rc = take_id(c->has_id, c->id, &e->chunks[i].id, why)) != 0) {
            return rc;
        }
        if (!c->has_index || !c->has_data || c->data.len == 0) {
            *why = "chunk without an index or data";
            return CP2P_EPROTO;
        }
        if (c->data.len > CP2P_ART_MAX_CHUNK_SIZE) {
            *why = "chunk over the chunk size limit";
            return CP2P_ELIMIT;
        }
        e->chunks[i].index = c->index;
        e->chunks[i].data = slice_of(c->data);
        e->n_chunks++;
    }
    for (size_t i = 0; i < m->n_pushes; i++) {
        const Cp2pArtifactPb__Push *p = m->pushes[i];
        if (p->advert == NULL || !p->has_data) {
            *why = "push without an advert or data";
            return CP2P_EPROTO;
        }
        if ((rc = take_advert(p->advert, max_size, &attrs, &e->pushes[i].advert, why)) != 0) {
            return rc;
        }
        if (p->data.len != e->pushes[i].advert.size) {
            *why = "push data length differs from its advert's size";
            return CP2P_EPROTO;
        }
        e->pushes[i].data = slice_of(p->data);
        e->n_pushes++;
    }
    for (size_t i = 0; i < m->n_partial_adverts; i++) {
        if ((rc = take_advert(m->partial_adverts[i], max_size, &attrs, &e->partials[i], why)) !=
            0) {
            return rc;
        }
        e->n_partials++;
    }
    size_t n_idx = 0;
    for (size_t i = 0; i < m->n_haves; i++) {
        const Cp2pArtifactPb__Have *h = m->haves[i];
        if ((rc = take_id(h->has_id, h->id, &e->haves[i].id, why)) != 0) {
            return rc;
        }
        if (h->n_indexes == 0) {
            *why = "have without an index";
            return CP2P_EPROTO;
        }
        n_idx += h->n_indexes;
        if (h->n_indexes > CP2P_ART_MAX_CHUNKS || n_idx > CP2P_ART_MAX_FRAME_HAVE_INDEXES) {
            *why = "too many have indexes";
            return CP2P_ELIMIT;
        }
        e->haves[i].indexes = h->indexes;
        e->haves[i].n_indexes = h->n_indexes;
        e->n_haves++;
    }
    return 0;
}

int cp2p__art_env_decode(const uint8_t *in, size_t len, size_t max_frame, uint64_t max_size,
                         cp2p__art_env *out, const char **why)
{
    *out = (cp2p__art_env){0};
    if (len > max_frame) {
        *why = "artifact frame over the size limit";
        return CP2P_ELIMIT;
    }
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    Cp2pArtifactPb__Envelope *m = cp2p_artifact_pb__envelope__unpack(&pa.a, len, in);
    if (m == NULL) {
        *why = pa.failed ? "no memory to unpack an artifact frame" : "malformed artifact frame";
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    out->pb_ = m;
    int rc;
    if (m->n_adverts + m->n_requests + m->n_chunks + m->n_pushes + m->n_partial_adverts +
            m->n_haves >
        CP2P_ART_MAX_FRAME_MSGS) {
        *why = "too many messages in one artifact frame";
        rc = CP2P_ELIMIT;
        goto fail;
    }
    if ((rc = decode_fields(m, max_size, out, why)) != 0) {
        goto fail;
    }
    if (m->retransmission != NULL) {
        out->has_retrans = true;
        out->retrans_max = m->retransmission->has_max_adverts ? m->retransmission->max_adverts : 0;
    }
    out->prune = m->has_prune && m->prune;
    return 0;
fail:
    cp2p__art_env_fini(out);
    return rc;
}

/* ---- encoding ---- */

enum { WT_VARINT = 0, WT_LEN = 2 };
static_assert(CP2P_ART_KEY_ADVERT == (1 << 3 | WT_LEN), "advert field key");
static_assert(CP2P_ART_KEY_PARTIAL == (7 << 3 | WT_LEN), "partial advert field key");

static size_t key_size(unsigned field)
{
    return cp2p_uvarint_len((uint64_t)field << 3);
}

static size_t bytes_field_size(unsigned field, size_t len)
{
    return key_size(field) + cp2p_uvarint_len(len) + len;
}

static size_t varint_field_size(unsigned field, uint64_t v)
{
    return key_size(field) + cp2p_uvarint_len(v);
}

static int put_key(cp2p_buf *out, unsigned field, unsigned wt)
{
    return cp2p_uvarint_append(out, ((uint64_t)field << 3) | wt);
}

static int put_bytes(cp2p_buf *out, unsigned field, const void *p, size_t len)
{
    int rc;
    if ((rc = put_key(out, field, WT_LEN)) != 0 || (rc = cp2p_uvarint_append(out, len)) != 0) {
        return rc;
    }
    return len == 0 ? 0 : cp2p_buf_append(out, p, len);
}

static int put_varint(cp2p_buf *out, unsigned field, uint64_t v)
{
    int rc = put_key(out, field, WT_VARINT);
    return rc != 0 ? rc : cp2p_uvarint_append(out, v);
}

static size_t attr_body_size(const cp2p__art_attr *t)
{
    return bytes_field_size(1, t->key.len) + bytes_field_size(2, t->value.len);
}

/* The manifest is left out when the decoder can take it from the id (art_msg.h). */
static bool manifest_implied(const cp2p__art_advert *a)
{
    return a->chunk_size > 0 && a->size <= a->chunk_size && a->hashes.len == CP2P_ART_HASH_LEN && is_sha256_mh(a->id) &&
           memcmp(a->hashes.ptr, a->id.ptr + 2, CP2P_ART_HASH_LEN) == 0;
}

static size_t advert_body_size(const cp2p__art_advert *a)
{
    size_t n = bytes_field_size(1, a->id.len) + varint_field_size(2, a->size) +
               varint_field_size(3, a->chunk_size) +
               (manifest_implied(a) ? 0 : bytes_field_size(4, a->hashes.len));
    for (size_t i = 0; i < a->n_attrs; i++) {
        n += bytes_field_size(5, attr_body_size(&a->attrs[i]));
    }
    return n;
}

static int put_advert_body(cp2p_buf *out, const cp2p__art_advert *a)
{
    int rc;
    if ((rc = put_bytes(out, 1, a->id.ptr, a->id.len)) != 0 ||
        (rc = put_varint(out, 2, a->size)) != 0 || (rc = put_varint(out, 3, a->chunk_size)) != 0 ||
        (!manifest_implied(a) && (rc = put_bytes(out, 4, a->hashes.ptr, a->hashes.len)) != 0)) {
        return rc;
    }
    for (size_t i = 0; i < a->n_attrs; i++) {
        const cp2p__art_attr *t = &a->attrs[i];
        if ((rc = put_key(out, 5, WT_LEN)) != 0 ||
            (rc = cp2p_uvarint_append(out, attr_body_size(t))) != 0 ||
            (rc = put_bytes(out, 1, t->key.ptr, t->key.len)) != 0 ||
            (rc = put_bytes(out, 2, t->value.ptr, t->value.len)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* An Advert as Envelope field `field` (1: advert, 7: partial advert). */
static int advert_field_append(cp2p_buf *out, unsigned field, const cp2p__art_advert *a)
{
    int rc;
    if ((rc = put_key(out, field, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, advert_body_size(a))) != 0) {
        return rc;
    }
    return put_advert_body(out, a);
}

size_t cp2p__art_advert_size(const cp2p__art_advert *a)
{
    return bytes_field_size(1, advert_body_size(a));
}

int cp2p__art_advert_append(cp2p_buf *out, const cp2p__art_advert *a)
{
    return advert_field_append(out, 1, a);
}

size_t cp2p__art_partial_advert_size(const cp2p__art_advert *a)
{
    return bytes_field_size(7, advert_body_size(a));
}

int cp2p__art_partial_advert_append(cp2p_buf *out, const cp2p__art_advert *a)
{
    return advert_field_append(out, 7, a);
}

static size_t packed_size(const uint32_t *v, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += cp2p_uvarint_len(v[i]);
    }
    return len;
}

static size_t have_body_size(cp2p_slice id, const uint32_t *indexes, size_t n)
{
    return bytes_field_size(1, id.len) + bytes_field_size(2, packed_size(indexes, n));
}

size_t cp2p__art_have_size(cp2p_slice id, const uint32_t *indexes, size_t n)
{
    return bytes_field_size(8, have_body_size(id, indexes, n));
}

int cp2p__art_have_append(cp2p_buf *out, cp2p_slice id, const uint32_t *indexes, size_t n)
{
    int rc;
    if ((rc = put_key(out, 8, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, have_body_size(id, indexes, n))) != 0 ||
        (rc = put_bytes(out, 1, id.ptr, id.len)) != 0 || (rc = put_key(out, 2, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, packed_size(indexes, n))) != 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = cp2p_uvarint_append(out, indexes[i])) != 0) {
            return rc;
        }
    }
    return 0;
}

static size_t request_body_size(cp2p_slice id, uint32_t index)
{
    return bytes_field_size(1, id.len) + varint_field_size(2, index);
}

size_t cp2p__art_request_size(cp2p_slice id, uint32_t index)
{
    return bytes_field_size(2, request_body_size(id, index));
}

int cp2p__art_request_append(cp2p_buf *out, cp2p_slice id, uint32_t index)
{
    int rc;
    if ((rc = put_key(out, 2, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, request_body_size(id, index))) != 0 ||
        (rc = put_bytes(out, 1, id.ptr, id.len)) != 0) {
        return rc;
    }
    return put_varint(out, 2, index);
}

static size_t chunk_body_size(cp2p_slice id, uint32_t index, size_t len)
{
    return bytes_field_size(1, id.len) + varint_field_size(2, index) + bytes_field_size(3, len);
}

size_t cp2p__art_chunk_size(cp2p_slice id, uint32_t index, size_t data_len)
{
    return bytes_field_size(3, chunk_body_size(id, index, data_len));
}

int cp2p__art_chunk_append(cp2p_buf *out, cp2p_slice id, uint32_t index, const uint8_t *data,
                           size_t len)
{
    int rc;
    if ((rc = put_key(out, 3, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, chunk_body_size(id, index, len))) != 0 ||
        (rc = put_bytes(out, 1, id.ptr, id.len)) != 0 || (rc = put_varint(out, 2, index)) != 0) {
        return rc;
    }
    return put_bytes(out, 3, data, len);
}

size_t cp2p__art_retrans_size(uint32_t max_adverts)
{
    return bytes_field_size(4, varint_field_size(1, max_adverts));
}

int cp2p__art_retrans_append(cp2p_buf *out, uint32_t max_adverts)
{
    int rc;
    if ((rc = put_key(out, 4, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, varint_field_size(1, max_adverts))) != 0) {
        return rc;
    }
    return put_varint(out, 1, max_adverts);
}

int cp2p__art_prune_append(cp2p_buf *out)
{
    return put_varint(out, 6, 1);
}

static size_t push_body_size(const cp2p__art_advert *a, size_t len)
{
    return bytes_field_size(1, advert_body_size(a)) + bytes_field_size(2, len);
}

size_t cp2p__art_push_size(const cp2p__art_advert *a, size_t data_len)
{
    return bytes_field_size(5, push_body_size(a, data_len));
}

int cp2p__art_push_append(cp2p_buf *out, const cp2p__art_advert *a, const uint8_t *data,
                          size_t len)
{
    int rc;
    if ((rc = put_key(out, 5, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, push_body_size(a, len))) != 0 ||
        (rc = put_key(out, 1, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, advert_body_size(a))) != 0 ||
        (rc = put_advert_body(out, a)) != 0) {
        return rc;
    }
    return put_bytes(out, 2, data, len);
}

size_t cp2p__art_push_raw_size(size_t advert_field_len, size_t data_len)
{
    return bytes_field_size(5, advert_field_len + bytes_field_size(2, data_len));
}

int cp2p__art_push_append_raw(cp2p_buf *out, const uint8_t *advert_field, size_t advert_field_len,
                              const uint8_t *data, size_t len)
{
    int rc;
    if ((rc = put_key(out, 5, WT_LEN)) != 0 ||
        (rc = cp2p_uvarint_append(out, advert_field_len + bytes_field_size(2, len))) != 0 ||
        (rc = cp2p_buf_append(out, advert_field, advert_field_len)) != 0) {
        return rc;
    }
    return put_bytes(out, 2, data, len);
}

int cp2p__art_env_encode(const cp2p__art_env *e, cp2p_buf *out)
{
    int rc;
    for (size_t i = 0; i < e->n_adverts; i++) {
        if ((rc = cp2p__art_advert_append(out, &e->adverts[i])) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < e->n_requests; i++) {
        if ((rc = cp2p__art_request_append(out, e->requests[i].id, e->requests[i].index)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < e->n_chunks; i++) {
        const cp2p__art_chunk *c = &e->chunks[i];
        if ((rc = cp2p__art_chunk_append(out, c->id, c->index, c->data.ptr, c->data.len)) != 0) {
            return rc;
        }
    }
    if (e->has_retrans && (rc = cp2p__art_retrans_append(out, e->retrans_max)) != 0) {
        return rc;
    }
    if (e->prune && (rc = cp2p__art_prune_append(out)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < e->n_pushes; i++) {
        const cp2p__art_push *p = &e->pushes[i];
        if ((rc = cp2p__art_push_append(out, &p->advert, p->data.ptr, p->data.len)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < e->n_partials; i++) {
        if ((rc = cp2p__art_partial_advert_append(out, &e->partials[i])) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < e->n_haves; i++) {
        const cp2p__art_have *h = &e->haves[i];
        if ((rc = cp2p__art_have_append(out, h->id, h->indexes, h->n_indexes)) != 0) {
            return rc;
        }
    }
    return 0;
}
