/* Connection manager core. See connmgr.h. */
#include <stdlib.h>
#include <string.h>

#include "swarm/connmgr.h"
#include "util/alloc.h"
#include "util/hashmap.h"
#include "util/limits.h"
#include "util/token_bucket.h"

typedef struct {
    uint8_t ip[16];
    uint8_t len;
    uint32_t count;
} ip_count;

struct cp2p__connmgr {
    cp2p__connmgr_config cfg;
    /* One entry per IP with live connections (so bounded by them), keyed by the remote's
     * address: the keyed hash map, since anyone with many addresses picks the keys. */
    cp2p_hashmap ips;
    cp2p_token_bucket inbound; /* accepted inbound connections */
    cp2p__connmgr_stats stats;
};

static cp2p_slice ip_key(const void *item)
{
    const ip_count *e = item;
    return (cp2p_slice){e->ip, e->len};
}

void cp2p__connmgr_config_default(cp2p__connmgr_config *c)
{
    *c = (cp2p__connmgr_config){
        .low_water = CP2P_CONNMGR_LOW_WATER,
        .high_water = CP2P_CONNMGR_HIGH_WATER,
        .grace_ms = CP2P_CONNMGR_GRACE_MS,
        .max_per_ip = CP2P_CONNMGR_MAX_PER_IP,
        .inbound_per_sec = CP2P_CONNMGR_INBOUND_PER_SEC,
        .inbound_burst = CP2P_CONNMGR_INBOUND_BURST,
    };
}

int cp2p__connmgr_new(const cp2p__connmgr_config *cfg, uint64_t now, cp2p__connmgr **out)
{
    if (cfg == NULL || cfg->high_water == 0 || cfg->low_water > cfg->high_water ||
        cfg->inbound_per_sec == 0 || cfg->inbound_burst == 0) {
        return CP2P_EINVAL;
    }
    cp2p__connmgr *cm = cp2p_calloc(1, sizeof(*cm));
    if (cm == NULL) {
        return CP2P_ENOMEM;
    }
    cm->cfg = *cfg;
    int rc = cp2p__hashmap_init(&cm->ips, CP2P_HASHMAP_MAX_ITEMS, ip_key);
    if (rc != 0) {
        cp2p_free(cm);
        return rc;
    }
    cp2p__token_bucket_init(&cm->inbound, cfg->inbound_per_sec, cfg->inbound_burst, now);
    *out = cm;
    return 0;
}

static void free_ip(void *item, void *ud)
{
    (void)ud;
    cp2p_free(item);
}

void cp2p__connmgr_free(cp2p__connmgr *cm)
{
    if (cm != NULL) {
        cp2p__hashmap_fini(&cm->ips, free_ip, NULL);
        cp2p_free(cm);
    }
}

static ip_count *find_ip(cp2p__connmgr *cm, const uint8_t *ip, size_t len)
{
    return cp2p__hashmap_find(&cm->ips, ip, len);
}

static bool ip_ok(size_t len)
{
    return len == 4 || len == 16;
}

int cp2p__connmgr_admit(cp2p__connmgr *cm, const uint8_t *ip, size_t iplen, uint64_t now,
                        const char **why)
{
    bool loopback = (iplen == 4 && ip[0] == 127) ||
                    (iplen == 16 && memcmp(ip, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0);
    if (ip_ok(iplen) && cm->cfg.max_per_ip > 0 && !(loopback && cm->cfg.exempt_loopback)) {
        ip_count *e = find_ip(cm, ip, iplen);
        if (e != NULL && e->count >= cm->cfg.max_per_ip) {
            cm->stats.refused_per_ip++;
            *why = "too many connections from this IP address";
            return CP2P_ELIMIT;
        }
    }
    if (!cp2p__token_bucket_take(&cm->inbound, 1, now)) {
        cm->stats.refused_rate++;
        *why = "inbound connection rate limit";
        return CP2P_ELIMIT;
    }
    return 0;
}

int cp2p__connmgr_conn_opened(cp2p__connmgr *cm, const uint8_t *ip, size_t iplen)
{
    if (!ip_ok(iplen)) {
        return 0;
    }
    ip_count *e = find_ip(cm, ip, iplen);
    if (e != NULL) {
        e->count++;
        return 0;
    }
    if ((e = cp2p_calloc(1, sizeof(*e))) == NULL) {
        return CP2P_ENOMEM;
    }
    memcpy(e->ip, ip, iplen);
    e->len = (uint8_t)iplen;
    e->count = 1;
    int rc = cp2p__hashmap_insert(&cm->ips, e);
    if (rc != 0) {
        cp2p_free(e);
    }
    return rc;
}

void cp2p__connmgr_conn_closed(cp2p__connmgr *cm, const uint8_t *ip, size_t iplen)
{
    ip_count *e = ip_ok(iplen) ? find_ip(cm, ip, iplen) : NULL;
    if (e != NULL && --e->count == 0) {
        (void)cp2p__hashmap_remove(&cm->ips, e);
        cp2p_free(e);
    }
}

/* Least valuable first: lowest tag, no open streams, least recently active, oldest. */
static int cmp_value(const void *pa, const void *pb)
{
    const cp2p__connmgr_conn *a = pa, *b = pb;
    if (a->tag != b->tag) {
        return a->tag < b->tag ? -1 : 1;
    }
    if ((a->streams > 0) != (b->streams > 0)) {
        return a->streams > 0 ? 1 : -1;
    }
    if (a->last_active_ms != b->last_active_ms) {
        return a->last_active_ms < b->last_active_ms ? -1 : 1;
    }
    if (a->opened_ms != b->opened_ms) {
        return a->opened_ms < b->opened_ms ? -1 : 1;
    }
    return a->id < b->id ? -1 : (a->id > b->id);
}

size_t cp2p__connmgr_trim(cp2p__connmgr *cm, cp2p__connmgr_conn *conns, size_t n, uint64_t now,
                          uint64_t *victims, size_t max)
{
    if (n <= cm->cfg.high_water) {
        return 0;
    }
    /* Move the eligible ones (not protected, past their grace period) to the front. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool keep = conns[i].protect || now - conns[i].opened_ms < cm->cfg.grace_ms;
        if (!keep) {
            cp2p__connmgr_conn t = conns[k];
            conns[k++] = conns[i];
            conns[i] = t;
        }
    }
    qsort(conns, k, sizeof(*conns), cmp_value);
    size_t want = n - cm->cfg.low_water, out = 0;
    for (size_t i = 0; i < k && out < want && out < max; i++) {
        victims[out++] = conns[i].id;
    }
    cm->stats.trimmed += out;
    return out;
}

const cp2p__connmgr_stats *cp2p__connmgr_stats_get(const cp2p__connmgr *cm)
{
    return &cm->stats;
}
