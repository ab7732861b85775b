/* The CLI's client of a running node's HTTP API (`cp2p node --api`, docs/API.md), used by
 * `cp2p stats` and by the commands given --api: a tiny HTTP/1.0 client (one request per
 * connection, the answer read to the close, at most 16 MiB) and the API's JSON errors read
 * with jansson. Blocking, with a send and receive timeout: a CLI command does one thing. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <sodium.h>

#include <cp2p/node.h>

#include "cli.h"

/* Split "HOST:PORT" or "[V6]:PORT". */
static int split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return -1;
        }
        hl = (size_t)(colon - s);
    }
    size_t pl = strlen(colon + 1);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen ||
        strspn(colon + 1, "0123456789") != pl) {
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return 0;
}

int cli_api_request(const char *api, const char *method, const char *path, const char *token,
                    const void *body, size_t body_len, uint64_t timeout_ms,
                    cli_api_answer *out, char *err, size_t errlen)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    memset(out, 0, sizeof(*out));
    if (split_hostport(api, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(err, errlen, "bad --api '%s' (want HOST:PORT)", api);
        return -1;
    }
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", api, gai_strerror(gai));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                             .tv_usec = (suseconds_t)(timeout_ms % 1000 * 1000)};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0) {
            break;
        }
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s (is `cp2p node --api` running?)", api,
                 strerror(last));
        return -1;
    }
    char req[CP2P_NODE_API_TOKEN_MAX + 1024];
    if (strlen(path) > CLI_API_PATH_MAX) {
        close(fd);
        snprintf(err, errlen, "request too long");
        return -1;
    }
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: cp2p-cli\r\n"
                     "Content-Length: %zu\r\n%s%s%s\r\n",
                     method, "", api, body_len, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        close(fd);
        snprintf(err, errlen, "access token too long");
        return -1;
    }
    /* The request line's target goes apart: a path may be longer than the headers. */
    size_t ml = strlen(method);
    const struct {
        const char *p;
        size_t len;
    } parts[] = {{req, ml + 1}, {path, strlen(path)}, {req + ml + 1, (size_t)n - ml - 1},
                 {body, body != NULL ? body_len : 0}};
    for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
        for (size_t off = 0; off < parts[k].len;) {
            ssize_t w = send(fd, parts[k].p + off, parts[k].len - off, MSG_NOSIGNAL);
            if (w <= 0) {
                snprintf(err, errlen, "%s: send: %s", api, strerror(errno));
                close(fd);
                return -1;
            }
            off += (size_t)w;
        }
    }
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            close(fd);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (len == cap) {
            if (cap >= CLI_API_ANSWER_MAX) {
                free(buf);
                close(fd);
                snprintf(err, errlen, "%s%s: answer larger than 16 MiB", api, path);
                return -1;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
            }
            buf = nb;
            continue;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r == 0) {
            break;
        }
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(err, errlen, "%s%s: %s", api, path,
                     errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time"
                                                             : strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1 || hdr_end == NULL) {
        free(buf);
        snprintf(err, errlen, "%s%s: not an HTTP answer", api, path);
        return -1;
    }
    out->text = buf;
    out->len = len;
    out->body = hdr_end + 4;
    out->status = status;
    return 0;
}

void cli_api_error_message(const char *body, char *out, size_t outlen)
{
    json_t *j = json_loads(body, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "Message"));
    out[0] = '\0';
    if (msg != NULL) {
        snprintf(out, outlen, ": %s", msg);
    }
    json_decref(j);
}

json_t *cli_api_call(const char *cmd, const char *api, const char *token, const char *path,
                     const void *body, size_t body_len, uint64_t timeout_ms, int *exit_code)
{
    cli_api_answer a;
    char err[512];
    *exit_code = CLI_EXIT_FAIL;
    if (cli_api_request(api, "POST", path, token, body, body_len, timeout_ms, &a, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "cp2p %s: %s\n", cmd, err);
        return NULL;
    }
    if (a.status != 200) {
        char detail[300];
        cli_api_error_message(a.body, detail, sizeof(detail));
        fprintf(stderr, "cp2p %s: the API answered %d%s%s\n", cmd, a.status, detail,
                a.status == 401   ? " (an access token is needed: --api-token or CP2P_API_TOKEN)"
                : a.status == 403 ? " (wrong access token)"
                                  : "");
        free(a.text);
        return NULL;
    }
    json_t *j = json_loads(a.body, 0, NULL);
    free(a.text);
    if (j == NULL) {
        fprintf(stderr, "cp2p %s: the API's answer is not JSON\n", cmd);
        return NULL;
    }
    *exit_code = 0;
    return j;
}

int cli_api_path(cp2p_buf *out, const char *prefix, const char *arg)
{
    cp2p_buf_init(out, CLI_API_PATH_MAX);
    if (cp2p_buf_append(out, prefix, strlen(prefix)) != 0 ||
        cli_api_escape(arg, strlen(arg), out) != 0 || cp2p_buf_append(out, "", 1) != 0) {
        cp2p_buf_fini(out);
        return -1;
    }
    return 0;
}

int cli_api_path_add(cp2p_buf *out, const char *sep, const char *arg)
{
    out->len--; /* the NUL */
    if (cp2p_buf_append(out, sep, strlen(sep)) != 0 ||
        cli_api_escape(arg, strlen(arg), out) != 0 || cp2p_buf_append(out, "", 1) != 0) {
        cp2p_buf_fini(out);
        return -1;
    }
    return 0;
}

int cli_api_base64(json_t *v, uint8_t **out, size_t *out_len)
{
    const char *b64 = json_string_value(v);
    size_t len = json_string_length(v);
    *out = NULL;
    *out_len = 0;
    if (b64 == NULL) {
        return -1;
    }
    uint8_t *bin = malloc(len / 4 * 3 + 3);
    if (bin == NULL || sodium_base642bin(bin, len / 4 * 3 + 3, b64, len, NULL, out_len, NULL,
                                         sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(bin);
        return -1;
    }
    *out = bin;
    return 0;
}

int cli_api_escape(const char *s, size_t len, cp2p_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            rc = cp2p_buf_append(out, &c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = cp2p_buf_append(out, e, 3);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}
