/* va-display-randr.c - the XRandR 1.3+ display backend (va-display-backend.h).
 *
 * Reads outputs with XRRGetScreenResourcesCurrent (no probing: that can
 * take seconds on real hardware). Applies a layout under XGrabServer with
 * an error trap: CRTCs that must go off (outputs disabled, or outside the
 * new screen) are switched off first, then the screen size is set (it can
 * only shrink once nothing lies outside it, and must grow before a CRTC is
 * placed beyond the old size), then every enabled output gets a CRTC (the
 * one it really uses where it can, else another from its possible list,
 * chosen as a bipartite matching: va-display-crtc.c) and a mode of exactly
 * the wanted size (an existing one, else a CVT reduced-blanking mode we
 * create, at a lower refresh if 60 Hz needs a pixel clock over 32 bits).
 * Modes we created and no longer use are deleted. A failure is reported,
 * not fatal: if any request that changes the screen had been sent, the
 * configuration read under the grab before the apply is put back (each
 * CRTC's mode, position, rotation and outputs, the screen size); a failure
 * before that (CRTC choice, mode timings, mode creation) touches nothing.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <X11/Xlib.h>
#include <X11/extensions/Xrandr.h>

#include "va-cvt.h"
#include "va-display-crtc.h"
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
        double refresh = RANDR_MODE_REFRESH;
        /* XRRModeInfo.dotClock goes out as 32 bits: a larger clock would
         * be cut off; a lower refresh that fits is used instead. */
        if (!va_cvt_rb_fit(w, h, RANDR_MODE_REFRESH, UINT32_MAX, &cvt, &refresh)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "no CVT timings for %ux%u", w, h);
            return None;
        }
        if (refresh != RANDR_MODE_REFRESH)
            g_message("display: %ux%u at %.0f Hz needs a pixel clock over 2^32 Hz; using "
                      "%.2f Hz", w, h, RANDR_MODE_REFRESH, refresh);
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

/* Applies w. *changed is set once a request that changes the screen's
 * configuration has been sent (before that, a failure left everything as
 * it was: nothing to restore). */
static bool apply_once(RandrBackend *b, const VaDispWanted *w, bool *changed, GError **error)
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

    /* CRTCs: a matching (va-display-crtc.c), outputs keeping the CRTC
     * they drive where they can. */
    if (a.res->ncrtc > (int)VA_CRTC_MAX)
        g_debug("display: %d CRTCs, only the first %u are used", a.res->ncrtc, VA_CRTC_MAX);
    VaCrtcOutput co[VA_DISP_MAX_OUTPUTS];
    for (int i = 0; i < a.n; i++) {
        co[i].wanted = w->outputs[i].enabled;
        co[i].current = a.oi[i]->crtc != None ? crtc_index(&a, a.oi[i]->crtc) : -1;
        if (co[i].current >= (int)VA_CRTC_MAX)
            co[i].current = -1;
        co[i].possible = 0;
        for (int k = 0; k < a.oi[i]->ncrtc; k++) {
            int c = crtc_index(&a, a.oi[i]->crtcs[k]);
            if (c >= 0 && c < (int)VA_CRTC_MAX)
                co[i].possible |= UINT64_C(1) << c;
        }
    }
    int unassigned = va_crtc_assign(co, (unsigned)a.n, (unsigned)a.res->ncrtc, crtc_of);
    if (unassigned >= 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "no free CRTC for output %s",
                    a.oi[unassigned]->name);
        goto out;
    }
    for (int i = 0; i < a.n; i++)
        if (crtc_of[i] >= 0)
            taken[crtc_of[i]] = true;

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
            *changed = true;
            if (!crtc_off(&a, c)) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "switching a CRTC off failed");
                goto out;
            }
        }
    }

    *changed = true;
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

/* The configuration found before an apply, to put back exactly (modes,
 * positions, rotations, clones) when the apply fails half way. */
typedef struct Saved {
    ApplyCtx a;                 /* resources and every CRTC's info */
    uint32_t width, height, mm_width, mm_height;
} Saved;

static bool save_state(RandrBackend *b, Saved *sv)
{
    memset(sv, 0, sizeof *sv);
    Window r;
    int gx, gy;
    unsigned gw = 0, gh = 0, gb, gd;
    va_x11_trap_push(b->x);
    bool ok = apply_ctx_load(&sv->a, b) &&
              XGetGeometry(b->dpy, b->root, &r, &gx, &gy, &gw, &gh, &gb, &gd);
    int err = va_x11_trap_pop(b->x);
    if (!ok || err) {
        apply_ctx_free(&sv->a);
        return false;
    }
    int scr = DefaultScreen(b->dpy);
    sv->width = gw;
    sv->height = gh;
    sv->mm_width = (uint32_t)MAX(DisplayWidthMM(b->dpy, scr), 1);
    sv->mm_height = (uint32_t)MAX(DisplayHeightMM(b->dpy, scr), 1);
    return true;
}

static const XRRCrtcInfo *saved_crtc(const Saved *sv, RRCrtc c)
{
    int k = crtc_index(&sv->a, c);
    return k >= 0 ? sv->a.ci[k] : NULL;
}

static bool crtc_same(const XRRCrtcInfo *x, const XRRCrtcInfo *y)
{
    if (x->mode != y->mode)
        return false;
    if (x->mode == None)
        return true;
    if (x->x != y->x || x->y != y->y || x->rotation != y->rotation || x->noutput != y->noutput)
        return false;
    for (int i = 0; i < x->noutput; i++)
        if (x->outputs[i] != y->outputs[i])
            return false;
    return true;
}

/* Puts sv back: CRTCs that differ from it go off, the screen gets its old
 * size, then those CRTCs get their old mode, place, rotation and outputs.
 * False (with a log line) if anything failed. */
static bool restore_state(RandrBackend *b, const Saved *sv)
{
    ApplyCtx now;
    bool ok = true;
    va_x11_trap_push(b->x);
    bool loaded = apply_ctx_load(&now, b);
    int err = va_x11_trap_pop(b->x);
    if (!loaded || err) {
        apply_ctx_free(&now);
        g_warning("display: cannot read the RandR resources to restore the layout");
        return false;
    }
    bool *redo = g_new0(bool, (gsize)MAX(now.res->ncrtc, 1));
    for (int c = 0; c < now.res->ncrtc; c++) {
        const XRRCrtcInfo *old = saved_crtc(sv, now.res->crtcs[c]);
        if (old && crtc_same(old, now.ci[c]))
            continue;
        redo[c] = old && old->mode != None;
        if (now.ci[c]->mode != None) {
            va_x11_trap_push(b->x);
            bool off = crtc_off(&now, c);
            err = va_x11_trap_pop(b->x);
            ok &= off && !err;
        }
    }
    va_x11_trap_push(b->x);
    XRRSetScreenSize(b->dpy, b->root, (int)sv->width, (int)sv->height, (int)sv->mm_width,
                     (int)sv->mm_height);
    err = va_x11_trap_pop(b->x);
    ok &= !err;
    for (int c = 0; c < now.res->ncrtc; c++) {
        if (!redo[c])
            continue;
        const XRRCrtcInfo *old = saved_crtc(sv, now.res->crtcs[c]);
        va_x11_trap_push(b->x);
        Status st = XRRSetCrtcConfig(b->dpy, now.res, now.res->crtcs[c], CurrentTime, old->x,
                                     old->y, old->mode, old->rotation, old->outputs,
                                     old->noutput);
        err = va_x11_trap_pop(b->x);
        ok &= st == RRSetConfigSuccess && !err;
    }
    g_free(redo);
    apply_ctx_free(&now);
    if (!ok)
        g_warning("display: restoring the previous layout failed in part");
    return ok;
}

static bool randr_apply(VaDispBackend *base, const VaDispWanted *w, GError **error)
{
    RandrBackend *b = (RandrBackend *)base;
    XGrabServer(b->dpy);
    /* Read under the grab: nobody changes it between this and the apply. */
    Saved sv;
    bool saved = save_state(b, &sv);
    bool changed = false;
    bool ok = apply_once(b, w, &changed, error);
    if (!ok && changed) {
        if (saved)
            restore_state(b, &sv);
        else
            g_warning("display: the apply failed half way and the previous layout could not "
                      "be read to restore it");
    } else if (!ok) {
        g_debug("display: the apply failed before changing anything: nothing to restore");
    }
    if (saved)
        apply_ctx_free(&sv.a);
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
    int ev, er, major = 0, minor = 0, opcode;
    /* Asked through the core first: libXrandr's own query keeps 32 bytes
     * per display it never frees when the server has no RandR. */
    if (!XQueryExtension(dpy, "RANDR", &opcode, &ev, &er)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "the X server has no RandR extension");
        return NULL;
    }
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
