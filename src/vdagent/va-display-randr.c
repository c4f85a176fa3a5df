/* va-display-randr.c - the XRandR 1.3+ display backend (va-display-backend.h).
 *
 * Reads outputs with XRRGetScreenResourcesCurrent (no probing: that can
 * take seconds on real hardware). Applies a layout under XGrabServer with
 * an error trap: CRTCs that must go off (outputs disabled, or outside the
 * new screen) are switched off first, then the screen size is set (it can
 * only shrink once nothing lies outside it, and must grow before a CRTC is
 * placed beyond the old size), then every enabled output gets a CRTC (the
 * one it really uses, else a free one from its possible list) and a mode of
 * exactly the wanted size (an existing one, else a CVT reduced-blanking
 * mode we create). Modes we created and no longer use are deleted. A
 * failure is reported, not fatal: the state found before is put back.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <X11/Xlib.h>
#include <X11/extensions/Xrandr.h>

#include "va-cvt.h"
#include "va-display-randr.h"

/* The refresh rate of the modes we create: what SPICE clients show at and
 * what 0.22.1 used. */
#define RANDR_MODE_REFRESH 60.0
/* Suffix of the names of the modes we create ("1366x768-vdagent"), so they
 * are told apart from the driver's and the user's, and never collide with
 * a user's mode of the same size but other timings. */
#define RANDR_MODE_SUFFIX "-vdagent"
/* Modes we created and still track for deletion. Each apply creates at most
 * one per distinct size and deletes the unused ones, so the list stays at
 * the number of outputs; the bound only guards against a server that
 * refuses every deletion. */
#define RANDR_MAX_CREATED 256u

typedef struct RandrBackend {
    VaDispBackend base;
    VaX11 *x;
    Display *dpy;
    Window root;
    int event_base, error_base;
    VaDispChangedFunc changed;
    void *user;
    GArray *created;            /* RRMode we created */
} RandrBackend;

static void randr_event(void *user, XEvent *ev)
{
    RandrBackend *b = user;
    int t = ev->type - b->event_base;
    if (t != RRScreenChangeNotify && t != RRNotify)
        return;
    XRRUpdateConfiguration(ev);
    b->changed(b->user);
}

static bool randr_query(VaDispBackend *base, VaDispState *st)
{
    RandrBackend *b = (RandrBackend *)base;
    memset(st, 0, sizeof *st);

    int minw, minh, maxw, maxh;
    va_x11_trap_push(b->x);
    Bool range_ok = XRRGetScreenSizeRange(b->dpy, b->root, &minw, &minh, &maxw, &maxh);
    XRRScreenResources *res = XRRGetScreenResourcesCurrent(b->dpy, b->root);
    Window root_ret;
    int gx, gy;
    unsigned gw = 0, gh = 0, gb, gd;
    Status geo_ok = XGetGeometry(b->dpy, b->root, &root_ret, &gx, &gy, &gw, &gh, &gb, &gd);
    if (!res || !range_ok || !geo_ok) {
        if (res)
            XRRFreeScreenResources(res);
        va_x11_trap_pop(b->x);
        g_warning("display: cannot read the RandR screen resources");
        return false;
    }
    st->min_width = (uint32_t)minw;
    st->min_height = (uint32_t)minh;
    st->max_width = (uint32_t)maxw;
    st->max_height = (uint32_t)maxh;
    st->screen_width = gw;
    st->screen_height = gh;
    int scr = DefaultScreen(b->dpy);
    st->screen_mm_width = (uint32_t)MAX(DisplayWidthMM(b->dpy, scr), 0);
    st->screen_mm_height = (uint32_t)MAX(DisplayHeightMM(b->dpy, scr), 0);

    int n = res->noutput;
    if (n > (int)VA_DISP_MAX_OUTPUTS) {
        g_message("display: %d RandR outputs, only the first %u are used", n,
                  VA_DISP_MAX_OUTPUTS);
        n = (int)VA_DISP_MAX_OUTPUTS;
    }
    for (int i = 0; i < n; i++) {
        VaDispOutput *o = &st->outputs[st->n_outputs++];
        XRROutputInfo *oi = XRRGetOutputInfo(b->dpy, res, res->outputs[i]);
        if (!oi)
            continue;
        g_strlcpy(o->name, oi->name ? oi->name : "", sizeof o->name);
        o->connected = oi->connection == RR_Connected;
        if (oi->crtc != None) {
            XRRCrtcInfo *ci = XRRGetCrtcInfo(b->dpy, res, oi->crtc);
            if (ci && ci->mode != None && ci->width > 0 && ci->height > 0) {
                o->enabled = true;
                o->x = ci->x;
                o->y = ci->y;
                o->width = ci->width;
                o->height = ci->height;
            }
            if (ci)
                XRRFreeCrtcInfo(ci);
        }
        XRRFreeOutputInfo(oi);
    }
    XRRFreeScreenResources(res);
    int err = va_x11_trap_pop(b->x);
    if (err) {
        /* An output or CRTC went away between the calls: read again later
         * (the change comes with an event). */
        g_message("display: X error %d while reading RandR state", err);
        return false;
    }
    return true;
}

/* ---- apply ---- */

typedef struct ApplyCtx {
    RandrBackend *b;
    XRRScreenResources *res;
    XRROutputInfo **oi;         /* per output of res (up to n) */
    XRRCrtcInfo **ci;           /* per crtc of res */
    int n;                      /* outputs considered */
} ApplyCtx;

static void apply_ctx_free(ApplyCtx *a)
{
    for (int i = 0; a->oi && i < a->n; i++)
        if (a->oi[i])
            XRRFreeOutputInfo(a->oi[i]);
    for (int i = 0; a->ci && a->res && i < a->res->ncrtc; i++)
        if (a->ci[i])
            XRRFreeCrtcInfo(a->ci[i]);
    g_free(a->oi);
    g_free(a->ci);
    if (a->res)
        XRRFreeScreenResources(a->res);
    memset(a, 0, sizeof *a);
}

static bool apply_ctx_load(ApplyCtx *a, RandrBackend *b)
{
    memset(a, 0, sizeof *a);
    a->b = b;
    a->res = XRRGetScreenResourcesCurrent(b->dpy, b->root);
    if (!a->res)
        return false;
    a->n = MIN(a->res->noutput, (int)VA_DISP_MAX_OUTPUTS);
    a->oi = g_new0(XRROutputInfo *, (gsize)MAX(a->n, 1));
    a->ci = g_new0(XRRCrtcInfo *, (gsize)MAX(a->res->ncrtc, 1));
    for (int i = 0; i < a->n; i++) {
        a->oi[i] = XRRGetOutputInfo(b->dpy, a->res, a->res->outputs[i]);
        if (!a->oi[i])
            return false;
    }
    for (int i = 0; i < a->res->ncrtc; i++) {
        a->ci[i] = XRRGetCrtcInfo(b->dpy, a->res, a->res->crtcs[i]);
        if (!a->ci[i])
            return false;
    }
    return true;
}

static int crtc_index(const ApplyCtx *a, RRCrtc c)
{
    for (int i = 0; i < a->res->ncrtc; i++)
        if (a->res->crtcs[i] == c)
            return i;
    return -1;
}

static bool output_has_mode(const XRROutputInfo *oi, RRMode m)
{
    for (int i = 0; i < oi->nmode; i++)
        if (oi->modes[i] == m)
            return true;
    return false;
}

/* A mode of exactly w x h for output i: one the output has, else one the
 * screen has (added to the output), else a new CVT-RB mode. None on
 * failure. */
static RRMode mode_for(ApplyCtx *a, int i, uint32_t w, uint32_t h, GError **error)
{
    RandrBackend *b = a->b;
    XRROutputInfo *oi = a->oi[i];
    RRMode found = None;
    for (int k = 0; k < a->res->nmode; k++) {
        const XRRModeInfo *mi = &a->res->modes[k];
        if (mi->width != w || mi->height != h || (mi->modeFlags & RR_Interlace))
            continue;
        if (output_has_mode(oi, mi->id))
            return mi->id;
        if (found == None)
            found = mi->id;
    }
    if (found == None) {
        VaCvtMode cvt;
        if (!va_cvt_rb(w, h, RANDR_MODE_REFRESH, &cvt)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "no CVT timings for %ux%u", w, h);
            return None;
        }
        if (b->created->len >= RANDR_MAX_CREATED) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                        "too many modes of our own still exist");
            return None;
        }
        char name[64];
        snprintf(name, sizeof name, "%s%s", cvt.name, RANDR_MODE_SUFFIX);
        XRRModeInfo mi = {0};
        mi.width = cvt.width;
        mi.height = cvt.height;
        mi.dotClock = (unsigned long)cvt.dot_clock;
        mi.hSyncStart = cvt.hsync_start;
        mi.hSyncEnd = cvt.hsync_end;
        mi.hTotal = cvt.htotal;
        mi.vSyncStart = cvt.vsync_start;
        mi.vSyncEnd = cvt.vsync_end;
        mi.vTotal = cvt.vtotal;
        mi.modeFlags = RR_HSyncPositive | RR_VSyncNegative;
        mi.name = name;
        mi.nameLength = (unsigned)strlen(name);
        va_x11_trap_push(b->x);
        found = XRRCreateMode(b->dpy, b->root, &mi);
        int err = va_x11_trap_pop(b->x);
        if (err || found == None) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "creating mode %s failed (X error %d)", name, err);
            return None;
        }
        g_array_append_val(b->created, found);
        g_debug("display: created mode %s (%lu Hz clock)", name, mi.dotClock);
    }
    va_x11_trap_push(b->x);
    XRRAddOutputMode(b->dpy, a->res->outputs[i], found);
    int err = va_x11_trap_pop(b->x);
    if (err) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "adding a %ux%u mode to %s failed (X error %d)", w, h, oi->name, err);
        return None;
    }
    return found;
}

/* Switch a CRTC off. */
static bool crtc_off(ApplyCtx *a, int c)
{
    Status s = XRRSetCrtcConfig(a->b->dpy, a->res, a->res->crtcs[c], CurrentTime, 0, 0, None,
                                RR_Rotate_0, NULL, 0);
    return s == RRSetConfigSuccess;
}

static bool apply_once(RandrBackend *b, const VaDispWanted *w, GError **error)
{
    ApplyCtx a;
    bool ok = false;
    int *crtc_of = NULL;        /* per output: index of the CRTC it gets, -1 */
    bool *taken = NULL;         /* per CRTC */
    RRMode *mode_of = NULL;

    va_x11_trap_push(b->x);
    bool loaded = apply_ctx_load(&a, b);
    int err = va_x11_trap_pop(b->x);
    if (!loaded || err) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot read the RandR resources (X error %d)", err);
        goto out;
    }
    if ((unsigned)a.n != w->n_outputs) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "the outputs changed (%d now, %u in the layout)", a.n, w->n_outputs);
        goto out;
    }
    crtc_of = g_new(int, (gsize)MAX(a.n, 1));
    mode_of = g_new0(RRMode, (gsize)MAX(a.n, 1));
    taken = g_new0(bool, (gsize)MAX(a.res->ncrtc, 1));

    /* CRTCs: first every enabled output keeps the one it really uses
     * (unless another enabled output already claimed it: clones) ... */
    for (int i = 0; i < a.n; i++) {
        crtc_of[i] = -1;
        if (!w->outputs[i].enabled || a.oi[i]->crtc == None)
            continue;
        int c = crtc_index(&a, a.oi[i]->crtc);
        if (c >= 0 && !taken[c]) {
            crtc_of[i] = c;
            taken[c] = true;
        }
    }
    /* ... then the others get a free one they can drive. */
    for (int i = 0; i < a.n; i++) {
        if (!w->outputs[i].enabled || crtc_of[i] >= 0)
            continue;
        for (int k = 0; k < a.oi[i]->ncrtc && crtc_of[i] < 0; k++) {
            int c = crtc_index(&a, a.oi[i]->crtcs[k]);
            if (c >= 0 && !taken[c]) {
                crtc_of[i] = c;
                taken[c] = true;
            }
        }
        if (crtc_of[i] < 0) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                        "no free CRTC for output %s", a.oi[i]->name);
            goto out;
        }
    }

    /* Modes of the exact sizes. */
    for (int i = 0; i < a.n; i++) {
        if (!w->outputs[i].enabled)
            continue;
        mode_of[i] = mode_for(&a, i, w->outputs[i].width, w->outputs[i].height, error);
        if (mode_of[i] == None)
            goto out;
    }

    /* Off: CRTCs nobody gets, and those outside the new screen. */
    for (int c = 0; c < a.res->ncrtc; c++) {
        const XRRCrtcInfo *ci = a.ci[c];
        if (ci->mode == None)
            continue;
        bool outside = (int64_t)ci->x + ci->width > (int64_t)w->screen_width ||
                       (int64_t)ci->y + ci->height > (int64_t)w->screen_height;
        if (!taken[c] || outside) {
            if (!crtc_off(&a, c)) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "switching a CRTC off failed");
                goto out;
            }
        }
    }

    va_x11_trap_push(b->x);
    XRRSetScreenSize(b->dpy, b->root, (int)w->screen_width, (int)w->screen_height,
                     (int)w->screen_mm_width, (int)w->screen_mm_height);
    err = va_x11_trap_pop(b->x);
    if (err) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "setting the screen size %ux%u failed (X error %d)", w->screen_width,
                    w->screen_height, err);
        goto out;
    }

    for (int i = 0; i < a.n; i++) {
        if (!w->outputs[i].enabled)
            continue;
        RROutput out = a.res->outputs[i];
        va_x11_trap_push(b->x);
        Status s = XRRSetCrtcConfig(b->dpy, a.res, a.res->crtcs[crtc_of[i]], CurrentTime,
                                    w->outputs[i].x, w->outputs[i].y, mode_of[i], RR_Rotate_0,
                                    &out, 1);
        err = va_x11_trap_pop(b->x);
        if (s != RRSetConfigSuccess || err) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "setting %s to %ux%u+%d+%d failed (status %d, X error %d)",
                        a.oi[i]->name, w->outputs[i].width, w->outputs[i].height,
                        w->outputs[i].x, w->outputs[i].y, (int)s, err);
            goto out;
        }
    }
    ok = true;

out:
    apply_ctx_free(&a);
    g_free(crtc_of);
    g_free(mode_of);
    g_free(taken);
    return ok;
}

/* Delete the modes we created that no CRTC uses any more. */
static void delete_unused_modes(RandrBackend *b)
{
    if (b->created->len == 0)
        return;
    ApplyCtx a;
    va_x11_trap_push(b->x);
    if (!apply_ctx_load(&a, b)) {
        apply_ctx_free(&a);
        va_x11_trap_pop(b->x);
        return;
    }
    for (guint k = 0; k < b->created->len;) {
        RRMode m = g_array_index(b->created, RRMode, k);
        bool used = false, exists = false;
        for (int c = 0; c < a.res->ncrtc; c++)
            used |= a.ci[c]->mode == m;
        for (int i = 0; i < a.res->nmode; i++)
            exists |= a.res->modes[i].id == m;
        if (used) {
            k++;
            continue;
        }
        if (exists) {
            for (int i = 0; i < a.n; i++)
                if (output_has_mode(a.oi[i], m))
                    XRRDeleteOutputMode(b->dpy, a.res->outputs[i], m);
            XRRDestroyMode(b->dpy, m);
        }
        g_array_remove_index_fast(b->created, k);
    }
    apply_ctx_free(&a);
    int err = va_x11_trap_pop(b->x);
    if (err)
        g_debug("display: X error %d while deleting unused modes (ignored)", err);
}

static void wanted_from_state(const VaDispState *st, VaDispWanted *w)
{
    memset(w, 0, sizeof *w);
    w->n_outputs = st->n_outputs;
    for (unsigned i = 0; i < st->n_outputs; i++) {
        const VaDispOutput *o = &st->outputs[i];
        w->outputs[i].enabled = o->enabled && o->x >= 0 && o->y >= 0;
        w->outputs[i].x = o->x;
        w->outputs[i].y = o->y;
        w->outputs[i].width = o->width;
        w->outputs[i].height = o->height;
    }
    w->screen_width = st->screen_width;
    w->screen_height = st->screen_height;
    w->screen_mm_width = MAX(st->screen_mm_width, 1u);
    w->screen_mm_height = MAX(st->screen_mm_height, 1u);
}

static bool randr_apply(VaDispBackend *base, const VaDispWanted *w, GError **error)
{
    RandrBackend *b = (RandrBackend *)base;
    VaDispState before;
    bool have_before = randr_query(base, &before);

    XGrabServer(b->dpy);
    bool ok = apply_once(b, w, error);
    if (!ok && have_before) {
        VaDispWanted back;
        wanted_from_state(&before, &back);
        GError *e2 = NULL;
        if (!apply_once(b, &back, &e2)) {
            g_warning("display: restoring the previous layout failed too: %s", e2->message);
            g_error_free(e2);
        }
    }
    delete_unused_modes(b);
    XUngrabServer(b->dpy);
    XFlush(b->dpy);
    return ok;
}

static void randr_free(VaDispBackend *base)
{
    RandrBackend *b = (RandrBackend *)base;
    va_x11_remove_handler(b->x, randr_event, b);
    g_array_free(b->created, TRUE);
    g_free(b);
}

static const VaDispBackendOps randr_ops = {
    .query = randr_query,
    .apply = randr_apply,
    .free = randr_free,
};

VaDispBackend *va_display_randr_new(VaX11 *x, VaDispChangedFunc changed, void *user,
                                    GError **error)
{
    Display *dpy = va_x11_display(x);
    int ev, er, major = 0, minor = 0;
    if (!XRRQueryExtension(dpy, &ev, &er) || !XRRQueryVersion(dpy, &major, &minor) ||
        major < 1 || (major == 1 && minor < 3)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "the X server has no RandR 1.3 (it has %d.%d)", major, minor);
        return NULL;
    }
    if (ScreenCount(dpy) != 1)
        g_message("display: the X server has %d screens, only the default one is managed",
                  ScreenCount(dpy));
    RandrBackend *b = g_new0(RandrBackend, 1);
    b->base.ops = &randr_ops;
    b->x = x;
    b->dpy = dpy;
    b->root = va_x11_root(x);
    b->event_base = ev;
    b->error_base = er;
    b->changed = changed;
    b->user = user;
    b->created = g_array_new(FALSE, FALSE, sizeof(RRMode));
    /* Modes with our suffix were made by an earlier agent in this session:
     * ours to delete once unused, like the ones we create. */
    va_x11_trap_push(x);
    XRRScreenResources *res = XRRGetScreenResourcesCurrent(dpy, b->root);
    for (int i = 0; res && i < res->nmode; i++) {
        const XRRModeInfo *mi = &res->modes[i];
        size_t sl = strlen(RANDR_MODE_SUFFIX);
        if (mi->name && mi->nameLength > sl && b->created->len < RANDR_MAX_CREATED &&
            memcmp(mi->name + mi->nameLength - sl, RANDR_MODE_SUFFIX, sl) == 0)
            g_array_append_val(b->created, mi->id);
    }
    if (res)
        XRRFreeScreenResources(res);
    va_x11_trap_pop(x);
    va_x11_add_handler(x, randr_event, b);
    XRRSelectInput(dpy, b->root,
                   RRScreenChangeNotifyMask | RRCrtcChangeNotifyMask | RROutputChangeNotifyMask);
    XFlush(dpy);
    return &b->base;
}
