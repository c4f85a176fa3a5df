/* vdd-clipboard.c - clipboard routing (see vdd-clipboard.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdd-clipboard.h"
#include "vdd-ratelimit.h"
#include "vdp-wire.h"

typedef enum Owner {
    OWNER_NONE,
    OWNER_CLIENT,
    OWNER_GUEST,
} Owner;

/* An agent REQUEST forwarded to the client, waiting for its data. */
typedef struct AgentReq {
    VddAgent *agent;
    uint32_t type;
} AgentReq;

typedef struct Sel {
    Owner owner;
    /* OWNER_CLIENT: the types the client offered, and whether the active
     * agent has been told (not while gated, not before a re-forward). */
    uint32_t ntypes;
    uint32_t types[VDP_MAX_GRAB_TYPES];
    bool client_forwarded;
    VddAgent *guest;            /* OWNER_GUEST: the agent that grabbed */
    uint32_t serial;            /* the client grab serial we expect next */
    unsigned client_pending;    /* client REQUESTs the guest has not answered */
    GQueue agent_reqs;          /* AgentReq*, at most VDD_CLIP_MAX_AGENT_PENDING */
    unsigned deferred_none;     /* NONE answers for the streaming agent, sent after its stream */
} Sel;

/* Guest data for the client in a sealed memfd. */
typedef struct OutItem {
    int fd;
    uint8_t sel;
    uint32_t type;
    uint64_t size;
} OutItem;

struct VddClip {
    GMainContext *ctx;
    VdpPort *port;
    const VdpCaps *client_caps;
    const VdpLayout *layout;
    const int32_t *max_clipboard;
    VddAgent *active;
    bool gated;
    Sel sel[VDD_CLIP_NSEL];
    VdpMsg *scratch;

    /* client -> agent: the CLIPBOARD being received from the port */
    struct {
        bool active;            /* a CLIPBOARD message is in progress on the port */
        VddAgent *agent;        /* its receiver, NULL: skipped */
        uint8_t sel;
        uint64_t remaining;     /* bytes still owed to the agent */
        uint8_t *buf;           /* buf_cap bytes, while forwarding */
        size_t buf_len, buf_cap;
    } in;
    VddAgent *paused_for;       /* the port is paused until this agent drains */
    GSource *stall;             /* VDD_CLIP_STALL_MS while paused */

    /* guest -> client: the stream on the port, and those waiting */
    struct {
        OutItem *cur;
        bool begun;
        uint8_t head[8];
        size_t head_len, head_sent;
        uint64_t off;           /* data bytes read from the fd */
        uint8_t *buf;           /* VDD_CLIP_READ_PIECE */
        size_t buf_off, buf_len;
    } out;
    GQueue out_queue;           /* OutItem*, at most VDD_CLIP_MAX_QUEUED_OUT */
    GSource *retry;

    VddRateLimit rl;
};

static const char *sel_name(unsigned sel)
{
    const char *n = vdp_selection_name(sel);
    return n ? n : "unknown";
}

static const char *type_name(uint32_t type)
{
    const char *n = vdp_clipboard_type_name(type);
    return n ? n : "unknown";
}

static int agent_pid(const VddAgent *a)
{
    return a ? (int)vdd_agent_pid(a) : -1;
}

/* ---- the client side ---- */

static bool port_open(const VddClip *c)
{
    return vdp_port_get_state(c->port) == VDP_PORT_STATE_OPEN;
}

/* A client that takes part in the clipboard, and may use this selection. */
static bool client_ok(const VddClip *c, unsigned sel)
{
    if (!port_open(c) || !vdp_caps_has(c->client_caps, VD_AGENT_CAP_CLIPBOARD_BY_DEMAND))
        return false;
    if (sel != VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD && !c->layout->clipboard_selection)
        return false;
    return sel < VDD_CLIP_NSEL;
}

static void port_send(VddClip *c, const VdpMsg *m)
{
    VdpError err = {0};
    if (!port_open(c))
        return;
    if (vdp_port_send_msg(c->port, m, c->layout, &err) != VDP_OK && vdd_rate_ok(&c->rl, "clipboard"))
        g_message("clipboard: could not send %s to the client: %s", vdp_msg_type_name(m->type),
                  err.text[0] ? err.text : vdp_result_name(err.code));
}

/* CLIPBOARD without data: type NONE ("no data") or the type of data that
 * was refused. */
static void client_send_empty(VddClip *c, unsigned sel, uint32_t type)
{
    if (!client_ok(c, sel))
        return;
    VdpMsg *m = c->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD;
    m->u.clipboard.selection = (uint8_t)sel;
    m->u.clipboard.type = type;
    port_send(c, m);
}

static void client_send_release(VddClip *c, unsigned sel)
{
    if (!client_ok(c, sel))
        return;
    VdpMsg *m = c->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD_RELEASE;
    m->u.release.selection = (uint8_t)sel;
    port_send(c, m);
}

/* Answer every client REQUEST the guest still owes on sel with NONE. */
static void answer_client_pending(VddClip *c, unsigned sel)
{
    Sel *s = &c->sel[sel];
    unsigned n = s->client_pending;
    s->client_pending = 0;
    for (unsigned i = 0; i < n; i++)
        client_send_empty(c, sel, VD_AGENT_CLIPBOARD_NONE);
    if (n)
        g_debug("clipboard: answered %u pending %s request(s) of the client with no data", n, sel_name(sel));
}

/* ---- the agent side ---- */

static void agent_send_vdagent(VddAgent *a, const VdpMsg *m)
{
    if (a && !vdd_agent_dropping(a))
        vdd_agent_send_vdagent(a, m);
}

static void agent_send_release(VddClip *c, VddAgent *a, unsigned sel)
{
    VdpMsg *m = c->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD_RELEASE;
    m->u.release.selection = (uint8_t)sel;
    agent_send_vdagent(a, m);
}

static void agent_send_client_grab(VddClip *c, VddAgent *a, unsigned sel)
{
    Sel *s = &c->sel[sel];
    VdpMsg *m = c->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD_GRAB;
    m->u.grab.selection = (uint8_t)sel;
    m->u.grab.ntypes = s->ntypes;
    memcpy(m->u.grab.types, s->types, s->ntypes * sizeof(s->types[0]));
    agent_send_vdagent(a, m);
}

static void agent_send_none(VddAgent *a, unsigned sel)
{
    VdpIpcClipHead h = {.selection = sel, .type = VD_AGENT_CLIPBOARD_NONE, .size = 0};
    if (a && !vdd_agent_dropping(a))
        vdd_agent_send_clip_begin(a, &h);
}

/* "No data" for an agent REQUEST: at once, or after the stream that is
 * open towards that agent (a BEGIN inside a stream is a protocol error). */
static void answer_agent_none(VddClip *c, VddAgent *a, unsigned sel)
{
    if (c->in.active && c->in.agent == a) {
        Sel *s = &c->sel[sel];
        if (s->deferred_none >= VDD_CLIP_MAX_AGENT_PENDING) {
            if (vdd_rate_ok(&c->rl, "clipboard"))
                g_message("clipboard: agent pid %d keeps requesting during a transfer; request dropped",
                          agent_pid(a));
            return;
        }
        s->deferred_none++;
        return;
    }
    agent_send_none(a, sel);
}

static void flush_deferred(VddClip *c, VddAgent *a)
{
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
        unsigned n = c->sel[i].deferred_none;
        c->sel[i].deferred_none = 0;
        for (unsigned k = 0; k < n && a; k++)
            agent_send_none(a, i);
    }
}

/* Answer every agent REQUEST on selection i waiting on the client (of
 * agent a, or of anyone when a is NULL) with NONE; tell == false: forget
 * them silently (the agent is gone). */
static void answer_agent_pending_sel(VddClip *c, unsigned i, VddAgent *a, bool tell)
{
    GQueue *q = &c->sel[i].agent_reqs;
    for (GList *l = q->head; l;) {
        GList *next = l->next;
        AgentReq *r = l->data;
        if (!a || r->agent == a) {
            if (tell)
                answer_agent_none(c, r->agent, i);
            g_queue_delete_link(q, l);
            g_free(r);
        }
        l = next;
    }
}

static void answer_agent_pending(VddClip *c, VddAgent *a, bool tell)
{
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
        answer_agent_pending_sel(c, i, a, tell);
}

/* ---- port pausing for a slow agent ---- */

static void resume_port(VddClip *c)
{
    if (!c->paused_for)
        return;
    c->paused_for = NULL;
    if (c->stall) {
        g_source_destroy(c->stall);
        g_source_unref(c->stall);
        c->stall = NULL;
    }
    vdp_port_pause_read(c->port, false);
}

static void in_abort(VddClip *c, const char *why);

static gboolean stall_cb(gpointer data)
{
    VddClip *c = data;
    g_source_unref(c->stall);
    c->stall = NULL;
    g_message("clipboard: agent pid %d has not read its data for %u s; %sreading the port again",
              agent_pid(c->paused_for), VDD_CLIP_STALL_MS / 1000u,
              c->in.active && c->in.agent ? "transfer aborted, " : "");
    in_abort(c, NULL);
    resume_port(c);
    return G_SOURCE_REMOVE;
}

static void check_backpressure(VddClip *c, VddAgent *a)
{
    if (c->paused_for || !vdd_agent_write_blocked(a))
        return;
    g_debug("clipboard: agent pid %d is behind, pausing the port", agent_pid(a));
    c->paused_for = a;
    vdp_port_pause_read(c->port, true);
    c->stall = g_timeout_source_new(VDD_CLIP_STALL_MS);
    g_source_set_callback(c->stall, stall_cb, c, NULL);
    g_source_attach(c->stall, c->ctx);
}

/* ---- client data -> agent ---- */

static void in_flush(VddClip *c)
{
    if (!c->in.buf_len)
        return;
    if (c->in.agent && vdd_agent_send_clip_chunk(c->in.agent, c->in.buf, c->in.buf_len))
        check_backpressure(c, c->in.agent);
    c->in.buf_len = 0;
}

static void in_close(VddClip *c)
{
    VddAgent *a = c->in.agent;
    c->in.active = false;
    c->in.agent = NULL;
    c->in.remaining = 0;
    c->in.buf_len = 0;
    g_clear_pointer(&c->in.buf, g_free);
    flush_deferred(c, a);
}

/* End the stream to the agent early (CLIP_ABORT); the rest of the message
 * from the port is skipped. why == NULL: already logged. */
static void in_abort(VddClip *c, const char *why)
{
    if (!c->in.active)
        return;
    VddAgent *a = c->in.agent;
    if (a) {
        if (why)
            g_message("clipboard: %s transfer to agent pid %d aborted: %s", sel_name(c->in.sel), agent_pid(a),
                      why);
        if (!vdd_agent_dropping(a))
            vdd_agent_send_clip_abort(a, c->in.sel);
    }
    c->in.agent = NULL;
    c->in.buf_len = 0;
    g_clear_pointer(&c->in.buf, g_free);
    /* in.active stays: the port still delivers the rest, which is skipped */
    flush_deferred(c, a);
}

static void client_data_begin(VddClip *c, unsigned sel, uint32_t type, uint64_t size)
{
    in_abort(c, "a new message began");
    c->in.active = true;
    c->in.agent = NULL;
    c->in.sel = (uint8_t)sel;
    c->in.remaining = 0;
    AgentReq *r = sel < VDD_CLIP_NSEL ? g_queue_pop_head(&c->sel[sel].agent_reqs) : NULL;
    if (!r) {
        if (vdd_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: %s data from the client without a request from the guest dropped",
                      sel_name(sel));
        return;
    }
    VddAgent *a = r->agent;
    g_free(r);
    if (a != c->active || vdd_agent_dropping(a) || c->gated) {
        /* Not reached in practice: a switch or the gate answer and forget
         * the requests; the agent must not wait anyway. */
        g_debug("clipboard: %s data for an agent that is no longer active dropped", sel_name(sel));
        if (!vdd_agent_dropping(a))
            agent_send_none(a, sel);
        return;
    }
    if (type == VD_AGENT_CLIPBOARD_NONE)
        size = 0;   /* "no data"; anything that follows is skipped */
    VdpIpcClipHead h = {.selection = sel, .type = type, .size = size};
    if (!vdd_agent_send_clip_begin(a, &h))
        return;
    g_debug("clipboard: %s data from the client to agent pid %d: %s, %llu bytes", sel_name(sel), agent_pid(a),
            type_name(type), (unsigned long long)size);
    c->in.agent = a;
    c->in.remaining = size;
    c->in.buf_cap = (size_t)MIN(size, (uint64_t)VDD_CLIP_FORWARD_CHUNK);
    if (size)
        c->in.buf = g_malloc(c->in.buf_cap);
    else
        in_close(c);
}

static void client_data_piece(VddClip *c, const uint8_t *data, size_t len)
{
    if (!c->in.active || !c->in.agent)
        return;
    if (len > c->in.remaining)
        len = (size_t)c->in.remaining;     /* type NONE with data: nothing is owed */
    while (len > 0 && c->in.agent && c->in.buf) {
        size_t n = MIN(len, c->in.buf_cap - c->in.buf_len);
        memcpy(c->in.buf + c->in.buf_len, data, n);
        c->in.buf_len += n;
        c->in.remaining -= n;
        data += n;
        len -= n;
        if (c->in.buf_len == c->in.buf_cap || c->in.remaining == 0)
            in_flush(c);
    }
}

static void client_data_end(VddClip *c)
{
    if (!c->in.active)
        return;
    in_flush(c);
    if (c->in.agent && c->in.remaining) {
        /* Cannot happen: the reassembler delivers exactly the size. */
        in_abort(c, "the message ended early");
    }
    in_close(c);
}

void vdd_clip_stream_begin(VddClip *c, const VdpMsg *head)
{
    client_data_begin(c, head->u.clipboard.selection, head->u.clipboard.type, head->u.clipboard.size);
}

void vdd_clip_stream_data(VddClip *c, const uint8_t *data, size_t len)
{
    client_data_piece(c, data, len);
}

void vdd_clip_stream_end(VddClip *c)
{
    client_data_end(c);
}

void vdd_clip_stream_abort(VddClip *c)
{
    in_abort(c, "the client's message was cut short");
    in_close(c);
}

/* ---- guest data -> client (the memfd streams) ---- */

static void out_item_free(gpointer data)
{
    OutItem *o = data;
    if (o->fd >= 0)
        close(o->fd);
    g_free(o);
}

static void out_drop_all(VddClip *c)
{
    if (c->out.cur) {
        out_item_free(c->out.cur);
        c->out.cur = NULL;
    }
    g_clear_pointer(&c->out.buf, g_free);
    g_queue_clear_full(&c->out_queue, out_item_free);
    if (c->retry) {
        g_source_destroy(c->retry);
        g_source_unref(c->retry);
        c->retry = NULL;
    }
}

static void out_pump(VddClip *c);

static gboolean retry_cb(gpointer data)
{
    VddClip *c = data;
    g_source_unref(c->retry);
    c->retry = NULL;
    out_pump(c);
    return G_SOURCE_REMOVE;
}

static void schedule_retry(VddClip *c)
{
    if (c->retry)
        return;
    c->retry = g_timeout_source_new(VDD_CLIP_RETRY_MS);
    g_source_set_callback(c->retry, retry_cb, c, NULL);
    g_source_attach(c->retry, c->ctx);
}

static bool out_start(VddClip *c, OutItem *o)
{
    c->out.cur = o;
    c->out.begun = false;
    c->out.head_len = 0;
    c->out.head_sent = 0;
    c->out.off = 0;
    c->out.buf_off = c->out.buf_len = 0;
    VdpWriter w;
    vdp_writer_init(&w, c->out.head, sizeof(c->out.head));
    if (c->layout->clipboard_selection) {
        vdp_write_u8(&w, o->sel);
        vdp_write_u8(&w, 0);
        vdp_write_u8(&w, 0);
        vdp_write_u8(&w, 0);
    }
    vdp_write_le32(&w, o->type);
    c->out.head_len = w.off;
    if (!c->out.buf)
        c->out.buf = g_malloc(VDD_CLIP_READ_PIECE);
    return true;
}

/* Read the next piece; a failure (impossible for a sealed memfd of the
 * checked size) is zero-filled: the message's size is already on the wire. */
static void out_read(VddClip *c)
{
    OutItem *o = c->out.cur;
    size_t n = (size_t)MIN((uint64_t)VDD_CLIP_READ_PIECE, o->size - c->out.off);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(o->fd, c->out.buf + got, n - got, (off_t)(c->out.off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (vdd_rate_ok(&c->rl, "clipboard"))
                g_warning("clipboard: reading the guest's data failed at %llu: %s",
                          (unsigned long long)(c->out.off + got), r < 0 ? g_strerror(errno) : "end of file");
            memset(c->out.buf + got, 0, n - got);
            break;
        }
        got += (size_t)r;
    }
    c->out.off += n;
    c->out.buf_off = 0;
    c->out.buf_len = n;
}

static void out_pump(VddClip *c)
{
    for (;;) {
        if (!c->out.cur) {
            OutItem *next = g_queue_pop_head(&c->out_queue);
            if (!next) {
                g_clear_pointer(&c->out.buf, g_free);
                return;
            }
            out_start(c, next);
        }
        if (!port_open(c)) {
            out_drop_all(c);
            return;
        }
        OutItem *o = c->out.cur;
        if (!c->out.begun) {
            VdpResult r = vdp_port_send_begin(c->port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD,
                                              (size_t)(c->out.head_len + o->size));
            if (r == VDP_ERR_BUSY) {
                schedule_retry(c);
                return;
            }
            if (r != VDP_OK) {
                if (vdd_rate_ok(&c->rl, "clipboard"))
                    g_message("clipboard: cannot send the guest's data: %s", vdp_result_name(r));
                out_item_free(o);
                c->out.cur = NULL;
                continue;
            }
            c->out.begun = true;
            g_debug("clipboard: streaming %llu bytes of %s (%s) to the client", (unsigned long long)o->size,
                    sel_name(o->sel), type_name(o->type));
        }
        const uint8_t *p;
        size_t len;
        if (c->out.head_sent < c->out.head_len) {
            p = c->out.head + c->out.head_sent;
            len = c->out.head_len - c->out.head_sent;
        } else {
            if (c->out.buf_off == c->out.buf_len) {
                if (c->out.off == o->size) {
                    out_item_free(o);
                    c->out.cur = NULL;
                    continue;
                }
                out_read(c);
            }
            p = c->out.buf + c->out.buf_off;
            len = c->out.buf_len - c->out.buf_off;
        }
        size_t acc = 0;
        VdpResult r = vdp_port_send_data(c->port, VDP_CLIENT_PORT, p, len, &acc);
        if (c->out.head_sent < c->out.head_len)
            c->out.head_sent += acc;
        else
            c->out.buf_off += acc;
        if (r == VDP_ERR_CLOSED) {
            out_drop_all(c);
            return;
        }
        if (r != VDP_OK || acc < len) {
            /* write_ready resumes; the retry covers a refusal without one */
            schedule_retry(c);
            return;
        }
    }
}

void vdd_clip_port_write_ready(VddClip *c)
{
    out_pump(c);
}

/* Is fd a sealed memfd (or any sealed regular file) of at least size
 * bytes? why gets the reason otherwise. */
static bool fd_acceptable(int fd, uint64_t size, char *why, size_t why_len)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        g_snprintf(why, why_len, "fstat: %s", g_strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        g_snprintf(why, why_len, "not a regular file");
        return false;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size < size) {
        g_snprintf(why, why_len, "the file has %lld bytes, %llu announced", (long long)st.st_size,
                   (unsigned long long)size);
        return false;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) == O_WRONLY || (fl & O_PATH)) {
        g_snprintf(why, why_len, "not open for reading");
        return false;
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) {
        g_snprintf(why, why_len, "cannot get its seals: %s", g_strerror(errno));
        return false;
    }
    if ((seals & (F_SEAL_SHRINK | F_SEAL_WRITE)) != (F_SEAL_SHRINK | F_SEAL_WRITE)) {
        g_snprintf(why, why_len, "not sealed against shrinking and writing");
        return false;
    }
    return true;
}

/* ---- guest answers ---- */

/* May this agent's message for sel go to the client now? */
static bool agent_ok(VddClip *c, VddAgent *a, unsigned sel, const char *what)
{
    if (a != c->active) {
        g_debug("clipboard: %s from agent pid %d dropped: not the active agent", what, agent_pid(a));
        return false;
    }
    if (c->gated) {
        g_debug("clipboard: %s from agent pid %d dropped: the session is locked", what, agent_pid(a));
        return false;
    }
    if (!client_ok(c, sel)) {
        g_debug("clipboard: %s (%s) from agent pid %d dropped: no client takes it", what, sel_name(sel),
                agent_pid(a));
        return false;
    }
    return true;
}

/* The guest answers a client REQUEST: is one waiting? */
static bool take_client_pending(VddClip *c, VddAgent *a, unsigned sel)
{
    if (!agent_ok(c, a, sel, "clipboard data"))
        return false;
    Sel *s = &c->sel[sel];
    if (!s->client_pending) {
        if (vdd_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: agent pid %d sent %s data nobody asked for; dropped", agent_pid(a), sel_name(sel));
        return false;
    }
    s->client_pending--;
    return true;
}

static uint64_t client_limit(const VddClip *c)
{
    int32_t max = *c->max_clipboard;
    uint64_t lim = VDP_MAX_CLIPBOARD_LIMIT;
    if (max >= 0 && (uint64_t)max < lim)
        lim = (uint64_t)max;
    return lim;
}

static bool size_ok(VddClip *c, uint64_t size)
{
    uint64_t lim = client_limit(c);
    if (size <= lim)
        return true;
    if (vdd_rate_ok(&c->rl, "clipboard"))
        g_message("guest clipboard of %llu bytes is larger than the client's maximum %llu",
                  (unsigned long long)size, (unsigned long long)lim);
    return false;
}

void vdd_clip_agent_data_fd(VddClip *c, VddAgent *a, const VdpIpcClipHead *head, int fd)
{
    unsigned sel = head->selection;
    if (!take_client_pending(c, a, sel)) {
        if (fd >= 0)
            close(fd);
        return;
    }
    char why[128];
    if (head->size == 0 || head->type == VD_AGENT_CLIPBOARD_NONE) {
        if (fd >= 0)
            close(fd);
        client_send_empty(c, sel, head->type);
        return;
    }
    if (!fd_acceptable(fd, head->size, why, sizeof(why))) {
        close(fd);
        if (vdd_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: agent pid %d: refusing its %s data descriptor: %s", agent_pid(a),
                      sel_name(sel), why);
        client_send_empty(c, sel, head->type);
        return;
    }
    if (!size_ok(c, head->size)) {
        close(fd);
        client_send_empty(c, sel, head->type);
        return;
    }
    if (c->out.cur && g_queue_get_length(&c->out_queue) >= VDD_CLIP_MAX_QUEUED_OUT) {
        close(fd);
        if (vdd_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: %u answers already wait for the port; %s data refused",
                      VDD_CLIP_MAX_QUEUED_OUT, sel_name(sel));
        client_send_empty(c, sel, head->type);
        return;
    }
    OutItem *o = g_new0(OutItem, 1);
    o->fd = fd;
    o->sel = (uint8_t)sel;
    o->type = head->type;
    o->size = head->size;
    g_queue_push_tail(&c->out_queue, o);
    out_pump(c);
}

static void agent_clipboard(VddClip *c, VddAgent *a, const VdpClipboard *cb)
{
    unsigned sel = cb->selection;
    if (!take_client_pending(c, a, sel))
        return;
    if (cb->type == VD_AGENT_CLIPBOARD_NONE || !size_ok(c, cb->size)) {
        client_send_empty(c, sel, cb->type);
        return;
    }
    VdpMsg *m = c->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD;
    m->u.clipboard = *cb;
    port_send(c, m);
}

void vdd_clip_agent_msg(VddClip *c, VddAgent *a, const VdpMsg *m)
{
    switch (m->type) {
    case VD_AGENT_CLIPBOARD_GRAB: {
        unsigned sel = m->u.grab.selection;
        if (!agent_ok(c, a, sel, "CLIPBOARD_GRAB"))
            return;
        Sel *s = &c->sel[sel];
        VdpMsg *out = c->scratch;
        memset(out, 0, sizeof(*out));
        out->type = VD_AGENT_CLIPBOARD_GRAB;
        out->u.grab = m->u.grab;
        out->u.grab.serial = s->serial++;
        s->owner = OWNER_GUEST;
        s->guest = a;
        s->ntypes = 0;
        s->client_forwarded = false;
        g_debug("clipboard: the guest grabs %s (serial %u)", sel_name(sel), out->u.grab.serial);
        port_send(c, out);
        break;
    }
    case VD_AGENT_CLIPBOARD_RELEASE: {
        unsigned sel = m->u.release.selection;
        Sel *s = sel < VDD_CLIP_NSEL ? &c->sel[sel] : NULL;
        if (!s || s->owner != OWNER_GUEST || s->guest != a) {
            g_debug("clipboard: RELEASE of %s from agent pid %d, which does not own it, dropped", sel_name(sel),
                    agent_pid(a));
            return;
        }
        s->owner = OWNER_NONE;
        s->guest = NULL;
        answer_client_pending(c, sel);
        if (agent_ok(c, a, sel, "CLIPBOARD_RELEASE"))
            client_send_release(c, sel);
        break;
    }
    case VD_AGENT_CLIPBOARD_REQUEST: {
        unsigned sel = m->u.request.selection;
        if (!agent_ok(c, a, sel, "CLIPBOARD_REQUEST")) {
            answer_agent_none(c, a, sel);
            return;
        }
        Sel *s = &c->sel[sel];
        if (s->owner != OWNER_CLIENT) {
            g_debug("clipboard: agent pid %d requests %s, which the client does not own: no data", agent_pid(a),
                    sel_name(sel));
            answer_agent_none(c, a, sel);
            return;
        }
        if (g_queue_get_length(&s->agent_reqs) >= VDD_CLIP_MAX_AGENT_PENDING) {
            if (vdd_rate_ok(&c->rl, "clipboard"))
                g_message("clipboard: agent pid %d has %u %s requests waiting; one more refused", agent_pid(a),
                          VDD_CLIP_MAX_AGENT_PENDING, sel_name(sel));
            answer_agent_none(c, a, sel);
            return;
        }
        AgentReq *r = g_new0(AgentReq, 1);
        r->agent = a;
        r->type = m->u.request.type;
        g_queue_push_tail(&s->agent_reqs, r);
        port_send(c, m);
        break;
    }
    case VD_AGENT_CLIPBOARD:
        agent_clipboard(c, a, &m->u.clipboard);
        break;
    default:
        break;
    }
}

/* ---- client messages ---- */

static void client_grab(VddClip *c, const VdpClipboardGrab *g)
{
    unsigned sel = g->selection;
    if (sel >= VDD_CLIP_NSEL)
        return;
    Sel *s = &c->sel[sel];
    if (c->layout->grab_serial) {
        if (g->serial == s->serial - 1u) {
            /* the client's grab crossed ours: the client wins */
        } else if (g->serial == s->serial) {
            s->serial++;
        } else {
            g_debug("clipboard: client grab of %s with serial %u discarded (expected %u)", sel_name(sel),
                    g->serial, s->serial);
            return;
        }
    }
    if (s->owner == OWNER_GUEST)
        answer_client_pending(c, sel);
    s->owner = OWNER_CLIENT;
    s->guest = NULL;
    s->ntypes = MIN(g->ntypes, VDP_MAX_GRAB_TYPES);
    memcpy(s->types, g->types, s->ntypes * sizeof(s->types[0]));
    s->client_forwarded = false;
    if (c->gated) {
        g_debug("clipboard: client grab of %s not passed on: the session is locked", sel_name(sel));
        return;
    }
    if (!c->active) {
        g_debug("clipboard: client grab of %s: no active agent", sel_name(sel));
        return;
    }
    agent_send_client_grab(c, c->active, sel);
    s->client_forwarded = true;
}

static void client_release(VddClip *c, unsigned sel)
{
    if (sel >= VDD_CLIP_NSEL)
        return;
    Sel *s = &c->sel[sel];
    if (s->owner != OWNER_CLIENT) {
        g_debug("clipboard: client release of %s, which it does not own, dropped", sel_name(sel));
        return;
    }
    bool tell = s->client_forwarded;
    s->owner = OWNER_NONE;
    s->ntypes = 0;
    s->client_forwarded = false;
    answer_agent_pending_sel(c, sel, NULL, true);
    if (tell && c->active)
        agent_send_release(c, c->active, sel);
}

static void client_request(VddClip *c, const VdpClipboardRequest *r, const VdpMsg *m)
{
    unsigned sel = r->selection;
    if (sel >= VDD_CLIP_NSEL)
        return;
    Sel *s = &c->sel[sel];
    const char *why = NULL;
    if (!c->active)
        why = "no active agent";
    else if (c->gated)
        why = "the session is locked";
    else if (s->owner != OWNER_GUEST || s->guest != c->active)
        why = "the guest does not own it";
    else if (s->client_pending >= VDD_CLIP_MAX_PENDING)
        why = "too many requests waiting";
    if (why) {
        g_debug("clipboard: client request for %s (%s) answered with no data: %s", sel_name(sel),
                type_name(r->type), why);
        client_send_empty(c, sel, VD_AGENT_CLIPBOARD_NONE);
        return;
    }
    s->client_pending++;
    agent_send_vdagent(c->active, m);
}

void vdd_clip_client_msg(VddClip *c, const VdpMsg *m)
{
    switch (m->type) {
    case VD_AGENT_CLIPBOARD_GRAB:
        client_grab(c, &m->u.grab);
        break;
    case VD_AGENT_CLIPBOARD_RELEASE:
        client_release(c, m->u.release.selection);
        break;
    case VD_AGENT_CLIPBOARD_REQUEST:
        client_request(c, &m->u.request, m);
        break;
    case VD_AGENT_CLIPBOARD:
        client_data_begin(c, m->u.clipboard.selection, m->u.clipboard.type, m->u.clipboard.size);
        client_data_piece(c, m->u.clipboard.data, m->u.clipboard.size);
        client_data_end(c);
        break;
    default:
        break;
    }
}

/* ---- state changes ---- */

/* Everything that ties the clipboard to agent a ends (a stays connected
 * when tell). Guest selections it owned are released towards the client. */
static void detach_agent(VddClip *c, VddAgent *a, bool tell)
{
    if (c->in.active && c->in.agent == a) {
        if (tell)
            in_abort(c, "the agent is no longer the active one");
        else {
            c->in.agent = NULL;
            c->in.buf_len = 0;
            for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
                c->sel[i].deferred_none = 0;
        }
    }
    answer_agent_pending(c, a, tell);
    if (c->paused_for == a)
        resume_port(c);
    if (a == c->active)
        for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
            answer_client_pending(c, i);
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
        Sel *s = &c->sel[i];
        if (a == c->active && tell && s->owner == OWNER_CLIENT && s->client_forwarded)
            agent_send_release(c, a, i);
        if (s->owner == OWNER_GUEST && s->guest == a) {
            s->owner = OWNER_NONE;
            s->guest = NULL;
            g_debug("clipboard: releasing %s towards the client: its agent %s", sel_name(i),
                    tell ? "is no longer active" : "left");
            client_send_release(c, i);
        }
    }
}

static void forward_client_grabs(VddClip *c)
{
    if (!c->active || c->gated)
        return;
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
        Sel *s = &c->sel[i];
        if (s->owner == OWNER_CLIENT && !s->client_forwarded) {
            agent_send_client_grab(c, c->active, i);
            s->client_forwarded = true;
        }
    }
}

static void set_active(VddClip *c, VddAgent *active)
{
    if (active == c->active)
        return;
    if (c->active)
        detach_agent(c, c->active, true);
    c->active = active;
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
        c->sel[i].client_forwarded = false;
    forward_client_grabs(c);
}

void vdd_clip_agent_gone(VddClip *c, VddAgent *a)
{
    detach_agent(c, a, false);
    if (a == c->active)
        c->active = NULL;
}

void vdd_clip_agent_write_ready(VddClip *c, VddAgent *a)
{
    if (c->paused_for == a) {
        g_debug("clipboard: agent pid %d caught up, resuming the port", agent_pid(a));
        resume_port(c);
    }
}

static void gate_on(VddClip *c, const char *why)
{
    c->gated = true;
    g_message("clipboard: not shared while %s", why ? why : "the session is locked");
    if (c->in.active && c->in.agent)
        in_abort(c, NULL);
    answer_agent_pending(c, NULL, true);
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
        Sel *s = &c->sel[i];
        answer_client_pending(c, i);
        if (s->owner == OWNER_CLIENT && s->client_forwarded && c->active) {
            agent_send_release(c, c->active, i);
            s->client_forwarded = false;
        } else if (s->owner == OWNER_GUEST) {
            s->owner = OWNER_NONE;
            s->guest = NULL;
            client_send_release(c, i);
        }
    }
}

void vdd_clip_update(VddClip *c, VddAgent *active, bool gated, const char *why)
{
    if (gated && !c->gated)
        gate_on(c, why);
    bool ungate = !gated && c->gated;
    if (ungate)
        c->gated = false;
    set_active(c, active);
    if (ungate) {
        g_message("clipboard: shared again (the active session is unlocked)");
        forward_client_grabs(c);
    }
}

void vdd_clip_client_gone(VddClip *c)
{
    if (c->in.active && c->in.agent)
        in_abort(c, "the client went away");
    answer_agent_pending(c, NULL, true);
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
        Sel *s = &c->sel[i];
        if (s->owner == OWNER_CLIENT && s->client_forwarded && c->active)
            agent_send_release(c, c->active, i);
        s->owner = OWNER_NONE;
        s->guest = NULL;
        s->ntypes = 0;
        s->client_forwarded = false;
        s->serial = 0;
        s->client_pending = 0;
    }
    /* Answers still waiting are for a client that is gone; the one on the
     * port is finished (the message is committed), unless the port went. */
    g_queue_clear_full(&c->out_queue, out_item_free);
    if (!port_open(c))
        out_drop_all(c);
}

void vdd_clip_port_lost(VddClip *c)
{
    out_drop_all(c);
    /* The reassembler reported stream_abort already; a message buffered
     * whole never started. */
    if (c->in.active) {
        in_abort(c, "the port closed");
        in_close(c);
    }
}

/* ---- lifecycle and status ---- */

VddClip *vdd_clip_new(GMainContext *ctx, VdpPort *port, const VdpCaps *client_caps, const VdpLayout *layout,
                      const int32_t *max_clipboard)
{
    VddClip *c = g_new0(VddClip, 1);
    c->ctx = ctx;
    c->port = port;
    c->client_caps = client_caps;
    c->layout = layout;
    c->max_clipboard = max_clipboard;
    c->scratch = g_new0(VdpMsg, 1);
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
        g_queue_init(&c->sel[i].agent_reqs);
    g_queue_init(&c->out_queue);
    return c;
}

void vdd_clip_free(VddClip *c)
{
    if (!c)
        return;
    out_drop_all(c);
    if (c->stall) {
        g_source_destroy(c->stall);
        g_source_unref(c->stall);
    }
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
        g_queue_clear_full(&c->sel[i].agent_reqs, g_free);
    g_free(c->in.buf);
    g_free(c->scratch);
    g_free(c);
}

const char *vdd_clip_owner_name(const VddClip *c, unsigned selection)
{
    if (selection >= VDD_CLIP_NSEL)
        return "none";
    switch (c->sel[selection].owner) {
    case OWNER_CLIENT:
        return "client";
    case OWNER_GUEST:
        return "guest";
    default:
        return "none";
    }
}

bool vdd_clip_gated(const VddClip *c)
{
    return c->gated;
}
