/* cp2p node: run a host until SIGINT/SIGTERM, printing its identity, addresses and events. */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/kad.h>
#include <cp2p/log.h>
#include <cp2p/node.h>
#include <cp2p/protocols.h>
#include <cp2p/pubsub.h>
#include <cp2p/reqresp.h>

#include <cp2p/artifact.h>

#include "cli.h"

static const char NODE_HELP[] =
    "usage: cp2p node [--config FILE] [--listen MULTIADDR]... [--key FILE | --seed HEX32]\n"
    "                 [--peer MULTIADDR]... [--perf] [--echo PROTOCOL]... [--json]\n"
    "                 [--max-conns N] [--max-pending-inbound N] [--keepalive-ms MS]\n"
    "                 [--dial-timeout-ms MS] [--peerstore FILE] [--log-level LEVEL]\n"
    "                 [--bootstrap MULTIADDR]... [--no-dht] [--dht-mode MODE]\n"
    "                 [--dht-protocol ID] [--dht-namespace NS]... [--status-interval S]\n"
    "                 [--topic TOPIC]... [--no-pubsub] [--api [HOST:PORT]] [--api-token TOKEN]\n"
    "                 [--artifacts DIR [--artifacts-max BYTES]]\n"
    "                 [--overlay] [--overlay-ids FILE]\n"
    "                 [--channel ID]... [--network ID] [--moniker NAME]\n"
    "\n"
    "Run a node until interrupted (SIGINT or SIGTERM close its connections and exit 0). It\n"
    "prints its peer ID and full listen addresses (with /p2p/ID), then one line per event.\n"
    "It answers ping, identify (and identify push); with --perf it also serves /perf/1.0.0.\n"
    "\n"
    "  --listen MA   TCP address to listen on, repeatable (default /ip4/0.0.0.0/tcp/4001);\n"
    "                port 0 picks a free port\n"
    "  --key FILE    identity from a key file (see 'cp2p keygen'); default: a new identity\n"
    "  --seed HEX32  identity derived from 32 bytes (64 hex characters)\n"
    "  --peer MA     keep this peer connected (MA with /p2p/ID: redialed with backoff\n"
    "                whenever it drops; without: dialed once at start), repeatable\n"
    "  --perf        serve /perf/1.0.0 (it sends whatever a peer asks for: only on test nets)\n"
    "  --echo PROTO  answer request-response requests on PROTO with their own bytes\n"
    "                (repeatable; try it with 'cp2p req')\n"
    "  --json        one JSON object per line (see docs/CLI.md)\n"
    "  --max-conns N             connections at once (default 256)\n"
    "  --max-pending-inbound N   inbound connections still upgrading (default 64)\n"
    "  --keepalive-ms MS         yamux ping on idle connections, 0 = off (default 15000)\n"
    "  --dial-timeout-ms MS      TCP connect timeout (default 10000)\n"
    "  --peerstore FILE          keep the peerstore (known peers and their addresses) in this\n"
    "                            SQLite file; at start the node redials up to 32 peers it\n"
    "                            connected to before (default: in memory, forgotten at exit)\n"
    "  --log-level LEVEL         trace|debug|info|warn|error|off (default info, or $CP2P_LOG)\n"
    "  --bootstrap MA            Kademlia DHT bootstrap peer (MA with /p2p/ID), repeatable:\n"
    "                            dialed at start, then the node looks itself up and keeps\n"
    "                            its routing table filled (see docs/CLI.md)\n"
    "  --no-dht                  do not run the DHT (it runs by default)\n"
    "  --dht-mode MODE           auto|server|client (default auto: server, since the node\n"
    "                            listens; a client queries but answers no DHT request)\n"
    "  --dht-protocol ID         DHT protocol ID (default /ipfs/kad/1.0.0)\n"
    "  --dht-namespace NS        store records under /NS/... without checking their values\n"
    "                            (repeatable; default: cp2p). /pk/ records are always checked\n"
    "  --topic TOPIC             join this gossipsub topic and print its messages (as\n"
    "                            'message' events with --json), repeatable\n"
    "  --no-pubsub               do not run gossipsub (it runs by default and relays topics\n"
    "                            for peers even without --topic)\n"
    "  --artifacts DIR           artifact gossip with a pool kept in DIR (one file per artifact,\n"
    "                            oldest removed past --artifacts-max, default 1 GiB); the API\n"
    "                            then serves /api/v0/artifact/put|get|ls|stat\n"
    "  --api [HOST:PORT]         serve the HTTP API (/metrics, /healthz, /api/v0/...; see\n"
    "                            docs/API.md) on HOST:PORT (default 127.0.0.1:5001; port 0\n"
    "                            picks one); the address is printed at start\n"
    "  --api-token TOKEN         require 'Authorization: Bearer TOKEN' on the API (default\n"
    "                            $CP2P_API_TOKEN); needed to listen beyond loopback\n"
    "  --overlay                 join the overlay (/cp2p/overlay/1.0.0): route messages for\n"
    "                            others and print each one delivered here ('overlay_message'\n"
    "                            events with --json: from, id, data); see docs/OVERLAY.md\n"
    "  --overlay-ids FILE        keep the overlay's message-id floor in FILE, so ids never\n"
    "                            repeat across restarts even with the clock set back\n"
    "  --channel ID              run a reactor switch (CometBFT-style channels, see\n"
    "                            docs/CHANNELS.md) with one reactor on channel ID (0x00..0xff,\n"
    "                            repeatable, at most 16) that prints peers added and removed\n"
    "                            and messages received; the API serves /api/v0/channels\n"
    "  --network ID              the switch's network (chain id) in its node info: peers on\n"
    "                            another network are never added (default cp2p)\n"
    "  --moniker NAME            the switch's moniker in its node info (default cp2p)\n"
    "  --status-interval S       print a status line (connections, DHT table size) every S\n"
    "                            seconds; 0 = never (default 30)\n"
    "  --config FILE             read options from FILE first: one 'name = value' per line,\n"
    "                            names as the flags above (see 'cp2p init', docs/CLI.md)\n";

#define MAX_ADDRS 16

typedef struct {
    cp2p_host *host;
    const char *echo[MAX_ADDRS];
    size_t necho;
    bool json;
    uv_signal_t sigint, sigterm;
    int closing;
    /* DHT */
    bool no_dht;
    cp2p_kad_config kc;
    const char *bootstrap[MAX_ADDRS];
    const char *ns[MAX_ADDRS];
    size_t nns;
    cp2p_kad *kad;
    uint64_t status_s;
    uv_timer_t status;
    size_t conns;
    /* pubsub */
    bool no_pubsub;
    const char *topics[MAX_ADDRS];
    size_t ntopics;
    cp2p_pubsub *ps;
    /* the HTTP API: a node attached to this host serves it from its own threads */
    const char *api;
    const char *api_token;
    cp2p_node *node;
    cp2p_node_api *api_srv;
    /* --artifacts DIR: artifact gossip with a pool in DIR (cp2p/artifact.h) */
    const char *artifacts_dir;
    uint64_t artifacts_max;
    cp2p_node_artifacts *artifacts;
    /* --channel/--network/--moniker: a reactor switch (cmd_node_switch.c) */
    cli_switch_opts sw;
    /* the overlay (--overlay): ours, or the attached node's when the API runs */
    bool overlay;
    const char *overlay_ids;
    cp2p_overlay *ov;
} node_ctx;

static void print_conn_event(node_ctx *n, const char *what, cp2p_conn *c, int err)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    cp2p_buf addr;
    cp2p_buf_init(&addr, CP2P_MULTIADDR_STR_MAX);
    if (cp2p_conn_remote_addr(c) != NULL) {
        (void)!cp2p_multiaddr_to_string(cp2p_conn_remote_addr(c), &addr);
    }
    cp2p_peer_id_str(cp2p_conn_peer_id(c), pid);
    if (n->json) {
        json_t *o = json_pack("{s:s,s:s,s:o,s:s}", "event", what, "peer", pid, "addr",
                              cli_json_text((const char *)addr.ptr, addr.len), "direction",
                              cp2p_conn_is_outbound(c) ? "outbound" : "inbound");
        if (o != NULL && err != 0) {
            cli_json_set(o, "error", json_string(cp2p_strerror(err)));
        }
        cli_json_print(o);
    } else {
        printf("%s %s %s %s%s%s\n", what, pid, addr.len ? (const char *)addr.ptr : "-",
               cp2p_conn_is_outbound(c) ? "outbound" : "inbound", err ? " error=" : "",
               err ? cp2p_strerror(err) : "");
    }
    cp2p_buf_fini(&addr);
}

static void print_identified(node_ctx *n, cp2p_conn *c)
{
    const cp2p_identify_info *v = cp2p_conn_identify(c);
    char pid[CP2P_PEER_ID_STR_MAX];
    cp2p_peer_id_str(cp2p_conn_peer_id(c), pid);
    if (v == NULL) {
        return;
    }
    if (n->json) {
        json_t *protos = json_array();
        for (size_t i = 0; protos != NULL && i < v->n_protocols; i++) {
            (void)json_array_append_new(protos, cli_json_str(v->protocols[i]));
        }
        cli_json_print(json_pack("{s:s,s:s,s:o,s:o}", "event", "identified", "peer", pid,
                                 "agent", cli_json_str(v->agent_version ? v->agent_version : ""),
                                 "protocols", protos));
    } else {
        printf("identified %s agent=%s protocols=%zu\n", pid,
               v->agent_version ? v->agent_version : "-", v->n_protocols);
    }
}

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    node_ctx *n = ud;
    (void)h;
    switch (ev->type) {
    case CP2P_EVENT_CONN_OPENED:
        n->conns++;
        print_conn_event(n, "connected", ev->conn, 0);
        break;
    case CP2P_EVENT_CONN_CLOSED:
        n->conns--;
        print_conn_event(n, "disconnected", ev->conn, ev->err);
        break;
    case CP2P_EVENT_PEER_IDENTIFIED: print_identified(n, ev->conn); break;
    default: break;
    }
    fflush(stdout);
}

static void on_dialed(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    node_ctx *n = ((void)c, (void)h, ud);
    if (status != 0) {
        if (n->json) {
            cli_json_print(json_pack("{s:s,s:s}", "event", "dial_failed", "error",
                                     cp2p_strerror(status)));
        } else {
            printf("dial failed: %s\n", cp2p_strerror(status));
        }
        fflush(stdout);
    }
}

static void on_closed(cp2p_host *h, void *ud)
{
    node_ctx *n = ud;
    (void)h;
    uv_close((uv_handle_t *)&n->sigint, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->status, NULL);
    /* Nothing the API waits on is left: its threads return at once, then the node goes. */
    cp2p_node_api_stop(n->api_srv);
    n->api_srv = NULL;
    cp2p_node_artifacts_detach(n->artifacts); /* the host closed the layer: frees the index */
    n->artifacts = NULL;
    cp2p_node_detach(n->node);
    n->node = NULL;
}

static void on_message(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    node_ctx *n = ud;
    char pid[CP2P_PEER_ID_STR_MAX] = "-";
    char *text = calloc(1, m->len + 1);
    (void)ps;
    if (m->from != NULL) {
        cp2p_peer_id_str(m->from, pid);
    }
    if (text != NULL) {
        memcpy(text, m->data, m->len);
    }
    if (n->json) {
        cli_json_print(json_pack("{s:s,s:o,s:s,s:o,s:I}", "event", "message", "topic",
                                 cli_json_str(m->topic), "from", pid, "data",
                                 cli_json_text((const char *)m->data, m->len), "bytes",
                                 (json_int_t)m->len));
    } else {
        printf("message %s %s: %s\n", m->topic, pid, text != NULL ? text : "");
    }
    fflush(stdout);
    free(text);
}

static void on_overlay_message(cp2p_overlay *ov, const cp2p_peer_id *src, uint64_t id,
                               const uint8_t *data, size_t len, bool reliable, void *ud)
{
    node_ctx *n = ud;
    char pid[CP2P_PEER_ID_STR_MAX], ids[24];
    (void)ov;
    cp2p_peer_id_str(src, pid);
    snprintf(ids, sizeof(ids), "%llu", (unsigned long long)id);
    if (n->json) {
        cli_json_print(json_pack("{s:s,s:s,s:s,s:o,s:I,s:b}", "event", "overlay_message", "from",
                                 pid, "id", ids, "data", cli_json_text((const char *)data, len),
                                 "bytes", (json_int_t)len, "reliable", reliable));
    } else {
        printf("overlay message %s %s: %.*s\n", pid, ids, (int)len, (const char *)data);
    }
    fflush(stdout);
}

/* --overlay: on the attached node when the API runs (so the API's overlay endpoints reach it), else
 * our own. Returns 0 or an exit code after printing why. */
static int overlay_start(node_ctx *n)
{
    cp2p_overlay_config oc;
    cp2p_overlay_config_default(&oc);
    oc.deliver = on_overlay_message;
    oc.id_floor_path = n->overlay_ids;
    int rc = n->node != NULL ? cp2p_node_attach_overlay(n->node, &oc, n)
                             : cp2p_overlay_new(n->host, &oc, n, &n->ov);
    if (rc != 0) {
        fprintf(stderr, "cp2p node: cannot start the overlay: %s%s\n", cp2p_strerror(rc),
                rc == CP2P_EIO ? " (--overlay-ids: unreadable file)" : "");
        return CLI_EXIT_FAIL;
    }
    return 0;
}

static void on_status(uv_timer_t *t)
{
    node_ctx *n = t->data;
    size_t table = n->kad != NULL ? cp2p_kad_table_size(n->kad) : 0;
    if (n->json) {
        cli_json_print(json_pack("{s:s,s:I,s:b,s:I}", "event", "status", "connections",
                                 (json_int_t)n->conns, "dht", n->kad != NULL, "dht_table",
                                 (json_int_t)table));
    } else if (n->kad != NULL) {
        printf("status connections=%zu dht_table=%zu\n", n->conns, table);
    } else {
        printf("status connections=%zu dht=off\n", n->conns);
    }
    fflush(stdout);
}

static void echo_request(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req, size_t len,
                         void *ud)
{
    (void)c;
    (void)ud;
    (void)!cp2p_reqresp_respond(r, req, len);
}

static void on_signal(uv_signal_t *s, int signum)
{
    node_ctx *n = s->data;
    (void)signum;
    if (n->closing++ == 0) {
        if (!n->json) {
            fprintf(stderr, "cp2p node: closing connections\n");
        }
        cp2p_node_detach_begin(n->node); /* API calls fail from now on (its overlay closes) */
        cp2p_overlay_close(n->ov);
        n->ov = NULL;
        for (size_t i = 0; i < n->necho; i++) {
            (void)!cp2p_reqresp_unregister(n->host, n->echo[i]);
        }
        uv_timer_stop(&n->status);
        cp2p_pubsub_close(n->ps);
        n->ps = NULL;
        cp2p_kad_close(n->kad);
        n->kad = NULL;
        cp2p_host_close(n->host, on_closed, n);
    }
}

static void print_addrs(node_ctx *n)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    cp2p_peer_id_str(cp2p_host_peer_id(n->host), pid);
    json_t *list = n->json ? json_array() : NULL;
    if (!n->json) {
        printf("peer id: %s\nlistening on:\n", pid);
    }
    cp2p_multiaddr *addrs[64];
    ptrdiff_t count = cp2p_host_addrs(n->host, true, addrs, 64);
    for (ptrdiff_t i = 0; i < count; i++) {
        cp2p_buf b;
        cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
        if (cp2p_multiaddr_to_string(addrs[i], &b) == 0) {
            if (n->json) {
                (void)json_array_append_new(list, cli_json_text((const char *)b.ptr, b.len));
            } else {
                printf("  %s\n", (const char *)b.ptr);
            }
        }
        cp2p_buf_fini(&b);
        cp2p_multiaddr_free(addrs[i]);
    }
    if (n->json) {
        cli_json_print(json_pack("{s:s,s:s,s:o}", "event", "listening", "peer_id", pid, "addrs",
                                 list));
    }
    fflush(stdout);
}

static int node_run(node_ctx *np, cp2p_host_config *cfgp, const char **listen, size_t nlisten,
                    const char **peers, size_t npeers, const char *key_file, const char *seed,
                    bool perf);

int cli_cmd_node(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"key", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},   {"peer", required_argument, NULL, 'p'},
        {"perf", no_argument, NULL, 'P'},         {"json", no_argument, NULL, 'j'},
        {"echo", required_argument, NULL, 'e'},
        {"max-conns", required_argument, NULL, 'C'},
        {"max-pending-inbound", required_argument, NULL, 'I'},
        {"keepalive-ms", required_argument, NULL, 'K'},
        {"dial-timeout-ms", required_argument, NULL, 'D'},
        {"peerstore", required_argument, NULL, 'S'},
        {"log-level", required_argument, NULL, 'L'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"no-dht", no_argument, NULL, 'N'},
        {"dht-mode", required_argument, NULL, 'M'},
        {"dht-protocol", required_argument, NULL, 'R'},
        {"dht-namespace", required_argument, NULL, 'n'},
        {"status-interval", required_argument, NULL, 'T'},
        {"topic", required_argument, NULL, 'o'},
        {"no-pubsub", no_argument, NULL, 'U'},
        {"api", optional_argument, NULL, 'A'},
        {"api-token", required_argument, NULL, 'Z'},
        {"artifacts", required_argument, NULL, 'F'},
        {"artifacts-max", required_argument, NULL, 'G'},
        {"overlay", no_argument, NULL, 'V'},
        {"overlay-ids", required_argument, NULL, 'W'},
        {"channel", required_argument, NULL, 0x100},
        {"network", required_argument, NULL, 0x101},
        {"moniker", required_argument, NULL, 0x102},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *listen[MAX_ADDRS], *peers[MAX_ADDRS];
    size_t nlisten = 0, npeers = 0;
    const char *key_file = NULL, *seed = NULL;
    bool perf = false;
    node_ctx n = {0};
    int c, rc;
    cp2p_host_config cfg;
    uint64_t v;
    cp2p_host_config_default(&cfg);
    cli_host_env(&cfg);
    cp2p_kad_config_default(&n.kc);
    n.status_s = 30;
    /* --config FILE: its options come first, the command line's after (and win for single
     * values, add up for repeatable ones). */
    int cargc = 0;
    char **cargv = NULL;
    char **all = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            if (cargv != NULL || cli_config_load(argv[i + 1], &cargc, &cargv) != 0) {
                fprintf(stderr, "cp2p node: one --config, readable\n");
                cli_config_free(cargc, cargv);
                return CLI_EXIT_USAGE;
            }
            i++;
        }
    }
    if (cargv != NULL) {
        int m = 0;
        all = calloc((size_t)(argc + cargc + 1), sizeof(char *));
        if (all == NULL) {
            cli_config_free(cargc, cargv);
            return CLI_EXIT_FAIL;
        }
        all[m++] = argv[0];
        for (int i = 0; i < cargc; i++) {
            all[m++] = cargv[i];
        }
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--config") == 0) {
                i++;
                continue;
            }
            all[m++] = argv[i];
        }
        argc = m;
        argv = all;
    }
    rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'C':
        case 'I':
        case 'K':
        case 'D':
            if (cli_parse_bytes(optarg, &v) != 0 || v > UINT32_MAX || (c != 'K' && v == 0)) {
                fprintf(stderr, "cp2p node: bad value '%s'\n", optarg);
                rc = CLI_EXIT_USAGE;
            } else if (c == 'C') {
                cfg.max_conns = (uint32_t)v;
            } else if (c == 'I') {
                cfg.max_pending_inbound = (uint32_t)v;
            } else if (c == 'K') {
                cfg.keepalive_ms = v;
            } else {
                cfg.dial_timeout_ms = v;
            }
            break;
        case 'L': {
            cp2p_log_level lvl;
            if (cp2p_log_level_parse(optarg, &lvl) != 0) {
                fprintf(stderr, "cp2p node: unknown log level '%s'\n", optarg);
                rc = CLI_EXIT_USAGE;
            } else {
                cp2p_log_set_level(lvl);
            }
            break;
        }
        case 'l':
            if (nlisten == MAX_ADDRS) {
                fprintf(stderr, "cp2p node: at most %d --listen\n", MAX_ADDRS);
                rc = CLI_EXIT_USAGE;
                break;
            }
            listen[nlisten++] = optarg;
            break;
        case 'p':
            if (npeers == MAX_ADDRS) {
                fprintf(stderr, "cp2p node: at most %d --peer\n", MAX_ADDRS);
                rc = CLI_EXIT_USAGE;
                break;
            }
            peers[npeers++] = optarg;
            break;
        case 'k': key_file = optarg; break;
        case 'S': cfg.peerstore_path = optarg; break;
        case 's': seed = optarg; break;
        case 'P': perf = true; break;
        case 'e':
            if (n.necho == MAX_ADDRS) {
                fprintf(stderr, "cp2p node: at most %d --echo\n", MAX_ADDRS);
                rc = CLI_EXIT_USAGE;
                break;
            }
            n.echo[n.necho++] = optarg;
            break;
        case 'j': n.json = true; break;
        case 'b':
            if (n.kc.n_bootstrap == MAX_ADDRS) {
                fprintf(stderr, "cp2p node: at most %d --bootstrap\n", MAX_ADDRS);
                rc = CLI_EXIT_USAGE;
                break;
            }
            n.bootstrap[n.kc.n_bootstrap++] = optarg;
            break;
        case 'A':
            /* --api alone, --api=ADDR, or --api ADDR (the next word, when not an option). */
            if (optarg == NULL && optind < argc && argv[optind][0] != '-') {
                optarg = argv[optind++];
            }
            n.api = optarg != NULL ? optarg : CP2P_NODE_API_DEFAULT_LISTEN;
            break;
        case 'Z': n.api_token = optarg; break;
        case 'F': n.artifacts_dir = optarg; break;
        case 'G':
            if (cli_parse_bytes(optarg, &n.artifacts_max) != 0 || n.artifacts_max == 0) {
                fprintf(stderr, "cp2p node: --artifacts-max needs a size in bytes\n");
                rc = CLI_EXIT_USAGE;
            }
            break;
        case 'N': n.no_dht = true; break;
        case 'U': n.no_pubsub = true; break;
        case 'V': n.overlay = true; break;
        case 'W': n.overlay_ids = optarg; break;
        case 0x100:
            if (n.sw.n_channels == sizeof(n.sw.channels) ||
                cli_parse_channel(optarg, &n.sw.channels[n.sw.n_channels]) != 0) {
                fprintf(stderr, "cp2p node: bad --channel '%s' (0x00..0xff, at most 16)\n",
                        optarg);
                rc = CLI_EXIT_USAGE;
                break;
            }
            n.sw.n_channels++;
            break;
        case 0x101: n.sw.network = optarg; break;
        case 0x102: n.sw.moniker = optarg; break;
        case 'o':
            if (n.ntopics == MAX_ADDRS) {
                fprintf(stderr, "cp2p node: at most %d --topic\n", MAX_ADDRS);
                rc = CLI_EXIT_USAGE;
                break;
            }
            n.topics[n.ntopics++] = optarg;
            break;
        case 'M':
            if (strcmp(optarg, "auto") == 0) {
                n.kc.mode = CP2P_KAD_MODE_AUTO;
            } else if (strcmp(optarg, "server") == 0) {
                n.kc.mode = CP2P_KAD_MODE_SERVER;
            } else if (strcmp(optarg, "client") == 0) {
                n.kc.mode = CP2P_KAD_MODE_CLIENT;
            } else {
                fprintf(stderr, "cp2p node: --dht-mode is auto, server or client\n");
                rc = CLI_EXIT_USAGE;
            }
            break;
        case 'R': n.kc.protocol = optarg; break;
        case 'n':
            if (n.nns == MAX_ADDRS) {
                fprintf(stderr, "cp2p node: at most %d --dht-namespace\n", MAX_ADDRS);
                rc = CLI_EXIT_USAGE;
                break;
            }
            n.ns[n.nns++] = optarg;
            break;
        case 'T':
            if (cli_parse_bytes(optarg, &v) != 0 || v > 86400) {
                fprintf(stderr, "cp2p node: bad --status-interval '%s'\n", optarg);
                rc = CLI_EXIT_USAGE;
            } else {
                n.status_s = v;
            }
            break;
        case 'h': fputs(NODE_HELP, stdout); rc = -1; break;
        default: fputs(NODE_HELP, stderr); rc = CLI_EXIT_USAGE; break;
        }
    }
    if (rc == 0 && optind != argc) {
        fprintf(stderr, "cp2p node: unexpected argument '%s'\n", argv[optind]);
        rc = CLI_EXIT_USAGE;
    }
    if (rc == 0 && n.sw.n_channels == 0 && (n.sw.network != NULL || n.sw.moniker != NULL)) {
        fprintf(stderr, "cp2p node: --network and --moniker need --channel\n");
        rc = CLI_EXIT_USAGE;
    }
    if (rc != 0) {
        free(all);
        cli_config_free(cargc, cargv);
        return rc < 0 ? 0 : rc;
    }
    rc = node_run(&n, &cfg, listen, nlisten, peers, npeers, key_file, seed, perf);
    free(all);
    cli_config_free(cargc, cargv);
    return rc;
}

/* --artifacts DIR: artifact gossip on our host with its pool in DIR, bounded by
 * --artifacts-max (1 GiB), served on the API when it runs. Returns 0 or an exit code. */
static int artifacts_start(node_ctx *n)
{
    int rc;
    if (n->node == NULL && (rc = cp2p_node_attach(n->host, n->ps, n->kad, NULL, &n->node)) != 0) {
        fprintf(stderr, "cp2p node: cannot start artifacts: %s\n", cp2p_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    uint64_t max = n->artifacts_max > 0 ? n->artifacts_max : 1024ull * 1024 * 1024;
    if ((rc = cp2p_node_artifacts_attach(n->node, n->host, n->artifacts_dir, max,
                                         &n->artifacts)) != 0) {
        fprintf(stderr, "cp2p node: --artifacts %s: %s\n", n->artifacts_dir, cp2p_strerror(rc));
        return rc == CP2P_EIO ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    if (n->api_srv != NULL) {
        cp2p_node_api_set_artifacts(n->api_srv, n->artifacts);
    }
    return 0;
}

/* Serve the HTTP API (--api): a node attached to our host takes the API's calls from its
 * threads. Returns 0 or an exit code after printing why. */
static int api_start(node_ctx *n)
{
    cp2p_node_api_config ac;
    int rc;
    cp2p_node_api_config_default(&ac);
    ac.listen = n->api;
    if (n->artifacts_dir != NULL) {
        ac.max_body = 64u * 1024 * 1024; /* artifact/put bodies */
    }
    ac.token = n->api_token != NULL ? n->api_token : getenv("CP2P_API_TOKEN");
    if (ac.token != NULL && ac.token[0] == '\0') {
        ac.token = NULL;
    }
    if ((rc = cp2p_node_attach(n->host, n->ps, n->kad, NULL, &n->node)) != 0) {
        fprintf(stderr, "cp2p node: cannot start the API: %s\n", cp2p_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    if ((rc = cp2p_node_api_start(n->node, &ac, &n->api_srv)) == 0) {
        return 0;
    }
    if (rc == CP2P_EPERM) {
        fprintf(stderr, "cp2p node: --api %s listens beyond loopback: refused without an "
                        "access token (set --api-token or CP2P_API_TOKEN)\n", n->api);
    } else if (rc == CP2P_EINVAL) {
        fprintf(stderr, "cp2p node: bad --api address '%s' (HOST:PORT, e.g. 127.0.0.1:5001 or "
                        "[::1]:5001) or --api-token (printable, no spaces)\n", n->api);
    } else {
        fprintf(stderr, "cp2p node: cannot serve the API on %s: %s\n", n->api,
                cp2p_strerror(rc));
    }
    /* No call ever reached the node: it can go at once (freed when the loop runs). */
    cp2p_node_detach_begin(n->node);
    cp2p_node_detach(n->node);
    n->node = NULL;
    return rc == CP2P_EIO ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
}

/* The node itself, once the options are known. */
static int node_run(node_ctx *np, cp2p_host_config *cfgp, const char **listen, size_t nlisten,
                    const char **peers, size_t npeers, const char *key_file, const char *seed,
                    bool perf)
{
    node_ctx n = *np;
    cp2p_host_config cfg = *cfgp;
    int rc;
    if (nlisten == 0) {
        listen[nlisten++] = "/ip4/0.0.0.0/tcp/4001";
    }
    cp2p_privkey *key = NULL;
    if ((rc = cli_get_key(key_file, seed, NULL, &key)) != 0) {
        return rc;
    }
    uv_loop_t *loop = uv_default_loop();
    cfg.identity = key;
    cfg.perf_server = perf;
    rc = cp2p_host_new(loop, &cfg, &n.host);
    cp2p_privkey_free(key);
    if (rc != 0) {
        fprintf(stderr, "cp2p node: cannot create the host: %s\n", cp2p_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    cp2p_host_set_event_cb(n.host, on_event, &n);
    int exit_code = 0;
    for (size_t i = 0; i < n.necho && exit_code == 0; i++) {
        if ((rc = cp2p_reqresp_register(n.host, n.echo[i], NULL, echo_request, NULL)) != 0) {
            fprintf(stderr, "cp2p node: cannot serve %s: %s\n", n.echo[i], cp2p_strerror(rc));
            exit_code = CLI_EXIT_USAGE;
            n.necho = i;
        }
    }
    for (size_t i = 0; i < nlisten && exit_code == 0; i++) {
        cp2p_multiaddr *ma;
        if (cli_parse_multiaddr(listen[i], &ma) != 0) {
            exit_code = CLI_EXIT_USAGE;
            break;
        }
        if ((rc = cp2p_host_listen(n.host, ma)) != 0) {
            fprintf(stderr, "cp2p node: cannot listen on %s: %s\n", listen[i], cp2p_strerror(rc));
            exit_code = rc == CP2P_ENOTSUP ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        cp2p_multiaddr_free(ma);
    }
    for (size_t i = 0; i < npeers && exit_code == 0; i++) {
        cp2p_multiaddr *ma;
        if (cli_parse_multiaddr(peers[i], &ma) != 0) {
            exit_code = CLI_EXIT_USAGE;
            break;
        }
        /* With a peer ID the peer is persistent: kept connected and redialed with backoff
         * whenever it drops (CometBFT's persistent_peers); without one, dialed once. */
        if (strstr(peers[i], "/p2p/") != NULL) {
            rc = cp2p_host_add_persistent_peer(n.host, ma);
        } else {
            rc = cp2p_host_dial(n.host, ma, on_dialed, &n);
        }
        if (rc != 0) {
            fprintf(stderr, "cp2p node: cannot dial %s: %s\n", peers[i], cp2p_strerror(rc));
            exit_code = CLI_EXIT_USAGE;
        }
        cp2p_multiaddr_free(ma);
    }
    if (exit_code == 0 && !n.no_pubsub) {
        cp2p_pubsub_config pc;
        cp2p_pubsub_config_default(&pc);
        pc.scored_topics = n.topics;
        pc.n_scored_topics = n.ntopics;
        if ((rc = cp2p_pubsub_new(n.host, &pc, &n.ps)) != 0) {
            fprintf(stderr, "cp2p node: cannot start pubsub: %s\n", cp2p_strerror(rc));
            exit_code = CLI_EXIT_FAIL;
        }
        for (size_t i = 0; exit_code == 0 && i < n.ntopics; i++) {
            if ((rc = cp2p_pubsub_subscribe(n.ps, n.topics[i], on_message, &n)) != 0) {
                fprintf(stderr, "cp2p node: bad --topic '%s': %s\n", n.topics[i],
                        cp2p_strerror(rc));
                exit_code = CLI_EXIT_USAGE;
            }
        }
    } else if (exit_code == 0 && n.ntopics > 0) {
        fprintf(stderr, "cp2p node: --topic needs pubsub (drop --no-pubsub)\n");
        exit_code = CLI_EXIT_USAGE;
    }
    if (exit_code == 0 && !n.no_dht) {
        static const char *const default_ns[] = {"cp2p"};
        n.kc.bootstrap = n.bootstrap;
        if ((rc = cp2p_kad_new(n.host, &n.kc, &n.kad)) != 0) {
            fprintf(stderr, "cp2p node: cannot start the DHT: %s%s\n", cp2p_strerror(rc),
                    rc == CP2P_EINVAL ? " (a --bootstrap address must end in /p2p/ID)" : "");
            exit_code = CLI_EXIT_USAGE;
        }
        const char *const *ns = n.nns > 0 ? n.ns : default_ns;
        size_t nns = n.nns > 0 ? n.nns : 1;
        for (size_t i = 0; exit_code == 0 && i < nns; i++) {
            if ((rc = cp2p_kad_add_validator(n.kad, ns[i], cp2p_kad_accept_any, NULL, NULL)) != 0) {
                fprintf(stderr, "cp2p node: bad --dht-namespace '%s': %s\n", ns[i],
                        cp2p_strerror(rc));
                exit_code = CLI_EXIT_USAGE;
            }
        }
    }
    if (exit_code == 0 && n.api != NULL) {
        exit_code = api_start(&n);
    }
    if (exit_code == 0 && n.artifacts_dir != NULL) {
        exit_code = artifacts_start(&n);
    }
    if (exit_code == 0 && n.overlay) {
        exit_code = overlay_start(&n);
    }
    if (exit_code == 0) {
        n.sw.json = n.json;
        exit_code = cli_node_switch_start(n.host, &n.sw);
    }
    if (exit_code != 0) {
        cp2p_node_detach_begin(n.node);
        cp2p_overlay_close(n.ov);
        n.ov = NULL;
        cp2p_pubsub_close(n.ps);
        n.ps = NULL;
        cp2p_kad_close(n.kad);
        n.kad = NULL;
        for (size_t i = 0; i < n.necho; i++) {
            (void)!cp2p_reqresp_unregister(n.host, n.echo[i]);
        }
        cp2p_host_close(n.host, NULL, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        if (n.node != NULL) { /* the API started, the overlay did not */
            cp2p_node_api_stop(n.api_srv);
            cp2p_node_detach(n.node);
            uv_run(loop, UV_RUN_DEFAULT);
        }
        return exit_code;
    }
    /* Handlers first: whoever reads our addresses may signal us at once. */
    uv_signal_init(loop, &n.sigint);
    uv_signal_init(loop, &n.sigterm);
    n.sigint.data = n.sigterm.data = &n;
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    uv_timer_init(loop, &n.status);
    n.status.data = &n;
    if (n.status_s > 0) {
        uv_timer_start(&n.status, on_status, n.status_s * 1000, n.status_s * 1000);
    }
    print_addrs(&n);
    if (n.api_srv != NULL) {
        char addr[CP2P_NODE_API_ADDR_MAX];
        if (cp2p_node_api_addr(n.api_srv, addr, sizeof(addr)) == 0) {
            if (n.json) {
                char url[CP2P_NODE_API_ADDR_MAX + 8];
                snprintf(url, sizeof(url), "http://%s", addr);
                cli_json_print(json_pack("{s:s,s:s,s:s}", "event", "api", "addr", addr, "url",
                                         url));
            } else {
                printf("api: http://%s\n", addr);
            }
            fflush(stdout);
        }
    }
    uv_run(loop, UV_RUN_DEFAULT);
    (void)!uv_loop_close(loop);
    return 0;
}
