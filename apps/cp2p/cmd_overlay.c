/* cp2p overlay send|routes|topology and cp2p route: the overlay of a running node
 * (cp2p node --overlay --api), through its HTTP API. See docs/CLI.md. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char OVERLAY_HELP[] =
    "usage: cp2p overlay send PEER_ID DATA [--reliable] [--source-route] --api HOST:PORT\n"
    "                         [--api-token TOKEN] [--timeout MS] [--json]\n"
    "       cp2p overlay routes|topology --api HOST:PORT [--api-token TOKEN] [--json]\n"
    "       cp2p route --api HOST:PORT [--api-token TOKEN] [--json]\n"
    "\n"
    "Send DATA to PEER_ID over the overlay of the node at --api (cp2p node --overlay --api),\n"
    "routed through the peers it is connected to; print its routing table or the link-state\n"
    "topology it knows. cp2p route is cp2p overlay routes.\n"
    "  --reliable       wait for the destination's acknowledgement (retransmitted until then\n"
    "                   or until the overlay's retry limit: then it fails)\n"
    "  --source-route   route by the link-state database (Dijkstra) instead of the distance\n"
    "                   vector\n"
    "  --api HOST:PORT  the node's HTTP API\n"
    "  --api-token TOKEN  the API's access token (default $CP2P_API_TOKEN)\n"
    "  --timeout MS     how long to wait for the API (default 60000)\n"
    "  --json           print the API's JSON answer\n";

static int print_table(const char *what, json_t *j, bool json)
{
    if (json) {
        cli_json_print(j);
        return 0;
    }
    json_t *arr = json_object_get(j, strcmp(what, "topology") == 0 ? "Links" : "Routes");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (strcmp(what, "topology") == 0) {
            printf("%s -> %s cost %lld\n", json_string_value(json_object_get(v, "From")),
                   json_string_value(json_object_get(v, "To")),
                   (long long)json_integer_value(json_object_get(v, "Cost")));
        } else {
            printf("%s via %s metric %lld\n", json_string_value(json_object_get(v, "Peer")),
                   json_string_value(json_object_get(v, "NextHop")),
                   (long long)json_integer_value(json_object_get(v, "Metric")));
        }
    }
    printf("%lld %s\n", (long long)json_integer_value(json_object_get(j, "Total")),
           strcmp(what, "topology") == 0 ? "links" : "routes");
    json_decref(j);
    return 0;
}

static int overlay_main(const char *cmd, int argc, char **argv, bool route_only)
{
    static const struct option opts[] = {
        {"reliable", no_argument, NULL, 'r'},
        {"source-route", no_argument, NULL, 'S'},
        {"api", required_argument, NULL, 'a'},
        {"api-token", required_argument, NULL, 'T'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *api = NULL, *token = getenv("CP2P_API_TOKEN");
    bool reliable = false, source = false, json = false;
    uint64_t timeout = 60000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': reliable = true; break;
        case 'S': source = true; break;
        case 'a': api = optarg; break;
        case 'T': token = optarg; break;
        case 'j': json = true; break;
        case 't':
            if (cli_parse_bytes(optarg, &timeout) != 0 || timeout == 0) {
                fprintf(stderr, "cp2p %s: bad number '%s'\n", cmd, optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'h': fputs(OVERLAY_HELP, stdout); return 0;
        default: fputs(OVERLAY_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    int rest = argc - optind;
    const char *what = route_only ? "routes" : rest >= 1 ? argv[optind] : "";
    bool send = !route_only && rest == 3 && strcmp(what, "send") == 0;
    bool table = route_only ? rest == 0
                            : rest == 1 && (strcmp(what, "routes") == 0 ||
                                            strcmp(what, "topology") == 0);
    if ((!send && !table) || api == NULL) {
        if (api == NULL && (send || table)) {
            fprintf(stderr, "cp2p %s: --api HOST:PORT is required (a node run with --overlay "
                            "--api)\n", cmd);
        }
        fputs(OVERLAY_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    if (token != NULL && token[0] == '\0') {
        token = NULL;
    }
    int rc;
    if (table) {
        const char *path = strcmp(what, "topology") == 0 ? "/api/v0/overlay/topology"
                                                          : "/api/v0/overlay/routes";
        json_t *j = cli_api_call(cmd, api, token, path, NULL, 0, timeout, &rc);
        return j == NULL ? rc : print_table(what, j, json);
    }
    const char *peer = argv[optind + 1], *data = argv[optind + 2];
    cp2p_buf path;
    if (cli_api_path(&path, "/api/v0/overlay/send?arg=", peer) != 0 ||
        (reliable && cli_api_path_add(&path, "&reliable=", "true") != 0) ||
        (source && cli_api_path_add(&path, "&source-route=", "true") != 0)) {
        fprintf(stderr, "cp2p %s: argument too long\n", cmd);
        return CLI_EXIT_USAGE;
    }
    json_t *j = cli_api_call(cmd, api, token, (const char *)path.ptr, data, strlen(data), timeout,
                             &rc);
    cp2p_buf_fini(&path);
    if (j == NULL) {
        return rc;
    }
    if (json) {
        cli_json_print(j);
        return 0;
    }
    printf("sent %s%s\n", json_string_value(json_object_get(j, "Id")),
           json_is_true(json_object_get(j, "Acked")) ? ", acknowledged" : "");
    json_decref(j);
    return 0;
}

int cli_cmd_overlay(int argc, char **argv)
{
    return overlay_main("overlay", argc, argv, false);
}

int cli_cmd_route(int argc, char **argv)
{
    return overlay_main("route", argc, argv, true);
}
