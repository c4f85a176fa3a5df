/* test-msg.c - the VDAgent message codec.
 *
 * Valid inputs are hand-built byte arrays (or built byte by byte below with
 * shifts, not with the codec's own helpers), so the little-endian layout
 * is checked independently of the encoder. Every decoder also gets
 * truncated, trailing, overflowing and out-of-range inputs; every type
 * gets an encode/decode round trip; routes and describe are checked too.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vdp-msg.h"

/* ---------------------------------------------------------------------
 * Fixtures
 * --------------------------------------------------------------------- */

static const VdpLayout L_NONE = {false, false};
static const VdpLayout L_SEL = {true, false};
static const VdpLayout L_ALL = {true, true};
static const VdpLayout L_SERIAL = {false, true};

/* Large structs live here, not on the stack. */
static VdpMsg msg, msg2;
static VdpError err;

/* A byte builder that writes little-endian by hand. */
typedef struct Buf {
    uint8_t d[80 * 1024];
    size_t n;
} Buf;
static Buf bb;

static void b_reset(Buf *b) { b->n = 0; }
static void b_u8(Buf *b, uint8_t v) { b->d[b->n++] = v; }
static void b_u16(Buf *b, uint16_t v) { b_u8(b, (uint8_t)v); b_u8(b, (uint8_t)(v >> 8)); }
static void b_u32(Buf *b, uint32_t v) { b_u16(b, (uint16_t)v); b_u16(b, (uint16_t)(v >> 16)); }
static void b_u64(Buf *b, uint64_t v) { b_u32(b, (uint32_t)v); b_u32(b, (uint32_t)(v >> 32)); }
static void b_bytes(Buf *b, const void *p, size_t n) { memcpy(b->d + b->n, p, n); b->n += n; }
static void b_sel(Buf *b, uint8_t sel) { b_u8(b, sel); b_u8(b, 0); b_u8(b, 0); b_u8(b, 0); }

/* The chunk port a peer legitimately uses for a type. */
static uint32_t natural_port(VdpDir dir, uint32_t type)
{
    return dir == VDP_FROM_GUEST ? VDP_CLIENT_PORT : vdp_msg_port_for_type(type);
}

static VdpResult decode(VdpDir dir, uint32_t type, const void *data, size_t len,
                        const VdpLayout *layout)
{
    memset(&msg, 0x5A, sizeof(msg));
    memset(&err, 0, sizeof(err));
    err.code = (VdpResult)-1;
    VdpResult r = vdp_msg_decode(dir, natural_port(dir, type), type, data, len, layout,
                                 &msg, &err);
    assert_int_equal(err.code, r);    /* err always filled, also on success */
    if (r == VDP_OK)
        assert_int_equal(msg.type, type);
    else
        assert_true(strlen(err.text) > 0);
    return r;
}

static VdpResult host(uint32_t type, const void *data, size_t len, const VdpLayout *layout)
{
    return decode(VDP_FROM_HOST, type, data, len, layout);
}

static VdpResult guest(uint32_t type, const void *data, size_t len, const VdpLayout *layout)
{
    return decode(VDP_FROM_GUEST, type, data, len, layout);
}

static VdpResult host_b(uint32_t type, const VdpLayout *layout)
{
    return host(type, bb.d, bb.n, layout);
}

/* The error text mentions all of these. */
static void assert_text(const char *a, const char *b)
{
    if (a && !strstr(err.text, a))
        fail_msg("\"%s\" not in \"%s\"", a, err.text);
    if (b && !strstr(err.text, b))
        fail_msg("\"%s\" not in \"%s\"", b, err.text);
}

/* ---------------------------------------------------------------------
 * Names
 * --------------------------------------------------------------------- */

static void test_names(void **state)
{
    assert_string_equal(vdp_clipboard_type_name(VD_AGENT_CLIPBOARD_NONE), "none");
    assert_string_equal(vdp_clipboard_type_name(VD_AGENT_CLIPBOARD_UTF8_TEXT), "utf8-text");
    assert_string_equal(vdp_clipboard_type_name(VD_AGENT_CLIPBOARD_IMAGE_PNG), "png");
    assert_string_equal(vdp_clipboard_type_name(VD_AGENT_CLIPBOARD_IMAGE_JPG), "jpg");
    assert_string_equal(vdp_clipboard_type_name(VD_AGENT_CLIPBOARD_FILE_LIST), "file-list");
    assert_null(vdp_clipboard_type_name(VD_AGENT_CLIPBOARD_FILE_LIST + 1));
    assert_null(vdp_clipboard_type_name(~0u));
    assert_string_equal(vdp_selection_name(0), "clipboard");
    assert_string_equal(vdp_selection_name(1), "primary");
    assert_string_equal(vdp_selection_name(2), "secondary");
    assert_null(vdp_selection_name(3));
    assert_null(vdp_selection_name(255));
    assert_string_equal(vdp_xfer_status_name(VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA),
                        "can-send-data");
    assert_string_equal(vdp_xfer_status_name(VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE),
                        "not-enough-space");
    assert_string_equal(vdp_xfer_status_name(VD_AGENT_FILE_XFER_STATUS_DISABLED), "disabled");
    for (uint32_t i = 0; i <= VD_AGENT_FILE_XFER_STATUS_DISABLED; i++)
        assert_non_null(vdp_xfer_status_name(i));
    assert_null(vdp_xfer_status_name(VD_AGENT_FILE_XFER_STATUS_DISABLED + 1));
}

/* ---------------------------------------------------------------------
 * Routes
 * --------------------------------------------------------------------- */

static void test_route_server_types_from_client_port(void **state)
{
    /* A client could inject these on port 1; only spice-server sends them. */
    static const uint8_t mouse[13] = {0};
    static const uint8_t dev[4] = {0};
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, VDP_CLIENT_PORT, VD_AGENT_MOUSE_STATE, mouse,
                                    sizeof(mouse), &L_NONE, &msg, &err),
                     VDP_ERR_WRONG_PORT);
    assert_text("MOUSE_STATE", "port 1");
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, VDP_CLIENT_PORT, VD_AGENT_CLIENT_DISCONNECTED,
                                    NULL, 0, &L_NONE, &msg, &err),
                     VDP_ERR_WRONG_PORT);
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, VDP_CLIENT_PORT, VD_AGENT_GRAPHICS_DEVICE_INFO,
                                    dev, sizeof(dev), &L_NONE, &msg, &err),
                     VDP_ERR_WRONG_PORT);
    /* and on their own port they pass */
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, mouse,
                                    sizeof(mouse), &L_NONE, &msg, &err),
                     VDP_OK);
}

static void test_route_client_types_from_server_port(void **state)
{
    static const uint8_t maxc[4] = {0};
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, VDP_SERVER_PORT, VD_AGENT_MAX_CLIPBOARD, maxc,
                                    sizeof(maxc), &L_NONE, &msg, &err),
                     VDP_ERR_WRONG_PORT);
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, 3, VD_AGENT_MAX_CLIPBOARD, maxc, sizeof(maxc),
                                    &L_NONE, &msg, &err),
                     VDP_ERR_WRONG_PORT);
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, VDP_CLIENT_PORT, VD_AGENT_MAX_CLIPBOARD, maxc,
                                    sizeof(maxc), &L_NONE, &msg, &err),
                     VDP_OK);
}

static void test_route_direction(void **state)
{
    /* Guest-only: REPLY from the host. */
    static const uint8_t reply[8] = {2, 0, 0, 0, 1, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_REPLY, reply, sizeof(reply), &L_NONE),
                     VDP_ERR_WRONG_DIRECTION);
    assert_text("REPLY", "host");
    assert_int_equal(guest(VD_AGENT_REPLY, reply, sizeof(reply), &L_NONE), VDP_OK);

    /* Host-only types never come from a guest, on any port. */
    static const uint32_t host_only[] = {
        VD_AGENT_MOUSE_STATE, VD_AGENT_MONITORS_CONFIG, VD_AGENT_DISPLAY_CONFIG,
        VD_AGENT_FILE_XFER_START, VD_AGENT_FILE_XFER_DATA, VD_AGENT_CLIENT_DISCONNECTED,
        VD_AGENT_MAX_CLIPBOARD, VD_AGENT_AUDIO_VOLUME_SYNC, VD_AGENT_GRAPHICS_DEVICE_INFO,
    };
    for (size_t i = 0; i < sizeof(host_only) / sizeof(host_only[0]); i++) {
        for (uint32_t port = VDP_CLIENT_PORT; port <= VDP_SERVER_PORT; port++)
            assert_int_equal(vdp_msg_decode(VDP_FROM_GUEST, port, host_only[i], reply,
                                            sizeof(reply), &L_NONE, &msg, &err),
                             VDP_ERR_WRONG_DIRECTION);
    }
}

static void test_route_guest_port(void **state)
{
    /* A guest writes everything on port 1; port 2 is dropped by the server. */
    static const uint8_t rel[1] = {0};
    assert_int_equal(vdp_msg_decode(VDP_FROM_GUEST, VDP_SERVER_PORT, VD_AGENT_CLIPBOARD_RELEASE,
                                    rel, 0, &L_NONE, &msg, &err),
                     VDP_ERR_WRONG_PORT);
    assert_int_equal(vdp_msg_decode(VDP_FROM_GUEST, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_RELEASE,
                                    rel, 0, &L_NONE, &msg, &err),
                     VDP_OK);
}

static void test_route_unknown_types(void **state)
{
    static const uint8_t x[4] = {0};
    static const uint32_t bad[] = {0, VD_AGENT_END_MESSAGE, 100, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, VDP_CLIENT_PORT, bad[i], x, sizeof(x),
                                        &L_NONE, &msg, &err),
                         VDP_ERR_UNKNOWN_TYPE);
        assert_int_equal(vdp_msg_decode(VDP_FROM_GUEST, VDP_CLIENT_PORT, bad[i], x, sizeof(x),
                                        &L_NONE, &msg, &err),
                         VDP_ERR_UNKNOWN_TYPE);
        assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT, bad[i], x,
                                                    sizeof(x), 100, &L_NONE, &msg, &err),
                         VDP_ERR_UNKNOWN_TYPE);
    }
}

/* ---------------------------------------------------------------------
 * MOUSE_STATE
 * --------------------------------------------------------------------- */

static void test_mouse_valid(void **state)
{
    static const uint8_t wire[13] = {
        0x40, 0x01, 0x00, 0x00,   /* x = 320 */
        0x10, 0x27, 0x00, 0x00,   /* y = 10000 */
        0x0A, 0x00, 0x00, 0x00,   /* buttons = L | R */
        0x02,                     /* display 2 */
    };
    assert_int_equal(host(VD_AGENT_MOUSE_STATE, wire, sizeof(wire), &L_ALL), VDP_OK);
    assert_int_equal(msg.u.mouse.x, 320);
    assert_int_equal(msg.u.mouse.y, 10000);
    assert_int_equal(msg.u.mouse.buttons, VD_AGENT_LBUTTON_MASK | VD_AGENT_RBUTTON_MASK);
    assert_int_equal(msg.u.mouse.display_id, 2);
}

static void test_mouse_sizes(void **state)
{
    static const uint8_t wire[14] = {0};
    assert_int_equal(host(VD_AGENT_MOUSE_STATE, wire, 12, &L_NONE), VDP_ERR_TRUNCATED);
    assert_text("MOUSE_STATE", "13");
    assert_int_equal(host(VD_AGENT_MOUSE_STATE, wire, 14, &L_NONE), VDP_ERR_TRAILING);
    assert_int_equal(host(VD_AGENT_MOUSE_STATE, wire, 0, &L_NONE), VDP_ERR_TRUNCATED);
}

/* ---------------------------------------------------------------------
 * MONITORS_CONFIG
 * --------------------------------------------------------------------- */

static void test_monitors_valid(void **state)
{
    static const uint8_t wire[] = {
        0x02, 0x00, 0x00, 0x00,   /* 2 monitors */
        0x01, 0x00, 0x00, 0x00,   /* USE_POS */
        0x38, 0x04, 0x00, 0x00,   /* height 1080 */
        0x80, 0x07, 0x00, 0x00,   /* width 1920 */
        0x20, 0x00, 0x00, 0x00,   /* depth 32 */
        0x00, 0x00, 0x00, 0x00,   /* x 0 */
        0x00, 0x00, 0x00, 0x00,   /* y 0 */
        0x00, 0x03, 0x00, 0x00,   /* height 768 */
        0x00, 0x04, 0x00, 0x00,   /* width 1024 */
        0x10, 0x00, 0x00, 0x00,   /* depth 16 */
        0x80, 0xF8, 0xFF, 0xFF,   /* x -1920 */
        0xFF, 0xFF, 0xFF, 0xFF,   /* y -1 */
    };
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, wire, sizeof(wire), &L_ALL), VDP_OK);
    const VdpMonitorsConfig *mc = &msg.u.monitors;
    assert_int_equal(mc->count, 2);
    assert_int_equal(mc->flags, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS);
    assert_int_equal(mc->monitors[0].width, 1920);
    assert_int_equal(mc->monitors[0].height, 1080);
    assert_int_equal(mc->monitors[0].depth, 32);
    assert_int_equal(mc->monitors[0].x, 0);
    assert_int_equal(mc->monitors[1].width, 1024);
    assert_int_equal(mc->monitors[1].height, 768);
    assert_int_equal(mc->monitors[1].depth, 16);
    assert_int_equal(mc->monitors[1].x, -1920);
    assert_int_equal(mc->monitors[1].y, -1);
    assert_int_equal(mc->monitors[0].mm_width, 0);   /* no PHYSICAL_SIZE */
    assert_int_equal(mc->monitors[1].mm_height, 0);
}

/* What spice-gtk 0.42 sends for one 1366x768 window at 96 dpi. */
static const uint8_t spice_gtk_monitors[] = {
    0x01, 0x00, 0x00, 0x00,   /* num_of_monitors 1 */
    0x03, 0x00, 0x00, 0x00,   /* USE_POS | PHYSICAL_SIZE */
    0x00, 0x03, 0x00, 0x00,   /* height 768 (first!) */
    0x56, 0x05, 0x00, 0x00,   /* width 1366 */
    0x20, 0x00, 0x00, 0x00,   /* depth 32 */
    0x00, 0x00, 0x00, 0x00,   /* x */
    0x00, 0x00, 0x00, 0x00,   /* y */
    0xCB, 0x00,               /* mm height 203 (first!) */
    0x69, 0x01,               /* mm width 361 */
};

static void test_monitors_spice_gtk_physical(void **state)
{
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, spice_gtk_monitors,
                          sizeof(spice_gtk_monitors), &L_ALL),
                     VDP_OK);
    const VdpMonConfig *m = &msg.u.monitors.monitors[0];
    assert_int_equal(msg.u.monitors.count, 1);
    assert_int_equal(msg.u.monitors.flags, 3);
    assert_int_equal(m->width, 1366);
    assert_int_equal(m->height, 768);
    assert_int_equal(m->depth, 32);
    assert_int_equal(m->mm_width, 361);
    assert_int_equal(m->mm_height, 203);

    /* and the encoder writes exactly these bytes */
    uint8_t out[64];
    msg2 = msg;
    assert_int_equal(vdp_msg_encode_payload(&msg2, &L_ALL, out, sizeof(out), &err),
                     sizeof(spice_gtk_monitors));
    assert_memory_equal(out, spice_gtk_monitors, sizeof(spice_gtk_monitors));
}

static void test_monitors_physical_size_missing(void **state)
{
    b_reset(&bb);
    b_u32(&bb, 3);
    b_u32(&bb, VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE);
    for (int i = 0; i < 3 * 5; i++)
        b_u32(&bb, 100);
    b_u32(&bb, 0);             /* only 2 of 3 mm entries */
    b_u32(&bb, 0);
    assert_int_equal(bb.n, 76);
    assert_int_equal(host_b(VD_AGENT_MONITORS_CONFIG, &L_NONE), VDP_ERR_OVERFLOW);
    assert_string_equal(err.text,
                        "MONITORS_CONFIG: 3 monitors with physical sizes need 80 bytes, got 76");
    b_u32(&bb, 0);
    assert_int_equal(host_b(VD_AGENT_MONITORS_CONFIG, &L_NONE), VDP_OK);
}

static void test_monitors_wrap_bug(void **state)
{
    /* spice-vdagent 0.22.1 computed 8 + n * 20 in 32 bits: 214748365
     * monitors "need" 12 bytes there. */
    static const uint8_t wire[12] = {0xCD, 0xCC, 0xCC, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(214748365u, 0x0CCCCCCDu);
    assert_int_equal((uint32_t)(8u + 214748365u * 20u), 12);
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, wire, sizeof(wire), &L_NONE),
                     VDP_ERR_OVERFLOW);
    assert_text("214748365 monitors", "got 12");

    /* with PHYSICAL_SIZE: n * 24 wraps for other values; still refused */
    static const uint8_t wire2[12] = {0xAB, 0xAA, 0xAA, 0x0A, 2, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, wire2, sizeof(wire2), &L_NONE),
                     VDP_ERR_OVERFLOW);
    static const uint8_t wire3[8] = {0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, wire3, sizeof(wire3), &L_NONE),
                     VDP_ERR_OVERFLOW);
}

static void build_monitors(uint32_t count, uint32_t flags)
{
    b_reset(&bb);
    b_u32(&bb, count);
    b_u32(&bb, flags);
    for (uint32_t i = 0; i < count; i++) {
        b_u32(&bb, 600 + i);  /* height */
        b_u32(&bb, 800 + i);  /* width */
        b_u32(&bb, 32);
        b_u32(&bb, i * 800);
        b_u32(&bb, 0);
    }
    for (uint32_t i = 0; (flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE) && i < count; i++) {
        b_u16(&bb, (uint16_t)(100 + i));
        b_u16(&bb, (uint16_t)(200 + i));
    }
}

static void test_monitors_limit(void **state)
{
    build_monitors(VDP_MAX_MONITORS, VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE);
    assert_int_equal(host_b(VD_AGENT_MONITORS_CONFIG, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.monitors.count, VDP_MAX_MONITORS);
    const VdpMonConfig *last = &msg.u.monitors.monitors[VDP_MAX_MONITORS - 1];
    assert_int_equal(last->height, 600 + 255);
    assert_int_equal(last->width, 800 + 255);
    assert_int_equal(last->x, 255 * 800);
    assert_int_equal(last->mm_height, 100 + 255);
    assert_int_equal(last->mm_width, 200 + 255);
    /* the whole message fits the type's limit */
    assert_true(bb.n <= vdp_msg_max_payload(VD_AGENT_MONITORS_CONFIG));

    build_monitors(VDP_MAX_MONITORS + 1, 0);
    assert_int_equal(host_b(VD_AGENT_MONITORS_CONFIG, &L_NONE), VDP_ERR_TOO_LARGE);
    assert_text("257 monitors", "256");
}

static void test_monitors_sizes(void **state)
{
    build_monitors(0, 0);
    assert_int_equal(host_b(VD_AGENT_MONITORS_CONFIG, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.monitors.count, 0);

    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, bb.d, 7, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, bb.d, 0, &L_NONE), VDP_ERR_TRUNCATED);

    /* one monitor, 4 bytes too many: mm sizes without the flag */
    build_monitors(1, VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE);
    bb.d[4] = VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS;
    assert_int_equal(host_b(VD_AGENT_MONITORS_CONFIG, &L_NONE), VDP_ERR_TRAILING);
    assert_text("1 monitors need 28 bytes", "got 32");

    /* one monitor, cut in the middle */
    build_monitors(1, 0);
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, bb.d, bb.n - 1, &L_NONE),
                     VDP_ERR_OVERFLOW);

    /* unknown flag bits are kept */
    build_monitors(1, 0x80000001u);
    assert_int_equal(host_b(VD_AGENT_MONITORS_CONFIG, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.monitors.flags, 0x80000001u);
}

/* ---------------------------------------------------------------------
 * REPLY
 * --------------------------------------------------------------------- */

static void test_reply(void **state)
{
    uint8_t wire[9] = {2, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(guest(VD_AGENT_REPLY, wire, 8, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.reply.type, VD_AGENT_MONITORS_CONFIG);
    assert_int_equal(msg.u.reply.error, VD_AGENT_SUCCESS);
    wire[4] = 2;
    assert_int_equal(guest(VD_AGENT_REPLY, wire, 8, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.reply.error, VD_AGENT_ERROR);

    assert_int_equal(guest(VD_AGENT_REPLY, wire, 7, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(guest(VD_AGENT_REPLY, wire, 9, &L_NONE), VDP_ERR_TRAILING);

    wire[4] = 0;
    assert_int_equal(guest(VD_AGENT_REPLY, wire, 8, &L_NONE), VDP_ERR_RANGE);
    wire[4] = 3;
    assert_int_equal(guest(VD_AGENT_REPLY, wire, 8, &L_NONE), VDP_ERR_RANGE);
    assert_text("error", "3");
    wire[4] = 1;
    wire[0] = 0;
    assert_int_equal(guest(VD_AGENT_REPLY, wire, 8, &L_NONE), VDP_ERR_RANGE);
    wire[0] = VD_AGENT_END_MESSAGE;
    assert_int_equal(guest(VD_AGENT_REPLY, wire, 8, &L_NONE), VDP_ERR_RANGE);
    assert_text("unknown type 17", NULL);
}

/* ---------------------------------------------------------------------
 * CLIPBOARD
 * --------------------------------------------------------------------- */

static void test_clipboard_no_selection(void **state)
{
    static const uint8_t wire[] = {0x01, 0, 0, 0, 'h', 'i', '!'};
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, sizeof(wire), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.clipboard.selection, 0);
    assert_int_equal(msg.u.clipboard.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(msg.u.clipboard.size, 3);
    assert_ptr_equal(msg.u.clipboard.data, wire + 4);   /* a view, not a copy */

    /* the guest sends the same layout */
    assert_int_equal(guest(VD_AGENT_CLIPBOARD, wire, sizeof(wire), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.clipboard.size, 3);
}

static void test_clipboard_selection(void **state)
{
    static const uint8_t wire[] = {
        0x01, 0xAA, 0xBB, 0xCC,   /* PRIMARY; reserved bytes are ignored */
        0x02, 0x00, 0x00, 0x00,   /* PNG */
        0x89, 'P', 'N', 'G',
    };
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, sizeof(wire), &L_SEL), VDP_OK);
    assert_int_equal(msg.u.clipboard.selection, VD_AGENT_CLIPBOARD_SELECTION_PRIMARY);
    assert_int_equal(msg.u.clipboard.type, VD_AGENT_CLIPBOARD_IMAGE_PNG);
    assert_int_equal(msg.u.clipboard.size, 4);
    assert_ptr_equal(msg.u.clipboard.data, wire + 8);
    /* grab serial does not change CLIPBOARD */
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, sizeof(wire), &L_ALL), VDP_OK);
    assert_int_equal(msg.u.clipboard.size, 4);
}

static void test_clipboard_empty_and_none(void **state)
{
    /* NONE without data: the "no data" answer */
    static const uint8_t none[] = {0x02, 0, 0, 0, 0, 0, 0, 0, 'x'};
    assert_int_equal(guest(VD_AGENT_CLIPBOARD, none, 8, &L_SEL), VDP_OK);
    assert_int_equal(msg.u.clipboard.selection, 2);
    assert_int_equal(msg.u.clipboard.type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(msg.u.clipboard.size, 0);
    /* NONE with data is refused */
    assert_int_equal(guest(VD_AGENT_CLIPBOARD, none, 9, &L_SEL), VDP_ERR_RANGE);
    /* a known type with no data is fine (oversize answer of spice-vdagentd) */
    static const uint8_t empty_text[] = {0x01, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_CLIPBOARD, empty_text, 4, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.clipboard.size, 0);
}

static void test_clipboard_bad(void **state)
{
    uint8_t wire[] = {0x00, 0, 0, 0, 0x01, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, 3, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, 7, &L_SEL), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, 0, &L_SEL), VDP_ERR_TRUNCATED);
    wire[0] = 3;   /* selection 3 does not exist */
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, 8, &L_SEL), VDP_ERR_RANGE);
    assert_text("selection 3", NULL);
    wire[0] = 0xFF;
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, 8, &L_SEL), VDP_ERR_RANGE);
    wire[0] = 0;
    wire[4] = VD_AGENT_CLIPBOARD_FILE_LIST + 1;
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, 8, &L_SEL), VDP_ERR_RANGE);
    assert_text("clipboard type 7", NULL);
    wire[4] = 1;
    wire[7] = 0x80;   /* type 0x80000001 */
    assert_int_equal(host(VD_AGENT_CLIPBOARD, wire, 8, &L_SEL), VDP_ERR_RANGE);
}

static void test_clipboard_stream_head(void **state)
{
    static const uint8_t head[] = {0x01, 0, 0, 0, 0x01, 0, 0, 0};
    size_t hs = vdp_msg_stream_head_size(VD_AGENT_CLIPBOARD, &L_SEL);
    assert_int_equal(hs, 8);
    memset(&msg, 0x5A, sizeof(msg));
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_CLIPBOARD, head, hs, 5000000, &L_SEL,
                                                &msg, &err),
                     VDP_OK);
    assert_int_equal(err.code, VDP_OK);
    assert_int_equal(msg.type, VD_AGENT_CLIPBOARD);
    assert_int_equal(msg.u.clipboard.selection, 1);
    assert_int_equal(msg.u.clipboard.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(msg.u.clipboard.size, 5000000 - 8);
    assert_null(msg.u.clipboard.data);

    /* no selection: head is just the type */
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_GUEST, VDP_CLIENT_PORT,
                                                VD_AGENT_CLIPBOARD, head + 4, 4, 100, &L_NONE,
                                                &msg, &err),
                     VDP_OK);
    assert_int_equal(msg.u.clipboard.size, 96);

    /* head too short, total shorter than head */
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_CLIPBOARD, head, 7, 100, &L_SEL, &msg,
                                                &err),
                     VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_CLIPBOARD, head, 8, 7, &L_SEL, &msg,
                                                &err),
                     VDP_ERR_TRUNCATED);
    /* over the absolute clipboard ceiling */
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_CLIPBOARD, head, 8,
                                                (size_t)VDP_MAX_CLIPBOARD_LIMIT + 9, &L_SEL,
                                                &msg, &err),
                     VDP_ERR_TOO_LARGE);
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_CLIPBOARD, head, 8,
                                                (size_t)VDP_MAX_CLIPBOARD_LIMIT + 8, &L_SEL,
                                                &msg, &err),
                     VDP_OK);
    /* the head is validated like a whole message */
    static const uint8_t bad_sel[] = {0x07, 0, 0, 0, 0x01, 0, 0, 0};
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_CLIPBOARD, bad_sel, 8, 100, &L_SEL,
                                                &msg, &err),
                     VDP_ERR_RANGE);
    /* route first */
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_SERVER_PORT,
                                                VD_AGENT_CLIPBOARD, head, 8, 100, &L_SEL, &msg,
                                                &err),
                     VDP_ERR_WRONG_PORT);
}

static void test_stream_head_not_streamable(void **state)
{
    static const uint8_t head[16] = {0};
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_MAX_CLIPBOARD, head, 4, 4, &L_NONE,
                                                &msg, &err),
                     VDP_ERR_RANGE);
    assert_text("MAX_CLIPBOARD", "stream");
}

/* ---------------------------------------------------------------------
 * DISPLAY_CONFIG, MAX_CLIPBOARD, CLIENT_DISCONNECTED
 * --------------------------------------------------------------------- */

static void test_display_config(void **state)
{
    static const uint8_t wire[9] = {0x0F, 0, 0, 0, 0x18, 0, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_DISPLAY_CONFIG, wire, 8, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.display_config.flags, 0x0F);
    assert_int_equal(msg.u.display_config.depth, 24);
    assert_int_equal(host(VD_AGENT_DISPLAY_CONFIG, wire, 7, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_DISPLAY_CONFIG, wire, 9, &L_NONE), VDP_ERR_TRAILING);
}

static void test_max_clipboard(void **state)
{
    static const uint8_t minus1[5] = {0xFF, 0xFF, 0xFF, 0xFF, 0};
    static const uint8_t mib100[4] = {0x00, 0x00, 0x40, 0x06};
    assert_int_equal(host(VD_AGENT_MAX_CLIPBOARD, minus1, 4, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.max_clipboard.max, -1);
    assert_int_equal(host(VD_AGENT_MAX_CLIPBOARD, mib100, 4, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.max_clipboard.max, 100 * 1024 * 1024);
    assert_int_equal(host(VD_AGENT_MAX_CLIPBOARD, minus1, 3, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_MAX_CLIPBOARD, minus1, 5, &L_NONE), VDP_ERR_TRAILING);
}

static void test_client_disconnected(void **state)
{
    static const uint8_t one[1] = {0};
    assert_int_equal(host(VD_AGENT_CLIENT_DISCONNECTED, one, 0, &L_NONE), VDP_OK);
    assert_int_equal(host(VD_AGENT_CLIENT_DISCONNECTED, NULL, 0, &L_NONE), VDP_OK);
    assert_int_equal(host(VD_AGENT_CLIENT_DISCONNECTED, one, 1, &L_NONE), VDP_ERR_TRAILING);
}

/* ---------------------------------------------------------------------
 * ANNOUNCE_CAPABILITIES
 * --------------------------------------------------------------------- */

static void test_announce(void **state)
{
    static const uint8_t wire[] = {
        0x01, 0, 0, 0,
        0xE7, 0x8D, 0x03, 0x00,
        0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x80,   /* bit 95: unknown today, kept */
    };
    assert_int_equal(host(VD_AGENT_ANNOUNCE_CAPABILITIES, wire, sizeof(wire), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.announce.request, 1);
    assert_int_equal(msg.u.announce.caps.nwords, 3);
    assert_int_equal(msg.u.announce.caps.words[0], 0x38DE7);
    assert_int_equal(msg.u.announce.caps.words[2], 0x80000000u);
    assert_true(vdp_caps_has(&msg.u.announce.caps, 95));
    assert_int_equal(msg.u.announce.caps.words[3], 0);

    /* no words: legal, no capabilities */
    assert_int_equal(guest(VD_AGENT_ANNOUNCE_CAPABILITIES, wire, 4, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.announce.caps.nwords, 0);
    assert_false(vdp_caps_has(&msg.u.announce.caps, 0));

    assert_int_equal(host(VD_AGENT_ANNOUNCE_CAPABILITIES, wire, 3, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_ANNOUNCE_CAPABILITIES, wire, 7, &L_NONE), VDP_ERR_TRAILING);
    assert_text("3 bytes", "multiple of 4");
    assert_int_equal(host(VD_AGENT_ANNOUNCE_CAPABILITIES, wire, 13, &L_NONE), VDP_ERR_TRAILING);
}

static void test_announce_limit(void **state)
{
    b_reset(&bb);
    b_u32(&bb, 0);
    for (unsigned i = 0; i < VDP_MAX_CAPS_WORDS; i++)
        b_u32(&bb, i == VDP_MAX_CAPS_WORDS - 1 ? 0x80000000u : 0);
    assert_int_equal(host_b(VD_AGENT_ANNOUNCE_CAPABILITIES, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.announce.caps.nwords, VDP_MAX_CAPS_WORDS);
    assert_true(vdp_caps_has(&msg.u.announce.caps, 32 * VDP_MAX_CAPS_WORDS - 1));
    b_u32(&bb, 0);
    assert_int_equal(host_b(VD_AGENT_ANNOUNCE_CAPABILITIES, &L_NONE), VDP_ERR_TOO_LARGE);
    assert_text("65", "64");
}

/* ---------------------------------------------------------------------
 * CLIPBOARD_GRAB
 * --------------------------------------------------------------------- */

static void test_grab_layouts(void **state)
{
    static const uint8_t plain[] = {0x01, 0, 0, 0, 0x02, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, plain, sizeof(plain), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.grab.selection, 0);
    assert_int_equal(msg.u.grab.serial, 0);
    assert_int_equal(msg.u.grab.ntypes, 2);
    assert_int_equal(msg.u.grab.types[0], VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(msg.u.grab.types[1], VD_AGENT_CLIPBOARD_IMAGE_PNG);

    static const uint8_t sel[] = {0x01, 0, 0, 0, 0x06, 0, 0, 0};
    assert_int_equal(guest(VD_AGENT_CLIPBOARD_GRAB, sel, sizeof(sel), &L_SEL), VDP_OK);
    assert_int_equal(msg.u.grab.selection, 1);
    assert_int_equal(msg.u.grab.ntypes, 1);
    assert_int_equal(msg.u.grab.types[0], VD_AGENT_CLIPBOARD_FILE_LIST);

    static const uint8_t full[] = {
        0x00, 0, 0, 0,            /* CLIPBOARD */
        0x04, 0x03, 0x02, 0x01,   /* serial 0x01020304 */
        0x01, 0, 0, 0,
        0x2A, 0, 0, 0,            /* type 42: unknown, kept */
        0x05, 0, 0, 0,
    };
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, full, sizeof(full), &L_ALL), VDP_OK);
    assert_int_equal(msg.u.grab.selection, 0);
    assert_int_equal(msg.u.grab.serial, 0x01020304);
    assert_int_equal(msg.u.grab.ntypes, 3);
    assert_int_equal(msg.u.grab.types[1], 42);
    assert_int_equal(msg.u.grab.types[2], VD_AGENT_CLIPBOARD_IMAGE_JPG);

    /* serial without selection prefix */
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, full + 4, sizeof(full) - 4, &L_SERIAL),
                     VDP_OK);
    assert_int_equal(msg.u.grab.serial, 0x01020304);
    assert_int_equal(msg.u.grab.ntypes, 3);
}

static void test_grab_bad(void **state)
{
    uint8_t wire[] = {0x00, 0, 0, 0, 0x07, 0, 0, 0, 0x01, 0, 0, 0, 0x01};
    /* empty grab: refused */
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, wire, 8, &L_ALL), VDP_ERR_RANGE);
    assert_text("no types", NULL);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, wire, 0, &L_NONE), VDP_ERR_RANGE);
    /* prefix or serial cut short */
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, wire, 7, &L_ALL), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, wire, 2, &L_SEL), VDP_ERR_TRUNCATED);
    /* partial type */
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, wire, 13, &L_ALL), VDP_ERR_TRAILING);
    assert_text("5 bytes of types", "multiple of 4");
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, wire, 6, &L_NONE), VDP_ERR_TRAILING);
    /* selection out of range */
    wire[0] = 3;
    assert_int_equal(host(VD_AGENT_CLIPBOARD_GRAB, wire, 12, &L_ALL), VDP_ERR_RANGE);
}

static void test_grab_limit(void **state)
{
    b_reset(&bb);
    b_sel(&bb, 0);
    b_u32(&bb, 9);   /* serial */
    for (unsigned i = 0; i < VDP_MAX_GRAB_TYPES; i++)
        b_u32(&bb, i);
    assert_int_equal(host_b(VD_AGENT_CLIPBOARD_GRAB, &L_ALL), VDP_OK);
    assert_int_equal(msg.u.grab.ntypes, VDP_MAX_GRAB_TYPES);
    assert_int_equal(msg.u.grab.types[VDP_MAX_GRAB_TYPES - 1], VDP_MAX_GRAB_TYPES - 1);
    b_u32(&bb, 1);
    assert_int_equal(host_b(VD_AGENT_CLIPBOARD_GRAB, &L_ALL), VDP_ERR_TOO_LARGE);
    assert_text("65 types", "64");
}

/* ---------------------------------------------------------------------
 * CLIPBOARD_REQUEST, CLIPBOARD_RELEASE
 * --------------------------------------------------------------------- */

static void test_request(void **state)
{
    uint8_t wire[] = {0x01, 0, 0, 0, 0x01, 0, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 8, &L_SEL), VDP_OK);
    assert_int_equal(msg.u.request.selection, 1);
    assert_int_equal(msg.u.request.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(guest(VD_AGENT_CLIPBOARD_REQUEST, wire + 4, 4, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.request.selection, 0);
    assert_int_equal(msg.u.request.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    /* the serial never applies to REQUEST */
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 8, &L_ALL), VDP_OK);

    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 7, &L_SEL), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 9, &L_SEL), VDP_ERR_TRAILING);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 8, &L_NONE), VDP_ERR_TRAILING);

    wire[4] = VD_AGENT_CLIPBOARD_NONE;
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 8, &L_SEL), VDP_ERR_RANGE);
    wire[4] = VD_AGENT_CLIPBOARD_FILE_LIST + 1;
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 8, &L_SEL), VDP_ERR_RANGE);
    wire[4] = VD_AGENT_CLIPBOARD_FILE_LIST;
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 8, &L_SEL), VDP_OK);
    wire[0] = 4;
    assert_int_equal(host(VD_AGENT_CLIPBOARD_REQUEST, wire, 8, &L_SEL), VDP_ERR_RANGE);
}

static void test_release(void **state)
{
    uint8_t wire[] = {0x02, 0, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_CLIPBOARD_RELEASE, wire, 0, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.release.selection, 0);
    assert_int_equal(guest(VD_AGENT_CLIPBOARD_RELEASE, wire, 4, &L_SEL), VDP_OK);
    assert_int_equal(msg.u.release.selection, 2);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_RELEASE, wire, 4, &L_NONE), VDP_ERR_TRAILING);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_RELEASE, wire, 0, &L_SEL), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_RELEASE, wire, 3, &L_SEL), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_CLIPBOARD_RELEASE, wire, 5, &L_SEL), VDP_ERR_TRAILING);
    wire[0] = 3;
    assert_int_equal(host(VD_AGENT_CLIPBOARD_RELEASE, wire, 4, &L_SEL), VDP_ERR_RANGE);
}

/* ---------------------------------------------------------------------
 * FILE_XFER_START
 * --------------------------------------------------------------------- */

static const char keyfile[] =
    "[vdagent-file-xfer]\nname=report.pdf\nsize=1234\n";

static void build_start(uint32_t id, const char *text, size_t len)
{
    b_reset(&bb);
    b_u32(&bb, id);
    b_bytes(&bb, text, len);
}

static void test_xfer_start_valid(void **state)
{
    build_start(7, keyfile, sizeof(keyfile));   /* with its NUL */
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_START, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_start.id, 7);
    assert_int_equal(msg.u.xfer_start.keyfile_len, strlen(keyfile));
    assert_ptr_equal(msg.u.xfer_start.keyfile, (const char *)bb.d + 4);
    assert_string_equal(msg.u.xfer_start.keyfile, keyfile);

    /* just the NUL: an empty key file, syntactically fine */
    build_start(8, "", 1);
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_START, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_start.keyfile_len, 0);
}

static void test_xfer_start_bad(void **state)
{
    build_start(7, keyfile, strlen(keyfile));   /* no NUL */
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_START, &L_NONE), VDP_ERR_UNTERMINATED);
    build_start(7, "", 0);                      /* no text at all */
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_START, &L_NONE), VDP_ERR_UNTERMINATED);
    assert_int_equal(host(VD_AGENT_FILE_XFER_START, bb.d, 3, &L_NONE), VDP_ERR_TRUNCATED);

    /* bytes after the first NUL */
    build_start(7, keyfile, sizeof(keyfile));
    b_u8(&bb, 'x');
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_START, &L_NONE), VDP_ERR_TRAILING);
    build_start(7, "a\0b\0", 4);                /* early NUL */
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_START, &L_NONE), VDP_ERR_TRAILING);
    assert_text("2 bytes after", NULL);

    /* from the guest: never */
    build_start(7, keyfile, sizeof(keyfile));
    assert_int_equal(guest(VD_AGENT_FILE_XFER_START, bb.d, bb.n, &L_NONE),
                     VDP_ERR_WRONG_DIRECTION);
}

static void test_xfer_start_limit(void **state)
{
    size_t text = VDP_MAX_FILE_XFER_START_SIZE;
    uint8_t *buf = calloc(1, 4 + text + 1);
    assert_non_null(buf);
    memset(buf + 4, 'k', text - 1);   /* text + NUL = exactly the limit */
    assert_int_equal(host(VD_AGENT_FILE_XFER_START, buf, 4 + text, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_start.keyfile_len, text - 1);
    assert_int_equal(4 + text, vdp_msg_max_payload(VD_AGENT_FILE_XFER_START));
    buf[4 + text - 1] = 'k';
    assert_int_equal(host(VD_AGENT_FILE_XFER_START, buf, 4 + text + 1, &L_NONE),
                     VDP_ERR_TOO_LARGE);
    free(buf);
}

/* ---------------------------------------------------------------------
 * FILE_XFER_STATUS
 * --------------------------------------------------------------------- */

static void test_xfer_status_plain(void **state)
{
    static const uint8_t wire[] = {0x05, 0, 0, 0, 0x03, 0, 0, 0};
    assert_int_equal(guest(VD_AGENT_FILE_XFER_STATUS, wire, 8, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_status.id, 5);
    assert_int_equal(msg.u.xfer_status.result, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    assert_false(msg.u.xfer_status.has_detail);
    assert_int_equal(msg.u.xfer_status.disk_free_space, 0);
    /* both directions */
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 8, &L_NONE), VDP_OK);
    /* every known result without detail */
    uint8_t w[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    for (uint8_t r = 0; r <= VD_AGENT_FILE_XFER_STATUS_DISABLED; r++) {
        w[4] = r;
        assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, w, 8, &L_NONE), VDP_OK);
        assert_int_equal(msg.u.xfer_status.result, r);
    }
}

static void test_xfer_status_detail(void **state)
{
    static const uint8_t space[] = {
        0x05, 0, 0, 0, 0x04, 0, 0, 0,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    };
    assert_int_equal(guest(VD_AGENT_FILE_XFER_STATUS, space, sizeof(space), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_status.result, VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE);
    assert_true(msg.u.xfer_status.has_detail);
    assert_true(msg.u.xfer_status.disk_free_space == 0x0102030405060708ull);

    static const uint8_t error[] = {
        0x06, 0, 0, 0, 0x02, 0, 0, 0,
        0x00,                      /* GLIB_IO */
        0x1F, 0x00, 0x00, 0x00,    /* G_IO_ERROR_TOO_MANY_OPEN_FILES, unaligned */
    };
    assert_int_equal(guest(VD_AGENT_FILE_XFER_STATUS, error, sizeof(error), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_status.id, 6);
    assert_int_equal(msg.u.xfer_status.result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    assert_true(msg.u.xfer_status.has_detail);
    assert_int_equal(msg.u.xfer_status.error_type, VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO);
    assert_int_equal(msg.u.xfer_status.error_code, 31);
}

static void test_xfer_status_bad(void **state)
{
    uint8_t wire[20] = {0x05, 0, 0, 0, 0x02, 0};
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 7, &L_NONE), VDP_ERR_TRUNCATED);
    /* ERROR: only exactly 5 detail bytes */
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 12, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 14, &L_NONE), VDP_ERR_TRAILING);
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 16, &L_NONE), VDP_ERR_TRAILING);
    assert_text("error", "13 bytes");
    /* NOT_ENOUGH_SPACE: only exactly 8 */
    wire[4] = VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE;
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 13, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 17, &L_NONE), VDP_ERR_TRAILING);
    /* statuses without a detail kind take no extra bytes */
    wire[4] = VD_AGENT_FILE_XFER_STATUS_SUCCESS;
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 12, &L_NONE), VDP_ERR_TRAILING);
    wire[4] = VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED;
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 9, &L_NONE), VDP_ERR_TRAILING);
    /* unknown result */
    wire[4] = VD_AGENT_FILE_XFER_STATUS_DISABLED + 1;
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 8, &L_NONE), VDP_ERR_RANGE);
    assert_text("result 8", NULL);
    wire[4] = 0;
    wire[7] = 0x80;
    assert_int_equal(host(VD_AGENT_FILE_XFER_STATUS, wire, 8, &L_NONE), VDP_ERR_RANGE);
}

/* ---------------------------------------------------------------------
 * FILE_XFER_DATA
 * --------------------------------------------------------------------- */

static void build_data(uint32_t id, uint64_t size_field, size_t real)
{
    b_reset(&bb);
    b_u32(&bb, id);
    b_u64(&bb, size_field);
    for (size_t i = 0; i < real; i++)
        b_u8(&bb, (uint8_t)i);
}

static void test_xfer_data_valid(void **state)
{
    static const uint8_t wire[] = {
        0x09, 0, 0, 0,
        0x03, 0, 0, 0, 0, 0, 0, 0,
        'a', 'b', 'c',
    };
    assert_int_equal(host(VD_AGENT_FILE_XFER_DATA, wire, sizeof(wire), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_data.id, 9);
    assert_int_equal(msg.u.xfer_data.size, 3);
    assert_ptr_equal(msg.u.xfer_data.data, wire + 12);
    build_data(1, 0, 0);
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_DATA, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_data.size, 0);
}

static void test_xfer_data_size_mismatch(void **state)
{
    build_data(1, 100, 99);
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_DATA, &L_NONE), VDP_ERR_OVERFLOW);
    assert_text("100", "99");
    build_data(1, 98, 99);
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_DATA, &L_NONE), VDP_ERR_TRAILING);
    /* a u64 that would wrap a 32-bit size, and the largest u64 */
    build_data(1, 0x100000003ull, 3);
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_DATA, &L_NONE), VDP_ERR_OVERFLOW);
    build_data(1, ~0ull, 3);
    assert_int_equal(host_b(VD_AGENT_FILE_XFER_DATA, &L_NONE), VDP_ERR_OVERFLOW);
    build_data(1, 0, 0);
    assert_int_equal(host(VD_AGENT_FILE_XFER_DATA, bb.d, 11, &L_NONE), VDP_ERR_TRUNCATED);
}

static void test_xfer_data_limit(void **state)
{
    size_t body = VDP_MAX_FILE_XFER_DATA + 1;
    uint8_t *buf = calloc(1, 12 + body);
    assert_non_null(buf);
    buf[4] = (uint8_t)body;
    buf[5] = (uint8_t)(body >> 8);
    buf[6] = (uint8_t)(body >> 16);
    assert_int_equal(host(VD_AGENT_FILE_XFER_DATA, buf, 12 + body, &L_NONE), VDP_ERR_TOO_LARGE);
    body--;
    buf[4] = (uint8_t)body;
    buf[5] = (uint8_t)(body >> 8);
    buf[6] = (uint8_t)(body >> 16);
    assert_int_equal(host(VD_AGENT_FILE_XFER_DATA, buf, 12 + body, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.xfer_data.size, VDP_MAX_FILE_XFER_DATA);
    free(buf);
}

static void test_xfer_data_stream_head(void **state)
{
    build_data(4, 70000, 0);
    assert_int_equal(vdp_msg_stream_head_size(VD_AGENT_FILE_XFER_DATA, &L_ALL), 12);
    memset(&msg, 0x5A, sizeof(msg));
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_FILE_XFER_DATA, bb.d, 12, 70012, &L_ALL,
                                                &msg, &err),
                     VDP_OK);
    assert_int_equal(msg.type, VD_AGENT_FILE_XFER_DATA);
    assert_int_equal(msg.u.xfer_data.id, 4);
    assert_int_equal(msg.u.xfer_data.size, 70000);
    assert_null(msg.u.xfer_data.data);
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_FILE_XFER_DATA, bb.d, 12, 70013, &L_ALL,
                                                &msg, &err),
                     VDP_ERR_TRAILING);
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_FILE_XFER_DATA, bb.d, 12, 70011, &L_ALL,
                                                &msg, &err),
                     VDP_ERR_OVERFLOW);
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_FILE_XFER_DATA, bb.d, 11, 70012, &L_ALL,
                                                &msg, &err),
                     VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_GUEST, VDP_CLIENT_PORT,
                                                VD_AGENT_FILE_XFER_DATA, bb.d, 12, 70012, &L_ALL,
                                                &msg, &err),
                     VDP_ERR_WRONG_DIRECTION);
    build_data(4, VDP_MAX_FILE_XFER_DATA + 1ull, 0);
    assert_int_equal(vdp_msg_decode_stream_head(VDP_FROM_HOST, VDP_CLIENT_PORT,
                                                VD_AGENT_FILE_XFER_DATA, bb.d, 12,
                                                12 + VDP_MAX_FILE_XFER_DATA + 1, &L_ALL, &msg,
                                                &err),
                     VDP_ERR_TOO_LARGE);
}

/* ---------------------------------------------------------------------
 * AUDIO_VOLUME_SYNC
 * --------------------------------------------------------------------- */

static void test_volume_valid(void **state)
{
    static const uint8_t wire[] = {
        0x01, 0x00, 0x02,
        0x34, 0x12,    /* 0x1234 at offset 3: unaligned */
        0xFF, 0xFF,
    };
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, wire, sizeof(wire), &L_NONE), VDP_OK);
    assert_int_equal(msg.u.volume.is_playback, 1);
    assert_int_equal(msg.u.volume.mute, 0);
    assert_int_equal(msg.u.volume.nchannels, 2);
    assert_int_equal(msg.u.volume.volume[0], 0x1234);
    assert_int_equal(msg.u.volume.volume[1], 0xFFFF);

    static const uint8_t mute_only[] = {0x00, 0x01, 0x00};
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, mute_only, 3, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.volume.nchannels, 0);
    assert_int_equal(msg.u.volume.mute, 1);

    b_reset(&bb);
    b_u8(&bb, 0);
    b_u8(&bb, 0);
    b_u8(&bb, 255);
    for (unsigned i = 0; i < 255; i++)
        b_u16(&bb, (uint16_t)(i * 257));
    assert_int_equal(host_b(VD_AGENT_AUDIO_VOLUME_SYNC, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.volume.nchannels, 255);
    assert_int_equal(msg.u.volume.volume[254], 254 * 257);
}

static void test_volume_bad(void **state)
{
    uint8_t wire[] = {0x01, 0x00, 0x02, 0x00, 0x10, 0x00, 0x20, 0x00};
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, wire, 2, &L_NONE), VDP_ERR_TRUNCATED);
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, wire, 6, &L_NONE), VDP_ERR_OVERFLOW);
    assert_text("2 channels need 7 bytes", "got 6");
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, wire, 8, &L_NONE), VDP_ERR_TRAILING);
    wire[2] = 255;   /* 513 bytes needed */
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, wire, 7, &L_NONE), VDP_ERR_OVERFLOW);
    wire[2] = 2;
    wire[0] = 2;
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, wire, 7, &L_NONE), VDP_ERR_RANGE);
    assert_text("is_playback", NULL);
    wire[0] = 0;
    wire[1] = 0xFF;
    assert_int_equal(host(VD_AGENT_AUDIO_VOLUME_SYNC, wire, 7, &L_NONE), VDP_ERR_RANGE);
    assert_text("mute", NULL);
}

/* ---------------------------------------------------------------------
 * GRAPHICS_DEVICE_INFO
 * --------------------------------------------------------------------- */

static void test_device_info_valid(void **state)
{
    static const uint8_t wire[] = {
        0x02, 0, 0, 0,                      /* 2 entries */
        0x00, 0, 0, 0,                      /* channel 0 */
        0x01, 0, 0, 0,                      /* monitor 1 */
        0x03, 0, 0, 0,                      /* device display 3 */
        0x0E, 0, 0, 0,                      /* 14 bytes with NUL */
        'p', 'c', 'i', '/', '0', '0', '0', '0', '/', '0', '2', '.', '0', 0,
        0x01, 0, 0, 0,
        0x00, 0, 0, 0,
        0x00, 0, 0, 0,
        0x01, 0, 0, 0,                      /* just the NUL */
        0,
    };
    assert_int_equal(host(VD_AGENT_GRAPHICS_DEVICE_INFO, wire, sizeof(wire), &L_NONE), VDP_OK);
    const VdpGraphicsDeviceInfo *di = &msg.u.device_info;
    assert_int_equal(di->count, 2);
    assert_int_equal(di->info[0].channel_id, 0);
    assert_int_equal(di->info[0].monitor_id, 1);
    assert_int_equal(di->info[0].device_display_id, 3);
    assert_int_equal(di->info[0].device_address_len, 14);
    assert_string_equal(di->info[0].device_address, "pci/0000/02.0");
    assert_ptr_equal(di->info[0].device_address, (const char *)wire + 20);
    assert_int_equal(di->info[1].channel_id, 1);
    assert_int_equal(di->info[1].device_address_len, 1);
    assert_string_equal(di->info[1].device_address, "");

    static const uint8_t none[] = {0, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_GRAPHICS_DEVICE_INFO, none, 4, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.device_info.count, 0);
}

static void build_device(uint32_t count, uint32_t addr_len, const char *addr, size_t addr_bytes)
{
    b_reset(&bb);
    b_u32(&bb, count);
    for (uint32_t i = 0; i < count; i++) {
        b_u32(&bb, i);
        b_u32(&bb, 0);
        b_u32(&bb, i);
        b_u32(&bb, addr_len);
        b_bytes(&bb, addr, addr_bytes);
    }
}

static void test_device_info_counts(void **state)
{
    /* the count alone claims 2^32-1 entries */
    static const uint8_t huge[] = {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_GRAPHICS_DEVICE_INFO, huge, sizeof(huge), &L_NONE),
                     VDP_ERR_OVERFLOW);
    assert_int_equal(host(VD_AGENT_GRAPHICS_DEVICE_INFO, huge, 3, &L_NONE), VDP_ERR_TRUNCATED);

    build_device(VDP_MAX_DEVICE_DISPLAYS, 4, "abc", 4);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_OK);
    assert_int_equal(msg.u.device_info.count, VDP_MAX_DEVICE_DISPLAYS);
    assert_int_equal(msg.u.device_info.info[255].channel_id, 255);
    assert_string_equal(msg.u.device_info.info[255].device_address, "abc");

    build_device(VDP_MAX_DEVICE_DISPLAYS + 1, 4, "abc", 4);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_TOO_LARGE);
    assert_text("257 entries", "256");

    /* the largest legal message is the type's limit */
    assert_int_equal(4 + VDP_MAX_DEVICE_DISPLAYS * (16 + VDP_MAX_DEVICE_ADDRESS),
                     vdp_msg_max_payload(VD_AGENT_GRAPHICS_DEVICE_INFO));
}

static void test_device_info_entry_header(void **state)
{
    /* count 1, but only 10 bytes of the 16-byte entry header */
    b_reset(&bb);
    b_u32(&bb, 1);
    for (int i = 0; i < 13; i++)
        b_u8(&bb, 0);
    /* 13 bytes < 17 minimum for one entry: counted as overflow */
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_OVERFLOW);

    /* two entries, the first long enough that the second's header is cut */
    build_device(1, 20, "0123456789012345678", 20);
    bb.d[0] = 2;
    for (int i = 0; i < 10; i++)
        b_u8(&bb, 0);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_TRUNCATED);
    assert_text("entry 1", "16-byte header");
}

static void test_device_info_address_len(void **state)
{
    build_device(1, 0, "x", 1);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_RANGE);
    assert_text("entry 0", "empty");

    build_device(1, 0xFFFFFFFFu, "abc", 4);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_TOO_LARGE);
    build_device(1, 0x80000000u, "abc", 4);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_TOO_LARGE);
    build_device(1, VDP_MAX_DEVICE_ADDRESS + 1, "abc", 4);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_TOO_LARGE);

    /* length within the limit but beyond the message */
    build_device(1, 10, "abcd", 5);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_OVERFLOW);
    assert_text("10 bytes", "5 bytes left");

    /* the largest legal address */
    char big[VDP_MAX_DEVICE_ADDRESS];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    build_device(1, sizeof(big), big, sizeof(big));
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_OK);
    assert_int_equal(strlen(msg.u.device_info.info[0].device_address), sizeof(big) - 1);
}

static void test_device_info_address_nul(void **state)
{
    build_device(1, 4, "abcd", 4);   /* no NUL */
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_UNTERMINATED);
    build_device(1, 5, "ab\0d", 5);  /* NUL inside, and at the end */
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_RANGE);
    assert_text("NUL at 2", NULL);
    build_device(1, 4, "ab\0d", 4);  /* NUL inside only */
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_RANGE);
}

static void test_device_info_trailing(void **state)
{
    build_device(2, 4, "abc", 4);
    b_u8(&bb, 0);
    assert_int_equal(host_b(VD_AGENT_GRAPHICS_DEVICE_INFO, &L_NONE), VDP_ERR_TRAILING);
    static const uint8_t zero_plus[] = {0, 0, 0, 0, 0};
    assert_int_equal(host(VD_AGENT_GRAPHICS_DEVICE_INFO, zero_plus, 5, &L_NONE),
                     VDP_ERR_TRAILING);
}

/* ---------------------------------------------------------------------
 * Round trips: encode a native struct, decode it, compare every field.
 * --------------------------------------------------------------------- */

static uint8_t wire_buf[80 * 1024];

static size_t encode_ok(const VdpMsg *m, const VdpLayout *layout)
{
    size_t need = vdp_msg_encode_payload(m, layout, NULL, 0, &err);
    assert_int_equal(err.code, VDP_OK);
    size_t n = vdp_msg_encode_payload(m, layout, wire_buf, sizeof(wire_buf), &err);
    assert_int_equal(err.code, VDP_OK);
    assert_int_equal(n, need);
    return n;
}

/* Encodes *in, decodes it as sent by dir into msg (global). */
static size_t roundtrip(VdpDir dir, const VdpMsg *in, const VdpLayout *layout)
{
    size_t n = encode_ok(in, layout);
    assert_int_equal(decode(dir, in->type, wire_buf, n, layout), VDP_OK);
    return n;
}

static void init_msg(VdpMsg *m, uint32_t type)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
}

static void test_rt_mouse(void **state)
{
    init_msg(&msg2, VD_AGENT_MOUSE_STATE);
    msg2.u.mouse = (VdpMouseState){0xFFFFFFFFu, 7, VD_AGENT_EBUTTON_MASK, 255};
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_ALL), 13);
    assert_int_equal(msg.u.mouse.x, 0xFFFFFFFFu);
    assert_int_equal(msg.u.mouse.y, 7);
    assert_int_equal(msg.u.mouse.buttons, VD_AGENT_EBUTTON_MASK);
    assert_int_equal(msg.u.mouse.display_id, 255);
}

static void rt_monitors(uint32_t flags, size_t want_size)
{
    init_msg(&msg2, VD_AGENT_MONITORS_CONFIG);
    msg2.u.monitors.flags = flags;
    msg2.u.monitors.count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        VdpMonConfig *m = &msg2.u.monitors.monitors[i];
        *m = (VdpMonConfig){1920 + i, 1080 - i, 32, -(int32_t)i * 100, (int32_t)i,
                            (uint16_t)(500 + i), (uint16_t)(300 + i)};
    }
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_NONE), want_size);
    bool mm = flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE;
    assert_int_equal(msg.u.monitors.count, 3);
    assert_int_equal(msg.u.monitors.flags, flags);
    for (uint32_t i = 0; i < 3; i++) {
        const VdpMonConfig *a = &msg2.u.monitors.monitors[i], *b = &msg.u.monitors.monitors[i];
        assert_int_equal(b->width, a->width);
        assert_int_equal(b->height, a->height);
        assert_int_equal(b->depth, a->depth);
        assert_int_equal(b->x, a->x);
        assert_int_equal(b->y, a->y);
        assert_int_equal(b->mm_width, mm ? a->mm_width : 0);
        assert_int_equal(b->mm_height, mm ? a->mm_height : 0);
    }
}

static void test_rt_monitors(void **state)
{
    rt_monitors(0, 8 + 3 * 20);
    rt_monitors(VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS, 8 + 3 * 20);
    rt_monitors(VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS | VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE,
                8 + 3 * 24);
    /* height before width on the wire */
    assert_int_equal(wire_buf[8], (1080 & 0xFF));
    assert_int_equal(wire_buf[12], (1920 & 0xFF));
    /* mm height before mm width, after all monitors */
    assert_int_equal(wire_buf[8 + 60], 300 & 0xFF);
    assert_int_equal(wire_buf[8 + 62], 500 & 0xFF);
}

static void test_rt_reply(void **state)
{
    init_msg(&msg2, VD_AGENT_REPLY);
    msg2.u.reply = (VdpReply){VD_AGENT_MONITORS_CONFIG, VD_AGENT_SUCCESS};
    assert_int_equal(roundtrip(VDP_FROM_GUEST, &msg2, &L_NONE), 8);
    assert_int_equal(msg.u.reply.type, VD_AGENT_MONITORS_CONFIG);
    assert_int_equal(msg.u.reply.error, VD_AGENT_SUCCESS);
    static const uint8_t want[] = {2, 0, 0, 0, 1, 0, 0, 0};
    assert_memory_equal(wire_buf, want, sizeof(want));
}

static void rt_clipboard(const VdpLayout *layout, uint8_t sel, size_t want)
{
    static const uint8_t data[] = "hello, clipboard";
    init_msg(&msg2, VD_AGENT_CLIPBOARD);
    msg2.u.clipboard = (VdpClipboard){sel, VD_AGENT_CLIPBOARD_UTF8_TEXT, data, sizeof(data)};
    assert_int_equal(roundtrip(VDP_FROM_GUEST, &msg2, layout), want);
    assert_int_equal(msg.u.clipboard.selection, sel);
    assert_int_equal(msg.u.clipboard.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(msg.u.clipboard.size, sizeof(data));
    assert_memory_equal(msg.u.clipboard.data, data, sizeof(data));
}

static void test_rt_clipboard(void **state)
{
    rt_clipboard(&L_NONE, 0, 4 + 17);
    rt_clipboard(&L_SEL, 1, 8 + 17);
    assert_memory_equal(wire_buf, "\x01\x00\x00\x00\x01\x00\x00\x00", 8);
    rt_clipboard(&L_ALL, 2, 8 + 17);

    init_msg(&msg2, VD_AGENT_CLIPBOARD);
    msg2.u.clipboard.type = VD_AGENT_CLIPBOARD_NONE;
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_SEL), 8);
    assert_int_equal(msg.u.clipboard.type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(msg.u.clipboard.size, 0);
}

static void test_rt_display_config(void **state)
{
    init_msg(&msg2, VD_AGENT_DISPLAY_CONFIG);
    msg2.u.display_config = (VdpDisplayConfig){VD_AGENT_DISPLAY_CONFIG_FLAG_SET_COLOR_DEPTH, 16};
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_NONE), 8);
    assert_int_equal(msg.u.display_config.flags, VD_AGENT_DISPLAY_CONFIG_FLAG_SET_COLOR_DEPTH);
    assert_int_equal(msg.u.display_config.depth, 16);
}

static void test_rt_announce(void **state)
{
    init_msg(&msg2, VD_AGENT_ANNOUNCE_CAPABILITIES);
    msg2.u.announce.request = 1;
    vdp_caps_init_guest(&msg2.u.announce.caps);
    vdp_caps_set(&msg2.u.announce.caps, 70);
    assert_int_equal(roundtrip(VDP_FROM_GUEST, &msg2, &L_NONE), 4 + 3 * 4);
    assert_int_equal(msg.u.announce.request, 1);
    assert_int_equal(msg.u.announce.caps.nwords, 3);
    assert_true(vdp_caps_equal(&msg.u.announce.caps, &msg2.u.announce.caps));
    assert_memory_equal(wire_buf, "\x01\x00\x00\x00\xE7\xDD\x03\x00", 8);
}

static void rt_grab(const VdpLayout *layout, uint8_t sel, uint32_t serial, size_t want)
{
    init_msg(&msg2, VD_AGENT_CLIPBOARD_GRAB);
    msg2.u.grab.selection = sel;
    msg2.u.grab.serial = serial;
    msg2.u.grab.ntypes = 3;
    msg2.u.grab.types[0] = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    msg2.u.grab.types[1] = VD_AGENT_CLIPBOARD_IMAGE_PNG;
    msg2.u.grab.types[2] = 99;
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, layout), want);
    assert_int_equal(msg.u.grab.selection, sel);
    assert_int_equal(msg.u.grab.serial, layout->grab_serial ? serial : 0);
    assert_int_equal(msg.u.grab.ntypes, 3);
    assert_memory_equal(msg.u.grab.types, msg2.u.grab.types, 3 * sizeof(uint32_t));
}

static void test_rt_grab(void **state)
{
    rt_grab(&L_NONE, 0, 5, 12);    /* serial not written without the cap */
    rt_grab(&L_SERIAL, 0, 5, 16);
    rt_grab(&L_SEL, 1, 5, 16);
    rt_grab(&L_ALL, 2, 0xDEADBEEF, 20);
    assert_memory_equal(wire_buf, "\x02\x00\x00\x00\xEF\xBE\xAD\xDE\x01\x00\x00\x00", 12);
}

static void test_rt_request_release(void **state)
{
    init_msg(&msg2, VD_AGENT_CLIPBOARD_REQUEST);
    msg2.u.request = (VdpClipboardRequest){1, VD_AGENT_CLIPBOARD_IMAGE_BMP};
    assert_int_equal(roundtrip(VDP_FROM_GUEST, &msg2, &L_ALL), 8);
    assert_int_equal(msg.u.request.selection, 1);
    assert_int_equal(msg.u.request.type, VD_AGENT_CLIPBOARD_IMAGE_BMP);
    msg2.u.request.selection = 0;
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_NONE), 4);
    assert_int_equal(msg.u.request.type, VD_AGENT_CLIPBOARD_IMAGE_BMP);

    init_msg(&msg2, VD_AGENT_CLIPBOARD_RELEASE);
    msg2.u.release.selection = 2;
    assert_int_equal(roundtrip(VDP_FROM_GUEST, &msg2, &L_SEL), 4);
    assert_int_equal(msg.u.release.selection, 2);
    assert_memory_equal(wire_buf, "\x02\x00\x00\x00", 4);
    msg2.u.release.selection = 0;
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_NONE), 0);
    assert_int_equal(err.code, VDP_OK);
}

static void test_rt_xfer_start(void **state)
{
    init_msg(&msg2, VD_AGENT_FILE_XFER_START);
    msg2.u.xfer_start = (VdpFileXferStart){42, keyfile, strlen(keyfile)};
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_ALL), 4 + sizeof(keyfile));
    assert_int_equal(wire_buf[4 + strlen(keyfile)], 0);   /* NUL written */
    assert_int_equal(msg.u.xfer_start.id, 42);
    assert_int_equal(msg.u.xfer_start.keyfile_len, strlen(keyfile));
    assert_string_equal(msg.u.xfer_start.keyfile, keyfile);

    msg2.u.xfer_start = (VdpFileXferStart){1, NULL, 0};
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_ALL), 5);
    assert_int_equal(msg.u.xfer_start.keyfile_len, 0);
}

static void rt_status(uint32_t result, bool detail, size_t want)
{
    init_msg(&msg2, VD_AGENT_FILE_XFER_STATUS);
    VdpFileXferStatus *st = &msg2.u.xfer_status;
    st->id = 77;
    st->result = result;
    st->has_detail = detail;
    if (result == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE)
        st->disk_free_space = 0x123456789ull;
    if (result == VD_AGENT_FILE_XFER_STATUS_ERROR) {
        st->error_type = VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO;
        st->error_code = 12;
    }
    assert_int_equal(roundtrip(VDP_FROM_GUEST, &msg2, &L_NONE), want);
    const VdpFileXferStatus *got = &msg.u.xfer_status;
    assert_int_equal(got->id, 77);
    assert_int_equal(got->result, result);
    assert_int_equal(got->has_detail, detail);
    assert_true(got->disk_free_space == (detail ? st->disk_free_space : 0));
    assert_int_equal(got->error_type, detail ? st->error_type : 0);
    assert_int_equal(got->error_code, detail ? st->error_code : 0);
}

static void test_rt_xfer_status(void **state)
{
    for (uint32_t r = 0; r <= VD_AGENT_FILE_XFER_STATUS_DISABLED; r++)
        rt_status(r, false, 8);
    rt_status(VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE, true, 16);
    assert_memory_equal(wire_buf + 8, "\x89\x67\x45\x23\x01\x00\x00\x00", 8);
    rt_status(VD_AGENT_FILE_XFER_STATUS_ERROR, true, 13);
    assert_memory_equal(wire_buf + 8, "\x00\x0C\x00\x00\x00", 5);
}

static void test_rt_xfer_data(void **state)
{
    static const uint8_t data[300] = {1, 2, 3};
    init_msg(&msg2, VD_AGENT_FILE_XFER_DATA);
    msg2.u.xfer_data = (VdpFileXferData){3, sizeof(data), data};
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_NONE), 12 + sizeof(data));
    assert_int_equal(msg.u.xfer_data.id, 3);
    assert_int_equal(msg.u.xfer_data.size, sizeof(data));
    assert_memory_equal(msg.u.xfer_data.data, data, sizeof(data));
    assert_memory_equal(wire_buf + 4, "\x2C\x01\x00\x00\x00\x00\x00\x00", 8);
}

static void test_rt_small_types(void **state)
{
    init_msg(&msg2, VD_AGENT_CLIENT_DISCONNECTED);
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_ALL), 0);

    init_msg(&msg2, VD_AGENT_MAX_CLIPBOARD);
    msg2.u.max_clipboard.max = -1;
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_ALL), 4);
    assert_int_equal(msg.u.max_clipboard.max, -1);
    msg2.u.max_clipboard.max = 0x7FFFFFFF;
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_ALL), 4);
    assert_int_equal(msg.u.max_clipboard.max, 0x7FFFFFFF);
}

static void test_rt_volume(void **state)
{
    init_msg(&msg2, VD_AGENT_AUDIO_VOLUME_SYNC);
    VdpAudioVolumeSync *v = &msg2.u.volume;
    v->is_playback = 0;
    v->mute = 1;
    v->nchannels = 255;
    for (unsigned i = 0; i < 255; i++)
        v->volume[i] = (uint16_t)(65535 - i);
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_NONE), 3 + 2 * 255);
    assert_int_equal(msg.u.volume.is_playback, 0);
    assert_int_equal(msg.u.volume.mute, 1);
    assert_int_equal(msg.u.volume.nchannels, 255);
    assert_memory_equal(msg.u.volume.volume, v->volume, sizeof(v->volume));
    assert_memory_equal(wire_buf + 3, "\xFF\xFF\xFE\xFF", 4);
}

static void test_rt_device_info(void **state)
{
    static const char *const addrs[] = {"pci/0000/02.0", "pci/0000/00.1/03.0", ""};
    init_msg(&msg2, VD_AGENT_GRAPHICS_DEVICE_INFO);
    msg2.u.device_info.count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        VdpDeviceDisplayInfo *e = &msg2.u.device_info.info[i];
        *e = (VdpDeviceDisplayInfo){i, i + 10, i + 20, addrs[i],
                                    (uint32_t)strlen(addrs[i]) + 1};
    }
    assert_int_equal(roundtrip(VDP_FROM_HOST, &msg2, &L_NONE), 4 + 3 * 16 + 14 + 19 + 1);
    assert_int_equal(msg.u.device_info.count, 3);
    for (uint32_t i = 0; i < 3; i++) {
        const VdpDeviceDisplayInfo *e = &msg.u.device_info.info[i];
        assert_int_equal(e->channel_id, i);
        assert_int_equal(e->monitor_id, i + 10);
        assert_int_equal(e->device_display_id, i + 20);
        assert_int_equal(e->device_address_len, strlen(addrs[i]) + 1);
        assert_string_equal(e->device_address, addrs[i]);
    }
}

/* ---------------------------------------------------------------------
 * Encoder validation and buffers
 * --------------------------------------------------------------------- */

static VdpResult encode_err(const VdpMsg *m, const VdpLayout *layout)
{
    memset(&err, 0, sizeof(err));
    assert_int_equal(vdp_msg_encode_payload(m, layout, wire_buf, sizeof(wire_buf), &err), 0);
    assert_int_not_equal(err.code, VDP_OK);
    assert_int_equal(vdp_msg_encode_payload(m, layout, NULL, 0, &err), 0);
    return err.code;
}

static void test_encode_invalid_counts(void **state)
{
    init_msg(&msg2, VD_AGENT_MONITORS_CONFIG);
    msg2.u.monitors.count = VDP_MAX_MONITORS + 1;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_TOO_LARGE);

    init_msg(&msg2, VD_AGENT_CLIPBOARD_GRAB);
    assert_int_equal(encode_err(&msg2, &L_ALL), VDP_ERR_RANGE);   /* no types */
    msg2.u.grab.ntypes = VDP_MAX_GRAB_TYPES + 1;
    assert_int_equal(encode_err(&msg2, &L_ALL), VDP_ERR_TOO_LARGE);

    init_msg(&msg2, VD_AGENT_ANNOUNCE_CAPABILITIES);
    msg2.u.announce.caps.nwords = VDP_MAX_CAPS_WORDS + 1;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_TOO_LARGE);

    init_msg(&msg2, VD_AGENT_GRAPHICS_DEVICE_INFO);
    msg2.u.device_info.count = VDP_MAX_DEVICE_DISPLAYS + 1;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_TOO_LARGE);

    init_msg(&msg2, VD_AGENT_FILE_XFER_DATA);
    msg2.u.xfer_data = (VdpFileXferData){1, VDP_MAX_FILE_XFER_DATA + 1ull, wire_buf};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_TOO_LARGE);
    msg2.u.xfer_data = (VdpFileXferData){1, 10, NULL};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
}

static void test_encode_invalid_values(void **state)
{
    init_msg(&msg2, VD_AGENT_CLIPBOARD_REQUEST);
    msg2.u.request.type = VD_AGENT_CLIPBOARD_NONE;
    assert_int_equal(encode_err(&msg2, &L_SEL), VDP_ERR_RANGE);
    msg2.u.request.type = 1;
    msg2.u.request.selection = 1;   /* not expressible without the prefix */
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    assert_text("clipboard-selection", NULL);
    msg2.u.request.selection = 3;
    assert_int_equal(encode_err(&msg2, &L_SEL), VDP_ERR_RANGE);

    init_msg(&msg2, VD_AGENT_CLIPBOARD);
    msg2.u.clipboard = (VdpClipboard){0, VD_AGENT_CLIPBOARD_NONE, wire_buf, 3};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    msg2.u.clipboard = (VdpClipboard){0, 7, wire_buf, 3};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    msg2.u.clipboard = (VdpClipboard){0, 1, NULL, 3};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);

    init_msg(&msg2, VD_AGENT_REPLY);
    msg2.u.reply = (VdpReply){VD_AGENT_MONITORS_CONFIG, 0};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    msg2.u.reply = (VdpReply){0, VD_AGENT_SUCCESS};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);

    init_msg(&msg2, VD_AGENT_FILE_XFER_STATUS);
    msg2.u.xfer_status.result = VD_AGENT_FILE_XFER_STATUS_SUCCESS;
    msg2.u.xfer_status.has_detail = true;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    msg2.u.xfer_status.has_detail = false;
    msg2.u.xfer_status.result = 8;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);

    init_msg(&msg2, VD_AGENT_AUDIO_VOLUME_SYNC);
    msg2.u.volume.mute = 2;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);

    init_msg(&msg2, VD_AGENT_FILE_XFER_START);
    msg2.u.xfer_start = (VdpFileXferStart){1, "a\0b", 3};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    msg2.u.xfer_start = (VdpFileXferStart){1, NULL, 3};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);

    init_msg(&msg2, 0);
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_UNKNOWN_TYPE);
    init_msg(&msg2, VD_AGENT_END_MESSAGE);
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_UNKNOWN_TYPE);
}

static void test_encode_invalid_device_address(void **state)
{
    init_msg(&msg2, VD_AGENT_GRAPHICS_DEVICE_INFO);
    msg2.u.device_info.count = 1;
    VdpDeviceDisplayInfo *e = &msg2.u.device_info.info[0];
    *e = (VdpDeviceDisplayInfo){0, 0, 0, "abc", 0};
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    e->device_address_len = 3;   /* excludes the NUL */
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_UNTERMINATED);
    e->device_address = "a\0c";
    e->device_address_len = 4;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    e->device_address = NULL;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_RANGE);
    e->device_address_len = VDP_MAX_DEVICE_ADDRESS + 1;
    assert_int_equal(encode_err(&msg2, &L_NONE), VDP_ERR_TOO_LARGE);
}

static void test_encode_buffer(void **state)
{
    uint8_t out[16];
    init_msg(&msg2, VD_AGENT_MOUSE_STATE);
    msg2.u.mouse.x = 1;
    assert_int_equal(vdp_msg_encode_payload(&msg2, &L_NONE, NULL, 0, &err), 13);
    assert_int_equal(err.code, VDP_OK);
    memset(out, 0xEE, sizeof(out));
    assert_int_equal(vdp_msg_encode_payload(&msg2, &L_NONE, out, 12, &err), 0);
    assert_int_equal(err.code, VDP_ERR_BUFFER);
    assert_int_equal(out[0], 0xEE);   /* nothing written */
    assert_int_equal(vdp_msg_encode_payload(&msg2, &L_NONE, out, 13, &err), 13);
    assert_int_equal(err.code, VDP_OK);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[13], 0xEE);

    /* CLIENT_DISCONNECTED: 0 bytes, and that is success */
    init_msg(&msg2, VD_AGENT_CLIENT_DISCONNECTED);
    err.code = VDP_ERR_IO;
    assert_int_equal(vdp_msg_encode_payload(&msg2, &L_NONE, out, 0, &err), 0);
    assert_int_equal(err.code, VDP_OK);
    /* NULL err is allowed */
    assert_int_equal(vdp_msg_encode_payload(&msg2, &L_NONE, out, 0, NULL), 0);
    init_msg(&msg2, VD_AGENT_MONITORS_CONFIG);
    msg2.u.monitors.count = 1000;
    assert_int_equal(vdp_msg_encode_payload(&msg2, &L_NONE, out, sizeof(out), NULL), 0);
}

static void test_encode_full_message(void **state)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    init_msg(&msg2, VD_AGENT_CLIPBOARD_GRAB);
    msg2.u.grab.selection = 1;
    msg2.u.grab.serial = 3;
    msg2.u.grab.ntypes = 1;
    msg2.u.grab.types[0] = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    assert_int_equal(vdp_msg_encode(&msg2, &L_ALL, &buf, &len, &err), VDP_OK);
    assert_int_equal(err.code, VDP_OK);
    assert_int_equal(len, 20 + 12);
    static const uint8_t want[] = {
        0x01, 0, 0, 0,            /* protocol */
        0x07, 0, 0, 0,            /* CLIPBOARD_GRAB */
        0, 0, 0, 0, 0, 0, 0, 0,   /* opaque */
        0x0C, 0, 0, 0,            /* size 12 */
        0x01, 0, 0, 0,
        0x03, 0, 0, 0,
        0x01, 0, 0, 0,
    };
    assert_memory_equal(buf, want, sizeof(want));
    VdpMsgHeader hdr;
    vdp_msg_header_decode(buf, &hdr);
    assert_int_equal(hdr.size, 12);
    assert_int_equal(guest(hdr.type, buf + 20, hdr.size, &L_ALL), VDP_OK);
    assert_int_equal(msg.u.grab.serial, 3);
    free(buf);

    init_msg(&msg2, VD_AGENT_CLIENT_DISCONNECTED);
    assert_int_equal(vdp_msg_encode(&msg2, &L_ALL, &buf, &len, &err), VDP_OK);
    assert_int_equal(len, 20);
    assert_int_equal(buf[4], VD_AGENT_CLIENT_DISCONNECTED);
    assert_int_equal(buf[16], 0);
    free(buf);

    buf = NULL;
    init_msg(&msg2, VD_AGENT_CLIPBOARD_REQUEST);
    assert_int_equal(vdp_msg_encode(&msg2, &L_ALL, &buf, &len, &err), VDP_ERR_RANGE);
    assert_null(buf);
}

/* ---------------------------------------------------------------------
 * describe
 * --------------------------------------------------------------------- */

static void test_describe_grab(void **state)
{
    char buf[128];
    init_msg(&msg2, VD_AGENT_CLIPBOARD_GRAB);
    msg2.u.grab.serial = 3;
    msg2.u.grab.ntypes = 2;
    msg2.u.grab.types[0] = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    msg2.u.grab.types[1] = VD_AGENT_CLIPBOARD_IMAGE_PNG;
    const char *want = "CLIPBOARD_GRAB sel=0 serial=3 types=utf8-text,png";
    assert_int_equal(vdp_msg_describe(&msg2, buf, sizeof(buf)), strlen(want));
    assert_string_equal(buf, want);

    msg2.u.grab.types[1] = 42;
    vdp_msg_describe(&msg2, buf, sizeof(buf));
    assert_string_equal(buf, "CLIPBOARD_GRAB sel=0 serial=3 types=utf8-text,42");
}

static void test_describe_truncation(void **state)
{
    char buf[64];
    init_msg(&msg2, VD_AGENT_CLIPBOARD_GRAB);
    msg2.u.grab.ntypes = 2;
    msg2.u.grab.types[0] = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    msg2.u.grab.types[1] = VD_AGENT_CLIPBOARD_IMAGE_PNG;
    size_t full = vdp_msg_describe(&msg2, NULL, 0);
    assert_int_equal(full, strlen("CLIPBOARD_GRAB sel=0 serial=0 types=utf8-text,png"));
    for (size_t size = 1; size <= full + 1; size++) {
        memset(buf, 'Z', sizeof(buf));
        assert_int_equal(vdp_msg_describe(&msg2, buf, size), full);
        assert_int_equal(strlen(buf), size - 1 < full ? size - 1 : full);
        assert_int_equal(buf[size], 'Z');   /* nothing past size */
    }
}

static void test_describe_all_types(void **state)
{
    char buf[4096];
    for (uint32_t t = 1; t < VD_AGENT_END_MESSAGE; t++) {
        init_msg(&msg2, t);
        size_t n = vdp_msg_describe(&msg2, buf, sizeof(buf));
        assert_int_equal(n, strlen(buf));
        assert_memory_equal(buf, vdp_msg_type_name(t), strlen(vdp_msg_type_name(t)));
        assert_null(strchr(buf, '\n'));
    }
    init_msg(&msg2, 99);
    vdp_msg_describe(&msg2, buf, sizeof(buf));
    assert_string_equal(buf, "type 99");

    /* decoded messages describe their content */
    assert_int_equal(host(VD_AGENT_MONITORS_CONFIG, spice_gtk_monitors,
                          sizeof(spice_gtk_monitors), &L_NONE),
                     VDP_OK);
    vdp_msg_describe(&msg, buf, sizeof(buf));
    assert_non_null(strstr(buf, "1366x768"));
    assert_non_null(strstr(buf, "361x203mm"));

    init_msg(&msg2, VD_AGENT_FILE_XFER_STATUS);
    msg2.u.xfer_status = (VdpFileXferStatus){9, VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE,
                                             true, 1000, 0, 0};
    vdp_msg_describe(&msg2, buf, sizeof(buf));
    assert_string_equal(buf, "FILE_XFER_STATUS id=9 result=not-enough-space free=1000");

    init_msg(&msg2, VD_AGENT_ANNOUNCE_CAPABILITIES);
    msg2.u.announce.request = 1;
    vdp_caps_set(&msg2.u.announce.caps, VD_AGENT_CAP_REPLY);
    vdp_caps_set(&msg2.u.announce.caps, 40);
    vdp_msg_describe(&msg2, buf, sizeof(buf));
    assert_string_equal(buf, "ANNOUNCE_CAPABILITIES request=1 caps=reply,bit40");
}

static void test_describe_hostile_content(void **state)
{
    char buf[2048];
    /* control characters in a host-supplied address are not logged raw */
    static const char addr[] = "pci\n\x1b[31m/0";
    init_msg(&msg2, VD_AGENT_GRAPHICS_DEVICE_INFO);
    msg2.u.device_info.count = 1;
    msg2.u.device_info.info[0] = (VdpDeviceDisplayInfo){1, 2, 3, addr, sizeof(addr)};
    vdp_msg_describe(&msg2, buf, sizeof(buf));
    assert_null(strchr(buf, '\n'));
    assert_null(strchr(buf, '\x1b'));
    assert_non_null(strstr(buf, "pci??[31m/0"));

    /* counts beyond the arrays (a corrupt struct) are clamped */
    init_msg(&msg2, VD_AGENT_CLIPBOARD_GRAB);
    msg2.u.grab.ntypes = 0xFFFFFFFFu;
    assert_true(vdp_msg_describe(&msg2, buf, sizeof(buf)) > 0);
    init_msg(&msg2, VD_AGENT_MONITORS_CONFIG);
    msg2.u.monitors.count = 0xFFFFFFFFu;
    assert_true(vdp_msg_describe(&msg2, buf, sizeof(buf)) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_route_server_types_from_client_port),
        cmocka_unit_test(test_route_client_types_from_server_port),
        cmocka_unit_test(test_route_direction),
        cmocka_unit_test(test_route_guest_port),
        cmocka_unit_test(test_route_unknown_types),
        cmocka_unit_test(test_mouse_valid),
        cmocka_unit_test(test_mouse_sizes),
        cmocka_unit_test(test_monitors_valid),
        cmocka_unit_test(test_monitors_spice_gtk_physical),
        cmocka_unit_test(test_monitors_physical_size_missing),
        cmocka_unit_test(test_monitors_wrap_bug),
        cmocka_unit_test(test_monitors_limit),
        cmocka_unit_test(test_monitors_sizes),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_clipboard_no_selection),
        cmocka_unit_test(test_clipboard_selection),
        cmocka_unit_test(test_clipboard_empty_and_none),
        cmocka_unit_test(test_clipboard_bad),
        cmocka_unit_test(test_clipboard_stream_head),
        cmocka_unit_test(test_stream_head_not_streamable),
        cmocka_unit_test(test_display_config),
        cmocka_unit_test(test_max_clipboard),
        cmocka_unit_test(test_client_disconnected),
        cmocka_unit_test(test_announce),
        cmocka_unit_test(test_announce_limit),
        cmocka_unit_test(test_grab_layouts),
        cmocka_unit_test(test_grab_bad),
        cmocka_unit_test(test_grab_limit),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_xfer_start_valid),
        cmocka_unit_test(test_xfer_start_bad),
        cmocka_unit_test(test_xfer_start_limit),
        cmocka_unit_test(test_xfer_status_plain),
        cmocka_unit_test(test_xfer_status_detail),
        cmocka_unit_test(test_xfer_status_bad),
        cmocka_unit_test(test_xfer_data_valid),
        cmocka_unit_test(test_xfer_data_size_mismatch),
        cmocka_unit_test(test_xfer_data_limit),
        cmocka_unit_test(test_xfer_data_stream_head),
        cmocka_unit_test(test_volume_valid),
        cmocka_unit_test(test_volume_bad),
        cmocka_unit_test(test_device_info_valid),
        cmocka_unit_test(test_device_info_counts),
        cmocka_unit_test(test_device_info_entry_header),
        cmocka_unit_test(test_device_info_address_len),
        cmocka_unit_test(test_device_info_address_nul),
        cmocka_unit_test(test_device_info_trailing),
        cmocka_unit_test(test_rt_mouse),
        cmocka_unit_test(test_rt_monitors),
        cmocka_unit_test(test_rt_reply),
        cmocka_unit_test(test_rt_clipboard),
        cmocka_unit_test(test_rt_display_config),
        cmocka_unit_test(test_rt_announce),
        cmocka_unit_test(test_rt_grab),
        cmocka_unit_test(test_rt_request_release),
        cmocka_unit_test(test_rt_xfer_start),
        cmocka_unit_test(test_rt_xfer_status),
        cmocka_unit_test(test_rt_xfer_data),
        cmocka_unit_test(test_rt_small_types),
        cmocka_unit_test(test_rt_volume),
        cmocka_unit_test(test_rt_device_info),
        cmocka_unit_test(test_encode_invalid_counts),
        cmocka_unit_test(test_encode_invalid_values),
        cmocka_unit_test(test_encode_invalid_device_address),
        cmocka_unit_test(test_encode_buffer),
        cmocka_unit_test(test_encode_full_message),
        cmocka_unit_test(test_describe_grab),
        cmocka_unit_test(test_describe_truncation),
        cmocka_unit_test(test_describe_all_types),
        cmocka_unit_test(test_describe_hostile_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
