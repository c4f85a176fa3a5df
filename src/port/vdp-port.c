/* vdp-port.c - the virtio-serial agent port (see vdp-port.h).
 *
 * Pieces:
 *  - A Conn wraps the VdpStream of one open device or connected socket.
 *    When a connection ends, its Conn is detached from the port at once.
 *    Its stream is freed right away, or from an idle source when the port
 *    is inside one of that stream's callbacks (the stream contract only
 *    allows freeing from closed()). A detached Conn's callbacks do nothing.
 *  - Opening never blocks and never spins: every failed open, connect or
 *    listen, every connection that ends, and every accept error is followed
 *    by a g_timeout source (the back-off: reconnect_min_ms doubling up to
 *    reconnect_max_ms, back to the minimum once a connection delivered
 *    data). The stream treats POLLHUP as end of file, so a virtio port
 *    whose host side is absent ends its connection instead of waking the
 *    loop forever.
 *  - The open race: in CONNECT mode a new connection is "settling" (state
 *    still WAITING) until its first byte arrives or VDP_PORT_SETTLE_MS pass
 *    without end of file. A device or socket that reports end of file while
 *    settling is the open race (host side not ready): it goes through the
 *    back-off and is reported once, however often it repeats.
 *  - Reporting: state_changed is called when the state changes and, while
 *    WAITING, when the reason for waiting changes (another errno, another
 *    step); a retry that fails like the one before is not reported.
 *  - Writing: messages are framed chunk by chunk through a bounce buffer
 *    (or straight from the caller's buffer for big chunks) into the stream
 *    queue, so a payload is never copied whole a second time. A message for
 *    a chunk port that has a streamed send in progress waits in that port's
 *    pending list; pending bytes count against the same queue limit but
 *    may use only half of it, so the stream can always finish. The stream
 *    reports write_blocked from inside vdp_stream_write(); the port holds
 *    it back until the message being framed is whole, so a producer never
 *    reacts in the middle of a chunk.
 *  - Re-entrancy: every GLib source of the port and every stream callback
 *    runs between enter() and leave(). User callbacks may call any function
 *    of this API, including vdp_port_stop() and vdp_port_free(); the latter
 *    then only detaches everything and marks the port dying, and the
 *    outermost leave() releases the memory.
 */
#include "config.h"

#define G_LOG_DOMAIN "vdp-port"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "vdp-port.h"
#include "vdp-unix.h"
#include "vdp-wire.h"

/* Back-off defaults (vdp-port.h): the first retry comes after 10 ms, which
 * is what spice-vdagentd 0.22 waits per open-race poll; 2 s between
 * attempts keeps an absent host invisible in `top` yet reconnects quickly
 * enough when QEMU comes back. */
#define VDP_PORT_RECONNECT_MIN_MS_DEFAULT 10u
#define VDP_PORT_RECONNECT_MAX_MS_DEFAULT 2000u
/* Longest back-off a configuration may ask for (one hour): anything longer
 * is a unit mistake, not a policy. */
#define VDP_PORT_RECONNECT_MS_LIMIT (3600u * 1000u)

/* How long a new CONNECT-mode connection must survive without end of file
 * before it is reported OPEN (unless a byte arrives first). The open race
 * shows as end of file or hang-up in the first loop iteration after open;
 * 50 ms also covers a peer that accepts and drops within a time slice, and
 * is short enough not to delay a guest's first announce noticeably. */
#define VDP_PORT_SETTLE_MS 50u

/* LISTEN mode: the socket is for the local host tooling only (owner
 * read/write), and a small backlog suffices for one guest at a time. */
#define VDP_PORT_LISTEN_MODE 0600
#define VDP_PORT_LISTEN_BACKLOG 4
/* Connections accepted per wake-up of the listening socket, so a flood of
 * refused peers cannot monopolise the loop. */
#define VDP_PORT_ACCEPT_BATCH 8u

/* Outgoing framing: small pieces (chunk headers, message headers, chunks
 * of the default 2 KiB) are gathered in a bounce buffer of this size and
 * queued in one write; pieces of at least VDP_PORT_DIRECT_WRITE_MIN bytes
 * go to the stream straight from the caller's buffer. */
#define VDP_PORT_WRITE_BATCH (64u * 1024u)
#define VDP_PORT_DIRECT_WRITE_MIN (4u * 1024u)

/* Messages waiting behind a streamed send on their chunk port may take at
 * most this share (1/n) of queue_limit: the rest stays for the stream, so
 * it can always finish and let them out (no deadlock), and the total never
 * exceeds the limit. */
#define VDP_PORT_PENDING_SHARE_DIVISOR 2u

/* Smallest queue_limit accepted: one chunk header, one message header and
 * a little payload, or no streamed send could ever make progress. */
#define VDP_PORT_QUEUE_LIMIT_MIN 64u

/* Length of a state_changed sentence. */
#define VDP_PORT_WHY_MAX 320u

/* Chunk ports: VDP_CLIENT_PORT (1) and VDP_SERVER_PORT (2). */
#define VDP_PORT_NPORTS 2u

/* Why the port is waiting: compared to decide whether a failure is news. */
typedef enum Step {
    STEP_NONE,
    STEP_LISTENING,     /* listening, no guest */
    STEP_LISTEN,        /* listen() failed */
    STEP_ACCEPT,        /* accept() failed */
    STEP_OPEN,          /* open() failed */
    STEP_CONNECT,       /* connect() failed */
    STEP_NOT_DEVICE,    /* path is neither a character device nor a socket */
    STEP_STREAM,        /* the stream could not be set up */
    STEP_NOT_READY,     /* the open race: end of file while settling */
    STEP_CLOSED,        /* the peer closed an open connection */
    STEP_IO,            /* I/O error on an open connection */
    STEP_FRAMING,       /* the chunk stream from the peer was corrupt */
    STEP_WRITE,         /* the write queue refused part of a message */
} Step;

typedef struct Conn {
    VdpPort *port;          /* NULL once detached */
    VdpStream *stream;
    unsigned cb_depth;      /* stream callbacks of this Conn running */
    bool open;              /* reported OPEN (settled) */
    bool got_data;          /* at least one byte arrived */
    bool write_failed;      /* a message was cut short in the queue */
} Conn;

typedef struct Pending {
    uint8_t *msg;           /* 20-byte header + payload */
    size_t len;
    size_t framed;          /* bytes it takes in the queue */
} Pending;

typedef struct OutPort {
    bool active;            /* a streamed send is in progress */
    bool hdr_sent;          /* its header went out with the first data */
    bool dropped;           /* a stream was dropped with its connection */
    uint8_t hdr[VDP_MSG_HEADER_SIZE];
    size_t total, sent;     /* payload bytes announced / queued */
    GQueue pending;         /* Pending *, waiting behind the stream */
} OutPort;

struct VdpPort {
    GMainContext *ctx;
    char *path;
    VdpPortMode mode;
    size_t chunk_size;
    size_t high, low, limit;
    bool no_reconnect;
    unsigned backoff_min, backoff_max, backoff;
    size_t (*max_payload)(void *user, uint32_t type);
    VdpPortCallbacks cb;
    void *user;

    VdpReasm *reasm;
    Conn *feeding;          /* the Conn whose bytes are in vdp_reasm_feed() */
    unsigned mute;          /* > 0: reassembler callbacks are not forwarded */

    VdpPortState state;
    VdpPortState reported;
    Step reported_step;
    int reported_errno;

    Conn *conn;
    GSource *settle_src;

    int listen_fd;
    bool listen_id_known;
    dev_t listen_dev;
    ino_t listen_ino;
    GSource *accept_src;

    GSource *retry_src;
    uint64_t attempts;

    unsigned pause_count;
    OutPort out[VDP_PORT_NPORTS];
    size_t pending_bytes;
    uint8_t *wbuf;          /* VDP_PORT_WRITE_BATCH bytes */

    unsigned emitting;      /* framing a message into the stream */
    bool blocked_pending;   /* write_blocked held back while emitting */

    unsigned depth;         /* enter()/leave() nesting */
    bool dying;             /* vdp_port_free() was called inside a callback */
    unsigned epoch;         /* bumped by start, stop and every disconnect */

    VdpStreamStats past;    /* stream statistics of earlier connections */
    uint64_t opens, reconnects, refused;
};

static void conn_detach(VdpPort *p);
static void conn_settled(VdpPort *p, Conn *c);
static void attempt(VdpPort *p);
static void flush_pending(VdpPort *p, uint32_t chunk_port);

/* ---- small helpers ---- */

static bool chunk_port_valid(uint32_t chunk_port)
{
    return chunk_port == VDP_CLIENT_PORT || chunk_port == VDP_SERVER_PORT;
}

static OutPort *out_port(VdpPort *p, uint32_t chunk_port)
{
    return &p->out[chunk_port - VDP_CLIENT_PORT];
}

static void destroy_source(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        g_source_unref(*src);
        *src = NULL;
    }
}

static void enter(VdpPort *p)
{
    p->depth++;
}

static void port_finalize(VdpPort *p);

/* Returns false when the port is gone or going: touch nothing then. */
static bool leave(VdpPort *p)
{
    if (--p->depth == 0 && p->dying) {
        port_finalize(p);
        return false;
    }
    return !p->dying;
}

static bool is_open(const VdpPort *p)
{
    return !p->dying && p->state == VDP_PORT_STATE_OPEN && p->conn && p->conn->open &&
           !p->conn->write_failed;
}

/* Call state_changed if the state changed, or if the reason for waiting
 * changed; a retry failing like the previous one is not news. */
static void report(VdpPort *p, VdpPortState st, Step step, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);
static void report(VdpPort *p, VdpPortState st, Step step, int errnum, const char *fmt, ...)
{
    if (st == p->reported &&
        (st != VDP_PORT_STATE_WAITING || (step == p->reported_step && errnum == p->reported_errno)))
        return;
    p->reported = st;
    p->reported_step = step;
    p->reported_errno = errnum;
    if (!p->cb.state_changed || p->dying)
        return;
    char why[VDP_PORT_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    g_vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    p->cb.state_changed(p->user, st, why);
}

/* ---- the reassembler's callbacks, forwarded ---- */

/* Input is forwarded only while it belongs to the current connection: a
 * callback that stopped the port or lost the connection ends delivery of
 * the rest of the buffer. */
static bool input_live(const VdpPort *p)
{
    return !p->dying && p->mute == 0 && p->feeding && p->feeding == p->conn;
}

static void fwd_message(void *user, uint32_t port, const VdpMsgHeader *hdr,
                        const uint8_t *data, size_t len)
{
    VdpPort *p = user;
    if (input_live(p))
        p->cb.message(p->user, port, hdr, data, len);
}

static void fwd_stream_begin(void *user, uint32_t port, const VdpMsgHeader *hdr,
                             const uint8_t *head, size_t head_len)
{
    VdpPort *p = user;
    if (input_live(p))
        p->cb.stream_begin(p->user, port, hdr, head, head_len);
}

static void fwd_stream_data(void *user, uint32_t port, const uint8_t *data, size_t len)
{
    VdpPort *p = user;
    if (input_live(p))
        p->cb.stream_data(p->user, port, data, len);
}

static void fwd_stream_end(void *user, uint32_t port)
{
    VdpPort *p = user;
    if (input_live(p))
        p->cb.stream_end(p->user, port);
}

static void fwd_stream_abort(void *user, uint32_t port)
{
    VdpPort *p = user;
    if (!p->dying && p->mute == 0 && p->cb.stream_abort)
        p->cb.stream_abort(p->user, port);
}

static void fwd_problem(void *user, VdpReasmEvent ev, uint32_t port,
                        const VdpMsgHeader *hdr, const VdpError *err)
{
    VdpPort *p = user;
    if (input_live(p) && p->cb.problem)
        p->cb.problem(p->user, ev, port, hdr, err);
}

static size_t fwd_max_payload(void *user, uint32_t type)
{
    VdpPort *p = user;
    return p->max_payload ? p->max_payload(p->user, type) : vdp_msg_max_payload(type);
}

/* Forget all input state without telling anyone (stop, free). */
static void reasm_reset_quietly(VdpPort *p)
{
    p->mute++;
    vdp_reasm_reset(p->reasm);
    p->mute--;
}

/* ---- outgoing state ---- */

static void pending_free(gpointer data)
{
    Pending *pm = data;
    g_free(pm->msg);
    g_free(pm);
}

/* A new connection starts clean: no queue, no half-sent stream. */
static void drop_output(VdpPort *p)
{
    for (unsigned i = 0; i < VDP_PORT_NPORTS; i++) {
        OutPort *o = &p->out[i];
        if (o->active)
            o->dropped = true;
        o->active = false;
        o->hdr_sent = false;
        o->total = o->sent = 0;
        g_queue_clear_full(&o->pending, pending_free);
    }
    p->pending_bytes = 0;
}

/* ---- back-off ---- */

static unsigned next_delay(VdpPort *p)
{
    unsigned d = p->backoff;
    p->backoff = d > p->backoff_max / 2 ? p->backoff_max : d * 2;
    return d;
}

static gboolean retry_cb(gpointer data)
{
    VdpPort *p = data;
    destroy_source(&p->retry_src);
    enter(p);
    if (p->state != VDP_PORT_STATE_STOPPED)
        attempt(p);
    leave(p);
    return G_SOURCE_REMOVE;
}

static void schedule_retry(VdpPort *p, unsigned delay_ms)
{
    destroy_source(&p->retry_src);
    p->retry_src = g_timeout_source_new(delay_ms);
    g_source_set_callback(p->retry_src, retry_cb, p, NULL);
    g_source_attach(p->retry_src, p->ctx);
}

/* ---- listening socket ---- */

static gboolean accept_cb(gint fd, GIOCondition cond, gpointer data);

static void accept_watch_on(VdpPort *p)
{
    if (p->accept_src || p->listen_fd < 0)
        return;
    p->accept_src = g_unix_fd_source_new(p->listen_fd, G_IO_IN);
    g_source_set_callback(p->accept_src, G_SOURCE_FUNC(accept_cb), p, NULL);
    g_source_attach(p->accept_src, p->ctx);
}

static void accept_watch_off(VdpPort *p)
{
    destroy_source(&p->accept_src);
}

static void close_listener(VdpPort *p)
{
    accept_watch_off(p);
    if (p->listen_fd < 0)
        return;
    /* Remove the socket file only if it is still the one we created. */
    struct stat st;
    if (p->listen_id_known && stat(p->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == p->listen_dev && st.st_ino == p->listen_ino)
        unlink(p->path);
    close(p->listen_fd);
    p->listen_fd = -1;
    p->listen_id_known = false;
}

/* ---- failures and disconnects ---- */

/* An attempt failed (or the connection was lost while settling): retry
 * after the back-off, or stop for good with no_reconnect. */
static void fail(VdpPort *p, Step step, int errnum, const char *what)
{
    if (p->no_reconnect) {
        close_listener(p);
        p->state = VDP_PORT_STATE_STOPPED;
        report(p, VDP_PORT_STATE_STOPPED, step, errnum, "%s; not reconnecting", what);
        return;
    }
    unsigned delay = next_delay(p);
    g_debug("%s; retrying in %u ms", what, delay);
    schedule_retry(p, delay);
    p->state = VDP_PORT_STATE_WAITING;
    report(p, VDP_PORT_STATE_WAITING, step, errnum,
           "%s; retrying in %u ms, backing off up to %u ms between attempts", what, delay,
           p->backoff_max);
}

/* The current connection ended (peer, I/O error, corrupt input). */
static void conn_lost(VdpPort *p, Step step, int errnum, const char *what)
{
    Conn *c = p->conn;
    bool was_open = c->open, got_data = c->got_data;
    unsigned epoch = ++p->epoch;

    conn_detach(p);
    drop_output(p);
    /* Streams in progress end here (stream_abort); the next connection
     * starts with a clean reassembler. */
    vdp_reasm_reset(p->reasm);
    if (p->dying || p->epoch != epoch)
        return;     /* a stream_abort callback stopped, restarted or freed the port */

    if (!was_open) {
        /* The open race: never reported OPEN, so nothing to take back. */
        char why[VDP_PORT_WHY_MAX];
        g_snprintf(why, sizeof(why), "%s: %s right after opening, the other side is not ready yet",
                   p->path, what);
        fail(p, STEP_NOT_READY, 0, why);
        return;
    }
    if (got_data)
        p->backoff = p->backoff_min;
    if (p->no_reconnect) {
        close_listener(p);
        p->state = VDP_PORT_STATE_STOPPED;
        report(p, VDP_PORT_STATE_STOPPED, step, errnum, "%s: %s; not reconnecting", p->path, what);
        return;
    }
    p->state = VDP_PORT_STATE_WAITING;
    if (p->mode == VDP_PORT_LISTEN && got_data) {
        accept_watch_on(p);
        report(p, VDP_PORT_STATE_WAITING, step, errnum,
               "%s: %s; waiting for the next connection", p->path, what);
        return;
    }
    /* CONNECT mode, or a guest that left without sending anything: wait
     * before the next attempt (LISTEN: before accepting again). */
    if (p->mode == VDP_PORT_LISTEN)
        accept_watch_off(p);
    unsigned delay = next_delay(p);
    schedule_retry(p, delay);
    report(p, VDP_PORT_STATE_WAITING, step, errnum, "%s: %s; %s in %u ms", p->path, what,
           p->mode == VDP_PORT_LISTEN ? "accepting again" : "reconnecting", delay);
}

/* ---- connections ---- */

static void conn_free(gpointer data)
{
    Conn *c = data;
    vdp_stream_free(c->stream);
    g_free(c);
}

static gboolean conn_free_idle(gpointer data)
{
    return G_SOURCE_REMOVE;   /* the destroy notify (conn_free) does the work */
}

static void add_stream_stats(VdpStreamStats *sum, const VdpStreamStats *s)
{
    sum->bytes_in += s->bytes_in;
    sum->bytes_out += s->bytes_out;
    sum->reads += s->reads;
    sum->writes += s->writes;
    sum->blocked_count += s->blocked_count;
    if (s->queue_peak > sum->queue_peak)
        sum->queue_peak = s->queue_peak;
}

/* Detach the current connection from the port and free it, now or (when
 * one of its stream callbacks is running) from an idle source. The idle
 * source's destroy notify frees it, so it is also released when the
 * context goes away without running it. */
static void conn_detach(VdpPort *p)
{
    Conn *c = p->conn;
    if (!c)
        return;
    destroy_source(&p->settle_src);
    VdpStreamStats st;
    vdp_stream_get_stats(c->stream, &st);
    add_stream_stats(&p->past, &st);
    p->conn = NULL;
    p->blocked_pending = false;
    c->port = NULL;
    if (c->cb_depth == 0) {
        conn_free(c);
        return;
    }
    vdp_stream_pause_read(c->stream, true);
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, conn_free_idle, c, conn_free);
    g_source_attach(src, p->ctx);
    g_source_unref(src);
}

static void conn_data(void *user, const uint8_t *data, size_t len, int *fds, unsigned nfds)
{
    Conn *c = user;
    for (unsigned i = 0; i < nfds; i++)   /* a port never takes descriptors */
        close(fds[i]);
    VdpPort *p = c->port;
    if (!p || len == 0)
        return;
    c->cb_depth++;
    enter(p);
    if (!c->got_data) {
        /* Traffic flows: the back-off starts over next time. */
        c->got_data = true;
        p->backoff = p->backoff_min;
        if (!c->open) {
            conn_settled(p, c);
            if (p->dying || p->conn != c)
                goto out;
        }
    }
    VdpError err = {0};
    p->feeding = c;
    VdpResult r = vdp_reasm_feed(p->reasm, data, len, &err);
    p->feeding = NULL;
    if (r != VDP_OK && !p->dying && p->conn == c) {
        char what[VDP_PORT_WHY_MAX];
        g_snprintf(what, sizeof(what), "the chunk stream from the peer is corrupt (%s)",
                   err.text[0] ? err.text : vdp_result_name(r));
        conn_lost(p, STEP_FRAMING, 0, what);
    }
out:
    leave(p);
    c->cb_depth--;
}

static void conn_closed(void *user, VdpStreamCloseReason reason, int errnum)
{
    Conn *c = user;
    VdpPort *p = c->port;
    if (!p)
        return;
    c->cb_depth++;
    enter(p);
    char what[VDP_PORT_WHY_MAX];
    if (c->write_failed) {
        g_snprintf(what, sizeof(what), "the write queue refused part of a message");
        conn_lost(p, STEP_WRITE, 0, what);
    } else if (reason == VDP_STREAM_ERROR) {
        g_snprintf(what, sizeof(what), "I/O error: %s", g_strerror(errnum));
        conn_lost(p, STEP_IO, errnum, what);
    } else {
        g_snprintf(what, sizeof(what), "%s", c->got_data ? "the peer closed the connection"
                   : c->open ? "the peer closed the connection without sending anything"
                   : "end of file");
        conn_lost(p, STEP_CLOSED, 0, what);
    }
    leave(p);
    c->cb_depth--;
}

/* Deliver a write_blocked held back while a message was being framed.
 * Call between enter() and leave(). */
static void deliver_blocked(VdpPort *p)
{
    if (!p->blocked_pending || p->emitting)
        return;
    p->blocked_pending = false;
    if (p->cb.write_blocked && !p->dying)
        p->cb.write_blocked(p->user);
}

static void conn_write_blocked(void *user)
{
    Conn *c = user;
    VdpPort *p = c->port;
    if (!p)
        return;
    if (p->emitting) {
        p->blocked_pending = true;
        return;
    }
    c->cb_depth++;
    enter(p);
    if (p->cb.write_blocked && !p->dying)
        p->cb.write_blocked(p->user);
    leave(p);
    c->cb_depth--;
}

static void flush_all_pending(VdpPort *p)
{
    for (uint32_t port = VDP_CLIENT_PORT; port <= VDP_SERVER_PORT; port++)
        flush_pending(p, port);
}

static void conn_write_ready(void *user)
{
    Conn *c = user;
    VdpPort *p = c->port;
    if (!p)
        return;
    c->cb_depth++;
    enter(p);
    flush_all_pending(p);
    if (p->blocked_pending) {
        /* The messages that waited behind a stream filled the queue
         * again: the producer stays paused, no news for it. */
        p->blocked_pending = false;
    } else if (p->cb.write_ready && !p->dying && p->conn == c) {
        p->cb.write_ready(p->user);
    }
    leave(p);
    c->cb_depth--;
}

static void conn_drained(void *user)
{
    Conn *c = user;
    VdpPort *p = c->port;
    if (!p)
        return;
    c->cb_depth++;
    enter(p);
    flush_all_pending(p);
    deliver_blocked(p);
    leave(p);
    c->cb_depth--;
}

static const VdpStreamCallbacks conn_callbacks = {
    .data = conn_data,
    .write_blocked = conn_write_blocked,
    .write_ready = conn_write_ready,
    .drained = conn_drained,
    .closed = conn_closed,
};

/* The connection is there for real: report OPEN. */
static void conn_settled(VdpPort *p, Conn *c)
{
    destroy_source(&p->settle_src);
    c->open = true;
    p->opens++;
    p->state = VDP_PORT_STATE_OPEN;
    if (p->mode == VDP_PORT_LISTEN)
        report(p, VDP_PORT_STATE_OPEN, STEP_NONE, 0, "a peer connected to %s", p->path);
    else
        report(p, VDP_PORT_STATE_OPEN, STEP_NONE, 0, "%s %s", vdp_path_is_socket(p->path) ?
               "connected to" : "opened", p->path);
}

static gboolean settle_cb(gpointer data)
{
    VdpPort *p = data;
    destroy_source(&p->settle_src);
    enter(p);
    if (p->conn && !p->conn->open)
        conn_settled(p, p->conn);
    leave(p);
    return G_SOURCE_REMOVE;
}

/* Wrap a freshly opened fd (owned). LISTEN: OPEN at once; CONNECT: settle
 * first (the open race). */
static void conn_start(VdpPort *p, int fd)
{
    VdpStreamConfig sc = {
        .high_watermark = p->high,
        .low_watermark = p->low,
        .queue_limit = p->limit,
        .pass_fds = false,
        .hup_is_eof = true,
    };
    Conn *c = g_new0(Conn, 1);
    c->port = p;
    c->stream = vdp_stream_new(p->ctx, fd, &sc, &conn_callbacks, c);
    if (!c->stream) {
        int e = errno;
        g_free(c);
        char what[VDP_PORT_WHY_MAX];
        g_snprintf(what, sizeof(what), "cannot set up the connection on %s: %s", p->path,
                   g_strerror(e));
        if (p->mode == VDP_PORT_LISTEN) {
            /* keep listening; the peer just sees its connection close */
            g_debug("%s", what);
            return;
        }
        fail(p, STEP_STREAM, e, what);
        return;
    }
    if (p->pause_count > 0)
        vdp_stream_pause_read(c->stream, true);
    drop_output(p);
    p->conn = c;
    if (p->mode == VDP_PORT_LISTEN) {
        conn_settled(p, c);
        return;
    }
    p->settle_src = g_timeout_source_new(VDP_PORT_SETTLE_MS);
    g_source_set_callback(p->settle_src, settle_cb, p, NULL);
    g_source_attach(p->settle_src, p->ctx);
}

/* ---- opening ---- */

static void try_listen(VdpPort *p)
{
    int fd = vdp_unix_listen(p->path, VDP_PORT_LISTEN_MODE, VDP_PORT_LISTEN_BACKLOG);
    if (fd < 0) {
        int e = errno;
        char what[VDP_PORT_WHY_MAX];
        g_snprintf(what, sizeof(what), "cannot listen on %s: %s", p->path, g_strerror(e));
        fail(p, STEP_LISTEN, e, what);
        return;
    }
    p->listen_fd = fd;
    struct stat st;
    if (stat(p->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        p->listen_id_known = true;
        p->listen_dev = st.st_dev;
        p->listen_ino = st.st_ino;
    }
    accept_watch_on(p);
    p->state = VDP_PORT_STATE_WAITING;
    report(p, VDP_PORT_STATE_WAITING, STEP_LISTENING, 0, "listening on %s, waiting for a peer",
           p->path);
}

static void try_connect(VdpPort *p)
{
    int fd;
    char what[VDP_PORT_WHY_MAX];

    if (vdp_path_is_socket(p->path)) {
        fd = vdp_unix_connect(p->path);
        if (fd < 0) {
            int e = errno;
            g_snprintf(what, sizeof(what), "cannot connect to %s: %s", p->path, g_strerror(e));
            fail(p, STEP_CONNECT, e, what);
            return;
        }
    } else {
        fd = open(p->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            int e = errno;
            g_snprintf(what, sizeof(what), "cannot open %s: %s", p->path, g_strerror(e));
            fail(p, STEP_OPEN, e, what);
            return;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
            close(fd);
            g_snprintf(what, sizeof(what), "%s is neither a character device nor a UNIX socket",
                       p->path);
            fail(p, STEP_NOT_DEVICE, 0, what);
            return;
        }
    }
    conn_start(p, fd);
}

/* One attempt of the state machine (from the retry timer). */
static void attempt(VdpPort *p)
{
    if (p->mode == VDP_PORT_LISTEN && p->listen_fd >= 0) {
        /* Only the accept watch was paused (back-off after an early
         * hang-up or an accept error). */
        accept_watch_on(p);
        return;
    }
    if (p->attempts++ > 0)
        p->reconnects++;
    if (p->mode == VDP_PORT_LISTEN)
        try_listen(p);
    else
        try_connect(p);
}

static gboolean accept_cb(gint fd, GIOCondition cond, gpointer data)
{
    VdpPort *p = data;
    enter(p);
    for (unsigned i = 0; i < VDP_PORT_ACCEPT_BATCH; i++) {
        if (p->dying || p->listen_fd < 0 || !p->accept_src)
            break;
        int cfd = vdp_unix_accept(p->listen_fd);
        if (cfd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            /* Out of descriptors or memory, or worse: the socket stays
             * readable, so stop watching it for a while instead of
             * spinning on it. */
            accept_watch_off(p);
            unsigned delay = next_delay(p);
            schedule_retry(p, delay);
            g_debug("cannot accept a connection on %s: %s; trying again in %u ms",
                    p->path, g_strerror(e), delay);
            if (!p->conn)
                report(p, VDP_PORT_STATE_WAITING, STEP_ACCEPT, e,
                       "cannot accept a connection on %s: %s; trying again in %u ms",
                       p->path, g_strerror(e), delay);
            break;
        }
        if (p->conn) {
            /* One peer at a time: a second one is closed at once. */
            close(cfd);
            p->refused++;
            g_debug("refused a second connection on %s (one peer at a time)", p->path);
            continue;
        }
        conn_start(p, cfd);
    }
    leave(p);
    return G_SOURCE_CONTINUE;
}

/* ---- lifecycle ---- */

static bool valid_config(const VdpPortConfig *cfg)
{
    if (!cfg->path || !cfg->path[0] || strlen(cfg->path) >= PATH_MAX)
        return false;
    if (cfg->mode != VDP_PORT_CONNECT && cfg->mode != VDP_PORT_LISTEN)
        return false;
    if (cfg->mode == VDP_PORT_LISTEN &&
        strlen(cfg->path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return false;
    if (cfg->dir != VDP_FROM_HOST && cfg->dir != VDP_FROM_GUEST)
        return false;
    /* The 20-byte message header must fit in a message's first chunk:
     * spice-server's agent filter needs it whole in the first piece. */
    if (cfg->chunk_size && (cfg->chunk_size < VDP_MSG_HEADER_SIZE || cfg->chunk_size > UINT32_MAX))
        return false;
    if (cfg->reconnect_min_ms > VDP_PORT_RECONNECT_MS_LIMIT ||
        cfg->reconnect_max_ms > VDP_PORT_RECONNECT_MS_LIMIT)
        return false;
    return true;
}

VdpPort *vdp_port_new(GMainContext *ctx, const VdpPortConfig *cfg,
                      const VdpPortCallbacks *cb, void *user)
{
    if (!cfg || !cb || !cb->message || !valid_config(cfg))
        return NULL;
    /* Streamed input needs all three stream callbacks, or none. */
    bool streaming = cb->stream_begin || cb->stream_data || cb->stream_end;
    if (streaming && !(cb->stream_begin && cb->stream_data && cb->stream_end))
        return NULL;

    size_t high = cfg->high_watermark ? cfg->high_watermark : VDP_STREAM_HIGH_WATERMARK_DEFAULT;
    size_t low = cfg->low_watermark ? cfg->low_watermark : high / 4;
    size_t limit = cfg->queue_limit ? cfg->queue_limit : 2 * high;
    if (low > high || high > limit || limit < VDP_PORT_QUEUE_LIMIT_MIN)
        return NULL;

    unsigned bmin = cfg->reconnect_min_ms ? cfg->reconnect_min_ms
                                          : VDP_PORT_RECONNECT_MIN_MS_DEFAULT;
    unsigned bmax = cfg->reconnect_max_ms ? cfg->reconnect_max_ms
                                          : VDP_PORT_RECONNECT_MAX_MS_DEFAULT;
    if (!cfg->reconnect_max_ms && bmax < bmin)
        bmax = bmin;
    if (bmin > bmax)
        return NULL;

    VdpPort *p = g_new0(VdpPort, 1);
    p->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    p->path = g_strdup(cfg->path);
    p->mode = cfg->mode;
    p->chunk_size = cfg->chunk_size ? cfg->chunk_size : VDP_CHUNK_SIZE_DEFAULT;
    p->high = high;
    p->low = low;
    p->limit = limit;
    p->no_reconnect = cfg->no_reconnect;
    p->backoff_min = p->backoff = bmin;
    p->backoff_max = bmax;
    p->max_payload = cfg->max_payload;
    p->cb = *cb;
    p->user = user;
    p->listen_fd = -1;
    p->state = p->reported = VDP_PORT_STATE_STOPPED;
    for (unsigned i = 0; i < VDP_PORT_NPORTS; i++)
        g_queue_init(&p->out[i].pending);
    p->wbuf = g_malloc(VDP_PORT_WRITE_BATCH);

    VdpReasmConfig rc = {
        .dir = cfg->dir,
        .max_chunk = cfg->max_chunk_in,
        .stream_threshold = cfg->stream_threshold,
        .max_payload = fwd_max_payload,
        .layout = cfg->layout,
    };
    VdpReasmCallbacks rcb = {
        .message = fwd_message,
        .stream_begin = streaming ? fwd_stream_begin : NULL,
        .stream_data = streaming ? fwd_stream_data : NULL,
        .stream_end = streaming ? fwd_stream_end : NULL,
        .stream_abort = fwd_stream_abort,
        .problem = fwd_problem,
    };
    p->reasm = vdp_reasm_new(&rc, &rcb, p);
    if (!p->reasm) {
        port_finalize(p);
        return NULL;
    }
    return p;
}

/* Close everything; no callbacks. */
static void teardown(VdpPort *p)
{
    p->epoch++;
    destroy_source(&p->retry_src);
    close_listener(p);
    conn_detach(p);
    drop_output(p);
    for (unsigned i = 0; i < VDP_PORT_NPORTS; i++)
        p->out[i].dropped = false;
    reasm_reset_quietly(p);
    p->state = p->reported = VDP_PORT_STATE_STOPPED;
    p->reported_step = STEP_NONE;
    p->reported_errno = 0;
    p->backoff = p->backoff_min;
}

static void port_finalize(VdpPort *p)
{
    teardown(p);
    vdp_reasm_free(p->reasm);
    g_free(p->wbuf);
    g_free(p->path);
    g_main_context_unref(p->ctx);
    g_free(p);
}

/* Safe from inside any callback of this port: the port then detaches
 * everything at once and releases its memory when the callback returns. */
void vdp_port_free(VdpPort *p)
{
    if (!p || p->dying)
        return;
    if (p->depth > 0) {
        teardown(p);
        p->dying = true;
        return;
    }
    port_finalize(p);
}

void vdp_port_start(VdpPort *p)
{
    if (!p || p->dying || p->state != VDP_PORT_STATE_STOPPED)
        return;
    p->epoch++;
    p->state = VDP_PORT_STATE_WAITING;
    p->backoff = p->backoff_min;
    schedule_retry(p, 0);   /* asynchronous: no callback from inside this call */
}

/* Safe from inside any callback of this port (no callbacks of its own;
 * input still undelivered from the current read is dropped). */
void vdp_port_stop(VdpPort *p)
{
    if (!p || p->dying)
        return;
    teardown(p);
}

VdpPortState vdp_port_get_state(const VdpPort *p)
{
    return p ? p->state : VDP_PORT_STATE_STOPPED;
}

const char *vdp_port_state_name(VdpPortState s)
{
    switch (s) {
    case VDP_PORT_STATE_STOPPED:
        return "stopped";
    case VDP_PORT_STATE_WAITING:
        return "waiting";
    case VDP_PORT_STATE_OPEN:
        return "open";
    }
    return "unknown";
}

/* ---- writing ---- */

/* Bytes the queue can still take under queue_limit (pending included). */
static size_t queue_room(const VdpPort *p)
{
    size_t used = p->pending_bytes + (p->conn ? vdp_stream_queued(p->conn->stream) : 0);
    return used >= p->limit ? 0 : p->limit - used;
}

/* Queue bytes of message stream in chunk-sized pieces. */
typedef struct Emit {
    VdpPort *p;
    VdpStream *s;
    size_t used;            /* bytes in p->wbuf */
    bool wrote;             /* something of this message is queued */
    VdpResult res;
} Emit;

static void emit_write(Emit *e, const uint8_t *d, size_t n)
{
    e->res = vdp_stream_write(e->s, d, n, NULL, 0);
    if (e->res == VDP_OK)
        e->wrote = true;
}

static void emit_flush(Emit *e)
{
    if (e->used && e->res == VDP_OK)
        emit_write(e, e->p->wbuf, e->used);
    e->used = 0;
}

static void emit_put(Emit *e, const uint8_t *d, size_t n)
{
    if (n == 0 || e->res != VDP_OK)
        return;
    if (n >= VDP_PORT_DIRECT_WRITE_MIN) {
        emit_flush(e);
        if (e->res == VDP_OK)
            emit_write(e, d, n);
        return;
    }
    if (e->used + n > VDP_PORT_WRITE_BATCH)
        emit_flush(e);
    memcpy(e->p->wbuf + e->used, d, n);
    e->used += n;
}

/* Frame a (alen bytes) followed by b (blen bytes) of one chunk port's
 * message stream into chunks of at most chunk_size. The caller checked
 * that the framed size fits; if the stream still refuses part of it, the
 * framing on the wire would be broken, so the connection is ended. */
static VdpResult emit_chunks(VdpPort *p, uint32_t chunk_port, const uint8_t *a, size_t alen,
                             const uint8_t *b, size_t blen)
{
    Conn *c = p->conn;
    Emit e = {.p = p, .s = c->stream, .used = 0, .wrote = false, .res = VDP_OK};

    /* The stream calls write_blocked from inside vdp_stream_write(); it is
     * held back (conn_write_blocked) until the message is whole, so a
     * producer reacting to it never lands in the middle of a chunk. */
    p->emitting++;

    while (alen + blen > 0 && e.res == VDP_OK) {
        size_t n = alen + blen < p->chunk_size ? alen + blen : p->chunk_size;
        uint8_t ch[VDP_CHUNK_HEADER_SIZE];
        vdp_chunk_header_encode(chunk_port, (uint32_t)n, ch);
        emit_put(&e, ch, sizeof(ch));
        size_t k = n < alen ? n : alen;
        emit_put(&e, a, k);
        a += k;
        alen -= k;
        n -= k;
        emit_put(&e, b, n);
        b += n;
        blen -= n;
    }
    emit_flush(&e);
    p->emitting--;
    if (e.res != VDP_OK && e.wrote && p->conn == c && !c->write_failed) {
        /* Part of the message is queued: the chunk stream is unusable. */
        c->write_failed = true;
        vdp_stream_shutdown(c->stream);
        return VDP_ERR_CLOSED;
    }
    return e.res;
}

static size_t framed_size(size_t msg_len, size_t chunk_size)
{
    return vdp_chunk_framed_size(msg_len, chunk_size);
}

/* Largest number of message bytes after `prefix` bytes already counted that
 * fit, framed, into room bytes (chunks cut from the start of prefix). */
static size_t fit_bytes(size_t room, size_t prefix, size_t chunk_size)
{
    size_t per = chunk_size + VDP_CHUNK_HEADER_SIZE;
    size_t full = room / per, rest = room % per;
    size_t m = full * chunk_size;
    if (rest > VDP_CHUNK_HEADER_SIZE)
        m += rest - VDP_CHUNK_HEADER_SIZE;
    return m > prefix ? m - prefix : 0;
}

static void make_header(uint32_t type, size_t len, uint8_t out[VDP_MSG_HEADER_SIZE])
{
    VdpMsgHeader h = {.protocol = VD_AGENT_PROTOCOL, .type = type, .opaque = 0,
                      .size = (uint32_t)len};
    vdp_msg_header_encode(&h, out);
}

/* Can a whole message of `framed` bytes be queued now? A message whose
 * framing exceeds queue_limit never can: it must be streamed. */
static VdpResult admit(const VdpPort *p, size_t framed)
{
    if (framed > p->limit)
        return VDP_ERR_TOO_LARGE;
    return framed <= queue_room(p) ? VDP_OK : VDP_ERR_BUSY;
}

/* Send one message whose bytes are a (header, or all of it) + b. */
static VdpResult send_whole(VdpPort *p, uint32_t chunk_port, const uint8_t *a, size_t alen,
                            const uint8_t *b, size_t blen)
{
    size_t len;
    if (!vdp_add_size(alen, blen, &len))
        return VDP_ERR_TOO_LARGE;
    size_t framed = framed_size(len, p->chunk_size);
    if (framed == 0)
        return VDP_ERR_TOO_LARGE;
    VdpResult r = admit(p, framed);
    if (r != VDP_OK)
        return r;

    OutPort *o = out_port(p, chunk_port);
    if (o->active || !g_queue_is_empty(&o->pending)) {
        /* Behind the streamed message in progress on this chunk port. */
        if (framed > queue_room(p) ||
            p->pending_bytes + framed > p->limit / VDP_PORT_PENDING_SHARE_DIVISOR)
            return VDP_ERR_BUSY;
        Pending *pm = g_new(Pending, 1);
        pm->msg = g_malloc(len);
        memcpy(pm->msg, a, alen);
        if (blen)
            memcpy(pm->msg + alen, b, blen);
        pm->len = len;
        pm->framed = framed;
        g_queue_push_tail(&o->pending, pm);
        p->pending_bytes += framed;
        return VDP_OK;
    }
    if (!vdp_stream_can_write(p->conn->stream, framed))
        return VDP_ERR_BUSY;
    return emit_chunks(p, chunk_port, a, alen, b, blen);
}

/* Move messages waiting behind a finished stream into the queue. */
static void flush_pending(VdpPort *p, uint32_t chunk_port)
{
    OutPort *o = out_port(p, chunk_port);
    while (!o->active && p->conn && !p->conn->write_failed) {
        Pending *pm = g_queue_peek_head(&o->pending);
        if (!pm || !vdp_stream_can_write(p->conn->stream, pm->framed))
            return;
        g_queue_pop_head(&o->pending);
        p->pending_bytes -= pm->framed;
        VdpResult r = emit_chunks(p, chunk_port, pm->msg, pm->len, NULL, 0);
        pending_free(pm);
        if (r != VDP_OK)
            return;
    }
}

/* End of a public call that may have queued bytes: deliver a held-back
 * write_blocked. Returns r, or VDP_ERR_CLOSED if the callback freed the
 * port. */
static VdpResult finish_call(VdpPort *p, VdpResult r)
{
    deliver_blocked(p);
    if (!leave(p))
        return r == VDP_OK ? VDP_OK : VDP_ERR_CLOSED;
    return r;
}

VdpResult vdp_port_send(VdpPort *p, uint32_t chunk_port, uint32_t type,
                        const uint8_t *payload, size_t len)
{
    if (!p || !chunk_port_valid(chunk_port) || (len && !payload))
        return VDP_ERR_RANGE;
    if (len > UINT32_MAX)
        return VDP_ERR_TOO_LARGE;
    if (!is_open(p))
        return VDP_ERR_CLOSED;
    if (p->emitting)
        return VDP_ERR_BUSY;    /* from a write_blocked callback: pause */
    uint8_t hdr[VDP_MSG_HEADER_SIZE];
    make_header(type, len, hdr);
    enter(p);
    return finish_call(p, send_whole(p, chunk_port, hdr, sizeof(hdr), payload, len));
}

VdpResult vdp_port_send_msg(VdpPort *p, const VdpMsg *msg, const VdpLayout *layout, VdpError *err)
{
    if (!p || !msg)
        return vdp_error_set(err, VDP_ERR_RANGE, "no port or no message to send");
    const char *name = vdp_msg_type_name(msg->type);
    if (!name)
        return vdp_error_set(err, VDP_ERR_UNKNOWN_TYPE, "cannot send message of unknown type %u",
                             msg->type);
    if (!is_open(p))
        return vdp_error_set(err, VDP_ERR_CLOSED, "cannot send %s: %s is not connected", name,
                             p->path);
    if (p->emitting)
        return vdp_error_set(err, VDP_ERR_BUSY, "cannot send %s from inside write_blocked", name);
    uint8_t *buf = NULL;
    size_t len = 0;
    VdpResult r = vdp_msg_encode(msg, layout, &buf, &len, err);
    if (r != VDP_OK)
        return r;
    if (len < VDP_MSG_HEADER_SIZE) {
        free(buf);
        return vdp_error_set(err, VDP_ERR_TRUNCATED,
                             "%s encoded to %zu bytes, less than its header", name, len);
    }
    enter(p);
    r = send_whole(p, vdp_msg_port_for_type(msg->type), buf, len, NULL, 0);
    free(buf);
    size_t queued = vdp_port_queued(p);
    r = finish_call(p, r);
    if (r == VDP_ERR_BUSY)
        return vdp_error_set(err, r, "cannot send %s now: the write queue is full "
                             "(%zu bytes queued); retry after write_ready", name, queued);
    if (r == VDP_ERR_TOO_LARGE)
        return vdp_error_set(err, r, "cannot send %s of %zu bytes whole: above the port's "
                             "queue limit; stream it with vdp_port_send_begin()", name, len);
    if (r != VDP_OK)
        return vdp_error_set(err, r, "cannot send %s of %zu bytes: %s", name, len,
                             vdp_result_name(r));
    if (err)
        err->code = VDP_OK;
    return VDP_OK;
}

VdpResult vdp_port_send_begin(VdpPort *p, uint32_t chunk_port, uint32_t type, size_t total)
{
    if (!p || !chunk_port_valid(chunk_port))
        return VDP_ERR_RANGE;
    if (total > UINT32_MAX)
        return VDP_ERR_TOO_LARGE;
    if (!is_open(p))
        return VDP_ERR_CLOSED;
    OutPort *o = out_port(p, chunk_port);
    /* One message at a time per chunk port: a new stream waits until the
     * previous one and the messages behind it are out. */
    if (o->active || !g_queue_is_empty(&o->pending) || p->emitting)
        return VDP_ERR_BUSY;
    uint8_t hdr[VDP_MSG_HEADER_SIZE];
    make_header(type, total, hdr);
    o->dropped = false;
    if (total == 0) {
        enter(p);
        return finish_call(p, send_whole(p, chunk_port, hdr, sizeof(hdr), NULL, 0));
    }
    /* The header goes out with the first data, in the same chunk. */
    memcpy(o->hdr, hdr, sizeof(hdr));
    o->active = true;
    o->hdr_sent = false;
    o->total = total;
    o->sent = 0;
    return VDP_OK;
}

VdpResult vdp_port_send_data(VdpPort *p, uint32_t chunk_port, const uint8_t *data,
                             size_t len, size_t *accepted)
{
    if (accepted)
        *accepted = 0;
    if (!p || !chunk_port_valid(chunk_port) || !accepted || (len && !data))
        return VDP_ERR_RANGE;
    OutPort *o = out_port(p, chunk_port);
    if (!is_open(p) || (!o->active && o->dropped))
        return VDP_ERR_CLOSED;
    if (!o->active)
        return VDP_ERR_RANGE;           /* no send_begin */
    if (len > o->total - o->sent)
        return VDP_ERR_TOO_LARGE;       /* more than announced */
    if (len == 0)
        return VDP_OK;
    if (p->emitting)
        return VDP_ERR_BUSY;    /* from a write_blocked callback: pause */

    size_t prefix = o->hdr_sent ? 0 : VDP_MSG_HEADER_SIZE;
    size_t n = fit_bytes(queue_room(p), prefix, p->chunk_size);
    if (n > len)
        n = len;
    /* The stream is the authority on what it takes. */
    while (n > 0 && !vdp_stream_can_write(p->conn->stream, framed_size(prefix + n, p->chunk_size)))
        n /= 2;
    if (n == 0)
        return VDP_ERR_BUSY;
    enter(p);
    VdpResult r = emit_chunks(p, chunk_port, o->hdr, prefix, data, n);
    if (r == VDP_OK) {
        o->hdr_sent = true;
        o->sent += n;
        *accepted = n;
        if (o->sent == o->total) {
            o->active = false;
            flush_pending(p, chunk_port);
        }
    }
    return finish_call(p, r);
}

size_t vdp_port_send_remaining(const VdpPort *p, uint32_t chunk_port)
{
    if (!p || !chunk_port_valid(chunk_port))
        return 0;
    const OutPort *o = &p->out[chunk_port - VDP_CLIENT_PORT];
    return o->active ? o->total - o->sent : 0;
}

/* ---- reading control ---- */

void vdp_port_pause_read(VdpPort *p, bool pause)
{
    if (!p || p->dying)
        return;
    /* Counted here; the stream is paused once while the count is > 0. */
    if (pause) {
        if (p->pause_count == UINT_MAX)
            return;
        if (p->pause_count++ == 0 && p->conn)
            vdp_stream_pause_read(p->conn->stream, true);
    } else {
        if (p->pause_count == 0)
            return;     /* unbalanced resume: ignored */
        if (--p->pause_count == 0 && p->conn)
            vdp_stream_pause_read(p->conn->stream, false);
    }
}

void vdp_port_reset_reassembly(VdpPort *p, uint32_t chunk_port)
{
    if (!p || p->dying || !chunk_port_valid(chunk_port))
        return;
    enter(p);
    vdp_reasm_reset_port(p->reasm, chunk_port);
    leave(p);
}

/* ---- queue state and teardown ---- */

size_t vdp_port_queued(const VdpPort *p)
{
    if (!p)
        return 0;
    return p->pending_bytes + (p->conn ? vdp_stream_queued(p->conn->stream) : 0);
}

bool vdp_port_write_blocked(const VdpPort *p)
{
    return p && p->conn && vdp_stream_write_blocked(p->conn->stream);
}

VdpResult vdp_port_flush_sync(VdpPort *p, int timeout_ms)
{
    if (!p || p->dying || !p->conn)
        return VDP_ERR_CLOSED;
    enter(p);
    flush_all_pending(p);
    VdpResult r = p->conn ? vdp_stream_flush_sync(p->conn->stream, timeout_ms) : VDP_ERR_CLOSED;
    if (r == VDP_OK && p->pending_bytes)
        r = VDP_ERR_BUSY;   /* messages behind an unfinished stream */
    return finish_call(p, r);
}

void vdp_port_get_stats(const VdpPort *p, VdpPortStats *st)
{
    if (!st)
        return;
    memset(st, 0, sizeof(*st));
    if (!p)
        return;
    st->stream = p->past;
    if (p->conn) {
        VdpStreamStats cur;
        vdp_stream_get_stats(p->conn->stream, &cur);
        add_stream_stats(&st->stream, &cur);
    }
    vdp_reasm_get_stats(p->reasm, &st->reasm);
    st->opens = p->opens;
    st->reconnects = p->reconnects;
    st->refused_peers = p->refused;
}
