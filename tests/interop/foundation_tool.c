/* cp2p's side of tests/interop/foundation.test.mjs. Reads one command per line on stdin and
 * answers each with exactly one line on stdout ("error <text>" on failure):
 *   key TYPE SEEDHEX MSGHEX        -> PEERID_B58 PEERID_CID PUBKEY_PB_HEX PRIVKEY_PB_HEX SIG_HEX
 *   verify PUBKEY_PB_HEX MSGHEX SIGHEX -> ok | bad
 *   privkey PRIVKEY_PB_HEX         -> PEERID_B58
 *   peerid PUBKEY_PB_HEX           -> PEERID_B58 PEERID_CID   (any key type, even RSA)
 *   pid TEXT                       -> MULTIHASH_HEX PEERID_B58 PEERID_CID
 *   ma-str STRING                  -> BINARY_HEX CANONICAL_STRING
 *   ma-bin HEX                     -> STRING
 * An empty message is written as "-". */
#include <stdio.h>
#include <string.h>

#include <cp2p/codec.h>
#include <cp2p/keys.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

#define FIELD_MAX 8
#define BIG (1u << 20)

static int unhex(const char *s, cp2p_buf *out)
{
    if (strcmp(s, "-") == 0) {
        return 0;
    }
    return cp2p_hex_decode(out, s, strlen(s));
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
}

/* Prints "B58 CID" for a peer ID. */
static int print_pid(const cp2p_peer_id *id)
{
    cp2p_buf b58, cid;
    int rc;
    cp2p_buf_init(&b58, 256);
    cp2p_buf_init(&cid, 256);
    if ((rc = cp2p_peer_id_to_base58(id, &b58)) == 0 && (rc = cp2p_peer_id_to_cid(id, &cid)) == 0) {
        printf("%s %s", (const char *)b58.ptr, (const char *)cid.ptr);
    }
    cp2p_buf_fini(&b58);
    cp2p_buf_fini(&cid);
    return rc;
}

static int cmd_key(char **f, int n)
{
    cp2p_key_type type;
    cp2p_buf seed, msg, pub, priv, sig;
    cp2p_privkey *key = NULL;
    cp2p_peer_id id;
    int rc = CP2P_EINVAL;
    if (n != 4) {
        return CP2P_EINVAL;
    }
    if (strcmp(f[1], "ed25519") == 0) {
        type = CP2P_KEY_ED25519;
    } else if (strcmp(f[1], "secp256k1") == 0) {
        type = CP2P_KEY_SECP256K1;
    } else {
        return CP2P_EINVAL;
    }
    cp2p_buf_init(&seed, 32);
    cp2p_buf_init(&msg, BIG);
    cp2p_buf_init(&pub, 1024);
    cp2p_buf_init(&priv, 1024);
    cp2p_buf_init(&sig, 1024);
    if (unhex(f[2], &seed) != 0 || seed.len != 32 || unhex(f[3], &msg) != 0) {
        goto done;
    }
    if ((rc = cp2p_privkey_from_seed(type, seed.ptr, &key)) != 0 ||
        (rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(key), &id)) != 0 ||
        (rc = cp2p_pubkey_marshal(cp2p_privkey_public(key), &pub)) != 0 ||
        (rc = cp2p_privkey_marshal(key, &priv)) != 0 ||
        (rc = cp2p_privkey_sign(key, msg.ptr, msg.len, &sig)) != 0) {
        goto done;
    }
    if ((rc = print_pid(&id)) != 0) {
        goto done;
    }
    putchar(' ');
    print_hex(pub.ptr, pub.len);
    putchar(' ');
    print_hex(priv.ptr, priv.len);
    putchar(' ');
    print_hex(sig.ptr, sig.len);
    putchar('\n');
done:
    cp2p_privkey_free(key);
    cp2p_buf_fini(&seed);
    cp2p_buf_fini(&msg);
    cp2p_buf_fini(&pub);
    cp2p_buf_fini_wipe(&priv);
    cp2p_buf_fini(&sig);
    return rc;
}

static int cmd_verify(char **f, int n)
{
    cp2p_buf pb, msg, sig;
    cp2p_pubkey *pub = NULL;
    int rc = CP2P_EINVAL;
    if (n != 4) {
        return CP2P_EINVAL;
    }
    cp2p_buf_init(&pb, 4096);
    cp2p_buf_init(&msg, BIG);
    cp2p_buf_init(&sig, 4096);
    if (unhex(f[1], &pb) == 0 && unhex(f[2], &msg) == 0 && unhex(f[3], &sig) == 0 &&
        (rc = cp2p_pubkey_unmarshal(pb.ptr, pb.len, &pub)) == 0) {
        rc = cp2p_pubkey_verify(pub, msg.ptr, msg.len, sig.ptr, sig.len);
        if (rc == 0 || rc == CP2P_EBADSIG) {
            printf("%s\n", rc == 0 ? "ok" : "bad");
            rc = 0;
        }
    }
    cp2p_pubkey_free(pub);
    cp2p_buf_fini(&pb);
    cp2p_buf_fini(&msg);
    cp2p_buf_fini(&sig);
    return rc;
}

static int cmd_privkey(char **f, int n)
{
    cp2p_buf pb;
    cp2p_privkey *key = NULL;
    cp2p_peer_id id;
    int rc = CP2P_EINVAL;
    if (n != 2) {
        return CP2P_EINVAL;
    }
    cp2p_buf_init(&pb, 4096);
    if (unhex(f[1], &pb) == 0 && (rc = cp2p_privkey_unmarshal(pb.ptr, pb.len, &key)) == 0 &&
        (rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(key), &id)) == 0) {
        char s[CP2P_PEER_ID_STR_MAX];
        printf("%s\n", cp2p_peer_id_str(&id, s));
    }
    cp2p_privkey_free(key);
    cp2p_buf_fini_wipe(&pb);
    return rc;
}

static int cmd_peerid(char **f, int n)
{
    cp2p_buf pb;
    cp2p_peer_id id;
    int rc = CP2P_EINVAL;
    if (n != 2) {
        return CP2P_EINVAL;
    }
    cp2p_buf_init(&pb, 8192);
    if (unhex(f[1], &pb) == 0 && (rc = cp2p_peer_id_from_pubkey_proto(pb.ptr, pb.len, &id)) == 0 &&
        (rc = print_pid(&id)) == 0) {
        putchar('\n');
    }
    cp2p_buf_fini(&pb);
    return rc;
}

static int cmd_pid(char **f, int n)
{
    cp2p_peer_id id;
    int rc;
    if (n != 2) {
        return CP2P_EINVAL;
    }
    if ((rc = cp2p_peer_id_parse(f[1], strlen(f[1]), &id)) != 0) {
        return rc;
    }
    print_hex(id.bytes, id.len);
    putchar(' ');
    if ((rc = print_pid(&id)) == 0) {
        putchar('\n');
    }
    return rc;
}

static int cmd_ma_str(char **f, int n)
{
    cp2p_multiaddr *ma = NULL;
    cp2p_buf s;
    int rc;
    if (n != 2) {
        return CP2P_EINVAL;
    }
    if ((rc = cp2p_multiaddr_parse(f[1], strlen(f[1]), &ma)) != 0) {
        return rc;
    }
    cp2p_buf_init(&s, 4096);
    if ((rc = cp2p_multiaddr_to_string(ma, &s)) == 0) {
        cp2p_slice b = cp2p_multiaddr_bytes(ma);
        print_hex(b.ptr, b.len);
        printf(" %s\n", (const char *)s.ptr);
    }
    cp2p_buf_fini(&s);
    cp2p_multiaddr_free(ma);
    return rc;
}

static int cmd_ma_bin(char **f, int n)
{
    cp2p_multiaddr *ma = NULL;
    cp2p_buf b, s;
    int rc = CP2P_EINVAL;
    if (n != 2) {
        return CP2P_EINVAL;
    }
    cp2p_buf_init(&b, 4096);
    cp2p_buf_init(&s, 8192);
    if (unhex(f[1], &b) == 0 && (rc = cp2p_multiaddr_from_bytes(b.ptr, b.len, &ma)) == 0 &&
        (rc = cp2p_multiaddr_to_string(ma, &s)) == 0) {
        printf("%s\n", (const char *)s.ptr);
    }
    cp2p_multiaddr_free(ma);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&s);
    return rc;
}

int main(void)
{
    static char line[1 << 21];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char *f[FIELD_MAX] = {0};
        int n = 0;
        line[strcspn(line, "\r\n")] = 0;
        for (char *p = line; *p != 0 && n < FIELD_MAX;) {
            f[n++] = p;
            p += strcspn(p, " ");
            if (*p == ' ') {
                *p++ = 0;
            }
        }
        int rc = CP2P_EINVAL;
        if (n == 0) {
            rc = CP2P_EINVAL;
        } else if (strcmp(f[0], "key") == 0) {
            rc = cmd_key(f, n);
        } else if (strcmp(f[0], "verify") == 0) {
            rc = cmd_verify(f, n);
        } else if (strcmp(f[0], "privkey") == 0) {
            rc = cmd_privkey(f, n);
        } else if (strcmp(f[0], "peerid") == 0) {
            rc = cmd_peerid(f, n);
        } else if (strcmp(f[0], "pid") == 0) {
            rc = cmd_pid(f, n);
        } else if (strcmp(f[0], "ma-str") == 0) {
            rc = cmd_ma_str(f, n);
        } else if (strcmp(f[0], "ma-bin") == 0) {
            rc = cmd_ma_bin(f, n);
        }
        if (rc != 0) {
            printf("error %s\n", cp2p_strerror(rc));
        }
        fflush(stdout);
    }
    return 0;
}
