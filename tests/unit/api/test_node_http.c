/* The request parsing of the node's HTTP API (src/api/node_http.c): query strings as kubo's
 * RPC sends them, every way they can be wrong, the request-target split and listen addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/node_http.h"

typedef struct {
    cp2p__http_arg args[CP2P__HTTP_MAX_ARGS];
    char buf[CP2P__HTTP_QUERY_BUF(256, CP2P__HTTP_MAX_ARGS)];
    const char *why;
} parsed;

static ptrdiff_t parse(parsed *p, const char *q, size_t max)
{
    p->why = NULL;
    return cp2p__http_query_parse(q, strlen(q), p->args, max, p->buf, sizeof(p->buf), &p->why);
}

static void query_decodes_kubo_arguments(void **state)
{
    parsed p;
    (void)state;
    assert_int_equal(parse(&p, "arg=%2Fip4%2F127.0.0.1%2Ftcp%2F4001&count=3", 16), 2);
    assert_string_equal(p.args[0].name, "arg");
    assert_string_equal(p.args[0].value, "/ip4/127.0.0.1/tcp/4001");
    assert_int_equal(p.args[0].value_len, 23);
    assert_string_equal(p.args[1].name, "count");
    assert_string_equal(p.args[1].value, "3");
    /* '+' is a space, a pair without '=' has an empty value, empty pairs are skipped, a
     * literal '/' and ':' pass, UTF-8 escapes decode. */
    assert_int_equal(parse(&p, "&arg=my+topic&&quiet&x=/a:b&t=%E2%9C%93&", 16), 4);
    assert_string_equal(p.args[0].value, "my topic");
    assert_string_equal(p.args[1].name, "quiet");
    assert_string_equal(p.args[1].value, "");
    assert_string_equal(p.args[2].value, "/a:b");
    assert_string_equal(p.args[3].value, "\xe2\x9c\x93");
    assert_non_null(cp2p__http_arg_find(p.args, 4, "quiet"));
    assert_ptr_equal(cp2p__http_arg_find(p.args, 4, "arg"), &p.args[0]);
    assert_null(cp2p__http_arg_find(p.args, 4, "nope"));
    /* '=' inside a value stays; an empty query has no argument. */
    assert_int_equal(parse(&p, "a=b=c", 16), 1);
    assert_string_equal(p.args[0].value, "b=c");
    assert_int_equal(parse(&p, "", 16), 0);
    assert_int_equal(parse(&p, "&&&", 16), 0);
}

static void query_refuses_bad_input(void **state)
{
    static const struct {
        const char *q;
        ptrdiff_t rc;
    } bad[] = {
        {"arg=%zz", CP2P_EPROTO},           {"arg=%4", CP2P_EPROTO},
        {"arg=%", CP2P_EPROTO},             {"arg=%00", CP2P_EPROTO},
        {"arg=%C3%28", CP2P_EPROTO},        {"arg=%ED%A0%80", CP2P_EPROTO}, /* surrogate */
        {"=v", CP2P_EPROTO},                {"na%20me=1", CP2P_EPROTO},
        {"a/b=1", CP2P_EPROTO},             {"a=1&b=2&c=3", CP2P_ELIMIT},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", CP2P_ELIMIT}, /* 33-byte name */
    };
    parsed p;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&p, bad[i].q, 2), bad[i].rc);
        assert_non_null(p.why);
    }
    /* A raw NUL inside the given length. */
    assert_int_equal(cp2p__http_query_parse("a=\0b", 4, p.args, 2, p.buf, sizeof(p.buf), &p.why),
                     CP2P_EPROTO);
    /* The buffer bound is checked before anything is written. */
    char small[CP2P__HTTP_QUERY_BUF(3, 1) - 1];
    assert_int_equal(cp2p__http_query_parse("a=1", 3, p.args, 1, small, sizeof(small), &p.why),
                     CP2P_EINVAL);
    assert_int_equal(cp2p__http_query_parse(NULL, 1, p.args, 1, p.buf, sizeof(p.buf), NULL),
                     CP2P_EINVAL);
}

/* The worst case for the buffer: one-byte names without '=' fill it exactly. */
static void query_worst_case_fits_the_documented_buffer(void **state)
{
    char buf[CP2P__HTTP_QUERY_BUF(31, 16)];
    cp2p__http_arg args[16];
    const char *q = "a&b&c&d&e&f&g&h&i&j&k&l&m&n&o&p"; /* 31 bytes, 16 arguments */
    (void)state;
    assert_int_equal(cp2p__http_query_parse(q, 31, args, 16, buf, sizeof(buf), NULL), 16);
    assert_string_equal(args[15].name, "p");
    assert_string_equal(args[15].value, "");
}

static void target_split(void **state)
{
    size_t path_len, qlen;
    const char *q;
    (void)state;
    cp2p__http_target_split("/api/v0/ping?arg=x&count=2", 26, &path_len, &q, &qlen);
    assert_int_equal(path_len, 12);
    assert_int_equal(qlen, 13);
    assert_memory_equal(q, "arg=x&count=2", 13);
    cp2p__http_target_split("/metrics", 8, &path_len, &q, &qlen);
    assert_int_equal(path_len, 8);
    assert_int_equal(qlen, 0);
    cp2p__http_target_split("/x?", 3, &path_len, &q, &qlen);
    assert_int_equal(path_len, 2);
    assert_int_equal(qlen, 0);
}

static void listen_split(void **state)
{
    char host[64];
    uint16_t port;
    bool v6;
    (void)state;
    assert_int_equal(cp2p__http_listen_split("127.0.0.1:5001", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 5001);
    assert_false(v6);
    assert_int_equal(cp2p__http_listen_split("[::1]:0", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_true(v6);
    assert_int_equal(cp2p__http_listen_split("localhost:65535", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 65535);
    static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", ":5001", "127.0.0.1:65536",
                                      "127.0.0.1:5x", "::1:5001", "[::1]5001", "[::1:5001",
                                      "127.0.0.1:123456"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cp2p__http_listen_split(bad[i], host, sizeof(host), &port, &v6),
                         CP2P_EINVAL);
    }
    assert_int_equal(cp2p__http_listen_split("127.0.0.1:1", host, 9, &port, &v6), CP2P_ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_decodes_kubo_arguments),
        cmocka_unit_test(query_refuses_bad_input),
        cmocka_unit_test(query_worst_case_fits_the_documented_buffer),
        cmocka_unit_test(target_split),
        cmocka_unit_test(listen_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
