/* cp2p id / cp2p keygen: identities. */
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include <cp2p/codec.h>
#include <cp2p/peer_id.h>

#include "cli.h"

static const char ID_HELP[] =
    "usage: cp2p id [--key FILE | --seed HEX32] [--type ed25519|secp256k1] [--json]\n"
    "\n"
    "Print a peer ID. Without --key or --seed a new random identity is generated (and not\n"
    "saved: use 'cp2p keygen' for that).\n"
    "\n"
    "  --key FILE     load the private key from FILE (protobuf PrivateKey, mode 0600)\n"
    "  --seed HEX32   derive the key from 32 bytes given as 64 hex characters: the Ed25519\n"
    "                 seed, or the secp256k1 secret scalar\n"
    "  --type T       key type for a new or seeded key: ed25519 (default) or secp256k1\n"
    "  --json         print one JSON object: peer_id, peer_id_cid, public_key (hex of the\n"
    "                 protobuf PublicKey), type\n";

static const char KEYGEN_HELP[] =
    "usage: cp2p keygen --out FILE [--type ed25519|secp256k1] [--seed HEX32] [--force]\n"
    "\n"
    "Create a private key, save it to FILE (protobuf PrivateKey, mode 0600) and print its\n"
    "peer ID. An existing FILE is kept unless --force is given.\n";

/* Print the identity of `key`, as text or JSON. Returns 0 or an exit code. */
static int print_identity(const cp2p_privkey *key, bool json)
{
    const cp2p_pubkey *pub = cp2p_privkey_public(key);
    cp2p_peer_id id;
    cp2p_buf b58, cid, pb, pbhex;
    int rc;
    cp2p_buf_init(&b58, 256);
    cp2p_buf_init(&cid, 256);
    cp2p_buf_init(&pb, 256);
    cp2p_buf_init(&pbhex, 512);
    if ((rc = cp2p_peer_id_from_pubkey(pub, &id)) != 0 ||
        (rc = cp2p_peer_id_to_base58(&id, &b58)) != 0 ||
        (rc = cp2p_peer_id_to_cid(&id, &cid)) != 0 || (rc = cp2p_pubkey_marshal(pub, &pb)) != 0 ||
        (rc = cp2p_hex_encode(&pbhex, pb.ptr, pb.len)) != 0) {
        fprintf(stderr, "cp2p: cannot derive the peer ID: %s\n", cp2p_strerror(rc));
        goto done;
    }
    if (json) {
        cli_json_print(json_pack("{s:o,s:o,s:o,s:s}", "peer_id",
                                 cli_json_text((const char *)b58.ptr, b58.len), "peer_id_cid",
                                 cli_json_text((const char *)cid.ptr, cid.len), "public_key",
                                 cli_json_text((const char *)pbhex.ptr, pbhex.len), "type",
                                 cli_key_type_name(cp2p_pubkey_type(pub))));
    } else {
        printf("%s\n", (const char *)b58.ptr);
    }
done:
    cp2p_buf_fini(&b58);
    cp2p_buf_fini(&cid);
    cp2p_buf_fini(&pb);
    cp2p_buf_fini(&pbhex);
    return rc == 0 ? 0 : CLI_EXIT_FAIL;
}

int cli_cmd_id(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'}, {"seed", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *key_file = NULL, *seed = NULL, *type = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key_file = optarg; break;
        case 's': seed = optarg; break;
        case 't': type = optarg; break;
        case 'j': json = true; break;
        case 'h': fputs(ID_HELP, stdout); return 0;
        default: fputs(ID_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cp2p id: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    cp2p_privkey *key = NULL;
    int rc = cli_get_key(key_file, seed, type, &key);
    if (rc != 0) {
        return rc;
    }
    rc = print_identity(key, json);
    cp2p_privkey_free(key);
    return rc;
}

int cli_cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'}, {"seed", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'}, {"force", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *seed = NULL, *type = NULL;
    bool force = false, json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 's': seed = optarg; break;
        case 't': type = optarg; break;
        case 'f': force = true; break;
        case 'j': json = true; break;
        case 'h': fputs(KEYGEN_HELP, stdout); return 0;
        default: fputs(KEYGEN_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (out == NULL || optind != argc) {
        fputs(KEYGEN_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    struct stat st;
    if (!force && stat(out, &st) == 0) {
        fprintf(stderr, "cp2p keygen: %s exists; keeping it (use --force to replace it)\n", out);
        return CLI_EXIT_FAIL;
    }
    cp2p_privkey *key = NULL;
    int rc = cli_get_key(NULL, seed, type, &key);
    if (rc != 0) {
        return rc;
    }
    if ((rc = cp2p_privkey_save(key, out)) != 0) {
        fprintf(stderr, "cp2p keygen: cannot write %s: %s\n", out, cp2p_strerror(rc));
        cp2p_privkey_free(key);
        return CLI_EXIT_FAIL;
    }
    rc = print_identity(key, json);
    cp2p_privkey_free(key);
    return rc;
}
