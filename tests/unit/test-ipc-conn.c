/* test-ipc-conn.c - VdpIpcConn pairs over socketpair(): the HELLO/WELCOME
 * exchange, frames carrying descriptors (8 MiB through a memfd and through
 * a pipe), malformed input from a raw peer, the oversize header, peer
 * credentials, VDAGENT envelopes, backpressure, and the vdp_unix_* helpers
 * on a temporary directory.
 *
 * Every loop runs on its own GMainContext with a deadline. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "vdp-ipc-conn.h"
#include "vdp-unix.h"
#include "vdp-wire.h"
#include "vdp-checksum.h"

#define TEST_TIMEOUT_MS 5000
#define BULK_SIZE (8u * 1024u * 1024u)

/* ---- helpers ---- */

static gboolean on_deadline(gpointer data)
{
    *(bool *)data = true;
    return G_SOURCE_REMOVE;
}

static void run_until(GMainContext *ctx, const bool *flag)
{
    bool timed_out = false;
    GSource *t = g_timeout_source_new(TEST_TIMEOUT_MS);
    g_source_set_callback(t, on_deadline, &timed_out, NULL);
    g_source_attach(t, ctx);
    while (!*flag && !timed_out)
        g_main_context_iteration(ctx, TRUE);
    g_source_destroy(t);
    g_source_unref(t);
    if (!*flag)
        fail_msg("timed out after %d ms", TEST_TIMEOUT_MS);
}

static void run_for(GMainContext *ctx, int ms)
{
    bool done = false;
    GSource *t = g_timeout_source_new((guint)ms);
    g_source_set_callback(t, on_deadline, &done, NULL);
    g_source_attach(t, ctx);
    while (!done)
        g_main_context_iteration(ctx, TRUE);
    g_source_unref(t);
}

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)(((i * 2654435761u) >> 11) ^ (i >> 7));
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void make_socketpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Send bytes with descriptors attached, like a raw (possibly hostile) peer. */
static void raw_send(int fd, const void *data, size_t len, const int *fds, unsigned nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 32)];
    } ctl;
    struct iovec iov = {(void *)data, len};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    memset(&ctl, 0, sizeof(ctl));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds) {
        assert_true(nfds <= 32);
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    assert_int_equal(sendmsg(fd, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

#define MAX_FRAMES 64

typedef struct Side {
    VdpIpcConn *c;
    unsigned frames;
    VdpIpcHeader hdr[MAX_FRAMES];
    GByteArray *payload[MAX_FRAMES];
    int fds[MAX_FRAMES][VDP_IPC_MAX_FDS];
    unsigned nfds[MAX_FRAMES];
    unsigned want_frames;
    bool done;
    unsigned closed;
    char why[256];
    unsigned blocked, ready;
    /* behaviours */
    bool answer_hello;            /* daemon: answer HELLO with WELCOME */
    bool free_in_frame, free_in_closed, stop_in_frame;
} Side;

static void side_init(Side *s)
{
    memset(s, 0, sizeof(*s));
}

static void side_clear(Side *s)
{
    for (unsigned i = 0; i < s->frames && i < MAX_FRAMES; i++) {
        g_byte_array_free(s->payload[i], TRUE);
        for (unsigned k = 0; k < s->nfds[i]; k++) {
            if (s->fds[i][k] >= 0)
                close(s->fds[i][k]);
        }
    }
    vdp_ipc_conn_free(s->c);
    s->c = NULL;
}

static bool on_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload,
                     int *fds, unsigned nfds)
{
    Side *s = user;
    unsigned i = s->frames++;
    if (i >= MAX_FRAMES) {
        /* Only the first MAX_FRAMES are recorded; the rest are counted. */
        for (unsigned k = 0; k < nfds; k++)
            close(fds[k]);
        if (s->want_frames && s->frames >= s->want_frames)
            s->done = true;
        return true;
    }
    s->hdr[i] = *hdr;
    s->payload[i] = g_byte_array_new();
    g_byte_array_append(s->payload[i], payload, hdr->size);
    s->nfds[i] = nfds;
    for (unsigned k = 0; k < nfds; k++)
        s->fds[i][k] = fds[k];
    if (s->want_frames && s->frames >= s->want_frames)
        s->done = true;

    if (s->answer_hello && hdr->type == VDP_IPC_HELLO) {
        VdpIpcHello h;
        VdpError err;
        assert_int_equal(vdp_ipc_hello_decode(payload, hdr->size, &h, &err), VDP_OK);
        if (vdp_ipc_hello_check(&h, &err) == VDP_OK) {
            VdpIpcHello w;
            uint8_t buf[128];
            vdp_ipc_hello_init(&w, 0, "vdagentd test");
            size_t n = vdp_ipc_hello_encode(&w, buf, sizeof(buf));
            assert_int_equal(vdp_ipc_conn_send(s->c, VDP_IPC_WELCOME, hdr->id, buf, n, NULL, 0), VDP_OK);
        } else {
            VdpIpcReject r;
            memset(&r, 0, sizeof(r));
            r.reason = VDP_IPC_REJECT_VERSION;
            snprintf(r.text, sizeof(r.text), "%s", err.text);
            uint8_t buf[VDP_IPC_REASON_MAX + 8];
            size_t n = vdp_ipc_reject_encode(&r, buf, sizeof(buf));
            assert_int_equal(vdp_ipc_conn_send(s->c, VDP_IPC_REJECT, hdr->id, buf, n, NULL, 0), VDP_OK);
        }
    }
    if (s->free_in_frame) {
        vdp_ipc_conn_free(s->c);
        s->c = NULL;
        s->done = true;
        return false;
    }
    if (s->stop_in_frame)
        return false;
    return true;
}

static void on_closed(void *user, const char *why)
{
    Side *s = user;
    s->closed++;
    snprintf(s->why, sizeof(s->why), "%s", why);
    s->done = true;
    if (s->free_in_closed) {
        vdp_ipc_conn_free(s->c);
        s->c = NULL;
    }
}

static void on_blocked(void *user)
{
    ((Side *)user)->blocked++;
}

static void on_ready(void *user)
{
    ((Side *)user)->ready++;
}

static const VdpIpcConnCallbacks side_cb = {
    .frame = on_frame,
    .closed = on_closed,
    .write_blocked = on_blocked,
    .write_ready = on_ready,
};

/* A connected pair on ctx. */
static void make_pair(GMainContext *ctx, Side *a, Side *b, const VdpStreamConfig *cfg)
{
    int sv[2];
    make_socketpair(sv);
    side_init(a);
    side_init(b);
    a->c = vdp_ipc_conn_new(ctx, sv[0], cfg, &side_cb, a);
    b->c = vdp_ipc_conn_new(ctx, sv[1], cfg, &side_cb, b);
    assert_non_null(a->c);
    assert_non_null(b->c);
}

/* ---- handshake and credentials ---- */

static void test_hello_welcome(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side agent, daemon;
    make_pair(ctx, &agent, &daemon, NULL);
    daemon.answer_hello = true;
    daemon.want_frames = 1;
    agent.want_frames = 1;

    VdpIpcHello h;
    uint8_t buf[128];
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "spice-vdagent test");
    size_t n = vdp_ipc_hello_encode(&h, buf, sizeof(buf));
    assert_int_equal(vdp_ipc_conn_send(agent.c, VDP_IPC_HELLO, 41, buf, n, NULL, 0), VDP_OK);
    run_until(ctx, &daemon.done);
    run_until(ctx, &agent.done);

    assert_int_equal(daemon.hdr[0].type, VDP_IPC_HELLO);
    assert_int_equal(daemon.hdr[0].id, 41);
    VdpIpcHello got;
    assert_int_equal(vdp_ipc_hello_decode(daemon.payload[0]->data, daemon.payload[0]->len, &got, NULL), VDP_OK);
    assert_string_equal(got.name, "spice-vdagent test");
    assert_int_equal(got.role, VDP_IPC_ROLE_AGENT);

    assert_int_equal(agent.hdr[0].type, VDP_IPC_WELCOME);
    assert_int_equal(agent.hdr[0].id, 41);
    assert_int_equal(vdp_ipc_hello_decode(agent.payload[0]->data, agent.payload[0]->len, &got, NULL), VDP_OK);
    assert_int_equal(vdp_ipc_hello_check(&got, NULL), VDP_OK);
    assert_string_equal(got.name, "vdagentd test");

    /* PING/PONG with an empty payload. */
    agent.done = daemon.done = false;
    agent.want_frames = 2;
    daemon.want_frames = 2;
    assert_int_equal(vdp_ipc_conn_send(agent.c, VDP_IPC_PING, 7, NULL, 0, NULL, 0), VDP_OK);
    run_until(ctx, &daemon.done);
    assert_int_equal(daemon.hdr[1].type, VDP_IPC_PING);
    assert_int_equal(daemon.hdr[1].size, 0);
    assert_int_equal(vdp_ipc_conn_send(daemon.c, VDP_IPC_PONG, daemon.hdr[1].id, NULL, 0, NULL, 0), VDP_OK);
    run_until(ctx, &agent.done);
    assert_int_equal(agent.hdr[1].type, VDP_IPC_PONG);
    assert_int_equal(agent.hdr[1].id, 7);
    assert_int_equal(agent.closed + daemon.closed, 0);

    side_clear(&agent);
    side_clear(&daemon);
    g_main_context_unref(ctx);
}

static void test_reject_wrong_major(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side agent, daemon;
    make_pair(ctx, &agent, &daemon, NULL);
    daemon.answer_hello = true;
    agent.want_frames = 1;
    VdpIpcHello h;
    uint8_t buf[128];
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "future agent");
    h.major = 2;
    size_t n = vdp_ipc_hello_encode(&h, buf, sizeof(buf));
    assert_int_equal(vdp_ipc_conn_send(agent.c, VDP_IPC_HELLO, 1, buf, n, NULL, 0), VDP_OK);
    run_until(ctx, &agent.done);
    assert_int_equal(agent.hdr[0].type, VDP_IPC_REJECT);
    VdpIpcReject r;
    assert_int_equal(vdp_ipc_reject_decode(agent.payload[0]->data, agent.payload[0]->len, &r, NULL), VDP_OK);
    assert_int_equal(r.reason, VDP_IPC_REJECT_VERSION);
    assert_non_null(strstr(r.text, "version"));

    /* The daemon closes after REJECT: the agent sees EOF. */
    assert_int_equal(vdp_ipc_conn_flush_sync(daemon.c, 1000), VDP_OK);
    vdp_ipc_conn_free(daemon.c);
    daemon.c = NULL;
    agent.done = false;
    run_until(ctx, &agent.done);
    assert_int_equal(agent.closed, 1);
    assert_string_equal(agent.why, "the peer closed the connection");
    assert_int_equal(vdp_ipc_conn_send(agent.c, VDP_IPC_PING, 1, NULL, 0, NULL, 0), VDP_ERR_CLOSED);

    side_clear(&agent);
    side_clear(&daemon);
    g_main_context_unref(ctx);
}

/* The daemon's REJECT reaches an agent whose own writes are failing: the
 * agent has a full queue towards a daemon that never reads. */
static void test_reject_with_agent_queue_full(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side agent, daemon;
    make_pair(ctx, &agent, &daemon, NULL);
    vdp_ipc_conn_pause_read(daemon.c, true);
    static uint8_t junk[60000];
    unsigned n = 0;
    while (vdp_ipc_conn_send(agent.c, VDP_IPC_VDAGENT, n, junk, sizeof(junk), NULL, 0) == VDP_OK)
        n++;
    assert_true(vdp_ipc_conn_queued(agent.c) > 0);

    VdpIpcReject r;
    memset(&r, 0, sizeof(r));
    r.reason = VDP_IPC_REJECT_TOO_MANY;
    strcpy(r.text, "too many agents");
    uint8_t buf[VDP_IPC_REASON_MAX + 8];
    size_t len = vdp_ipc_reject_encode(&r, buf, sizeof(buf));
    assert_int_equal(vdp_ipc_conn_send(daemon.c, VDP_IPC_REJECT, 0, buf, len, NULL, 0), VDP_OK);
    assert_int_equal(vdp_ipc_conn_flush_sync(daemon.c, 1000), VDP_OK);
    vdp_ipc_conn_free(daemon.c);
    daemon.c = NULL;

    agent.want_frames = 1;
    run_until(ctx, &agent.done);
    assert_int_equal(agent.frames, 1);
    assert_int_equal(agent.hdr[0].type, VDP_IPC_REJECT);
    VdpIpcReject got;
    assert_int_equal(vdp_ipc_reject_decode(agent.payload[0]->data, agent.payload[0]->len, &got, NULL), VDP_OK);
    assert_string_equal(got.text, "too many agents");
    if (!agent.closed) {
        agent.done = false;
        run_until(ctx, &agent.done);
    }
    assert_int_equal(agent.closed, 1);
    side_clear(&agent);
    side_clear(&daemon);
    g_main_context_unref(ctx);
}

static void test_peer_credentials(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side a, b;
    make_pair(ctx, &a, &b, NULL);
    pid_t pid = 0;
    uid_t uid = 1;
    gid_t gid = 1;
    assert_true(vdp_ipc_conn_peer_cred(b.c, &pid, &uid, &gid));
    assert_int_equal(pid, getpid());
    assert_int_equal(uid, getuid());
    assert_int_equal(gid, getgid());
    assert_true(vdp_ipc_conn_peer_cred(a.c, NULL, NULL, NULL));
    int pidfd = vdp_ipc_conn_peer_pidfd(b.c);
#ifdef SO_PEERPIDFD
    if (pidfd >= 0)
        assert_true(fcntl(pidfd, F_GETFD) & FD_CLOEXEC);
#else
    assert_int_equal(pidfd, -1);
#endif
    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}

/* ---- descriptors ---- */

static void test_fds_to_the_right_frames(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side a, b;
    make_pair(ctx, &a, &b, NULL);
    int pipes[6][2];
    struct stat st[6];
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(pipe2(pipes[i], O_CLOEXEC), 0);
        assert_int_equal(fstat(pipes[i][1], &st[i]), 0);
    }
    /* Frames with 1, 0, 2, 0, 3 fds (each sent fd is a distinct pipe). */
    int f1[1] = {pipes[0][1]};
    int f3[2] = {pipes[1][1], pipes[2][1]};
    int f5[3] = {pipes[3][1], pipes[4][1], pipes[5][1]};
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 1, (const uint8_t *)"one", 3, f1, 1), VDP_OK);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_PING, 2, NULL, 0, NULL, 0), VDP_OK);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 3, NULL, 0, f3, 2), VDP_OK);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_PING, 4, (const uint8_t *)"x", 1, NULL, 0), VDP_OK);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 5, (const uint8_t *)"five", 4, f5, 3), VDP_OK);
    b.want_frames = 5;
    run_until(ctx, &b.done);

    static const unsigned expect_n[5] = {1, 0, 2, 0, 3};
    static const int first_pipe[5] = {0, -1, 1, -1, 3};
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(b.hdr[i].id, i + 1);
        assert_int_equal(b.nfds[i], expect_n[i]);
        for (unsigned k = 0; k < b.nfds[i]; k++) {
            struct stat got;
            assert_int_equal(fstat(b.fds[i][k], &got), 0);
            assert_true(got.st_ino == st[first_pipe[i] + (int)k].st_ino);
        }
    }
    for (unsigned i = 0; i < 6; i++)
        close(pipes[i][0]);
    assert_int_equal(b.closed, 0);
    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}



static void test_bulk_memfd(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side a, b;
    make_pair(ctx, &a, &b, NULL);

    int mfd = memfd_create("vdagent-test-bulk", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    uint8_t *buf = g_malloc(BULK_SIZE);
    for (size_t i = 0; i < BULK_SIZE; i++)
        buf[i] = pattern(i);
    uint64_t sum = vdp_fnv1a(VDP_FNV_INIT, buf, BULK_SIZE);
    size_t off = 0;
    while (off < BULK_SIZE) {
        ssize_t n = write(mfd, buf + off, BULK_SIZE - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    g_free(buf);

    uint8_t desc[8];
    vdp_put_le64(desc, BULK_SIZE);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 99, desc, sizeof(desc), &mfd, 1), VDP_OK);
    b.want_frames = 1;
    run_until(ctx, &b.done);
    assert_int_equal(b.nfds[0], 1);
    assert_int_equal(vdp_get_le64(b.payload[0]->data), BULK_SIZE);

    int rfd = b.fds[0][0];
    struct stat st;
    assert_int_equal(fstat(rfd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, BULK_SIZE);
    uint8_t *map = mmap(NULL, BULK_SIZE, PROT_READ, MAP_SHARED, rfd, 0);
    assert_true(map != MAP_FAILED);
    assert_true(vdp_fnv1a(VDP_FNV_INIT, map, BULK_SIZE) == sum);
    munmap(map, BULK_SIZE);

    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}

/* Pipe variant: the receiver wraps the passed read end in a VdpStream;
 * the sender feeds the write end through another VdpStream, refilling on
 * write_ready. All in one loop, nothing blocks. */
typedef struct PipeXfer {
    VdpStream *w, *r;
    uint64_t sent, received;
    uint64_t sum_out, sum_in;
    bool eof, done;
    unsigned closed_other;
} PipeXfer;

static void xfer_fill(PipeXfer *x)
{
    uint8_t chunk[32768];
    while (x->sent < BULK_SIZE) {
        size_t n = (size_t)MIN((uint64_t)sizeof(chunk), BULK_SIZE - x->sent);
        if (!vdp_stream_can_write(x->w, n))
            return;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(x->sent + i);
        assert_int_equal(vdp_stream_write(x->w, chunk, n, NULL, 0), VDP_OK);
        x->sum_out = vdp_fnv1a(x->sum_out, chunk, n);
        x->sent += n;
    }
    if (x->w && x->sent == BULK_SIZE && vdp_stream_queued(x->w) == 0) {
        vdp_stream_free(x->w);   /* all out: close the write end -> EOF */
        x->w = NULL;
    }
}

static void xfer_w_ready(void *user)
{
    xfer_fill(user);
}

static void xfer_w_drained(void *user)
{
    PipeXfer *x = user;
    if (x->sent == BULK_SIZE && x->w) {
        vdp_stream_free(x->w);
        x->w = NULL;
    } else {
        xfer_fill(x);
    }
}

static void xfer_w_data(void *user, const uint8_t *d, size_t n, int *fds, unsigned nfds)
{
    fail_msg("the write end produced data");
}

static void xfer_w_closed(void *user, VdpStreamCloseReason reason, int errnum)
{
    ((PipeXfer *)user)->closed_other++;
}

static void xfer_r_data(void *user, const uint8_t *d, size_t n, int *fds, unsigned nfds)
{
    PipeXfer *x = user;
    x->sum_in = vdp_fnv1a(x->sum_in, d, n);
    x->received += n;
}

static void xfer_r_closed(void *user, VdpStreamCloseReason reason, int errnum)
{
    PipeXfer *x = user;
    assert_int_equal(reason, VDP_STREAM_EOF);
    x->eof = true;
    x->done = true;
}

static void test_bulk_pipe(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side a, b;
    make_pair(ctx, &a, &b, NULL);
    int pv[2];
    assert_int_equal(pipe2(pv, O_CLOEXEC), 0);

    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 5, (const uint8_t *)"pipe", 4, &pv[0], 1),
                     VDP_OK);
    b.want_frames = 1;
    run_until(ctx, &b.done);
    assert_int_equal(b.nfds[0], 1);

    PipeXfer x;
    memset(&x, 0, sizeof(x));
    x.sum_out = x.sum_in = VDP_FNV_INIT;
    static const VdpStreamCallbacks wcb = {
        .data = xfer_w_data, .write_ready = xfer_w_ready, .drained = xfer_w_drained,
        .closed = xfer_w_closed,
    };
    static const VdpStreamCallbacks rcb = {.data = xfer_r_data, .closed = xfer_r_closed};
    VdpStreamConfig wcfg = {.high_watermark = 256 * 1024};
    x.r = vdp_stream_new(ctx, b.fds[0][0], NULL, &rcb, &x);
    b.fds[0][0] = -1;                     /* owned by the stream now */
    x.w = vdp_stream_new(ctx, pv[1], &wcfg, &wcb, &x);
    assert_non_null(x.r);
    assert_non_null(x.w);
    xfer_fill(&x);
    run_until(ctx, &x.done);
    assert_true(x.eof);
    assert_int_equal(x.received, BULK_SIZE);
    assert_true(x.sum_in == x.sum_out);
    assert_int_equal(x.closed_other, 0);
    vdp_stream_free(x.r);
    vdp_stream_free(x.w);

    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}

/* ---- malformed input from a raw peer ---- */

typedef struct RawCase {
    const char *name;
    uint16_t type;
    uint8_t nfds, flags;
    uint32_t size;
    unsigned send_fds;
    const char *expect;        /* substring of the close reason */
    bool may_lose_first;       /* the flood arrives in the read holding the valid frame */
} RawCase;

static void run_raw_case(const RawCase *rc)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Side s;
    side_init(&s);
    s.c = vdp_ipc_conn_new(ctx, sv[1], NULL, &side_cb, &s);
    assert_non_null(s.c);

    /* One valid frame first: it is delivered before the failure. */
    uint8_t frame[VDP_IPC_HEADER_SIZE + 4];
    size_t n = vdp_ipc_frame_encode(VDP_IPC_PING, 1, 0, (const uint8_t *)"ok!", 4, frame, sizeof(frame));
    assert_int_equal(n, sizeof(frame));
    assert_int_equal(write(sv[0], frame, n), (ssize_t)n);

    uint8_t hdr[VDP_IPC_HEADER_SIZE];
    VdpIpcHeader h = {.type = rc->type, .nfds = rc->nfds, .flags = rc->flags, .id = 2, .size = rc->size};
    vdp_ipc_header_encode(&h, hdr);
    int fds[32];
    for (unsigned i = 0; i < rc->send_fds; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    raw_send(sv[0], hdr, sizeof(hdr), fds, rc->send_fds);
    for (unsigned i = 0; i < rc->send_fds; i++)
        close(fds[i]);
    /* No payload follows: a decoder waiting for it would never close. */
    run_until(ctx, &s.done);
    assert_int_equal(s.closed, 1);
    if (rc->may_lose_first)
        assert_true(s.frames <= 1);
    else
        assert_int_equal(s.frames, 1);
    if (!strstr(s.why, rc->expect))
        fail_msg("%s: reason \"%s\" does not mention \"%s\"", rc->name, s.why, rc->expect);
    run_for(ctx, 30);
    assert_int_equal(s.closed, 1);
    assert_int_equal(vdp_ipc_conn_send(s.c, VDP_IPC_PING, 1, NULL, 0, NULL, 0), VDP_ERR_CLOSED);
    close(sv[0]);
    side_clear(&s);
    g_main_context_unref(ctx);
}

static void test_malformed_frames(void **state)
{
    static const RawCase cases[] = {
        {"unknown type", 200, 0, 0, 0, 0, "unknown", false},
        {"type 0", 0, 0, 0, 0, 0, "unknown", false},
        {"flags", VDP_IPC_PING, 0, 1, 0, 0, "flags", false},
        {"nfds above limit", VDP_IPC_VDAGENT, VDP_IPC_MAX_FDS + 1, 0, 0, VDP_IPC_MAX_FDS + 1, "descriptors", false},
        {"fds announced, none sent", VDP_IPC_VDAGENT, 2, 0, 0, 0, "descriptors", false},
        {"fewer fds than announced", VDP_IPC_VDAGENT, 3, 0, 0, 1, "descriptors", false},
        {"too many fds pending", VDP_IPC_PING, 0, 0, 0, 2 * VDP_IPC_MAX_FDS + 1, "descriptors", true},
        {"more fds than a read takes", VDP_IPC_PING, 0, 0, 0, VDP_STREAM_MAX_FDS + 1, "connection error", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_raw_case(&cases[i]);
}

static void test_oversize_header(void **state)
{
    static const RawCase big = {"oversize", VDP_IPC_VDAGENT, 0, 0, VDP_IPC_MAX_FRAME + 1, 0, "limit", false};
    run_raw_case(&big);
    static const RawCase huge = {"4 GiB", VDP_IPC_VDAGENT, 0, 0, UINT32_MAX, 0, "limit", false};
    run_raw_case(&huge);
}

static void test_eof_and_free_in_callbacks(void **state)
{
    /* EOF reported once; freeing inside closed(). */
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Side s;
    side_init(&s);
    s.free_in_closed = true;
    s.c = vdp_ipc_conn_new(ctx, sv[1], NULL, &side_cb, &s);
    close(sv[0]);
    run_until(ctx, &s.done);
    assert_int_equal(s.closed, 1);
    assert_null(s.c);
    assert_string_equal(s.why, "the peer closed the connection");
    run_for(ctx, 20);
    side_clear(&s);

    /* Freeing inside the frame callback, with more frames in the same read. */
    make_socketpair(sv);
    side_init(&s);
    s.free_in_frame = true;
    s.c = vdp_ipc_conn_new(ctx, sv[1], NULL, &side_cb, &s);
    uint8_t frames[3 * VDP_IPC_HEADER_SIZE];
    for (unsigned i = 0; i < 3; i++)
        vdp_ipc_frame_encode(VDP_IPC_PING, i, 0, NULL, 0, frames + i * VDP_IPC_HEADER_SIZE, VDP_IPC_HEADER_SIZE);
    assert_int_equal(write(sv[0], frames, sizeof(frames)), (ssize_t)sizeof(frames));
    run_until(ctx, &s.done);
    assert_int_equal(s.frames, 1);
    assert_int_equal(s.closed, 0);
    run_for(ctx, 20);
    assert_int_equal(s.frames, 1);
    close(sv[0]);
    side_clear(&s);

    /* Freeing inside closed() after a protocol error found mid-read. */
    make_socketpair(sv);
    side_init(&s);
    s.free_in_closed = true;
    s.c = vdp_ipc_conn_new(ctx, sv[1], NULL, &side_cb, &s);
    uint8_t bad[2 * VDP_IPC_HEADER_SIZE];
    vdp_ipc_frame_encode(VDP_IPC_PING, 1, 0, NULL, 0, bad, VDP_IPC_HEADER_SIZE);
    memset(bad + VDP_IPC_HEADER_SIZE, 0xee, VDP_IPC_HEADER_SIZE);
    assert_int_equal(write(sv[0], bad, sizeof(bad)), (ssize_t)sizeof(bad));
    run_until(ctx, &s.done);
    assert_int_equal(s.frames, 1);
    assert_int_equal(s.closed, 1);
    assert_null(s.c);
    assert_non_null(strstr(s.why, "malformed frame"));
    run_for(ctx, 20);
    close(sv[0]);
    side_clear(&s);
    g_main_context_unref(ctx);
}

static void test_stop_delivery(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side a, b;
    make_pair(ctx, &a, &b, NULL);
    b.stop_in_frame = true;
    b.want_frames = 1;
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_PING, i, NULL, 0, NULL, 0), VDP_OK);
    run_until(ctx, &b.done);
    run_for(ctx, 30);
    assert_int_equal(b.frames, 1);
    assert_int_equal(b.closed, 0);
    /* Writing still works. */
    a.want_frames = 1;
    assert_int_equal(vdp_ipc_conn_send(b.c, VDP_IPC_PONG, 0, NULL, 0, NULL, 0), VDP_OK);
    run_until(ctx, &a.done);
    assert_int_equal(a.hdr[0].type, VDP_IPC_PONG);
    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}

/* ---- sending ---- */

static void test_send_checks(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side a, b;
    make_pair(ctx, &a, &b, NULL);
    static uint8_t big[VDP_IPC_MAX_FRAME + 1];
    int fds[VDP_IPC_MAX_FDS + 1];
    for (unsigned i = 0; i <= VDP_IPC_MAX_FDS; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);

    assert_int_equal(vdp_ipc_conn_send(a.c, 0, 1, NULL, 0, NULL, 0), VDP_ERR_RANGE);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_TYPE_END, 1, NULL, 0, NULL, 0), VDP_ERR_RANGE);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_PING, 1, NULL, 3, NULL, 0), VDP_ERR_RANGE);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 1, big, sizeof(big), NULL, 0), VDP_ERR_TOO_LARGE);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 1, big, 4, fds, VDP_IPC_MAX_FDS + 1),
                     VDP_ERR_TOO_LARGE);
    for (unsigned i = 0; i <= VDP_IPC_MAX_FDS; i++)
        assert_true(fd_is_open(fds[i]));   /* refused: still ours */

    /* The largest frame goes through whole. */
    for (size_t i = 0; i < VDP_IPC_MAX_FRAME; i++)
        big[i] = pattern(i);
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, 1, big, VDP_IPC_MAX_FRAME,
                                       fds, VDP_IPC_MAX_FDS), VDP_OK);
    b.want_frames = 1;
    run_until(ctx, &b.done);
    assert_int_equal(b.hdr[0].size, VDP_IPC_MAX_FRAME);
    assert_memory_equal(b.payload[0]->data, big, VDP_IPC_MAX_FRAME);
    assert_int_equal(b.nfds[0], VDP_IPC_MAX_FDS);
    close(fds[VDP_IPC_MAX_FDS]);

    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}

static void test_send_vdagent(void **state)
{
    GMainContext *ctx = g_main_context_new();
    Side a, b;
    make_pair(ctx, &a, &b, NULL);

    VdpMsg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = VD_AGENT_CLIPBOARD_GRAB;
    msg.u.grab.selection = VD_AGENT_CLIPBOARD_SELECTION_PRIMARY;
    msg.u.grab.serial = 77;
    msg.u.grab.ntypes = 2;
    msg.u.grab.types[0] = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    msg.u.grab.types[1] = VD_AGENT_CLIPBOARD_IMAGE_PNG;
    VdpError err;
    assert_int_equal(vdp_ipc_conn_send_vdagent(a.c, 12, &msg, &err), VDP_OK);
    assert_int_equal(err.code, VDP_OK);

    /* A payload-less message. */
    VdpMsg disc;
    memset(&disc, 0, sizeof(disc));
    disc.type = VD_AGENT_CLIENT_DISCONNECTED;
    assert_int_equal(vdp_ipc_conn_send_vdagent(a.c, 13, &disc, NULL), VDP_OK);

    b.want_frames = 2;
    run_until(ctx, &b.done);
    assert_int_equal(b.hdr[0].type, VDP_IPC_VDAGENT);
    assert_int_equal(b.hdr[0].id, 12);
    const uint8_t *p = b.payload[0]->data;
    size_t len = b.payload[0]->len;
    assert_true(len >= VDP_IPC_VDAGENT_HEAD);
    uint32_t type = vdp_get_le32(p);
    assert_int_equal(type, VD_AGENT_CLIPBOARD_GRAB);
    VdpMsg out;
    assert_int_equal(vdp_msg_decode(VDP_FROM_HOST, vdp_msg_port_for_type(type), type,
                                    p + VDP_IPC_VDAGENT_HEAD, len - VDP_IPC_VDAGENT_HEAD,
                                    &vdp_ipc_layout, &out, &err), VDP_OK);
    assert_int_equal(out.u.grab.selection, VD_AGENT_CLIPBOARD_SELECTION_PRIMARY);
    assert_int_equal(out.u.grab.serial, 77);
    assert_int_equal(out.u.grab.ntypes, 2);
    assert_int_equal(out.u.grab.types[1], VD_AGENT_CLIPBOARD_IMAGE_PNG);
    /* Canonical layout: 4-byte selection prefix + serial + 2 types. */
    assert_int_equal(len, VDP_IPC_VDAGENT_HEAD + 4 + 4 + 8);

    assert_int_equal(b.hdr[1].size, VDP_IPC_VDAGENT_HEAD);
    assert_int_equal(vdp_get_le32(b.payload[1]->data), VD_AGENT_CLIENT_DISCONNECTED);

    /* Too big for one frame: refused with a sentence. */
    static uint8_t clip[VDP_IPC_MAX_FRAME];
    memset(&msg, 0, sizeof(msg));
    msg.type = VD_AGENT_CLIPBOARD;
    msg.u.clipboard.type = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    msg.u.clipboard.data = clip;
    msg.u.clipboard.size = sizeof(clip);
    assert_int_equal(vdp_ipc_conn_send_vdagent(a.c, 14, &msg, &err), VDP_ERR_TOO_LARGE);
    assert_non_null(strstr(err.text, "descriptor"));
    /* Just fits. */
    msg.u.clipboard.size = VDP_IPC_MAX_FRAME - VDP_IPC_VDAGENT_HEAD - 8;
    assert_int_equal(vdp_ipc_conn_send_vdagent(a.c, 15, &msg, &err), VDP_OK);
    b.done = false;
    b.want_frames = 3;
    run_until(ctx, &b.done);
    assert_int_equal(b.hdr[2].size, VDP_IPC_MAX_FRAME);

    /* Invalid message: the encoder's error comes through. */
    memset(&msg, 0, sizeof(msg));
    msg.type = VD_AGENT_CLIPBOARD_GRAB;
    msg.u.grab.ntypes = VDP_MAX_GRAB_TYPES + 1;
    assert_true(vdp_ipc_conn_send_vdagent(a.c, 16, &msg, &err) != VDP_OK);
    assert_true(err.code != VDP_OK);

    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}

static void test_backpressure(void **state)
{
    GMainContext *ctx = g_main_context_new();
    VdpStreamConfig cfg = {.high_watermark = 64 * 1024, .low_watermark = 8 * 1024,
                           .queue_limit = 128 * 1024};
    Side a, b;
    make_pair(ctx, &a, &b, &cfg);
    vdp_ipc_conn_pause_read(b.c, true);
    static uint8_t payload[10000];
    unsigned sent = 0;
    VdpResult r;
    while ((r = vdp_ipc_conn_send(a.c, VDP_IPC_VDAGENT, sent, payload, sizeof(payload), NULL, 0)) == VDP_OK) {
        sent++;
        assert_true(vdp_ipc_conn_queued(a.c) <= 128 * 1024);
        assert_true(sent < 10000);
    }
    assert_int_equal(r, VDP_ERR_BUSY);
    assert_int_equal(a.blocked, 1);
    assert_true(vdp_ipc_conn_write_blocked(a.c));
    run_for(ctx, 20);
    assert_int_equal(b.frames, 0);
    vdp_ipc_conn_pause_read(b.c, false);
    b.want_frames = sent;
    run_until(ctx, &b.done);
    assert_int_equal(b.frames, sent);
    for (unsigned i = 0; i < sent && i < MAX_FRAMES; i++) {
        assert_int_equal(b.hdr[i].id, i);
        assert_int_equal(b.hdr[i].size, sizeof(payload));
    }
    assert_int_equal(a.ready, 1);
    assert_false(vdp_ipc_conn_write_blocked(a.c));
    side_clear(&a);
    side_clear(&b);
    g_main_context_unref(ctx);
}

static bool count_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload,
                        int *fds, unsigned nfds)
{
    (*(unsigned *)user)++;
    return true;
}

static void test_backpressure_many_frames(void **state)
{
    /* As above with more frames than the Side records: count only. */
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    unsigned got = 0;
    static const VdpIpcConnCallbacks ccb = {.frame = count_frame, .closed = NULL};
    Side a;
    side_init(&a);
    a.c = vdp_ipc_conn_new(ctx, sv[0], NULL, &side_cb, &a);
    VdpIpcConn *b = vdp_ipc_conn_new(ctx, sv[1], NULL, &ccb, &got);
    unsigned sent = 0;
    for (unsigned round = 0; round < 20; round++) {
        while (sent < 200000 && vdp_ipc_conn_send(a.c, VDP_IPC_PING, sent, NULL, 0, NULL, 0) == VDP_OK)
            sent++;
        run_for(ctx, 5);
    }
    gint64 end = g_get_monotonic_time() + TEST_TIMEOUT_MS * 1000;
    while (got < sent && g_get_monotonic_time() < end)
        run_for(ctx, 5);
    assert_int_equal(got, sent);
    vdp_ipc_conn_free(b);
    side_clear(&a);
    g_main_context_unref(ctx);
}

/* ---- conn_new argument checks ---- */

static unsigned criticals;

static void count_critical(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
    (void)domain;
    (void)level;
    (void)msg;
    (void)data;
    criticals++;
}

static void test_conn_new_invalid(void **state)
{
    Side s;
    side_init(&s);
    unsigned before = criticals;
    int pv[2];
    assert_int_equal(pipe2(pv, O_CLOEXEC), 0);
    assert_null(vdp_ipc_conn_new(NULL, pv[0], NULL, &side_cb, &s));
    assert_false(fd_is_open(pv[0]));
    close(pv[1]);

    int dg[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg), 0);
    assert_null(vdp_ipc_conn_new(NULL, dg[0], NULL, &side_cb, &s));
    close(dg[1]);

    int sv[2];
    make_socketpair(sv);
    VdpIpcConnCallbacks noframe = side_cb;
    noframe.frame = NULL;
    assert_null(vdp_ipc_conn_new(NULL, sv[0], NULL, &noframe, &s));
    close(sv[1]);
    assert_null(vdp_ipc_conn_new(NULL, -1, NULL, &side_cb, &s));
    assert_int_equal(criticals, before + 4);
    assert_int_equal(vdp_ipc_conn_send(NULL, VDP_IPC_PING, 0, NULL, 0, NULL, 0), VDP_ERR_CLOSED);
    assert_false(vdp_ipc_conn_peer_cred(NULL, NULL, NULL, NULL));
    assert_int_equal(vdp_ipc_conn_peer_pidfd(NULL), -1);
    vdp_ipc_conn_free(NULL);
}

/* ---- vdp_unix_* ---- */

static char *tmp_dir;

static char *tmp_path(const char *name)
{
    return g_build_filename(tmp_dir, name, NULL);
}

static void test_unix_listen_connect_accept(void **state)
{
    GMainContext *ctx = g_main_context_new();
    char *path = tmp_path("agent.sock");
    int lfd = vdp_unix_listen(path, 0600, 4);
    assert_true(lfd >= 0);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(vdp_path_is_socket(path));
    assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);

    /* Nothing to accept yet. */
    assert_int_equal(vdp_unix_accept(lfd), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

    int cfd = vdp_unix_connect(path);
    assert_true(cfd >= 0);
    assert_true(fcntl(cfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
    int afd = vdp_unix_accept(lfd);
    assert_true(afd >= 0);
    assert_true(fcntl(afd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(afd, F_GETFD) & FD_CLOEXEC);

    /* A PING through the accepted pair. */
    Side a, b;
    side_init(&a);
    side_init(&b);
    a.c = vdp_ipc_conn_new(ctx, cfd, NULL, &side_cb, &a);
    b.c = vdp_ipc_conn_new(ctx, afd, NULL, &side_cb, &b);
    pid_t pid;
    uid_t uid;
    assert_true(vdp_ipc_conn_peer_cred(b.c, &pid, &uid, NULL));
    assert_int_equal(pid, getpid());
    assert_int_equal(uid, getuid());
    assert_int_equal(vdp_ipc_conn_send(a.c, VDP_IPC_PING, 3, NULL, 0, NULL, 0), VDP_OK);
    b.want_frames = 1;
    run_until(ctx, &b.done);
    assert_int_equal(b.hdr[0].id, 3);
    side_clear(&a);
    side_clear(&b);

    /* A live listener is never replaced. */
    assert_int_equal(vdp_unix_listen(path, 0600, 4), -1);
    assert_int_equal(errno, EADDRINUSE);

    /* Stale socket (listener gone, file left): replaced. */
    close(lfd);
    assert_true(vdp_path_is_socket(path));
    assert_int_equal(vdp_unix_connect(path), -1);
    assert_int_equal(errno, ECONNREFUSED);
    lfd = vdp_unix_listen(path, 0660, 0);
    assert_true(lfd >= 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    cfd = vdp_unix_connect(path);
    assert_true(cfd >= 0);
    afd = vdp_unix_accept(lfd);
    assert_true(afd >= 0);
    close(cfd);
    close(afd);
    close(lfd);
    g_unlink(path);

    assert_int_equal(vdp_unix_connect(path), -1);
    assert_int_equal(errno, ENOENT);
    assert_false(vdp_path_is_socket(path));
    assert_false(vdp_path_is_socket(NULL));
    g_free(path);
    g_main_context_unref(ctx);
}

static void test_unix_refuses_non_socket(void **state)
{
    char *path = tmp_path("not-a-socket");
    assert_true(g_file_set_contents(path, "keep me", -1, NULL));
    assert_int_equal(vdp_unix_listen(path, 0600, 4), -1);
    assert_int_equal(errno, EEXIST);
    char *content = NULL;
    assert_true(g_file_get_contents(path, &content, NULL, NULL));
    assert_string_equal(content, "keep me");   /* untouched */
    g_free(content);
    assert_false(vdp_path_is_socket(path));

    /* A symlink to a stale socket is not followed or removed. */
    char *sock = tmp_path("target.sock");
    int lfd = vdp_unix_listen(sock, 0600, 1);
    assert_true(lfd >= 0);
    close(lfd);
    char *link = tmp_path("link.sock");
    assert_int_equal(symlink(sock, link), 0);
    assert_int_equal(vdp_unix_listen(link, 0600, 4), -1);
    assert_int_equal(errno, EEXIST);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_true(vdp_path_is_socket(link));   /* stat follows links */

    /* A directory. */
    char *dir = tmp_path("a-dir");
    assert_int_equal(g_mkdir(dir, 0700), 0);
    assert_int_equal(vdp_unix_listen(dir, 0600, 4), -1);

    /* Path checks. */
    char longp[200];
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(vdp_unix_listen(longp, 0600, 4), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(vdp_unix_connect(longp), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(vdp_unix_listen("", 0600, 4), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vdp_unix_accept(-1), -1);

    g_unlink(path);
    g_unlink(link);
    g_unlink(sock);
    g_rmdir(dir);
    g_free(path);
    g_free(sock);
    g_free(link);
    g_free(dir);
}

static int setup_tmp(void **state)
{
    tmp_dir = g_dir_make_tmp("vdp-ipc-conn-XXXXXX", NULL);
    return tmp_dir ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    g_rmdir(tmp_dir);
    g_free(tmp_dir);
    tmp_dir = NULL;
    return 0;
}

int main(void)
{
    g_log_set_handler(NULL, G_LOG_LEVEL_CRITICAL, count_critical, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_welcome),
        cmocka_unit_test(test_reject_wrong_major),
        cmocka_unit_test(test_reject_with_agent_queue_full),
        cmocka_unit_test(test_peer_credentials),
        cmocka_unit_test(test_fds_to_the_right_frames),
        cmocka_unit_test(test_bulk_memfd),
        cmocka_unit_test(test_bulk_pipe),
        cmocka_unit_test(test_malformed_frames),
        cmocka_unit_test(test_oversize_header),
        cmocka_unit_test(test_eof_and_free_in_callbacks),
        cmocka_unit_test(test_stop_delivery),
        cmocka_unit_test(test_send_checks),
        cmocka_unit_test(test_send_vdagent),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_backpressure_many_frames),
        cmocka_unit_test(test_conn_new_invalid),
        cmocka_unit_test_setup_teardown(test_unix_listen_connect_accept, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_unix_refuses_non_socket, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
