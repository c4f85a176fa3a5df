/* test-stream.c - VdpStream over socketpair() and pipes: data both ways,
 * backpressure (watermarks, the hard limit, order and integrity after the
 * reader drains), fd passing, EOF reported once, freeing from inside
 * callbacks, pause/resume (also across a hang-up), flush_sync, shutdown,
 * write errors, and argument checks.
 *
 * Every loop runs on its own GMainContext with a deadline: a test that
 * would hang fails instead. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>

#include "vdp-stream.h"

#define TEST_TIMEOUT_MS 5000

/* ---- helpers ---- */

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)(((i * 2654435761u) >> 13) ^ (i >> 9));
}

static gboolean on_deadline(gpointer data)
{
    *(bool *)data = true;
    return G_SOURCE_REMOVE;
}

/* Iterate ctx until *flag or the deadline. Returns the iteration count. */
static unsigned run_until(GMainContext *ctx, const bool *flag, int timeout_ms)
{
    bool timed_out = false;
    unsigned n = 0;
    GSource *t = g_timeout_source_new((guint)timeout_ms);
    g_source_set_callback(t, on_deadline, &timed_out, NULL);
    g_source_attach(t, ctx);
    while (!*flag && !timed_out) {
        g_main_context_iteration(ctx, TRUE);
        n++;
    }
    g_source_destroy(t);
    g_source_unref(t);
    if (!*flag)
        fail_msg("timed out after %d ms", timeout_ms);
    return n;
}

/* Iterate ctx for ms milliseconds. Returns the iteration count. */
static unsigned run_for(GMainContext *ctx, int ms)
{
    bool done = false;
    unsigned n = 0;
    GSource *t = g_timeout_source_new((guint)ms);
    g_source_set_callback(t, on_deadline, &done, NULL);
    g_source_attach(t, ctx);
    while (!done) {
        g_main_context_iteration(ctx, TRUE);
        n++;
    }
    g_source_unref(t);
    return n;
}

/* Expected g_critical()s from argument checks are counted, not printed. */
static unsigned criticals;

static void count_critical(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
    (void)domain;
    (void)level;
    (void)msg;
    (void)data;
    criticals++;
}

/* Iterate until *counter >= min, failing after the deadline. */
static void run_until_count(GMainContext *ctx, const unsigned *counter, unsigned min)
{
    gint64 end = g_get_monotonic_time() + (gint64)TEST_TIMEOUT_MS * 1000;
    while (*counter < min) {
        if (g_get_monotonic_time() > end)
            fail_msg("timed out waiting for a count of %u (have %u)", min, *counter);
        run_for(ctx, 5);
    }
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Per-stream test state. */
typedef struct Peer {
    VdpStream *s;
    GByteArray *in;
    uint64_t in_total;
    uint64_t pattern_pos;       /* next expected pattern byte when checking */
    bool check_pattern;
    bool pattern_bad;
    int fds[64];
    unsigned nfds;
    uint64_t fd_at[64];         /* in_total when each fd arrived */
    unsigned blocked, ready, drained, closed;
    VdpStreamCloseReason reason;
    int errnum;
    bool free_in_closed, free_in_data;
    bool pause_in_data;
    size_t want_in;             /* set done when in_total reaches it */
    bool done;
    /* Writer side of the backpressure test. */
    uint64_t out_pos, out_total;
    size_t block;
    size_t limit_seen;
    bool busy_seen;
    size_t queued_at_blocked;
} Peer;

static void peer_init(Peer *p)
{
    memset(p, 0, sizeof(*p));
    p->in = g_byte_array_new();
}

static void peer_clear(Peer *p)
{
    for (unsigned i = 0; i < p->nfds; i++) {
        if (p->fds[i] >= 0)
            close(p->fds[i]);
    }
    if (p->s)
        vdp_stream_free(p->s);
    g_byte_array_free(p->in, TRUE);
    p->s = NULL;
}

static void cb_data(void *user, const uint8_t *data, size_t len, int *fds, unsigned nfds)
{
    Peer *p = user;
    assert_true(len > 0);
    for (unsigned i = 0; i < nfds; i++) {
        assert_true(p->nfds < 64);
        p->fd_at[p->nfds] = p->in_total;
        p->fds[p->nfds++] = fds[i];
    }
    if (p->check_pattern) {
        for (size_t i = 0; i < len; i++) {
            if (data[i] != pattern(p->pattern_pos++))
                p->pattern_bad = true;
        }
    } else {
        g_byte_array_append(p->in, data, (guint)len);
    }
    p->in_total += len;
    if (p->want_in && p->in_total >= p->want_in)
        p->done = true;
    if (p->pause_in_data)
        vdp_stream_pause_read(p->s, true);
    if (p->free_in_data) {
        vdp_stream_free(p->s);
        p->s = NULL;
        p->done = true;
    }
}

static void cb_blocked(void *user)
{
    Peer *p = user;
    p->blocked++;
    p->queued_at_blocked = vdp_stream_queued(p->s);
    assert_true(vdp_stream_write_blocked(p->s));
}

static void cb_ready(void *user)
{
    Peer *p = user;
    p->ready++;
    assert_false(vdp_stream_write_blocked(p->s));
}

static void cb_drained(void *user)
{
    Peer *p = user;
    p->drained++;
    assert_int_equal(vdp_stream_queued(p->s), 0);
}

static void cb_closed(void *user, VdpStreamCloseReason reason, int errnum)
{
    Peer *p = user;
    p->closed++;
    p->reason = reason;
    p->errnum = errnum;
    p->done = true;
    if (p->free_in_closed) {
        vdp_stream_free(p->s);
        p->s = NULL;
    }
}

static const VdpStreamCallbacks peer_cb = {
    .data = cb_data,
    .write_blocked = cb_blocked,
    .write_ready = cb_ready,
    .drained = cb_drained,
    .closed = cb_closed,
};

static void make_socketpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void make_pipe(int pv[2])
{
    assert_int_equal(pipe2(pv, O_CLOEXEC), 0);
}

/* ---- data both ways ---- */

static void test_socketpair_both_ways(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer a, b;
    peer_init(&a);
    peer_init(&b);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    b.s = vdp_stream_new(ctx, sv[1], NULL, &peer_cb, &b);
    assert_non_null(a.s);
    assert_non_null(b.s);
    assert_int_equal(vdp_stream_get_fd(a.s), sv[0]);
    /* Made non-blocking and close-on-exec. */
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);

    static const char ping[] = "hello from a";
    static const char pong[] = "and hello from b, a little longer";
    assert_int_equal(vdp_stream_write(a.s, ping, sizeof(ping), NULL, 0), VDP_OK);
    assert_int_equal(vdp_stream_write(b.s, pong, sizeof(pong), NULL, 0), VDP_OK);
    a.want_in = sizeof(pong);
    b.want_in = sizeof(ping);
    run_until(ctx, &b.done, TEST_TIMEOUT_MS);
    run_until(ctx, &a.done, TEST_TIMEOUT_MS);
    assert_int_equal(b.in->len, sizeof(ping));
    assert_memory_equal(b.in->data, ping, sizeof(ping));
    assert_int_equal(a.in->len, sizeof(pong));
    assert_memory_equal(a.in->data, pong, sizeof(pong));

    VdpStreamStats st;
    vdp_stream_get_stats(a.s, &st);
    assert_int_equal(st.bytes_out, sizeof(ping));
    assert_int_equal(st.bytes_in, sizeof(pong));
    assert_true(st.writes >= 1);
    assert_true(st.reads >= 1);
    assert_int_equal(a.closed + b.closed, 0);

    peer_clear(&a);
    peer_clear(&b);
    g_main_context_unref(ctx);
}

static void test_pipe_one_way(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int pv[2];
    make_pipe(pv);
    Peer r, w;
    peer_init(&r);
    peer_init(&w);
    r.s = vdp_stream_new(ctx, pv[0], NULL, &peer_cb, &r);
    w.s = vdp_stream_new(ctx, pv[1], NULL, &peer_cb, &w);
    assert_non_null(r.s);
    assert_non_null(w.s);

    /* 1 MiB in uneven pieces; all of it fits the default queue limit. */
    const size_t total = 1024 * 1024;
    uint8_t *buf = g_malloc(total);
    for (size_t i = 0; i < total; i++)
        buf[i] = pattern(i);
    size_t off = 0, piece = 1;
    while (off < total) {
        size_t n = MIN(piece, total - off);
        assert_int_equal(vdp_stream_write(w.s, buf + off, n, NULL, 0), VDP_OK);
        off += n;
        piece = piece * 3 + 7;
        if (piece > 100000)
            piece = 13;
    }
    r.check_pattern = true;
    r.want_in = total;
    run_until(ctx, &r.done, TEST_TIMEOUT_MS);
    assert_false(r.pattern_bad);
    assert_int_equal(r.in_total, total);
    /* drained comes from the loop once the queue empties. */
    run_until_count(ctx, &w.drained, 1);
    assert_int_equal(w.drained, 1);
    assert_int_equal(vdp_stream_queued(w.s), 0);

    /* Writing to the read end of a pipe is refused. */
    assert_int_equal(vdp_stream_write(r.s, "x", 1, NULL, 0), VDP_ERR_IO);

    /* Closing the writer: the reader sees EOF once. */
    r.done = false;
    vdp_stream_free(w.s);
    w.s = NULL;
    run_until(ctx, &r.done, TEST_TIMEOUT_MS);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.reason, VDP_STREAM_EOF);
    run_for(ctx, 50);
    assert_int_equal(r.closed, 1);
    assert_true(vdp_stream_is_closed(r.s));

    g_free(buf);
    peer_clear(&r);
    peer_clear(&w);
    g_main_context_unref(ctx);
}

/* ---- backpressure ---- */

#define BP_HIGH (64u * 1024u)
#define BP_LOW (16u * 1024u)
#define BP_LIMIT (128u * 1024u)
#define BP_TOTAL (4u * 1024u * 1024u)
#define BP_BLOCK 3000u

/* Write pattern bytes until the queue refuses or everything is written. */
static void bp_fill(Peer *w)
{
    uint8_t buf[BP_BLOCK];
    while (w->out_pos < w->out_total) {
        size_t n = (size_t)MIN((uint64_t)BP_BLOCK, w->out_total - w->out_pos);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(w->out_pos + i);
        bool can = vdp_stream_can_write(w->s, n);
        VdpResult r = vdp_stream_write(w->s, buf, n, NULL, 0);
        size_t q = vdp_stream_queued(w->s);
        if (q > w->limit_seen)
            w->limit_seen = q;
        assert_true(q <= BP_LIMIT);
        if (r == VDP_ERR_BUSY) {
            assert_false(can);
            w->busy_seen = true;
            return;
        }
        assert_int_equal(r, VDP_OK);
        assert_true(can);
        w->out_pos += n;
    }
}

static void bp_ready(void *user)
{
    Peer *w = user;
    w->ready++;
    assert_true(vdp_stream_queued(w->s) <= BP_LOW);
    bp_fill(w);
}

static void bp_blocked(void *user)
{
    Peer *w = user;
    w->blocked++;
    w->queued_at_blocked = vdp_stream_queued(w->s);
}

static void bp_drained(void *user)
{
    Peer *w = user;
    w->drained++;
    if (w->out_pos == w->out_total)
        w->done = true;
}

static const VdpStreamCallbacks bp_writer_cb = {
    .data = cb_data,
    .write_blocked = bp_blocked,
    .write_ready = bp_ready,
    .drained = bp_drained,
    .closed = cb_closed,
};

static void run_backpressure(int wfd, int rfd)
{
    GMainContext *ctx = g_main_context_new();
    VdpStreamConfig cfg = {
        .high_watermark = BP_HIGH, .low_watermark = BP_LOW, .queue_limit = BP_LIMIT,
    };
    Peer w, r;
    peer_init(&w);
    peer_init(&r);
    w.out_total = BP_TOTAL;
    w.s = vdp_stream_new(ctx, wfd, &cfg, &bp_writer_cb, &w);
    assert_non_null(w.s);

    /* The reader is stalled (no stream yet): fill the kernel buffer and
     * then the queue up to its limit. */
    bp_fill(&w);
    assert_true(w.busy_seen);
    assert_int_equal(w.blocked, 1);
    assert_true(w.queued_at_blocked >= BP_HIGH);
    assert_true(vdp_stream_write_blocked(w.s));
    assert_true(vdp_stream_queued(w.s) > BP_LIMIT - BP_BLOCK);
    assert_true(vdp_stream_queued(w.s) <= BP_LIMIT);
    /* A write that can never fit is refused as too large, not busy. */
    static uint8_t huge[BP_LIMIT + 1];
    assert_int_equal(vdp_stream_write(w.s, huge, sizeof(huge), NULL, 0), VDP_ERR_TOO_LARGE);

    /* Nothing moves while the reader is stalled. */
    run_for(ctx, 30);
    assert_int_equal(w.ready, 0);

    /* Now drain: write_ready refills until everything is out. */
    r.check_pattern = true;
    r.want_in = BP_TOTAL;
    r.s = vdp_stream_new(ctx, rfd, NULL, &peer_cb, &r);
    assert_non_null(r.s);
    run_until(ctx, &r.done, TEST_TIMEOUT_MS);
    run_until(ctx, &w.done, TEST_TIMEOUT_MS);
    assert_false(r.pattern_bad);
    assert_int_equal(r.in_total, BP_TOTAL);
    assert_int_equal(w.out_pos, BP_TOTAL);
    assert_true(w.ready >= 1);
    assert_int_equal(w.ready, w.blocked);   /* every block was followed by ready */
    assert_true(w.drained >= 1);
    assert_true(w.limit_seen <= BP_LIMIT);
    assert_false(vdp_stream_write_blocked(w.s));

    VdpStreamStats st;
    vdp_stream_get_stats(w.s, &st);
    assert_int_equal(st.bytes_out, BP_TOTAL);
    assert_int_equal(st.blocked_count, w.blocked);
    assert_true(st.queue_peak <= BP_LIMIT);
    assert_true(st.queue_peak >= BP_HIGH);
    assert_int_equal(w.closed + r.closed, 0);

    peer_clear(&w);
    peer_clear(&r);
    g_main_context_unref(ctx);
}

static void test_backpressure_socketpair(void **state)
{
    int sv[2];
    make_socketpair(sv);
    run_backpressure(sv[0], sv[1]);
}

static void test_backpressure_pipe(void **state)
{
    int pv[2];
    make_pipe(pv);
    run_backpressure(pv[1], pv[0]);
}

/* ---- fd passing ---- */

static void test_fd_passing(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    VdpStreamConfig cfg = {.pass_fds = true};
    Peer a, b;
    peer_init(&a);
    peer_init(&b);
    a.s = vdp_stream_new(ctx, sv[0], &cfg, &peer_cb, &a);
    b.s = vdp_stream_new(ctx, sv[1], &cfg, &peer_cb, &b);
    assert_non_null(a.s);
    assert_non_null(b.s);

    int p1[2], p2[2];
    make_pipe(p1);
    make_pipe(p2);
    struct stat st1, st2;
    assert_int_equal(fstat(p1[1], &st1), 0);
    assert_int_equal(fstat(p2[1], &st2), 0);

    /* "A" + pipe 1, "BB" without, "CCC" + pipe 2 and a duplicate. */
    int dup2nd = dup(p2[1]);
    int two[2] = {p2[1], dup2nd};
    assert_int_equal(vdp_stream_write(a.s, "A", 1, &p1[1], 1), VDP_OK);
    assert_int_equal(vdp_stream_write(a.s, "BB", 2, NULL, 0), VDP_OK);
    assert_int_equal(vdp_stream_write(a.s, "CCC", 3, two, 2), VDP_OK);
    b.want_in = 6;
    run_until(ctx, &b.done, TEST_TIMEOUT_MS);
    assert_int_equal(b.in->len, 6);
    assert_memory_equal(b.in->data, "ABBCCC", 6);
    assert_int_equal(b.nfds, 3);
    /* Each fd arrived no later than the byte it was attached to. */
    assert_int_equal(b.fd_at[0], 0);
    assert_true(b.fd_at[1] <= 3);
    assert_true(b.fd_at[2] <= 3);
    struct stat r0, r1, r2;
    assert_int_equal(fstat(b.fds[0], &r0), 0);
    assert_int_equal(fstat(b.fds[1], &r1), 0);
    assert_int_equal(fstat(b.fds[2], &r2), 0);
    assert_true(r0.st_ino == st1.st_ino);
    assert_true(r1.st_ino == st2.st_ino);
    assert_true(r2.st_ino == st2.st_ino);
    /* Received with close-on-exec. */
    assert_true(fcntl(b.fds[0], F_GETFD) & FD_CLOEXEC);

    /* Write through the received fd; read on our side of the pipe. */
    static const char msg[] = "through the passed pipe";
    assert_int_equal(write(b.fds[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
    char got[64];
    assert_int_equal(read(p1[0], got, sizeof(got)), (ssize_t)sizeof(msg));
    assert_memory_equal(got, msg, sizeof(msg));
    /* The sender closed its copy once it went out: closing the received
     * one leaves the pipe without writers. */
    close(b.fds[0]);
    b.fds[0] = -1;
    fcntl(p1[0], F_SETFL, O_NONBLOCK);
    assert_int_equal(read(p1[0], got, sizeof(got)), 0);

    /* Argument checks. */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int many[VDP_STREAM_MAX_FDS + 1];
    for (unsigned i = 0; i <= VDP_STREAM_MAX_FDS; i++)
        many[i] = devnull;
    assert_int_equal(vdp_stream_write(a.s, "x", 1, many, VDP_STREAM_MAX_FDS + 1), VDP_ERR_TOO_LARGE);
    assert_int_equal(vdp_stream_write(a.s, NULL, 0, &devnull, 1), VDP_ERR_RANGE);
    int neg = -1;
    assert_int_equal(vdp_stream_write(a.s, "x", 1, &neg, 1), VDP_ERR_RANGE);
    assert_true(fd_is_open(devnull));
    close(devnull);

    close(p1[0]);
    close(p2[0]);
    peer_clear(&a);
    peer_clear(&b);
    g_main_context_unref(ctx);
}

static void test_fd_passing_refused_without_pass_fds(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    int pv[2];
    make_pipe(pv);
    assert_int_equal(vdp_stream_write(a.s, "x", 1, &pv[1], 1), VDP_ERR_RANGE);
    assert_true(fd_is_open(pv[1]));
    close(pv[0]);
    close(pv[1]);
    close(sv[1]);
    peer_clear(&a);
    g_main_context_unref(ctx);

    /* pass_fds on something that is not a socket: refused with ENOTSOCK
     * (a descriptor the caller got at run time, not a programming error). */
    make_pipe(pv);
    VdpStreamConfig cfg = {.pass_fds = true};
    Peer p;
    peer_init(&p);
    unsigned before = criticals;
    errno = 0;
    assert_null(vdp_stream_new(NULL, pv[0], &cfg, &peer_cb, &p));
    assert_int_equal(errno, ENOTSOCK);
    assert_int_equal(criticals, before);
    assert_false(fd_is_open(pv[0]));   /* owned from the call on */
    close(pv[1]);
    peer_clear(&p);
}

/* Queued fds (peer stalled) are closed when the stream is freed. */
static void test_queued_fds_closed_on_free(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    VdpStreamConfig cfg = {.pass_fds = true, .high_watermark = 1024 * 1024};
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], &cfg, &peer_cb, &a);
    /* Fill the socket buffer so the next writes stay queued. */
    static uint8_t junk[64 * 1024];
    while (vdp_stream_queued(a.s) == 0)
        assert_int_equal(vdp_stream_write(a.s, junk, sizeof(junk), NULL, 0), VDP_OK);
    int pv[2];
    make_pipe(pv);
    assert_int_equal(vdp_stream_write(a.s, "f", 1, &pv[1], 1), VDP_OK);
    assert_true(fd_is_open(pv[1]));   /* still queued, owned by the stream */
    peer_clear(&a);
    assert_false(fd_is_open(pv[1]));
    close(pv[0]);
    close(sv[1]);
    g_main_context_unref(ctx);
}

/* The queue's descriptor bound. */
static void test_queued_fds_limit(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    VdpStreamConfig cfg = {.pass_fds = true};
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], &cfg, &peer_cb, &a);
    static uint8_t junk[64 * 1024];
    while (vdp_stream_queued(a.s) == 0)
        assert_int_equal(vdp_stream_write(a.s, junk, sizeof(junk), NULL, 0), VDP_OK);
    unsigned queued = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        VdpResult r = vdp_stream_write(a.s, "f", 1, &fd, 1);
        if (r != VDP_OK) {
            assert_int_equal(r, VDP_ERR_BUSY);
            close(fd);
            break;
        }
        queued++;
        assert_true(queued <= VDP_STREAM_MAX_QUEUED_FDS);
    }
    assert_int_equal(queued, VDP_STREAM_MAX_QUEUED_FDS);
    peer_clear(&a);
    close(sv[1]);
    g_main_context_unref(ctx);
}

/* ---- EOF, close, free from callbacks ---- */

static void test_eof_once_after_data(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer b;
    peer_init(&b);
    b.s = vdp_stream_new(ctx, sv[1], NULL, &peer_cb, &b);
    /* The peer writes and hangs up before we ever read. */
    static uint8_t tail[200000];
    for (size_t i = 0; i < sizeof(tail); i++)
        tail[i] = pattern(i);
    size_t off = 0;
    while (off < 100000) {
        ssize_t n = write(sv[0], tail + off, 100000 - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    close(sv[0]);
    unsigned iters = run_until(ctx, &b.done, TEST_TIMEOUT_MS);
    assert_int_equal(b.closed, 1);
    assert_int_equal(b.reason, VDP_STREAM_EOF);
    assert_int_equal(b.in->len, 100000);        /* everything readable came first */
    assert_memory_equal(b.in->data, tail, 100000);
    assert_true(vdp_stream_is_closed(b.s));
    assert_int_equal(vdp_stream_write(b.s, "x", 1, NULL, 0), VDP_ERR_CLOSED);
    assert_false(vdp_stream_can_write(b.s, 1));
    /* Nothing more, and the loop does not spin on the dead fd. */
    iters = run_for(ctx, 100);
    assert_int_equal(b.closed, 1);
    assert_true(iters < 20);
    peer_clear(&b);
    g_main_context_unref(ctx);
}

static void test_free_inside_closed(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer b;
    peer_init(&b);
    b.free_in_closed = true;
    b.s = vdp_stream_new(ctx, sv[1], NULL, &peer_cb, &b);
    assert_int_equal(write(sv[0], "bye", 3), 3);
    close(sv[0]);
    run_until(ctx, &b.done, TEST_TIMEOUT_MS);
    assert_null(b.s);
    assert_int_equal(b.closed, 1);
    assert_int_equal(b.in->len, 3);
    assert_false(fd_is_open(sv[1]));
    run_for(ctx, 20);
    assert_int_equal(b.closed, 1);
    peer_clear(&b);
    g_main_context_unref(ctx);
}

static void test_free_inside_data(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer b;
    peer_init(&b);
    b.free_in_data = true;
    VdpStreamConfig cfg = {.read_size = 16};
    b.s = vdp_stream_new(ctx, sv[1], &cfg, &peer_cb, &b);
    static uint8_t data[4096];
    assert_int_equal(write(sv[0], data, sizeof(data)), (ssize_t)sizeof(data));
    close(sv[0]);
    run_until(ctx, &b.done, TEST_TIMEOUT_MS);
    assert_null(b.s);
    assert_int_equal(b.in_total, 16);   /* one read, then freed */
    assert_int_equal(b.closed, 0);      /* no callbacks after free */
    run_for(ctx, 20);
    assert_int_equal(b.closed, 0);
    peer_clear(&b);
    g_main_context_unref(ctx);
}

static void free_in_blocked(void *user)
{
    Peer *p = user;
    p->blocked++;
    vdp_stream_free(p->s);
    p->s = NULL;
}

static void test_free_inside_write_blocked(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    VdpStreamCallbacks cb = peer_cb;
    cb.write_blocked = free_in_blocked;
    VdpStreamConfig cfg = {.high_watermark = 1024};
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], &cfg, &cb, &a);
    static uint8_t junk[1000];
    while (a.s)
        assert_int_equal(vdp_stream_write(a.s, junk, sizeof(junk), NULL, 0), VDP_OK);
    assert_int_equal(a.blocked, 1);
    run_for(ctx, 20);
    close(sv[1]);
    peer_clear(&a);
    g_main_context_unref(ctx);
}

/* ---- pause / resume ---- */

static void test_pause_resume(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer b;
    peer_init(&b);
    b.s = vdp_stream_new(ctx, sv[1], NULL, &peer_cb, &b);

    vdp_stream_pause_read(b.s, true);
    vdp_stream_pause_read(b.s, true);
    assert_int_equal(write(sv[0], "12345", 5), 5);
    run_for(ctx, 50);
    assert_int_equal(b.in_total, 0);
    vdp_stream_pause_read(b.s, false);     /* still paused once */
    run_for(ctx, 50);
    assert_int_equal(b.in_total, 0);
    vdp_stream_pause_read(b.s, false);
    b.want_in = 5;
    run_until(ctx, &b.done, TEST_TIMEOUT_MS);
    assert_memory_equal(b.in->data, "12345", 5);

    /* Pausing inside the data callback stops further delivery at once. */
    b.done = false;
    b.pause_in_data = true;
    b.want_in = 0;
    assert_int_equal(write(sv[0], "abc", 3), 3);
    gint64 end = g_get_monotonic_time() + (gint64)TEST_TIMEOUT_MS * 1000;
    while (b.in_total < 8) {
        assert_true(g_get_monotonic_time() < end);
        run_for(ctx, 5);
    }
    uint64_t got = b.in_total;
    assert_int_equal(write(sv[0], "def", 3), 3);
    run_for(ctx, 50);
    assert_int_equal(b.in_total, got);
    b.pause_in_data = false;

    /* A hang-up while paused: no EOF, no busy loop, data first on resume. */
    close(sv[0]);
    unsigned iters = run_for(ctx, 150);
    assert_true(iters < 30);
    assert_int_equal(b.closed, 0);
    assert_int_equal(b.in_total, got);
    vdp_stream_pause_read(b.s, false);
    run_until(ctx, &b.done, TEST_TIMEOUT_MS);
    assert_int_equal(b.closed, 1);
    assert_int_equal(b.reason, VDP_STREAM_EOF);
    assert_int_equal(b.in->len, 11);
    assert_memory_equal(b.in->data, "12345abcdef", 11);

    /* Unbalanced resume is harmless. */
    vdp_stream_pause_read(b.s, false);
    peer_clear(&b);
    g_main_context_unref(ctx);
}

/* ---- flush_sync, shutdown, errors ---- */

typedef struct Drainer {
    int fd;
    uint64_t total, want;
    bool bad;
} Drainer;

static gpointer drainer_thread(gpointer data)
{
    Drainer *d = data;
    uint8_t buf[65536];
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);   /* let the writer block first */
    int fl = fcntl(d->fd, F_GETFL);
    fcntl(d->fd, F_SETFL, fl & ~O_NONBLOCK);
    while (d->total < d->want) {
        ssize_t n = read(d->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != pattern(d->total + (uint64_t)i))
                d->bad = true;
        }
        d->total += (uint64_t)n;
    }
    return NULL;
}

static void test_flush_sync(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    VdpStreamConfig cfg = {.high_watermark = 2 * 1024 * 1024};
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], &cfg, &peer_cb, &a);
    const size_t total = 3 * 1024 * 1024;
    uint8_t *buf = g_malloc(total);
    for (size_t i = 0; i < total; i++)
        buf[i] = pattern(i);
    assert_int_equal(vdp_stream_write(a.s, buf, total, NULL, 0), VDP_OK);
    assert_true(vdp_stream_queued(a.s) > 0);

    /* No reader: a short flush times out with data still queued. */
    gint64 t0 = g_get_monotonic_time();
    assert_int_equal(vdp_stream_flush_sync(a.s, 50), VDP_ERR_BUSY);
    gint64 took = g_get_monotonic_time() - t0;
    assert_true(took >= 45 * 1000);
    assert_true(took < 2000 * 1000);
    assert_true(vdp_stream_queued(a.s) > 0);

    Drainer d = {.fd = sv[1], .want = total};
    GThread *th = g_thread_new("drainer", drainer_thread, &d);
    assert_int_equal(vdp_stream_flush_sync(a.s, TEST_TIMEOUT_MS), VDP_OK);
    assert_int_equal(vdp_stream_queued(a.s), 0);
    g_thread_join(th);
    assert_int_equal(d.total, total);
    assert_false(d.bad);
    /* Deferred notifications arrive from the loop. */
    run_until_count(ctx, &a.drained, 1);
    assert_int_equal(a.ready, a.blocked);

    g_free(buf);
    close(sv[1]);
    peer_clear(&a);
    g_main_context_unref(ctx);
}

static void test_shutdown(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    vdp_stream_shutdown(a.s);
    assert_int_equal(a.closed, 0);           /* not from inside the call */
    assert_true(vdp_stream_is_closed(a.s));
    assert_int_equal(vdp_stream_write(a.s, "x", 1, NULL, 0), VDP_ERR_CLOSED);
    assert_int_equal(vdp_stream_flush_sync(a.s, 10), VDP_ERR_CLOSED);
    vdp_stream_shutdown(a.s);                /* twice is harmless */
    run_until(ctx, &a.done, TEST_TIMEOUT_MS);
    assert_int_equal(a.closed, 1);
    assert_int_equal(a.reason, VDP_STREAM_LOCAL);
    run_for(ctx, 30);
    assert_int_equal(a.closed, 1);
    close(sv[1]);
    peer_clear(&a);
    g_main_context_unref(ctx);

    /* Shutdown then free before the loop runs: no callback at all. */
    ctx = g_main_context_new();
    make_socketpair(sv);
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    vdp_stream_shutdown(a.s);
    vdp_stream_free(a.s);
    a.s = NULL;
    run_for(ctx, 20);
    assert_int_equal(a.closed, 0);
    close(sv[1]);
    peer_clear(&a);
    g_main_context_unref(ctx);
}

static void test_write_error_pipe(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int pv[2];
    make_pipe(pv);
    Peer w;
    peer_init(&w);
    w.s = vdp_stream_new(ctx, pv[1], NULL, &peer_cb, &w);
    close(pv[0]);
    /* EPIPE instead of SIGPIPE killing the test; reported from the loop. */
    assert_int_equal(vdp_stream_write(w.s, "data", 4, NULL, 0), VDP_OK);
    assert_int_equal(w.closed, 0);
    run_until(ctx, &w.done, TEST_TIMEOUT_MS);
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.reason, VDP_STREAM_ERROR);
    assert_int_equal(w.errnum, EPIPE);
    sigset_t pending;
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
    peer_clear(&w);

    /* Write end with nothing queued: the reader going away is EOF. */
    make_pipe(pv);
    peer_init(&w);
    w.s = vdp_stream_new(ctx, pv[1], NULL, &peer_cb, &w);
    run_for(ctx, 10);
    close(pv[0]);
    run_until(ctx, &w.done, TEST_TIMEOUT_MS);
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.reason, VDP_STREAM_EOF);
    peer_clear(&w);
    g_main_context_unref(ctx);
}

static void test_write_error_socket_queued(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    static uint8_t junk[64 * 1024];
    while (vdp_stream_queued(a.s) == 0)
        assert_int_equal(vdp_stream_write(a.s, junk, sizeof(junk), NULL, 0), VDP_OK);
    close(sv[1]);
    run_until(ctx, &a.done, TEST_TIMEOUT_MS);
    assert_int_equal(a.closed, 1);
    /* Either the write failed (EPIPE/ECONNRESET) or the read saw EOF. */
    assert_true(a.reason == VDP_STREAM_EOF || a.reason == VDP_STREAM_ERROR);
    assert_int_equal(vdp_stream_queued(a.s), 0);   /* the queue is dropped */
    run_for(ctx, 30);
    assert_int_equal(a.closed, 1);
    peer_clear(&a);
    g_main_context_unref(ctx);
}

/* The peer's last bytes before it hangs up are delivered even though our
 * own writes to it fail: reads come before writes, and a broken write
 * drains the input before closed(). */
static void test_last_words_before_hangup(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    static uint8_t junk[64 * 1024];
    while (vdp_stream_queued(a.s) == 0)
        assert_int_equal(vdp_stream_write(a.s, junk, sizeof(junk), NULL, 0), VDP_OK);
    assert_int_equal(write(sv[1], "last words", 10), 10);
    close(sv[1]);
    run_until(ctx, &a.done, TEST_TIMEOUT_MS);
    assert_int_equal(a.closed, 1);
    assert_int_equal(a.in->len, 10);
    assert_memory_equal(a.in->data, "last words", 10);
    run_for(ctx, 20);
    assert_int_equal(a.closed, 1);
    peer_clear(&a);

    /* The write that breaks happens inside vdp_stream_write(). */
    make_socketpair(sv);
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    assert_int_equal(write(sv[1], "bye", 3), 3);
    close(sv[1]);
    assert_int_equal(vdp_stream_write(a.s, "hello?", 6, NULL, 0), VDP_OK);
    assert_int_equal(a.closed, 0);                 /* never from inside the call */
    assert_true(vdp_stream_is_closed(a.s));
    assert_int_equal(vdp_stream_write(a.s, "again", 5, NULL, 0), VDP_ERR_CLOSED);
    run_until(ctx, &a.done, TEST_TIMEOUT_MS);
    assert_int_equal(a.closed, 1);
    assert_int_equal(a.in->len, 3);
    assert_memory_equal(a.in->data, "bye", 3);
    peer_clear(&a);
    g_main_context_unref(ctx);
}

/* A write breaks while reading is paused: closed() comes once and the
 * dead stream's source goes quiet (it used to re-arm itself forever, a
 * 100 % CPU loop that also starved idle sources such as the owner's free). */
static void test_write_error_while_paused_goes_quiet(void **state)
{
    GMainContext *ctx = g_main_context_new();
    int sv[2];
    make_socketpair(sv);
    Peer a;
    peer_init(&a);
    a.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &a);
    vdp_stream_pause_read(a.s, true);
    close(sv[1]);
    static uint8_t junk[64 * 1024];
    for (int i = 0; i < 4 && !vdp_stream_is_closed(a.s); i++)
        (void)vdp_stream_write(a.s, junk, sizeof(junk), NULL, 0);
    run_until(ctx, &a.done, TEST_TIMEOUT_MS);
    assert_int_equal(a.closed, 1);
    /* Nothing may stay ready: a few iterations drain what is left, then the
     * context has nothing to dispatch. */
    unsigned spins = 0;
    while (g_main_context_iteration(ctx, FALSE) && spins < 1000)
        spins++;
    assert_true(spins < 1000);
    assert_int_equal(a.closed, 1);
    peer_clear(&a);
    g_main_context_unref(ctx);
}

static void test_invalid_args(void **state)
{
    Peer p;
    peer_init(&p);
    int sv[2];
    VdpStreamCallbacks nodata = peer_cb;
    nodata.data = NULL;
    unsigned before = criticals;

    make_socketpair(sv);
    assert_null(vdp_stream_new(NULL, sv[0], NULL, &nodata, &p));
    assert_false(fd_is_open(sv[0]));
    close(sv[1]);

    make_socketpair(sv);
    VdpStreamConfig bad = {.high_watermark = 100, .low_watermark = 200};
    assert_null(vdp_stream_new(NULL, sv[0], &bad, &peer_cb, &p));
    close(sv[1]);

    make_socketpair(sv);
    VdpStreamConfig bad2 = {.high_watermark = 100, .queue_limit = 50};
    assert_null(vdp_stream_new(NULL, sv[0], &bad2, &peer_cb, &p));
    close(sv[1]);

    assert_null(vdp_stream_new(NULL, -1, NULL, &peer_cb, &p));
    assert_int_equal(criticals, before + 4);

    /* Defaults: low = high / 4, limit = 2 * high. */
    GMainContext *ctx = g_main_context_new();
    make_socketpair(sv);
    p.s = vdp_stream_new(ctx, sv[0], NULL, &peer_cb, &p);
    assert_true(vdp_stream_can_write(p.s, 2 * VDP_STREAM_HIGH_WATERMARK_DEFAULT));
    assert_false(vdp_stream_can_write(p.s, 2 * VDP_STREAM_HIGH_WATERMARK_DEFAULT + 1));
    assert_int_equal(vdp_stream_write(p.s, NULL, 3, NULL, 0), VDP_ERR_RANGE);
    assert_int_equal(vdp_stream_write(p.s, "", 0, NULL, 0), VDP_OK);
    assert_int_equal(vdp_stream_queued(p.s), 0);
    close(sv[1]);
    peer_clear(&p);
    g_main_context_unref(ctx);
}

int main(void)
{
    /* Fail loudly if a write ever raises SIGPIPE. */
    signal(SIGPIPE, SIG_DFL);
    g_log_set_handler(NULL, G_LOG_LEVEL_CRITICAL, count_critical, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socketpair_both_ways),
        cmocka_unit_test(test_pipe_one_way),
        cmocka_unit_test(test_backpressure_socketpair),
        cmocka_unit_test(test_backpressure_pipe),
        cmocka_unit_test(test_fd_passing),
        cmocka_unit_test(test_fd_passing_refused_without_pass_fds),
        cmocka_unit_test(test_queued_fds_closed_on_free),
        cmocka_unit_test(test_queued_fds_limit),
        cmocka_unit_test(test_eof_once_after_data),
        cmocka_unit_test(test_free_inside_closed),
        cmocka_unit_test(test_free_inside_data),
        cmocka_unit_test(test_free_inside_write_blocked),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_flush_sync),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_write_error_pipe),
        cmocka_unit_test(test_write_error_socket_queued),
        cmocka_unit_test(test_last_words_before_hangup),
        cmocka_unit_test(test_write_error_while_paused_goes_quiet),
        cmocka_unit_test(test_invalid_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
