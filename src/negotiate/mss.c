/* multistream-select 1.0, sans-I/O. See mss.h. */
#include <string.h>

#include <cp2p/codec.h>

#include "negotiate/mss.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define HEADER CP2P_MSS_PROTOCOL
#define HEADER_LEN (sizeof(HEADER) - 1)
/* Output never holds more than a header, a few replies and an ls listing. */
#define OUT_MAX (4 * CP2P_MSS_MAX_MSG + CP2P_MSS_MAX_LS)

static const char *const STATE_NAMES[] = {"EXPECT_HEADER", "EXPECT_REPLY", "EXPECT_PROPOSAL",
                                          "DONE", "FAILED"};

static void set_state(cp2p__mss *m, cp2p__mss_state s)
{
    CP2P_LOG(CP2P_LOG_TRACE, "mss", 0, "mss.state %s -> %s", STATE_NAMES[m->state],
             STATE_NAMES[s]);
    m->state = s;
}

int cp2p__mss_write_msg(cp2p_buf *b, const char *text, size_t len)
{
    size_t before = b->len;
    int rc;
    if (len + 1 > CP2P_MSS_MAX_MSG) {
        return CP2P_EINVAL;
    }
    if ((rc = cp2p_uvarint_append(b, len + 1)) != 0 || (rc = cp2p_buf_append(b, text, len)) != 0 ||
        (rc = cp2p_buf_append_byte(b, '\n')) != 0) {
        b->len = before;
        return rc;
    }
    return 0;
}

static bool valid_proto(const char *p)
{
    size_t n = p == NULL ? 0 : strlen(p);
    return n >= 2 && p[0] == '/' && n + 1 <= CP2P_MSS_MAX_MSG && memchr(p, '\n', n) == NULL;
}

static int init_common(cp2p__mss *m, const char *const *protos, size_t n, bool dialer)
{
    *m = (cp2p__mss){0};
    cp2p_buf_init(&m->out, OUT_MAX);
    if (n == 0 || n > (dialer ? CP2P_MSS_MAX_OFFER : CP2P_MSS_MAX_SUPPORTED)) {
        return CP2P_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!valid_proto(protos[i])) {
            return CP2P_EINVAL;
        }
    }
    m->protos = protos;
    m->nprotos = n;
    m->dialer = dialer;
    m->state = MSS_EXPECT_HEADER;
    return cp2p__mss_write_msg(&m->out, HEADER, HEADER_LEN);
}

int cp2p__mss_init_dialer(cp2p__mss *m, const char *const *protos, size_t n, bool lazy)
{
    int rc = init_common(m, protos, n, true);
    if (rc == 0) {
        m->lazy = lazy && n == 1;
        /* Pipelined: the first proposal goes out with the header (as go and js do). */
        rc = cp2p__mss_write_msg(&m->out, protos[0], strlen(protos[0]));
    }
    if (rc != 0) {
        cp2p__mss_fini(m);
    }
    return rc;
}

int cp2p__mss_init_listener_filtered(cp2p__mss *m, const char *const *protos, size_t n,
                                     bool (*accept)(void *ud, size_t idx), void *ud)
{
    int rc = init_common(m, protos, n, false);
    if (rc != 0) {
        cp2p__mss_fini(m);
        return rc;
    }
    m->accept = accept;
    m->accept_ud = ud;
    return 0;
}

int cp2p__mss_init_listener(cp2p__mss *m, const char *const *protos, size_t n)
{
    return cp2p__mss_init_listener_filtered(m, protos, n, NULL, NULL);
}

static bool accepts(const cp2p__mss *m, size_t i)
{
    return m->accept == NULL || m->accept(m->accept_ud, i);
}

void cp2p__mss_fini(cp2p__mss *m)
{
    cp2p_buf_fini(&m->out);
}

/* One message: returns bytes used (> 0) with *text and *tlen set (newline stripped), 0 when
 * incomplete, or an error. */
static ptrdiff_t read_msg(const uint8_t *in, size_t len, const char **text, size_t *tlen,
                          const char **why)
{
    uint64_t n;
    ptrdiff_t h = cp2p_uvarint_decode(in, len, &n);
    if (h < 0) {
        *why = "malformed length prefix";
        return CP2P_EPROTO;
    }
    if (h == 0) {
        /* A length under CP2P_MSS_MAX_MSG needs 2 bytes; more without an end is too long. */
        if (len >= 2) {
            *why = "message longer than 1024 bytes";
            return CP2P_ELIMIT;
        }
        return 0;
    }
    if (n > CP2P_MSS_MAX_MSG) {
        *why = "message longer than 1024 bytes";
        return CP2P_ELIMIT;
    }
    if (n == 0) {
        *why = "empty message";
        return CP2P_EPROTO;
    }
    if (len - (size_t)h < n) {
        return 0;
    }
    if (in[(size_t)h + n - 1] != '\n') {
        *why = "message does not end with a newline";
        return CP2P_EPROTO;
    }
    *text = (const char *)in + h;
    *tlen = (size_t)n - 1;
    return h + (ptrdiff_t)n;
}

static bool eq(const char *text, size_t tlen, const char *s)
{
    return strlen(s) == tlen && memcmp(text, s, tlen) == 0;
}

static int on_header(cp2p__mss *m, const char *t, size_t n, const char **why)
{
    if (!eq(t, n, HEADER)) {
        *why = "remote does not speak /multistream/1.0.0";
        return CP2P_EPROTO;
    }
    m->got_header = true;
    set_state(m, m->dialer ? MSS_EXPECT_REPLY : MSS_EXPECT_PROPOSAL);
    return 0;
}

static int on_reply(cp2p__mss *m, const char *t, size_t n, const char **why)
{
    if (eq(t, n, m->protos[m->next])) {
        m->selected = m->next;
        set_state(m, MSS_DONE);
        return 0;
    }
    if (!eq(t, n, "na")) {
        *why = "listener answered neither our proposal nor na";
        return CP2P_EPROTO;
    }
    if (m->lazy || ++m->next == m->nprotos) {
        *why = "listener supports none of our protocols";
        return CP2P_ENOTSUP;
    }
    return cp2p__mss_write_msg(&m->out, m->protos[m->next], strlen(m->protos[m->next]));
}

/* "ls": one message whose body is each protocol as its own message, then a newline. The listing
 * stops at CP2P_MSS_MAX_LS bytes. */
static int write_ls(cp2p__mss *m)
{
    cp2p_buf body;
    int rc = 0;
    cp2p_buf_init(&body, CP2P_MSS_MAX_LS - CP2P_UVARINT_MAX - 1);
    for (size_t i = 0; i < m->nprotos && rc == 0; i++) {
        if (accepts(m, i)) {
            rc = cp2p__mss_write_msg(&body, m->protos[i], strlen(m->protos[i]));
        }
    }
    if (rc == CP2P_ELIMIT) {
        rc = 0; /* a truncated listing is still a listing */
    }
    if (rc == 0 && (rc = cp2p_uvarint_append(&m->out, body.len + 1)) == 0 &&
        (rc = cp2p_buf_append(&m->out, body.ptr, body.len)) == 0) {
        rc = cp2p_buf_append_byte(&m->out, '\n');
    }
    cp2p_buf_fini(&body);
    return rc;
}

static int on_proposal(cp2p__mss *m, const char *t, size_t n, const char **why)
{
    if (++m->proposals > CP2P_MSS_MAX_PROPOSALS) {
        *why = "too many proposals";
        return CP2P_ELIMIT;
    }
    if (eq(t, n, "ls")) {
        return write_ls(m);
    }
    for (size_t i = 0; i < m->nprotos; i++) {
        if (eq(t, n, m->protos[i]) && accepts(m, i)) {
            m->selected = i;
            set_state(m, MSS_DONE);
            return cp2p__mss_write_msg(&m->out, t, n);
        }
    }
    return cp2p__mss_write_msg(&m->out, "na", 2);
}

ptrdiff_t cp2p__mss_recv(cp2p__mss *m, const uint8_t *in, size_t len, const char **why)
{
    size_t used = 0;
    while (m->state != MSS_DONE) {
        const char *text = NULL;
        size_t tlen = 0;
        int rc;
        if (m->state == MSS_FAILED) {
            *why = "negotiation already failed";
            return CP2P_ESTATE;
        }
        ptrdiff_t n = read_msg(in + used, len - used, &text, &tlen, why);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            set_state(m, MSS_FAILED);
            return n;
        }
        switch (m->state) {
        case MSS_EXPECT_HEADER: rc = on_header(m, text, tlen, why); break;
        case MSS_EXPECT_REPLY: rc = on_reply(m, text, tlen, why); break;
        case MSS_EXPECT_PROPOSAL: rc = on_proposal(m, text, tlen, why); break;
        default:
            *why = "input after negotiation ended";
            rc = CP2P_ESTATE;
            break;
        }
        if (rc < 0) {
            set_state(m, MSS_FAILED);
            return rc;
        }
        used += (size_t)n;
    }
    return (ptrdiff_t)used;
}

cp2p_slice cp2p__mss_out(const cp2p__mss *m)
{
    return cp2p_buf_slice(&m->out);
}

void cp2p__mss_out_done(cp2p__mss *m, size_t n)
{
    cp2p_buf_consume(&m->out, n);
}

const char *cp2p__mss_selected(const cp2p__mss *m)
{
    return m->state == MSS_DONE ? m->protos[m->selected] : NULL;
}

bool cp2p__mss_writable(const cp2p__mss *m)
{
    return m->state == MSS_DONE ||
           (m->lazy && m->state != MSS_FAILED);
}
