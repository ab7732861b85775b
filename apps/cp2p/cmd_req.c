/* cp2p req / cp2p chat: request-response from the command line, through the node API. */
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/node.h>

#include "cli.h"

#define CHAT_PROTOCOL "/cp2p/chat/1.0.0"

static const char REQ_HELP[] =
    "usage: cp2p req MULTIADDR PROTOCOL DATA [--timeout MS] [--json]\n"
    "       cp2p req MULTIADDR|PEER PROTOCOL DATA --api HOST:PORT [--api-token TOKEN] ...\n"
    "\n"
    "Connect to MULTIADDR, send DATA as one request over the request-response PROTOCOL (one\n"
    "stream per request: the request, then end of stream; the response read to its end) and\n"
    "print the response. Exit status 0 on a response, 1 on an error, 2 on a usage error.\n"
    "'cp2p node --echo PROTOCOL' answers such requests with their own bytes.\n"
    "\n"
    "  --timeout MS  give up after MS milliseconds (default 10000)\n"
    "  --json        print {\"peer\",\"protocol\",\"response\",\"bytes\"}\n"
    "  --api HOST:PORT  send the request from a running node (cp2p node --api) through its\n"
    "                HTTP API instead of starting a node here; the peer may then be a bare\n"
    "                peer ID the node knows an address of\n"
    "  --api-token TOKEN  the API's access token (default $CP2P_API_TOKEN)\n";

static const char CHAT_HELP[] =
    "usage: cp2p chat [MULTIADDR] [--listen MA] [--key FILE | --seed HEX32]\n"
    "\n"
    "A line-based chat between two nodes over request-response (" CHAT_PROTOCOL "). Start\n"
    "one side with no MULTIADDR: it prints its address and waits; start the other with that\n"
    "address. Each line typed is sent to the peer, each line received is printed as\n"
    "'<peer>: text'. End of input (Ctrl-D) or Ctrl-C leaves.\n"
    "\n"
    "  --listen MA   address to listen on (default /ip4/127.0.0.1/tcp/0)\n"
    "  --key FILE    identity from a key file; --seed HEX32 derived identity\n";

static int start_node(const char *key_file, const char *seed, const char *const *listen,
                      size_t nlisten, cp2p_node **out)
{
    cp2p_privkey *key = NULL;
    cp2p_node_config cfg;
    int rc = cli_get_key(key_file, seed, NULL, &key);
    if (rc != 0) {
        return rc;
    }
    cp2p_node_config_default(&cfg);
    cfg.host.identity = key;
    cfg.listen = listen;
    cfg.n_listen = nlisten;
    rc = cp2p_node_start(&cfg, out);
    cp2p_privkey_free(key);
    if (rc != 0) {
        fprintf(stderr, "cp2p: cannot start the node: %s\n", cp2p_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* req --api: POST /api/v0/req with DATA as the body; the response comes back in base64. */
static int req_through_api(const char *api, const char *token, const char *peer,
                           const char *proto, const char *data, uint64_t timeout, bool json)
{
    char ms[32];
    cp2p_buf path;
    int rc;
    snprintf(ms, sizeof(ms), "%llums", (unsigned long long)timeout);
    if (cli_api_path(&path, "/api/v0/req?arg=", peer) != 0 ||
        cli_api_path_add(&path, "&proto=", proto) != 0 ||
        cli_api_path_add(&path, "&timeout=", ms) != 0) {
        fprintf(stderr, "cp2p req: arguments too long\n");
        return CLI_EXIT_USAGE;
    }
    json_t *j = cli_api_call("req", api, token, (const char *)path.ptr, data, strlen(data),
                             timeout + 5000, &rc);
    cp2p_buf_fini(&path);
    uint8_t *resp = NULL;
    size_t len = 0;
    if (j != NULL && cli_api_base64(json_object_get(j, "Response"), &resp, &len) != 0) {
        fprintf(stderr, "cp2p req: the API's answer has no Response\n");
        rc = CLI_EXIT_FAIL;
    } else if (j != NULL && json) {
        const char *pid = json_string_value(json_object_get(j, "Peer"));
        cli_json_print(json_pack("{s:s,s:o,s:o,s:I}", "peer", pid != NULL ? pid : "",
                                 "protocol", cli_json_str(proto), "response",
                                 cli_json_text(resp != NULL ? (const char *)resp : "", len),
                                 "bytes", (json_int_t)len));
    } else if (j != NULL) {
        if (len > 0) {
            fwrite(resp, 1, len, stdout);
        }
        putchar('\n');
    }
    free(resp);
    json_decref(j);
    return rc;
}

int cli_cmd_req(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"api", required_argument, NULL, 'a'},
        {"api-token", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t timeout = 10000;
    bool json = false;
    const char *api = NULL, *token = getenv("CP2P_API_TOKEN");
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_bytes(optarg, &timeout) != 0 || timeout == 0) {
                fprintf(stderr, "cp2p req: --timeout needs milliseconds\n");
                return CLI_EXIT_USAGE;
            }
            break;
        case 'j': json = true; break;
        case 'a': api = optarg; break;
        case 'T': token = optarg; break;
        case 'h': fputs(REQ_HELP, stdout); return 0;
        default: fputs(REQ_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 3) {
        fputs(REQ_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *addr = argv[optind], *proto = argv[optind + 1], *data = argv[optind + 2];
    if (api != NULL) {
        return req_through_api(api, token != NULL && token[0] != '\0' ? token : NULL, addr,
                               proto, data, timeout, json);
    }
    cp2p_node *n;
    cp2p_peer_id peer;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = start_node(NULL, NULL, NULL, 0, &n);
    if (rc != 0) {
        return rc;
    }
    rc = cp2p_node_dial(n, addr, timeout, &peer);
    if (rc == CP2P_EINVAL || rc == CP2P_ENOTSUP) {
        fprintf(stderr, "cp2p req: '%s' is not a dialable TCP multiaddr\n", addr);
        cp2p_node_stop(n);
        return CLI_EXIT_USAGE;
    }
    if (rc == 0) {
        rc = cp2p_node_request(n, &peer, proto, data, strlen(data), timeout, &resp, &len);
    }
    if (rc != 0) {
        fprintf(stderr, "cp2p req: %s\n", cp2p_strerror(rc));
    } else if (json) {
        char pid[CP2P_PEER_ID_STR_MAX];
        cli_json_print(json_pack("{s:s,s:o,s:o,s:I}", "peer", cp2p_peer_id_str(&peer, pid),
                                 "protocol", cli_json_str(proto), "response",
                                 cli_json_text(resp != NULL ? (const char *)resp : "", len),
                                 "bytes", (json_int_t)len));
    } else {
        fwrite(resp, 1, len, stdout);
        putchar('\n');
    }
    cp2p_free(resp);
    cp2p_node_stop(n);
    return rc == 0 ? 0 : CLI_EXIT_FAIL;
}

/* ---- chat ---- */

static pthread_mutex_t chat_mu = PTHREAD_MUTEX_INITIALIZER;
static cp2p_peer_id chat_peer;
static bool have_peer;

static int on_chat(void *ud, const cp2p_peer_id *from, const uint8_t *req, size_t len,
                   cp2p_buf *resp)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)ud;
    (void)resp;
    pthread_mutex_lock(&chat_mu);
    if (!have_peer) {
        chat_peer = *from; /* the first peer to speak becomes our partner */
        have_peer = true;
    }
    pthread_mutex_unlock(&chat_mu);
    cp2p_peer_id_str(from, pid);
    /* Print only what is printable: the peer's bytes are untrusted. */
    printf("%.12s: ", pid + (strlen(pid) > 12 ? strlen(pid) - 12 : 0));
    for (size_t i = 0; i < len; i++) {
        putchar(req[i] >= 0x20 && req[i] != 0x7f ? req[i] : '?');
    }
    putchar('\n');
    fflush(stdout);
    return 0;
}

int cli_cmd_chat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"key", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = "/ip4/127.0.0.1/tcp/0", *key_file = NULL, *seed = NULL;
    int c, rc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'k': key_file = optarg; break;
        case 's': seed = optarg; break;
        case 'h': fputs(CHAT_HELP, stdout); return 0;
        default: fputs(CHAT_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc - 1) {
        fputs(CHAT_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    cp2p_node *n;
    if ((rc = start_node(key_file, seed, &listen, 1, &n)) != 0) {
        return rc;
    }
    if ((rc = cp2p_node_set_request_handler(n, CHAT_PROTOCOL, on_chat, NULL,
                                            CP2P_NODE_ON_LOOP)) != 0) {
        fprintf(stderr, "cp2p chat: %s\n", cp2p_strerror(rc));
        cp2p_node_stop(n);
        return CLI_EXIT_FAIL;
    }
    char addr[1024];
    if (cp2p_node_addr(n, 0, addr, sizeof(addr)) == 0) {
        printf("chat: listening on %s\n", addr);
    }
    if (optind == argc - 1) {
        cp2p_peer_id peer;
        if ((rc = cp2p_node_dial(n, argv[optind], 10000, &peer)) != 0) {
            fprintf(stderr, "cp2p chat: cannot connect: %s\n", cp2p_strerror(rc));
            cp2p_node_stop(n);
            return rc == CP2P_EINVAL || rc == CP2P_ENOTSUP ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        pthread_mutex_lock(&chat_mu);
        chat_peer = peer;
        have_peer = true;
        pthread_mutex_unlock(&chat_mu);
        printf("chat: connected\n");
    } else {
        printf("chat: waiting for a peer to say something\n");
    }
    fflush(stdout);
    char line[4096];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        cp2p_peer_id peer;
        bool ok;
        uint8_t *resp = NULL;
        size_t len;
        line[strcspn(line, "\r\n")] = 0;
        pthread_mutex_lock(&chat_mu);
        ok = have_peer;
        peer = chat_peer;
        pthread_mutex_unlock(&chat_mu);
        if (!ok) {
            printf("chat: nobody to talk to yet\n");
            fflush(stdout);
            continue;
        }
        rc = cp2p_node_request(n, &peer, CHAT_PROTOCOL, line, strlen(line), 10000, &resp, &len);
        cp2p_free(resp);
        if (rc != 0) {
            printf("chat: not delivered: %s\n", cp2p_strerror(rc));
            fflush(stdout);
        }
    }
    cp2p_node_stop(n);
    return 0;
}
