/* cp2p: the command-line program. One subcommand per file (cmd_*.c); see docs/CLI.md. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <cp2p/cp2p.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} COMMANDS[] = {
    {"id", cli_cmd_id, "print a peer ID (new, from --seed, or from --key FILE)"},
    {"keygen", cli_cmd_keygen, "create a private key file (mode 0600)"},
    {"init", cli_cmd_init, "create a home directory with a key and a default config"},
    {"node", cli_cmd_node, "run a node until interrupted"},
    {"ping", cli_cmd_ping, "ping a peer (/ipfs/ping/1.0.0)"},
    {"perf", cli_cmd_perf, "measure throughput to a peer (/perf/1.0.0)"},
    {"req", cli_cmd_req, "send one request-response request and print the response"},
    {"artifact", cli_cmd_artifact, "artifact gossip through a node's API: put FILE, get ID, ls, stat ID"},
    {"chat", cli_cmd_chat, "line-based chat between two nodes"},
    {"pubsub", cli_cmd_pubsub, "gossipsub: sub TOPIC prints messages, pub TOPIC DATA publishes"},
    {"dht", cli_cmd_dht, "Kademlia DHT: find-peer, get, put, provide, find-providers"},
    {"overlay", cli_cmd_overlay, "overlay: send PEER DATA routed over other peers; routes, topology"},
    {"route", cli_cmd_route, "the overlay's routing table of a running node (--api)"},
    {"stats", cli_cmd_stats, "summary of a running node read from its HTTP API (--api)"},
    {"version", cli_cmd_version, "print the version"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cp2p COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    }
    fprintf(f, "\n'cp2p COMMAND --help' describes a command's options.\n"
               "Environment: CP2P_LOG=trace|debug|info|warn|error|off sets the log level.\n");
}

int main(int argc, char **argv)
{
    /* A peer that closes while we write must cost an EPIPE on that connection, not the process
     * (libuv leaves SIGPIPE to the application). */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        return cli_cmd_version(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
        if (strcmp(argv[1], COMMANDS[i].name) == 0) {
            return COMMANDS[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "cp2p: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
