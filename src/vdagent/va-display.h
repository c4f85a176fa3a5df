/* va-display.h - the session agent's displays: a backend-independent core
 * (turning a MONITORS_CONFIG into a wanted layout, coalescing, giving up on
 * configs that fail, display id <-> output mapping, layout reports) with an
 * XRandR backend (va-display-randr.c, RandR 1.3+). A Wayland backend can
 * later sit beside it.
 */
#ifndef VA_DISPLAY_H
#define VA_DISPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"
#include "vdp-msg.h"
#include "va-x11.h"

typedef struct VaDisplay VaDisplay;

/* Without RandR 1.3 the module still comes up, read only: it reports the
 * root window's size as display 0 (the daemon opens the port only after a
 * layout) and refuses monitor configs with a log line. error is kept for
 * a backend that cannot start at all; NULL is not returned today. */
VaDisplay *va_display_new(VaX11 *x, GError **error);
void va_display_free(VaDisplay *d);

/* The daemon connection, or NULL. On a new connection the current layout is
 * sent (GUEST_LAYOUT) at once: the daemon opens the port only after it. */
void va_display_set_conn(VaDisplay *d, VdpIpcConn *conn);

/* Apply a client's monitor config (validated by the decoder). Rapid configs
 * are coalesced: only the newest pending one is applied. */
void va_display_handle_monitors_config(VaDisplay *d, const VdpMonitorsConfig *mc);

/* GRAPHICS_DEVICE_INFO: maps SPICE display ids to outputs. */
void va_display_handle_device_info(VaDisplay *d, const VdpGraphicsDeviceInfo *info);

/* The layout last reported (or to be reported). */
void va_display_get_layout(VaDisplay *d, VdpIpcGuestLayout *out);

#endif /* VA_DISPLAY_H */
