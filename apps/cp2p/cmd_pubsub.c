/* cp2p pubsub sub / pub: gossipsub from the command line, through the node API. */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cp2p/node.h>

#include "cli.h"

#define PS_MAX_PEERS 16

static const char PUBSUB_HELP[] =
    "usage: cp2p pubsub sub TOPIC [--peer MA]... [--bootstrap MA]... [--listen MA]\n"
    "                   [--count N] [--key FILE | --seed HEX32] [--json]\n"
    "       cp2p pubsub pub TOPIC DATA [--peer MA]... [--bootstrap MA]... [--timeout MS]\n"
    "       cp2p pubsub pub TOPIC DATA --api HOST:PORT [--api-token TOKEN] [--timeout MS]\n"
    "\n"
    "sub: join TOPIC (gossipsub /meshsub/1.2.0, falling back to 1.1, 1.0 and floodsub) and\n"
    "print each message received, as text ('<author>: data') or one JSON object per line\n"
    "({\"event\":\"message\",\"topic\",\"from\",\"data\",\"bytes\"}), until interrupted or N\n"
    "messages arrived. With --json it also prints {\"event\":\"mesh\",\"peers\":N} when its mesh\n"
    "changes: a message published before a peer joined our mesh may arrive late (by gossip).\n"
    "pub: publish DATA on TOPIC once a peer subscribed to TOPIC is known (or fail after the\n"
    "timeout), then exit. Messages are signed (StrictSign).\n"
    "\n"
    "  --peer MA        connect to this peer (repeatable)\n"
    "  --bootstrap MA   find peers through the Kademlia DHT from this peer (MA with /p2p/ID)\n"
    "  --listen MA      also listen (default: none for pub, /ip4/127.0.0.1/tcp/0 for sub)\n"
    "  --count N        sub: exit 0 after N messages\n"
    "  --timeout MS     pub: how long to wait for a subscribed peer (default 10000)\n"
    "  --api HOST:PORT  pub: publish through a running node's HTTP API (cp2p node --api)\n"
    "                   instead of starting a node here: the message is that node's, signed\n"
    "                   by it, sent to its peers (no --peer, --bootstrap, --listen, --key)\n"
    "  --api-token TOKEN  the API's access token (default $CP2P_API_TOKEN)\n"
    "  --json           JSON lines\n";

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t received;
static bool json_out;

static void on_sig(int s)
{
    (void)s;
    stop_flag = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs on the node's loop thread; stdout is only written here once subscribed. */
static void on_message(void *ud, const char *topic, const cp2p_peer_id *from,
                       const uint8_t *data, size_t len)
{
    char pid[CP2P_PEER_ID_STR_MAX] = "-";
    char *text = calloc(1, len + 1);
    (void)ud;
    if (from != NULL) {
        cp2p_peer_id_str(from, pid);
    }
    if (text != NULL) {
        memcpy(text, data, len);
    }
    if (json_out) {
        cli_json_print(json_pack("{s:s,s:o,s:s,s:o,s:I}", "event", "message", "topic",
                                 cli_json_str(topic), "from", pid, "data",
                                 cli_json_text((const char *)data, len), "bytes",
                                 (json_int_t)len));
    } else {
        printf("%s: %s\n", pid, text != NULL ? text : "");
    }
    fflush(stdout);
    free(text);
    received++;
}

/* pub --api: wait (up to timeout) until the node knows a peer subscribed to the topic, as the
 * local pub does, then publish through the API. Returns an exit code. */
static int pub_through_api(const char *api, const char *token, const char *topic,
                           const char *data, uint64_t timeout)
{
    cp2p_buf q, p;
    int rc = 0;
    if (cli_api_path(&q, "/api/v0/pubsub/peers?arg=", topic) != 0 ||
        cli_api_path(&p, "/api/v0/pubsub/pub?arg=", topic) != 0) {
        fprintf(stderr, "cp2p pubsub: topic too long\n");
        cp2p_buf_fini(&q);
        return CLI_EXIT_USAGE;
    }
    json_int_t total = 0;
    for (uint64_t waited = 0; !stop_flag && total == 0 && rc == 0;) {
        json_t *j = cli_api_call("pubsub", api, token, (const char *)q.ptr, NULL, 0, 5000, &rc);
        total = json_integer_value(json_object_get(j, "Total"));
        json_decref(j);
        if (total == 0 && rc == 0) {
            if (waited >= timeout) {
                break;
            }
            sleep_ms(50);
            waited += 50;
        }
    }
    if (rc == 0) {
        json_t *j = cli_api_call("pubsub", api, token, (const char *)p.ptr, data, strlen(data),
                                 timeout + 5000, &rc);
        json_decref(j);
    }
    if (rc == 0 && json_out) {
        cli_json_print(json_pack("{s:s,s:o,s:I}", "event", "published", "topic",
                                 cli_json_str(topic), "peers", total));
    }
    cp2p_buf_fini(&q);
    cp2p_buf_fini(&p);
    return rc;
}

int cli_cmd_pubsub(int argc, char **argv)
{
    static const struct option opts[] = {
        {"peer", required_argument, NULL, 'p'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"listen", required_argument, NULL, 'l'},
        {"count", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"api", required_argument, NULL, 'a'},
        {"api-token", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *peers[PS_MAX_PEERS], *boot[PS_MAX_PEERS], *listen[1];
    size_t npeers = 0, nboot = 0, nlisten = 0;
    const char *key_file = NULL, *seed = NULL, *api = NULL, *token = getenv("CP2P_API_TOKEN");
    uint64_t count = 0, timeout = 10000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
        case 'b':
            if ((c == 'p' ? npeers : nboot) == PS_MAX_PEERS) {
                fprintf(stderr, "cp2p pubsub: at most %d of each\n", PS_MAX_PEERS);
                return CLI_EXIT_USAGE;
            }
            if (c == 'p') {
                peers[npeers++] = optarg;
            } else {
                boot[nboot++] = optarg;
            }
            break;
        case 'l':
            if (nlisten == 1) {
                fprintf(stderr, "cp2p pubsub: one --listen\n");
                return CLI_EXIT_USAGE;
            }
            listen[nlisten++] = optarg;
            break;
        case 'c':
        case 't':
            if (cli_parse_bytes(optarg, c == 'c' ? &count : &timeout) != 0 ||
                (c == 't' && timeout == 0)) {
                fprintf(stderr, "cp2p pubsub: bad number '%s'\n", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'k': key_file = optarg; break;
        case 's': seed = optarg; break;
        case 'j': json_out = true; break;
        case 'a': api = optarg; break;
        case 'T': token = optarg; break;
        case 'h': fputs(PUBSUB_HELP, stdout); return 0;
        default: fputs(PUBSUB_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    int rest = argc - optind;
    bool is_sub = rest == 2 && strcmp(argv[optind], "sub") == 0;
    bool is_pub = rest == 3 && strcmp(argv[optind], "pub") == 0;
    if (!is_sub && !is_pub) {
        fputs(PUBSUB_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *topic = argv[optind + 1];
    if (topic[0] == 0) {
        fprintf(stderr, "cp2p pubsub: empty topic\n");
        return CLI_EXIT_USAGE;
    }
    if (api != NULL) {
        if (is_sub || npeers > 0 || nboot > 0 || nlisten > 0 || key_file != NULL ||
            seed != NULL) {
            fprintf(stderr, "cp2p pubsub: --api goes with pub alone (the node's own peers and "
                            "identity are used)\n");
            return CLI_EXIT_USAGE;
        }
        return pub_through_api(api, token != NULL && token[0] != '\0' ? token : NULL, topic,
                               argv[optind + 2], timeout);
    }
    if (is_sub && nlisten == 0) {
        listen[nlisten++] = "/ip4/127.0.0.1/tcp/0";
    }
    cp2p_privkey *key = NULL;
    int rc = cli_get_key(key_file, seed, NULL, &key);
    if (rc != 0) {
        return rc;
    }
    cp2p_node_config cfg;
    cp2p_node *n;
    cp2p_node_config_default(&cfg);
    cfg.host.identity = key;
    cfg.host.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    cfg.listen = listen;
    cfg.n_listen = nlisten;
    cfg.pubsub = true;
    const char *scored[1] = {topic};
    cfg.pubsub_cfg.scored_topics = scored;
    cfg.pubsub_cfg.n_scored_topics = 1;
    if (nboot > 0) {
        cfg.dht = true;
        cfg.kad.mode = CP2P_KAD_MODE_CLIENT;
        cfg.kad.bootstrap = boot;
        cfg.kad.n_bootstrap = nboot;
    }
    rc = cp2p_node_start(&cfg, &n);
    cp2p_privkey_free(key);
    if (rc != 0) {
        fprintf(stderr, "cp2p pubsub: cannot start the node: %s\n", cp2p_strerror(rc));
        return rc == CP2P_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    int exit_code = 0;
    if (is_sub && (rc = cp2p_node_subscribe(n, topic, on_message, NULL, CP2P_NODE_ON_LOOP)) != 0) {
        fprintf(stderr, "cp2p pubsub: subscribe: %s\n", cp2p_strerror(rc));
        exit_code = CLI_EXIT_FAIL;
    }
    for (size_t i = 0; exit_code == 0 && i < npeers; i++) {
        if ((rc = cp2p_node_dial(n, peers[i], 10000, NULL)) != 0) {
            fprintf(stderr, "cp2p pubsub: cannot connect to %s: %s\n", peers[i], cp2p_strerror(rc));
            exit_code = rc == CP2P_EINVAL || rc == CP2P_ENOTSUP ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
    }
    if (exit_code == 0 && nboot > 0 && (rc = cp2p_node_dht_bootstrap(n, timeout, NULL)) != 0) {
        fprintf(stderr, "cp2p pubsub: DHT bootstrap: %s\n", cp2p_strerror(rc));
    }
    if (exit_code == 0 && is_sub) {
        if (json_out) {
            char addr[256] = "";
            (void)!cp2p_node_addr(n, 0, addr, sizeof(addr));
            cli_json_print(json_pack("{s:s,s:o,s:o}", "event", "subscribed", "topic",
                                     cli_json_str(topic), "addr", cli_json_str(addr)));
        }
        size_t last_mesh = 0, mesh = 0;
        while (!stop_flag && (count == 0 || (uint64_t)received < count)) {
            /* Report mesh changes: a message published before a peer joins our mesh may only
             * reach us by gossip, so waiting for "mesh" tells a script when to publish. */
            if (json_out && cp2p_node_mesh_peers(n, topic, NULL, 0, &mesh) == 0 &&
                mesh != last_mesh) {
                cli_json_print(json_pack("{s:s,s:o,s:I}", "event", "mesh", "topic",
                                         cli_json_str(topic), "peers", (json_int_t)mesh));
                last_mesh = mesh;
            }
            sleep_ms(50);
        }
    } else if (exit_code == 0) {
        /* Wait for a subscribed peer we can send to (identify, its subscriptions, our
         * stream to it), then publish. */
        const char *data = argv[optind + 2];
        uint64_t waited = 0;
        size_t total = 0;
        while (!stop_flag && waited < timeout &&
               cp2p_node_topic_peers(n, topic, NULL, 0, &total) == 0 && total == 0) {
            sleep_ms(50);
            waited += 50;
        }
        rc = cp2p_node_publish(n, topic, data, strlen(data), timeout);
        if (rc != 0) {
            fprintf(stderr, "cp2p pubsub: publish: %s%s\n", cp2p_strerror(rc),
                    rc == CP2P_ENOENT ? " (no peer subscribed to the topic)" : "");
            exit_code = CLI_EXIT_FAIL;
        } else if (json_out) {
            cli_json_print(json_pack("{s:s,s:o,s:I}", "event", "published", "topic",
                                     cli_json_str(topic), "peers", (json_int_t)total));
        }
    }
    cp2p_node_stop(n);
    return exit_code;
}
