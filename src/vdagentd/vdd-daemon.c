/* vdd-daemon.c - the daemon's core state and routing (see vdd-daemon.h). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "vdd-agents.h"
#include "vdd-clipboard.h"
#include "vdd-daemon.h"
#include "vdd-input.h"
#include "vdd-session.h"
#include "vdd-status.h"
#include "vdp-ratelimit.h"
#include "vdd-xfer.h"
#include "vdp-caps.h"
#include "vdp-ipc-msg.h"
#include "vdp-msg.h"
#include "vdp-port.h"

/* Writing out what is queued for the host when the port is closed on
 * purpose (no active agent): short, the loop is blocked meanwhile. */
#define PORT_CLOSE_FLUSH_MS 200
/* A session switch reports the old session's end before the new one has
 * been read (an asynchronous D-Bus round trip). Closing the port at once
 * would make the SPICE client see the agent vanish and come back, and reset
 * its state, on every switch. So the port closes only when no active agent
 * with a layout has appeared for this long; far more than the lookup takes,
 * short enough that a host falls back to server mouse mode promptly. */
#define PORT_CLOSE_GRACE_MS 1000
/* At exit. */
#define PORT_EXIT_FLUSH_MS 1000

struct VddDaemon {
    GMainContext *ctx;
    VddOptions opt;
    char *port_path, *socket_path, *uinput_path;
    VddQuitFunc quit;
    void *quit_user;
    bool quitting;

    VddSessions *sessions;
    VddAgents *agents;
    VddAgent *active;
    VdpPort *port;
    bool port_ever_open;
    GSource *close_grace;       /* pending close of the port, or NULL */
    bool close_due;             /* the grace period ended without an active agent */
    VddInput *input;
    bool input_error_logged;

    VdpCaps own_caps;
    VdpCaps client_caps;
    bool client_announced;
    bool client_connected;
    VdpLayout layout;           /* with the client (clipboard layout) */
    int32_t max_clipboard;      /* the client's MAX_CLIPBOARD, -1: none (no limit) */
    bool max_clipboard_known;   /* the client sent one: forwarded to agents */

    VdpMonitorsConfig *monitors;   /* cached, or NULL */
    GBytes *device_info;           /* cached raw payload, or NULL */
    VdpAudioVolumeSync *volume[2]; /* [is_playback], cached, or NULL */

    VddXfers *xfers;
    VddClip *clip;

    VdpMsg *scratch;
    uint32_t logged_ignored;       /* bit per VDAgent type already logged as ignored */
    /* per chunk port (index port - VDP_CLIENT_PORT): the stream being
     * received there is a FILE_XFER_DATA / a CLIPBOARD we route */
    bool streaming_xfer[2];
    bool streaming_clip[2];
    VdpRateLimit rl_drop, rl_mouse;
};

static const char *mouse_mode(const VddDaemon *d)
{
    if (!d->input)
        return "agent";
    return d->opt.fake_uinput ? "fake" : "uinput";
}

/* ---- talking to the host ---- */

static void port_send(VddDaemon *d, const VdpMsg *m)
{
    VdpError err = {0};
    if (vdp_port_get_state(d->port) != VDP_PORT_STATE_OPEN)
        return;
    if (vdp_port_send_msg(d->port, m, &d->layout, &err) != VDP_OK && vdp_rate_ok(&d->rl_drop, "protocol"))
        g_message("could not send %s to the host: %s", vdp_msg_type_name(m->type),
                  err.text[0] ? err.text : vdp_result_name(err.code));
}

static void send_announce(VddDaemon *d, bool request)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_ANNOUNCE_CAPABILITIES;
    m->u.announce.request = request ? 1 : 0;
    m->u.announce.caps = d->own_caps;
    port_send(d, m);
    g_free(m);
}

static void send_reply(VddDaemon *d, uint32_t chunk_port, uint32_t type, uint32_t error)
{
    VdpMsg m = {.type = VD_AGENT_REPLY};
    m.u.reply.type = type;
    m.u.reply.error = error;
    uint8_t buf[16];
    VdpError err = {0};
    size_t n = vdp_msg_encode_payload(&m, &d->layout, buf, sizeof(buf), &err);
    if (n && vdp_port_send(d->port, chunk_port, VD_AGENT_REPLY, buf, n) != VDP_OK && vdp_rate_ok(&d->rl_drop, "protocol"))
        g_message("could not send REPLY to the host");
}

/* ---- agents ---- */

static void forward_to_active(VddDaemon *d, const VdpMsg *m)
{
    if (d->active)
        vdd_agent_send_vdagent(d->active, m);
    else
        g_debug("no active agent for %s", vdp_msg_type_name(m->type));
}

static void send_device_info(VddDaemon *d, VddAgent *a)
{
    if (!d->device_info)
        return;
    gsize len;
    const uint8_t *data = g_bytes_get_data(d->device_info, &len);
    VdpMsg *m = g_new0(VdpMsg, 1);
    VdpError err = {0};
    if (vdp_msg_decode(VDP_FROM_HOST, VDP_SERVER_PORT, VD_AGENT_GRAPHICS_DEVICE_INFO, data, len,
                       &d->layout, m, &err) == VDP_OK)
        vdd_agent_send_vdagent(a, m);
    g_free(m);
}

/* What a newly active agent needs to know about the host's state. */
static void deliver_caches(VddDaemon *d, VddAgent *a)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    send_device_info(d, a);
    if (d->monitors) {
        m->type = VD_AGENT_MONITORS_CONFIG;
        m->u.monitors = *d->monitors;
        vdd_agent_send_vdagent(a, m);
    }
    for (int i = 0; i < 2; i++) {
        if (!d->volume[i])
            continue;
        m->type = VD_AGENT_AUDIO_VOLUME_SYNC;
        m->u.volume = *d->volume[i];
        vdd_agent_send_vdagent(a, m);
    }
    if (d->max_clipboard_known) {
        m->type = VD_AGENT_MAX_CLIPBOARD;
        m->u.max_clipboard.max = d->max_clipboard;
        vdd_agent_send_vdagent(a, m);
    }
    g_free(m);
}

static void update_session_states(VddDaemon *d)
{
    const VddSessionInfo *si = vdd_sessions_active(d->sessions);
    for (unsigned i = 0;; i++) {
        VddAgent *a = vdd_agents_nth(d->agents, i);
        if (!a)
            break;
        uint32_t flags = 0;
        if (a == d->active) {
            flags |= VDP_IPC_SESSION_ACTIVE;
            if (si && si->locked)
                flags |= VDP_IPC_SESSION_LOCKED;
        }
        if (d->client_connected)
            flags |= VDP_IPC_SESSION_CLIENT_CONNECTED;
        if (a == d->active && !(si && (si->locked || si->greeter)))
            flags |= VDP_IPC_SESSION_FILE_XFER_ENABLED;
        vdd_agent_send_session_state(a, flags);
    }
}

static void ensure_input(VddDaemon *d)
{
    if (d->input)
        return;
    GError *error = NULL;
    d->input = vdd_input_new(d->ctx, d->opt.fake_uinput ? VDD_INPUT_FAKE : VDD_INPUT_UINPUT,
                             d->uinput_path, &error);
    if (!d->input) {
        if (!d->input_error_logged)
            g_message("mouse: %s; mouse events go to the session agent (XTest) instead",
                      error ? error->message : "cannot open the input device");
        d->input_error_logged = true;
        g_clear_error(&error);
    } else {
        vdd_input_set_debug(d->input, d->opt.debug);
        if (d->input_error_logged)
            g_message("mouse: %s is usable now", d->uinput_path);
    }
}

static void update_input_layout(VddDaemon *d)
{
    if (!d->input)
        return;
    const VddLayout *l = d->active ? vdd_agent_layout(d->active) : NULL;
    if (l) {
        vdd_input_set_layout(d->input, l);
    } else {
        VddLayout *none = g_new0(VddLayout, 1);
        vdd_input_set_layout(d->input, none);
        g_free(none);
    }
}

/* ---- client state ---- */

static void forget_client(VddDaemon *d)
{
    vdp_caps_clear(&d->client_caps);
    d->client_announced = false;
    d->max_clipboard = -1;
    d->max_clipboard_known = false;
    vdp_layout_from_caps(&d->layout, &d->own_caps, &d->client_caps);
}

/* The client went away (CLIENT_DISCONNECTED, port closed, new client). */
static void client_gone(VddDaemon *d)
{
    if (d->xfers)
        vdd_xfers_client_gone(d->xfers);
    if (d->clip)
        vdd_clip_client_gone(d->clip);
    memset(d->streaming_xfer, 0, sizeof(d->streaming_xfer));
    if (d->max_clipboard_known) {
        /* The client's limit ends with it; agents go back to none. */
        VdpMsg m = {.type = VD_AGENT_MAX_CLIPBOARD};
        m.u.max_clipboard.max = -1;
        for (unsigned i = 0;; i++) {
            VddAgent *a = vdd_agents_nth(d->agents, i);
            if (!a)
                break;
            vdd_agent_send_vdagent(a, &m);
        }
    }
    if (d->client_connected) {
        VdpMsg m = {.type = VD_AGENT_CLIENT_DISCONNECTED};
        for (unsigned i = 0;; i++) {
            VddAgent *a = vdd_agents_nth(d->agents, i);
            if (!a)
                break;
            vdd_agent_send_vdagent(a, &m);
        }
        g_message("client disconnected");
    }
    d->client_connected = false;
    forget_client(d);
}

/* ---- the port ---- */

static void update_port(VddDaemon *d);

static void cancel_close_grace(VddDaemon *d)
{
    if (d->close_grace) {
        g_source_destroy(d->close_grace);
        g_source_unref(d->close_grace);
        d->close_grace = NULL;
    }
    d->close_due = false;
}

static gboolean close_grace_ended(gpointer data)
{
    VddDaemon *d = data;
    g_source_unref(d->close_grace);
    d->close_grace = NULL;
    d->close_due = true;
    update_port(d);
    return G_SOURCE_REMOVE;
}

/* true when the port should close now; otherwise the grace timer runs. */
static bool close_grace_over(VddDaemon *d)
{
    if (d->close_due)
        return true;
    if (!d->close_grace) {
        d->close_grace = g_timeout_source_new(PORT_CLOSE_GRACE_MS);
        g_source_set_callback(d->close_grace, close_grace_ended, d, NULL);
        g_source_attach(d->close_grace, d->ctx);
    }
    return false;
}

static void update_port(VddDaemon *d)
{
    if (d->quitting)
        return;
    bool want = d->active && vdd_agent_layout(d->active);
    VdpPortState st = vdp_port_get_state(d->port);
    if (want)
        cancel_close_grace(d);
    if (want && st == VDP_PORT_STATE_STOPPED) {
        ensure_input(d);
        update_input_layout(d);
        g_message("opening the agent port %s", d->port_path);
        vdp_port_start(d->port);
    } else if (!want && st != VDP_PORT_STATE_STOPPED) {
        if (!close_grace_over(d))
            return;
        d->close_due = false;
        if (d->opt.one_session && d->port_ever_open) {
            g_message("Exiting after one client session.");
            d->quitting = true;
            if (d->quit)
                d->quit(d->quit_user, 0);
            return;
        }
        client_gone(d);
        update_session_states(d);
        vdp_port_flush_sync(d->port, PORT_CLOSE_FLUSH_MS);
        vdp_port_stop(d->port);
        vdd_clip_port_lost(d->clip);
        memset(d->streaming_clip, 0, sizeof(d->streaming_clip));
        g_message("closed the agent port: no active session agent with a desktop layout");
    }
}

/* The clipboard's view: who is active, and whether the lock/greeter gate
 * is closed. The gate follows the active session alone: a locked session
 * whose agent left is still locked. */
static void update_clipboard(VddDaemon *d)
{
    const VddSessionInfo *si = vdd_sessions_active(d->sessions);
    bool gated = !d->opt.allow_clipboard_when_locked && si && (si->locked || si->greeter);
    vdd_clip_update(d->clip, d->active, gated,
                    si && si->greeter ? "the active session is a greeter" : "the active session is locked");
}

/* skip: an agent that is being removed. */
static void update_active(VddDaemon *d, VddAgent *skip)
{
    VddAgent *want = NULL;
    if (!vdd_sessions_enabled(d->sessions)) {
        want = vdd_agents_nth(d->agents, 0);
        if (want == skip)
            want = vdd_agents_nth(d->agents, 1);
    } else {
        const VddSessionInfo *si = vdd_sessions_active(d->sessions);
        if (si && si->id)
            want = vdd_agents_find_session(d->agents, si->id);
    }
    if (want == skip)
        want = NULL;
    if (want != d->active) {
        if (d->active && d->active != skip && d->xfers)
            vdd_xfers_agent_inactive(d->xfers, d->active);
        d->active = want;
        if (want) {
            g_message("active agent: pid %d, uid %u%s%s", (int)vdd_agent_pid(want),
                      (unsigned)vdd_agent_uid(want), vdd_agent_session(want) ? ", session " : "",
                      vdd_agent_session(want) ? vdd_agent_session(want) : "");
            deliver_caches(d, want);
        } else {
            g_message("no active agent");
        }
        update_input_layout(d);
    }
    update_clipboard(d);
    update_session_states(d);
    update_port(d);
}

static void on_port_state(void *user, VdpPortState state, const char *why)
{
    VddDaemon *d = user;
    switch (state) {
    case VDP_PORT_STATE_OPEN:
        g_message("agent port open");
        d->port_ever_open = true;
        client_gone(d);
        update_session_states(d);
        send_announce(d, true);
        break;
    case VDP_PORT_STATE_WAITING:
        if (d->client_connected || d->client_announced)
            g_message("lost the host side of the agent port (%s); reconnecting", why ? why : "closed");
        else
            g_debug("agent port: waiting (%s)", why ? why : "");
        vdd_clip_port_lost(d->clip);
        memset(d->streaming_clip, 0, sizeof(d->streaming_clip));
        client_gone(d);
        update_session_states(d);
        break;
    case VDP_PORT_STATE_STOPPED:
        break;
    }
}

static void handle_mouse(VddDaemon *d, const VdpMouseState *ms)
{
    const VddLayout *l = d->active ? vdd_agent_layout(d->active) : NULL;
    if (!l)
        return;
    if (d->input) {
        vdd_input_mouse(d->input, ms->x, ms->y, ms->buttons, ms->display_id);
        return;
    }
    int32_t x, y;
    if (!vdd_layout_to_desktop(l, ms->display_id, ms->x, ms->y, &x, &y)) {
        if (vdp_rate_ok(&d->rl_mouse, "mouse"))
            g_message("mouse event for unknown display %u dropped", ms->display_id);
        return;
    }
    vdd_agent_send_mouse(d->active, x, y, ms->buttons);
}

static void start_xfer(VddDaemon *d, const VdpMsg *m)
{
    const VddSessionInfo *si = d->active ? vdd_sessions_active(d->sessions) : NULL;
    vdd_xfers_client_start(d->xfers, d->active, si && si->locked, si && si->greeter, m);
}

static void log_ignored_once(VddDaemon *d, uint32_t type, const char *why)
{
    if (type < 32 && (d->logged_ignored & (1u << type)))
        return;
    if (type < 32)
        d->logged_ignored |= 1u << type;
    g_message("ignoring %s from the host: %s", vdp_msg_type_name(type), why);
}

/* A client CLIPBOARD (an answer to an agent's REQUEST) the daemon could not
 * take: its selection from the raw payload when it is there. */
static void clip_lost(VddDaemon *d, uint32_t chunk_port, const uint8_t *data, size_t len)
{
    if (chunk_port != VDP_CLIENT_PORT)
        return;     /* not from the client: answers nothing */
    int sel = -1;
    if (!d->layout.clipboard_selection)
        sel = VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD;
    else if (data && len >= 1)
        sel = data[0];
    vdd_clip_client_data_lost(d->clip, sel);
}

static void handle_port_message(VddDaemon *d, uint32_t chunk_port, const VdpMsgHeader *hdr,
                                const uint8_t *data, size_t len);

static void on_port_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                            const uint8_t *data, size_t len)
{
    VddDaemon *d = user;
    handle_port_message(d, chunk_port, hdr, data, len);
    /* whatever it sent to the active agent: pause reading while it is behind */
    vdd_clip_port_input_done(d->clip);
}

static void handle_port_message(VddDaemon *d, uint32_t chunk_port, const VdpMsgHeader *hdr,
                                const uint8_t *data, size_t len)
{
    VdpMsg *m = d->scratch;
    VdpError err = {0};
    if (vdp_msg_decode(VDP_FROM_HOST, chunk_port, hdr->type, data, len, &d->layout, m, &err) != VDP_OK) {
        if (vdp_rate_ok(&d->rl_drop, "protocol"))
            g_message("dropped a message from the host: %s", err.text);
        if (hdr->type == VD_AGENT_CLIPBOARD)
            clip_lost(d, chunk_port, data, len);
        return;
    }
    if (g_log_get_debug_enabled()) {
        char desc[256];
        vdp_msg_describe(m, desc, sizeof(desc));
        g_debug("host (port %u): %s", chunk_port, desc);
    }
    switch (m->type) {
    case VD_AGENT_ANNOUNCE_CAPABILITIES:
        if (m->u.announce.request) {
            client_gone(d);
            d->client_connected = true;
            char caps[512];
            vdp_caps_format(&m->u.announce.caps, caps, sizeof(caps));
            g_message("new client connected (capabilities: %s)", caps);
        }
        d->client_caps = m->u.announce.caps;
        d->client_announced = true;
        vdp_layout_from_caps(&d->layout, &d->own_caps, &d->client_caps);
        if (m->u.announce.request) {
            send_announce(d, false);
            update_session_states(d);
        }
        break;
    case VD_AGENT_MONITORS_CONFIG:
        if (!d->monitors)
            d->monitors = g_new0(VdpMonitorsConfig, 1);
        *d->monitors = m->u.monitors;
        forward_to_active(d, m);
        send_reply(d, chunk_port, VD_AGENT_MONITORS_CONFIG, VD_AGENT_SUCCESS);
        break;
    case VD_AGENT_MOUSE_STATE:
        handle_mouse(d, &m->u.mouse);
        break;
    case VD_AGENT_GRAPHICS_DEVICE_INFO:
        if (d->device_info)
            g_bytes_unref(d->device_info);
        d->device_info = g_bytes_new(data, len);
        forward_to_active(d, m);
        break;
    case VD_AGENT_AUDIO_VOLUME_SYNC: {
        int i = m->u.volume.is_playback ? 1 : 0;
        if (!d->volume[i])
            d->volume[i] = g_new0(VdpAudioVolumeSync, 1);
        *d->volume[i] = m->u.volume;
        forward_to_active(d, m);
        break;
    }
    case VD_AGENT_CLIENT_DISCONNECTED:
        /* A client message cut short by the disconnect must not be glued to
         * the next client's first message. */
        vdp_port_reset_reassembly(d->port, VDP_CLIENT_PORT);
        client_gone(d);
        update_session_states(d);
        break;
    case VD_AGENT_FILE_XFER_START:
        start_xfer(d, m);
        break;
    case VD_AGENT_FILE_XFER_STATUS:
        vdd_xfers_client_status(d->xfers, m);
        break;
    case VD_AGENT_FILE_XFER_DATA:
        vdd_xfers_client_data(d->xfers, m);
        break;
    case VD_AGENT_CLIPBOARD:
    case VD_AGENT_CLIPBOARD_GRAB:
    case VD_AGENT_CLIPBOARD_REQUEST:
    case VD_AGENT_CLIPBOARD_RELEASE:
        vdd_clip_client_msg(d->clip, m);
        break;
    case VD_AGENT_MAX_CLIPBOARD:
        d->max_clipboard = m->u.max_clipboard.max;
        d->max_clipboard_known = true;
        g_debug("max clipboard: %d", (int)d->max_clipboard);
        for (unsigned i = 0;; i++) {
            VddAgent *a = vdd_agents_nth(d->agents, i);
            if (!a)
                break;
            vdd_agent_send_vdagent(a, m);
        }
        break;
    default:
        log_ignored_once(d, m->type, "not used by the daemon");
        break;
    }
}

static void on_port_problem(void *user, VdpReasmEvent ev, uint32_t chunk_port, const VdpMsgHeader *hdr,
                            const VdpError *err)
{
    VddDaemon *d = user;
    if (ev == VDP_REASM_FATAL) {
        g_message("agent port: %s; reconnecting", err ? err->text : "framing error");
        return;
    }
    if (vdp_rate_ok(&d->rl_drop, "protocol"))
        g_message("dropped a message from the host (chunk port %u): %s", chunk_port,
                  err ? err->text : "invalid");
    if (hdr && hdr->type == VD_AGENT_CLIPBOARD)
        clip_lost(d, chunk_port, NULL, 0);
}

/* Both streamable types (CLIPBOARD, FILE_XFER_DATA) are forwarded as they
 * arrive, so the protocol's limits apply as they are. */
static size_t port_max_payload(void *user, uint32_t type)
{
    return vdp_msg_max_payload(type);
}

/* Index of a chunk port in the streaming flags; the reassembler delivers
 * only ports 1 and 2. */
static unsigned stream_slot(uint32_t chunk_port)
{
    return chunk_port == VDP_SERVER_PORT ? 1u : 0u;
}

static void on_stream_begin(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr, const uint8_t *head,
                            size_t head_len)
{
    VddDaemon *d = user;
    unsigned k = stream_slot(chunk_port);
    d->streaming_xfer[k] = false;
    d->streaming_clip[k] = false;
    if (hdr->type != VD_AGENT_FILE_XFER_DATA && hdr->type != VD_AGENT_CLIPBOARD) {
        log_ignored_once(d, hdr->type, "not routed by the daemon");
        return;
    }
    VdpMsg *m = d->scratch;
    VdpError err = {0};
    if (vdp_msg_decode_stream_head(VDP_FROM_HOST, chunk_port, hdr->type, head, head_len, hdr->size,
                                   &d->layout, m, &err) != VDP_OK) {
        if (vdp_rate_ok(&d->rl_drop, "protocol"))
            g_message("dropped a message from the host: %s", err.text);
        if (hdr->type == VD_AGENT_CLIPBOARD)
            clip_lost(d, chunk_port, head, head_len);
        return;
    }
    if (hdr->type == VD_AGENT_CLIPBOARD) {
        g_debug("host (port %u): CLIPBOARD sel=%u type=%u size=%llu (streamed)", chunk_port,
                m->u.clipboard.selection, m->u.clipboard.type, (unsigned long long)m->u.clipboard.size);
        d->streaming_clip[k] = true;
        vdd_clip_stream_begin(d->clip, m);
        return;
    }
    g_debug("host (port %u): FILE_XFER_DATA id=%u size=%llu (streamed)", chunk_port, m->u.xfer_data.id,
            (unsigned long long)m->u.xfer_data.size);
    d->streaming_xfer[k] = true;
    vdd_xfers_stream_begin(d->xfers, m);
}

static void on_stream_data(void *user, uint32_t chunk_port, const uint8_t *data, size_t len)
{
    VddDaemon *d = user;
    unsigned k = stream_slot(chunk_port);
    if (d->streaming_xfer[k])
        vdd_xfers_stream_data(d->xfers, data, len);
    else if (d->streaming_clip[k])
        vdd_clip_stream_data(d->clip, data, len);
}

static void on_stream_end(void *user, uint32_t chunk_port)
{
    VddDaemon *d = user;
    unsigned k = stream_slot(chunk_port);
    if (d->streaming_xfer[k])
        vdd_xfers_stream_end(d->xfers);
    if (d->streaming_clip[k])
        vdd_clip_stream_end(d->clip);
    d->streaming_xfer[k] = false;
    d->streaming_clip[k] = false;
}

static void on_stream_abort(void *user, uint32_t chunk_port)
{
    VddDaemon *d = user;
    unsigned k = stream_slot(chunk_port);
    if (d->streaming_xfer[k])
        vdd_xfers_stream_abort(d->xfers);
    if (d->streaming_clip[k])
        vdd_clip_stream_abort(d->clip);
    d->streaming_xfer[k] = false;
    d->streaming_clip[k] = false;
}

static void on_port_write_ready(void *user)
{
    VddDaemon *d = user;
    vdd_clip_port_write_ready(d->clip);
}

static const VdpPortCallbacks port_cb = {
    .state_changed = on_port_state,
    .message = on_port_message,
    .stream_begin = on_stream_begin,
    .stream_data = on_stream_data,
    .stream_end = on_stream_end,
    .stream_abort = on_stream_abort,
    .problem = on_port_problem,
    .write_ready = on_port_write_ready,
};

/* ---- agent and session events ---- */

static void on_agent_added(void *user, VddAgent *a)
{
    update_active(user, NULL);
}

static void on_agent_removed(void *user, VddAgent *a)
{
    VddDaemon *d = user;
    if (d->xfers)
        vdd_xfers_agent_gone(d->xfers, a);
    vdd_clip_agent_gone(d->clip, a);
    update_active(user, a);
}

static void on_agent_write_ready(void *user, VddAgent *a)
{
    VddDaemon *d = user;
    if (d->xfers)
        vdd_xfers_agent_write_ready(d->xfers, a);
    vdd_clip_agent_write_ready(d->clip, a);
}

static void on_agent_layout(void *user, VddAgent *a)
{
    VddDaemon *d = user;
    if (a != d->active)
        return;
    update_input_layout(d);
    update_port(d);
}

static void on_agent_vdagent(void *user, VddAgent *a, const VdpMsg *msg)
{
    VddDaemon *d = user;
    switch (msg->type) {
    case VD_AGENT_FILE_XFER_STATUS:
        vdd_xfers_agent_status(d->xfers, a, msg);
        break;
    case VD_AGENT_CLIPBOARD:
    case VD_AGENT_CLIPBOARD_GRAB:
    case VD_AGENT_CLIPBOARD_REQUEST:
    case VD_AGENT_CLIPBOARD_RELEASE:
        vdd_clip_agent_msg(d->clip, a, msg);
        break;
    default:
        g_debug("agent pid %d: ignoring %s (not routed by the daemon)", (int)vdd_agent_pid(a),
                vdp_msg_type_name(msg->type));
        break;
    }
}

static void on_agent_clip_fd(void *user, VddAgent *a, const VdpIpcClipHead *head, int fd)
{
    VddDaemon *d = user;
    vdd_clip_agent_data_fd(d->clip, a, head, fd);
}

static char *on_status_json(void *user)
{
    VddDaemon *d = user;
    VddStatusInfo info = {0};
    VdpPortStats st;
    vdp_port_get_stats(d->port, &st);
    info.port_path = d->port_path;
    info.port_state = vdp_port_state_name(vdp_port_get_state(d->port));
    info.port_opens = st.opens;
    info.client_connected = d->client_connected;
    info.client_caps = d->client_announced ? &d->client_caps : NULL;
    info.session_integration = vdd_sessions_enabled(d->sessions);
    const VddSessionInfo *si = vdd_sessions_active(d->sessions);
    info.active_session = si ? si->id : NULL;
    info.locked = si && si->locked;
    info.mouse = mouse_mode(d);
    info.monitors = d->monitors;
    unsigned n = vdd_agents_count(d->agents);
    VddStatusAgent *agents = g_new0(VddStatusAgent, n ? n : 1);
    for (unsigned i = 0; i < n; i++) {
        VddAgent *a = vdd_agents_nth(d->agents, i);
        agents[i].pid = vdd_agent_pid(a);
        agents[i].uid = vdd_agent_uid(a);
        agents[i].session = vdd_agent_session(a);
        agents[i].name = vdd_agent_name(a);
        agents[i].active = a == d->active;
        agents[i].layout = vdd_agent_layout(a);
    }
    info.nagents = n;
    info.agents = agents;
    for (unsigned i = 0; i < VDD_STATUS_NSEL; i++)
        info.clipboard_owner[i] = vdd_clip_owner_name(d->clip, i);
    info.clipboard_gated = vdd_clip_gated(d->clip);
    info.file_transfers = d->xfers ? vdd_xfers_count(d->xfers) : 0;
    char *json = vdd_status_to_json(&info);
    g_free(agents);
    return json;
}

static const VddAgentsEvents agents_ev = {
    .agent_added = on_agent_added,
    .agent_removed = on_agent_removed,
    .agent_layout = on_agent_layout,
    .agent_vdagent = on_agent_vdagent,
    .agent_write_ready = on_agent_write_ready,
    .agent_clip_fd = on_agent_clip_fd,
    .status_json = on_status_json,
};

static void on_sessions_changed(void *user)
{
    update_active(user, NULL);
}

static const VddSessionEvents sessions_ev = {.changed = on_sessions_changed};

/* ---- lifecycle ---- */

static void init_own_caps(VdpCaps *caps)
{
    /* Everything a guest of this project announces: clipboard by demand
     * with selections, grab serials, no release on regrab and
     * MAX_CLIPBOARD (vdd-clipboard.c), file transfer (vdd-xfer.c). */
    vdp_caps_init_guest(caps);
}

VddDaemon *vdd_daemon_new(GMainContext *ctx, const VddOptions *opt, VddQuitFunc quit, void *quit_user,
                          GError **error)
{
    VddDaemon *d = g_new0(VddDaemon, 1);
    d->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    d->opt = *opt;
    d->port_path = g_strdup(opt->port_path);
    d->socket_path = g_strdup(opt->socket_path);
    d->uinput_path = g_strdup(opt->uinput_path);
    d->opt.port_path = d->port_path;
    d->opt.socket_path = d->socket_path;
    d->opt.uinput_path = d->uinput_path;
    d->quit = quit;
    d->quit_user = quit_user;
    d->scratch = g_new0(VdpMsg, 1);
    d->max_clipboard = -1;
    init_own_caps(&d->own_caps);
    forget_client(d);

    if (opt->no_session_integration)
        d->sessions = vdd_sessions_new_none();
    else
        d->sessions = vdd_sessions_new_logind(d->ctx, NULL, "seat0", &sessions_ev, d);

    VdpPortConfig pcfg = {
        .path = d->port_path,
        .mode = VDP_PORT_CONNECT,
        .dir = VDP_FROM_HOST,
        .max_chunk_in = VDP_CHUNK_SIZE_DEFAULT,
        .max_payload = port_max_payload,
        .layout = &d->layout,
    };
    d->port = vdp_port_new(d->ctx, &pcfg, &port_cb, d);
    if (!d->port) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "invalid port configuration");
        vdd_daemon_free(d);
        return NULL;
    }

    VddAgentsConfig acfg = {
        .socket_path = d->socket_path,
        .listen_fd = opt->listen_fd,
        .sessions = d->sessions,
        .handshake_ms = opt->handshake_ms,
    };
    d->xfers = vdd_xfers_new(d->port, &d->client_caps, &d->layout);
    d->clip = vdd_clip_new(d->ctx, d->port, &d->client_caps, &d->layout, &d->max_clipboard);
    d->agents = vdd_agents_new(d->ctx, &acfg, &agents_ev, d, error);
    if (!d->agents) {
        vdd_daemon_free(d);
        return NULL;
    }
    ensure_input(d);
    return d;
}

void vdd_daemon_free(VddDaemon *d)
{
    if (!d)
        return;
    d->quitting = true;
    cancel_close_grace(d);
    /* Agents first, without events: nothing is re-evaluated at exit. */
    vdd_agents_free(d->agents);
    d->agents = NULL;
    d->active = NULL;
    vdd_xfers_free(d->xfers);
    d->xfers = NULL;
    vdd_clip_free(d->clip);
    d->clip = NULL;
    if (d->port) {
        if (vdp_port_get_state(d->port) == VDP_PORT_STATE_OPEN)
            vdp_port_flush_sync(d->port, PORT_EXIT_FLUSH_MS);
        vdp_port_free(d->port);
    }
    if (d->input)
        vdd_input_free(d->input);
    if (d->sessions)
        vdd_sessions_free(d->sessions);
    if (d->device_info)
        g_bytes_unref(d->device_info);
    g_free(d->monitors);
    g_free(d->volume[0]);
    g_free(d->volume[1]);
    g_free(d->scratch);
    g_free(d->port_path);
    g_free(d->socket_path);
    g_free(d->uinput_path);
    g_main_context_unref(d->ctx);
    g_free(d);
}
