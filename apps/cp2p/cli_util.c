/* Helpers shared by the subcommands. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

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

/* CLI JSON goes through jansson. Text from peers (pubsub messages, DHT values, responses) need
 * not be UTF-8, which a JSON string must be: each byte that does not start a valid UTF-8
 * sequence becomes U+FFFD, so the line stays valid JSON whatever the peer sent. */
json_t *cli_json_text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j != NULL) {
        return j;
    }
    cp2p_buf b;
    cp2p_buf_init(&b, len * 3 + 1);
    for (size_t i = 0; i < len;) {
        size_t n = 1;
        unsigned char c = (unsigned char)s[i];
        size_t want = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                                   : (c & 0xf8) == 0xf0 ? 4 : 0;
        /* Let jansson's own check judge a candidate sequence (overlong forms, surrogates). */
        json_t *one = want > 0 && len - i >= want ? json_stringn(s + i, want) : NULL;
        int rc;
        if (one != NULL) {
            n = want;
            rc = cp2p_buf_append(&b, s + i, n);
            json_decref(one);
        } else {
            rc = cp2p_buf_append(&b, "\xef\xbf\xbd", 3);
        }
        if (rc != 0) {
            break;
        }
        i += n;
    }
    j = json_stringn_nocheck(b.ptr != NULL ? (const char *)b.ptr : "", b.len);
    cp2p_buf_fini(&b);
    return j;
}

json_t *cli_json_str(const char *s)
{
    return cli_json_text(s, strlen(s));
}

json_t *cli_json_real(double v, int decimals)
{
    double scale = pow(10, decimals);
    return json_real(round(v * scale) / scale);
}

void cli_json_set(json_t *obj, const char *key, json_t *v)
{
    (void)json_object_set_new(obj, key, v);
}

int cli_json_print(json_t *j)
{
    /* 15 significant digits: a value rounded by cli_json_real prints as its decimals. */
    int rc = j != NULL ? json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15)) : -1;
    json_decref(j);
    putchar('\n');
    fflush(stdout);
    return rc == 0 ? 0 : -1;
}

int cli_cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("cp2p %s\n", cp2p_version());
    return 0;
}

/* Load or make the key the options ask for. Returns 0 or an exit code. */
int cli_get_key(const char *key_file, const char *seed_hex, const char *type_s,
                   cp2p_privkey **out)
{
    cp2p_key_type type = CP2P_KEY_ED25519;
    int rc;
    if (type_s != NULL && cli_parse_key_type(type_s, &type) != 0) {
        return CLI_EXIT_USAGE;
    }
    if (key_file != NULL && seed_hex != NULL) {
        fprintf(stderr, "cp2p: --key and --seed exclude each other\n");
        return CLI_EXIT_USAGE;
    }
    if (key_file != NULL) {
        if ((rc = cp2p_privkey_load(key_file, out)) != 0) {
            fprintf(stderr, "cp2p: cannot load key %s: %s\n", key_file, cp2p_strerror(rc));
            if (rc == CP2P_EPERM) {
                fprintf(stderr, "cp2p: the key file must not be readable by others: "
                                "chmod 600 %s\n", key_file);
            }
            return CLI_EXIT_FAIL;
        }
        if (type_s != NULL && cp2p_privkey_type(*out) != type) {
            fprintf(stderr, "cp2p: %s holds a %s key, not %s\n", key_file,
                    cli_key_type_name(cp2p_privkey_type(*out)), type_s);
            cp2p_privkey_free(*out);
            *out = NULL;
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    if (seed_hex != NULL) {
        uint8_t seed[32];
        if (cli_parse_seed(seed_hex, seed) != 0) {
            return CLI_EXIT_USAGE;
        }
        rc = cp2p_privkey_from_seed(type, seed, out);
        sodium_memzero(seed, sizeof(seed));
    } else {
        rc = cp2p_privkey_generate(type, out);
    }
    if (rc != 0) {
        fprintf(stderr, "cp2p: cannot create a %s key: %s\n", cli_key_type_name(type),
                cp2p_strerror(rc));
        return rc == CP2P_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    return 0;
}


int cli_parse_bytes(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (strcmp(end, "") == 0) {
        mul = 1;
    } else if (strcmp(end, "K") == 0 || strcmp(end, "k") == 0) {
        mul = 1000;
    } else if (strcmp(end, "M") == 0) {
        mul = 1000 * 1000;
    } else if (strcmp(end, "G") == 0) {
        mul = 1000 * 1000 * 1000;
    } else if (strcmp(end, "Ki") == 0) {
        mul = 1024;
    } else if (strcmp(end, "Mi") == 0) {
        mul = 1024 * 1024;
    } else if (strcmp(end, "Gi") == 0) {
        mul = 1024 * 1024 * 1024;
    } else {
        return -1;
    }
    if (v > UINT64_MAX / mul) {
        return -1;
    }
    *out = (uint64_t)v * mul;
    return 0;
}

void cli_host_env(cp2p_host_config *cfg)
{
    const char *q = getenv("CP2P_CONN_QUEUE_US");
    if (q != NULL && strcmp(q, "fixed") == 0) {
        cfg->conn_queue_us = CP2P_HOST_CONN_QUEUE_FIXED;
    } else if (q != NULL && *q != '\0') {
        char *qe = NULL;
        unsigned long n = strtoul(q, &qe, 10);
        if (qe != NULL && *qe == '\0' && n > 0 && n < UINT32_MAX) {
            cfg->conn_queue_us = (uint32_t)n;
        }
    }
    const char *v = getenv("CP2P_TCP_NOTSENT_LOWAT");
    if (v == NULL || *v == '\0') {
        return;
    }
    if (strcmp(v, "off") == 0) {
        cfg->tcp_notsent_lowat = CP2P_HOST_NOTSENT_LOWAT_OFF;
        return;
    }
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);
    if (end != NULL && *end == '\0' && n > 0 && n < UINT32_MAX) {
        cfg->tcp_notsent_lowat = (uint32_t)n;
    }
}

int cli_parse_multiaddr(const char *s, cp2p_multiaddr **out)
{
    if (cp2p_multiaddr_parse(s, strlen(s), out) != 0) {
        fprintf(stderr, "cp2p: '%s' is not a valid multiaddr\n", s);
        return -1;
    }
    return 0;
}
