/* vdp-ipc.h - the daemon <-> session agent IPC protocol (our own design).
 *
 * A stream of frames on an AF_UNIX SOCK_STREAM socket:
 *
 *   frame header, 12 bytes, little-endian:
 *     u16 type      VDP_IPC_* below
 *     u8  nfds      file descriptors sent with this frame (<= VDP_IPC_MAX_FDS)
 *     u8  flags     must be 0 in version 1
 *     u32 id        request/transfer id chosen by the sender, echoed in answers
 *     u32 size      payload bytes (<= VDP_IPC_MAX_FRAME)
 *   payload, `size` bytes, fields little-endian, strings NUL-terminated
 *
 * File descriptors travel as SCM_RIGHTS ancillary data sent together with
 * the frame's first byte; the receiver queues what arrives and each frame
 * takes its nfds from the front of the queue. Bulk data (a clipboard, a
 * file) can therefore be handed over as a pipe or memfd instead of being
 * copied through frames.
 *
 * Handshake: the connecting side sends HELLO first; the daemon answers
 * WELCOME (then anything may flow) or REJECT (then closes). Versions: the
 * major must match; each side uses min(minor) features. Any malformed frame
 * closes the connection: the IPC has no resync point by design.
 *
 * No I/O here: the codec works on buffers; src/port does recvmsg/sendmsg.
 */
#ifndef VDP_IPC_H
#define VDP_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdp-error.h"
#include "vdp-limits.h"

#define VDP_IPC_HEADER_SIZE 12u
#define VDP_IPC_MAGIC 0x47414456u      /* "VDAG" in little-endian byte order */
#define VDP_IPC_VERSION_MAJOR 1u
#define VDP_IPC_VERSION_MINOR 0u
#define VDP_IPC_NAME_MAX 64u           /* program/version strings in the handshake, incl. NUL */
#define VDP_IPC_REASON_MAX 256u        /* REJECT text, incl. NUL */

typedef enum VdpIpcType {
    VDP_IPC_HELLO = 1,         /* client -> daemon, first frame */
    VDP_IPC_WELCOME = 2,       /* daemon -> client */
    VDP_IPC_REJECT = 3,        /* daemon -> client, then close */
    VDP_IPC_VDAGENT = 4,       /* either way: {u32 vdagent type} + canonical VDAgent payload */
    VDP_IPC_PING = 5,          /* either way: liveness; answered with PONG, same id */
    VDP_IPC_PONG = 6,
    VDP_IPC_GUEST_LAYOUT = 7,  /* agent -> daemon: desktop and displays (vdp-ipc-msg.h) */
    VDP_IPC_MOUSE = 8,         /* daemon -> agent: XTest fallback when there is no uinput */
    VDP_IPC_SESSION_STATE = 9, /* daemon -> agent: active/locked/client/file-xfer flags */
    VDP_IPC_STATUS_REQUEST = 10, /* control -> daemon, empty */
    VDP_IPC_STATUS_REPLY = 11, /* daemon -> control: JSON text */
    VDP_IPC_CLIP_BEGIN = 12,   /* daemon -> agent: client clipboard data follows (vdp-ipc-msg.h) */
    VDP_IPC_CLIP_CHUNK = 13,   /* daemon -> agent: raw bytes of the open clipboard stream */
    VDP_IPC_CLIP_ABORT = 14,   /* daemon -> agent: the open clipboard stream ends early */
    VDP_IPC_CLIP_DATA_FD = 15, /* agent -> daemon: guest clipboard data in a sealed memfd */
    VDP_IPC_TYPE_END           /* first unused value; later issues append before it */
} VdpIpcType;

/* Who connects (HELLO.role). */
typedef enum VdpIpcRole {
    VDP_IPC_ROLE_AGENT = 1,    /* a session agent */
    VDP_IPC_ROLE_CONTROL = 2,  /* a status/control client (spice-vdagentd --status) */
} VdpIpcRole;

/* REJECT reasons. */
typedef enum VdpIpcRejectReason {
    VDP_IPC_REJECT_VERSION = 1,      /* major version mismatch */
    VDP_IPC_REJECT_NOT_AUTHORIZED,   /* credentials do not match a session */
    VDP_IPC_REJECT_DUPLICATE,        /* the session already has an agent */
    VDP_IPC_REJECT_TOO_MANY,         /* connection limits reached */
    VDP_IPC_REJECT_PROTOCOL,         /* malformed handshake */
} VdpIpcRejectReason;

typedef struct VdpIpcHeader {
    uint16_t type;
    uint8_t nfds;
    uint8_t flags;
    uint32_t id;
    uint32_t size;
} VdpIpcHeader;

void vdp_ipc_header_encode(const VdpIpcHeader *hdr, uint8_t out[VDP_IPC_HEADER_SIZE]);

/* Decode and validate a header: flags 0, size <= VDP_IPC_MAX_FRAME,
 * nfds <= VDP_IPC_MAX_FDS, type in 1..VDP_IPC_TYPE_END-1. */
VdpResult vdp_ipc_header_decode(const uint8_t in[VDP_IPC_HEADER_SIZE],
                                VdpIpcHeader *hdr, VdpError *err);

/* Name of a frame type for logs ("HELLO"), or NULL. */
const char *vdp_ipc_type_name(uint16_t type);
const char *vdp_ipc_reject_reason_name(uint32_t reason);

/* ---- handshake payloads ---- */

typedef struct VdpIpcHello {      /* HELLO and WELCOME share the layout */
    uint32_t magic;               /* VDP_IPC_MAGIC */
    uint16_t major, minor;
    uint32_t role;                /* HELLO: VdpIpcRole; WELCOME: 0 */
    uint32_t features;            /* reserved feature bits, 0 in 1.0 */
    char name[VDP_IPC_NAME_MAX];  /* "spice-vdagent 0.1.0" */
} VdpIpcHello;

typedef struct VdpIpcReject {
    uint32_t reason;              /* VdpIpcRejectReason */
    char text[VDP_IPC_REASON_MAX];
} VdpIpcReject;

/* Encoders return the payload size, or 0 if cap is too small. With out ==
 * NULL they return the size needed. */
size_t vdp_ipc_hello_encode(const VdpIpcHello *h, uint8_t *out, size_t cap);
VdpResult vdp_ipc_hello_decode(const uint8_t *in, size_t len, VdpIpcHello *h, VdpError *err);
size_t vdp_ipc_reject_encode(const VdpIpcReject *r, uint8_t *out, size_t cap);
VdpResult vdp_ipc_reject_decode(const uint8_t *in, size_t len, VdpIpcReject *r, VdpError *err);

/* Fill a HELLO for this build (magic, version, role, name). */
void vdp_ipc_hello_init(VdpIpcHello *h, uint32_t role, const char *name);

/* Check a peer's HELLO/WELCOME: magic and major version. */
VdpResult vdp_ipc_hello_check(const VdpIpcHello *h, VdpError *err);

/* VDAGENT envelope: u32 vdagent_type, then the payload in its canonical
 * encoding (selection prefix and grab serial always present). */
#define VDP_IPC_VDAGENT_HEAD 4u

/* The canonical VdpLayout inside the IPC: selection prefix and serial on. */
extern const struct VdpLayout vdp_ipc_layout;

/* ---- frame decoder (stream -> frames) ---- */

typedef struct VdpIpcDecoder VdpIpcDecoder;

/* A complete frame. payload is valid during the call only. The callee owns
 * fds (nfds of them) and must close or keep them. Return false to stop
 * decoding (e.g. the connection is being closed); the remaining input stays
 * unconsumed. A callback returning false may free the decoder. */
typedef bool (*VdpIpcFrameFunc)(void *user, const VdpIpcHeader *hdr,
                                const uint8_t *payload, int *fds, unsigned nfds);

VdpIpcDecoder *vdp_ipc_decoder_new(VdpIpcFrameFunc fn, void *user);
void vdp_ipc_decoder_free(VdpIpcDecoder *d);   /* closes queued fds */

/* Queue descriptors received with the next bytes (from SCM_RIGHTS). Fails
 * with VDP_ERR_TOO_LARGE if more than 2*VDP_IPC_MAX_FDS would be pending;
 * the caller must then close them and the connection. */
VdpResult vdp_ipc_decoder_push_fds(VdpIpcDecoder *d, const int *fds, unsigned n, VdpError *err);

/* Feed received bytes; complete frames are delivered in order. Returns
 * VDP_OK, or an error (invalid header, frame wanting more fds than were
 * received with it): the connection must be closed. *consumed tells how
 * much input was used (all of it unless the callback returned false).
 *
 * The fd rule: push the fds of a read before feeding its bytes. A frame
 * claims its nfds from the front of the queue when its 12-byte header is
 * complete; fewer queued then is VDP_ERR_FRAMING. (The kernel hands fds
 * out with the read holding the first byte of the sendmsg they rode on,
 * never later, so an honest peer's fds are always queued by then.) */
VdpResult vdp_ipc_decoder_feed(VdpIpcDecoder *d, const uint8_t *data, size_t len,
                               size_t *consumed, VdpError *err);

/* Bytes buffered (partial frame), for bounds checks in tests. */
size_t vdp_ipc_decoder_buffered(const VdpIpcDecoder *d);

/* ---- frame encoder ---- */

/* Build header + payload into out (cap >= VDP_IPC_HEADER_SIZE + len).
 * Returns total size or 0 (payload above VDP_IPC_MAX_FRAME, nfds above
 * VDP_IPC_MAX_FDS, cap too small). */
size_t vdp_ipc_frame_encode(uint16_t type, uint32_t id, uint8_t nfds,
                            const uint8_t *payload, size_t len,
                            uint8_t *out, size_t cap);

#endif /* VDP_IPC_H */
