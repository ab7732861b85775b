/* Three reactors on each of N nodes (cp2p/reactor.h), in one process on the in-memory network:
 *
 *   consensus  channels 0x20 state (priority 6), 0x21 block parts (10, 64 KiB messages),
 *              0x22 votes (7): every node broadcasts a 200-byte vote every 20 ms; node 0, the
 *              proposer, a new-height state message and a 64 KiB block part every 100 ms;
 *   mempool    channel 0x30 (5): each node makes TXS transactions of 1 KiB; a node gossips every
 *              transaction it sees for the first time to its peers (CometBFT's mempool reactor);
 *   pex        channel 0x00 (1): every 100 ms a node sends its address book (its own address
 *              and those it learned) to its peers, and dials the peers it is not connected to.
 *
 * Every node dials node 0 only; PEX connects the rest. The program exits 0 once every node has
 * all N - 1 peers, VOTES votes from each of them, BLOCKS block parts from the proposer and all
 * N x TXS transactions, and prints what each node got and each channel's counters; it exits 1
 * if that takes more than 60 s. Loop thread only (the reactors run their receive on the loop).
 *
 *   reactors [--nodes N] [--txs TXS] [--votes VOTES] [--blocks BLOCKS]   (4, 20, 20, 5) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/memnet.h>
#include <cp2p/protocols.h>
#include <cp2p/reactor.h>

#define N_MAX 16
#define TX_MAX 64
#define ADDR_MAX 256

enum { CH_PEX = 0x00, CH_STATE = 0x20, CH_BLOCK = 0x21, CH_VOTE = 0x22, CH_MEMPOOL = 0x30 };

typedef struct node {
    int idx;
    cp2p_host *h;
    cp2p_switch *sw;
    cp2p_reactor *cons, *mem, *pex;
    char addr[ADDR_MAX]; /* our /memory/NAME/p2p/ID */
    char book[N_MAX][ADDR_MAX];
    int peers;
    int votes_from[N_MAX];
    int block_parts;
    bool tx_seen[N_MAX][TX_MAX];
    int txs;
} node;

static uv_loop_t loop;
static node nodes[N_MAX];
static int n_nodes = 4, n_txs = 20, n_votes = 20, n_blocks = 5;
static uint8_t block[65536];

static int node_of(const cp2p_peer_id *id)
{
    for (int i = 0; i < n_nodes; i++) {
        if (cp2p_peer_id_equal(id, cp2p_host_peer_id(nodes[i].h))) {
            return i;
        }
    }
    return -1;
}

/* ---- consensus ---- */

static void cons_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                         size_t len, void *ud)
{
    node *n = ud;
    (void)r;
    int from = node_of(cp2p_reactor_peer_id(p));
    if (ch == CH_VOTE && len == 200 && from >= 0) {
        n->votes_from[from]++;
    } else if (ch == CH_BLOCK && len == sizeof(block) && memcmp(msg, block, len) == 0) {
        n->block_parts++;
    }
}

/* ---- mempool ---- */

static void mem_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                        size_t len, void *ud)
{
    node *n = ud;
    (void)r;
    (void)ch;
    (void)p;
    if (len != 1024 || msg[0] >= n_nodes || msg[1] >= n_txs) {
        return;
    }
    if (!n->tx_seen[msg[0]][msg[1]]) {
        n->tx_seen[msg[0]][msg[1]] = true;
        n->txs++;
        (void)cp2p_switch_broadcast(n->sw, CH_MEMPOOL, msg, len); /* gossip it on */
    }
}

static void mem_add_tx(node *n, int k)
{
    uint8_t tx[1024];
    memset(tx, 0, sizeof(tx));
    tx[0] = (uint8_t)n->idx;
    tx[1] = (uint8_t)k;
    n->tx_seen[n->idx][k] = true;
    n->txs++;
    (void)cp2p_switch_broadcast(n->sw, CH_MEMPOOL, tx, sizeof(tx));
}

/* ---- pex ---- */

static void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    (void)h;
    (void)status;
    (void)c;
    (void)ud; /* failures are retried at the next book that names the peer */
}

static void pex_learn(node *n, const char *addr)
{
    const char *p2p = strstr(addr, "/p2p/");
    cp2p_peer_id id;
    if (p2p == NULL || cp2p_peer_id_parse(p2p + 5, strlen(p2p + 5), &id) != 0) {
        return;
    }
    int i = node_of(&id);
    if (i < 0 || i == n->idx) {
        return;
    }
    snprintf(n->book[i], sizeof(n->book[i]), "%s", addr);
    if (cp2p_host_conn_to(n->h, &id) == NULL) {
        cp2p_multiaddr *ma;
        if (cp2p_multiaddr_parse(addr, strlen(addr), &ma) == 0) {
            if (cp2p_host_dial(n->h, ma, on_dial, NULL) != 0) {
                /* refused now (e.g. too many connections): the next book retries */
            }
            cp2p_multiaddr_free(ma);
        }
    }
}

static void pex_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                        size_t len, void *ud)
{
    node *n = ud;
    char line[ADDR_MAX];
    (void)r;
    (void)ch;
    (void)p;
    /* Lines of addresses; anything malformed is skipped. */
    for (size_t start = 0; start < len;) {
        const uint8_t *nl = memchr(msg + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - msg) : len;
        if (end - start < sizeof(line)) {
            memcpy(line, msg + start, end - start);
            line[end - start] = 0;
            pex_learn(n, line);
        }
        start = end + 1;
    }
}

static void pex_send_book(node *n)
{
    char buf[N_MAX * ADDR_MAX];
    size_t off = (size_t)snprintf(buf, sizeof(buf), "%s\n", n->addr);
    for (int i = 0; i < n_nodes; i++) {
        if (n->book[i][0] != 0 && off < sizeof(buf)) {
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s\n", n->book[i]);
        }
    }
    (void)cp2p_switch_broadcast(n->sw, CH_PEX, buf, off < sizeof(buf) ? off : sizeof(buf));
}

static void on_add(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud)
{
    node *n = ud;
    (void)r;
    (void)p;
    n->peers++;
}

static void on_remove(cp2p_reactor *r, cp2p_reactor_peer *p, const char *reason, void *ud)
{
    node *n = ud;
    (void)r;
    (void)p;
    (void)reason;
    n->peers--;
}

/* ---- setup ---- */

static void node_start(node *n, cp2p_memnet *net)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_host_config_default(&cfg);
    cfg.memnet = net;
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
        exit(1);
    }
    cfg.identity = key;
    if (cp2p_host_new(&loop, &cfg, &n->h) != 0) {
        exit(1);
    }
    cp2p_privkey_free(key);
    char text[32];
    snprintf(text, sizeof(text), "/memory/node-%d", n->idx);
    cp2p_multiaddr *ma;
    cp2p_buf b;
    cp2p_buf_init(&b, ADDR_MAX);
    if (cp2p_multiaddr_parse(text, strlen(text), &ma) != 0 || cp2p_host_listen(n->h, ma) != 0) {
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    if (cp2p_host_listen_addr(n->h, 0, true, &ma) != 0 || cp2p_multiaddr_to_string(ma, &b) != 0) {
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    snprintf(n->addr, sizeof(n->addr), "%.*s", (int)b.len, (const char *)b.ptr);
    cp2p_buf_fini(&b);

    if (cp2p_switch_new(n->h, NULL, &n->sw) != 0) {
        exit(1);
    }
    cp2p_channel_desc cons[] = {
        {.id = CH_STATE, .priority = 6, .send_queue_capacity = 100},
        {.id = CH_BLOCK, .priority = 10, .send_queue_capacity = 100,
         .recv_message_capacity = 1 << 20},
        {.id = CH_VOTE, .priority = 7, .send_queue_capacity = 100},
    };
    cp2p_channel_desc mem[] = {{.id = CH_MEMPOOL, .priority = 5, .send_queue_capacity = 256}};
    cp2p_channel_desc pex[] = {{.id = CH_PEX, .priority = 1, .send_queue_capacity = 4}};
    cp2p_reactor_desc d[] = {
        {.name = "consensus", .channels = cons, .n_channels = 3, .add_peer = on_add,
         .remove_peer = on_remove, .receive = cons_receive},
        {.name = "mempool", .channels = mem, .n_channels = 1, .receive = mem_receive},
        {.name = "pex", .channels = pex, .n_channels = 1, .receive = pex_receive},
    };
    if (cp2p_switch_add_reactor(n->sw, &d[0], n, &n->cons) != 0 ||
        cp2p_switch_add_reactor(n->sw, &d[1], n, &n->mem) != 0 ||
        cp2p_switch_add_reactor(n->sw, &d[2], n, &n->pex) != 0 || cp2p_switch_start(n->sw) != 0) {
        fprintf(stderr, "reactors: switch setup failed\n");
        exit(1);
    }
}

static bool all_done(void)
{
    for (int i = 0; i < n_nodes; i++) {
        node *n = &nodes[i];
        if (n->peers < n_nodes - 1 || n->txs < n_nodes * n_txs ||
            (i != 0 && n->block_parts < n_blocks)) {
            return false;
        }
        for (int j = 0; j < n_nodes; j++) {
            if (j != i && n->votes_from[j] < n_votes) {
                return false;
            }
        }
    }
    return true;
}

static uint64_t ticks;

static void on_tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
    uint8_t vote[200];
    memset(vote, 0, sizeof(vote));
    for (int i = 0; i < n_nodes; i++) {
        node *n = &nodes[i];
        if (ticks % 5 == 0) {
            pex_send_book(n);
        }
        if (n->peers < n_nodes - 1) {
            continue; /* consensus starts once the node sees everyone */
        }
        vote[0] = (uint8_t)i;
        (void)cp2p_switch_broadcast(n->sw, CH_VOTE, vote, sizeof(vote));
        if (i == 0 && ticks % 5 == 0) {
            uint8_t step[16] = {'h', (uint8_t)ticks}; /* a new height, then its part */
            (void)cp2p_switch_broadcast(n->sw, CH_STATE, step, sizeof(step));
            (void)cp2p_switch_broadcast(n->sw, CH_BLOCK, block, sizeof(block));
        }
        for (int k = 0; k < n_txs; k++) {
            if (!n->tx_seen[i][k]) {
                mem_add_tx(n, k);
                break; /* one new transaction per tick */
            }
        }
    }
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = (int)strtol(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--nodes") == 0 && v >= 2 && v <= N_MAX) {
            n_nodes = v;
        } else if (strcmp(argv[i], "--txs") == 0 && v >= 1 && v <= TX_MAX) {
            n_txs = v;
        } else if (strcmp(argv[i], "--votes") == 0 && v >= 1) {
            n_votes = v;
        } else if (strcmp(argv[i], "--blocks") == 0 && v >= 1) {
            n_blocks = v;
        } else {
            fprintf(stderr, "usage: reactors [--nodes 2..16] [--txs 1..64] [--votes N] "
                            "[--blocks N]\n");
            return 2;
        }
    }
    for (size_t i = 0; i < sizeof(block); i++) {
        block[i] = (uint8_t)(i * 7);
    }
    cp2p_memnet *net;
    if (uv_loop_init(&loop) != 0 || cp2p_memnet_new(&loop, 42, &net) != 0) {
        return 1;
    }
    cp2p_memnet_link link = {.latency_ms = 2, .bandwidth_bps = 50 * 1000 * 1000};
    cp2p_memnet_set_default_link(net, &link);
    for (int i = 0; i < n_nodes; i++) {
        nodes[i].idx = i;
        node_start(&nodes[i], net);
    }
    for (int i = 1; i < n_nodes; i++) {
        pex_learn(&nodes[i], nodes[0].addr); /* the seed */
    }
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    uint64_t start = uv_now(&loop);
    while (!all_done() && uv_now(&loop) - start < 60000) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    bool ok = all_done();
    printf("%s after %llu ms\n", ok ? "done" : "TIMEOUT", (unsigned long long)(uv_now(&loop) - start));
    for (int i = 0; i < n_nodes; i++) {
        node *n = &nodes[i];
        int votes = 0;
        for (int j = 0; j < n_nodes; j++) {
            votes += n->votes_from[j];
        }
        printf("node %d: %d peers, %d votes, %d block parts, %d/%d transactions\n", i, n->peers,
               votes, n->block_parts, n->txs, n_nodes * n_txs);
    }
    static const uint8_t chans[] = {CH_PEX, CH_STATE, CH_BLOCK, CH_VOTE, CH_MEMPOOL};
    for (size_t c = 0; c < sizeof(chans); c++) {
        cp2p_channel_stats cs;
        if (cp2p_switch_channel_stats(nodes[0].sw, chans[c], &cs) == 0) {
            printf("node 0 channel 0x%02x: sent %llu msgs %llu bytes, received %llu msgs\n",
                   chans[c], (unsigned long long)cs.msgs_sent, (unsigned long long)cs.bytes_sent,
                   (unsigned long long)cs.msgs_received);
        }
    }
    uv_close((uv_handle_t *)&tick, NULL);
    int closed = 0;
    for (int i = 0; i < n_nodes; i++) {
        cp2p_host_close(nodes[i].h, on_closed, &closed); /* closes the switches too */
    }
    while (closed < n_nodes) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    if (cp2p_memnet_close(net, NULL, NULL) != 0) {
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "reactors: handles left open\n");
        return 1;
    }
    return ok ? 0 : 1;
}
