/* vdd-clipboard.c - clipboard routing (see vdd-clipboard.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdd-clipboard.h"
#include "vdp-ratelimit.h"
#include "vdp-wire.h"

typedef enum Owner {
    OWNER_NONE,
    OWNER_CLIENT,
    OWNER_GUEST,
} Owner;

/* An agent REQUEST forwarded to the client, waiting for its data. The
 * client answers every REQUEST it got, in order per selection, so an entry
 * stays until its answer arrives even when nobody wants the data any more
 * (agent == NULL: a placeholder that swallows the late answer). */
typedef struct AgentReq {
    VddAgent *agent;            /* NULL: forgotten (switch, lock, release, agent gone) */
    uint32_t type;
    uint64_t seq;               /* order of arrival over all selections */
    uint64_t nones_after;       /* later REQUESTs of this agent refused: NONE right after this answer */
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
    /* NONE answers for the agent the client's data is streaming to, sent
     * after its stream (a counter: a flood costs no memory) */
    uint64_t deferred_none;
} Sel;

/* Something for the client, in the order it has to reach it: a whole
 * message already encoded (GRAB, RELEASE, REQUEST, CLIPBOARD answers), or
 * guest data in a sealed memfd streamed with pread. */
typedef enum OutKind {
    OUT_MSG,
    OUT_FD,
} OutKind;

typedef struct OutItem {
    OutKind kind;
    uint8_t sel;
    uint32_t type;              /* clipboard type (answers) */
    bool data;                  /* a CLIPBOARD answer with data (may become "empty") */
    uint32_t msg_type;          /* OUT_MSG: VD_AGENT_* */
    uint8_t *payload;           /* OUT_MSG: encoded payload in the client's layout */
    size_t len;
    int fd;                     /* OUT_FD */
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
    uint64_t next_seq;

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
    VddAgent *stalled;          /* stalled once: not waited for again until it drains */
    GSource *stall;             /* VDD_CLIP_STALL_MS while paused */
    bool paused_out;            /* the port is paused while out_queue is too long */

    /* guest -> client: the memfd stream on the port (begun), and what waits */
    struct {
        OutItem *cur;
        uint8_t head[8];
        size_t head_len, head_sent;
        uint64_t off;           /* data bytes read from the fd */
        uint8_t *buf;           /* VDD_CLIP_READ_PIECE */
        size_t buf_off, buf_len;
    } out;
    GQueue out_queue;           /* OutItem*, in order; see VDD_CLIP_OUT_PAUSE */
    size_t out_bytes;           /* payload bytes of the OUT_MSG items queued */
    GSource *retry;

    VdpRateLimit rl;
};

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

/* ---- the ordered queue towards the client ----
 *
 * Everything the clipboard sends to the client goes out in the order it
 * was produced: a whole message goes to the port at once only when nothing
 * of ours waits or streams; otherwise, or when the port refuses it, it
 * waits in out_queue.
 * Guest data streams fill the port's queue only up to its high watermark,
 * so whole messages (ours, the daemon's REPLY, file transfer statuses)
 * still fit beside a stream. */

static void out_pump(VddClip *c);

static void out_item_free(gpointer data)
{
    OutItem *o = data;
    if (o->fd >= 0)
        close(o->fd);
    g_free(o->payload);
    g_free(o);
}

/* The client's input is paused while too much waits for the port: the
 * only producer without a bound of its own is the client itself (its
 * REQUESTs answered at once), so it is made to wait, not dropped. */
static void out_check_pause(VddClip *c)
{
    unsigned n = g_queue_get_length(&c->out_queue);
    if (!c->paused_out && n >= VDD_CLIP_OUT_PAUSE && port_open(c)) {
        g_debug("clipboard: %u messages wait for the port, pausing the client's input", n);
        c->paused_out = true;
        vdp_port_pause_read(c->port, true);
    } else if (c->paused_out && (n <= VDD_CLIP_OUT_PAUSE / 2u || !port_open(c))) {
        c->paused_out = false;
        vdp_port_pause_read(c->port, false);
    }
}

static void out_unlink(VddClip *c, GList *l)
{
    OutItem *o = l->data;
    if (o->kind == OUT_MSG)
        c->out_bytes -= o->len;
    g_queue_delete_link(&c->out_queue, l);
    out_item_free(o);
}

static void out_clear_queue(VddClip *c)
{
    g_queue_clear_full(&c->out_queue, out_item_free);
    c->out_bytes = 0;
    out_check_pause(c);
}

static void out_drop_all(VddClip *c)
{
    if (c->out.cur) {
        out_item_free(c->out.cur);
        c->out.cur = NULL;
    }
    g_clear_pointer(&c->out.buf, g_free);
    out_clear_queue(c);
    if (c->retry) {
        g_source_destroy(c->retry);
        g_source_unref(c->retry);
        c->retry = NULL;
    }
}

/* m's payload in the client's layout; false (logged) if it cannot be
 * encoded. Some messages have no payload (RELEASE without selections). */
static bool encode_for_client(VddClip *c, const VdpMsg *m, uint8_t **payload, size_t *len)
{
    VdpError err = {0};
    *payload = NULL;
    *len = vdp_msg_encode_payload(m, c->layout, NULL, 0, &err);
    if (*len == 0 && err.code != VDP_OK)
        goto fail;
    if (*len) {
        *payload = g_malloc(*len);
        if (vdp_msg_encode_payload(m, c->layout, *payload, *len, &err) != *len) {
            g_clear_pointer(payload, g_free);
            goto fail;
        }
    }
    return true;
fail:
    if (vdp_rate_ok(&c->rl, "clipboard"))
        g_message("clipboard: cannot encode %s for the client: %s", vdp_msg_type_name(m->type),
                  err.text[0] ? err.text : vdp_result_name(err.code));
    return false;
}

static bool out_set_msg(VddClip *c, OutItem *o, const VdpMsg *m)
{
    uint8_t *payload;
    size_t len;
    if (!encode_for_client(c, m, &payload, &len))
        return false;
    g_free(o->payload);
    o->kind = OUT_MSG;
    o->msg_type = m->type;
    o->payload = payload;
    o->len = len;
    return true;
}

static void empty_answer(VdpMsg *m, unsigned sel, uint32_t type)
{
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD;
    m->u.clipboard.selection = (uint8_t)sel;
    m->u.clipboard.type = type;
}

/* Turn a queued data answer into CLIPBOARD of its type without data (its
 * descriptor closed): the client still gets its answer, in its place. */
static bool out_make_empty(VddClip *c, OutItem *o)
{
    empty_answer(c->scratch, o->sel, o->type);
    size_t old = o->kind == OUT_MSG ? o->len : 0;
    if (!out_set_msg(c, o, c->scratch))
        return false;
    if (o->fd >= 0) {
        close(o->fd);
        o->fd = -1;
    }
    o->size = 0;
    o->data = false;
    c->out_bytes = c->out_bytes - old + o->len;
    return true;
}

/* Guest data not on the wire yet must not reach the client any more (the
 * session was locked, its agent is no longer the active one). */
static void out_refuse_queued(VddClip *c, const char *why)
{
    unsigned n = 0;
    for (GList *l = c->out_queue.head; l;) {
        GList *next = l->next;
        OutItem *o = l->data;
        if (o->data) {
            n++;
            if (!out_make_empty(c, o))
                out_unlink(c, l);
        }
        l = next;
    }
    if (n)
        g_debug("clipboard: %u guest answer(s) not sent yet replaced by empty data: %s", n, why);
}

static VdpResult out_send_msg(VddClip *c, const OutItem *o)
{
    return vdp_port_send(c->port, vdp_msg_port_for_type(o->msg_type), o->msg_type, o->payload, o->len);
}

static gboolean retry_cb(gpointer data)
{
    VddClip *c = data;
    g_source_unref(c->retry);
    c->retry = NULL;
    out_pump(c);
    return G_SOURCE_REMOVE;
}

/* The port refused: while its queue is above the high watermark,
 * write_ready comes and resumes us; below it (a refusal for messages still
 * waiting behind a stream, or for another producer's bytes) nothing would,
 * so try again a little later. */
static void out_wait(VddClip *c)
{
    if (vdp_port_write_blocked(c->port) || c->retry)
        return;
    c->retry = g_timeout_source_new(VDD_CLIP_RETRY_MS);
    g_source_set_callback(c->retry, retry_cb, c, NULL);
    g_source_attach(c->retry, c->ctx);
}

/* A GRAB or RELEASE of sel still waiting is superseded by a newer one: the
 * client takes the later serial anyway, so the queue holds at most one per
 * selection however often the guest grabs. */
static void out_drop_ownership(VddClip *c, unsigned sel)
{
    for (GList *l = c->out_queue.head; l;) {
        GList *next = l->next;
        OutItem *o = l->data;
        if (o->kind == OUT_MSG && o->sel == sel &&
            (o->msg_type == VD_AGENT_CLIPBOARD_GRAB || o->msg_type == VD_AGENT_CLIPBOARD_RELEASE))
            out_unlink(c, l);
        l = next;
    }
}

/* Send m to the client now if nothing of ours waits, else queue it. */
static void client_send(VddClip *c, const VdpMsg *m, unsigned sel, uint32_t type, bool data)
{
    if (!port_open(c))
        return;
    OutItem *o = g_new0(OutItem, 1);
    o->fd = -1;
    o->sel = (uint8_t)sel;
    o->type = type;
    o->data = data;
    if (!out_set_msg(c, o, m)) {
        out_item_free(o);
        return;
    }
    if (m->type == VD_AGENT_CLIPBOARD_GRAB || m->type == VD_AGENT_CLIPBOARD_RELEASE)
        out_drop_ownership(c, sel);
    /* Behind our own stream it would wait on the wire anyway: it waits
     * here instead (where a newer GRAB replaces it), and the port's room
     * for messages behind a stream stays for the daemon's others. */
    if (g_queue_is_empty(&c->out_queue) && !c->out.cur) {
        VdpResult r = out_send_msg(c, o);
        if (r != VDP_ERR_BUSY) {
            if (r != VDP_OK && vdp_rate_ok(&c->rl, "clipboard"))
                g_message("clipboard: could not send %s to the client: %s", vdp_msg_type_name(m->type),
                          vdp_result_name(r));
            out_item_free(o);
            return;
        }
    }
    g_queue_push_tail(&c->out_queue, o);
    c->out_bytes += o->len;
    out_check_pause(c);
    out_pump(c);
}

/* CLIPBOARD without data: type NONE ("no data") or the type of data that
 * was refused. */
static void client_send_empty(VddClip *c, unsigned sel, uint32_t type)
{
    if (!client_ok(c, sel))
        return;
    empty_answer(c->scratch, sel, type);
    client_send(c, c->scratch, sel, type, false);
}

static void client_send_release(VddClip *c, unsigned sel)
{
    if (!client_ok(c, sel))
        return;
    VdpMsg *m = c->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD_RELEASE;
    m->u.release.selection = (uint8_t)sel;
    client_send(c, m, sel, 0, false);
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
        g_debug("clipboard: answered %u pending %s request(s) of the client with no data", n, vdp_selection_label(sel));
}

/* ---- guest data -> client (the memfd streams) ---- */

static void out_start(VddClip *c, OutItem *o)
{
    c->out.cur = o;
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
            if (vdp_rate_ok(&c->rl, "clipboard"))
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

/* Feed the stream in progress; false: wait (write_ready or the retry). */
static bool out_feed(VddClip *c)
{
    OutItem *o = c->out.cur;
    for (;;) {
        /* Never above the high watermark: the room up to the hard limit
         * is for whole messages. */
        if (vdp_port_write_blocked(c->port))
            return false;
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
                    return true;
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
            return false;
        }
        if (r != VDP_OK || acc < len) {
            out_wait(c);
            return false;
        }
    }
}

static void out_pump(VddClip *c)
{
    for (;;) {
        if (!port_open(c)) {
            out_drop_all(c);
            return;
        }
        if (c->out.cur) {
            if (!out_feed(c))
                return;
            continue;
        }
        OutItem *o = g_queue_peek_head(&c->out_queue);
        if (!o) {
            g_clear_pointer(&c->out.buf, g_free);
            return;
        }
        if (o->kind == OUT_MSG) {
            VdpResult r = out_send_msg(c, o);
            if (r == VDP_ERR_BUSY) {
                out_wait(c);
                return;
            }
            if (r != VDP_OK && vdp_rate_ok(&c->rl, "clipboard"))
                g_message("clipboard: could not send %s to the client: %s", vdp_msg_type_name(o->msg_type),
                          vdp_result_name(r));
            out_unlink(c, c->out_queue.head);
            out_check_pause(c);
            continue;
        }
        size_t head_len = c->layout->clipboard_selection ? 8u : 4u;
        VdpResult r = vdp_port_send_begin(c->port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD,
                                          (size_t)(head_len + o->size));
        if (r == VDP_ERR_BUSY) {
            out_wait(c);
            return;
        }
        if (r != VDP_OK) {
            if (vdp_rate_ok(&c->rl, "clipboard"))
                g_message("clipboard: cannot send the guest's data: %s; empty data instead", vdp_result_name(r));
            if (!out_make_empty(c, o))
                out_unlink(c, c->out_queue.head);
            continue;
        }
        g_queue_pop_head(&c->out_queue);
        out_check_pause(c);
        out_start(c, o);
        g_debug("clipboard: streaming %llu bytes of %s (%s) to the client", (unsigned long long)o->size,
                vdp_selection_label(o->sel), vdp_clipboard_type_label(o->type));
    }
}

void vdd_clip_port_write_ready(VddClip *c)
{
    out_pump(c);
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
    if (c->in.active && c->in.agent == a && a) {
        c->sel[sel].deferred_none++;
        return;
    }
    agent_send_none(a, sel);
}

/* NONE for a request that will not get the client's data, and for the
 * refusals that queued behind it. */
static void answer_req_none(VddClip *c, unsigned sel, AgentReq *r)
{
    VddAgent *a = r->agent;
    uint64_t n = r->nones_after;
    r->nones_after = 0;
    if (!a)
        return;
    answer_agent_none(c, a, sel);
    for (uint64_t k = 0; k < n && !vdd_agent_dropping(a); k++)
        answer_agent_none(c, a, sel);
}

/* An agent REQUEST refused: its NONE must not overtake the answers to that
 * agent's earlier requests on sel, so it goes behind the last of them. */
static void agent_refuse(VddClip *c, VddAgent *a, unsigned sel)
{
    for (GList *l = c->sel[sel].agent_reqs.tail; l; l = l->prev) {
        AgentReq *r = l->data;
        if (r->agent == a) {
            r->nones_after++;
            return;
        }
    }
    answer_agent_none(c, a, sel);
}

static void flush_deferred(VddClip *c, VddAgent *a)
{
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
        uint64_t n = c->sel[i].deferred_none;
        c->sel[i].deferred_none = 0;
        for (uint64_t k = 0; k < n && a && !vdd_agent_dropping(a); k++)
            agent_send_none(a, i);
    }
}

/* The agent REQUESTs on selection i waiting on the client (of agent a, or
 * of anyone when a is NULL) will not get its data: tell answers them NONE
 * (false: the agent is gone); keep leaves a placeholder for each, since the
 * client still answers it (false: the client is gone). */
static void answer_agent_pending_sel(VddClip *c, unsigned i, VddAgent *a, bool tell, bool keep)
{
    GQueue *q = &c->sel[i].agent_reqs;
    for (GList *l = q->head; l;) {
        GList *next = l->next;
        AgentReq *r = l->data;
        if (!a || r->agent == a) {
            if (tell)
                answer_req_none(c, i, r);
            r->nones_after = 0;
            r->agent = NULL;
            if (!keep) {
                g_queue_delete_link(q, l);
                g_free(r);
            }
        }
        l = next;
    }
}

static void answer_agent_pending(VddClip *c, VddAgent *a, bool tell, bool keep)
{
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
        answer_agent_pending_sel(c, i, a, tell, keep);
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
    /* not waited for again until it reads: if it never does, its queue
     * fills and it is disconnected */
    c->stalled = c->paused_for;
    if (c->in.active && c->in.agent == c->paused_for)
        in_abort(c, NULL);
    resume_port(c);
    return G_SOURCE_REMOVE;
}

/* Port input made us send to agent a: while a is behind, the port is not
 * read, so a client cannot queue without bound towards a slow agent. */
static void check_backpressure(VddClip *c, VddAgent *a)
{
    if (!a || c->paused_for || a == c->stalled || vdd_agent_dropping(a) || !vdd_agent_write_blocked(a))
        return;
    g_debug("clipboard: agent pid %d is behind, pausing the port", agent_pid(a));
    c->paused_for = a;
    vdp_port_pause_read(c->port, true);
    c->stall = g_timeout_source_new(VDD_CLIP_STALL_MS);
    g_source_set_callback(c->stall, stall_cb, c, NULL);
    g_source_attach(c->stall, c->ctx);
}

void vdd_clip_port_input_done(VddClip *c)
{
    check_backpressure(c, c->active);
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
            g_message("clipboard: %s transfer to agent pid %d aborted: %s", vdp_selection_label(c->in.sel), agent_pid(a),
                      why);
        if (!vdd_agent_dropping(a))
            vdd_agent_send_clip_abort(a, c->in.sel);
    }
    c->in.agent = NULL;
    c->in.buf_len = 0;
    g_clear_pointer(&c->in.buf, g_free);
    /* in.active stays: the port still delivers the rest, which is skipped */
    flush_deferred(c, a);
    /* The port waited for this stream; if the agent is still behind, the
     * next message sent to it pauses the port again. */
    if (a && c->paused_for == a)
        resume_port(c);
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
        if (vdp_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: %s data from the client without a request from the guest dropped",
                      vdp_selection_label(sel));
        return;
    }
    VddAgent *a = r->agent;
    if (!a) {
        g_debug("clipboard: %s data from the client for a request nobody waits for any more dropped",
                vdp_selection_label(sel));
        g_free(r);
        return;
    }
    if (a != c->active || vdd_agent_dropping(a) || c->gated) {
        /* Not reached in practice: a switch or the gate answer the
         * requests and leave placeholders; the agent must not wait anyway. */
        g_debug("clipboard: %s data for an agent that is no longer active dropped", vdp_selection_label(sel));
        answer_req_none(c, sel, r);
        g_free(r);
        return;
    }
    uint64_t after = r->nones_after;
    g_free(r);
    if (type == VD_AGENT_CLIPBOARD_NONE)
        size = 0;   /* "no data"; anything that follows is skipped */
    VdpIpcClipHead h = {.selection = sel, .type = type, .size = size};
    if (!vdd_agent_send_clip_begin(a, &h))
        return;
    g_debug("clipboard: %s data from the client to agent pid %d: %s, %llu bytes", vdp_selection_label(sel), agent_pid(a),
            vdp_clipboard_type_label(type), (unsigned long long)size);
    c->in.agent = a;
    c->in.remaining = size;
    /* the refusals that queued behind this request follow its data */
    c->sel[sel].deferred_none += after;
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

void vdd_clip_client_data_lost(VddClip *c, int selection)
{
    unsigned sel = (unsigned)selection;
    if (selection < 0 || sel >= VDD_CLIP_NSEL) {
        /* Which selection is unknown: the client answers in the order it
         * was asked, so the oldest request is the likeliest. */
        uint64_t best = UINT64_MAX;
        sel = VDD_CLIP_NSEL;
        for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
            AgentReq *r = g_queue_peek_head(&c->sel[i].agent_reqs);
            if (r && r->seq < best) {
                best = r->seq;
                sel = i;
            }
        }
        if (sel == VDD_CLIP_NSEL)
            return;
    }
    AgentReq *r = g_queue_pop_head(&c->sel[sel].agent_reqs);
    if (!r)
        return;
    if (vdp_rate_ok(&c->rl, "clipboard"))
        g_message("clipboard: the client's %s data was dropped; the request it answered gets no data",
                  vdp_selection_label(sel));
    answer_req_none(c, sel, r);
    g_free(r);
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
        g_debug("clipboard: %s (%s) from agent pid %d dropped: no client takes it", what, vdp_selection_label(sel),
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
        if (vdp_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: agent pid %d sent %s data nobody asked for; dropped", agent_pid(a), vdp_selection_label(sel));
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
    if (vdp_rate_ok(&c->rl, "clipboard"))
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
        if (vdp_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: agent pid %d: refusing its %s data descriptor: %s", agent_pid(a),
                      vdp_selection_label(sel), why);
        client_send_empty(c, sel, head->type);
        return;
    }
    if (!size_ok(c, head->size)) {
        close(fd);
        client_send_empty(c, sel, head->type);
        return;
    }
    /* Queued behind whatever waits: answers are bounded by the client's
     * pending requests (VDD_CLIP_MAX_PENDING per selection). */
    OutItem *o = g_new0(OutItem, 1);
    o->kind = OUT_FD;
    o->fd = fd;
    o->sel = (uint8_t)sel;
    o->type = head->type;
    o->size = head->size;
    o->data = true;
    g_queue_push_tail(&c->out_queue, o);
    out_check_pause(c);
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
    if (!g_queue_is_empty(&c->out_queue) && c->out_bytes + cb->size > VDD_CLIP_MAX_OUT_BYTES) {
        if (vdp_rate_ok(&c->rl, "clipboard"))
            g_message("clipboard: %zu bytes already wait for the port; %s data of agent pid %d refused",
                      c->out_bytes, vdp_selection_label(sel), agent_pid(a));
        client_send_empty(c, sel, cb->type);
        return;
    }
    VdpMsg *m = c->scratch;
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD;
    m->u.clipboard = *cb;
    client_send(c, m, sel, cb->type, cb->size > 0);
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
        g_debug("clipboard: the guest grabs %s (serial %u)", vdp_selection_label(sel), out->u.grab.serial);
        client_send(c, out, sel, 0, false);
        break;
    }
    case VD_AGENT_CLIPBOARD_RELEASE: {
        unsigned sel = m->u.release.selection;
        Sel *s = sel < VDD_CLIP_NSEL ? &c->sel[sel] : NULL;
        if (!s || s->owner != OWNER_GUEST || s->guest != a) {
            g_debug("clipboard: RELEASE of %s from agent pid %d, which does not own it, dropped", vdp_selection_label(sel),
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
        if (sel >= VDD_CLIP_NSEL)
            return;     /* not decoded: the IPC carries 0..VDP_IPC_CLIP_SELECTION_MAX */
        if (!agent_ok(c, a, sel, "CLIPBOARD_REQUEST")) {
            agent_refuse(c, a, sel);
            return;
        }
        Sel *s = &c->sel[sel];
        if (s->owner != OWNER_CLIENT) {
            g_debug("clipboard: agent pid %d requests %s, which the client does not own: no data", agent_pid(a),
                    vdp_selection_label(sel));
            agent_refuse(c, a, sel);
            return;
        }
        if (g_queue_get_length(&s->agent_reqs) >= VDD_CLIP_MAX_AGENT_PENDING) {
            if (vdp_rate_ok(&c->rl, "clipboard"))
                g_message("clipboard: %u %s requests wait for the client; one more of agent pid %d refused",
                          VDD_CLIP_MAX_AGENT_PENDING, vdp_selection_label(sel), agent_pid(a));
            agent_refuse(c, a, sel);
            return;
        }
        AgentReq *r = g_new0(AgentReq, 1);
        r->agent = a;
        r->type = m->u.request.type;
        r->seq = c->next_seq++;
        g_queue_push_tail(&s->agent_reqs, r);
        client_send(c, m, sel, 0, false);
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
            g_debug("clipboard: client grab of %s with serial %u discarded (expected %u)", vdp_selection_label(sel),
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
        g_debug("clipboard: client grab of %s not passed on: the session is locked", vdp_selection_label(sel));
        return;
    }
    if (!c->active) {
        g_debug("clipboard: client grab of %s: no active agent", vdp_selection_label(sel));
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
        g_debug("clipboard: client release of %s, which it does not own, dropped", vdp_selection_label(sel));
        return;
    }
    bool tell = s->client_forwarded;
    s->owner = OWNER_NONE;
    s->ntypes = 0;
    s->client_forwarded = false;
    /* the client still answers what it was asked: placeholders */
    answer_agent_pending_sel(c, sel, NULL, true, true);
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
        g_debug("clipboard: client request for %s (%s) answered with no data: %s", vdp_selection_label(sel),
                vdp_clipboard_type_label(r->type), why);
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
    /* the client still answers the requests it got: placeholders */
    answer_agent_pending(c, a, tell, true);
    if (c->paused_for == a)
        resume_port(c);
    if (c->stalled == a)
        c->stalled = NULL;
    if (a == c->active) {
        out_refuse_queued(c, tell ? "its agent is no longer the active one" : "its agent left");
        for (unsigned i = 0; i < VDD_CLIP_NSEL; i++)
            answer_client_pending(c, i);
    }
    for (unsigned i = 0; i < VDD_CLIP_NSEL; i++) {
        Sel *s = &c->sel[i];
        if (a == c->active && tell && s->owner == OWNER_CLIENT && s->client_forwarded)
            agent_send_release(c, a, i);
        if (s->owner == OWNER_GUEST && s->guest == a) {
            s->owner = OWNER_NONE;
            s->guest = NULL;
            g_debug("clipboard: releasing %s towards the client: its agent %s", vdp_selection_label(i),
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
    if (c->stalled == a)
        c->stalled = NULL;
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
    resume_port(c);
    answer_agent_pending(c, NULL, true, true);
    out_refuse_queued(c, "the session is locked");
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
    resume_port(c);
    /* nobody will answer these: no placeholders */
    answer_agent_pending(c, NULL, true, false);
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
    /* What waits is for a client that is gone; the stream on the port is
     * committed (its size is on the wire) and finishes, unless the port
     * went. */
    out_clear_queue(c);
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
    /* The port's pause count outlives the connection: the next one must
     * be read. */
    resume_port(c);
    out_check_pause(c);
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
    if (c->paused_for)
        vdp_port_pause_read(c->port, false);
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
