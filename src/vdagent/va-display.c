/* va-display.c - the display core: MONITORS_CONFIG -> a wanted layout for
 * the backend, coalescing, no retry of a failed config until the screen
 * changes from outside, display id <-> output mapping
 * (GRAPHICS_DEVICE_INFO), GUEST_LAYOUT reports. See va-display.h; the
 * backend contract is va-display-backend.h. Without RandR 1.3 a read-only
 * backend reports the root window as display 0.
 *
 * Reports: the layout is computed from the backend's state whenever it may
 * have changed (after an apply, after a debounced change notification,
 * after GRAPHICS_DEVICE_INFO) and sent only when it differs from the last
 * one sent, so the notifications our own apply causes produce no second
 * report; a new daemon connection always gets the current one.
 *
 * Timers run on the thread-default GMainContext of the thread that calls
 * va_display_new (the agent's main loop), like the X connection's source.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/vd_agent.h>

#include "va-display-backend.h"
#include "va-display-drm.h"
#include "va-display-private.h"
#include "va-display-randr.h"
#include "va-display.h"
#include "vdp-ratelimit.h"

/* A config that arrives when none was applied for this long is applied at
 * once; the ones arriving within this time after an apply are coalesced
 * and only the newest is applied when the time is up. A client being
 * resized sends one per frame of the drag; a single config (the common
 * case: a client connects or goes full screen) waits for nothing. */
#define DISPLAY_COALESCE_MS 100u
/* RandR sends several notifications per change (screen, each CRTC, each
 * output); the state is read once, this long after the first of them. */
#define DISPLAY_CHANGE_DEBOUNCE_MS 100u
/* DPI range taken from a client's physical sizes; outside it the sizes
 * are nonsense (a 0.5 mm monitor) and 96 DPI is used. */
#define DISPLAY_MIN_DPI 20.0
#define DISPLAY_MAX_DPI 1000.0
#define DISPLAY_DEFAULT_DPI 96.0
#define MM_PER_INCH 25.4

typedef struct MapEntry {
    uint32_t display_id;
    bool by_index;                  /* no DRM connector found: output index */
    uint32_t index;
    unsigned nnames;
    char names[VA_DRM_MAX_NAMES][VA_DISP_NAME_MAX];
} MapEntry;

struct VaDisplay {
    VaX11 *x;
    GMainContext *ctx;
    VaDispBackend *be;
    bool read_only;                 /* the root fallback: reports only */
    char *read_only_why;
    VdpIpcConn *conn;
    char *sysfs_root;

    VaDispState state;
    bool state_ok;
    VdpIpcGuestLayout layout;       /* from state */
    VdpIpcGuestLayout sent;
    bool sent_valid;

    VdpMonitorsConfig *pending;     /* newest config not applied yet, or NULL */
    GSource *apply_src;
    GSource *change_src;

    bool failed_valid;              /* cleared by a success or an outside change */
    VaDispWanted failed;            /* the last wanted layout that failed */

    GArray *map;                    /* MapEntry, from GRAPHICS_DEVICE_INFO */

    VaDisplayStats stats;
    VdpRateLimit rl;            /* log lines the client can trigger */
};

static bool log_ok(VaDisplay *d)
{
    return vdp_rate_ok(&d->rl, "display");
}

/* ---- display ids <-> outputs ---- */

/* The output of a map entry in st, or -1. An entry with connector names
 * that match no output (a driver naming its outputs otherwise) falls back
 * to the device's display number as the output index, as 0.22.1 does,
 * unless another entry's names claim that output. */
static int map_entry_output(const VaDisplay *d, const VaDispState *st, const MapEntry *e)
{
    if (!e->by_index) {
        int o = va_drm_pick_output(st, e->names, e->nnames);
        if (o >= 0)
            return o;
    }
    if (e->index >= st->n_outputs)
        return -1;
    if (!e->by_index) {
        for (guint k = 0; k < d->map->len; k++) {
            const MapEntry *other = &g_array_index(d->map, MapEntry, k);
            if (other != e && !other->by_index &&
                va_drm_pick_output(st, other->names, other->nnames) == (int)e->index)
                return -1;
        }
    }
    return (int)e->index;
}

static const MapEntry *map_find(const VaDisplay *d, uint32_t display_id)
{
    for (guint i = 0; i < d->map->len; i++) {
        const MapEntry *e = &g_array_index(d->map, MapEntry, i);
        if (e->display_id == display_id)
            return e;
    }
    return NULL;
}

/* The output index for a SPICE display id, or -1. */
static int output_for_id(const VaDisplay *d, const VaDispState *st, uint32_t display_id)
{
    if (d->map->len == 0)
        return display_id < st->n_outputs ? (int)display_id : -1;
    const MapEntry *e = map_find(d, display_id);
    return e ? map_entry_output(d, st, e) : -1;
}

/* ---- layout reports ---- */

static void set_display(VdpIpcDisplay *out, uint32_t id, const VaDispOutput *o)
{
    memset(out, 0, sizeof *out);
    out->display_id = id;
    if (o && o->enabled) {
        out->x = o->x;
        out->y = o->y;
        out->width = o->width;
        out->height = o->height;
    }
}

static gint display_cmp(gconstpointer a, gconstpointer b)
{
    const VdpIpcDisplay *x = a, *y = b;
    return x->display_id < y->display_id ? -1 : x->display_id > y->display_id;
}

static void layout_from_state(const VaDisplay *d, const VaDispState *st, VdpIpcGuestLayout *l)
{
    memset(l, 0, sizeof *l);
    l->desktop_width = MIN(st->screen_width, VDP_IPC_LAYOUT_MAX_SIDE);
    l->desktop_height = MIN(st->screen_height, VDP_IPC_LAYOUT_MAX_SIDE);
    if (d->map->len == 0) {
        for (unsigned i = 0; i < st->n_outputs && l->count < VDP_MAX_MONITORS; i++)
            set_display(&l->displays[l->count++], i, &st->outputs[i]);
        return;
    }
    for (guint k = 0; k < d->map->len && l->count < VDP_MAX_MONITORS; k++) {
        const MapEntry *e = &g_array_index(d->map, MapEntry, k);
        int i = map_entry_output(d, st, e);
        set_display(&l->displays[l->count++], e->display_id, i >= 0 ? &st->outputs[i] : NULL);
    }
    qsort(l->displays, l->count, sizeof l->displays[0],
          (int (*)(const void *, const void *))display_cmp);
}

static bool layout_equal(const VdpIpcGuestLayout *a, const VdpIpcGuestLayout *b)
{
    if (a->desktop_width != b->desktop_width || a->desktop_height != b->desktop_height ||
        a->count != b->count)
        return false;
    for (uint32_t i = 0; i < a->count; i++) {
        const VdpIpcDisplay *x = &a->displays[i], *y = &b->displays[i];
        if (x->display_id != y->display_id || x->x != y->x || x->y != y->y ||
            x->width != y->width || x->height != y->height)
            return false;
    }
    return true;
}

static void send_layout(VaDisplay *d)
{
    if (!d->conn)
        return;
    uint8_t buf[VDP_IPC_LAYOUT_HEAD_SIZE + VDP_IPC_LAYOUT_DISPLAY_SIZE * VDP_MAX_MONITORS];
    size_t n = vdp_ipc_guest_layout_encode(&d->layout, buf, sizeof buf);
    if (n == 0) {
        g_warning("display: the layout could not be encoded");
        return;
    }
    VdpResult r = vdp_ipc_conn_send(d->conn, VDP_IPC_GUEST_LAYOUT, 0, buf, n, NULL, 0);
    if (r != VDP_OK) {
        g_message("display: sending the layout to the daemon failed (%d)", (int)r);
        return;
    }
    d->sent = d->layout;
    d->sent_valid = true;
    d->stats.reports++;
    g_debug("display: reported %ux%u, %u displays", d->layout.desktop_width,
            d->layout.desktop_height, d->layout.count);
}

static bool state_equal(const VaDispState *a, const VaDispState *b)
{
    if (a->n_outputs != b->n_outputs || a->screen_width != b->screen_width ||
        a->screen_height != b->screen_height || a->screen_mm_width != b->screen_mm_width ||
        a->screen_mm_height != b->screen_mm_height || a->min_width != b->min_width ||
        a->min_height != b->min_height || a->max_width != b->max_width ||
        a->max_height != b->max_height)
        return false;
    for (unsigned i = 0; i < a->n_outputs; i++) {
        const VaDispOutput *x = &a->outputs[i], *y = &b->outputs[i];
        if (strcmp(x->name, y->name) != 0 || x->connected != y->connected ||
            x->enabled != y->enabled || x->x != y->x || x->y != y->y ||
            x->width != y->width || x->height != y->height)
            return false;
    }
    return true;
}

/* Read the backend's state; report if the layout changed. Returns whether
 * the state differs from the one known before. */
static bool refresh(VaDisplay *d, bool force_send)
{
    VaDispState *st = g_new(VaDispState, 1);
    bool changed = false;
    if (d->be->ops->query(d->be, st)) {
        changed = !d->state_ok || !state_equal(st, &d->state);
        d->state = *st;
        d->state_ok = true;
    }
    g_free(st);
    layout_from_state(d, &d->state, &d->layout);
    if (force_send || !d->sent_valid || !layout_equal(&d->layout, &d->sent))
        send_layout(d);
    return changed;
}

/* ---- MONITORS_CONFIG -> wanted layout ---- */

static bool wanted_equal(const VaDispWanted *a, const VaDispWanted *b)
{
    if (a->n_outputs != b->n_outputs || a->screen_width != b->screen_width ||
        a->screen_height != b->screen_height || a->screen_mm_width != b->screen_mm_width ||
        a->screen_mm_height != b->screen_mm_height)
        return false;
    for (unsigned i = 0; i < a->n_outputs; i++) {
        const VaDispWantedOutput *x = &a->outputs[i], *y = &b->outputs[i];
        if (x->enabled != y->enabled)
            return false;
        if (x->enabled && (x->x != y->x || x->y != y->y || x->width != y->width ||
                           x->height != y->height))
            return false;
    }
    return true;
}

static bool wanted_in_place(const VaDispWanted *w, const VaDispState *st)
{
    if (w->n_outputs != st->n_outputs || w->screen_width != st->screen_width ||
        w->screen_height != st->screen_height || w->screen_mm_width != st->screen_mm_width ||
        w->screen_mm_height != st->screen_mm_height)
        return false;
    for (unsigned i = 0; i < w->n_outputs; i++) {
        const VaDispWantedOutput *x = &w->outputs[i];
        const VaDispOutput *o = &st->outputs[i];
        if (x->enabled != o->enabled)
            return false;
        if (x->enabled && (x->x != o->x || x->y != o->y || x->width != o->width ||
                           x->height != o->height))
            return false;
    }
    return true;
}

static uint32_t mm_of(uint32_t pixels, double dpi)
{
    /* pixels <= 65535 and dpi >= DISPLAY_MIN_DPI: far from overflowing. */
    double mm = (double)pixels * MM_PER_INCH / dpi + 0.5;
    return mm < 1.0 ? 1u : (uint32_t)mm;
}

/* Builds the wanted layout; false (with a logged reason) when the config
 * cannot be applied. */
static bool wanted_from_config(VaDisplay *d, const VdpMonitorsConfig *mc, VaDispWanted *w)
{
    const VaDispState *st = &d->state;
    memset(w, 0, sizeof *w);
    w->n_outputs = st->n_outputs;
    bool use_pos = (mc->flags & VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS) != 0;
    bool phys = (mc->flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE) != 0;
    double dpi_x = 0, dpi_y = 0;
    unsigned enabled = 0;
    int64_t next_x = 0;

    for (uint32_t i = 0; i < mc->count && i < VDP_MAX_MONITORS; i++) {
        const VdpMonConfig *m = &mc->monitors[i];
        if (m->width == 0 || m->height == 0)
            continue;       /* sparse entry: that display is off */
        if (m->depth != 0 && m->depth != 32 && m->depth != 24)
            g_debug("display: monitor %u depth %u ignored", i, m->depth);
        if (m->x < -VDP_IPC_LAYOUT_MAX_POS || m->x > VDP_IPC_LAYOUT_MAX_POS ||
            m->y < -VDP_IPC_LAYOUT_MAX_POS || m->y > VDP_IPC_LAYOUT_MAX_POS) {
            if (log_ok(d))
                g_message("display: monitor %u at %d,%d is beyond +-%d; config refused", i, m->x,
                          m->y, VDP_IPC_LAYOUT_MAX_POS);
            return false;
        }
        if (m->width > st->max_width || m->height > st->max_height) {
            if (log_ok(d))
                g_message("display: monitor %u is %ux%u, larger than the largest screen "
                          "%ux%u; config refused", i, m->width, m->height, st->max_width,
                          st->max_height);
            return false;
        }
        int o = output_for_id(d, st, i);
        if (o < 0) {
            if (log_ok(d))
                g_message("display: no output for display id %u (%u outputs); monitor skipped",
                          i, st->n_outputs);
            continue;
        }
        VaDispWantedOutput *wo = &w->outputs[o];
        if (wo->enabled && log_ok(d))
            g_message("display: two display ids on output %s; the later wins",
                      st->outputs[o].name);
        wo->enabled = true;
        wo->width = m->width;
        wo->height = m->height;
        if (use_pos) {
            wo->x = m->x;
            wo->y = m->y;
        } else {
            wo->x = (int32_t)MIN(next_x, (int64_t)VDP_IPC_LAYOUT_MAX_POS);
            wo->y = 0;
            next_x += m->width;
        }
        if (phys && dpi_x == 0 && m->mm_width > 0 && m->mm_height > 0) {
            dpi_x = (double)m->width * MM_PER_INCH / m->mm_width;
            dpi_y = (double)m->height * MM_PER_INCH / m->mm_height;
            if (dpi_x < DISPLAY_MIN_DPI || dpi_x > DISPLAY_MAX_DPI || dpi_y < DISPLAY_MIN_DPI ||
                dpi_y > DISPLAY_MAX_DPI) {
                if (log_ok(d))
                    g_message("display: physical size %ux%u mm for %ux%u is not believable; "
                              "using %.0f DPI", m->mm_width, m->mm_height, m->width, m->height,
                              DISPLAY_DEFAULT_DPI);
                dpi_x = dpi_y = -1;     /* decided: default */
            }
        }
        enabled++;
    }
    if (enabled == 0) {
        if (log_ok(d))
            g_message("display: the config enables no monitor this guest has; refused");
        return false;
    }

    /* The X screen starts at 0,0: move the layout there. */
    int64_t min_x = INT64_MAX, min_y = INT64_MAX, max_x = 0, max_y = 0;
    for (unsigned i = 0; i < w->n_outputs; i++) {
        const VaDispWantedOutput *o = &w->outputs[i];
        if (!o->enabled)
            continue;
        min_x = MIN(min_x, (int64_t)o->x);
        min_y = MIN(min_y, (int64_t)o->y);
    }
    if (min_x != 0 || min_y != 0)
        g_debug("display: layout moved by %" G_GINT64_FORMAT ",%" G_GINT64_FORMAT " to 0,0",
                -min_x, -min_y);
    for (unsigned i = 0; i < w->n_outputs; i++) {
        VaDispWantedOutput *o = &w->outputs[i];
        if (!o->enabled)
            continue;
        o->x = (int32_t)((int64_t)o->x - min_x);
        o->y = (int32_t)((int64_t)o->y - min_y);
        max_x = MAX(max_x, (int64_t)o->x + o->width);
        max_y = MAX(max_y, (int64_t)o->y + o->height);
    }
    if (max_x > (int64_t)st->max_width || max_y > (int64_t)st->max_height) {
        if (log_ok(d))
            g_message("display: the layout needs a %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                      " screen, the largest is %ux%u; config refused",
                      max_x, max_y, st->max_width, st->max_height);
        return false;
    }
    w->screen_width = MAX((uint32_t)max_x, st->min_width);
    w->screen_height = MAX((uint32_t)max_y, st->min_height);
    if (dpi_x <= 0)
        dpi_x = dpi_y = DISPLAY_DEFAULT_DPI;
    w->screen_mm_width = mm_of(w->screen_width, dpi_x);
    w->screen_mm_height = mm_of(w->screen_height, dpi_y);
    return true;
}

static void apply_pending(VaDisplay *d)
{
    VdpMonitorsConfig *mc = d->pending;
    d->pending = NULL;
    if (!mc)
        return;
    /* Fresh state: the outputs may have changed since the last report
     * (from outside, as our applies update it: see change_cb). */
    VaDispState *st = g_new(VaDispState, 1);
    if (d->be->ops->query(d->be, st)) {
        if (d->state_ok && d->failed_valid && !state_equal(st, &d->state)) {
            g_debug("display: the screen changed from outside; a failed config may be retried");
            d->failed_valid = false;
        }
        d->state = *st;
        d->state_ok = true;
    }
    g_free(st);
    VaDispWanted *w = g_new(VaDispWanted, 1);
    if (d->read_only) {
        d->stats.refused++;
        if (log_ok(d))
            g_message("display: monitor config refused: %s", d->read_only_why);
    } else if (!d->state_ok || !wanted_from_config(d, mc, w)) {
        d->stats.refused++;
    } else if (d->failed_valid && wanted_equal(w, &d->failed)) {
        d->stats.skipped++;
        if (log_ok(d))
            g_message("display: ignoring a config that failed before");
    } else if (wanted_in_place(w, &d->state)) {
        d->stats.skipped++;
        g_debug("display: the config is already in place");
    } else {
        GError *error = NULL;
        d->stats.applies++;
        if (d->be->ops->apply(d->be, w, &error)) {
            d->failed_valid = false;
            g_debug("display: applied a %ux%u layout", w->screen_width, w->screen_height);
        } else {
            d->stats.apply_failures++;
            d->failed = *w;
            d->failed_valid = true;
            if (log_ok(d))
                g_warning("display: applying the monitor config failed: %s; it is not retried "
                          "until the screen changes",
                          error ? error->message : "unknown error");
            g_clear_error(&error);
        }
    }
    g_free(w);
    g_free(mc);
    refresh(d, false);
}

static GSource *add_timeout(VaDisplay *d, unsigned ms, GSourceFunc fn);

/* The end of a quiet window after an apply: apply what came meanwhile (the
 * newest), which opens a new window. */
static gboolean apply_cb(gpointer user)
{
    VaDisplay *d = user;
    g_source_unref(d->apply_src);
    d->apply_src = NULL;
    if (d->pending) {
        apply_pending(d);
        d->apply_src = add_timeout(d, DISPLAY_COALESCE_MS, apply_cb);
    }
    return G_SOURCE_REMOVE;
}

static gboolean change_cb(gpointer user)
{
    VaDisplay *d = user;
    g_source_unref(d->change_src);
    d->change_src = NULL;
    /* Our own applies update the state as they finish, so a state that
     * differs here was changed by someone else (a user, a desktop tool, a
     * hotplug): what failed before may work now, try it once more. */
    if (refresh(d, false) && d->failed_valid) {
        g_debug("display: the screen changed from outside; a failed config may be retried");
        d->failed_valid = false;
    }
    return G_SOURCE_REMOVE;
}

static GSource *add_timeout(VaDisplay *d, unsigned ms, GSourceFunc fn)
{
    GSource *s = g_timeout_source_new(ms);
    g_source_set_callback(s, fn, d, NULL);
    g_source_attach(s, d->ctx);
    return s;
}

static void backend_changed(void *user)
{
    VaDisplay *d = user;
    /* Read once, DISPLAY_CHANGE_DEBOUNCE_MS after the first notification
     * of a burst (not after the last: a client that changes RandR without
     * pause must not hold the reports back for ever). */
    if (!d->change_src)
        d->change_src = add_timeout(d, DISPLAY_CHANGE_DEBOUNCE_MS, change_cb);
}

/* ---- the fallback without RandR 1.3: the root window, read only ---- */

typedef struct RootBackend {
    VaDispBackend base;
    VaX11 *x;
} RootBackend;

static bool root_query(VaDispBackend *base, VaDispState *st)
{
    RootBackend *b = (RootBackend *)base;
    Display *dpy = va_x11_display(b->x);
    memset(st, 0, sizeof *st);
    Window r;
    int gx, gy;
    unsigned w = 0, h = 0, bw, depth;
    va_x11_trap_push(b->x);
    Status ok = XGetGeometry(dpy, va_x11_root(b->x), &r, &gx, &gy, &w, &h, &bw, &depth);
    int err = va_x11_trap_pop(b->x);
    if (!ok || err || w == 0 || h == 0) {
        g_warning("display: cannot read the root window's size (X error %d)", err);
        return false;
    }
    st->n_outputs = 1;
    VaDispOutput *o = &st->outputs[0];
    g_strlcpy(o->name, "screen", sizeof o->name);
    o->connected = true;
    o->enabled = true;
    o->width = w;
    o->height = h;
    st->screen_width = st->min_width = st->max_width = w;
    st->screen_height = st->min_height = st->max_height = h;
    int scr = DefaultScreen(dpy);
    st->screen_mm_width = (uint32_t)MAX(DisplayWidthMM(dpy, scr), 0);
    st->screen_mm_height = (uint32_t)MAX(DisplayHeightMM(dpy, scr), 0);
    return true;
}

static bool root_apply(VaDispBackend *base, const VaDispWanted *w, GError **error)
{
    (void)base;
    (void)w;
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "the screen cannot be reconfigured without RandR 1.3");
    return false;
}

static void root_free(VaDispBackend *base)
{
    g_free(base);
}

static const VaDispBackendOps root_ops = {
    .query = root_query,
    .apply = root_apply,
    .free = root_free,
};

static VaDispBackend *root_backend_new(VaX11 *x)
{
    RootBackend *b = g_new0(RootBackend, 1);
    b->base.ops = &root_ops;
    b->x = x;
    return &b->base;
}

/* ---- public ---- */

VaDisplay *va_display_new(VaX11 *x, GError **error)
{
    (void)error;
    VaDisplay *d = g_new0(VaDisplay, 1);
    d->x = x;
    d->ctx = g_main_context_ref_thread_default();
    d->map = g_array_new(FALSE, TRUE, sizeof(MapEntry));
    d->sysfs_root = g_strdup("/sys");
    GError *why = NULL;
    d->be = va_display_randr_new(x, backend_changed, d, &why);
    if (!d->be) {
        /* The daemon opens the port only after a layout: report the root
         * window as display 0 and refuse configs. */
        g_message("display configuration disabled: %s; reporting the screen's size only",
                  why->message);
        d->read_only = true;
        d->read_only_why = g_strdup(why->message);
        g_clear_error(&why);
        d->be = root_backend_new(x);
    }
    refresh(d, false);
    return d;
}

void va_display_free(VaDisplay *d)
{
    if (!d)
        return;
    if (d->apply_src) {
        g_source_destroy(d->apply_src);
        g_source_unref(d->apply_src);
    }
    if (d->change_src) {
        g_source_destroy(d->change_src);
        g_source_unref(d->change_src);
    }
    if (d->be)
        d->be->ops->free(d->be);
    g_free(d->pending);
    g_array_free(d->map, TRUE);
    g_free(d->sysfs_root);
    g_free(d->read_only_why);
    g_main_context_unref(d->ctx);
    g_free(d);
}

void va_display_set_conn(VaDisplay *d, VdpIpcConn *conn)
{
    d->conn = conn;
    d->sent_valid = false;
    if (conn)
        refresh(d, true);
}

void va_display_handle_monitors_config(VaDisplay *d, const VdpMonitorsConfig *mc)
{
    if (mc->count > VDP_MAX_MONITORS) {
        if (log_ok(d))
            g_message("display: a monitor config with %u monitors; refused", mc->count);
        return;
    }
    if (!d->pending)
        d->pending = g_new(VdpMonitorsConfig, 1);
    *d->pending = *mc;
    /* Within the window after an apply the newest waits for its end, so a
     * steady stream is applied every DISPLAY_COALESCE_MS; otherwise now. */
    if (d->apply_src)
        return;
    apply_pending(d);
    d->apply_src = add_timeout(d, DISPLAY_COALESCE_MS, apply_cb);
}

void va_display_handle_device_info(VaDisplay *d, const VdpGraphicsDeviceInfo *info)
{
    g_array_set_size(d->map, 0);
    for (uint32_t k = 0; k < info->count && k < VDP_MAX_DEVICE_DISPLAYS; k++) {
        const VdpDeviceDisplayInfo *di = &info->info[k];
        uint64_t id = (uint64_t)di->channel_id + di->monitor_id;
        if (id >= VDP_MAX_MONITORS) {
            if (log_ok(d))
                g_message("display: device info for display id %" G_GUINT64_FORMAT
                          " (over %u); ignored", id, VDP_MAX_MONITORS);
            continue;
        }
        MapEntry e = {0};
        e.display_id = (uint32_t)id;
        e.index = di->device_display_id;
        VaPciAddress addr;
        char conn[VA_DISP_NAME_MAX];
        if (di->device_address && va_drm_parse_address(di->device_address, &addr) &&
            va_drm_find_connector(d->sysfs_root, &addr, di->device_display_id, conn,
                                  sizeof conn)) {
            e.nnames = va_drm_randr_names(conn, e.names, VA_DRM_MAX_NAMES);
        }
        if (e.nnames == 0) {
            /* No DRM connector (another driver, no sysfs): as 0.22.1, the
             * device's display number is the output index. */
            e.by_index = true;
            g_debug("display: display id %u -> output #%u (no DRM connector for %s)",
                    e.display_id, e.index, di->device_address ? di->device_address : "?");
        } else {
            g_debug("display: display id %u -> connector %s (output %s, else output #%u)",
                    e.display_id, conn, e.names[0], e.index);
        }
        /* A display id given twice: the later entry wins. */
        bool replaced = false;
        for (guint i = 0; i < d->map->len; i++) {
            if (g_array_index(d->map, MapEntry, i).display_id == e.display_id) {
                g_array_index(d->map, MapEntry, i) = e;
                replaced = true;
            }
        }
        if (!replaced)
            g_array_append_val(d->map, e);
    }
    refresh(d, false);
}

void va_display_get_layout(VaDisplay *d, VdpIpcGuestLayout *out)
{
    *out = d->layout;
}

void va_display_get_stats(VaDisplay *d, VaDisplayStats *out)
{
    *out = d->stats;
}

void va_display_set_sysfs_root(VaDisplay *d, const char *root)
{
    g_free(d->sysfs_root);
    d->sysfs_root = g_strdup(root);
}
