/* va-mouse.c - XTest mouse injection (see va-mouse.h). */
#include "config.h"

#include <X11/Xlib.h>
#include <X11/extensions/XTest.h>
#include <spice/vd_agent.h>

#include "va-mouse.h"

/* Largest coordinate passed to X: the core protocol's 16-bit signed range.
 * The daemon bounds the desktop already; this keeps a wild value from
 * wrapping in Xlib's conversions. */
#define VA_MOUSE_COORD_MAX 32767

/* VD_AGENT button mask bits -> X button numbers. Wheel bits (UP/DOWN)
 * are clicks; SIDE/EXTRA are X's back/forward buttons 8 and 9. */
static const struct {
    uint32_t mask;
    unsigned button;
    bool click;
} button_map[] = {
    {VD_AGENT_LBUTTON_MASK, 1, false},
    {VD_AGENT_MBUTTON_MASK, 2, false},
    {VD_AGENT_RBUTTON_MASK, 3, false},
    {VD_AGENT_UBUTTON_MASK, 4, true},
    {VD_AGENT_DBUTTON_MASK, 5, true},
    {VD_AGENT_SBUTTON_MASK, 8, false},
    {VD_AGENT_EBUTTON_MASK, 9, false},
};

struct VaMouse {
    VaX11 *x;
    int screen;
    uint32_t buttons;         /* mask last applied */
    bool moved;
    int last_x, last_y;
};

VaMouse *va_mouse_new(VaX11 *x, GError **error)
{
    Display *dpy = va_x11_display(x);
    int ev, err, major, minor;
    if (!XTestQueryExtension(dpy, &ev, &err, &major, &minor)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "the X server has no XTEST extension: no mouse without uinput");
        return NULL;
    }
    VaMouse *m = g_new0(VaMouse, 1);
    m->x = x;
    /* Desktop coordinates are those of the root window we share. */
    m->screen = XScreenNumberOfScreen(DefaultScreenOfDisplay(dpy));
    Window root = va_x11_root(x);
    for (int i = 0; i < ScreenCount(dpy); i++)
        if (RootWindow(dpy, i) == root)
            m->screen = i;
    return m;
}

void va_mouse_free(VaMouse *m)
{
    g_free(m);
}

static int clamp_coord(int32_t v)
{
    return v < 0 ? 0 : v > VA_MOUSE_COORD_MAX ? VA_MOUSE_COORD_MAX : (int)v;
}

void va_mouse_handle(VaMouse *m, const VdpIpcMouse *ev)
{
    Display *dpy = va_x11_display(m->x);
    int x = clamp_coord(ev->x), y = clamp_coord(ev->y);
    if (!m->moved || x != m->last_x || y != m->last_y) {
        XTestFakeMotionEvent(dpy, m->screen, x, y, CurrentTime);
        m->moved = true;
        m->last_x = x;
        m->last_y = y;
    }
    uint32_t changed = (ev->buttons ^ m->buttons) & VDP_IPC_MOUSE_BUTTONS_ALL;
    for (size_t i = 0; i < G_N_ELEMENTS(button_map); i++) {
        if (!(changed & button_map[i].mask))
            continue;
        bool down = (ev->buttons & button_map[i].mask) != 0;
        if (button_map[i].click) {
            /* A wheel step: one click when the bit comes on. */
            if (down) {
                XTestFakeButtonEvent(dpy, button_map[i].button, True, CurrentTime);
                XTestFakeButtonEvent(dpy, button_map[i].button, False, CurrentTime);
            }
        } else {
            XTestFakeButtonEvent(dpy, button_map[i].button, down ? True : False, CurrentTime);
        }
    }
    m->buttons = ev->buttons & VDP_IPC_MOUSE_BUTTONS_ALL;
    XFlush(dpy);
}

void va_mouse_release_all(VaMouse *m)
{
    Display *dpy = va_x11_display(m->x);
    for (size_t i = 0; i < G_N_ELEMENTS(button_map); i++)
        if ((m->buttons & button_map[i].mask) && !button_map[i].click)
            XTestFakeButtonEvent(dpy, button_map[i].button, False, CurrentTime);
    m->buttons = 0;
    XFlush(dpy);
}
