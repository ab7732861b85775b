/* Fuzz the query-string parser of the node's HTTP API (cp2p__http_query_parse in
 * src/api/node_http.c), which reads what any HTTP client sends, and the request-target split
 * around it.
 *
 * Input: byte 0 picks the argument bound (0..CP2P__HTTP_MAX_ARGS); the rest is a request
 * target ("/path?query") or a bare query. Checks: a success describes at most `max` arguments,
 * each a NUL-ended name of [A-Za-z0-9_.-] and a NUL-ended UTF-8 value of the stated length,
 * all inside the buffer; a failure sets a reason; re-encoding the arguments (every byte of a
 * value percent-escaped) and parsing again gives the same arguments; a buffer one byte short
 * of the documented size is refused rather than overrun (ASan watches the exact size). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/common.h>

#include "api/node_http.h"
#include "util/utf8.h"

static void check_args(const cp2p__http_arg *args, size_t n, const char *buf, size_t buflen)
{
    for (size_t i = 0; i < n; i++) {
        const char *nm = args[i].name, *v = args[i].value;
        size_t nl = strlen(nm);
        if (nm < buf || nm + nl >= buf + buflen || v < buf ||
            v + args[i].value_len >= buf + buflen) {
            abort();
        }
        if (nl == 0 || nl > CP2P__HTTP_ARG_NAME_MAX || strlen(v) != args[i].value_len ||
            !cp2p__utf8_valid((const uint8_t *)v, args[i].value_len)) {
            abort();
        }
        for (size_t k = 0; k < nl; k++) {
            char c = nm[k];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-')) {
                abort();
            }
        }
    }
}

/* Parse q[0..len) with a heap buffer of exactly the documented size. */
static ptrdiff_t parse(const char *q, size_t len, size_t max, cp2p__http_arg *args, char **buf)
{
    size_t buflen = CP2P__HTTP_QUERY_BUF(len, max);
    const char *why = NULL;
    *buf = malloc(buflen ? buflen : 1);
    if (*buf == NULL) {
        abort();
    }
    ptrdiff_t n = cp2p__http_query_parse(q, len, args, max, *buf, buflen, &why);
    if (n < 0) {
        if (why == NULL || (n != CP2P_EPROTO && n != CP2P_ELIMIT)) {
            abort();
        }
        return n;
    }
    if ((size_t)n > max) {
        abort();
    }
    check_args(args, (size_t)n, *buf, buflen);
    /* One byte short of the documented size: refused, never overrun. */
    if (buflen > 0 && cp2p__http_query_parse(q, len, args, max, *buf, buflen - 1, &why) !=
                          CP2P_EINVAL) {
        abort();
    }
    return cp2p__http_query_parse(q, len, args, max, *buf, buflen, &why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t max = data[0] % (CP2P__HTTP_MAX_ARGS + 1);
    const char *target = (const char *)data + 1;
    size_t len = size - 1, path_len, qlen;
    const char *q;
    cp2p__http_target_split(target, len, &path_len, &q, &qlen);
    if (path_len > len || q < target || q + qlen != target + len ||
        (qlen > 0 && (path_len + 1 + qlen != len || target[path_len] != '?'))) {
        abort();
    }
    if (path_len == len) {
        q = target; /* no '?': fuzz the whole input as a bare query */
        qlen = len;
    }
    cp2p__http_arg args[CP2P__HTTP_MAX_ARGS], again[CP2P__HTTP_MAX_ARGS];
    char *buf = NULL, *buf2 = NULL;
    ptrdiff_t n = parse(q, qlen, max, args, &buf);
    if (n > 0) {
        /* Re-encode: name=%XX%XX...&... and parse again. */
        size_t cap = 1;
        for (ptrdiff_t i = 0; i < n; i++) {
            cap += strlen(args[i].name) + 1 + 3 * args[i].value_len + 1;
        }
        char *enc = malloc(cap), *e = enc;
        if (enc == NULL) {
            abort();
        }
        for (ptrdiff_t i = 0; i < n; i++) {
            e += snprintf(e, cap - (size_t)(e - enc), "%s%s=", i ? "&" : "", args[i].name);
            for (size_t k = 0; k < args[i].value_len; k++) {
                e += snprintf(e, cap - (size_t)(e - enc), "%%%02X",
                              (unsigned)(uint8_t)args[i].value[k]);
            }
        }
        ptrdiff_t m = parse(enc, (size_t)(e - enc), max, again, &buf2);
        if (m != n) {
            abort();
        }
        for (ptrdiff_t i = 0; i < n; i++) {
            if (strcmp(args[i].name, again[i].name) != 0 ||
                args[i].value_len != again[i].value_len ||
                memcmp(args[i].value, again[i].value, args[i].value_len) != 0) {
                abort();
            }
        }
        free(enc);
    }
    free(buf2);
    free(buf);
    return 0;
}
