/* Fuzz the binary multiaddr parser. Anything it accepts must print, parse back from its text
 * to the same bytes, and expose consistent components. abort() only on such an internal
 * inconsistency; bad input is simply refused. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/multiaddr.h>

static void check_components(const cp2p_multiaddr *ma, const cp2p_buf *text)
{
    cp2p_buf rebuilt;
    cp2p_buf_init(&rebuilt, CP2P_MULTIADDR_STR_MAX);
    size_t n = cp2p_multiaddr_count(ma);
    for (size_t i = 0; i < n; i++) {
        cp2p_multiaddr_component c;
        if (cp2p_multiaddr_component_at(ma, i, &c) != 0 ||
            cp2p_multiaddr_protocol_name(c.code) != c.name ||
            cp2p_buf_append_byte(&rebuilt, '/') != 0 ||
            cp2p_buf_append(&rebuilt, c.name, strlen(c.name)) != 0) {
            abort();
        }
        size_t before = rebuilt.len;
        if (cp2p_buf_append_byte(&rebuilt, '/') != 0 ||
            cp2p_multiaddr_component_value_string(&c, &rebuilt) != 0) {
            abort();
        }
        if (rebuilt.len == before + 1) {
            if (c.value.len != 0) {
                abort(); /* a value printed as nothing */
            }
            rebuilt.len = before; /* no value: drop the separator */
            rebuilt.ptr[before] = 0;
        }
    }
    cp2p_multiaddr_component c;
    if (cp2p_multiaddr_component_at(ma, n, &c) != CP2P_ENOENT) {
        abort();
    }
    if (rebuilt.len != text->len || memcmp(rebuilt.ptr, text->ptr, text->len) != 0) {
        abort(); /* the components do not add up to the text */
    }
    cp2p_buf_fini(&rebuilt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_multiaddr *ma = NULL, *back = NULL, *cut = NULL, *joined = NULL;
    cp2p_buf text;

    if (cp2p_multiaddr_from_bytes(data, size, &ma) != 0) {
        return 0;
    }
    cp2p_slice s = cp2p_multiaddr_bytes(ma);
    if (s.len != size || memcmp(s.ptr, data, size) != 0 || cp2p_multiaddr_count(ma) == 0) {
        abort();
    }
    cp2p_buf_init(&text, CP2P_MULTIADDR_STR_MAX);
    if (cp2p_multiaddr_to_string(ma, &text) != 0 || text.len >= CP2P_MULTIADDR_STR_MAX) {
        abort(); /* any valid multiaddr prints within CP2P_MULTIADDR_STR_MAX */
    }
    if (cp2p_multiaddr_parse((const char *)text.ptr, text.len, &back) != 0 ||
        !cp2p_multiaddr_equal(ma, back)) {
        abort(); /* the text does not round-trip */
    }
    check_components(ma, &text);

    /* Cutting at the last component and putting it back gives the original. */
    size_t n = cp2p_multiaddr_count(ma);
    cp2p_multiaddr_component last;
    if (cp2p_multiaddr_component_at(ma, n - 1, &last) != 0) {
        abort();
    }
    size_t tail_off = (size_t)(last.value.ptr - s.ptr) + last.value.len;
    if (tail_off != s.len || cp2p_multiaddr_decapsulate_code(ma, last.code, &cut) != 0) {
        abort();
    }
    cp2p_multiaddr *suffix = NULL;
    cp2p_slice cs = cp2p_multiaddr_bytes(cut);
    if (cp2p_multiaddr_from_bytes(s.ptr + cs.len, s.len - cs.len, &suffix) != 0 ||
        cp2p_multiaddr_encapsulate(cut, suffix, &joined) != 0 ||
        !cp2p_multiaddr_equal(joined, ma)) {
        abort();
    }
    cp2p_multiaddr *again = NULL;
    if (cp2p_multiaddr_decapsulate(ma, suffix, &again) != 0 ||
        !cp2p_multiaddr_equal(again, cut)) {
        abort();
    }
    cp2p_peer_id id;
    int rc = cp2p_multiaddr_peer_id(ma, &id);
    if (rc != 0 && rc != CP2P_ENOENT) {
        abort();
    }
    cp2p_multiaddr_free(again);
    cp2p_multiaddr_free(suffix);
    cp2p_multiaddr_free(joined);
    cp2p_multiaddr_free(cut);
    cp2p_multiaddr_free(back);
    cp2p_multiaddr_free(ma);
    cp2p_buf_fini(&text);
    return 0;
}
