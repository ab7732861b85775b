/* cp2p artifact put|get|ls|stat: artifact gossip through a running node's HTTP API
 * (cp2p node --artifacts DIR --api; docs/CLI.md, docs/ARTIFACTS.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char ARTIFACT_HELP[] =
    "usage: cp2p artifact put FILE [--api HOST:PORT] [--api-token TOKEN] [--timeout MS]\n"
    "       cp2p artifact get ID [--api HOST:PORT] [--api-token TOKEN]\n"
    "       cp2p artifact ls|stat [ID] [--api HOST:PORT] [--api-token TOKEN]\n"
    "Artifact gossip through a running node (cp2p node --artifacts DIR --api).\n"
    "  put FILE   store FILE in the node's pool and spread it; prints its id (Qm...)\n"
    "  get ID     write the artifact's bytes to standard output (the node must hold it)\n"
    "  ls         print the artifacts the node holds (JSON)\n"
    "  stat ID    print whether the node holds or is fetching it, with progress (JSON)\n"
    "  --api HOST:PORT     the node's API (default " CLI_API_DEFAULT ")\n"
    "  --api-token TOKEN   the API's access token (default $CP2P_API_TOKEN)\n"
    "  --timeout MS        bound of the node's operation (default 60000)\n";

/* The whole file into memory (bounded: the API refuses bodies over its max_body anyway). */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    while (b != NULL) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            break;
        }
        if (n == cap) {
            if (cap >= CLI_API_ANSWER_MAX * 16) {
                free(b);
                b = NULL;
                break;
            }
            uint8_t *nb = realloc(b, cap * 2);
            if (nb == NULL) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (b == NULL || err) {
        free(b);
        return -1;
    }
    *out = b;
    *len = n;
    return 0;
}

int cli_cmd_artifact(int argc, char **argv)
{
    static const struct option opts[] = {
        {"api", required_argument, NULL, 'a'},
        {"api-token", required_argument, NULL, 'T'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *api = CLI_API_DEFAULT, *token = getenv("CP2P_API_TOKEN");
    uint64_t timeout = 60000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': api = optarg; break;
        case 'T': token = optarg; break;
        case 't':
            if (cli_parse_bytes(optarg, &timeout) != 0 || timeout == 0) {
                fprintf(stderr, "cp2p artifact: --timeout needs milliseconds\n");
                return CLI_EXIT_USAGE;
            }
            break;
        case 'h': fputs(ARTIFACT_HELP, stdout); return 0;
        default: fputs(ARTIFACT_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (token != NULL && token[0] == '\0') {
        token = NULL;
    }
    if (optind >= argc) {
        fputs(ARTIFACT_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *verb = argv[optind];
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    bool needs_arg = strcmp(verb, "ls") != 0;
    if ((strcmp(verb, "put") != 0 && strcmp(verb, "get") != 0 && strcmp(verb, "ls") != 0 &&
         strcmp(verb, "stat") != 0) ||
        (needs_arg && (arg == NULL || optind + 2 != argc)) || (!needs_arg && arg != NULL)) {
        fputs(ARTIFACT_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    char ms[32];
    cp2p_buf path;
    int rc;
    snprintf(ms, sizeof(ms), "%llums", (unsigned long long)timeout);
    if (strcmp(verb, "put") == 0) {
        uint8_t *data;
        size_t len;
        if (read_file(arg, &data, &len) != 0) {
            fprintf(stderr, "cp2p artifact: cannot read %s\n", arg);
            return CLI_EXIT_FAIL;
        }
        if (cli_api_path(&path, "/api/v0/artifact/put?timeout=", ms) != 0) {
            free(data);
            return CLI_EXIT_USAGE;
        }
        json_t *j = cli_api_call("artifact", api, token, (const char *)path.ptr, data, len,
                                 timeout + 5000, &rc);
        free(data);
        cp2p_buf_fini(&path);
        const char *id = j != NULL ? json_string_value(json_object_get(j, "Id")) : NULL;
        if (j != NULL && id == NULL) {
            fprintf(stderr, "cp2p artifact: the API's answer has no Id\n");
            rc = CLI_EXIT_FAIL;
        } else if (id != NULL) {
            printf("%s\n", id);
        }
        json_decref(j);
        return rc;
    }
    if (strcmp(verb, "get") == 0) {
        cli_api_answer a;
        char err[512];
        if (cli_api_path(&path, "/api/v0/artifact/get?arg=", arg) != 0) {
            return CLI_EXIT_USAGE;
        }
        rc = cli_api_request(api, "POST", (const char *)path.ptr, token, NULL, 0, timeout, &a,
                             err, sizeof(err));
        cp2p_buf_fini(&path);
        if (rc != 0) {
            fprintf(stderr, "cp2p artifact: %s\n", err);
            return CLI_EXIT_FAIL;
        }
        if (a.status != 200) {
            char detail[300];
            cli_api_error_message(a.body, detail, sizeof(detail));
            fprintf(stderr, "cp2p artifact: the API answered %d%s\n", a.status, detail);
            free(a.text);
            return CLI_EXIT_FAIL;
        }
        size_t blen = a.len - (size_t)(a.body - a.text);
        rc = fwrite(a.body, 1, blen, stdout) == blen && fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
        free(a.text);
        return rc;
    }
    if (strcmp(verb, "ls") == 0 ? cli_api_path(&path, "/api/v0/artifact/ls?timeout=", ms)
                                : cli_api_path(&path, "/api/v0/artifact/stat?arg=", arg) != 0 ||
                                      cli_api_path_add(&path, "&timeout=", ms)) {
        return CLI_EXIT_USAGE;
    }
    json_t *j = cli_api_call("artifact", api, token, (const char *)path.ptr, NULL, 0,
                             timeout + 5000, &rc);
    cp2p_buf_fini(&path);
    if (j != NULL) {
        cli_json_print(j);
    }
    return rc;
}
