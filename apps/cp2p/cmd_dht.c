/* cp2p dht: one Kademlia DHT operation from the command line, through the node API. A node
 * starts (a DHT client unless --listen is given), bootstraps from --bootstrap peers, runs the
 * operation, prints the result and stops. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/node.h>

#include "cli.h"

#define DHT_MAX_BOOT 16
#define DHT_MAX_PROVIDERS 20

static const char DHT_HELP[] =
    "usage: cp2p dht --bootstrap MULTIADDR [--bootstrap MA]... [--listen MA]\n"
    "                [--key FILE | --seed HEX32] [--dht-protocol ID] [--timeout MS] [--json]\n"
    "                COMMAND ARGS\n"
    "       cp2p dht --api HOST:PORT [--api-token TOKEN] [--timeout MS] [--json] COMMAND ARGS\n"
    "\n"
    "commands:\n"
    "  find-peer ID          print the addresses of the peer with this ID\n"
    "  get KEY               print the value stored under KEY (e.g. /cp2p/name)\n"
    "  put KEY VALUE         store VALUE under KEY on the k closest peers; prints how many\n"
    "                        stored it (they must accept KEY's namespace: 'cp2p node'\n"
    "                        accepts /cp2p/... by default, see --dht-namespace there)\n"
    "  provide CID           announce this node as a provider of CID to the k closest peers\n"
    "                        (the record names this process's peer ID and addresses: give\n"
    "                        --key and --listen for a record others can use after it exits)\n"
    "  find-providers CID    print the providers of CID (peer IDs and addresses)\n"
    "\n"
    "  --bootstrap MA    a DHT peer to start from (MA ending in /p2p/ID), repeatable; required\n"
    "  --listen MA       listen on MA and run as a DHT server (default: client, no listener)\n"
    "  --dht-protocol ID DHT protocol ID (default /ipfs/kad/1.0.0)\n"
    "  --timeout MS      give up after MS milliseconds per step (default 30000)\n"
    "  --json            print the result as one JSON object\n"
    "  --api HOST:PORT   run the command on a running node's DHT (cp2p node --api) through its\n"
    "                    HTTP API instead of starting a node here (at most 30 s a command)\n"
    "  --api-token TOKEN the API's access token (default $CP2P_API_TOKEN)\n"
    "Exit status: 0 found/stored, 1 not found or failed, 2 usage error.\n";

/* {"peer","addrs":[...]} */
static json_t *peer_addrs_json(const char *pid, char **addrs, size_t n)
{
    json_t *o = json_object(), *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        (void)json_array_append_new(a, cli_json_str(addrs[i]));
    }
    cli_json_set(o, "peer", cli_json_str(pid));
    cli_json_set(o, "addrs", a);
    return o;
}

/* Text output of a {"peer","addrs"} object. */
static void print_peer(json_t *o)
{
    json_t *a;
    size_t i;
    const char *pid = json_string_value(json_object_get(o, "peer"));
    printf("%s\n", pid != NULL ? pid : "?");
    json_array_foreach(json_object_get(o, "addrs"), i, a) {
        printf("  %s\n", json_string_value(a) != NULL ? json_string_value(a) : "?");
    }
}

/* Print a {"peer","addrs"} object as asked, taking it. */
static void print_peer_addrs(bool json, json_t *o)
{
    if (json) {
        cli_json_print(o);
    } else {
        print_peer(o);
        json_decref(o);
    }
}

static int run_op(cp2p_node *n, bool json, uint64_t timeout, int argc, char **argv)
{
    const char *op = argv[0];
    int rc;
    if (strcmp(op, "find-peer") == 0 && argc == 2) {
        cp2p_peer_id p;
        char **addrs = NULL;
        size_t na = 0;
        if (cp2p_peer_id_parse(argv[1], strlen(argv[1]), &p) != 0) {
            fprintf(stderr, "cp2p dht: '%s' is not a peer ID\n", argv[1]);
            return CLI_EXIT_USAGE;
        }
        if ((rc = cp2p_node_dht_find_peer(n, &p, timeout, &addrs, &na)) != 0) {
            fprintf(stderr, "cp2p dht: find-peer: %s\n", cp2p_strerror(rc));
            return CLI_EXIT_FAIL;
        }
        print_peer_addrs(json, peer_addrs_json(argv[1], addrs, na));
        cp2p_node_free_strings(addrs, na);
        return 0;
    }
    if (strcmp(op, "get") == 0 && argc == 2) {
        uint8_t *v = NULL;
        size_t vl = 0;
        if ((rc = cp2p_node_dht_get(n, argv[1], strlen(argv[1]), timeout, &v, &vl)) != 0) {
            fprintf(stderr, "cp2p dht: get %s: %s\n", argv[1], cp2p_strerror(rc));
            return CLI_EXIT_FAIL;
        }
        if (json) {
            cli_json_print(json_pack("{s:o,s:o,s:I}", "key", cli_json_str(argv[1]), "value",
                                     cli_json_text((const char *)v, vl), "bytes",
                                     (json_int_t)vl));
        } else {
            fwrite(v, 1, vl, stdout);
            putchar('\n');
        }
        cp2p_free(v);
        return 0;
    }
    if (strcmp(op, "put") == 0 && argc == 3) {
        size_t stored = 0;
        rc = cp2p_node_dht_put(n, argv[1], strlen(argv[1]), argv[2], strlen(argv[2]), timeout,
                               &stored);
        if (rc != 0) {
            fprintf(stderr, "cp2p dht: put %s: %s\n", argv[1], cp2p_strerror(rc));
            return rc == CP2P_ENOTSUP ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        if (json) {
            cli_json_print(json_pack("{s:o,s:I}", "key", cli_json_str(argv[1]), "stored",
                                     (json_int_t)stored));
        } else {
            printf("stored on %zu peers\n", stored);
        }
        return 0;
    }
    if ((strcmp(op, "provide") == 0 || strcmp(op, "find-providers") == 0) && argc == 2) {
        uint8_t key[128];
        ptrdiff_t kl = cp2p_kad_key_from_cid(argv[1], key, sizeof(key));
        if (kl <= 0) {
            fprintf(stderr, "cp2p dht: '%s' is not a CID\n", argv[1]);
            return CLI_EXIT_USAGE;
        }
        if (op[0] == 'p') {
            size_t told = 0;
            if ((rc = cp2p_node_dht_provide(n, key, (size_t)kl, timeout, &told)) != 0) {
                fprintf(stderr, "cp2p dht: provide: %s\n", cp2p_strerror(rc));
                return CLI_EXIT_FAIL;
            }
            if (json) {
                cli_json_print(json_pack("{s:o,s:I}", "cid", cli_json_str(argv[1]), "told",
                                         (json_int_t)told));
            } else {
                printf("announced to %zu peers\n", told);
            }
            return 0;
        }
        cp2p_peer_id provs[DHT_MAX_PROVIDERS];
        size_t np = 0;
        rc = cp2p_node_dht_find_providers(n, key, (size_t)kl, DHT_MAX_PROVIDERS, timeout, provs,
                                          &np);
        if (rc != 0) {
            fprintf(stderr, "cp2p dht: find-providers: %s\n", cp2p_strerror(rc));
            return CLI_EXIT_FAIL;
        }
        json_t *list = json ? json_array() : NULL;
        for (size_t i = 0; i < np; i++) {
            char pid[CP2P_PEER_ID_STR_MAX];
            char **addrs = NULL;
            size_t na = 0;
            cp2p_peer_id_str(&provs[i], pid);
            /* Their addresses came with the answer: find_peer returns them from the
             * peerstore (or looks the peer up when they were missing). */
            (void)!cp2p_node_dht_find_peer(n, &provs[i], timeout, &addrs, &na);
            json_t *o = peer_addrs_json(pid, addrs, na);
            if (json) {
                (void)json_array_append_new(list, o);
            } else {
                print_peer_addrs(false, o);
            }
            cp2p_node_free_strings(addrs, na);
        }
        if (json) {
            cli_json_print(json_pack("{s:o,s:o}", "cid", cli_json_str(argv[1]), "providers",
                                     list));
        }
        return 0;
    }
    fputs(DHT_HELP, stderr);
    return CLI_EXIT_USAGE;
}

/* Check the command and its arguments before any network work: 0 or CLI_EXIT_USAGE. */
static int check_op(int argc, char **argv)
{
    const char *op = argv[0];
    uint8_t key[128];
    cp2p_peer_id p;
    if (strcmp(op, "find-peer") == 0 && argc == 2) {
        if (cp2p_peer_id_parse(argv[1], strlen(argv[1]), &p) != 0) {
            fprintf(stderr, "cp2p dht: '%s' is not a peer ID\n", argv[1]);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    if ((strcmp(op, "get") == 0 && argc == 2) || (strcmp(op, "put") == 0 && argc == 3)) {
        return 0;
    }
    if ((strcmp(op, "provide") == 0 || strcmp(op, "find-providers") == 0) && argc == 2) {
        if (cp2p_kad_key_from_cid(argv[1], key, sizeof(key)) <= 0) {
            fprintf(stderr, "cp2p dht: '%s' is not a CID\n", argv[1]);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    fputs(DHT_HELP, stderr);
    return CLI_EXIT_USAGE;
}

/* The API's {"ID","Addrs"} as the CLI's {"peer","addrs"}. */
static json_t *peer_from_api(json_t *p)
{
    return json_pack("{s:O,s:O}", "peer", json_object_get(p, "ID"), "addrs",
                     json_object_get(p, "Addrs"));
}

/* --api: the operation (checked by check_op) run by a running node's DHT through its HTTP
 * API, printed as run_op prints it. Returns an exit code. */
static int api_op(const char *api, const char *token, bool json, uint64_t timeout, int argc,
                  char **argv)
{
    static const struct {
        const char *op, *path;
    } paths[] = {{"find-peer", "/api/v0/dht/findpeer?arg="}, {"get", "/api/v0/dht/get?arg="},
                 {"put", "/api/v0/dht/put?arg="},           {"provide", "/api/v0/dht/provide?arg="},
                 {"find-providers", "/api/v0/dht/findprovs?arg="}};
    const char *prefix = NULL;
    size_t k = 0;
    char ms[32];
    cp2p_buf path;
    int rc;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (strcmp(argv[0], paths[i].op) == 0) {
            prefix = paths[i].path;
            k = i;
        }
    }
    /* The API bounds one operation by 30 s (CP2P_NODE_API_OP_TIMEOUT_MS). */
    snprintf(ms, sizeof(ms), "%llums",
             (unsigned long long)(timeout < CP2P_NODE_API_OP_TIMEOUT_MS
                                      ? timeout : CP2P_NODE_API_OP_TIMEOUT_MS));
    if (prefix == NULL || cli_api_path(&path, prefix, argv[1]) != 0 ||
        cli_api_path_add(&path, "&timeout=", ms) != 0) {
        fprintf(stderr, "cp2p dht: arguments too long\n");
        return CLI_EXIT_USAGE;
    }
    const char *body = argc == 3 ? argv[2] : NULL;
    json_t *j = cli_api_call("dht", api, token, (const char *)path.ptr, body,
                             body != NULL ? strlen(body) : 0, timeout + 5000, &rc);
    cp2p_buf_fini(&path);
    if (j == NULL) {
        return rc;
    }
    switch (k) {
    case 0: /* find-peer */
        print_peer_addrs(json, peer_from_api(j));
        break;
    case 4: { /* find-providers */
        json_t *list = json_array(), *p;
        size_t i;
        json_array_foreach(json_object_get(j, "Providers"), i, p) {
            json_t *o = peer_from_api(p);
            if (json) {
                (void)json_array_append_new(list, o);
            } else {
                print_peer_addrs(false, o);
            }
        }
        if (json) {
            cli_json_print(json_pack("{s:o,s:o}", "cid", cli_json_str(argv[1]), "providers",
                                     list));
        } else {
            json_decref(list);
        }
        break;
    }
    case 1: { /* get */
        uint8_t *v = NULL;
        size_t vl = 0;
        if (cli_api_base64(json_object_get(j, "Value"), &v, &vl) != 0) {
            fprintf(stderr, "cp2p dht: the API's answer has no Value\n");
            rc = CLI_EXIT_FAIL;
        } else if (json) {
            cli_json_print(json_pack("{s:o,s:o,s:I}", "key", cli_json_str(argv[1]), "value",
                                     cli_json_text(v != NULL ? (const char *)v : "", vl),
                                     "bytes", (json_int_t)vl));
        } else {
            if (vl > 0) {
                fwrite(v, 1, vl, stdout);
            }
            putchar('\n');
        }
        free(v);
        break;
    }
    case 2: { /* put */
        json_int_t stored = json_integer_value(json_object_get(j, "Stored"));
        if (json) {
            cli_json_print(json_pack("{s:o,s:I}", "key", cli_json_str(argv[1]), "stored",
                                     stored));
        } else {
            printf("stored on %lld peers\n", (long long)stored);
        }
        break;
    }
    default: { /* provide */
        json_int_t told = json_integer_value(json_object_get(j, "Told"));
        if (json) {
            cli_json_print(json_pack("{s:o,s:I}", "cid", cli_json_str(argv[1]), "told", told));
        } else {
            printf("announced to %lld peers\n", (long long)told);
        }
        break;
    }
    }
    json_decref(j);
    return rc;
}

int cli_cmd_dht(int argc, char **argv)
{
    static const struct option opts[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"listen", required_argument, NULL, 'l'},
        {"key", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},
        {"dht-protocol", required_argument, NULL, 'R'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"api", required_argument, NULL, 'a'},
        {"api-token", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *api = NULL, *token = getenv("CP2P_API_TOKEN");
    const char *boot[DHT_MAX_BOOT], *listen[1];
    size_t nboot = 0, nlisten = 0;
    const char *key_file = NULL, *seed = NULL, *protocol = NULL;
    uint64_t timeout = 30000;
    bool json = false;
    int c;
    optind = 1;
    /* Options may come before or after the command ('+' would stop at it). */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (nboot == DHT_MAX_BOOT) {
                fprintf(stderr, "cp2p dht: at most %d --bootstrap\n", DHT_MAX_BOOT);
                return CLI_EXIT_USAGE;
            }
            boot[nboot++] = optarg;
            break;
        case 'l':
            if (nlisten == 1) {
                fprintf(stderr, "cp2p dht: one --listen\n");
                return CLI_EXIT_USAGE;
            }
            listen[nlisten++] = optarg;
            break;
        case 'k': key_file = optarg; break;
        case 's': seed = optarg; break;
        case 'R': protocol = optarg; break;
        case 't':
            if (cli_parse_bytes(optarg, &timeout) != 0 || timeout == 0) {
                fprintf(stderr, "cp2p dht: --timeout needs milliseconds\n");
                return CLI_EXIT_USAGE;
            }
            break;
        case 'j': json = true; break;
        case 'a': api = optarg; break;
        case 'T': token = optarg; break;
        case 'h': fputs(DHT_HELP, stdout); return 0;
        default: fputs(DHT_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (api != NULL) {
        if (optind >= argc || nboot > 0 || nlisten > 0 || key_file != NULL || seed != NULL ||
            protocol != NULL) {
            fputs(optind >= argc ? DHT_HELP
                                 : "cp2p dht: --api uses the running node's DHT (no "
                                   "--bootstrap, --listen, --key, --seed, --dht-protocol)\n",
                  stderr);
            return CLI_EXIT_USAGE;
        }
        int rc = check_op(argc - optind, argv + optind);
        return rc != 0 ? rc
                       : api_op(api, token != NULL && token[0] != '\0' ? token : NULL, json,
                                timeout, argc - optind, argv + optind);
    }
    if (optind >= argc || nboot == 0) {
        fputs(nboot == 0 && optind < argc ? "cp2p dht: at least one --bootstrap is needed\n"
                                          : DHT_HELP,
              stderr);
        return CLI_EXIT_USAGE;
    }
    int rc = check_op(argc - optind, argv + optind);
    if (rc != 0) {
        return rc;
    }
    cp2p_privkey *key = NULL;
    rc = cli_get_key(key_file, seed, NULL, &key);
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
    cfg.dht = true;
    cfg.kad.mode = nlisten > 0 ? CP2P_KAD_MODE_SERVER : CP2P_KAD_MODE_CLIENT;
    cfg.kad.bootstrap = boot;
    cfg.kad.n_bootstrap = nboot;
    if (protocol != NULL) {
        cfg.kad.protocol = protocol;
    }
    /* A put is validated locally first: accept the key's own namespace here (the servers
     * apply their own validators). */
    char ns[64] = "cp2p";
    const char *nsp[1] = {ns};
    if (strcmp(argv[optind], "put") == 0 && optind + 1 < argc && argv[optind + 1][0] == '/') {
        const char *k = argv[optind + 1] + 1, *end = strchr(k, '/');
        if (end != NULL && end > k && (size_t)(end - k) < sizeof(ns)) {
            memcpy(ns, k, (size_t)(end - k));
            ns[end - k] = 0;
        }
    }
    cfg.dht_namespaces = nsp;
    cfg.n_dht_namespaces = 1;
    rc = cp2p_node_start(&cfg, &n);
    cp2p_privkey_free(key);
    if (rc != 0) {
        fprintf(stderr, "cp2p dht: cannot start the node: %s%s\n", cp2p_strerror(rc),
                rc == CP2P_EINVAL ? " (each --bootstrap must be a multiaddr ending in /p2p/ID)"
                                  : "");
        return rc == CP2P_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    size_t table = 0;
    rc = cp2p_node_dht_bootstrap(n, timeout, &table);
    if (rc != 0 || table == 0) {
        fprintf(stderr, "cp2p dht: bootstrap failed: %s\n",
                rc != 0 ? cp2p_strerror(rc) : "no DHT server reachable");
        cp2p_node_stop(n);
        return CLI_EXIT_FAIL;
    }
    rc = run_op(n, json, timeout, argc - optind, argv + optind);
    cp2p_node_stop(n);
    return rc;
}
