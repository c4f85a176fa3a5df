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

struct VaX11 {
    Display *dpy;
    Window root, win;
    GSource *source;
    GArray *handlers;             /* of Handler */
    VaX11LostFunc lost_fn;
    void *lost_user;
    unsigned trap_depth;
    int trap_error;
    unsigned errors_logged;
    Atom time_atom;
};

/* Xlib's error handlers are process-wide and get only the Display; there is
 * one agent connection per process. */
static VaX11 *current;

static int on_x_error(Display *dpy, XErrorEvent *e)
{
    VaX11 *x = current;
    if (!x || x->dpy != dpy)
        return 0;
    if (x->trap_depth > 0) {
        if (x->trap_error == 0)
            x->trap_error = e->error_code;
        return 0;
    }
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

static void dispatch_pending(VaX11 *x)
{
    while (XPending(x->dpy) > 0) {
        XEvent ev;
        XNextEvent(x->dpy, &ev);
        /* Copy the list: a handler may remove itself. */
        guint n = x->handlers->len;
        Handler *copy = g_newa(Handler, n ? n : 1);
        memcpy(copy, x->handlers->data, n * sizeof(Handler));
        for (guint i = 0; i < n; i++)
            copy[i].fn(copy[i].user, &ev);
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
    x->handlers = g_array_new(FALSE, FALSE, sizeof(Handler));
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
    g_array_free(x->handlers, TRUE);
    if (current == x)
        current = NULL;
    g_free(x);
}

Display *va_x11_display(VaX11 *x) { return x->dpy; }
Window va_x11_root(VaX11 *x) { return x->root; }
Window va_x11_window(VaX11 *x) { return x->win; }

void va_x11_add_handler(VaX11 *x, VaX11EventFunc fn, void *user)
{
    Handler h = {fn, user};
    g_array_append_val(x->handlers, h);
}

void va_x11_remove_handler(VaX11 *x, VaX11EventFunc fn, void *user)
{
    for (guint i = 0; i < x->handlers->len; i++) {
        Handler *h = &g_array_index(x->handlers, Handler, i);
        if (h->fn == fn && h->user == user) {
            g_array_remove_index(x->handlers, i);
            return;
        }
    }
}

void va_x11_set_lost_func(VaX11 *x, VaX11LostFunc fn, void *user)
{
    x->lost_fn = fn;
    x->lost_user = user;
}

void va_x11_trap_push(VaX11 *x)
{
    if (x->trap_depth++ == 0)
        x->trap_error = 0;
}

int va_x11_trap_pop(VaX11 *x)
{
    XSync(x->dpy, False);
    int e = x->trap_error;
    if (x->trap_depth > 0 && --x->trap_depth == 0)
        x->trap_error = 0;
    return e;
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
