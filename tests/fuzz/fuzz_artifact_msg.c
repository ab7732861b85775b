/* Fuzz the artifact gossip frame decoder (src/flows/art_msg.c): whatever decodes must encode,
 * decode again to the same content, and encode again to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "flows/art_msg.h"
#include "util/limits.h"

static void same_slice(cp2p_slice a, cp2p_slice b)
{
    if (a.len != b.len || (a.len > 0 && memcmp(a.ptr, b.ptr, a.len) != 0)) {
        abort();
    }
}

static void same_advert(const cp2p__art_advert *a, const cp2p__art_advert *b)
{
    same_slice(a->id, b->id);
    same_slice(a->hashes, b->hashes);
    if (a->size != b->size || a->chunk_size != b->chunk_size || a->n_chunks != b->n_chunks ||
        a->n_attrs != b->n_attrs || (uint64_t)a->n_chunks * 32 != a->hashes.len) {
        abort();
    }
    for (size_t i = 0; i < a->n_attrs; i++) {
        same_slice(a->attrs[i].key, b->attrs[i].key);
        same_slice(a->attrs[i].value, b->attrs[i].value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p__art_env m, again;
    const char *why = NULL;
    cp2p_buf b, b2;
    if (cp2p__art_env_decode(data, size, CP2P_ART_MAX_FRAME, CP2P_ART_MAX_SIZE, &m, &why) != 0) {
        return 0;
    }
    /* Unknown fields are not re-encoded, and a repeated optional message merges: the
     * re-encoding may be shorter, never longer than twice the input. */
    cp2p_buf_init(&b, 2 * CP2P_ART_MAX_FRAME);
    cp2p_buf_init(&b2, 2 * CP2P_ART_MAX_FRAME);
    if (cp2p__art_env_encode(&m, &b) != 0 ||
        cp2p__art_env_decode(b.ptr, b.len, 2 * CP2P_ART_MAX_FRAME, CP2P_ART_MAX_SIZE, &again,
                             &why) != 0) {
        abort();
    }
    if (again.n_adverts != m.n_adverts || again.n_requests != m.n_requests ||
        again.n_chunks != m.n_chunks || again.n_pushes != m.n_pushes ||
        again.has_retrans != m.has_retrans || again.retrans_max != m.retrans_max ||
        again.prune != m.prune || again.n_partials != m.n_partials ||
        again.n_haves != m.n_haves) {
        abort();
    }
    for (size_t i = 0; i < m.n_partials; i++) {
        same_advert(&m.partials[i], &again.partials[i]);
    }
    for (size_t i = 0; i < m.n_haves; i++) {
        same_slice(m.haves[i].id, again.haves[i].id);
        if (m.haves[i].n_indexes != again.haves[i].n_indexes || m.haves[i].n_indexes == 0 ||
            m.haves[i].n_indexes > CP2P_ART_MAX_CHUNKS ||
            memcmp(m.haves[i].indexes, again.haves[i].indexes,
                   m.haves[i].n_indexes * sizeof(uint32_t)) != 0) {
            abort();
        }
    }
    for (size_t i = 0; i < m.n_adverts; i++) {
        same_advert(&m.adverts[i], &again.adverts[i]);
    }
    for (size_t i = 0; i < m.n_requests; i++) {
        same_slice(m.requests[i].id, again.requests[i].id);
        if (m.requests[i].index != again.requests[i].index) {
            abort();
        }
    }
    for (size_t i = 0; i < m.n_chunks; i++) {
        same_slice(m.chunks[i].id, again.chunks[i].id);
        same_slice(m.chunks[i].data, again.chunks[i].data);
        if (m.chunks[i].index != again.chunks[i].index) {
            abort();
        }
    }
    for (size_t i = 0; i < m.n_pushes; i++) {
        same_advert(&m.pushes[i].advert, &again.pushes[i].advert);
        same_slice(m.pushes[i].data, again.pushes[i].data);
        if (m.pushes[i].data.len != m.pushes[i].advert.size) {
            abort();
        }
    }
    if (cp2p__art_env_encode(&again, &b2) != 0 || b2.len != b.len ||
        (b.len > 0 && memcmp(b.ptr, b2.ptr, b.len) != 0)) {
        abort();
    }
    cp2p__art_env_fini(&again);
    cp2p__art_env_fini(&m);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&b2);
    return 0;
}
