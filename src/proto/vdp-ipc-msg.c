/* vdp-ipc-msg.c - payload codecs of the daemon <-> agent IPC frames. */
#include "config.h"

#include <string.h>

#include "vdp-ipc-msg.h"
#include "vdp-wire.h"

#include <spice/vd_agent.h>

/* ---- GUEST_LAYOUT ---- */

size_t vdp_ipc_guest_layout_encode(const VdpIpcGuestLayout *l, uint8_t *out, size_t cap)
{
    if (!l || l->count > VDP_MAX_MONITORS)
        return 0;
    size_t need = VDP_IPC_LAYOUT_HEAD_SIZE + (size_t)l->count * VDP_IPC_LAYOUT_DISPLAY_SIZE;
    if (!out)
        return need;
    if (cap < need)
        return 0;
    VdpWriter w;
    vdp_writer_init(&w, out, cap);
    vdp_write_le32(&w, l->desktop_width);
    vdp_write_le32(&w, l->desktop_height);
    vdp_write_le32(&w, l->count);
    for (uint32_t i = 0; i < l->count; i++) {
        const VdpIpcDisplay *d = &l->displays[i];
        vdp_write_le32(&w, d->display_id);
        vdp_write_le32(&w, (uint32_t)d->x);
        vdp_write_le32(&w, (uint32_t)d->y);
        vdp_write_le32(&w, d->width);
        vdp_write_le32(&w, d->height);
    }
    return vdp_writer_ok(&w) ? w.off : 0;
}

static bool pos_ok(int32_t v)
{
    return v >= -VDP_IPC_LAYOUT_MAX_POS && v <= VDP_IPC_LAYOUT_MAX_POS;
}

VdpResult vdp_ipc_guest_layout_decode(const uint8_t *in, size_t len, VdpIpcGuestLayout *l,
                                      VdpError *err)
{
    if (!in && len)
        return vdp_error_set(err, VDP_ERR_TRUNCATED, "GUEST_LAYOUT: no data");
    if (len < VDP_IPC_LAYOUT_HEAD_SIZE)
        return vdp_error_set(err, VDP_ERR_TRUNCATED,
                             "GUEST_LAYOUT: %zu bytes, shorter than its %u-byte head",
                             len, VDP_IPC_LAYOUT_HEAD_SIZE);
    VdpReader r;
    vdp_reader_init(&r, in, len);
    uint32_t dw = vdp_read_le32(&r);
    uint32_t dh = vdp_read_le32(&r);
    uint32_t count = vdp_read_le32(&r);
    if (count > VDP_MAX_MONITORS)
        return vdp_error_set(err, VDP_ERR_TOO_LARGE,
                             "GUEST_LAYOUT: %u displays, more than the limit of %u",
                             count, VDP_MAX_MONITORS);
    /* count is bounded, so this cannot overflow. */
    size_t need = VDP_IPC_LAYOUT_HEAD_SIZE + (size_t)count * VDP_IPC_LAYOUT_DISPLAY_SIZE;
    if (len < need)
        return vdp_error_set(err, VDP_ERR_TRUNCATED,
                             "GUEST_LAYOUT: %u displays need %zu bytes, got %zu", count, need, len);
    if (len > need)
        return vdp_error_set(err, VDP_ERR_TRAILING,
                             "GUEST_LAYOUT: %zu bytes after %u displays", len - need, count);
    if (dw > VDP_IPC_LAYOUT_MAX_SIDE || dh > VDP_IPC_LAYOUT_MAX_SIDE)
        return vdp_error_set(err, VDP_ERR_RANGE,
                             "GUEST_LAYOUT: desktop %ux%u is larger than %ux%u",
                             dw, dh, VDP_IPC_LAYOUT_MAX_SIDE, VDP_IPC_LAYOUT_MAX_SIDE);
    VdpIpcDisplay disp[VDP_MAX_MONITORS];
    for (uint32_t i = 0; i < count; i++) {
        VdpIpcDisplay *d = &disp[i];
        d->display_id = vdp_read_le32(&r);
        d->x = (int32_t)vdp_read_le32(&r);
        d->y = (int32_t)vdp_read_le32(&r);
        d->width = vdp_read_le32(&r);
        d->height = vdp_read_le32(&r);
        if (d->width > VDP_IPC_LAYOUT_MAX_SIDE || d->height > VDP_IPC_LAYOUT_MAX_SIDE)
            return vdp_error_set(err, VDP_ERR_RANGE,
                                 "GUEST_LAYOUT: display %u is %ux%u, larger than %ux%u",
                                 d->display_id, d->width, d->height,
                                 VDP_IPC_LAYOUT_MAX_SIDE, VDP_IPC_LAYOUT_MAX_SIDE);
        if (!pos_ok(d->x) || !pos_ok(d->y))
            return vdp_error_set(err, VDP_ERR_RANGE,
                                 "GUEST_LAYOUT: display %u at %+d%+d is out of range",
                                 d->display_id, (int)d->x, (int)d->y);
        for (uint32_t j = 0; j < i; j++)
            if (disp[j].display_id == d->display_id)
                return vdp_error_set(err, VDP_ERR_RANGE,
                                     "GUEST_LAYOUT: display id %u appears twice", d->display_id);
    }
    if (!vdp_reader_ok(&r))
        return vdp_error_set(err, VDP_ERR_TRUNCATED, "GUEST_LAYOUT: truncated");
    if (l) {
        l->desktop_width = dw;
        l->desktop_height = dh;
        l->count = count;
        memcpy(l->displays, disp, (size_t)count * sizeof(disp[0]));
    }
    return VDP_OK;
}

/* ---- fixed-size payloads ---- */

static VdpResult check_exact(const char *what, size_t len, size_t want, VdpError *err)
{
    if (len < want)
        return vdp_error_set(err, VDP_ERR_TRUNCATED, "%s: %zu bytes, %zu expected", what, len, want);
    if (len > want)
        return vdp_error_set(err, VDP_ERR_TRAILING, "%s: %zu bytes, %zu expected", what, len, want);
    return VDP_OK;
}

size_t vdp_ipc_mouse_encode(const VdpIpcMouse *m, uint8_t *out, size_t cap)
{
    if (!m)
        return 0;
    if (!out)
        return VDP_IPC_MOUSE_SIZE;
    if (cap < VDP_IPC_MOUSE_SIZE)
        return 0;
    vdp_put_le32(out, (uint32_t)m->x);
    vdp_put_le32(out + 4, (uint32_t)m->y);
    vdp_put_le32(out + 8, m->buttons);
    return VDP_IPC_MOUSE_SIZE;
}

VdpResult vdp_ipc_mouse_decode(const uint8_t *in, size_t len, VdpIpcMouse *m, VdpError *err)
{
    VdpResult r = check_exact("MOUSE", len, VDP_IPC_MOUSE_SIZE, err);
    if (r != VDP_OK)
        return r;
    uint32_t buttons = vdp_get_le32(in + 8);
    if (buttons & ~VDP_IPC_MOUSE_BUTTONS_ALL)
        return vdp_error_set(err, VDP_ERR_RANGE, "MOUSE: unknown button bits 0x%x",
                             buttons & ~VDP_IPC_MOUSE_BUTTONS_ALL);
    if (m) {
        m->x = (int32_t)vdp_get_le32(in);
        m->y = (int32_t)vdp_get_le32(in + 4);
        m->buttons = buttons;
    }
    return VDP_OK;
}

size_t vdp_ipc_session_state_encode(uint32_t flags, uint8_t *out, size_t cap)
{
    if (flags & ~VDP_IPC_SESSION_ALL)
        return 0;
    if (!out)
        return VDP_IPC_SESSION_STATE_SIZE;
    if (cap < VDP_IPC_SESSION_STATE_SIZE)
        return 0;
    vdp_put_le32(out, flags);
    return VDP_IPC_SESSION_STATE_SIZE;
}

VdpResult vdp_ipc_session_state_decode(const uint8_t *in, size_t len, uint32_t *flags, VdpError *err)
{
    VdpResult r = check_exact("SESSION_STATE", len, VDP_IPC_SESSION_STATE_SIZE, err);
    if (r != VDP_OK)
        return r;
    uint32_t f = vdp_get_le32(in);
    if (f & ~VDP_IPC_SESSION_ALL)
        return vdp_error_set(err, VDP_ERR_RANGE, "SESSION_STATE: unknown flag bits 0x%x",
                             f & ~VDP_IPC_SESSION_ALL);
    if (flags)
        *flags = f;
    return VDP_OK;
}

VdpResult vdp_ipc_status_request_decode(const uint8_t *in, size_t len, VdpError *err)
{
    return check_exact("STATUS_REQUEST", len, 0, err);
}

size_t vdp_ipc_status_reply_encode(const char *json, uint8_t *out, size_t cap)
{
    if (!json)
        return 0;
    size_t n = strlen(json) + 1;
    if (n > VDP_IPC_MAX_FRAME)
        return 0;
    if (!out)
        return n;
    if (cap < n)
        return 0;
    memcpy(out, json, n);
    return n;
}

VdpResult vdp_ipc_status_reply_decode(const uint8_t *in, size_t len, const char **json,
                                      size_t *json_len, VdpError *err)
{
    if (len == 0 || !in)
        return vdp_error_set(err, VDP_ERR_TRUNCATED, "STATUS_REPLY: empty");
    if (len > VDP_IPC_MAX_FRAME)
        return vdp_error_set(err, VDP_ERR_TOO_LARGE, "STATUS_REPLY: %zu bytes, above the limit of %u",
                             len, VDP_IPC_MAX_FRAME);
    if (in[len - 1] != 0)
        return vdp_error_set(err, VDP_ERR_UNTERMINATED, "STATUS_REPLY: text without its NUL");
    const uint8_t *nul = memchr(in, 0, len);
    if (nul != in + len - 1)
        return vdp_error_set(err, VDP_ERR_TRAILING, "STATUS_REPLY: %zu bytes after the text's NUL",
                             (size_t)(in + len - 1 - nul));
    if (json)
        *json = (const char *)in;
    if (json_len)
        *json_len = len - 1;
    return VDP_OK;
}

/* ---- CLIP_BEGIN / CLIP_DATA_FD / CLIP_ABORT ---- */

size_t vdp_ipc_clip_head_encode(const VdpIpcClipHead *h, uint8_t *out, size_t cap)
{
    if (!h)
        return 0;
    if (!out)
        return VDP_IPC_CLIP_HEAD_SIZE;
    if (cap < VDP_IPC_CLIP_HEAD_SIZE)
        return 0;
    vdp_put_le32(out, h->selection);
    vdp_put_le32(out + 4, h->type);
    vdp_put_le64(out + 8, h->size);
    return VDP_IPC_CLIP_HEAD_SIZE;
}

VdpResult vdp_ipc_clip_head_decode(const uint8_t *in, size_t len, VdpIpcClipHead *h,
                                   VdpError *err)
{
    VdpResult r = check_exact("CLIP head", len, VDP_IPC_CLIP_HEAD_SIZE, err);
    if (r != VDP_OK)
        return r;
    uint32_t sel = vdp_get_le32(in);
    uint32_t type = vdp_get_le32(in + 4);
    uint64_t size = vdp_get_le64(in + 8);
    if (sel > VDP_IPC_CLIP_SELECTION_MAX)
        return vdp_error_set(err, VDP_ERR_RANGE, "CLIP head: selection %u is unknown", sel);
    if (type > VD_AGENT_CLIPBOARD_FILE_LIST)
        return vdp_error_set(err, VDP_ERR_RANGE, "CLIP head: clipboard type %u is unknown", type);
    if (size > VDP_MAX_CLIPBOARD_LIMIT)
        return vdp_error_set(err, VDP_ERR_RANGE,
                             "CLIP head: %llu bytes, above the limit of %u",
                             (unsigned long long)size, VDP_MAX_CLIPBOARD_LIMIT);
    if (type == VD_AGENT_CLIPBOARD_NONE && size != 0)
        return vdp_error_set(err, VDP_ERR_RANGE, "CLIP head: type NONE with %llu bytes",
                             (unsigned long long)size);
    if (h) {
        h->selection = sel;
        h->type = type;
        h->size = size;
    }
    return VDP_OK;
}

size_t vdp_ipc_clip_abort_encode(uint32_t selection, uint8_t *out, size_t cap)
{
    if (selection > VDP_IPC_CLIP_SELECTION_MAX)
        return 0;
    if (!out)
        return VDP_IPC_CLIP_ABORT_SIZE;
    if (cap < VDP_IPC_CLIP_ABORT_SIZE)
        return 0;
    vdp_put_le32(out, selection);
    return VDP_IPC_CLIP_ABORT_SIZE;
}

VdpResult vdp_ipc_clip_abort_decode(const uint8_t *in, size_t len, uint32_t *selection,
                                    VdpError *err)
{
    VdpResult r = check_exact("CLIP_ABORT", len, VDP_IPC_CLIP_ABORT_SIZE, err);
    if (r != VDP_OK)
        return r;
    uint32_t sel = vdp_get_le32(in);
    if (sel > VDP_IPC_CLIP_SELECTION_MAX)
        return vdp_error_set(err, VDP_ERR_RANGE, "CLIP_ABORT: selection %u is unknown", sel);
    if (selection)
        *selection = sel;
    return VDP_OK;
}
