/* va-clipboard-x11.c - the clipboard's X11 backend (Xlib + XFixes): owning
 * CLIPBOARD and PRIMARY for the client and answering X requestors (TARGETS,
 * TIMESTAMP, MULTIPLE, text and image targets, INCR fed as the client's
 * data streams in), and following guest owners with XFixes (TARGETS, data
 * conversion with INCR receive, streamed to the core).
 *
 * Text: the client's UTF-8 is offered as UTF8_STRING, text/plain;charset=
 * utf-8, TEXT (answered as UTF8_STRING, which ICCCM allows) and STRING
 * (converted to ISO-8859-1: characters outside Latin-1 and invalid UTF-8
 * become '?', so a STRING requestor always gets valid Latin-1). Guest STRING
 * data is converted from Latin-1 to UTF-8.
 *
 * Every wait on an application has a timeout (va_clip_app_timeout_ms). */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <X11/Xatom.h>
#include <X11/Xlib.h>
#include <X11/extensions/Xfixes.h>

#include "va-clipboard-backend.h"
#include "vdp-ratelimit.h"

/* Pieces written to a requestor (direct appends and INCR steps), and the
 * size above which INCR is used: small enough for any server's request size
 * (also bounded by XExtendedMaxRequestSize at run time) and for the X
 * server's memory; large enough that 64 MiB takes few round trips. */
#define VA_CLIP_X11_PIECE (256u * 1024u)
/* SelectionRequests kept per selection (waiting for the client's data or
 * for INCR steps). An application cannot make us grow beyond this. */
#define VA_CLIP_X11_MAX_REQUESTS 64u
/* Pairs accepted in one MULTIPLE request. */
#define VA_CLIP_X11_MAX_MULTIPLE 32u
/* Targets read from a guest owner's TARGETS answer. */
#define VA_CLIP_X11_MAX_TARGETS 1024u
/* Bytes read per XGetWindowProperty when fetching guest data. */
#define VA_CLIP_X11_READ_PIECE (1024u * 1024u)
/* How long to wait for a server timestamp when taking a selection. */
#define VA_CLIP_X11_TIME_TIMEOUT_MS 2000
/* Period of the check for INCR requestors that stopped reading. */
#define VA_CLIP_X11_TICK_MS 500u
/* Bytes of Latin-1 converted to UTF-8 per write to the core. */
#define VA_CLIP_X11_CONV_BUF 8192u
/* Bytes of a ChangeProperty request that are not data (head, margin). */
#define VA_CLIP_X11_REQ_OVERHEAD 256u
/* Properties used in turn for the TARGETS requests on a selection: each
 * owner change asks the new owner with the next one, so a late answer of
 * one of the previous owners (it names its property) is told apart from
 * the current owner's. */
#define VA_CLIP_X11_TARGETS_PROPS 4u

#define NTYPES (VD_AGENT_CLIPBOARD_IMAGE_JPG + 1)

typedef struct X11Backend X11Backend;
typedef struct Stream Stream;
typedef struct Req Req;

typedef enum ItemState {
    IT_WAIT,        /* waiting for a REQUEST to be sent for its type */
    IT_ASKED,       /* REQUEST sent, waiting for its answer */
    IT_DIRECT,      /* data appended to the property as it comes */
    IT_INCR,        /* INCR: a piece per property deletion */
    IT_DONE,
    IT_FAILED,
} ItemState;

typedef struct Item {
    Req *req;
    Atom target, property;
    uint32_t vdtype;
    bool latin1;            /* STRING: convert UTF-8 to Latin-1 */
    ItemState st;
    Stream *stream;
    uint64_t off;           /* stream bytes consumed */
    bool resolved;          /* counts as answered for SelectionNotify */
    bool incr_wants;        /* the requestor deleted the property */
    bool incr_last;         /* the zero-length end piece was written */
    gint64 deadline;        /* INCR: the requestor must read by then */
    uint8_t carry[4];       /* latin1: an incomplete UTF-8 sequence */
    unsigned ncarry;
} Item;

struct Req {
    X11Backend *b;
    unsigned sel;
    Window requestor;
    Atom target, property;
    Time time;
    bool multiple;
    Atom *pairs;            /* MULTIPLE: the pairs as read */
    unsigned npairs;
    GPtrArray *items;       /* of Item*, owned */
    bool notified;
};

struct Stream {
    unsigned sel;
    uint32_t vdtype;
    uint64_t size, got;
    bool receiving, failed;
    GByteArray *buf;        /* bytes from base on */
    uint64_t base;
    GPtrArray *items;       /* of Item*, not owned */
};

typedef struct GuestSel {
    Time owner_time;        /* selection timestamp of the current owner */
    Window owner;
    /* TARGETS */
    bool targets_pending;
    gint64 targets_deadline;
    unsigned targets_slot;  /* prop_targets[sel][slot] of the current request */
    Time targets_time;      /* its time */
    Atom type_target[NTYPES];
    /* data fetch */
    bool fetching;
    bool fetch_incr;
    bool fetch_latin1;
    uint32_t fetch_type;
    gint64 fetch_deadline;
} GuestSel;

struct X11Backend {
    VaClipBackend base;
    VaX11 *x;
    Display *dpy;
    Window win;
    GMainContext *ctx;
    int xfixes_event;
    size_t piece;
    Atom sel_atom[VA_CLIP_NSEL];
    Atom prop_targets[VA_CLIP_NSEL][VA_CLIP_X11_TARGETS_PROPS], prop_data[VA_CLIP_NSEL];
    Atom a_targets, a_timestamp, a_multiple, a_incr, a_atom_pair, a_utf8, a_text_plain_utf8,
        a_text_plain_UTF8, a_text, a_string, a_integer;
    Atom a_png, a_bmp, a_xbmp, a_msbmp, a_winbmp, a_tiff, a_jpeg;

    /* host -> guest */
    bool claimed[VA_CLIP_NSEL];
    Time claim_time[VA_CLIP_NSEL];
    uint32_t types[VA_CLIP_NSEL][NTYPES];
    unsigned ntypes[VA_CLIP_NSEL];
    GPtrArray *reqs;            /* of Req*, owned */
    bool asked[VA_CLIP_NSEL];
    Stream *receiving[VA_CLIP_NSEL];
    GPtrArray *streams;         /* of Stream*, owned */

    /* guest -> host */
    GuestSel g[VA_CLIP_NSEL];

    GSource *tick;
    VdpRateLimit rl;
};

/* Rate-limited log of something an application did. */
#define APP_LOG(b, ...)                                    \
    do {                                                   \
        if (vdp_rate_ok(&(b)->rl, "X clipboard"))           \
            g_message(__VA_ARGS__);                        \
    } while (0)

static void update_tick(X11Backend *b);

static int sel_index(X11Backend *b, Atom a)
{
    for (unsigned i = 0; i < VA_CLIP_NSEL; i++)
        if (b->sel_atom[i] == a)
            return (int)i;
    return -1;
}

static gint64 deadline_in(X11Backend *b)
{
    return g_get_monotonic_time() + (gint64)va_clip_app_timeout_ms(b->base.core) * 1000;
}

/* ---- target <-> type ---- */

/* Guest targets in order of preference for each type. */
static uint32_t target_to_type(X11Backend *b, Atom t, bool *latin1)
{
    *latin1 = false;
    if (t == b->a_utf8 || t == b->a_text_plain_utf8 || t == b->a_text_plain_UTF8 || t == b->a_text)
        return VD_AGENT_CLIPBOARD_UTF8_TEXT;
    if (t == b->a_string) {
        *latin1 = true;
        return VD_AGENT_CLIPBOARD_UTF8_TEXT;
    }
    if (t == b->a_png)
        return VD_AGENT_CLIPBOARD_IMAGE_PNG;
    if (t == b->a_bmp || t == b->a_xbmp || t == b->a_msbmp || t == b->a_winbmp)
        return VD_AGENT_CLIPBOARD_IMAGE_BMP;
    if (t == b->a_tiff)
        return VD_AGENT_CLIPBOARD_IMAGE_TIFF;
    if (t == b->a_jpeg)
        return VD_AGENT_CLIPBOARD_IMAGE_JPG;
    return VD_AGENT_CLIPBOARD_NONE;
}

/* Lower number: better target for its type when a guest owner offers
 * several (UTF8_STRING beats TEXT beats STRING). */
static int target_rank(X11Backend *b, Atom t)
{
    if (t == b->a_utf8)
        return 0;
    if (t == b->a_text_plain_utf8 || t == b->a_text_plain_UTF8)
        return 1;
    if (t == b->a_string)
        return 3;
    if (t == b->a_text)
        return 4;   /* TEXT may come back as COMPOUND_TEXT: last resort */
    return 0;
}

static unsigned type_targets(X11Backend *b, uint32_t type, Atom *out)
{
    switch (type) {
    case VD_AGENT_CLIPBOARD_UTF8_TEXT:
        out[0] = b->a_utf8;
        out[1] = b->a_text_plain_utf8;
        out[2] = b->a_text;
        out[3] = b->a_string;
        return 4;
    case VD_AGENT_CLIPBOARD_IMAGE_PNG:
        out[0] = b->a_png;
        return 1;
    case VD_AGENT_CLIPBOARD_IMAGE_BMP:
        out[0] = b->a_bmp;
        out[1] = b->a_xbmp;
        out[2] = b->a_msbmp;
        return 3;
    case VD_AGENT_CLIPBOARD_IMAGE_TIFF:
        out[0] = b->a_tiff;
        return 1;
    case VD_AGENT_CLIPBOARD_IMAGE_JPG:
        out[0] = b->a_jpeg;
        return 1;
    default:
        return 0;
    }
}

/* ---- UTF-8 -> Latin-1 ---- */

/* Convert in to out (out has room for n + 4 bytes); an incomplete
 * sequence at the end is kept in the item's carry unless final. */
static size_t utf8_to_latin1(Item *it, const uint8_t *in, size_t n, uint8_t *out, bool final)
{
    size_t o = 0, i = 0;
    uint8_t seq[4];
    while (i < n || (final && it->ncarry > 0)) {
        /* Build the next sequence from carry + input. */
        unsigned have = it->ncarry;
        memcpy(seq, it->carry, have);
        uint8_t c0 = have ? seq[0] : in[i];
        unsigned need = c0 < 0x80 ? 1 : (c0 & 0xE0) == 0xC0 ? 2 : (c0 & 0xF0) == 0xE0 ? 3
                        : (c0 & 0xF8) == 0xF0 ? 4 : 1;
        while (have < need && i < n) {
            uint8_t c = in[i];
            if (have > 0 && (c & 0xC0) != 0x80)
                break;
            seq[have++] = c;
            i++;
        }
        if (have == 0) {      /* carry was empty: take one byte */
            seq[have++] = in[i++];
        }
        if (have < need) {
            bool cut = i < n || final;    /* a non-continuation byte or the end */
            if (!cut) {
                memcpy(it->carry, seq, have);
                it->ncarry = have;
                return o;
            }
            out[o++] = '?';
            it->ncarry = 0;
            continue;
        }
        it->ncarry = 0;
        uint32_t cp;
        if (need == 1)
            cp = seq[0] < 0x80 ? seq[0] : '?';
        else if (need == 2)
            cp = ((uint32_t)(seq[0] & 0x1F) << 6) | (seq[1] & 0x3F);
        else
            cp = 0x100;   /* 3 and 4 byte sequences are all above Latin-1 */
        if (need == 2 && cp < 0x80)
            cp = '?';     /* overlong */
        out[o++] = cp < 0x100 ? (uint8_t)cp : '?';
    }
    return o;
}

/* ---- requests from X applications (host -> guest) ---- */

static void item_detach(Item *it)
{
    if (it->stream) {
        g_ptr_array_remove(it->stream->items, it);
        it->stream = NULL;
    }
}

static void req_free(Req *r)
{
    for (guint i = 0; i < r->items->len; i++) {
        Item *it = g_ptr_array_index(r->items, i);
        item_detach(it);
        g_free(it);
    }
    g_ptr_array_free(r->items, TRUE);
    g_free(r->pairs);
    g_free(r);
}

static void send_notify(X11Backend *b, Window requestor, Atom sel, Atom target, Atom property,
                        Time time)
{
    XEvent ev = {0};
    ev.xselection.type = SelectionNotify;
    ev.xselection.display = b->dpy;
    ev.xselection.requestor = requestor;
    ev.xselection.selection = sel;
    ev.xselection.target = target;
    ev.xselection.property = property;
    ev.xselection.time = time;
    va_x11_trap_push(b->x);
    XSendEvent(b->dpy, requestor, False, NoEventMask, &ev);
    va_x11_trap_pop(b->x);
}

static bool req_finished(Req *r)
{
    if (!r->notified)
        return false;
    for (guint i = 0; i < r->items->len; i++) {
        Item *it = g_ptr_array_index(r->items, i);
        if (it->st != IT_DONE && it->st != IT_FAILED)
            return false;
    }
    return true;
}

/* Send the SelectionNotify once every item is answered; free finished
 * requests. */
static void req_check(Req *r)
{
    X11Backend *b = r->b;
    if (!r->notified) {
        for (guint i = 0; i < r->items->len; i++)
            if (!((Item *)g_ptr_array_index(r->items, i))->resolved)
                return;
        Atom prop = r->property;
        if (r->multiple) {
            /* Refused pairs get property None, as ICCCM says. */
            for (guint i = 0; i < r->items->len && 2 * i + 1 < r->npairs; i++) {
                Item *it = g_ptr_array_index(r->items, i);
                if (it->st == IT_FAILED)
                    r->pairs[2 * i + 1] = None;
            }
            va_x11_trap_push(b->x);
            XChangeProperty(b->dpy, r->requestor, r->property, b->a_atom_pair, 32,
                            PropModeReplace, (unsigned char *)r->pairs, (int)r->npairs);
            va_x11_trap_pop(b->x);
        } else {
            Item *it = g_ptr_array_index(r->items, 0);
            if (it->st == IT_FAILED)
                prop = None;
        }
        send_notify(b, r->requestor, b->sel_atom[r->sel], r->target, prop, r->time);
        r->notified = true;
    }
    if (req_finished(r)) {
        g_ptr_array_remove(b->reqs, r);
        req_free(r);
    }
}

static void item_fail(Item *it)
{
    item_detach(it);
    it->st = IT_FAILED;
    it->resolved = true;
}

/* Write to a requestor's property; false if the requestor is gone. */
static bool put_prop(X11Backend *b, Window w, Atom prop, Atom type, int format, int mode,
                     const void *data, size_t n)
{
    va_x11_trap_push(b->x);
    XChangeProperty(b->dpy, w, prop, type, format, mode, (const unsigned char *)data, (int)n);
    return va_x11_trap_pop(b->x) == 0;
}

static Atom item_type_atom(X11Backend *b, Item *it)
{
    if (it->latin1)
        return b->a_string;
    if (it->target == b->a_text)
        return b->a_utf8;
    return it->target;
}

static void stream_trim(X11Backend *b, Stream *s);

/* Write the next INCR piece if the requestor waits for one and we have it. */
static void incr_pump(X11Backend *b, Item *it)
{
    Stream *s = it->stream;
    Req *r = it->req;
    if (!s || it->st != IT_INCR || !it->incr_wants)
        return;
    uint64_t avail = s->got - it->off;
    uint8_t *conv = NULL;
    size_t n = 0;
    const uint8_t *src = NULL;
    bool ended = !s->receiving && s->got == s->size;
    while (avail > 0 && n == 0) {
        size_t take = (size_t)MIN(avail, (uint64_t)b->piece);
        src = s->buf->data + (it->off - s->base);
        it->off += take;
        avail -= take;
        if (it->latin1) {
            g_free(conv);
            conv = g_malloc(take + 4);
            n = utf8_to_latin1(it, src, take, conv, ended && avail == 0);
            src = conv;
        } else {
            n = take;
        }
    }
    if (n == 0 && it->latin1 && ended && it->ncarry > 0) {
        conv = g_malloc(8);
        n = utf8_to_latin1(it, NULL, 0, conv, true);
        src = conv;
    }
    bool ok = true;
    if (n > 0) {
        ok = put_prop(b, r->requestor, it->property, item_type_atom(b, it), 8, PropModeReplace,
                      src, n);
        it->incr_wants = false;
        it->deadline = deadline_in(b);
    } else if (ended) {
        ok = put_prop(b, r->requestor, it->property, item_type_atom(b, it), 8, PropModeReplace,
                      "", 0);
        it->incr_wants = false;
        it->incr_last = true;
        it->deadline = deadline_in(b);
    }
    g_free(conv);
    if (!ok) {
        APP_LOG(b, "clipboard: requestor 0x%lx went away during an INCR transfer", r->requestor);
        item_fail(it);
    }
    stream_trim(b, s);
}

static void stream_free(X11Backend *b, Stream *s)
{
    for (guint i = 0; i < s->items->len; i++)
        ((Item *)g_ptr_array_index(s->items, i))->stream = NULL;
    g_ptr_array_free(s->items, TRUE);
    g_byte_array_unref(s->buf);
    if (b->receiving[s->sel] == s)
        b->receiving[s->sel] = NULL;
    g_ptr_array_remove(b->streams, s);
    g_free(s);
}

static size_t total_backlog(X11Backend *b)
{
    size_t n = 0;
    for (guint i = 0; i < b->streams->len; i++)
        n += ((Stream *)g_ptr_array_index(b->streams, i))->buf->len;
    return n;
}

/* Drop the bytes every INCR reader has consumed (all of them when none is
 * left). */
static void stream_drop_consumed(Stream *s)
{
    uint64_t min = s->got;
    for (guint i = 0; i < s->items->len; i++) {
        Item *it = g_ptr_array_index(s->items, i);
        if (it->st == IT_INCR && it->off < min)
            min = it->off;
    }
    if (min > s->base) {
        g_byte_array_remove_range(s->buf, 0, (guint)(min - s->base));
        s->base = min;
    }
}

static void stream_trim(X11Backend *b, Stream *s)
{
    stream_drop_consumed(s);
    va_clip_set_backlog(b->base.core, total_backlog(b));
}

/* Free the streams that are complete and that nobody reads any more, and
 * drop what no reader needs from the others: a reader given up (gone,
 * timed out) while the stream is still coming must not keep its bytes
 * counted, or the core would stay paused with nothing left to drain it. */
static void stream_gc(X11Backend *b)
{
    for (guint i = 0; i < b->streams->len;) {
        Stream *s = g_ptr_array_index(b->streams, i);
        if (!s->receiving && s->items->len == 0) {
            stream_free(b, s);
        } else {
            stream_drop_consumed(s);
            i++;
        }
    }
    va_clip_set_backlog(b->base.core, total_backlog(b));
}

static void kick(X11Backend *b, unsigned sel);

static void all_reqs_check(X11Backend *b)
{
    /* req_check may free the request: iterate over a copy */
    GPtrArray *copy = g_ptr_array_copy(b->reqs, NULL, NULL);
    for (guint i = 0; i < copy->len; i++) {
        Req *r = g_ptr_array_index(copy, i);
        if (g_ptr_array_find(b->reqs, r, NULL))
            req_check(r);
    }
    g_ptr_array_free(copy, TRUE);
    stream_gc(b);
    update_tick(b);
}

/* Fail every item of sel in one of the states (bit mask of ItemState). */
static void fail_items(X11Backend *b, unsigned sel, unsigned states)
{
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *r = g_ptr_array_index(b->reqs, i);
        if (r->sel != sel)
            continue;
        for (guint j = 0; j < r->items->len; j++) {
            Item *it = g_ptr_array_index(r->items, j);
            if (states & (1u << it->st))
                item_fail(it);
        }
    }
}

static void kick(X11Backend *b, unsigned sel)
{
    while (!b->asked[sel]) {
        Item *first = NULL;
        for (guint i = 0; i < b->reqs->len && !first; i++) {
            Req *r = g_ptr_array_index(b->reqs, i);
            if (r->sel != sel)
                continue;
            for (guint j = 0; j < r->items->len && !first; j++) {
                Item *it = g_ptr_array_index(r->items, j);
                if (it->st == IT_WAIT)
                    first = it;
            }
        }
        if (!first)
            break;
        uint32_t type = first->vdtype;
        bool ok = va_clip_want_data(b->base.core, sel, type);
        for (guint i = 0; i < b->reqs->len; i++) {
            Req *r = g_ptr_array_index(b->reqs, i);
            if (r->sel != sel)
                continue;
            for (guint j = 0; j < r->items->len; j++) {
                Item *it = g_ptr_array_index(r->items, j);
                if (it->st == IT_WAIT && it->vdtype == type) {
                    if (ok)
                        it->st = IT_ASKED;
                    else
                        item_fail(it);
                }
            }
        }
        b->asked[sel] = ok;
    }
}

static void item_join(X11Backend *b, Item *it, Stream *s)
{
    Req *r = it->req;
    it->stream = s;
    it->off = s->got;
    g_ptr_array_add(s->items, it);
    if (s->size <= b->piece) {
        it->st = IT_DIRECT;
        if (!put_prop(b, r->requestor, it->property, item_type_atom(b, it), 8, PropModeReplace,
                      "", 0))
            item_fail(it);
        return;
    }
    /* INCR: the value is a lower bound of the size (STRING shrinks). */
    long lower = (long)MIN(it->latin1 ? s->size / 4 : s->size, (uint64_t)LONG_MAX);
    va_x11_trap_push(b->x);
    XChangeProperty(b->dpy, r->requestor, it->property, b->a_incr, 32, PropModeReplace,
                    (unsigned char *)&lower, 1);
    if (va_x11_trap_pop(b->x) != 0) {
        item_fail(it);
        return;
    }
    it->st = IT_INCR;
    it->resolved = true;
    it->incr_wants = false;
    it->deadline = deadline_in(b);
}

static void x_data_begin(VaClipBackend *base, unsigned sel, uint32_t type, uint64_t size)
{
    X11Backend *b = (X11Backend *)base;
    Stream *s = g_new0(Stream, 1);
    s->sel = sel;
    s->vdtype = type;
    s->size = size;
    s->receiving = true;
    s->buf = g_byte_array_new();
    s->items = g_ptr_array_new();
    g_ptr_array_add(b->streams, s);
    b->receiving[sel] = s;
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *r = g_ptr_array_index(b->reqs, i);
        if (r->sel != sel)
            continue;
        for (guint j = 0; j < r->items->len; j++) {
            Item *it = g_ptr_array_index(r->items, j);
            if (it->st == IT_ASKED && it->vdtype == type)
                item_join(b, it, s);
        }
    }
    all_reqs_check(b);
}

static void x_data_chunk(VaClipBackend *base, unsigned sel, const uint8_t *p, size_t n)
{
    X11Backend *b = (X11Backend *)base;
    Stream *s = b->receiving[sel];
    if (!s)
        return;
    bool keep = false;
    GPtrArray *copy = g_ptr_array_copy(s->items, NULL, NULL);
    for (guint i = 0; i < copy->len; i++) {
        Item *it = g_ptr_array_index(copy, i);
        if (it->st == IT_DIRECT) {
            Req *r = it->req;
            bool final = s->got + n == s->size;
            for (size_t o = 0; o < n && it->st == IT_DIRECT;) {
                size_t take = MIN(n - o, b->piece);
                const uint8_t *src = p + o;
                uint8_t *conv = NULL;
                size_t len = take;
                if (it->latin1) {
                    conv = g_malloc(take + 8);
                    len = utf8_to_latin1(it, src, take, conv, final && o + take == n);
                    src = conv;
                }
                if (len > 0 && !put_prop(b, r->requestor, it->property, item_type_atom(b, it), 8,
                                         PropModeAppend, src, len)) {
                    APP_LOG(b, "clipboard: requestor 0x%lx went away", r->requestor);
                    item_fail(it);
                }
                g_free(conv);
                o += take;
            }
            it->off += n;
        } else if (it->st == IT_INCR) {
            keep = true;
        }
    }
    g_ptr_array_free(copy, TRUE);
    s->got += n;
    if (keep) {
        g_byte_array_append(s->buf, p, (guint)n);
    } else {
        g_byte_array_set_size(s->buf, 0);
        s->base = s->got;
    }
    copy = g_ptr_array_copy(s->items, NULL, NULL);
    for (guint i = 0; i < copy->len; i++)
        if (((Item *)g_ptr_array_index(copy, i))->stream == s)
            incr_pump(b, g_ptr_array_index(copy, i));
    g_ptr_array_free(copy, TRUE);
    stream_trim(b, s);
}

static void x_data_end(VaClipBackend *base, unsigned sel, bool ok)
{
    X11Backend *b = (X11Backend *)base;
    b->asked[sel] = false;
    Stream *s = b->receiving[sel];
    if (s) {
        s->receiving = false;
        b->receiving[sel] = NULL;
        GPtrArray *copy = g_ptr_array_copy(s->items, NULL, NULL);
        for (guint i = 0; i < copy->len; i++) {
            Item *it = g_ptr_array_index(copy, i);
            if (!ok) {
                if (it->st == IT_DIRECT) {
                    va_x11_trap_push(b->x);
                    XDeleteProperty(b->dpy, it->req->requestor, it->property);
                    va_x11_trap_pop(b->x);
                } else if (it->st == IT_INCR) {
                    /* INCR cannot say "failed": stop without the end piece
                     * so the partial data is never taken for the whole. */
                    APP_LOG(b, "clipboard: the client's data ended early; INCR transfer to "
                               "0x%lx stopped", it->req->requestor);
                }
                item_fail(it);
            } else if (it->st == IT_DIRECT) {
                if (it->latin1 && it->ncarry > 0) {
                    uint8_t tail[8];
                    size_t n = utf8_to_latin1(it, NULL, 0, tail, true);
                    put_prop(b, it->req->requestor, it->property, b->a_string, 8, PropModeAppend,
                             tail, n);
                }
                item_detach(it);
                it->st = IT_DONE;
                it->resolved = true;
            } else if (it->st == IT_INCR) {
                incr_pump(b, it);
            }
        }
        g_ptr_array_free(copy, TRUE);
    }
    /* Items asked but not joined (refused, other type, timeout). */
    fail_items(b, sel, 1u << IT_ASKED);
    all_reqs_check(b);
    kick(b, sel);
    all_reqs_check(b);
}

/* Answer TARGETS/TIMESTAMP at once; a data target becomes a waiting item. */
static void item_setup(X11Backend *b, Req *r, Item *it)
{
    unsigned sel = r->sel;
    if (it->property == None) {
        item_fail(it);
        return;
    }
    if (it->target == b->a_targets) {
        Atom list[3 + 4 * NTYPES];
        unsigned n = 0;
        list[n++] = b->a_targets;
        list[n++] = b->a_timestamp;
        list[n++] = b->a_multiple;
        for (unsigned i = 0; i < b->ntypes[sel]; i++)
            n += type_targets(b, b->types[sel][i], list + n);
        it->st = put_prop(b, r->requestor, it->property, XA_ATOM, 32, PropModeReplace, list, n)
                     ? IT_DONE : IT_FAILED;
        it->resolved = true;
        return;
    }
    if (it->target == b->a_timestamp) {
        long t = (long)b->claim_time[sel];
        it->st = put_prop(b, r->requestor, it->property, XA_INTEGER, 32, PropModeReplace, &t, 1)
                     ? IT_DONE : IT_FAILED;
        it->resolved = true;
        return;
    }
    bool latin1;
    uint32_t type = target_to_type(b, it->target, &latin1);
    bool offered = false;
    for (unsigned i = 0; i < b->ntypes[sel]; i++)
        offered |= b->types[sel][i] == type;
    if (type == VD_AGENT_CLIPBOARD_NONE || !offered) {
        item_fail(it);
        return;
    }
    it->vdtype = type;
    it->latin1 = latin1;
    /* A request already asked for this type joins it. */
    it->st = IT_WAIT;
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *o = g_ptr_array_index(b->reqs, i);
        if (o->sel != sel)
            continue;
        for (guint j = 0; j < o->items->len; j++) {
            Item *x = g_ptr_array_index(o->items, j);
            if (x != it && x->st == IT_ASKED && x->vdtype == type && !b->receiving[sel])
                it->st = IT_ASKED;
        }
    }
}

static Item *item_new(Req *r, Atom target, Atom property)
{
    Item *it = g_new0(Item, 1);
    it->req = r;
    it->target = target;
    it->property = property;
    it->st = IT_WAIT;
    g_ptr_array_add(r->items, it);
    return it;
}

static void refuse(X11Backend *b, const XSelectionRequestEvent *e)
{
    send_notify(b, e->requestor, e->selection, e->target, None, e->time);
}

static unsigned reqs_on(X11Backend *b, unsigned sel)
{
    unsigned n = 0;
    for (guint i = 0; i < b->reqs->len; i++)
        n += ((Req *)g_ptr_array_index(b->reqs, i))->sel == sel;
    return n;
}

static void on_selection_request(X11Backend *b, const XSelectionRequestEvent *e)
{
    int si = sel_index(b, e->selection);
    if (si < 0 || e->owner != b->win || !b->claimed[si]) {
        refuse(b, e);
        return;
    }
    unsigned sel = (unsigned)si;
    /* X times are 32-bit and wrap (every 49.7 days): compare them on the
     * circle, as the server does. */
    if (e->time != CurrentTime && b->claim_time[sel] != CurrentTime &&
        (int32_t)(uint32_t)(e->time - b->claim_time[sel]) < 0) {
        refuse(b, e);    /* a request from before we owned it (ICCCM) */
        return;
    }
    if (reqs_on(b, sel) >= VA_CLIP_X11_MAX_REQUESTS) {
        APP_LOG(b, "clipboard: too many requests waiting on %s; refusing 0x%lx",
                sel ? "PRIMARY" : "CLIPBOARD", e->requestor);
        refuse(b, e);
        return;
    }
    Req *r = g_new0(Req, 1);
    r->b = b;
    r->sel = sel;
    r->requestor = e->requestor;
    r->target = e->target;
    r->property = e->property != None ? e->property : e->target;   /* obsolete requestors */
    r->time = e->time;
    r->items = g_ptr_array_new();
    g_ptr_array_add(b->reqs, r);
    /* Learn when the requestor window goes away (and, for INCR, when it
     * deletes a property: the mask is the same for every request so that a
     * second request never drops what a running INCR needs). */
    if (r->requestor != b->win) {
        va_x11_trap_push(b->x);
        XSelectInput(b->dpy, r->requestor, PropertyChangeMask | StructureNotifyMask);
        va_x11_trap_pop(b->x);
    }

    if (e->target == b->a_multiple) {
        r->multiple = true;
        Atom type = None;
        int format = 0;
        unsigned long nitems = 0, after = 0;
        unsigned char *data = NULL;
        va_x11_trap_push(b->x);
        int st = XGetWindowProperty(b->dpy, r->requestor, e->property, 0,
                                    2 * VA_CLIP_X11_MAX_MULTIPLE, False, AnyPropertyType, &type,
                                    &format, &nitems, &after, &data);
        int err = va_x11_trap_pop(b->x);
        if (e->property == None || st != Success || err || format != 32 || nitems % 2 ||
            nitems == 0 || after > 0) {
            APP_LOG(b, "clipboard: bad MULTIPLE request from 0x%lx refused", r->requestor);
            if (data)
                XFree(data);
            r->multiple = false;
            Item *it = item_new(r, e->target, None);
            item_fail(it);
        } else {
            r->npairs = (unsigned)nitems;
            r->pairs = g_new(Atom, nitems);
            memcpy(r->pairs, data, nitems * sizeof(Atom));   /* format 32 = longs */
            XFree(data);
            for (unsigned i = 0; i < r->npairs; i += 2) {
                Item *it = item_new(r, r->pairs[i], r->pairs[i + 1]);
                if (it->target == b->a_multiple)
                    item_fail(it);
                else
                    item_setup(b, r, it);
            }
        }
    } else {
        item_setup(b, r, item_new(r, e->target, r->property));
    }
    kick(b, sel);
    all_reqs_check(b);
}

/* The requestor deleted a property: the next INCR piece. */
static void on_property_delete(X11Backend *b, const XPropertyEvent *e)
{
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *r = g_ptr_array_index(b->reqs, i);
        if (r->requestor != e->window)
            continue;
        for (guint j = 0; j < r->items->len; j++) {
            Item *it = g_ptr_array_index(r->items, j);
            if (it->st != IT_INCR || it->property != e->atom || !r->notified)
                continue;
            if (it->incr_last) {
                item_detach(it);
                it->st = IT_DONE;
            } else {
                it->incr_wants = true;
                it->deadline = deadline_in(b);
                incr_pump(b, it);
            }
        }
    }
    all_reqs_check(b);
}

static void on_window_gone(X11Backend *b, Window w)
{
    bool any = false;
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *r = g_ptr_array_index(b->reqs, i);
        if (r->requestor != w)
            continue;
        any = true;
        r->notified = true;     /* nobody to notify */
        for (guint j = 0; j < r->items->len; j++) {
            Item *it = g_ptr_array_index(r->items, j);
            if (it->st != IT_DONE)
                item_fail(it);
        }
    }
    if (any) {
        APP_LOG(b, "clipboard: requestor 0x%lx went away; its transfers are dropped", w);
        all_reqs_check(b);
    }
}

static bool x_claim(VaClipBackend *base, unsigned sel, const uint32_t *types, unsigned ntypes)
{
    X11Backend *b = (X11Backend *)base;
    /* A guest owner's TARGETS or data that arrive later are stale now. */
    b->g[sel].targets_pending = false;
    b->g[sel].fetching = false;
    /* Requests waiting for a REQUEST not sent yet belong to the old data. */
    fail_items(b, sel, 1u << IT_WAIT);
    b->ntypes[sel] = MIN(ntypes, (unsigned)NTYPES);
    memcpy(b->types[sel], types, b->ntypes[sel] * sizeof(uint32_t));
    Time t = va_x11_server_time(b->x, VA_CLIP_X11_TIME_TIMEOUT_MS);
    XSetSelectionOwner(b->dpy, b->sel_atom[sel], b->win, t);
    bool ok = XGetSelectionOwner(b->dpy, b->sel_atom[sel]) == b->win;
    b->claimed[sel] = ok;
    b->claim_time[sel] = t;
    all_reqs_check(b);
    return ok;
}

static void x_unclaim(VaClipBackend *base, unsigned sel)
{
    X11Backend *b = (X11Backend *)base;
    if (!b->claimed[sel])
        return;
    b->claimed[sel] = false;
    if (XGetSelectionOwner(b->dpy, b->sel_atom[sel]) == b->win)
        XSetSelectionOwner(b->dpy, b->sel_atom[sel], None, b->claim_time[sel]);
    fail_items(b, sel, 1u << IT_WAIT);
    all_reqs_check(b);
}

static void x_shed(VaClipBackend *base)
{
    X11Backend *b = (X11Backend *)base;
    for (guint i = 0; i < b->streams->len; i++) {
        Stream *s = g_ptr_array_index(b->streams, i);
        GPtrArray *copy = g_ptr_array_copy(s->items, NULL, NULL);
        for (guint j = 0; j < copy->len; j++) {
            Item *it = g_ptr_array_index(copy, j);
            if (it->st == IT_INCR && s->got - it->off > b->piece) {
                APP_LOG(b, "clipboard: requestor 0x%lx reads an INCR transfer too slowly; "
                           "dropped", it->req->requestor);
                item_fail(it);
            }
        }
        g_ptr_array_free(copy, TRUE);
    }
    all_reqs_check(b);
}

/* ---- guest owners (guest -> host) ---- */

static void fetch_end(X11Backend *b, unsigned sel, bool ok)
{
    GuestSel *g = &b->g[sel];
    if (!g->fetching)
        return;
    g->fetching = false;
    XDeleteProperty(b->dpy, b->win, b->prop_data[sel]);
    update_tick(b);
    va_clip_fetch_done(b->base.core, sel, ok);
}

static void x_fetch(VaClipBackend *base, unsigned sel, uint32_t type)
{
    X11Backend *b = (X11Backend *)base;
    GuestSel *g = &b->g[sel];
    if (type >= NTYPES || g->type_target[type] == None) {
        g->fetching = true;
        fetch_end(b, sel, false);
        return;
    }
    g->fetching = true;
    g->fetch_incr = false;
    g->fetch_type = type;
    g->fetch_latin1 = g->type_target[type] == b->a_string;
    g->fetch_deadline = deadline_in(b);
    XDeleteProperty(b->dpy, b->win, b->prop_data[sel]);
    XConvertSelection(b->dpy, b->sel_atom[sel], g->type_target[type], b->prop_data[sel], b->win,
                      g->owner_time ? g->owner_time : CurrentTime);
    update_tick(b);
}

static void x_fetch_cancel(VaClipBackend *base, unsigned sel)
{
    X11Backend *b = (X11Backend *)base;
    b->g[sel].fetching = false;
    XDeleteProperty(b->dpy, b->win, b->prop_data[sel]);
    update_tick(b);
}

/* Pass bytes of the fetch to the core (Latin-1 converted). */
static bool fetch_pass(X11Backend *b, unsigned sel, const uint8_t *p, size_t n)
{
    if (!b->g[sel].fetch_latin1)
        return va_clip_fetch_write(b->base.core, sel, p, n);
    uint8_t out[VA_CLIP_X11_CONV_BUF];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 2 > sizeof(out)) {
            if (!va_clip_fetch_write(b->base.core, sel, out, o))
                return false;
            o = 0;
        }
        if (p[i] < 0x80) {
            out[o++] = p[i];
        } else {
            out[o++] = (uint8_t)(0xC0 | (p[i] >> 6));
            out[o++] = (uint8_t)(0x80 | (p[i] & 0x3F));
        }
    }
    return o == 0 || va_clip_fetch_write(b->base.core, sel, out, o);
}

/* Read the whole data property (deleting it); false on error. *type and
 * *format tell what it was; INCR is only reported, not read. */
static bool read_prop(X11Backend *b, unsigned sel, Atom *type_out, bool *empty, bool *err_limit)
{
    long offset = 0;
    *empty = true;
    *err_limit = false;
    for (;;) {
        Atom type = None;
        int format = 0;
        unsigned long nitems = 0, after = 0;
        unsigned char *data = NULL;
        va_x11_trap_push(b->x);
        int st = XGetWindowProperty(b->dpy, b->win, b->prop_data[sel], offset,
                                    VA_CLIP_X11_READ_PIECE / 4, False, AnyPropertyType, &type,
                                    &format, &nitems, &after, &data);
        int err = va_x11_trap_pop(b->x);
        if (st != Success || err) {
            if (data)
                XFree(data);
            return false;
        }
        *type_out = type;
        if (type == b->a_incr) {
            XFree(data);
            return true;
        }
        /* Text: the type, not the target asked, says the encoding (TEXT may
         * come back as STRING, STRING as UTF8_STRING); COMPOUND_TEXT and
         * others are not converted. */
        if (type != None && b->g[sel].fetch_type == VD_AGENT_CLIPBOARD_UTF8_TEXT) {
            if (type == b->a_string)
                b->g[sel].fetch_latin1 = true;
            else if (type == b->a_utf8 || type == b->a_text_plain_utf8 ||
                     type == b->a_text_plain_UTF8)
                b->g[sel].fetch_latin1 = false;
            else if (type != b->a_text) {
                APP_LOG(b, "clipboard: guest text of an unsupported encoding refused");
                if (data)
                    XFree(data);
                return false;
            }
        }
        if (type != None && format != 8) {
            if (data)
                XFree(data);
            return false;
        }
        if (nitems > 0) {
            *empty = false;
            if (!fetch_pass(b, sel, data, nitems)) {
                XFree(data);
                *err_limit = true;
                return false;
            }
        }
        if (data)
            XFree(data);
        offset += (long)(nitems / 4);
        if (after == 0 || nitems == 0)
            break;
        if (nitems % 4) {   /* offsets are in 4-byte units; pieces are too */
            return false;
        }
    }
    XDeleteProperty(b->dpy, b->win, b->prop_data[sel]);
    return true;
}

static void on_fetch_notify(X11Backend *b, unsigned sel, const XSelectionEvent *e)
{
    GuestSel *g = &b->g[sel];
    if (!g->fetching || g->fetch_incr || e->target != g->type_target[g->fetch_type])
        return;
    if (e->property == None) {
        g_debug("clipboard: the guest owner refused the conversion");
        fetch_end(b, sel, false);
        return;
    }
    Atom type;
    bool empty, limit;
    if (!read_prop(b, sel, &type, &empty, &limit)) {
        fetch_end(b, sel, false);
        return;
    }
    if (type == b->a_incr) {
        g->fetch_incr = true;
        g->fetch_deadline = deadline_in(b);
        XDeleteProperty(b->dpy, b->win, b->prop_data[sel]);   /* start it */
        return;
    }
    fetch_end(b, sel, true);
}

static void on_fetch_property(X11Backend *b, unsigned sel)
{
    GuestSel *g = &b->g[sel];
    Atom type;
    bool empty, limit;
    if (!read_prop(b, sel, &type, &empty, &limit)) {
        fetch_end(b, sel, false);
        return;
    }
    g->fetch_deadline = deadline_in(b);
    if (empty)
        fetch_end(b, sel, true);
}

static void on_targets_notify(X11Backend *b, unsigned sel, const XSelectionEvent *e)
{
    GuestSel *g = &b->g[sel];
    Atom prop = b->prop_targets[sel][g->targets_slot];
    /* The answer to the current request names its property; a refusal
     * (None) carries the request's time. Anything else is a late answer
     * to an earlier request (a previous owner): dropped. */
    bool current = e->property != None ? e->property == prop : e->time == g->targets_time;
    if (!g->targets_pending || !current) {
        /* (not left on the server; only our own TARGETS properties) */
        for (unsigned i = 0; i < VA_CLIP_X11_TARGETS_PROPS && e->property != None; i++)
            if (e->property == b->prop_targets[sel][i] && e->property != prop)
                XDeleteProperty(b->dpy, b->win, e->property);
        return;
    }
    g->targets_pending = false;
    update_tick(b);
    uint32_t types[NTYPES];
    unsigned n = 0;
    int rank[NTYPES];
    for (unsigned i = 0; i < NTYPES; i++) {
        g->type_target[i] = None;
        rank[i] = INT_MAX;
    }
    if (e->property != None) {
        Atom type = None;
        int format = 0;
        unsigned long nitems = 0, after = 0;
        unsigned char *data = NULL;
        va_x11_trap_push(b->x);
        int st = XGetWindowProperty(b->dpy, b->win, prop, 0,
                                    VA_CLIP_X11_MAX_TARGETS, True, AnyPropertyType, &type, &format,
                                    &nitems, &after, &data);
        int err = va_x11_trap_pop(b->x);
        if (st == Success && !err && type == XA_ATOM && format == 32) {
            const Atom *atoms = (const Atom *)data;
            for (unsigned long i = 0; i < nitems; i++) {
                bool latin1;
                uint32_t t = target_to_type(b, atoms[i], &latin1);
                if (t == VD_AGENT_CLIPBOARD_NONE)
                    continue;
                int rk = target_rank(b, atoms[i]);
                if (rk < rank[t]) {
                    rank[t] = rk;
                    g->type_target[t] = atoms[i];
                }
            }
        } else {
            APP_LOG(b, "clipboard: the guest owner of %s sent unusable TARGETS",
                    sel ? "PRIMARY" : "CLIPBOARD");
        }
        if (data)
            XFree(data);
    }
    for (uint32_t t = VD_AGENT_CLIPBOARD_UTF8_TEXT; t < NTYPES; t++)
        if (g->type_target[t] != None)
            types[n++] = t;
    va_clip_guest_grab(b->base.core, sel, types, n);
}

static void on_owner_change(X11Backend *b, const XFixesSelectionNotifyEvent *e)
{
    int si = sel_index(b, e->selection);
    if (si < 0)
        return;
    unsigned sel = (unsigned)si;
    GuestSel *g = &b->g[sel];
    if (e->owner == b->win)
        return;     /* our own claim */
    /* An event from before our claim, read after it: stale. */
    if (b->claimed[sel] && XGetSelectionOwner(b->dpy, b->sel_atom[sel]) == b->win)
        return;
    if (b->claimed[sel]) {
        b->claimed[sel] = false;
        fail_items(b, sel, 1u << IT_WAIT);
        va_clip_client_lost(b->base.core, sel);
        all_reqs_check(b);
    }
    /* A new owner (or none): the running fetch is about the old data. */
    if (g->fetching) {
        g_debug("clipboard: the owner of %s changed during a fetch", sel ? "PRIMARY" : "CLIPBOARD");
        fetch_end(b, sel, false);
    }
    g->owner = e->owner;
    g->owner_time = e->selection_timestamp;
    if (e->owner == None || e->subtype != XFixesSetSelectionOwnerNotify) {
        g->targets_pending = false;
        g->owner = None;
        va_clip_guest_grab(b->base.core, sel, NULL, 0);
        return;
    }
    g->targets_pending = true;
    g->targets_deadline = deadline_in(b);
    g->targets_slot = (g->targets_slot + 1) % VA_CLIP_X11_TARGETS_PROPS;
    g->targets_time = e->selection_timestamp;
    Atom prop = b->prop_targets[sel][g->targets_slot];
    XDeleteProperty(b->dpy, b->win, prop);
    XConvertSelection(b->dpy, b->sel_atom[sel], b->a_targets, prop, b->win,
                      e->selection_timestamp);
    update_tick(b);
}

static void on_event(void *user, XEvent *ev)
{
    X11Backend *b = user;
    if (ev->type == b->xfixes_event + XFixesSelectionNotify) {
        on_owner_change(b, (XFixesSelectionNotifyEvent *)ev);
        return;
    }
    switch (ev->type) {
    case SelectionRequest:
        if (ev->xselectionrequest.owner == b->win)
            on_selection_request(b, &ev->xselectionrequest);
        break;
    case SelectionClear: {
        int si = sel_index(b, ev->xselectionclear.selection);
        if (ev->xselectionclear.window == b->win && si >= 0 && b->claimed[si] &&
            XGetSelectionOwner(b->dpy, b->sel_atom[si]) != b->win) {
            b->claimed[si] = false;
            fail_items(b, (unsigned)si, 1u << IT_WAIT);
            va_clip_client_lost(b->base.core, (unsigned)si);
            all_reqs_check(b);
        }
        break;
    }
    case SelectionNotify: {
        const XSelectionEvent *e = &ev->xselection;
        if (e->requestor != b->win)
            break;
        int si = sel_index(b, e->selection);
        if (si < 0)
            break;
        if (e->target == b->a_targets)
            on_targets_notify(b, (unsigned)si, e);
        else
            on_fetch_notify(b, (unsigned)si, e);
        break;
    }
    case PropertyNotify: {
        const XPropertyEvent *e = &ev->xproperty;
        if (e->window == b->win) {
            if (e->state != PropertyNewValue)
                break;
            for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++)
                if (e->atom == b->prop_data[sel] && b->g[sel].fetching && b->g[sel].fetch_incr)
                    on_fetch_property(b, sel);
        } else if (e->state == PropertyDelete) {
            on_property_delete(b, e);
        }
        break;
    }
    case DestroyNotify:
        if (ev->xdestroywindow.window != b->win)
            on_window_gone(b, ev->xdestroywindow.window);
        break;
    default:
        break;
    }
}

/* ---- timeouts of waits on applications ---- */

static bool any_waits(X11Backend *b)
{
    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++)
        if (b->g[sel].fetching || b->g[sel].targets_pending)
            return true;
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *r = g_ptr_array_index(b->reqs, i);
        for (guint j = 0; j < r->items->len; j++)
            if (((Item *)g_ptr_array_index(r->items, j))->st == IT_INCR)
                return true;
    }
    return false;
}

static gboolean on_tick(gpointer data)
{
    X11Backend *b = data;
    gint64 now = g_get_monotonic_time();
    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++) {
        GuestSel *g = &b->g[sel];
        if (g->targets_pending && now > g->targets_deadline) {
            APP_LOG(b, "clipboard: the guest owner of %s did not answer TARGETS in time",
                    sel ? "PRIMARY" : "CLIPBOARD");
            g->targets_pending = false;
            va_clip_guest_grab(b->base.core, sel, NULL, 0);
        }
        if (g->fetching && now > g->fetch_deadline) {
            APP_LOG(b, "clipboard: the guest owner of %s did not send its data in time",
                    sel ? "PRIMARY" : "CLIPBOARD");
            fetch_end(b, sel, false);
        }
    }
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *r = g_ptr_array_index(b->reqs, i);
        for (guint j = 0; j < r->items->len; j++) {
            Item *it = g_ptr_array_index(r->items, j);
            /* Only a requestor that does not read is timed out here; one
             * waiting for the client's data is covered by the core's
             * stall timeout. */
            if (it->st == IT_INCR && !it->incr_wants && now > it->deadline) {
                APP_LOG(b, "clipboard: requestor 0x%lx stopped reading an INCR transfer; "
                           "dropped", r->requestor);
                item_fail(it);
            }
        }
    }
    all_reqs_check(b);
    if (!any_waits(b)) {
        g_source_unref(b->tick);
        b->tick = NULL;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void update_tick(X11Backend *b)
{
    if (b->tick || !any_waits(b))
        return;
    b->tick = g_timeout_source_new(VA_CLIP_X11_TICK_MS);
    g_source_set_callback(b->tick, on_tick, b, NULL);
    g_source_attach(b->tick, b->ctx);
}

/* ---- setup ---- */

static void x_free(VaClipBackend *base)
{
    X11Backend *b = (X11Backend *)base;
    va_x11_remove_handler(b->x, on_event, b);
    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++) {
        if (b->claimed[sel] && XGetSelectionOwner(b->dpy, b->sel_atom[sel]) == b->win)
            XSetSelectionOwner(b->dpy, b->sel_atom[sel], None, b->claim_time[sel]);
        XFixesSelectSelectionInput(b->dpy, va_x11_root(b->x), b->sel_atom[sel], 0);
    }
    for (guint i = 0; i < b->reqs->len; i++) {
        Req *r = g_ptr_array_index(b->reqs, i);
        if (!r->notified)
            send_notify(b, r->requestor, b->sel_atom[r->sel], r->target, None, r->time);
    }
    while (b->reqs->len) {
        Req *r = g_ptr_array_index(b->reqs, b->reqs->len - 1);
        g_ptr_array_remove_index(b->reqs, b->reqs->len - 1);
        req_free(r);
    }
    while (b->streams->len)
        stream_free(b, g_ptr_array_index(b->streams, 0));
    g_ptr_array_free(b->reqs, TRUE);
    g_ptr_array_free(b->streams, TRUE);
    if (b->tick) {
        g_source_destroy(b->tick);
        g_source_unref(b->tick);
    }
    XFlush(b->dpy);
    g_main_context_unref(b->ctx);
    g_free(b);
}

static const VaClipBackendOps x11_ops = {
    .free = x_free,
    .claim = x_claim,
    .unclaim = x_unclaim,
    .data_begin = x_data_begin,
    .data_chunk = x_data_chunk,
    .data_end = x_data_end,
    .fetch = x_fetch,
    .fetch_cancel = x_fetch_cancel,
    .shed = x_shed,
};

VaClipBackend *va_clip_x11_new(VaClipboard *core, VaX11 *x, GMainContext *ctx, GError **error)
{
    Display *dpy = va_x11_display(x);
    int ev_base, err_base, major = 0, minor = 0;
    if (!XFixesQueryExtension(dpy, &ev_base, &err_base) ||
        !XFixesQueryVersion(dpy, &major, &minor) || major < 1) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "the X server has no XFixes: no clipboard");
        return NULL;
    }
    X11Backend *b = g_new0(X11Backend, 1);
    b->base.ops = &x11_ops;
    b->base.core = core;
    b->x = x;
    b->dpy = dpy;
    b->win = va_x11_window(x);
    b->ctx = g_main_context_ref(ctx);
    b->xfixes_event = ev_base;
    /* Max request size in 4-byte units, less room for the request head. */
    long maxreq = XExtendedMaxRequestSize(dpy);
    if (maxreq == 0)
        maxreq = XMaxRequestSize(dpy);
    size_t maxbytes = (size_t)maxreq * 4u > 2 * VA_CLIP_X11_REQ_OVERHEAD
                          ? (size_t)maxreq * 4u - VA_CLIP_X11_REQ_OVERHEAD
                          : VA_CLIP_X11_REQ_OVERHEAD;
    b->piece = MIN((size_t)VA_CLIP_X11_PIECE, maxbytes);

    b->sel_atom[0] = va_x11_atom(x, "CLIPBOARD");
    b->sel_atom[1] = XA_PRIMARY;
    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++)
        for (unsigned i = 0; i < VA_CLIP_X11_TARGETS_PROPS; i++) {
            char name[64];
            snprintf(name, sizeof(name), "_VDAGENT_TARGETS_%s_%u", sel ? "PRIMARY" : "CLIPBOARD",
                     i);
            b->prop_targets[sel][i] = va_x11_atom(x, name);
        }
    b->prop_data[0] = va_x11_atom(x, "_VDAGENT_DATA_CLIPBOARD");
    b->prop_data[1] = va_x11_atom(x, "_VDAGENT_DATA_PRIMARY");
    b->a_targets = va_x11_atom(x, "TARGETS");
    b->a_timestamp = va_x11_atom(x, "TIMESTAMP");
    b->a_multiple = va_x11_atom(x, "MULTIPLE");
    b->a_incr = va_x11_atom(x, "INCR");
    b->a_atom_pair = va_x11_atom(x, "ATOM_PAIR");
    b->a_utf8 = va_x11_atom(x, "UTF8_STRING");
    b->a_text_plain_utf8 = va_x11_atom(x, "text/plain;charset=utf-8");
    b->a_text_plain_UTF8 = va_x11_atom(x, "text/plain;charset=UTF-8");
    b->a_text = va_x11_atom(x, "TEXT");
    b->a_string = XA_STRING;
    b->a_integer = XA_INTEGER;
    b->a_png = va_x11_atom(x, "image/png");
    b->a_bmp = va_x11_atom(x, "image/bmp");
    b->a_xbmp = va_x11_atom(x, "image/x-bmp");
    b->a_msbmp = va_x11_atom(x, "image/x-MS-bmp");
    b->a_winbmp = va_x11_atom(x, "image/x-win-bitmap");
    b->a_tiff = va_x11_atom(x, "image/tiff");
    b->a_jpeg = va_x11_atom(x, "image/jpeg");
    b->reqs = g_ptr_array_new();
    b->streams = g_ptr_array_new();

    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++)
        XFixesSelectSelectionInput(dpy, va_x11_root(x), b->sel_atom[sel],
                                   XFixesSetSelectionOwnerNotifyMask |
                                       XFixesSelectionWindowDestroyNotifyMask |
                                       XFixesSelectionClientCloseNotifyMask);
    va_x11_add_handler(x, on_event, b);
    /* An application may own a selection already (the agent restarted):
     * handle it like an owner change. */
    for (unsigned sel = 0; sel < VA_CLIP_NSEL; sel++) {
        Window owner = XGetSelectionOwner(dpy, b->sel_atom[sel]);
        if (owner != None && owner != b->win) {
            XFixesSelectionNotifyEvent e = {0};
            e.type = ev_base + XFixesSelectionNotify;
            e.subtype = XFixesSetSelectionOwnerNotify;
            e.owner = owner;
            e.selection = b->sel_atom[sel];
            e.selection_timestamp = CurrentTime;
            on_owner_change(b, &e);
        }
    }
    XFlush(dpy);
    return &b->base;
}
