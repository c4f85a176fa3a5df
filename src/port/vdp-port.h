/* vdp-port.h - the virtio-serial agent port: framing, reassembly, bounded
 * queues and reconnects, shared by the daemon, the host endpoint and tests.
 *
 * Modes:
 *  - VDP_PORT_CONNECT: the guest side. path is a character device
 *    (/dev/virtio-ports/com.redhat.spice.0), opened O_RDWR; if path is a
 *    UNIX socket it is connected to instead (what spice-vdagentd 0.22 does,
 *    for Xspice and tests), and a host endpoint uses the same mode to reach
 *    a QEMU chardev socket (server=on).
 *  - VDP_PORT_LISTEN: the host side listening on a UNIX socket path for one
 *    guest at a time; a second connection is refused (closed at once) while
 *    one is active.
 *
 * Lifecycle: vdp_port_start() opens asynchronously. OPEN is reported when
 * a peer is there; a hang-up or EOF reports WAITING (with the reason) and
 * the port reopens after a back-off that starts at reconnect_min_ms and
 * doubles up to reconnect_max_ms, reset once traffic flows (STOPPED
 * instead with no_reconnect). The virtio open race (EOF right after open
 * while the host side is not ready) goes through the same back-off, logged
 * once, never a spin and never a sleep on the loop.
 *
 * Reading feeds a VdpReasm; its callbacks are forwarded (see vdp-chunk.h).
 * Writing: whole messages (vdp_port_send) or streamed ones
 * (vdp_port_send_begin + vdp_port_send_data) are framed into chunks of
 * chunk_size and queued under the VdpStream watermarks: write_blocked and
 * write_ready tell producers to pause and resume; above the hard limit a
 * send fails with VDP_ERR_BUSY. Messages sent on a chunk port while a
 * streamed message is in progress there wait behind it (the protocol
 * cannot interleave two messages on one chunk port).
 */
#ifndef VDP_PORT_H
#define VDP_PORT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdp-chunk.h"
#include "vdp-error.h"
#include "vdp-msg.h"
#include "vdp-stream.h"

typedef struct VdpPort VdpPort;

typedef enum VdpPortMode {
    VDP_PORT_CONNECT,
    VDP_PORT_LISTEN,
} VdpPortMode;

typedef enum VdpPortState {
    VDP_PORT_STATE_STOPPED,   /* not started, or vdp_port_stop() */
    VDP_PORT_STATE_WAITING,   /* opening/connecting/listening, or backing off */
    VDP_PORT_STATE_OPEN,      /* a peer is there */
} VdpPortState;

typedef struct VdpPortCallbacks {
    /* State changes; why is a short sentence for logs ("peer closed the
     * connection", "connect: No such file or directory"). Optional. */
    void (*state_changed)(void *user, VdpPortState state, const char *why);
    /* Reassembled input, as in VdpReasmCallbacks. message is required. */
    void (*message)(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                    const uint8_t *data, size_t len);
    void (*stream_begin)(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                         const uint8_t *head, size_t head_len);
    void (*stream_data)(void *user, uint32_t chunk_port, const uint8_t *data, size_t len);
    void (*stream_end)(void *user, uint32_t chunk_port);
    void (*stream_abort)(void *user, uint32_t chunk_port);
    void (*problem)(void *user, VdpReasmEvent ev, uint32_t chunk_port,
                    const VdpMsgHeader *hdr, const VdpError *err);
    /* Output backpressure. Optional. */
    void (*write_blocked)(void *user);
    void (*write_ready)(void *user);
} VdpPortCallbacks;

typedef struct VdpPortConfig {
    const char *path;            /* copied */
    VdpPortMode mode;
    VdpDir dir;                  /* who sends what this port receives */
    size_t chunk_size;           /* outgoing chunk payload; 0 = VDP_CHUNK_SIZE_DEFAULT */
    size_t max_chunk_in;         /* incoming chunk limit; 0 = none */
    size_t stream_threshold;     /* 0 = VDP_STREAM_THRESHOLD_DEFAULT */
    size_t (*max_payload)(void *user, uint32_t type);  /* NULL = vdp_msg_max_payload */
    const VdpLayout *layout;     /* for stream heads; may change while running */
    size_t high_watermark, low_watermark, queue_limit;  /* 0 = VdpStream defaults */
    bool no_reconnect;           /* report STOPPED and stay stopped */
    unsigned reconnect_min_ms;   /* 0 = 10 */
    unsigned reconnect_max_ms;   /* 0 = 2000 */
} VdpPortConfig;

/* NULL on an invalid configuration (no message callback, only some of the
 * three stream callbacks, chunk_size below the 20-byte message header,
 * low > high watermark, queue_limit < high, min back-off > max). */
VdpPort *vdp_port_new(GMainContext *ctx, const VdpPortConfig *cfg,
                      const VdpPortCallbacks *cb, void *user);
/* Safe inside the port's own callbacks (memory released on return). */
void vdp_port_free(VdpPort *p);

/* Begin opening/listening (asynchronous; errors go to the back-off).
 * CONNECT reports OPEN once the first byte arrives or the connection
 * survived a short settle time (50 ms) without end of file. */
void vdp_port_start(VdpPort *p);
/* Close the connection (and listener) and stay stopped. No callbacks.
 * Safe inside the port's own callbacks. */
void vdp_port_stop(VdpPort *p);

VdpPortState vdp_port_get_state(const VdpPort *p);
const char *vdp_port_state_name(VdpPortState s);

/* Send one whole message (header is built here; opaque = 0).
 * VDP_ERR_TOO_LARGE: framed, it exceeds queue_limit (stream it instead). */
VdpResult vdp_port_send(VdpPort *p, uint32_t chunk_port, uint32_t type,
                        const uint8_t *payload, size_t len);
/* Encode and send a VdpMsg on its natural chunk port. */
VdpResult vdp_port_send_msg(VdpPort *p, const VdpMsg *msg, const VdpLayout *layout, VdpError *err);

/* Streamed send: announce total payload size, then exactly that many bytes
 * in any number of send_data calls. send_data accepts less than offered
 * when the queue is near its limit: *accepted tells how much was taken;
 * resume after write_ready. send_begin: VDP_ERR_BUSY while a stream or
 * messages waiting behind one are still on that chunk port. Messages
 * waiting behind a stream take at most half of queue_limit. */
VdpResult vdp_port_send_begin(VdpPort *p, uint32_t chunk_port, uint32_t type, size_t total);
VdpResult vdp_port_send_data(VdpPort *p, uint32_t chunk_port, const uint8_t *data,
                             size_t len, size_t *accepted);
/* Bytes of the current stream on a chunk port still to be sent (0 = none). */
size_t vdp_port_send_remaining(const VdpPort *p, uint32_t chunk_port);

/* Stop/resume reading (the daemon pauses while a session agent is behind). */
void vdp_port_pause_read(VdpPort *p, bool pause);

/* Drop the partial incoming message of one chunk port. */
void vdp_port_reset_reassembly(VdpPort *p, uint32_t chunk_port);

size_t vdp_port_queued(const VdpPort *p);
bool vdp_port_write_blocked(const VdpPort *p);

/* Teardown helper: write out what is queued within timeout_ms (poll). */
VdpResult vdp_port_flush_sync(VdpPort *p, int timeout_ms);

/* stream: summed over all connections; opens: connections reported OPEN;
 * reconnects: open/connect/listen attempts after the first one;
 * refused_peers: LISTEN connections closed because one was active. */
typedef struct VdpPortStats {
    VdpStreamStats stream;
    VdpReasmStats reasm;
    uint64_t opens, reconnects, refused_peers;
} VdpPortStats;
void vdp_port_get_stats(const VdpPort *p, VdpPortStats *st);

#endif /* VDP_PORT_H */
