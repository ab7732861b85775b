/* cp2p node --channel/--network/--moniker: a switch (cp2p/reactor.h) on the node's host with one
 * reactor, "cli", on the given channels. Its node info carries --network and --moniker; it
 * prints each peer added (with the peer's node info) and removed, and each message received
 * ('reactor_peer' and 'channel_message' events with --json: length and the first 64 bytes in
 * hex). The host's close frees it. The
 * HTTP API's /api/v0/channels shows it (docs/API.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/reactor.h>

#include "cli.h"

static void on_add(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud)
{
    const cli_switch_opts *o = ud;
    const cp2p_node_info *ni = cp2p_reactor_peer_node_info(p);
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)r;
    cp2p_peer_id_str(cp2p_reactor_peer_id(p), pid);
    if (o->json) {
        cli_json_print(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "event", "reactor_peer", "state",
                                 "added", "peer", pid, "moniker", ni->moniker, "network",
                                 ni->network, "version", ni->version));
    } else {
        printf("reactor peer added %s moniker=%s network=%s version=%s\n", pid, ni->moniker,
               ni->network, ni->version);
    }
    fflush(stdout);
}

static void on_remove(cp2p_reactor *r, cp2p_reactor_peer *p, const char *reason, void *ud)
{
    const cli_switch_opts *o = ud;
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)r;
    cp2p_peer_id_str(cp2p_reactor_peer_id(p), pid);
    if (o->json) {
        cli_json_print(json_pack("{s:s,s:s,s:s,s:s}", "event", "reactor_peer", "state",
                                 "removed", "peer", pid, "reason", reason));
    } else {
        printf("reactor peer removed %s: %s\n", pid, reason);
    }
    fflush(stdout);
}

static void on_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                       size_t len, void *ud)
{
    const cli_switch_opts *o = ud;
    char pid[CP2P_PEER_ID_STR_MAX], chs[8];
    (void)r;
    cp2p_peer_id_str(cp2p_reactor_peer_id(p), pid);
    snprintf(chs, sizeof(chs), "0x%02x", ch);
    if (o->json) {
        /* the first 64 bytes as hex: messages are binary and up to 22 MB */
        char hex[2 * 64 + 1];
        size_t k = len < 64 ? len : 64;
        for (size_t i = 0; i < k; i++) {
            snprintf(hex + 2 * i, 3, "%02x", msg[i]);
        }
        hex[2 * k] = 0;
        cli_json_print(json_pack("{s:s,s:s,s:s,s:I,s:s}", "event", "channel_message", "peer",
                                 pid, "channel", chs, "len", (json_int_t)len, "head", hex));
    } else {
        printf("channel message %s %s: %zu bytes\n", pid, chs, len);
    }
    fflush(stdout);
}

int cli_parse_channel(const char *s, uint8_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (*s == 0 || *end != 0 || v > 255 || *s == '-') {
        return -1;
    }
    *out = (uint8_t)v;
    return 0;
}

int cli_node_switch_start(cp2p_host *h, cli_switch_opts *o)
{
    if (o->n_channels == 0) {
        if (o->network != NULL || o->moniker != NULL) {
            fprintf(stderr, "cp2p node: --network and --moniker need --channel\n");
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    cp2p_node_info ni;
    cp2p_node_info_default(&ni);
    if ((o->network != NULL && strlen(o->network) >= sizeof(ni.network)) ||
        (o->moniker != NULL && strlen(o->moniker) >= sizeof(ni.moniker))) {
        fprintf(stderr, "cp2p node: --network is at most %d bytes, --moniker %d\n",
                CP2P_NODEINFO_NETWORK_MAX, CP2P_NODEINFO_MONIKER_MAX);
        return CLI_EXIT_USAGE;
    }
    if (o->network != NULL) {
        snprintf(ni.network, sizeof(ni.network), "%s", o->network);
    }
    if (o->moniker != NULL) {
        snprintf(ni.moniker, sizeof(ni.moniker), "%s", o->moniker);
    }
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.node_info = &ni;
    cp2p_channel_desc cd[CP2P_REACTOR_MAX_CHANNELS];
    for (size_t i = 0; i < o->n_channels; i++) {
        cd[i] = (cp2p_channel_desc){.id = o->channels[i], .priority = 5};
    }
    cp2p_reactor_desc d = {.name = "cli", .channels = cd, .n_channels = o->n_channels,
                           .add_peer = on_add, .remove_peer = on_remove, .receive = on_receive};
    cp2p_switch *sw = NULL;
    cp2p_reactor *r;
    int rc = cp2p_switch_new(h, &cfg, &sw);
    if (rc == CP2P_EINVAL) {
        fprintf(stderr, "cp2p node: --network and --moniker must be printable ASCII, the "
                        "moniker not blank\n");
        return CLI_EXIT_USAGE;
    }
    if (rc == 0 && (rc = cp2p_switch_add_reactor(sw, &d, o, &r)) == CP2P_ESTATE) {
        fprintf(stderr, "cp2p node: a --channel given twice\n");
        cp2p_switch_free(sw);
        return CLI_EXIT_USAGE;
    }
    if (rc == 0) {
        rc = cp2p_switch_start(sw);
    }
    if (rc != 0) {
        fprintf(stderr, "cp2p node: cannot start the reactor switch: %s\n", cp2p_strerror(rc));
        cp2p_switch_free(sw);
        return CLI_EXIT_FAIL;
    }
    return 0; /* the host's close stops and frees it */
}
