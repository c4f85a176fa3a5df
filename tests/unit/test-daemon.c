/* test-daemon.c - the real spice-vdagentd binary: started per test in a
 * temporary directory with -x -X -s PORT -S SOCK -f -u FIFO, its port a
 * UNIX socket served by the host library (VdhHost, listen mode) or by a
 * raw VdpPort for hostile input, test agents over the IPC socket, and a
 * FIFO reader decoding struct input_event. Each test ends by sending
 * SIGTERM and checking the daemon exits 0.
 *
 * The daemon is told to drop silent IPC clients after 1 s
 * (VDAGENTD_TEST_HANDSHAKE_MS). Each test has a failure timeout (alarm). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/input.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon-harness.h"
#include "test-agent.h"
#include "vdh-host.h"
#include "vdp-port.h"
#include "vdp-unix.h"
#include "vdp-wire.h"

#define WAIT_MS 5000u
#define TEST_TIMEOUT_S 60u
#define HANDSHAKE_MS 1000u

/* ---- the raw host: a VdpPort listening for the daemon ---- */

typedef struct RawHost {
    VdpPort *port;
    bool open;
    unsigned announces, announce_requests, replies, reply_errors, statuses;
    uint32_t last_announce_request;
    VdpCaps guest_caps;
    uint32_t last_reply_type, last_status_id, last_status_result;
    bool last_status_detail;
    uint32_t last_status_error_type, last_status_error_code;
} RawHost;

static void raw_state(void *user, VdpPortState st, const char *why)
{
    RawHost *r = user;
    r->open = st == VDP_PORT_STATE_OPEN;
}

static void raw_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr, const uint8_t *data,
                        size_t len)
{
    RawHost *r = user;
    VdpMsg *m = g_new0(VdpMsg, 1);
    VdpLayout l = {0};
    if (vdp_msg_decode(VDP_FROM_GUEST, chunk_port, hdr->type, data, len, &l, m, NULL) == VDP_OK) {
        switch (m->type) {
        case VD_AGENT_ANNOUNCE_CAPABILITIES:
            r->announces++;
            if (m->u.announce.request)
                r->announce_requests++;
            r->last_announce_request = m->u.announce.request;
            r->guest_caps = m->u.announce.caps;
            break;
        case VD_AGENT_REPLY:
            r->replies++;
            r->last_reply_type = m->u.reply.type;
            if (m->u.reply.error != VD_AGENT_SUCCESS)
                r->reply_errors++;
            break;
        case VD_AGENT_FILE_XFER_STATUS:
            r->statuses++;
            r->last_status_id = m->u.xfer_status.id;
            r->last_status_result = m->u.xfer_status.result;
            r->last_status_detail = m->u.xfer_status.has_detail;
            r->last_status_error_type = m->u.xfer_status.error_type;
            r->last_status_error_code = m->u.xfer_status.error_code;
            break;
        default:
            break;
        }
    }
    g_free(m);
}

static const VdpPortCallbacks raw_cb = {.state_changed = raw_state, .message = raw_message};

/* ---- fixture ---- */

typedef struct Fixture {
    DaemonHarness h;
    RawHost raw;
    uint8_t evbuf[1 << 20];
    size_t evlen;
} Fixture;

static Fixture *F;

static void start_daemon(void)
{
    static const char *const args[] = {"-X", NULL};
    /* the daemon's output goes to the test's log */
    DhDaemonOpts o = {.args = args, .handshake_ms = HANDSHAKE_MS, .out = DH_OUT_INHERIT};
    dh_start_daemon(&F->h, &o);
}

static void start_host(bool raw)
{
    if (raw) {
        VdpPortConfig cfg = {.path = F->h.port_path, .mode = VDP_PORT_LISTEN, .dir = VDP_FROM_GUEST};
        F->raw.port = vdp_port_new(NULL, &cfg, &raw_cb, &F->raw);
        assert_non_null(F->raw.port);
        vdp_port_start(F->raw.port);
    } else {
        dh_start_host(&F->h, NULL, 0, NULL, NULL);
    }
}

static int setup_common(bool raw)
{
    F = g_new0(Fixture, 1);
    dh_setup(&F->h, "test-daemon", WAIT_MS, TEST_TIMEOUT_S);
    start_host(raw);
    start_daemon();
    return 0;
}

static int setup_host(void **state)
{
    return setup_common(false);
}

static int setup_raw(void **state)
{
    return setup_common(true);
}

static int teardown(void **state)
{
    DhExit e = dh_finish(&F->h);
    if (F->raw.port)
        vdp_port_free(F->raw.port);
    g_clear_pointer(&F, g_free);
    /* a clean exit on SIGTERM */
    dh_assert_clean_exit(&e);
    return 0;
}

/* ---- helpers ---- */

static TestAgent *agent_with_layout(bool two)
{
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    dh_send_layout(a, two);
    return a;
}

static bool client_flag(void *d)
{
    TestAgent *a = d;
    return (a->session_flags & VDP_IPC_SESSION_CLIENT_CONNECTED) != 0;
}

static bool agent_closed(void *d)
{
    return ((TestAgent *)d)->closed;
}

static bool no_client(void *d)
{
    return !client_flag(d);
}

static bool has_status(void *d)
{
    return ((TestAgent *)d)->status_json != NULL;
}

static bool raw_open(void *data)
{
    return F->raw.open && F->raw.announces > 0;
}

static bool wait_count(const unsigned *p, unsigned want)
{
    return dh_wait_count(p, want, WAIT_MS);
}

static void raw_announce(bool request, bool detailed_errors)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_ANNOUNCE_CAPABILITIES;
    m->u.announce.request = request;
    vdp_caps_init_host(&m->u.announce.caps);
    if (!detailed_errors)
        vdp_caps_unset(&m->u.announce.caps, VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS);
    VdpLayout l = {0};
    assert_int_equal(vdp_port_send_msg(F->raw.port, m, &l, NULL), VDP_OK);
    g_free(m);
}

static void raw_monitors(void)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_MONITORS_CONFIG;
    m->u.monitors.count = 1;
    m->u.monitors.monitors[0] = (VdpMonConfig){.width = 800, .height = 600, .depth = 32};
    VdpLayout l = {0};
    assert_int_equal(vdp_port_send_msg(F->raw.port, m, &l, NULL), VDP_OK);
    g_free(m);
}

/* FIFO: events read so far */
static size_t fifo_read(void)
{
    for (;;) {
        ssize_t n = read(F->h.fifo_fd, F->evbuf + F->evlen, sizeof(F->evbuf) - F->evlen);
        if (n <= 0)
            break;
        F->evlen += (size_t)n;
    }
    return F->evlen / sizeof(struct input_event);
}

static const struct input_event *event_at(size_t i)
{
    return (const struct input_event *)(F->evbuf + i * sizeof(struct input_event));
}

typedef struct EvWant {
    uint16_t type, code;
    int32_t value;
    size_t from;
} EvWant;

static bool has_event(void *data)
{
    EvWant *w = data;
    size_t n = fifo_read();
    for (size_t i = w->from; i < n; i++) {
        const struct input_event *e = event_at(i);
        if (e->type == w->type && e->code == w->code && e->value == w->value)
            return true;
    }
    g_usleep(2000);
    return false;
}

static bool wait_event(size_t from, uint16_t type, uint16_t code, int32_t value)
{
    EvWant w = {type, code, value, from};
    return test_wait(has_event, &w, WAIT_MS);
}

static void mouse(uint32_t x, uint32_t y, uint32_t buttons, uint8_t display)
{
    GError *error = NULL;
    if (!vdh_host_mouse(F->h.host, x, y, buttons, display, &error))
        fail_msg("mouse: %s", error->message);
}

/* ---- tests ---- */

static void test_port_follows_layout(void **state)
{
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    assert_true(wait_count(&a->session_states, 1));
    assert_int_equal(a->session_flags & VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE);
    /* no layout: the port stays closed */
    test_spin(400);
    assert_false(vdh_host_is_connected(F->h.host));
    VdpIpcGuestLayout l;
    test_layout_one(&l);
    assert_true(test_agent_send_layout(a, &l));
    dh_host_ready(&F->h);
    const VdpCaps *caps = vdh_host_get_guest_caps(F->h.host);
    assert_non_null(caps);
    assert_true(vdp_caps_has(caps, VD_AGENT_CAP_MOUSE_STATE));
    assert_true(vdp_caps_has(caps, VD_AGENT_CAP_MONITORS_CONFIG));
    assert_false(vdp_caps_has(caps, VD_AGENT_CAP_FILE_XFER_DISABLED));
    /* the clipboard is routed (test-daemon-clipboard.c) */
    assert_true(vdp_caps_has(caps, VD_AGENT_CAP_CLIPBOARD_BY_DEMAND));
    assert_true(vdp_caps_has(caps, VD_AGENT_CAP_CLIPBOARD_SELECTION));
    assert_true(vdp_caps_has(caps, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL));
    assert_true(vdp_caps_has(caps, VD_AGENT_CAP_CLIPBOARD_NO_RELEASE_ON_REGRAB));
    assert_true(vdp_caps_has(caps, VD_AGENT_CAP_MAX_CLIPBOARD));
    /* the agent learns that a client is there */
    assert_true(test_wait(client_flag, a, WAIT_MS));
    /* the agent leaves: the port closes */
    test_agent_free(a);
    assert_true(test_wait(dh_host_disconnected, &F->h, WAIT_MS));
    test_spin(300);
    assert_false(vdh_host_is_connected(F->h.host));
}

static void test_caps_request(void **state)
{
    TestAgent *a = agent_with_layout(false);
    assert_true(test_wait(raw_open, NULL, WAIT_MS));
    /* the daemon announced first, with request=1 */
    assert_int_equal(F->raw.announce_requests, 1);
    assert_false(vdp_caps_has(&F->raw.guest_caps, VD_AGENT_CAP_FILE_XFER_DISABLED));
    assert_true(vdp_caps_has(&F->raw.guest_caps, VD_AGENT_CAP_CLIPBOARD_BY_DEMAND));
    unsigned before = F->raw.announces;
    raw_announce(true, true);
    assert_true(wait_count(&F->raw.announces, before + 1));
    assert_int_equal(F->raw.last_announce_request, 0);
    /* request=0 from us is not answered */
    raw_announce(false, true);
    test_spin(300);
    assert_int_equal(F->raw.announces, before + 1);
    test_agent_free(a);
}

static void test_monitors_physical(void **state)
{
    TestAgent *a = agent_with_layout(false);
    dh_host_ready(&F->h);
    VdpMonitorsConfig *cfg = g_new0(VdpMonitorsConfig, 1);
    cfg->flags = VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS | VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE;
    cfg->count = 2;
    cfg->monitors[0] = (VdpMonConfig){.width = 1366, .height = 768, .depth = 32, .mm_width = 361, .mm_height = 203};
    cfg->monitors[1] = (VdpMonConfig){.width = 1920, .height = 1080, .depth = 32, .x = 1366,
                                      .mm_width = 509, .mm_height = 286};
    GError *error = NULL;
    if (!vdh_host_set_monitors_sync(F->h.host, cfg, WAIT_MS, &error))
        fail_msg("set monitors: %s", error->message);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_MONITORS_CONFIG], 1));
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(a, VD_AGENT_MONITORS_CONFIG, m));
    assert_int_equal(m->u.monitors.count, 2);
    assert_true(m->u.monitors.flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE);
    assert_int_equal(m->u.monitors.monitors[0].width, 1366);
    assert_int_equal(m->u.monitors.monitors[0].mm_width, 361);
    assert_int_equal(m->u.monitors.monitors[1].x, 1366);
    assert_int_equal(m->u.monitors.monitors[1].mm_height, 286);
    g_free(m);
    g_free(cfg);
    test_agent_free(a);
}

static void test_mouse_fifo(void **state)
{
    TestAgent *a = agent_with_layout(true);
    dh_host_ready(&F->h);
    test_spin(100);
    size_t n0 = fifo_read();
    mouse(10, 20, 0, 0);
    assert_true(wait_event(n0, EV_ABS, ABS_X, 10));
    assert_true(wait_event(n0, EV_ABS, ABS_Y, 20));
    assert_true(wait_event(n0, EV_SYN, SYN_REPORT, 0));
    /* display 1 sits at +1024+100 */
    size_t n1 = fifo_read();
    mouse(5, 6, 0, 1);
    assert_true(wait_event(n1, EV_ABS, ABS_X, 1029));
    assert_true(wait_event(n1, EV_ABS, ABS_Y, 106));
    /* left button press and release */
    size_t n2 = fifo_read();
    mouse(5, 6, VD_AGENT_LBUTTON_MASK, 1);
    assert_true(wait_event(n2, EV_KEY, BTN_LEFT, 1));
    mouse(5, 6, 0, 1);
    assert_true(wait_event(n2, EV_KEY, BTN_LEFT, 0));
    /* wheel up, wheel down */
    size_t n3 = fifo_read();
    mouse(5, 6, VD_AGENT_UBUTTON_MASK, 1);
    mouse(5, 6, 0, 1);
    assert_true(wait_event(n3, EV_REL, REL_WHEEL, 1));
    mouse(5, 6, VD_AGENT_DBUTTON_MASK, 1);
    mouse(5, 6, 0, 1);
    assert_true(wait_event(n3, EV_REL, REL_WHEEL, -1));
    /* an unknown display: dropped; the next event still arrives */
    size_t n4 = fifo_read();
    mouse(300, 300, 0, 7);
    mouse(7, 8, 0, 0);
    assert_true(wait_event(n4, EV_ABS, ABS_X, 7));
    size_t n5 = fifo_read();
    for (size_t i = n4; i < n5; i++)
        assert_int_not_equal(event_at(i)->value, 300);
    test_agent_free(a);
}

static void test_fifo_stall(void **state)
{
    TestAgent *a = agent_with_layout(false);
    dh_host_ready(&F->h);
    /* nobody reads the FIFO: far more than the pipe and the daemon's buffer */
    for (unsigned i = 0; i < 8000; i++) {
        mouse(i % 1000, (i * 7) % 700, (i & 1) ? VD_AGENT_LBUTTON_MASK : 0, 0);
        if (i % 500 == 0)
            test_spin(5);
    }
    /* the port is not stalled: a monitors config is answered */
    VdpMonitorsConfig *cfg = g_new0(VdpMonitorsConfig, 1);
    cfg->count = 1;
    cfg->monitors[0] = (VdpMonConfig){.width = 800, .height = 600, .depth = 32};
    GError *error = NULL;
    if (!vdh_host_set_monitors_sync(F->h.host, cfg, WAIT_MS, &error))
        fail_msg("set monitors while the FIFO is full: %s", error->message);
    g_free(cfg);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_MONITORS_CONFIG], 1));
    /* drain; new events get through afterwards */
    fifo_read();
    test_spin(200);
    size_t n = fifo_read();
    /* (the flood ended at 999,693; the newest state arrives after the drain) */
    mouse(1011, 777, 0, 0);
    assert_true(wait_event(n, EV_ABS, ABS_X, 1011));
    assert_true(wait_event(n, EV_ABS, ABS_Y, 777));
    /* what was read is whole, well-formed events */
    size_t total = fifo_read();
    for (size_t i = 0; i < total; i++)
        assert_true(event_at(i)->type == EV_ABS || event_at(i)->type == EV_KEY ||
                    event_at(i)->type == EV_SYN || event_at(i)->type == EV_REL);
    test_agent_free(a);
}

static void test_malformed_host(void **state)
{
    TestAgent *a = agent_with_layout(false);
    assert_true(test_wait(raw_open, NULL, WAIT_MS));
    raw_announce(true, true);
    uint8_t buf[64];
    /* monitor count that wraps 8 + n * 20 in 32 bits */
    memset(buf, 0, sizeof(buf));
    vdp_put_le32(buf, 214748365u);
    vdp_port_send(F->raw.port, VDP_CLIENT_PORT, VD_AGENT_MONITORS_CONFIG, buf, 12);
    /* device info with an address length of 0xFFFFFFFF */
    memset(buf, 0, sizeof(buf));
    vdp_put_le32(buf, 1);
    vdp_put_le32(buf + 16, 0xffffffffu);
    vdp_port_send(F->raw.port, VDP_SERVER_PORT, VD_AGENT_GRAPHICS_DEVICE_INFO, buf, 24);
    /* a server-only message on the client port */
    memset(buf, 0, sizeof(buf));
    vdp_port_send(F->raw.port, VDP_CLIENT_PORT, VD_AGENT_MOUSE_STATE, buf, 13);
    /* oversize: a monitors config far above its limit */
    size_t big = vdp_msg_max_payload(VD_AGENT_MONITORS_CONFIG) + 4096;
    uint8_t *junk = g_malloc0(big);
    vdp_port_send(F->raw.port, VDP_CLIENT_PORT, VD_AGENT_MONITORS_CONFIG, junk, big);
    g_free(junk);
    /* then a valid one: answered, and delivered */
    unsigned r0 = F->raw.replies;
    raw_monitors();
    assert_true(wait_count(&F->raw.replies, r0 + 1));
    assert_int_equal(F->raw.reply_errors, 0);
    assert_int_equal(F->raw.last_reply_type, VD_AGENT_MONITORS_CONFIG);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_MONITORS_CONFIG], 1));
    assert_int_equal(a->nmsgs[VD_AGENT_MONITORS_CONFIG], 1);
    assert_int_equal(a->nmsgs[VD_AGENT_GRAPHICS_DEVICE_INFO], 0);
    assert_int_equal(a->bad_frames, 0);
    assert_true(F->raw.open);
    test_agent_free(a);
}

static void test_second_agent(void **state)
{
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    TestAgent *b = dh_agent_connect(&F->h);
    assert_true(b->rejected);
    assert_int_equal(b->reject_reason, VDP_IPC_REJECT_DUPLICATE);
    test_agent_free(b);
    /* the first one still works */
    VdpIpcGuestLayout l;
    test_layout_one(&l);
    assert_true(test_agent_send_layout(a, &l));
    dh_host_ready(&F->h);
    assert_false(a->closed);
    assert_true(a->session_flags & VDP_IPC_SESSION_ACTIVE);
    test_agent_free(a);
}

static bool fd_closed_by_peer(void *data)
{
    int fd = *(int *)data;
    uint8_t b[256];
    ssize_t n = read(fd, b, sizeof(b));
    if (n == 0 || (n < 0 && errno != EAGAIN))
        return true;
    g_usleep(5000);
    return false;
}

static void raw_hello(int fd)
{
    VdpIpcHello h;
    uint8_t payload[128], frame[256];
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "raw");
    size_t n = vdp_ipc_hello_encode(&h, payload, sizeof(payload));
    size_t f = vdp_ipc_frame_encode(VDP_IPC_HELLO, 1, 0, payload, n, frame, sizeof(frame));
    assert_int_equal(write(fd, frame, f), (ssize_t)f);
}

static void test_agent_garbage(void **state)
{
    /* an agent that sends garbage after its HELLO */
    int fd = vdp_unix_connect(F->h.sock_path);
    assert_true(fd >= 0);
    raw_hello(fd);
    uint8_t junk[12] = {0xff, 0xff, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(write(fd, junk, sizeof(junk)), 12);
    assert_true(test_wait(fd_closed_by_peer, &fd, WAIT_MS));
    close(fd);
    /* an oversize frame header */
    fd = vdp_unix_connect(F->h.sock_path);
    assert_true(fd >= 0);
    raw_hello(fd);
    uint8_t hdr[VDP_IPC_HEADER_SIZE];
    VdpIpcHeader h = {.type = VDP_IPC_GUEST_LAYOUT, .size = 0xFFFFFFFFu};
    vdp_ipc_header_encode(&h, hdr);
    assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    assert_true(test_wait(fd_closed_by_peer, &fd, WAIT_MS));
    close(fd);
    /* a layout that does not decode */
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    uint8_t bad[12] = {0};
    vdp_put_le32(bad + 8, 5);
    vdp_ipc_conn_send(a->conn, VDP_IPC_GUEST_LAYOUT, 0, bad, sizeof(bad), NULL, 0);
    assert_true(test_wait(dh_agent_answered, a, WAIT_MS));
    assert_true(test_wait(agent_closed, a, WAIT_MS));
    test_agent_free(a);
    /* the daemon is alive and takes a new agent */
    a = agent_with_layout(false);
    dh_host_ready(&F->h);
    test_agent_free(a);
}

static void test_handshake_timeout(void **state)
{
    int fd = vdp_unix_connect(F->h.sock_path);
    assert_true(fd >= 0);
    gint64 t0 = g_get_monotonic_time();
    assert_true(test_wait(fd_closed_by_peer, &fd, WAIT_MS));
    gint64 ms = (g_get_monotonic_time() - t0) / 1000;
    assert_true(ms >= HANDSHAKE_MS - 100);
    close(fd);
}

static void test_connection_limit(void **state)
{
    int fds[8];
    for (unsigned i = 0; i < 8; i++) {
        fds[i] = vdp_unix_connect(F->h.sock_path);
        assert_true(fds[i] >= 0);
    }
    /* the 9th connection of this uid is refused */
    TestAgent *a = test_agent_connect(F->h.sock_path, VDP_IPC_ROLE_AGENT, "ninth");
    assert_non_null(a);
    assert_true(test_wait(dh_agent_answered, a, WAIT_MS));
    assert_true(a->rejected);
    assert_int_equal(a->reject_reason, VDP_IPC_REJECT_TOO_MANY);
    test_agent_free(a);
    for (unsigned i = 0; i < 8; i++)
        close(fds[i]);
    /* slots are free again */
    test_spin(200);
    a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    test_agent_free(a);
}

static void test_client_disconnected(void **state)
{
    TestAgent *a = agent_with_layout(false);
    dh_host_ready(&F->h);
    assert_true(test_wait(client_flag, a, WAIT_MS));
    GError *error = NULL;
    assert_true(vdh_host_send_client_disconnected(F->h.host, &error));
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIENT_DISCONNECTED], 1));
    assert_true(test_wait(no_client, a, WAIT_MS));
    test_agent_free(a);
}

static void test_redeliver(void **state)
{
    TestAgent *a = agent_with_layout(false);
    dh_host_ready(&F->h);
    VdpGraphicsDeviceInfo *gi = g_new0(VdpGraphicsDeviceInfo, 1);
    gi->count = 1;
    gi->info[0] = (VdpDeviceDisplayInfo){.channel_id = 0, .monitor_id = 0, .device_display_id = 3,
                                         .device_address = "pci/0000/02.0", .device_address_len = 14};
    GError *error = NULL;
    assert_true(vdh_host_send_graphics_device_info(F->h.host, gi, &error));
    uint16_t vol[2] = {1000, 2000};
    assert_true(vdh_host_send_audio_volume(F->h.host, true, false, vol, 2, &error));
    assert_true(wait_count(&a->nmsgs[VD_AGENT_GRAPHICS_DEVICE_INFO], 1));
    assert_true(wait_count(&a->nmsgs[VD_AGENT_AUDIO_VOLUME_SYNC], 1));
    test_agent_free(a);
    assert_true(test_wait(dh_host_disconnected, &F->h, WAIT_MS));
    /* a new agent gets both at once, before it even reports a layout */
    TestAgent *b = dh_agent_connect(&F->h);
    assert_true(b->welcomed);
    assert_true(wait_count(&b->nmsgs[VD_AGENT_GRAPHICS_DEVICE_INFO], 1));
    assert_true(wait_count(&b->nmsgs[VD_AGENT_AUDIO_VOLUME_SYNC], 1));
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(b, VD_AGENT_GRAPHICS_DEVICE_INFO, m));
    assert_int_equal(m->u.device_info.count, 1);
    assert_int_equal(m->u.device_info.info[0].device_display_id, 3);
    assert_string_equal(m->u.device_info.info[0].device_address, "pci/0000/02.0");
    assert_true(test_agent_last(b, VD_AGENT_AUDIO_VOLUME_SYNC, m));
    assert_int_equal(m->u.volume.nchannels, 2);
    assert_int_equal(m->u.volume.volume[1], 2000);
    assert_true(m->u.volume.is_playback);
    g_free(m);
    g_free(gi);
    test_agent_free(b);
}

static char *run_status(bool json, int *exit_status, const char *sock)
{
    char *argv[] = {(char *)dh_daemon_path(), "--status", "-S", (char *)sock, json ? "--json" : NULL, NULL};
    char *out = NULL, *err = NULL;
    int status = -1;
    GError *error = NULL;
    /* run it from a thread-free loop: the daemon must keep serving, so
     * spawn asynchronously and iterate our context while waiting. */
    GPid pid;
    int out_fd;
    assert_true(g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL,
                                         &out_fd, NULL, &error));
    GString *s = g_string_new(NULL);
    fcntl(out_fd, F_SETFL, O_NONBLOCK);
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
    for (;;) {
        char b[4096];
        ssize_t n = read(out_fd, b, sizeof(b));
        if (n > 0) {
            g_string_append_len(s, b, n);
            continue;
        }
        if (n == 0)
            break;
        g_main_context_iteration(NULL, FALSE);
        g_usleep(2000);
        if (g_get_monotonic_time() > end)
            break;
    }
    close(out_fd);
    waitpid(pid, &status, 0);
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    g_free(out);
    g_free(err);
    return g_string_free(s, FALSE);
}

static void test_status(void **state)
{
    TestAgent *a = agent_with_layout(true);
    dh_host_ready(&F->h);
    assert_true(test_wait(client_flag, a, WAIT_MS));
    int st = -1;
    char *text = run_status(false, &st, F->h.sock_path);
    assert_int_equal(st, 0);
    assert_non_null(strstr(text, "open"));
    assert_non_null(strstr(text, "client:          connected"));
    assert_non_null(strstr(text, "mouse-state"));
    assert_non_null(strstr(text, " active"));
    g_free(text);

    char *js = run_status(true, &st, F->h.sock_path);
    assert_int_equal(st, 0);
    json_object *root = json_tokener_parse(js);
    assert_non_null(root);
    json_object *port, *client, *agents, *v;
    assert_true(json_object_object_get_ex(root, "port", &port));
    assert_true(json_object_object_get_ex(port, "state", &v));
    assert_string_equal(json_object_get_string(v), "open");
    assert_true(json_object_object_get_ex(root, "client", &client));
    assert_true(json_object_object_get_ex(client, "connected", &v));
    assert_true(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(root, "mouse", &v));
    assert_string_equal(json_object_get_string(v), "fake");
    assert_true(json_object_object_get_ex(root, "agents", &agents));
    assert_int_equal(json_object_array_length(agents), 1);
    json_object *ag = json_object_array_get_idx(agents, 0);
    assert_true(json_object_object_get_ex(ag, "active", &v));
    assert_true(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(ag, "pid", &v));
    assert_int_equal(json_object_get_int64(v), getpid());
    json_object *layout, *displays;
    assert_true(json_object_object_get_ex(ag, "layout", &layout));
    assert_true(json_object_object_get_ex(layout, "displays", &displays));
    assert_int_equal(json_object_array_length(displays), 2);
    json_object_put(root);
    g_free(js);

    /* the same over an in-process control client */
    TestAgent *c = test_agent_connect(F->h.sock_path, VDP_IPC_ROLE_CONTROL, "test-control");
    assert_true(test_wait(dh_agent_answered, c, WAIT_MS));
    assert_true(c->welcomed);
    assert_true(test_agent_send_status_request(c));
    assert_true(test_wait(has_status, c, WAIT_MS));
    assert_non_null(strstr(c->status_json, "\"state\":\"open\""));
    test_agent_free(c);

    /* no daemon there */
    char *nosock = g_build_filename(F->h.dir, "nothing", NULL);
    char *none = run_status(false, &st, nosock);
    assert_int_equal(st, 1);
    g_free(none);
    g_free(nosock);
    test_agent_free(a);
}

static void raw_xfer_start(uint32_t id)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_START;
    m->u.xfer_start.id = id;
    static const char kf[] = "[vdagent-file-xfer]\nname=a.txt\nsize=3\n";
    m->u.xfer_start.keyfile = kf;
    m->u.xfer_start.keyfile_len = strlen(kf);
    VdpLayout l = {0};
    VdpError err = {0};
    if (vdp_port_send_msg(F->raw.port, m, &l, &err) != VDP_OK)
        fail_msg("send FILE_XFER_START: %s", err.text);
    g_free(m);
}

/* START is forwarded to the agent; a duplicate id gets ERROR; the
 * 129th transfer at once gets ERROR with the TOO_MANY_OPEN_FILES detail
 * (CVE-2020-25650); a client without detailed errors gets plain ERROR. */
static void test_xfer_limits(void **state)
{
    TestAgent *a = agent_with_layout(false);
    assert_true(test_wait(raw_open, NULL, WAIT_MS));
    raw_announce(true, true);
    raw_xfer_start(1);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_FILE_XFER_START], 1));
    assert_int_equal(F->raw.statuses, 0);
    /* duplicate id */
    raw_xfer_start(1);
    assert_true(wait_count(&F->raw.statuses, 1));
    assert_int_equal(F->raw.last_status_id, 1);
    assert_int_equal(F->raw.last_status_result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    assert_false(F->raw.last_status_detail);
    for (uint32_t id = 2; id <= 128; id++)
        raw_xfer_start(id);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_FILE_XFER_START], 128));
    assert_int_equal(F->raw.statuses, 1);
    raw_xfer_start(129);
    assert_true(wait_count(&F->raw.statuses, 2));
    assert_int_equal(F->raw.last_status_id, 129);
    assert_int_equal(F->raw.last_status_result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    assert_true(F->raw.last_status_detail);
    assert_int_equal(F->raw.last_status_error_type, VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO);
    assert_int_equal(F->raw.last_status_error_code, 31 /* G_IO_ERROR_TOO_MANY_OPEN_FILES */);
    test_spin(100);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_START], 128);
    /* the agent ends one: room for one more */
    assert_true(test_agent_send_xfer_status(a, 7, VD_AGENT_FILE_XFER_STATUS_ERROR));
    assert_true(wait_count(&F->raw.statuses, 3));
    assert_int_equal(F->raw.last_status_id, 7);
    raw_xfer_start(130);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_FILE_XFER_START], 129));
    /* without detailed errors: plain ERROR, no detail */
    raw_announce(false, false);
    raw_xfer_start(131);
    assert_true(wait_count(&F->raw.statuses, 4));
    assert_int_equal(F->raw.last_status_id, 131);
    assert_int_equal(F->raw.last_status_result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    assert_false(F->raw.last_status_detail);
    /* a new client: the agent is told the transfers are cancelled */
    unsigned before = a->nmsgs[VD_AGENT_FILE_XFER_STATUS];
    raw_announce(true, true);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_FILE_XFER_STATUS], before + 128));
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(a, VD_AGENT_FILE_XFER_STATUS, m));
    assert_int_equal(m->u.xfer_status.result, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
    g_free(m);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

/* ---- file transfers through the host library ---- */

static char *make_file(const char *name, size_t size, char **sha)
{
    char *path = g_build_filename(F->h.dir, name, NULL);
    uint8_t *data = g_malloc(size);
    uint32_t v = 12345;
    for (size_t i = 0; i < size; i++) {
        v = v * 1103515245u + 12345u;
        data[i] = (uint8_t)(v >> 16);
    }
    assert_true(g_file_set_contents(path, (const char *)data, (gssize)size, NULL));
    if (sha)
        *sha = g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, size);
    g_free(data);
    return path;
}

static TestAgent *xfer_agent(void)
{
    TestAgent *a = agent_with_layout(false);
    a->xfer_accept = true;
    dh_host_ready(&F->h);
    return a;
}

static void test_xfer_file(void **state)
{
    TestAgent *a = xfer_agent();
    char *sha = NULL;
    char *path = make_file("three.bin", 3u << 20, &sha);
    const char *paths[] = {path, NULL};
    GError *error = NULL;
    if (!vdh_host_send_files_sync(F->h.host, paths, NULL, NULL, WAIT_MS, &error))
        fail_msg("send: %s", error->message);
    assert_int_equal(a->xfer_received, 3u << 20);
    assert_int_equal(a->xfer_done, 1);
    assert_string_equal(g_checksum_get_string(a->xfer_sum), sha);
    /* streamed DATA was re-chunked: never more than 128 KiB per envelope */
    assert_true(a->xfer_data_msgs >= (3u << 20) / (128u * 1024u));
    assert_int_equal(a->bad_frames, 0);
    unlink(path);
    g_free(path);
    g_free(sha);
    test_agent_free(a);
}

static void test_xfer_no_agent(void **state)
{
    TestAgent *a = agent_with_layout(false);
    dh_host_ready(&F->h);
    test_agent_free(a);
    test_spin(100);   /* the port stays open for a grace period */
    assert_true(vdh_host_is_connected(F->h.host));
    char *path = make_file("small.bin", 100, NULL);
    const char *paths[] = {path, NULL};
    GError *error = NULL;
    assert_false(vdh_host_send_files_sync(F->h.host, paths, NULL, NULL, WAIT_MS, &error));
    assert_non_null(error);
    assert_true(g_error_matches(error, VDH_ERROR, VDH_ERROR_REFUSED));
    assert_non_null(strstr(error->message, "no session agent"));
    g_error_free(error);
    unlink(path);
    g_free(path);
}

static bool got_data(void *d)
{
    return ((TestAgent *)d)->xfer_received > 0;
}

static void test_xfer_agent_gone(void **state)
{
    TestAgent *a = xfer_agent();
    a->xfer_no_success = true;
    char *path = make_file("big.bin", 3u << 20, NULL);
    const char *paths[] = {path, NULL};
    DhAsync ax = {.host = F->h.host};
    vdh_host_send_files_async(F->h.host, paths, dh_files_progress, &ax, WAIT_MS, NULL, dh_files_sent, &ax);
    assert_true(test_wait(got_data, a, WAIT_MS));
    test_agent_free(a);
    assert_true(test_wait(dh_async_done, &ax, WAIT_MS));
    assert_false(ax.ok);
    assert_non_null(ax.error);
    assert_non_null(strstr(ax.error->message, "cancelled"));
    g_error_free(ax.error);
    unlink(path);
    g_free(path);
}

/* The agent stops reading: the daemon stops reading the port (the host's
 * transfer stalls, the agent is not dropped for a full queue); it
 * completes when the agent reads again. */
static void test_xfer_backpressure(void **state)
{
    TestAgent *a = xfer_agent();
    char *sha = NULL;
    size_t size = 16u << 20;
    char *path = make_file("huge.bin", size, &sha);
    const char *paths[] = {path, NULL};
    DhAsync ax = {.host = F->h.host};
    vdh_host_send_files_async(F->h.host, paths, dh_files_progress, &ax, WAIT_MS, NULL, dh_files_sent, &ax);
    assert_true(test_wait(got_data, a, WAIT_MS));
    vdp_ipc_conn_pause_read(a->conn, true);
    test_spin(500);
    uint64_t stalled = ax.sent;
    test_spin(500);
    assert_false(ax.done);
    assert_true(ax.sent < size);
    assert_int_equal(ax.sent, stalled);
    assert_false(a->closed);
    vdp_ipc_conn_pause_read(a->conn, false);
    assert_true(test_wait(dh_async_done, &ax, 4 * WAIT_MS));
    if (!ax.ok)
        fail_msg("send: %s", ax.error->message);
    assert_int_equal(a->xfer_received, size);
    assert_string_equal(g_checksum_get_string(a->xfer_sum), sha);
    unlink(path);
    g_free(path);
    g_free(sha);
    test_agent_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_port_follows_layout, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_caps_request, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_monitors_physical, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_mouse_fifo, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_stall, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_host, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_second_agent, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_agent_garbage, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnected, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_redeliver, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_limits, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_file, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_no_agent, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_agent_gone, setup_host, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_backpressure, setup_host, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
