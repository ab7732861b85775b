/* Overlay core (src/overlay/ovl_core.c) in a deterministic simulator: N cores on virtual time,
 * frames delivered after random delays, links failing and recovering at random.
 *
 * Properties (every seed):
 *   - no forwarding loop, ever: after every single event, following the selected next hops
 *     from any node toward any destination never revisits a node; and no data message sent
 *     during the run dies of its hop limit;
 *   - convergence: after each quiet period, every node's distance-vector metric and
 *     link-state path cost equal the shortest-path distance in the current graph, and
 *     unreachable destinations have no route;
 *   - contrast: the seed's naive merge on the same sequence forms forwarding loops, and on a
 *     line A-B-C with B-C cut counts to infinity.
 * Plus reliable delivery: exactly-once under duplication, retransmission across a partition
 * that heals, failure after the retry limit, EFULL at the unacked limit, bounded dedup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "overlay/ovl_core.h"
#include "util/limits.h"

#define MAXN 16

typedef struct sim_msg {
    uint64_t at;
    int from, to;
    uint32_t gen; /* link generation when sent: frames of a dead link are dropped */
    cp2p_buf frame;
} sim_msg;

typedef struct sim {
    int n;
    uint64_t now;
    uint64_t rng;
    cp2p_privkey *keys[MAXN];
    cp2p_peer_id ids[MAXN];
    cp2p__ovl *cores[MAXN];
    bool edge[MAXN][MAXN];
    bool up[MAXN][MAXN];
    uint32_t cost[MAXN][MAXN];
    uint32_t gen[MAXN][MAXN];
    sim_msg *q;
    size_t nq, capq;
    uint64_t dup_pct; /* duplicate this percentage of frames */
    uint64_t loops_checked;
    int delivered[MAXN];
    uint64_t next_id[MAXN];
} sim;

static uint64_t rnd(sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static uint64_t core_rand(void *ud)
{
    return rnd(ud);
}

static int idx_of(sim *s, const cp2p_peer_id *id)
{
    for (int i = 0; i < s->n; i++) {
        if (cp2p_peer_id_equal(&s->ids[i], id)) {
            return i;
        }
    }
    return -1;
}

static void push(sim *s, int from, int to, cp2p_buf frame, uint64_t delay)
{
    if (s->nq == s->capq) {
        s->capq = s->capq ? s->capq * 2 : 256;
        s->q = realloc(s->q, s->capq * sizeof(*s->q));
        assert_non_null(s->q);
    }
    s->q[s->nq++] = (sim_msg){.at = s->now + delay, .from = from, .to = to,
                              .gen = s->gen[from][to], .frame = frame};
}

static void drain(sim *s, int i)
{
    cp2p_peer_id to;
    cp2p_buf f;
    cp2p__ovl_event ev;
    while (cp2p__ovl_take_out(s->cores[i], &to, &f)) {
        int j = idx_of(s, &to);
        assert_true(j >= 0);
        assert_true(s->up[i][j]); /* a core only sends to its neighbours */
        if (s->dup_pct != 0 && rnd(s) % 100 < s->dup_pct) {
            cp2p_buf copy;
            cp2p_buf_init(&copy, f.max);
            assert_int_equal(cp2p_buf_append(&copy, f.ptr, f.len), 0);
            push(s, i, j, copy, 1 + rnd(s) % 30);
        }
        push(s, i, j, f, 1 + rnd(s) % 20);
    }
    while (cp2p__ovl_poll_event(s->cores[i], &ev)) {
        if (ev.kind == CP2P_OVL_EV_DELIVER) {
            s->delivered[i]++;
        }
        cp2p__ovl_event_fini(&ev);
    }
}

/* Following next hops toward d from every node never revisits a node. */
static void check_no_loop(sim *s)
{
    for (int d = 0; d < s->n; d++) {
        for (int start = 0; start < s->n; start++) {
            bool seen[MAXN] = {0};
            int c = start;
            while (c != d) {
                cp2p__ovl_route_info ri;
                assert_false(seen[c]);
                seen[c] = true;
                if (!cp2p__ovl_route_get(s->cores[c], &s->ids[d], &ri)) {
                    break;
                }
                int nx = idx_of(s, &ri.next_hop);
                assert_true(nx >= 0);
                assert_true(s->up[c][nx]); /* routes only through live links */
                c = nx;
            }
        }
    }
    s->loops_checked++;
}

static void link_up(sim *s, int a, int b)
{
    s->up[a][b] = s->up[b][a] = true;
    s->gen[a][b]++;
    s->gen[b][a]++;
    assert_int_equal(cp2p__ovl_add_neighbour(s->cores[a], &s->ids[b], s->cost[a][b], s->now), 0);
    drain(s, a);
    assert_int_equal(cp2p__ovl_add_neighbour(s->cores[b], &s->ids[a], s->cost[a][b], s->now), 0);
    drain(s, b);
}

static void link_down(sim *s, int a, int b)
{
    s->up[a][b] = s->up[b][a] = false;
    s->gen[a][b]++;
    s->gen[b][a]++;
    cp2p__ovl_remove_neighbour(s->cores[a], &s->ids[b], s->now);
    drain(s, a);
    cp2p__ovl_remove_neighbour(s->cores[b], &s->ids[a], s->now);
    drain(s, b);
}

/* Run events until `until`, checking for loops after each. */
static void run(sim *s, uint64_t until, bool check)
{
    for (;;) {
        uint64_t t = UINT64_MAX;
        size_t mi = SIZE_MAX;
        for (size_t k = 0; k < s->nq; k++) {
            if (s->q[k].at < t) {
                t = s->q[k].at;
                mi = k;
            }
        }
        int ti = -1;
        for (int i = 0; i < s->n; i++) {
            uint64_t d = cp2p__ovl_deadline(s->cores[i]);
            if (d < t) {
                t = d;
                ti = i;
                mi = SIZE_MAX;
            }
        }
        if (t > until) {
            s->now = until;
            return;
        }
        s->now = t > s->now ? t : s->now;
        if (ti >= 0) {
            cp2p__ovl_on_timeout(s->cores[ti], s->now);
            drain(s, ti);
        } else {
            sim_msg m = s->q[mi];
            s->q[mi] = s->q[--s->nq];
            if (m.gen == s->gen[m.from][m.to] && s->up[m.from][m.to]) {
                const char *why = NULL;
                int rc = cp2p__ovl_on_frame(s->cores[m.to], &s->ids[m.from], m.frame.ptr,
                                            m.frame.len, s->now, &why);
                if (rc != 0) {
                    fail_msg("on_frame: %d %s", rc, why ? why : "");
                }
                drain(s, m.to);
            }
            cp2p_buf_fini(&m.frame);
        }
        if (check) {
            check_no_loop(s);
        }
    }
}

/* Shortest distances from src over live links (Dijkstra, O(n^2)). */
static void shortest(sim *s, int src, uint32_t *dist)
{
    bool done[MAXN] = {0};
    for (int i = 0; i < s->n; i++) {
        dist[i] = UINT32_MAX;
    }
    dist[src] = 0;
    for (;;) {
        int u = -1;
        for (int i = 0; i < s->n; i++) {
            if (!done[i] && dist[i] != UINT32_MAX && (u < 0 || dist[i] < dist[u])) {
                u = i;
            }
        }
        if (u < 0) {
            return;
        }
        done[u] = true;
        for (int v = 0; v < s->n; v++) {
            if (s->up[u][v] && dist[u] + s->cost[u][v] < dist[v]) {
                dist[v] = dist[u] + s->cost[u][v];
            }
        }
    }
}

static void check_converged(sim *s)
{
    for (int i = 0; i < s->n; i++) {
        uint32_t dist[MAXN];
        shortest(s, i, dist);
        for (int d = 0; d < s->n; d++) {
            if (d == i) {
                continue;
            }
            cp2p__ovl_route_info ri;
            bool has = cp2p__ovl_route_get(s->cores[i], &s->ids[d], &ri);
            cp2p_peer_id path[CP2P_OVL_MAX_HOPS];
            uint32_t sdist = 0;
            int np = cp2p__ovl_source_route(s->cores[i], &s->ids[d], path, CP2P_OVL_MAX_HOPS,
                                            &sdist);
            if (dist[d] == UINT32_MAX) {
                assert_false(has);
                assert_int_equal(np, 0);
            } else {
                if (!has || ri.metric != dist[d]) {
                    fail_msg("node %d -> %d: metric %u, shortest %u", i, d,
                             has ? ri.metric : 0xffffu, dist[d]);
                }
                assert_true(np > 0);
                assert_int_equal(sdist, dist[d]);
                assert_true(cp2p_peer_id_equal(&path[np - 1], &s->ids[d]));
            }
        }
    }
}

static void sim_init(sim *s, int n, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->rng = seed * 0x9E3779B97F4A7C15ull + 1;
    s->now = 1000;
    for (int i = 0; i < n; i++) {
        uint8_t sd[32] = {0};
        sd[0] = (uint8_t)(i + 1);
        sd[1] = (uint8_t)seed;
        assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, sd, &s->keys[i]), 0);
        assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(s->keys[i]), &s->ids[i]),
                         0);
        cp2p__ovl_config cfg;
        cp2p__ovl_config_default(&cfg);
        cfg.key = s->keys[i];
        cfg.rand = core_rand;
        cfg.rand_ud = s;
        cfg.max_nodes = 64;
        cfg.initial_seqno = (uint32_t)rnd(s);
        cfg.initial_lsa_seq = 1;
        cfg.rto_initial_ms = 300;
        cfg.rto_max_ms = 2000;
        cfg.max_out_frames = 1 << 16;
        assert_int_equal(cp2p__ovl_new(&cfg, s->now, &s->cores[i]), 0);
        s->next_id[i] = ((uint64_t)i + 1) << 40;
    }
}

static void sim_fini(sim *s)
{
    for (size_t k = 0; k < s->nq; k++) {
        cp2p_buf_fini(&s->q[k].frame);
    }
    free(s->q);
    for (int i = 0; i < s->n; i++) {
        cp2p__ovl_free(s->cores[i]);
        cp2p_privkey_free(s->keys[i]);
    }
}

/* A random connected sparse graph: a random spanning tree plus extra edges. */
static void random_graph(sim *s, int extra, bool weighted)
{
    for (int i = 1; i < s->n; i++) {
        int j = (int)(rnd(s) % (uint64_t)i);
        s->edge[i][j] = s->edge[j][i] = true;
    }
    for (int k = 0; k < extra; k++) {
        int a = (int)(rnd(s) % (uint64_t)s->n), b = (int)(rnd(s) % (uint64_t)s->n);
        if (a != b) {
            s->edge[a][b] = s->edge[b][a] = true;
        }
    }
    for (int a = 0; a < s->n; a++) {
        for (int b = a + 1; b < s->n; b++) {
            s->cost[a][b] = s->cost[b][a] = weighted ? 1 + (uint32_t)(rnd(s) % 4) : 1;
            if (s->edge[a][b]) {
                link_up(s, a, b);
            }
        }
    }
}

/* ---- the seed's naive distance vector, for contrast ---- */

typedef struct naive {
    int n;
    uint32_t dist[MAXN][MAXN];
    int next[MAXN][MAXN];
} naive;

#define NAIVE_INF 16 /* RIP's infinity, the hop limit */

static void naive_init(naive *v, int n)
{
    v->n = n;
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < n; d++) {
            v->dist[i][d] = i == d ? 0 : NAIVE_INF;
            v->next[i][d] = i == d ? i : -1;
        }
    }
}

/* Node i merges neighbour j's table: a new or shorter route wins, and the current next hop's
 * word is taken as it is (Bellman-Ford as the seed describes it). */
static void naive_merge(naive *v, int i, int j)
{
    for (int d = 0; d < v->n; d++) {
        uint32_t m = v->dist[j][d] + 1 > NAIVE_INF ? NAIVE_INF : v->dist[j][d] + 1;
        if (d == i) {
            continue;
        }
        if (v->next[i][d] == j || m < v->dist[i][d]) {
            v->dist[i][d] = m;
            v->next[i][d] = m >= NAIVE_INF ? -1 : j;
        }
    }
}

static void naive_link_down(naive *v, int a, int b)
{
    for (int d = 0; d < v->n; d++) {
        if (v->next[a][d] == b) {
            v->dist[a][d] = NAIVE_INF;
            v->next[a][d] = -1;
        }
        if (v->next[b][d] == a) {
            v->dist[b][d] = NAIVE_INF;
            v->next[b][d] = -1;
        }
    }
}

static bool naive_has_loop(const naive *v)
{
    for (int d = 0; d < v->n; d++) {
        for (int st = 0; st < v->n; st++) {
            bool seen[MAXN] = {0};
            for (int c = st; c != d && c >= 0; c = v->next[c][d]) {
                if (seen[c]) {
                    return true;
                }
                seen[c] = true;
            }
        }
    }
    return false;
}

/* One round of the naive protocol: every node pushes its table to each live neighbour, in a
 * random order. Returns the loops seen after each merge. */
static int naive_round(naive *v, sim *s)
{
    int loops = 0;
    for (int k = 0; k < v->n * v->n; k++) {
        int i = (int)(rnd(s) % (uint64_t)v->n), j = (int)(rnd(s) % (uint64_t)v->n);
        if (i != j && s->up[i][j]) {
            naive_merge(v, i, j);
            loops += naive_has_loop(v);
        }
    }
    return loops;
}

/* ---- tests ---- */

static void send_some(sim *s, int count)
{
    for (int k = 0; k < count; k++) {
        int a = (int)(rnd(s) % (uint64_t)s->n), b = (int)(rnd(s) % (uint64_t)s->n);
        if (a == b) {
            continue;
        }
        uint32_t flags = (rnd(s) & 1) ? CP2P_OVL_F_SOURCE : 0;
        int rc = cp2p__ovl_send(s->cores[a], &s->ids[b], "x", 1, flags, 0, ++s->next_id[a],
                                s->now);
        assert_true(rc == 0 || rc == CP2P_ENOENT);
        drain(s, a);
    }
}

static void random_failures_never_loop_and_converge(void **state)
{
    (void)state;
    int naive_loops = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        sim *s = calloc(1, sizeof(*s));
        naive nv;
        sim_init(s, 12, seed);
        random_graph(s, 8, seed % 2 == 0);
        run(s, s->now + 20000, true);
        check_converged(s);
        naive_init(&nv, s->n);
        for (int r = 0; r < 20; r++) {
            naive_loops += naive_round(&nv, s);
        }
        for (int round = 0; round < 4; round++) {
            /* A burst of changes, overlapping with the convergence they cause. */
            for (int k = 0; k < 6; k++) {
                int a = (int)(rnd(s) % 12), b = (int)(rnd(s) % 12);
                if (a == b || !s->edge[a][b]) {
                    continue;
                }
                if (s->up[a][b]) {
                    link_down(s, a, b);
                    naive_link_down(&nv, a, b);
                } else {
                    link_up(s, a, b);
                }
                check_no_loop(s);
                send_some(s, 10);
                run(s, s->now + rnd(s) % 400, true);
                for (int r = 0; r < 3; r++) {
                    naive_loops += naive_round(&nv, s);
                }
            }
            run(s, s->now + 30000, true);
            check_converged(s);
        }
        for (int i = 0; i < s->n; i++) {
            cp2p__ovl_stats st;
            cp2p__ovl_stats_get(s->cores[i], &st);
            assert_int_equal(st.dropped_hop_limit, 0); /* no message went round in circles */
            assert_int_equal(st.bad_signature, 0);
            assert_int_equal(st.frames_rejected, 0);
        }
        printf("seed %llu: %llu loop checks, 0 loops\n", (unsigned long long)seed,
               (unsigned long long)s->loops_checked);
        sim_fini(s);
        free(s);
    }
    printf("naive merge on the same sequences: %d loop observations\n", naive_loops);
    assert_true(naive_loops > 0);
}

static void naive_counts_to_infinity_on_a_line(void **state)
{
    (void)state;
    /* A - B - C; B-C fails. Babel: A and B lose C at once (retraction, no loop). Naive: A still
     * advertises C at 2, B takes it (3 via A), A follows its next hop B (4), ... */
    sim *s = calloc(1, sizeof(*s));
    naive nv;
    sim_init(s, 3, 99);
    s->cost[0][1] = s->cost[1][0] = s->cost[1][2] = s->cost[2][1] = 1;
    link_up(s, 0, 1);
    link_up(s, 1, 2);
    run(s, s->now + 10000, true);
    check_converged(s);
    naive_init(&nv, 3);
    for (int r = 0; r < 3; r++) {
        naive_merge(&nv, 0, 1);
        naive_merge(&nv, 1, 0);
        naive_merge(&nv, 1, 2);
        naive_merge(&nv, 2, 1);
    }
    assert_int_equal(nv.dist[0][2], 2);
    link_down(s, 1, 2);
    naive_link_down(&nv, 1, 2);
    int steps = 0, loops = 0;
    while (nv.dist[0][2] < NAIVE_INF && steps < 100) {
        naive_merge(&nv, 1, 0); /* B hears A's stale "C at 2" */
        loops += naive_has_loop(&nv);
        naive_merge(&nv, 0, 1);
        loops += naive_has_loop(&nv);
        steps++;
    }
    printf("naive: C unreachable after %d exchanges, a loop in %d of them\n", steps, loops);
    assert_true(steps >= 6);
    assert_true(loops > 0);
    run(s, s->now + 10000, true);
    check_converged(s); /* ours: no route to C, and no loop at any instant */
    sim_fini(s);
    free(s);
}

/* Drain like drain() but count reliable outcomes. */
typedef struct tally {
    int acked, failed, delivered;
    uint64_t seen[4096];
    int n_seen;
} tally;

static void drain_tally(sim *s, int i, tally *t)
{
    cp2p_peer_id to;
    cp2p_buf f;
    cp2p__ovl_event ev;
    while (cp2p__ovl_take_out(s->cores[i], &to, &f)) {
        int j = idx_of(s, &to);
        if (s->dup_pct != 0 && rnd(s) % 100 < s->dup_pct) {
            cp2p_buf copy;
            cp2p_buf_init(&copy, f.max);
            assert_int_equal(cp2p_buf_append(&copy, f.ptr, f.len), 0);
            push(s, i, j, copy, 1 + rnd(s) % 30);
        }
        push(s, i, j, f, 1 + rnd(s) % 20);
    }
    while (cp2p__ovl_poll_event(s->cores[i], &ev)) {
        if (ev.kind == CP2P_OVL_EV_DELIVER) {
            for (int k = 0; k < t->n_seen; k++) {
                assert_true(t->seen[k] != ev.id); /* exactly once */
            }
            t->seen[t->n_seen++] = ev.id;
            t->delivered++;
        } else if (ev.kind == CP2P_OVL_EV_ACKED) {
            t->acked++;
        } else {
            assert_int_equal(ev.status, CP2P_ETIMEDOUT);
            t->failed++;
        }
        cp2p__ovl_event_fini(&ev);
    }
}

static void run_tally(sim *s, uint64_t until, tally *t)
{
    for (;;) {
        uint64_t tm = UINT64_MAX;
        size_t mi = SIZE_MAX;
        int ti = -1;
        for (size_t k = 0; k < s->nq; k++) {
            if (s->q[k].at < tm) {
                tm = s->q[k].at;
                mi = k;
            }
        }
        for (int i = 0; i < s->n; i++) {
            uint64_t d = cp2p__ovl_deadline(s->cores[i]);
            if (d < tm) {
                tm = d;
                ti = i;
            }
        }
        if (tm > until) {
            s->now = until;
            return;
        }
        s->now = tm > s->now ? tm : s->now;
        if (ti >= 0) {
            cp2p__ovl_on_timeout(s->cores[ti], s->now);
            drain_tally(s, ti, t);
            continue;
        }
        sim_msg m = s->q[mi];
        s->q[mi] = s->q[--s->nq];
        if (m.gen == s->gen[m.from][m.to] && s->up[m.from][m.to]) {
            const char *why = NULL;
            assert_int_equal(cp2p__ovl_on_frame(s->cores[m.to], &s->ids[m.from], m.frame.ptr,
                                                m.frame.len, s->now, &why),
                             0);
            drain_tally(s, m.to, t);
        }
        cp2p_buf_fini(&m.frame);
    }
}

static void reliable_line(sim *s, int n)
{
    sim_init(s, n, 7);
    for (int i = 0; i + 1 < n; i++) {
        s->cost[i][i + 1] = s->cost[i + 1][i] = 1;
        link_up(s, i, i + 1);
    }
    run(s, s->now + 10000, false);
}

static void reliable_exactly_once_with_duplication(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof(*s));
    tally *t = calloc(1, sizeof(*t));
    reliable_line(s, 5);
    s->dup_pct = 30; /* 30 % of frames arrive twice */
    for (int k = 0; k < 200; k++) {
        uint32_t flags = CP2P_OVL_F_RELIABLE | (k % 2 ? CP2P_OVL_F_SOURCE : 0);
        assert_int_equal(cp2p__ovl_send(s->cores[0], &s->ids[4], "hello", 5, flags, 0,
                                        ++s->next_id[0], s->now),
                         0);
        drain_tally(s, 0, t);
    }
    run_tally(s, s->now + 30000, t);
    assert_int_equal(t->delivered, 200);
    assert_int_equal(t->acked, 200);
    assert_int_equal(t->failed, 0);
    cp2p__ovl_stats st;
    cp2p__ovl_stats_get(s->cores[4], &st);
    assert_true(st.duplicates > 0);
    printf("duplicates suppressed at the destination: %llu\n",
           (unsigned long long)st.duplicates);
    sim_fini(s);
    free(s);
    free(t);
}

static void reliable_across_partition_and_failure(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof(*s));
    tally *t = calloc(1, sizeof(*t));
    reliable_line(s, 4);
    link_down(s, 1, 2);
    for (int k = 0; k < 20; k++) {
        assert_int_equal(cp2p__ovl_send(s->cores[0], &s->ids[3], "p", 1, CP2P_OVL_F_RELIABLE, 0,
                                        ++s->next_id[0], s->now),
                         0);
    }
    run_tally(s, s->now + 3000, t);
    assert_int_equal(t->delivered, 0);
    link_up(s, 1, 2); /* heals within the retry budget */
    run_tally(s, s->now + 60000, t);
    assert_int_equal(t->delivered, 20);
    assert_int_equal(t->acked, 20);
    /* Now a partition that does not heal: every message is reported failed. */
    link_down(s, 2, 3);
    for (int k = 0; k < 10; k++) {
        assert_int_equal(cp2p__ovl_send(s->cores[0], &s->ids[3], "q", 1, CP2P_OVL_F_RELIABLE, 0,
                                        ++s->next_id[0], s->now),
                         0);
    }
    run_tally(s, s->now + 120000, t);
    assert_int_equal(t->failed, 10);
    assert_int_equal(t->delivered, 20);
    assert_int_equal(cp2p__ovl_unacked_to(s->cores[0], &s->ids[3]), 0);
    cp2p__ovl_stats st;
    cp2p__ovl_stats_get(s->cores[0], &st);
    assert_true(st.retransmissions > 0);
    sim_fini(s);
    free(s);
    free(t);
}

static void unacked_limit_and_hop_limit(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof(*s));
    tally *t = calloc(1, sizeof(*t));
    reliable_line(s, 4);
    int ok = 0, full = 0;
    for (int k = 0; k < CP2P_OVL_MAX_UNACKED_PER_DST + 10; k++) {
        int rc = cp2p__ovl_send(s->cores[0], &s->ids[3], "z", 1, CP2P_OVL_F_RELIABLE, 0,
                                ++s->next_id[0], s->now);
        ok += rc == 0;
        full += rc == CP2P_EFULL;
    }
    assert_int_equal(ok, CP2P_OVL_MAX_UNACKED_PER_DST);
    assert_int_equal(full, 10);
    drain_tally(s, 0, t);
    run_tally(s, s->now + 30000, t);
    assert_int_equal(t->acked, CP2P_OVL_MAX_UNACKED_PER_DST);
    /* Hop limit 2 cannot cross 3 links. */
    assert_int_equal(cp2p__ovl_send(s->cores[0], &s->ids[3], "h", 1, 0, 2, ++s->next_id[0],
                                    s->now),
                     0);
    drain_tally(s, 0, t);
    run_tally(s, s->now + 1000, t);
    cp2p__ovl_stats st;
    cp2p__ovl_stats_get(s->cores[2], &st);
    assert_int_equal(st.dropped_hop_limit, 1);
    /* Bad arguments. */
    assert_int_equal(cp2p__ovl_send(s->cores[0], &s->ids[0], "h", 1, 0, 0, 1, s->now),
                     CP2P_EINVAL);
    assert_int_equal(cp2p__ovl_send(s->cores[0], &s->ids[3], "h", 1, 0x80, 0, 1, s->now),
                     CP2P_EINVAL);
    sim_fini(s);
    free(s);
    free(t);
}

static void forged_update_is_refused(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof(*s));
    reliable_line(s, 3);
    /* Node 1 forges a route update for node 2 with a seqno node 2 never signed. */
    cp2p__ovl_frame *f = calloc(1, sizeof(*f));
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_OVL_MAX_FRAME);
    cp2p__ovl_frame_clear(f);
    f->n_routes = 1;
    f->routes[0].origin = s->ids[2];
    f->routes[0].seqno = 12345;
    f->routes[0].metric = 0;
    f->routes[0].sig_len = 64;
    memset(f->routes[0].sig, 7, 64);
    assert_int_equal(cp2p__ovl_frame_encode(f, &b), 0);
    const char *why = NULL;
    assert_int_equal(cp2p__ovl_on_frame(s->cores[0], &s->ids[1], b.ptr, b.len, s->now, &why),
                     CP2P_EBADSIG);
    assert_non_null(why);
    /* Another wire version: refused with a clear error. */
    cp2p__ovl_frame_clear(f);
    f->version = 2;
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__ovl_frame_encode(f, &b), 0);
    assert_int_equal(cp2p__ovl_on_frame(s->cores[0], &s->ids[1], b.ptr, b.len, s->now, &why),
                     CP2P_ENOTSUP);
    assert_non_null(strstr(why, "version"));
    cp2p__ovl_stats st;
    cp2p__ovl_stats_get(s->cores[0], &st);
    assert_int_equal(st.bad_signature, 1);
    assert_int_equal(st.version_mismatch, 1);
    /* The route to node 2 is still the true one. */
    cp2p__ovl_route_info ri;
    assert_true(cp2p__ovl_route_get(s->cores[0], &s->ids[2], &ri));
    assert_int_equal(ri.metric, 2);
    cp2p_buf_fini(&b);
    free(f);
    sim_fini(s);
    free(s);
}

/* A neighbour replaying two genuine signatures of another node in turn makes every entry a
 * cache miss: past its budget the entries are skipped and counted, not verified. */
static void replayed_signatures_hit_the_budget(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof(*s));
    reliable_line(s, 3);
    cp2p__ovl_route genuine[3];
    for (int k = 0; k < 3; k++) {
        uint8_t in[CP2P_OVL_ROUTE_SIGIN_MAX];
        cp2p_buf sig;
        genuine[k] = (cp2p__ovl_route){.origin = s->ids[2], .seqno = 1000u + (uint32_t)k,
                                       .metric = 1};
        size_t n = cp2p__ovl_route_sigin(&s->ids[2], genuine[k].seqno, in);
        cp2p_buf_init(&sig, CP2P_SIG_MAX);
        assert_int_equal(cp2p_privkey_sign(s->keys[2], in, n, &sig), 0);
        memcpy(genuine[k].sig, sig.ptr, sig.len);
        genuine[k].sig_len = (uint8_t)sig.len;
        cp2p_buf_fini(&sig);
    }
    cp2p__ovl_frame *f = calloc(1, sizeof(*f));
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_OVL_MAX_FRAME);
    int frames = (CP2P_OVL_VERIFY_BURST / CP2P_OVL_MAX_ROUTES_PER_FRAME) + 4;
    /* The newest (1002) first: the cache keeps it, so 1000 and 1001 are misses every time. */
    cp2p__ovl_frame_clear(f);
    f->routes[f->n_routes++] = genuine[2];
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__ovl_frame_encode(f, &b), 0);
    const char *why0 = NULL;
    assert_int_equal(cp2p__ovl_on_frame(s->cores[0], &s->ids[1], b.ptr, b.len, s->now, &why0), 0);
    for (int fr = 0; fr < frames; fr++) {
        cp2p__ovl_frame_clear(f);
        for (int k = 0; k < CP2P_OVL_MAX_ROUTES_PER_FRAME; k++) {
            f->routes[f->n_routes++] = genuine[k % 2];
        }
        cp2p_buf_reset(&b);
        assert_int_equal(cp2p__ovl_frame_encode(f, &b), 0);
        const char *why = NULL;
        assert_int_equal(cp2p__ovl_on_frame(s->cores[0], &s->ids[1], b.ptr, b.len, s->now, &why),
                         0);
        drain(s, 0);
    }
    cp2p__ovl_stats st;
    cp2p__ovl_stats_get(s->cores[0], &st);
    assert_int_equal(st.bad_signature, 0);
    assert_true(st.verify_budget >= (uint64_t)(frames * CP2P_OVL_MAX_ROUTES_PER_FRAME) -
                                        CP2P_OVL_VERIFY_BURST);
    printf("%d replayed entries: %llu skipped by the budget\n",
           frames * CP2P_OVL_MAX_ROUTES_PER_FRAME, (unsigned long long)st.verify_budget);
    /* The budget refills: a second later one more entry is verified. */
    s->now += 1000;
    cp2p__ovl_frame_clear(f);
    f->routes[f->n_routes++] = genuine[0];
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__ovl_frame_encode(f, &b), 0);
    const char *why = NULL;
    assert_int_equal(cp2p__ovl_on_frame(s->cores[0], &s->ids[1], b.ptr, b.len, s->now, &why), 0);
    cp2p__ovl_stats st2;
    cp2p__ovl_stats_get(s->cores[0], &st2);
    assert_int_equal(st2.verify_budget, st.verify_budget);
    cp2p_buf_fini(&b);
    free(f);
    sim_fini(s);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_failures_never_loop_and_converge),
        cmocka_unit_test(naive_counts_to_infinity_on_a_line),
        cmocka_unit_test(reliable_exactly_once_with_duplication),
        cmocka_unit_test(reliable_across_partition_and_failure),
        cmocka_unit_test(unacked_limit_and_hop_limit),
        cmocka_unit_test(forged_update_is_refused),
        cmocka_unit_test(replayed_signatures_hit_the_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
