/* test-x11.c - the agent's X connection (va-x11.c) and the display module's
 * fallback without RandR, on real Xvfb servers this program starts itself
 * (-displayfd; no root needed):
 *   - flood: another X client sends ClientMessages to the agent's window
 *     (found by its name "spice-vdagent", as any client in the session
 *     can) as fast as it can for a few seconds. The connection must
 *     survive, hand each dispatch at most VA_X11_MAX_EVENTS_PER_DISPATCH
 *     events (no unbounded loop, no stack growth per event), and the main
 *     loop must keep running its other sources (a 10 ms timer keeps
 *     firing); afterwards the connection still answers and
 *     new events reach the handlers again. (The peak memory is printed,
 *     not asserted: see VA_X11_MAX_QUEUED_EVENTS.)
 *   - handlers: a handler removing itself or another one during dispatch;
 *     handlers past VA_X11_MAX_HANDLERS are refused.
 *   - traps: an error of a request made before va_x11_trap_push is not
 *     counted by that trap; errors inside it are, nested traps included.
 *   - no RandR: on Xvfb started with "-extension RANDR" the display module
 *     still comes up and reports the root window's size as display 0 (the
 *     daemon opens the port only after a layout); monitor configs are
 *     refused with a log line, not applied, nothing crashes.
 *
 * With "--flood-agent SECONDS" it is instead the flooding client for the
 * integration tests: it finds the window named "spice-vdagent" on $DISPLAY
 * and floods it for SECONDS, then exits 0 (1 if no such window).
 * Exits 77 (skip) when Xvfb is missing.
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <spice/vd_agent.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>

#include "va-display-private.h"
#include "va-display.h"
#include "va-x11.h"
#include "vdp-xserver.h"
#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"

/* Generous: a loaded 2-core CI machine. */
#define XVFB_START_TIMEOUT_MS 30000
#define WAIT_MS 10000
/* How long the flood lasts; the reviewer's crash took seconds to tens of
 * seconds; the per-dispatch bound shows at once. */
#define FLOOD_MS 2000
/* The probe timer of the main loop during the flood. */
#define TICK_MS 10
/* Stack the handlers may see used below main's frame: a handful of frames
 * (GLib, the source, the handler); per-event growth would go far beyond. */
#define MAX_STACK_DEPTH (256 * 1024)
/* Events sent per XFlush by the flooder. */
#define FLOOD_BATCH 1000
/* Xvfb root size for the no-RandR server. */
#define NORANDR_W 1152
#define NORANDR_H 864

typedef VdpXServer XServer;

static XServer xvfb = {-1, ""};
/* What a test opened, closed by the teardown even when it fails half way. */
static VaX11 *open_x;
static VaDisplay *open_disp;
static XServer xvfb_norandr = {-1, ""};

/* ---- Xvfb ---- */

static bool start_xvfb(XServer *s, const char *geometry, bool no_randr)
{
    const char *argv[] = {"Xvfb", "-nolisten", "tcp", "-noreset", "-screen", "0", geometry,
                          no_randr ? "-extension" : NULL, "RANDR", NULL};
    if (vdp_xserver_start(s, argv, NULL, XVFB_START_TIMEOUT_MS))
        return true;
    fprintf(stderr, "Xvfb did not start\n");
    return false;
}

static void stop_xvfb(XServer *s)
{
    vdp_xserver_stop(s);
}

/* ---- the flooding client ---- */

/* The window named "spice-vdagent" below w (depth first), or None. */
static Window find_agent_window(Display *d, Window w)
{
    char *name = NULL;
    if (XFetchName(d, w, &name) && name) {
        bool match = strcmp(name, "spice-vdagent") == 0;
        XFree(name);
        if (match)
            return w;
    }
    Window r, parent, *kids = NULL;
    unsigned n = 0;
    Window found = None;
    if (XQueryTree(d, w, &r, &parent, &kids, &n)) {
        for (unsigned i = 0; i < n && found == None; i++)
            found = find_agent_window(d, kids[i]);
        if (kids)
            XFree(kids);
    }
    return found;
}

/* Floods the agent's window on display_name for ms; 0 when done, 1 when
 * the window is not there, 2 when the display cannot be opened. */
static int flood(const char *display_name, unsigned ms)
{
    Display *d = XOpenDisplay(display_name);
    if (!d)
        return 2;
    Window w = find_agent_window(d, DefaultRootWindow(d));
    if (w == None) {
        XCloseDisplay(d);
        return 1;
    }
    XEvent ev;
    memset(&ev, 0, sizeof ev);
    ev.xclient.type = ClientMessage;
    ev.xclient.window = w;
    ev.xclient.format = 32;
    ev.xclient.message_type = XInternAtom(d, "VDAGENT_TEST_FLOOD", False);
    fprintf(stderr, "# flooder: flooding 0x%lx for %u ms\n", w, ms);
    fflush(stderr);
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    unsigned long sent = 0;
    while (g_get_monotonic_time() < end) {
        for (int i = 0; i < FLOOD_BATCH; i++)
            XSendEvent(d, w, False, 0, &ev);
        XFlush(d);
        sent += FLOOD_BATCH;
    }
    XSync(d, False);
    fprintf(stderr, "# flooder: %lu ClientMessages sent to 0x%lx\n", sent, w);
    XCloseDisplay(d);
    return 0;
}

/* ---- flood test ---- */

static char *stack_base;

typedef struct FloodFx {
    unsigned long events;           /* ClientMessages seen, per handler 0 */
    unsigned long in_iteration;     /* events since the loop last went round */
    unsigned long max_in_iteration;
    size_t max_depth;
    unsigned ticks;
    gint64 last_tick, max_gap;
    bool stop;
} FloodFx;

static FloodFx ff;

/* VmHWM of this process, kB (0 if unknown). */
static unsigned long peak_kb(void)
{
    char *text = NULL;
    unsigned long kb = 0;
    if (g_file_get_contents("/proc/self/status", &text, NULL, NULL)) {
        const char *p = strstr(text, "VmHWM:");
        if (p)
            kb = strtoul(p + 6, NULL, 10);
    }
    g_free(text);
    return kb;
}

static void count_handler(void *user, XEvent *ev)
{
    if (ev->type != ClientMessage)
        return;
    char here;
    size_t depth = (size_t)(stack_base - &here);
    if (depth > ff.max_depth)
        ff.max_depth = depth;
    if (GPOINTER_TO_INT(user) == 0) {
        ff.events++;
        if (++ff.in_iteration > ff.max_in_iteration)
            ff.max_in_iteration = ff.in_iteration;
    }
}

/* A source whose prepare runs once per main loop iteration: the events
 * counted between two of its calls were handled in one iteration. */
static gboolean iter_prepare(GSource *s, gint *timeout)
{
    (void)s;
    *timeout = -1;
    ff.in_iteration = 0;
    return FALSE;
}

static gboolean iter_check(GSource *s)
{
    (void)s;
    return FALSE;
}

static gboolean iter_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
    (void)s;
    (void)cb;
    (void)data;
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs iter_funcs = {.prepare = iter_prepare, .check = iter_check,
                                  .dispatch = iter_dispatch};

static gboolean tick(gpointer p)
{
    (void)p;
    gint64 now = g_get_monotonic_time();
    if (ff.last_tick && now - ff.last_tick > ff.max_gap)
        ff.max_gap = now - ff.last_tick;
    ff.last_tick = now;
    ff.ticks++;
    return G_SOURCE_CONTINUE;
}

static gboolean set_flag(gpointer p)
{
    *(bool *)p = true;
    return G_SOURCE_REMOVE;
}

static void test_flood(void **state)
{
    (void)state;
    memset(&ff, 0, sizeof ff);
    GMainContext *ctx = g_main_context_default();
    GError *error = NULL;
    VaX11 *x = open_x = va_x11_open(ctx, xvfb.name, &error);
    if (!x)
        fail_msg("va_x11_open: %s", error->message);
    /* As many handlers as the agent has (vdagent, clipboard, RandR, ...). */
    for (int i = 0; i < 4; i++)
        va_x11_add_handler(x, count_handler, GINT_TO_POINTER(i));
    GSource *iter = g_source_new(&iter_funcs, sizeof(GSource));
    g_source_attach(iter, ctx);

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(flood(xvfb.name, FLOOD_MS));
    }
    ff.last_tick = g_get_monotonic_time();    /* a stall before the first tick counts */
    guint t = g_timeout_add(TICK_MS, tick, NULL);
    bool child_done = false;
    int status = -1;
    gint64 deadline = g_get_monotonic_time() + (FLOOD_MS + 30000) * (gint64)1000;
    while (!child_done && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(ctx, TRUE);
        child_done = waitpid(child, &status, WNOHANG) == child;
    }
    if (!child_done) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        fail_msg("the flooder did not finish");
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Drain what is still queued: the loop goes round and gets there. */
    bool drained = false;
    GSource *dt = g_timeout_source_new(2000);
    g_source_set_callback(dt, set_flag, &drained, NULL);
    g_source_attach(dt, ctx);
    while (!drained)
        g_main_context_iteration(ctx, TRUE);
    g_source_unref(dt);
    g_source_remove(t);

    unsigned long drops = va_x11_flood_drops(x);
    printf("# flood: %lu events handled, queue dropped %lu times, at most %lu per loop "
           "iteration, %u ticks, longest gap %" G_GINT64_FORMAT " ms, stack depth %zu bytes, "
           "peak memory %lu kB\n",
           ff.events, drops, ff.max_in_iteration, ff.ticks, ff.max_gap / 1000, ff.max_depth,
           peak_kb());
    /* The flood reached us: handled, or dropped once the queue was over
     * VA_X11_MAX_QUEUED_EVENTS (a slow build, a loaded machine). */
    assert_true(ff.events >= 1000 || drops > 0);
    /* Bounded dispatch: the loop went round between batches ... */
    assert_true(ff.max_in_iteration <= VA_X11_MAX_EVENTS_PER_DISPATCH);
    /* ... its other sources kept running (the longest gap is printed, not
     * asserted: one read of the connection inside Xlib can last long
     * under a flood, see dispatch_pending) ... */
    assert_true(ff.ticks >= (FLOOD_MS / TICK_MS) / 10);
    /* ... and the stack did not grow with the events. */
    assert_true(ff.max_depth < MAX_STACK_DEPTH);
    /* The connection still works (a round trip for a server timestamp) ...
     */
    assert_true(va_x11_server_time(x, WAIT_MS) != CurrentTime);
    /* ... and events after the flood reach the handlers again, all. */
    unsigned long before = ff.events;
    Display *d = XOpenDisplay(xvfb.name);
    assert_non_null(d);
    XEvent ev;
    memset(&ev, 0, sizeof ev);
    ev.xclient.type = ClientMessage;
    ev.xclient.window = va_x11_window(x);
    ev.xclient.format = 32;
    ev.xclient.message_type = XInternAtom(d, "VDAGENT_TEST_AFTER", False);
    for (int i = 0; i < 10; i++)
        XSendEvent(d, va_x11_window(x), False, 0, &ev);
    XSync(d, False);
    XCloseDisplay(d);
    gint64 end = g_get_monotonic_time() + WAIT_MS * (gint64)1000;
    while (ff.events < before + 10 && g_get_monotonic_time() < end) {
        if (!g_main_context_iteration(ctx, FALSE))
            g_usleep(1000);
    }
    assert_int_equal(ff.events, before + 10);

    g_source_destroy(iter);
    g_source_unref(iter);
    for (int i = 0; i < 4; i++)
        va_x11_remove_handler(x, count_handler, GINT_TO_POINTER(i));
}

/* ---- handlers ---- */

typedef struct HandlerFx {
    VaX11 *x;
    unsigned calls[VA_X11_MAX_HANDLERS + 2];
    int remove_other;   /* handler index the first one removes, or -1 */
} HandlerFx;

static HandlerFx hf;

static void indexed_handler(void *user, XEvent *ev);

static void indexed_handler(void *user, XEvent *ev)
{
    if (ev->type != ClientMessage)
        return;
    int i = GPOINTER_TO_INT(user);
    hf.calls[i]++;
    if (i == 0 && hf.remove_other >= 0) {
        /* Removes itself and another handler, mid-dispatch. */
        va_x11_remove_handler(hf.x, indexed_handler, GINT_TO_POINTER(0));
        va_x11_remove_handler(hf.x, indexed_handler, GINT_TO_POINTER(hf.remove_other));
        hf.remove_other = -1;
    }
}

static void send_self(VaX11 *x, unsigned n)
{
    Display *d = XOpenDisplay(xvfb.name);
    assert_non_null(d);
    XEvent ev;
    memset(&ev, 0, sizeof ev);
    ev.xclient.type = ClientMessage;
    ev.xclient.window = va_x11_window(x);
    ev.xclient.format = 32;
    ev.xclient.message_type = XInternAtom(d, "VDAGENT_TEST", False);
    for (unsigned i = 0; i < n; i++)
        XSendEvent(d, va_x11_window(x), False, 0, &ev);
    XSync(d, False);
    XCloseDisplay(d);
}

static bool pump_until_calls(unsigned idx, unsigned n)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * (gint64)1000;
    while (hf.calls[idx] < n && g_get_monotonic_time() < end) {
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    }
    return hf.calls[idx] >= n;
}

static void test_handlers(void **state)
{
    (void)state;
    memset(&hf, 0, sizeof hf);
    hf.remove_other = 2;
    GError *error = NULL;
    hf.x = open_x = va_x11_open(NULL, xvfb.name, &error);
    assert_non_null(hf.x);
    for (int i = 0; i < (int)VA_X11_MAX_HANDLERS + 2; i++)
        va_x11_add_handler(hf.x, indexed_handler, GINT_TO_POINTER(i));
    /* Two events in one batch: handler 0 removes itself and handler 2 on
     * the first; from then on neither is called, the others get both. */
    send_self(hf.x, 2);
    assert_true(pump_until_calls(1, 2));
    assert_int_equal(hf.calls[0], 1);
    assert_int_equal(hf.calls[2], 0);   /* removed before its turn */
    for (unsigned i = 3; i < VA_X11_MAX_HANDLERS; i++)
        assert_int_equal(hf.calls[i], 2);
    /* The ones past the limit were refused. */
    assert_int_equal(hf.calls[VA_X11_MAX_HANDLERS], 0);
    assert_int_equal(hf.calls[VA_X11_MAX_HANDLERS + 1], 0);
    for (int i = 0; i < (int)VA_X11_MAX_HANDLERS + 2; i++)
        va_x11_remove_handler(hf.x, indexed_handler, GINT_TO_POINTER(i));
}

/* ---- traps ---- */

static void bad_request(Display *d)
{
    /* A window id no client has: BadWindow. */
    XMapWindow(d, (Window)0x1fffff0);
}

static void test_trap_serial(void **state)
{
    (void)state;
    GError *error = NULL;
    VaX11 *x = open_x = va_x11_open(NULL, xvfb.name, &error);
    assert_non_null(x);
    Display *d = va_x11_display(x);
    XSync(d, False);

    /* An error of a request before the trap (its answer read only while
     * the trap syncs) is not the trap's. */
    bad_request(d);
    XFlush(d);
    va_x11_trap_push(x);
    XNoOp(d);
    assert_int_equal(va_x11_trap_pop(x), 0);

    /* One inside is. */
    va_x11_trap_push(x);
    bad_request(d);
    assert_int_equal(va_x11_trap_pop(x), BadWindow);

    /* Nested: the inner trap's error is inside the outer one too; a trap
     * pushed after an error does not see it. */
    va_x11_trap_push(x);
    va_x11_trap_push(x);
    bad_request(d);
    assert_int_equal(va_x11_trap_pop(x), BadWindow);
    va_x11_trap_push(x);
    XNoOp(d);
    assert_int_equal(va_x11_trap_pop(x), 0);
    assert_int_equal(va_x11_trap_pop(x), BadWindow);

    /* Afterwards a clean trap is clean. */
    va_x11_trap_push(x);
    XNoOp(d);
    assert_int_equal(va_x11_trap_pop(x), 0);
}

/* ---- the display module without RandR ---- */

typedef struct DispFx {
    GArray *layouts;
} DispFx;

static bool daemon_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds,
                         unsigned nfds)
{
    DispFx *fx = user;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    assert_int_equal(hdr->type, VDP_IPC_GUEST_LAYOUT);
    VdpIpcGuestLayout l;
    VdpError err;
    assert_int_equal(vdp_ipc_guest_layout_decode(payload, hdr->size, &l, &err), VDP_OK);
    g_array_append_val(fx->layouts, l);
    return true;
}

static void conn_closed(void *user, const char *why)
{
    (void)user;
    (void)why;
}

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

static const VdpIpcConnCallbacks daemon_cb = {.frame = daemon_frame, .closed = conn_closed};
static const VdpIpcConnCallbacks agent_cb = {.frame = agent_frame, .closed = conn_closed};

static void pump_for(unsigned ms)
{
    bool done = false;
    GSource *t = g_timeout_source_new(ms);
    g_source_set_callback(t, set_flag, &done, NULL);
    g_source_attach(t, NULL);
    while (!done)
        g_main_context_iteration(NULL, TRUE);
    g_source_unref(t);
}

static void test_display_without_randr(void **state)
{
    (void)state;
    DispFx fx = {g_array_new(FALSE, FALSE, sizeof(VdpIpcGuestLayout))};
    GError *error = NULL;
    VaX11 *x = open_x = va_x11_open(NULL, xvfb_norandr.name, &error);
    assert_non_null(x);
    VaDisplay *d = open_disp = va_display_new(x, &error);
    if (!d)
        fail_msg("va_display_new without RandR: %s", error->message);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    VdpIpcConn *agent_side = vdp_ipc_conn_new(NULL, sv[0], NULL, &agent_cb, &fx);
    VdpIpcConn *daemon_side = vdp_ipc_conn_new(NULL, sv[1], NULL, &daemon_cb, &fx);
    va_display_set_conn(d, agent_side);
    gint64 end = g_get_monotonic_time() + WAIT_MS * (gint64)1000;
    while (fx.layouts->len == 0 && g_get_monotonic_time() < end)
        pump_for(10);
    assert_int_equal(fx.layouts->len, 1);
    const VdpIpcGuestLayout *l = &g_array_index(fx.layouts, VdpIpcGuestLayout, 0);
    printf("# no RandR: reported %ux%u, %u display(s)\n", l->desktop_width, l->desktop_height,
           l->count);
    assert_int_equal(l->desktop_width, NORANDR_W);
    assert_int_equal(l->desktop_height, NORANDR_H);
    assert_int_equal(l->count, 1);
    assert_int_equal(l->displays[0].display_id, 0);
    assert_int_equal(l->displays[0].x, 0);
    assert_int_equal(l->displays[0].y, 0);
    assert_int_equal(l->displays[0].width, NORANDR_W);
    assert_int_equal(l->displays[0].height, NORANDR_H);

    /* Monitor configs cannot be applied: refused, no change, no report. */
    VdpMonitorsConfig *mc = g_new0(VdpMonitorsConfig, 1);
    mc->count = 1;
    mc->monitors[0].width = 1024;
    mc->monitors[0].height = 768;
    for (int i = 0; i < 3; i++)
        va_display_handle_monitors_config(d, mc);
    g_free(mc);
    end = g_get_monotonic_time() + WAIT_MS * (gint64)1000;
    VaDisplayStats st;
    do {
        pump_for(10);
        va_display_get_stats(d, &st);
    } while (st.refused == 0 && g_get_monotonic_time() < end);
    pump_for(500);
    va_display_get_stats(d, &st);
    /* The first at once, the rest of the burst coalesced into one. */
    assert_true(st.refused >= 1 && st.refused <= 2);
    assert_int_equal(st.applies, 0);
    assert_int_equal(fx.layouts->len, 1);

    /* A new connection gets the layout again. */
    va_display_set_conn(d, NULL);
    va_display_set_conn(d, agent_side);
    end = g_get_monotonic_time() + WAIT_MS * (gint64)1000;
    while (fx.layouts->len < 2 && g_get_monotonic_time() < end)
        pump_for(10);
    assert_int_equal(fx.layouts->len, 2);

    va_display_set_conn(d, NULL);
    va_display_free(d);
    open_disp = NULL;
    vdp_ipc_conn_free(agent_side);
    vdp_ipc_conn_free(daemon_side);
    g_array_free(fx.layouts, TRUE);
}

static int close_x(void **state)
{
    (void)state;
    if (open_disp)
        va_display_free(open_disp);
    open_disp = NULL;
    if (open_x)
        va_x11_free(open_x);
    open_x = NULL;
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    return 0;
}

int main(int argc, char **argv)
{
    char base;
    stack_base = &base;
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "--flood-agent") == 0) {
        int secs = atoi(argv[2]);
        if (secs <= 0 || secs > 600) {
            fprintf(stderr, "usage: %s --flood-agent SECONDS (1..600)\n", argv[0]);
            return 2;
        }
        return flood(NULL, (unsigned)secs * 1000u);
    }
    char *p = g_find_program_in_path("Xvfb");
    if (!p) {
        printf("SKIP: Xvfb is not installed\n");
        return 77;
    }
    g_free(p);
    char geom[32];
    snprintf(geom, sizeof geom, "%dx%dx24", NORANDR_W, NORANDR_H);
    if (!start_xvfb(&xvfb, "1024x768x24", false) || !start_xvfb(&xvfb_norandr, geom, true)) {
        stop_xvfb(&xvfb);
        stop_xvfb(&xvfb_norandr);
        return 99;
    }
    printf("# Xvfb on %s, Xvfb -extension RANDR on %s\n", xvfb.name, xvfb_norandr.name);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_trap_serial, close_x),
        cmocka_unit_test_teardown(test_handlers, close_x),
        cmocka_unit_test_teardown(test_flood, close_x),
        cmocka_unit_test_teardown(test_display_without_randr, close_x),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    stop_xvfb(&xvfb);
    stop_xvfb(&xvfb_norandr);
    return rc;
}
