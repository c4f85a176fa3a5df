/* vdd-input.h - the daemon's mouse output: uinput, a fake-uinput sink, or
 * nothing (then the daemon forwards to the session agent for XTest).
 *
 * The layout (display id -> position and size on the desktop) comes from
 * the active session agent. Events for a display the layout does not have
 * are dropped with one rate-limited log line.
 *
 * uinput: one absolute pointer ("spice vdagent tablet") created once with
 * UI_DEV_SETUP/UI_ABS_SETUP over the fixed range 0..VDD_INPUT_ABS_MAX on
 * both axes; the daemon scales desktop coordinates into it, so the device
 * is never recreated on resize. Buttons left/middle/right/side/extra, a
 * vertical wheel. Every ioctl checked.
 *
 * fake (-f): raw struct input_event records written to an existing FIFO or
 * file, in desktop coordinates (what Xspice and the tests read), through a
 * non-blocking descriptor and a bounded buffer: a slow reader never stalls
 * the daemon; when the buffer is full, pending motion is coalesced (the
 * latest position is kept) and button changes that still do not fit are
 * dropped with one rate-limited log line. Every frame is computed against
 * the state the reader will have once the buffer is written, so what it
 * reads stays consistent, and the newest state is sent as soon as there is
 * room again. A FIFO without a reader (ENXIO) is retried on a timer with
 * back-off; a reader that goes away (EPIPE) likewise.
 *
 * Rounding of the uinput scaling: see vdd_input_scale().
 */
#ifndef VDD_INPUT_H
#define VDD_INPUT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vdp-limits.h"

#define VDD_INPUT_ABS_MAX 32767
/* Bytes of events buffered for a slow fake-uinput reader (about 2700
 * 24-byte events: seconds of mouse traffic). */
#define VDD_INPUT_FAKE_BUFFER (64u * 1024u)

/* The uinput device's identity. 0.22.1 used all-zero ids; rules that match
 * the name "spice vdagent tablet" keep working. */
#define VDD_INPUT_NAME "spice vdagent tablet"
#define VDD_INPUT_VENDOR 0x5350u    /* "SP" */
#define VDD_INPUT_PRODUCT 0x4154u   /* "AT": agent tablet */
#define VDD_INPUT_VERSION 1u

typedef struct VddInput VddInput;

typedef enum VddInputMode {
    VDD_INPUT_UINPUT,   /* /dev/uinput */
    VDD_INPUT_FAKE,     /* -f: raw input_event records to a FIFO/file */
} VddInputMode;

typedef struct VddDisplay {
    uint32_t display_id;
    int32_t x, y;
    uint32_t width, height;    /* 0x0 = known but disabled */
} VddDisplay;

typedef struct VddLayout {
    uint32_t desktop_width, desktop_height;
    uint32_t count;
    VddDisplay displays[VDP_MAX_MONITORS];
} VddLayout;

/* Open the device or sink. Returns NULL with error (e.g. no /dev/uinput:
 * G_IO_ERROR_NOT_FOUND) so the daemon can fall back to the agent. */
VddInput *vdd_input_new(GMainContext *ctx, VddInputMode mode, const char *path, GError **error);
void vdd_input_free(VddInput *in);

/* The active agent's layout (copied). count == 0: no layout, events dropped. */
void vdd_input_set_layout(VddInput *in, const VddLayout *layout);

/* Translate desktop position = display position + (x, y) and emit what
 * changed since the last state: ABS_X/ABS_Y, button edges, REL_WHEEL +1 on
 * a UBUTTON press edge and -1 on a DBUTTON press edge, then SYN_REPORT.
 * Returns false if the event was dropped (unknown display). */
bool vdd_input_mouse(VddInput *in, uint32_t x, uint32_t y, uint32_t buttons, uint8_t display_id);

/* Map (display_id, x, y) to desktop coordinates with the current layout;
 * false if the display is unknown. Shared with the XTest fallback path. */
bool vdd_layout_to_desktop(const VddLayout *layout, uint8_t display_id, uint32_t x, uint32_t y,
                           int32_t *dx, int32_t *dy);

/* events: accepted mouse events; dropped_unknown_display: events for a
 * display the layout lacks (or no layout); dropped_overflow: frames with
 * button changes that did not fit in the buffer (the state is resent when
 * it drains); bytes_buffered: bytes waiting for the sink now; coalesced:
 * motion frames merged into a later position because the buffer was full. */
typedef struct VddInputStats {
    uint64_t events, dropped_unknown_display, dropped_overflow, bytes_buffered;
    uint64_t coalesced;
    uint64_t opens;             /* fake: times the sink was opened */
} VddInputStats;
void vdd_input_get_stats(const VddInput *in, VddInputStats *st);

/* Log every event at debug level (the daemon's -d -d). Default 0. */
void vdd_input_set_debug(VddInput *in, unsigned level);

/* Scale a desktop coordinate (0..size-1) to the uinput range
 * 0..VDD_INPUT_ABS_MAX: ceil(pos * 32767 / (size - 1)), clamped, so 0 -> 0
 * and size-1 -> 32767. The X server maps the value back with
 *   v * size / 32768, truncated (xf86-input-evdev; dix adds 1 to the
 *   device maximum), or a hair less with xf86-input-libinput (libinput
 *   scales by max - min + 1 into 0..0xffff, dix by 0xffff + 1), or
 *   v * (size - 1) / 32767, truncated or rounded (servers without the +1);
 * the ceiling lands on pos under every one of these for every pos and
 * every size up to 16384 (tests/unit/test-input.c checks). Details in
 * vdd-input.c. */
uint32_t vdd_input_scale(int32_t pos, uint32_t size);

#endif /* VDD_INPUT_H */
