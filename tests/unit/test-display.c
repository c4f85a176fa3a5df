/* test-display.c - the display module (va-display*.c) on a real Xorg with
 * the dummy driver, started by this program (as root, -displayfd). The
 * module talks to a "daemon" that is the other end of a socketpair
 * VdpIpcConn; what it does to the server is checked with XRandR queries on
 * a second connection of our own:
 *   - the first GUEST_LAYOUT on a new connection, matching the server;
 *   - 1, 2 and 4 monitors with odd sizes (1366x768, 1001x777, 2560x1440,
 *     800x600), with USE_POS (gaps, vertical stacking, negative origins)
 *     and without (left to right); exact mode sizes, CRTCs, screen size;
 *   - sparse configs (a 0x0 monitor in the middle disables its output);
 *   - screen mm from PHYSICAL_SIZE, else 96 DPI;
 *   - 10 configs in a burst: the first at once, then only the last;
 *   - a layout larger than the largest screen: refused, nothing applied;
 *     a config the backend fails on: reported once, never retried;
 *   - an external xrandr change: a new report; our own apply: exactly one;
 *   - GRAPHICS_DEVICE_INFO mapping display ids to outputs, and the sysfs
 *     DRM lookup on a fake sysfs tree; connector names that match no
 *     output: the output index;
 *   - a config that fails before anything is changed (no mode timings):
 *     the screen is not touched at all (config time, the user's own mode,
 *     rotation kept), no restore runs;
 *   - a failed config is retried once after an outside RandR change.
 * Exits 77 (skip) when not root or Xorg / the dummy driver is missing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <spice/vd_agent.h>
#include <X11/Xlib.h>
#include <X11/extensions/Xrandr.h>

#include "va-display-drm.h"
#include "va-display-private.h"
#include "va-display.h"
#include "va-x11.h"
#include "vdp-xserver.h"
#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"

/* Generous: a loaded 2-core CI machine. */
#define XORG_START_TIMEOUT_MS 30000
#define WAIT_MS 10000
/* How long "nothing more happens" is watched: 10x the module's debounce. */
#define QUIET_MS 1000

static VdpXServer xorg = {-1, ""};
static char *tmpdir;
static char display_name[32];

typedef struct Fx {
    GMainContext *ctx;
    VaX11 *x;
    VaDisplay *d;
    VdpIpcConn *agent_side, *daemon_side;
    GArray *layouts;            /* VdpIpcGuestLayout received */
    Display *chk;               /* our own connection for checks */
} Fx;

/* ---- Xorg ---- */

static const char *srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return s && *s ? s : TOP_SRCDIR;
}

static bool dummy_driver_present(void)
{
    const char *paths[] = {"/usr/lib/xorg/modules/drivers/dummy_drv.so",
                           "/usr/lib/x86_64-linux-gnu/xorg/modules/drivers/dummy_drv.so",
                           "/usr/lib64/xorg/modules/drivers/dummy_drv.so"};
    for (size_t i = 0; i < G_N_ELEMENTS(paths); i++)
        if (access(paths[i], R_OK) == 0)
            return true;
    return false;
}

static bool start_xorg(void)
{
    char *conf = g_build_filename(srcdir(), "tests", "integration", "xorg-dummy.conf", NULL);
    char *confdir = g_build_filename(tmpdir, "xorg.conf.d", NULL);
    char *log = g_build_filename(tmpdir, "xorg.log", NULL);
    char *out = g_build_filename(tmpdir, "xorg.out", NULL);
    g_mkdir(confdir, 0700);
    const char *argv[] = {"Xorg", "-noreset", "-nolisten", "tcp", "-config", conf,
                          "-configdir", confdir, "-logfile", log, NULL};
    bool ok = vdp_xserver_start(&xorg, argv, out, XORG_START_TIMEOUT_MS);
    g_free(conf);
    g_free(confdir);
    g_free(log);
    g_free(out);
    if (!ok) {
        fprintf(stderr, "Xorg did not start (see %s/xorg.out)\n", tmpdir);
        return false;
    }
    g_strlcpy(display_name, xorg.name, sizeof display_name);
    return true;
}

static void stop_xorg(void)
{
    vdp_xserver_stop(&xorg);
}

/* ---- the "daemon" end ---- */

static bool daemon_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds,
                         unsigned nfds)
{
    Fx *fx = user;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    assert_int_equal(hdr->type, VDP_IPC_GUEST_LAYOUT);
    VdpIpcGuestLayout l;
    VdpError err;
    assert_int_equal(vdp_ipc_guest_layout_decode(payload, hdr->size, &l, &err), VDP_OK);
    g_array_append_val(fx->layouts, l);
    return true;
}

static void daemon_closed(void *user, const char *why)
{
    (void)user;
    fail_msg("the agent side closed the connection: %s", why);
}

static const VdpIpcConnCallbacks daemon_cb = {.frame = daemon_frame, .closed = daemon_closed};

static bool agent_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds,
                        unsigned nfds)
{
    (void)user;
    (void)hdr;
    (void)payload;
    (void)fds;
    (void)nfds;
    fail_msg("the agent got a frame");
    return true;
}

static void agent_closed(void *user, const char *why)
{
    (void)user;
    (void)why;
}

static const VdpIpcConnCallbacks agent_cb = {.frame = agent_frame, .closed = agent_closed};

/* ---- waiting ---- */

static gboolean wake(gpointer p)
{
    *(bool *)p = true;
    return G_SOURCE_REMOVE;
}

/* Run the loop until cond(fx, arg) or timeout; returns cond's last value. */
static bool run_until(Fx *fx, bool (*cond)(Fx *, uintptr_t), uintptr_t arg, unsigned ms)
{
    bool expired = false;
    GSource *t = g_timeout_source_new(ms);
    g_source_set_callback(t, wake, &expired, NULL);
    g_source_attach(t, fx->ctx);
    bool ok;
    while (!(ok = cond(fx, arg)) && !expired)
        g_main_context_iteration(fx->ctx, TRUE);
    g_source_destroy(t);
    g_source_unref(t);
    return ok;
}

static bool never(Fx *fx, uintptr_t arg)
{
    (void)fx;
    (void)arg;
    return false;
}

static void run_for(Fx *fx, unsigned ms)
{
    run_until(fx, never, 0, ms);
}

static bool have_reports(Fx *fx, uintptr_t n)
{
    return fx->layouts->len >= n;
}

static unsigned handled(Fx *fx)
{
    VaDisplayStats s;
    va_display_get_stats(fx->d, &s);
    return s.applies + s.refused + s.skipped;
}

static bool handled_at_least(Fx *fx, uintptr_t n)
{
    return handled(fx) >= n;
}

static VaDisplayStats stats(Fx *fx)
{
    VaDisplayStats s;
    va_display_get_stats(fx->d, &s);
    return s;
}

static const VdpIpcGuestLayout *last_layout(Fx *fx)
{
    assert_true(fx->layouts->len > 0);
    return &g_array_index(fx->layouts, VdpIpcGuestLayout, fx->layouts->len - 1);
}

/* ---- the server's state, from our own connection ---- */

typedef struct Out {
    char name[64];
    bool enabled;
    int x, y;
    unsigned w, h;              /* the CRTC's */
    unsigned mode_w, mode_h;    /* the mode's own size */
    RRCrtc crtc;
} Out;

typedef struct Srv {
    unsigned n;
    Out out[64];
    unsigned screen_w, screen_h;
    int mm_w, mm_h;
    int max_w, max_h;
    unsigned own_modes, unused_own_modes;
} Srv;

static void server_state(Fx *fx, Srv *s)
{
    memset(s, 0, sizeof *s);
    Display *dpy = fx->chk;
    Window root = DefaultRootWindow(dpy);
    int minw, minh;
    assert_true(XRRGetScreenSizeRange(dpy, root, &minw, &minh, &s->max_w, &s->max_h));
    XRRScreenResources *res = XRRGetScreenResourcesCurrent(dpy, root);
    assert_non_null(res);
    for (int i = 0; i < res->noutput && i < 64; i++) {
        Out *o = &s->out[s->n++];
        XRROutputInfo *oi = XRRGetOutputInfo(dpy, res, res->outputs[i]);
        assert_non_null(oi);
        g_strlcpy(o->name, oi->name, sizeof o->name);
        o->crtc = oi->crtc;
        if (oi->crtc) {
            XRRCrtcInfo *ci = XRRGetCrtcInfo(dpy, res, oi->crtc);
            assert_non_null(ci);
            if (ci->mode != None) {
                o->enabled = true;
                o->x = ci->x;
                o->y = ci->y;
                o->w = ci->width;
                o->h = ci->height;
                for (int k = 0; k < res->nmode; k++) {
                    if (res->modes[k].id == ci->mode) {
                        o->mode_w = res->modes[k].width;
                        o->mode_h = res->modes[k].height;
                    }
                }
            }
            XRRFreeCrtcInfo(ci);
        }
        XRRFreeOutputInfo(oi);
    }
    /* Modes the module created ("-vdagent") exist only while in use. */
    for (int k = 0; k < res->nmode; k++) {
        const XRRModeInfo *mi = &res->modes[k];
        if (!g_str_has_suffix(mi->name, "-vdagent"))
            continue;
        s->own_modes++;
        bool used = false;
        for (int c = 0; c < res->ncrtc; c++) {
            XRRCrtcInfo *ci = XRRGetCrtcInfo(dpy, res, res->crtcs[c]);
            used |= ci && ci->mode == mi->id;
            if (ci)
                XRRFreeCrtcInfo(ci);
        }
        if (!used)
            s->unused_own_modes++;
    }
    XRRFreeScreenResources(res);
    Window r;
    int gx, gy;
    unsigned gb, gd;
    assert_true(XGetGeometry(dpy, root, &r, &gx, &gy, &s->screen_w, &s->screen_h, &gb, &gd));
    /* The mm size as a new client sees it (the connection setup block). */
    Display *fresh = XOpenDisplay(display_name);
    assert_non_null(fresh);
    s->mm_w = DisplayWidthMM(fresh, DefaultScreen(fresh));
    s->mm_h = DisplayHeightMM(fresh, DefaultScreen(fresh));
    XCloseDisplay(fresh);
}

typedef struct Want {
    unsigned output;            /* DUMMYn index */
    int x, y;
    unsigned w, h;
} Want;

/* Exactly these outputs on (at these places, with modes of exactly these
 * sizes, each on a CRTC of its own), every other off, and the screen. */
static void check_server(Fx *fx, const Want *want, unsigned n, unsigned sw, unsigned sh)
{
    Srv s;
    server_state(fx, &s);
    assert_true(s.n >= 4);
    for (unsigned i = 0; i < s.n; i++) {
        const Want *w = NULL;
        for (unsigned k = 0; k < n; k++)
            if (want[k].output == i)
                w = &want[k];
        const Out *o = &s.out[i];
        if (!w) {
            if (o->enabled)
                fail_msg("%s is on (%ux%u+%d+%d), should be off", o->name, o->w, o->h, o->x,
                         o->y);
            continue;
        }
        printf("#   %s: %ux%u+%d+%d (mode %ux%u)\n", o->name, o->w, o->h, o->x, o->y,
               o->mode_w, o->mode_h);
        assert_true(o->enabled);
        assert_int_equal(o->mode_w, w->w);
        assert_int_equal(o->mode_h, w->h);
        assert_int_equal(o->w, w->w);
        assert_int_equal(o->h, w->h);
        assert_int_equal(o->x, w->x);
        assert_int_equal(o->y, w->y);
        for (unsigned k = 0; k < s.n; k++)
            if (k != i && s.out[k].enabled)
                assert_true(s.out[k].crtc != o->crtc);
    }
    printf("#   screen %ux%u, %dx%d mm, %u modes of ours\n", s.screen_w, s.screen_h, s.mm_w,
           s.mm_h, s.own_modes);
    assert_int_equal(s.unused_own_modes, 0);
    assert_int_equal(s.screen_w, sw);
    assert_int_equal(s.screen_h, sh);
}

/* The last report says the same (display id = output index here). */
static void check_report(Fx *fx, const Want *want, unsigned n, unsigned sw, unsigned sh)
{
    const VdpIpcGuestLayout *l = last_layout(fx);
    assert_int_equal(l->desktop_width, sw);
    assert_int_equal(l->desktop_height, sh);
    Srv s;
    server_state(fx, &s);
    assert_int_equal(l->count, s.n);
    for (uint32_t i = 0; i < l->count; i++) {
        const VdpIpcDisplay *dd = &l->displays[i];
        assert_int_equal(dd->display_id, i);
        const Want *w = NULL;
        for (unsigned k = 0; k < n; k++)
            if (want[k].output == i)
                w = &want[k];
        if (!w) {
            assert_int_equal(dd->width, 0);
            assert_int_equal(dd->height, 0);
            continue;
        }
        assert_int_equal(dd->x, w->x);
        assert_int_equal(dd->y, w->y);
        assert_int_equal(dd->width, w->w);
        assert_int_equal(dd->height, w->h);
    }
}

/* ---- configs ---- */

typedef struct Mon {
    unsigned w, h;
    int32_t x, y;
    unsigned mm_w, mm_h;
} Mon;

static void send_config(Fx *fx, uint32_t flags, const Mon *m, unsigned n)
{
    VdpMonitorsConfig *mc = g_new0(VdpMonitorsConfig, 1);
    mc->flags = flags;
    mc->count = n;
    for (unsigned i = 0; i < n; i++) {
        mc->monitors[i].width = m[i].w;
        mc->monitors[i].height = m[i].h;
        mc->monitors[i].depth = 32;
        mc->monitors[i].x = m[i].x;
        mc->monitors[i].y = m[i].y;
        mc->monitors[i].mm_width = (uint16_t)m[i].mm_w;
        mc->monitors[i].mm_height = (uint16_t)m[i].mm_h;
    }
    va_display_handle_monitors_config(fx->d, mc);
    g_free(mc);
}

static bool layout_eq(const VdpIpcGuestLayout *a, const VdpIpcGuestLayout *b)
{
    if (a->desktop_width != b->desktop_width || a->desktop_height != b->desktop_height ||
        a->count != b->count)
        return false;
    return memcmp(a->displays, b->displays, a->count * sizeof a->displays[0]) == 0;
}

static bool report_is_current(Fx *fx, uintptr_t arg)
{
    (void)arg;
    VdpIpcGuestLayout cur;
    va_display_get_layout(fx->d, &cur);
    return fx->layouts->len > 0 && layout_eq(&cur, last_layout(fx));
}

/* Send a config and wait until the module has dealt with it and, when it
 * is expected to change something, reported the result. */
static void apply(Fx *fx, uint32_t flags, const Mon *m, unsigned n)
{
    unsigned h0 = handled(fx);
    unsigned r0 = fx->layouts->len;
    VaDisplayStats s0 = stats(fx);
    send_config(fx, flags, m, n);
    assert_true(run_until(fx, handled_at_least, h0 + 1, WAIT_MS));
    (void)r0;
    (void)s0;
    /* The module computes its layout when it is done; wait until the
     * "daemon" has received that one (no wait when it did not change). */
    assert_true(run_until(fx, report_is_current, 0, WAIT_MS));
}

static double dpi_mm(unsigned px, double dpi)
{
    return (double)px * 25.4 / dpi;
}

/* ---- fixture ---- */

static int setup(void **state)
{
    Fx *fx = g_new0(Fx, 1);
    fx->ctx = g_main_context_default();
    fx->layouts = g_array_new(FALSE, FALSE, sizeof(VdpIpcGuestLayout));
    GError *error = NULL;
    fx->x = va_x11_open(fx->ctx, display_name, &error);
    assert_non_null(fx->x);
    fx->d = va_display_new(fx->x, &error);
    if (!fx->d)
        fail_msg("va_display_new: %s", error->message);
    fx->chk = XOpenDisplay(display_name);
    assert_non_null(fx->chk);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fx->agent_side = vdp_ipc_conn_new(fx->ctx, sv[0], NULL, &agent_cb, fx);
    fx->daemon_side = vdp_ipc_conn_new(fx->ctx, sv[1], NULL, &daemon_cb, fx);
    va_display_set_conn(fx->d, fx->agent_side);
    assert_true(run_until(fx, have_reports, 1, WAIT_MS));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    Fx *fx = *state;
    va_display_set_conn(fx->d, NULL);
    va_display_free(fx->d);
    vdp_ipc_conn_free(fx->agent_side);
    vdp_ipc_conn_free(fx->daemon_side);
    va_x11_free(fx->x);
    XCloseDisplay(fx->chk);
    g_array_free(fx->layouts, TRUE);
    /* Drain sources the freed objects left (none should fire). */
    while (g_main_context_iteration(fx->ctx, FALSE)) {
    }
    g_free(fx);
    return 0;
}

/* ---- tests ---- */

static void test_initial_report(void **state)
{
    Fx *fx = *state;
    Srv s;
    server_state(fx, &s);
    const VdpIpcGuestLayout *l = last_layout(fx);
    printf("# initial: %ux%u, %u outputs, max screen %dx%d\n", l->desktop_width,
           l->desktop_height, l->count, s.max_w, s.max_h);
    assert_int_equal(fx->layouts->len, 1);
    assert_int_equal(l->desktop_width, s.screen_w);
    assert_int_equal(l->desktop_height, s.screen_h);
    assert_int_equal(l->count, s.n);
    for (unsigned i = 0; i < s.n; i++) {
        assert_int_equal(l->displays[i].display_id, i);
        assert_int_equal(l->displays[i].width, s.out[i].enabled ? s.out[i].w : 0);
        assert_int_equal(l->displays[i].x, s.out[i].enabled ? s.out[i].x : 0);
    }
    VdpIpcGuestLayout got;
    va_display_get_layout(fx->d, &got);
    assert_true(layout_eq(&got, l));
}

static void test_one_monitor(void **state)
{
    Fx *fx = *state;
    const Mon m[] = {{1366, 768, 0, 0, 0, 0}};
    apply(fx, 0, m, 1);
    const Want w[] = {{0, 0, 0, 1366, 768}};
    check_server(fx, w, 1, 1366, 768);
    check_report(fx, w, 1, 1366, 768);
    /* 96 DPI without physical sizes. */
    Srv s;
    server_state(fx, &s);
    assert_int_equal(s.mm_w, (int)(dpi_mm(1366, 96) + 0.5));
    assert_int_equal(s.mm_h, (int)(dpi_mm(768, 96) + 0.5));

    /* The same again: nothing to do, no new report. */
    unsigned r0 = fx->layouts->len;
    unsigned a0 = stats(fx).applies;
    apply(fx, 0, m, 1);
    run_for(fx, QUIET_MS);
    assert_int_equal(stats(fx).applies, a0);
    assert_int_equal(fx->layouts->len, r0);
}

static void test_two_left_to_right(void **state)
{
    Fx *fx = *state;
    /* Without USE_POS the positions are ignored: left to right. */
    const Mon m[] = {{1366, 768, 500, 500, 0, 0}, {1001, 777, 0, 0, 0, 0}};
    apply(fx, 0, m, 2);
    const Want w[] = {{0, 0, 0, 1366, 768}, {1, 1366, 0, 1001, 777}};
    check_server(fx, w, 2, 2367, 777);
    check_report(fx, w, 2, 2367, 777);
}

static void test_four_use_pos(void **state)
{
    Fx *fx = *state;
    /* A gap, vertical stacking, overlap-free odd sizes. */
    const Mon m[] = {{2560, 1440, 0, 0, 0, 0},
                     {800, 600, 2600, 0, 0, 0},
                     {1366, 768, 0, 1440, 0, 0},
                     {1001, 777, 1400, 1500, 0, 0}};
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS, m, 4);
    const Want w[] = {{0, 0, 0, 2560, 1440},
                      {1, 2600, 0, 800, 600},
                      {2, 0, 1440, 1366, 768},
                      {3, 1400, 1500, 1001, 777}};
    check_server(fx, w, 4, 3400, 2277);
    check_report(fx, w, 4, 3400, 2277);

    /* Shrink back to two, in another arrangement: the screen shrinks after
     * the outputs outside it are off. */
    const Mon m2[] = {{800, 600, 0, 768, 0, 0}, {1366, 768, 0, 0, 0, 0}};
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS, m2, 2);
    const Want w2[] = {{0, 0, 768, 800, 600}, {1, 0, 0, 1366, 768}};
    check_server(fx, w2, 2, 1366, 1368);
    check_report(fx, w2, 2, 1366, 1368);
}

static void test_negative_origin(void **state)
{
    Fx *fx = *state;
    /* A client may put its primary monitor right of another: the layout is
     * moved so that it starts at 0,0. */
    const Mon m[] = {{1024, 768, 0, 0, 0, 0}, {1366, 768, -1366, -100, 0, 0}};
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS, m, 2);
    const Want w[] = {{0, 1366, 100, 1024, 768}, {1, 0, 0, 1366, 768}};
    check_server(fx, w, 2, 2390, 868);
}

static void test_sparse(void **state)
{
    Fx *fx = *state;
    const Mon m3[] = {{800, 600, 0, 0, 0, 0}, {1001, 777, 0, 0, 0, 0}, {1366, 768, 0, 0, 0, 0}};
    apply(fx, 0, m3, 3);
    const Want w3[] = {{0, 0, 0, 800, 600}, {1, 800, 0, 1001, 777}, {2, 1801, 0, 1366, 768}};
    check_server(fx, w3, 3, 3167, 777);

    /* The middle one 0x0: its output goes off, the rest close up. */
    const Mon m[] = {{800, 600, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {1366, 768, 0, 0, 0, 0}};
    apply(fx, 0, m, 3);
    const Want w[] = {{0, 0, 0, 800, 600}, {2, 800, 0, 1366, 768}};
    check_server(fx, w, 2, 2166, 768);
    check_report(fx, w, 2, 2166, 768);

    /* With USE_POS the others stay where the client put them. */
    const Mon mp[] = {{0, 0, 0, 0, 0, 0}, {1001, 777, 0, 0, 0, 0}, {800, 600, 1001, 0, 0, 0}};
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS, mp, 3);
    const Want wp[] = {{1, 0, 0, 1001, 777}, {2, 1001, 0, 800, 600}};
    check_server(fx, wp, 2, 1801, 777);

    /* All disabled: refused, nothing changes. */
    unsigned a0 = stats(fx).applies, f0 = stats(fx).refused;
    const Mon none[] = {{0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}};
    apply(fx, 0, none, 2);
    assert_int_equal(stats(fx).applies, a0);
    assert_int_equal(stats(fx).refused, f0 + 1);
    check_server(fx, wp, 2, 1801, 777);
}

static void test_physical_size(void **state)
{
    Fx *fx = *state;
    /* 1920x1080 on a 527x296 mm monitor (about 92.5 DPI). */
    const Mon m[] = {{1920, 1080, 0, 0, 527, 296}, {1366, 768, 1920, 0, 300, 170}};
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS | VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE,
          m, 2);
    const Want w[] = {{0, 0, 0, 1920, 1080}, {1, 1920, 0, 1366, 768}};
    check_server(fx, w, 2, 3286, 1080);
    Srv s;
    server_state(fx, &s);
    /* The first monitor's DPI over the whole screen. */
    assert_int_equal(s.mm_w, (int)(3286.0 * 527 / 1920 + 0.5));
    assert_int_equal(s.mm_h, 296);

    /* The same sizes without physical sizes: 96 DPI again. */
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS, m, 2);
    server_state(fx, &s);
    assert_int_equal(s.mm_w, (int)(dpi_mm(3286, 96) + 0.5));
    assert_int_equal(s.mm_h, (int)(dpi_mm(1080, 96) + 0.5));

    /* Nonsense physical sizes (1 mm): 96 DPI. */
    const Mon bad[] = {{1920, 1080, 0, 0, 1, 1}};
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE, bad, 1);
    server_state(fx, &s);
    assert_int_equal(s.mm_w, (int)(dpi_mm(1920, 96) + 0.5));
}

static void test_coalescing(void **state)
{
    Fx *fx = *state;
    VaDisplayStats s0 = stats(fx);
    for (unsigned i = 0; i < 10; i++) {
        const Mon m[] = {{1000 + 10 * i, 700 + i, 0, 0, 0, 0}};
        send_config(fx, 0, m, 1);
    }
    assert_true(run_until(fx, handled_at_least, s0.applies + s0.refused + s0.skipped + 1,
                          WAIT_MS));
    run_for(fx, QUIET_MS);
    VaDisplayStats s1 = stats(fx);
    printf("# 10 configs -> %u applied\n", s1.applies - s0.applies);
    /* The first at once (no apply just before), the rest coalesced into
     * the last one. */
    assert_true(s1.applies >= s0.applies + 1 && s1.applies <= s0.applies + 2);
    assert_int_equal(s1.refused + s1.skipped, s0.refused + s0.skipped);
    const Want w[] = {{0, 0, 0, 1090, 709}};
    check_server(fx, w, 1, 1090, 709);
    check_report(fx, w, 1, 1090, 709);
}

static void test_impossible(void **state)
{
    Fx *fx = *state;
    const Mon ok[] = {{1024, 768, 0, 0, 0, 0}};
    apply(fx, 0, ok, 1);
    const Want w[] = {{0, 0, 0, 1024, 768}};
    check_server(fx, w, 1, 1024, 768);

    Srv s;
    server_state(fx, &s);
    unsigned r0 = fx->layouts->len;
    VaDisplayStats s0 = stats(fx);
    /* Wider than the largest screen, in one monitor and in a layout. */
    const Mon big[] = {{(unsigned)s.max_w + 8, 768, 0, 0, 0, 0}};
    apply(fx, 0, big, 1);
    const Mon wide[] = {{(unsigned)s.max_w - 100, 768, 0, 0, 0, 0}, {800, 600, 0, 0, 0, 0}};
    apply(fx, 0, wide, 2);
    apply(fx, 0, wide, 2);
    run_for(fx, QUIET_MS);
    VaDisplayStats s1 = stats(fx);
    assert_int_equal(s1.refused, s0.refused + 3);
    assert_int_equal(s1.applies, s0.applies);
    assert_int_equal(fx->layouts->len, r0);
    check_server(fx, w, 1, 1024, 768);

    /* Positions far beyond any screen (and beyond int32 arithmetic once
     * moved to the origin). */
    const Mon far[] = {{800, 600, INT32_MIN, 0, 0, 0}, {800, 600, INT32_MAX, 0, 0, 0}};
    apply(fx, VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS, far, 2);
    assert_int_equal(stats(fx).refused, s0.refused + 4);
    assert_int_equal(stats(fx).applies, s0.applies);
    s1 = stats(fx);
    check_server(fx, w, 1, 1024, 768);

    /* A size the backend cannot make a mode for (too small for any pixel
     * clock): it fails once, the old layout stays, and the same config
     * again is not retried. */
    const Mon tiny[] = {{8, 8, 0, 0, 0, 0}};
    apply(fx, 0, tiny, 1);
    VaDisplayStats s2 = stats(fx);
    assert_int_equal(s2.applies, s1.applies + 1);
    assert_int_equal(s2.apply_failures, s1.apply_failures + 1);
    check_server(fx, w, 1, 1024, 768);
    for (int i = 0; i < 3; i++)
        apply(fx, 0, tiny, 1);
    VaDisplayStats s3 = stats(fx);
    assert_int_equal(s3.applies, s2.applies);
    assert_int_equal(s3.skipped, s2.skipped + 3);
    /* A good config still works afterwards. */
    const Mon ok2[] = {{1366, 768, 0, 0, 0, 0}};
    apply(fx, 0, ok2, 1);
    const Want w2[] = {{0, 0, 0, 1366, 768}};
    check_server(fx, w2, 1, 1366, 768);
}

static bool report_with_width(Fx *fx, uintptr_t w)
{
    return fx->layouts->len > 0 && last_layout(fx)->desktop_width == w;
}

static void run_xrandr(const char *args)
{
    char *cmd = g_strdup_printf("xrandr -display %s %s", display_name, args);
    int status = -1;
    GError *error = NULL;
    if (!g_spawn_command_line_sync(cmd, NULL, NULL, &status, &error))
        fail_msg("%s: %s", cmd, error->message);
    assert_true(g_spawn_check_wait_status(status, NULL));
    g_free(cmd);
}

static void test_external_change(void **state)
{
    Fx *fx = *state;
    const Mon m[] = {{1366, 768, 0, 0, 0, 0}};
    apply(fx, 0, m, 1);
    /* Our own apply: exactly one report, none for the RandR events it
     * caused. */
    unsigned r0 = fx->layouts->len;
    const Mon m2[] = {{1001, 777, 0, 0, 0, 0}, {800, 600, 0, 0, 0, 0}};
    apply(fx, 0, m2, 2);
    run_for(fx, QUIET_MS);
    assert_int_equal(fx->layouts->len, r0 + 1);
    const Want w2[] = {{0, 0, 0, 1001, 777}, {1, 1001, 0, 800, 600}};
    check_report(fx, w2, 2, 1801, 777);

    /* Someone else grows the screen: one new report with the new size. */
    run_xrandr("--fb 2000x900");
    assert_true(run_until(fx, report_with_width, 2000, WAIT_MS));
    assert_int_equal(last_layout(fx)->desktop_height, 900);
    run_for(fx, QUIET_MS);
    assert_int_equal(fx->layouts->len, r0 + 2);
    /* ... and switches an output off. */
    run_xrandr("--output DUMMY1 --off");
    assert_true(run_until(fx, have_reports, r0 + 3, WAIT_MS));
    const VdpIpcGuestLayout *l = last_layout(fx);
    assert_int_equal(l->displays[1].width, 0);
    assert_int_equal(l->displays[0].width, 1001);
}

static void test_device_info_index(void **state)
{
    Fx *fx = *state;
    /* No DRM card at that address (empty sysfs): the device's display
     * number is the output index, as 0.22.1 does. Display id 0 -> DUMMY2,
     * display id 1 (channel 1) -> DUMMY3. */
    va_display_set_sysfs_root(fx->d, tmpdir);
    VdpGraphicsDeviceInfo *gi = g_new0(VdpGraphicsDeviceInfo, 1);
    gi->count = 2;
    gi->info[0] = (VdpDeviceDisplayInfo){0, 0, 2, "pci/0000/02.0", 14};
    gi->info[1] = (VdpDeviceDisplayInfo){1, 0, 3, "pci/0000/03.0", 14};
    unsigned r0 = fx->layouts->len;
    va_display_handle_device_info(fx->d, gi);
    g_free(gi);
    /* The report now has exactly the mapped ids. */
    assert_true(run_until(fx, have_reports, r0 + 1, WAIT_MS));
    assert_int_equal(last_layout(fx)->count, 2);

    const Mon m[] = {{1366, 768, 0, 0, 0, 0}, {1001, 777, 0, 0, 0, 0}};
    apply(fx, 0, m, 2);
    const Want w[] = {{2, 0, 0, 1366, 768}, {3, 1366, 0, 1001, 777}};
    check_server(fx, w, 2, 2367, 777);
    const VdpIpcGuestLayout *l = last_layout(fx);
    assert_int_equal(l->count, 2);
    assert_int_equal(l->displays[0].display_id, 0);
    assert_int_equal(l->displays[0].width, 1366);
    assert_int_equal(l->displays[1].display_id, 1);
    assert_int_equal(l->displays[1].x, 1366);
    assert_int_equal(l->displays[1].width, 1001);

    /* A display id with no output: that monitor is skipped. */
    const Mon m3[] = {{1024, 768, 0, 0, 0, 0}, {800, 600, 0, 0, 0, 0}, {640, 480, 0, 0, 0, 0}};
    apply(fx, 0, m3, 3);
    const Want w3[] = {{2, 0, 0, 1024, 768}, {3, 1024, 0, 800, 600}};
    check_server(fx, w3, 2, 1824, 768);
}

/* ---- the sysfs DRM lookup, on a fake tree ---- */

static void mkdirs(const char *root, const char *rel)
{
    char *p = g_build_filename(root, rel, NULL);
    assert_int_equal(g_mkdir_with_parents(p, 0755), 0);
    g_free(p);
}

static void symlink_rel(const char *root, const char *target, const char *rel)
{
    char *p = g_build_filename(root, rel, NULL);
    assert_int_equal(symlink(target, p), 0);
    g_free(p);
}

static void write_file(const char *root, const char *rel, const char *text)
{
    char *p = g_build_filename(root, rel, NULL);
    assert_true(g_file_set_contents(p, text, -1, NULL));
    g_free(p);
}

/* A fake sysfs tree (made once, under tmpdir): card0, a QXL at
 * 0000:00:02.0 with Virtual-1..4 and Virtual-10; card1 behind a bridge. */
static char *fake_sysfs(void)
{
    char *root = g_build_filename(tmpdir, "sysfs", NULL);
    if (g_file_test(root, G_FILE_TEST_IS_DIR))
        return root;
    /* card0: a QXL at 0000:00:02.0 with Virtual-1..4 (no connector_id:
     * natural order); card1: behind a bridge at 1c.0 -> 00.0 with
     * connector ids that order DP before HDMI-A. */
    mkdirs(root, "class/drm");
    mkdirs(root, "devices/pci0000:00/0000:00:02.0/drm/card0");
    for (int i = 1; i <= 4; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "devices/pci0000:00/0000:00:02.0/drm/card0/card0-Virtual-%d", i);
        mkdirs(root, rel);
        char link[64];
        snprintf(link, sizeof link, "class/drm/card0-Virtual-%d", i);
        char target[160];
        snprintf(target, sizeof target, "../../%s", rel);
        symlink_rel(root, target, link);
    }
    /* A name that sorts after Virtual-1 only in natural order. */
    mkdirs(root, "devices/pci0000:00/0000:00:02.0/drm/card0/card0-Virtual-10");
    symlink_rel(root, "../../devices/pci0000:00/0000:00:02.0/drm/card0/card0-Virtual-10",
                "class/drm/card0-Virtual-10");
    symlink_rel(root, "../../devices/pci0000:00/0000:00:02.0/drm/card0", "class/drm/card0");

    const char *c1 = "devices/pci0000:00/0000:00:1c.0/0000:01:00.0/drm/card1";
    mkdirs(root, c1);
    const char *conns[][2] = {{"HDMI-A-1", "77"}, {"DP-1", "70"}, {"DP-2", "74"}};
    for (size_t i = 0; i < G_N_ELEMENTS(conns); i++) {
        char rel[256], link[64], target[300], idf[300];
        snprintf(rel, sizeof rel, "%s/card1-%s", c1, conns[i][0]);
        mkdirs(root, rel);
        snprintf(idf, sizeof idf, "%s/connector_id", rel);
        write_file(root, idf, conns[i][1]);
        snprintf(link, sizeof link, "class/drm/card1-%s", conns[i][0]);
        snprintf(target, sizeof target, "../../%s", rel);
        symlink_rel(root, target, link);
    }
    char t1[300];
    snprintf(t1, sizeof t1, "../../%s", c1);
    symlink_rel(root, t1, "class/drm/card1");

    return root;
}

static void test_drm_lookup(void **state)
{
    (void)state;
    VaPciAddress a;
    assert_true(va_drm_parse_address("pci/0000/02.0", &a));
    assert_int_equal(a.domain, 0);
    assert_int_equal(a.nhops, 1);
    assert_int_equal(a.hops[0].slot, 2);
    assert_true(va_drm_parse_address("pci/0001/1c.4/00.0", &a));
    assert_int_equal(a.domain, 1);
    assert_int_equal(a.nhops, 2);
    assert_int_equal(a.hops[0].slot, 0x1c);
    assert_int_equal(a.hops[0].fn, 4);
    const char *bad[] = {"", "pci", "pci/", "pci/0000", "pci/0000/", "pci/0000/02",
                         "pci/0000/02.", "pci/0000/02.8", "pci/0000/20.0", "pci/00000/02.0",
                         "usb/0000/02.0", "pci/0000/02.0/", "pci/0000/02.0x",
                         "pci/0000/1.0/1.0/1.0/1.0/1.0/1.0/1.0/1.0/1.0"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        if (va_drm_parse_address(bad[i], &a))
            fail_msg("accepted \"%s\"", bad[i]);
    }

    char *root = fake_sysfs();
    char out[VA_DISP_NAME_MAX];
    assert_true(va_drm_parse_address("pci/0000/02.0", &a));
    assert_true(va_drm_find_connector(root, &a, 0, out, sizeof out));
    assert_string_equal(out, "Virtual-1");
    assert_true(va_drm_find_connector(root, &a, 3, out, sizeof out));
    assert_string_equal(out, "Virtual-4");
    assert_true(va_drm_find_connector(root, &a, 4, out, sizeof out));
    assert_string_equal(out, "Virtual-10");
    assert_false(va_drm_find_connector(root, &a, 5, out, sizeof out));

    assert_true(va_drm_parse_address("pci/0000/1c.0/00.0", &a));
    assert_true(va_drm_find_connector(root, &a, 0, out, sizeof out));
    assert_string_equal(out, "DP-1");
    assert_true(va_drm_find_connector(root, &a, 1, out, sizeof out));
    assert_string_equal(out, "DP-2");
    assert_true(va_drm_find_connector(root, &a, 2, out, sizeof out));
    assert_string_equal(out, "HDMI-A-1");
    /* The bridge alone, another slot, another domain: no card. */
    assert_true(va_drm_parse_address("pci/0000/1c.0", &a));
    assert_false(va_drm_find_connector(root, &a, 0, out, sizeof out));
    assert_true(va_drm_parse_address("pci/0000/03.0", &a));
    assert_false(va_drm_find_connector(root, &a, 0, out, sizeof out));
    assert_true(va_drm_parse_address("pci/0001/02.0", &a));
    assert_false(va_drm_find_connector(root, &a, 0, out, sizeof out));
    assert_false(va_drm_find_connector("/nonexistent", &a, 0, out, sizeof out));

    /* Kernel connector names -> RandR names. */
    char names[VA_DRM_MAX_NAMES][VA_DISP_NAME_MAX];
    assert_int_equal(va_drm_randr_names("HDMI-A-1", names, VA_DRM_MAX_NAMES), 2);
    assert_string_equal(names[0], "HDMI-1");
    assert_string_equal(names[1], "HDMI-A-1");
    assert_int_equal(va_drm_randr_names("Virtual-3", names, VA_DRM_MAX_NAMES), 1);
    assert_string_equal(names[0], "Virtual-3");
    assert_int_equal(va_drm_randr_names("DP-2", names, VA_DRM_MAX_NAMES), 2);
    assert_string_equal(names[0], "DP-2");
    assert_string_equal(names[1], "DisplayPort-2");
    assert_int_equal(va_drm_randr_names("DVI-I-1", names, VA_DRM_MAX_NAMES), 2);
    assert_string_equal(names[0], "DVI-I-1");
    assert_string_equal(names[1], "DVI-1");
    assert_int_equal(va_drm_randr_names("Weird-7", names, VA_DRM_MAX_NAMES), 1);
    assert_string_equal(names[0], "Weird-7");
    assert_int_equal(va_drm_randr_names("nodash", names, VA_DRM_MAX_NAMES), 0);
    assert_int_equal(va_drm_randr_names("HDMI-A-", names, VA_DRM_MAX_NAMES), 0);
    assert_int_equal(va_drm_randr_names("-1", names, VA_DRM_MAX_NAMES), 0);
    assert_int_equal(va_drm_randr_names("DP-1x", names, VA_DRM_MAX_NAMES), 0);

    /* Candidate names -> an output of the state. */
    VaDispState *st = g_new0(VaDispState, 1);
    const char *outs[] = {"VGA-1", "HDMI-1", "DP-2", "DisplayPort-3"};
    for (size_t i = 0; i < G_N_ELEMENTS(outs); i++)
        g_strlcpy(st->outputs[st->n_outputs++].name, outs[i], VA_DISP_NAME_MAX);
    unsigned nn = va_drm_randr_names("HDMI-A-1", names, VA_DRM_MAX_NAMES);
    assert_int_equal(va_drm_pick_output(st, names, nn), 1);
    nn = va_drm_randr_names("DP-2", names, VA_DRM_MAX_NAMES);
    assert_int_equal(va_drm_pick_output(st, names, nn), 2);
    nn = va_drm_randr_names("DP-3", names, VA_DRM_MAX_NAMES);
    assert_int_equal(va_drm_pick_output(st, names, nn), 3);
    nn = va_drm_randr_names("DP-4", names, VA_DRM_MAX_NAMES);
    assert_int_equal(va_drm_pick_output(st, names, nn), -1);
    /* The old QXL driver's Virtual-0..: the kernel's Virtual-1 is Virtual-0. */
    st->n_outputs = 0;
    const char *qxl[] = {"Virtual-0", "Virtual-1", "Virtual-2"};
    for (size_t i = 0; i < G_N_ELEMENTS(qxl); i++)
        g_strlcpy(st->outputs[st->n_outputs++].name, qxl[i], VA_DISP_NAME_MAX);
    nn = va_drm_randr_names("Virtual-1", names, VA_DRM_MAX_NAMES);
    assert_int_equal(va_drm_pick_output(st, names, nn), 0);
    nn = va_drm_randr_names("Virtual-3", names, VA_DRM_MAX_NAMES);
    assert_int_equal(va_drm_pick_output(st, names, nn), 2);
    /* Numbered from 1 (modesetting): names as they are. */
    g_strlcpy(st->outputs[0].name, "Virtual-3", VA_DISP_NAME_MAX);
    nn = va_drm_randr_names("Virtual-1", names, VA_DRM_MAX_NAMES);
    assert_int_equal(va_drm_pick_output(st, names, nn), 1);
    g_free(st);
    g_free(root);
}

/* ---- a failed apply that changed nothing, restore, failed memory ---- */

static bool run_xrandr_ok(const char *args)
{
    char *cmd = g_strdup_printf("xrandr -display %s %s", display_name, args);
    int status = -1;
    bool ok = g_spawn_command_line_sync(cmd, NULL, NULL, &status, NULL) &&
              g_spawn_check_wait_status(status, NULL);
    g_free(cmd);
    return ok;
}

typedef struct CrtcSnap {
    Time timestamp;             /* the screen's last configuration change */
    RRMode mode;
    Rotation rotation;
    int x, y;
} CrtcSnap;

/* DUMMY0's CRTC and the screen's config time, from our own connection. */
static void snap_dummy0(Fx *fx, CrtcSnap *sn)
{
    memset(sn, 0, sizeof *sn);
    Display *dpy = fx->chk;
    XRRScreenResources *res = XRRGetScreenResourcesCurrent(dpy, DefaultRootWindow(dpy));
    assert_non_null(res);
    sn->timestamp = res->timestamp;
    XRROutputInfo *oi = XRRGetOutputInfo(dpy, res, res->outputs[0]);
    assert_non_null(oi);
    assert_string_equal(oi->name, "DUMMY0");
    assert_true(oi->crtc != None);
    XRRCrtcInfo *ci = XRRGetCrtcInfo(dpy, res, oi->crtc);
    assert_non_null(ci);
    sn->mode = ci->mode;
    sn->rotation = ci->rotation;
    sn->x = ci->x;
    sn->y = ci->y;
    XRRFreeCrtcInfo(ci);
    XRRFreeOutputInfo(oi);
    XRRFreeScreenResources(res);
}

static bool state_is_current(Fx *fx, uintptr_t arg)
{
    (void)arg;
    Srv s;
    server_state(fx, &s);
    VdpIpcGuestLayout cur;
    va_display_get_layout(fx->d, &cur);
    return fx->layouts->len > 0 && layout_eq(&cur, last_layout(fx)) &&
           cur.desktop_width == s.screen_w && cur.desktop_height == s.screen_h;
}

static void test_failure_before_change(void **state)
{
    Fx *fx = *state;
    const Mon m[] = {{1024, 768, 0, 0, 0, 0}};
    apply(fx, 0, m, 1);
    /* The user's own 1024x768 mode (other timings than any driver mode of
     * that size), turned upside down if the driver can: things a restore
     * rebuilt from sizes alone would lose. */
    assert_true(run_xrandr_ok("--newmode 1024x768-user 81.80 1024 1080 1192 1360 768 769 772 "
                              "802 -hsync +vsync"));
    assert_true(run_xrandr_ok("--addmode DUMMY0 1024x768-user"));
    assert_true(run_xrandr_ok("--output DUMMY0 --mode 1024x768-user"));
    bool rotated = run_xrandr_ok("--output DUMMY0 --rotate inverted");
    printf("# rotation %s by the dummy driver\n", rotated ? "supported" : "not supported");
    run_for(fx, QUIET_MS);
    assert_true(run_until(fx, state_is_current, 0, WAIT_MS));
    CrtcSnap before, after;
    snap_dummy0(fx, &before);

    /* 8x8 has no mode timings: the apply fails while choosing modes,
     * before any request that changes the screen. */
    VaDisplayStats s0 = stats(fx);
    unsigned r0 = fx->layouts->len;
    const Mon tiny[] = {{8, 8, 0, 0, 0, 0}};
    apply(fx, 0, tiny, 1);
    run_for(fx, QUIET_MS);
    assert_int_equal(stats(fx).apply_failures, s0.apply_failures + 1);
    snap_dummy0(fx, &after);
    printf("# before: mode 0x%lx rotation %u time %lu; after: mode 0x%lx rotation %u time %lu\n",
           before.mode, before.rotation, before.timestamp, after.mode, after.rotation,
           after.timestamp);
    /* Nothing was touched: not even set again to the same. */
    assert_int_equal(after.timestamp, before.timestamp);
    assert_int_equal(after.mode, before.mode);
    assert_int_equal(after.rotation, before.rotation);
    assert_int_equal(fx->layouts->len, r0);

    /* Leave the server as the next tests expect it. */
    run_xrandr_ok("--output DUMMY0 --rotate normal");
}

static void test_failed_memory_expires(void **state)
{
    Fx *fx = *state;
    const Mon m[] = {{1024, 768, 0, 0, 0, 0}};
    apply(fx, 0, m, 1);
    const Mon tiny[] = {{8, 8, 0, 0, 0, 0}};
    VaDisplayStats s0 = stats(fx);
    apply(fx, 0, tiny, 1);
    apply(fx, 0, tiny, 1);
    VaDisplayStats s1 = stats(fx);
    assert_int_equal(s1.applies, s0.applies + 1);
    assert_int_equal(s1.skipped, s0.skipped + 1);

    /* Someone else changes the screen: the outputs may be able to do
     * now what failed before, so the same config is tried again. */
    unsigned r0 = fx->layouts->len;
    run_xrandr("--fb 1500x900");
    assert_true(run_until(fx, have_reports, r0 + 1, WAIT_MS));
    apply(fx, 0, tiny, 1);
    VaDisplayStats s2 = stats(fx);
    assert_int_equal(s2.applies, s1.applies + 1);
    assert_int_equal(s2.apply_failures, s1.apply_failures + 1);
    /* ... once: without another outside change it is not retried. */
    apply(fx, 0, tiny, 1);
    assert_int_equal(stats(fx).applies, s2.applies);
    assert_int_equal(stats(fx).skipped, s2.skipped + 1);
    /* A good config in between forgets the failure too. */
    const Mon ok[] = {{1001, 777, 0, 0, 0, 0}};
    apply(fx, 0, ok, 1);
    run_for(fx, QUIET_MS);
    apply(fx, 0, tiny, 1);
    VaDisplayStats s3 = stats(fx);
    assert_int_equal(s3.applies, s2.applies + 2);   /* ok, then tiny once more */
}

static void test_device_info_name_fallback(void **state)
{
    Fx *fx = *state;
    /* The card has DRM connectors (Virtual-N), but the X driver names its
     * outputs otherwise (DUMMYn): the names match nothing, so the
     * device's display number is the output index. Display id 0 is
     * connector #2 (Virtual-3) -> DUMMY2, id 1 connector #0 -> DUMMY0. */
    char *root = fake_sysfs();
    va_display_set_sysfs_root(fx->d, root);
    g_free(root);
    VdpGraphicsDeviceInfo *gi = g_new0(VdpGraphicsDeviceInfo, 1);
    gi->count = 2;
    gi->info[0] = (VdpDeviceDisplayInfo){0, 0, 2, "pci/0000/02.0", 14};
    gi->info[1] = (VdpDeviceDisplayInfo){1, 0, 0, "pci/0000/02.0", 14};
    unsigned r0 = fx->layouts->len;
    va_display_handle_device_info(fx->d, gi);
    g_free(gi);
    assert_true(run_until(fx, have_reports, r0 + 1, WAIT_MS));

    const Mon m[] = {{1366, 768, 0, 0, 0, 0}, {1001, 777, 0, 0, 0, 0}};
    apply(fx, 0, m, 2);
    const Want w[] = {{2, 0, 0, 1366, 768}, {0, 1366, 0, 1001, 777}};
    check_server(fx, w, 2, 2367, 777);
    const VdpIpcGuestLayout *l = last_layout(fx);
    assert_int_equal(l->count, 2);
    assert_int_equal(l->displays[0].display_id, 0);
    assert_int_equal(l->displays[0].width, 1366);
    assert_int_equal(l->displays[1].display_id, 1);
    assert_int_equal(l->displays[1].width, 1001);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("SKIP: Xorg with the dummy driver needs root here\n");
        return 77;
    }
    const char *progs[] = {"Xorg", "xrandr"};
    for (size_t i = 0; i < G_N_ELEMENTS(progs); i++) {
        char *p = g_find_program_in_path(progs[i]);
        if (!p) {
            printf("SKIP: %s is not installed\n", progs[i]);
            return 77;
        }
        g_free(p);
    }
    if (!dummy_driver_present()) {
        printf("SKIP: the Xorg dummy driver is not installed\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    tmpdir = g_dir_make_tmp("test-display-XXXXXX", NULL);
    assert_non_null(tmpdir);
    if (!start_xorg()) {
        stop_xorg();
        return 99;
    }
    printf("# Xorg dummy on %s\n", display_name);
    setenv("DISPLAY", display_name, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drm_lookup),
        cmocka_unit_test_setup_teardown(test_initial_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_monitor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_left_to_right, setup, teardown),
        cmocka_unit_test_setup_teardown(test_four_use_pos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_physical_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_impossible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_info_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_info_name_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_before_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_memory_expires, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    stop_xorg();
    if (getenv("TEST_DISPLAY_KEEP_TMP") == NULL) {
        char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
        g_free(cmd);
    }
    g_free(tmpdir);
    return rc;
}
