/* One-time initialisation of the crypto libraries (libsodium, libsecp256k1). Internal. */
#ifndef CP2P_CRYPTO_INIT_H
#define CP2P_CRYPTO_INIT_H

#include <secp256k1.h>

/* Initialise libsodium (sodium_init) and create the shared, randomised secp256k1 context, once
 * per process (pthread_once). Returns 0, CP2P_EIO if sodium_init failed, or CP2P_ENOMEM if the
 * context could not be created; a failure is sticky. Any thread; cheap after the first call. */
int cp2p__crypto_init(void);

/* The shared secp256k1 context. Only valid after cp2p__crypto_init() returned 0. It is never
 * modified again after initialisation, and libsecp256k1 allows concurrent use of a const
 * context, so any thread may use it. */
const secp256k1_context *cp2p__secp_ctx(void);

#endif
