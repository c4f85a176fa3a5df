/* test-ipc-msg.c - the IPC payload codecs (vdp-ipc-msg.h): round trips,
 * truncated, trailing, count overflow and out-of-range input for every
 * frame, and the encoders' size and capacity rules. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vdp-ipc-msg.h"
#include "vdp-ipc.h"
#include "vdp-wire.h"

#include <spice/vd_agent.h>

static VdpIpcGuestLayout *two_displays(void)
{
    VdpIpcGuestLayout *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->desktop_width = 1824;
    l->desktop_height = 768;
    l->count = 2;
    l->displays[0] = (VdpIpcDisplay){.display_id = 0, .x = 0, .y = 0, .width = 1024, .height = 768};
    l->displays[1] = (VdpIpcDisplay){.display_id = 1, .x = 1024, .y = -10, .width = 800, .height = 600};
    return l;
}

static void test_layout_round_trip(void **state)
{
    VdpIpcGuestLayout *l = two_displays();
    uint8_t buf[128];
    assert_int_equal(vdp_ipc_guest_layout_encode(l, NULL, 0), 52);
    size_t n = vdp_ipc_guest_layout_encode(l, buf, sizeof(buf));
    assert_int_equal(n, 52);
    /* little-endian on the wire */
    assert_int_equal(vdp_get_le32(buf), 1824);
    assert_int_equal(vdp_get_le32(buf + 8), 2);
    assert_int_equal((int32_t)vdp_get_le32(buf + 12 + 20 + 8), -10);

    VdpIpcGuestLayout *out = calloc(1, sizeof(*out));
    VdpError err = {0};
    assert_int_equal(vdp_ipc_guest_layout_decode(buf, n, out, &err), VDP_OK);
    assert_int_equal(out->count, 2);
    assert_int_equal(out->desktop_width, 1824);
    assert_int_equal(out->displays[1].x, 1024);
    assert_int_equal(out->displays[1].y, -10);
    assert_int_equal(out->displays[1].width, 800);
    assert_int_equal(out->displays[1].height, 600);
    assert_int_equal(out->displays[1].display_id, 1);
    /* capacity too small */
    assert_int_equal(vdp_ipc_guest_layout_encode(l, buf, n - 1), 0);
    free(out);
    free(l);
}

static void test_layout_empty_and_max(void **state)
{
    VdpIpcGuestLayout *l = calloc(1, sizeof(*l));
    uint8_t *buf = malloc(VDP_IPC_LAYOUT_HEAD_SIZE + VDP_MAX_MONITORS * VDP_IPC_LAYOUT_DISPLAY_SIZE);
    VdpError err = {0};
    /* no displays: valid (the agent has not found any yet) */
    size_t n = vdp_ipc_guest_layout_encode(l, buf, 12);
    assert_int_equal(n, 12);
    assert_int_equal(vdp_ipc_guest_layout_decode(buf, n, l, &err), VDP_OK);
    assert_int_equal(l->count, 0);
    /* the maximum */
    l->count = VDP_MAX_MONITORS;
    for (uint32_t i = 0; i < l->count; i++)
        l->displays[i] = (VdpIpcDisplay){.display_id = i, .x = (int32_t)i * 10, .width = 10, .height = 10};
    n = vdp_ipc_guest_layout_encode(l, buf, 12 + VDP_MAX_MONITORS * 20);
    assert_int_equal(n, 12 + VDP_MAX_MONITORS * 20);
    assert_int_equal(vdp_ipc_guest_layout_decode(buf, n, l, &err), VDP_OK);
    assert_int_equal(l->count, VDP_MAX_MONITORS);
    assert_int_equal(l->displays[255].x, 2550);
    /* one more cannot even be encoded */
    l->count = VDP_MAX_MONITORS + 1;
    assert_int_equal(vdp_ipc_guest_layout_encode(l, NULL, 0), 0);
    free(buf);
    free(l);
}

static void test_layout_malformed(void **state)
{
    VdpIpcGuestLayout *l = two_displays();
    VdpIpcGuestLayout *out = calloc(1, sizeof(*out));
    uint8_t buf[128];
    size_t n = vdp_ipc_guest_layout_encode(l, buf, sizeof(buf));
    VdpError err = {0};

    /* truncated at every length */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(vdp_ipc_guest_layout_decode(buf, i, out, &err), VDP_ERR_TRUNCATED);
        assert_true(strlen(err.text) > 0);
    }
    /* trailing byte */
    buf[n] = 0;
    assert_int_equal(vdp_ipc_guest_layout_decode(buf, n + 1, out, &err), VDP_ERR_TRAILING);

    /* a count that would wrap 12 + 20 * count in 32 bits: refused by the limit */
    uint8_t w[12];
    memcpy(w, buf, 12);
    vdp_put_le32(w + 8, 214748365u);
    assert_int_equal(vdp_ipc_guest_layout_decode(w, 12, out, &err), VDP_ERR_TOO_LARGE);
    vdp_put_le32(w + 8, 0xFFFFFFFFu);
    assert_int_equal(vdp_ipc_guest_layout_decode(w, 12, out, &err), VDP_ERR_TOO_LARGE);
    vdp_put_le32(w + 8, VDP_MAX_MONITORS + 1);
    assert_int_equal(vdp_ipc_guest_layout_decode(w, 12, out, &err), VDP_ERR_TOO_LARGE);

    /* out of range: huge display, huge position, huge desktop, duplicate id */
    uint8_t c[128];
    memcpy(c, buf, n);
    vdp_put_le32(c + 12 + 20 + 12, 0x80000000u);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    memcpy(c, buf, n);
    vdp_put_le32(c + 12 + 4, 0x7FFFFFFFu);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    memcpy(c, buf, n);
    vdp_put_le32(c + 12 + 8, (uint32_t)INT32_MIN);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    memcpy(c, buf, n);
    vdp_put_le32(c, 100000);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    memcpy(c, buf, n);
    vdp_put_le32(c + 12 + 20, 0);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    assert_non_null(strstr(err.text, "twice"));
    /* Each limit on its own, at its edge: desktop height, display height,
     * x and y at +-VDP_IPC_LAYOUT_MAX_POS (accepted) and one beyond. */
    memcpy(c, buf, n);
    vdp_put_le32(c + 4, VDP_IPC_LAYOUT_MAX_SIDE + 1);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    memcpy(c, buf, n);
    vdp_put_le32(c + 12 + 20 + 16, VDP_IPC_LAYOUT_MAX_SIDE + 1);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    for (unsigned field = 4; field <= 8; field += 4) {
        memcpy(c, buf, n);
        vdp_put_le32(c + 12 + 20 + field, (uint32_t)(VDP_IPC_LAYOUT_MAX_POS + 1));
        assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
        vdp_put_le32(c + 12 + 20 + field, (uint32_t)(-VDP_IPC_LAYOUT_MAX_POS - 1));
        assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_ERR_RANGE);
    }
    /* the output was not touched by failed decodes */
    assert_int_equal(out->count, 0);
    memcpy(c, buf, n);
    vdp_put_le32(c + 4, VDP_IPC_LAYOUT_MAX_SIDE);
    vdp_put_le32(c + 12 + 20 + 4, (uint32_t)VDP_IPC_LAYOUT_MAX_POS);
    vdp_put_le32(c + 12 + 20 + 8, (uint32_t)(-VDP_IPC_LAYOUT_MAX_POS));
    vdp_put_le32(c + 12 + 20 + 12, VDP_IPC_LAYOUT_MAX_SIDE);
    vdp_put_le32(c + 12 + 20 + 16, VDP_IPC_LAYOUT_MAX_SIDE);
    assert_int_equal(vdp_ipc_guest_layout_decode(c, n, out, &err), VDP_OK);
    assert_int_equal(out->displays[1].x, VDP_IPC_LAYOUT_MAX_POS);
    assert_int_equal(out->displays[1].y, -VDP_IPC_LAYOUT_MAX_POS);
    assert_int_equal(out->displays[1].height, VDP_IPC_LAYOUT_MAX_SIDE);
    free(out);
    free(l);
}

static void test_mouse(void **state)
{
    VdpIpcMouse m = {.x = -5, .y = 1080, .buttons = 0x02 | 0x10}, out;
    uint8_t buf[16];
    VdpError err = {0};
    assert_int_equal(vdp_ipc_mouse_encode(&m, NULL, 0), VDP_IPC_MOUSE_SIZE);
    assert_int_equal(vdp_ipc_mouse_encode(&m, buf, 11), 0);
    size_t n = vdp_ipc_mouse_encode(&m, buf, sizeof(buf));
    assert_int_equal(n, 12);
    assert_int_equal(vdp_ipc_mouse_decode(buf, n, &out, &err), VDP_OK);
    assert_int_equal(out.x, -5);
    assert_int_equal(out.y, 1080);
    assert_int_equal(out.buttons, 0x12);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vdp_ipc_mouse_decode(buf, i, &out, &err), VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_ipc_mouse_decode(buf, n + 1, &out, &err), VDP_ERR_TRAILING);
    vdp_put_le32(buf + 8, 0x01);
    assert_int_equal(vdp_ipc_mouse_decode(buf, n, &out, &err), VDP_ERR_RANGE);
    vdp_put_le32(buf + 8, 0x100);
    assert_int_equal(vdp_ipc_mouse_decode(buf, n, &out, &err), VDP_ERR_RANGE);
    vdp_put_le32(buf + 8, VDP_IPC_MOUSE_BUTTONS_ALL);
    assert_int_equal(vdp_ipc_mouse_decode(buf, n, &out, &err), VDP_OK);
}

static void test_session_state(void **state)
{
    uint8_t buf[8];
    uint32_t flags = 0;
    VdpError err = {0};
    uint32_t f = VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_CLIENT_CONNECTED;
    assert_int_equal(vdp_ipc_session_state_encode(f, NULL, 0), 4);
    assert_int_equal(vdp_ipc_session_state_encode(f, buf, 3), 0);
    assert_int_equal(vdp_ipc_session_state_encode(0x10, buf, sizeof(buf)), 0);
    assert_int_equal(vdp_ipc_session_state_encode(f, buf, sizeof(buf)), 4);
    assert_int_equal(vdp_ipc_session_state_decode(buf, 4, &flags, &err), VDP_OK);
    assert_int_equal(flags, 5);
    assert_int_equal(vdp_ipc_session_state_decode(buf, 3, &flags, &err), VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_ipc_session_state_decode(buf, 0, &flags, &err), VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_ipc_session_state_decode(buf, 5, &flags, &err), VDP_ERR_TRAILING);
    vdp_put_le32(buf, VDP_IPC_SESSION_ALL);
    assert_int_equal(vdp_ipc_session_state_decode(buf, 4, &flags, &err), VDP_OK);
    vdp_put_le32(buf, 0x80000000u);
    assert_int_equal(vdp_ipc_session_state_decode(buf, 4, &flags, &err), VDP_ERR_RANGE);
    assert_int_equal(flags, VDP_IPC_SESSION_ALL);
}

static void test_status(void **state)
{
    VdpError err = {0};
    uint8_t one = 0;
    assert_int_equal(vdp_ipc_status_request_decode(NULL, 0, &err), VDP_OK);
    assert_int_equal(vdp_ipc_status_request_decode(&one, 1, &err), VDP_ERR_TRAILING);

    const char *text = "{\"port\":\"open\"}";
    uint8_t buf[64];
    size_t n = vdp_ipc_status_reply_encode(text, buf, sizeof(buf));
    assert_int_equal(n, strlen(text) + 1);
    assert_int_equal(vdp_ipc_status_reply_encode(text, NULL, 0), n);
    assert_int_equal(vdp_ipc_status_reply_encode(text, buf, n - 1), 0);
    const char *json = NULL;
    size_t jlen = 0;
    assert_int_equal(vdp_ipc_status_reply_decode(buf, n, &json, &jlen, &err), VDP_OK);
    assert_string_equal(json, text);
    assert_int_equal(jlen, strlen(text));
    /* empty, unterminated, NUL inside, too large */
    assert_int_equal(vdp_ipc_status_reply_decode(buf, 0, &json, &jlen, &err), VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_ipc_status_reply_decode(buf, n - 1, &json, &jlen, &err), VDP_ERR_UNTERMINATED);
    buf[3] = 0;
    assert_int_equal(vdp_ipc_status_reply_decode(buf, n, &json, &jlen, &err), VDP_ERR_TRAILING);
    uint8_t *big = calloc(1, VDP_IPC_MAX_FRAME + 1);
    memset(big, 'a', VDP_IPC_MAX_FRAME);
    assert_int_equal(vdp_ipc_status_reply_decode(big, VDP_IPC_MAX_FRAME + 1, &json, &jlen, &err),
                     VDP_ERR_TOO_LARGE);
    /* the largest text that fits */
    big[VDP_IPC_MAX_FRAME - 1] = 0;
    assert_int_equal(vdp_ipc_status_reply_decode(big, VDP_IPC_MAX_FRAME, &json, &jlen, &err), VDP_OK);
    assert_int_equal(jlen, VDP_IPC_MAX_FRAME - 1);
    assert_int_equal(vdp_ipc_status_reply_encode((const char *)big, NULL, 0), VDP_IPC_MAX_FRAME);
    big[VDP_IPC_MAX_FRAME - 1] = 'a';
    assert_int_equal(vdp_ipc_status_reply_encode((const char *)big, NULL, 0), 0);
    free(big);
}

static void test_clip_head(void **state)
{
    (void)state;
    uint8_t buf[24];
    VdpError err = {0};
    VdpIpcClipHead h = {VD_AGENT_CLIPBOARD_SELECTION_PRIMARY, VD_AGENT_CLIPBOARD_UTF8_TEXT,
                        (uint64_t)VDP_MAX_CLIPBOARD_LIMIT};
    VdpIpcClipHead o = {0};
    assert_int_equal(vdp_ipc_clip_head_encode(&h, NULL, 0), 16);
    assert_int_equal(vdp_ipc_clip_head_encode(&h, buf, 15), 0);
    assert_int_equal(vdp_ipc_clip_head_encode(&h, buf, sizeof(buf)), 16);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 16, &o, &err), VDP_OK);
    assert_int_equal(o.selection, 1);
    assert_int_equal(o.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_true(o.size == VDP_MAX_CLIPBOARD_LIMIT);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 15, &o, &err), VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 17, &o, &err), VDP_ERR_TRAILING);
    /* size one past the limit */
    vdp_put_le64(buf + 8, (uint64_t)VDP_MAX_CLIPBOARD_LIMIT + 1);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 16, &o, &err), VDP_ERR_RANGE);
    vdp_put_le64(buf + 8, UINT64_MAX);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 16, &o, &err), VDP_ERR_RANGE);
    vdp_put_le64(buf + 8, 5);
    /* unknown selection and type */
    vdp_put_le32(buf, 3);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 16, &o, &err), VDP_ERR_RANGE);
    vdp_put_le32(buf, 0);
    vdp_put_le32(buf + 4, VD_AGENT_CLIPBOARD_FILE_LIST + 1);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 16, &o, &err), VDP_ERR_RANGE);
    /* NONE carries no data */
    vdp_put_le32(buf + 4, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 16, &o, &err), VDP_ERR_RANGE);
    vdp_put_le64(buf + 8, 0);
    assert_int_equal(vdp_ipc_clip_head_decode(buf, 16, &o, &err), VDP_OK);
    assert_int_equal(o.type, VD_AGENT_CLIPBOARD_NONE);
    assert_true(o.size == 0);
}

static void test_clip_abort(void **state)
{
    (void)state;
    uint8_t buf[8];
    uint32_t sel = 9;
    VdpError err = {0};
    assert_int_equal(vdp_ipc_clip_abort_encode(1, NULL, 0), 4);
    assert_int_equal(vdp_ipc_clip_abort_encode(3, buf, sizeof(buf)), 0);
    assert_int_equal(vdp_ipc_clip_abort_encode(2, buf, 3), 0);
    assert_int_equal(vdp_ipc_clip_abort_encode(2, buf, sizeof(buf)), 4);
    assert_int_equal(vdp_ipc_clip_abort_decode(buf, 4, &sel, &err), VDP_OK);
    assert_int_equal(sel, 2);
    assert_int_equal(vdp_ipc_clip_abort_decode(buf, 5, &sel, &err), VDP_ERR_TRAILING);
    assert_int_equal(vdp_ipc_clip_abort_decode(buf, 0, &sel, &err), VDP_ERR_TRUNCATED);
    vdp_put_le32(buf, 7);
    assert_int_equal(vdp_ipc_clip_abort_decode(buf, 4, &sel, &err), VDP_ERR_RANGE);
}

static void test_type_names(void **state)
{
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_GUEST_LAYOUT), "GUEST_LAYOUT");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_MOUSE), "MOUSE");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_SESSION_STATE), "SESSION_STATE");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_STATUS_REQUEST), "STATUS_REQUEST");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_STATUS_REPLY), "STATUS_REPLY");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_CLIP_BEGIN), "CLIP_BEGIN");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_CLIP_CHUNK), "CLIP_CHUNK");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_CLIP_ABORT), "CLIP_ABORT");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_CLIP_DATA_FD), "CLIP_DATA_FD");
    /* the new frame types pass the header check */
    uint8_t hdr[VDP_IPC_HEADER_SIZE];
    VdpIpcHeader h = {.type = VDP_IPC_CLIP_DATA_FD, .size = 10}, out;
    vdp_ipc_header_encode(&h, hdr);
    assert_int_equal(vdp_ipc_header_decode(hdr, &out, NULL), VDP_OK);
    assert_int_equal(out.type, VDP_IPC_CLIP_DATA_FD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_round_trip),
        cmocka_unit_test(test_layout_empty_and_max),
        cmocka_unit_test(test_layout_malformed),
        cmocka_unit_test(test_mouse),
        cmocka_unit_test(test_session_state),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_clip_head),
        cmocka_unit_test(test_clip_abort),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
