/* va-clipboard.c - the clipboard core: per selection who owns it (nobody,
 * the client, a guest application), the client's and the guest's offered
 * types, the IPC side (GRAB/REQUEST/RELEASE envelopes, the CLIP_BEGIN/
 * CHUNK/ABORT stream from the daemon, guest data as a CLIPBOARD envelope or
 * a sealed memfd), the client's MAX_CLIPBOARD and the timeouts of every wait
 * on the daemon. Windowing specifics are in the backend
 * (va-clipboard-backend.h). */
#include "config.h"

#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "va-clipboard-backend.h"
#include "vdp-ratelimit.h"
#include "va-clipboard.h"
#include "vdp-ipc-msg.h"
#include "vdp-wire.h"

/* How long the client may take to start answering a REQUEST. The data may
 * come from another machine over a slow link; past this, the application
 * that pastes is refused rather than left waiting. */
#define VA_CLIP_HOST_ANSWER_TIMEOUT_MS 30000u
/* How long an open stream may go without a chunk while we are reading. */
#define VA_CLIP_HOST_STALL_TIMEOUT_MS 30000u
/* Waits on applications (TARGETS, conversions, INCR steps): an application
 * that does not answer within this is given up on. */
#define VA_CLIP_APP_TIMEOUT_MS 10000u
/* Backlog marks for pausing the IPC: a requestor that reads slower than the
 * client sends holds at most about this much of our memory. */
#define VA_CLIP_BACKLOG_HIGH (4u * 1024u * 1024u)
#define VA_CLIP_BACKLOG_LOW (1u * 1024u * 1024u)
/* Guest data up to this size goes in one CLIPBOARD envelope (well below
 * VDP_IPC_MAX_FRAME with its heads); larger data through a sealed memfd. */
#define VA_CLIP_ENVELOPE_MAX (64u * 1024u)
/* Client requests for guest data queued per selection. A client asks for
 * one type at a time; more than this is a misbehaving peer. */
#define VA_CLIP_MAX_CLIENT_REQUESTS 16u

typedef struct TimerArg {
    struct VaClipboard *cb;
    unsigned sel;
} TimerArg;

typedef enum Owner { OWNER_NONE, OWNER_CLIENT, OWNER_GUEST } Owner;

typedef struct SelState {
    Owner owner;
    uint32_t client_types[VDP_MAX_GRAB_TYPES];
    unsigned n_client_types;
    uint32_t guest_types[VDP_MAX_GRAB_TYPES];
    unsigned n_guest_types;

    /* host -> guest: the outstanding REQUEST */
    bool want;
    uint32_t want_type;
    GSource *want_timer;
    /* REQUESTs given up before their answer began (timed out, or the
     * client's ownership ended): the daemon still answers each of them, in
     * order, before the answer to any later REQUEST, so that many answers
     * on this selection are dropped. No memory: a counter. */
    unsigned stale;

    /* guest -> host: queued client requests (types), the running fetch */
    uint32_t creq[VA_CLIP_MAX_CLIENT_REQUESTS];
    unsigned n_creq;
    bool fetching;
    uint32_t fetch_type;
    GByteArray *fetch_buf;      /* data while it is small */
    int fetch_fd;               /* memfd once it is not; -1 */
    uint64_t fetch_size;
    bool fetch_over;            /* over the client's maximum */
} SelState;

struct VaClipboard {
    VaX11 *x;
    GMainContext *ctx;
    VaClipBackend *backend;
    VdpIpcConn *conn;
    uint32_t flags;
    int64_t max_clipboard;      /* the client's maximum; < 0: none */
    SelState sel[VA_CLIP_NSEL];

    /* the open CLIP stream (one per connection) */
    bool stream_open;
    bool stream_discard;        /* nobody waits for it: read and drop */
    uint32_t stream_sel, stream_type;
    uint64_t stream_size, stream_got;
    GSource *stall_timer;
    GSource *pause_timer;       /* reading paused for too long */

    TimerArg targ[VA_CLIP_NSEL];
    bool paused;
    unsigned host_answer_ms, app_ms;
    VaClipStats stats;
    VdpRateLimit rl;
};

/* Rate-limited log of something a peer did. */
#define PEER_LOG(cb, ...)                                  \
    do {                                                   \
        if (vdp_rate_ok(&(cb)->rl, "clipboard"))            \
            g_message(__VA_ARGS__);                        \
    } while (0)

static bool type_is_data(uint32_t t)
{
    return t >= VD_AGENT_CLIPBOARD_UTF8_TEXT && t <= VD_AGENT_CLIPBOARD_IMAGE_JPG;
}

static void stop_timer(GSource **t)
{
    if (*t) {
        g_source_destroy(*t);
        g_source_unref(*t);
        *t = NULL;
    }
}

static GSource *start_timer(VaClipboard *cb, unsigned ms, GSourceFunc fn, void *data)
{
    GSource *s = g_timeout_source_new(ms);
    g_source_set_callback(s, fn, data, NULL);
    g_source_attach(s, cb->ctx);
    return s;
}

/* ---- sending ---- */

static void send_msg(VaClipboard *cb, const VdpMsg *m)
{
    if (!cb->conn)
        return;
    VdpError err = {0};
    if (vdp_ipc_conn_send_vdagent(cb->conn, 0, m, &err) != VDP_OK)
        g_warning("clipboard: cannot send %s: %s", vdp_msg_type_name(m->type), err.text);
}

static void send_grab(VaClipboard *cb, unsigned sel)
{
    SelState *s = &cb->sel[sel];
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_GRAB};
    m.u.grab.selection = (uint8_t)sel;
    m.u.grab.ntypes = s->n_guest_types;
    memcpy(m.u.grab.types, s->guest_types, s->n_guest_types * sizeof(uint32_t));
    send_msg(cb, &m);
}

static void send_release(VaClipboard *cb, unsigned sel)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_RELEASE};
    m.u.release.selection = (uint8_t)sel;
    send_msg(cb, &m);
}

/* "No data" (type NONE) or empty data of type (over the maximum). */
static void send_empty(VaClipboard *cb, unsigned sel, uint32_t type)
{
    if (!cb->conn)
        return;
    VdpIpcClipHead h = {.selection = sel, .type = type, .size = 0};
    uint8_t buf[VDP_IPC_CLIP_HEAD_SIZE];
    size_t n = vdp_ipc_clip_head_encode(&h, buf, sizeof(buf));
    if (n == 0 || vdp_ipc_conn_send(cb->conn, VDP_IPC_CLIP_DATA_FD, 0, buf, n, NULL, 0) != VDP_OK)
        g_warning("clipboard: cannot send the answer to the client's request");
}

/* ---- guest -> host: client requests and fetches ---- */

static void fetch_reset(SelState *s)
{
    s->fetching = false;
    if (s->fetch_buf) {
        g_byte_array_unref(s->fetch_buf);
        s->fetch_buf = NULL;
    }
    if (s->fetch_fd >= 0) {
        close(s->fetch_fd);
        s->fetch_fd = -1;
    }
    s->fetch_size = 0;
    s->fetch_over = false;
}

static void fetch_next(VaClipboard *cb, unsigned sel);

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static uint64_t client_max(const VaClipboard *cb)
{
    if (cb->max_clipboard < 0 || (uint64_t)cb->max_clipboard > VDP_MAX_CLIPBOARD_LIMIT)
        return VDP_MAX_CLIPBOARD_LIMIT;
    return (uint64_t)cb->max_clipboard;
}

bool va_clip_fetch_write(VaClipboard *cb, unsigned sel, const uint8_t *p, size_t n)
{
    if (sel >= VA_CLIP_NSEL || !cb->sel[sel].fetching)
        return false;
    SelState *s = &cb->sel[sel];
    if (s->fetch_over)
        return false;
    /* (the maximum may have been lowered below what the fetch holds) */
    uint64_t max = client_max(cb);
    if (s->fetch_size > max || n > max - s->fetch_size) {
        g_message("clipboard: the guest's %s data on %s is larger than the client accepts "
                  "(%" G_GUINT64_FORMAT " bytes); sending none", vdp_clipboard_type_label(s->fetch_type),
                  vdp_selection_label(sel), max);
        s->fetch_over = true;
        return false;
    }
    if (s->fetch_fd < 0 && s->fetch_buf->len + n > VA_CLIP_ENVELOPE_MAX) {
        int fd = memfd_create("vdagent-clipboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || !write_all(fd, s->fetch_buf->data, s->fetch_buf->len)) {
            g_warning("clipboard: cannot create a memfd for the guest's data: %s",
                      g_strerror(errno));
            if (fd >= 0)
                close(fd);
            return false;
        }
        s->fetch_fd = fd;
        g_byte_array_set_size(s->fetch_buf, 0);
    }
    if (s->fetch_fd >= 0) {
        if (!write_all(s->fetch_fd, p, n)) {
            g_warning("clipboard: cannot store the guest's data: %s", g_strerror(errno));
            return false;
        }
    } else {
        g_byte_array_append(s->fetch_buf, p, (guint)n);
    }
    s->fetch_size += n;
    return true;
}

void va_clip_fetch_done(VaClipboard *cb, unsigned sel, bool ok)
{
    if (sel >= VA_CLIP_NSEL || !cb->sel[sel].fetching)
        return;
    SelState *s = &cb->sel[sel];
    cb->stats.fetches_done++;
    if (!cb->conn) {
        /* nobody to answer */
    } else if (s->fetch_over) {
        send_empty(cb, sel, s->fetch_type);
    } else if (!ok) {
        send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
    } else if (s->fetch_fd < 0) {
        VdpMsg m = {.type = VD_AGENT_CLIPBOARD};
        m.u.clipboard.selection = (uint8_t)sel;
        m.u.clipboard.type = s->fetch_type;
        m.u.clipboard.data = s->fetch_buf->data;
        m.u.clipboard.size = s->fetch_buf->len;
        send_msg(cb, &m);
    } else {
        int fd = s->fetch_fd;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
            g_warning("clipboard: cannot seal the memfd: %s", g_strerror(errno));
            send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
        } else {
            VdpIpcClipHead h = {.selection = sel, .type = s->fetch_type, .size = s->fetch_size};
            uint8_t buf[VDP_IPC_CLIP_HEAD_SIZE];
            size_t n = vdp_ipc_clip_head_encode(&h, buf, sizeof(buf));
            if (n && vdp_ipc_conn_send(cb->conn, VDP_IPC_CLIP_DATA_FD, 0, buf, n, &fd, 1) == VDP_OK) {
                s->fetch_fd = -1;    /* the connection owns it now */
            } else {
                /* Every request gets exactly one answer (vdp-ipc-msg.h):
                 * the daemon's queue for this selection must not wait. */
                g_warning("clipboard: cannot pass the guest's data to the daemon; answering no data");
                send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
            }
        }
    }
    fetch_reset(s);
    fetch_next(cb, sel);
}

static void fetch_next(VaClipboard *cb, unsigned sel)
{
    SelState *s = &cb->sel[sel];
    while (!s->fetching && s->n_creq > 0) {
        uint32_t type = s->creq[0];
        memmove(s->creq, s->creq + 1, (s->n_creq - 1) * sizeof(uint32_t));
        s->n_creq--;
        s->fetching = true;
        s->fetch_type = type;
        s->fetch_buf = g_byte_array_new();
        s->fetch_fd = -1;
        cb->backend->ops->fetch(cb->backend, sel, type);
    }
}

/* Answer everything the client asked on sel with "no data". */
static void fetch_flush(VaClipboard *cb, unsigned sel)
{
    SelState *s = &cb->sel[sel];
    if (s->fetching) {
        cb->backend->ops->fetch_cancel(cb->backend, sel);
        send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
        fetch_reset(s);
    }
    for (unsigned i = 0; i < s->n_creq; i++)
        send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
    s->n_creq = 0;
}

static bool has_type(const uint32_t *types, unsigned n, uint32_t t)
{
    for (unsigned i = 0; i < n; i++)
        if (types[i] == t)
            return true;
    return false;
}

void va_clip_guest_grab(VaClipboard *cb, unsigned sel, const uint32_t *types, unsigned ntypes)
{
    if (sel >= VA_CLIP_NSEL)
        return;
    SelState *s = &cb->sel[sel];
    /* Whatever the client asked about the previous owner is obsolete. */
    fetch_flush(cb, sel);
    if (ntypes == 0) {
        bool was = s->owner == OWNER_GUEST;
        if (s->owner != OWNER_CLIENT)
            s->owner = OWNER_NONE;
        s->n_guest_types = 0;
        if (was) {
            g_debug("clipboard: the guest released %s", vdp_selection_label(sel));
            send_release(cb, sel);
        }
        return;
    }
    s->owner = OWNER_GUEST;
    s->n_guest_types = MIN(ntypes, VDP_MAX_GRAB_TYPES);
    memcpy(s->guest_types, types, s->n_guest_types * sizeof(uint32_t));
    g_debug("clipboard: a guest application owns %s (%u types)", vdp_selection_label(sel), s->n_guest_types);
    send_grab(cb, sel);
}

/* ---- host -> guest ---- */

static void want_end(VaClipboard *cb, unsigned sel, bool ok)
{
    SelState *s = &cb->sel[sel];
    if (!s->want)
        return;
    s->want = false;
    stop_timer(&s->want_timer);
    if (cb->stream_open && cb->stream_sel == sel)
        cb->stream_discard = true;    /* the rest of it is read and dropped */
    cb->backend->ops->data_end(cb->backend, sel, ok);
}

/* Give up the outstanding REQUEST on sel whose answer has not begun: its
 * answer, when it comes, is not for whatever is asked next. */
static void want_give_up(VaClipboard *cb, unsigned sel)
{
    SelState *s = &cb->sel[sel];
    if (!s->want)
        return;
    if (s->stale < UINT_MAX)
        s->stale++;
    want_end(cb, sel, false);
}

/* The client's ownership of sel ended: a request not answered yet is
 * refused; data already streaming still goes to its requestors. */
static void want_end_unless_streaming(VaClipboard *cb, unsigned sel)
{
    if (!(cb->stream_open && cb->stream_sel == sel && !cb->stream_discard))
        want_give_up(cb, sel);
}

static gboolean on_want_timeout(gpointer data)
{
    TimerArg *a = data;
    VaClipboard *cb = a->cb;
    SelState *s = &cb->sel[a->sel];
    g_source_unref(s->want_timer);
    s->want_timer = NULL;
    if (s->want) {
        PEER_LOG(cb, "clipboard: the client did not answer the request for %s on %s "
                     "within %u ms; refusing the application",
                 vdp_clipboard_type_label(s->want_type), vdp_selection_label(a->sel), cb->host_answer_ms);
        cb->stats.answer_timeouts++;
        want_give_up(cb, a->sel);
    }
    return G_SOURCE_REMOVE;
}

bool va_clip_want_data(VaClipboard *cb, unsigned sel, uint32_t type)
{
    if (sel >= VA_CLIP_NSEL || !cb->conn)
        return false;
    SelState *s = &cb->sel[sel];
    if (s->owner != OWNER_CLIENT || s->want || !has_type(s->client_types, s->n_client_types, type))
        return false;
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_REQUEST};
    m.u.request.selection = (uint8_t)sel;
    m.u.request.type = type;
    VdpError err = {0};
    if (vdp_ipc_conn_send_vdagent(cb->conn, 0, &m, &err) != VDP_OK) {
        g_warning("clipboard: cannot send a request: %s", err.text);
        return false;
    }
    cb->stats.requests_sent++;
    s->want = true;
    s->want_type = type;
    s->want_timer = start_timer(cb, cb->host_answer_ms, on_want_timeout, &cb->targ[sel]);
    return true;
}

static void set_paused(VaClipboard *cb, bool pause);

void va_clip_set_backlog(VaClipboard *cb, size_t bytes)
{
    cb->stats.backlog = bytes;
    if (bytes > cb->stats.backlog_peak)
        cb->stats.backlog_peak = bytes;
    if (!cb->paused && bytes > VA_CLIP_BACKLOG_HIGH)
        set_paused(cb, true);
    else if (cb->paused && bytes <= VA_CLIP_BACKLOG_LOW)
        set_paused(cb, false);
}

static gboolean on_stall_timeout(gpointer data);
static gboolean on_pause_timeout(gpointer data);

static void stall_timer_restart(VaClipboard *cb)
{
    stop_timer(&cb->stall_timer);
    if (cb->stream_open && !cb->paused)
        cb->stall_timer = start_timer(cb, VA_CLIP_HOST_STALL_TIMEOUT_MS, on_stall_timeout, cb);
}

static void set_paused(VaClipboard *cb, bool pause)
{
    cb->paused = pause;
    if (cb->conn)
        vdp_ipc_conn_pause_read(cb->conn, pause);
    stop_timer(&cb->pause_timer);
    if (pause)
        cb->pause_timer = start_timer(cb, cb->app_ms, on_pause_timeout, cb);
    stall_timer_restart(cb);
}

/* The requestors did not drain the backlog within the application timeout:
 * everything else from the daemon (the other selection, the display, file
 * transfers) waits behind them, so they are given up. */
static gboolean on_pause_timeout(gpointer data)
{
    VaClipboard *cb = data;
    g_source_unref(cb->pause_timer);
    cb->pause_timer = NULL;
    if (!cb->paused)
        return G_SOURCE_REMOVE;
    PEER_LOG(cb, "clipboard: applications read the client's data too slowly (the daemon has "
                 "not been read for %u ms); dropping them", cb->app_ms);
    cb->backend->ops->shed(cb->backend);
    if (cb->paused && !cb->pause_timer)
        cb->pause_timer = start_timer(cb, cb->app_ms, on_pause_timeout, cb);
    return G_SOURCE_REMOVE;
}

/* The open stream ends (complete or not). The daemon may still send chunks
 * of an aborted-by-us stream: stream_discard covers that while it is open. */
static void stream_close(VaClipboard *cb, bool ok)
{
    bool was_discard = cb->stream_discard;
    unsigned sel = cb->stream_sel;
    cb->stream_open = false;
    cb->stream_discard = false;
    stop_timer(&cb->stall_timer);
    if (!was_discard && sel < VA_CLIP_NSEL)
        want_end(cb, sel, ok);
}

static gboolean on_stall_timeout(gpointer data)
{
    VaClipboard *cb = data;
    g_source_unref(cb->stall_timer);
    cb->stall_timer = NULL;
    if (cb->stream_open && !cb->stream_discard) {
        PEER_LOG(cb, "clipboard: the client's data stopped coming for %u ms; "
                     "refusing the application", VA_CLIP_HOST_STALL_TIMEOUT_MS);
        unsigned sel = cb->stream_sel;
        cb->stream_discard = true;    /* chunks that come later are dropped */
        if (sel < VA_CLIP_NSEL)
            want_end(cb, sel, false);
    }
    return G_SOURCE_REMOVE;
}

static void stream_begin(VaClipboard *cb, const VdpIpcClipHead *h)
{
    cb->stream_open = true;
    cb->stream_discard = false;
    cb->stream_sel = h->selection;
    cb->stream_type = h->type;
    cb->stream_size = h->size;
    cb->stream_got = 0;
    SelState *s = h->selection < VA_CLIP_NSEL ? &cb->sel[h->selection] : NULL;
    if (s && s->stale > 0) {
        g_debug("clipboard: the late answer to a request given up on %s; dropped",
                vdp_selection_label(h->selection));
        s->stale--;
        cb->stream_discard = true;
    } else if (!s || !s->want) {
        PEER_LOG(cb, "clipboard: %s data for %s that nobody waits for; dropped",
                 vdp_clipboard_type_label(h->type), vdp_selection_label(h->selection));
        cb->stream_discard = true;
    } else if (h->type == VD_AGENT_CLIPBOARD_NONE) {
        g_debug("clipboard: the client has no %s data on %s", vdp_clipboard_type_label(s->want_type),
                vdp_selection_label(h->selection));
        cb->stream_discard = true;
        want_end(cb, h->selection, false);
    } else if (h->type != s->want_type) {
        PEER_LOG(cb, "clipboard: the client answered a request for %s with %s; refused",
                 vdp_clipboard_type_label(s->want_type), vdp_clipboard_type_label(h->type));
        cb->stream_discard = true;
        want_end(cb, h->selection, false);
    } else {
        stop_timer(&s->want_timer);
        cb->backend->ops->data_begin(cb->backend, h->selection, h->type, h->size);
    }
    if (h->size == 0)
        stream_close(cb, true);
    else
        stall_timer_restart(cb);
}

static void stream_data(VaClipboard *cb, const uint8_t *p, size_t n)
{
    cb->stream_got += n;
    if (!cb->stream_discard)
        cb->backend->ops->data_chunk(cb->backend, cb->stream_sel, p, n);
    if (cb->stream_got == cb->stream_size)
        stream_close(cb, true);
    else if (!cb->paused)
        stall_timer_restart(cb);
}

/* ---- client grabs and releases ---- */

static void client_unclaim(VaClipboard *cb, unsigned sel)
{
    SelState *s = &cb->sel[sel];
    if (s->owner != OWNER_CLIENT)
        return;
    s->owner = OWNER_NONE;
    s->n_client_types = 0;
    want_end_unless_streaming(cb, sel);
    cb->backend->ops->unclaim(cb->backend, sel);
}

void va_clip_client_lost(VaClipboard *cb, unsigned sel)
{
    if (sel >= VA_CLIP_NSEL)
        return;
    SelState *s = &cb->sel[sel];
    if (s->owner != OWNER_CLIENT)
        return;
    s->owner = OWNER_NONE;
    s->n_client_types = 0;
    want_end_unless_streaming(cb, sel);
}

static void client_grab(VaClipboard *cb, const VdpClipboardGrab *g)
{
    unsigned sel = g->selection;
    if (sel >= VA_CLIP_NSEL) {
        PEER_LOG(cb, "clipboard: grab of selection %u ignored (not handled)", sel);
        return;
    }
    SelState *s = &cb->sel[sel];
    fetch_flush(cb, sel);
    want_end_unless_streaming(cb, sel);
    s->n_guest_types = 0;
    s->n_client_types = 0;
    for (unsigned i = 0; i < g->ntypes; i++)
        if (type_is_data(g->types[i]) && !has_type(s->client_types, s->n_client_types, g->types[i]))
            s->client_types[s->n_client_types++] = g->types[i];
    s->owner = OWNER_CLIENT;
    g_debug("clipboard: the client owns %s (%u usable types)", vdp_selection_label(sel), s->n_client_types);
    if (!cb->backend->ops->claim(cb->backend, sel, s->client_types, s->n_client_types)) {
        g_message("clipboard: could not take %s for the client", vdp_selection_label(sel));
        s->owner = OWNER_NONE;
        s->n_client_types = 0;
    }
}

static void client_request(VaClipboard *cb, const VdpClipboardRequest *r)
{
    unsigned sel = r->selection;
    if (sel >= VA_CLIP_NSEL) {
        PEER_LOG(cb, "clipboard: request for selection %u refused (not handled)", sel);
        send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
        return;
    }
    SelState *s = &cb->sel[sel];
    if (s->owner != OWNER_GUEST || !has_type(s->guest_types, s->n_guest_types, r->type)) {
        g_debug("clipboard: the client asked for %s on %s, which the guest does not offer",
                vdp_clipboard_type_label(r->type), vdp_selection_label(sel));
        send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
        return;
    }
    if (s->n_creq >= VA_CLIP_MAX_CLIENT_REQUESTS) {
        PEER_LOG(cb, "clipboard: too many requests from the client on %s; refused", vdp_selection_label(sel));
        send_empty(cb, sel, VD_AGENT_CLIPBOARD_NONE);
        return;
    }
    s->creq[s->n_creq++] = r->type;
    fetch_next(cb, sel);
}

/* ---- public ---- */

VaClipboard *va_clipboard_new(VaX11 *x, GError **error)
{
    VaClipboard *cb = g_new0(VaClipboard, 1);
    cb->x = x;
    cb->ctx = g_main_context_ref_thread_default();
    cb->max_clipboard = VDP_MAX_CLIPBOARD_DEFAULT;
    cb->host_answer_ms = VA_CLIP_HOST_ANSWER_TIMEOUT_MS;
    cb->app_ms = VA_CLIP_APP_TIMEOUT_MS;
    for (unsigned i = 0; i < VA_CLIP_NSEL; i++) {
        cb->sel[i].fetch_fd = -1;
        cb->targ[i].cb = cb;
        cb->targ[i].sel = i;
    }
    cb->backend = va_clip_x11_new(cb, x, cb->ctx, error);
    if (!cb->backend) {
        g_main_context_unref(cb->ctx);
        g_free(cb);
        return NULL;
    }
    return cb;
}

static void drop_conn_state(VaClipboard *cb)
{
    if (cb->stream_open)
        stream_close(cb, false);
    if (cb->paused) {
        cb->paused = false;
        if (cb->conn)
            vdp_ipc_conn_pause_read(cb->conn, false);
        stop_timer(&cb->pause_timer);
    }
    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++) {
        SelState *s = &cb->sel[sel];
        want_end(cb, sel, false);
        s->stale = 0;       /* nothing more comes on this connection */
        if (s->fetching) {
            cb->backend->ops->fetch_cancel(cb->backend, sel);
            fetch_reset(s);
        }
        s->n_creq = 0;
        client_unclaim(cb, sel);
    }
}

void va_clipboard_free(VaClipboard *cb)
{
    if (!cb)
        return;
    VdpIpcConn *conn = cb->conn;
    cb->conn = NULL;     /* nothing is sent while tearing down */
    drop_conn_state(cb);
    (void)conn;
    cb->backend->ops->free(cb->backend);
    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++) {
        stop_timer(&cb->sel[sel].want_timer);
        fetch_reset(&cb->sel[sel]);
    }
    stop_timer(&cb->stall_timer);
    stop_timer(&cb->pause_timer);
    g_main_context_unref(cb->ctx);
    g_free(cb);
}

void va_clipboard_set_conn(VaClipboard *cb, VdpIpcConn *conn)
{
    if (cb->conn == conn)
        return;
    VdpIpcConn *old = cb->conn;
    cb->conn = NULL;
    if (old)
        drop_conn_state(cb);
    cb->conn = conn;
    /* The daemon's first SESSION_STATE says whether a client is there; the
     * guest's selections are announced when it says so. */
    cb->flags = 0;
    cb->max_clipboard = VDP_MAX_CLIPBOARD_DEFAULT;
    /* Requestors may still hold a backlog of the old connection's data:
     * the new connection starts paused if it is above the mark. */
    if (conn)
        va_clip_set_backlog(cb, cb->stats.backlog);
}

void va_clipboard_session_state(VaClipboard *cb, uint32_t flags)
{
    bool was = cb->flags & VDP_IPC_SESSION_CLIENT_CONNECTED;
    bool now = flags & VDP_IPC_SESSION_CLIENT_CONNECTED;
    cb->flags = flags;
    if (was && !now) {
        cb->max_clipboard = VDP_MAX_CLIPBOARD_DEFAULT;
        for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++) {
            fetch_flush(cb, sel);
            client_unclaim(cb, sel);
        }
    } else if (!was && now) {
        for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++)
            if (cb->sel[sel].owner == OWNER_GUEST)
                send_grab(cb, sel);
    }
}

bool va_clipboard_handle_msg(VaClipboard *cb, const VdpMsg *msg)
{
    switch (msg->type) {
    case VD_AGENT_CLIPBOARD_GRAB:
        client_grab(cb, &msg->u.grab);
        return true;
    case VD_AGENT_CLIPBOARD_REQUEST:
        client_request(cb, &msg->u.request);
        return true;
    case VD_AGENT_CLIPBOARD_RELEASE:
        if (msg->u.release.selection < VA_CLIP_NSEL)
            client_unclaim(cb, msg->u.release.selection);
        return true;
    case VD_AGENT_MAX_CLIPBOARD:
        cb->max_clipboard = msg->u.max_clipboard.max;
        g_debug("clipboard: the client accepts at most %d bytes", msg->u.max_clipboard.max);
        return true;
    case VD_AGENT_CLIPBOARD: {
        const VdpClipboard *c = &msg->u.clipboard;
        if (cb->stream_open) {
            PEER_LOG(cb, "clipboard: whole data while a stream is open; dropped");
            return true;
        }
        VdpIpcClipHead h = {.selection = c->selection, .type = c->type, .size = c->size};
        stream_begin(cb, &h);
        if (cb->stream_open && c->size > 0)
            stream_data(cb, c->data, c->size);
        return true;
    }
    default:
        return false;
    }
}

bool va_clipboard_handle_frame(VaClipboard *cb, const VdpIpcHeader *hdr, const uint8_t *payload)
{
    VdpError err = {0};
    switch (hdr->type) {
    case VDP_IPC_CLIP_BEGIN: {
        VdpIpcClipHead h;
        if (vdp_ipc_clip_head_decode(payload, hdr->size, &h, &err) != VDP_OK) {
            g_warning("clipboard: bad CLIP_BEGIN: %s", err.text);
            return false;
        }
        if (cb->stream_open) {
            g_warning("clipboard: CLIP_BEGIN while a stream is open");
            return false;
        }
        stream_begin(cb, &h);
        return true;
    }
    case VDP_IPC_CLIP_CHUNK:
        if (!cb->stream_open) {
            g_warning("clipboard: CLIP_CHUNK without an open stream");
            return false;
        }
        if (hdr->size == 0 || hdr->size > cb->stream_size - cb->stream_got) {
            g_warning("clipboard: CLIP_CHUNK of %u bytes past the announced size", hdr->size);
            return false;
        }
        stream_data(cb, payload, hdr->size);
        return true;
    case VDP_IPC_CLIP_ABORT: {
        uint32_t sel;
        if (vdp_ipc_clip_abort_decode(payload, hdr->size, &sel, &err) != VDP_OK) {
            g_warning("clipboard: bad CLIP_ABORT: %s", err.text);
            return false;
        }
        if (cb->stream_open) {
            g_debug("clipboard: the client's data on %s was aborted", vdp_selection_label(sel));
            stream_close(cb, false);
        } else if (sel < VA_CLIP_NSEL) {
            want_end(cb, sel, false);
        }
        return true;
    }
    default:
        return true;
    }
}

void va_clipboard_get_stats(const VaClipboard *cb, VaClipStats *st)
{
    *st = cb->stats;
    st->reading_paused = cb->paused;
}

void va_clipboard_set_timeouts(VaClipboard *cb, unsigned host_answer_ms, unsigned app_ms)
{
    if (host_answer_ms)
        cb->host_answer_ms = host_answer_ms;
    if (app_ms)
        cb->app_ms = app_ms;
}

unsigned va_clip_app_timeout_ms(const VaClipboard *cb)
{
    return cb->app_ms;
}
