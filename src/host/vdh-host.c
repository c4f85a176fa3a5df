/* vdh-host.c - the host side of the agent channel: the object, the port,
 * capabilities, the operation framework, mouse, monitors and the
 * remaining messages (see vdh-host.h, vdh-host-priv.h). */
#include "config.h"

#define G_LOG_DOMAIN "vdh-host"

#include <stdarg.h>
#include <string.h>

#include "vdh-host-priv.h"

/* A producer refused by a full queue without backpressure being signalled
 * (messages waiting behind a stream use only half of the queue) tries
 * again after this delay. */
#define VDH_PUMP_RETRY_MS 10u

/* Buttons VDAgentMouseState knows (bit 0 is unused). */
#define VDH_BUTTONS_KNOWN                                                                    \
    (VD_AGENT_LBUTTON_MASK | VD_AGENT_MBUTTON_MASK | VD_AGENT_RBUTTON_MASK |                \
     VD_AGENT_UBUTTON_MASK | VD_AGENT_DBUTTON_MASK | VD_AGENT_SBUTTON_MASK |                \
     VD_AGENT_EBUTTON_MASK)

#define VDH_MONITOR_FLAGS_KNOWN                                                              \
    (VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS | VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE)

G_DEFINE_QUARK(vdh-error-quark, vdh_error)

static void host_finalize(VdhHost *h);

/* ======================================================================
 * Re-entrancy
 * ====================================================================== */

void vdh_enter(VdhHost *h)
{
    h->depth++;
}

bool vdh_leave(VdhHost *h)
{
    if (--h->depth == 0 && h->dying) {
        host_finalize(h);
        return false;
    }
    return !h->dying;
}

/* ======================================================================
 * Operations: a GTask with a timeout, a cancellable and a cleanup
 * ====================================================================== */

/* A result waiting to be delivered from an idle source. */
typedef struct Ret {
    GTask *task;
    GError *error;
    gpointer value;
    GDestroyNotify free_value;
    bool pointer;
} Ret;

static gboolean ret_idle(gpointer data)
{
    Ret *r = data;
    if (r->error)
        g_task_return_error(r->task, g_steal_pointer(&r->error));
    else if (r->pointer)
        g_task_return_pointer(r->task, g_steal_pointer(&r->value), r->free_value);
    else
        g_task_return_boolean(r->task, TRUE);
    return G_SOURCE_REMOVE;
}

static void ret_free(gpointer data)
{
    Ret *r = data;
    if (r->error)
        g_error_free(r->error);
    if (r->value && r->free_value)
        r->free_value(r->value);
    g_object_unref(r->task);
    g_free(r);
}

static void destroy_source(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        g_source_unref(*src);
        *src = NULL;
    }
}

/* End an operation: detach it, then deliver from an idle source (never
 * from inside a port callback, so a callback that starts the next
 * operation or frees the host finds a consistent state). */
static void op_end(VdhOp *op, GError *error, gpointer value, GDestroyNotify free_value,
                   bool pointer)
{
    destroy_source(&op->timer);
    destroy_source(&op->cancel_src);
    if (op->cleanup)
        op->cleanup(op, error);
    Ret *r = g_new0(Ret, 1);
    r->task = op->task;
    r->error = error;
    r->value = value;
    r->free_value = free_value;
    r->pointer = pointer;
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, ret_idle, r, ret_free);
    g_source_attach(src, op->h->ctx);
    g_source_unref(src);
    g_free(op->timeout_text);
    g_free(op);
}

static gboolean op_timeout_cb(gpointer data)
{
    VdhOp *op = data;
    VdhHost *h = op->h;
    vdh_enter(h);
    destroy_source(&op->timer);
    if (!op->on_timeout || !op->on_timeout(op))
        vdh_op_fail(op, VDH_ERROR_TIMEOUT, "%s", op->timeout_text ? op->timeout_text : "timed out");
    vdh_leave(h);
    return G_SOURCE_REMOVE;
}

static gboolean op_cancel_cb(GCancellable *c, gpointer data)
{
    VdhOp *op = data;
    VdhHost *h = op->h;
    vdh_enter(h);
    vdh_op_fail(op, VDH_ERROR_CANCELLED, "cancelled");
    vdh_leave(h);
    return G_SOURCE_REMOVE;
}

VdhOp *vdh_op_new(VdhHost *h, gpointer tag, GCancellable *c, GAsyncReadyCallback cb, gpointer user)
{
    VdhOp *op = g_new0(VdhOp, 1);
    op->h = h;
    /* GTask delivers in the thread-default context of its creation. */
    g_main_context_push_thread_default(h->ctx);
    op->task = g_task_new(NULL, c, cb, user);
    g_main_context_pop_thread_default(h->ctx);
    g_task_set_source_tag(op->task, tag);
    /* Cancellation is reported as VDH_ERROR_CANCELLED, not G_IO_ERROR. */
    g_task_set_check_cancellable(op->task, FALSE);
    if (c) {
        op->cancel_src = g_cancellable_source_new(c);
        g_source_set_callback(op->cancel_src, G_SOURCE_FUNC(op_cancel_cb), op, NULL);
        g_source_attach(op->cancel_src, h->ctx);
    }
    return op;
}

void vdh_op_set_timeout(VdhOp *op, unsigned timeout_ms, const char *fmt, ...)
{
    destroy_source(&op->timer);
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);   /* the old text may be an argument */
    va_end(ap);
    g_free(op->timeout_text);
    op->timeout_text = text;
    op->timeout_ms = timeout_ms ? timeout_ms : VDH_TIMEOUT_DEFAULT_MS;
    op->timer = g_timeout_source_new(op->timeout_ms);
    g_source_set_callback(op->timer, op_timeout_cb, op, NULL);
    g_source_attach(op->timer, op->h->ctx);
}

void vdh_op_succeed(VdhOp *op)
{
    op_end(op, NULL, NULL, NULL, false);
}

void vdh_op_succeed_pointer(VdhOp *op, gpointer value, GDestroyNotify free_value)
{
    op_end(op, NULL, value, free_value, true);
}

void vdh_op_fail_error(VdhOp *op, GError *error)
{
    op_end(op, error, NULL, NULL, false);
}

void vdh_op_fail(VdhOp *op, VdhError code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    GError *e = g_error_new_literal(VDH_ERROR, code, text);
    g_free(text);
    vdh_op_fail_error(op, e);
}

static bool op_result_valid(GAsyncResult *res, gpointer tag)
{
    return g_task_is_valid(res, NULL) && g_task_get_source_tag(G_TASK(res)) == tag;
}

gboolean vdh_op_finish(VdhHost *h, GAsyncResult *res, gpointer tag, GError **error)
{
    g_return_val_if_fail(op_result_valid(res, tag), FALSE);
    return g_task_propagate_boolean(G_TASK(res), error);
}

gpointer vdh_op_finish_pointer(VdhHost *h, GAsyncResult *res, gpointer tag, GError **error)
{
    g_return_val_if_fail(op_result_valid(res, tag), NULL);
    return g_task_propagate_pointer(G_TASK(res), error);
}

void vdh_sync_callback(GObject *src, GAsyncResult *res, gpointer data)
{
    VdhSync *s = data;
    s->res = g_object_ref(res);
}

/* Every operation has a timeout, so this ends. The context is kept alive
 * in case a callback frees the host meanwhile. */
void vdh_sync_wait(VdhHost *h, VdhSync *s)
{
    GMainContext *ctx = g_main_context_ref(h->ctx);
    while (!s->res)
        g_main_context_iteration(ctx, TRUE);
    g_main_context_unref(ctx);
}

/* ======================================================================
 * Checks, sending, reporting
 * ====================================================================== */

bool vdh_guest_has(const VdhHost *h, unsigned cap)
{
    return h->guest_announced && vdp_caps_has(&h->guest_caps, cap);
}

bool vdh_check_ready(VdhHost *h, int cap, GError **error)
{
    if (!h->connected) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_NOT_CONNECTED,
                    "no guest agent is connected to %s", h->path);
        return false;
    }
    if (!h->guest_announced) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_NOT_CONNECTED,
                    "the guest agent on %s has not announced its capabilities yet", h->path);
        return false;
    }
    if (cap >= 0 && !vdp_caps_has(&h->guest_caps, (unsigned)cap)) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_CAPABILITY, "the guest agent does not support %s",
                    vdp_cap_name((unsigned)cap));
        return false;
    }
    return true;
}

void vdh_set_port_error(VdhHost *h, GError **error, VdpResult r, const char *what,
                        const char *detail)
{
    VdhError code;
    switch (r) {
    case VDP_ERR_CLOSED:
        code = VDH_ERROR_NOT_CONNECTED;
        break;
    case VDP_ERR_BUSY:
        code = VDH_ERROR_BUSY;
        break;
    case VDP_ERR_IO:
    case VDP_ERR_NOMEM:
        code = VDH_ERROR_IO;
        break;
    default:
        code = VDH_ERROR_INVALID;
        break;
    }
    g_set_error(error, VDH_ERROR, code, "cannot send %s to the guest: %s", what,
                detail && detail[0] ? detail : vdp_result_name(r));
}

static bool send_announce(VdhHost *h, bool request, GError **error);

/* After CLIENT_DISCONNECTED the guest waits for a new client: the next
 * message is preceded by an announce with request=1, which restarts the
 * grab serials on both sides (call it before building a GRAB). */
bool vdh_reannounce_if_needed(VdhHost *h, GError **error)
{
    if (!h->reannounce)
        return true;
    vdh_clip_reset_serials(h);
    return send_announce(h, true, error);
}

bool vdh_send(VdhHost *h, const VdpMsg *msg, GError **error)
{
    if (!h->port || !h->connected) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_NOT_CONNECTED,
                    "no guest agent is connected to %s", h->path);
        return false;
    }
    bool is_request = msg->type == VD_AGENT_ANNOUNCE_CAPABILITIES && msg->u.announce.request;
    if (!is_request && !vdh_reannounce_if_needed(h, error))
        return false;
    VdpError err = {0};
    VdpResult r = vdp_port_send_msg(h->port, msg, &h->layout, &err);
    if (r != VDP_OK) {
        vdh_set_port_error(h, error, r, vdp_msg_type_name(msg->type), err.text);
        return false;
    }
    if (is_request)
        h->reannounce = false;
    h->stats.messages_out++;
    return true;
}

char *vdh_format_size(uint64_t size)
{
    char *text = g_format_size(size);
    /* GLib puts a no-break space (UTF-8 C2 A0) between number and unit;
     * messages end up in logs, JSON and tests, where a plain space is
     * what is meant. */
    char *p;
    while ((p = strstr(text, "\xc2\xa0")) != NULL) {
        *p = ' ';
        memmove(p + 1, p + 2, strlen(p + 2) + 1);
    }
    return text;
}

void vdh_report_dropped(VdhHost *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    h->stats.dropped++;
    g_debug("dropped: %s", text);
    if (h->ev.dropped)
        h->ev.dropped(h->user, text);
    g_free(text);
}

static gboolean pump_cb(gpointer data)
{
    VdhHost *h = data;
    vdh_enter(h);
    destroy_source(&h->pump_src);
    vdh_pump(h);
    vdh_leave(h);
    return G_SOURCE_REMOVE;
}

void vdh_schedule_pump(VdhHost *h)
{
    if (h->pump_src || h->dying)
        return;
    h->pump_src = g_timeout_source_new(VDH_PUMP_RETRY_MS);
    g_source_set_callback(h->pump_src, pump_cb, h, NULL);
    g_source_attach(h->pump_src, h->ctx);
}

void vdh_pump(VdhHost *h)
{
    if (h->dying || !h->connected)
        return;
    vdh_clip_pump(h);
    if (!h->dying)
        vdh_xfer_pump(h);
}

/* ======================================================================
 * Capabilities
 * ====================================================================== */

static bool send_announce(VdhHost *h, bool request, GError **error)
{
    VdpMsg msg = {.type = VD_AGENT_ANNOUNCE_CAPABILITIES};
    msg.u.announce.request = request ? 1 : 0;
    msg.u.announce.caps = h->own_caps;
    return vdh_send(h, &msg, error);
}

static bool send_max_clipboard(VdhHost *h, int32_t max, GError **error)
{
    VdpMsg msg = {.type = VD_AGENT_MAX_CLIPBOARD};
    msg.u.max_clipboard.max = max;
    return vdh_send(h, &msg, error);
}

static void log_send_failure(const char *what, GError *e)
{
    if (e) {
        g_debug("cannot send %s: %s", what, e->message);
        g_error_free(e);
    }
}

static void complete_ready_ops(VdhHost *h)
{
    while (h->ready_ops && !h->dying)
        vdh_op_succeed(h->ready_ops->data);   /* the cleanup unlinks it */
}

static void on_announce(VdhHost *h, const VdpAnnounce *a)
{
    GError *e = NULL;
    h->guest_caps = a->caps;
    vdp_layout_from_caps(&h->layout, &h->own_caps, &h->guest_caps);
    bool first = !h->guest_announced;
    h->guest_announced = true;
    if (a->request) {
        /* A (re)started guest agent: grab serials start over, as in
         * spice-vdagentd on a client announce with request=1. */
        vdh_clip_reset_serials(h);
        if (!send_announce(h, false, &e))
            log_send_failure("ANNOUNCE_CAPABILITIES", g_steal_pointer(&e));
    }
    /* Once per guest agent: on its first announce and when it restarted. */
    if ((first || a->request) && h->max_clipboard >= 0 &&
        vdp_caps_has(&h->guest_caps, VD_AGENT_CAP_MAX_CLIPBOARD) &&
        !send_max_clipboard(h, h->max_clipboard, &e))
        log_send_failure("MAX_CLIPBOARD", g_steal_pointer(&e));
    if (h->ev.guest_caps)
        h->ev.guest_caps(h->user, &h->guest_caps, a->request != 0);
    complete_ready_ops(h);
}

/* ======================================================================
 * The port's callbacks
 * ====================================================================== */

static void fail_guest_ops(VdhHost *h, VdhError code, const char *why)
{
    if (h->monitors_op)
        vdh_op_fail(h->monitors_op, code, "%s", why);
    vdh_clip_fail_all(h, code, why);
    vdh_xfer_fail(h, code, why);
}

/* Nothing is known about the guest on the port (new or gone). */
static void forget_guest(VdhHost *h)
{
    h->guest_announced = false;
    h->reannounce = false;
    h->write_blocked = false;
    vdp_caps_clear(&h->guest_caps);
    memset(&h->layout, 0, sizeof(h->layout));
}

/* What spice-server forgets when the last client leaves: grab serials,
 * offers, button state, transfer ids. */
static void reset_client(VdhHost *h)
{
    vdh_clip_reset_client(h);
    h->mouse_buttons = 0;
    h->next_xfer_id = 1;
}

static void on_open(VdhHost *h, const char *why)
{
    GError *e = NULL;
    h->connected = true;
    h->stats.connects++;
    forget_guest(h);
    reset_client(h);
    if (!send_announce(h, true, &e))
        log_send_failure("ANNOUNCE_CAPABILITIES", g_steal_pointer(&e));
    if (h->ev.connection)
        h->ev.connection(h->user, true, why);
}

static void on_close(VdhHost *h, const char *why)
{
    h->connected = false;
    forget_guest(h);
    char *text = g_strdup_printf("the guest agent went away (%s)", why ? why : "closed");
    fail_guest_ops(h, VDH_ERROR_NOT_CONNECTED, text);
    vdh_clip_disconnected(h);
    g_free(text);
    if (h->ev.connection && !h->dying)
        h->ev.connection(h->user, false, why);
}

static void port_state_cb(void *user, VdpPortState st, const char *why)
{
    VdhHost *h = user;
    vdh_enter(h);
    if (st == VDP_PORT_STATE_OPEN && !h->connected)
        on_open(h, why);
    else if (st != VDP_PORT_STATE_OPEN && h->connected)
        on_close(h, why);
    else
        g_debug("%s: %s", vdp_port_state_name(st), why ? why : "");
    vdh_leave(h);
}

static void on_reply(VdhHost *h, const VdpReply *rep)
{
    if (rep->type != VD_AGENT_MONITORS_CONFIG || !h->monitors_op) {
        g_debug("REPLY to %s with nothing waiting for it: ignored", vdp_msg_type_name(rep->type));
        return;
    }
    if (rep->error == VD_AGENT_SUCCESS)
        vdh_op_succeed(h->monitors_op);
    else
        vdh_op_fail(h->monitors_op, VDH_ERROR_REFUSED,
                    "the guest agent refused the monitor configuration");
}

static void dispatch(VdhHost *h, const VdpMsg *msg)
{
    switch (msg->type) {
    case VD_AGENT_ANNOUNCE_CAPABILITIES:
        on_announce(h, &msg->u.announce);
        break;
    case VD_AGENT_REPLY:
        on_reply(h, &msg->u.reply);
        break;
    case VD_AGENT_CLIPBOARD:
        vdh_clip_on_data(h, &msg->u.clipboard);
        break;
    case VD_AGENT_CLIPBOARD_GRAB:
        vdh_clip_on_grab(h, &msg->u.grab);
        break;
    case VD_AGENT_CLIPBOARD_REQUEST:
        vdh_clip_on_request(h, &msg->u.request);
        break;
    case VD_AGENT_CLIPBOARD_RELEASE:
        vdh_clip_on_release(h, &msg->u.release);
        break;
    case VD_AGENT_FILE_XFER_STATUS:
        vdh_xfer_on_status(h, &msg->u.xfer_status);
        break;
    default:
        /* The decoder's route check lets nothing else through. */
        g_debug("%s from the guest: ignored", vdp_msg_type_name(msg->type));
        break;
    }
}

static void port_message_cb(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                            const uint8_t *data, size_t len)
{
    VdhHost *h = user;
    VdpMsg msg;
    VdpError err = {0};
    vdh_enter(h);
    h->stats.messages_in++;
    if (vdp_msg_decode(VDP_FROM_GUEST, chunk_port, hdr->type, data, len, &h->layout, &msg, &err) !=
        VDP_OK) {
        vdh_report_dropped(h, "%s", err.text);
        if (hdr->type == VD_AGENT_CLIPBOARD && !h->dying)
            vdh_clip_on_dropped(h, err.text, hdr->size, false);
    } else {
        if (h->ev.message)
            h->ev.message(h->user, &msg);
        if (!h->dying)
            dispatch(h, &msg);
    }
    vdh_leave(h);
}

static void port_stream_begin_cb(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                                 const uint8_t *head, size_t head_len)
{
    VdhHost *h = user;
    VdpMsg msg;
    VdpError err = {0};
    vdh_enter(h);
    h->stats.messages_in++;
    if (vdp_msg_decode_stream_head(VDP_FROM_GUEST, chunk_port, hdr->type, head, head_len,
                                   hdr->size, &h->layout, &msg, &err) != VDP_OK) {
        vdh_report_dropped(h, "%s", err.text);
        if (!h->dying)
            vdh_clip_on_dropped(h, err.text, hdr->size, false);
    } else if (msg.type == VD_AGENT_CLIPBOARD) {
        vdh_clip_stream_begin(h, &msg.u.clipboard);
    }
    vdh_leave(h);
}

static void port_stream_data_cb(void *user, uint32_t chunk_port, const uint8_t *data, size_t len)
{
    VdhHost *h = user;
    vdh_enter(h);
    vdh_clip_stream_data(h, data, len);
    vdh_leave(h);
}

static void port_stream_end_cb(void *user, uint32_t chunk_port)
{
    VdhHost *h = user;
    vdh_enter(h);
    vdh_clip_stream_end(h);
    vdh_leave(h);
}

static void port_stream_abort_cb(void *user, uint32_t chunk_port)
{
    VdhHost *h = user;
    vdh_enter(h);
    vdh_clip_stream_abort(h);
    vdh_leave(h);
}

static void port_problem_cb(void *user, VdpReasmEvent ev, uint32_t chunk_port,
                            const VdpMsgHeader *hdr, const VdpError *err)
{
    VdhHost *h = user;
    vdh_enter(h);
    if (ev == VDP_REASM_DROPPED)
        h->stats.messages_in++;
    vdh_report_dropped(h, "%s", err->text);
    if (hdr && hdr->type == VD_AGENT_CLIPBOARD && !h->dying)
        vdh_clip_on_dropped(h, err->text, hdr->size, err->code == VDP_ERR_TOO_LARGE);
    vdh_leave(h);
}

static void port_write_blocked_cb(void *user)
{
    VdhHost *h = user;
    h->write_blocked = true;
}

static void port_write_ready_cb(void *user)
{
    VdhHost *h = user;
    vdh_enter(h);
    h->write_blocked = false;
    vdh_pump(h);
    vdh_leave(h);
}

/* The guest's clipboard is bounded by what we announced (MAX_CLIPBOARD),
 * so an oversize one is skipped by the reassembler without allocation. */
static size_t port_max_payload_cb(void *user, uint32_t type)
{
    VdhHost *h = user;
    if (type != VD_AGENT_CLIPBOARD)
        return vdp_msg_max_payload(type);
    size_t head = vdp_msg_stream_head_size(VD_AGENT_CLIPBOARD, &h->layout);
    return head + h->clip_limit;
}

static const VdpPortCallbacks port_callbacks = {
    .state_changed = port_state_cb,
    .message = port_message_cb,
    .stream_begin = port_stream_begin_cb,
    .stream_data = port_stream_data_cb,
    .stream_end = port_stream_end_cb,
    .stream_abort = port_stream_abort_cb,
    .problem = port_problem_cb,
    .write_blocked = port_write_blocked_cb,
    .write_ready = port_write_ready_cb,
};

/* ======================================================================
 * Lifecycle and state
 * ====================================================================== */

static bool check_config(const VdhHostConfig *cfg, GError **error)
{
    if (!cfg || !cfg->path || !cfg->path[0]) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "no port path given");
        return false;
    }
    if (cfg->chunk_size &&
        (cfg->chunk_size < VDP_MSG_HEADER_SIZE || cfg->chunk_size > UINT32_MAX)) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID,
                    "chunk size %zu is outside %u..%u bytes", cfg->chunk_size,
                    VDP_MSG_HEADER_SIZE, UINT32_MAX);
        return false;
    }
    if (cfg->max_clipboard > 0 && (uint32_t)cfg->max_clipboard > VDP_MAX_CLIPBOARD_LIMIT) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID,
                    "max clipboard %d is above the %u-byte ceiling", cfg->max_clipboard,
                    VDP_MAX_CLIPBOARD_LIMIT);
        return false;
    }
    return true;
}

static void apply_config(VdhHost *h, const VdhHostConfig *cfg)
{
    h->ctx = cfg->context ? g_main_context_ref(cfg->context) : g_main_context_ref_thread_default();
    h->path = g_strdup(cfg->path);
    h->listen = cfg->listen;
    h->chunk_size = cfg->chunk_size ? cfg->chunk_size : VDP_CHUNK_SIZE_DEFAULT;
    if (cfg->caps)
        h->own_caps = *cfg->caps;
    else
        vdp_caps_init_host(&h->own_caps);
    h->max_clipboard = cfg->max_clipboard == 0 ? (int32_t)VDP_MAX_CLIPBOARD_DEFAULT
                                               : cfg->max_clipboard;
    h->clip_limit = h->max_clipboard > 0 ? (size_t)h->max_clipboard : VDP_MAX_CLIPBOARD_DEFAULT;
}

VdhHost *vdh_host_new(const VdhHostConfig *cfg, const VdhHostEvents *ev, void *user, GError **error)
{
    if (!check_config(cfg, error))
        return NULL;
    VdhHost *h = g_new0(VdhHost, 1);
    apply_config(h, cfg);
    if (ev)
        h->ev = *ev;
    h->user = user;
    vdh_clip_init(h);

    VdpPortConfig pc = {
        .path = h->path,
        .mode = h->listen ? VDP_PORT_LISTEN : VDP_PORT_CONNECT,
        .dir = VDP_FROM_GUEST,
        .chunk_size = h->chunk_size,
        .max_chunk_in = 0,    /* spice-vdagentd writes each message as one chunk */
        .max_payload = port_max_payload_cb,
        .layout = &h->layout,
        .high_watermark = VDH_QUEUE_HIGH,
        .low_watermark = VDH_QUEUE_HIGH / 4,
        .queue_limit = VDH_QUEUE_LIMIT,
    };
    h->port = vdp_port_new(h->ctx, &pc, &port_callbacks, h);
    if (!h->port) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "invalid port configuration for %s",
                    h->path);
        host_finalize(h);
        return NULL;
    }
    return h;
}

static void fail_everything(VdhHost *h, VdhError code, const char *why)
{
    fail_guest_ops(h, code, why);
    while (h->ready_ops)
        vdh_op_fail(h->ready_ops->data, code, "%s", why);
}

static void host_finalize(VdhHost *h)
{
    vdh_clip_free(h);
    g_free(h->path);
    g_main_context_unref(h->ctx);
    g_free(h);
}

void vdh_host_free(VdhHost *h)
{
    if (!h || h->dying)
        return;
    vdh_enter(h);
    fail_everything(h, VDH_ERROR_CANCELLED, "the host endpoint was closed");
    h->dying = true;
    h->connected = false;
    vdp_port_free(h->port);   /* safe inside its callbacks */
    h->port = NULL;
    destroy_source(&h->pump_src);
    vdh_leave(h);
}

void vdh_host_start(VdhHost *h)
{
    if (!h || h->dying || h->started)
        return;
    h->started = true;
    vdp_port_start(h->port);
}

bool vdh_host_is_connected(VdhHost *h)
{
    return h && h->connected;
}

const VdpCaps *vdh_host_get_guest_caps(VdhHost *h)
{
    return h && h->guest_announced ? &h->guest_caps : NULL;
}

const char *vdh_host_describe_state(VdhHost *h)
{
    const char *s;
    if (!h)
        return "no host";
    if (h->connected)
        s = h->guest_announced ? "connected" : "connected, waiting for the guest to announce";
    else if (!h->started)
        s = "not started";
    else
        s = h->listen ? "waiting for a guest" : "waiting for the port (connecting)";
    g_strlcpy(h->state_text, s, sizeof(h->state_text));
    return h->state_text;
}

void vdh_host_get_stats(VdhHost *h, VdhHostStats *st)
{
    if (!st)
        return;
    memset(st, 0, sizeof(*st));
    if (!h)
        return;
    *st = h->stats;
    VdpPortStats ps;
    vdp_port_get_stats(h->port, &ps);
    st->bytes_in = ps.stream.bytes_in;
    st->bytes_out = ps.stream.bytes_out;
    st->queued = vdp_port_queued(h->port);
    st->queue_peak = ps.stream.queue_peak;
    st->queue_high = VDH_QUEUE_HIGH;
    st->queue_limit = VDH_QUEUE_LIMIT;
}

/* ---- wait until ready ---- */

static void ready_cleanup(VdhOp *op, const GError *error)
{
    op->h->ready_ops = g_list_remove(op->h->ready_ops, op);
}

void vdh_host_wait_ready_async(VdhHost *h, unsigned timeout_ms, GCancellable *c,
                               GAsyncReadyCallback cb, gpointer user)
{
    VdhOp *op = vdh_op_new(h, vdh_host_wait_ready_async, c, cb, user);
    if (h->connected && h->guest_announced) {
        vdh_op_succeed(op);
        return;
    }
    op->cleanup = ready_cleanup;
    h->ready_ops = g_list_append(h->ready_ops, op);
    vdh_op_set_timeout(op, timeout_ms, "no guest agent announced itself on %s within %u ms (%s)",
                       h->path, timeout_ms ? timeout_ms : VDH_TIMEOUT_DEFAULT_MS,
                       vdh_host_describe_state(h));
}

gboolean vdh_host_wait_ready_finish(VdhHost *h, GAsyncResult *res, GError **error)
{
    return vdh_op_finish(h, res, vdh_host_wait_ready_async, error);
}

gboolean vdh_host_wait_ready_sync(VdhHost *h, unsigned timeout_ms, GError **error)
{
    VdhSync s = {0};
    vdh_host_wait_ready_async(h, timeout_ms, NULL, vdh_sync_callback, &s);
    vdh_sync_wait(h, &s);
    gboolean ok = vdh_host_wait_ready_finish(h, s.res, error);
    g_object_unref(s.res);
    return ok;
}

/* ======================================================================
 * Mouse
 * ====================================================================== */

static bool check_buttons(uint32_t buttons, GError **error)
{
    if (buttons & ~(uint32_t)VDH_BUTTONS_KNOWN) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID,
                    "unknown mouse button bits 0x%x", buttons & ~(uint32_t)VDH_BUTTONS_KNOWN);
        return false;
    }
    return true;
}

static bool send_mouse(VdhHost *h, uint32_t x, uint32_t y, uint32_t buttons, uint8_t display_id,
                       GError **error)
{
    VdpMsg msg = {.type = VD_AGENT_MOUSE_STATE};
    msg.u.mouse.x = x;
    msg.u.mouse.y = y;
    msg.u.mouse.buttons = buttons;
    msg.u.mouse.display_id = display_id;
    if (!vdh_send(h, &msg, error))
        return false;
    h->mouse_buttons = buttons;
    return true;
}

gboolean vdh_host_mouse(VdhHost *h, uint32_t x, uint32_t y, uint32_t buttons, uint8_t display_id,
                        GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_MOUSE_STATE, error) || !check_buttons(buttons, error))
        return FALSE;
    return send_mouse(h, x, y, buttons, display_id, error);
}

gboolean vdh_host_mouse_click(VdhHost *h, uint32_t x, uint32_t y, uint32_t button_mask,
                              uint8_t display_id, GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_MOUSE_STATE, error) || !check_buttons(button_mask, error))
        return FALSE;
    if (!button_mask) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "no mouse button to click");
        return FALSE;
    }
    /* Other buttons keep the state the last call left them in. */
    uint32_t held = h->mouse_buttons & ~button_mask;
    return send_mouse(h, x, y, held | button_mask, display_id, error) &&
           send_mouse(h, x, y, held, display_id, error);
}

/* ======================================================================
 * Monitors
 * ====================================================================== */

static bool monitor_disabled(const VdpMonConfig *m)
{
    return m->width == 0 && m->height == 0;
}

static bool check_monitor(VdhHost *h, unsigned i, const VdpMonConfig *m, GError **error)
{
    if ((m->width == 0) != (m->height == 0)) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID,
                    "monitor %u is %ux%u: a monitor is disabled with both sizes 0", i,
                    m->width, m->height);
        return false;
    }
    if (monitor_disabled(m) && !vdh_guest_has(h, VD_AGENT_CAP_SPARSE_MONITORS_CONFIG)) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_CAPABILITY,
                    "monitor %u is disabled, but the guest agent does not support %s", i,
                    vdp_cap_name(VD_AGENT_CAP_SPARSE_MONITORS_CONFIG));
        return false;
    }
    return true;
}

/* Flags: USE_POS when the caller asked or any enabled monitor has a
 * position other than 0,0; PHYSICAL_SIZE only when the caller asked or
 * gave millimetres (spice-vdagent 0.22.1 ignores such a config). */
static uint32_t monitor_flags(const VdpMonitorsConfig *cfg)
{
    uint32_t flags = cfg->flags;
    for (uint32_t i = 0; i < cfg->count; i++) {
        const VdpMonConfig *m = &cfg->monitors[i];
        if (!monitor_disabled(m) && (m->x != 0 || m->y != 0))
            flags |= VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS;
        if (m->mm_width || m->mm_height)
            flags |= VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE;
    }
    return flags;
}

static bool prepare_monitors(VdhHost *h, const VdpMonitorsConfig *cfg, VdpMsg *msg, GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_MONITORS_CONFIG, error))
        return false;
    if (!cfg || cfg->count == 0 || cfg->count > VDP_MAX_MONITORS) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "a layout has 1 to %u monitors, not %u",
                    VDP_MAX_MONITORS, cfg ? cfg->count : 0);
        return false;
    }
    if (cfg->flags & ~(uint32_t)VDH_MONITOR_FLAGS_KNOWN) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "unknown monitor config flags 0x%x",
                    cfg->flags & ~(uint32_t)VDH_MONITOR_FLAGS_KNOWN);
        return false;
    }
    for (uint32_t i = 0; i < cfg->count; i++)
        if (!check_monitor(h, i, &cfg->monitors[i], error))
            return false;
    msg->type = VD_AGENT_MONITORS_CONFIG;
    msg->u.monitors.count = cfg->count;
    msg->u.monitors.flags = monitor_flags(cfg);
    memcpy(msg->u.monitors.monitors, cfg->monitors, cfg->count * sizeof(cfg->monitors[0]));
    return true;
}

static void monitors_cleanup(VdhOp *op, const GError *error)
{
    op->h->monitors_op = NULL;
}

void vdh_host_set_monitors_async(VdhHost *h, const VdpMonitorsConfig *cfg, unsigned timeout_ms,
                                 GCancellable *c, GAsyncReadyCallback cb, gpointer user)
{
    VdhOp *op = vdh_op_new(h, vdh_host_set_monitors_async, c, cb, user);
    GError *e = NULL;
    VdpMsg *msg = g_new0(VdpMsg, 1);
    bool ok = prepare_monitors(h, cfg, msg, &e);
    if (ok && h->monitors_op) {
        g_set_error(&e, VDH_ERROR, VDH_ERROR_BUSY,
                    "a monitor configuration is already waiting for the guest's answer");
        ok = false;
    }
    ok = ok && vdh_send(h, msg, &e);
    bool mm = msg->u.monitors.flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE;
    g_free(msg);
    if (!ok) {
        vdh_op_fail_error(op, e);
        return;
    }
    if (!vdh_guest_has(h, VD_AGENT_CAP_REPLY)) {
        vdh_op_succeed(op);   /* nothing to wait for */
        return;
    }
    op->cleanup = monitors_cleanup;
    h->monitors_op = op;
    vdh_op_set_timeout(op, timeout_ms,
                       "the guest agent did not answer the monitor configuration within %u ms%s",
                       timeout_ms ? timeout_ms : VDH_TIMEOUT_DEFAULT_MS,
                       mm ? " (spice-vdagent 0.22.1 ignores configurations with physical sizes)"
                          : "");
}

gboolean vdh_host_set_monitors_finish(VdhHost *h, GAsyncResult *res, GError **error)
{
    return vdh_op_finish(h, res, vdh_host_set_monitors_async, error);
}

gboolean vdh_host_set_monitors_sync(VdhHost *h, const VdpMonitorsConfig *cfg, unsigned timeout_ms,
                                    GError **error)
{
    VdhSync s = {0};
    vdh_host_set_monitors_async(h, cfg, timeout_ms, NULL, vdh_sync_callback, &s);
    vdh_sync_wait(h, &s);
    gboolean ok = vdh_host_set_monitors_finish(h, s.res, error);
    g_object_unref(s.res);
    return ok;
}

/* ======================================================================
 * The rest of the protocol
 * ====================================================================== */

gboolean vdh_host_send_graphics_device_info(VdhHost *h, const VdpGraphicsDeviceInfo *info,
                                            GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_GRAPHICS_DEVICE_INFO, error))
        return FALSE;
    if (!info) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "no graphics device info given");
        return FALSE;
    }
    VdpMsg *msg = g_new0(VdpMsg, 1);
    msg->type = VD_AGENT_GRAPHICS_DEVICE_INFO;
    msg->u.device_info = *info;
    gboolean ok = vdh_send(h, msg, error);
    g_free(msg);
    return ok;
}

gboolean vdh_host_send_audio_volume(VdhHost *h, bool playback, bool mute, const uint16_t *volume,
                                    unsigned nchannels, GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_AUDIO_VOLUME_SYNC, error))
        return FALSE;
    if (nchannels > VDP_MAX_AUDIO_CHANNELS || (nchannels && !volume)) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "%u audio channels: 0 to %u with volumes",
                    nchannels, VDP_MAX_AUDIO_CHANNELS);
        return FALSE;
    }
    VdpMsg msg = {.type = VD_AGENT_AUDIO_VOLUME_SYNC};
    msg.u.volume.is_playback = playback;
    msg.u.volume.mute = mute;
    msg.u.volume.nchannels = (uint8_t)nchannels;
    if (nchannels)
        memcpy(msg.u.volume.volume, volume, nchannels * sizeof(volume[0]));
    return vdh_send(h, &msg, error);
}

gboolean vdh_host_send_display_config(VdhHost *h, uint32_t flags, uint32_t depth, GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_DISPLAY_CONFIG, error))
        return FALSE;
    VdpMsg msg = {.type = VD_AGENT_DISPLAY_CONFIG};
    msg.u.display_config.flags = flags;
    msg.u.display_config.depth = depth;
    return vdh_send(h, &msg, error);
}

gboolean vdh_host_send_client_disconnected(VdhHost *h, GError **error)
{
    if (!vdh_check_ready(h, -1, error))
        return FALSE;
    if (vdh_clip_streaming_out(h)) {
        /* The guest drops its partial client-port message on this one;
         * ours would continue mid-message and break its framing. */
        g_set_error(error, VDH_ERROR, VDH_ERROR_BUSY,
                    "clipboard data is still being sent to the guest; try again when it is out");
        return FALSE;
    }
    VdpMsg msg = {.type = VD_AGENT_CLIENT_DISCONNECTED};
    if (!vdh_send(h, &msg, error))
        return FALSE;
    const char *why = "the client disconnected (CLIENT_DISCONNECTED sent)";
    vdh_xfer_fail(h, VDH_ERROR_NOT_CONNECTED, why);
    vdh_clip_fail_all(h, VDH_ERROR_NOT_CONNECTED, why);
    reset_client(h);
    h->reannounce = true;
    return TRUE;
}

gboolean vdh_host_send_max_clipboard(VdhHost *h, int32_t max, GError **error)
{
    if (!vdh_check_ready(h, VD_AGENT_CAP_MAX_CLIPBOARD, error))
        return FALSE;
    return send_max_clipboard(h, max, error);
}

gboolean vdh_host_announce(VdhHost *h, bool request, GError **error)
{
    if (!h->connected) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_NOT_CONNECTED,
                    "no guest agent is connected to %s", h->path);
        return FALSE;
    }
    if (request)
        vdh_clip_reset_serials(h);
    return send_announce(h, request, error);
}
