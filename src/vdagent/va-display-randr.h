/* va-display-randr.h - the XRandR (1.3+) display backend. */
#ifndef VA_DISPLAY_RANDR_H
#define VA_DISPLAY_RANDR_H

#include "va-display-backend.h"
#include "va-x11.h"

/* Fails (G_IO_ERROR_NOT_SUPPORTED) without RandR 1.3. changed is called on
 * every RandR screen/CRTC/output change notification. */
VaDispBackend *va_display_randr_new(VaX11 *x, VaDispChangedFunc changed, void *user,
                                    GError **error);

#endif /* VA_DISPLAY_RANDR_H */
