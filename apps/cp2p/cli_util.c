/* Helpers shared by the subcommands. */
#include <string.h>

#include <cp2p/codec.h>

#include "cli.h"

int cli_parse_key_type(const char *s, cp2p_key_type *out)
{
    if (strcmp(s, "ed25519") == 0) {
        *out = CP2P_KEY_ED25519;
        return 0;
    }
    if (strcmp(s, "secp256k1") == 0) {
        *out = CP2P_KEY_SECP256K1;
        return 0;
    }
    fprintf(stderr, "cp2p: unknown key type '%s' (use ed25519 or secp256k1)\n", s);
    return -1;
}

const char *cli_key_type_name(cp2p_key_type t)
{
    switch (t) {
    case CP2P_KEY_ED25519: return "ed25519";
    case CP2P_KEY_SECP256K1: return "secp256k1";
    case CP2P_KEY_RSA: return "rsa";
    case CP2P_KEY_ECDSA: return "ecdsa";
    }
    return "unknown";
}

int cli_parse_seed(const char *s, uint8_t seed[32])
{
    cp2p_buf b;
    cp2p_buf_init(&b, 32);
    if (strlen(s) != 64 || cp2p_hex_decode(&b, s, 64) != 0) {
        fprintf(stderr, "cp2p: --seed needs 64 hex characters (32 bytes)\n");
        cp2p_buf_fini_wipe(&b);
        return -1;
    }
    memcpy(seed, b.ptr, 32);
    cp2p_buf_fini_wipe(&b);
    return 0;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != 0; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

int cli_cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("cp2p %s\n", cp2p_version());
    return 0;
}
