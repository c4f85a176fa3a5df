/* vdd-xfer.c - file transfer routing (see vdd-xfer.h). */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

#include "vdp-ratelimit.h"
#include "vdd-xfer.h"


typedef struct Xfer {
    uint32_t id;
    VddAgent *agent;          /* the owner: the active agent at START */
    bool can_send;            /* the owner answered CAN_SEND_DATA */
} Xfer;

struct VddXfers {
    VdpPort *port;
    const VdpCaps *client_caps;
    const VdpLayout *layout;
    GHashTable *by_id;        /* GUINT_TO_POINTER(id) -> Xfer* */
    VdpMsg *scratch;          /* messages we build (large union) */

    /* the streamed DATA message being received, if any */
    bool streaming;
    uint32_t stream_id;
    uint8_t *buf;             /* VDD_XFER_FORWARD_CHUNK bytes, while streaming */
    size_t buf_len;

    VddAgent *paused_for;     /* the port is paused until this agent drains */

    VdpRateLimit rl;
};

VddXfers *vdd_xfers_new(VdpPort *port, const VdpCaps *client_caps, const VdpLayout *layout)
{
    VddXfers *x = g_new0(VddXfers, 1);
    x->port = port;
    x->client_caps = client_caps;
    x->layout = layout;
    x->by_id = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    x->scratch = g_new0(VdpMsg, 1);
    return x;
}

static void resume_port(VddXfers *x)
{
    if (!x->paused_for)
        return;
    x->paused_for = NULL;
    vdp_port_pause_read(x->port, false);
}

void vdd_xfers_free(VddXfers *x)
{
    if (!x)
        return;
    g_hash_table_destroy(x->by_id);
    g_free(x->scratch);
    g_free(x->buf);
    g_free(x);
}

unsigned vdd_xfers_count(const VddXfers *x)
{
    return g_hash_table_size(x->by_id);
}

static Xfer *lookup(VddXfers *x, uint32_t id)
{
    return g_hash_table_lookup(x->by_id, GUINT_TO_POINTER(id));
}

static void forget(VddXfers *x, uint32_t id)
{
    g_hash_table_remove(x->by_id, GUINT_TO_POINTER(id));
}

/* ---- sending ---- */

/* To the client, downgraded for a client without detailed errors. */
static void send_client_status(VddXfers *x, uint32_t id, uint32_t result, bool has_detail,
                               const VdpFileXferStatus *detail)
{
    if (vdp_port_get_state(x->port) != VDP_PORT_STATE_OPEN)
        return;
    VdpMsg *m = x->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_FILE_XFER_STATUS;
    VdpFileXferStatus *st = &m->u.xfer_status;
    st->id = id;
    st->result = result;
    if (has_detail && detail) {
        st->has_detail = true;
        st->disk_free_space = detail->disk_free_space;
        st->error_type = detail->error_type;
        st->error_code = detail->error_code;
    }
    if (!vdp_caps_has(x->client_caps, VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS)) {
        if (st->result > VD_AGENT_FILE_XFER_STATUS_SUCCESS)
            st->result = VD_AGENT_FILE_XFER_STATUS_ERROR;
        st->has_detail = false;
    }
    VdpError err = {0};
    if (vdp_port_send_msg(x->port, m, x->layout, &err) != VDP_OK && vdp_rate_ok(&x->rl, "file transfer"))
        g_message("could not send FILE_XFER_STATUS to the host: %s",
                  err.text[0] ? err.text : vdp_result_name(err.code));
}

static void send_agent_status(VddXfers *x, VddAgent *a, uint32_t id, uint32_t result)
{
    VdpMsg *m = x->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_FILE_XFER_STATUS;
    m->u.xfer_status.id = id;
    m->u.xfer_status.result = result;
    vdd_agent_send_vdagent(a, m);
}

/* After queueing for a: stop reading the port while a is behind. */
static void check_backpressure(VddXfers *x, VddAgent *a)
{
    if (x->paused_for || !vdd_agent_write_blocked(a))
        return;
    g_debug("file transfer: agent pid %d is behind, pausing the port", (int)vdd_agent_pid(a));
    x->paused_for = a;
    vdp_port_pause_read(x->port, true);
}

static void send_agent_data(VddXfers *x, Xfer *xf, const uint8_t *data, size_t len)
{
    VdpMsg *m = x->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_FILE_XFER_DATA;
    m->u.xfer_data.id = xf->id;
    m->u.xfer_data.size = len;
    m->u.xfer_data.data = data;
    VddAgent *a = xf->agent;
    if (vdd_agent_send_vdagent(a, m))
        check_backpressure(x, a);
}

/* ---- from the client ---- */

void vdd_xfers_client_start(VddXfers *x, VddAgent *active, bool locked, bool greeter, const VdpMsg *start)
{
    uint32_t id = start->u.xfer_start.id;
    if (!active) {
        g_debug("file transfer %u refused: no active agent", id);
        send_client_status(x, id, VD_AGENT_FILE_XFER_STATUS_VDAGENT_NOT_CONNECTED, false, NULL);
        return;
    }
    if (locked) {
        g_debug("file transfer %u refused: the session is locked", id);
        send_client_status(x, id, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED, false, NULL);
        return;
    }
    if (greeter) {
        g_debug("file transfer %u refused: the active session is a greeter", id);
        send_client_status(x, id, VD_AGENT_FILE_XFER_STATUS_DISABLED, false, NULL);
        return;
    }
    if (g_hash_table_size(x->by_id) >= VDD_MAX_XFERS) {
        if (vdp_rate_ok(&x->rl, "file transfer"))
            g_message("file transfer %u refused: %u transfers already running", id, VDD_MAX_XFERS);
        VdpFileXferStatus detail = {
            .error_type = VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO,
            .error_code = G_IO_ERROR_TOO_MANY_OPEN_FILES,
        };
        send_client_status(x, id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, &detail);
        return;
    }
    if (lookup(x, id)) {
        if (vdp_rate_ok(&x->rl, "file transfer"))
            g_message("file transfer %u refused: that id is already in use", id);
        send_client_status(x, id, VD_AGENT_FILE_XFER_STATUS_ERROR, false, NULL);
        return;
    }
    Xfer *xf = g_new0(Xfer, 1);
    xf->id = id;
    xf->agent = active;
    g_hash_table_insert(x->by_id, GUINT_TO_POINTER(id), xf);
    g_debug("file transfer %u: to agent pid %d", id, (int)vdd_agent_pid(active));
    vdd_agent_send_vdagent(active, start);
}

void vdd_xfers_client_status(VddXfers *x, const VdpMsg *status)
{
    uint32_t id = status->u.xfer_status.id;
    Xfer *xf = lookup(x, id);
    if (!xf) {
        g_debug("file transfer %u: status from the client for an unknown transfer", id);
        return;
    }
    vdd_agent_send_vdagent(xf->agent, status);
    if (x->streaming && x->stream_id == id)
        x->buf_len = 0;
    forget(x, id);
}

static Xfer *data_target(VddXfers *x, uint32_t id)
{
    Xfer *xf = lookup(x, id);
    if (!xf) {
        g_debug("file transfer %u: data for an unknown transfer dropped", id);
        return NULL;
    }
    if (!xf->can_send) {
        if (vdp_rate_ok(&x->rl, "file transfer"))
            g_message("file transfer %u: data before the agent accepted it dropped", id);
        return NULL;
    }
    return xf;
}

void vdd_xfers_client_data(VddXfers *x, const VdpMsg *data)
{
    Xfer *xf = data_target(x, data->u.xfer_data.id);
    if (xf)
        vdd_agent_send_vdagent(xf->agent, data);
    if (xf)
        check_backpressure(x, xf->agent);
}

void vdd_xfers_stream_begin(VddXfers *x, const VdpMsg *head)
{
    vdd_xfers_stream_abort(x);
    x->streaming = true;
    x->stream_id = head->u.xfer_data.id;
    x->buf_len = 0;
    if (!x->buf)
        x->buf = g_malloc(VDD_XFER_FORWARD_CHUNK);
    /* Checked now for the log line; checked again at each piece, the
     * transfer may end meanwhile. */
    data_target(x, x->stream_id);
}

static void stream_flush(VddXfers *x)
{
    if (!x->buf_len)
        return;
    Xfer *xf = lookup(x, x->stream_id);
    if (xf && xf->can_send)
        send_agent_data(x, xf, x->buf, x->buf_len);
    x->buf_len = 0;
}

void vdd_xfers_stream_data(VddXfers *x, const uint8_t *data, size_t len)
{
    if (!x->streaming)
        return;
    while (len > 0) {
        Xfer *xf = lookup(x, x->stream_id);
        if (!xf || !xf->can_send) {
            x->buf_len = 0;
            return;
        }
        size_t n = MIN(len, (size_t)VDD_XFER_FORWARD_CHUNK - x->buf_len);
        memcpy(x->buf + x->buf_len, data, n);
        x->buf_len += n;
        data += n;
        len -= n;
        if (x->buf_len == VDD_XFER_FORWARD_CHUNK)
            stream_flush(x);
    }
}

void vdd_xfers_stream_end(VddXfers *x)
{
    if (!x->streaming)
        return;
    stream_flush(x);
    x->streaming = false;
    g_clear_pointer(&x->buf, g_free);
}

void vdd_xfers_stream_abort(VddXfers *x)
{
    x->streaming = false;
    x->buf_len = 0;
    g_clear_pointer(&x->buf, g_free);
}

/* ---- from the agents ---- */

void vdd_xfers_agent_status(VddXfers *x, VddAgent *a, const VdpMsg *status)
{
    const VdpFileXferStatus *st = &status->u.xfer_status;
    Xfer *xf = lookup(x, st->id);
    if (!xf || xf->agent != a) {
        /* CVE-2020-25651: only the agent the transfer was given to speaks
         * for it; anyone else could otherwise steal the file's data. */
        if (vdp_rate_ok(&x->rl, "file transfer"))
            g_message("agent pid %d: ignoring FILE_XFER_STATUS for transfer %u: %s", (int)vdd_agent_pid(a),
                      st->id, xf ? "it belongs to another agent" : "no such transfer");
        return;
    }
    uint32_t id = st->id;
    if (st->result == VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA) {
        xf->can_send = true;
    } else {
        if (x->streaming && x->stream_id == id)
            x->buf_len = 0;
        forget(x, id);
    }
    send_client_status(x, id, st->result, st->has_detail, st);
}

static void cancel_agent(VddXfers *x, VddAgent *a, bool tell_agent)
{
    GHashTableIter it;
    gpointer key, value;
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    g_hash_table_iter_init(&it, x->by_id);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        Xfer *xf = value;
        if (xf->agent != a)
            continue;
        g_array_append_val(ids, xf->id);
        g_hash_table_iter_remove(&it);
    }
    for (guint i = 0; i < ids->len; i++) {
        uint32_t id = g_array_index(ids, uint32_t, i);
        g_debug("file transfer %u cancelled: its agent %s", id, tell_agent ? "is no longer active" : "left");
        send_client_status(x, id, VD_AGENT_FILE_XFER_STATUS_CANCELLED, false, NULL);
        if (tell_agent)
            send_agent_status(x, a, id, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
    }
    if (ids->len)
        g_message("cancelled %u file transfer(s): the receiving agent %s", ids->len,
                  tell_agent ? "is no longer active" : "left");
    g_array_free(ids, TRUE);
}

void vdd_xfers_agent_gone(VddXfers *x, VddAgent *a)
{
    cancel_agent(x, a, false);
    if (x->paused_for == a)
        resume_port(x);
}

void vdd_xfers_agent_inactive(VddXfers *x, VddAgent *a)
{
    cancel_agent(x, a, true);
    if (x->paused_for == a)
        resume_port(x);
}

void vdd_xfers_agent_write_ready(VddXfers *x, VddAgent *a)
{
    if (x->paused_for == a) {
        g_debug("file transfer: agent pid %d caught up, resuming the port", (int)vdd_agent_pid(a));
        resume_port(x);
    }
}

void vdd_xfers_client_gone(VddXfers *x)
{
    vdd_xfers_stream_abort(x);
    GHashTableIter it;
    gpointer key, value;
    unsigned n = 0;
    g_hash_table_iter_init(&it, x->by_id);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        Xfer *xf = value;
        send_agent_status(x, xf->agent, xf->id, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
        n++;
    }
    g_hash_table_remove_all(x->by_id);
    if (n)
        g_message("cancelled %u file transfer(s): the client went away", n);
    resume_port(x);
}
