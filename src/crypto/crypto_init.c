/* One-time initialisation of libsodium and of the shared secp256k1 context. */
#include "crypto/crypto_init.h"

#include <pthread.h>

#include <sodium.h>

#include <cp2p/common.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = CP2P_EIO;
static secp256k1_context *secp_ctx;

static void init_run(void)
{
    /* sodium_init() returns 0 on the first success, 1 if already initialised, -1 on failure. */
    if (sodium_init() < 0) {
        init_rc = CP2P_EIO;
        return;
    }
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (ctx == NULL) {
        init_rc = CP2P_ENOMEM;
        return;
    }
    /* Blinding for the signing and key-generation code paths, a side-channel protection that
     * libsecp256k1 recommends. It only fails for the static context, never for ours. */
    unsigned char seed[32];
    randombytes_buf(seed, sizeof(seed));
    int ok = secp256k1_context_randomize(ctx, seed);
    sodium_memzero(seed, sizeof(seed));
    if (ok != 1) {
        secp256k1_context_destroy(ctx);
        init_rc = CP2P_EIO;
        return;
    }
    /* The context lives as long as the process: it is shared by every key object. */
    secp_ctx = ctx;
    init_rc = 0;
}

int cp2p__crypto_init(void)
{
    if (pthread_once(&init_once, init_run) != 0) {
        return CP2P_EIO;
    }
    return init_rc;
}

const secp256k1_context *cp2p__secp_ctx(void)
{
    return secp_ctx;
}
