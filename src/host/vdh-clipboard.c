/* vdh-clipboard.c - the clipboard, both directions, as a SPICE client
 * does it (by demand: GRAB, REQUEST, CLIPBOARD, RELEASE).
 *
 * Host -> guest: vdh_host_clipboard_set() GRABs the selection and keeps
 * the data; each guest REQUEST of that type is answered with it (type
 * NONE for anything else). Data above VDH_CLIP_WHOLE_MAX is streamed
 * through the port in pieces, resumed on write_ready.
 *
 * Guest -> host: a guest GRAB records the types offered (and ends our own
 * offer on that selection); vdh_host_clipboard_get_async() sends REQUEST
 * and collects the answer, which may arrive whole or streamed; it is
 * bounded by the max-clipboard we announced (the port skips a larger one
 * without allocating, and the accumulator refuses more than that).
 *
 * Grab serials (both sides have CLIPBOARD_GRAB_SERIAL): one counter per
 * selection, reset to 0 on a new guest, on a guest announce with
 * request=1, on our announce with request=1 and on CLIENT_DISCONNECTED.
 * Our GRAB carries the counter and increments it. A guest GRAB is taken
 * if its serial is at least the counter (the counter then follows it);
 * an older one is discarded, which also makes the client win a race of
 * two grabs with the same serial, as spice-vdagentd expects.
 */
#include "config.h"

#define G_LOG_DOMAIN "vdh-host"

#include <string.h>

#include "vdh-host-priv.h"

/* Clipboard payloads up to this size go out as one message; larger ones
 * are streamed (vdp_port_send_begin/send_data), so the port's queue never
 * holds more than its limit whatever the data size. */
#define VDH_CLIP_WHOLE_MAX (64u * 1024u)
/* Piece of outgoing clipboard data offered to the port per call. */
#define VDH_CLIP_PIECE (256u * 1024u)
/* Incoming data: at most this much is allocated up front; the array
 * grows as the data arrives beyond it. */
#define VDH_CLIP_PREALLOC_MAX (64u * 1024u * 1024u)
/* Large answers to guest REQUESTs queued at once. A guest that keeps
 * requesting without reading would otherwise grow the queue without
 * bound; requests beyond this are answered with type NONE. */
#define VDH_CLIP_MAX_OUT_STREAMS 4u

typedef struct ClipGet {
    VdhOp *op;
    uint8_t sel;
    uint32_t type;           /* requested; 0 until decided */
    bool requested;          /* REQUEST sent, waiting for CLIPBOARD */
    GByteArray *buf;         /* streamed data collected so far */
} ClipGet;

typedef struct Sel {
    GBytes *offer;           /* what we offer (NULL: nothing) */
    uint32_t offer_type;
    unsigned served;
    uint32_t serial;         /* next serial we send; the least we accept */
    uint32_t guest_types[VDP_MAX_GRAB_TYPES];
    unsigned guest_ntypes;
    ClipGet *get;
} Sel;

/* A large answer to a guest REQUEST, streamed. */
typedef struct OutStream {
    uint8_t head[8];         /* selection prefix + type */
    size_t head_len;
    GBytes *data;
    size_t sent;             /* of head + data */
    bool begun;
} OutStream;

/* A streamed CLIPBOARD from the guest. */
typedef struct InStream {
    bool active;
    uint8_t sel;
    uint32_t type;
    size_t size;
    ClipGet *get;            /* the fetch it answers, or NULL: ignored */
} InStream;

struct VdhClipState {
    Sel sel[VDH_NSEL];
    GQueue out;
    InStream in;
};

typedef struct ClipResult {
    GBytes *bytes;
    uint32_t type;
} ClipResult;

/* ---- state ---- */

void vdh_clip_init(VdhHost *h)
{
    h->clip = g_new0(VdhClipState, 1);
    g_queue_init(&h->clip->out);
}

static void out_stream_free(gpointer data)
{
    OutStream *o = data;
    g_bytes_unref(o->data);
    g_free(o);
}

static void clear_offer(Sel *s)
{
    g_clear_pointer(&s->offer, g_bytes_unref);
    s->offer_type = VD_AGENT_CLIPBOARD_NONE;
    s->served = 0;
}

void vdh_clip_free(VdhHost *h)
{
    VdhClipState *c = h->clip;
    for (unsigned i = 0; i < VDH_NSEL; i++)
        clear_offer(&c->sel[i]);
    g_queue_clear_full(&c->out, out_stream_free);
    g_free(c);
    h->clip = NULL;
}

void vdh_clip_reset_serials(VdhHost *h)
{
    for (unsigned i = 0; i < VDH_NSEL; i++)
        h->clip->sel[i].serial = 0;
}

void vdh_clip_reset_client(VdhHost *h)
{
    VdhClipState *c = h->clip;
    for (unsigned i = 0; i < VDH_NSEL; i++) {
        clear_offer(&c->sel[i]);
        c->sel[i].serial = 0;
        c->sel[i].guest_ntypes = 0;
    }
}

/* The connection is gone: so are the port's streams in both directions. */
void vdh_clip_disconnected(VdhHost *h)
{
    VdhClipState *c = h->clip;
    g_queue_clear_full(&c->out, out_stream_free);
    memset(&c->in, 0, sizeof(c->in));
    vdh_clip_reset_client(h);
}

void vdh_clip_fail_all(VdhHost *h, VdhError code, const char *why)
{
    for (unsigned i = 0; i < VDH_NSEL && !h->dying; i++)
        if (h->clip->sel[i].get)
            vdh_op_fail(h->clip->sel[i].get->op, code, "%s", why);
}

bool vdh_clip_streaming_out(const VdhHost *h)
{
    return !g_queue_is_empty(&h->clip->out);
}

/* ---- checks ---- */

static bool check_selection(VdhHost *h, uint8_t sel, GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_CLIPBOARD_BY_DEMAND, error))
        return false;
    if (sel >= VDH_NSEL) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "unknown clipboard selection %u", sel);
        return false;
    }
    if (sel != VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD && !h->layout.clipboard_selection) {
        bool guest = vdh_guest_has(h, VD_AGENT_CAP_CLIPBOARD_SELECTION);
        g_set_error(error, VDH_ERROR, VDH_ERROR_CAPABILITY, "%s does not support %s (needed for "
                    "the %s selection)", guest ? "this host endpoint" : "the guest agent",
                    vdp_cap_name(VD_AGENT_CAP_CLIPBOARD_SELECTION), vdp_selection_label(sel));
        return false;
    }
    return true;
}

static bool check_type(uint32_t type, bool zero_ok, GError **error)
{
    if ((type == VD_AGENT_CLIPBOARD_NONE && !zero_ok) || type > VD_AGENT_CLIPBOARD_FILE_LIST) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "clipboard type %u is not one to offer "
                    "or request", type);
        return false;
    }
    return true;
}

static bool guest_offers(const Sel *s, uint32_t type)
{
    for (unsigned i = 0; i < s->guest_ntypes; i++)
        if (s->guest_types[i] == type)
            return true;
    return false;
}

/* ---- host -> guest ---- */

static bool send_grab(VdhHost *h, uint8_t sel, uint32_t type, GError **error)
{
    Sel *s = &h->clip->sel[sel];
    if (!vdh_reannounce_if_needed(h, error))
        return false;
    VdpMsg msg = {.type = VD_AGENT_CLIPBOARD_GRAB};
    msg.u.grab.selection = sel;
    msg.u.grab.serial = s->serial;
    msg.u.grab.ntypes = 1;
    msg.u.grab.types[0] = type;
    if (!vdh_send(h, &msg, error))
        return false;
    if (h->layout.grab_serial)
        s->serial++;
    return true;
}

gboolean vdh_host_clipboard_set(VdhHost *h, uint8_t selection, uint32_t type, GBytes *data,
                                GError **error)
{
    if (!check_selection(h, selection, error) || !check_type(type, false, error))
        return FALSE;
    size_t size = data ? g_bytes_get_size(data) : 0;
    if (size == 0 || size > VDP_MAX_CLIPBOARD_LIMIT) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID,
                    "clipboard data of %zu bytes: 1 byte to %u bytes can be offered", size,
                    VDP_MAX_CLIPBOARD_LIMIT);
        return FALSE;
    }
    if (!send_grab(h, selection, type, error))
        return FALSE;
    Sel *s = &h->clip->sel[selection];
    clear_offer(s);
    s->offer = g_bytes_ref(data);
    s->offer_type = type;
    s->guest_ntypes = 0;   /* we own the selection now */
    return TRUE;
}

gboolean vdh_host_clipboard_release(VdhHost *h, uint8_t selection, GError **error)
{
    if (!check_selection(h, selection, error))
        return FALSE;
    VdpMsg msg = {.type = VD_AGENT_CLIPBOARD_RELEASE};
    msg.u.release.selection = selection;
    if (!vdh_send(h, &msg, error))
        return FALSE;
    clear_offer(&h->clip->sel[selection]);
    return TRUE;
}

unsigned vdh_host_clipboard_served(VdhHost *h, uint8_t selection)
{
    return selection < VDH_NSEL ? h->clip->sel[selection].served : 0;
}

/* Queue a large answer; its head is the payload of a CLIPBOARD without
 * data (selection prefix and type), encoded by the codec. */
static bool queue_stream(VdhHost *h, const VdpMsg *head_msg, GBytes *data, GError **error)
{
    OutStream *o = g_new0(OutStream, 1);
    VdpError err = {0};
    o->head_len = vdp_msg_encode_payload(head_msg, &h->layout, o->head, sizeof(o->head), &err);
    if (o->head_len == 0) {
        g_free(o);
        vdh_set_port_error(h, error, err.code, "CLIPBOARD", err.text);
        return false;
    }
    o->data = g_bytes_ref(data);
    g_queue_push_tail(&h->clip->out, o);
    vdh_clip_pump(h);
    return true;
}

static bool send_clipboard(VdhHost *h, uint8_t sel, uint32_t type, GBytes *data, GError **error)
{
    VdpMsg msg = {.type = VD_AGENT_CLIPBOARD};
    msg.u.clipboard.selection = sel;
    msg.u.clipboard.type = type;
    size_t size = data ? g_bytes_get_size(data) : 0;
    if (size > VDH_CLIP_WHOLE_MAX)
        return queue_stream(h, &msg, data, error);
    msg.u.clipboard.data = data ? g_bytes_get_data(data, NULL) : NULL;
    msg.u.clipboard.size = size;
    return vdh_send(h, &msg, error);
}

void vdh_clip_on_request(VdhHost *h, const VdpClipboardRequest *r)
{
    Sel *s = &h->clip->sel[r->selection];
    bool have = s->offer && s->offer_type == r->type;
    GError *e = NULL;
    if (!have)
        g_debug("guest requests %s on %s: not offered, answering none", vdp_clipboard_type_label(r->type),
                vdp_selection_label(r->selection));
    else if (g_bytes_get_size(s->offer) > VDH_CLIP_WHOLE_MAX &&
             g_queue_get_length(&h->clip->out) >= VDH_CLIP_MAX_OUT_STREAMS) {
        vdh_report_dropped(h, "CLIPBOARD_REQUEST of %s on the %s selection: %u answers are still "
                           "being sent, answering none", vdp_clipboard_type_label(r->type),
                           vdp_selection_label(r->selection), VDH_CLIP_MAX_OUT_STREAMS);
        if (h->dying)
            return;
        have = false;
    }
    if (!send_clipboard(h, r->selection, have ? r->type : VD_AGENT_CLIPBOARD_NONE,
                        have ? s->offer : NULL, &e)) {
        g_debug("cannot answer the guest's clipboard request: %s", e->message);
        g_error_free(e);
        return;
    }
    if (have)
        s->served++;
}

static bool stream_step(VdhHost *h, OutStream *o, VdpResult *r)
{
    size_t total = o->head_len + g_bytes_get_size(o->data);
    const uint8_t *p;
    size_t n, accepted = 0;
    if (o->sent < o->head_len) {
        p = o->head + o->sent;
        n = o->head_len - o->sent;
    } else {
        size_t off = o->sent - o->head_len;
        p = (const uint8_t *)g_bytes_get_data(o->data, NULL) + off;
        n = MIN(total - o->sent, VDH_CLIP_PIECE);
    }
    *r = vdp_port_send_data(h->port, VDP_CLIENT_PORT, p, n, &accepted);
    o->sent += accepted;
    return *r == VDP_OK && accepted == n;
}

/* Push the current stream as far as the port takes it. Returns true when
 * it is complete (or had to be dropped). */
static bool stream_pump_one(VdhHost *h, OutStream *o)
{
    size_t total = o->head_len + g_bytes_get_size(o->data);
    VdpResult r = VDP_OK;
    if (!o->begun) {
        r = vdp_port_send_begin(h->port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, total);
        o->begun = r == VDP_OK;
    }
    while (o->begun && o->sent < total && stream_step(h, o, &r))
        ;
    if (o->sent == total)
        return true;
    if (r == VDP_OK || r == VDP_ERR_BUSY) {
        if (!h->write_blocked)
            vdh_schedule_pump(h);   /* no write_ready will come */
        return false;
    }
    g_debug("clipboard data to the guest dropped: %s", vdp_result_name(r));
    return true;
}

void vdh_clip_pump(VdhHost *h)
{
    OutStream *o;
    while (h->port && (o = g_queue_peek_head(&h->clip->out))) {
        if (!stream_pump_one(h, o))
            return;
        out_stream_free(g_queue_pop_head(&h->clip->out));
    }
}

/* ---- guest -> host: grabs and releases ---- */

static bool grab_is_current(VdhHost *h, const VdpClipboardGrab *g)
{
    Sel *s = &h->clip->sel[g->selection];
    if (!h->layout.grab_serial)
        return true;
    if (g->serial < s->serial) {
        vdh_report_dropped(h, "CLIPBOARD_GRAB of the %s selection with serial %u: older than "
                           "serial %u, discarded (the later grab wins)",
                           vdp_selection_label(g->selection), g->serial, s->serial);
        return false;
    }
    s->serial = g->serial + 1;
    return true;
}

static void get_request(VdhHost *h, ClipGet *get);

void vdh_clip_on_grab(VdhHost *h, const VdpClipboardGrab *g)
{
    if (!grab_is_current(h, g))
        return;
    Sel *s = &h->clip->sel[g->selection];
    memcpy(s->guest_types, g->types, g->ntypes * sizeof(g->types[0]));
    s->guest_ntypes = g->ntypes;
    if (s->offer)
        g_debug("the guest took the %s selection: our offer ends", vdp_selection_label(g->selection));
    clear_offer(s);
    if (h->ev.clipboard_grab)
        h->ev.clipboard_grab(h->user, g->selection, s->guest_types, s->guest_ntypes);
    if (!h->dying && s->get && !s->get->requested)
        get_request(h, s->get);
}

void vdh_clip_on_release(VdhHost *h, const VdpClipboardRelease *r)
{
    h->clip->sel[r->selection].guest_ntypes = 0;
    if (h->ev.clipboard_release)
        h->ev.clipboard_release(h->user, r->selection);
}

const uint32_t *vdh_host_guest_clipboard_types(VdhHost *h, uint8_t selection, unsigned *n)
{
    const Sel *s = selection < VDH_NSEL ? &h->clip->sel[selection] : NULL;
    if (n)
        *n = s ? s->guest_ntypes : 0;
    return s && s->guest_ntypes ? s->guest_types : NULL;
}

/* ---- guest -> host: fetching data ---- */

static void set_timeout_text(VdhOp *op, char *text)
{
    g_free(op->timeout_text);
    op->timeout_text = text;
}

static void clip_result_free(gpointer data)
{
    ClipResult *r = data;
    g_bytes_unref(r->bytes);
    g_free(r);
}

static void get_request(VdhHost *h, ClipGet *get)
{
    Sel *s = &h->clip->sel[get->sel];
    uint32_t type = get->type ? get->type : s->guest_types[0];
    if (!guest_offers(s, type)) {
        vdh_op_fail(get->op, VDH_ERROR_REFUSED,
                    "the guest does not offer %s on the %s selection (it offers %s)",
                    vdp_clipboard_type_label(type), vdp_selection_label(get->sel), vdp_clipboard_type_label(s->guest_types[0]));
        return;
    }
    VdpMsg msg = {.type = VD_AGENT_CLIPBOARD_REQUEST};
    msg.u.request.selection = get->sel;
    msg.u.request.type = type;
    GError *e = NULL;
    if (!vdh_send(h, &msg, &e)) {
        vdh_op_fail_error(get->op, e);
        return;
    }
    get->type = type;
    get->requested = true;
    set_timeout_text(get->op, g_strdup_printf("the guest did not send its %s data of the %s "
                                              "selection within %u ms", vdp_clipboard_type_label(type),
                                              vdp_selection_label(get->sel), get->op->timeout_ms));
}

/* The answer is complete: deliver it (data is copied unless buf is given). */
static void get_complete(VdhHost *h, ClipGet *get, uint32_t type, const uint8_t *data,
                         size_t size, GByteArray *buf)
{
    if (type == VD_AGENT_CLIPBOARD_NONE || size == 0) {
        if (buf)
            g_byte_array_unref(buf);
        vdh_op_fail(get->op, VDH_ERROR_REFUSED, "the guest sent no %s data for the %s selection",
                    vdp_clipboard_type_label(get->type), vdp_selection_label(get->sel));
        return;
    }
    ClipResult *r = g_new0(ClipResult, 1);
    r->type = type;
    r->bytes = buf ? g_byte_array_free_to_bytes(buf) : g_bytes_new(data, size);
    vdh_op_succeed_pointer(get->op, r, clip_result_free);
}

static ClipGet *waiting_get(VdhHost *h, uint8_t sel)
{
    ClipGet *get = h->clip->sel[sel].get;
    return get && get->requested ? get : NULL;
}

void vdh_clip_on_data(VdhHost *h, const VdpClipboard *cb)
{
    ClipGet *get = waiting_get(h, cb->selection);
    if (!get) {
        g_debug("clipboard data from the guest that nobody asked for: ignored");
        return;
    }
    get_complete(h, get, cb->type, cb->data, cb->size, NULL);
}

void vdh_clip_on_dropped(VdhHost *h, const char *why, uint32_t size, bool too_large)
{
    char *limit = vdh_format_size(h->clip_limit);
    char *got = vdh_format_size(size);
    for (unsigned i = 0; i < VDH_NSEL && !h->dying; i++) {
        ClipGet *get = waiting_get(h, (uint8_t)i);
        if (!get)
            continue;
        if (too_large)
            vdh_op_fail(get->op, VDH_ERROR_PROTOCOL, "the guest sent %s of clipboard data, more "
                        "than the %s we accept (max-clipboard)", got, limit);
        else
            vdh_op_fail(get->op, VDH_ERROR_PROTOCOL, "the guest sent malformed clipboard data: %s",
                        why);
    }
    g_free(limit);
    g_free(got);
}

void vdh_clip_stream_begin(VdhHost *h, const VdpClipboard *head)
{
    InStream *in = &h->clip->in;
    memset(in, 0, sizeof(*in));
    in->active = true;
    in->sel = head->selection;
    in->type = head->type;
    in->size = head->size;
    in->get = waiting_get(h, head->selection);
    if (in->get)
        in->get->buf = g_byte_array_sized_new((guint)MIN(head->size, VDH_CLIP_PREALLOC_MAX));
}

void vdh_clip_stream_data(VdhHost *h, const uint8_t *data, size_t len)
{
    InStream *in = &h->clip->in;
    if (!in->active || !in->get)
        return;
    if (in->get->buf->len + len > h->clip_limit) {
        char *limit = vdh_format_size(h->clip_limit);
        ClipGet *get = in->get;
        in->get = NULL;
        vdh_op_fail(get->op, VDH_ERROR_PROTOCOL, "the guest sent more clipboard data than the "
                    "%s we accept (max-clipboard)", limit);
        g_free(limit);
        return;
    }
    g_byte_array_append(in->get->buf, data, (guint)len);
}

void vdh_clip_stream_end(VdhHost *h)
{
    InStream *in = &h->clip->in;
    if (!in->active)
        return;
    in->active = false;
    VdpMsg msg = {.type = VD_AGENT_CLIPBOARD};
    msg.u.clipboard.selection = in->sel;
    msg.u.clipboard.type = in->type;
    msg.u.clipboard.size = in->size;
    if (h->ev.message)
        h->ev.message(h->user, &msg);
    ClipGet *get = in->get;
    in->get = NULL;
    if (get && !h->dying) {
        GByteArray *buf = g_steal_pointer(&get->buf);
        get_complete(h, get, in->type, NULL, buf->len, buf);
    }
}

void vdh_clip_stream_abort(VdhHost *h)
{
    InStream *in = &h->clip->in;
    ClipGet *get = in->get;
    memset(in, 0, sizeof(*in));
    if (get)
        vdh_op_fail(get->op, VDH_ERROR_NOT_CONNECTED, "the guest's clipboard data was cut short");
}

static void get_cleanup(VdhOp *op, const GError *error)
{
    ClipGet *get = op->data;
    VdhClipState *c = op->h->clip;
    if (c->in.get == get)
        c->in.get = NULL;
    if (c->sel[get->sel].get == get)
        c->sel[get->sel].get = NULL;
    if (get->buf)
        g_byte_array_unref(get->buf);
    g_free(get);
}

static bool get_start(VdhHost *h, VdhOp *op, uint8_t sel, uint32_t type, GError **error)
{
    if (!check_selection(h, sel, error) || !check_type(type, true, error))
        return false;
    Sel *s = &h->clip->sel[sel];
    if (s->get) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_BUSY,
                    "the %s selection is already being fetched from the guest", vdp_selection_label(sel));
        return false;
    }
    ClipGet *get = g_new0(ClipGet, 1);
    get->op = op;
    get->sel = sel;
    get->type = type;
    op->data = get;
    op->cleanup = get_cleanup;
    s->get = get;
    return true;
}

void vdh_host_clipboard_get_async(VdhHost *h, uint8_t selection, uint32_t type, unsigned timeout_ms,
                                  GCancellable *c, GAsyncReadyCallback cb, gpointer user)
{
    VdhOp *op = vdh_op_new(h, vdh_host_clipboard_get_async, c, cb, user);
    GError *e = NULL;
    if (!get_start(h, op, selection, type, &e)) {
        vdh_op_fail_error(op, e);
        return;
    }
    vdh_op_set_timeout(op, timeout_ms, "the guest offered nothing on the %s selection within %u ms",
                       vdp_selection_label(selection), timeout_ms ? timeout_ms : VDH_TIMEOUT_DEFAULT_MS);
    if (h->clip->sel[selection].guest_ntypes)
        get_request(h, op->data);
}

GBytes *vdh_host_clipboard_get_finish(VdhHost *h, GAsyncResult *res, uint32_t *type_out,
                                      GError **error)
{
    ClipResult *r = vdh_op_finish_pointer(h, res, vdh_host_clipboard_get_async, error);
    if (type_out)
        *type_out = r ? r->type : VD_AGENT_CLIPBOARD_NONE;
    if (!r)
        return NULL;
    GBytes *bytes = g_steal_pointer(&r->bytes);
    clip_result_free(r);
    return bytes;
}

GBytes *vdh_host_clipboard_get_sync(VdhHost *h, uint8_t selection, uint32_t type,
                                    unsigned timeout_ms, uint32_t *type_out, GError **error)
{
    VdhSync s = {0};
    vdh_host_clipboard_get_async(h, selection, type, timeout_ms, NULL, vdh_sync_callback, &s);
    vdh_sync_wait(h, &s);
    GBytes *bytes = vdh_host_clipboard_get_finish(h, s.res, type_out, error);
    g_object_unref(s.res);
    return bytes;
}
