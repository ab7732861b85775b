/* Connection manager core (issue 4), sans-I/O: which inbound connections to admit (rate and
 * per-IP limits) and which connections to trim when there are too many (low/high watermarks,
 * protected peers, a grace period for new connections, least valuable first). The host feeds
 * it connection open/close events and asks; time is always a parameter. Loop thread only. */
#ifndef CP2P_SWARM_CONNMGR_H
#define CP2P_SWARM_CONNMGR_H

#include <stdbool.h>
#include <stdint.h>

#include <cp2p/peer_id.h>

typedef struct cp2p__connmgr_config {
    uint32_t low_water;       /* trim down to this many connections */
    uint32_t high_water;      /* trim when above this many */
    uint64_t grace_ms;        /* connections younger than this are never trimmed */
    uint32_t max_per_ip;      /* inbound connections from one IP address (0 = no limit) */
    bool exempt_loopback;     /* 127.0.0.0/8 and ::1 are not limited per IP */
    uint32_t inbound_per_sec; /* accepted inbound connections per second (token bucket) */
    uint32_t inbound_burst;
} cp2p__connmgr_config;

void cp2p__connmgr_config_default(cp2p__connmgr_config *c);

/* What the manager needs to know about one live connection to rank it. */
typedef struct cp2p__connmgr_conn {
    uint64_t id;
    cp2p_peer_id peer;
    bool protect;            /* persistent or explicitly protected peer: never trimmed */
    int32_t tag;             /* value protocols give the peer (higher = keep) */
    uint64_t opened_ms;
    uint64_t last_active_ms; /* last stream opened or data moved */
    uint32_t streams;        /* streams open now */
} cp2p__connmgr_conn;

typedef struct cp2p__connmgr_stats {
    uint64_t refused_rate, refused_per_ip, trimmed;
} cp2p__connmgr_stats;

typedef struct cp2p__connmgr cp2p__connmgr;

/* Returns 0, CP2P_EINVAL (low > high, zero high, zero rate or burst), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__connmgr_new(const cp2p__connmgr_config *cfg, uint64_t now,
                                     cp2p__connmgr **out);
void cp2p__connmgr_free(cp2p__connmgr *cm);

/* An inbound connection from ip[0..iplen) (4 or 16 bytes) arrives: 0 to admit it, or
 * CP2P_ELIMIT with *why set (counted) when the inbound rate or the per-IP limit is exceeded.
 * Admitting does not count it yet: call conn_opened once it is accepted. */
CP2P_NODISCARD int cp2p__connmgr_admit(cp2p__connmgr *cm, const uint8_t *ip, size_t iplen,
                                       uint64_t now, const char **why);
/* Track the per-IP count of inbound connections (the host does not count its own dials: the
 * limit is for what others open to us). Returns 0 or CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__connmgr_conn_opened(cp2p__connmgr *cm, const uint8_t *ip, size_t iplen);
void cp2p__connmgr_conn_closed(cp2p__connmgr *cm, const uint8_t *ip, size_t iplen);

/* Given the n live connections, choose those to close so that at most low_water remain, when
 * more than high_water are open: never protected ones, never those within their grace period;
 * among the rest the least valuable first (lowest tag, then no open streams, then least
 * recently active, then oldest). Writes up to max ids to victims and returns how many. The
 * array is reordered. */
size_t cp2p__connmgr_trim(cp2p__connmgr *cm, cp2p__connmgr_conn *conns, size_t n, uint64_t now,
                          uint64_t *victims, size_t max);

const cp2p__connmgr_stats *cp2p__connmgr_stats_get(const cp2p__connmgr *cm);

#endif
