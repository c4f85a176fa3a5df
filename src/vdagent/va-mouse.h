/* va-mouse.h - mouse injection through XTest, used when the daemon has no
 * /dev/uinput and sends MOUSE frames (desktop coordinates, button mask). */
#ifndef VA_MOUSE_H
#define VA_MOUSE_H

#include "vdp-ipc-msg.h"
#include "va-x11.h"

typedef struct VaMouse VaMouse;

/* Fails (G_IO_ERROR) when the server has no XTEST extension. */
VaMouse *va_mouse_new(VaX11 *x, GError **error);
void va_mouse_free(VaMouse *m);

/* Move to (x, y) and press/release buttons whose state changed (wheel
 * up/down bits become clicks of buttons 4/5). */
void va_mouse_handle(VaMouse *m, const VdpIpcMouse *ev);

/* Release every button still down (the daemon went away, or another
 * session became active, mid-drag). */
void va_mouse_release_all(VaMouse *m);

#endif /* VA_MOUSE_H */
