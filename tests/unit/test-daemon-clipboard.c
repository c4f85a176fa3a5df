/* test-daemon-clipboard.c - clipboard routing through the real
 * spice-vdagentd: its port a UNIX socket served by the host library
 * (VdhHost, listen mode; raw messages through vdh_send where a test needs
 * a serial or a request the library would not send), test agents on the
 * IPC socket that speak the clipboard frames (CLIP_BEGIN/CHUNK/ABORT in,
 * VDAGENT envelopes and sealed memfds out). Most tests run the daemon with
 * -X; lock, greeter and session switch run it with session integration
 * against python3-dbusmock's logind on a private bus (as
 * test-daemon-sessions.c does).
 *
 * Data is a deterministic pattern checked with SHA-256 at the far end;
 * the daemon's peak RSS (VmHWM) is read from /proc before and after the
 * large transfers. Every test has a failure timeout (alarm) and waits on
 * conditions, never on fixed sleeps for correctness. VDD_TEST_VERBOSE=1
 * prints the daemon's log after each test.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <gio/gio.h>
#include <glib.h>

#include "daemon-harness.h"
#include "test-agent.h"
#include "vdh-host.h"
#include "vdh-host-priv.h"   /* vdh_send: raw messages with chosen serials */
#include "vdp-port.h"
#include "vdp-unix.h"

#define WAIT_MS 10000u
#define LONG_WAIT_MS 60000u
#define TEST_TIMEOUT_S 120u
#define PYTHON VDP_TEST_PYTHON
#define MIB (1024u * 1024u)
#define SEL_CB VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD
#define SEL_PRI VD_AGENT_CLIPBOARD_SELECTION_PRIMARY
#define UTF8 VD_AGENT_CLIPBOARD_UTF8_TEXT
#define PNG VD_AGENT_CLIPBOARD_IMAGE_PNG
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

/* CLIPBOARD messages the host saw, kept in order (the first ones). */
#define CLIP_LOG 64

/* What the host saw from the guest. */
typedef struct HostRec {
    unsigned grabs[3], releases[3], clipboards, nones, requests, dropped;
    uint32_t grab_serial[3], grab_type[3];
    uint32_t clip_sel, clip_type;
    size_t clip_size;
    uint32_t log_sel[CLIP_LOG], log_type[CLIP_LOG];
    size_t log_size[CLIP_LOG];
} HostRec;

typedef struct Fixture {
    DaemonHarness h;
    HostRec rec;
} Fixture;

static Fixture *F;

/* ---- the logind mock ---- */

static void set_locked(const char *path, bool locked)
{
    dh_update_prop(&F->h, path, SESSION_IFACE, "LockedHint", g_variant_new_boolean(locked));
}

/* ---- the daemon ---- */

static void start_daemon(bool sessions, bool allow_locked)
{
    const char *args[4];
    unsigned n = 0;
    args[n++] = "-d";
    if (!sessions)
        args[n++] = "-X";
    if (allow_locked)
        args[n++] = "--allow-clipboard-when-locked";
    args[n] = NULL;
    DhDaemonOpts o = {.args = args, .handshake_ms = 3000, .small_asan_quarantine = true, .out = DH_OUT_LOG};
    dh_start_daemon(&F->h, &o);
}

static unsigned log_count(const char *needle)
{
    return dh_log_count(&F->h, needle);
}

static bool log_has_cb(void *d)
{
    return log_count(d) > 0;
}

/* Peak resident set of the daemon, in KiB. */
static long daemon_hwm_kib(void)
{
    char path[64], *text = NULL;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)F->h.daemon_pid);
    assert_true(g_file_get_contents(path, &text, NULL, NULL));
    const char *p = strstr(text, "VmHWM:");
    assert_non_null(p);
    long kib = strtol(p + 6, NULL, 10);
    g_free(text);
    return kib;
}

/* ---- the host ---- */

static void on_host_message(void *user, const VdpMsg *m)
{
    HostRec *r = &F->rec;
    switch (m->type) {
    case VD_AGENT_CLIPBOARD_GRAB:
        if (m->u.grab.selection < 3) {
            r->grabs[m->u.grab.selection]++;
            r->grab_serial[m->u.grab.selection] = m->u.grab.serial;
            r->grab_type[m->u.grab.selection] = m->u.grab.ntypes ? m->u.grab.types[0] : 0;
        }
        break;
    case VD_AGENT_CLIPBOARD_RELEASE:
        if (m->u.release.selection < 3)
            r->releases[m->u.release.selection]++;
        break;
    case VD_AGENT_CLIPBOARD_REQUEST:
        r->requests++;
        break;
    case VD_AGENT_CLIPBOARD:
        if (r->clipboards < CLIP_LOG) {
            r->log_sel[r->clipboards] = m->u.clipboard.selection;
            r->log_type[r->clipboards] = m->u.clipboard.type;
            r->log_size[r->clipboards] = m->u.clipboard.size;
        }
        r->clipboards++;
        r->clip_sel = m->u.clipboard.selection;
        r->clip_type = m->u.clipboard.type;
        r->clip_size = m->u.clipboard.size;
        if (m->u.clipboard.type == VD_AGENT_CLIPBOARD_NONE)
            r->nones++;
        break;
    default:
        break;
    }
}

static void on_host_dropped(void *user, const char *why)
{
    F->rec.dropped++;
    if (dh_verbose())
        fprintf(stderr, "host dropped: %s\n", why);
}

static const VdhHostEvents host_ev = {.message = on_host_message, .dropped = on_host_dropped};

typedef struct HostOpts {
    bool no_selection;      /* a client without CLIPBOARD_SELECTION */
    int32_t max_clipboard;  /* 0 = the library's default */
} HostOpts;

static void start_host(const HostOpts *o)
{
    VdpCaps caps;
    vdp_caps_init_host(&caps);
    if (o && o->no_selection)
        vdp_caps_unset(&caps, VD_AGENT_CAP_CLIPBOARD_SELECTION);
    dh_start_host(&F->h, &caps, o ? o->max_clipboard : 0, &host_ev, NULL);
}

static void host_send(const VdpMsg *m)
{
    GError *error = NULL;
    if (!vdh_send(F->h.host, m, &error))
        fail_msg("host send: %s", error->message);
}

static void host_grab(uint8_t sel, uint32_t serial, uint32_t type)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_CLIPBOARD_GRAB;
    m->u.grab.selection = sel;
    m->u.grab.serial = serial;
    m->u.grab.ntypes = 1;
    m->u.grab.types[0] = type;
    host_send(m);
    g_free(m);
}

static void host_request(uint8_t sel, uint32_t type)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_REQUEST};
    m.u.request.selection = sel;
    m.u.request.type = type;
    host_send(&m);
}

static void host_offer(uint8_t sel, uint32_t type, GBytes *data)
{
    GError *error = NULL;
    if (!vdh_host_clipboard_set(F->h.host, sel, type, data, &error))
        fail_msg("clipboard set: %s", error->message);
}

/* A guest fetch running in the background. */
typedef struct Fetch {
    bool done;
    GBytes *bytes;
    uint32_t type;
    GError *error;
} Fetch;

static void fetch_done(GObject *src, GAsyncResult *res, gpointer user)
{
    Fetch *f = user;
    f->bytes = vdh_host_clipboard_get_finish(F->h.host, res, &f->type, &f->error);
    f->done = true;
}

static void fetch_start(Fetch *f, uint8_t sel, uint32_t type)
{
    memset(f, 0, sizeof(*f));
    vdh_host_clipboard_get_async(F->h.host, sel, type, LONG_WAIT_MS, NULL, fetch_done, f);
}

static bool fetch_finished(void *d)
{
    return ((Fetch *)d)->done;
}

static void fetch_clear(Fetch *f)
{
    if (f->bytes)
        g_bytes_unref(f->bytes);
    g_clear_error(&f->error);
}

/* ---- fixture ---- */

static int setup_common(const HostOpts *o, bool bus, bool host)
{
    F = g_new0(Fixture, 1);
    dh_setup(&F->h, "test-dclip", WAIT_MS, TEST_TIMEOUT_S);
    if (host)
        start_host(o);
    if (bus)
        dh_bus_and_mock_start(&F->h);
    return 0;
}

static int setup_x(void **state)
{
    setup_common(NULL, false, true);
    start_daemon(false, false);
    return 0;
}

static int setup_nohost(void **state)
{
    return setup_common(NULL, false, false);
}

static int setup_x_nosel(void **state)
{
    HostOpts o = {.no_selection = true};
    setup_common(&o, false, true);
    start_daemon(false, false);
    return 0;
}

static int setup_x_max(void **state)
{
    HostOpts o = {.max_clipboard = 1000};
    setup_common(&o, false, true);
    start_daemon(false, false);
    return 0;
}

static int setup_bus(void **state)
{
    return setup_common(NULL, true, true);
}

static int teardown(void **state)
{
    DhExit e = dh_finish(&F->h);
    g_clear_pointer(&F, g_free);
    dh_assert_clean_exit(&e);
    return 0;
}

/* ---- agents ---- */

static TestAgent *agent_setup(TestAgent *a, bool layout)
{
    assert_true(a->welcomed);
    if (layout)
        dh_send_layout(a, false);
    return a;
}

static TestAgent *agent_here(bool layout)
{
    return agent_setup(dh_agent_connect(&F->h), layout);
}

/* An agent in a forked process (its own pid for the session lookup, mapped
 * to session_path before it connects), spoken to from here over the socket
 * it hands over. */
static TestAgent *agent_kid(const char *session_path, bool layout)
{
    pid_t pid;
    int fd = dh_kid_connect(&F->h, 0, DH_KID_STAY, session_path, &pid);
    return agent_setup(dh_agent_on_fd(&F->h, fd), layout);
}

/* ---- conditions ---- */

static bool wait_count(const unsigned *p, unsigned want)
{
    return dh_wait_count(p, want, WAIT_MS);
}

static bool wait_count_long(const unsigned *p, unsigned want)
{
    return dh_wait_count(p, want, LONG_WAIT_MS);
}

static uint32_t last_grab_type(TestAgent *a, uint8_t *sel)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(a, VD_AGENT_CLIPBOARD_GRAB, m));
    uint32_t t = m->u.grab.ntypes ? m->u.grab.types[0] : 0;
    if (sel)
        *sel = m->u.grab.selection;
    g_free(m);
    return t;
}

static uint8_t last_release_sel(TestAgent *a)
{
    VdpMsg m;
    assert_true(test_agent_last(a, VD_AGENT_CLIPBOARD_RELEASE, &m));
    return m.u.release.selection;
}

/* The agent and the host are connected and the agent sees the client. */
static TestAgent *connected_agent(void)
{
    TestAgent *a = agent_here(true);
    dh_host_ready(&F->h);
    return a;
}

/* ---- 1. capabilities ---- */

static void test_caps(void **state)
{
    TestAgent *a = connected_agent();
    const VdpCaps *g = vdh_host_get_guest_caps(F->h.host);
    assert_non_null(g);
    assert_true(vdp_caps_has(g, VD_AGENT_CAP_CLIPBOARD_BY_DEMAND));
    assert_true(vdp_caps_has(g, VD_AGENT_CAP_CLIPBOARD_SELECTION));
    assert_true(vdp_caps_has(g, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL));
    assert_true(vdp_caps_has(g, VD_AGENT_CAP_CLIPBOARD_NO_RELEASE_ON_REGRAB));
    assert_true(vdp_caps_has(g, VD_AGENT_CAP_MAX_CLIPBOARD));
    assert_false(vdp_caps_has(g, VD_AGENT_CAP_FILE_XFER_DISABLED));
    /* the client's MAX_CLIPBOARD (the library announces 100 MiB) reaches the agent */
    assert_true(wait_count(&a->nmsgs[VD_AGENT_MAX_CLIPBOARD], 1));
    VdpMsg m;
    assert_true(test_agent_last(a, VD_AGENT_MAX_CLIPBOARD, &m));
    assert_int_equal(m.u.max_clipboard.max, VDP_MAX_CLIPBOARD_DEFAULT);
    test_agent_free(a);
}

/* ---- 2. client grabs and serials ---- */

static void test_client_grab(void **state)
{
    TestAgent *a = connected_agent();
    GBytes *b = g_bytes_new_static("hello", 5);
    host_offer(SEL_CB, UTF8, b);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    uint8_t sel;
    assert_int_equal(last_grab_type(a, &sel), UTF8);
    assert_int_equal(sel, SEL_CB);
    host_offer(SEL_PRI, PNG, b);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 2));
    assert_int_equal(last_grab_type(a, &sel), PNG);
    assert_int_equal(sel, SEL_PRI);
    /* the client releases: the agent hears it, in the canonical layout */
    GError *error = NULL;
    assert_true(vdh_host_clipboard_release(F->h.host, SEL_PRI, &error));
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_RELEASE], 1));
    assert_int_equal(last_release_sel(a), SEL_PRI);
    g_bytes_unref(b);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

static void test_serials(void **state)
{
    TestAgent *a = connected_agent();
    unsigned *n = &a->nmsgs[VD_AGENT_CLIPBOARD_GRAB];
    /* expected serial is 0 on a new client: 5 is dropped, 0 passes */
    host_grab(SEL_CB, 5, UTF8);
    host_grab(SEL_CB, 0, PNG);
    assert_true(wait_count(n, 1));
    test_spin(100);
    assert_int_equal(*n, 1);
    assert_int_equal(last_grab_type(a, NULL), PNG);
    /* 0 again is cur - 1: the client wins, accepted without increment */
    host_grab(SEL_CB, 0, UTF8);
    assert_true(wait_count(n, 2));
    assert_int_equal(last_grab_type(a, NULL), UTF8);
    /* 2 is ahead: dropped; 1 is current: accepted */
    host_grab(SEL_CB, 2, PNG);
    host_grab(SEL_CB, 1, VD_AGENT_CLIPBOARD_IMAGE_BMP);
    assert_true(wait_count(n, 3));
    test_spin(100);
    assert_int_equal(*n, 3);
    assert_int_equal(last_grab_type(a, NULL), VD_AGENT_CLIPBOARD_IMAGE_BMP);
    /* the guest grabs: serial 2 from the daemon's counter (now 2) */
    assert_true(test_agent_send_grab(a, SEL_CB, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_CB], 1));
    assert_int_equal(F->rec.grab_serial[SEL_CB], 2);
    /* a client grab with serial 2 crossed it (cur - 1 = 2): the client wins */
    host_grab(SEL_CB, 2, PNG);
    assert_true(wait_count(n, 4));
    assert_int_equal(last_grab_type(a, NULL), PNG);
    /* serials are per selection: PRIMARY still expects 0 */
    host_grab(SEL_PRI, 0, UTF8);
    assert_true(wait_count(n, 5));
    assert_true(log_count("discarded") >= 2);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

static void test_agent_grab(void **state)
{
    TestAgent *a = connected_agent();
    for (unsigned i = 0; i < 3; i++) {
        assert_true(test_agent_send_grab(a, SEL_CB, UTF8));
        assert_true(wait_count(&F->rec.grabs[SEL_CB], i + 1));
        assert_int_equal(F->rec.grab_serial[SEL_CB], i);
        assert_int_equal(F->rec.grab_type[SEL_CB], UTF8);
    }
    assert_true(test_agent_send_grab(a, SEL_PRI, PNG));
    assert_true(wait_count(&F->rec.grabs[SEL_PRI], 1));
    assert_int_equal(F->rec.grab_serial[SEL_PRI], 0);
    unsigned n;
    assert_non_null(vdh_host_guest_clipboard_types(F->h.host, SEL_PRI, &n));
    assert_int_equal(n, 1);
    /* the guest releases */
    assert_true(test_agent_send_release(a, SEL_PRI));
    assert_true(wait_count(&F->rec.releases[SEL_PRI], 1));
    assert_int_equal(F->rec.dropped, 0);
    test_agent_free(a);
}

/* ---- 3. client data to the agent ---- */

static bool clip_done_n(TestAgent *a, unsigned n)
{
    return wait_count_long(&a->clip_done, n);
}

static void client_to_agent(TestAgent *a, uint8_t sel, GBytes *data, unsigned nth)
{
    host_offer(sel, UTF8, data);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], nth));
    assert_true(test_agent_send_request(a, sel, UTF8));
    assert_true(clip_done_n(a, nth));
    assert_int_equal(a->clip_head.selection, sel);
    assert_int_equal(a->clip_head.type, UTF8);
    assert_int_equal(a->clip_head.size, g_bytes_get_size(data));
    char *want = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, data);
    assert_string_equal(a->clip_digest, want);
    g_free(want);
}

static GBytes *pattern_bytes(size_t size, uint32_t seed)
{
    uint8_t *buf = g_malloc(size);
    test_pattern(buf, size, 0, seed);
    return g_bytes_new_take(buf, size);
}

static void test_client_to_agent_small(void **state)
{
    TestAgent *a = connected_agent();
    GBytes *b = g_bytes_new_static("hello, guest", 12);
    client_to_agent(a, SEL_CB, b, 1);
    g_bytes_unref(b);
    b = pattern_bytes(40000, 7);
    client_to_agent(a, SEL_PRI, b, 2);
    g_bytes_unref(b);
    assert_int_equal(a->clip_aborts, 0);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

static void test_client_to_agent_large(void **state)
{
    TestAgent *a = connected_agent();
    long before = daemon_hwm_kib();
    GBytes *b = pattern_bytes(16 * MIB, 11);
    gint64 t0 = g_get_monotonic_time();
    client_to_agent(a, SEL_CB, b, 1);
    gint64 t1 = g_get_monotonic_time();
    long after = daemon_hwm_kib();
    printf("16 MiB client -> agent in %.2f s; daemon VmHWM %ld -> %ld KiB\n", (double)(t1 - t0) / 1e6, before,
           after);
    /* streamed: the daemon never holds a large part of it */
    assert_true(after - before < 8 * 1024);
    assert_true(a->clip_chunks >= 16 * MIB / (128 * 1024));
    g_bytes_unref(b);
    /* and PRIMARY the same way */
    b = pattern_bytes(3 * MIB, 12);
    client_to_agent(a, SEL_PRI, b, 2);
    g_bytes_unref(b);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

/* Client data without a request from the agent is dropped. */
static void test_client_data_unrequested(void **state)
{
    TestAgent *a = connected_agent();
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD};
    m.u.clipboard.selection = SEL_CB;
    m.u.clipboard.type = UTF8;
    m.u.clipboard.data = (const uint8_t *)"stray";
    m.u.clipboard.size = 5;
    host_send(&m);
    assert_true(test_wait(log_has_cb, "without a request from the guest", WAIT_MS));
    assert_int_equal(a->clip_begins, 0);
    test_agent_free(a);
}

/* ---- 4. guest data to the client ---- */

/* The guest grabs sel with type, the host starts a fetch, the agent sees
 * the REQUEST. */
static void guest_offer_and_fetch(TestAgent *a, uint8_t sel, uint32_t type, Fetch *f)
{
    unsigned grabs = F->rec.grabs[sel];
    unsigned reqs = a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST];
    assert_true(test_agent_send_grab(a, sel, type));
    assert_true(wait_count(&F->rec.grabs[sel], grabs + 1));
    fetch_start(f, sel, type);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST], reqs + 1));
    VdpMsg m;
    assert_true(test_agent_last(a, VD_AGENT_CLIPBOARD_REQUEST, &m));
    assert_int_equal(m.u.request.selection, sel);
    assert_int_equal(m.u.request.type, type);
}

static void test_agent_to_client_small(void **state)
{
    TestAgent *a = connected_agent();
    Fetch f;
    guest_offer_and_fetch(a, SEL_CB, UTF8, &f);
    assert_true(test_agent_send_clipboard(a, SEL_CB, UTF8, (const uint8_t *)"world", 5));
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_null(f.error);
    assert_int_equal(g_bytes_get_size(f.bytes), 5);
    assert_memory_equal(g_bytes_get_data(f.bytes, NULL), "world", 5);
    fetch_clear(&f);
    /* a small memfd works as well, on PRIMARY */
    char digest[65];
    int fd = test_memfd(1000, 3, SEALS, digest);
    assert_true(fd >= 0);
    guest_offer_and_fetch(a, SEL_PRI, PNG, &f);
    assert_true(test_agent_send_clip_fd(a, SEL_PRI, PNG, 1000, fd));
    close(fd);
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_null(f.error);
    assert_int_equal(f.type, PNG);
    char *got = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, f.bytes);
    assert_string_equal(got, digest);
    g_free(got);
    fetch_clear(&f);
    assert_false(a->closed);
    test_agent_free(a);
}

static void test_agent_to_client_memfd(void **state)
{
    TestAgent *a = connected_agent();
    char digest[65];
    uint64_t size = 32 * MIB;
    int fd = test_memfd(size, 21, SEALS, digest);
    assert_true(fd >= 0);
    long before = daemon_hwm_kib();
    Fetch f;
    guest_offer_and_fetch(a, SEL_CB, PNG, &f);
    gint64 t0 = g_get_monotonic_time();
    assert_true(test_agent_send_clip_fd(a, SEL_CB, PNG, size, fd));
    close(fd);
    assert_true(test_wait(fetch_finished, &f, LONG_WAIT_MS));
    gint64 t1 = g_get_monotonic_time();
    long after = daemon_hwm_kib();
    if (f.error)
        fail_msg("fetch: %s", f.error->message);
    printf("32 MiB agent memfd -> client in %.2f s; daemon VmHWM %ld -> %ld KiB\n", (double)(t1 - t0) / 1e6,
           before, after);
    assert_int_equal(g_bytes_get_size(f.bytes), size);
    char *got = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, f.bytes);
    assert_string_equal(got, digest);
    g_free(got);
    assert_true(after - before < 8 * 1024);
    fetch_clear(&f);
    test_agent_free(a);
}

static bool agent_closed(void *d)
{
    return ((TestAgent *)d)->closed;
}

/* Descriptors the daemon must refuse: the client gets empty data of the
 * type, the agent stays connected. */
static void refused_fd(TestAgent *a, int fd, uint64_t size, const char *log_text)
{
    Fetch f;
    unsigned before = F->rec.clipboards;
    guest_offer_and_fetch(a, SEL_CB, UTF8, &f);
    assert_true(test_agent_send_clip_fd(a, SEL_CB, UTF8, size, fd));
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_non_null(f.error);
    assert_true(g_error_matches(f.error, VDH_ERROR, VDH_ERROR_REFUSED));
    assert_int_equal(F->rec.clipboards, before + 1);
    assert_int_equal(F->rec.clip_type, UTF8);
    assert_int_equal(F->rec.clip_size, 0);
    assert_true(test_wait(log_has_cb, (void *)log_text, WAIT_MS));
    fetch_clear(&f);
    assert_false(a->closed);
}

static void test_bad_fds(void **state)
{
    TestAgent *a = connected_agent();
    /* unsealed memfd */
    int fd = test_memfd(4096, 1, 0, NULL);
    assert_true(fd >= 0);
    refused_fd(a, fd, 4096, "not sealed against shrinking and writing");
    close(fd);
    /* sealed against writing but not shrinking */
    fd = test_memfd(4096, 1, F_SEAL_WRITE, NULL);
    assert_true(fd >= 0);
    refused_fd(a, fd, 4096, "not sealed against shrinking");
    close(fd);
    /* a pipe */
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "abcd", 4), 4);
    refused_fd(a, p[0], 4, "not a regular file");
    close(p[0]);
    close(p[1]);
    /* sealed, but shorter than announced */
    fd = test_memfd(100, 1, SEALS, NULL);
    assert_true(fd >= 0);
    refused_fd(a, fd, 5000, "the file has 100 bytes, 5000 announced");
    close(fd);
    /* a good one still works afterwards */
    char digest[65];
    fd = test_memfd(70000, 2, SEALS, digest);
    Fetch f;
    guest_offer_and_fetch(a, SEL_CB, UTF8, &f);
    assert_true(test_agent_send_clip_fd(a, SEL_CB, UTF8, 70000, fd));
    close(fd);
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_null(f.error);
    char *got = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, f.bytes);
    assert_string_equal(got, digest);
    g_free(got);
    fetch_clear(&f);
    /* a frame that breaks the IPC rules (data announced, no descriptor)
     * disconnects the agent */
    assert_true(test_agent_send_clip_fd(a, SEL_CB, UTF8, 100, -1));
    assert_true(test_wait(agent_closed, a, WAIT_MS));
    assert_true(test_wait(log_has_cb, "CLIP_DATA_FD of 100 bytes with 0 descriptors", WAIT_MS));
    test_agent_free(a);
}

/* The client announced MAX_CLIPBOARD 1000. */
static void test_oversize(void **state)
{
    TestAgent *a = connected_agent();
    assert_true(wait_count(&a->nmsgs[VD_AGENT_MAX_CLIPBOARD], 1));
    VdpMsg m;
    assert_true(test_agent_last(a, VD_AGENT_MAX_CLIPBOARD, &m));
    assert_int_equal(m.u.max_clipboard.max, 1000);
    int fd = test_memfd(5000, 4, SEALS, NULL);
    assert_true(fd >= 0);
    refused_fd(a, fd, 5000, "guest clipboard of 5000 bytes is larger than the client's maximum 1000");
    close(fd);
    /* an envelope above the maximum too */
    uint8_t *buf = g_malloc0(2000);
    Fetch f;
    guest_offer_and_fetch(a, SEL_CB, PNG, &f);
    assert_true(test_agent_send_clipboard(a, SEL_CB, PNG, buf, 2000));
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_non_null(f.error);
    assert_int_equal(F->rec.clip_type, PNG);
    assert_int_equal(F->rec.clip_size, 0);
    fetch_clear(&f);
    g_free(buf);
    /* within the maximum: passes */
    guest_offer_and_fetch(a, SEL_CB, UTF8, &f);
    assert_true(test_agent_send_clipboard(a, SEL_CB, UTF8, (const uint8_t *)"fits", 4));
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_null(f.error);
    fetch_clear(&f);
    test_agent_free(a);
}

/* ---- 5. requests nobody can answer ---- */

static void test_request_not_owned(void **state)
{
    TestAgent *a = connected_agent();
    /* the guest owns nothing: NONE at once, the agent is not asked */
    host_request(SEL_CB, UTF8);
    assert_true(wait_count(&F->rec.nones, 1));
    assert_int_equal(a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST], 0);
    /* the agent goes away: the port stays open for a grace period (1 s),
     * and a request then is answered NONE at once too */
    test_agent_free(a);
    assert_true(test_wait(log_has_cb, "no active agent", WAIT_MS));
    assert_true(vdh_host_is_connected(F->h.host));
    host_request(SEL_PRI, UTF8);
    assert_true(wait_count(&F->rec.nones, 2));
}

static void test_agent_gone_pending(void **state)
{
    TestAgent *a = connected_agent();
    Fetch f;
    guest_offer_and_fetch(a, SEL_CB, UTF8, &f);
    /* the agent leaves without answering: the client gets NONE, not a timeout */
    gint64 t0 = g_get_monotonic_time();
    test_agent_free(a);
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_non_null(f.error);
    assert_true(g_error_matches(f.error, VDH_ERROR, VDH_ERROR_REFUSED));
    assert_true(g_get_monotonic_time() - t0 < 3 * G_USEC_PER_SEC);
    assert_true(F->rec.nones >= 1);
    /* and its selection was released towards the client */
    assert_true(wait_count(&F->rec.releases[SEL_CB], 1));
    fetch_clear(&f);
}

/* An agent REQUEST for a selection the client does not own is answered
 * at once with CLIP_BEGIN type NONE. */
static void test_agent_request_refused(void **state)
{
    TestAgent *a = connected_agent();
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    assert_true(wait_count(&a->clip_done, 1));
    assert_int_equal(a->clip_head.type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(a->clip_head.size, 0);
    assert_int_equal(F->rec.requests, 0);
    test_agent_free(a);
}

/* ---- 6. streams cut short ---- */

static bool received_some(void *d)
{
    TestAgent *a = d;
    return a->clip_received > 0;
}

static bool aborted(void *d)
{
    return ((TestAgent *)d)->clip_aborts > 0;
}

static void test_client_gone_midstream(void **state)
{
    TestAgent *a = connected_agent();
    GBytes *b = pattern_bytes(32 * MIB, 5);
    host_offer(SEL_CB, UTF8, b);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    assert_true(test_wait(received_some, a, WAIT_MS));
    /* the client goes away (the host side closes) in the middle */
    vdh_host_free(F->h.host);
    F->h.host = NULL;
    assert_true(test_wait(aborted, a, WAIT_MS));
    assert_int_equal(a->clip_abort_sel, SEL_CB);
    assert_true(a->clip_received < 32 * MIB);
    /* the agent was also told the client's selection is gone, and that
     * the client's size limit is */
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_RELEASE], 1));
    assert_true(wait_count(&a->nmsgs[VD_AGENT_MAX_CLIPBOARD], 2));
    VdpMsg m;
    assert_true(test_agent_last(a, VD_AGENT_MAX_CLIPBOARD, &m));
    assert_int_equal(m.u.max_clipboard.max, -1);
    assert_int_equal(a->bad_frames, 0);
    assert_false(a->closed);
    g_bytes_unref(b);
    test_agent_free(a);
}

/* CLIENT_DISCONNECTED in the middle of a client message, as spice-server
 * sends it when the client leaves: a raw host (the library never cuts its
 * own messages short) sends part of a CLIPBOARD, then CLIENT_DISCONNECTED
 * on chunk port 2. */
static void raw_state(void *user, VdpPortState st, const char *why)
{
    *(bool *)user = st == VDP_PORT_STATE_OPEN;
}

static void raw_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr, const uint8_t *data,
                        size_t len)
{
}

static const VdpPortCallbacks raw_cb = {.state_changed = raw_state, .message = raw_message};

static bool is_true(void *d)
{
    return *(bool *)d;
}

static void test_client_disconnected_midstream(void **state)
{
    bool open = false;
    VdpPortConfig cfg = {.path = F->h.port_path, .mode = VDP_PORT_LISTEN, .dir = VDP_FROM_GUEST};
    VdpPort *raw = vdp_port_new(NULL, &cfg, &raw_cb, &open);
    assert_non_null(raw);
    vdp_port_start(raw);
    start_daemon(false, false);
    TestAgent *a = agent_here(true);
    assert_true(test_wait(is_true, &open, WAIT_MS));
    VdpLayout l = {.clipboard_selection = true, .grab_serial = true};
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_ANNOUNCE_CAPABILITIES;
    m->u.announce.request = 1;
    vdp_caps_init_host(&m->u.announce.caps);
    assert_int_equal(vdp_port_send_msg(raw, m, &(VdpLayout){0}, NULL), VDP_OK);
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD_GRAB;
    m->u.grab.ntypes = 1;
    m->u.grab.types[0] = UTF8;
    assert_int_equal(vdp_port_send_msg(raw, m, &l, NULL), VDP_OK);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    test_spin(200);
    /* 8 + 4 MiB announced, 1 MiB sent */
    size_t size = 4 * MIB, part = MIB;
    assert_int_equal(vdp_port_send_begin(raw, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, 8 + size), VDP_OK);
    uint8_t *buf = g_malloc(8 + part);
    memset(buf, 0, 8);
    buf[4] = UTF8;
    test_pattern(buf + 8, part, 0, 9);
    size_t off = 0;
    while (off < 8 + part) {
        size_t acc = 0;
        VdpResult r = vdp_port_send_data(raw, VDP_CLIENT_PORT, buf + off, 8 + part - off, &acc);
        assert_true(r == VDP_OK || r == VDP_ERR_BUSY);
        off += acc;
        if (off < 8 + part)
            test_spin(5);
    }
    assert_true(test_wait(received_some, a, WAIT_MS));
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIENT_DISCONNECTED;
    assert_int_equal(vdp_port_send_msg(raw, m, &l, NULL), VDP_OK);
    assert_true(test_wait(aborted, a, WAIT_MS));
    assert_int_equal(a->clip_abort_sel, SEL_CB);
    assert_true(a->clip_received <= part);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIENT_DISCONNECTED], 1));
    /* the client's selection is gone for the agent too */
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_RELEASE], 1));
    assert_true(test_wait(log_has_cb, "transfer to agent pid", WAIT_MS));
    assert_int_equal(a->bad_frames, 0);
    assert_false(a->closed);
    g_free(buf);
    g_free(m);
    vdp_port_free(raw);
    test_agent_free(a);
}

/* A slow agent: the port is paused while its queue is full, and the
 * transfer completes once it reads again. */
static void test_slow_agent(void **state)
{
    TestAgent *a = connected_agent();
    GBytes *b = pattern_bytes(16 * MIB, 8);
    host_offer(SEL_CB, UTF8, b);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    test_agent_pause(a, true);
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    test_spin(1500);
    long hwm = daemon_hwm_kib();
    VdhHostStats st;
    vdh_host_get_stats(F->h.host, &st);
    printf("slow agent: host sent %llu bytes so far, daemon VmHWM %ld KiB\n", (unsigned long long)st.bytes_out,
           hwm);
    /* the daemon stopped reading: far less than the payload went out */
    assert_true(st.bytes_out < 12 * MIB);
    assert_int_equal(a->clip_received, 0);
    test_agent_pause(a, false);
    assert_true(clip_done_n(a, 1));
    char *want = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, b);
    assert_string_equal(a->clip_digest, want);
    g_free(want);
    assert_true(test_wait(log_has_cb, "is behind, pausing the port", WAIT_MS));
    assert_true(daemon_hwm_kib() < hwm + 8 * 1024);
    assert_false(a->closed);
    g_bytes_unref(b);
    test_agent_free(a);
}

/* ---- 7. a client without CLIPBOARD_SELECTION ---- */

static void test_no_selection_cap(void **state)
{
    TestAgent *a = connected_agent();
    /* PRIMARY does not reach this client */
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    assert_true(test_agent_send_grab(a, SEL_CB, PNG));
    assert_true(wait_count(&F->rec.grabs[SEL_CB], 1));
    test_spin(100);
    assert_int_equal(F->rec.grabs[SEL_PRI], 0);
    /* an agent REQUEST for PRIMARY gets "no data" */
    assert_true(test_agent_send_request(a, SEL_PRI, UTF8));
    assert_true(wait_count(&a->clip_done, 1));
    assert_int_equal(a->clip_head.type, VD_AGENT_CLIPBOARD_NONE);
    /* CLIPBOARD works in the layout without selection prefix */
    Fetch f;
    fetch_start(&f, SEL_CB, PNG);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST], 1));
    assert_true(test_agent_send_clipboard(a, SEL_CB, PNG, (const uint8_t *)"img", 3));
    assert_true(test_wait(fetch_finished, &f, WAIT_MS));
    assert_null(f.error);
    fetch_clear(&f);
    /* the agent leaves: the release of CLIPBOARD has the client's layout
     * (no payload), which the host decodes without complaint */
    test_agent_free(a);
    assert_true(wait_count(&F->rec.releases[SEL_CB], 1));
    assert_int_equal(F->rec.dropped, 0);
}

/* ---- 8. status ---- */

static bool has_status(void *d)
{
    return ((TestAgent *)d)->status_json != NULL;
}

static json_object *status_now(void)
{
    TestAgent *c = test_agent_connect(F->h.sock_path, VDP_IPC_ROLE_CONTROL, "test-status");
    assert_non_null(c);
    assert_true(test_wait(dh_agent_answered, c, WAIT_MS));
    assert_true(test_agent_send_status_request(c));
    assert_true(test_wait(has_status, c, WAIT_MS));
    json_object *root = json_tokener_parse(c->status_json);
    assert_non_null(root);
    test_agent_free(c);
    return root;
}

static const char *jpath(json_object *root, const char *a, const char *b)
{
    json_object *o, *v;
    if (!json_object_object_get_ex(root, a, &o) || !json_object_object_get_ex(o, b, &v))
        return NULL;
    return json_object_get_string(v);
}

static void test_status(void **state)
{
    TestAgent *a = connected_agent();
    json_object *root = status_now();
    assert_string_equal(jpath(root, "clipboard", "clipboard"), "none");
    json_object *x;
    assert_true(json_object_object_get_ex(root, "file_transfers", &x));
    assert_int_equal(json_object_get_int(x), 0);
    json_object_put(root);
    GBytes *b = g_bytes_new_static("x", 1);
    host_offer(SEL_CB, UTF8, b);
    g_bytes_unref(b);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_PRI], 1));
    root = status_now();
    assert_string_equal(jpath(root, "clipboard", "clipboard"), "client");
    assert_string_equal(jpath(root, "clipboard", "primary"), "guest");
    assert_string_equal(jpath(root, "clipboard", "secondary"), "none");
    assert_string_equal(jpath(root, "clipboard", "locked_out"), "false");
    json_object_put(root);
    /* the human output of --status */
    char *argv[] = {(char *)dh_daemon_path(), "--status", "-S", F->h.sock_path, NULL};
    char *out = NULL;
    int st = -1;
    assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &st, NULL));
    assert_true(g_spawn_check_wait_status(st, NULL));
    assert_non_null(strstr(out, "clipboard:       clipboard client, primary guest, secondary none"));
    assert_non_null(strstr(out, "file transfers:  0"));
    g_free(out);
    /* a file transfer the agent has not answered yet is counted */
    char *path = g_build_filename(F->h.dir, "f.txt", NULL);
    assert_true(g_file_set_contents(path, "data", 4, NULL));
    const char *paths[] = {path, NULL};
    vdh_host_send_files_async(F->h.host, paths, NULL, NULL, WAIT_MS, NULL, NULL, NULL);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_FILE_XFER_START], 1));
    root = status_now();
    assert_true(json_object_object_get_ex(root, "file_transfers", &x));
    assert_int_equal(json_object_get_int(x), 1);
    json_object_put(root);
    g_free(path);
    test_agent_free(a);
}

/* ---- 9. lock, greeter, switch (session integration) ---- */

static bool flags_locked(void *d)
{
    return (((TestAgent *)d)->session_flags & VDP_IPC_SESSION_LOCKED) != 0;
}

static bool flags_unlocked(void *d)
{
    TestAgent *a = d;
    return a->session_states > 0 && !(a->session_flags & VDP_IPC_SESSION_LOCKED);
}

static bool flags_active(void *d)
{
    return (((TestAgent *)d)->session_flags & VDP_IPC_SESSION_ACTIVE) != 0;
}

static TestAgent *one_session_agent(bool allow_locked)
{
    dh_add_session(&F->h, "2", 0, "root");
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_map_pid(&F->h, getpid(), SESSION_PATH("2"));
    start_daemon(true, allow_locked);
    TestAgent *a = agent_here(true);
    dh_host_ready(&F->h);
    assert_true(test_wait(flags_active, a, WAIT_MS));
    return a;
}

static void test_locked(void **state)
{
    TestAgent *a = one_session_agent(false);
    /* before the lock: the client owns CLIPBOARD, the guest PRIMARY */
    GBytes *b = g_bytes_new_static("secret", 6);
    host_offer(SEL_CB, UTF8, b);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_PRI], 1));

    set_locked(SESSION_PATH("2"), true);
    assert_true(test_wait(flags_locked, a, WAIT_MS));
    /* the client's selection is released towards the agent, the guest's
     * towards the client */
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_RELEASE], 1));
    assert_int_equal(last_release_sel(a), SEL_CB);
    assert_true(wait_count(&F->rec.releases[SEL_PRI], 1));
    /* grabs in both directions are dropped */
    unsigned agent_grabs = a->nmsgs[VD_AGENT_CLIPBOARD_GRAB];
    host_offer(SEL_CB, PNG, b);
    assert_true(test_agent_send_grab(a, SEL_CB, UTF8));
    /* requests in both directions get "no data" */
    host_request(SEL_PRI, UTF8);
    assert_true(wait_count(&F->rec.nones, 1));
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    assert_true(wait_count(&a->clip_done, 1));
    assert_int_equal(a->clip_head.type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], agent_grabs);
    assert_int_equal(F->rec.grabs[SEL_CB], 0);
    assert_int_equal(F->rec.requests, 0);
    /* logged once for the state change, not per message */
    assert_int_equal(log_count("clipboard: not shared while"), 1);

    /* unlocked: the client's current grab (PNG) is offered again */
    set_locked(SESSION_PATH("2"), false);
    assert_true(test_wait(flags_unlocked, a, WAIT_MS));
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], agent_grabs + 1));
    assert_int_equal(last_grab_type(a, NULL), PNG);
    assert_true(test_agent_send_grab(a, SEL_CB, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_CB], 1));
    assert_int_equal(a->bad_frames, 0);
    g_bytes_unref(b);
    test_agent_free(a);
}

static void test_locked_allowed(void **state)
{
    TestAgent *a = one_session_agent(true);
    set_locked(SESSION_PATH("2"), true);
    assert_true(test_wait(flags_locked, a, WAIT_MS));
    GBytes *b = g_bytes_new_static("shared", 6);
    host_offer(SEL_CB, UTF8, b);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_PRI], 1));
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    assert_true(wait_count(&a->clip_done, 1));
    assert_int_equal(a->clip_head.type, UTF8);
    assert_int_equal(a->clip_head.size, 6);
    assert_int_equal(log_count("clipboard: not shared while"), 0);
    g_bytes_unref(b);
    test_agent_free(a);
}

static void test_greeter(void **state)
{
    dh_add_greeter(&F->h, "c1", SESSION_PATH("c1"));
    start_daemon(true, false);
    TestAgent *a = agent_here(true);
    dh_host_ready(&F->h);
    assert_true(test_wait(flags_active, a, WAIT_MS));
    GBytes *b = g_bytes_new_static("pw", 2);
    host_offer(SEL_CB, UTF8, b);
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    host_request(SEL_CB, UTF8);
    assert_true(wait_count(&F->rec.nones, 1));
    test_spin(200);
    assert_int_equal(a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 0);
    assert_int_equal(F->rec.grabs[SEL_PRI], 0);
    assert_true(log_count("clipboard: not shared while the active session is a greeter") == 1);
    g_bytes_unref(b);
    test_agent_free(a);
}

static void test_switch(void **state)
{
    dh_add_session(&F->h, "2", 0, "root");
    dh_add_session(&F->h, "3", 0, "root");
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    start_daemon(true, false);
    TestAgent *a = agent_kid(SESSION_PATH("2"), true);
    TestAgent *b = agent_kid(SESSION_PATH("3"), true);
    dh_host_ready(&F->h);
    assert_true(test_wait(flags_active, a, WAIT_MS));
    /* the client owns CLIPBOARD, a owns PRIMARY */
    GBytes *data = g_bytes_new_static("from the client", 15);
    host_offer(SEL_CB, UTF8, data);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    assert_int_equal(b->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 0);
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_PRI], 1));
    /* a pending client request to a is answered NONE by the switch */
    host_request(SEL_PRI, UTF8);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST], 1));

    dh_set_active(&F->h, "3", SESSION_PATH("3"));
    assert_true(test_wait(flags_active, b, WAIT_MS));
    /* a's selection is released towards the client, in the client's
     * layout (4-byte selection prefix: decoded without a drop) */
    assert_true(wait_count(&F->rec.releases[SEL_PRI], 1));
    assert_true(wait_count(&F->rec.nones, 1));
    assert_int_equal(F->rec.dropped, 0);
    /* the client's grab is offered to b, and a is told it is gone */
    assert_true(wait_count(&b->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    uint8_t sel;
    assert_int_equal(last_grab_type(b, &sel), UTF8);
    assert_int_equal(sel, SEL_CB);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_RELEASE], 1));
    /* b can paste right away */
    assert_true(test_agent_send_request(b, SEL_CB, UTF8));
    assert_true(wait_count(&b->clip_done, 1));
    assert_int_equal(b->clip_head.size, 15);
    /* a (inactive) cannot grab or request any more */
    assert_true(test_agent_send_grab(a, SEL_CB, UTF8));
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    assert_true(wait_count(&a->clip_done, 1));
    assert_int_equal(a->clip_head.type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(F->rec.grabs[SEL_CB], 0);
    assert_int_equal(a->bad_frames, 0);
    assert_int_equal(b->bad_frames, 0);
    g_bytes_unref(data);
    test_agent_free(a);
    test_agent_free(b);
}

/* ---- 10. order and backpressure (the review of vdd-clipboard.c) ---- */

static void assert_fetch_digest(Fetch *f, uint64_t size, const char *digest)
{
    if (f->error)
        fail_msg("fetch: %s", f->error->message);
    assert_int_equal(g_bytes_get_size(f->bytes), size);
    char *got = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, f->bytes);
    assert_string_equal(got, digest);
    g_free(got);
}

/* PRIMARY grabs of the guest after the first one, while the host does
 * not read: together far more than the port keeps behind a stream. */
#define REGRABS 5000u

static bool last_grab_seen(void *d)
{
    return F->rec.grabs[SEL_PRI] > 0 && F->rec.grab_serial[SEL_PRI] == REGRABS;
}

/* While a large guest answer streams to a host that reads slowly, the
 * daemon's other messages to the host still get through: a guest GRAB and
 * the REPLY to a monitors config (the stream used to fill the port's queue
 * to its hard limit, and every whole message was dropped). */
static void test_guest_msgs_during_stream(void **state)
{
    TestAgent *a = connected_agent();
    uint64_t size = 32 * MIB;
    char digest[65];
    int fd = test_memfd(size, 21, SEALS, digest);
    assert_true(fd >= 0);
    Fetch f;
    guest_offer_and_fetch(a, SEL_CB, PNG, &f);
    /* the host (spice-server) stops reading the port for a while */
    vdp_port_pause_read(F->h.host->port, true);
    assert_true(test_agent_send_clip_fd(a, SEL_CB, PNG, size, fd));
    close(fd);
    test_spin(500);     /* the daemon queues as much as it will */
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    /* then grabs it again and again (more than the port keeps behind a
     * stream): what the host must end up with is the last one */
    VdpMsg *g = g_new0(VdpMsg, 1);
    g->type = VD_AGENT_CLIPBOARD_GRAB;
    g->u.grab.selection = SEL_PRI;
    g->u.grab.ntypes = VDP_MAX_GRAB_TYPES;
    for (unsigned i = 0; i < REGRABS; i++) {
        for (unsigned k = 0; k < VDP_MAX_GRAB_TYPES; k++)
            g->u.grab.types[k] = i + 1 == REGRABS ? PNG : UTF8;
        assert_true(test_agent_send_vdagent(a, g));
        if (i % 100 == 0)
            test_spin(1);
    }
    g_free(g);
    VdpMonitorsConfig *mc = g_new0(VdpMonitorsConfig, 1);
    mc->count = 1;
    mc->monitors[0] = (VdpMonConfig){.width = 1024, .height = 768, .depth = 32};
    /* static: a failed test leaves the operation to end in the teardown */
    static DhAsync w;
    g_clear_error(&w.error);
    memset(&w, 0, sizeof(w));
    w.host = F->h.host;
    vdh_host_set_monitors_async(F->h.host, mc, LONG_WAIT_MS, NULL, dh_monitors_set, &w);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_MONITORS_CONFIG], 1));
    test_spin(200);
    vdp_port_pause_read(F->h.host->port, false);
    assert_true(test_wait(fetch_finished, &f, LONG_WAIT_MS));
    assert_fetch_digest(&f, size, digest);
    assert_true(wait_count(&F->rec.grabs[SEL_PRI], 1));
    assert_true(test_wait(last_grab_seen, NULL, WAIT_MS));
    printf("the host saw %u of %u PRIMARY grabs, the last with serial %u\n", F->rec.grabs[SEL_PRI],
           REGRABS + 1, F->rec.grab_serial[SEL_PRI]);
    assert_int_equal(F->rec.grab_type[SEL_PRI], PNG);
    assert_true(test_wait(dh_async_done, &w, LONG_WAIT_MS));
    if (!w.ok)
        fail_msg("monitors: %s", w.error ? w.error->message : "?");
    g_clear_error(&w.error);
    assert_int_equal(log_count("could not send"), 0);
    assert_int_equal(F->rec.dropped, 0);
    g_free(mc);
    fetch_clear(&f);
    test_agent_free(a);
}

/* Answers to the client keep the order of its requests: a memfd answer
 * waiting behind another stream, then a small envelope answer, then a
 * refused descriptor (empty data) all arrive in that order. */
static void test_client_answers_in_order(void **state)
{
    TestAgent *a = connected_agent();
    Fetch f;
    guest_offer_and_fetch(a, SEL_PRI, PNG, &f);
    assert_true(test_agent_send_grab(a, SEL_CB, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_CB], 1));
    unsigned reqs = a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST];
    for (unsigned i = 0; i < 3; i++)
        host_request(SEL_CB, UTF8);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST], reqs + 3));
    unsigned before = F->rec.clipboards;
    vdp_port_pause_read(F->h.host->port, true);
    char digest[65];
    int fd = test_memfd(32 * MIB, 1, SEALS, digest);
    assert_true(fd >= 0);
    assert_true(test_agent_send_clip_fd(a, SEL_PRI, PNG, 32 * MIB, fd));   /* the host's fetch */
    close(fd);
    test_spin(300);
    fd = test_memfd(1000, 2, SEALS, NULL);
    assert_true(test_agent_send_clip_fd(a, SEL_CB, UTF8, 1000, fd));      /* CLIPBOARD request 1 */
    close(fd);
    assert_true(test_agent_send_clipboard(a, SEL_CB, UTF8, (const uint8_t *)"second", 6));   /* 2 */
    fd = test_memfd(100, 3, 0, NULL);
    assert_true(test_agent_send_clip_fd(a, SEL_CB, UTF8, 100, fd));       /* 3: unsealed, refused */
    close(fd);
    assert_true(test_wait(log_has_cb, "not sealed against shrinking and writing", WAIT_MS));
    test_spin(200);
    vdp_port_pause_read(F->h.host->port, false);
    assert_true(test_wait(fetch_finished, &f, LONG_WAIT_MS));
    assert_fetch_digest(&f, 32 * MIB, digest);
    assert_true(wait_count(&F->rec.clipboards, before + 4));
    const uint32_t want_sel[4] = {SEL_PRI, SEL_CB, SEL_CB, SEL_CB};
    const size_t want_size[4] = {32 * MIB, 1000, 6, 0};
    for (unsigned i = 0; i < 4; i++) {
        printf("host got CLIPBOARD #%u: selection %u, %zu bytes\n", i, F->rec.log_sel[before + i],
               F->rec.log_size[before + i]);
        assert_int_equal(F->rec.log_sel[before + i], want_sel[i]);
        assert_int_equal(F->rec.log_size[before + i], want_size[i]);
    }
    assert_int_equal(F->rec.log_type[before + 3], UTF8);
    assert_int_equal(log_count("could not send"), 0);
    fetch_clear(&f);
    test_agent_free(a);
}

/* A client that floods GRABs while the agent does not read: the daemon
 * stops reading the port instead of queueing towards the agent until it
 * is disconnected; every GRAB arrives once the agent reads again. */
#define FLOOD_GRABS 6000u
static void test_client_flood_slow_agent(void **state)
{
    TestAgent *a = connected_agent();
    test_agent_pause(a, true);
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_CLIPBOARD_GRAB;
    m->u.grab.selection = SEL_CB;
    m->u.grab.ntypes = VDP_MAX_GRAB_TYPES;
    for (unsigned i = 0; i < VDP_MAX_GRAB_TYPES; i++)
        m->u.grab.types[i] = UTF8;
    gint64 t0 = g_get_monotonic_time();
    bool resumed = false;
    for (unsigned k = 0; k < FLOOD_GRABS; k++) {
        m->u.grab.serial = k;
        GError *error = NULL;
        while (!vdh_send(F->h.host, m, &error)) {
            g_clear_error(&error);
            test_spin(5);
            /* the host's own queue is full: let the agent read */
            if (!resumed && g_get_monotonic_time() - t0 > 3 * G_USEC_PER_SEC) {
                test_agent_pause(a, false);
                resumed = true;
            }
            assert_true(g_get_monotonic_time() - t0 < (gint64)LONG_WAIT_MS * 1000);
        }
        if (k % 200 == 0)
            test_spin(5);
    }
    g_free(m);
    assert_true(test_wait(log_has_cb, "is behind, pausing the port", WAIT_MS));
    test_spin(500);
    test_agent_pause(a, false);
    assert_true(wait_count_long(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], FLOOD_GRABS));
    printf("%u client GRABs reached a slow agent in %.2f s\n", a->nmsgs[VD_AGENT_CLIPBOARD_GRAB],
           (double)(g_get_monotonic_time() - t0) / 1e6);
    assert_false(a->closed);
    assert_int_equal(log_count("cannot queue"), 0);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

/* The same for what the daemon itself forwards from the port to the
 * active agent: MONITORS_CONFIG. */
#define FLOOD_CONFIGS 4000u
static void test_monitors_flood_slow_agent(void **state)
{
    TestAgent *a = connected_agent();
    test_agent_pause(a, true);
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_MONITORS_CONFIG;
    m->u.monitors.count = 16;
    for (unsigned i = 0; i < 16; i++)
        m->u.monitors.monitors[i] = (VdpMonConfig){.width = 640, .height = 480, .depth = 32, .x = 640 * (int)i};
    gint64 t0 = g_get_monotonic_time();
    bool resumed = false;
    for (unsigned k = 0; k < FLOOD_CONFIGS; k++) {
        GError *error = NULL;
        while (!vdh_send(F->h.host, m, &error)) {
            g_clear_error(&error);
            test_spin(5);
            if (!resumed && g_get_monotonic_time() - t0 > 3 * G_USEC_PER_SEC) {
                test_agent_pause(a, false);
                resumed = true;
            }
            assert_true(g_get_monotonic_time() - t0 < (gint64)LONG_WAIT_MS * 1000);
        }
        if (k % 200 == 0)
            test_spin(5);
    }
    g_free(m);
    assert_true(test_wait(log_has_cb, "is behind, pausing the port", WAIT_MS));
    test_spin(500);
    test_agent_pause(a, false);
    assert_true(wait_count_long(&a->nmsgs[VD_AGENT_MONITORS_CONFIG], FLOOD_CONFIGS));
    assert_false(a->closed);
    assert_int_equal(log_count("cannot queue"), 0);
    test_agent_free(a);
}

/* Refusals towards the agent keep the order of its requests: the 9th
 * request on a selection is answered after the 8 that wait for the client,
 * and any number of refusals during a stream all come after it. */
#define DEFERRED_REFUSALS 12u
static void test_agent_refusals_in_order(void **state)
{
    TestAgent *a = connected_agent();
    GBytes *small = g_bytes_new_static("abc", 3);
    host_offer(SEL_CB, UTF8, small);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    /* the host does not read for a moment: the requests wait */
    vdp_port_pause_read(F->h.host->port, true);
    for (unsigned i = 0; i < 9; i++)
        assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    test_spin(300);
    vdp_port_pause_read(F->h.host->port, false);
    assert_true(wait_count(&a->clip_done, 9));
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(a->clip_heads[i].type, UTF8);
        assert_int_equal(a->clip_heads[i].size, 3);
    }
    assert_int_equal(a->clip_heads[8].type, VD_AGENT_CLIPBOARD_NONE);
    /* a large stream to an agent that does not read, and refused
     * requests meanwhile */
    GBytes *big = pattern_bytes(16 * MIB, 3);
    host_offer(SEL_CB, UTF8, big);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 2));
    unsigned pauses = log_count("is behind, pausing the port");
    test_agent_pause(a, true);
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    gint64 t0 = g_get_monotonic_time();
    while (log_count("is behind, pausing the port") == pauses) {
        assert_true(g_get_monotonic_time() - t0 < (gint64)WAIT_MS * 1000);
        test_spin(20);
    }
    for (unsigned i = 0; i < DEFERRED_REFUSALS; i++)
        assert_true(test_agent_send_request(a, SEL_PRI, UTF8));   /* the client does not own PRIMARY */
    test_spin(200);
    test_agent_pause(a, false);
    assert_true(wait_count_long(&a->clip_done, 10 + DEFERRED_REFUSALS));
    assert_int_equal(a->clip_heads[9].selection, SEL_CB);
    assert_int_equal(a->clip_heads[9].size, 16 * MIB);
    for (unsigned i = 10; i < 10 + DEFERRED_REFUSALS; i++) {
        assert_int_equal(a->clip_heads[i].selection, SEL_PRI);
        assert_int_equal(a->clip_heads[i].type, VD_AGENT_CLIPBOARD_NONE);
    }
    test_spin(200);
    assert_int_equal(a->clip_done, 10 + DEFERRED_REFUSALS);
    assert_int_equal(a->bad_frames, 0);
    g_bytes_unref(big);
    g_bytes_unref(small);
    test_agent_free(a);
}

static bool two_clients(void *d)
{
    return log_count("new client connected") >= 2;
}

/* The port was paused for a slow agent's stream when the host side went
 * away: the next connection is read at once, not after the stall timeout
 * (the pause used to outlive the stream and the connection). */
static void test_port_lost_while_paused(void **state)
{
    TestAgent *a = connected_agent();
    GBytes *big = pattern_bytes(16 * MIB, 4);
    host_offer(SEL_CB, UTF8, big);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));
    test_agent_pause(a, true);
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    assert_true(test_wait(log_has_cb, "is behind, pausing the port", WAIT_MS));
    vdh_host_free(F->h.host);
    F->h.host = NULL;
    /* a paused port notices the hang-up when it writes: the guest grabs */
    assert_true(test_agent_send_grab(a, SEL_PRI, UTF8));
    assert_true(test_wait(log_has_cb, "lost the host side of the agent port", WAIT_MS));
    gint64 t0 = g_get_monotonic_time();
    start_host(NULL);
    dh_host_ready(&F->h);
    assert_true(test_wait(two_clients, NULL, WAIT_MS));
    printf("the new host connection was read after %.2f s\n", (double)(g_get_monotonic_time() - t0) / 1e6);
    /* the agent reads again: its stream was aborted, nothing else broke */
    test_agent_pause(a, false);
    assert_true(test_wait(aborted, a, WAIT_MS));
    assert_int_equal(a->clip_abort_sel, SEL_CB);
    assert_false(a->closed);
    assert_int_equal(a->bad_frames, 0);
    g_bytes_unref(big);
    test_agent_free(a);
}

/* A raw host that counts the REQUESTs it gets. */
typedef struct RawHost {
    bool open;
    unsigned requests;
} RawHost;

static void rawh_state(void *user, VdpPortState st, const char *why)
{
    ((RawHost *)user)->open = st == VDP_PORT_STATE_OPEN;
}

static void rawh_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr, const uint8_t *data,
                         size_t len)
{
    if (hdr->type == VD_AGENT_CLIPBOARD_REQUEST)
        ((RawHost *)user)->requests++;
}

static const VdpPortCallbacks rawh_cb = {.state_changed = rawh_state, .message = rawh_message};

static bool rawh_open(void *d)
{
    return ((RawHost *)d)->open;
}

static void raw_clip(VdpPort *raw, const VdpLayout *l, uint8_t sel, const char *text)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD};
    m.u.clipboard.selection = sel;
    m.u.clipboard.type = UTF8;
    m.u.clipboard.data = (const uint8_t *)text;
    m.u.clipboard.size = strlen(text);
    assert_int_equal(vdp_port_send_msg(raw, &m, l, NULL), VDP_OK);
}

static void raw_request_seen(TestAgent *a, RawHost *rh, unsigned n)
{
    assert_true(test_agent_send_request(a, SEL_CB, UTF8));
    assert_true(wait_count(&rh->requests, n));
}

/* The client answers every request it got, also those the daemon already
 * answered NONE (here: the client released the selection meanwhile), and
 * the daemon may drop a client answer it cannot decode: either way the
 * next answers still go to the right requests. */
static void test_client_answers_aligned(void **state)
{
    RawHost rh = {0};
    VdpPortConfig cfg = {.path = F->h.port_path, .mode = VDP_PORT_LISTEN, .dir = VDP_FROM_GUEST};
    VdpPort *raw = vdp_port_new(NULL, &cfg, &rawh_cb, &rh);
    assert_non_null(raw);
    vdp_port_start(raw);
    start_daemon(false, false);
    TestAgent *a = agent_here(true);
    assert_true(test_wait(rawh_open, &rh, WAIT_MS));
    VdpLayout l = {.clipboard_selection = true, .grab_serial = true};
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_ANNOUNCE_CAPABILITIES;
    m->u.announce.request = 1;
    vdp_caps_init_host(&m->u.announce.caps);
    assert_int_equal(vdp_port_send_msg(raw, m, &(VdpLayout){0}, NULL), VDP_OK);
    memset(m, 0, sizeof(*m));
    m->type = VD_AGENT_CLIPBOARD_GRAB;
    m->u.grab.serial = 0;
    m->u.grab.ntypes = 1;
    m->u.grab.types[0] = UTF8;
    assert_int_equal(vdp_port_send_msg(raw, m, &l, NULL), VDP_OK);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 1));

    /* R1 reaches the client, then the client releases: R1 gets NONE */
    raw_request_seen(a, &rh, 1);
    VdpMsg rel = {.type = VD_AGENT_CLIPBOARD_RELEASE};
    assert_int_equal(vdp_port_send_msg(raw, &rel, &l, NULL), VDP_OK);
    assert_true(wait_count(&a->clip_done, 1));
    assert_int_equal(a->clip_heads[0].type, VD_AGENT_CLIPBOARD_NONE);
    /* the client grabs again and R2 goes out; the client's answer to R1
     * comes late, then the one to R2 */
    m->u.grab.serial = 1;
    assert_int_equal(vdp_port_send_msg(raw, m, &l, NULL), VDP_OK);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_GRAB], 2));
    raw_request_seen(a, &rh, 2);
    raw_clip(raw, &l, SEL_CB, "late-R1");
    raw_clip(raw, &l, SEL_CB, "R2data");
    assert_true(wait_count(&a->clip_done, 2));
    assert_int_equal(a->clip_heads[1].type, UTF8);
    assert_int_equal(a->clip_heads[1].size, 6);

    /* R3's answer does not decode (a selection prefix and no type): R3
     * gets NONE, R4 its own answer */
    raw_request_seen(a, &rh, 3);
    static const uint8_t broken[4] = {SEL_CB, 0, 0, 0};
    assert_int_equal(vdp_port_send(raw, VDP_CLIENT_PORT, VD_AGENT_CLIPBOARD, broken, sizeof(broken)), VDP_OK);
    assert_true(wait_count(&a->clip_done, 3));
    assert_int_equal(a->clip_heads[2].type, VD_AGENT_CLIPBOARD_NONE);
    raw_request_seen(a, &rh, 4);
    raw_clip(raw, &l, SEL_CB, "R4");
    assert_true(wait_count(&a->clip_done, 4));
    assert_int_equal(a->clip_heads[3].size, 2);
    test_spin(200);
    assert_int_equal(a->clip_done, 4);
    assert_int_equal(a->bad_frames, 0);
    assert_false(a->closed);
    g_free(m);
    vdp_port_free(raw);
    test_agent_free(a);
}

/* Guest data queued but not on the wire yet when the session locks goes
 * out as empty data: nothing of the locked session crosses. */
static void test_locked_drops_queued_data(void **state)
{
    TestAgent *a = one_session_agent(false);
    Fetch f;
    guest_offer_and_fetch(a, SEL_PRI, PNG, &f);
    assert_true(test_agent_send_grab(a, SEL_CB, UTF8));
    assert_true(wait_count(&F->rec.grabs[SEL_CB], 1));
    unsigned reqs = a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST];
    host_request(SEL_CB, UTF8);
    assert_true(wait_count(&a->nmsgs[VD_AGENT_CLIPBOARD_REQUEST], reqs + 1));
    unsigned before = F->rec.clipboards;
    vdp_port_pause_read(F->h.host->port, true);
    int fd = test_memfd(32 * MIB, 5, SEALS, NULL);
    assert_true(test_agent_send_clip_fd(a, SEL_PRI, PNG, 32 * MIB, fd));
    close(fd);
    test_spin(300);
    fd = test_memfd(1000, 6, SEALS, NULL);
    assert_true(test_agent_send_clip_fd(a, SEL_CB, UTF8, 1000, fd));     /* waits behind PRIMARY */
    close(fd);
    test_spin(200);
    set_locked(SESSION_PATH("2"), true);
    assert_true(test_wait(flags_locked, a, WAIT_MS));
    vdp_port_pause_read(F->h.host->port, false);
    assert_true(test_wait(fetch_finished, &f, LONG_WAIT_MS));
    assert_true(wait_count(&F->rec.clipboards, before + 2));
    /* the stream that had begun is finished (its size is on the wire) */
    assert_int_equal(F->rec.log_sel[before], SEL_PRI);
    assert_int_equal(F->rec.log_size[before], 32 * MIB);
    /* the one that waited went out empty */
    assert_int_equal(F->rec.log_sel[before + 1], SEL_CB);
    assert_int_equal(F->rec.log_type[before + 1], UTF8);
    assert_int_equal(F->rec.log_size[before + 1], 0);
    fetch_clear(&f);
    test_agent_free(a);
}

/* The agent of a locked session leaves: the clipboard stays gated (the
 * session is still locked), and says so. */
static void test_locked_agent_gone(void **state)
{
    TestAgent *a = one_session_agent(false);
    set_locked(SESSION_PATH("2"), true);
    assert_true(test_wait(flags_locked, a, WAIT_MS));
    test_agent_free(a);
    assert_true(test_wait(log_has_cb, "no active agent", WAIT_MS));
    json_object *root = status_now();
    assert_string_equal(jpath(root, "clipboard", "locked_out"), "true");
    json_object_put(root);
    assert_int_equal(log_count("clipboard: shared again"), 0);
    assert_int_equal(log_count("clipboard: not shared while"), 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
    /* the daemon and the mock inherit the private bus: never a real bus */
    if (!dh_bus_init("test-dclip-bus"))
        return 1;
    bool bus_ok = dh_bus_dbus_daemon() && vdp_test_have_dbusmock();

    /* VDD_TEST_ONLY=pattern runs only the matching tests */
    if (g_getenv("VDD_TEST_ONLY"))
        cmocka_set_test_filter(g_getenv("VDD_TEST_ONLY"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_caps, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_grab, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_serials, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_agent_grab, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_to_agent_small, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_to_agent_large, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_data_unrequested, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_agent_to_client_small, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_agent_to_client_memfd, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_bad_fds, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_oversize, setup_x_max, teardown),
        cmocka_unit_test_setup_teardown(test_request_not_owned, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_agent_gone_pending, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_agent_request_refused, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_midstream, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnected_midstream, setup_nohost, teardown),
        cmocka_unit_test_setup_teardown(test_slow_agent, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_no_selection_cap, setup_x_nosel, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_guest_msgs_during_stream, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_answers_in_order, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_flood_slow_agent, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_monitors_flood_slow_agent, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_agent_refusals_in_order, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_port_lost_while_paused, setup_x, teardown),
        cmocka_unit_test_setup_teardown(test_client_answers_aligned, setup_nohost, teardown),
    };
    const struct CMUnitTest bus_tests[] = {
        cmocka_unit_test_setup_teardown(test_locked, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_locked_allowed, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_greeter, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_switch, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_locked_drops_queued_data, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_locked_agent_gone, setup_bus, teardown),
    };
    int rc = cmocka_run_group_tests_name("daemon clipboard", tests, NULL, NULL);
    if (bus_ok)
        rc |= cmocka_run_group_tests_name("daemon clipboard, sessions", bus_tests, NULL, NULL);
    else
        printf("SKIP: the session tests need dbus-daemon and python3-dbusmock for " PYTHON "\n");
    dh_bus_fini();
    return rc;
}
