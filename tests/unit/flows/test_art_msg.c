/* Artifact gossip codec: round trip, every truncation, malformed and oversized input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include <cp2p/multiformats.h>

#include "flows/art_msg.h"
#include "util/alloc.h"
#include "util/limits.h"

typedef struct fixture {
    uint8_t data[3000];
    uint8_t hashes[3 * 32];
    cp2p_buf id;
} fixture;

static void fixture_init(fixture *f)
{
    for (size_t i = 0; i < sizeof(f->data); i++) {
        f->data[i] = (uint8_t)(i * 7 + 1);
    }
    for (size_t i = 0; i < 3; i++) {
        size_t n = i < 2 ? 1024 : sizeof(f->data) - 2048;
        crypto_hash_sha256(f->hashes + 32 * i, f->data + 1024 * i, n);
    }
    cp2p_buf_init(&f->id, 128);
    assert_int_equal(cp2p_multihash_sha256(&f->id, f->data, sizeof(f->data)), 0);
}

static cp2p__art_advert advert_of(fixture *f, const cp2p__art_attr *attrs, size_t n_attrs)
{
    return (cp2p__art_advert){.id = cp2p_buf_slice(&f->id), .size = sizeof(f->data),
                              .chunk_size = 1024, .n_chunks = 3,
                              .hashes = {f->hashes, sizeof(f->hashes)}, .attrs = attrs,
                              .n_attrs = n_attrs};
}

static int decode(const cp2p_buf *b, cp2p__art_env *e)
{
    const char *why = NULL;
    int rc = cp2p__art_env_decode(b->ptr, b->len, CP2P_ART_MAX_FRAME, CP2P_ART_MAX_SIZE, e, &why);
    if (rc != 0) {
        assert_non_null(why);
    }
    return rc;
}

static void round_trip(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    cp2p__art_attr attrs[] = {{{(const uint8_t *)"height", 6}, {(const uint8_t *)"\x07", 1}},
                              {{(const uint8_t *)"type", 4}, {NULL, 0}}};
    cp2p__art_advert a = advert_of(&f, attrs, 2);
    cp2p__art_advert small = advert_of(&f, NULL, 0);
    small.size = 10;
    small.chunk_size = 10;
    small.n_chunks = 1;
    small.hashes.len = 32;
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    assert_int_equal(cp2p__art_advert_append(&b, &a), 0);
    assert_int_equal(b.len, cp2p__art_advert_size(&a));
    assert_int_equal(cp2p__art_request_append(&b, a.id, 2), 0);
    assert_int_equal(cp2p__art_chunk_append(&b, a.id, 1, f.data + 1024, 1024), 0);
    assert_int_equal(cp2p__art_retrans_append(&b, 500), 0);
    size_t before = b.len;
    assert_int_equal(cp2p__art_push_append(&b, &small, f.data, 10), 0);
    assert_int_equal(b.len - before, cp2p__art_push_size(&small, 10));
    assert_int_equal(cp2p__art_request_size(a.id, 2) + cp2p__art_chunk_size(a.id, 1, 1024) +
                         cp2p__art_retrans_size(500) + cp2p__art_advert_size(&a) +
                         cp2p__art_push_size(&small, 10),
                     b.len);

    cp2p__art_env e;
    assert_int_equal(decode(&b, &e), 0);
    assert_int_equal(e.n_adverts, 1);
    assert_int_equal(e.adverts[0].size, sizeof(f.data));
    assert_int_equal(e.adverts[0].n_chunks, 3);
    assert_int_equal(e.adverts[0].n_attrs, 2);
    assert_memory_equal(e.adverts[0].attrs[0].key.ptr, "height", 6);
    assert_int_equal(e.adverts[0].attrs[1].value.len, 0);
    assert_memory_equal(e.adverts[0].hashes.ptr, f.hashes, sizeof(f.hashes));
    assert_int_equal(e.n_requests, 1);
    assert_int_equal(e.requests[0].index, 2);
    assert_int_equal(e.n_chunks, 1);
    assert_int_equal(e.chunks[0].index, 1);
    assert_memory_equal(e.chunks[0].data.ptr, f.data + 1024, 1024);
    assert_true(e.has_retrans);
    assert_int_equal(e.retrans_max, 500);
    assert_int_equal(e.n_pushes, 1);
    assert_int_equal(e.pushes[0].data.len, 10);

    /* Encoding the decoded envelope gives the same bytes (fields in kind order already). */
    cp2p_buf b2;
    cp2p_buf_init(&b2, 1 << 20);
    assert_int_equal(cp2p__art_env_encode(&e, &b2), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.ptr, b.ptr, b.len);

    /* Every truncation is rejected or decodes to a prefix of the messages, never crashes. */
    for (size_t i = 0; i < b.len; i++) {
        cp2p__art_env t;
        const char *why = NULL;
        int rc = cp2p__art_env_decode(b.ptr, i, CP2P_ART_MAX_FRAME, CP2P_ART_MAX_SIZE, &t, &why);
        if (rc == 0) {
            assert_true(t.n_adverts + t.n_requests + t.n_chunks + t.n_pushes < 5 ||
                        !t.has_retrans);
            cp2p__art_env_fini(&t);
        } else {
            assert_true(rc == CP2P_EPROTO);
        }
    }
    cp2p__art_env_fini(&e);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&b2);
    cp2p_buf_fini(&f.id);
}

/* Each advert defect rejects the whole frame with the right error. */
static void bad_adverts(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    cp2p__art_env e;
    struct {
        cp2p__art_advert a;
        int rc;
    } cases[8];
    for (size_t i = 0; i < 8; i++) {
        cases[i].a = advert_of(&f, NULL, 0);
    }
    cases[0].a.hashes.len = 64;               /* manifest one hash short */
    cases[0].rc = CP2P_EPROTO;
    cases[1].a.chunk_size = 0;                /* no chunk size */
    cases[1].rc = CP2P_EPROTO;
    cases[2].a.size = 0;                      /* no size */
    cases[2].rc = CP2P_EPROTO;
    cases[3].a.id = (cp2p_slice){(const uint8_t *)"\x12\x20xx", 4}; /* truncated multihash */
    cases[3].rc = CP2P_EPROTO;
    cases[4].a.size = CP2P_ART_MAX_SIZE + 1;  /* too large */
    cases[4].rc = CP2P_ELIMIT;
    cases[5].a.chunk_size = CP2P_ART_MAX_CHUNK_SIZE + 1;
    cases[5].rc = CP2P_EPROTO;
    cases[6].a.size = (uint64_t)CP2P_ART_MAX_CHUNKS * 16 + 1; /* too many chunks */
    cases[6].a.chunk_size = 16;
    cases[6].rc = CP2P_ELIMIT;
    cases[7].a.id.len = 0;                    /* no id */
    cases[7].rc = CP2P_EPROTO;
    for (size_t i = 0; i < 8; i++) {
        cp2p_buf_reset(&b);
        assert_int_equal(cp2p__art_advert_append(&b, &cases[i].a), 0);
        assert_int_equal(decode(&b, &e), cases[i].rc);
        assert_null(e.pb_);
    }
    /* Too many attributes. */
    cp2p__art_attr attrs[CP2P_ART_MAX_ATTRS + 1];
    for (size_t i = 0; i <= CP2P_ART_MAX_ATTRS; i++) {
        attrs[i] = (cp2p__art_attr){{(const uint8_t *)"k", 1}, {NULL, 0}};
    }
    cp2p__art_advert a = advert_of(&f, attrs, CP2P_ART_MAX_ATTRS + 1);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_advert_append(&b, &a), 0);
    assert_int_equal(decode(&b, &e), CP2P_ELIMIT);
    /* An empty attribute key. */
    a = advert_of(&f, attrs, 1);
    attrs[0].key.len = 0;
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_advert_append(&b, &a), 0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&f.id);
}

static void bad_frames(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    cp2p_buf b;
    cp2p_buf_init(&b, 4 << 20);
    cp2p__art_env e;
    const char *why = NULL;
    /* Not a protobuf. */
    assert_int_equal(cp2p__art_env_decode((const uint8_t *)"\xff\xff\xff", 3, CP2P_ART_MAX_FRAME,
                                          CP2P_ART_MAX_SIZE, &e, &why),
                     CP2P_EPROTO);
    /* Over the frame limit, refused before unpacking. */
    assert_int_equal(cp2p__art_env_decode(f.data, sizeof(f.data), 100, CP2P_ART_MAX_SIZE, &e,
                                          &why),
                     CP2P_ELIMIT);
    /* A push whose data is shorter than its advert says. */
    cp2p__art_advert a = advert_of(&f, NULL, 0);
    assert_int_equal(cp2p__art_push_append(&b, &a, f.data, 100), 0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    /* A chunk without data, a chunk over the chunk limit. */
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_chunk_append(&b, a.id, 0, NULL, 0), 0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    cp2p_buf_reset(&b);
    uint8_t *big = calloc(1, CP2P_ART_MAX_CHUNK_SIZE + 1);
    assert_non_null(big);
    assert_int_equal(cp2p__art_chunk_append(&b, a.id, 0, big, CP2P_ART_MAX_CHUNK_SIZE + 1), 0);
    assert_int_equal(decode(&b, &e), CP2P_ELIMIT);
    free(big);
    /* Too many messages in one frame. */
    cp2p_buf_reset(&b);
    for (size_t i = 0; i <= CP2P_ART_MAX_FRAME_MSGS; i++) {
        assert_int_equal(cp2p__art_request_append(&b, a.id, (uint32_t)i), 0);
    }
    assert_int_equal(decode(&b, &e), CP2P_ELIMIT);
    /* A request without an index. */
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_buf_append(&b, "\x12\x24\x0a\x22", 4), 0);
    assert_int_equal(cp2p_buf_append(&b, f.id.ptr, f.id.len), 0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    /* The empty frame is a valid, empty envelope. */
    cp2p_buf_reset(&b);
    assert_int_equal(decode(&b, &e), 0);
    assert_int_equal(e.n_adverts + e.n_requests + e.n_chunks + e.n_pushes, 0);
    cp2p__art_env_fini(&e);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&f.id);
}

/* Each allocation of a decode fails in turn: CP2P_ENOMEM, nothing leaked (ASan), and the
 * decode succeeds once no allocation fails. */
static void decode_allocation_failures(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    cp2p__art_attr attrs[] = {{{(const uint8_t *)"k", 1}, {(const uint8_t *)"v", 1}}};
    cp2p__art_advert a = advert_of(&f, attrs, 1);
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    assert_int_equal(cp2p__art_advert_append(&b, &a), 0);
    assert_int_equal(cp2p__art_request_append(&b, a.id, 1), 0);
    assert_int_equal(cp2p__art_chunk_append(&b, a.id, 0, f.data, 1024), 0);
    assert_int_equal(cp2p__art_retrans_append(&b, 3), 0);
    bool ok = false;
    for (long n = 1; n < 200; n++) {
        cp2p__art_env e;
        const char *why = NULL;
        cp2p__alloc_fail_after(n);
        int rc = cp2p__art_env_decode(b.ptr, b.len, CP2P_ART_MAX_FRAME, CP2P_ART_MAX_SIZE, &e,
                                      &why);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(e.n_adverts + e.n_requests + e.n_chunks, 3);
            cp2p__art_env_fini(&e);
            ok = true; /* from here on the failure falls past the decode's allocations */
        } else {
            assert_int_equal(rc, CP2P_ENOMEM);
            assert_null(e.pb_);
        }
    }
    assert_true(ok);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&f.id);
}

/* Partial adverts (field 7) and Haves (field 8): round trip, sizes, an advert re-keyed as a
 * partial advert, every truncation; a Have without index or id, with too many indexes, or too
 * many indexes in one frame rejects the frame; a partial advert is validated as an advert. */
static void partial_and_have(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    cp2p__art_advert a = advert_of(&f, NULL, 0);
    uint32_t idx[] = {0, 2, 127, 128, 16383};
    cp2p_buf b;
    cp2p_buf_init(&b, 4 << 20);
    assert_int_equal(cp2p__art_partial_advert_append(&b, &a), 0);
    assert_int_equal(b.len, cp2p__art_partial_advert_size(&a));
    size_t before = b.len;
    assert_int_equal(cp2p__art_have_append(&b, a.id, idx, 5), 0);
    assert_int_equal(b.len - before, cp2p__art_have_size(a.id, idx, 5));
    cp2p__art_env e;
    assert_int_equal(decode(&b, &e), 0);
    assert_int_equal(e.n_adverts, 0);
    assert_int_equal(e.n_partials, 1);
    assert_int_equal(e.partials[0].n_chunks, 3);
    assert_memory_equal(e.partials[0].hashes.ptr, f.hashes, sizeof(f.hashes));
    assert_int_equal(e.n_haves, 1);
    assert_int_equal(e.haves[0].n_indexes, 5);
    assert_memory_equal(e.haves[0].indexes, idx, sizeof(idx));
    assert_memory_equal(e.haves[0].id.ptr, f.id.ptr, f.id.len);
    cp2p_buf b2;
    cp2p_buf_init(&b2, 1 << 20);
    assert_int_equal(cp2p__art_env_encode(&e, &b2), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.ptr, b.ptr, b.len);
    cp2p__art_env_fini(&e);
    for (size_t i = 0; i < b.len; i++) {
        cp2p__art_env t;
        const char *why = NULL;
        int rc = cp2p__art_env_decode(b.ptr, i, CP2P_ART_MAX_FRAME, CP2P_ART_MAX_SIZE, &t, &why);
        if (rc == 0) {
            assert_true(t.n_partials + t.n_haves < 2);
            cp2p__art_env_fini(&t);
        } else {
            assert_true(rc == CP2P_EPROTO);
        }
    }
    /* An advert field with its key byte replaced is the same partial advert. */
    cp2p_buf_reset(&b2);
    assert_int_equal(cp2p__art_advert_append(&b2, &a), 0);
    assert_int_equal(b2.ptr[0], CP2P_ART_KEY_ADVERT);
    b2.ptr[0] = CP2P_ART_KEY_PARTIAL;
    assert_int_equal(b2.len, before);
    assert_memory_equal(b2.ptr, b.ptr, before);
    /* A partial advert is validated as an advert. */
    cp2p__art_advert bad = a;
    bad.hashes.len = 64;
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_partial_advert_append(&b, &bad), 0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    /* A Have without index, without id, with an id that is not a multihash. */
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_have_append(&b, a.id, idx, 0), 0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_have_append(&b, (cp2p_slice){NULL, 0}, idx, 1), 0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_have_append(&b, (cp2p_slice){(const uint8_t *)"\x12\x20x", 3},
                                           idx, 1),
                     0);
    assert_int_equal(decode(&b, &e), CP2P_EPROTO);
    /* Too many indexes in one Have, then in one frame (each Have within its bound). */
    uint32_t *many = calloc(CP2P_ART_MAX_CHUNKS + 1, sizeof(*many));
    assert_non_null(many);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__art_have_append(&b, a.id, many, CP2P_ART_MAX_CHUNKS + 1), 0);
    assert_int_equal(decode(&b, &e), CP2P_ELIMIT);
    cp2p_buf_reset(&b);
    for (int i = 0; i < CP2P_ART_MAX_FRAME_HAVE_INDEXES / CP2P_ART_MAX_CHUNKS; i++) {
        assert_int_equal(cp2p__art_have_append(&b, a.id, many, CP2P_ART_MAX_CHUNKS), 0);
    }
    assert_int_equal(decode(&b, &e), 0);
    cp2p__art_env_fini(&e);
    assert_int_equal(cp2p__art_have_append(&b, a.id, many, 1), 0);
    assert_int_equal(decode(&b, &e), CP2P_ELIMIT);
    free(many);
    /* An unpacked encoding of the indexes (allowed by protobuf) decodes the same. */
    cp2p_buf_reset(&b);
    uint8_t body[64];
    size_t n = 0;
    body[n++] = 0x0a;
    body[n++] = (uint8_t)f.id.len;
    memcpy(body + n, f.id.ptr, f.id.len);
    n += f.id.len;
    body[n++] = 0x10; /* field 2, varint */
    body[n++] = 7;
    assert_int_equal(cp2p_buf_append_byte(&b, 0x42), 0); /* field 8, length-delimited */
    assert_int_equal(cp2p_buf_append_byte(&b, (uint8_t)n), 0);
    assert_int_equal(cp2p_buf_append(&b, body, n), 0);
    assert_int_equal(decode(&b, &e), 0);
    assert_int_equal(e.n_haves, 1);
    assert_int_equal(e.haves[0].n_indexes, 1);
    assert_int_equal(e.haves[0].indexes[0], 7);
    cp2p__art_env_fini(&e);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&b2);
    cp2p_buf_fini(&f.id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(bad_adverts),
        cmocka_unit_test(bad_frames),
        cmocka_unit_test(decode_allocation_failures),
        cmocka_unit_test(partial_and_have),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
