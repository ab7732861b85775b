/* The request parsing of the node's HTTP API (node_http_uv.c): pure functions over the bytes a
 * client sent, fuzzed by tests/fuzz/fuzz_http_query.c. No I/O, no allocation. */
#ifndef CP2P_API_NODE_HTTP_H
#define CP2P_API_NODE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>

/* Arguments one query may carry, and the longest argument name (kubo's are short words:
 * arg, count, timeout). Our choice. */
#define CP2P__HTTP_MAX_ARGS 16
#define CP2P__HTTP_ARG_NAME_MAX 32

/* One decoded query argument. Both strings are NUL ended and live in the caller's buffer. */
typedef struct cp2p__http_arg {
    const char *name;  /* [A-Za-z0-9_.-]{1,CP2P__HTTP_ARG_NAME_MAX} */
    const char *value; /* valid UTF-8 without NUL; may be empty */
    size_t value_len;
} cp2p__http_arg;

/* Bytes of buffer cp2p__http_query_parse needs for a query of len bytes and max arguments:
 * each argument adds at most two NULs to its encoded bytes. */
#define CP2P__HTTP_QUERY_BUF(len, max) ((len) + 2 * (max))

/* Parse a query string q[0..len) -- the bytes after '?' in a request target, in the
 * application/x-www-form-urlencoded form kubo's RPC uses: "name=value" pairs separated by '&',
 * '+' for a space, "%XX" escapes; a pair without '=' has an empty value; empty pairs ("a&&b")
 * are skipped. Names and values are decoded into buf (at least CP2P__HTTP_QUERY_BUF(len, max)
 * bytes) and described in args[0..max). Returns the number of arguments, or a negative
 * cp2p_err with *why set to a static reason: CP2P_EPROTO (a bad or truncated escape, an
 * escaped NUL, a value that is not UTF-8, a name with other characters), CP2P_ELIMIT (more
 * than max arguments, a name longer than CP2P__HTTP_ARG_NAME_MAX), CP2P_EINVAL (buf too
 * small, NULL arguments). Any thread. */
CP2P_NODISCARD ptrdiff_t cp2p__http_query_parse(const char *q, size_t len, cp2p__http_arg *args,
                                                size_t max, char *buf, size_t buflen,
                                                const char **why);

/* The first argument named `name` among args[0..n), or NULL. */
const cp2p__http_arg *cp2p__http_arg_find(const cp2p__http_arg *args, size_t n,
                                          const char *name);

/* Split a request target "path?query" (no fragment: clients do not send one) of len bytes:
 * *path_len gets the length of the path, *query and *query_len the query (empty when there is
 * no '?'). */
void cp2p__http_target_split(const char *target, size_t len, size_t *path_len,
                             const char **query, size_t *query_len);

/* Split a listen address "HOST:PORT" ("127.0.0.1:5001", "[::1]:5001", "localhost:0") into the
 * host text (brackets removed, NUL ended, "localhost" turned into "127.0.0.1") and the port.
 * *ipv6 is set when the host was bracketed. Returns 0, CP2P_EINVAL (no port, a port over 65535
 * or with other characters, an empty host, an unclosed bracket), CP2P_ENOSPC (hostlen too
 * small). Any thread. */
CP2P_NODISCARD int cp2p__http_listen_split(const char *addr, char *host, size_t hostlen,
                                           uint16_t *port, bool *ipv6);

#endif
