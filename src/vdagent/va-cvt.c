/* va-cvt.c - VESA CVT 1.1 reduced-blanking (v1) timings; see va-cvt.h. */
#include "config.h"

#include <stdio.h>

#include "va-cvt.h"

/* CVT constants (VESA CVT 1.1, reduced blanking v1). */
#define CVT_H_GRANULARITY 8u     /* character cell width, pixels */
#define CVT_RB_MIN_VBLANK 460.0  /* minimum vertical blank, microseconds */
#define CVT_RB_H_SYNC 32u        /* horizontal sync width, pixels */
#define CVT_RB_H_BLANK 160u      /* horizontal blank, pixels */
#define CVT_RB_V_FPORCH 3u       /* vertical front porch, lines */
#define CVT_MIN_V_BPORCH 6u      /* minimum vertical back porch, lines */
#define CVT_CLOCK_STEP 250u      /* pixel clock granularity, kHz */

/* The vertical sync width encodes the aspect ratio (CVT 1.1 table 3-2),
 * computed on the cell-padded width as the cvt tool does. */
static uint32_t vsync_width(uint32_t h, uint32_t v)
{
    if (v % 3 == 0 && (uint64_t)v * 4 / 3 == h)
        return 4;
    if (v % 9 == 0 && (uint64_t)v * 16 / 9 == h)
        return 5;
    if (v % 10 == 0 && (uint64_t)v * 16 / 10 == h)
        return 6;
    if (v % 4 == 0 && (uint64_t)v * 5 / 4 == h)
        return 7;
    if (v % 9 == 0 && (uint64_t)v * 15 / 9 == h)
        return 7;
    return 10;
}

bool va_cvt_rb(uint32_t width, uint32_t height, double refresh, VaCvtMode *m)
{
    if (width == 0 || height == 0 || width > VA_CVT_MAX_SIDE || height > VA_CVT_MAX_SIDE)
        return false;
    if (!(refresh >= VA_CVT_MIN_REFRESH && refresh <= VA_CVT_MAX_REFRESH))
        return false;

    /* Pad the width up to whole cells (at most 32767 + 7: no overflow). */
    uint32_t hcells = (width + CVT_H_GRANULARITY - 1) / CVT_H_GRANULARITY * CVT_H_GRANULARITY;
    uint32_t vsync = vsync_width(hcells, height);

    /* Estimated line period (us): the field time minus the minimum blank,
     * over the active lines. */
    double field_us = 1000000.0 / refresh;
    if (field_us <= CVT_RB_MIN_VBLANK)
        return false;
    double hperiod = (field_us - CVT_RB_MIN_VBLANK) / (double)height;
    uint32_t vbi = (uint32_t)(CVT_RB_MIN_VBLANK / hperiod) + 1;
    if (vbi < CVT_RB_V_FPORCH + vsync + CVT_MIN_V_BPORCH)
        vbi = CVT_RB_V_FPORCH + vsync + CVT_MIN_V_BPORCH;

    VaCvtMode r = {0};
    r.width = width;
    r.height = height;
    r.htotal = hcells + CVT_RB_H_BLANK;
    r.hsync_end = hcells + CVT_RB_H_BLANK / 2;
    r.hsync_start = r.hsync_end - CVT_RB_H_SYNC;
    r.vsync_start = height + CVT_RB_V_FPORCH;
    r.vsync_end = r.vsync_start + vsync;
    r.vtotal = height + vbi;

    /* kHz, rounded down to the clock step, then Hz. */
    double khz = (double)r.htotal * 1000.0 / hperiod;
    if (!(khz > 0.0 && khz < 1e9))
        return false;
    uint64_t clock = (uint64_t)khz;
    clock -= clock % CVT_CLOCK_STEP;
    if (clock == 0)
        return false;
    r.dot_clock = clock * 1000u;
    r.hsync_positive = true;
    r.vsync_negative = true;
    snprintf(r.name, sizeof r.name, "%ux%u", width, height);
    *m = r;
    return true;
}

/* Lowering the refresh to fit a clock: the clock is nearly proportional to
 * the refresh (the blank is a small share), so a proportional guess is
 * close; then steps of this factor down, at most this many. */
#define CVT_FIT_STEP 0.99
#define CVT_FIT_MAX_STEPS 200

bool va_cvt_rb_fit(uint32_t width, uint32_t height, double refresh, uint64_t max_clock,
                   VaCvtMode *m, double *used_refresh)
{
    VaCvtMode r;
    if (!va_cvt_rb(width, height, refresh, &r))
        return false;
    if (r.dot_clock > max_clock) {
        double f = refresh * (double)max_clock / (double)r.dot_clock;
        bool fits = false;
        for (int i = 0; i < CVT_FIT_MAX_STEPS && f >= VA_CVT_MIN_REFRESH; i++, f *= CVT_FIT_STEP) {
            if (va_cvt_rb(width, height, f, &r) && r.dot_clock <= max_clock) {
                fits = true;
                break;
            }
        }
        if (!fits)
            return false;
        refresh = f;
    }
    *m = r;
    if (used_refresh)
        *used_refresh = refresh;
    return true;
}
