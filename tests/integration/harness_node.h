/* A node (cp2p/node.h) for the integration tests: a fresh Ed25519 identity, listening on a free
 * loopback port, default settings. */
#ifndef CP2P_TESTS_INTEGRATION_HARNESS_NODE_H
#define CP2P_TESTS_INTEGRATION_HARNESS_NODE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
