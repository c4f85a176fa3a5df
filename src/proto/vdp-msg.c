/* vdp-msg.c - decode, validate, encode and describe VDAgent messages.
 *
 * One decoder, one encoder and one describer per message type, picked from
 * tables indexed by type. Decoders read through a VdpReader and check every
 * length before reading; encoders validate the native struct and write
 * through a VdpWriter. Per-type facts (names, routes, limits, stream heads)
 * live in vdp-msg-table.c.
 *
 * Decisions where spice/vd_agent.h is silent (see also docs in the tests):
 *  - A count whose elements do not fit in the bytes present is
 *    VDP_ERR_OVERFLOW; bytes beyond what the layout describes are
 *    VDP_ERR_TRAILING; a payload too short for its fixed head is
 *    VDP_ERR_TRUNCATED. A count within the data but above its named limit
 *    is VDP_ERR_TOO_LARGE.
 *  - Reserved bytes of the selection prefix are ignored when decoding and
 *    written as zero.
 *  - CLIPBOARD_GRAB keeps unknown type values (a newer peer may offer
 *    types we do not know; we just never request them) but must offer at
 *    least one type: an empty grab offers nothing that could be requested,
 *    no known peer sends one (spice-vdagent sends nothing for 0 targets,
 *    spice-gtk releases instead) and accepting it would make "owned but
 *    empty" a state the clipboard code has to handle.
 *  - CLIPBOARD_REQUEST must ask for a known type other than NONE.
 *    CLIPBOARD data must have a known type (it answers a request); NONE is
 *    the "no data" answer and carries no bytes. A known type with no bytes
 *    is legal (spice-vdagentd answers oversized data that way).
 *  - Bit masks (mouse buttons, monitor and display-config flags) keep
 *    unknown bits; booleans (AUDIO_VOLUME_SYNC is_playback, mute) must be
 *    0 or 1. FILE_XFER_STATUS ERROR detail accepts any error_type (only
 *    GLIB_IO exists today; the consumer falls back to a generic error).
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdp-msg.h"
#include "vdp-wire.h"

#define SEL_PREFIX_SIZE 4u
#define MON_CONFIG_SIZE 20u
#define MON_MM_SIZE 4u
#define DEVICE_ENTRY_HEAD 16u
#define STATUS_HEAD 8u
#define STATUS_SPACE_DETAIL 8u
#define STATUS_ERROR_DETAIL 5u
#define XFER_DATA_HEAD 12u

/* What every decoder and encoder gets besides its data. */
typedef struct Ctx {
    const char *name;          /* message type name for sentences */
    const VdpLayout *layout;
    VdpError *err;
} Ctx;

static const VdpLayout no_layout = {false, false};

/* ======================================================================
 * Names
 * ====================================================================== */

const char *vdp_clipboard_type_name(uint32_t type)
{
    static const char *const names[] = {
        [VD_AGENT_CLIPBOARD_NONE] = "none",
        [VD_AGENT_CLIPBOARD_UTF8_TEXT] = "utf8-text",
        [VD_AGENT_CLIPBOARD_IMAGE_PNG] = "png",
        [VD_AGENT_CLIPBOARD_IMAGE_BMP] = "bmp",
        [VD_AGENT_CLIPBOARD_IMAGE_TIFF] = "tiff",
        [VD_AGENT_CLIPBOARD_IMAGE_JPG] = "jpg",
        [VD_AGENT_CLIPBOARD_FILE_LIST] = "file-list",
    };
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}

const char *vdp_selection_name(uint32_t selection)
{
    static const char *const names[] = {
        [VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD] = "clipboard",
        [VD_AGENT_CLIPBOARD_SELECTION_PRIMARY] = "primary",
        [VD_AGENT_CLIPBOARD_SELECTION_SECONDARY] = "secondary",
    };
    return selection < sizeof(names) / sizeof(names[0]) ? names[selection] : NULL;
}

const char *vdp_clipboard_type_label(uint32_t type)
{
    const char *n = vdp_clipboard_type_name(type);
    return n ? n : "unknown";
}

const char *vdp_selection_label(uint32_t selection)
{
    const char *n = vdp_selection_name(selection);
    return n ? n : "unknown";
}

const char *vdp_xfer_status_name(uint32_t result)
{
    static const char *const names[] = {
        [VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA] = "can-send-data",
        [VD_AGENT_FILE_XFER_STATUS_CANCELLED] = "cancelled",
        [VD_AGENT_FILE_XFER_STATUS_ERROR] = "error",
        [VD_AGENT_FILE_XFER_STATUS_SUCCESS] = "success",
        [VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE] = "not-enough-space",
        [VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED] = "session-locked",
        [VD_AGENT_FILE_XFER_STATUS_VDAGENT_NOT_CONNECTED] = "vdagent-not-connected",
        [VD_AGENT_FILE_XFER_STATUS_DISABLED] = "disabled",
    };
    return result < sizeof(names) / sizeof(names[0]) ? names[result] : NULL;
}

/* ======================================================================
 * Shared validation
 * ====================================================================== */

static bool clipboard_type_known(uint32_t type)
{
    return type <= VD_AGENT_CLIPBOARD_FILE_LIST;
}

static VdpResult check_selection(const Ctx *c, uint32_t sel)
{
    if (!vdp_selection_name(sel))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: unknown selection %u", c->name, sel);
    if (sel != VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD && !c->layout->clipboard_selection)
        return vdp_error_set(c->err, VDP_ERR_RANGE,
                             "%s: selection %u needs the clipboard-selection capability",
                             c->name, sel);
    return VDP_OK;
}

static VdpResult check_request_type(const Ctx *c, uint32_t type)
{
    if (type == VD_AGENT_CLIPBOARD_NONE || !clipboard_type_known(type))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: cannot request clipboard type %u",
                             c->name, type);
    return VDP_OK;
}

/* The head of a CLIPBOARD message (type) against its body size. */
static VdpResult check_clipboard(const Ctx *c, uint32_t type, size_t body)
{
    if (!clipboard_type_known(type))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: unknown clipboard type %u",
                             c->name, type);
    if (type == VD_AGENT_CLIPBOARD_NONE && body != 0)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: type none with %zu bytes of data",
                             c->name, body);
    if (body > VDP_MAX_CLIPBOARD_LIMIT)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE, "%s: %zu bytes of data, limit %u",
                             c->name, body, VDP_MAX_CLIPBOARD_LIMIT);
    return VDP_OK;
}

static VdpResult check_bool(const Ctx *c, const char *field, uint8_t v)
{
    if (v > 1)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: %s is %u, not 0 or 1", c->name, field, v);
    return VDP_OK;
}

static VdpResult check_limit(const Ctx *c, const char *items, uint32_t count, uint32_t limit)
{
    if (count > limit)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE, "%s: %u %s, limit %u",
                             c->name, count, items, limit);
    return VDP_OK;
}

static bool xfer_status_has_detail_kind(uint32_t result)
{
    return result == VD_AGENT_FILE_XFER_STATUS_ERROR ||
           result == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE;
}

static size_t xfer_status_detail_size(uint32_t result)
{
    return result == VD_AGENT_FILE_XFER_STATUS_ERROR ? STATUS_ERROR_DETAIL : STATUS_SPACE_DETAIL;
}

/* A device address length: 1..VDP_MAX_DEVICE_ADDRESS (it includes the NUL). */
static VdpResult check_address_len(const Ctx *c, uint32_t i, uint32_t len)
{
    if (len == 0)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: entry %u has an empty device address",
                             c->name, i);
    if (len > VDP_MAX_DEVICE_ADDRESS)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE,
                             "%s: entry %u device address of %u bytes, limit %u",
                             c->name, i, len, VDP_MAX_DEVICE_ADDRESS);
    return VDP_OK;
}

/* A device address of len (checked) bytes: its only NUL is its last byte. */
static VdpResult check_address_text(const Ctx *c, uint32_t i, const char *addr, uint32_t len)
{
    if (!addr)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: entry %u has no device address",
                             c->name, i);
    const char *nul = memchr(addr, '\0', len);
    if (!nul)
        return vdp_error_set(c->err, VDP_ERR_UNTERMINATED,
                             "%s: entry %u device address is not NUL-terminated", c->name, i);
    if ((size_t)(nul - addr) != len - 1u)
        return vdp_error_set(c->err, VDP_ERR_RANGE,
                             "%s: entry %u device address has a NUL at %zu of %u bytes",
                             c->name, i, (size_t)(nul - addr), len);
    return VDP_OK;
}

/* ======================================================================
 * Decoding: length checks
 * ====================================================================== */

static VdpResult need_exact(const Ctx *c, const VdpReader *r, size_t want)
{
    if (r->len == want)
        return VDP_OK;
    return vdp_error_set(c->err, r->len < want ? VDP_ERR_TRUNCATED : VDP_ERR_TRAILING,
                         "%s: payload is %zu bytes, expected %zu", c->name, r->len, want);
}

static VdpResult need_min(const Ctx *c, const VdpReader *r, size_t min)
{
    if (r->len >= min)
        return VDP_OK;
    return vdp_error_set(c->err, VDP_ERR_TRUNCATED, "%s: payload is %zu bytes, needs at least %zu",
                         c->name, r->len, min);
}

static VdpResult need_end(const Ctx *c, const VdpReader *r)
{
    size_t left = vdp_reader_left(r);
    if (left == 0)
        return VDP_OK;
    return vdp_error_set(c->err, VDP_ERR_TRAILING, "%s: %zu unexpected bytes after offset %zu",
                         c->name, left, r->off);
}

/* count elements of elem bytes from the current offset: must fit in the
 * payload (and fill it exactly if exact). Overflow-safe. */
static VdpResult need_items(const Ctx *c, const VdpReader *r, const char *items,
                            uint32_t count, size_t elem, bool exact)
{
    size_t bytes, need;
    if (!vdp_mul_size(count, elem, &bytes) || !vdp_add_size(r->off, bytes, &need))
        return vdp_error_set(c->err, VDP_ERR_OVERFLOW, "%s: %u %s overflow the size",
                             c->name, count, items);
    if (need > r->len || (exact && need < r->len))
        return vdp_error_set(c->err, need > r->len ? VDP_ERR_OVERFLOW : VDP_ERR_TRAILING,
                             "%s: %u %s need %zu bytes, got %zu", c->name, count, items,
                             need, r->len);
    return VDP_OK;
}

/* The rest of the payload as u32 words: a whole number of them, at most
 * limit. */
static VdpResult need_words(const Ctx *c, const VdpReader *r, const char *items,
                            uint32_t limit, uint32_t *count)
{
    size_t left = vdp_reader_left(r);
    if (left % 4u)
        return vdp_error_set(c->err, VDP_ERR_TRAILING, "%s: %zu bytes of %s is not a multiple of 4",
                             c->name, left, items);
    if (left / 4u > limit)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE, "%s: %zu %s, limit %u",
                             c->name, left / 4u, items, limit);
    *count = (uint32_t)(left / 4u);
    return VDP_OK;
}

/* The optional {u8 selection, u8 reserved[3]} prefix; the caller has
 * checked that its bytes are present. */
static VdpResult read_selection(VdpReader *r, const Ctx *c, uint8_t *sel)
{
    *sel = VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD;
    if (!c->layout->clipboard_selection)
        return VDP_OK;
    *sel = vdp_read_u8(r);
    vdp_reader_take(r, SEL_PREFIX_SIZE - 1u);   /* reserved: ignored */
    return check_selection(c, *sel);
}

static size_t selection_size(const Ctx *c)
{
    return c->layout->clipboard_selection ? SEL_PREFIX_SIZE : 0u;
}

/* ======================================================================
 * Decoders, one per type. Each gets a reader over the whole payload.
 * ====================================================================== */

typedef VdpResult (*DecodeFn)(VdpReader *r, const Ctx *c, VdpMsg *msg);

static VdpResult decode_mouse(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpMouseState *m = &msg->u.mouse;
    VdpResult res = need_exact(c, r, 13);
    if (res != VDP_OK)
        return res;
    m->x = vdp_read_le32(r);
    m->y = vdp_read_le32(r);
    m->buttons = vdp_read_le32(r);
    m->display_id = vdp_read_u8(r);
    return VDP_OK;
}

static void read_monitor(VdpReader *r, VdpMonConfig *mon)
{
    mon->height = vdp_read_le32(r);
    mon->width = vdp_read_le32(r);
    mon->depth = vdp_read_le32(r);
    mon->x = (int32_t)vdp_read_le32(r);
    mon->y = (int32_t)vdp_read_le32(r);
    mon->mm_width = 0;
    mon->mm_height = 0;
}

static VdpResult decode_monitors(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpMonitorsConfig *mc = &msg->u.monitors;
    VdpResult res = need_min(c, r, 8);
    if (res != VDP_OK)
        return res;
    uint32_t count = vdp_read_le32(r);
    mc->flags = vdp_read_le32(r);
    bool mm = mc->flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE;
    res = need_items(c, r, mm ? "monitors with physical sizes" : "monitors", count,
                     MON_CONFIG_SIZE + (mm ? MON_MM_SIZE : 0u), true);
    if (res == VDP_OK)
        res = check_limit(c, "monitors", count, VDP_MAX_MONITORS);
    if (res != VDP_OK)
        return res;
    mc->count = count;
    for (uint32_t i = 0; i < count; i++)
        read_monitor(r, &mc->monitors[i]);
    for (uint32_t i = 0; mm && i < count; i++) {
        mc->monitors[i].mm_height = vdp_read_le16(r);
        mc->monitors[i].mm_width = vdp_read_le16(r);
    }
    return need_end(c, r);
}

static VdpResult decode_reply(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpReply *rep = &msg->u.reply;
    VdpResult res = need_exact(c, r, 8);
    if (res != VDP_OK)
        return res;
    rep->type = vdp_read_le32(r);
    rep->error = vdp_read_le32(r);
    if (!vdp_msg_type_known(rep->type))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: reply to unknown type %u",
                             c->name, rep->type);
    if (rep->error != VD_AGENT_SUCCESS && rep->error != VD_AGENT_ERROR)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: unknown error value %u",
                             c->name, rep->error);
    return VDP_OK;
}

/* CLIPBOARD head: selection and type, for a body of body bytes. */
static VdpResult clipboard_head(VdpReader *r, const Ctx *c, size_t body, VdpClipboard *cb)
{
    VdpResult res = read_selection(r, c, &cb->selection);
    if (res != VDP_OK)
        return res;
    cb->type = vdp_read_le32(r);
    cb->data = NULL;
    cb->size = body;
    return check_clipboard(c, cb->type, body);
}

static VdpResult decode_clipboard(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    size_t head = selection_size(c) + 4u;
    VdpResult res = need_min(c, r, head);
    if (res == VDP_OK)
        res = clipboard_head(r, c, r->len - head, &msg->u.clipboard);
    if (res != VDP_OK)
        return res;
    msg->u.clipboard.data = vdp_reader_take(r, msg->u.clipboard.size);
    return VDP_OK;
}

static VdpResult decode_display_config(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpResult res = need_exact(c, r, 8);
    if (res != VDP_OK)
        return res;
    msg->u.display_config.flags = vdp_read_le32(r);
    msg->u.display_config.depth = vdp_read_le32(r);
    return VDP_OK;
}

static VdpResult decode_announce(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpAnnounce *a = &msg->u.announce;
    uint32_t nwords = 0;
    VdpResult res = need_min(c, r, 4);
    if (res != VDP_OK)
        return res;
    a->request = vdp_read_le32(r);
    res = need_words(c, r, "capability words", VDP_MAX_CAPS_WORDS, &nwords);
    if (res != VDP_OK)
        return res;
    vdp_caps_clear(&a->caps);
    a->caps.nwords = nwords;
    for (uint32_t i = 0; i < nwords; i++)
        a->caps.words[i] = vdp_read_le32(r);
    return VDP_OK;
}

static VdpResult decode_grab(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpClipboardGrab *g = &msg->u.grab;
    size_t head = selection_size(c) + (c->layout->grab_serial ? 4u : 0u);
    VdpResult res = need_min(c, r, head);
    if (res == VDP_OK)
        res = read_selection(r, c, &g->selection);
    if (res != VDP_OK)
        return res;
    g->serial = c->layout->grab_serial ? vdp_read_le32(r) : 0;
    res = need_words(c, r, "types", VDP_MAX_GRAB_TYPES, &g->ntypes);
    if (res != VDP_OK)
        return res;
    if (g->ntypes == 0)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: offers no types", c->name);
    for (uint32_t i = 0; i < g->ntypes; i++)
        g->types[i] = vdp_read_le32(r);
    return VDP_OK;
}

static VdpResult decode_request(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpResult res = need_exact(c, r, selection_size(c) + 4u);
    if (res == VDP_OK)
        res = read_selection(r, c, &msg->u.request.selection);
    if (res != VDP_OK)
        return res;
    msg->u.request.type = vdp_read_le32(r);
    return check_request_type(c, msg->u.request.type);
}

static VdpResult decode_release(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpResult res = need_exact(c, r, selection_size(c));
    if (res != VDP_OK)
        return res;
    return read_selection(r, c, &msg->u.release.selection);
}

static VdpResult decode_xfer_start(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpFileXferStart *s = &msg->u.xfer_start;
    VdpResult res = need_min(c, r, 4);
    if (res != VDP_OK)
        return res;
    s->id = vdp_read_le32(r);
    size_t left = vdp_reader_left(r);
    if (left > VDP_MAX_FILE_XFER_START_SIZE)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE, "%s: key file of %zu bytes, limit %u",
                             c->name, left, VDP_MAX_FILE_XFER_START_SIZE);
    const char *text = (const char *)vdp_reader_take(r, left);
    const char *nul = left ? memchr(text, '\0', left) : NULL;
    if (!nul)
        return vdp_error_set(c->err, VDP_ERR_UNTERMINATED, "%s: key file is not NUL-terminated",
                             c->name);
    s->keyfile = text;
    s->keyfile_len = (size_t)(nul - text);
    if (s->keyfile_len != left - 1u)
        return vdp_error_set(c->err, VDP_ERR_TRAILING, "%s: %zu bytes after the key file's NUL",
                             c->name, left - 1u - s->keyfile_len);
    return VDP_OK;
}

static VdpResult decode_xfer_status_detail(VdpReader *r, const Ctx *c, VdpFileXferStatus *st)
{
    size_t want = STATUS_HEAD + xfer_status_detail_size(st->result);
    if (r->len != want)
        return vdp_error_set(c->err, r->len < want ? VDP_ERR_TRUNCATED : VDP_ERR_TRAILING,
                             "%s: status %s with detail must be %zu bytes, got %zu", c->name,
                             vdp_xfer_status_name(st->result), want, r->len);
    st->has_detail = true;
    if (st->result == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE) {
        st->disk_free_space = vdp_read_le64(r);
    } else {
        st->error_type = vdp_read_u8(r);
        st->error_code = vdp_read_le32(r);
    }
    return VDP_OK;
}

static VdpResult decode_xfer_status(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpFileXferStatus *st = &msg->u.xfer_status;
    VdpResult res = need_min(c, r, STATUS_HEAD);
    if (res != VDP_OK)
        return res;
    memset(st, 0, sizeof(*st));
    st->id = vdp_read_le32(r);
    st->result = vdp_read_le32(r);
    if (!vdp_xfer_status_name(st->result))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: unknown result %u", c->name, st->result);
    if (r->len == STATUS_HEAD)
        return VDP_OK;
    if (!xfer_status_has_detail_kind(st->result))
        return vdp_error_set(c->err, VDP_ERR_TRAILING, "%s: status %s has no detail, got %zu bytes",
                             c->name, vdp_xfer_status_name(st->result), r->len - STATUS_HEAD);
    return decode_xfer_status_detail(r, c, st);
}

/* FILE_XFER_DATA head: id and size, for a body of body bytes. */
static VdpResult xfer_data_head(VdpReader *r, const Ctx *c, size_t body, VdpFileXferData *d)
{
    d->id = vdp_read_le32(r);
    d->size = vdp_read_le64(r);
    d->data = NULL;
    if (d->size != body)
        return vdp_error_set(c->err, d->size > body ? VDP_ERR_OVERFLOW : VDP_ERR_TRAILING,
                             "%s: size field says %llu bytes, payload has %zu", c->name,
                             (unsigned long long)d->size, body);
    if (body > VDP_MAX_FILE_XFER_DATA)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE, "%s: %zu bytes of data, limit %u",
                             c->name, body, VDP_MAX_FILE_XFER_DATA);
    return VDP_OK;
}

static VdpResult decode_xfer_data(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpResult res = need_min(c, r, XFER_DATA_HEAD);
    if (res == VDP_OK)
        res = xfer_data_head(r, c, r->len - XFER_DATA_HEAD, &msg->u.xfer_data);
    if (res != VDP_OK)
        return res;
    msg->u.xfer_data.data = vdp_reader_take(r, vdp_reader_left(r));
    return VDP_OK;
}

static VdpResult decode_client_disconnected(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    return need_exact(c, r, 0);
}

static VdpResult decode_max_clipboard(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpResult res = need_exact(c, r, 4);
    if (res != VDP_OK)
        return res;
    msg->u.max_clipboard.max = (int32_t)vdp_read_le32(r);
    return VDP_OK;
}

static VdpResult decode_volume(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpAudioVolumeSync *v = &msg->u.volume;
    VdpResult res = need_min(c, r, 3);
    if (res != VDP_OK)
        return res;
    v->is_playback = vdp_read_u8(r);
    v->mute = vdp_read_u8(r);
    v->nchannels = vdp_read_u8(r);
    res = need_items(c, r, "channels", v->nchannels, 2, true);
    if (res == VDP_OK)
        res = check_bool(c, "is_playback", v->is_playback);
    if (res == VDP_OK)
        res = check_bool(c, "mute", v->mute);
    if (res != VDP_OK)
        return res;
    for (uint32_t i = 0; i < v->nchannels; i++)
        v->volume[i] = vdp_read_le16(r);
    return VDP_OK;
}

static VdpResult decode_device_entry(VdpReader *r, const Ctx *c, uint32_t i,
                                     VdpDeviceDisplayInfo *e)
{
    if (vdp_reader_left(r) < DEVICE_ENTRY_HEAD)
        return vdp_error_set(c->err, VDP_ERR_TRUNCATED,
                             "%s: entry %u needs a %u-byte header, %zu bytes left",
                             c->name, i, DEVICE_ENTRY_HEAD, vdp_reader_left(r));
    e->channel_id = vdp_read_le32(r);
    e->monitor_id = vdp_read_le32(r);
    e->device_display_id = vdp_read_le32(r);
    e->device_address_len = vdp_read_le32(r);
    uint32_t len = e->device_address_len;
    VdpResult res = check_address_len(c, i, len);
    if (res != VDP_OK)
        return res;
    if (len > vdp_reader_left(r))
        return vdp_error_set(c->err, VDP_ERR_OVERFLOW,
                             "%s: entry %u device address of %u bytes, %zu bytes left",
                             c->name, i, len, vdp_reader_left(r));
    e->device_address = (const char *)vdp_reader_take(r, len);
    return check_address_text(c, i, e->device_address, len);
}

static VdpResult decode_device_info(VdpReader *r, const Ctx *c, VdpMsg *msg)
{
    VdpGraphicsDeviceInfo *di = &msg->u.device_info;
    VdpResult res = need_min(c, r, 4);
    if (res != VDP_OK)
        return res;
    uint32_t count = vdp_read_le32(r);
    /* Every entry is at least its header and a 1-byte address. */
    res = need_items(c, r, "entries", count, DEVICE_ENTRY_HEAD + 1u, false);
    if (res == VDP_OK)
        res = check_limit(c, "entries", count, VDP_MAX_DEVICE_DISPLAYS);
    if (res != VDP_OK)
        return res;
    di->count = count;
    for (uint32_t i = 0; i < count && res == VDP_OK; i++)
        res = decode_device_entry(r, c, i, &di->info[i]);
    return res == VDP_OK ? need_end(c, r) : res;
}

static const DecodeFn decoders[VD_AGENT_END_MESSAGE] = {
    [VD_AGENT_MOUSE_STATE] = decode_mouse,
    [VD_AGENT_MONITORS_CONFIG] = decode_monitors,
    [VD_AGENT_REPLY] = decode_reply,
    [VD_AGENT_CLIPBOARD] = decode_clipboard,
    [VD_AGENT_DISPLAY_CONFIG] = decode_display_config,
    [VD_AGENT_ANNOUNCE_CAPABILITIES] = decode_announce,
    [VD_AGENT_CLIPBOARD_GRAB] = decode_grab,
    [VD_AGENT_CLIPBOARD_REQUEST] = decode_request,
    [VD_AGENT_CLIPBOARD_RELEASE] = decode_release,
    [VD_AGENT_FILE_XFER_START] = decode_xfer_start,
    [VD_AGENT_FILE_XFER_STATUS] = decode_xfer_status,
    [VD_AGENT_FILE_XFER_DATA] = decode_xfer_data,
    [VD_AGENT_CLIENT_DISCONNECTED] = decode_client_disconnected,
    [VD_AGENT_MAX_CLIPBOARD] = decode_max_clipboard,
    [VD_AGENT_AUDIO_VOLUME_SYNC] = decode_volume,
    [VD_AGENT_GRAPHICS_DEVICE_INFO] = decode_device_info,
};

static void ctx_init(Ctx *c, uint32_t type, const VdpLayout *layout, VdpError *err)
{
    c->name = vdp_msg_type_name(type);
    if (!c->name)
        c->name = "message";
    c->layout = layout ? layout : &no_layout;
    c->err = err;
}

VdpResult vdp_msg_decode(VdpDir dir, uint32_t port, uint32_t type,
                         const uint8_t *data, size_t len,
                         const VdpLayout *layout, VdpMsg *msg, VdpError *err)
{
    VdpResult res = vdp_msg_check_route(dir, port, type, err);
    if (res != VDP_OK)
        return res;
    Ctx c;
    VdpReader r;
    ctx_init(&c, type, layout, err);
    vdp_reader_init(&r, data, len);
    msg->type = type;
    res = decoders[type](&r, &c, msg);
    if (res == VDP_OK)
        vdp_error_set(err, VDP_OK, "ok");
    return res;
}

VdpResult vdp_msg_decode_stream_head(VdpDir dir, uint32_t port, uint32_t type,
                                     const uint8_t *head, size_t head_len,
                                     size_t total_size, const VdpLayout *layout,
                                     VdpMsg *msg, VdpError *err)
{
    VdpResult res = vdp_msg_check_route(dir, port, type, err);
    if (res != VDP_OK)
        return res;
    Ctx c;
    ctx_init(&c, type, layout, err);
    if (!vdp_msg_streamable(type))
        return vdp_error_set(err, VDP_ERR_RANGE, "%s is not a streamed type", c.name);
    size_t need = vdp_msg_stream_head_size(type, c.layout);
    if (head_len < need || total_size < need)
        return vdp_error_set(err, VDP_ERR_TRUNCATED,
                             "%s: stream head needs %zu bytes, got %zu of a %zu-byte payload",
                             c.name, need, head_len, total_size);
    VdpReader r;
    vdp_reader_init(&r, head, need);
    msg->type = type;
    if (type == VD_AGENT_CLIPBOARD)
        res = clipboard_head(&r, &c, total_size - need, &msg->u.clipboard);
    else
        res = xfer_data_head(&r, &c, total_size - need, &msg->u.xfer_data);
    if (res == VDP_OK)
        vdp_error_set(err, VDP_OK, "ok");
    return res;
}

/* ======================================================================
 * Encoders, one per type: validate the struct, write the wire form.
 * ====================================================================== */

typedef VdpResult (*EncodeFn)(VdpWriter *w, const Ctx *c, const VdpMsg *msg);

static VdpResult write_selection(VdpWriter *w, const Ctx *c, uint8_t sel)
{
    VdpResult res = check_selection(c, sel);
    if (res != VDP_OK || !c->layout->clipboard_selection)
        return res;
    vdp_write_u8(w, sel);
    for (unsigned i = 1; i < SEL_PREFIX_SIZE; i++)
        vdp_write_u8(w, 0);
    return VDP_OK;
}

static VdpResult encode_mouse(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpMouseState *m = &msg->u.mouse;
    vdp_write_le32(w, m->x);
    vdp_write_le32(w, m->y);
    vdp_write_le32(w, m->buttons);
    vdp_write_u8(w, m->display_id);
    return VDP_OK;
}

static VdpResult encode_monitors(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpMonitorsConfig *mc = &msg->u.monitors;
    VdpResult res = check_limit(c, "monitors", mc->count, VDP_MAX_MONITORS);
    if (res != VDP_OK)
        return res;
    vdp_write_le32(w, mc->count);
    vdp_write_le32(w, mc->flags);
    for (uint32_t i = 0; i < mc->count; i++) {
        const VdpMonConfig *mon = &mc->monitors[i];
        vdp_write_le32(w, mon->height);
        vdp_write_le32(w, mon->width);
        vdp_write_le32(w, mon->depth);
        vdp_write_le32(w, (uint32_t)mon->x);
        vdp_write_le32(w, (uint32_t)mon->y);
    }
    if (!(mc->flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE))
        return VDP_OK;
    for (uint32_t i = 0; i < mc->count; i++) {
        vdp_write_le16(w, mc->monitors[i].mm_height);
        vdp_write_le16(w, mc->monitors[i].mm_width);
    }
    return VDP_OK;
}

static VdpResult encode_reply(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpReply *rep = &msg->u.reply;
    if (!vdp_msg_type_known(rep->type))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: reply to unknown type %u",
                             c->name, rep->type);
    if (rep->error != VD_AGENT_SUCCESS && rep->error != VD_AGENT_ERROR)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: unknown error value %u",
                             c->name, rep->error);
    vdp_write_le32(w, rep->type);
    vdp_write_le32(w, rep->error);
    return VDP_OK;
}

static VdpResult encode_clipboard(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpClipboard *cb = &msg->u.clipboard;
    VdpResult res = check_clipboard(c, cb->type, cb->size);
    if (res == VDP_OK && cb->size && !cb->data)
        res = vdp_error_set(c->err, VDP_ERR_RANGE, "%s: %zu bytes of data without a buffer",
                            c->name, cb->size);
    if (res == VDP_OK)
        res = write_selection(w, c, cb->selection);
    if (res != VDP_OK)
        return res;
    vdp_write_le32(w, cb->type);
    vdp_write_bytes(w, cb->data, cb->size);
    return VDP_OK;
}

static VdpResult encode_display_config(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    vdp_write_le32(w, msg->u.display_config.flags);
    vdp_write_le32(w, msg->u.display_config.depth);
    return VDP_OK;
}

static VdpResult encode_announce(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpAnnounce *a = &msg->u.announce;
    VdpResult res = check_limit(c, "capability words", a->caps.nwords, VDP_MAX_CAPS_WORDS);
    if (res != VDP_OK)
        return res;
    vdp_write_le32(w, a->request);
    for (uint32_t i = 0; i < a->caps.nwords; i++)
        vdp_write_le32(w, a->caps.words[i]);
    return VDP_OK;
}

static VdpResult encode_grab(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpClipboardGrab *g = &msg->u.grab;
    VdpResult res = check_limit(c, "types", g->ntypes, VDP_MAX_GRAB_TYPES);
    if (res == VDP_OK && g->ntypes == 0)
        res = vdp_error_set(c->err, VDP_ERR_RANGE, "%s: offers no types", c->name);
    if (res == VDP_OK)
        res = write_selection(w, c, g->selection);
    if (res != VDP_OK)
        return res;
    if (c->layout->grab_serial)
        vdp_write_le32(w, g->serial);
    for (uint32_t i = 0; i < g->ntypes; i++)
        vdp_write_le32(w, g->types[i]);
    return VDP_OK;
}

static VdpResult encode_request(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    VdpResult res = check_request_type(c, msg->u.request.type);
    if (res == VDP_OK)
        res = write_selection(w, c, msg->u.request.selection);
    if (res == VDP_OK)
        vdp_write_le32(w, msg->u.request.type);
    return res;
}

static VdpResult encode_release(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    return write_selection(w, c, msg->u.release.selection);
}

static VdpResult encode_xfer_start(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpFileXferStart *s = &msg->u.xfer_start;
    if (s->keyfile_len >= VDP_MAX_FILE_XFER_START_SIZE)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE, "%s: key file of %zu bytes, limit %u",
                             c->name, s->keyfile_len, VDP_MAX_FILE_XFER_START_SIZE - 1u);
    if (s->keyfile_len && !s->keyfile)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: %zu bytes of key file without a buffer",
                             c->name, s->keyfile_len);
    if (s->keyfile_len && memchr(s->keyfile, '\0', s->keyfile_len))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: key file contains a NUL", c->name);
    vdp_write_le32(w, s->id);
    vdp_write_bytes(w, s->keyfile, s->keyfile_len);
    vdp_write_u8(w, 0);
    return VDP_OK;
}

static VdpResult encode_xfer_status(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpFileXferStatus *st = &msg->u.xfer_status;
    if (!vdp_xfer_status_name(st->result))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: unknown result %u", c->name, st->result);
    if (st->has_detail && !xfer_status_has_detail_kind(st->result))
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: status %s has no detail",
                             c->name, vdp_xfer_status_name(st->result));
    vdp_write_le32(w, st->id);
    vdp_write_le32(w, st->result);
    if (!st->has_detail)
        return VDP_OK;
    if (st->result == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE) {
        vdp_write_le64(w, st->disk_free_space);
    } else {
        vdp_write_u8(w, st->error_type);
        vdp_write_le32(w, st->error_code);
    }
    return VDP_OK;
}

static VdpResult encode_xfer_data(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpFileXferData *d = &msg->u.xfer_data;
    if (d->size > VDP_MAX_FILE_XFER_DATA)
        return vdp_error_set(c->err, VDP_ERR_TOO_LARGE, "%s: %llu bytes of data, limit %u",
                             c->name, (unsigned long long)d->size, VDP_MAX_FILE_XFER_DATA);
    if (d->size && !d->data)
        return vdp_error_set(c->err, VDP_ERR_RANGE, "%s: %llu bytes of data without a buffer",
                             c->name, (unsigned long long)d->size);
    vdp_write_le32(w, d->id);
    vdp_write_le64(w, d->size);
    vdp_write_bytes(w, d->data, (size_t)d->size);
    return VDP_OK;
}

static VdpResult encode_client_disconnected(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    return VDP_OK;
}

static VdpResult encode_max_clipboard(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    vdp_write_le32(w, (uint32_t)msg->u.max_clipboard.max);
    return VDP_OK;
}

static VdpResult encode_volume(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpAudioVolumeSync *v = &msg->u.volume;
    VdpResult res = check_bool(c, "is_playback", v->is_playback);
    if (res == VDP_OK)
        res = check_bool(c, "mute", v->mute);
    if (res != VDP_OK)
        return res;
    vdp_write_u8(w, v->is_playback);
    vdp_write_u8(w, v->mute);
    vdp_write_u8(w, v->nchannels);
    for (uint32_t i = 0; i < v->nchannels; i++)
        vdp_write_le16(w, v->volume[i]);
    return VDP_OK;
}

static VdpResult encode_device_info(VdpWriter *w, const Ctx *c, const VdpMsg *msg)
{
    const VdpGraphicsDeviceInfo *di = &msg->u.device_info;
    VdpResult res = check_limit(c, "entries", di->count, VDP_MAX_DEVICE_DISPLAYS);
    for (uint32_t i = 0; res == VDP_OK && i < di->count; i++) {
        const VdpDeviceDisplayInfo *e = &di->info[i];
        res = check_address_len(c, i, e->device_address_len);
        if (res == VDP_OK)
            res = check_address_text(c, i, e->device_address, e->device_address_len);
    }
    if (res != VDP_OK)
        return res;
    vdp_write_le32(w, di->count);
    for (uint32_t i = 0; i < di->count; i++) {
        const VdpDeviceDisplayInfo *e = &di->info[i];
        vdp_write_le32(w, e->channel_id);
        vdp_write_le32(w, e->monitor_id);
        vdp_write_le32(w, e->device_display_id);
        vdp_write_le32(w, e->device_address_len);
        vdp_write_bytes(w, e->device_address, e->device_address_len);
    }
    return VDP_OK;
}

static const EncodeFn encoders[VD_AGENT_END_MESSAGE] = {
    [VD_AGENT_MOUSE_STATE] = encode_mouse,
    [VD_AGENT_MONITORS_CONFIG] = encode_monitors,
    [VD_AGENT_REPLY] = encode_reply,
    [VD_AGENT_CLIPBOARD] = encode_clipboard,
    [VD_AGENT_DISPLAY_CONFIG] = encode_display_config,
    [VD_AGENT_ANNOUNCE_CAPABILITIES] = encode_announce,
    [VD_AGENT_CLIPBOARD_GRAB] = encode_grab,
    [VD_AGENT_CLIPBOARD_REQUEST] = encode_request,
    [VD_AGENT_CLIPBOARD_RELEASE] = encode_release,
    [VD_AGENT_FILE_XFER_START] = encode_xfer_start,
    [VD_AGENT_FILE_XFER_STATUS] = encode_xfer_status,
    [VD_AGENT_FILE_XFER_DATA] = encode_xfer_data,
    [VD_AGENT_CLIENT_DISCONNECTED] = encode_client_disconnected,
    [VD_AGENT_MAX_CLIPBOARD] = encode_max_clipboard,
    [VD_AGENT_AUDIO_VOLUME_SYNC] = encode_volume,
    [VD_AGENT_GRAPHICS_DEVICE_INFO] = encode_device_info,
};

/* Runs the encoder for msg into out (NULL: count only). Returns the size
 * or sets err. */
static VdpResult encode_into(const VdpMsg *msg, const VdpLayout *layout, uint8_t *out,
                             size_t cap, size_t *size, VdpError *err)
{
    if (!vdp_msg_type_known(msg->type))
        return vdp_error_set(err, VDP_ERR_UNKNOWN_TYPE, "cannot encode unknown message type %u",
                             msg->type);
    Ctx c;
    VdpWriter w;
    ctx_init(&c, msg->type, layout, err);
    vdp_writer_init(&w, out, cap);
    VdpResult res = encoders[msg->type](&w, &c, msg);
    if (res != VDP_OK)
        return res;
    if (!vdp_writer_ok(&w))
        return vdp_error_set(err, VDP_ERR_BUFFER, "%s: does not fit in %zu bytes", c.name, cap);
    *size = w.off;
    return VDP_OK;
}

size_t vdp_msg_encode_payload(const VdpMsg *msg, const VdpLayout *layout,
                              uint8_t *out, size_t cap, VdpError *err)
{
    size_t need = 0, written = 0;
    /* Count first, so a short buffer is refused before anything is written. */
    if (encode_into(msg, layout, NULL, 0, &need, err) != VDP_OK)
        return 0;
    if (out && need > cap) {
        vdp_error_set(err, VDP_ERR_BUFFER, "%s: payload needs %zu bytes, buffer holds %zu",
                      vdp_msg_type_name(msg->type), need, cap);
        return 0;
    }
    if (out && encode_into(msg, layout, out, cap, &written, err) != VDP_OK)
        return 0;
    vdp_error_set(err, VDP_OK, "ok");
    return need;
}

VdpResult vdp_msg_encode(const VdpMsg *msg, const VdpLayout *layout,
                         uint8_t **out, size_t *out_len, VdpError *err)
{
    size_t payload = 0, total;
    VdpResult res = encode_into(msg, layout, NULL, 0, &payload, err);
    if (res != VDP_OK)
        return res;
    if (payload > UINT32_MAX || !vdp_add_size(payload, VDP_MSG_HEADER_SIZE, &total))
        return vdp_error_set(err, VDP_ERR_TOO_LARGE, "%s: payload of %zu bytes exceeds a u32",
                             vdp_msg_type_name(msg->type), payload);
    uint8_t *buf = malloc(total);
    if (!buf)
        return vdp_error_set(err, VDP_ERR_NOMEM, "%s: cannot allocate %zu bytes",
                             vdp_msg_type_name(msg->type), total);
    VdpMsgHeader hdr = {VD_AGENT_PROTOCOL, msg->type, 0, (uint32_t)payload};
    vdp_msg_header_encode(&hdr, buf);
    res = encode_into(msg, layout, buf + VDP_MSG_HEADER_SIZE, payload, &payload, err);
    if (res != VDP_OK) {
        free(buf);
        return res;
    }
    *out = buf;
    *out_len = total;
    return vdp_error_set(err, VDP_OK, "ok");
}

/* ======================================================================
 * Describing: one bounded line per message.
 * ====================================================================== */

/* snprintf-style accumulator: len counts the whole text, buf holds what
 * fits, always NUL-terminated when size > 0. */
typedef struct Out {
    char *buf;
    size_t size;
    size_t len;
} Out;

static char *out_dst(const Out *o, size_t *room)
{
    *room = o->len < o->size ? o->size - o->len : 0;
    return *room ? o->buf + o->len : NULL;
}

__attribute__((format(printf, 2, 3)))
static void out_printf(Out *o, const char *fmt, ...)
{
    size_t room;
    char *dst = out_dst(o, &room);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void out_caps(Out *o, const VdpCaps *caps)
{
    size_t room;
    char *dst = out_dst(o, &room);
    o->len += vdp_caps_format(caps, dst, room);
}

/* A name from a table, or the number when the table has none. */
static void out_named(Out *o, const char *name, uint32_t value)
{
    if (name)
        out_printf(o, "%s", name);
    else
        out_printf(o, "%u", value);
}

/* Host-supplied text, with anything unprintable shown as '?'. */
static void out_text(Out *o, const char *s, size_t max)
{
    char safe[VDP_MAX_DEVICE_ADDRESS + 1];
    size_t n = 0;
    for (; s && n < max && n < VDP_MAX_DEVICE_ADDRESS && s[n]; n++)
        safe[n] = isprint((unsigned char)s[n]) ? s[n] : '?';
    safe[n] = '\0';
    out_printf(o, "%s", safe);
}

static uint32_t clamp(uint32_t v, uint32_t max)
{
    return v < max ? v : max;
}

typedef void (*DescribeFn)(Out *o, const VdpMsg *msg);

static void describe_mouse(Out *o, const VdpMsg *msg)
{
    const VdpMouseState *m = &msg->u.mouse;
    out_printf(o, " x=%u y=%u buttons=0x%x display=%u", m->x, m->y, m->buttons, m->display_id);
}

static void describe_monitors(Out *o, const VdpMsg *msg)
{
    const VdpMonitorsConfig *mc = &msg->u.monitors;
    out_printf(o, " count=%u flags=0x%x", mc->count, mc->flags);
    for (uint32_t i = 0; i < clamp(mc->count, VDP_MAX_MONITORS); i++) {
        const VdpMonConfig *m = &mc->monitors[i];
        out_printf(o, " %ux%u%+d%+d@%u", m->width, m->height, m->x, m->y, m->depth);
        if (mc->flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE)
            out_printf(o, "(%ux%umm)", m->mm_width, m->mm_height);
    }
}

static void describe_reply(Out *o, const VdpMsg *msg)
{
    const VdpReply *r = &msg->u.reply;
    out_printf(o, " type=");
    out_named(o, vdp_msg_type_name(r->type), r->type);
    out_printf(o, " error=%s", r->error == VD_AGENT_SUCCESS ? "success"
                               : r->error == VD_AGENT_ERROR ? "error" : "?");
}

static void describe_clipboard(Out *o, const VdpMsg *msg)
{
    const VdpClipboard *cb = &msg->u.clipboard;
    out_printf(o, " sel=%u type=", cb->selection);
    out_named(o, vdp_clipboard_type_name(cb->type), cb->type);
    out_printf(o, " size=%zu", cb->size);
}

static void describe_display_config(Out *o, const VdpMsg *msg)
{
    out_printf(o, " flags=0x%x depth=%u", msg->u.display_config.flags,
               msg->u.display_config.depth);
}

static void describe_announce(Out *o, const VdpMsg *msg)
{
    out_printf(o, " request=%u caps=", msg->u.announce.request);
    out_caps(o, &msg->u.announce.caps);
}

static void describe_grab(Out *o, const VdpMsg *msg)
{
    const VdpClipboardGrab *g = &msg->u.grab;
    out_printf(o, " sel=%u serial=%u types=", g->selection, g->serial);
    for (uint32_t i = 0; i < clamp(g->ntypes, VDP_MAX_GRAB_TYPES); i++) {
        out_printf(o, "%s", i ? "," : "");
        out_named(o, vdp_clipboard_type_name(g->types[i]), g->types[i]);
    }
}

static void describe_request(Out *o, const VdpMsg *msg)
{
    out_printf(o, " sel=%u type=", msg->u.request.selection);
    out_named(o, vdp_clipboard_type_name(msg->u.request.type), msg->u.request.type);
}

static void describe_release(Out *o, const VdpMsg *msg)
{
    out_printf(o, " sel=%u", msg->u.release.selection);
}

static void describe_xfer_start(Out *o, const VdpMsg *msg)
{
    out_printf(o, " id=%u keyfile=%zu bytes", msg->u.xfer_start.id,
               msg->u.xfer_start.keyfile_len);
}

static void describe_xfer_status(Out *o, const VdpMsg *msg)
{
    const VdpFileXferStatus *st = &msg->u.xfer_status;
    out_printf(o, " id=%u result=", st->id);
    out_named(o, vdp_xfer_status_name(st->result), st->result);
    if (!st->has_detail)
        return;
    if (st->result == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE)
        out_printf(o, " free=%llu", (unsigned long long)st->disk_free_space);
    else
        out_printf(o, " error_type=%u error_code=%u", st->error_type, st->error_code);
}

static void describe_xfer_data(Out *o, const VdpMsg *msg)
{
    out_printf(o, " id=%u size=%llu", msg->u.xfer_data.id,
               (unsigned long long)msg->u.xfer_data.size);
}

static void describe_max_clipboard(Out *o, const VdpMsg *msg)
{
    out_printf(o, " max=%d", msg->u.max_clipboard.max);
}

static void describe_volume(Out *o, const VdpMsg *msg)
{
    const VdpAudioVolumeSync *v = &msg->u.volume;
    out_printf(o, " %s mute=%u volume=", v->is_playback ? "playback" : "record", v->mute);
    for (uint32_t i = 0; i < v->nchannels; i++)
        out_printf(o, "%s%u", i ? "," : "", v->volume[i]);
}

static void describe_device_info(Out *o, const VdpMsg *msg)
{
    const VdpGraphicsDeviceInfo *di = &msg->u.device_info;
    out_printf(o, " count=%u", di->count);
    for (uint32_t i = 0; i < clamp(di->count, VDP_MAX_DEVICE_DISPLAYS); i++) {
        const VdpDeviceDisplayInfo *e = &di->info[i];
        out_printf(o, " %u.%u=", e->channel_id, e->monitor_id);
        out_text(o, e->device_address, e->device_address_len);
        out_printf(o, "#%u", e->device_display_id);
    }
}

static const DescribeFn describers[VD_AGENT_END_MESSAGE] = {
    [VD_AGENT_MOUSE_STATE] = describe_mouse,
    [VD_AGENT_MONITORS_CONFIG] = describe_monitors,
    [VD_AGENT_REPLY] = describe_reply,
    [VD_AGENT_CLIPBOARD] = describe_clipboard,
    [VD_AGENT_DISPLAY_CONFIG] = describe_display_config,
    [VD_AGENT_ANNOUNCE_CAPABILITIES] = describe_announce,
    [VD_AGENT_CLIPBOARD_GRAB] = describe_grab,
    [VD_AGENT_CLIPBOARD_REQUEST] = describe_request,
    [VD_AGENT_CLIPBOARD_RELEASE] = describe_release,
    [VD_AGENT_FILE_XFER_START] = describe_xfer_start,
    [VD_AGENT_FILE_XFER_STATUS] = describe_xfer_status,
    [VD_AGENT_FILE_XFER_DATA] = describe_xfer_data,
    [VD_AGENT_CLIENT_DISCONNECTED] = NULL,
    [VD_AGENT_MAX_CLIPBOARD] = describe_max_clipboard,
    [VD_AGENT_AUDIO_VOLUME_SYNC] = describe_volume,
    [VD_AGENT_GRAPHICS_DEVICE_INFO] = describe_device_info,
};

size_t vdp_msg_describe(const VdpMsg *msg, char *buf, size_t size)
{
    Out o = {buf, size, 0};
    if (size)
        buf[0] = '\0';
    const char *name = vdp_msg_type_name(msg->type);
    if (!name) {
        out_printf(&o, "type %u", msg->type);
        return o.len;
    }
    out_printf(&o, "%s", name);
    if (describers[msg->type])
        describers[msg->type](&o, msg);
    return o.len;
}
