/* Shared pieces of the cp2p command-line program. */
#ifndef CP2P_APPS_CLI_H
#define CP2P_APPS_CLI_H

#include <stdbool.h>
#include <stdio.h>

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
int cli_cmd_chat(int argc, char **argv);
int cli_cmd_dht(int argc, char **argv);
int cli_cmd_pubsub(int argc, char **argv);
int cli_cmd_stats(int argc, char **argv);

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
 * (cp2p_host_config.tcp_notsent_lowat). */
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
/* Write s as a JSON string literal (quotes and escapes). */
void cli_json_string(FILE *f, const char *s);

#endif
