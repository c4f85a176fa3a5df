/* va-display-private.h - what the display tests look at beyond the public
 * contract (va-display.h): counters and the sysfs root. Not for the agent. */
#ifndef VA_DISPLAY_PRIVATE_H
#define VA_DISPLAY_PRIVATE_H

#include "va-display.h"

typedef struct VaDisplayStats {
    unsigned applies;           /* configs handed to the backend */
    unsigned apply_failures;    /* of those, failed */
    unsigned refused;           /* configs refused before the backend */
    unsigned skipped;           /* configs that were already in place or failed before */
    unsigned reports;           /* GUEST_LAYOUT frames sent */
} VaDisplayStats;

void va_display_get_stats(VaDisplay *d, VaDisplayStats *out);
/* Where GRAPHICS_DEVICE_INFO looks for DRM devices ("/sys" by default). */
void va_display_set_sysfs_root(VaDisplay *d, const char *root);

#endif /* VA_DISPLAY_PRIVATE_H */
