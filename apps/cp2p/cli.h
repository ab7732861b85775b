/* Shared pieces of the cp2p command-line program. */
#ifndef CP2P_APPS_CLI_H
#define CP2P_APPS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include <cp2p/buf.h>
#include <cp2p/host.h>
#include <cp2p/keys.h>
#include <cp2p/multiaddr.h>

/* Exit codes: 0 success, 1 runtime failure, 2 usage error (as most Unix tools). */
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int cli_cmd_id(int argc, char **argv);
int cli_cmd_keygen(int argc, char **argv);
int cli_cmd_version(int argc, char **argv);
int cli_cmd_node(int argc, char **argv);
int cli_cmd_ping(int argc, char **argv);
int cli_cmd_perf(int argc, char **argv);
int cli_cmd_req(int argc, char **argv);
int cli_cmd_artifact(int argc, char **argv);
int cli_cmd_chat(int argc, char **argv);
int cli_cmd_dht(int argc, char **argv);
int cli_cmd_pubsub(int argc, char **argv);
int cli_cmd_stats(int argc, char **argv);
int cli_cmd_overlay(int argc, char **argv);
int cli_cmd_route(int argc, char **argv);

/* cp2p node --channel/--network/--moniker (cmd_node_switch.c): a switch with one reactor. */
typedef struct cli_switch_opts {
    uint8_t channels[16];
    size_t n_channels;
    const char *network, *moniker; /* NULL: the node info defaults */
    bool json;
} cli_switch_opts;
/* "0x30", "48": a channel id. Returns 0 or -1. */
int cli_parse_channel(const char *s, uint8_t *out);
/* Start the switch when channels were given (o must outlive the host). Returns 0 or an exit
 * code after printing why. */
int cli_node_switch_start(cp2p_host *h, cli_switch_opts *o);

/* Load (--key), derive (--seed) or generate the identity the options ask for; `type_s` may be
 * NULL. Returns 0 or an exit code after printing why. */
int cli_get_key(const char *key_file, const char *seed_hex, const char *type_s,
                cp2p_privkey **out);
/* Parse a byte count: digits with an optional K, M, G (powers of 1000) or Ki, Mi, Gi (1024)
 * suffix. Returns 0 or -1. */
int cli_parse_bytes(const char *s, uint64_t *out);
/* Parse a multiaddr argument, printing an error. Returns 0 or -1. */
int cli_parse_multiaddr(const char *s, cp2p_multiaddr **out);
/* Host settings from the environment, for benchmarks: CP2P_TCP_NOTSENT_LOWAT=BYTES|off
 * (cp2p_host_config.tcp_notsent_lowat), CP2P_CONN_QUEUE_US=US|fixed (conn_queue_us). */
void cli_host_env(cp2p_host_config *cfg);

/* Read a config file (see config.c) into flags: *argv_out holds "--name" [value] pairs to
 * parse before the command line's own. Returns 0 or -1 after printing why. */
int cli_config_load(const char *path, int *argc_out, char ***argv_out);
void cli_config_free(int argc, char **argv);
int cli_cmd_init(int argc, char **argv);

/* Parse "ed25519" / "secp256k1". Returns 0 or -1 (after printing an error). */
int cli_parse_key_type(const char *s, cp2p_key_type *out);
/* Parse 64 hex characters into 32 bytes. Returns 0 or -1 (after printing an error). */
int cli_parse_seed(const char *s, uint8_t seed[32]);
const char *cli_key_type_name(cp2p_key_type t);
/* --json output, built with jansson. A JSON string of `len` bytes that need not be UTF-8
 * (invalid bytes become U+FFFD), or of a NUL-ended string; a real rounded to `decimals`
 * decimal places; NULL only when out of memory. */
json_t *cli_json_text(const char *s, size_t len);
json_t *cli_json_str(const char *s);
json_t *cli_json_real(double v, int decimals);
/* obj[key] = v, taking v (a NULL v is ignored, as jansson does). */
void cli_json_set(json_t *obj, const char *key, json_t *v);
/* Print j compact on one line of stdout (flushed) and free it; j NULL (out of memory) prints
 * an empty line. Returns 0 or -1. */
int cli_json_print(json_t *j);

/* ---- the HTTP API of a running node (cli_api.c) ---- */
#define CLI_API_DEFAULT "127.0.0.1:5001"
#define CLI_API_ANSWER_MAX (16u * 1024 * 1024)
#define CLI_API_PATH_MAX (64u * 1024)
typedef struct {
    char *text; /* the whole answer, NUL ended (free it) */
    size_t len;
    const char *body; /* inside text */
    int status;
} cli_api_answer;
/* One request to the API at `api` ("HOST:PORT" or "[V6]:PORT") with an optional bearer token
 * and body; sending and each wait for the answer bounded by timeout_ms. Returns 0 and *out,
 * or -1 with a message in err. */
int cli_api_request(const char *api, const char *method, const char *path, const char *token,
                    const void *body, size_t body_len, uint64_t timeout_ms,
                    cli_api_answer *out, char *err, size_t errlen);
/* ": <Message>" of an API error body into out, or "" when it has none. */
void cli_api_error_message(const char *body, char *out, size_t outlen);
/* POST path (with body) and parse the 200 answer's JSON. Returns it (json_decref it) with
 * *exit_code 0, or NULL after printing why as "cp2p CMD: ..." with *exit_code 1. */
json_t *cli_api_call(const char *cmd, const char *api, const char *token, const char *path,
                     const void *body, size_t body_len, uint64_t timeout_ms, int *exit_code);
/* Init out with prefix + arg percent-encoded + NUL (a request path). Returns 0, or -1 (too
 * long; out is then empty). */
int cli_api_path(cp2p_buf *out, const char *prefix, const char *arg);
/* Append sep (such as "&proto=") and arg percent-encoded to a path made by cli_api_path.
 * Returns 0, or -1 (too long; out is then empty). */
int cli_api_path_add(cp2p_buf *out, const char *sep, const char *arg);
/* Decode a JSON string of standard base64 (the API's bytes) into *out (free it; NULL when
 * empty). Returns 0 or -1 (not a string, not base64, out of memory). */
int cli_api_base64(json_t *v, uint8_t **out, size_t *out_len);
/* Append s percent-encoded for a query value ('/' kept) to out. Returns 0 or -1 (full). */
int cli_api_escape(const char *s, size_t len, cp2p_buf *out);

#endif
