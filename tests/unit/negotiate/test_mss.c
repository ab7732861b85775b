/* multistream-select 1.0 core. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>

#include "negotiate/mss.h"
#include "util/limits.h"

/* "\x13/multistream/1.0.0\n" from the spec: 0x13 = 19 = 18 characters + newline. */
static const uint8_t HDR[] = "\x13/multistream/1.0.0\n";
#define HDR_LEN (sizeof(HDR) - 1)

static void wire_msg(cp2p_buf *b, const char *s)
{
    assert_int_equal(cp2p__mss_write_msg(b, s, strlen(s)), 0);
}

/* Move everything a has to send into b, and the reverse, until neither has output. */
static void pump(cp2p__mss *a, cp2p__mss *b)
{
    for (int round = 0; round < 10; round++) {
        cp2p_slice oa = cp2p__mss_out(a), ob = cp2p__mss_out(b);
        const char *why = NULL;
        if (oa.len == 0 && ob.len == 0) {
            return;
        }
        if (oa.len > 0) {
            ptrdiff_t n = cp2p__mss_recv(b, oa.ptr, oa.len, &why);
            assert_true(n >= 0);
            cp2p__mss_out_done(a, oa.len);
        }
        if (ob.len > 0) {
            ptrdiff_t n = cp2p__mss_recv(a, ob.ptr, ob.len, &why);
            assert_true(n >= 0);
            cp2p__mss_out_done(b, ob.len);
        }
    }
    fail_msg("negotiation did not settle");
}

static void header_bytes_match_spec(void **state)
{
    static const char *const protos[] = {"/echo/1.0"};
    cp2p__mss l;
    (void)state;
    assert_int_equal(cp2p__mss_init_listener(&l, protos, 1), 0);
    cp2p_slice o = cp2p__mss_out(&l);
    assert_int_equal(o.len, HDR_LEN);
    assert_memory_equal(o.ptr, HDR, HDR_LEN);
    cp2p__mss_fini(&l);
    /* The spec's "/echo/1.0" header example: 0a 2f 65 63 68 6f 2f 31 2e 30 0a */
    cp2p_buf b;
    cp2p_buf_init(&b, 64);
    wire_msg(&b, "/echo/1.0");
    static const uint8_t echo[] = {0x0a, 0x2f, 0x65, 0x63, 0x68, 0x6f, 0x2f, 0x31, 0x2e, 0x30, 0x0a};
    assert_int_equal(b.len, sizeof(echo));
    assert_memory_equal(b.ptr, echo, sizeof(echo));
    cp2p_buf_fini(&b);
}

static void dialer_transcript_with_na_fallback(void **state)
{
    static const char *const offer[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
    cp2p__mss d;
    const char *why = NULL;
    cp2p_buf in, want;
    (void)state;
    cp2p_buf_init(&in, 1024);
    cp2p_buf_init(&want, 1024);
    assert_int_equal(cp2p__mss_init_dialer(&d, offer, 2, false), 0);
    /* The dialer pipelines its header and first proposal. */
    wire_msg(&want, "/multistream/1.0.0");
    wire_msg(&want, "/yamux/1.0.0");
    cp2p_slice o = cp2p__mss_out(&d);
    assert_int_equal(o.len, want.len);
    assert_memory_equal(o.ptr, want.ptr, want.len);
    cp2p__mss_out_done(&d, o.len);
    assert_false(cp2p__mss_writable(&d));
    /* Listener: header, na -> the dialer proposes the second protocol. */
    wire_msg(&in, "/multistream/1.0.0");
    wire_msg(&in, "na");
    assert_int_equal(cp2p__mss_recv(&d, in.ptr, in.len, &why), (ptrdiff_t)in.len);
    cp2p_buf_reset(&want);
    wire_msg(&want, "/mplex/6.7.0");
    o = cp2p__mss_out(&d);
    assert_int_equal(o.len, want.len);
    assert_memory_equal(o.ptr, want.ptr, want.len);
    cp2p__mss_out_done(&d, o.len);
    /* Echo plus the first bytes of the protocol: only the echo is consumed. */
    cp2p_buf_reset(&in);
    wire_msg(&in, "/mplex/6.7.0");
    size_t echo_len = in.len;
    assert_int_equal(cp2p_buf_append(&in, "DATA", 4), 0);
    assert_int_equal(cp2p__mss_recv(&d, in.ptr, in.len, &why), (ptrdiff_t)echo_len);
    assert_int_equal(cp2p__mss_state_get(&d), MSS_DONE);
    assert_string_equal(cp2p__mss_selected(&d), "/mplex/6.7.0");
    assert_true(cp2p__mss_writable(&d));
    /* Done: nothing more is consumed. */
    assert_int_equal(cp2p__mss_recv(&d, (const uint8_t *)"DATA", 4, &why), 0);
    cp2p__mss_fini(&d);
    cp2p_buf_fini(&in);
    cp2p_buf_fini(&want);
}

static void dialer_fails_when_all_refused(void **state)
{
    static const char *const offer[] = {"/a/1", "/b/1"};
    cp2p__mss d;
    cp2p_buf in;
    const char *why = NULL;
    (void)state;
    cp2p_buf_init(&in, 256);
    assert_int_equal(cp2p__mss_init_dialer(&d, offer, 2, false), 0);
    wire_msg(&in, "/multistream/1.0.0");
    wire_msg(&in, "na");
    wire_msg(&in, "na");
    assert_int_equal(cp2p__mss_recv(&d, in.ptr, in.len, &why), CP2P_ENOTSUP);
    assert_non_null(why);
    assert_int_equal(cp2p__mss_state_get(&d), MSS_FAILED);
    assert_null(cp2p__mss_selected(&d));
    /* Terminal: further input is refused. */
    assert_int_equal(cp2p__mss_recv(&d, in.ptr, in.len, &why), CP2P_ESTATE);
    cp2p__mss_fini(&d);
    cp2p_buf_fini(&in);
}

static void listener_answers_na_ls_and_echo(void **state)
{
    static const char *const support[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"};
    cp2p__mss l;
    cp2p_buf in, want;
    const char *why = NULL;
    (void)state;
    cp2p_buf_init(&in, 1024);
    cp2p_buf_init(&want, 1024);
    assert_int_equal(cp2p__mss_init_listener(&l, support, 2), 0);
    cp2p__mss_out_done(&l, cp2p__mss_out(&l).len);
    wire_msg(&in, "/multistream/1.0.0");
    wire_msg(&in, "/unknown/1.0.0");
    wire_msg(&in, "ls");
    wire_msg(&in, "/ipfs/id/1.0.0");
    assert_int_equal(cp2p__mss_recv(&l, in.ptr, in.len, &why), (ptrdiff_t)in.len);
    assert_int_equal(cp2p__mss_state_get(&l), MSS_DONE);
    assert_string_equal(cp2p__mss_selected(&l), "/ipfs/id/1.0.0");
    /* na; the ls listing (one message holding one message per protocol); the echo. */
    wire_msg(&want, "na");
    cp2p_buf body;
    cp2p_buf_init(&body, 1024);
    wire_msg(&body, "/ipfs/ping/1.0.0");
    wire_msg(&body, "/ipfs/id/1.0.0");
    assert_int_equal(cp2p_uvarint_append(&want, body.len + 1), 0);
    assert_int_equal(cp2p_buf_append(&want, body.ptr, body.len), 0);
    assert_int_equal(cp2p_buf_append_byte(&want, '\n'), 0);
    wire_msg(&want, "/ipfs/id/1.0.0");
    cp2p_slice o = cp2p__mss_out(&l);
    assert_int_equal(o.len, want.len);
    assert_memory_equal(o.ptr, want.ptr, want.len);
    cp2p__mss_fini(&l);
    cp2p_buf_fini(&in);
    cp2p_buf_fini(&want);
    cp2p_buf_fini(&body);
}

static void dialer_and_listener_agree(void **state)
{
    static const char *const offer[] = {"/x/1", "/noise"};
    static const char *const support[] = {"/tls/1.0.0", "/noise"};
    cp2p__mss d, l;
    (void)state;
    assert_int_equal(cp2p__mss_init_dialer(&d, offer, 2, false), 0);
    assert_int_equal(cp2p__mss_init_listener(&l, support, 2), 0);
    pump(&d, &l);
    assert_string_equal(cp2p__mss_selected(&d), "/noise");
    assert_string_equal(cp2p__mss_selected(&l), "/noise");
    cp2p__mss_fini(&d);
    cp2p__mss_fini(&l);
}

static void lazy_dialer_is_writable_at_once(void **state)
{
    static const char *const offer[] = {"/ipfs/ping/1.0.0"};
    static const char *const none[] = {"/other/1"};
    cp2p__mss d, l;
    (void)state;
    assert_int_equal(cp2p__mss_init_dialer(&d, offer, 1, true), 0);
    assert_true(cp2p__mss_writable(&d));
    assert_int_equal(cp2p__mss_init_listener(&l, offer, 1), 0);
    pump(&d, &l);
    assert_int_equal(cp2p__mss_state_get(&d), MSS_DONE);
    cp2p__mss_fini(&d);
    cp2p__mss_fini(&l);
    /* A lazy dialer that meets "na" fails (it has no second choice to offer). */
    assert_int_equal(cp2p__mss_init_dialer(&d, offer, 1, true), 0);
    assert_int_equal(cp2p__mss_init_listener(&l, none, 1), 0);
    cp2p_slice o = cp2p__mss_out(&d);
    const char *why = NULL;
    assert_int_equal(cp2p__mss_recv(&l, o.ptr, o.len, &why), (ptrdiff_t)o.len);
    o = cp2p__mss_out(&l);
    assert_int_equal(cp2p__mss_recv(&d, o.ptr, o.len, &why), CP2P_ENOTSUP);
    assert_false(cp2p__mss_writable(&d));
    cp2p__mss_fini(&d);
    cp2p__mss_fini(&l);
}

static void every_truncation_needs_more(void **state)
{
    static const char *const support[] = {"/ipfs/ping/1.0.0"};
    cp2p_buf in;
    const char *why = NULL;
    (void)state;
    cp2p_buf_init(&in, 256);
    wire_msg(&in, "/multistream/1.0.0");
    size_t first = in.len;
    wire_msg(&in, "/ipfs/ping/1.0.0");
    for (size_t cut = 0; cut < in.len; cut++) {
        cp2p__mss l;
        assert_int_equal(cp2p__mss_init_listener(&l, support, 1), 0);
        ptrdiff_t n = cp2p__mss_recv(&l, in.ptr, cut, &why);
        assert_int_equal(n, cut < first ? 0 : (ptrdiff_t)first);
        assert_int_not_equal(cp2p__mss_state_get(&l), MSS_DONE);
        cp2p__mss_fini(&l);
    }
    cp2p_buf_fini(&in);
}

static void bad_input_fails_cleanly(void **state)
{
    static const char *const support[] = {"/p/1"};
    const char *why;
    (void)state;
    struct {
        const uint8_t *bytes;
        size_t len;
        int want;
    } cases[] = {
        {(const uint8_t *)"\x13/multistream/2.0.0\n", 20, CP2P_EPROTO},  /* wrong header */
        {(const uint8_t *)"\x13/multistream/1.0.0X", 20, CP2P_EPROTO},   /* no newline */
        {(const uint8_t *)"\x00", 1, CP2P_EPROTO},                       /* empty message */
        {(const uint8_t *)"\x80\x00", 2, CP2P_EPROTO},                   /* non-minimal length */
        {(const uint8_t *)"\x81\x08", 2, CP2P_ELIMIT},                   /* 1025 bytes */
        {(const uint8_t *)"\xff\xff\xff", 3, CP2P_ELIMIT},                /* absurd length */
        {(const uint8_t *)"\x05hello", 6, CP2P_EPROTO},                   /* garbage */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp2p__mss l;
        why = NULL;
        assert_int_equal(cp2p__mss_init_listener(&l, support, 1), 0);
        assert_int_equal(cp2p__mss_recv(&l, cases[i].bytes, cases[i].len, &why), cases[i].want);
        assert_non_null(why);
        assert_int_equal(cp2p__mss_state_get(&l), MSS_FAILED);
        cp2p__mss_fini(&l);
    }
}

static void too_many_proposals_is_a_limit(void **state)
{
    static const char *const support[] = {"/p/1"};
    cp2p__mss l;
    cp2p_buf in;
    const char *why = NULL;
    (void)state;
    cp2p_buf_init(&in, 8192);
    assert_int_equal(cp2p__mss_init_listener(&l, support, 1), 0);
    wire_msg(&in, "/multistream/1.0.0");
    for (int i = 0; i < CP2P_MSS_MAX_PROPOSALS + 1; i++) {
        wire_msg(&in, "/nope/1");
    }
    assert_int_equal(cp2p__mss_recv(&l, in.ptr, in.len, &why), CP2P_ELIMIT);
    cp2p__mss_fini(&l);
    cp2p_buf_fini(&in);
}

static void init_rejects_bad_protocols(void **state)
{
    cp2p__mss m;
    static const char *const empty[] = {""};
    static const char *const noslash[] = {"ping"};
    static const char *const nl[] = {"/a\n/b"};
    (void)state;
    assert_int_equal(cp2p__mss_init_dialer(&m, empty, 1, false), CP2P_EINVAL);
    assert_int_equal(cp2p__mss_init_dialer(&m, noslash, 1, false), CP2P_EINVAL);
    assert_int_equal(cp2p__mss_init_listener(&m, nl, 1), CP2P_EINVAL);
    assert_int_equal(cp2p__mss_init_listener(&m, nl, 0), CP2P_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_bytes_match_spec),
        cmocka_unit_test(dialer_transcript_with_na_fallback),
        cmocka_unit_test(dialer_fails_when_all_refused),
        cmocka_unit_test(listener_answers_na_ls_and_echo),
        cmocka_unit_test(dialer_and_listener_agree),
        cmocka_unit_test(lazy_dialer_is_writable_at_once),
        cmocka_unit_test(every_truncation_needs_more),
        cmocka_unit_test(bad_input_fails_cleanly),
        cmocka_unit_test(too_many_proposals_is_a_limit),
        cmocka_unit_test(init_rejects_bad_protocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
