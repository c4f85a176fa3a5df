/* va-x11.c - the agent's X connection: a GSource on the display fd, event
 * fan-out, non-fatal errors with a trap, server timestamps. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <X11/Xatom.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>

#include "va-x11.h"

/* Error log lines outside a trap: at most this many, then one summary. */
#define VA_X11_ERROR_LOG_MAX 20u
/* A flood (VA_X11_MAX_QUEUED_EVENTS) is logged at most once per this. */
#define VA_X11_FLOOD_LOG_INTERVAL_US (60 * G_USEC_PER_SEC)
/* Events read while waiting for a timestamp and kept for later dispatch. */
#define VA_X11_TIME_PROPERTY "_VDAGENT_TIMESTAMP"

typedef struct Handler {
    VaX11EventFunc fn;
    void *user;
} Handler;

typedef struct X11Source {
    GSource source;
    VaX11 *x;
    gpointer tag;
} X11Source;

/* One level of error trap: errors of requests from serial on count. */
typedef struct Trap {
    unsigned long serial;
    int error;
} Trap;

struct VaX11 {
    Display *dpy;
    Window root, win;
    GSource *source;
    Handler handlers[VA_X11_MAX_HANDLERS];
    unsigned n_handlers;
    unsigned handlers_gen;        /* bumped on every add and remove */
    VaX11LostFunc lost_fn;
    void *lost_user;
    unsigned trap_depth;          /* may exceed VA_X11_MAX_TRAP_DEPTH */
    Trap traps[VA_X11_MAX_TRAP_DEPTH];
    unsigned errors_logged;
    Atom time_atom;
    gint64 flood_logged_at;       /* monotonic us, 0: never */
    unsigned long floods;         /* queue drops since the last log line */
    unsigned long flood_drops;    /* queue drops in all */
};

/* Xlib's error handlers are process-wide and get only the Display; there is
 * one agent connection per process. */
static VaX11 *current;

static int on_x_error(Display *dpy, XErrorEvent *e)
{
    VaX11 *x = current;
    if (!x || x->dpy != dpy)
        return 0;
    /* A trap counts only errors of requests made after it was pushed: an
     * earlier request's error read while the trap syncs is not its own.
     * Every open level that the request falls in records it. */
    bool trapped = false;
    unsigned levels = MIN(x->trap_depth, VA_X11_MAX_TRAP_DEPTH);
    for (unsigned i = 0; i < levels; i++) {
        Trap *t = &x->traps[i];
        if (e->serial >= t->serial) {
            trapped = true;
            if (t->error == 0)
                t->error = e->error_code;
        }
    }
    if (trapped)
        return 0;
    if (x->errors_logged < VA_X11_ERROR_LOG_MAX) {
        char text[128];
        XGetErrorText(dpy, e->error_code, text, sizeof(text));
        g_debug("X error ignored: %s (request %u.%u, resource 0x%lx)", text,
                (unsigned)e->request_code, (unsigned)e->minor_code, e->resourceid);
        if (++x->errors_logged == VA_X11_ERROR_LOG_MAX)
            g_debug("further X errors are not logged");
    }
    return 0;
}

static int on_x_io_error(Display *dpy)
{
    (void)dpy;
    VaX11 *x = current;
    g_message("the connection to the X server was lost; exiting");
    if (x && x->lost_fn) {
        VaX11LostFunc fn = x->lost_fn;
        x->lost_fn = NULL;
        fn(x->lost_user);
    }
    exit(0);
}

/* Is h still registered? */
static bool handler_registered(const VaX11 *x, const Handler *h)
{
    for (unsigned i = 0; i < x->n_handlers; i++)
        if (x->handlers[i].fn == h->fn && x->handlers[i].user == h->user)
            return true;
    return false;
}

static void drop_queue(VaX11 *x)
{
    /* Someone floods us: drop the whole queue instead of letting it grow;
     * XSync's discard hands the queue to Xlib's free list at once. */
    XSync(x->dpy, True);
    x->floods++;
    x->flood_drops++;
    gint64 now = g_get_monotonic_time();
    if (x->flood_logged_at == 0 || now - x->flood_logged_at >= VA_X11_FLOOD_LOG_INTERVAL_US) {
        g_message("more than %d X events were queued (an X client floods this agent?); "
                  "queued events dropped %lu time(s)", VA_X11_MAX_QUEUED_EVENTS, x->floods);
        x->flood_logged_at = now;
        x->floods = 0;
    }
}

/* Hands out the events queued on entry (reading the connection when none
 * are), at most VA_X11_MAX_EVENTS_PER_DISPATCH, then returns to the main
 * loop: src_prepare/src_check see the rest and dispatch again after the
 * other sources had their turn. Past VA_X11_MAX_QUEUED_EVENTS queued the
 * queue is dropped.
 *
 * Known limit: when nothing is queued, Xlib reads (XEventsQueued with
 * QueuedAfterReading, like XPending) for as long as the socket has data;
 * under a flood from a client about as fast as we are, that one read can
 * last for much of the flood and hold it all in Xlib's queue until the
 * drop. Bounding it needs reading through XCB with Xlib's queue given up
 * (XSetEventQueueOwner); a round trip instead (XSync) was measured worse.
 *
 * The handler list is copied once into a fixed array (no allocation per
 * event); a handler removed during the dispatch (by itself or another) is
 * not called any more. */
static void dispatch_pending(VaX11 *x)
{
    int queued = XEventsQueued(x->dpy, QueuedAfterReading);
    if (queued > VA_X11_MAX_QUEUED_EVENTS) {
        drop_queue(x);
        return;
    }
    unsigned n_events = queued > 0 ? MIN((unsigned)queued, VA_X11_MAX_EVENTS_PER_DISPATCH) : 0;
    Handler copy[VA_X11_MAX_HANDLERS];
    unsigned n = x->n_handlers;
    memcpy(copy, x->handlers, n * sizeof(Handler));
    unsigned gen = x->handlers_gen;
    for (unsigned k = 0; k < n_events; k++) {
        XEvent ev;
        XNextEvent(x->dpy, &ev);
        for (unsigned i = 0; i < n; i++) {
            if (x->handlers_gen != gen && !handler_registered(x, &copy[i]))
                continue;
            copy[i].fn(copy[i].user, &ev);
        }
        if (x->handlers_gen != gen) {
            /* Added ones get the next event, removed ones none. */
            n = x->n_handlers;
            memcpy(copy, x->handlers, n * sizeof(Handler));
            gen = x->handlers_gen;
        }
    }
}

static gboolean src_prepare(GSource *s, gint *timeout)
{
    X11Source *xs = (X11Source *)s;
    *timeout = -1;
    XFlush(xs->x->dpy);
    return XEventsQueued(xs->x->dpy, QueuedAlready) > 0;
}

static gboolean src_check(GSource *s)
{
    X11Source *xs = (X11Source *)s;
    if (g_source_query_unix_fd(s, xs->tag) & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        return TRUE;
    return XEventsQueued(xs->x->dpy, QueuedAlready) > 0;
}

static gboolean src_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
    (void)cb;
    (void)data;
    X11Source *xs = (X11Source *)s;
    dispatch_pending(xs->x);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs x11_source_funcs = {
    .prepare = src_prepare,
    .check = src_check,
    .dispatch = src_dispatch,
};

VaX11 *va_x11_open(GMainContext *ctx, const char *display_name, GError **error)
{
    if (current) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS, "an X connection is already open");
        return NULL;
    }
    const char *name = display_name ? display_name : g_getenv("DISPLAY");
    Display *dpy = XOpenDisplay(name);
    if (!dpy) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED,
                    "cannot open X display \"%s\"", name ? name : "");
        return NULL;
    }
    VaX11 *x = g_new0(VaX11, 1);
    x->dpy = dpy;
    x->root = DefaultRootWindow(dpy);
    current = x;
    XSetErrorHandler(on_x_error);
    XSetIOErrorHandler(on_x_io_error);

    XSetWindowAttributes attr = {.event_mask = PropertyChangeMask};
    x->win = XCreateWindow(dpy, x->root, -1, -1, 1, 1, 0, 0, InputOnly, CopyFromParent,
                           CWEventMask, &attr);
    XStoreName(dpy, x->win, "spice-vdagent");
    x->time_atom = XInternAtom(dpy, VA_X11_TIME_PROPERTY, False);

    GSource *s = g_source_new(&x11_source_funcs, sizeof(X11Source));
    X11Source *xs = (X11Source *)s;
    xs->x = x;
    xs->tag = g_source_add_unix_fd(s, ConnectionNumber(dpy), G_IO_IN | G_IO_HUP | G_IO_ERR);
    g_source_set_name(s, "X11");
    g_source_attach(s, ctx);
    x->source = s;
    XFlush(dpy);
    return x;
}

void va_x11_free(VaX11 *x)
{
    if (!x)
        return;
    g_source_destroy(x->source);
    g_source_unref(x->source);
    XDestroyWindow(x->dpy, x->win);
    XCloseDisplay(x->dpy);
    if (current == x)
        current = NULL;
    g_free(x);
}

Display *va_x11_display(VaX11 *x) { return x->dpy; }
Window va_x11_root(VaX11 *x) { return x->root; }
Window va_x11_window(VaX11 *x) { return x->win; }

void va_x11_add_handler(VaX11 *x, VaX11EventFunc fn, void *user)
{
    if (x->n_handlers >= VA_X11_MAX_HANDLERS) {
        g_warning("va_x11_add_handler: more than %u X event handlers; this one is ignored",
                   VA_X11_MAX_HANDLERS);
        return;
    }
    x->handlers[x->n_handlers++] = (Handler){fn, user};
    x->handlers_gen++;
}

void va_x11_remove_handler(VaX11 *x, VaX11EventFunc fn, void *user)
{
    for (unsigned i = 0; i < x->n_handlers; i++) {
        if (x->handlers[i].fn == fn && x->handlers[i].user == user) {
            memmove(&x->handlers[i], &x->handlers[i + 1],
                    (x->n_handlers - i - 1) * sizeof(Handler));
            x->n_handlers--;
            x->handlers_gen++;
            return;
        }
    }
}

unsigned long va_x11_flood_drops(VaX11 *x)
{
    return x->flood_drops;
}

void va_x11_set_lost_func(VaX11 *x, VaX11LostFunc fn, void *user)
{
    x->lost_fn = fn;
    x->lost_user = user;
}

void va_x11_trap_push(VaX11 *x)
{
    if (x->trap_depth < VA_X11_MAX_TRAP_DEPTH)
        x->traps[x->trap_depth] = (Trap){NextRequest(x->dpy), 0};
    else if (x->trap_depth == VA_X11_MAX_TRAP_DEPTH)
        g_debug("X error traps nested deeper than %u: the deeper ones share a level",
                VA_X11_MAX_TRAP_DEPTH);
    x->trap_depth++;
}

int va_x11_trap_pop(VaX11 *x)
{
    XSync(x->dpy, False);
    if (x->trap_depth == 0) {
        g_critical("va_x11_trap_pop without a trap");
        return 0;
    }
    x->trap_depth--;
    unsigned level = MIN(x->trap_depth, VA_X11_MAX_TRAP_DEPTH - 1);
    return x->traps[level].error;
}

Atom va_x11_atom(VaX11 *x, const char *name)
{
    return XInternAtom(x->dpy, name, False);
}

typedef struct TimeMatch {
    Window win;
    Atom atom;
} TimeMatch;

static Bool is_time_notify(Display *dpy, XEvent *ev, XPointer arg)
{
    (void)dpy;
    const TimeMatch *m = (const TimeMatch *)arg;
    return ev->type == PropertyNotify && ev->xproperty.window == m->win &&
           ev->xproperty.atom == m->atom;
}

Time va_x11_server_time(VaX11 *x, int timeout_ms)
{
    unsigned char dummy = 0;
    XChangeProperty(x->dpy, x->win, x->time_atom, XA_STRING, 8, PropModeAppend, &dummy, 0);
    XFlush(x->dpy);
    TimeMatch m = {x->win, x->time_atom};
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    for (;;) {
        XEvent ev;
        /* XCheckIfEvent leaves other events queued in order. */
        if (XCheckIfEvent(x->dpy, &ev, is_time_notify, (XPointer)&m))
            return ev.xproperty.time;
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0)
            return CurrentTime;
        struct pollfd p = {.fd = ConnectionNumber(x->dpy), .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno != EINTR)
            return CurrentTime;
        /* Read whatever arrived into Xlib's queue. */
        XEventsQueued(x->dpy, QueuedAfterReading);
    }
}
