/* Node info codec and rules (nodeinfo.h). */
#include <string.h>

#include <cp2p/codec.h>

#include "nodeinfo.pb-c.h"
#include "reactor/nodeinfo.h"
#include "util/frame.h"
#include "util/pb.h"

/* Printable ASCII (CometBFT's IsASCIIText), NUL within `cap` bytes. Returns the length or -1. */
static ptrdiff_t text_len(const char *s, size_t cap)
{
    size_t n = 0;
    while (n < cap && s[n] != 0) {
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) {
            return -1;
        }
        n++;
    }
    return n < cap ? (ptrdiff_t)n : -1;
}

/* Only spaces (CometBFT's ASCIITrim(s) == ""). */
static bool blank(const char *s)
{
    while (*s == ' ') {
        s++;
    }
    return *s == 0;
}

int cp2p__nodeinfo_check(const cp2p_node_info *ni, const char **why)
{
    ptrdiff_t n;
    if (text_len(ni->node_id, sizeof(ni->node_id)) < 0) {
        *why = "node id not printable ASCII";
        return CP2P_EINVAL;
    }
    if (text_len(ni->listen_addr, sizeof(ni->listen_addr)) < 0) {
        *why = "listen address not printable ASCII";
        return CP2P_EINVAL;
    }
    if (text_len(ni->network, sizeof(ni->network)) < 0) {
        *why = "network not printable ASCII";
        return CP2P_EINVAL;
    }
    if ((n = text_len(ni->version, sizeof(ni->version))) < 0 || (n > 0 && blank(ni->version))) {
        *why = "version not printable ASCII, or blank";
        return CP2P_EINVAL;
    }
    if (text_len(ni->moniker, sizeof(ni->moniker)) < 0 || blank(ni->moniker)) {
        *why = "moniker empty, blank or not printable ASCII";
        return CP2P_EINVAL;
    }
    if (text_len(ni->tx_index, sizeof(ni->tx_index)) < 0 ||
        (ni->tx_index[0] != 0 && strcmp(ni->tx_index, "on") != 0 &&
         strcmp(ni->tx_index, "off") != 0)) {
        *why = "tx_index not \"\", \"on\" or \"off\"";
        return CP2P_EINVAL;
    }
    if ((n = text_len(ni->rpc_address, sizeof(ni->rpc_address))) < 0 ||
        (n > 0 && blank(ni->rpc_address))) {
        *why = "rpc address not printable ASCII, or blank";
        return CP2P_EINVAL;
    }
    if (ni->n_channels > CP2P_NODEINFO_CHANNELS_MAX) {
        *why = "too many channels";
        return CP2P_EINVAL;
    }
    bool seen[256] = {false};
    for (size_t i = 0; i < ni->n_channels; i++) {
        if (seen[ni->channels[i]]) {
            *why = "duplicate channel";
            return CP2P_EINVAL;
        }
        seen[ni->channels[i]] = true;
    }
    return 0;
}

static ProtobufCBinaryData bin(const char *s)
{
    return (ProtobufCBinaryData){.len = strlen(s), .data = (uint8_t *)(uintptr_t)s};
}

ptrdiff_t cp2p__nodeinfo_encode(const cp2p_node_info *ni, uint8_t *out, size_t cap)
{
    const char *why;
    if (cp2p__nodeinfo_check(ni, &why) != 0) {
        return CP2P_EINVAL;
    }
    Cp2pPb__NodeInfoProtocolVersion pv = CP2P_PB__NODE_INFO_PROTOCOL_VERSION__INIT;
    Cp2pPb__NodeInfoOther other = CP2P_PB__NODE_INFO_OTHER__INIT;
    Cp2pPb__NodeInfo m = CP2P_PB__NODE_INFO__INIT;
    pv.p2p = ni->p2p_version;
    pv.block = ni->block_version;
    pv.app = ni->app_version;
    other.tx_index = bin(ni->tx_index);
    other.rpc_address = bin(ni->rpc_address);
    m.protocol_version = &pv;
    m.default_node_id = bin(ni->node_id);
    m.listen_addr = bin(ni->listen_addr);
    m.network = bin(ni->network);
    m.version = bin(ni->version);
    m.channels.data = (uint8_t *)(uintptr_t)ni->channels;
    m.channels.len = ni->n_channels;
    m.moniker = bin(ni->moniker);
    m.other = &other;
    size_t body = cp2p_pb__node_info__get_packed_size(&m);
    size_t pre = cp2p_uvarint_len(body);
    if (body > CP2P_NODEINFO_MAX || pre + body > cap) {
        return CP2P_ELIMIT;
    }
    uint8_t p[CP2P_UVARINT_MAX];
    (void)cp2p_uvarint_encode(p, body);
    memcpy(out, p, pre);
    (void)cp2p_pb__node_info__pack(&m, out + pre);
    return (ptrdiff_t)(pre + body);
}

/* Copy a decoded string into a field of `cap` bytes (NUL included); a NUL inside it is left
 * for the check to refuse (it stops the text before its end). */
static int take_str(char *dst, size_t cap, ProtobufCBinaryData src, const char *what,
                    const char **why)
{
    if (src.len >= cap) {
        *why = what;
        return CP2P_ELIMIT;
    }
    if (src.len > 0 && memchr(src.data, 0, src.len) != NULL) {
        *why = "NUL inside a node info string";
        return CP2P_EPROTO;
    }
    if (src.len > 0) {
        memcpy(dst, src.data, src.len);
    }
    dst[src.len] = 0;
    return 0;
}

int cp2p__nodeinfo_decode(const uint8_t *body, size_t len, cp2p_node_info *out, const char **why)
{
    if (len > CP2P_NODEINFO_MAX) {
        *why = "node info over 10 KiB";
        return CP2P_ELIMIT;
    }
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    Cp2pPb__NodeInfo *m = cp2p_pb__node_info__unpack(&pa.a, len, body);
    if (m == NULL) {
        *why = pa.failed ? "out of memory" : "node info not a DefaultNodeInfo protobuf";
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    memset(out, 0, sizeof(*out));
    int rc = 0;
    if (m->protocol_version != NULL) {
        out->p2p_version = m->protocol_version->p2p;
        out->block_version = m->protocol_version->block;
        out->app_version = m->protocol_version->app;
    }
    if (m->channels.len > CP2P_NODEINFO_CHANNELS_MAX) {
        *why = "too many channels";
        rc = CP2P_ELIMIT;
    }
    rc = rc != 0 ? rc
                 : take_str(out->node_id, sizeof(out->node_id), m->default_node_id,
                            "node id too long", why);
    rc = rc != 0 ? rc
                 : take_str(out->listen_addr, sizeof(out->listen_addr), m->listen_addr,
                            "listen address too long", why);
    rc = rc != 0 ? rc
                 : take_str(out->network, sizeof(out->network), m->network, "network too long",
                            why);
    rc = rc != 0 ? rc
                 : take_str(out->version, sizeof(out->version), m->version, "version too long",
                            why);
    rc = rc != 0 ? rc
                 : take_str(out->moniker, sizeof(out->moniker), m->moniker, "moniker too long",
                            why);
    if (rc == 0 && m->other != NULL) {
        rc = take_str(out->tx_index, sizeof(out->tx_index), m->other->tx_index,
                      "tx_index too long", why);
        rc = rc != 0 ? rc
                     : take_str(out->rpc_address, sizeof(out->rpc_address),
                                m->other->rpc_address, "rpc address too long", why);
    }
    if (rc == 0) {
        if (m->channels.len > 0) {
            memcpy(out->channels, m->channels.data, m->channels.len);
        }
        out->n_channels = m->channels.len;
        if (cp2p__nodeinfo_check(out, why) != 0) {
            rc = CP2P_EPROTO;
        }
    }
    cp2p_pb__node_info__free_unpacked(m, &pa.a);
    return rc;
}

int cp2p__nodeinfo_compatible(const cp2p_node_info *ours, const cp2p_node_info *theirs,
                              const char **why)
{
    if (ours->block_version != theirs->block_version) {
        *why = "incompatible block version";
        return CP2P__NI_BLOCK_VERSION;
    }
    if (strcmp(ours->network, theirs->network) != 0) {
        *why = "incompatible network";
        return CP2P__NI_NETWORK;
    }
    if (ours->n_channels == 0) {
        return CP2P__NI_OK;
    }
    for (size_t i = 0; i < ours->n_channels; i++) {
        if (memchr(theirs->channels, ours->channels[i], theirs->n_channels) != NULL) {
            return CP2P__NI_OK;
        }
    }
    *why = "no common channels";
    return CP2P__NI_NO_CHANNELS;
}

void cp2p__nodeinfo_reader_init(cp2p__nodeinfo_reader *r)
{
    r->len = 0;
    r->done = false;
}

int cp2p__nodeinfo_reader_feed(cp2p__nodeinfo_reader *r, const uint8_t *data, size_t len,
                               cp2p_node_info *out, const char **why)
{
    if (len == 0) {
        return r->done ? 1 : 0;
    }
    if (r->done || len > sizeof(r->buf) - r->len) {
        /* The buffer holds a whole prefixed maximum: more means bytes after the message. */
        *why = "bytes after the node info";
        return CP2P_EPROTO;
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    cp2p_slice body;
    ptrdiff_t used = cp2p__frame_decode(r->buf, r->len, CP2P_NODEINFO_MAX, &body, why);
    if (used <= 0) {
        if (used == CP2P_ELIMIT) {
            *why = "node info over 10 KiB";
        }
        return (int)used;
    }
    if ((size_t)used != r->len) {
        *why = "bytes after the node info";
        return CP2P_EPROTO;
    }
    int rc = cp2p__nodeinfo_decode(body.ptr, body.len, out, why);
    if (rc != 0) {
        return rc;
    }
    r->done = true;
    return 1;
}
