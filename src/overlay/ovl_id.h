/* Overlay message ids: 64-bit snowflake layout (1 zero bit, 41 bits of milliseconds since
 * CP2P_OVL_ID_EPOCH_MS, 10 bits of host, 12 bits of sequence), made strictly increasing for one
 * generator even when the wall clock steps back and across restarts:
 *
 *   - the generator keeps the last millisecond it used; a clock that reads earlier (stepped
 *     back) or the same millisecond continues from it, and a sequence that overflows borrows
 *     the next millisecond (ids run ahead of the clock until it catches up);
 *   - a persisted floor F promises that every id handed out so far has its millisecond below F.
 *     Before handing out an id at or past F, the generator persists a new floor (its
 *     millisecond + reserve_ms) through cfg.persist and fails if that fails. After a restart,
 *     cp2p__ovl_idgen_init(floor = the persisted F) starts at F, above every earlier id, whatever
 *     the clock says.
 *
 * Twitter's snowflake (and ports) refuse to run or repeat ids when the clock steps back; this
 * one never repeats (the ids are unique per generator, and a receiver keys them by source).
 * Sans-I/O: the time is a parameter and persisting is the caller's callback. One thread. */
#ifndef CP2P_OVERLAY_OVL_ID_H
#define CP2P_OVERLAY_OVL_ID_H

#include <stdint.h>

#include <cp2p/common.h>

/* 2024-01-01T00:00:00Z in Unix milliseconds: 41 bits of ms from it last until 2093. */
#define CP2P_OVL_ID_EPOCH_MS UINT64_C(1704067200000)
#define CP2P_OVL_ID_HOST_BITS 10
#define CP2P_OVL_ID_SEQ_BITS 12
#define CP2P_OVL_ID_MS_BITS 41

/* Store `floor_ms` (relative to the epoch) durably; return 0 or a negative cp2p_err. */
typedef int (*cp2p__ovl_id_persist_fn)(void *ud, uint64_t floor_ms);

typedef struct cp2p__ovl_idgen {
    uint16_t host;        /* 10 bits */
    uint64_t last_ms;     /* millisecond (since the epoch) of the next id */
    uint32_t next_seq;    /* sequence of the next id in last_ms */
    uint64_t reserved_ms; /* the persisted floor: ids below it may be handed out */
    uint64_t reserve_ms;
    cp2p__ovl_id_persist_fn persist; /* NULL: nothing persisted (tests, ephemeral nodes) */
    void *persist_ud;
} cp2p__ovl_idgen;

/* Start a generator. `floor_ms`: the last persisted floor (0 for none); `host`: 10 bits used
 * (e.g. from a hash of the peer ID); `reserve_ms` 0 = CP2P_OVL_ID_RESERVE_MS. Cannot fail. */
void cp2p__ovl_idgen_init(cp2p__ovl_idgen *g, uint16_t host, uint64_t floor_ms,
                          uint64_t reserve_ms, cp2p__ovl_id_persist_fn persist, void *ud);

/* The next id at wall-clock `now_unix_ms`. Returns 0 and *out, the persist callback's error
 * (no id is handed out; a later call tries again), or CP2P_ELIMIT once the 41 bits of
 * milliseconds are used up (year 2093). */
CP2P_NODISCARD int cp2p__ovl_idgen_next(cp2p__ovl_idgen *g, uint64_t now_unix_ms, uint64_t *out);

/* The millisecond (since the epoch), host and sequence parts of an id. */
static inline uint64_t cp2p__ovl_id_ms(uint64_t id)
{
    return id >> (CP2P_OVL_ID_HOST_BITS + CP2P_OVL_ID_SEQ_BITS);
}

#endif
