/* va-cvt.h - VESA CVT reduced-blanking mode timings, plain C (no X).
 *
 * Timings follow VESA CVT 1.1 reduced blanking ("CVT-RB", version 1: a fixed
 * 160-pixel horizontal blank with a 32-pixel sync, at least 460 us of
 * vertical blank, a 3-line front porch, a 250 kHz clock step), the same
 * computation as the `cvt -r` tool and X's xf86CVTMode.
 *
 * CVT works in 8-pixel character cells: a width that is not a multiple of 8
 * is padded up to whole cells for the blanking and the clock (exactly what
 * `cvt -r 1366 768` prints for "1368x768R"), but the mode's hdisplay stays
 * the exact requested width, so a 1366 wide monitor gets 1366 columns (the
 * extra 2 pixels become horizontal blank).
 */
#ifndef VA_CVT_H
#define VA_CVT_H

#include <stdbool.h>
#include <stdint.h>

/* Largest side va_cvt_rb accepts: the RandR protocol's 16-bit sizes. */
#define VA_CVT_MAX_SIDE 32767u
/* Refresh rates va_cvt_rb accepts, in Hz (outside: nonsense timings). */
#define VA_CVT_MIN_REFRESH 1.0
#define VA_CVT_MAX_REFRESH 1000.0

typedef struct VaCvtMode {
    uint32_t width, height;             /* hdisplay / vdisplay, exact */
    uint32_t hsync_start, hsync_end, htotal;
    uint32_t vsync_start, vsync_end, vtotal;
    uint64_t dot_clock;                 /* Hz (what XRRModeInfo.dotClock wants) */
    bool hsync_positive, vsync_negative; /* CVT-RB: +hsync -vsync */
    char name[32];                      /* "WxH" */
} VaCvtMode;

/* Fills *m for width x height at refresh Hz. False (m untouched) when a
 * side is 0 or over VA_CVT_MAX_SIDE, the refresh is out of range, or the
 * height is too small to leave any active time. */
bool va_cvt_rb(uint32_t width, uint32_t height, double refresh, VaCvtMode *m);

/* Like va_cvt_rb, but when the pixel clock at refresh Hz would exceed
 * max_clock Hz (XRRModeInfo.dotClock is 32 bits on the wire: 16000x8000 at
 * 60 Hz needs 7.98 GHz), the highest lower refresh whose clock fits. False
 * when even VA_CVT_MIN_REFRESH does not fit or va_cvt_rb fails. The
 * refresh used is in *used_refresh (may be NULL). */
bool va_cvt_rb_fit(uint32_t width, uint32_t height, double refresh, uint64_t max_clock,
                   VaCvtMode *m, double *used_refresh);

#endif /* VA_CVT_H */
