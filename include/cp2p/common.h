/* cp2p: common definitions shared by every public header.
 *
 * Conventions used by the whole API (see docs/ARCHITECTURE.md):
 * - Functions return int: 0 on success or a negative cp2p_err. Decoders return ptrdiff_t:
 *   bytes consumed (> 0), 0 for "need more input", or a negative cp2p_err.
 * - Ownership passes only on success. `_new` pairs with `_free`; every `_free` accepts NULL.
 * - Unless a header says otherwise, functions without I/O may be called from any thread, but an
 *   object must not be used from two threads at once.
 */
#ifndef CP2P_COMMON_H
#define CP2P_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define CP2P_API __attribute__((visibility("default")))
#define CP2P_NODISCARD __attribute__((warn_unused_result))
#define CP2P_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CP2P_API
#define CP2P_NODISCARD
#define CP2P_PRINTF(f, a)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Every error is negative. Groups: local (-1..-19), state (-20..-39), peer fault (-40..). */
typedef enum cp2p_err {
    CP2P_OK = 0,
    /* local */
    CP2P_ENOMEM = -1,   /* an allocation failed */
    CP2P_EINVAL = -2,   /* an argument is invalid (malformed text from the caller, NULL, range) */
    CP2P_ENOTSUP = -3,  /* valid but not supported by this build (e.g. an RSA key) */
    CP2P_EIO = -4,      /* an operating-system call failed (file, socket) */
    CP2P_ENOENT = -5,   /* the named thing does not exist (file, peer, protocol) */
    CP2P_EPERM = -6,    /* refused for safety: e.g. a key file readable by other users */
    CP2P_ENOSPC = -7,   /* the caller's output buffer is too small */
    /* state */
    CP2P_ESTATE = -20,     /* the object is not in a state that allows this call */
    CP2P_ECLOSED = -21,    /* the object is closed or closing */
    CP2P_ECANCELED = -22,  /* the operation was canceled (e.g. by a close) */
    CP2P_ETIMEDOUT = -23,  /* the operation's deadline passed */
    CP2P_EFULL = -24,      /* a bounded queue is full and its policy is to reject */
    CP2P_EOF = -25,        /* end of stream: the peer closed its side cleanly */
    CP2P_ERESET = -26,     /* the stream was reset (by the peer, or its connection died) */
    /* peer fault (or bad input bytes) */
    CP2P_EPROTO = -40,     /* malformed input: violates the format or protocol */
    CP2P_ELIMIT = -41,     /* input exceeds a configured or protocol limit */
    CP2P_EBADSIG = -42,    /* a signature does not verify */
    CP2P_EPEERID = -43,    /* the authenticated peer is not the one expected */
} cp2p_err;

/* Text for any cp2p_err (or "unknown error"). Never NULL, static storage. Any thread. */
CP2P_API const char *cp2p_strerror(int err);

/* The library version, e.g. "0.1.0". Static storage. Any thread. */
CP2P_API const char *cp2p_version(void);

/* A borrowed byte range: valid only for the duration of the call that receives it. */
typedef struct cp2p_slice {
    const uint8_t *ptr;
    size_t len;
} cp2p_slice;

/* Allocation. All of cp2p allocates through these; cp2p_set_allocator() replaces them
 * (before any other cp2p call, like libuv's uv_replace_allocator). cp2p_free(NULL) is a no-op.
 * Returns 0, or CP2P_EINVAL if any function is NULL. Not thread-safe: call it first. */
typedef void *(*cp2p_malloc_fn)(size_t n);
typedef void *(*cp2p_realloc_fn)(void *p, size_t n);
typedef void (*cp2p_free_fn)(void *p);
CP2P_API CP2P_NODISCARD int cp2p_set_allocator(cp2p_malloc_fn m, cp2p_realloc_fn r,
                                               cp2p_free_fn f);
CP2P_API void *cp2p_malloc(size_t n);
CP2P_API void *cp2p_calloc(size_t count, size_t n);
CP2P_API void *cp2p_realloc(void *p, size_t n);
CP2P_API void cp2p_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
