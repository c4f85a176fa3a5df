/* fake-guest.c - the scripted guest agent of test-host (see fake-guest.h). */
#include "config.h"

#include <string.h>

#include "fake-guest.h"
#include "vdp-checksum.h"

#define FG_GROUP "vdagent-file-xfer"

/* ---- records ---- */

static void msg_free(gpointer data)
{
    FgMsg *m = data;
    g_free(m->raw);
    g_free(m);
}

static void file_free(gpointer data)
{
    FgFile *f = data;
    g_free(f->name);
    g_free(f);
}

static FgMsg *record(FakeGuest *fg, uint32_t chunk_port, uint32_t type, uint32_t size,
                     const uint8_t *data)
{
    FgMsg *m = g_new0(FgMsg, 1);
    m->chunk_port = chunk_port;
    m->type = type;
    m->size = size;
    if (data && size <= FG_RAW_MAX)
        m->raw = g_memdup2(data, size ? size : 1);
    g_ptr_array_add(fg->msgs, m);
    return m;
}

static FgFile *find_file(const FakeGuest *fg, uint32_t id)
{
    for (guint i = fg->files->len; i-- > 0;) {
        FgFile *f = g_ptr_array_index(fg->files, i);
        if (f->id == id)
            return f;
    }
    return NULL;
}

/* ---- sending ---- */

bool fg_send(FakeGuest *fg, const VdpMsg *msg)
{
    VdpError err = {0};
    VdpResult r = vdp_port_send_msg(fg->port, msg, &fg->layout, &err);
    if (r != VDP_OK && g_getenv("VDH_TEST_VERBOSE"))
        g_printerr("fake guest: cannot send %s: %s\n", vdp_msg_type_name(msg->type), err.text);
    return r == VDP_OK;
}

bool fg_send_raw(FakeGuest *fg, uint32_t chunk_port, uint32_t type, const void *payload, size_t len)
{
    return vdp_port_send(fg->port, chunk_port, type, payload, len) == VDP_OK;
}

void fg_announce(FakeGuest *fg, bool request)
{
    VdpMsg m = {.type = VD_AGENT_ANNOUNCE_CAPABILITIES};
    m.u.announce.request = request;
    m.u.announce.caps = fg->caps;
    fg_send(fg, &m);
}

void fg_grab_serial(FakeGuest *fg, uint8_t sel, uint32_t serial, uint32_t type)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_GRAB};
    m.u.grab.selection = sel;
    m.u.grab.serial = serial;
    m.u.grab.ntypes = 1;
    m.u.grab.types[0] = type;
    fg_send(fg, &m);
}

void fg_grab(FakeGuest *fg, uint8_t sel, const uint32_t *types, unsigned ntypes)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_GRAB};
    m.u.grab.selection = sel;
    m.u.grab.serial = fg->layout.grab_serial ? fg->serial[sel]++ : 0;
    m.u.grab.ntypes = ntypes;
    memcpy(m.u.grab.types, types, ntypes * sizeof(types[0]));
    fg_send(fg, &m);
}

void fg_release(FakeGuest *fg, uint8_t sel)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_RELEASE};
    m.u.release.selection = sel;
    fg_send(fg, &m);
}

void fg_request(FakeGuest *fg, uint8_t sel, uint32_t type)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_REQUEST};
    m.u.request.selection = sel;
    m.u.request.type = type;
    fg_send(fg, &m);
}

void fg_set_clipboard(FakeGuest *fg, uint8_t sel, uint32_t type, GBytes *data)
{
    g_clear_pointer(&fg->clip_data[sel], g_bytes_unref);
    fg->clip_type[sel] = type;
    fg->clip_data[sel] = data ? g_bytes_ref(data) : NULL;
}

static void send_status(FakeGuest *fg, uint32_t id, uint32_t result,
                        const VdpFileXferStatus *detail)
{
    VdpMsg m = {.type = VD_AGENT_FILE_XFER_STATUS};
    if (detail)
        m.u.xfer_status = *detail;
    m.u.xfer_status.id = id;
    m.u.xfer_status.result = result;
    /* Like spice-vdagentd: detailed statuses only to a host that has
     * FILE_XFER_DETAILED_ERRORS, plain ERROR otherwise. */
    if (result > VD_AGENT_FILE_XFER_STATUS_SUCCESS &&
        !vdp_caps_has(&fg->host_caps, VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS)) {
        m.u.xfer_status.result = VD_AGENT_FILE_XFER_STATUS_ERROR;
        m.u.xfer_status.has_detail = false;
    }
    fg_send(fg, &m);
}

/* ---- handling what the host sends ---- */

static void on_announce(FakeGuest *fg, const VdpAnnounce *a)
{
    fg->host_caps = a->caps;
    fg->host_announced = true;
    vdp_layout_from_caps(&fg->layout, &fg->caps, &fg->host_caps);
    if (a->request) {
        /* spice-vdagentd: a new client; serials restart. */
        memset(fg->serial, 0, sizeof(fg->serial));
        fg_announce(fg, false);
    }
}

static void on_monitors(FakeGuest *fg, const VdpMonitorsConfig *mc)
{
    if (fg->reply == FG_REPLY_NONE)
        return;
    if (fg->cfg.vdagent_0221 && (mc->flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE))
        return;
    VdpMsg m = {.type = VD_AGENT_REPLY};
    m.u.reply.type = VD_AGENT_MONITORS_CONFIG;
    m.u.reply.error = fg->reply == FG_REPLY_SUCCESS ? VD_AGENT_SUCCESS : VD_AGENT_ERROR;
    fg_send(fg, &m);
}

/* spice-vdagentd's rule: the current serial (then increment) or the one
 * before (the client wins a race); anything else is discarded. */
static void on_grab(FakeGuest *fg, const VdpClipboardGrab *g)
{
    if (!fg->layout.grab_serial)
        return;
    uint32_t *cur = &fg->serial[g->selection];
    if (g->serial == *cur)
        (*cur)++;
    else if (g->serial + 1 != *cur)
        fg->grab_discards++;
}

static void on_request(FakeGuest *fg, const VdpClipboardRequest *r)
{
    if (!fg->answer_requests)
        return;
    GBytes *d = fg->clip_data[r->selection];
    bool have = d && fg->clip_type[r->selection] == r->type;
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD};
    m.u.clipboard.selection = r->selection;
    m.u.clipboard.type = have ? r->type : VD_AGENT_CLIPBOARD_NONE;
    m.u.clipboard.data = have ? g_bytes_get_data(d, NULL) : NULL;
    m.u.clipboard.size = have ? g_bytes_get_size(d) : 0;
    fg_send(fg, &m);
}

static void answer_start(FakeGuest *fg, uint32_t id)
{
    VdpFileXferStatus d = {0};
    switch (fg->xfer) {
    case FG_XFER_ACCEPT:
        send_status(fg, id, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA, NULL);
        if (fg->pause_on_can_send)
            fg_pause_read(fg, true);
        break;
    case FG_XFER_NOT_ENOUGH_SPACE:
        d.has_detail = true;
        d.disk_free_space = fg->free_space;
        send_status(fg, id, VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE, &d);
        break;
    case FG_XFER_DISABLED:
        send_status(fg, id, VD_AGENT_FILE_XFER_STATUS_DISABLED, NULL);
        break;
    case FG_XFER_SESSION_LOCKED:
        send_status(fg, id, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED, NULL);
        break;
    case FG_XFER_IO_ERROR:
        d.has_detail = true;
        d.error_type = VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO;
        d.error_code = fg->io_error;
        send_status(fg, id, VD_AGENT_FILE_XFER_STATUS_ERROR, &d);
        break;
    case FG_XFER_SILENT:
        break;
    }
}

static void on_start(FakeGuest *fg, const VdpFileXferStart *s)
{
    GKeyFile *kf = g_key_file_new();
    FgFile *f = g_new0(FgFile, 1);
    f->id = s->id;
    f->host_status = UINT32_MAX;
    if (g_key_file_load_from_data(kf, s->keyfile, s->keyfile_len, G_KEY_FILE_NONE, NULL)) {
        f->name = g_key_file_get_string(kf, FG_GROUP, "name", NULL);
        f->size = g_key_file_get_uint64(kf, FG_GROUP, "size", NULL);
        f->nr = g_key_file_get_integer(kf, FG_GROUP, "file-xfer-nr", NULL);
        f->total = g_key_file_get_integer(kf, FG_GROUP, "file-xfer-total", NULL);
    }
    g_key_file_free(kf);
    f->hash = VDP_FNV_INIT;
    g_ptr_array_add(fg->files, f);
    answer_start(fg, s->id);
}

static void file_data(FakeGuest *fg, FgFile *f, const uint8_t *data, size_t n)
{
    if (!f)
        return;
    f->received += n;
    f->hash = vdp_fnv1a(f->hash, data, n);
    if (f->received == f->size && !f->done) {
        f->done = true;
        send_status(fg, f->id, VD_AGENT_FILE_XFER_STATUS_SUCCESS, NULL);
    } else if (f->received > f->size) {
        send_status(fg, f->id, VD_AGENT_FILE_XFER_STATUS_ERROR, NULL);
    }
}

static FgFile *data_file(FakeGuest *fg, uint32_t id)
{
    FgFile *f = find_file(fg, id);
    if (!f)
        fg->unknown_data++;
    return f;
}

static void on_status(FakeGuest *fg, const VdpFileXferStatus *st)
{
    FgFile *f = find_file(fg, st->id);
    if (f)
        f->host_status = st->result;
}

static void dispatch(FakeGuest *fg, FgMsg *m)
{
    const VdpMsg *msg = &m->msg;
    switch (m->type) {
    case VD_AGENT_ANNOUNCE_CAPABILITIES:
        on_announce(fg, &msg->u.announce);
        break;
    case VD_AGENT_MONITORS_CONFIG:
        on_monitors(fg, &msg->u.monitors);
        break;
    case VD_AGENT_CLIPBOARD_GRAB:
        on_grab(fg, &msg->u.grab);
        break;
    case VD_AGENT_CLIPBOARD_REQUEST:
        on_request(fg, &msg->u.request);
        break;
    case VD_AGENT_FILE_XFER_START:
        on_start(fg, &msg->u.xfer_start);
        break;
    case VD_AGENT_FILE_XFER_DATA:
        file_data(fg, data_file(fg, msg->u.xfer_data.id), msg->u.xfer_data.data,
                  (size_t)msg->u.xfer_data.size);
        break;
    case VD_AGENT_FILE_XFER_STATUS:
        on_status(fg, &msg->u.xfer_status);
        break;
    default:
        break;
    }
}

static void data_hash(FgMsg *m)
{
    if (m->type == VD_AGENT_CLIPBOARD)
        m->hash = vdp_fnv1a(VDP_FNV_INIT, m->msg.u.clipboard.data, m->msg.u.clipboard.size);
    else if (m->type == VD_AGENT_FILE_XFER_DATA)
        m->hash = vdp_fnv1a(VDP_FNV_INIT, m->msg.u.xfer_data.data, (size_t)m->msg.u.xfer_data.size);
}

static void port_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                         const uint8_t *data, size_t len)
{
    FakeGuest *fg = user;
    FgMsg *m = record(fg, chunk_port, hdr->type, (uint32_t)len, data);
    VdpError err = {0};
    m->complete = true;
    /* Decode the kept copy, so the views stay valid in the record. */
    const uint8_t *src = m->raw ? m->raw : data;
    m->ok = vdp_msg_decode(VDP_FROM_HOST, chunk_port, hdr->type, src, len, &fg->layout,
                           &m->msg, &err) == VDP_OK;
    g_strlcpy(m->error, err.text, sizeof(m->error));
    if (!m->ok)
        return;
    data_hash(m);
    dispatch(fg, m);
    if (!m->raw)
        memset(&m->msg.u, 0, sizeof(m->msg.u));   /* its views die with data */
}

static void port_stream_begin(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                              const uint8_t *head, size_t head_len)
{
    FakeGuest *fg = user;
    FgMsg *m = record(fg, chunk_port, hdr->type, hdr->size, NULL);
    VdpError err = {0};
    m->streamed = true;
    m->hash = VDP_FNV_INIT;
    m->ok = vdp_msg_decode_stream_head(VDP_FROM_HOST, chunk_port, hdr->type, head, head_len,
                                       hdr->size, &fg->layout, &m->msg, &err) == VDP_OK;
    g_strlcpy(m->error, err.text, sizeof(m->error));
    fg->stream_msg = m->ok ? m : NULL;
    fg->stream_file = m->ok && m->type == VD_AGENT_FILE_XFER_DATA
                          ? data_file(fg, m->msg.u.xfer_data.id) : NULL;
}

static void port_stream_data(void *user, uint32_t chunk_port, const uint8_t *data, size_t len)
{
    FakeGuest *fg = user;
    if (fg->stream_msg)
        fg->stream_msg->hash = vdp_fnv1a(fg->stream_msg->hash, data, len);
    if (fg->stream_file)
        file_data(fg, fg->stream_file, data, len);
}

static void port_stream_end(void *user, uint32_t chunk_port)
{
    FakeGuest *fg = user;
    if (fg->stream_msg)
        fg->stream_msg->complete = true;
    fg->stream_msg = NULL;
    fg->stream_file = NULL;
}

static void port_stream_abort(void *user, uint32_t chunk_port)
{
    FakeGuest *fg = user;
    fg->stream_msg = NULL;
    fg->stream_file = NULL;
}

static void port_problem(void *user, VdpReasmEvent ev, uint32_t chunk_port,
                         const VdpMsgHeader *hdr, const VdpError *err)
{
    FakeGuest *fg = user;
    FgMsg *m = record(fg, chunk_port, hdr ? hdr->type : 0, hdr ? hdr->size : 0, NULL);
    m->complete = true;
    g_strlcpy(m->error, err->text, sizeof(m->error));
}

static void port_state(void *user, VdpPortState st, const char *why)
{
    FakeGuest *fg = user;
    VdpPortState was = fg->state;
    fg->state = st;
    if (g_getenv("VDH_TEST_VERBOSE"))
        g_printerr("    [fake guest] %s: %s\n", vdp_port_state_name(st), why ? why : "");
    if (st == VDP_PORT_STATE_OPEN && was != VDP_PORT_STATE_OPEN) {
        fg->opens++;
        fg->host_announced = false;
        memset(&fg->layout, 0, sizeof(fg->layout));
        memset(fg->serial, 0, sizeof(fg->serial));
        if (!fg->cfg.no_announce)
            fg_announce(fg, true);
    } else if (st != VDP_PORT_STATE_OPEN && was == VDP_PORT_STATE_OPEN) {
        fg->closes++;
    }
}

static const VdpPortCallbacks fg_callbacks = {
    .state_changed = port_state,
    .message = port_message,
    .stream_begin = port_stream_begin,
    .stream_data = port_stream_data,
    .stream_end = port_stream_end,
    .stream_abort = port_stream_abort,
    .problem = port_problem,
};

/* ---- lifecycle ---- */

FakeGuest *fg_new(GMainContext *ctx, const FgConfig *cfg)
{
    FakeGuest *fg = g_new0(FakeGuest, 1);
    fg->ctx = ctx;
    fg->cfg = *cfg;
    fg->path = g_strdup(cfg->path);
    fg->cfg.path = fg->path;
    fg->cfg.caps = NULL;
    if (cfg->caps)
        fg->caps = *cfg->caps;
    else
        vdp_caps_init_guest(&fg->caps);
    fg->msgs = g_ptr_array_new_with_free_func(msg_free);
    fg->files = g_ptr_array_new_with_free_func(file_free);
    fg->answer_requests = true;
    size_t limit = cfg->queue_limit;
    VdpPortConfig pc = {
        .path = fg->path,
        .mode = cfg->listen ? VDP_PORT_LISTEN : VDP_PORT_CONNECT,
        .dir = VDP_FROM_HOST,
        .chunk_size = cfg->chunk_size,
        .max_chunk_in = cfg->max_chunk_in,
        .layout = &fg->layout,
        .high_watermark = limit ? limit / 2 : 0,
        .queue_limit = limit,
        .reconnect_min_ms = 5,
        .reconnect_max_ms = 50,
    };
    fg->port = vdp_port_new(ctx, &pc, &fg_callbacks, fg);
    g_assert(fg->port);
    return fg;
}

void fg_free(FakeGuest *fg)
{
    if (!fg)
        return;
    vdp_port_free(fg->port);
    for (unsigned i = 0; i < FG_NSEL; i++)
        g_clear_pointer(&fg->clip_data[i], g_bytes_unref);
    g_ptr_array_free(fg->msgs, TRUE);
    g_ptr_array_free(fg->files, TRUE);
    g_free(fg->path);
    g_free(fg);
}

void fg_start(FakeGuest *fg)
{
    vdp_port_start(fg->port);
}

void fg_stop(FakeGuest *fg)
{
    vdp_port_stop(fg->port);
    if (fg->state == VDP_PORT_STATE_OPEN)
        fg->closes++;
    fg->state = VDP_PORT_STATE_STOPPED;
    while (fg->paused) {
        fg->paused--;
        vdp_port_pause_read(fg->port, false);
    }
}

bool fg_is_open(const FakeGuest *fg)
{
    return fg->state == VDP_PORT_STATE_OPEN;
}

void fg_pause_read(FakeGuest *fg, bool pause)
{
    if (pause)
        fg->paused++;
    else if (fg->paused > 0)
        fg->paused--;
    else
        return;
    vdp_port_pause_read(fg->port, pause);
}

/* ---- queries ---- */

int fg_index(const FakeGuest *fg, uint32_t type, unsigned n)
{
    for (guint i = 0; i < fg->msgs->len; i++) {
        const FgMsg *m = g_ptr_array_index(fg->msgs, i);
        if (m->type == type && m->complete && n-- == 0)
            return (int)i;
    }
    return -1;
}

const FgMsg *fg_nth(const FakeGuest *fg, uint32_t type, unsigned n)
{
    int i = fg_index(fg, type, n);
    return i < 0 ? NULL : g_ptr_array_index(fg->msgs, (guint)i);
}

unsigned fg_count(const FakeGuest *fg, uint32_t type)
{
    unsigned n = 0;
    for (guint i = 0; i < fg->msgs->len; i++) {
        const FgMsg *m = g_ptr_array_index(fg->msgs, i);
        n += m->type == type && m->complete;
    }
    return n;
}

const FgMsg *fg_last(const FakeGuest *fg, uint32_t type)
{
    unsigned n = fg_count(fg, type);
    return n ? fg_nth(fg, type, n - 1) : NULL;
}

const FgFile *fg_file(const FakeGuest *fg, uint32_t id)
{
    return find_file(fg, id);
}

void fg_forget(FakeGuest *fg)
{
    fg->stream_msg = NULL;   /* a stream in progress goes on unrecorded */
    g_ptr_array_set_size(fg->msgs, 0);
}
