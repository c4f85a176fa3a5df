/* vdp-chunk.c - VDIChunkHeader framing and per-port message reassembly.
 *
 * The reassembler is a byte-driven state machine. feed() alternates between
 * collecting an 8-byte chunk header and handing the chunk's bytes to the
 * state of the chunk's port. Each port is in one of five states:
 *
 *   HEADER  collecting the 20-byte message header
 *   BODY    copying the payload into a buffer of exactly hdr.size bytes
 *   SKIP    discarding the payload of a dropped message
 *   HEAD    collecting the head of a streamed message (at most 12 bytes)
 *   STREAM  passing payload bytes through, pointing into the input
 *
 * Every step consumes at least one input byte and copies each byte at most
 * once, so the work is linear in the input whatever the chunking.
 *
 * Callbacks may reset a port or the whole reassembler. The code therefore
 * updates its state before it calls out and, after a callback that may
 * continue the same message, checks the port's generation counter (bumped
 * by every reset) before touching that message again.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "vdp-chunk.h"
#include "vdp-wire.h"

/* ---- encoder ---- */

static size_t chunk_payload_max(size_t max_chunk)
{
    if (max_chunk == 0)
        return VDP_CHUNK_SIZE_DEFAULT;
    return max_chunk > UINT32_MAX ? UINT32_MAX : max_chunk;
}

size_t vdp_chunk_framed_size(size_t len, size_t max_chunk)
{
    size_t per = chunk_payload_max(max_chunk);
    size_t nchunks = len / per + (len % per != 0);
    size_t headers, total;

    if (!vdp_mul_size(nchunks, VDP_CHUNK_HEADER_SIZE, &headers) ||
        !vdp_add_size(len, headers, &total))
        return 0;
    return total;
}

void vdp_chunk_header_encode(uint32_t port, uint32_t size,
                             uint8_t out[VDP_CHUNK_HEADER_SIZE])
{
    vdp_put_le32(out, port);
    vdp_put_le32(out + 4, size);
}

size_t vdp_chunk_frame(uint32_t port, const uint8_t *data, size_t len,
                       size_t max_chunk, uint8_t *out, size_t cap)
{
    size_t per = chunk_payload_max(max_chunk);
    size_t need = vdp_chunk_framed_size(len, max_chunk);
    size_t off = 0;

    if (len == 0 || need == 0 || need > cap)
        return 0;
    while (len > 0) {
        size_t n = len < per ? len : per;
        vdp_chunk_header_encode(port, (uint32_t)n, out + off);
        memcpy(out + off + VDP_CHUNK_HEADER_SIZE, data, n);
        off += VDP_CHUNK_HEADER_SIZE + n;
        data += n;
        len -= n;
    }
    return off;
}

/* ---- reassembler ---- */

/* Largest stream head we collect (vdp_msg_stream_head_size: at most 12). */
#define HEAD_MAX 16u

typedef enum PortState {
    PORT_HEADER,
    PORT_BODY,
    PORT_SKIP,
    PORT_HEAD,
    PORT_STREAM,
} PortState;

typedef struct Port {
    PortState state;
    uint8_t hdr_bytes[VDP_MSG_HEADER_SIZE];
    size_t hdr_got;             /* HEADER: bytes of hdr_bytes collected */
    VdpMsgHeader hdr;           /* the message in progress (other states) */
    uint8_t *buf;               /* BODY: hdr.size bytes */
    uint8_t head[HEAD_MAX];     /* HEAD: the stream head */
    size_t head_len;            /* HEAD: bytes the head needs */
    size_t got;                 /* BODY, HEAD: bytes collected */
    size_t left;                /* SKIP, STREAM: payload bytes still to come */
    unsigned gen;               /* bumped by every reset of this port */
} Port;

struct VdpReasm {
    VdpReasmConfig cfg;
    VdpReasmCallbacks cb;
    void *user;
    bool streaming;             /* all three stream callbacks are set */
    size_t threshold;

    uint8_t chunk_hdr[VDP_CHUNK_HEADER_SIZE];
    size_t chunk_hdr_got;
    uint32_t chunk_port;        /* port of the current chunk */
    size_t chunk_left;          /* its bytes still to come; 0 = reading a header */
    bool broken;                /* fatal framing error until vdp_reasm_reset */
    VdpError broken_err;
    unsigned gen;               /* bumped by vdp_reasm_reset */

    Port ports[2];              /* VDP_CLIENT_PORT, VDP_SERVER_PORT */
    VdpReasmStats stats;
};

/* Passed as the payload of zero-size messages, so data is never NULL. */
static const uint8_t no_payload[1];

static const char *type_name(uint32_t type)
{
    const char *name = vdp_msg_type_name(type);
    return name ? name : "message";
}

/* Drop the message whose header was just read: its body is skipped. */
static void drop(VdpReasm *r, Port *p, uint32_t port, const VdpError *e)
{
    VdpMsgHeader hdr = p->hdr;

    r->stats.dropped++;
    p->left = hdr.size;
    p->state = hdr.size ? PORT_SKIP : PORT_HEADER;
    if (r->cb.problem)
        r->cb.problem(r->user, VDP_REASM_DROPPED, port, &hdr, e);
}

/* A buffered message is complete (or has no payload). */
static void deliver(VdpReasm *r, Port *p, uint32_t port)
{
    VdpMsgHeader hdr = p->hdr;
    uint8_t *buf = p->buf;

    /* Detach first: the callback may reset this port. */
    p->buf = NULL;
    p->state = PORT_HEADER;
    r->stats.messages++;
    r->cb.message(r->user, port, &hdr, buf ? buf : no_payload, hdr.size);
    free(buf);
}

static void end_stream(VdpReasm *r, Port *p, uint32_t port)
{
    p->state = PORT_HEADER;
    r->stats.streamed++;
    r->cb.stream_end(r->user, port);
}

static void begin_stream(VdpReasm *r, Port *p, uint32_t port)
{
    VdpMsgHeader hdr = p->hdr;
    unsigned gen = p->gen;

    p->left = hdr.size - p->head_len;
    p->state = PORT_STREAM;
    r->cb.stream_begin(r->user, port, &hdr, p->head, p->head_len);
    if (p->gen == gen && p->left == 0)
        end_stream(r, p, port);
}

/* The 20-byte header of a message is complete: decide its fate. */
static void start_message(VdpReasm *r, Port *p, uint32_t port)
{
    const VdpMsgHeader *h = &p->hdr;
    VdpError e, route;

    if (h->protocol != VD_AGENT_PROTOCOL) {
        vdp_error_set(&e, VDP_ERR_PROTOCOL,
                      "message of type %u on chunk port %u has protocol %u, expected %u; "
                      "skipping its %u bytes", h->type, port, h->protocol,
                      (unsigned)VD_AGENT_PROTOCOL, h->size);
        drop(r, p, port, &e);
        return;
    }
    if (vdp_msg_check_route(r->cfg.dir, port, h->type, &route) != VDP_OK) {
        vdp_error_set(&e, route.code, "%s; skipping its %u bytes", route.text, h->size);
        drop(r, p, port, &e);
        return;
    }
    size_t limit = r->cfg.max_payload ? r->cfg.max_payload(r->user, h->type)
                                      : vdp_msg_max_payload(h->type);
    if (h->size > limit) {
        vdp_error_set(&e, VDP_ERR_TOO_LARGE,
                      "%s of %u bytes on chunk port %u is above its limit of %zu bytes; "
                      "skipping it", type_name(h->type), h->size, port, limit);
        drop(r, p, port, &e);
        return;
    }

    /* Streamed: streamable types above the threshold. (A head larger than
     * HEAD_MAX, which no type of vd_agent.h has, would be buffered whole.) */
    size_t head = vdp_msg_stream_head_size(h->type, r->cfg.layout);
    if (r->streaming && vdp_msg_streamable(h->type) && h->size > r->threshold &&
        head <= HEAD_MAX) {
        if (h->size < head) {
            vdp_error_set(&e, VDP_ERR_TRUNCATED,
                          "%s of %u bytes on chunk port %u is shorter than its %zu-byte head; "
                          "skipping it", type_name(h->type), h->size, port, head);
            drop(r, p, port, &e);
            return;
        }
        p->head_len = head;
        p->got = 0;
        if (head == 0)
            begin_stream(r, p, port);
        else
            p->state = PORT_HEAD;
        return;
    }

    if (h->size == 0) {
        deliver(r, p, port);
        return;
    }
    p->buf = malloc(h->size);
    if (!p->buf) {
        vdp_error_set(&e, VDP_ERR_NOMEM,
                      "cannot allocate %u bytes for %s on chunk port %u; skipping it",
                      h->size, type_name(h->type), port);
        drop(r, p, port, &e);
        return;
    }
    p->got = 0;
    p->state = PORT_BODY;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Hand up to n bytes of the current chunk (n > 0) to the port. Returns the
 * number consumed, always at least 1. */
static size_t port_step(VdpReasm *r, Port *p, uint32_t port, const uint8_t *d, size_t n)
{
    size_t k;

    switch (p->state) {
    case PORT_HEADER:
        k = min_size(n, VDP_MSG_HEADER_SIZE - p->hdr_got);
        memcpy(p->hdr_bytes + p->hdr_got, d, k);
        p->hdr_got += k;
        if (p->hdr_got == VDP_MSG_HEADER_SIZE) {
            p->hdr_got = 0;
            vdp_msg_header_decode(p->hdr_bytes, &p->hdr);
            start_message(r, p, port);
        }
        return k;
    case PORT_BODY:
        k = min_size(n, p->hdr.size - p->got);
        memcpy(p->buf + p->got, d, k);
        p->got += k;
        if (p->got == p->hdr.size)
            deliver(r, p, port);
        return k;
    case PORT_SKIP:
        k = min_size(n, p->left);
        p->left -= k;
        if (p->left == 0)
            p->state = PORT_HEADER;
        return k;
    case PORT_HEAD:
        k = min_size(n, p->head_len - p->got);
        memcpy(p->head + p->got, d, k);
        p->got += k;
        if (p->got == p->head_len)
            begin_stream(r, p, port);
        return k;
    case PORT_STREAM: {
        unsigned gen = p->gen;
        k = min_size(n, p->left);
        p->left -= k;
        r->cb.stream_data(r->user, port, d, k);
        if (p->gen == gen && p->left == 0)
            end_stream(r, p, port);
        return k;
    }
    }
    abort();   /* not reached: every state is handled above */
}

VdpReasm *vdp_reasm_new(const VdpReasmConfig *cfg, const VdpReasmCallbacks *cb, void *user)
{
    if (!cfg || !cb || !cb->message)
        return NULL;
    VdpReasm *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->cb = *cb;
    r->user = user;
    r->streaming = cb->stream_begin && cb->stream_data && cb->stream_end;
    r->threshold = cfg->stream_threshold ? cfg->stream_threshold : VDP_STREAM_THRESHOLD_DEFAULT;
    return r;
}

void vdp_reasm_free(VdpReasm *r)
{
    if (!r)
        return;
    free(r->ports[0].buf);
    free(r->ports[1].buf);
    free(r);
}

/* The chunk header is complete: check it. Returns false if the framing is
 * broken (err set, problem() called). */
static bool start_chunk(VdpReasm *r, VdpError *err)
{
    uint32_t port = vdp_get_le32(r->chunk_hdr);
    uint32_t size = vdp_get_le32(r->chunk_hdr + 4);

    if (port != VDP_CLIENT_PORT && port != VDP_SERVER_PORT)
        vdp_error_set(&r->broken_err, VDP_ERR_FRAMING,
                      "chunk port %u out of range (expected 1 or 2): chunk framing lost", port);
    else if (r->cfg.max_chunk && size > r->cfg.max_chunk)
        vdp_error_set(&r->broken_err, VDP_ERR_FRAMING,
                      "chunk of %u bytes on port %u is above the maximum of %zu bytes: "
                      "chunk framing lost", size, port, r->cfg.max_chunk);
    else {
        r->stats.chunks++;
        r->chunk_port = port;
        r->chunk_left = size;
        return true;
    }
    r->broken = true;
    if (err)
        *err = r->broken_err;
    if (r->cb.problem) {
        VdpError e = r->broken_err;
        r->cb.problem(r->user, VDP_REASM_FATAL, port, NULL, &e);
    }
    return false;
}

VdpResult vdp_reasm_feed(VdpReasm *r, const uint8_t *data, size_t len, VdpError *err)
{
    unsigned gen = r->gen;
    size_t off = 0;

    if (r->broken)
        return vdp_error_set(err, VDP_ERR_FRAMING, "%s", r->broken_err.text);
    while (off < len) {
        size_t n;
        if (r->chunk_left == 0) {
            n = min_size(len - off, VDP_CHUNK_HEADER_SIZE - r->chunk_hdr_got);
            memcpy(r->chunk_hdr + r->chunk_hdr_got, data + off, n);
            r->chunk_hdr_got += n;
            off += n;
            r->stats.bytes += n;
            if (r->chunk_hdr_got == VDP_CHUNK_HEADER_SIZE) {
                r->chunk_hdr_got = 0;
                if (!start_chunk(r, err))
                    return VDP_ERR_FRAMING;
            }
            continue;
        }
        Port *p = &r->ports[r->chunk_port - 1];
        n = port_step(r, p, r->chunk_port, data + off, min_size(len - off, r->chunk_left));
        r->stats.bytes += n;
        if (r->gen != gen)
            return VDP_OK;    /* reset from a callback: the rest is discarded */
        r->chunk_left -= n;
        off += n;
    }
    return VDP_OK;
}

void vdp_reasm_reset_port(VdpReasm *r, uint32_t port)
{
    if (port != VDP_CLIENT_PORT && port != VDP_SERVER_PORT)
        return;
    Port *p = &r->ports[port - 1];
    bool aborted = p->state == PORT_STREAM;

    free(p->buf);
    p->buf = NULL;
    p->state = PORT_HEADER;
    p->hdr_got = 0;
    p->got = 0;
    p->left = 0;
    p->gen++;
    if (aborted && r->cb.stream_abort)
        r->cb.stream_abort(r->user, port);
}

void vdp_reasm_reset(VdpReasm *r)
{
    r->gen++;
    r->chunk_hdr_got = 0;
    r->chunk_left = 0;
    r->broken = false;
    vdp_reasm_reset_port(r, VDP_CLIENT_PORT);
    vdp_reasm_reset_port(r, VDP_SERVER_PORT);
}

size_t vdp_reasm_buffered(const VdpReasm *r)
{
    size_t n = r->chunk_hdr_got;

    for (size_t i = 0; i < 2; i++) {
        const Port *p = &r->ports[i];
        n += p->hdr_got;
        if (p->state == PORT_BODY)
            n += p->hdr.size;
        else if (p->state == PORT_HEAD)
            n += p->got;
    }
    return n;
}

void vdp_reasm_get_stats(const VdpReasm *r, VdpReasmStats *stats)
{
    *stats = r->stats;
}
