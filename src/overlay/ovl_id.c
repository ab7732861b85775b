/* Overlay message ids (ovl_id.h). */
#include "overlay/ovl_id.h"

#include "util/limits.h"

#define SEQ_MAX ((UINT32_C(1) << CP2P_OVL_ID_SEQ_BITS) - 1)
#define MS_MAX ((UINT64_C(1) << CP2P_OVL_ID_MS_BITS) - 1)

void cp2p__ovl_idgen_init(cp2p__ovl_idgen *g, uint16_t host, uint64_t floor_ms,
                          uint64_t reserve_ms, cp2p__ovl_id_persist_fn persist, void *ud)
{
    *g = (cp2p__ovl_idgen){
        .host = (uint16_t)(host & ((1u << CP2P_OVL_ID_HOST_BITS) - 1)),
        .last_ms = floor_ms,
        .next_seq = 0,
        .reserved_ms = floor_ms, /* the first id persists a floor above it */
        .reserve_ms = reserve_ms != 0 ? reserve_ms : CP2P_OVL_ID_RESERVE_MS,
        .persist = persist,
        .persist_ud = ud,
    };
}

int cp2p__ovl_idgen_next(cp2p__ovl_idgen *g, uint64_t now_unix_ms, uint64_t *out)
{
    uint64_t t = now_unix_ms > CP2P_OVL_ID_EPOCH_MS ? now_unix_ms - CP2P_OVL_ID_EPOCH_MS : 0;
    uint64_t ms = g->last_ms;
    uint32_t seq = g->next_seq;
    if (t > ms) {
        ms = t;
        seq = 0;
    } else if (seq > SEQ_MAX) {
        ms++; /* borrow the next millisecond */
        seq = 0;
    }
    if (ms > MS_MAX) {
        return CP2P_ELIMIT;
    }
    if (ms >= g->reserved_ms) {
        uint64_t floor = ms + g->reserve_ms;
        if (g->persist != NULL) {
            int rc = g->persist(g->persist_ud, floor);
            if (rc != 0) {
                return rc;
            }
        }
        g->reserved_ms = floor;
    }
    g->last_ms = ms;
    g->next_seq = seq + 1;
    *out = (ms << (CP2P_OVL_ID_HOST_BITS + CP2P_OVL_ID_SEQ_BITS)) |
           ((uint64_t)g->host << CP2P_OVL_ID_SEQ_BITS) | seq;
    return 0;
}
