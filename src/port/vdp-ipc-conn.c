/* vdp-ipc-conn.c - one daemon <-> agent IPC connection: IPC frames over a
 * VdpStream with fd passing (see vdp-ipc-conn.h).
 *
 * Decisions the header leaves open:
 *  - A protocol error (malformed frame, descriptors the frame rules do not
 *    allow) shuts the stream down and reports closed("<sentence>") at
 *    once, from the read that found it; the stream's own later
 *    closed(LOCAL) is swallowed.
 *  - When the frame callback returns false but the connection was not
 *    freed, delivery stops for good: reading is paused, the rest of that
 *    read is dropped, and writing still works (e.g. REJECT, then free).
 *  - PING is not answered here: the owner sees every frame.
 *  - The pidfd from SO_PEERPIDFD stays owned by the connection (closed
 *    with it); callers dup() it to keep it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vdp-ipc-conn.h"
#include "vdp-wire.h"

/* Frames up to this size are assembled on the stack before being copied
 * into the stream's queue; bigger ones use a temporary heap buffer. */
#define VDP_IPC_CONN_STACK_FRAME 4096u

struct VdpIpcConn {
    VdpStream *stream;
    VdpIpcDecoder *dec;
    VdpIpcConnCallbacks cb;
    void *user;

    bool have_cred;
    pid_t pid;
    uid_t uid;
    gid_t gid;
    int pidfd;

    bool closed;        /* closed() reported */
    bool stopped;       /* the frame callback returned false */

    unsigned depth;     /* inside one of our callbacks */
    bool freed;         /* vdp_ipc_conn_free() called meanwhile */
};

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
}

static void enter(VdpIpcConn *c)
{
    c->depth++;
}

static void final_free(VdpIpcConn *c)
{
    vdp_ipc_decoder_free(c->dec);
    g_free(c);
}

/* Returns false when the connection was freed. */
static bool leave(VdpIpcConn *c)
{
    c->depth--;
    if (c->freed) {
        if (c->depth == 0)
            final_free(c);
        return false;
    }
    return true;
}

static void report_closed(VdpIpcConn *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = true;
    if (c->cb.closed) {
        enter(c);
        c->cb.closed(c->user, why);
        leave(c);
    }
}

/* Protocol failure: stop all I/O and report why. */
static void fail(VdpIpcConn *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void fail(VdpIpcConn *c, const char *fmt, ...)
{
    if (c->closed)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    vdp_stream_shutdown(c->stream);
    report_closed(c, why);
    g_free(why);
}

static bool on_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload,
                     int *fds, unsigned nfds)
{
    VdpIpcConn *c = user;

    if (c->freed || c->closed || c->stopped) {
        close_fds(fds, nfds);
        return false;
    }
    bool more = c->cb.frame(c->user, hdr, payload, fds, nfds);
    if (c->freed)
        return false;
    if (!more) {
        c->stopped = true;
        vdp_stream_pause_read(c->stream, true);
        return false;
    }
    return !c->closed;
}

static void on_data(void *user, const uint8_t *data, size_t len, int *fds, unsigned nfds)
{
    VdpIpcConn *c = user;
    VdpError err;

    if (c->closed || c->stopped) {
        close_fds(fds, nfds);
        return;
    }
    enter(c);
    if (nfds && vdp_ipc_decoder_push_fds(c->dec, fds, nfds, &err) != VDP_OK) {
        close_fds(fds, nfds);
        fail(c, "protocol error: %s", err.text);
        goto out;
    }
    size_t used = 0;
    VdpResult r = vdp_ipc_decoder_feed(c->dec, data, len, &used, &err);
    if (c->freed)
        goto out;
    if (r == VDP_ERR_NOMEM)
        fail(c, "out of memory: %s", err.text);
    else if (r != VDP_OK)
        fail(c, "malformed frame: %s", err.text);
out:
    leave(c);
}

static void on_write_blocked(void *user)
{
    VdpIpcConn *c = user;
    if (c->cb.write_blocked && !c->closed) {
        enter(c);
        c->cb.write_blocked(c->user);
        leave(c);
    }
}

static void on_write_ready(void *user)
{
    VdpIpcConn *c = user;
    if (c->cb.write_ready && !c->closed) {
        enter(c);
        c->cb.write_ready(c->user);
        leave(c);
    }
}

static void on_closed(void *user, VdpStreamCloseReason reason, int errnum)
{
    VdpIpcConn *c = user;

    switch (reason) {
    case VDP_STREAM_EOF:
        report_closed(c, "the peer closed the connection");
        break;
    case VDP_STREAM_ERROR: {
        char *why = g_strdup_printf("connection error: %s", g_strerror(errnum));
        report_closed(c, why);
        g_free(why);
        break;
    }
    case VDP_STREAM_LOCAL:
        report_closed(c, "the connection was shut down locally");
        break;
    }
}

static const VdpStreamCallbacks stream_callbacks = {
    .data = on_data,
    .write_blocked = on_write_blocked,
    .write_ready = on_write_ready,
    .drained = NULL,
    .closed = on_closed,
};

static bool is_unix_stream(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX)
        return false;
    len = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 && v == SOCK_STREAM;
}

VdpIpcConn *vdp_ipc_conn_new(GMainContext *ctx, int fd, const VdpStreamConfig *cfg,
                             const VdpIpcConnCallbacks *cb, void *user)
{
    if (fd < 0) {
        g_critical("vdp_ipc_conn_new: invalid descriptor %d", fd);
        return NULL;
    }
    if (!cb || !cb->frame) {
        g_critical("vdp_ipc_conn_new: the frame callback is required");
        close(fd);
        return NULL;
    }
    if (!is_unix_stream(fd)) {
        g_critical("vdp_ipc_conn_new: descriptor %d is not an AF_UNIX stream socket", fd);
        close(fd);
        return NULL;
    }

    VdpIpcConn *c = g_new0(VdpIpcConn, 1);
    c->cb = *cb;
    c->user = user;
    c->pidfd = -1;

    struct ucred uc;
    socklen_t len = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 && len == sizeof(uc)) {
        c->have_cred = true;
        c->pid = uc.pid;
        c->uid = uc.uid;
        c->gid = uc.gid;
    }
#ifdef SO_PEERPIDFD
    {
        int pfd = -1;
        len = sizeof(pfd);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pfd, &len) == 0 && pfd >= 0) {
            int fl = fcntl(pfd, F_GETFD);
            if (fl >= 0 && !(fl & FD_CLOEXEC))
                fcntl(pfd, F_SETFD, fl | FD_CLOEXEC);
            c->pidfd = pfd;
        }
    }
#endif

    c->dec = vdp_ipc_decoder_new(on_frame, c);
    if (!c->dec) {
        close(fd);
        goto fail;
    }
    VdpStreamConfig scfg;
    if (cfg)
        scfg = *cfg;
    else
        memset(&scfg, 0, sizeof(scfg));
    scfg.pass_fds = true;
    c->stream = vdp_stream_new(ctx, fd, &scfg, &stream_callbacks, c);   /* closes fd on failure */
    if (!c->stream)
        goto fail;
    return c;

fail:
    if (c->pidfd >= 0)
        close(c->pidfd);
    vdp_ipc_decoder_free(c->dec);
    g_free(c);
    return NULL;
}

void vdp_ipc_conn_free(VdpIpcConn *c)
{
    if (!c || c->freed)
        return;
    vdp_stream_free(c->stream);   /* safe from inside its callbacks */
    c->stream = NULL;
    if (c->pidfd >= 0) {
        close(c->pidfd);
        c->pidfd = -1;
    }
    if (c->depth > 0) {
        c->freed = true;          /* the decoder may be mid-feed: release later */
        return;
    }
    final_free(c);
}

static bool type_valid(uint16_t type)
{
    return type >= VDP_IPC_HELLO && type < VDP_IPC_TYPE_END;
}

VdpResult vdp_ipc_conn_send(VdpIpcConn *c, uint16_t type, uint32_t id,
                            const uint8_t *payload, size_t len,
                            const int *fds, unsigned nfds)
{
    if (!c || c->freed)
        return VDP_ERR_CLOSED;
    if (!type_valid(type) || (len && !payload) || (nfds && !fds))
        return VDP_ERR_RANGE;
    if (len > VDP_IPC_MAX_FRAME || nfds > VDP_IPC_MAX_FDS)
        return VDP_ERR_TOO_LARGE;
    if (c->closed || vdp_stream_is_closed(c->stream))
        return VDP_ERR_CLOSED;

    uint8_t stackbuf[VDP_IPC_CONN_STACK_FRAME];
    size_t total = VDP_IPC_HEADER_SIZE + len;
    uint8_t *buf = total <= sizeof(stackbuf) ? stackbuf : g_try_malloc(total);
    if (!buf)
        return VDP_ERR_NOMEM;
    size_t n = vdp_ipc_frame_encode(type, id, (uint8_t)nfds, payload, len, buf, total);
    VdpResult r = n == total ? vdp_stream_write(c->stream, buf, total, fds, nfds) : VDP_ERR_RANGE;
    if (buf != stackbuf)
        g_free(buf);
    return r;
}

VdpResult vdp_ipc_conn_send_vdagent(VdpIpcConn *c, uint32_t id, const VdpMsg *msg, VdpError *err)
{
    VdpError local;
    VdpError *e = err ? err : &local;

    if (!c || c->freed)
        return vdp_error_set(e, VDP_ERR_CLOSED, "the IPC connection is gone");
    if (!msg)
        return vdp_error_set(e, VDP_ERR_RANGE, "no message to send");
    const char *name = vdp_msg_type_name(msg->type);
    if (!name)
        name = "message";

    e->code = VDP_OK;
    e->text[0] = '\0';
    size_t need = vdp_msg_encode_payload(msg, &vdp_ipc_layout, NULL, 0, e);
    if (need == 0 && e->code != VDP_OK)
        return e->code;
    if (need > VDP_IPC_MAX_FRAME - VDP_IPC_VDAGENT_HEAD)
        return vdp_error_set(e, VDP_ERR_TOO_LARGE,
                             "%s payload of %zu bytes does not fit one IPC frame (limit %u bytes); "
                             "send bulk data through a descriptor",
                             name, need, VDP_IPC_MAX_FRAME - VDP_IPC_VDAGENT_HEAD);
    if (c->closed || vdp_stream_is_closed(c->stream))
        return vdp_error_set(e, VDP_ERR_CLOSED, "cannot send %s: the IPC connection is closed", name);

    size_t size = VDP_IPC_VDAGENT_HEAD + need;
    size_t total = VDP_IPC_HEADER_SIZE + size;
    uint8_t stackbuf[VDP_IPC_CONN_STACK_FRAME];
    uint8_t *buf = total <= sizeof(stackbuf) ? stackbuf : g_try_malloc(total);
    if (!buf)
        return vdp_error_set(e, VDP_ERR_NOMEM, "no memory for a %s frame of %zu bytes", name, total);

    VdpIpcHeader hdr = {
        .type = VDP_IPC_VDAGENT, .nfds = 0, .flags = 0, .id = id, .size = (uint32_t)size,
    };
    vdp_ipc_header_encode(&hdr, buf);
    vdp_put_le32(buf + VDP_IPC_HEADER_SIZE, msg->type);
    VdpResult r = VDP_OK;
    if (need) {
        size_t got = vdp_msg_encode_payload(msg, &vdp_ipc_layout,
                                            buf + VDP_IPC_HEADER_SIZE + VDP_IPC_VDAGENT_HEAD,
                                            need, e);
        if (got != need)
            r = e->code != VDP_OK ? e->code
                                  : vdp_error_set(e, VDP_ERR_BUFFER,
                                                  "%s encoded to %zu bytes instead of %zu",
                                                  name, got, need);
    }
    if (r == VDP_OK) {
        r = vdp_stream_write(c->stream, buf, total, NULL, 0);
        if (r != VDP_OK)
            vdp_error_set(e, r, "cannot queue %s (%zu bytes): %s", name, total, vdp_result_name(r));
        else
            e->code = VDP_OK;
    }
    if (buf != stackbuf)
        g_free(buf);
    return r;
}

void vdp_ipc_conn_pause_read(VdpIpcConn *c, bool pause)
{
    if (c && !c->freed && !c->stopped)
        vdp_stream_pause_read(c->stream, pause);
}

size_t vdp_ipc_conn_queued(const VdpIpcConn *c)
{
    return c && !c->freed ? vdp_stream_queued(c->stream) : 0;
}

bool vdp_ipc_conn_write_blocked(const VdpIpcConn *c)
{
    return c && !c->freed && vdp_stream_write_blocked(c->stream);
}

VdpResult vdp_ipc_conn_flush_sync(VdpIpcConn *c, int timeout_ms)
{
    if (!c || c->freed)
        return VDP_ERR_CLOSED;
    return vdp_stream_flush_sync(c->stream, timeout_ms);
}

bool vdp_ipc_conn_peer_cred(const VdpIpcConn *c, pid_t *pid, uid_t *uid, gid_t *gid)
{
    if (!c || !c->have_cred)
        return false;
    if (pid)
        *pid = c->pid;
    if (uid)
        *uid = c->uid;
    if (gid)
        *gid = c->gid;
    return true;
}

int vdp_ipc_conn_peer_pidfd(const VdpIpcConn *c)
{
    return c ? c->pidfd : -1;
}
