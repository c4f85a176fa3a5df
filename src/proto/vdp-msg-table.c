/* vdp-msg-table.c - per-type facts: names, routes, limits, stream heads,
 * and the 20-byte message header codec. One table, so that nothing else
 * in the tree switches on message types to answer these questions. */
#include "config.h"

#include "vdp-msg.h"
#include "vdp-wire.h"

enum {
    FROM_HOST = 1 << 0,   /* the client or spice-server sends it to the guest */
    FROM_GUEST = 1 << 1,  /* the guest agent sends it */
};

typedef struct TypeInfo {
    const char *name;
    uint8_t from;         /* FROM_* */
    uint8_t port;         /* chunk port it travels on */
    bool streamable;
    size_t max_payload;
} TypeInfo;

/* Payload limits per type, derived from the layouts in spice/vd_agent.h and
 * the named limits in vdp-limits.h. */
#define SEL_PREFIX 4u
#define MONITORS_MAX (8u + VDP_MAX_MONITORS * (20u + 4u))
#define GRAB_MAX (SEL_PREFIX + 4u + VDP_MAX_GRAB_TYPES * 4u)
#define ANNOUNCE_MAX (4u + VDP_MAX_CAPS_WORDS * 4u)
#define STATUS_MAX (8u + 8u)   /* detail: u64 free space, or u8 + u32 error */
#define DEVICE_INFO_MAX (4u + VDP_MAX_DEVICE_DISPLAYS * (16u + VDP_MAX_DEVICE_ADDRESS))

static const TypeInfo types[VD_AGENT_END_MESSAGE] = {
    [VD_AGENT_MOUSE_STATE] = {"MOUSE_STATE", FROM_HOST, VDP_SERVER_PORT, false, 13},
    [VD_AGENT_MONITORS_CONFIG] = {"MONITORS_CONFIG", FROM_HOST, VDP_CLIENT_PORT, false, MONITORS_MAX},
    [VD_AGENT_REPLY] = {"REPLY", FROM_GUEST, VDP_CLIENT_PORT, false, 8},
    [VD_AGENT_CLIPBOARD] = {"CLIPBOARD", FROM_HOST | FROM_GUEST, VDP_CLIENT_PORT, true,
                            SEL_PREFIX + 4u + VDP_MAX_CLIPBOARD_LIMIT},
    [VD_AGENT_DISPLAY_CONFIG] = {"DISPLAY_CONFIG", FROM_HOST, VDP_CLIENT_PORT, false, 8},
    [VD_AGENT_ANNOUNCE_CAPABILITIES] = {"ANNOUNCE_CAPABILITIES", FROM_HOST | FROM_GUEST,
                                        VDP_CLIENT_PORT, false, ANNOUNCE_MAX},
    [VD_AGENT_CLIPBOARD_GRAB] = {"CLIPBOARD_GRAB", FROM_HOST | FROM_GUEST, VDP_CLIENT_PORT, false, GRAB_MAX},
    [VD_AGENT_CLIPBOARD_REQUEST] = {"CLIPBOARD_REQUEST", FROM_HOST | FROM_GUEST, VDP_CLIENT_PORT, false,
                                    SEL_PREFIX + 4u},
    [VD_AGENT_CLIPBOARD_RELEASE] = {"CLIPBOARD_RELEASE", FROM_HOST | FROM_GUEST, VDP_CLIENT_PORT, false,
                                    SEL_PREFIX},
    [VD_AGENT_FILE_XFER_START] = {"FILE_XFER_START", FROM_HOST, VDP_CLIENT_PORT, false,
                                  4u + VDP_MAX_FILE_XFER_START_SIZE},
    [VD_AGENT_FILE_XFER_STATUS] = {"FILE_XFER_STATUS", FROM_HOST | FROM_GUEST, VDP_CLIENT_PORT, false,
                                   STATUS_MAX},
    [VD_AGENT_FILE_XFER_DATA] = {"FILE_XFER_DATA", FROM_HOST, VDP_CLIENT_PORT, true,
                                 12u + VDP_MAX_FILE_XFER_DATA},
    [VD_AGENT_CLIENT_DISCONNECTED] = {"CLIENT_DISCONNECTED", FROM_HOST, VDP_SERVER_PORT, false, 0},
    [VD_AGENT_MAX_CLIPBOARD] = {"MAX_CLIPBOARD", FROM_HOST, VDP_CLIENT_PORT, false, 4},
    [VD_AGENT_AUDIO_VOLUME_SYNC] = {"AUDIO_VOLUME_SYNC", FROM_HOST, VDP_CLIENT_PORT, false,
                                    3u + 2u * VDP_MAX_AUDIO_CHANNELS},
    [VD_AGENT_GRAPHICS_DEVICE_INFO] = {"GRAPHICS_DEVICE_INFO", FROM_HOST, VDP_SERVER_PORT, false,
                                       DEVICE_INFO_MAX},
};

static const TypeInfo *info(uint32_t type)
{
    if (type == 0 || type >= VD_AGENT_END_MESSAGE)
        return NULL;
    return &types[type];
}

bool vdp_msg_type_known(uint32_t type)
{
    return info(type) != NULL;
}

const char *vdp_msg_type_name(uint32_t type)
{
    const TypeInfo *t = info(type);
    return t ? t->name : NULL;
}

uint32_t vdp_msg_port_for_type(uint32_t type)
{
    const TypeInfo *t = info(type);
    return t ? t->port : VDP_CLIENT_PORT;
}

VdpResult vdp_msg_check_route(VdpDir dir, uint32_t port, uint32_t type, VdpError *err)
{
    const TypeInfo *t = info(type);
    if (!t)
        return vdp_error_set(err, VDP_ERR_UNKNOWN_TYPE, "unknown message type %u", type);
    if (!(t->from & (dir == VDP_FROM_HOST ? FROM_HOST : FROM_GUEST)))
        return vdp_error_set(err, VDP_ERR_WRONG_DIRECTION, "%s is never sent by the %s",
                             t->name, dir == VDP_FROM_HOST ? "host" : "guest");
    /* A guest writes everything on the client port; spice-server drops
     * what an agent writes on port 2. From the host, server-generated
     * messages come on port 2 only, client messages on port 1 only. */
    uint32_t want = dir == VDP_FROM_GUEST ? VDP_CLIENT_PORT : t->port;
    if (port != want)
        return vdp_error_set(err, VDP_ERR_WRONG_PORT, "%s on chunk port %u, expected port %u",
                             t->name, port, want);
    return VDP_OK;
}

size_t vdp_msg_max_payload(uint32_t type)
{
    const TypeInfo *t = info(type);
    return t ? t->max_payload : 0;
}

bool vdp_msg_streamable(uint32_t type)
{
    const TypeInfo *t = info(type);
    return t && t->streamable;
}

size_t vdp_msg_stream_head_size(uint32_t type, const VdpLayout *layout)
{
    switch (type) {
    case VD_AGENT_CLIPBOARD:
        return (layout && layout->clipboard_selection ? SEL_PREFIX : 0u) + 4u;
    case VD_AGENT_FILE_XFER_DATA:
        return 12u;
    default:
        return 0;
    }
}

void vdp_msg_header_decode(const uint8_t in[VDP_MSG_HEADER_SIZE], VdpMsgHeader *hdr)
{
    hdr->protocol = vdp_get_le32(in);
    hdr->type = vdp_get_le32(in + 4);
    hdr->opaque = vdp_get_le64(in + 8);
    hdr->size = vdp_get_le32(in + 16);
}

void vdp_msg_header_encode(const VdpMsgHeader *hdr, uint8_t out[VDP_MSG_HEADER_SIZE])
{
    vdp_put_le32(out, hdr->protocol);
    vdp_put_le32(out + 4, hdr->type);
    vdp_put_le64(out + 8, hdr->opaque);
    vdp_put_le32(out + 16, hdr->size);
}

void vdp_layout_from_caps(VdpLayout *layout, const VdpCaps *own, const VdpCaps *peer)
{
    layout->clipboard_selection = vdp_caps_both(own, peer, VD_AGENT_CAP_CLIPBOARD_SELECTION);
    layout->grab_serial = vdp_caps_both(own, peer, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL);
}
