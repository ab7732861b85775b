/* A node (cp2p/node.h) for the integration tests: a fresh Ed25519 identity, listening on a free
 * loopback port, default settings. */
#ifndef CP2P_TESTS_INTEGRATION_HARNESS_NODE_H
#define CP2P_TESTS_INTEGRATION_HARNESS_NODE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <cp2p/node.h>

static inline cp2p_node *harness_node(void)
{
    static const char *const listen[] = {"/ip4/127.0.0.1/tcp/0"};
    cp2p_node_config cfg;
    cp2p_privkey *key;
    cp2p_node *n;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_node_config_default(&cfg);
    cfg.host.identity = key;
    cfg.listen = listen;
    cfg.n_listen = 1;
    assert_int_equal(cp2p_node_start(&cfg, &n), 0);
    cp2p_privkey_free(key);
    return n;
}

/* Send `req` to 127.0.0.1:port and return the whole answer (the server closes: HTTP/1.0). */
static inline char *harness_http(uint16_t port, const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    size_t cap = 1 << 20, len = 0;
    char *out = calloc(1, cap);
    ssize_t r;
    while ((r = read(fd, out + len, cap - 1 - len)) > 0) {
        len += (size_t)r;
    }
    close(fd);
    return out;
}

static inline uint16_t harness_api_port(cp2p_node_api *a)
{
    char addr[CP2P_NODE_API_ADDR_MAX];
    assert_int_equal(cp2p_node_api_addr(a, addr, sizeof(addr)), 0);
    const char *colon = strrchr(addr, ':');
    assert_non_null(colon);
    return (uint16_t)strtoul(colon + 1, NULL, 10);
}

#endif
