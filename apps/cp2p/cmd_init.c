/* cp2p init: a home directory with a key and a default config, as `cometbft init` does. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char INIT_HELP[] =
    "usage: cp2p init [--home DIR] [--type ed25519|secp256k1] [--force]\n"
    "\n"
    "Create DIR (default $HOME/.cp2p) with a private key (node.key, mode 0600) and a default\n"
    "config (config.toml) for 'cp2p node --config DIR/config.toml', whose peerstore is\n"
    "DIR/peerstore.db. Existing files are kept unless --force is given. Prints the new peer ID.\n";

static int write_config(const char *path, const char *key_path, const char *ps_path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "cp2p init: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "# cp2p node configuration, written by `cp2p init`.\n"
            "# Every option is also a flag of `cp2p node` (see `cp2p node --help` and docs/CLI.md);\n"
            "# flags given on the command line come after this file's and win.\n"
            "\n"
            "# Identity (protobuf PrivateKey, mode 0600).\n"
            "key = \"%s\"\n"
            "\n"
            "# Where to listen (repeatable). Port 0 picks a free port.\n"
            "listen = \"/ip4/0.0.0.0/tcp/4001\"\n"
            "\n"
            "# Known peers and their addresses, kept across restarts: at start the node redials\n"
            "# the peers it was connected to (most recent first).\n"
            "peerstore = \"%s\"\n"
            "\n"
            "# Peers to dial at start (repeatable), e.g.\n"
            "# peer = \"/ip4/192.0.2.1/tcp/4001/p2p/12D3KooW...\"\n"
            "\n"
            "# Kademlia DHT (on unless no-dht = true): bootstrap peers (repeatable), e.g.\n"
            "# bootstrap = \"/ip4/192.0.2.1/tcp/4001/p2p/12D3KooW...\"\n"
            "dht-mode = \"auto\"\n"
            "dht-protocol = \"/ipfs/kad/1.0.0\"\n"
            "dht-namespace = \"cp2p\"\n"
            "status-interval = 30\n"
            "\n"
            "# Serve /perf/1.0.0 (it sends whatever a peer asks for: test networks only).\n"
            "perf = false\n"
            "\n"
            "# Limits and timers.\n"
            "max-conns = 256\n"
            "max-pending-inbound = 64\n"
            "keepalive-ms = 15000\n"
            "dial-timeout-ms = 10000\n"
            "\n"
            "# trace, debug, info, warn, error or off.\n"
            "log-level = \"info\"\n",
            key_path, ps_path);
    if (fclose(f) != 0) {
        fprintf(stderr, "cp2p init: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int cli_cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'}, {"type", required_argument, NULL, 't'},
        {"force", no_argument, NULL, 'f'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *type = NULL;
    bool force = false;
    char def[1024], key_path[1100], cfg_path[1100], ps_path[1100];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 't': type = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(INIT_HELP, stdout); return 0;
        default: fputs(INIT_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(INIT_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    if (home == NULL) {
        const char *h = getenv("HOME");
        if (h == NULL || snprintf(def, sizeof(def), "%s/.cp2p", h) >= (int)sizeof(def)) {
            fprintf(stderr, "cp2p init: no $HOME: give --home DIR\n");
            return CLI_EXIT_USAGE;
        }
        home = def;
    }
    if (snprintf(key_path, sizeof(key_path), "%s/node.key", home) >= (int)sizeof(key_path) ||
        snprintf(cfg_path, sizeof(cfg_path), "%s/config.toml", home) >= (int)sizeof(cfg_path) ||
        snprintf(ps_path, sizeof(ps_path), "%s/peerstore.db", home) >= (int)sizeof(ps_path)) {
        fprintf(stderr, "cp2p init: path too long\n");
        return CLI_EXIT_USAGE;
    }
    if (mkdir(home, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cp2p init: cannot create %s: %s\n", home, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    struct stat st;
    if (!force && (stat(key_path, &st) == 0 || stat(cfg_path, &st) == 0)) {
        fprintf(stderr, "cp2p init: %s already holds a node (use --force to replace it)\n", home);
        return CLI_EXIT_FAIL;
    }
    cp2p_privkey *key = NULL;
    int rc = cli_get_key(NULL, NULL, type, &key);
    if (rc != 0) {
        return rc;
    }
    if ((rc = cp2p_privkey_save(key, key_path)) != 0) {
        fprintf(stderr, "cp2p init: cannot write %s: %s\n", key_path, cp2p_strerror(rc));
        cp2p_privkey_free(key);
        return CLI_EXIT_FAIL;
    }
    if (write_config(cfg_path, key_path, ps_path) != 0) {
        cp2p_privkey_free(key);
        return CLI_EXIT_FAIL;
    }
    cp2p_peer_id id;
    char pid[CP2P_PEER_ID_STR_MAX];
    if (cp2p_peer_id_from_pubkey(cp2p_privkey_public(key), &id) == 0) {
        printf("%s\n", cp2p_peer_id_str(&id, pid));
    }
    cp2p_privkey_free(key);
    fprintf(stderr, "cp2p init: wrote %s and %s\n", key_path, cfg_path);
    return 0;
}
