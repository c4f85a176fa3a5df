/* vdp-selftest - the foundation's main job: a host endpoint and a guest
 * endpoint talking over a real UNIX socket port, and a daemon/agent IPC
 * pair passing a file descriptor, each step checked and reported.
 *
 * It exercises the protocol layer (src/proto) and the port library
 * (src/port) the way the daemon, the session agent and vdagentctl will:
 * capability announce, a spice-gtk 0.42 style monitor config with physical
 * sizes, malformed and oversized input that must be dropped without losing
 * sync, a large clipboard streamed in 2048-byte chunks with mouse events
 * interleaved on the server port, big single chunks from the guest, file
 * transfer messages, a reconnect, and IPC frames carrying a memfd.
 *
 * Exit status: 0 when every step passed, 1 otherwise.
 */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vdp-caps.h"
#include "vdp-chunk.h"
#include "vdp-ipc-conn.h"
#include "vdp-ipc.h"
#include "vdp-msg.h"
#include "vdp-port.h"
#include "vdp-wire.h"
#include "vdp-checksum.h"

#define STEP_TIMEOUT_MS 20000
#define CLIPBOARD_BIG (16u * 1024u * 1024u)
#define GUEST_CLIPBOARD (4u * 1024u * 1024u)
#define XFER_PIECE (64u * 1024u)
#define XFER_PIECES 8u
#define IPC_BULK (8u * 1024u * 1024u)

static gboolean opt_verbose;

/* ---- small utilities ---- */


/* Deterministic content so both sides can check it piece by piece. */
static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)((i * 131u + (i >> 11)) & 0xff);
}

static void fill_pattern(uint8_t *buf, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern_byte(off + i);
}

/* ---- the two endpoints ---- */

typedef struct Endpoint {
    const char *name;
    VdpPort *port;
    VdpDir rx_dir;
    VdpCaps own, peer;
    VdpLayout layout;
    bool have_peer_caps;
    VdpPortState state;
    unsigned opens;

    /* what arrived */
    unsigned messages;
    unsigned drops;
    char last_drop[VDP_ERROR_TEXT_MAX];
    uint32_t last_type;
    VdpMsg last;                 /* last decoded whole message (views invalid after the call) */
    unsigned replies;
    unsigned mouse_events;
    uint32_t last_mouse_x;
    bool mouse_in_order;
    unsigned max_clipboard_seen;
    unsigned xfer_start, xfer_data;
    uint64_t xfer_bytes, xfer_hash;

    /* streamed clipboard */
    bool in_stream;
    uint32_t stream_type;
    size_t stream_expected, stream_got;
    uint64_t stream_hash;
    unsigned streams_done;
    unsigned mouse_during_stream;

    /* whole clipboard (small enough to be buffered) */
    size_t clip_size;
    uint64_t clip_hash;
    unsigned clips;

    /* producer state for streamed sends */
    bool blocked;
} Endpoint;

static Endpoint host_ep, guest_ep;

static void send_announce(Endpoint *ep, uint32_t request)
{
    VdpMsg m = {.type = VD_AGENT_ANNOUNCE_CAPABILITIES};
    m.u.announce.request = request;
    m.u.announce.caps = ep->own;
    VdpError err = {0};
    if (vdp_port_send_msg(ep->port, &m, &ep->layout, &err) != VDP_OK)
        g_printerr("%s: announce not sent: %s\n", ep->name, err.text);
}

static void on_state(void *user, VdpPortState state, const char *why)
{
    Endpoint *ep = user;
    ep->state = state;
    if (state == VDP_PORT_STATE_OPEN)
        ep->opens++;
    if (opt_verbose)
        g_print("    [%s] port %s%s%s\n", ep->name, vdp_port_state_name(state),
                why ? ": " : "", why ? why : "");
}

static void handle_msg(Endpoint *ep, uint32_t chunk_port, const VdpMsg *m)
{
    ep->messages++;
    ep->last_type = m->type;
    if (opt_verbose) {
        char line[256];
        vdp_msg_describe(m, line, sizeof(line));
        g_print("    [%s] <- port %u %s\n", ep->name, chunk_port, line);
    }
    switch (m->type) {
    case VD_AGENT_ANNOUNCE_CAPABILITIES:
        ep->peer = m->u.announce.caps;
        ep->have_peer_caps = true;
        vdp_layout_from_caps(&ep->layout, &ep->own, &ep->peer);
        if (m->u.announce.request)
            send_announce(ep, 0);
        break;
    case VD_AGENT_MONITORS_CONFIG:
        ep->last = *m;
        if (ep == &guest_ep) {
            VdpMsg r = {.type = VD_AGENT_REPLY};
            r.u.reply.type = VD_AGENT_MONITORS_CONFIG;
            r.u.reply.error = VD_AGENT_SUCCESS;
            vdp_port_send_msg(ep->port, &r, &ep->layout, NULL);
        }
        break;
    case VD_AGENT_REPLY:
        ep->replies++;
        ep->last = *m;
        break;
    case VD_AGENT_MOUSE_STATE:
        ep->mouse_events++;
        if (m->u.mouse.x != ep->last_mouse_x + 1)
            ep->mouse_in_order = false;
        ep->last_mouse_x = m->u.mouse.x;
        if (ep->in_stream)
            ep->mouse_during_stream++;
        break;
    case VD_AGENT_MAX_CLIPBOARD:
        ep->max_clipboard_seen++;
        break;
    case VD_AGENT_CLIPBOARD:
        ep->clips++;
        ep->clip_size = m->u.clipboard.size;
        ep->clip_hash = vdp_fnv1a(VDP_FNV_INIT, m->u.clipboard.data, m->u.clipboard.size);
        break;
    case VD_AGENT_FILE_XFER_START:
        ep->xfer_start++;
        break;
    case VD_AGENT_FILE_XFER_DATA:
        ep->xfer_data++;
        ep->xfer_bytes += m->u.xfer_data.size;
        ep->xfer_hash = vdp_fnv1a(ep->xfer_hash, m->u.xfer_data.data, (size_t)m->u.xfer_data.size);
        break;
    default:
        ep->last = *m;
        break;
    }
}

static void on_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                       const uint8_t *data, size_t len)
{
    Endpoint *ep = user;
    VdpMsg *m = g_new0(VdpMsg, 1);
    VdpError err = {0};
    if (vdp_msg_decode(ep->rx_dir, chunk_port, hdr->type, data, len, &ep->layout, m, &err) != VDP_OK) {
        ep->drops++;
        g_strlcpy(ep->last_drop, err.text, sizeof(ep->last_drop));
        if (opt_verbose)
            g_print("    [%s] dropped: %s\n", ep->name, err.text);
    } else {
        handle_msg(ep, chunk_port, m);
    }
    g_free(m);
}

static void on_stream_begin(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                            const uint8_t *head, size_t head_len)
{
    Endpoint *ep = user;
    VdpMsg m;
    VdpError err = {0};
    if (vdp_msg_decode_stream_head(ep->rx_dir, chunk_port, hdr->type, head, head_len,
                                   hdr->size, &ep->layout, &m, &err) != VDP_OK) {
        ep->drops++;
        g_strlcpy(ep->last_drop, err.text, sizeof(ep->last_drop));
        return;
    }
    ep->in_stream = true;
    ep->stream_type = hdr->type;
    ep->stream_expected = hdr->type == VD_AGENT_CLIPBOARD ? m.u.clipboard.size : (size_t)m.u.xfer_data.size;
    ep->stream_got = 0;
    ep->stream_hash = VDP_FNV_INIT;
}

static void on_stream_data(void *user, uint32_t chunk_port, const uint8_t *data, size_t len)
{
    Endpoint *ep = user;
    if (!ep->in_stream)
        return;
    if (ep->stream_type == VD_AGENT_FILE_XFER_DATA) {
        /* file data is checked over the whole file, message after message */
        ep->xfer_hash = vdp_fnv1a(ep->xfer_hash, data, len);
        ep->xfer_bytes += len;
    } else {
        ep->stream_hash = vdp_fnv1a(ep->stream_hash, data, len);
    }
    ep->stream_got += len;
}

static void on_stream_end(void *user, uint32_t chunk_port)
{
    Endpoint *ep = user;
    if (!ep->in_stream)
        return;
    ep->in_stream = false;
    if (ep->stream_type == VD_AGENT_FILE_XFER_DATA)
        ep->xfer_data++;
    else
        ep->streams_done++;
}

static void on_stream_abort(void *user, uint32_t chunk_port)
{
    Endpoint *ep = user;
    ep->in_stream = false;
}

static void on_problem(void *user, VdpReasmEvent ev, uint32_t chunk_port,
                       const VdpMsgHeader *hdr, const VdpError *err)
{
    Endpoint *ep = user;
    ep->drops++;
    g_strlcpy(ep->last_drop, err->text, sizeof(ep->last_drop));
    if (opt_verbose)
        g_print("    [%s] %s on port %u: %s\n", ep->name,
                ev == VDP_REASM_FATAL ? "framing error" : "dropped", chunk_port, err->text);
}

static void on_write_blocked(void *user)
{
    ((Endpoint *)user)->blocked = true;
}

static void on_write_ready(void *user)
{
    ((Endpoint *)user)->blocked = false;
}

static const VdpPortCallbacks port_cb = {
    .state_changed = on_state,
    .message = on_message,
    .stream_begin = on_stream_begin,
    .stream_data = on_stream_data,
    .stream_end = on_stream_end,
    .stream_abort = on_stream_abort,
    .problem = on_problem,
    .write_blocked = on_write_blocked,
    .write_ready = on_write_ready,
};

/* ---- step machinery ---- */

typedef struct StepResult {
    char name[64];
    bool ok;
    char detail[400];
} StepResult;

static StepResult results[32];
static unsigned nresults;

static gboolean deadline_cb(gpointer data)
{
    *(bool *)data = true;
    return G_SOURCE_REMOVE;
}

/* Run the loop until cond() holds or timeout_ms passes. A timer source
 * wakes the loop at the deadline, so an idle loop cannot hang us. */
static bool run_until(bool (*cond)(void), int timeout_ms)
{
    bool expired = false;
    guint timer = g_timeout_add((guint)timeout_ms, deadline_cb, &expired);
    while (!cond() && !expired)
        g_main_context_iteration(NULL, TRUE);
    if (!expired)
        g_source_remove(timer);
    return cond();
}

static void report(const char *name, bool ok, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void report(const char *name, bool ok, const char *fmt, ...)
{
    StepResult *r = &results[nresults++];
    va_list ap;
    g_strlcpy(r->name, name, sizeof(r->name));
    r->ok = ok;
    va_start(ap, fmt);
    g_vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
    g_print("%-4s %-34s %s\n", ok ? "ok" : "FAIL", name, r->detail);
}

/* ---- steps ---- */

static bool both_open(void)
{
    return host_ep.state == VDP_PORT_STATE_OPEN && guest_ep.state == VDP_PORT_STATE_OPEN;
}

static bool caps_exchanged(void)
{
    return host_ep.have_peer_caps && guest_ep.have_peer_caps;
}

static bool reply_seen(void)
{
    return host_ep.replies > 0;
}

static unsigned want_max_clipboard;
static bool max_clipboard_seen(void)
{
    return guest_ep.max_clipboard_seen >= want_max_clipboard;
}

static bool host_stream_done(void)
{
    return guest_ep.streams_done > 0;
}

static unsigned want_clips;
static bool host_got_clip(void)
{
    return host_ep.clips >= want_clips;
}

static bool xfer_done(void)
{
    return guest_ep.xfer_data >= XFER_PIECES;
}

static void step_connect(void)
{
    gint64 t0 = g_get_monotonic_time();
    bool ok = run_until(both_open, STEP_TIMEOUT_MS);
    report("connect", ok, "guest connected to the host's listening socket in %.1f ms",
           (double)(g_get_monotonic_time() - t0) / 1000.0);
}

static void step_caps(void)
{
    send_announce(&guest_ep, 1);   /* what a guest agent does when the port opens */
    bool ok = run_until(caps_exchanged, STEP_TIMEOUT_MS);
    char names[512] = "";
    VdpCaps both;
    vdp_caps_clear(&both);
    for (unsigned b = 0; b < VD_AGENT_END_CAP; b++)
        if (vdp_caps_both(&host_ep.own, &guest_ep.own, b))
            vdp_caps_set(&both, b);
    vdp_caps_format(&both, names, sizeof(names));
    ok = ok && guest_ep.layout.clipboard_selection && guest_ep.layout.grab_serial &&
         host_ep.layout.clipboard_selection;
    report("capabilities", ok, "negotiated: %s", names);
}

static void step_monitors(void)
{
    /* What remote-viewer with spice-gtk 0.42 sends: physical sizes after
     * the monitor array (spice-vdagent 0.22.1 rejects this message). */
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_MONITORS_CONFIG;
    m->u.monitors.flags = VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS | VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE;
    m->u.monitors.count = 2;
    m->u.monitors.monitors[0] = (VdpMonConfig){.width = 1366, .height = 768, .depth = 32, .x = 0, .y = 0,
                                               .mm_width = 361, .mm_height = 203};
    m->u.monitors.monitors[1] = (VdpMonConfig){.width = 1920, .height = 1080, .depth = 32, .x = 1366, .y = 0,
                                               .mm_width = 509, .mm_height = 286};
    VdpError err = {0};
    bool ok = vdp_port_send_msg(host_ep.port, m, &host_ep.layout, &err) == VDP_OK;
    ok = ok && run_until(reply_seen, STEP_TIMEOUT_MS);
    const VdpMonitorsConfig *got = &guest_ep.last.u.monitors;
    ok = ok && guest_ep.last.type == VD_AGENT_MONITORS_CONFIG && got->count == 2 &&
         got->monitors[0].width == 1366 && got->monitors[0].height == 768 &&
         got->monitors[0].mm_width == 361 && got->monitors[1].x == 1366 &&
         got->monitors[1].mm_height == 286;
    ok = ok && host_ep.last.u.reply.type == VD_AGENT_MONITORS_CONFIG &&
         host_ep.last.u.reply.error == VD_AGENT_SUCCESS;
    report("monitors config (physical sizes)", ok,
           "2 monitors 1366x768+0+0 (361x203 mm), 1920x1080+1366+0 decoded; REPLY success received");
    g_free(m);
}

static void step_malformed(void)
{
    unsigned drops0 = guest_ep.drops;
    uint8_t buf[64];

    /* 1. monitor count that wraps a 32-bit size computation (0.22.1 bug) */
    memset(buf, 0, sizeof(buf));
    vdp_put_le32(buf, 214748365u);
    vdp_port_send(host_ep.port, VDP_CLIENT_PORT, VD_AGENT_MONITORS_CONFIG, buf, 12);
    /* 2. graphics device info with an address length of 4 GiB */
    memset(buf, 0, sizeof(buf));
    vdp_put_le32(buf, 1);
    vdp_put_le32(buf + 16, 0xffffffffu);
    vdp_port_send(host_ep.port, VDP_SERVER_PORT, VD_AGENT_GRAPHICS_DEVICE_INFO, buf, 24);
    /* 3. a server-only message on the client port */
    memset(buf, 0, sizeof(buf));
    vdp_port_send(host_ep.port, VDP_CLIENT_PORT, VD_AGENT_MOUSE_STATE, buf, 13);
    /* 4. audio volume with more channels than bytes */
    memset(buf, 0, sizeof(buf));
    buf[2] = 200;
    vdp_port_send(host_ep.port, VDP_CLIENT_PORT, VD_AGENT_AUDIO_VOLUME_SYNC, buf, 7);
    /* 5. a message above its type's limit: skipped without allocation */
    size_t big = vdp_msg_max_payload(VD_AGENT_CLIPBOARD_GRAB) + 4096;
    uint8_t *junk = g_malloc0(big);
    vdp_port_send(host_ep.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, junk, big);
    g_free(junk);
    /* 6. file data whose size field lies about the payload */
    memset(buf, 0, sizeof(buf));
    vdp_put_le64(buf + 4, 1000);
    vdp_port_send(host_ep.port, VDP_CLIENT_PORT, VD_AGENT_FILE_XFER_DATA, buf, 20);
    /* then a valid message, which must arrive: the stream stayed in sync */
    VdpMsg m = {.type = VD_AGENT_MAX_CLIPBOARD};
    m.u.max_clipboard.max = (int32_t)VDP_MAX_CLIPBOARD_DEFAULT;
    want_max_clipboard = guest_ep.max_clipboard_seen + 1;
    vdp_port_send_msg(host_ep.port, &m, &host_ep.layout, NULL);
    bool ok = run_until(max_clipboard_seen, STEP_TIMEOUT_MS);
    unsigned dropped = guest_ep.drops - drops0;
    ok = ok && dropped == 6 && guest_ep.state == VDP_PORT_STATE_OPEN;
    report("malformed input dropped", ok, "%u of 6 hostile messages dropped, stream in sync (last: %s)",
           dropped, guest_ep.last_drop);
}

/* Streamed host -> guest clipboard with mouse events on port 2. */
static size_t clip_sent;
static unsigned mouse_sent;
static void send_mouse(void)
{
    VdpMsg m = {.type = VD_AGENT_MOUSE_STATE};
    m.u.mouse.x = ++mouse_sent;
    m.u.mouse.y = 100;
    m.u.mouse.display_id = 0;
    vdp_port_send_msg(host_ep.port, &m, &host_ep.layout, NULL);
}

static void step_clipboard_to_guest(void)
{
    /* GRAB first, as a client does */
    VdpMsg g = {.type = VD_AGENT_CLIPBOARD_GRAB};
    g.u.grab.selection = VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD;
    g.u.grab.serial = 1;
    g.u.grab.ntypes = 1;
    g.u.grab.types[0] = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    vdp_port_send_msg(host_ep.port, &g, &host_ep.layout, NULL);

    uint8_t head[8];
    size_t head_len = 0;
    head[head_len++] = VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD;
    head[head_len++] = 0;
    head[head_len++] = 0;
    head[head_len++] = 0;
    vdp_put_le32(head + head_len, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    head_len += 4;

    guest_ep.mouse_in_order = true;
    guest_ep.last_mouse_x = 0;
    mouse_sent = 0;
    uint64_t want_hash = VDP_FNV_INIT;
    uint8_t piece[32768];
    gint64 t0 = g_get_monotonic_time();
    bool ok = vdp_port_send_begin(host_ep.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD,
                                  head_len + CLIPBOARD_BIG) == VDP_OK;
    size_t accepted = 0;
    ok = ok && vdp_port_send_data(host_ep.port, VDP_CLIENT_PORT, head, head_len, &accepted) == VDP_OK &&
         accepted == head_len;
    clip_sent = 0;
    unsigned blocked_waits = 0;
    while (ok && clip_sent < CLIPBOARD_BIG) {
        if (host_ep.blocked) {
            blocked_waits++;
            while (host_ep.blocked && g_main_context_iteration(NULL, TRUE))
                ;
            continue;
        }
        size_t n = MIN(sizeof(piece), CLIPBOARD_BIG - clip_sent);
        fill_pattern(piece, clip_sent, n);
        VdpResult r = vdp_port_send_data(host_ep.port, VDP_CLIENT_PORT, piece, n, &accepted);
        if (r == VDP_ERR_BUSY) {
            g_main_context_iteration(NULL, TRUE);
            continue;
        }
        if (r != VDP_OK) {
            ok = false;
            break;
        }
        want_hash = vdp_fnv1a(want_hash, piece, accepted);
        clip_sent += accepted;
        if ((clip_sent / sizeof(piece)) % 64 == 0 && accepted)
            send_mouse();   /* port 2, interleaved with the port 1 stream */
        while (g_main_context_iteration(NULL, FALSE))
            ;
    }
    ok = ok && run_until(host_stream_done, STEP_TIMEOUT_MS);
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    bool data_ok = guest_ep.streams_done == 1 && guest_ep.stream_got == CLIPBOARD_BIG &&
                   guest_ep.stream_hash == want_hash;
    report("clipboard host->guest 16 MiB", ok && data_ok,
           "streamed in 2048-byte chunks, %.0f MiB/s, content hash %s, producer paused %u times",
           CLIPBOARD_BIG / 1048576.0 / secs, data_ok ? "matches" : "DIFFERS", blocked_waits);
    bool mouse_ok = guest_ep.mouse_events == mouse_sent && guest_ep.mouse_in_order &&
                    guest_ep.mouse_during_stream > 0;
    report("mouse on port 2 during the stream", ok && mouse_ok,
           "%u of %u MOUSE_STATE delivered in order, %u while the clipboard was mid-message",
           guest_ep.mouse_events, mouse_sent, guest_ep.mouse_during_stream);
}

static void step_clipboard_to_host(void)
{
    /* spice-vdagentd writes each message as one chunk of any size; the
     * host side must accept that. The guest endpoint here is configured
     * with chunks of 8 MiB, so the 4 MiB clipboard is a single chunk. */
    size_t len = 8 + GUEST_CLIPBOARD;
    uint8_t *payload = g_malloc(len);
    payload[0] = VD_AGENT_CLIPBOARD_SELECTION_PRIMARY;
    payload[1] = payload[2] = payload[3] = 0;
    vdp_put_le32(payload + 4, VD_AGENT_CLIPBOARD_IMAGE_PNG);
    fill_pattern(payload + 8, 7, GUEST_CLIPBOARD);
    uint64_t want = vdp_fnv1a(VDP_FNV_INIT, payload + 8, GUEST_CLIPBOARD);
    want_clips = host_ep.clips + 1;
    gint64 t0 = g_get_monotonic_time();
    bool ok = vdp_port_send(guest_ep.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, payload, len) == VDP_OK;
    g_free(payload);
    ok = ok && run_until(host_got_clip, STEP_TIMEOUT_MS);
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    /* The host port buffers messages up to 8 MiB whole (stream_threshold),
     * so this one arrives through message(), decoded in one piece. */
    bool data_ok = host_ep.clips == want_clips && host_ep.clip_size == GUEST_CLIPBOARD && host_ep.clip_hash == want;
    report("clipboard guest->host 4 MiB", ok && data_ok,
           "one 4 MiB chunk accepted from the guest, %.0f MiB/s, content %s",
           GUEST_CLIPBOARD / 1048576.0 / secs, data_ok ? "matches" : "DIFFERS");
}

static void step_file_xfer(void)
{
    static const char keyfile[] = "[vdagent-file-xfer]\nname=report.pdf\nsize=524288\n";
    VdpMsg s = {.type = VD_AGENT_FILE_XFER_START};
    s.u.xfer_start.id = 1;
    s.u.xfer_start.keyfile = keyfile;
    s.u.xfer_start.keyfile_len = strlen(keyfile);
    guest_ep.xfer_hash = VDP_FNV_INIT;
    bool ok = vdp_port_send_msg(host_ep.port, &s, &host_ep.layout, NULL) == VDP_OK;
    uint8_t *piece = g_malloc(XFER_PIECE);
    uint64_t want = VDP_FNV_INIT;
    for (unsigned i = 0; ok && i < XFER_PIECES; i++) {
        fill_pattern(piece, (size_t)i * XFER_PIECE, XFER_PIECE);
        want = vdp_fnv1a(want, piece, XFER_PIECE);
        VdpMsg d = {.type = VD_AGENT_FILE_XFER_DATA};
        d.u.xfer_data.id = 1;
        d.u.xfer_data.size = XFER_PIECE;
        d.u.xfer_data.data = piece;
        ok = vdp_port_send_msg(host_ep.port, &d, &host_ep.layout, NULL) == VDP_OK;
    }
    g_free(piece);
    ok = ok && run_until(xfer_done, STEP_TIMEOUT_MS);
    bool data_ok = guest_ep.xfer_start == 1 && guest_ep.xfer_bytes == (uint64_t)XFER_PIECE * XFER_PIECES &&
                   guest_ep.xfer_hash == want;
    report("file transfer messages", ok && data_ok, "START + %u DATA of 64 KiB (streamed: above the 64 KiB threshold), content %s",
           guest_ep.xfer_data, data_ok ? "matches" : "DIFFERS");
}

static bool guest_reopened(void)
{
    return guest_ep.opens >= 2 && host_ep.opens >= 2 && both_open();
}

static void step_reconnect(void)
{
    /* The host side goes away (QEMU restarts the chardev, the VM is
     * migrated...): the guest must notice, back off and come back. */
    gint64 t0 = g_get_monotonic_time();
    vdp_port_stop(host_ep.port);
    host_ep.state = VDP_PORT_STATE_STOPPED;
    /* let the guest see the hang-up and start backing off */
    for (int i = 0; i < 20; i++)
        g_main_context_iteration(NULL, FALSE);
    vdp_port_start(host_ep.port);
    bool ok = run_until(guest_reopened, STEP_TIMEOUT_MS);
    host_ep.have_peer_caps = guest_ep.have_peer_caps = false;
    send_announce(&guest_ep, 1);
    ok = ok && run_until(caps_exchanged, STEP_TIMEOUT_MS);
    VdpPortStats st;
    vdp_port_get_stats(guest_ep.port, &st);
    report("reconnect after hang-up", ok, "guest back in %.1f ms after %" PRIu64 " reconnect attempt(s); caps re-announced",
           (double)(g_get_monotonic_time() - t0) / 1000.0, st.reconnects);
}

/* ---- IPC: daemon and agent over a socketpair, bulk data via memfd ---- */

typedef struct IpcSide {
    const char *name;
    VdpIpcConn *conn;
    bool got_hello, got_welcome, got_bulk, closed;
    uint64_t bulk_hash;
    size_t bulk_len;
    char closed_why[128];
} IpcSide;

static IpcSide daemon_side = {.name = "daemon"}, agent_side = {.name = "agent"};

static bool ipc_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    IpcSide *side = user;
    VdpIpcHello hello;
    VdpError err = {0};
    switch (hdr->type) {
    case VDP_IPC_HELLO:
        if (vdp_ipc_hello_decode(payload, hdr->size, &hello, &err) == VDP_OK &&
            vdp_ipc_hello_check(&hello, &err) == VDP_OK && hello.role == VDP_IPC_ROLE_AGENT) {
            side->got_hello = true;
            VdpIpcHello w;
            uint8_t buf[128];
            vdp_ipc_hello_init(&w, 0, "vdp-selftest daemon");
            size_t n = vdp_ipc_hello_encode(&w, buf, sizeof(buf));
            vdp_ipc_conn_send(side->conn, VDP_IPC_WELCOME, hdr->id, buf, n, NULL, 0);
        }
        break;
    case VDP_IPC_WELCOME:
        if (vdp_ipc_hello_decode(payload, hdr->size, &hello, &err) == VDP_OK &&
            vdp_ipc_hello_check(&hello, &err) == VDP_OK)
            side->got_welcome = true;
        break;
    case VDP_IPC_PING:
        if (nfds == 1 && hdr->size == 8) {
            size_t len = (size_t)vdp_get_le64(payload);
            void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fds[0], 0);
            if (map != MAP_FAILED) {
                side->bulk_hash = vdp_fnv1a(VDP_FNV_INIT, map, len);
                side->bulk_len = len;
                munmap(map, len);
                side->got_bulk = true;
            }
        }
        break;
    default:
        break;
    }
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    return true;
}

static void ipc_closed(void *user, const char *why)
{
    IpcSide *side = user;
    side->closed = true;
    g_strlcpy(side->closed_why, why ? why : "", sizeof(side->closed_why));
}

static const VdpIpcConnCallbacks ipc_cb = {.frame = ipc_frame, .closed = ipc_closed};

static bool ipc_welcomed(void)
{
    return agent_side.got_welcome || agent_side.closed || daemon_side.closed;
}

static bool ipc_bulk_done(void)
{
    return daemon_side.got_bulk || daemon_side.closed;
}

static void step_ipc(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        report("IPC handshake", false, "socketpair: %s", g_strerror(errno));
        return;
    }
    daemon_side.conn = vdp_ipc_conn_new(NULL, sv[0], NULL, &ipc_cb, &daemon_side);
    agent_side.conn = vdp_ipc_conn_new(NULL, sv[1], NULL, &ipc_cb, &agent_side);

    VdpIpcHello h;
    uint8_t buf[128];
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "vdp-selftest agent");
    size_t n = vdp_ipc_hello_encode(&h, buf, sizeof(buf));
    bool ok = vdp_ipc_conn_send(agent_side.conn, VDP_IPC_HELLO, 1, buf, n, NULL, 0) == VDP_OK;
    ok = ok && run_until(ipc_welcomed, STEP_TIMEOUT_MS) && daemon_side.got_hello && agent_side.got_welcome;
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    bool cred = vdp_ipc_conn_peer_cred(daemon_side.conn, &pid, &uid, &gid) && pid == getpid() && uid == getuid();
    report("IPC handshake", ok && cred, "HELLO/WELCOME v%u.%u; daemon sees peer pid %d uid %u",
           VDP_IPC_VERSION_MAJOR, VDP_IPC_VERSION_MINOR, (int)pid, (unsigned)uid);

    /* 8 MiB handed over as a memfd instead of being copied through frames */
    int fd = memfd_create("vdp-selftest-bulk", MFD_CLOEXEC);
    uint64_t want = VDP_FNV_INIT;
    bool bulk_ok = fd >= 0 && ftruncate(fd, IPC_BULK) == 0;
    if (bulk_ok) {
        uint8_t *map = mmap(NULL, IPC_BULK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        bulk_ok = map != MAP_FAILED;
        if (bulk_ok) {
            fill_pattern(map, 3, IPC_BULK);
            want = vdp_fnv1a(VDP_FNV_INIT, map, IPC_BULK);
            munmap(map, IPC_BULK);
        }
    }
    uint8_t lenbuf[8];
    vdp_put_le64(lenbuf, IPC_BULK);
    gint64 t0 = g_get_monotonic_time();
    bulk_ok = bulk_ok && vdp_ipc_conn_send(agent_side.conn, VDP_IPC_PING, 2, lenbuf, 8, &fd, 1) == VDP_OK;
    if (!bulk_ok && fd >= 0)
        close(fd);
    bulk_ok = bulk_ok && run_until(ipc_bulk_done, STEP_TIMEOUT_MS) && daemon_side.got_bulk &&
              daemon_side.bulk_len == IPC_BULK && daemon_side.bulk_hash == want;
    report("IPC fd passing (8 MiB memfd)", bulk_ok, "received through SCM_RIGHTS in %.1f ms, content %s",
           (double)(g_get_monotonic_time() - t0) / 1000.0, bulk_ok ? "matches" : "DIFFERS");
    vdp_ipc_conn_free(agent_side.conn);
    vdp_ipc_conn_free(daemon_side.conn);
}

/* ---- main ---- */

static size_t host_max_payload(void *user, uint32_t type)
{
    return vdp_msg_max_payload(type);
}

int main(int argc, char **argv)
{
    GOptionEntry entries[] = {
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Print every message and state change", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *ctx = g_option_context_new(NULL);
    g_option_context_set_summary(ctx,
        "Runs a host endpoint and a guest endpoint over a real UNIX socket port\n"
        "and a daemon/agent IPC pair, and checks every kind of traffic.\n"
        "Exit status 0 when every step passed.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("vdp-selftest: %s\n", error->message);
        return 2;
    }
    g_option_context_free(ctx);

    char *dir = g_dir_make_tmp("vdp-selftest-XXXXXX", &error);
    if (!dir) {
        g_printerr("vdp-selftest: %s\n", error->message);
        return 1;
    }
    char *path = g_build_filename(dir, "agent.sock", NULL);
    g_print("vdp-selftest: host and guest endpoints on %s\n\n", path);

    host_ep.name = "host";
    host_ep.rx_dir = VDP_FROM_GUEST;
    vdp_caps_init_host(&host_ep.own);
    guest_ep.name = "guest";
    guest_ep.rx_dir = VDP_FROM_HOST;
    vdp_caps_init_guest(&guest_ep.own);

    VdpPortConfig hc = {
        .path = path, .mode = VDP_PORT_LISTEN, .dir = VDP_FROM_GUEST,
        .chunk_size = VDP_CHUNK_SIZE_DEFAULT, .max_chunk_in = 0,
        .max_payload = host_max_payload, .layout = &host_ep.layout,
        .stream_threshold = 8u * 1024u * 1024u,   /* buffer the guest's 4 MiB clipboard whole */
    };
    VdpPortConfig gc = {
        .path = path, .mode = VDP_PORT_CONNECT, .dir = VDP_FROM_HOST,
        .chunk_size = 8u * 1024u * 1024u,         /* one chunk per message, like spice-vdagentd */
        .max_chunk_in = VDP_CHUNK_SIZE_DEFAULT,
        .layout = &guest_ep.layout,
        /* whole messages must fit the queue (bigger ones are streamed);
         * room for the 4 MiB one sent whole below */
        .high_watermark = 8u * 1024u * 1024u,
        .queue_limit = 16u * 1024u * 1024u,
    };
    host_ep.port = vdp_port_new(NULL, &hc, &port_cb, &host_ep);
    guest_ep.port = vdp_port_new(NULL, &gc, &port_cb, &guest_ep);
    vdp_port_start(host_ep.port);
    vdp_port_start(guest_ep.port);

    step_connect();
    step_caps();
    step_monitors();
    step_malformed();
    step_clipboard_to_guest();
    step_clipboard_to_host();
    step_file_xfer();
    step_reconnect();
    step_ipc();

    vdp_port_free(guest_ep.port);
    vdp_port_free(host_ep.port);
    g_unlink(path);
    g_rmdir(dir);
    g_free(path);
    g_free(dir);

    unsigned failed = 0;
    for (unsigned i = 0; i < nresults; i++)
        failed += !results[i].ok;
    g_print("\n%u passed, %u failed\n", nresults - failed, failed);
    return failed ? 1 : 0;
}
