/* test-host.c - the host library against a scripted fake guest over real
 * UNIX sockets in a temporary directory, in both directions (the host
 * listening for the guest, the host connecting to a listening guest).
 *
 * Every test has its own GMainContext shared by the host and the fake
 * guest. Waits are bounded: run_until() iterates until a condition holds
 * or a deadline passes. The *_sync calls iterate the same context, so the
 * fake guest answers while the host waits.
 *
 * VDH_TEST_VERBOSE=1 prints events and error messages.
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

#include <glib.h>
#include <glib/gstdio.h>

#include "fake-guest.h"
#include "vdh-host.h"
#include "vdp-checksum.h"
#include "vdp-testdir.h"

/* Longest any single wait may take before a test fails. */
#define WAIT_MS 30000
#define TICK_MS 5
#define MIB (1024u * 1024u)
/* Framed size of one FILE_XFER_DATA message of 64 KiB in 2 KiB chunks. */
#define DATA_MSG_FRAMED (65536u + 12u + 20u + 33u * 8u)

static bool verbose;

/* ====================================================================
 * Environment
 * ==================================================================== */

typedef struct HostLog {
    unsigned connected, disconnected;
    unsigned caps_events, caps_requests;
    unsigned messages, streamed_clipboards;
    size_t streamed_size;
    unsigned dropped;
    char last_dropped[512];
    unsigned grabs, releases;
    uint8_t grab_sel, release_sel;
    uint32_t grab_types[8];
    unsigned grab_ntypes;
} HostLog;

typedef struct Progress {
    unsigned calls;
    VdhXferProgress last;
    char name[256];
    uint64_t prev_batch_sent;
    bool monotonic;
} Progress;

typedef struct Env {
    GMainContext *ctx;
    char *dir, *path;
    bool host_listen;
    VdhHost *h;
    FakeGuest *fg;
    HostLog log;
    Progress progress;
    bool free_on_connect;
} Env;

static gint64 now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

static int env_setup(void **state)
{
    Env *e = g_new0(Env, 1);
    e->ctx = g_main_context_new();
    e->dir = g_dir_make_tmp("test-host-XXXXXX", NULL);
    assert_non_null(e->dir);
    e->path = g_build_filename(e->dir, "agent.sock", NULL);
    e->host_listen = true;
    e->progress.monotonic = true;
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    Env *e = *state;
    vdh_host_free(e->h);
    fg_free(e->fg);
    /* deliver the results of cancelled operations, run deferred frees */
    for (int i = 0; i < 1000 && g_main_context_iteration(e->ctx, FALSE); i++)
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

typedef bool (*CondFn)(Env *e, void *data);

static bool run_until(Env *e, CondFn cond, void *data, unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    GSource *tick = g_timeout_source_new(TICK_MS);
    g_source_set_callback(tick, tick_cb, NULL, NULL);
    g_source_attach(tick, e->ctx);
    bool ok;
    while (!(ok = cond(e, data)) && g_get_monotonic_time() < deadline)
        g_main_context_iteration(e->ctx, TRUE);
    g_source_destroy(tick);
    g_source_unref(tick);
    return ok;
}

static bool never(Env *e, void *data)
{
    return false;
}

static void run_for(Env *e, unsigned ms)
{
    run_until(e, never, NULL, ms);
}

/* ---- host events ---- */

static void ev_connection(void *user, bool connected, const char *why)
{
    Env *e = user;
    if (verbose)
        printf("    [host] %s: %s\n", connected ? "connected" : "disconnected", why);
    if (connected)
        e->log.connected++;
    else
        e->log.disconnected++;
    if (e->free_on_connect) {
        vdh_host_free(e->h);
        e->h = NULL;
    }
}

static void ev_caps(void *user, const VdpCaps *caps, bool request)
{
    Env *e = user;
    e->log.caps_events++;
    e->log.caps_requests += request;
}

static void ev_message(void *user, const VdpMsg *msg)
{
    Env *e = user;
    e->log.messages++;
    if (msg->type == VD_AGENT_CLIPBOARD && !msg->u.clipboard.data && msg->u.clipboard.size) {
        e->log.streamed_clipboards++;
        e->log.streamed_size = msg->u.clipboard.size;
    }
}

static void ev_dropped(void *user, const char *why)
{
    Env *e = user;
    if (verbose)
        printf("    [host] dropped: %s\n", why);
    e->log.dropped++;
    g_strlcpy(e->log.last_dropped, why, sizeof(e->log.last_dropped));
}

static void ev_grab(void *user, uint8_t sel, const uint32_t *types, unsigned n)
{
    Env *e = user;
    e->log.grabs++;
    e->log.grab_sel = sel;
    e->log.grab_ntypes = MIN(n, 8u);
    memcpy(e->log.grab_types, types, e->log.grab_ntypes * sizeof(types[0]));
}

static void ev_release(void *user, uint8_t sel)
{
    Env *e = user;
    e->log.releases++;
    e->log.release_sel = sel;
}

static const VdhHostEvents host_events = {
    .connection = ev_connection,
    .guest_caps = ev_caps,
    .message = ev_message,
    .dropped = ev_dropped,
    .clipboard_grab = ev_grab,
    .clipboard_release = ev_release,
};

/* ---- configurations and the handshake ---- */

static VdhHostConfig host_cfg(Env *e)
{
    VdhHostConfig c = {.path = e->path, .listen = e->host_listen, .context = e->ctx};
    return c;
}

static FgConfig fg_cfg(Env *e)
{
    FgConfig c = {.path = e->path, .listen = !e->host_listen};
    return c;
}

static bool handshake_done(Env *e, void *data)
{
    if (!e->h || !vdh_host_get_guest_caps(e->h) || !e->fg->host_announced)
        return false;
    unsigned want = e->fg->cfg.no_announce ? 1 : 2;
    return fg_count(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES) >= want && e->log.caps_events >= want;
}

static void env_connect_with(Env *e, const VdhHostConfig *hc, const FgConfig *fc)
{
    GError *err = NULL;
    e->h = vdh_host_new(hc, &host_events, e, &err);
    assert_null(err);
    assert_non_null(e->h);
    e->fg = fg_new(e->ctx, fc);
    /* The listening side first, so the other connects at once. */
    if (e->host_listen) {
        vdh_host_start(e->h);
        fg_start(e->fg);
    } else {
        fg_start(e->fg);
        vdh_host_start(e->h);
    }
    assert_true(run_until(e, handshake_done, NULL, WAIT_MS));
}

static void env_connect(Env *e)
{
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    env_connect_with(e, &hc, &fc);
}

static void env_connect_caps(Env *e, const VdpCaps *guest_caps)
{
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    fc.caps = guest_caps;
    env_connect_with(e, &hc, &fc);
}

/* ---- waiting for the fake guest ---- */

typedef struct CountWait {
    uint32_t type;
    unsigned n;
} CountWait;

static bool fg_has(Env *e, void *data)
{
    CountWait *w = data;
    return fg_count(e->fg, w->type) >= w->n;
}

static void wait_fg(Env *e, uint32_t type, unsigned n)
{
    CountWait w = {type, n};
    assert_true(run_until(e, fg_has, &w, WAIT_MS));
}

/* ---- asynchronous results ---- */

typedef struct Pending {
    GAsyncResult *res;
} Pending;

static void pending_cb(GObject *src, GAsyncResult *res, gpointer data)
{
    Pending *p = data;
    p->res = g_object_ref(res);
}

static bool pending_done(Env *e, void *data)
{
    return ((Pending *)data)->res != NULL;
}

static void wait_pending(Env *e, Pending *p)
{
    assert_true(run_until(e, pending_done, p, WAIT_MS));
}

static void pending_clear(Pending *p)
{
    g_clear_object(&p->res);
}

/* The error has this code and mentions text (if given); freed. */
static void check_error(GError *err, VdhError code, const char *text)
{
    assert_non_null(err);
    if (verbose)
        printf("    error %d: %s\n", err->code, err->message);
    if (err->domain != VDH_ERROR || err->code != (int)code || (text && !strstr(err->message, text)))
        fail_msg("expected error %d mentioning \"%s\", got %d: %s", code, text ? text : "",
                 err->code, err->message);
    g_error_free(err);
}

/* A call that must succeed; on failure the test shows its error. */
#define ASSERT_OK(call)                                                                   \
    do {                                                                                  \
        GError *ok_err_ = NULL;                                                           \
        GError **err_ = &ok_err_;                                                         \
        if (!(call))                                                                      \
            fail_msg("%s failed: %s", #call, ok_err_ ? ok_err_->message : "(no error)"); \
        g_clear_error(&ok_err_);                                                          \
    } while (0)

/* ---- content ---- */

static uint8_t pattern_byte(uint32_t seed, size_t i)
{
    return (uint8_t)(i * 131u + (i >> 11) + seed * 7u);
}

static GBytes *pattern_bytes(uint32_t seed, size_t n)
{
    uint8_t *buf = g_malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern_byte(seed, i);
    return g_bytes_new_take(buf, n);
}

static uint64_t bytes_hash(GBytes *b)
{
    gsize n = 0;
    const uint8_t *d = g_bytes_get_data(b, &n);
    return vdp_fnv1a(VDP_FNV_INIT, d, n);
}

/* Write a file of pattern bytes; returns its path, its hash in *hash. */
static char *make_file(Env *e, const char *name, size_t size, uint32_t seed, uint64_t *hash)
{
    char *path = g_build_filename(e->dir, name, NULL);
    GBytes *b = pattern_bytes(seed, size);
    assert_true(g_file_set_contents(path, g_bytes_get_data(b, NULL), (gssize)size, NULL));
    if (hash)
        *hash = bytes_hash(b);
    g_bytes_unref(b);
    return path;
}

static void on_progress(void *user, const VdhXferProgress *p)
{
    Env *e = user;
    Progress *pr = &e->progress;
    if (p->batch_sent < pr->prev_batch_sent || p->sent > p->size || p->batch_sent > p->batch_size)
        pr->monotonic = false;
    pr->prev_batch_sent = p->batch_sent;
    pr->calls++;
    pr->last = *p;
    g_strlcpy(pr->name, p->name, sizeof(pr->name));
    pr->last.name = pr->name;
}

static VdpCaps guest_caps_without(unsigned bit1, unsigned bit2)
{
    VdpCaps c;
    vdp_caps_init_guest(&c);
    vdp_caps_unset(&c, bit1);
    vdp_caps_unset(&c, bit2);
    return c;
}

static const FgMsg *msg_at(Env *e, int index)
{
    assert_true(index >= 0);
    return g_ptr_array_index(e->fg->msgs, (guint)index);
}

/* ====================================================================
 * Connection and capabilities
 * ==================================================================== */

static void check_handshake(Env *e)
{
    VdpCaps host, guest;
    vdp_caps_init_host(&host);
    vdp_caps_init_guest(&guest);

    assert_true(vdh_host_is_connected(e->h));
    assert_string_equal(vdh_host_describe_state(e->h), "connected");
    const VdpCaps *gc = vdh_host_get_guest_caps(e->h);
    assert_non_null(gc);
    assert_true(vdp_caps_equal(gc, &guest));

    /* The guest's first message from us: announce with request=1, port 1. */
    const FgMsg *m = msg_at(e, 0);
    assert_int_equal(m->type, VD_AGENT_ANNOUNCE_CAPABILITIES);
    assert_int_equal(m->chunk_port, VDP_CLIENT_PORT);
    assert_true(m->ok);
    assert_int_equal(m->msg.u.announce.request, 1);
    assert_true(vdp_caps_equal(&m->msg.u.announce.caps, &host));
    /* The guest's request=1 was answered with request=0. */
    const FgMsg *a = fg_nth(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES, 1);
    assert_non_null(a);
    assert_int_equal(a->msg.u.announce.request, 0);
    assert_int_equal(fg_count(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES), 2);
    assert_int_equal(e->log.connected, 1);
    assert_int_equal(e->log.caps_events, 2);
    assert_int_equal(e->log.caps_requests, 1);

    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    assert_int_equal(st.connects, 1);
    assert_true(st.messages_in >= 2 && st.bytes_in > 0 && st.bytes_out > 0);
}

static void test_connect_host_listens(void **state)
{
    Env *e = *state;
    env_connect(e);
    check_handshake(e);
}

static void test_connect_host_connects(void **state)
{
    Env *e = *state;
    e->host_listen = false;
    env_connect(e);
    check_handshake(e);
}

static void test_not_connected(void **state)
{
    Env *e = *state;
    VdhHostConfig hc = host_cfg(e);
    GError *err = NULL;
    e->h = vdh_host_new(&hc, &host_events, e, &err);
    assert_non_null(e->h);
    assert_string_equal(vdh_host_describe_state(e->h), "not started");
    vdh_host_start(e->h);
    run_for(e, 20);
    assert_string_equal(vdh_host_describe_state(e->h), "waiting for a guest");
    assert_null(vdh_host_get_guest_caps(e->h));

    gint64 t0 = now_ms();
    assert_false(vdh_host_wait_ready_sync(e->h, 200, &err));
    assert_true(now_ms() - t0 >= 195);
    check_error(err, VDH_ERROR_TIMEOUT, "no guest agent announced itself");

    err = NULL;
    assert_false(vdh_host_mouse(e->h, 1, 2, 0, 0, &err));
    check_error(err, VDH_ERROR_NOT_CONNECTED, "no guest agent is connected");
    err = NULL;
    assert_false(vdh_host_set_monitors_sync(e->h, NULL, 100, &err));
    check_error(err, VDH_ERROR_NOT_CONNECTED, NULL);

    /* A guest arriving later ends a wait in progress. */
    Pending p = {0};
    vdh_host_wait_ready_async(e->h, WAIT_MS, NULL, pending_cb, &p);
    FgConfig fc = fg_cfg(e);
    e->fg = fg_new(e->ctx, &fc);
    fg_start(e->fg);
    wait_pending(e, &p);
    assert_true(vdh_host_wait_ready_finish(e->h, p.res, &err));
    pending_clear(&p);
    /* Ready now: an immediate answer. */
    assert_true(vdh_host_wait_ready_sync(e->h, 1, &err));
}

static void test_bad_config(void **state)
{
    Env *e = *state;
    VdhHostConfig hc = host_cfg(e);
    GError *err = NULL;
    hc.chunk_size = 10;
    assert_null(vdh_host_new(&hc, NULL, NULL, &err));
    check_error(err, VDH_ERROR_INVALID, "chunk size");
    err = NULL;
    hc = host_cfg(e);
    hc.path = "";
    assert_null(vdh_host_new(&hc, NULL, NULL, &err));
    check_error(err, VDH_ERROR_INVALID, "path");
}

static void clipboard_set_text(Env *e, uint8_t sel, const char *text)
{
    GError *err = NULL;
    GBytes *b = g_bytes_new(text, strlen(text));
    assert_true(vdh_host_clipboard_set(e->h, sel, VD_AGENT_CLIPBOARD_UTF8_TEXT, b, &err));
    assert_null(err);
    g_bytes_unref(b);
}

static const FgMsg *set_and_get_grab(Env *e, uint8_t sel, const char *text)
{
    unsigned n = fg_count(e->fg, VD_AGENT_CLIPBOARD_GRAB);
    clipboard_set_text(e, sel, text);
    wait_fg(e, VD_AGENT_CLIPBOARD_GRAB, n + 1);
    const FgMsg *g = fg_last(e->fg, VD_AGENT_CLIPBOARD_GRAB);
    assert_true(g->ok);
    return g;
}

static bool guest_request_seen(Env *e, void *data)
{
    return e->log.caps_requests >= *(unsigned *)data &&
           fg_count(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES) >= 1;
}

static void test_caps_request_answered_and_serial_reset(void **state)
{
    Env *e = *state;
    env_connect(e);
    assert_int_equal(set_and_get_grab(e, 0, "one")->msg.u.grab.serial, 0);
    assert_int_equal(set_and_get_grab(e, 0, "two")->msg.u.grab.serial, 1);

    /* The guest agent restarts: it announces with request=1 again. */
    fg_forget(e->fg);
    memset(e->fg->serial, 0, sizeof(e->fg->serial));
    fg_announce(e->fg, true);
    unsigned want = 2;
    assert_true(run_until(e, guest_request_seen, &want, WAIT_MS));
    const FgMsg *a = fg_last(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES);
    assert_int_equal(a->msg.u.announce.request, 0);
    assert_int_equal(fg_count(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES), 1);
    /* Serials start over. */
    assert_int_equal(set_and_get_grab(e, 0, "three")->msg.u.grab.serial, 0);

    /* Our own announce with request=1 restarts them on both sides too. */
    set_and_get_grab(e, 0, "four");
    GError *err = NULL;
    assert_true(vdh_host_announce(e->h, true, &err));
    assert_int_equal(set_and_get_grab(e, 0, "five")->msg.u.grab.serial, 0);
    assert_int_equal(e->fg->grab_discards, 0);
}

static void test_caps_layout_without_selection(void **state)
{
    Env *e = *state;
    VdpCaps c = guest_caps_without(VD_AGENT_CAP_CLIPBOARD_SELECTION,
                                   VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL);
    env_connect_caps(e, &c);
    /* No selection prefix, no serial: a GRAB is one type. */
    const FgMsg *g = set_and_get_grab(e, 0, "plain");
    assert_int_equal(g->size, 4);
    assert_int_equal(g->msg.u.grab.types[0], VD_AGENT_CLIPBOARD_UTF8_TEXT);
    fg_request(e->fg, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    wait_fg(e, VD_AGENT_CLIPBOARD, 1);
    const FgMsg *d = fg_last(e->fg, VD_AGENT_CLIPBOARD);
    assert_int_equal(d->size, 4 + 5);
    assert_memory_equal(d->msg.u.clipboard.data, "plain", 5);

    GError *err = NULL;
    GBytes *b = g_bytes_new_static("x", 1);
    assert_false(vdh_host_clipboard_set(e->h, VD_AGENT_CLIPBOARD_SELECTION_PRIMARY,
                                        VD_AGENT_CLIPBOARD_UTF8_TEXT, b, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "the guest agent does not support clipboard-selection");
    g_bytes_unref(b);
}

static void test_max_clipboard_sent(void **state)
{
    Env *e = *state;
    env_connect(e);
    assert_int_equal(fg_count(e->fg, VD_AGENT_MAX_CLIPBOARD), 1);
    const FgMsg *m = fg_last(e->fg, VD_AGENT_MAX_CLIPBOARD);
    assert_int_equal(m->msg.u.max_clipboard.max, 100 * MIB);
    assert_true(fg_index(e->fg, VD_AGENT_MAX_CLIPBOARD, 0) >
                fg_index(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES, 0));
}

static void test_max_clipboard_not_sent(void **state)
{
    Env *e = *state;
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    hc.max_clipboard = -1;
    env_connect_with(e, &hc, &fc);
    run_for(e, 30);
    assert_int_equal(fg_count(e->fg, VD_AGENT_MAX_CLIPBOARD), 0);
}

static void test_max_clipboard_guest_lacks_cap(void **state)
{
    Env *e = *state;
    VdpCaps c = guest_caps_without(VD_AGENT_CAP_MAX_CLIPBOARD, VD_AGENT_CAP_MAX_CLIPBOARD);
    env_connect_caps(e, &c);
    run_for(e, 30);
    assert_int_equal(fg_count(e->fg, VD_AGENT_MAX_CLIPBOARD), 0);
    GError *err = NULL;
    assert_false(vdh_host_send_max_clipboard(e->h, 1000, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "max-clipboard");
}

static void test_capability_missing(void **state)
{
    Env *e = *state;
    VdpCaps c = guest_caps_without(VD_AGENT_CAP_MONITORS_CONFIG, VD_AGENT_CAP_MOUSE_STATE);
    vdp_caps_unset(&c, VD_AGENT_CAP_AUDIO_VOLUME_SYNC);
    vdp_caps_unset(&c, VD_AGENT_CAP_GRAPHICS_DEVICE_INFO);
    vdp_caps_unset(&c, VD_AGENT_CAP_CLIPBOARD_BY_DEMAND);
    env_connect_caps(e, &c);

    GError *err = NULL;
    VdpMonitorsConfig mc = {.count = 1, .monitors = {{.width = 800, .height = 600}}};
    assert_false(vdh_host_set_monitors_sync(e->h, &mc, 500, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "the guest agent does not support monitors-config");
    err = NULL;
    assert_false(vdh_host_mouse(e->h, 1, 1, 0, 0, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "mouse-state");
    err = NULL;
    assert_false(vdh_host_mouse_click(e->h, 1, 1, VD_AGENT_LBUTTON_MASK, 0, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "mouse-state");
    err = NULL;
    uint16_t vol[2] = {1, 2};
    assert_false(vdh_host_send_audio_volume(e->h, true, false, vol, 2, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "audio-volume-sync");
    err = NULL;
    VdpGraphicsDeviceInfo gdi = {0};
    assert_false(vdh_host_send_graphics_device_info(e->h, &gdi, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "graphics-device-info");
    err = NULL;
    /* spice-vdagent never announces DISPLAY_CONFIG. */
    assert_false(vdh_host_send_display_config(e->h, 1, 32, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "display-config");
    err = NULL;
    GBytes *b = g_bytes_new_static("x", 1);
    assert_false(vdh_host_clipboard_set(e->h, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, b, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "clipboard-by-demand");
    g_bytes_unref(b);
    err = NULL;
    assert_null(vdh_host_clipboard_get_sync(e->h, 0, 0, 500, NULL, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "clipboard-by-demand");

    run_for(e, 20);
    static const uint32_t never_sent[] = {
        VD_AGENT_MONITORS_CONFIG, VD_AGENT_MOUSE_STATE, VD_AGENT_AUDIO_VOLUME_SYNC,
        VD_AGENT_GRAPHICS_DEVICE_INFO, VD_AGENT_DISPLAY_CONFIG, VD_AGENT_CLIPBOARD_GRAB,
        VD_AGENT_CLIPBOARD_REQUEST,
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(never_sent); i++)
        assert_int_equal(fg_count(e->fg, never_sent[i]), 0);
}

/* ====================================================================
 * Mouse
 * ==================================================================== */

static const FgMsg *mouse_and_get(Env *e, uint32_t x, uint32_t y, uint32_t buttons, uint8_t id)
{
    GError *err = NULL;
    unsigned n = fg_count(e->fg, VD_AGENT_MOUSE_STATE);
    assert_true(vdh_host_mouse(e->h, x, y, buttons, id, &err));
    wait_fg(e, VD_AGENT_MOUSE_STATE, n + 1);
    const FgMsg *m = fg_last(e->fg, VD_AGENT_MOUSE_STATE);
    assert_int_equal(m->chunk_port, VDP_SERVER_PORT);
    assert_true(m->ok);
    return m;
}

static void test_mouse_bytes(void **state)
{
    Env *e = *state;
    env_connect(e);
    const FgMsg *m =
        mouse_and_get(e, 0x01020304, 200, VD_AGENT_LBUTTON_MASK | VD_AGENT_RBUTTON_MASK, 1);
    static const uint8_t want[13] = {0x04, 0x03, 0x02, 0x01, 200, 0, 0, 0, 0x0a, 0, 0, 0, 1};
    assert_int_equal(m->size, 13);
    assert_memory_equal(m->raw, want, 13);

    static const uint32_t buttons[] = {
        VD_AGENT_LBUTTON_MASK, VD_AGENT_MBUTTON_MASK, VD_AGENT_RBUTTON_MASK,
        VD_AGENT_SBUTTON_MASK, VD_AGENT_EBUTTON_MASK, 0,
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(buttons); i++) {
        m = mouse_and_get(e, 10 + i, 20 + i, buttons[i], (uint8_t)i);
        assert_int_equal(m->msg.u.mouse.x, 10 + i);
        assert_int_equal(m->msg.u.mouse.y, 20 + i);
        assert_int_equal(m->msg.u.mouse.buttons, buttons[i]);
        assert_int_equal(m->msg.u.mouse.display_id, i);
    }
    GError *err = NULL;
    assert_false(vdh_host_mouse(e->h, 0, 0, 1u << 0, 0, &err));
    check_error(err, VDH_ERROR_INVALID, "button");
    err = NULL;
    assert_false(vdh_host_mouse(e->h, 0, 0, 1u << 8, 0, &err));
    check_error(err, VDH_ERROR_INVALID, "button");
}

static void check_click(Env *e, unsigned first, uint32_t press, uint32_t release, uint8_t id)
{
    const FgMsg *p = fg_nth(e->fg, VD_AGENT_MOUSE_STATE, first);
    const FgMsg *r = fg_nth(e->fg, VD_AGENT_MOUSE_STATE, first + 1);
    assert_non_null(p);
    assert_non_null(r);
    assert_int_equal(p->chunk_port, VDP_SERVER_PORT);
    assert_int_equal(r->chunk_port, VDP_SERVER_PORT);
    assert_int_equal(p->msg.u.mouse.buttons, press);
    assert_int_equal(r->msg.u.mouse.buttons, release);
    assert_int_equal(p->msg.u.mouse.display_id, id);
    assert_int_equal(r->msg.u.mouse.display_id, id);
}

static void test_mouse_click_wheel(void **state)
{
    Env *e = *state;
    env_connect(e);
    GError *err = NULL;
    assert_true(vdh_host_mouse_click(e->h, 50, 60, VD_AGENT_UBUTTON_MASK, 2, &err));
    assert_true(vdh_host_mouse_click(e->h, 50, 60, VD_AGENT_DBUTTON_MASK, 2, &err));
    /* a held button stays held across a click */
    mouse_and_get(e, 50, 60, VD_AGENT_MBUTTON_MASK, 3);
    assert_true(vdh_host_mouse_click(e->h, 51, 61, VD_AGENT_LBUTTON_MASK, 3, &err));
    assert_true(vdh_host_mouse_click(e->h, 51, 61, VD_AGENT_SBUTTON_MASK, 0, &err));
    assert_true(vdh_host_mouse_click(e->h, 51, 61, VD_AGENT_EBUTTON_MASK, 0, &err));
    wait_fg(e, VD_AGENT_MOUSE_STATE, 11);
    check_click(e, 0, VD_AGENT_UBUTTON_MASK, 0, 2);
    check_click(e, 2, VD_AGENT_DBUTTON_MASK, 0, 2);
    check_click(e, 5, VD_AGENT_MBUTTON_MASK | VD_AGENT_LBUTTON_MASK, VD_AGENT_MBUTTON_MASK, 3);
    check_click(e, 7, VD_AGENT_MBUTTON_MASK | VD_AGENT_SBUTTON_MASK, VD_AGENT_MBUTTON_MASK, 0);
    check_click(e, 9, VD_AGENT_MBUTTON_MASK | VD_AGENT_EBUTTON_MASK, VD_AGENT_MBUTTON_MASK, 0);
    assert_int_equal(fg_nth(e->fg, VD_AGENT_MOUSE_STATE, 5)->msg.u.mouse.x, 51);
    assert_false(vdh_host_mouse_click(e->h, 0, 0, 0, 0, &err));
    check_error(err, VDH_ERROR_INVALID, "no mouse button");
}

/* ====================================================================
 * Monitors
 * ==================================================================== */

static VdpMonitorsConfig *three_monitors(void)
{
    VdpMonitorsConfig *mc = g_new0(VdpMonitorsConfig, 1);
    mc->count = 3;
    mc->monitors[0] = (VdpMonConfig){.width = 1920, .height = 1080, .depth = 32, .x = 0, .y = 0,
                                     .mm_width = 530, .mm_height = 300};
    mc->monitors[1] = (VdpMonConfig){0};   /* disabled */
    mc->monitors[2] = (VdpMonConfig){.width = 1280, .height = 1024, .depth = 24, .x = 1920,
                                     .y = -56, .mm_width = 340, .mm_height = 270};
    return mc;
}

static void test_monitors_roundtrip(void **state)
{
    Env *e = *state;
    env_connect(e);
    VdpMonitorsConfig *mc = three_monitors();
    GError *err = NULL;
    ASSERT_OK(vdh_host_set_monitors_sync(e->h, mc, 2000, err_));
    assert_null(err);
    const FgMsg *m = fg_last(e->fg, VD_AGENT_MONITORS_CONFIG);
    assert_non_null(m);
    assert_true(m->ok);
    assert_int_equal(m->chunk_port, VDP_CLIENT_PORT);
    assert_int_equal(m->size, 8 + 3 * 20 + 3 * 4);
    const VdpMonitorsConfig *got = &m->msg.u.monitors;
    assert_int_equal(got->count, 3);
    assert_int_equal(got->flags, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS |
                                     VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE);
    for (unsigned i = 0; i < 3; i++) {
        const VdpMonConfig *a = &mc->monitors[i], *b = &got->monitors[i];
        assert_int_equal(a->width, b->width);
        assert_int_equal(a->height, b->height);
        assert_int_equal(a->depth, b->depth);
        assert_int_equal(a->x, b->x);
        assert_int_equal(a->y, b->y);
        assert_int_equal(a->mm_width, b->mm_width);
        assert_int_equal(a->mm_height, b->mm_height);
    }
    /* One monitor at 0,0 without millimetres: no flags, no mm block. */
    VdpMonitorsConfig one = {.count = 1, .monitors = {{.width = 1024, .height = 768, .depth = 32}}};
    ASSERT_OK(vdh_host_set_monitors_sync(e->h, &one, 2000, err_));
    m = fg_last(e->fg, VD_AGENT_MONITORS_CONFIG);
    assert_int_equal(m->size, 8 + 20);
    assert_int_equal(m->msg.u.monitors.flags, 0);
    assert_int_equal(fg_count(e->fg, VD_AGENT_MONITORS_CONFIG), 2);
    g_free(mc);
}

static void test_monitors_reply_error(void **state)
{
    Env *e = *state;
    env_connect(e);
    e->fg->reply = FG_REPLY_ERROR;
    VdpMonitorsConfig one = {.count = 1, .monitors = {{.width = 1024, .height = 768}}};
    GError *err = NULL;
    assert_false(vdh_host_set_monitors_sync(e->h, &one, 2000, &err));
    check_error(err, VDH_ERROR_REFUSED, "refused the monitor configuration");
}

static void test_monitors_no_reply_timeout(void **state)
{
    Env *e = *state;
    env_connect(e);
    e->fg->reply = FG_REPLY_NONE;
    VdpMonitorsConfig one = {.count = 1, .monitors = {{.width = 1024, .height = 768}}};
    GError *err = NULL;

    /* A second configuration while one waits: BUSY. */
    Pending p = {0};
    gint64 t0 = now_ms();
    vdh_host_set_monitors_async(e->h, &one, 300, NULL, pending_cb, &p);
    assert_false(vdh_host_set_monitors_sync(e->h, &one, 300, &err));
    check_error(err, VDH_ERROR_BUSY, "already waiting");
    wait_pending(e, &p);
    gint64 elapsed = now_ms() - t0;
    err = NULL;
    assert_false(vdh_host_set_monitors_finish(e->h, p.res, &err));
    check_error(err, VDH_ERROR_TIMEOUT, "within 300 ms");
    assert_true(elapsed >= 295 && elapsed < 1500);
    pending_clear(&p);
    assert_int_equal(fg_count(e->fg, VD_AGENT_MONITORS_CONFIG), 1);
}

static void test_monitors_invalid_and_sparse(void **state)
{
    Env *e = *state;
    VdpCaps c = guest_caps_without(VD_AGENT_CAP_SPARSE_MONITORS_CONFIG,
                                   VD_AGENT_CAP_SPARSE_MONITORS_CONFIG);
    env_connect_caps(e, &c);
    GError *err = NULL;
    VdpMonitorsConfig *mc = three_monitors();
    assert_false(vdh_host_set_monitors_sync(e->h, mc, 500, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "sparse-monitors-config");
    err = NULL;
    mc->count = 0;
    assert_false(vdh_host_set_monitors_sync(e->h, mc, 500, &err));
    check_error(err, VDH_ERROR_INVALID, "1 to 256 monitors");
    err = NULL;
    mc->count = VDP_MAX_MONITORS + 1;
    assert_false(vdh_host_set_monitors_sync(e->h, mc, 500, &err));
    check_error(err, VDH_ERROR_INVALID, "1 to 256 monitors");
    err = NULL;
    mc->count = 1;
    mc->monitors[0].width = 0;
    assert_false(vdh_host_set_monitors_sync(e->h, mc, 500, &err));
    check_error(err, VDH_ERROR_INVALID, "both sizes 0");
    err = NULL;
    mc->monitors[0].width = 640;
    mc->flags = 1u << 5;
    assert_false(vdh_host_set_monitors_sync(e->h, mc, 500, &err));
    check_error(err, VDH_ERROR_INVALID, "flags");
    run_for(e, 20);
    assert_int_equal(fg_count(e->fg, VD_AGENT_MONITORS_CONFIG), 0);
    g_free(mc);
}

static void test_monitors_guest_without_reply(void **state)
{
    Env *e = *state;
    VdpCaps c = guest_caps_without(VD_AGENT_CAP_REPLY, VD_AGENT_CAP_REPLY);
    env_connect_caps(e, &c);
    e->fg->reply = FG_REPLY_NONE;
    VdpMonitorsConfig one = {.count = 1, .monitors = {{.width = 800, .height = 600}}};
    gint64 t0 = now_ms();
    ASSERT_OK(vdh_host_set_monitors_sync(e->h, &one, 5000, err_));
    assert_true(now_ms() - t0 < 1000);
    wait_fg(e, VD_AGENT_MONITORS_CONFIG, 1);
}

static void test_monitors_physical_size_vdagent_0221(void **state)
{
    Env *e = *state;
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    fc.vdagent_0221 = true;
    env_connect_with(e, &hc, &fc);
    GError *err = NULL;
    VdpMonitorsConfig *mc = three_monitors();
    assert_false(vdh_host_set_monitors_sync(e->h, mc, 300, &err));
    check_error(err, VDH_ERROR_TIMEOUT, "physical sizes");
    /* Without millimetres the same layout is answered. */
    for (unsigned i = 0; i < mc->count; i++)
        mc->monitors[i].mm_width = mc->monitors[i].mm_height = 0;
    ASSERT_OK(vdh_host_set_monitors_sync(e->h, mc, 2000, err_));
    const FgMsg *m = fg_last(e->fg, VD_AGENT_MONITORS_CONFIG);
    assert_int_equal(m->msg.u.monitors.flags, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS);
    g_free(mc);
}

/* ====================================================================
 * Clipboard, host -> guest
 * ==================================================================== */

static const FgMsg *guest_requests(Env *e, uint8_t sel, uint32_t type)
{
    unsigned n = fg_count(e->fg, VD_AGENT_CLIPBOARD);
    fg_request(e->fg, sel, type);
    wait_fg(e, VD_AGENT_CLIPBOARD, n + 1);
    const FgMsg *m = fg_last(e->fg, VD_AGENT_CLIPBOARD);
    assert_true(m->ok);
    assert_int_equal(m->msg.u.clipboard.selection, sel);
    return m;
}

static void test_clipboard_set_served(void **state)
{
    Env *e = *state;
    env_connect(e);
    const FgMsg *g = set_and_get_grab(e, 0, "hello guest");
    assert_int_equal(g->msg.u.grab.selection, 0);
    assert_int_equal(g->msg.u.grab.serial, 0);
    assert_int_equal(g->msg.u.grab.ntypes, 1);
    assert_int_equal(g->msg.u.grab.types[0], VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(vdh_host_clipboard_served(e->h, 0), 0);

    for (unsigned i = 1; i <= 2; i++) {
        const FgMsg *d = guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT);
        assert_int_equal(d->msg.u.clipboard.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
        assert_int_equal(d->msg.u.clipboard.size, 11);
        assert_memory_equal(d->msg.u.clipboard.data, "hello guest", 11);
        assert_int_equal(vdh_host_clipboard_served(e->h, 0), i);
    }
    GError *err = NULL;
    assert_false(vdh_host_clipboard_set(e->h, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, NULL, &err));
    check_error(err, VDH_ERROR_INVALID, "clipboard data of 0 bytes");
    err = NULL;
    GBytes *b = g_bytes_new_static("x", 1);
    assert_false(vdh_host_clipboard_set(e->h, 0, VD_AGENT_CLIPBOARD_NONE, b, &err));
    check_error(err, VDH_ERROR_INVALID, "type 0");
    err = NULL;
    assert_false(vdh_host_clipboard_set(e->h, 3, VD_AGENT_CLIPBOARD_UTF8_TEXT, b, &err));
    check_error(err, VDH_ERROR_INVALID, "selection 3");
    g_bytes_unref(b);
}

static void test_clipboard_primary(void **state)
{
    Env *e = *state;
    env_connect(e);
    const FgMsg *g = set_and_get_grab(e, VD_AGENT_CLIPBOARD_SELECTION_PRIMARY, "primary text");
    assert_int_equal(g->msg.u.grab.selection, VD_AGENT_CLIPBOARD_SELECTION_PRIMARY);
    const FgMsg *d = guest_requests(e, VD_AGENT_CLIPBOARD_SELECTION_PRIMARY,
                                    VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(d->msg.u.clipboard.size, 12);
    assert_memory_equal(d->msg.u.clipboard.data, "primary text", 12);
    assert_int_equal(vdh_host_clipboard_served(e->h, VD_AGENT_CLIPBOARD_SELECTION_PRIMARY), 1);
    assert_int_equal(vdh_host_clipboard_served(e->h, 0), 0);
    /* nothing on CLIPBOARD */
    d = guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(d->msg.u.clipboard.type, VD_AGENT_CLIPBOARD_NONE);
}

static void test_clipboard_serials(void **state)
{
    Env *e = *state;
    env_connect(e);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(set_and_get_grab(e, 0, "x")->msg.u.grab.serial, i);
    /* one counter per selection */
    assert_int_equal(set_and_get_grab(e, 1, "y")->msg.u.grab.serial, 0);
    assert_int_equal(set_and_get_grab(e, 0, "z")->msg.u.grab.serial, 3);
    assert_int_equal(e->fg->grab_discards, 0);
}

static void test_clipboard_request_not_offered(void **state)
{
    Env *e = *state;
    env_connect(e);
    const FgMsg *d = guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(d->msg.u.clipboard.type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(d->msg.u.clipboard.size, 0);
    set_and_get_grab(e, 0, "text only");
    d = guest_requests(e, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG);
    assert_int_equal(d->msg.u.clipboard.type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(d->size, 8);
    assert_int_equal(vdh_host_clipboard_served(e->h, 0), 0);
}

static void test_clipboard_host_large_streamed(void **state)
{
    Env *e = *state;
    env_connect(e);
    GError *err = NULL;
    size_t size = 4 * MIB + 3;
    GBytes *data = pattern_bytes(7, size);
    assert_true(vdh_host_clipboard_set(e->h, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG, data, &err));
    /* another message meanwhile waits behind the stream, in order */
    fg_request(e->fg, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG);
    wait_fg(e, VD_AGENT_CLIPBOARD, 1);
    const FgMsg *d = fg_last(e->fg, VD_AGENT_CLIPBOARD);
    assert_true(d->ok && d->streamed);
    assert_int_equal(d->msg.u.clipboard.type, VD_AGENT_CLIPBOARD_IMAGE_PNG);
    assert_int_equal(d->msg.u.clipboard.size, size);
    assert_true(d->hash == bytes_hash(data));
    assert_int_equal(vdh_host_clipboard_served(e->h, 0), 1);
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    assert_true(st.queue_peak <= st.queue_limit);
    g_bytes_unref(data);
}

/* A guest that keeps requesting a large offer without reading must not
 * make the host queue answers without bound: past a few queued streams
 * it is answered NONE (or not at all when the port's queue is full). */
static bool host_messages_in(Env *e, void *data)
{
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    return st.messages_in >= *(uint64_t *)data;
}

static bool host_queue_empty(Env *e, void *data)
{
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    return st.queued == 0;
}

static void test_clipboard_request_flood_bounded(void **state)
{
    Env *e = *state;
    env_connect(e);
    GError *err = NULL;
    const unsigned n = 300;
    GBytes *data = pattern_bytes(9, 128 * 1024);
    assert_true(vdh_host_clipboard_set(e->h, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG, data, &err));
    fg_pause_read(e->fg, true);
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    uint64_t want = st.messages_in + n;
    for (unsigned i = 0; i < n; i++)
        fg_request(e->fg, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG);
    assert_true(run_until(e, host_messages_in, &want, WAIT_MS));
    unsigned served = vdh_host_clipboard_served(e->h, 0);
    assert_true(served < n / 2);
    assert_true(e->log.dropped >= n - served);
    assert_non_null(strstr(e->log.last_dropped, "answering none"));
    vdh_host_get_stats(e->h, &st);
    assert_true(st.queue_peak <= st.queue_limit);
    /* what was queued arrives once the guest reads again: every offer
     * that was counted as served, whole (answers refused by a full
     * queue are not sent at all) */
    fg_pause_read(e->fg, false);
    assert_true(run_until(e, host_queue_empty, NULL, WAIT_MS));
    run_for(e, 200);
    unsigned got = fg_count(e->fg, VD_AGENT_CLIPBOARD);
    assert_true(got >= served && got <= n);
    unsigned full = 0;
    for (unsigned i = 0; i < got; i++) {
        const FgMsg *d = fg_nth(e->fg, VD_AGENT_CLIPBOARD, i);
        if (d->msg.u.clipboard.type == VD_AGENT_CLIPBOARD_IMAGE_PNG) {
            assert_true(d->hash == bytes_hash(data));
            full++;
        } else {
            assert_int_equal(d->msg.u.clipboard.type, VD_AGENT_CLIPBOARD_NONE);
        }
    }
    assert_int_equal(full, served);
    g_bytes_unref(data);
}

/* ====================================================================
 * Clipboard, guest -> host
 * ==================================================================== */

static bool grabs_seen(Env *e, void *data)
{
    return e->log.grabs >= *(unsigned *)data;
}

static void guest_grabs(Env *e, uint8_t sel, const uint32_t *types, unsigned n)
{
    unsigned want = e->log.grabs + 1;
    fg_grab(e->fg, sel, types, n);
    assert_true(run_until(e, grabs_seen, &want, WAIT_MS));
}

static void test_clipboard_guest_grab_get(void **state)
{
    Env *e = *state;
    env_connect(e);
    GBytes *text = g_bytes_new_static("from the guest", 14);
    fg_set_clipboard(e->fg, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, text);
    static const uint32_t types[] = {VD_AGENT_CLIPBOARD_UTF8_TEXT, VD_AGENT_CLIPBOARD_IMAGE_PNG};
    guest_grabs(e, 0, types, 2);
    assert_int_equal(e->log.grab_sel, 0);
    assert_int_equal(e->log.grab_ntypes, 2);
    unsigned n = 0;
    const uint32_t *t = vdh_host_guest_clipboard_types(e->h, 0, &n);
    assert_int_equal(n, 2);
    assert_int_equal(t[1], VD_AGENT_CLIPBOARD_IMAGE_PNG);

    GError *err = NULL;
    uint32_t type = 0;
    GBytes *got = vdh_host_clipboard_get_sync(e->h, 0, 0, 3000, &type, &err);
    assert_non_null(got);
    assert_int_equal(type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_true(g_bytes_equal(got, text));
    g_bytes_unref(got);
    const FgMsg *r = fg_last(e->fg, VD_AGENT_CLIPBOARD_REQUEST);
    assert_int_equal(r->msg.u.request.selection, 0);
    assert_int_equal(r->msg.u.request.type, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    g_bytes_unref(text);
}

static void big_guest_clipboard(Env *e, size_t chunk_size)
{
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    fc.chunk_size = chunk_size;
    fc.queue_limit = 64 * MIB;
    env_connect_with(e, &hc, &fc);
    size_t size = 16 * MIB;
    GBytes *data = pattern_bytes(3, size);
    fg_set_clipboard(e->fg, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG, data);
    static const uint32_t png[] = {VD_AGENT_CLIPBOARD_IMAGE_PNG};
    guest_grabs(e, 0, png, 1);

    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time();
    GBytes *got = vdh_host_clipboard_get_sync(e->h, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG, WAIT_MS,
                                              NULL, &err);
    gint64 us = g_get_monotonic_time() - t0;
    assert_null(err);
    assert_non_null(got);
    assert_int_equal(g_bytes_get_size(got), size);
    assert_true(g_bytes_equal(got, data));
    /* reported once, complete, as streamed */
    assert_int_equal(e->log.streamed_clipboards, 1);
    assert_int_equal(e->log.streamed_size, size);
    print_message("    16 MiB guest clipboard in %s: %.1f ms (%.0f MiB/s)\n",
                  chunk_size == VDP_CHUNK_SIZE_DEFAULT ? "2048-byte chunks" : "one big chunk",
                  us / 1000.0, 16.0 / (us / 1e6));
    g_bytes_unref(got);
    g_bytes_unref(data);
}

static void test_clipboard_get_16mib_2048_chunks(void **state)
{
    big_guest_clipboard(*state, VDP_CHUNK_SIZE_DEFAULT);
}

static void test_clipboard_get_16mib_one_chunk(void **state)
{
    big_guest_clipboard(*state, 32 * MIB);
}

static void test_clipboard_get_type_not_offered(void **state)
{
    Env *e = *state;
    env_connect(e);
    static const uint32_t text[] = {VD_AGENT_CLIPBOARD_UTF8_TEXT};
    guest_grabs(e, 0, text, 1);
    GError *err = NULL;
    assert_null(vdh_host_clipboard_get_sync(e->h, 0, VD_AGENT_CLIPBOARD_IMAGE_PNG, 1000, NULL,
                                            &err));
    check_error(err, VDH_ERROR_REFUSED, "does not offer png");
    assert_int_equal(fg_count(e->fg, VD_AGENT_CLIPBOARD_REQUEST), 0);
    err = NULL;
    assert_null(vdh_host_clipboard_get_sync(e->h, 0, 99, 1000, NULL, &err));
    check_error(err, VDH_ERROR_INVALID, "type 99");
    /* the guest answers NONE: refused */
    err = NULL;
    assert_null(vdh_host_clipboard_get_sync(e->h, 0, 0, 1000, NULL, &err));
    check_error(err, VDH_ERROR_REFUSED, "no utf8-text data");
}

static void test_clipboard_get_over_max(void **state)
{
    Env *e = *state;
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    hc.max_clipboard = (int32_t)MIB;
    fc.queue_limit = 16 * MIB;
    env_connect_with(e, &hc, &fc);
    assert_int_equal(fg_last(e->fg, VD_AGENT_MAX_CLIPBOARD)->msg.u.max_clipboard.max, MIB);

    GBytes *big = pattern_bytes(1, 2 * MIB);
    fg_set_clipboard(e->fg, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, big);
    static const uint32_t text[] = {VD_AGENT_CLIPBOARD_UTF8_TEXT};
    guest_grabs(e, 0, text, 1);
    GError *err = NULL;
    assert_null(vdh_host_clipboard_get_sync(e->h, 0, 0, 5000, NULL, &err));
    check_error(err, VDH_ERROR_PROTOCOL, "more than the 1.0 MB we accept");
    assert_int_equal(e->log.dropped, 1);
    assert_non_null(strstr(e->log.last_dropped, "above its limit"));

    /* spice-vdagentd answers an oversize selection with empty data */
    GBytes *empty = g_bytes_new_static("", 0);
    fg_set_clipboard(e->fg, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, empty);
    err = NULL;
    assert_null(vdh_host_clipboard_get_sync(e->h, 0, 0, 5000, NULL, &err));
    check_error(err, VDH_ERROR_REFUSED, "no utf8-text data");

    /* the stream is still in sync: a fitting one arrives whole */
    GBytes *ok = pattern_bytes(2, MIB / 2);
    fg_set_clipboard(e->fg, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, ok);
    err = NULL;
    GBytes *got = vdh_host_clipboard_get_sync(e->h, 0, 0, 5000, NULL, &err);
    assert_non_null(got);
    assert_true(g_bytes_equal(got, ok));
    g_bytes_unref(got);
    g_bytes_unref(ok);
    g_bytes_unref(empty);
    g_bytes_unref(big);
}

static bool releases_seen(Env *e, void *data)
{
    return e->log.releases >= *(unsigned *)data;
}

static void test_clipboard_release(void **state)
{
    Env *e = *state;
    env_connect(e);
    GError *err = NULL;
    /* ours, released */
    set_and_get_grab(e, 0, "mine");
    assert_true(vdh_host_clipboard_release(e->h, 0, &err));
    wait_fg(e, VD_AGENT_CLIPBOARD_RELEASE, 1);
    const FgMsg *r = fg_last(e->fg, VD_AGENT_CLIPBOARD_RELEASE);
    assert_true(r->ok);
    assert_int_equal(r->msg.u.release.selection, 0);
    assert_int_equal(guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT)->msg.u.clipboard.type,
                     VD_AGENT_CLIPBOARD_NONE);

    /* the guest's, released */
    static const uint32_t text[] = {VD_AGENT_CLIPBOARD_UTF8_TEXT};
    guest_grabs(e, 1, text, 1);
    unsigned n = 0;
    assert_non_null(vdh_host_guest_clipboard_types(e->h, 1, &n));
    assert_int_equal(n, 1);
    fg_release(e->fg, 1);
    unsigned want = 1;
    assert_true(run_until(e, releases_seen, &want, WAIT_MS));
    assert_int_equal(e->log.release_sel, 1);
    assert_null(vdh_host_guest_clipboard_types(e->h, 1, &n));
    assert_int_equal(n, 0);

    /* a guest grab of a selection we offer ends our offer */
    set_and_get_grab(e, 0, "ours again");
    assert_int_equal(guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT)->msg.u.clipboard.type,
                     VD_AGENT_CLIPBOARD_UTF8_TEXT);
    guest_grabs(e, 0, text, 1);
    assert_int_equal(vdh_host_clipboard_served(e->h, 0), 0);
    assert_int_equal(guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT)->msg.u.clipboard.type,
                     VD_AGENT_CLIPBOARD_NONE);
    /* and our grab ends the guest's offer */
    set_and_get_grab(e, 0, "back");
    assert_null(vdh_host_guest_clipboard_types(e->h, 0, &n));
    assert_int_equal(e->fg->grab_discards, 0);
}

static void test_clipboard_get_waits_for_grab(void **state)
{
    Env *e = *state;
    env_connect(e);
    Pending p = {0};
    vdh_host_clipboard_get_async(e->h, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, 5000, NULL, pending_cb,
                                 &p);
    GError *err = NULL;
    /* one fetch per selection at a time */
    assert_null(vdh_host_clipboard_get_sync(e->h, 0, 0, 100, NULL, &err));
    check_error(err, VDH_ERROR_BUSY, "already being fetched");
    run_for(e, 50);
    assert_int_equal(fg_count(e->fg, VD_AGENT_CLIPBOARD_REQUEST), 0);
    GBytes *text = g_bytes_new_static("later", 5);
    fg_set_clipboard(e->fg, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, text);
    static const uint32_t types[] = {VD_AGENT_CLIPBOARD_UTF8_TEXT};
    fg_grab(e->fg, 0, types, 1);
    wait_pending(e, &p);
    err = NULL;
    GBytes *got = vdh_host_clipboard_get_finish(e->h, p.res, NULL, &err);
    assert_non_null(got);
    assert_true(g_bytes_equal(got, text));
    g_bytes_unref(got);
    pending_clear(&p);

    err = NULL;
    gint64 t0 = now_ms();
    assert_null(vdh_host_clipboard_get_sync(e->h, 1, 0, 200, NULL, &err));
    assert_true(now_ms() - t0 >= 195);
    check_error(err, VDH_ERROR_TIMEOUT, "offered nothing on the primary selection");

    /* cancelled while waiting; the selection is free again afterwards */
    GCancellable *c = g_cancellable_new();
    vdh_host_clipboard_get_async(e->h, 1, 0, WAIT_MS, c, pending_cb, &p);
    run_for(e, 20);
    g_cancellable_cancel(c);
    wait_pending(e, &p);
    err = NULL;
    assert_null(vdh_host_clipboard_get_finish(e->h, p.res, NULL, &err));
    check_error(err, VDH_ERROR_CANCELLED, "cancelled");
    pending_clear(&p);
    fg_set_clipboard(e->fg, 1, VD_AGENT_CLIPBOARD_UTF8_TEXT, text);
    fg_grab(e->fg, 1, types, 1);
    err = NULL;
    got = vdh_host_clipboard_get_sync(e->h, 1, 0, 3000, NULL, &err);
    assert_non_null(got);
    assert_true(g_bytes_equal(got, text));
    g_bytes_unref(got);
    g_object_unref(c);
    g_bytes_unref(text);
}

static void test_clipboard_stale_guest_grab(void **state)
{
    Env *e = *state;
    env_connect(e);
    set_and_get_grab(e, 0, "a");
    set_and_get_grab(e, 0, "b");   /* serial now 2 */
    fg_grab_serial(e->fg, 0, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    run_for(e, 50);
    assert_int_equal(e->log.grabs, 0);
    assert_non_null(strstr(e->log.last_dropped, "older than serial 2"));
    /* the same serial as our last grab: the client wins */
    fg_grab_serial(e->fg, 0, 1, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    run_for(e, 50);
    assert_int_equal(e->log.grabs, 0);
    /* a current one is taken */
    unsigned want = 1;
    fg_grab_serial(e->fg, 0, 2, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_true(run_until(e, grabs_seen, &want, WAIT_MS));
    assert_int_equal(set_and_get_grab(e, 0, "c")->msg.u.grab.serial, 3);
}

/* ====================================================================
 * File transfer
 * ==================================================================== */

typedef struct XferWait {
    uint32_t id;
    bool need_status;
} XferWait;

static bool fg_file_there(Env *e, void *data)
{
    XferWait *w = data;
    const FgFile *f = fg_file(e->fg, w->id);
    return f && (!w->need_status || f->host_status != UINT32_MAX);
}

static void wait_fg_file(Env *e, uint32_t id, bool need_status)
{
    XferWait w = {id, need_status};
    assert_true(run_until(e, fg_file_there, &w, WAIT_MS));
}

static void check_received(Env *e, uint32_t id, const char *name, uint64_t size, uint64_t hash,
                           int nr, int total)
{
    const FgFile *f = fg_file(e->fg, id);
    assert_non_null(f);
    assert_string_equal(f->name, name);
    assert_int_equal(f->size, size);
    assert_int_equal(f->received, size);
    assert_true(f->hash == hash);
    assert_int_equal(f->nr, nr);
    assert_int_equal(f->total, total);
    assert_true(f->done);
}

static void test_xfer_two_files(void **state)
{
    Env *e = *state;
    env_connect(e);
    uint64_t ha, hb;
    char *a = make_file(e, "a.bin", 3 * MIB + 1, 11, &ha);
    char *b = make_file(e, "b report.txt", 100000, 12, &hb);
    const char *paths[] = {a, b, NULL};
    GError *err = NULL;
    ASSERT_OK(vdh_host_send_files_sync(e->h, paths, on_progress, e, 5000, err_));
    assert_null(err);
    assert_int_equal(e->fg->files->len, 2);
    check_received(e, 1, "a.bin", 3 * MIB + 1, ha, 1, 2);
    check_received(e, 2, "b report.txt", 100000, hb, 2, 2);
    assert_int_equal(e->fg->unknown_data, 0);
    /* START 2 after the SUCCESS of 1: one after the other */
    const FgMsg *s = fg_nth(e->fg, VD_AGENT_FILE_XFER_START, 1);
    assert_non_null(s);
    assert_int_equal(s->msg.u.xfer_start.id, 2);
    assert_non_null(strstr(s->msg.u.xfer_start.keyfile, "[vdagent-file-xfer]\n"));
    assert_non_null(strstr(s->msg.u.xfer_start.keyfile, "\nsize=100000\n"));
    /* DATA messages of at most 64 KiB */
    unsigned ndata = fg_count(e->fg, VD_AGENT_FILE_XFER_DATA);
    assert_int_equal(ndata, 49 + 2);
    for (unsigned i = 0; i < ndata; i++)
        assert_true(fg_nth(e->fg, VD_AGENT_FILE_XFER_DATA, i)->size <= 12 + 65536);
    /* progress */
    Progress *p = &e->progress;
    assert_true(p->monotonic);
    assert_true(p->calls >= ndata);
    assert_int_equal(p->last.nfiles, 2);
    assert_int_equal(p->last.file_index, 1);
    assert_string_equal(p->last.name, "b report.txt");
    assert_int_equal(p->last.batch_sent, 3 * MIB + 1 + 100000);
    assert_int_equal(p->last.batch_size, 3 * MIB + 1 + 100000);
    g_free(a);
    g_free(b);
}

static void test_xfer_throughput(void **state)
{
    Env *e = *state;
    env_connect(e);
    uint64_t h;
    size_t size = 64 * MIB;
    char *a = make_file(e, "big.bin", size, 5, &h);
    const char *paths[] = {a, NULL};
    gint64 t0 = g_get_monotonic_time();
    ASSERT_OK(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 10000, err_));
    double s = (g_get_monotonic_time() - t0) / 1e6;
    check_received(e, 1, "big.bin", size, h, 1, 1);
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    print_message("    file transfer: 64 MiB in %.0f ms = %.0f MiB/s through the socket "
                  "(queue peak %zu bytes)\n", s * 1000, 64 / s, st.queue_peak);
    assert_true(st.queue_peak <= st.queue_high + DATA_MSG_FRAMED + 4096);
    g_free(a);
}

static void test_xfer_empty_file(void **state)
{
    Env *e = *state;
    env_connect(e);
    char *a = make_file(e, "empty", 0, 0, NULL);
    const char *paths[] = {a, NULL};
    ASSERT_OK(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 3000, err_));
    check_received(e, 1, "empty", 0, VDP_FNV_INIT, 1, 1);
    assert_int_equal(fg_count(e->fg, VD_AGENT_FILE_XFER_DATA), 1);
    g_free(a);
}

static void test_xfer_not_enough_space(void **state)
{
    Env *e = *state;
    env_connect(e);
    e->fg->xfer = FG_XFER_NOT_ENOUGH_SPACE;
    e->fg->free_space = 12000000;
    char *a = make_file(e, "report.pdf", 1000, 1, NULL);
    char *b = make_file(e, "second.pdf", 1000, 1, NULL);
    const char *paths[] = {a, b, NULL};
    GError *err = NULL;
    assert_false(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 3000, &err));
    check_error(err, VDH_ERROR_REFUSED, "guest refused report.pdf: not enough space, 12.0 MB free");
    /* the batch stops at the first refusal; the guest is not told again */
    run_for(e, 30);
    assert_int_equal(fg_count(e->fg, VD_AGENT_FILE_XFER_START), 1);
    assert_int_equal(fg_count(e->fg, VD_AGENT_FILE_XFER_DATA), 0);
    assert_int_equal(fg_file(e->fg, 1)->host_status, UINT32_MAX);
    g_free(a);
    g_free(b);
}

static void refusal(Env *e, FgXferMode mode, const char *path, const char *text)
{
    e->fg->xfer = mode;
    const char *paths[] = {path, NULL};
    GError *err = NULL;
    assert_false(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 3000, &err));
    check_error(err, VDH_ERROR_REFUSED, text);
}

static void test_xfer_refusals(void **state)
{
    Env *e = *state;
    env_connect(e);
    char *a = make_file(e, "f.txt", 10, 1, NULL);
    refusal(e, FG_XFER_DISABLED, a, "guest refused f.txt: file transfer is disabled in the guest");
    refusal(e, FG_XFER_SESSION_LOCKED, a, "the guest session is locked");
    e->fg->io_error = G_IO_ERROR_NO_SPACE;
    refusal(e, FG_XFER_IO_ERROR, a, "guest refused f.txt: no space (GIO error 12)");
    /* ids count up, one per file */
    assert_non_null(fg_file(e->fg, 3));

    GError *err = NULL;
    const char *missing[] = {"/nonexistent/file", NULL};
    assert_false(vdh_host_send_files_sync(e->h, missing, NULL, NULL, 1000, &err));
    check_error(err, VDH_ERROR_IO, "/nonexistent/file");
    err = NULL;
    const char *dir[] = {e->dir, NULL};
    assert_false(vdh_host_send_files_sync(e->h, dir, NULL, NULL, 1000, &err));
    check_error(err, VDH_ERROR_INVALID, "not a regular file");
    err = NULL;
    const char *none[] = {NULL};
    assert_false(vdh_host_send_files_sync(e->h, none, NULL, NULL, 1000, &err));
    check_error(err, VDH_ERROR_INVALID, "no files");
    g_free(a);
}

static void test_xfer_guest_disabled_cap(void **state)
{
    Env *e = *state;
    VdpCaps c;
    vdp_caps_init_guest(&c);
    vdp_caps_set(&c, VD_AGENT_CAP_FILE_XFER_DISABLED);
    env_connect_caps(e, &c);
    char *a = make_file(e, "f.txt", 10, 1, NULL);
    const char *paths[] = {a, NULL};
    GError *err = NULL;
    assert_false(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 1000, &err));
    check_error(err, VDH_ERROR_CAPABILITY, "file-xfer-disabled");
    assert_int_equal(fg_count(e->fg, VD_AGENT_FILE_XFER_START), 0);
    g_free(a);
}

static bool progress_at_least(Env *e, void *data)
{
    return e->progress.last.batch_sent >= *(uint64_t *)data;
}

/* Start a big transfer the guest stops reading right after accepting. */
static char *start_stalled(Env *e, size_t size, uint64_t *hash, GCancellable *c, Pending *p)
{
    char *a = make_file(e, "stalled.bin", size, 9, hash);
    const char *paths[] = {a, NULL};
    e->fg->pause_on_can_send = true;
    vdh_host_send_files_async(e->h, paths, on_progress, e, 5000, c, pending_cb, p);
    uint64_t some = 4 * 65536;
    assert_true(run_until(e, progress_at_least, &some, WAIT_MS));
    return a;
}

static void test_xfer_cancel(void **state)
{
    Env *e = *state;
    env_connect(e);
    GCancellable *c = g_cancellable_new();
    Pending p = {0};
    uint64_t h;
    char *a = start_stalled(e, 32 * MIB, &h, c, &p);
    g_cancellable_cancel(c);
    wait_pending(e, &p);
    GError *err = NULL;
    assert_false(vdh_host_send_files_finish(e->h, p.res, &err));
    check_error(err, VDH_ERROR_CANCELLED, "cancelled");
    pending_clear(&p);
    fg_pause_read(e->fg, false);
    wait_fg_file(e, 1, true);
    const FgFile *f = fg_file(e->fg, 1);
    assert_int_equal(f->host_status, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
    assert_true(f->received < f->size);
    assert_false(f->done);
    /* the host is free for the next batch */
    e->fg->pause_on_can_send = false;
    const char *paths[] = {a, NULL};
    ASSERT_OK(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 10000, err_));
    check_received(e, 2, "stalled.bin", 32 * MIB, h, 1, 1);
    g_object_unref(c);
    g_free(a);
}

static bool progress_stalled(Env *e, void *data)
{
    uint64_t *last = data;
    bool same = e->progress.last.batch_sent == *last;
    *last = e->progress.last.batch_sent;
    return same;
}

static void test_xfer_flow_control(void **state)
{
    Env *e = *state;
    env_connect(e);
    Pending p = {0};
    uint64_t h;
    size_t size = 24 * MIB;
    char *a = start_stalled(e, size, &h, NULL, &p);
    /* The transfer stops: no progress over 300 ms. */
    uint64_t last = UINT64_MAX;
    for (int i = 0; i < 100; i++) {
        run_for(e, 300);
        if (progress_stalled(e, &last))
            break;
    }
    assert_true(e->progress.last.batch_sent == last);
    assert_true(last < size);
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    /* The queue stops at the high watermark plus one message. */
    assert_true(st.queued >= st.queue_high);
    assert_true(st.queue_peak <= st.queue_high + DATA_MSG_FRAMED + 4096);
    assert_true(st.queue_peak >= 4 * 65536);   /* several messages in flight */
    /* What left the file but not the process sits in the kernel's socket
     * buffers; the guest read nothing. */
    assert_int_equal(fg_file(e->fg, 1)->received, 0);
    print_message("    stalled guest: %" G_GUINT64_FORMAT " of %zu bytes sent, %zu queued "
                  "(high %zu, limit %zu), %" G_GUINT64_FORMAT " in the kernel\n",
                  last, size, st.queued, st.queue_high, st.queue_limit,
                  last - (uint64_t)st.queued);
    assert_true(last - st.queued <= 8 * MIB);
    assert_null(p.res);

    fg_pause_read(e->fg, false);
    wait_pending(e, &p);
    GError *err = NULL;
    assert_true(vdh_host_send_files_finish(e->h, p.res, &err));
    pending_clear(&p);
    check_received(e, 1, "stalled.bin", size, h, 1, 1);
    vdh_host_get_stats(e->h, &st);
    assert_true(st.queue_peak <= st.queue_limit);
    assert_true(st.queue_peak <= st.queue_high + DATA_MSG_FRAMED + 4096);
    g_free(a);
}

static void test_xfer_start_timeout(void **state)
{
    Env *e = *state;
    env_connect(e);
    e->fg->xfer = FG_XFER_SILENT;
    char *a = make_file(e, "quiet.txt", 100, 1, NULL);
    const char *paths[] = {a, NULL};
    GError *err = NULL;
    gint64 t0 = now_ms();
    assert_false(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 300, &err));
    gint64 ms = now_ms() - t0;
    check_error(err, VDH_ERROR_TIMEOUT, "did not answer the transfer of quiet.txt within 300 ms");
    assert_true(ms >= 295 && ms < 2000);
    /* the guest is told the transfer is off */
    wait_fg_file(e, 1, true);
    assert_int_equal(fg_file(e->fg, 1)->host_status, VD_AGENT_FILE_XFER_STATUS_ERROR);
    g_free(a);
}

static void guest_status(Env *e, uint32_t id, uint32_t result)
{
    VdpMsg m = {.type = VD_AGENT_FILE_XFER_STATUS};
    m.u.xfer_status.id = id;
    m.u.xfer_status.result = result;
    assert_true(fg_send(e->fg, &m));
}

static void test_xfer_unknown_status_ignored(void **state)
{
    Env *e = *state;
    env_connect(e);
    guest_status(e, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);   /* nothing running */
    Pending p = {0};
    uint64_t h;
    char *a = start_stalled(e, 4 * MIB, &h, NULL, &p);
    guest_status(e, 7, VD_AGENT_FILE_XFER_STATUS_ERROR);
    guest_status(e, 0, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
    run_for(e, 50);
    assert_null(p.res);
    fg_pause_read(e->fg, false);
    wait_pending(e, &p);
    GError *err = NULL;
    assert_true(vdh_host_send_files_finish(e->h, p.res, &err));
    pending_clear(&p);
    check_received(e, 1, "stalled.bin", 4 * MIB, h, 1, 1);
    assert_int_equal(e->log.dropped, 0);
    g_free(a);
}

/* ====================================================================
 * The guest going away, client resets, malformed input
 * ==================================================================== */

static void test_guest_disconnect_fails_ops(void **state)
{
    Env *e = *state;
    env_connect(e);
    e->fg->reply = FG_REPLY_NONE;
    Pending mon = {0}, get = {0}, xfer = {0};
    VdpMonitorsConfig one = {.count = 1, .monitors = {{.width = 800, .height = 600}}};
    vdh_host_set_monitors_async(e->h, &one, WAIT_MS, NULL, pending_cb, &mon);
    vdh_host_clipboard_get_async(e->h, 0, 0, WAIT_MS, NULL, pending_cb, &get);
    uint64_t h;
    char *a = start_stalled(e, 8 * MIB, &h, NULL, &xfer);
    wait_fg(e, VD_AGENT_MONITORS_CONFIG, 1);

    fg_stop(e->fg);
    wait_pending(e, &mon);
    wait_pending(e, &get);
    wait_pending(e, &xfer);
    GError *err = NULL;
    assert_false(vdh_host_set_monitors_finish(e->h, mon.res, &err));
    check_error(err, VDH_ERROR_NOT_CONNECTED, "went away");
    err = NULL;
    assert_null(vdh_host_clipboard_get_finish(e->h, get.res, NULL, &err));
    check_error(err, VDH_ERROR_NOT_CONNECTED, "went away");
    err = NULL;
    assert_false(vdh_host_send_files_finish(e->h, xfer.res, &err));
    check_error(err, VDH_ERROR_NOT_CONNECTED, "went away");
    pending_clear(&mon);
    pending_clear(&get);
    pending_clear(&xfer);
    assert_false(vdh_host_is_connected(e->h));
    assert_null(vdh_host_get_guest_caps(e->h));
    assert_int_equal(e->log.disconnected, 1);
    assert_string_equal(vdh_host_describe_state(e->h), "waiting for a guest");
    g_free(a);
}

static void test_reconnect_resets(void **state)
{
    Env *e = *state;
    env_connect(e);
    char *a = make_file(e, "r.txt", 1000, 1, NULL);
    const char *paths[] = {a, NULL};
    ASSERT_OK(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 3000, err_));
    set_and_get_grab(e, 0, "x");
    set_and_get_grab(e, 0, "y");

    fg_stop(e->fg);
    fg_forget(e->fg);
    g_ptr_array_set_size(e->fg->files, 0);
    e->log.caps_events = 0;
    fg_start(e->fg);
    assert_true(run_until(e, handshake_done, NULL, WAIT_MS));
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(e->log.connected, 2);
    assert_int_equal(set_and_get_grab(e, 0, "z")->msg.u.grab.serial, 0);
    ASSERT_OK(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 3000, err_));
    assert_non_null(fg_file(e->fg, 1));   /* ids start over */
    g_free(a);
}

static void test_client_disconnected_resets(void **state)
{
    Env *e = *state;
    env_connect(e);
    set_and_get_grab(e, 0, "before");
    guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    assert_int_equal(vdh_host_clipboard_served(e->h, 0), 1);
    Pending p = {0};
    uint64_t h;
    char *a = start_stalled(e, 8 * MIB, &h, NULL, &p);

    GError *err = NULL;
    assert_true(vdh_host_send_client_disconnected(e->h, &err));
    wait_pending(e, &p);
    assert_false(vdh_host_send_files_finish(e->h, p.res, &err));
    check_error(err, VDH_ERROR_NOT_CONNECTED, "client disconnected");
    err = NULL;
    pending_clear(&p);
    assert_int_equal(vdh_host_clipboard_served(e->h, 0), 0);
    e->fg->pause_on_can_send = false;
    fg_pause_read(e->fg, false);
    wait_fg(e, VD_AGENT_CLIENT_DISCONNECTED, 1);
    const FgMsg *cd = fg_last(e->fg, VD_AGENT_CLIENT_DISCONNECTED);
    assert_int_equal(cd->chunk_port, VDP_SERVER_PORT);
    assert_int_equal(cd->size, 0);
    assert_true(cd->ok);

    /* The offer is gone. The answer is the first message after
     * CLIENT_DISCONNECTED, so an announce with request=1 precedes it. */
    fg_forget(e->fg);
    assert_int_equal(guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT)->msg.u.clipboard.type,
                     VD_AGENT_CLIPBOARD_NONE);
    int ia = fg_index(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES, 0);
    int ic = fg_index(e->fg, VD_AGENT_CLIPBOARD, 0);
    assert_true(ia >= 0 && ia < ic);
    assert_int_equal(msg_at(e, ia)->msg.u.announce.request, 1);
    /* serials restarted */
    const FgMsg *g = set_and_get_grab(e, 0, "after");
    assert_int_equal(g->msg.u.grab.serial, 0);
    assert_int_equal(e->fg->grab_discards, 0);
    /* only once */
    set_and_get_grab(e, 0, "again");
    assert_int_equal(fg_count(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES), 1);
    /* transfer ids start over */
    char *b = make_file(e, "small", 10, 1, NULL);
    const char *paths[] = {b, NULL};
    ASSERT_OK(vdh_host_send_files_sync(e->h, paths, NULL, NULL, 3000, err_));
    assert_int_equal(fg_last(e->fg, VD_AGENT_FILE_XFER_START)->msg.u.xfer_start.id, 1);
    g_free(a);
    g_free(b);
}

static bool dropped_at_least(Env *e, void *data)
{
    return e->log.dropped >= *(unsigned *)data;
}

static void test_malformed_dropped(void **state)
{
    Env *e = *state;
    env_connect(e);
    static const uint8_t seven[7] = {3, 0, 0, 0, 1, 0, 0};
    assert_true(fg_send_raw(e->fg, VDP_CLIENT_PORT, VD_AGENT_REPLY, seven, sizeof(seven)));
    unsigned want = 1;
    assert_true(run_until(e, dropped_at_least, &want, WAIT_MS));
    assert_non_null(strstr(e->log.last_dropped, "REPLY"));
    /* a type the guest never sends */
    static const uint8_t mouse[13] = {0};
    assert_true(fg_send_raw(e->fg, VDP_CLIENT_PORT, VD_AGENT_MOUSE_STATE, mouse, sizeof(mouse)));
    want = 2;
    assert_true(run_until(e, dropped_at_least, &want, WAIT_MS));
    assert_non_null(strstr(e->log.last_dropped, "MOUSE_STATE"));
    /* an unknown type */
    assert_true(fg_send_raw(e->fg, VDP_CLIENT_PORT, 99, mouse, 4));
    want = 3;
    assert_true(run_until(e, dropped_at_least, &want, WAIT_MS));
    assert_non_null(strstr(e->log.last_dropped, "99"));
    /* a malformed grab */
    static const uint8_t grab[6] = {0};
    assert_true(fg_send_raw(e->fg, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD_GRAB, grab, sizeof(grab)));
    want = 4;
    assert_true(run_until(e, dropped_at_least, &want, WAIT_MS));
    assert_non_null(strstr(e->log.last_dropped, "CLIPBOARD_GRAB"));
    assert_int_equal(e->log.grabs, 0);
    VdhHostStats st;
    vdh_host_get_stats(e->h, &st);
    assert_int_equal(st.dropped, 4);
    /* still connected and working */
    assert_true(vdh_host_is_connected(e->h));
    set_and_get_grab(e, 0, "fine");
}

static void test_misc_messages(void **state)
{
    Env *e = *state;
    VdpCaps c;
    vdp_caps_init_guest(&c);
    vdp_caps_set(&c, VD_AGENT_CAP_DISPLAY_CONFIG);
    env_connect_caps(e, &c);
    GError *err = NULL;

    VdpGraphicsDeviceInfo *gdi = g_new0(VdpGraphicsDeviceInfo, 1);
    gdi->count = 2;
    gdi->info[0] = (VdpDeviceDisplayInfo){0, 0, 0, "pci/0000/02.0", 14};
    gdi->info[1] = (VdpDeviceDisplayInfo){1, 0, 1, "pci/0000/03.0", 14};
    assert_true(vdh_host_send_graphics_device_info(e->h, gdi, &err));
    uint16_t vol[2] = {0x1234, 0xffff};
    assert_true(vdh_host_send_audio_volume(e->h, true, false, vol, 2, &err));
    assert_true(vdh_host_send_display_config(e->h, VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_ANIMATION,
                                             24, &err));
    assert_true(vdh_host_send_max_clipboard(e->h, 4096, &err));
    assert_true(vdh_host_announce(e->h, false, &err));
    wait_fg(e, VD_AGENT_ANNOUNCE_CAPABILITIES, 3);

    const FgMsg *m = fg_last(e->fg, VD_AGENT_GRAPHICS_DEVICE_INFO);
    assert_true(m->ok);
    assert_int_equal(m->chunk_port, VDP_SERVER_PORT);
    assert_int_equal(m->msg.u.device_info.count, 2);
    assert_string_equal(m->msg.u.device_info.info[1].device_address, "pci/0000/03.0");
    assert_int_equal(m->msg.u.device_info.info[1].device_display_id, 1);
    m = fg_last(e->fg, VD_AGENT_AUDIO_VOLUME_SYNC);
    assert_int_equal(m->chunk_port, VDP_CLIENT_PORT);
    assert_int_equal(m->msg.u.volume.is_playback, 1);
    assert_int_equal(m->msg.u.volume.nchannels, 2);
    assert_int_equal(m->msg.u.volume.volume[1], 0xffff);
    m = fg_last(e->fg, VD_AGENT_DISPLAY_CONFIG);
    assert_int_equal(m->msg.u.display_config.flags, VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_ANIMATION);
    assert_int_equal(m->msg.u.display_config.depth, 24);
    assert_int_equal(fg_last(e->fg, VD_AGENT_MAX_CLIPBOARD)->msg.u.max_clipboard.max, 4096);
    assert_int_equal(fg_last(e->fg, VD_AGENT_ANNOUNCE_CAPABILITIES)->msg.u.announce.request, 0);

    assert_false(vdh_host_send_audio_volume(e->h, true, false, NULL, 2, &err));
    check_error(err, VDH_ERROR_INVALID, "audio channels");
    g_free(gdi);
}

static void test_chunk_size(void **state)
{
    Env *e = *state;
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    hc.chunk_size = 512;
    fc.max_chunk_in = 512;   /* a guest that refuses larger chunks, like vdagentd's 2048 */
    env_connect_with(e, &hc, &fc);
    GBytes *data = pattern_bytes(4, 5000);
    GError *err = NULL;
    assert_true(vdh_host_clipboard_set(e->h, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, data, &err));
    wait_fg(e, VD_AGENT_CLIPBOARD_GRAB, 1);
    VdpPortStats before, after;
    vdp_port_get_stats(e->fg->port, &before);
    const FgMsg *d = guest_requests(e, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT);
    vdp_port_get_stats(e->fg->port, &after);
    assert_true(d->hash == bytes_hash(data));
    /* 20 + 8 + 5000 bytes in chunks of 512 */
    assert_int_equal(after.reasm.chunks - before.reasm.chunks, 10);
    assert_int_equal(e->fg->closes, 0);
    g_bytes_unref(data);
}

/* The same exchanges with the host connecting to a listening guest. */
static void test_host_connects_monitors(void **state)
{
    ((Env *)*state)->host_listen = false;
    test_monitors_roundtrip(state);
}

static void test_host_connects_clipboard_get(void **state)
{
    ((Env *)*state)->host_listen = false;
    test_clipboard_guest_grab_get(state);
}

static void test_host_connects_clipboard_set(void **state)
{
    ((Env *)*state)->host_listen = false;
    test_clipboard_set_served(state);
}

static void test_host_connects_xfer(void **state)
{
    ((Env *)*state)->host_listen = false;
    test_xfer_two_files(state);
}

static void test_free_in_callback(void **state)
{
    Env *e = *state;
    e->free_on_connect = true;
    VdhHostConfig hc = host_cfg(e);
    FgConfig fc = fg_cfg(e);
    e->h = vdh_host_new(&hc, &host_events, e, NULL);
    e->fg = fg_new(e->ctx, &fc);
    vdh_host_start(e->h);
    fg_start(e->fg);
    run_for(e, 200);
    assert_null(e->h);
    assert_int_equal(e->log.connected, 1);
}

static void test_free_with_pending(void **state)
{
    Env *e = *state;
    env_connect(e);
    e->fg->reply = FG_REPLY_NONE;
    Pending p = {0};
    VdpMonitorsConfig one = {.count = 1, .monitors = {{.width = 800, .height = 600}}};
    vdh_host_set_monitors_async(e->h, &one, WAIT_MS, NULL, pending_cb, &p);
    vdh_host_free(e->h);
    e->h = NULL;
    wait_pending(e, &p);
    GError *err = NULL;
    assert_false(g_task_propagate_boolean(G_TASK(p.res), &err));
    check_error(err, VDH_ERROR_CANCELLED, "closed");
    pending_clear(&p);
}

int main(void)
{
    verbose = g_getenv("VDH_TEST_VERBOSE") != NULL;
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_connect_host_listens),
        T(test_connect_host_connects),
        T(test_not_connected),
        T(test_bad_config),
        T(test_caps_request_answered_and_serial_reset),
        T(test_caps_layout_without_selection),
        T(test_max_clipboard_sent),
        T(test_max_clipboard_not_sent),
        T(test_max_clipboard_guest_lacks_cap),
        T(test_capability_missing),
        T(test_mouse_bytes),
        T(test_mouse_click_wheel),
        T(test_monitors_roundtrip),
        T(test_monitors_reply_error),
        T(test_monitors_no_reply_timeout),
        T(test_monitors_invalid_and_sparse),
        T(test_monitors_guest_without_reply),
        T(test_monitors_physical_size_vdagent_0221),
        T(test_clipboard_set_served),
        T(test_clipboard_primary),
        T(test_clipboard_serials),
        T(test_clipboard_request_not_offered),
        T(test_clipboard_host_large_streamed),
    T(test_clipboard_request_flood_bounded),
        T(test_clipboard_guest_grab_get),
        T(test_clipboard_get_16mib_2048_chunks),
        T(test_clipboard_get_16mib_one_chunk),
        T(test_clipboard_get_type_not_offered),
        T(test_clipboard_get_over_max),
        T(test_clipboard_release),
        T(test_clipboard_get_waits_for_grab),
        T(test_clipboard_stale_guest_grab),
        T(test_xfer_two_files),
        T(test_xfer_throughput),
        T(test_xfer_empty_file),
        T(test_xfer_not_enough_space),
        T(test_xfer_refusals),
        T(test_xfer_guest_disabled_cap),
        T(test_xfer_cancel),
        T(test_xfer_flow_control),
        T(test_xfer_start_timeout),
        T(test_xfer_unknown_status_ignored),
        T(test_guest_disconnect_fails_ops),
        T(test_reconnect_resets),
        T(test_client_disconnected_resets),
        T(test_malformed_dropped),
        T(test_misc_messages),
        T(test_chunk_size),
        T(test_host_connects_monitors),
        T(test_host_connects_clipboard_get),
        T(test_host_connects_clipboard_set),
        T(test_host_connects_xfer),
        T(test_free_in_callback),
        T(test_free_with_pending),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
