/* Fuzz signed peer records (src/crypto/peer_record.h).
 *
 * The input is tried twice:
 *  1. as an envelope, through cp2p__peer_record_open (random bytes rarely carry a valid
 *     signature, so this mostly exercises the envelope decoder and the refusals);
 *  2. as a PeerRecord payload, sealed with a fixed key and then opened, which reaches the
 *     record decoder behind the signature check.
 * Invariants (abort() when broken): an opened record holds at most CP2P_PEER_RECORD_MAX_ADDRS
 * addresses; in (2) the result is 0, CP2P_EPROTO or CP2P_EPEERID, and on success the peer is
 * the key's; a record sealed again from what was opened opens to the same peer, seq and
 * addresses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/keys.h>

#include "crypto/peer_record.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static cp2p_privkey *fixed_key(void)
{
    static cp2p_privkey *k;
    if (k == NULL) {
        uint8_t seed[32];
        for (size_t i = 0; i < sizeof(seed); i++) {
            seed[i] = (uint8_t)(i + 1);
        }
        check(cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &k) == 0);
    }
    return k;
}

static void check_reseal(const cp2p_privkey *k, const cp2p__peer_record *r)
{
    cp2p_buf b;
    cp2p__peer_record again;
    cp2p_buf_init(&b, CP2P_PEER_RECORD_MAX);
    int rc = cp2p__peer_record_seal(k, (const cp2p_multiaddr *const *)r->addrs, r->n_addrs,
                                    r->seq, &b);
    if (rc == CP2P_ELIMIT) { /* long addresses can make the new envelope too large */
        cp2p_buf_fini(&b);
        return;
    }
    check(rc == 0);
    check(cp2p__peer_record_open(b.ptr, b.len, &again) == 0);
    check(cp2p_peer_id_equal(&again.peer, &r->peer) && again.seq == r->seq &&
          again.n_addrs == r->n_addrs && again.dropped_addrs == 0);
    for (size_t i = 0; i < r->n_addrs; i++) {
        check(cp2p_multiaddr_equal(again.addrs[i], r->addrs[i]));
    }
    cp2p__peer_record_fini(&again);
    cp2p_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p__peer_record r;
    if (cp2p__peer_record_open(data, size, &r) == 0) {
        check(r.n_addrs <= CP2P_PEER_RECORD_MAX_ADDRS);
        cp2p__peer_record_fini(&r);
    }

    const cp2p_privkey *k = fixed_key();
    cp2p_buf env;
    cp2p_buf_init(&env, CP2P_PEER_RECORD_MAX);
    if (cp2p__peer_record_seal_payload(k, data, size, &env) == 0) {
        int rc = cp2p__peer_record_open(env.ptr, env.len, &r);
        check(rc == 0 || rc == CP2P_EPROTO || rc == CP2P_EPEERID);
        if (rc == 0) {
            cp2p_peer_id id;
            check(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id) == 0);
            check(cp2p_peer_id_equal(&id, &r.peer) && r.n_addrs <= CP2P_PEER_RECORD_MAX_ADDRS);
            check_reseal(k, &r);
            cp2p__peer_record_fini(&r);
        }
    }
    cp2p_buf_fini(&env);
    return 0;
}
