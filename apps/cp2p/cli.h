/* Shared pieces of the cp2p command-line program. */
#ifndef CP2P_APPS_CLI_H
#define CP2P_APPS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <cp2p/buf.h>
#include <cp2p/keys.h>

/* Exit codes: 0 success, 1 runtime failure, 2 usage error (as most Unix tools). */
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int cli_cmd_id(int argc, char **argv);
int cli_cmd_keygen(int argc, char **argv);
int cli_cmd_version(int argc, char **argv);

/* Parse "ed25519" / "secp256k1". Returns 0 or -1 (after printing an error). */
int cli_parse_key_type(const char *s, cp2p_key_type *out);
/* Parse 64 hex characters into 32 bytes. Returns 0 or -1 (after printing an error). */
int cli_parse_seed(const char *s, uint8_t seed[32]);
const char *cli_key_type_name(cp2p_key_type t);
/* Write s as a JSON string literal (quotes and escapes). */
void cli_json_string(FILE *f, const char *s);

#endif
