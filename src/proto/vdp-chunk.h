/* vdp-chunk.h - VDIChunkHeader framing and per-port message reassembly.
 *
 * The virtio port carries chunks: {u32 port, u32 size} + size bytes. Each
 * chunk port (VDP_CLIENT_PORT = 1, VDP_SERVER_PORT = 2) carries its own
 * stream of VDAgentMessages (20-byte header + payload). A message may span
 * many chunks, its header may be split across chunks, chunks of the two
 * ports may interleave mid-message, and one chunk may end one message and
 * start the next. The reassembler handles all of that with state per port.
 *
 * Memory is bounded by construction:
 *  - a message whose header announces more than its type's limit (or any
 *    message of an unknown type or protocol) is reported and its body is
 *    skipped as it arrives, with no allocation, so the stream stays in sync;
 *  - messages up to the stream threshold are buffered (exactly their size,
 *    allocated once the header is complete) and delivered whole;
 *  - larger messages of streamable types (CLIPBOARD, FILE_XFER_DATA) are
 *    delivered in pieces as chunks arrive: a "begin" with the decoded head,
 *    "data" pieces pointing into the input, and an "end".
 *
 * No I/O: the caller feeds bytes read from wherever.
 */
#ifndef VDP_CHUNK_H
#define VDP_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdp-error.h"
#include "vdp-limits.h"
#include "vdp-msg.h"

/* ---- encoder ---- */

/* Bytes needed to frame len message bytes into chunks of at most
 * max_chunk payload bytes (0 = VDP_CHUNK_SIZE_DEFAULT). 0 on overflow. */
size_t vdp_chunk_framed_size(size_t len, size_t max_chunk);

/* Frame len bytes of one port's message stream into chunks of at most
 * max_chunk bytes each, written to out (cap bytes). Chunk boundaries need
 * not match message boundaries, so a message may be framed piece by piece.
 * Returns bytes written, 0 if cap is too small (or len == 0). */
size_t vdp_chunk_frame(uint32_t port, const uint8_t *data, size_t len,
                       size_t max_chunk, uint8_t *out, size_t cap);

/* Write one chunk header. */
void vdp_chunk_header_encode(uint32_t port, uint32_t size,
                             uint8_t out[VDP_CHUNK_HEADER_SIZE]);

/* ---- reassembler ---- */

typedef struct VdpReasm VdpReasm;

typedef enum VdpReasmEvent {
    VDP_REASM_DROPPED,        /* a message was dropped (reason in err); stream continues */
    VDP_REASM_FATAL,          /* chunk framing is broken; feed() returns an error until reset */
} VdpReasmEvent;

/* Callbacks run from inside vdp_reasm_feed(). They may call
 * vdp_reasm_reset_port() (any port) and vdp_reasm_reset(); after a
 * vdp_reasm_reset() from a callback, feed() returns at once and the rest of
 * its input is discarded. They must not call vdp_reasm_feed() or
 * vdp_reasm_free(). Messages failing vdp_msg_check_route(cfg->dir, ...)
 * are dropped like unknown types. */
typedef struct VdpReasmCallbacks {
    /* A complete message (payload len == hdr->size). data is valid only
     * during the call and never NULL, also when len is 0. Required. */
    void (*message)(void *user, uint32_t port, const VdpMsgHeader *hdr,
                    const uint8_t *data, size_t len);
    /* A streamed message begins: head holds its first head_len bytes
     * (vdp_msg_stream_head_size), hdr->size is the total payload size.
     * Optional: without stream callbacks every message up to its limit is
     * buffered whole. */
    void (*stream_begin)(void *user, uint32_t port, const VdpMsgHeader *hdr,
                         const uint8_t *head, size_t head_len);
    /* The next piece of the streamed payload after the head. */
    void (*stream_data)(void *user, uint32_t port, const uint8_t *data, size_t len);
    /* All hdr->size bytes have been delivered. */
    void (*stream_end)(void *user, uint32_t port);
    /* A streamed message was cut short by vdp_reasm_reset_port() or
     * vdp_reasm_reset() (e.g. CLIENT_DISCONNECTED). Optional. */
    void (*stream_abort)(void *user, uint32_t port);
    /* A message dropped or the framing broken; err says why. hdr is NULL
     * for framing errors. Optional (then drops are silent). */
    void (*problem)(void *user, VdpReasmEvent ev, uint32_t port,
                    const VdpMsgHeader *hdr, const VdpError *err);
} VdpReasmCallbacks;

typedef struct VdpReasmConfig {
    VdpDir dir;                 /* who sends what we reassemble (decides ports allowed per type) */
    size_t max_chunk;           /* largest chunk payload accepted; 0 = no limit */
    size_t stream_threshold;    /* 0 = VDP_STREAM_THRESHOLD_DEFAULT */
    /* Per-type payload limit; NULL = vdp_msg_max_payload. May return a
     * lower limit (e.g. the current MAX_CLIPBOARD) than the protocol's. */
    size_t (*max_payload)(void *user, uint32_t type);
    /* Layout for stream heads (selection prefix); NULL = no prefix/serial.
     * Read when a stream begins, so it may change between messages. */
    const VdpLayout *layout;
} VdpReasmConfig;

VdpReasm *vdp_reasm_new(const VdpReasmConfig *cfg, const VdpReasmCallbacks *cb, void *user);
void vdp_reasm_free(VdpReasm *r);

/* Feed bytes of the chunk stream. Callbacks run from inside this call.
 * Returns VDP_OK, or VDP_ERR_FRAMING once the chunk framing is broken (a
 * chunk port other than 1 or 2, a chunk above max_chunk): the stream
 * cannot be resynchronised, the caller should reset the connection. */
VdpResult vdp_reasm_feed(VdpReasm *r, const uint8_t *data, size_t len, VdpError *err);

/* Drop the partial message of one port (CLIENT_DISCONNECTED resets port 1),
 * aborting a stream in progress. Chunk framing state is kept: the port's
 * next byte, even within the current chunk, starts a message header. */
void vdp_reasm_reset_port(VdpReasm *r, uint32_t port);

/* Forget everything (new connection), aborting streams; stats are kept.
 * vdp_reasm_free() calls no callbacks. */
void vdp_reasm_reset(VdpReasm *r);

/* Bytes currently held by the reassembler: partial chunk and message
 * headers, stream heads, and the whole allocation of a message being
 * buffered. */
size_t vdp_reasm_buffered(const VdpReasm *r);

/* Statistics for status output and tests: valid chunks read, messages
 * delivered through message(), streams completed, messages dropped, and
 * chunk-stream bytes consumed (headers included). */
typedef struct VdpReasmStats {
    uint64_t chunks, messages, streamed, dropped, bytes;
} VdpReasmStats;
void vdp_reasm_get_stats(const VdpReasm *r, VdpReasmStats *stats);

#endif /* VDP_CHUNK_H */
