/* vdp-ipc-msg.h - payloads of the daemon <-> agent IPC frames beyond the
 * handshake (vdp-ipc.h has the frame header, HELLO/WELCOME/REJECT and the
 * VDAGENT envelope).
 *
 * All fields little-endian. Every decoder checks the exact length (a
 * shorter payload is VDP_ERR_TRUNCATED, a longer one VDP_ERR_TRAILING),
 * counts against their limits before any size arithmetic, and value
 * ranges, and fills a VdpError with a sentence for the log.
 *
 *   GUEST_LAYOUT   agent -> daemon
 *       u32 desktop_width, u32 desktop_height, u32 count (<= VDP_MAX_MONITORS),
 *       count x { u32 display_id, i32 x, i32 y, u32 width, u32 height }
 *   MOUSE          daemon -> agent (XTest, when the daemon has no uinput)
 *       i32 x, i32 y (desktop coordinates), u32 buttons (VD_AGENT_*BUTTON_MASK)
 *   SESSION_STATE  daemon -> agent
 *       u32 flags (VDP_IPC_SESSION_*)
 *   STATUS_REQUEST control -> daemon, empty
 *   STATUS_REPLY   daemon -> control: JSON text with its NUL, nothing after it
 *   CLIP_BEGIN     daemon -> agent: u32 selection, u32 type, u64 size
 *   CLIP_CHUNK     daemon -> agent: 1..VDP_IPC_MAX_FRAME raw bytes
 *   CLIP_ABORT     daemon -> agent: u32 selection
 *   CLIP_DATA_FD   agent -> daemon: u32 selection, u32 type, u64 size; one fd
 *                  (a sealed memfd) when size > 0, none when size == 0
 *
 * Clipboard data, the rules both sides follow:
 *
 * Client -> guest. GRAB, REQUEST and RELEASE travel in VDAGENT envelopes.
 * The data that answers an agent's REQUEST travels as a stream: CLIP_BEGIN
 * {selection, type, size}, then CLIP_CHUNK frames whose sizes add up to
 * exactly `size` (none when size is 0), so the daemon forwards a 100 MiB
 * clipboard as it arrives from the port and the agent can hand it to an X
 * requestor incrementally. At most one stream is open per connection; other
 * frames may come between its chunks. CLIP_ABORT {selection} ends the open
 * stream early (the client went away in the middle): the agent drops what it
 * got and refuses its requestor. type VD_AGENT_CLIPBOARD_NONE with size 0
 * means "no data" (the request was refused, by the client or by the
 * daemon's policy). A CLIP_CHUNK without an open stream, a chunk past the
 * announced size or a BEGIN while one is open is a protocol error.
 *
 * Guest -> client. GRAB, REQUEST and RELEASE travel in VDAGENT envelopes
 * (the daemon assigns the grab serial: the one in the envelope is ignored).
 * The data that answers a client's REQUEST is either a VDAGENT envelope
 * CLIPBOARD (small data, whole in one frame) or CLIP_DATA_FD: the agent
 * writes the data into a memfd created with MFD_ALLOW_SEALING, seals it
 * with F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, and passes
 * it with the size. The daemon refuses a descriptor that is not such a
 * sealed regular file of at least `size` bytes, then streams it to the port
 * with pread as the port drains. size 0 (type NONE) means "no data". The
 * agent never needs to know the size before it has all the data (X INCR
 * transfers do not say it), and the daemon never holds the data in memory.
 *
 * Matching: nothing in a data frame names the request it answers. Answers
 * come in the order of the requests, per selection, in both directions;
 * each side keeps its pending requests per selection in a FIFO. The
 * daemon's own "no data" answer is a CLIP_BEGIN too, so while a stream to
 * that agent is open it waits until the stream ends. Seals the daemon
 * requires: F_SEAL_SHRINK and F_SEAL_WRITE (the agent also adds GROW and
 * SEAL, which the daemon does not need).
 *
 * Size limits: the daemon checks guest data against the client's
 * MAX_CLIPBOARD (forwarded to the agent in a VDAGENT envelope so it can stop
 * an INCR receive early) and answers the client with empty data of the same
 * type when it is larger; client data is bounded by VDP_MAX_CLIPBOARD_LIMIT.
 *
 * Plain C, no I/O, no GLib.
 */
#ifndef VDP_IPC_MSG_H
#define VDP_IPC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdp-error.h"
#include "vdp-limits.h"

/* ---- GUEST_LAYOUT ---- */

#define VDP_IPC_LAYOUT_HEAD_SIZE 12u
#define VDP_IPC_LAYOUT_DISPLAY_SIZE 20u

/* Largest desktop or display side we accept, in pixels. X11 and the RandR
 * protocol use 16-bit sizes (32767 is the largest screen X accepts); a
 * margin costs nothing, and a bound keeps x + width far from overflowing. */
#define VDP_IPC_LAYOUT_MAX_SIDE 65535u
/* Largest |x| or |y| of a display, for the same reason. */
#define VDP_IPC_LAYOUT_MAX_POS 1048576

typedef struct VdpIpcDisplay {
    uint32_t display_id;
    int32_t x, y;
    uint32_t width, height;     /* 0x0: known but disabled */
} VdpIpcDisplay;

typedef struct VdpIpcGuestLayout {
    uint32_t desktop_width, desktop_height;
    uint32_t count;             /* <= VDP_MAX_MONITORS */
    VdpIpcDisplay displays[VDP_MAX_MONITORS];
} VdpIpcGuestLayout;

/* Encoders return the payload size, or 0 if the message is invalid (a count
 * over its limit) or cap is too small. With out == NULL they return the
 * size needed. */
size_t vdp_ipc_guest_layout_encode(const VdpIpcGuestLayout *l, uint8_t *out, size_t cap);
/* Checks: count <= VDP_MAX_MONITORS (TOO_LARGE), length == 12 + 20 * count
 * (TRUNCATED/TRAILING), sides <= VDP_IPC_LAYOUT_MAX_SIDE and positions
 * within +-VDP_IPC_LAYOUT_MAX_POS (RANGE), display ids unique (RANGE). */
VdpResult vdp_ipc_guest_layout_decode(const uint8_t *in, size_t len, VdpIpcGuestLayout *l,
                                      VdpError *err);

/* ---- MOUSE ---- */

#define VDP_IPC_MOUSE_SIZE 12u
/* The VD_AGENT_*BUTTON_MASK bits (1 << 1 .. 1 << 7). */
#define VDP_IPC_MOUSE_BUTTONS_ALL 0xFEu

typedef struct VdpIpcMouse {
    int32_t x, y;
    uint32_t buttons;
} VdpIpcMouse;

size_t vdp_ipc_mouse_encode(const VdpIpcMouse *m, uint8_t *out, size_t cap);
/* Checks the length and that buttons has only VDP_IPC_MOUSE_BUTTONS_ALL bits. */
VdpResult vdp_ipc_mouse_decode(const uint8_t *in, size_t len, VdpIpcMouse *m, VdpError *err);

/* ---- SESSION_STATE ---- */

#define VDP_IPC_SESSION_STATE_SIZE 4u

enum {
    VDP_IPC_SESSION_ACTIVE = 1u,            /* this agent's session is the active one */
    VDP_IPC_SESSION_LOCKED = 2u,            /* that session is locked */
    VDP_IPC_SESSION_CLIENT_CONNECTED = 4u,  /* a SPICE client is connected */
    VDP_IPC_SESSION_FILE_XFER_ENABLED = 8u, /* files may be sent to this agent */
};
#define VDP_IPC_SESSION_ALL 0xFu

size_t vdp_ipc_session_state_encode(uint32_t flags, uint8_t *out, size_t cap);
/* Unknown flag bits are VDP_ERR_RANGE. */
VdpResult vdp_ipc_session_state_decode(const uint8_t *in, size_t len, uint32_t *flags, VdpError *err);

/* ---- STATUS_REQUEST / STATUS_REPLY ---- */

/* The request is empty: anything in it is VDP_ERR_TRAILING. */
VdpResult vdp_ipc_status_request_decode(const uint8_t *in, size_t len, VdpError *err);

/* The reply: text, its NUL as the last byte and nowhere else, at most
 * VDP_IPC_MAX_FRAME bytes in all. Encoding copies strlen(json) + 1 bytes. */
size_t vdp_ipc_status_reply_encode(const char *json, uint8_t *out, size_t cap);
/* *json points into in (NUL-terminated), *json_len = strlen. Checks:
 * empty (TRUNCATED), over the limit (TOO_LARGE), no NUL at the end
 * (UNTERMINATED), a NUL before the end (TRAILING). */
VdpResult vdp_ipc_status_reply_decode(const uint8_t *in, size_t len, const char **json,
                                      size_t *json_len, VdpError *err);

/* ---- CLIP_BEGIN / CLIP_DATA_FD (same head) and CLIP_ABORT ---- */

#define VDP_IPC_CLIP_HEAD_SIZE 16u
#define VDP_IPC_CLIP_ABORT_SIZE 4u
/* Selections the IPC carries: VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD,
 * _PRIMARY and _SECONDARY (0..2). */
#define VDP_IPC_CLIP_SELECTION_MAX 2u

typedef struct VdpIpcClipHead {
    uint32_t selection;         /* 0..VDP_IPC_CLIP_SELECTION_MAX */
    uint32_t type;              /* a VD_AGENT_CLIPBOARD_* type (NONE..FILE_LIST) */
    uint64_t size;              /* <= VDP_MAX_CLIPBOARD_LIMIT; 0 for type NONE */
} VdpIpcClipHead;

size_t vdp_ipc_clip_head_encode(const VdpIpcClipHead *h, uint8_t *out, size_t cap);
/* Checks the exact length, selection <= VDP_IPC_CLIP_SELECTION_MAX, a known
 * type, size <= VDP_MAX_CLIPBOARD_LIMIT, and that type NONE has size 0
 * (all RANGE). */
VdpResult vdp_ipc_clip_head_decode(const uint8_t *in, size_t len, VdpIpcClipHead *h,
                                   VdpError *err);

size_t vdp_ipc_clip_abort_encode(uint32_t selection, uint8_t *out, size_t cap);
VdpResult vdp_ipc_clip_abort_decode(const uint8_t *in, size_t len, uint32_t *selection,
                                    VdpError *err);

#endif /* VDP_IPC_MSG_H */
