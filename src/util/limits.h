/* Every named limit of cp2p, with where its value comes from (STYLE.md section 1).
 * Layers append their own section; nothing else defines a numeric limit. */
#ifndef CP2P_UTIL_LIMITS_H
#define CP2P_UTIL_LIMITS_H

/* ---- util ---- */
/* Base58 is quadratic; the longest base58 text we need is a CIDv0/peer ID (~50 chars).
 * Our choice: 256 bytes of binary (about 350 characters) is far above any real use. */
#define CP2P_BASE58_MAX_BYTES 256
/* Log lines are formatted into a stack buffer of this size and truncated past it (our choice). */
#define CP2P_LOG_LINE_MAX 1024
/* Per-module log level overrides (our choice). */
#define CP2P_LOG_MODULE_OVERRIDES 16

#endif
