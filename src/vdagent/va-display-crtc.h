/* va-display-crtc.h - which CRTC drives which output: a pure function (no
 * X), so that the assignment can be tested on cases no test server builds
 * (the dummy driver gives each output exactly one CRTC).
 *
 * Each output that must be on needs a CRTC of its own from the set it can
 * use. Taking them first come, first served can fail where an assignment
 * exists (output A can use CRTC 0 or 1, B only 0: A takes 0, B gets
 * nothing); this is a bipartite matching, found with augmenting paths, so
 * it fails only when no assignment exists. Outputs keep the CRTC they
 * drive now where they can (fewer changes on the screen).
 */
#ifndef VA_DISPLAY_CRTC_H
#define VA_DISPLAY_CRTC_H

#include <stdbool.h>
#include <stdint.h>

/* CRTCs considered, at most: the width of a possible-set bitmask. Real
 * GPUs have 2 to 8, the dummy driver 16; CRTCs past it are not used. */
#define VA_CRTC_MAX 64u
/* Outputs assigned at most (the backend's VA_DISP_MAX_OUTPUTS). */
#define VA_CRTC_MAX_OUTPUTS 64u

typedef struct VaCrtcOutput {
    bool wanted;            /* must be on: needs a CRTC */
    int current;            /* the CRTC it drives now (index), or -1 */
    uint64_t possible;      /* bit c set: it can use CRTC c */
} VaCrtcOutput;

/* Fills crtc_of[i] (n entries) with the CRTC index of each wanted output,
 * distinct, each within its possible set (or its current CRTC), and -1 for
 * the others. Returns -1 on success, else the index of a wanted output for
 * which no assignment exists (crtc_of is then partial). n is at most
 * VA_CRTC_MAX_OUTPUTS and ncrtc at most VA_CRTC_MAX (larger values: the
 * excess is ignored; such outputs get no CRTC). */
int va_crtc_assign(const VaCrtcOutput *outs, unsigned n, unsigned ncrtc, int *crtc_of);

#endif /* VA_DISPLAY_CRTC_H */
