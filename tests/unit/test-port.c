/* test-port.c - VdpPort over real sockets in a temporary directory.
 *
 * Every test runs its own GMainContext. Waiting is always bounded:
 * run_until() iterates the context until a condition holds or a deadline
 * passes (a 5 ms tick keeps the deadline checked even when nothing
 * happens), so no test can hang. Raw peers (a listening socket that
 * accepts and drops, a socket that never reads, a writer of corrupt
 * chunks) are plain non-blocking fds watched by the same context.
 *
 * Set VDP_TEST_VERBOSE=1 to see every state change sentence.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vdp-chunk.h"
#include "vdp-msg.h"
#include "vdp-port.h"
#include "vdp-unix.h"
#include "vdp-wire.h"
#include "vdp-checksum.h"
#include "vdp-testdir.h"

/* Longest any single wait may take before the test fails. */
#define WAIT_MS 20000
/* Tick that keeps run_until() checking its deadline. */
#define TICK_MS 5
/* Payloads up to this size are copied into the receive log. */
#define RX_COPY_MAX (256u * 1024u)
/* Size of the streamed message of the big streaming test. */
#define BIG_STREAM (32u * 1024u * 1024u)
/* Piece offered per send_data call in the streaming test. */
#define PUMP_PIECE (256u * 1024u)

static bool verbose;

/* ---- small utilities ---- */


/* Deterministic content, checkable by position. */
static uint8_t pattern_byte(uint32_t seed, size_t i)
{
    return (uint8_t)(i * 131u + (i >> 11) + seed * 7u);
}

static void pattern_fill(uint8_t *buf, uint32_t seed, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern_byte(seed, off + i);
}

static gint64 now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* ---- environment: a context and a temporary directory ---- */

typedef struct Env {
    GMainContext *ctx;
    char *dir;
    char *path;     /* dir/agent.sock */
} Env;

static int env_setup(void **state)
{
    Env *e = g_new0(Env, 1);
    GError *error = NULL;
    e->ctx = g_main_context_new();
    e->dir = g_dir_make_tmp("test-port-XXXXXX", &error);
    assert_non_null(e->dir);
    e->path = g_build_filename(e->dir, "agent.sock", NULL);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    Env *e = *state;
    /* let deferred frees run */
    for (int i = 0; i < 100 && g_main_context_iteration(e->ctx, FALSE); i++)
        ;
    g_main_context_unref(e->ctx);
    vdp_test_remove_dir(e->dir);
    g_free(e->path);
    g_free(e->dir);
    g_free(e);
    return 0;
}

static gboolean tick_cb(gpointer data)
{
    return G_SOURCE_CONTINUE;
}

typedef bool (*CondFn)(void *data);

static bool run_until(Env *e, CondFn cond, void *data, unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    GSource *tick = g_timeout_source_new(TICK_MS);
    g_source_set_callback(tick, tick_cb, NULL, NULL);
    g_source_attach(tick, e->ctx);
    bool ok;
    while (!(ok = cond(data)) && g_get_monotonic_time() < deadline)
        g_main_context_iteration(e->ctx, TRUE);
    g_source_destroy(tick);
    g_source_unref(tick);
    return ok;
}

static bool never(void *data)
{
    return false;
}

static void run_for(Env *e, unsigned ms)
{
    run_until(e, never, NULL, ms);
}

/* ---- a port under test and what it saw ---- */

typedef struct RxMsg {
    uint32_t chunk_port, type;
    size_t len;
    uint64_t hash;
    GBytes *copy;           /* payload, if at most RX_COPY_MAX */
    bool during_stream;     /* arrived while a streamed message was in progress */
} RxMsg;

typedef struct Side Side;
struct Side {
    const char *name;
    VdpPort *port;
    VdpPortState state;
    GArray *states;         /* VdpPortState, every report in order */
    char why[512];
    GArray *rx;             /* RxMsg */
    GString *order;         /* 'm' message port 1, 'n' port 2, 'B' begin, 'E' end, 'A' abort */
    unsigned problems, fatal;
    unsigned blocked, ready;
    bool is_blocked;

    /* streamed input: payload after the head must be pattern(stream_seed) */
    uint32_t stream_seed;
    bool in_stream;
    VdpMsgHeader stream_hdr;
    uint8_t stream_head[16];
    size_t stream_head_len;
    size_t stream_got;
    bool stream_bad;
    unsigned streams_done, aborts;
    gint64 stream_end_ms;

    /* actions taken from inside callbacks */
    bool free_on_message;   /* vdp_port_free() in the first message callback */
    bool stop_on_message;   /* vdp_port_stop() in the first message callback */
    void (*on_write_ready)(Side *s);
    void *hook;
};

static void side_init(Side *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->states = g_array_new(FALSE, FALSE, sizeof(VdpPortState));
    s->rx = g_array_new(FALSE, TRUE, sizeof(RxMsg));
    s->order = g_string_new(NULL);
}

static void side_clear(Side *s)
{
    if (s->port)
        vdp_port_free(s->port);
    s->port = NULL;
    for (guint i = 0; i < s->rx->len; i++) {
        RxMsg *m = &g_array_index(s->rx, RxMsg, i);
        if (m->copy)
            g_bytes_unref(m->copy);
    }
    g_array_free(s->rx, TRUE);
    g_array_free(s->states, TRUE);
    g_string_free(s->order, TRUE);
}

static void side_state(void *user, VdpPortState st, const char *why)
{
    Side *s = user;
    s->state = st;
    g_array_append_val(s->states, st);
    g_strlcpy(s->why, why ? why : "", sizeof(s->why));
    if (verbose)
        printf("    [%s] %s: %s\n", s->name, vdp_port_state_name(st), why ? why : "");
}

static void side_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                         const uint8_t *data, size_t len)
{
    Side *s = user;
    RxMsg m = {
        .chunk_port = chunk_port,
        .type = hdr->type,
        .len = len,
        .hash = vdp_fnv1a(VDP_FNV_INIT, data, len),
        .copy = len <= RX_COPY_MAX ? g_bytes_new(data, len) : NULL,
        .during_stream = s->in_stream,
    };
    assert_int_equal(hdr->size, len);
    assert_int_equal(hdr->protocol, VD_AGENT_PROTOCOL);
    assert_true(hdr->opaque == 0);
    g_array_append_val(s->rx, m);
    g_string_append_c(s->order, chunk_port == VDP_CLIENT_PORT ? 'm' : 'n');
    if (s->free_on_message) {
        s->free_on_message = false;
        vdp_port_free(s->port);
        s->port = NULL;
    } else if (s->stop_on_message) {
        s->stop_on_message = false;
        vdp_port_stop(s->port);
    }
}

static void side_stream_begin(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                              const uint8_t *head, size_t head_len)
{
    Side *s = user;
    assert_false(s->in_stream);
    assert_true(head_len <= sizeof(s->stream_head));
    s->in_stream = true;
    s->stream_hdr = *hdr;
    memcpy(s->stream_head, head, head_len);
    s->stream_head_len = head_len;
    s->stream_got = 0;
    g_string_append_c(s->order, 'B');
}

static void side_stream_data(void *user, uint32_t chunk_port, const uint8_t *data, size_t len)
{
    Side *s = user;
    assert_true(s->in_stream);
    for (size_t i = 0; i < len && !s->stream_bad; i++)
        if (data[i] != pattern_byte(s->stream_seed, s->stream_got + i))
            s->stream_bad = true;
    s->stream_got += len;
}

static void side_stream_end(void *user, uint32_t chunk_port)
{
    Side *s = user;
    assert_true(s->in_stream);
    s->in_stream = false;
    s->streams_done++;
    s->stream_end_ms = now_ms();
    g_string_append_c(s->order, 'E');
}

static void side_stream_abort(void *user, uint32_t chunk_port)
{
    Side *s = user;
    s->in_stream = false;
    s->aborts++;
    g_string_append_c(s->order, 'A');
}

static void side_problem(void *user, VdpReasmEvent ev, uint32_t chunk_port,
                         const VdpMsgHeader *hdr, const VdpError *err)
{
    Side *s = user;
    s->problems++;
    if (ev == VDP_REASM_FATAL)
        s->fatal++;
    if (verbose)
        printf("    [%s] problem on port %u: %s\n", s->name, chunk_port, err->text);
}

static void side_write_blocked(void *user)
{
    Side *s = user;
    s->blocked++;
    s->is_blocked = true;
}

static void side_write_ready(void *user)
{
    Side *s = user;
    s->ready++;
    s->is_blocked = false;
    if (s->on_write_ready)
        s->on_write_ready(s);
}

/* Whole messages only (no stream callbacks). */
static const VdpPortCallbacks whole_cb = {
    .state_changed = side_state,
    .message = side_message,
    .problem = side_problem,
    .write_blocked = side_write_blocked,
    .write_ready = side_write_ready,
};

/* With streamed input. */
static const VdpPortCallbacks stream_cb = {
    .state_changed = side_state,
    .message = side_message,
    .stream_begin = side_stream_begin,
    .stream_data = side_stream_data,
    .stream_end = side_stream_end,
    .stream_abort = side_stream_abort,
    .problem = side_problem,
    .write_blocked = side_write_blocked,
    .write_ready = side_write_ready,
};

static VdpPortConfig host_config(Env *e)
{
    return (VdpPortConfig){.path = e->path, .mode = VDP_PORT_LISTEN, .dir = VDP_FROM_GUEST};
}

static VdpPortConfig guest_config(Env *e)
{
    return (VdpPortConfig){.path = e->path, .mode = VDP_PORT_CONNECT, .dir = VDP_FROM_HOST,
                           .max_chunk_in = VDP_CHUNK_SIZE_DEFAULT};
}

static void side_open(Env *e, Side *s, const VdpPortConfig *cfg, const VdpPortCallbacks *cb)
{
    s->port = vdp_port_new(e->ctx, cfg, cb, s);
    assert_non_null(s->port);
    vdp_port_start(s->port);
}

static bool is_waiting_cb(void *data);

/* Host first (until it listens), then the guest: the guest's first
 * connect then succeeds, which keeps the report counts exact. */
static void start_pair(Env *e, Side *host, const VdpPortConfig *hc, const VdpPortCallbacks *hcb,
                       Side *guest, const VdpPortConfig *gc, const VdpPortCallbacks *gcb)
{
    side_open(e, host, hc, hcb);
    assert_true(run_until(e, is_waiting_cb, host, WAIT_MS));
    side_open(e, guest, gc, gcb);
}

static bool is_open_cb(void *data)
{
    Side *s = data;
    return s->state == VDP_PORT_STATE_OPEN;
}

static bool is_waiting_cb(void *data)
{
    Side *s = data;
    return s->state == VDP_PORT_STATE_WAITING;
}

typedef struct Pair {
    Side *a, *b;
} Pair;

static bool both_open_cb(void *data)
{
    Pair *pr = data;
    return pr->a->state == VDP_PORT_STATE_OPEN && pr->b->state == VDP_PORT_STATE_OPEN;
}

static void wait_both_open(Env *e, Side *a, Side *b)
{
    Pair pr = {a, b};
    assert_true(run_until(e, both_open_cb, &pr, WAIT_MS));
}

typedef struct RxCount {
    Side *s;
    guint want;
} RxCount;

static bool rx_count_cb(void *data)
{
    RxCount *rc = data;
    return rc->s->rx->len >= rc->want;
}

static void wait_rx(Env *e, Side *s, guint want)
{
    RxCount rc = {s, want};
    assert_true(run_until(e, rx_count_cb, &rc, WAIT_MS));
}

/* Send a pattern payload; return its hash. */
static uint64_t send_pattern(Side *s, uint32_t chunk_port, uint32_t type, uint32_t seed, size_t len)
{
    uint8_t *buf = g_malloc(len ? len : 1);
    pattern_fill(buf, seed, 0, len);
    uint64_t h = vdp_fnv1a(VDP_FNV_INIT, buf, len);
    assert_int_equal(vdp_port_send(s->port, chunk_port, type, buf, len), VDP_OK);
    g_free(buf);
    return h;
}

static void check_rx(const Side *s, guint i, uint32_t chunk_port, uint32_t type, size_t len,
                     uint64_t hash)
{
    assert_true(i < s->rx->len);
    const RxMsg *m = &g_array_index(s->rx, RxMsg, i);
    assert_int_equal(m->chunk_port, chunk_port);
    assert_int_equal(m->type, type);
    assert_int_equal(m->len, len);
    assert_true(m->hash == hash);
}

/* Chunks needed for a message of len payload bytes. */
static uint64_t chunks_for(size_t len, size_t chunk)
{
    size_t total = VDP_MSG_HEADER_SIZE + len;
    return (total + chunk - 1) / chunk;
}

/* ---- raw peers ---- */

/* A listening socket that accepts and closes the first close_first
 * connections and keeps the rest. */
typedef struct RawListener {
    int fd;
    GSource *src;
    unsigned accepted, close_first;
    int kept[8];
    unsigned nkept;
} RawListener;

static gboolean raw_accept_cb(gint fd, GIOCondition cond, gpointer data)
{
    RawListener *l = data;
    for (;;) {
        int c = vdp_unix_accept(l->fd);
        if (c < 0)
            break;
        l->accepted++;
        if (l->accepted <= l->close_first || l->nkept >= G_N_ELEMENTS(l->kept))
            close(c);
        else
            l->kept[l->nkept++] = c;
    }
    return G_SOURCE_CONTINUE;
}

static void raw_listen(Env *e, RawListener *l, unsigned close_first)
{
    memset(l, 0, sizeof(*l));
    l->close_first = close_first;
    l->fd = vdp_unix_listen(e->path, 0600, 8);
    assert_true(l->fd >= 0);
    l->src = g_unix_fd_source_new(l->fd, G_IO_IN);
    g_source_set_callback(l->src, G_SOURCE_FUNC(raw_accept_cb), l, NULL);
    g_source_attach(l->src, e->ctx);
}

static void raw_listener_close(RawListener *l)
{
    g_source_destroy(l->src);
    g_source_unref(l->src);
    close(l->fd);
    for (unsigned i = 0; i < l->nkept; i++)
        if (l->kept[i] >= 0)
            close(l->kept[i]);
}

static bool kept_cb(void *data)
{
    RawListener *l = data;
    return l->nkept > 0;
}

/* A reader on a raw fd: bytes go to a test reassembler (or nowhere). */
typedef struct RawReader {
    int fd;
    GSource *src;
    VdpReasm *reasm;
    size_t bytes;
    bool eof;
} RawReader;

static gboolean raw_read_cb(gint fd, GIOCondition cond, gpointer data)
{
    RawReader *r = data;
    uint8_t buf[65536];
    for (int i = 0; i < 4; i++) {
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n > 0) {
            r->bytes += (size_t)n;
            if (r->reasm) {
                VdpError err = {0};
                assert_int_equal(vdp_reasm_feed(r->reasm, buf, (size_t)n, &err), VDP_OK);
            }
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            r->eof = true;
            return G_SOURCE_REMOVE;
        }
        break;
    }
    return G_SOURCE_CONTINUE;
}

static void raw_reader_start(Env *e, RawReader *r)
{
    r->src = g_unix_fd_source_new(r->fd, G_IO_IN);
    g_source_set_callback(r->src, G_SOURCE_FUNC(raw_read_cb), r, NULL);
    g_source_attach(r->src, e->ctx);
}

static void raw_reader_stop(RawReader *r)
{
    if (r->src) {
        g_source_destroy(r->src);
        g_source_unref(r->src);
        r->src = NULL;
    }
}

static bool raw_eof_cb(void *data)
{
    return ((RawReader *)data)->eof;
}

/* A test reassembler logging into a Side. */
static void reasm_message(void *user, uint32_t port, const VdpMsgHeader *hdr,
                          const uint8_t *data, size_t len)
{
    side_message(user, port, hdr, data, len);
}

static const VdpReasmCallbacks raw_reasm_cb = {.message = reasm_message};

static void write_all(int fd, const uint8_t *d, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, d, n);
        if (k < 0 && errno == EINTR)
            continue;
        assert_true(k > 0);
        d += k;
        n -= (size_t)k;
    }
}

/* Chunk + message header + payload, as one chunk. */
static void raw_send_message(int fd, uint32_t chunk_port, uint32_t type, const uint8_t *payload,
                             size_t len)
{
    uint8_t hdr[VDP_CHUNK_HEADER_SIZE + VDP_MSG_HEADER_SIZE];
    VdpMsgHeader h = {.protocol = VD_AGENT_PROTOCOL, .type = type, .size = (uint32_t)len};
    vdp_chunk_header_encode(chunk_port, (uint32_t)(VDP_MSG_HEADER_SIZE + len), hdr);
    vdp_msg_header_encode(&h, hdr + VDP_CHUNK_HEADER_SIZE);
    write_all(fd, hdr, sizeof(hdr));
    if (len)
        write_all(fd, payload, len);
}

/* ---- tests ---- */

static void test_config_validation(void **state)
{
    Env *e = *state;
    Side s;
    side_init(&s, "bad");
    VdpPortConfig c = guest_config(e);
    assert_non_null(s.port = vdp_port_new(e->ctx, &c, &whole_cb, &s));
    side_clear(&s);
    side_init(&s, "bad");

    VdpPortCallbacks nomsg = whole_cb;
    nomsg.message = NULL;
    assert_null(vdp_port_new(e->ctx, &c, &nomsg, &s));
    VdpPortCallbacks half = stream_cb;
    half.stream_end = NULL;
    assert_null(vdp_port_new(e->ctx, &c, &half, &s));

    c = guest_config(e);
    c.path = "";
    assert_null(vdp_port_new(e->ctx, &c, &whole_cb, &s));
    c = guest_config(e);
    c.chunk_size = VDP_MSG_HEADER_SIZE - 1;     /* header would not fit one chunk */
    assert_null(vdp_port_new(e->ctx, &c, &whole_cb, &s));
    c = guest_config(e);
    c.high_watermark = 1000;
    c.low_watermark = 2000;
    assert_null(vdp_port_new(e->ctx, &c, &whole_cb, &s));
    c = guest_config(e);
    c.reconnect_min_ms = 500;
    c.reconnect_max_ms = 100;
    assert_null(vdp_port_new(e->ctx, &c, &whole_cb, &s));
    c = guest_config(e);
    c.mode = (VdpPortMode)7;
    assert_null(vdp_port_new(e->ctx, &c, &whole_cb, &s));
    c = host_config(e);
    char longpath[200];
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = 0;
    c.path = longpath;      /* does not fit sockaddr_un */
    assert_null(vdp_port_new(e->ctx, &c, &whole_cb, &s));

    /* not started: nothing can be sent */
    c = guest_config(e);
    s.port = vdp_port_new(e->ctx, &c, &whole_cb, &s);
    assert_non_null(s.port);
    uint8_t b[4] = {0};
    size_t acc = 99;
    assert_int_equal(vdp_port_get_state(s.port), VDP_PORT_STATE_STOPPED);
    assert_int_equal(vdp_port_send(s.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, b, 4),
                     VDP_ERR_CLOSED);
    assert_int_equal(vdp_port_send(s.port, 3, VD_AGENT_CLIPBOARD, b, 4), VDP_ERR_RANGE);
    assert_int_equal(vdp_port_send(s.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, NULL, 4),
                     VDP_ERR_RANGE);
    assert_int_equal(vdp_port_send_begin(s.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 10),
                     VDP_ERR_CLOSED);
    assert_int_equal(vdp_port_send_data(s.port, VDP_CLIENT_PORT, b, 4, &acc), VDP_ERR_CLOSED);
    assert_int_equal(acc, 0);
    assert_int_equal(vdp_port_queued(s.port), 0);
    assert_int_equal(vdp_port_flush_sync(s.port, 10), VDP_ERR_CLOSED);
    VdpError err = {0};
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_RELEASE};
    assert_int_equal(vdp_port_send_msg(s.port, &m, NULL, &err), VDP_ERR_CLOSED);
    assert_true(strlen(err.text) > 0);
    assert_string_equal(vdp_port_state_name(VDP_PORT_STATE_OPEN), "open");
    vdp_port_pause_read(s.port, false);     /* unbalanced resume is ignored */
    vdp_port_free(NULL);
    side_clear(&s);
}

/* A LISTEN port (host) and a CONNECT port (guest) talk both ways. */
static void talk(Env *e, size_t chunk)
{
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e);
    hc.chunk_size = chunk;
    hc.max_chunk_in = chunk;
    VdpPortConfig gc = guest_config(e);
    gc.chunk_size = chunk;
    gc.max_chunk_in = chunk;
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &whole_cb);
    wait_both_open(e, &host, &guest);

    /* guest -> host, all on port 1 */
    VdpMsg ann = {.type = VD_AGENT_ANNOUNCE_CAPABILITIES};
    ann.u.announce.request = 1;
    vdp_caps_init_guest(&ann.u.announce.caps);
    VdpError err = {0};
    assert_int_equal(vdp_port_send_msg(guest.port, &ann, NULL, &err), VDP_OK);
    uint64_t g1 = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, 1, 12);
    uint64_t g2 = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 2, 5000);
    uint64_t g3 = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_RELEASE, 3, 0);
    /* host -> guest, both chunk ports */
    uint64_t h1 = send_pattern(&host, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, 4, 13);
    uint64_t h2 = send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 5, 100000);
    uint64_t h3 = send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_MONITORS_CONFIG, 6, 48);

    wait_rx(e, &host, 4);
    wait_rx(e, &guest, 3);

    const RxMsg *a = &g_array_index(host.rx, RxMsg, 0);
    assert_int_equal(a->type, VD_AGENT_ANNOUNCE_CAPABILITIES);
    VdpMsg dec;
    assert_int_equal(vdp_msg_decode(VDP_FROM_GUEST, VDP_CLIENT_PORT, a->type,
                                    g_bytes_get_data(a->copy, NULL), a->len, NULL, &dec, &err),
                     VDP_OK);
    assert_int_equal(dec.u.announce.request, 1);
    assert_true(vdp_caps_equal(&dec.u.announce.caps, &ann.u.announce.caps));
    check_rx(&host, 1, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, 12, g1);
    check_rx(&host, 2, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 5000, g2);
    check_rx(&host, 3, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_RELEASE, 0, g3);
    check_rx(&guest, 0, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, 13, h1);
    check_rx(&guest, 1, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 100000, h2);
    check_rx(&guest, 2, VDP_CLIENT_PORT, VD_AGENT_MONITORS_CONFIG, 48, h3);

    /* Every message was cut into full chunks of chunk bytes (the
     * receivers reject anything larger): count them. */
    VdpPortStats hs, gs;
    vdp_port_get_stats(host.port, &hs);
    vdp_port_get_stats(guest.port, &gs);
    size_t ann_len = g_array_index(host.rx, RxMsg, 0).len;
    assert_int_equal(hs.reasm.chunks, chunks_for(ann_len, chunk) + chunks_for(12, chunk) +
                                      chunks_for(5000, chunk) + chunks_for(0, chunk));
    assert_int_equal(gs.reasm.chunks, chunks_for(13, chunk) + chunks_for(100000, chunk) +
                                      chunks_for(48, chunk));
    assert_int_equal(hs.reasm.messages, 4);
    assert_int_equal(gs.reasm.messages, 3);
    assert_int_equal(hs.opens, 1);
    assert_int_equal(gs.opens, 1);
    assert_int_equal(hs.refused_peers, 0);
    assert_true(gs.stream.bytes_out > 5000 && hs.stream.bytes_in == gs.stream.bytes_out);
    assert_int_equal(host.problems + guest.problems, 0);
    /* one report each: OPEN (host: WAITING "listening" first) */
    assert_int_equal(guest.states->len, 1);
    assert_int_equal(host.states->len, 2);

    side_clear(&guest);
    side_clear(&host);
}

static void test_talk_chunk_2048(void **state)
{
    talk(*state, 2048);
}

static void test_talk_chunk_64(void **state)
{
    talk(*state, 64);
}

/* CONNECT to a path nobody listens on: back-off, no spinning; opens once
 * a listener appears. */
static void test_backoff_until_listener(void **state)
{
    Env *e = *state;
    Side guest, host;
    side_init(&guest, "guest");
    side_init(&host, "host");
    VdpPortConfig gc = guest_config(e);
    side_open(e, &guest, &gc, &whole_cb);

    gint64 t0 = now_ms();
    run_for(e, 1000);
    VdpPortStats st;
    vdp_port_get_stats(guest.port, &st);
    uint64_t attempts = st.reconnects + 1;
    print_message("connect attempts in %" G_GINT64_FORMAT " ms with nobody listening: %"
                  G_GUINT64_FORMAT "\n",
                  now_ms() - t0, attempts);
    assert_true(attempts >= 3);     /* it does retry */
    assert_true(attempts < 12);     /* but does not spin */
    assert_int_equal(vdp_port_get_state(guest.port), VDP_PORT_STATE_WAITING);
    assert_int_equal(guest.states->len, 1);     /* reported once, not per retry */
    assert_non_null(strstr(guest.why, "No such file"));

    VdpPortConfig hc = host_config(e);
    gint64 t1 = now_ms();
    side_open(e, &host, &hc, &whole_cb);
    wait_both_open(e, &host, &guest);
    gint64 waited = now_ms() - t1;
    print_message("guest opened %" G_GINT64_FORMAT " ms after the listener appeared\n", waited);
    assert_true(waited < 2 * 2000 + 500);

    uint64_t h = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 9, 3000);
    wait_rx(e, &host, 1);
    check_rx(&host, 0, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 3000, h);
    side_clear(&guest);
    side_clear(&host);
}

static bool state_seq_has(const Side *s, const VdpPortState *want, size_t n)
{
    /* want appears in order as a subsequence of the distinct states */
    size_t j = 0;
    for (guint i = 0; i < s->states->len && j < n; i++)
        if (g_array_index(s->states, VdpPortState, i) == want[j])
            j++;
    return j == n;
}

/* The peer goes away and comes back: OPEN -> WAITING -> OPEN, traffic again. */
static void test_reconnect_after_peer_close(void **state)
{
    Env *e = *state;
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e), gc = guest_config(e);
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &whole_cb);
    wait_both_open(e, &host, &guest);
    send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, 1, 8);
    send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, 2, 8);
    wait_rx(e, &host, 1);
    wait_rx(e, &guest, 1);

    /* the host side restarts (QEMU chardev reopened) */
    gint64 t0 = now_ms();
    vdp_port_stop(host.port);
    host.state = VDP_PORT_STATE_STOPPED;
    assert_true(run_until(e, is_waiting_cb, &guest, WAIT_MS));
    vdp_port_start(host.port);
    wait_both_open(e, &host, &guest);
    print_message("guest back %" G_GINT64_FORMAT " ms after the host restarted\n", now_ms() - t0);
    VdpPortState seq[] = {VDP_PORT_STATE_OPEN, VDP_PORT_STATE_WAITING, VDP_PORT_STATE_OPEN};
    assert_true(state_seq_has(&guest, seq, 3));
    VdpPortStats st;
    vdp_port_get_stats(guest.port, &st);
    assert_int_equal(st.opens, 2);
    assert_true(st.reconnects >= 1 && st.reconnects < 12);

    uint64_t g = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 3, 4000);
    uint64_t h = send_pattern(&host, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, 4, 13);
    wait_rx(e, &host, 2);
    wait_rx(e, &guest, 2);
    check_rx(&host, 1, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 4000, g);
    check_rx(&guest, 1, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, 13, h);

    /* now the guest goes away and comes back: the host keeps listening */
    vdp_port_stop(guest.port);
    guest.state = VDP_PORT_STATE_STOPPED;
    assert_true(run_until(e, is_waiting_cb, &host, WAIT_MS));
    assert_non_null(strstr(host.why, "closed"));
    vdp_port_start(guest.port);
    wait_both_open(e, &host, &guest);
    vdp_port_get_stats(host.port, &st);
    assert_int_equal(st.opens, 3);
    g = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 5, 10);
    wait_rx(e, &host, 3);
    check_rx(&host, 2, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 10, g);
    side_clear(&guest);
    side_clear(&host);
}

typedef struct Refused {
    Side *host;
    uint64_t want;
} Refused;

static bool refused_cb(void *data)
{
    Refused *r = data;
    VdpPortStats st;
    vdp_port_get_stats(r->host->port, &st);
    return st.refused_peers >= r->want;
}

/* A second guest while one is active: accepted and closed at once. */
static void test_listen_refuses_second(void **state)
{
    Env *e = *state;
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e), gc = guest_config(e);
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &whole_cb);
    wait_both_open(e, &host, &guest);
    guint reports = host.states->len;

    RawReader intruders[3];
    for (unsigned i = 0; i < 3; i++) {
        memset(&intruders[i], 0, sizeof(intruders[i]));
        intruders[i].fd = vdp_unix_connect(e->path);
        assert_true(intruders[i].fd >= 0);
        raw_reader_start(e, &intruders[i]);
    }
    Refused r = {&host, 3};
    assert_true(run_until(e, refused_cb, &r, WAIT_MS));
    for (unsigned i = 0; i < 3; i++) {
        assert_true(run_until(e, raw_eof_cb, &intruders[i], WAIT_MS));   /* closed at once */
        raw_reader_stop(&intruders[i]);
        close(intruders[i].fd);
    }
    assert_int_equal(host.state, VDP_PORT_STATE_OPEN);
    assert_int_equal(host.states->len, reports);     /* nothing to report */

    uint64_t g = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 1, 7000);
    uint64_t h = send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 2, 7000);
    wait_rx(e, &host, 1);
    wait_rx(e, &guest, 1);
    check_rx(&host, 0, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 7000, g);
    check_rx(&guest, 0, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 7000, h);
    VdpPortStats st;
    vdp_port_get_stats(host.port, &st);
    assert_int_equal(st.refused_peers, 3);
    assert_int_equal(st.opens, 1);

    /* a second real guest is refused too: to it, that looks like the open
     * race (end of file right after connecting), so it backs off quietly */
    Side second;
    side_init(&second, "second guest");
    side_open(e, &second, &gc, &whole_cb);
    r.want = 5;
    assert_true(run_until(e, refused_cb, &r, WAIT_MS));
    assert_int_equal(second.state, VDP_PORT_STATE_WAITING);
    assert_int_equal(second.states->len, 1);
    assert_int_equal(host.state, VDP_PORT_STATE_OPEN);
    /* the first guest leaves: the host accepts again, the second gets in */
    vdp_port_stop(guest.port);
    assert_true(run_until(e, is_open_cb, &second, WAIT_MS));
    assert_true(run_until(e, is_open_cb, &host, WAIT_MS));
    g = send_pattern(&second, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 3, 100);
    wait_rx(e, &host, 2);
    check_rx(&host, 1, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 100, g);
    vdp_port_get_stats(host.port, &st);
    assert_int_equal(st.opens, 2);
    side_clear(&second);
    side_clear(&guest);
    side_clear(&host);
}

typedef struct Drain {
    Side *rx;
    guint want;
    VdpPort *port;
} Drain;

static bool drained_cb(void *data)
{
    Drain *d = data;
    return d->rx->rx->len >= d->want && vdp_port_queued(d->port) == 0;
}

/* The peer stops reading: the queue stays bounded, sends fail with BUSY,
 * and everything arrives intact once the peer drains. */
static void test_stalled_reader(void **state)
{
    Env *e = *state;
    const size_t high = 64 * 1024, low = 16 * 1024, limit = 128 * 1024, msg = 1000;
    RawListener l;
    raw_listen(e, &l, 0);
    Side guest, sink;
    side_init(&guest, "guest");
    side_init(&sink, "raw peer");
    VdpPortConfig gc = guest_config(e);
    gc.high_watermark = high;
    gc.low_watermark = low;
    gc.queue_limit = limit;
    side_open(e, &guest, &gc, &whole_cb);
    assert_true(run_until(e, is_open_cb, &guest, WAIT_MS));
    assert_true(run_until(e, kept_cb, &l, WAIT_MS));

    uint8_t buf[1000];
    uint64_t *hashes = g_new(uint64_t, 100000);
    guint sent = 0, busy = 0;
    size_t max_queued = 0;
    size_t framed = vdp_chunk_framed_size(VDP_MSG_HEADER_SIZE + msg, VDP_CHUNK_SIZE_DEFAULT);
    gint64 deadline = now_ms() + WAIT_MS;
    for (;;) {
        assert_true(now_ms() < deadline && sent < 100000);
        pattern_fill(buf, sent, 0, msg);
        vdp_put_le32(buf, sent);
        VdpResult r = vdp_port_send(guest.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, buf, msg);
        size_t q = vdp_port_queued(guest.port);
        assert_true(q <= limit);
        if (q > max_queued)
            max_queued = q;
        if (r == VDP_OK) {
            hashes[sent++] = vdp_fnv1a(VDP_FNV_INIT, buf, msg);
            continue;
        }
        assert_int_equal(r, VDP_ERR_BUSY);
        assert_true(q + framed > limit);    /* refused only at the limit */
        busy++;
        /* let the stream push what the socket still takes; stop once the
         * queue stays full */
        run_for(e, 30);
        if (vdp_port_queued(guest.port) + framed > limit && busy > 3)
            break;
    }
    assert_true(guest.blocked >= 1);
    assert_true(vdp_port_write_blocked(guest.port));
    /* teardown flush gives up after its timeout */
    assert_int_equal(vdp_port_flush_sync(guest.port, 20), VDP_ERR_BUSY);
    /* a message that can never fit the queue is refused as such */
    uint8_t *huge = g_malloc0(limit);
    assert_int_equal(vdp_port_send(guest.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, huge, limit),
                     VDP_ERR_TOO_LARGE);
    g_free(huge);
    VdpPortStats st;
    vdp_port_get_stats(guest.port, &st);
    assert_true(st.stream.queue_peak <= limit);
    print_message("stalled reader: %u messages (%zu bytes) accepted, queue peak %zu of %zu, "
                  "%u BUSY refusals\n", sent, (size_t)sent * framed, max_queued, limit, busy);

    /* the peer drains */
    RawReader rd = {.fd = l.kept[0]};
    VdpReasmConfig rc = {.dir = VDP_FROM_GUEST};
    rd.reasm = vdp_reasm_new(&rc, &raw_reasm_cb, &sink);
    raw_reader_start(e, &rd);
    Drain d = {&sink, sent, guest.port};
    assert_true(run_until(e, drained_cb, &d, WAIT_MS));
    assert_int_equal(sink.rx->len, sent);
    for (guint i = 0; i < sent; i++) {
        const RxMsg *m = &g_array_index(sink.rx, RxMsg, i);
        assert_int_equal(m->len, msg);
        assert_int_equal(vdp_get_le32(g_bytes_get_data(m->copy, NULL)), i);   /* in order */
        assert_true(m->hash == hashes[i]);
    }
    assert_true(guest.ready >= 1);
    assert_false(vdp_port_write_blocked(guest.port));
    /* and it flows again */
    uint64_t h = send_pattern(&guest, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, 1, 8);
    wait_rx(e, &sink, sent + 1);
    check_rx(&sink, sent, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, 8, h);

    raw_reader_stop(&rd);
    vdp_reasm_free(rd.reasm);
    g_free(hashes);
    side_clear(&guest);
    side_clear(&sink);
    raw_listener_close(&l);
}

/* Producer of the 32 MiB streamed CLIPBOARD (host -> guest). */
typedef struct Pump {
    Env *e;
    Side *side;
    size_t total;           /* payload: 4-byte head + BIG_STREAM */
    size_t sent;
    uint8_t *piece;
    size_t max_queued, limit;
    unsigned busy, partial, grab_tries, mouse_tries;
    bool grab_queued, mouse_sent;
    uint64_t grab_hash, mouse_hash;
    GSource *tick;
} Pump;

static uint8_t stream_payload_byte(size_t off)
{
    static const uint8_t head[4] = {VD_AGENT_CLIPBOARD_UTF8_TEXT, 0, 0, 0};
    return off < 4 ? head[off] : pattern_byte(0, off - 4);
}

static void fill_stream_payload(uint8_t *buf, size_t off, size_t n);

static void pump_run(Pump *pp)
{
    VdpPort *port = pp->side->port;
    while (pp->sent < pp->total) {
        size_t n = MIN(PUMP_PIECE, pp->total - pp->sent);
        if (pp->sent >= 4)
            pattern_fill(pp->piece, 0, pp->sent - 4, n);
        else
            fill_stream_payload(pp->piece, pp->sent, n);
        size_t acc = 0;
        VdpResult r = vdp_port_send_data(port, VDP_CLIENT_PORT, pp->piece, n, &acc);
        size_t q = vdp_port_queued(port);
        if (q > pp->max_queued)
            pp->max_queued = q;
        assert_true(q <= pp->limit);
        if (r == VDP_ERR_BUSY) {
            pp->busy++;
            return;
        }
        assert_int_equal(r, VDP_OK);
        assert_true(acc > 0 && acc <= n);
        pp->sent += acc;
        assert_int_equal(vdp_port_send_remaining(port, VDP_CLIENT_PORT), pp->total - pp->sent);
        if (!pp->grab_queued) {
            /* same chunk port as the stream: must wait behind it */
            uint8_t grab[8];
            pattern_fill(grab, 77, 0, sizeof(grab));
            pp->grab_tries++;
            if (vdp_port_send(port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, grab, sizeof(grab)) ==
                VDP_OK) {
                pp->grab_queued = true;
                pp->grab_hash = vdp_fnv1a(VDP_FNV_INIT, grab, sizeof(grab));
            }
        }
        if (!pp->mouse_sent && pp->sent >= pp->total / 2 && pp->sent < pp->total) {
            /* other chunk port: goes out interleaved with the stream */
            uint8_t mouse[13];
            pattern_fill(mouse, 88, 0, sizeof(mouse));
            pp->mouse_tries++;
            if (vdp_port_send(port, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, mouse, sizeof(mouse)) ==
                VDP_OK) {
                pp->mouse_sent = true;
                pp->mouse_hash = vdp_fnv1a(VDP_FNV_INIT, mouse, sizeof(mouse));
            }
        }
        if (acc < n) {
            pp->partial++;
            return;
        }
    }
}

static void pump_on_ready(Side *s)
{
    pump_run(s->hook);
}

static gboolean pump_tick(gpointer data)
{
    Pump *pp = data;
    if (!vdp_port_write_blocked(pp->side->port))
        pump_run(pp);
    return G_SOURCE_CONTINUE;
}

static bool stream_done_cb(void *data)
{
    Side *s = data;
    return s->streams_done > 0 && s->rx->len >= 2;
}

/* 32 MiB through send_begin/send_data with backpressure, received as a
 * stream; a message on the same chunk port arrives after it, one on the
 * other chunk port during it. */
static void test_stream_32mib(void **state)
{
    Env *e = *state;
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e), gc = guest_config(e);
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &stream_cb);
    wait_both_open(e, &host, &guest);

    Pump pp = {.e = e, .side = &host, .total = 4 + BIG_STREAM, .piece = g_malloc(PUMP_PIECE),
               .limit = 2 * VDP_STREAM_HIGH_WATERMARK_DEFAULT};
    host.on_write_ready = pump_on_ready;
    host.hook = &pp;
    gint64 t0 = g_get_monotonic_time();
    assert_int_equal(vdp_port_send_begin(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, pp.total),
                     VDP_OK);
    /* one stream per chunk port at a time */
    assert_int_equal(vdp_port_send_begin(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 10),
                     VDP_ERR_BUSY);
    size_t acc = 0;
    assert_int_equal(vdp_port_send_data(host.port, VDP_SERVER_PORT, pp.piece, 1, &acc),
                     VDP_ERR_RANGE);
    assert_int_equal(vdp_port_send_remaining(host.port, VDP_CLIENT_PORT), pp.total);
    pp.tick = g_timeout_source_new(1);
    g_source_set_callback(pp.tick, pump_tick, &pp, NULL);
    g_source_attach(pp.tick, e->ctx);
    pump_run(&pp);
    assert_true(run_until(e, stream_done_cb, &guest, 4 * WAIT_MS));
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    g_source_destroy(pp.tick);
    g_source_unref(pp.tick);

    assert_int_equal(pp.sent, pp.total);
    assert_true(pp.grab_queued && pp.mouse_sent);
    assert_int_equal(guest.streams_done, 1);
    assert_false(guest.stream_bad);
    assert_int_equal(guest.stream_hdr.type, VD_AGENT_CLIPBOARD);
    assert_int_equal(guest.stream_hdr.size, pp.total);
    assert_int_equal(guest.stream_head_len, 4);
    assert_int_equal(vdp_get_le32(guest.stream_head), VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(guest.stream_got, BIG_STREAM);
    /* order: begin, mouse (port 2) during the stream, end, then the grab
     * that was sent on port 1 while the stream was in progress */
    assert_string_equal(guest.order->str, "BnEm");
    check_rx(&guest, 0, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, 13, pp.mouse_hash);
    assert_true(g_array_index(guest.rx, RxMsg, 0).during_stream);
    check_rx(&guest, 1, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, 8, pp.grab_hash);
    assert_false(g_array_index(guest.rx, RxMsg, 1).during_stream);
    assert_true(pp.max_queued <= pp.limit);
    assert_true(host.blocked >= 1 && host.ready >= 1);
    VdpPortStats st;
    vdp_port_get_stats(host.port, &st);
    print_message("32 MiB streamed in %.2f s (%.0f MiB/s), queue peak %zu, %u BUSY, %u partial "
                  "accepts, producer blocked %" G_GUINT64_FORMAT " times\n",
                  secs, BIG_STREAM / 1048576.0 / secs, (size_t)st.stream.queue_peak, pp.busy,
                  pp.partial, st.stream.blocked_count);
    assert_int_equal(vdp_port_send_remaining(host.port, VDP_CLIENT_PORT), 0);

    g_free(pp.piece);
    side_clear(&guest);
    side_clear(&host);
}

static void fill_stream_payload(uint8_t *buf, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = stream_payload_byte(off + i);
}

static bool stream_and_rx_cb(void *data)
{
    RxCount *rc = data;
    return rc->s->streams_done > 0 && rc->s->rx->len >= rc->want;
}

/* Messages on the chunk port of a stream in progress wait behind it in a
 * bounded list; filling that list must not stall the stream itself. */
static void test_pending_behind_stream(void **state)
{
    Env *e = *state;
    const size_t limit = 32 * 1024, total = 4 + 200000;
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e), gc = guest_config(e);
    hc.high_watermark = 16 * 1024;
    hc.queue_limit = limit;
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &stream_cb);
    wait_both_open(e, &host, &guest);

    uint8_t *piece = g_malloc(total);
    fill_stream_payload(piece, 0, total);
    size_t sent = 0, acc = 0;
    assert_int_equal(vdp_port_send_begin(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, total),
                     VDP_OK);
    assert_int_equal(vdp_port_send_data(host.port, VDP_CLIENT_PORT, piece, 1000, &acc), VDP_OK);
    assert_int_equal(acc, 1000);
    sent = acc;

    /* fill the pending list until it refuses */
    const size_t grab_framed = VDP_CHUNK_HEADER_SIZE + VDP_MSG_HEADER_SIZE + 8;
    guint npending = 0;
    for (;;) {
        uint8_t grab[8];
        vdp_put_le32(grab, npending);
        vdp_put_le32(grab + 4, 0);
        VdpResult r = vdp_port_send(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, grab, 8);
        assert_true(vdp_port_queued(host.port) <= limit);
        if (r == VDP_ERR_BUSY)
            break;
        assert_int_equal(r, VDP_OK);
        npending++;
        assert_true(npending < 10000);
    }
    assert_true(npending > 10);
    assert_true(npending * grab_framed <= limit / 2);    /* half the limit at most */
    /* one message at a time per chunk port */
    assert_int_equal(vdp_port_send_begin(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 10),
                     VDP_ERR_BUSY);
    /* the other chunk port is not held up */
    uint64_t mouse = send_pattern(&host, VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, 3, 13);

    /* the stream still completes */
    gint64 deadline = now_ms() + WAIT_MS;
    while (sent < total) {
        assert_true(now_ms() < deadline);
        VdpResult r = vdp_port_send_data(host.port, VDP_CLIENT_PORT, piece + sent,
                                         MIN((size_t)50000, total - sent), &acc);
        assert_true(vdp_port_queued(host.port) <= limit);
        if (r == VDP_ERR_BUSY) {
            run_for(e, 5);
            continue;
        }
        assert_int_equal(r, VDP_OK);
        sent += acc;
    }
    RxCount rc = {&guest, npending + 1};
    assert_true(run_until(e, stream_and_rx_cb, &rc, WAIT_MS));
    assert_false(guest.stream_bad);
    assert_int_equal(guest.stream_got, total - 4);
    /* B, the mouse somewhere before E, then every grab in order */
    const char *o = guest.order->str;
    assert_int_equal(o[0], 'B');
    const char *end = strchr(o, 'E');
    assert_non_null(end);
    assert_non_null(memchr(o, 'n', (size_t)(end - o)));
    assert_int_equal(strlen(end + 1), npending);
    guint g = 0;
    for (guint i = 0; i < guest.rx->len; i++) {
        const RxMsg *m = &g_array_index(guest.rx, RxMsg, i);
        if (m->type == VD_AGENT_MOUSE_STATE) {
            assert_true(m->hash == mouse);
            continue;
        }
        assert_int_equal(m->type, VD_AGENT_CLIPBOARD_GRAB);
        assert_false(m->during_stream);
        assert_int_equal(vdp_get_le32(g_bytes_get_data(m->copy, NULL)), g++);
    }
    assert_int_equal(g, npending);
    print_message("%u messages waited behind a 200 KB stream (queue limit %zu)\n", npending, limit);
    g_free(piece);
    side_clear(&guest);
    side_clear(&host);
}

static bool host_blocked_cb(void *data)
{
    return ((Side *)data)->is_blocked;
}

/* pause_read: nothing delivered, the peer's writes back up; counted, and
 * kept across a reconnect. */
static void test_pause_read(void **state)
{
    Env *e = *state;
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e), gc = guest_config(e);
    hc.high_watermark = 32 * 1024;
    hc.queue_limit = 64 * 1024;
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &whole_cb);
    wait_both_open(e, &host, &guest);

    vdp_port_pause_read(guest.port, true);
    vdp_port_pause_read(guest.port, true);
    vdp_port_pause_read(guest.port, false);     /* still paused once */
    guint sent = 0;
    uint64_t hashes[2000];
    gint64 deadline = now_ms() + WAIT_MS;
    while (sent < G_N_ELEMENTS(hashes)) {
        assert_true(now_ms() < deadline);
        uint8_t buf[4096];
        pattern_fill(buf, sent, 0, sizeof(buf));
        VdpResult r = vdp_port_send(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, buf,
                                    sizeof(buf));
        if (r == VDP_ERR_BUSY) {
            run_for(e, 30);
            if (vdp_port_send(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, buf, sizeof(buf)) ==
                VDP_ERR_BUSY)
                break;
            hashes[sent++] = vdp_fnv1a(VDP_FNV_INIT, buf, sizeof(buf));
            continue;
        }
        assert_int_equal(r, VDP_OK);
        hashes[sent++] = vdp_fnv1a(VDP_FNV_INIT, buf, sizeof(buf));
    }
    assert_true(sent < G_N_ELEMENTS(hashes));   /* the writes backed up */
    assert_true(run_until(e, host_blocked_cb, &host, WAIT_MS));
    run_for(e, 200);
    assert_int_equal(guest.rx->len, 0);         /* nothing delivered while paused */
    print_message("paused reader: %u messages of 4 KiB backed up in the writer and the socket\n",
                  sent);

    vdp_port_pause_read(guest.port, false);
    wait_rx(e, &guest, sent);
    for (guint i = 0; i < sent; i++)
        check_rx(&guest, i, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 4096, hashes[i]);
    assert_true(host.ready >= 1);

    /* the pause count survives a reconnect */
    vdp_port_stop(host.port);
    host.state = VDP_PORT_STATE_STOPPED;
    assert_true(run_until(e, is_waiting_cb, &guest, WAIT_MS));
    vdp_port_pause_read(guest.port, true);
    vdp_port_start(host.port);
    wait_both_open(e, &host, &guest);
    uint64_t h = send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 5, 100);
    run_for(e, 200);
    assert_int_equal(guest.rx->len, sent);
    vdp_port_pause_read(guest.port, false);
    wait_rx(e, &guest, sent + 1);
    check_rx(&guest, sent, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 100, h);
    side_clear(&guest);
    side_clear(&host);
}

typedef struct Accepted {
    RawListener *l;
    unsigned want;
} Accepted;

static bool accepted_cb(void *data)
{
    Accepted *a = data;
    return a->l->nkept >= a->want;
}

/* A raw host writes a chunk on port 7: the guest reports the framing
 * error, drops the connection and reconnects. */
static void test_framing_error_reconnects(void **state)
{
    Env *e = *state;
    RawListener l;
    raw_listen(e, &l, 0);
    Side guest;
    side_init(&guest, "guest");
    VdpPortConfig gc = guest_config(e);
    side_open(e, &guest, &gc, &whole_cb);
    Accepted a = {&l, 1};
    assert_true(run_until(e, accepted_cb, &a, WAIT_MS));

    uint8_t rel[4] = {0};
    raw_send_message(l.kept[0], VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_RELEASE, rel, sizeof(rel));
    uint8_t bad[VDP_CHUNK_HEADER_SIZE + 4] = {0};
    vdp_chunk_header_encode(7, 4, bad);
    write_all(l.kept[0], bad, sizeof(bad));

    RawReader rd = {.fd = l.kept[0]};
    raw_reader_start(e, &rd);
    assert_true(run_until(e, raw_eof_cb, &rd, WAIT_MS));   /* the guest hung up */
    raw_reader_stop(&rd);
    assert_int_equal(guest.rx->len, 1);                     /* what came before was delivered */
    assert_int_equal(guest.fatal, 1);
    VdpPortState seq[] = {VDP_PORT_STATE_OPEN, VDP_PORT_STATE_WAITING};
    assert_true(state_seq_has(&guest, seq, 2));
    assert_non_null(strstr(guest.why, "chunk port 7"));
    if (verbose)
        printf("    why: %s\n", guest.why);

    /* it comes back */
    a.want = 2;
    assert_true(run_until(e, accepted_cb, &a, WAIT_MS));
    uint8_t mouse[13] = {1, 2, 3};
    raw_send_message(l.kept[1], VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, mouse, sizeof(mouse));
    wait_rx(e, &guest, 2);
    assert_int_equal(guest.state, VDP_PORT_STATE_OPEN);
    assert_int_equal(g_array_index(guest.rx, RxMsg, 1).type, VD_AGENT_MOUSE_STATE);
    VdpPortStats st;
    vdp_port_get_stats(guest.port, &st);
    assert_int_equal(st.opens, 2);
    side_clear(&guest);
    raw_listener_close(&l);
}

/* The open race over a socket: the host accepts and drops the connection
 * several times before it stays. */
static void test_open_race_socket(void **state)
{
    Env *e = *state;
    const unsigned drops = 4;
    RawListener l;
    raw_listen(e, &l, drops);
    Side guest;
    side_init(&guest, "guest");
    VdpPortConfig gc = guest_config(e);
    gint64 t0 = now_ms();
    side_open(e, &guest, &gc, &whole_cb);
    assert_true(run_until(e, is_open_cb, &guest, WAIT_MS));
    gint64 took = now_ms() - t0;
    VdpPortStats st;
    vdp_port_get_stats(guest.port, &st);
    print_message("open race: %u early hang-ups, OPEN after %" G_GINT64_FORMAT " ms and %"
                  G_GUINT64_FORMAT " attempts, %u state reports\n",
                  drops, took, st.reconnects + 1, guest.states->len);
    assert_int_equal(l.accepted, drops + 1);
    assert_int_equal(st.reconnects, drops);
    assert_int_equal(st.opens, 1);
    /* the race is reported once (WAITING), then OPEN */
    assert_int_equal(guest.states->len, 2);
    assert_int_equal(g_array_index(guest.states, VdpPortState, 0), VDP_PORT_STATE_WAITING);
    /* back-off: 10 + 20 + 40 + 80 ms at least */
    assert_true(took >= 150);

    uint8_t mouse[13] = {0};
    raw_send_message(l.kept[0], VDP_SERVER_PORT, VD_AGENT_MOUSE_STATE, mouse, sizeof(mouse));
    wait_rx(e, &guest, 1);
    assert_int_equal(vdp_port_send(guest.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, mouse, 4),
                     VDP_OK);
    side_clear(&guest);
    raw_listener_close(&l);
}

/* The open race on a character device that reads end of file at once
 * (/dev/null stands in for a virtio port without its host side). */
static void test_open_race_device(void **state)
{
    Env *e = *state;
    if (access("/dev/null", R_OK | W_OK) != 0)
        skip();
    Side guest;
    side_init(&guest, "guest");
    VdpPortConfig gc = guest_config(e);
    gc.path = "/dev/null";
    side_open(e, &guest, &gc, &whole_cb);
    run_for(e, 1000);
    VdpPortStats st;
    vdp_port_get_stats(guest.port, &st);
    print_message("device reading EOF: %" G_GUINT64_FORMAT " opens in 1 s, %u state report(s)\n",
                  st.reconnects + 1, guest.states->len);
    assert_true(st.reconnects + 1 >= 3 && st.reconnects + 1 < 12);
    assert_int_equal(st.opens, 0);      /* never reported OPEN */
    assert_int_equal(guest.states->len, 1);
    assert_int_equal(guest.state, VDP_PORT_STATE_WAITING);
    assert_non_null(strstr(guest.why, "not ready"));
    side_clear(&guest);

    /* a regular file is neither a device nor a socket */
    side_init(&guest, "guest");
    char *file = g_build_filename(e->dir, "plain", NULL);
    assert_true(g_file_set_contents(file, "x", 1, NULL));
    gc.path = file;
    side_open(e, &guest, &gc, &whole_cb);
    assert_true(run_until(e, is_waiting_cb, &guest, WAIT_MS));
    assert_non_null(strstr(guest.why, "neither a character device nor a UNIX socket"));
    side_clear(&guest);
    g_free(file);
}

/* no_reconnect: a hang-up stops the port for good. */
static void test_no_reconnect(void **state)
{
    Env *e = *state;
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e), gc = guest_config(e);
    gc.no_reconnect = true;
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &whole_cb);
    wait_both_open(e, &host, &guest);
    send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 1, 10);
    wait_rx(e, &guest, 1);
    vdp_port_stop(host.port);
    host.state = VDP_PORT_STATE_STOPPED;
    run_for(e, 200);
    assert_int_equal(guest.state, VDP_PORT_STATE_STOPPED);
    assert_int_equal(vdp_port_get_state(guest.port), VDP_PORT_STATE_STOPPED);
    VdpPortStats st;
    vdp_port_get_stats(guest.port, &st);
    assert_int_equal(st.reconnects, 0);
    side_clear(&guest);
    side_clear(&host);
}

static bool in_stream_cb(void *data)
{
    return ((Side *)data)->in_stream;
}

/* Free and stop from inside callbacks, with more input pending in the
 * same read; a disconnect aborts a stream in progress. */
static void test_callbacks_may_free_and_stop(void **state)
{
    Env *e = *state;
    Side host, guest;
    side_init(&host, "host");
    side_init(&guest, "guest");
    VdpPortConfig hc = host_config(e), gc = guest_config(e);
    start_pair(e, &host, &hc, &whole_cb, &guest, &gc, &stream_cb);
    wait_both_open(e, &host, &guest);

    /* a stream in progress is aborted when the connection goes */
    assert_int_equal(vdp_port_send_begin(host.port, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 1u << 20),
                     VDP_OK);
    uint8_t piece[100000];
    for (size_t i = 0; i < sizeof(piece); i++)
        piece[i] = i < 4 ? 0 : pattern_byte(0, i - 4);
    size_t acc = 0;
    assert_int_equal(vdp_port_send_data(host.port, VDP_CLIENT_PORT, piece, sizeof(piece), &acc),
                     VDP_OK);
    assert_int_equal(acc, sizeof(piece));
    assert_true(run_until(e, in_stream_cb, &guest, WAIT_MS));
    vdp_port_stop(host.port);
    host.state = VDP_PORT_STATE_STOPPED;
    assert_true(run_until(e, is_waiting_cb, &guest, WAIT_MS));
    assert_int_equal(guest.aborts, 1);
    assert_false(guest.in_stream);
    /* the half-sent stream is gone with the connection */
    assert_int_equal(vdp_port_send_data(host.port, VDP_CLIENT_PORT, piece, 10, &acc),
                     VDP_ERR_CLOSED);
    vdp_port_start(host.port);
    wait_both_open(e, &host, &guest);
    assert_int_equal(vdp_port_send_remaining(host.port, VDP_CLIENT_PORT), 0);

    /* stop from a message callback while more messages are in the buffer */
    guest.stop_on_message = true;
    for (int i = 0; i < 5; i++)
        send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, (uint32_t)i, 8);
    wait_rx(e, &guest, 1);
    run_for(e, 100);
    assert_int_equal(guest.rx->len, 1);     /* the rest of the read was dropped */
    assert_int_equal(vdp_port_get_state(guest.port), VDP_PORT_STATE_STOPPED);
    vdp_port_start(guest.port);
    wait_both_open(e, &host, &guest);

    /* free from a message callback, same situation */
    guest.free_on_message = true;
    guint before = guest.rx->len;
    for (int i = 0; i < 5; i++)
        send_pattern(&host, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, (uint32_t)i, 8);
    wait_rx(e, &guest, before + 1);
    assert_null(guest.port);
    assert_true(run_until(e, is_waiting_cb, &host, WAIT_MS));
    run_for(e, 50);
    assert_int_equal(guest.rx->len, before + 1);
    side_clear(&guest);
    side_clear(&host);
}

int main(void)
{
    verbose = g_getenv("VDP_TEST_VERBOSE") != NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_validation, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_talk_chunk_2048, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_talk_chunk_64, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_backoff_until_listener, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_peer_close, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_listen_refuses_second, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_reader, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stream_32mib, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_pending_behind_stream, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_pause_read, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_framing_error_reconnects, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_open_race_socket, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_open_race_device, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_no_reconnect, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_may_free_and_stop, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
