/* vdp-stream.c - a non-blocking byte stream on a file descriptor, driven by
 * a GMainContext (see vdp-stream.h).
 *
 * Design:
 *  - One custom GSource per stream, watching the fd with
 *    g_source_add_unix_fd(). Deferred work (the closed() report after a
 *    failure outside the loop or vdp_stream_shutdown(), write_ready/drained
 *    after vdp_stream_flush_sync(), the retry after a hang-up that is not
 *    EOF) is scheduled with g_source_set_ready_time(0), which makes the
 *    source run like an idle source on the next loop iteration.
 *  - The write queue is one contiguous ring buffer that doubles when
 *    needed (amortised linear copying) and is released when it empties;
 *    memory is at most twice the bytes queued. Descriptors to send are kept
 *    as marks at absolute stream offsets: a sendmsg() starts exactly at a
 *    mark to carry its fds and never extends past the next mark.
 *  - Callbacks may free the stream. Every place that calls one holds a
 *    depth count; vdp_stream_free() inside a callback tears everything down
 *    at once but defers releasing the struct until the outermost frame
 *    returns, and those frames stop touching the stream.
 *  - POLLHUP/POLLERR: while reading is possible, readable data is read
 *    first and EOF is reported only when read() returns 0 (or, with
 *    hup_is_eof, when it has nothing more while POLLHUP stays set). Each
 *    dispatch reads before it writes, and a write failing with EPIPE or
 *    ECONNRESET (the peer went away) drops the queue but first drains what
 *    the peer sent before leaving: a last message (a REJECT, say) is
 *    delivered before closed(). While
 *    reading is paused the fd is taken out of the poll set (poll reports
 *    POLLHUP whatever the events) and put back on resume, so a hang-up
 *    never makes the loop spin.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vdp-stream.h"

/* Ring buffer: first allocation, and the capacity kept when it empties
 * (larger rings are released so an idle stream holds little memory). */
#define VDP_STREAM_RING_MIN (4u * 1024u)
#define VDP_STREAM_RING_KEEP (64u * 1024u)
/* Largest accepted read_size: one read buffer per stream. */
#define VDP_STREAM_READ_SIZE_MAX (16u * 1024u * 1024u)
/* Reads per dispatch, so one busy stream cannot starve the loop. */
#define VDP_STREAM_READS_PER_DISPATCH 4u
/* Without hup_is_eof, a POLLHUP with nothing to read is looked at again
 * after this long instead of spinning. */
#define VDP_STREAM_HUP_RETRY_MS 100

typedef struct FdMark {
    uint64_t pos;                    /* absolute offset of the byte they go with */
    unsigned nfds;
    int fds[VDP_STREAM_MAX_FDS];
} FdMark;

typedef struct StreamSource {
    GSource base;
    VdpStream *stream;
} StreamSource;

struct VdpStream {
    GMainContext *ctx;
    int fd;
    VdpStreamConfig cfg;             /* resolved: no zero defaults left */
    VdpStreamCallbacks cb;
    void *user;

    GSource *source;
    gpointer tag;                    /* g_source_add_unix_fd() tag, NULL while out of the poll set */
    GIOCondition events;

    bool is_socket, is_fifo;         /* sendmsg/recvmsg; SIGPIPE guard for pipes */
    bool can_read, can_write;        /* from the access mode (pipe ends) */

    /* Write queue. */
    uint8_t *ring;
    size_t ring_cap, ring_head, ring_len;
    uint64_t sent_pos;               /* absolute offset of ring_head */
    GQueue marks;                    /* FdMark*, ascending pos */
    unsigned queued_fds;

    uint8_t *rbuf;                   /* read_size bytes */

    unsigned paused;                 /* pause_read count */
    bool parked;                     /* fd out of the poll set after HUP/ERR */
    gint64 park_until;               /* 0, or monotonic time of the HUP retry */
    bool blocked;                    /* between high and low watermark */
    bool was_nonempty;               /* queue held data at the end of a write: report drained */
    bool notify_ready, notify_drained;

    int write_err;                   /* writing failed (EPIPE/ECONNRESET): draining input */
    bool dead;                       /* no more I/O; closed() reported or pending */
    bool pending_close;
    VdpStreamCloseReason pending_reason;
    int pending_errnum;
    bool reported;

    unsigned depth;                  /* callbacks in progress */
    bool freed;                      /* vdp_stream_free() called inside a callback */

    VdpStreamStats stats;
};

/* ---- helpers ---- */

static void close_fd_keep_errno(int fd)
{
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
}

static void close_fds(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close_fd_keep_errno(fds[i]);
}

static void enter(VdpStream *s)
{
    s->depth++;
}

/* Returns false when the stream was freed (the struct is gone once the
 * outermost frame leaves). */
static bool leave(VdpStream *s)
{
    s->depth--;
    if (s->freed) {
        if (s->depth == 0)
            g_free(s);
        return false;
    }
    return true;
}

static void wake(VdpStream *s)
{
    if (s->source)
        g_source_set_ready_time(s->source, 0);
}

/* ---- ring buffer ---- */

static bool ring_reserve(VdpStream *s, size_t extra)
{
    size_t need = s->ring_len + extra;     /* <= queue_limit: checked by the caller */
    if (need <= s->ring_cap)
        return true;

    size_t cap = s->ring_cap ? s->ring_cap : VDP_STREAM_RING_MIN;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    if (cap > s->cfg.queue_limit)
        cap = s->cfg.queue_limit;
    if (cap < need)
        cap = need;

    uint8_t *n = g_try_malloc(cap);
    if (!n)
        return false;
    if (s->ring_len) {
        size_t first = MIN(s->ring_len, s->ring_cap - s->ring_head);
        memcpy(n, s->ring + s->ring_head, first);
        memcpy(n + first, s->ring, s->ring_len - first);
    }
    g_free(s->ring);
    s->ring = n;
    s->ring_cap = cap;
    s->ring_head = 0;
    return true;
}

static void ring_push(VdpStream *s, const uint8_t *data, size_t len)
{
    size_t tail = s->ring_head + s->ring_len;
    if (tail >= s->ring_cap)
        tail -= s->ring_cap;
    size_t first = MIN(len, s->ring_cap - tail);
    memcpy(s->ring + tail, data, first);
    memcpy(s->ring, data + first, len - first);
    s->ring_len += len;
}

static int ring_iov(const VdpStream *s, struct iovec iov[2], size_t limit)
{
    size_t n = MIN(limit, s->ring_len);
    size_t first = MIN(n, s->ring_cap - s->ring_head);
    iov[0].iov_base = s->ring + s->ring_head;
    iov[0].iov_len = first;
    if (n > first) {
        iov[1].iov_base = s->ring;
        iov[1].iov_len = n - first;
        return 2;
    }
    return 1;
}

static void ring_consume(VdpStream *s, size_t n)
{
    s->ring_head += n;
    if (s->ring_head >= s->ring_cap)
        s->ring_head -= s->ring_cap;
    s->ring_len -= n;
    s->sent_pos += n;
    if (s->ring_len == 0) {
        s->ring_head = 0;
        if (s->ring_cap > VDP_STREAM_RING_KEEP) {
            g_free(s->ring);
            s->ring = NULL;
            s->ring_cap = 0;
        }
    }
}

static void drop_queue(VdpStream *s)
{
    FdMark *m;
    while ((m = g_queue_pop_head(&s->marks))) {
        close_fds(m->fds, m->nfds);
        g_free(m);
    }
    s->queued_fds = 0;
    g_free(s->ring);
    s->ring = NULL;
    s->ring_cap = s->ring_head = s->ring_len = 0;
}

/* ---- poll set ---- */

static void remove_fd(VdpStream *s)
{
    if (s->tag && s->source) {
        g_source_remove_unix_fd(s->source, s->tag);
        s->tag = NULL;
        s->events = 0;
    }
}

static void update_events(VdpStream *s)
{
    if (!s->source)
        return;
    if (s->dead || s->parked) {
        remove_fd(s);
        return;
    }
    GIOCondition want = 0;
    if (s->can_read && s->paused == 0)
        want |= G_IO_IN;
    if (s->write_err)
        want &= ~G_IO_OUT;
    if (s->ring_len > 0)
        want |= G_IO_OUT;
    if (!s->tag) {
        s->tag = g_source_add_unix_fd(s->source, s->fd, want);
        s->events = want;
    } else if (want != s->events) {
        g_source_modify_unix_fd(s->source, s->tag, want);
        s->events = want;
    }
}

static void park(VdpStream *s, gint64 until)
{
    s->parked = true;
    s->park_until = until;
    remove_fd(s);
}

/* Mark the stream dead: no more I/O, queue dropped. */
static void make_dead(VdpStream *s)
{
    s->dead = true;
    s->blocked = false;
    s->notify_ready = s->notify_drained = false;
    drop_queue(s);
    remove_fd(s);
}

/* Fail from outside the loop's dispatch (vdp_stream_write, flush_sync,
 * shutdown): closed() follows from the source. */
static void fail_later(VdpStream *s, VdpStreamCloseReason reason, int errnum)
{
    if (s->dead)
        return;
    make_dead(s);
    s->pending_close = true;
    s->pending_reason = reason;
    s->pending_errnum = errnum;
    wake(s);
}

/* Report closed() now (from the dispatch). The caller holds a depth count
 * and must check s->freed afterwards. */
static void close_now(VdpStream *s, VdpStreamCloseReason reason, int errnum)
{
    if (s->reported)
        return;
    make_dead(s);
    s->reported = true;
    s->pending_close = false;
    s->cb.closed(s->user, reason, errnum);
}

/* A write failed with errnum. When the peer went away (EPIPE,
 * ECONNRESET) and we can read, what it sent before is drained first: the
 * queue is dropped, writes are refused and closed() comes once reading
 * has nothing more. Otherwise the stream fails now (from the dispatch) or
 * from the source (elsewhere). */
static void write_broke(VdpStream *s, int errnum, bool in_dispatch)
{
    if (s->can_read && (errnum == EPIPE || errnum == ECONNRESET)) {
        s->write_err = errnum;
        drop_queue(s);
        s->blocked = false;
        s->was_nonempty = false;
        s->notify_ready = s->notify_drained = false;
        update_events(s);
        wake(s);
    } else if (in_dispatch) {
        close_now(s, VDP_STREAM_ERROR, errnum);
    } else {
        fail_later(s, VDP_STREAM_ERROR, errnum);
    }
}

/* ---- writing ---- */

/* write() to a pipe whose reader is gone raises SIGPIPE; block it around
 * the call and consume it if this write raised it. */
static ssize_t writev_nosigpipe(int fd, const struct iovec *iov, int n)
{
    sigset_t block, old, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);

    ssize_t r = writev(fd, iov, n);
    int e = errno;
    if (r < 0 && e == EPIPE && !was_pending) {
        static const struct timespec zero = {0, 0};
        while (sigtimedwait(&block, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

/* Write as much of the queue as the fd takes. Returns 0 (queue empty or
 * the fd would block) or an errno value. No callbacks. */
static int flush_some(VdpStream *s)
{
    while (s->ring_len > 0) {
        FdMark *m = g_queue_peek_head(&s->marks);
        bool attach = false;
        size_t limit = s->ring_len;
        if (m && m->pos == s->sent_pos) {
            attach = true;
            FdMark *next = g_queue_peek_nth(&s->marks, 1);
            if (next)
                limit = (size_t)(next->pos - s->sent_pos);
        } else if (m) {
            limit = (size_t)(m->pos - s->sent_pos);
        }

        struct iovec iov[2];
        int niov = ring_iov(s, iov, limit);
        ssize_t n;
        if (s->is_socket) {
            union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VDP_STREAM_MAX_FDS)];
            } ctl;
            struct msghdr msg;
            memset(&msg, 0, sizeof(msg));
            msg.msg_iov = iov;
            msg.msg_iovlen = (size_t)niov;
            if (attach) {
                memset(&ctl, 0, sizeof(ctl));
                msg.msg_control = ctl.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
                memcpy(CMSG_DATA(c), m->fds, sizeof(int) * m->nfds);
            }
            n = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else if (s->is_fifo) {
            n = writev_nosigpipe(s->fd, iov, niov);
        } else {
            n = writev(s->fd, iov, niov);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return errno;
        }
        if (n == 0)
            return 0;   /* no progress; wait for POLLOUT */
        if (attach) {
            g_queue_pop_head(&s->marks);
            s->queued_fds -= m->nfds;
            close_fds(m->fds, m->nfds);
            g_free(m);
        }
        s->stats.writes++;
        s->stats.bytes_out += (uint64_t)n;
        ring_consume(s, (size_t)n);
    }
    return 0;
}

/* After the queue shrank: decide which notifications are due. */
static void check_levels(VdpStream *s, bool deferred)
{
    if (s->blocked && s->ring_len <= s->cfg.low_watermark) {
        s->blocked = false;
        s->notify_ready = true;
    }
    if (s->ring_len == 0 && s->was_nonempty) {
        s->was_nonempty = false;
        s->notify_drained = true;
    }
    if (deferred && (s->notify_ready || s->notify_drained))
        wake(s);
}

/* Deliver due notifications. Returns false if the stream was freed or
 * closed meanwhile (the caller stops). Caller holds a depth count. */
static bool deliver_notifications(VdpStream *s)
{
    if (s->notify_ready) {
        s->notify_ready = false;
        if (s->cb.write_ready) {
            s->cb.write_ready(s->user);
            if (s->freed || s->dead)
                return false;
        }
    }
    if (s->notify_drained) {
        s->notify_drained = false;
        if (s->ring_len == 0 && s->cb.drained) {
            s->cb.drained(s->user);
            if (s->freed || s->dead)
                return false;
        }
    }
    return true;
}

/* ---- reading ---- */

/* One read. Returns bytes (> 0), 0 at EOF, -1 with errno. Descriptors
 * received go to fds/nfds; on failure none are left open. */
static ssize_t read_once(VdpStream *s, int fds[VDP_STREAM_MAX_FDS], unsigned *nfds)
{
    ssize_t n;
    *nfds = 0;

    if (!s->cfg.pass_fds) {
        do {
            n = read(s->fd, s->rbuf, s->cfg.read_size);
        } while (n < 0 && errno == EINTR);
        return n;
    }

    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * VDP_STREAM_MAX_FDS)];
    } ctl;
    struct iovec iov = {s->rbuf, s->cfg.read_size};
    struct msghdr msg;
    do {
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(s->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;

    bool bad = (msg.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < VDP_STREAM_MAX_FDS) {
                fds[(*nfds)++] = fd;
            } else {
                close_fd_keep_errno(fd);
                bad = true;
            }
        }
    }
    if (bad) {
        /* More descriptors than we take in one read: the kernel dropped
         * the rest, so the peer's framing of fds is lost. */
        close_fds(fds, *nfds);
        *nfds = 0;
        errno = EMSGSIZE;
        return -1;
    }
    if (n == 0 && *nfds) {
        close_fds(fds, *nfds);
        *nfds = 0;
    }
    return n;
}

static int socket_error(VdpStream *s)
{
    int e = 0;
    socklen_t len = sizeof(e);
    if (!s->is_socket || getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return 0;
    return e;
}

/* Read up to VDP_STREAM_READS_PER_DISPATCH times. Caller holds a depth
 * count and checks s->freed / s->dead afterwards. */
static void read_some(VdpStream *s, GIOCondition rev)
{
    for (unsigned i = 0; i < VDP_STREAM_READS_PER_DISPATCH; i++) {
        if (s->paused || s->dead)
            return;
        int fds[VDP_STREAM_MAX_FDS];
        unsigned nfds;
        ssize_t n = read_once(s, fds, &nfds);
        if (n > 0) {
            s->stats.reads++;
            s->stats.bytes_in += (uint64_t)n;
            s->cb.data(s->user, s->rbuf, (size_t)n, nfds ? fds : NULL, nfds);
            if (s->freed)
                return;
            continue;
        }
        if (n == 0) {
            close_now(s, VDP_STREAM_EOF, 0);
            return;
        }
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            if (s->write_err) {
                close_now(s, VDP_STREAM_ERROR, s->write_err);
            } else if (rev & G_IO_ERR) {
                int se = socket_error(s);
                close_now(s, VDP_STREAM_ERROR, se ? se : EIO);
            } else if (rev & G_IO_HUP) {
                if (s->cfg.hup_is_eof)
                    close_now(s, VDP_STREAM_EOF, 0);
                else
                    park(s, g_get_monotonic_time() + VDP_STREAM_HUP_RETRY_MS * 1000);
            }
            return;
        }
        close_now(s, VDP_STREAM_ERROR, e);
        return;
    }
    if (s->write_err)
        wake(s);   /* keep draining on the next iteration */
}

/* ---- the source ---- */

static void stream_dispatch(VdpStream *s)
{
    GIOCondition rev = s->tag ? g_source_query_unix_fd(s->source, s->tag) : 0;

    g_source_set_ready_time(s->source, -1);
    enter(s);

    if (s->pending_close) {
        close_now(s, s->pending_reason, s->pending_errnum);
        goto out;
    }
    if (s->dead)
        goto out;
    if (s->parked && s->park_until && g_get_monotonic_time() >= s->park_until) {
        s->parked = false;
        s->park_until = 0;
    }
    if (rev & G_IO_NVAL) {
        close_now(s, VDP_STREAM_ERROR, EBADF);
        goto out;
    }
    if (s->write_err) {
        /* The peer went away: drain its last bytes, then report. */
        if (!s->can_read || s->paused) {
            close_now(s, VDP_STREAM_ERROR, s->write_err);
            goto out;
        }
        rev |= G_IO_IN;
    }

    /* Read first: what the peer sent before hanging up comes before any
     * error our writes would meet. */
    if (rev & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        if (s->can_read && s->paused == 0) {
            read_some(s, rev);
            if (s->freed || s->dead)
                goto out;
            if (s->paused && (rev & (G_IO_HUP | G_IO_ERR)))
                park(s, 0);
        } else if (!s->can_read && (rev & (G_IO_HUP | G_IO_ERR)) && s->ring_len == 0) {
            /* Write-only end (a pipe) with nothing queued: the reader went
             * away. With data queued the write below reports EPIPE. */
            close_now(s, VDP_STREAM_EOF, 0);
            goto out;
        } else if (s->can_read && (rev & (G_IO_HUP | G_IO_ERR))) {
            park(s, 0);   /* paused: look again on resume */
        }
    }

    if (s->ring_len > 0 && (rev & (G_IO_OUT | G_IO_ERR | G_IO_HUP))) {
        int e = flush_some(s);
        if (e) {
            write_broke(s, e, true);
            if (s->freed || s->dead)
                goto out;
        }
    }
    check_levels(s, false);
    deliver_notifications(s);

out:
    if (!leave(s))
        return;
    update_events(s);
    /* A dead stream waits to be freed: nothing may wake it (write_err stays
     * set after the close and would otherwise re-arm it for ever). */
    if (s->dead && !s->pending_close)
        return;
    if (s->pending_close || s->notify_ready || s->notify_drained || s->write_err)
        g_source_set_ready_time(s->source, 0);
    else if (s->parked && s->park_until)
        g_source_set_ready_time(s->source, s->park_until);
}

static gboolean source_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    (void)callback;
    (void)data;
    VdpStream *s = ((StreamSource *)source)->stream;
    if (s)
        stream_dispatch(s);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs stream_source_funcs = {
    .dispatch = source_dispatch,
};

/* ---- public API ---- */

static bool resolve_config(VdpStreamConfig *c, const VdpStreamConfig *in)
{
    if (in)
        *c = *in;
    else
        memset(c, 0, sizeof(*c));
    if (c->read_size == 0)
        c->read_size = VDP_STREAM_READ_SIZE_DEFAULT;
    if (c->high_watermark == 0)
        c->high_watermark = VDP_STREAM_HIGH_WATERMARK_DEFAULT;
    if (c->low_watermark == 0)
        c->low_watermark = c->high_watermark / 4;
    if (c->queue_limit == 0) {
        if (c->high_watermark > SIZE_MAX / 2)
            return false;
        c->queue_limit = 2 * c->high_watermark;
    }
    return c->read_size <= VDP_STREAM_READ_SIZE_MAX &&
           c->low_watermark <= c->high_watermark &&
           c->queue_limit >= c->high_watermark;
}

/* Give up on a descriptor: close it and return NULL with errno = errnum
 * (close() must not clobber the reason the caller will report). */
static VdpStream *new_failed(int fd, int errnum)
{
    close(fd);
    errno = errnum;
    return NULL;
}

VdpStream *vdp_stream_new(GMainContext *ctx, int fd, const VdpStreamConfig *cfg,
                          const VdpStreamCallbacks *cb, void *user)
{
    VdpStreamConfig c;
    struct stat st;

    if (fd < 0) {
        g_critical("vdp_stream_new: invalid descriptor %d", fd);
        return NULL;
    }
    if (!cb || !cb->data || !cb->closed) {
        g_critical("vdp_stream_new: the data and closed callbacks are required");
        close(fd);
        return NULL;
    }
    if (!resolve_config(&c, cfg)) {
        g_critical("vdp_stream_new: invalid configuration (read_size above %u, "
                   "low watermark above high, or queue limit below high)",
                   VDP_STREAM_READ_SIZE_MAX);
        close(fd);
        return NULL;
    }
    /* Runtime failures below are not programming errors: no g_critical,
     * errno tells the caller why. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &st) < 0)
        return new_failed(fd, errno);
    if (c.pass_fds && !S_ISSOCK(st.st_mode))
        return new_failed(fd, ENOTSOCK);
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return new_failed(fd, errno);
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl >= 0 && !(fdfl & FD_CLOEXEC))
        fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);

    uint8_t *rbuf = g_try_malloc(c.read_size);
    if (!rbuf)
        return new_failed(fd, ENOMEM);

    VdpStream *s = g_new0(VdpStream, 1);
    s->ctx = ctx ? g_main_context_ref(ctx) : NULL;
    s->fd = fd;
    s->cfg = c;
    s->cb = *cb;
    s->user = user;
    s->is_socket = S_ISSOCK(st.st_mode);
    s->is_fifo = S_ISFIFO(st.st_mode);
    s->can_read = (fl & O_ACCMODE) != O_WRONLY;
    s->can_write = (fl & O_ACCMODE) != O_RDONLY;
    s->rbuf = rbuf;
    g_queue_init(&s->marks);

    s->source = g_source_new(&stream_source_funcs, sizeof(StreamSource));
    ((StreamSource *)s->source)->stream = s;
    g_source_set_name(s->source, "vdp-stream");
    update_events(s);
    g_source_attach(s->source, ctx);
    return s;
}

/* Release everything but the struct. */
static void teardown(VdpStream *s)
{
    if (s->source) {
        ((StreamSource *)s->source)->stream = NULL;
        g_source_destroy(s->source);
        g_source_unref(s->source);
        s->source = NULL;
        s->tag = NULL;
    }
    drop_queue(s);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    g_free(s->rbuf);
    s->rbuf = NULL;
    if (s->ctx) {
        g_main_context_unref(s->ctx);
        s->ctx = NULL;
    }
    s->dead = true;
}

void vdp_stream_free(VdpStream *s)
{
    if (!s || s->freed)
        return;
    teardown(s);
    if (s->depth > 0) {
        s->freed = true;   /* released when the outermost callback returns */
        return;
    }
    g_free(s);
}

VdpResult vdp_stream_write(VdpStream *s, const void *data, size_t len,
                           const int *fds, unsigned nfds)
{
    if (!s || s->freed)
        return VDP_ERR_CLOSED;
    if ((len && !data) || (nfds && !fds) || (nfds && !len))
        return VDP_ERR_RANGE;
    if (s->dead || s->write_err)
        return VDP_ERR_CLOSED;
    if (!s->can_write)
        return VDP_ERR_IO;
    if (nfds && !s->cfg.pass_fds)
        return VDP_ERR_RANGE;
    if (nfds > VDP_STREAM_MAX_FDS || len > s->cfg.queue_limit)
        return VDP_ERR_TOO_LARGE;
    if (len == 0)
        return VDP_OK;
    for (unsigned i = 0; i < nfds; i++) {
        if (fds[i] < 0)
            return VDP_ERR_RANGE;
    }
    if (len > s->cfg.queue_limit - s->ring_len ||
        nfds > VDP_STREAM_MAX_QUEUED_FDS - s->queued_fds)
        return VDP_ERR_BUSY;

    FdMark *m = NULL;
    if (nfds) {
        m = g_try_new0(FdMark, 1);
        if (!m)
            return VDP_ERR_NOMEM;
    }
    if (!ring_reserve(s, len)) {
        g_free(m);
        return VDP_ERR_NOMEM;
    }
    bool was_empty = s->ring_len == 0;
    if (m) {
        m->pos = s->sent_pos + s->ring_len;
        m->nfds = nfds;
        memcpy(m->fds, fds, nfds * sizeof(int));
        g_queue_push_tail(&s->marks, m);
        s->queued_fds += nfds;
    }
    ring_push(s, data, len);

    if (was_empty) {
        /* Nothing ahead of us: try to write at once. Errors are reported
         * through closed() from the loop, never from inside this call. */
        int e = flush_some(s);
        if (e) {
            write_broke(s, e, false);
            return VDP_OK;
        }
        check_levels(s, true);
    }
    if (s->ring_len > 0)
        s->was_nonempty = true;
    if (s->ring_len > s->stats.queue_peak)
        s->stats.queue_peak = s->ring_len;
    update_events(s);

    if (!s->blocked && s->ring_len >= s->cfg.high_watermark) {
        s->blocked = true;
        s->stats.blocked_count++;
        if (s->cb.write_blocked) {
            enter(s);
            s->cb.write_blocked(s->user);
            leave(s);
        }
    }
    return VDP_OK;
}

bool vdp_stream_can_write(const VdpStream *s, size_t len)
{
    return s && !s->dead && !s->write_err && s->can_write &&
           len <= s->cfg.queue_limit - s->ring_len;
}

size_t vdp_stream_queued(const VdpStream *s)
{
    return s ? s->ring_len : 0;
}

bool vdp_stream_write_blocked(const VdpStream *s)
{
    return s && s->blocked;
}

bool vdp_stream_is_closed(const VdpStream *s)
{
    return !s || s->dead || s->write_err;
}

void vdp_stream_pause_read(VdpStream *s, bool pause)
{
    if (!s || s->freed)
        return;
    if (pause) {
        if (s->paused < UINT_MAX)
            s->paused++;
    } else if (s->paused > 0) {
        s->paused--;
        if (s->paused == 0 && s->parked && s->park_until == 0)
            s->parked = false;   /* look at the hang-up again */
    }
    update_events(s);
}

VdpResult vdp_stream_flush_sync(VdpStream *s, int timeout_ms)
{
    if (!s || s->freed || s->dead || s->write_err)
        return VDP_ERR_CLOSED;
    gint64 deadline = timeout_ms >= 0 ? g_get_monotonic_time() + (gint64)timeout_ms * 1000 : -1;
    VdpResult res = VDP_OK;

    for (;;) {
        size_t before = s->ring_len;
        int e = flush_some(s);
        if (e) {
            write_broke(s, e, false);
            return VDP_ERR_IO;
        }
        if (s->ring_len == 0)
            break;

        int wait = -1;
        if (deadline >= 0) {
            gint64 left = deadline - g_get_monotonic_time();
            if (left <= 0) {
                res = VDP_ERR_BUSY;
                break;
            }
            gint64 ms = (left + 999) / 1000;
            wait = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        struct pollfd p = {.fd = s->fd, .events = POLLOUT};
        int r = poll(&p, 1, wait);
        if (r < 0 && errno != EINTR) {
            res = VDP_ERR_IO;
            break;
        }
        if (r > 0 && !(p.revents & POLLOUT) && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
            /* No way to write: try once more for the precise error. */
            e = flush_some(s);
            if (e == 0 && s->ring_len == before)
                e = (p.revents & POLLNVAL) ? EBADF : EPIPE;
            if (e) {
                write_broke(s, e, false);
                return VDP_ERR_IO;
            }
        }
    }
    check_levels(s, true);
    update_events(s);
    return res;
}

void vdp_stream_shutdown(VdpStream *s)
{
    if (!s || s->freed)
        return;
    fail_later(s, VDP_STREAM_LOCAL, 0);
}

int vdp_stream_get_fd(const VdpStream *s)
{
    return s ? s->fd : -1;
}

void vdp_stream_get_stats(const VdpStream *s, VdpStreamStats *st)
{
    if (!st)
        return;
    if (!s) {
        memset(st, 0, sizeof(*st));
        return;
    }
    *st = s->stats;
}
