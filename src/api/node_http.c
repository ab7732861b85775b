/* Request parsing for the node's HTTP API (see node_http.h). Everything a client sends is
 * checked here before the server acts on it: lengths first, then each byte. */
#include <string.h>

#include "api/node_http.h"
#include "util/text.h"
#include "util/utf8.h"

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* Decode in[0..len) (form encoding) to out, NUL ended. Returns the decoded length, or
 * CP2P_EPROTO with *why set. out has room for len + 1 bytes. */
static ptrdiff_t form_decode(const char *in, size_t len, char *out, const char **why)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (len - i < 3) {
                *why = "truncated percent escape";
                return CP2P_EPROTO;
            }
            int hi = cp2p__hex_digit(in[i + 1]), lo = cp2p__hex_digit(in[i + 2]);
            if (hi < 0 || lo < 0) {
                *why = "bad percent escape";
                return CP2P_EPROTO;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
            if (c == '\0') {
                *why = "NUL byte in the query";
                return CP2P_EPROTO;
            }
        } else if (c == '\0') {
            *why = "NUL byte in the query";
            return CP2P_EPROTO;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (ptrdiff_t)o;
}

ptrdiff_t cp2p__http_query_parse(const char *q, size_t len, cp2p__http_arg *args, size_t max,
                                 char *buf, size_t buflen, const char **why)
{
    const char *ignored;
    if (why == NULL) {
        why = &ignored;
    }
    if ((q == NULL && len > 0) || args == NULL || buf == NULL || len > SIZE_MAX / 2 ||
        max > SIZE_MAX / 4 || buflen < CP2P__HTTP_QUERY_BUF(len, max)) {
        *why = "invalid arguments";
        return CP2P_EINVAL;
    }
    size_t n = 0, used = 0, pos = 0;
    while (pos < len) {
        const char *seg = q + pos;
        const char *amp = memchr(seg, '&', len - pos);
        size_t seg_len = amp != NULL ? (size_t)(amp - seg) : len - pos;
        pos += seg_len + (amp != NULL);
        if (seg_len == 0) {
            continue; /* "a&&b", a trailing '&' */
        }
        if (n == max) {
            *why = "too many query arguments";
            return CP2P_ELIMIT;
        }
        const char *eq = memchr(seg, '=', seg_len);
        size_t name_len = eq != NULL ? (size_t)(eq - seg) : seg_len;
        size_t value_len = eq != NULL ? seg_len - name_len - 1 : 0;
        /* Room: the segment's bytes plus two NULs, within the bound computed above. */
        char *name = buf + used;
        ptrdiff_t nl = form_decode(seg, name_len, name, why);
        if (nl < 0) {
            return nl;
        }
        if (nl == 0) {
            *why = "empty query argument name";
            return CP2P_EPROTO;
        }
        if ((size_t)nl > CP2P__HTTP_ARG_NAME_MAX) {
            *why = "query argument name too long";
            return CP2P_ELIMIT;
        }
        for (ptrdiff_t i = 0; i < nl; i++) {
            if (!name_char(name[i])) {
                *why = "bad character in a query argument name";
                return CP2P_EPROTO;
            }
        }
        used += (size_t)nl + 1;
        char *value = buf + used;
        ptrdiff_t vl = form_decode(eq != NULL ? eq + 1 : seg, value_len, value, why);
        if (vl < 0) {
            return vl;
        }
        if (!cp2p__utf8_valid((const uint8_t *)value, (size_t)vl)) {
            *why = "query argument value is not UTF-8";
            return CP2P_EPROTO;
        }
        used += (size_t)vl + 1;
        args[n++] = (cp2p__http_arg){.name = name, .value = value, .value_len = (size_t)vl};
    }
    return (ptrdiff_t)n;
}

const cp2p__http_arg *cp2p__http_arg_find(const cp2p__http_arg *args, size_t n,
                                          const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(args[i].name, name) == 0) {
            return &args[i];
        }
    }
    return NULL;
}

void cp2p__http_target_split(const char *target, size_t len, size_t *path_len,
                             const char **query, size_t *query_len)
{
    const char *qm = memchr(target, '?', len);
    *path_len = qm != NULL ? (size_t)(qm - target) : len;
    *query = qm != NULL ? qm + 1 : target + len;
    *query_len = qm != NULL ? len - *path_len - 1 : 0;
}

int cp2p__http_listen_split(const char *addr, char *host, size_t hostlen, uint16_t *port,
                            bool *ipv6)
{
    const char *colon, *h = addr;
    size_t hl;
    if (addr == NULL || host == NULL || port == NULL || ipv6 == NULL) {
        return CP2P_EINVAL;
    }
    *ipv6 = addr[0] == '[';
    if (*ipv6) {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            return CP2P_EINVAL;
        }
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)) != NULL) {
            return CP2P_EINVAL; /* no port, or an IPv6 address without brackets */
        }
        hl = (size_t)(colon - addr);
    }
    const char *p = colon + 1;
    uint32_t v = 0;
    if (hl == 0 || *p == '\0' || strlen(p) > 5) {
        return CP2P_EINVAL;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return CP2P_EINVAL;
        }
        v = v * 10 + (uint32_t)(*p - '0');
    }
    if (v > 65535) {
        return CP2P_EINVAL;
    }
    if (!*ipv6 && hl == strlen("localhost") && memcmp(h, "localhost", hl) == 0) {
        h = "127.0.0.1";
        hl = strlen(h);
    }
    if (hl + 1 > hostlen) {
        return CP2P_ENOSPC;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)v;
    return 0;
}
