/* vdp-msg.h - VDAgent messages (spice/vd_agent.h types 1..16) as native
 * structs, with a validating decoder and an encoder.
 *
 * Decoding never casts packed structs onto the buffer: every field is read
 * little-endian through a bounds-checked cursor, every count is checked
 * against the bytes present with overflow-safe arithmetic, and the result is
 * either VDP_OK with a filled VdpMsg or an error code with a sentence saying
 * what was wrong. Variable-size byte payloads (clipboard data, key file,
 * file data, status detail) are returned as views into the input buffer:
 * they live as long as that buffer.
 *
 * Layouts depend on capabilities that both peers announced (the 4-byte
 * selection prefix, the grab serial); VdpLayout carries those decisions.
 */
#ifndef VDP_MSG_H
#define VDP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spice/vd_agent.h>

#include "vdp-caps.h"
#include "vdp-error.h"
#include "vdp-limits.h"

/* Who produced the bytes being decoded. Decides which types are allowed
 * and on which chunk port. */
typedef enum VdpDir {
    VDP_FROM_HOST,   /* client or spice-server -> guest agent */
    VDP_FROM_GUEST,  /* guest agent -> client/server */
} VdpDir;

/* Capability-dependent layout decisions (both peers have the cap). */
typedef struct VdpLayout {
    bool clipboard_selection;  /* VD_AGENT_CAP_CLIPBOARD_SELECTION: 4-byte {sel, 0,0,0} prefix */
    bool grab_serial;          /* VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL: u32 serial in GRAB */
} VdpLayout;

void vdp_layout_from_caps(VdpLayout *layout, const VdpCaps *own, const VdpCaps *peer);

/* The 20-byte VDAgentMessage header. */
typedef struct VdpMsgHeader {
    uint32_t protocol;
    uint32_t type;
    uint64_t opaque;
    uint32_t size;
} VdpMsgHeader;

void vdp_msg_header_decode(const uint8_t in[VDP_MSG_HEADER_SIZE], VdpMsgHeader *hdr);
void vdp_msg_header_encode(const VdpMsgHeader *hdr, uint8_t out[VDP_MSG_HEADER_SIZE]);

typedef struct VdpMouseState {
    uint32_t x, y, buttons;   /* VD_AGENT_*BUTTON_MASK bits */
    uint8_t display_id;
} VdpMouseState;

typedef struct VdpMonConfig {
    uint32_t width, height, depth;   /* note: height comes first on the wire */
    int32_t x, y;
    uint16_t mm_width, mm_height;    /* 0 unless the config has PHYSICAL_SIZE */
} VdpMonConfig;

typedef struct VdpMonitorsConfig {
    uint32_t flags;                  /* VD_AGENT_CONFIG_MONITORS_FLAG_* */
    uint32_t count;                  /* <= VDP_MAX_MONITORS */
    VdpMonConfig monitors[VDP_MAX_MONITORS];
} VdpMonitorsConfig;

typedef struct VdpReply {
    uint32_t type;                   /* message type being answered */
    uint32_t error;                  /* VD_AGENT_SUCCESS or VD_AGENT_ERROR */
} VdpReply;

typedef struct VdpClipboard {        /* VD_AGENT_CLIPBOARD */
    uint8_t selection;               /* 0 when the layout has no selection prefix */
    uint32_t type;                   /* VD_AGENT_CLIPBOARD_* */
    const uint8_t *data;             /* view into the input */
    size_t size;
} VdpClipboard;

typedef struct VdpDisplayConfig {
    uint32_t flags, depth;
} VdpDisplayConfig;

typedef struct VdpAnnounce {
    uint32_t request;
    VdpCaps caps;
} VdpAnnounce;

typedef struct VdpClipboardGrab {
    uint8_t selection;
    uint32_t serial;                 /* 0 when the layout has no serial */
    uint32_t ntypes;                 /* <= VDP_MAX_GRAB_TYPES */
    uint32_t types[VDP_MAX_GRAB_TYPES];
} VdpClipboardGrab;

typedef struct VdpClipboardRequest {
    uint8_t selection;
    uint32_t type;
} VdpClipboardRequest;

typedef struct VdpClipboardRelease {
    uint8_t selection;
} VdpClipboardRelease;

typedef struct VdpFileXferStart {
    uint32_t id;
    const char *keyfile;             /* view; NUL-terminated within the message */
    size_t keyfile_len;              /* strlen(keyfile) */
} VdpFileXferStart;

typedef struct VdpFileXferStatus {
    uint32_t id;
    uint32_t result;                 /* VD_AGENT_FILE_XFER_STATUS_* */
    /* Decoded detail, when present (has_detail): */
    bool has_detail;
    uint64_t disk_free_space;        /* NOT_ENOUGH_SPACE */
    uint8_t error_type;              /* ERROR: VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO */
    uint32_t error_code;             /* ERROR: a GIOErrorEnum value */
} VdpFileXferStatus;

typedef struct VdpFileXferData {
    uint32_t id;
    uint64_t size;                   /* == bytes actually present */
    const uint8_t *data;             /* view */
} VdpFileXferData;

typedef struct VdpMaxClipboard {
    int32_t max;                     /* bytes; negative = no limit */
} VdpMaxClipboard;

typedef struct VdpAudioVolumeSync {
    uint8_t is_playback, mute, nchannels;
    uint16_t volume[VDP_MAX_AUDIO_CHANNELS];
} VdpAudioVolumeSync;

typedef struct VdpDeviceDisplayInfo {
    uint32_t channel_id, monitor_id, device_display_id;
    const char *device_address;      /* view; NUL-terminated within the entry */
    uint32_t device_address_len;     /* including the NUL, as on the wire */
} VdpDeviceDisplayInfo;

typedef struct VdpGraphicsDeviceInfo {
    uint32_t count;                  /* <= VDP_MAX_DEVICE_DISPLAYS */
    VdpDeviceDisplayInfo info[VDP_MAX_DEVICE_DISPLAYS];
} VdpGraphicsDeviceInfo;

typedef struct VdpMsg {
    uint32_t type;                   /* VD_AGENT_* */
    union {
        VdpMouseState mouse;
        VdpMonitorsConfig monitors;
        VdpReply reply;
        VdpClipboard clipboard;
        VdpDisplayConfig display_config;
        VdpAnnounce announce;
        VdpClipboardGrab grab;
        VdpClipboardRequest request;
        VdpClipboardRelease release;
        VdpFileXferStart xfer_start;
        VdpFileXferStatus xfer_status;
        VdpFileXferData xfer_data;
        VdpMaxClipboard max_clipboard;
        VdpAudioVolumeSync volume;
        VdpGraphicsDeviceInfo device_info;
        /* CLIENT_DISCONNECTED has no payload */
    } u;
} VdpMsg;

/* Name of a message type ("CLIPBOARD_GRAB"), or NULL if unknown. */
const char *vdp_msg_type_name(uint32_t type);

/* Is this type one spice/vd_agent.h defines (1..16)? */
bool vdp_msg_type_known(uint32_t type);

/* Server-generated types (MOUSE_STATE, CLIENT_DISCONNECTED,
 * GRAPHICS_DEVICE_INFO) travel on chunk port VDP_SERVER_PORT; everything
 * else on VDP_CLIENT_PORT. */
uint32_t vdp_msg_port_for_type(uint32_t type);

/* May a message of this type come from this peer on this chunk port?
 * Returns VDP_OK, VDP_ERR_UNKNOWN_TYPE, VDP_ERR_WRONG_DIRECTION or
 * VDP_ERR_WRONG_PORT (with a sentence in err). */
VdpResult vdp_msg_check_route(VdpDir dir, uint32_t port, uint32_t type, VdpError *err);

/* Largest payload we accept for a type from a peer (the reassembler's
 * limit), and whether the type may be delivered incrementally. */
size_t vdp_msg_max_payload(uint32_t type);
bool vdp_msg_streamable(uint32_t type);

/* Number of leading payload bytes a streamed message of this type must have
 * before its head can be decoded (CLIPBOARD: 4 or 8; FILE_XFER_DATA: 12). */
size_t vdp_msg_stream_head_size(uint32_t type, const VdpLayout *layout);

/* Decode and validate a complete payload of the given type. The route
 * (direction and port) is checked first. Views in *msg point into data. */
VdpResult vdp_msg_decode(VdpDir dir, uint32_t port, uint32_t type,
                         const uint8_t *data, size_t len,
                         const VdpLayout *layout, VdpMsg *msg, VdpError *err);

/* Decode just the head of a streamed message (vdp_msg_stream_head_size
 * bytes) given the total payload size announced in its header: fills
 * msg->u.clipboard (data NULL, size = total - head) or msg->u.xfer_data
 * (data NULL; size checked against total - head). */
VdpResult vdp_msg_decode_stream_head(VdpDir dir, uint32_t port, uint32_t type,
                                     const uint8_t *head, size_t head_len,
                                     size_t total_size, const VdpLayout *layout,
                                     VdpMsg *msg, VdpError *err);

/* Encode the payload of msg (without the 20-byte header). With out == NULL
 * returns the size needed. Returns the number of bytes written, or 0 with
 * err set when the message is invalid (count above a limit, etc.) or the
 * buffer is too small. CLIENT_DISCONNECTED encodes to 0 bytes and returns 0
 * with err->code == VDP_OK. */
size_t vdp_msg_encode_payload(const VdpMsg *msg, const VdpLayout *layout,
                              uint8_t *out, size_t cap, VdpError *err);

/* Encode header + payload into a newly malloc'ed buffer (*out, *out_len).
 * The opaque field is written as 0. */
VdpResult vdp_msg_encode(const VdpMsg *msg, const VdpLayout *layout,
                         uint8_t **out, size_t *out_len, VdpError *err);

/* Human-readable one-line summary of a decoded message for logs and
 * `vdagentctl watch` ("CLIPBOARD_GRAB sel=0 serial=3 types=utf8-text,png"). */
size_t vdp_msg_describe(const VdpMsg *msg, char *buf, size_t size);

/* Names of enum values used in messages. NULL if unknown. */
const char *vdp_clipboard_type_name(uint32_t type);          /* "utf8-text", "png", ... */
const char *vdp_selection_name(uint32_t selection);          /* "clipboard", "primary", "secondary" */
const char *vdp_xfer_status_name(uint32_t result);           /* "can-send-data", ... */

/* The same names for log lines: "unknown" instead of NULL. */
const char *vdp_clipboard_type_label(uint32_t type);
const char *vdp_selection_label(uint32_t selection);

#endif /* VDP_MSG_H */
