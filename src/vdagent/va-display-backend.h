/* va-display-backend.h - what the display core (va-display.c) needs from a
 * display backend, in backend-neutral terms: outputs with names and
 * geometry, the screen size and its range, and applying a wanted layout.
 * The XRandR backend is va-display-randr.c; a Wayland backend would
 * implement the same operations.
 */
#ifndef VA_DISPLAY_BACKEND_H
#define VA_DISPLAY_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* Outputs a backend reports, at most. The dummy driver has 16, real GPUs a
 * handful; the SPICE protocol allows VDP_MAX_MONITORS displays, but a guest
 * with more outputs than this is not something any driver builds, and a
 * bound keeps the state a fixed-size value. Outputs past it are ignored
 * (with a log line). */
#define VA_DISP_MAX_OUTPUTS 64u
/* Output names (RandR: "DUMMY0", "Virtual-1", "HDMI-A-1") longer than
 * this are truncated; no driver uses names anywhere near it. */
#define VA_DISP_NAME_MAX 64u

typedef struct VaDispOutput {
    char name[VA_DISP_NAME_MAX];
    bool connected;
    bool enabled;               /* drives a CRTC with a mode */
    int32_t x, y;
    uint32_t width, height;     /* 0x0 when not enabled */
} VaDispOutput;

typedef struct VaDispState {
    unsigned n_outputs;         /* in the backend's order (RandR order) */
    VaDispOutput outputs[VA_DISP_MAX_OUTPUTS];
    uint32_t screen_width, screen_height;
    uint32_t screen_mm_width, screen_mm_height;
    uint32_t min_width, min_height, max_width, max_height;
} VaDispState;

/* A layout to apply: one entry per output index of the state it was made
 * from; outputs not enabled are switched off. */
typedef struct VaDispWantedOutput {
    bool enabled;
    int32_t x, y;               /* >= 0 */
    uint32_t width, height;
} VaDispWantedOutput;

typedef struct VaDispWanted {
    unsigned n_outputs;
    VaDispWantedOutput outputs[VA_DISP_MAX_OUTPUTS];
    uint32_t screen_width, screen_height;       /* within the state's range */
    uint32_t screen_mm_width, screen_mm_height; /* >= 1 */
} VaDispWanted;

typedef struct VaDispBackend VaDispBackend;

/* Called (from the backend's event handling) when the outputs may have
 * changed, whoever changed them. The core debounces and compares. */
typedef void (*VaDispChangedFunc)(void *user);

typedef struct VaDispBackendOps {
    /* Current state. False (with a log line) if it could not be read. */
    bool (*query)(VaDispBackend *b, VaDispState *st);
    /* Apply w atomically as far as the backend can; on failure, *error says
     * why and the backend has tried to restore the state it found. */
    bool (*apply)(VaDispBackend *b, const VaDispWanted *w, GError **error);
    void (*free)(VaDispBackend *b);
} VaDispBackendOps;

struct VaDispBackend {
    const VaDispBackendOps *ops;
};

#endif /* VA_DISPLAY_BACKEND_H */
