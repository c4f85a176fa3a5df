/* vdd-input.c - the daemon's mouse output: a uinput tablet or the fake
 * uinput sink (-f). Contract in vdd-input.h.
 *
 * Both modes share one path: a mouse event becomes a "frame" of
 * struct input_event records (the axes that changed, button edges, wheel
 * clicks, SYN_REPORT), computed against the state the reader will have once
 * everything queued has been written ("queued" below). Frames go into a
 * bounded ring of records that is written with non-blocking writev(); when
 * the sink would block, a G_IO_OUT watch on the daemon's GMainContext
 * drains it. Nothing here ever blocks.
 *
 * When the ring is full:
 *  1. runs of consecutive motion-only frames are merged into one frame
 *     holding the last position of the run (button and wheel frames, and
 *     the position each of them happens at, are kept as they are);
 *  2. if the new frame still does not fit, it is not queued. The newest
 *     state asked for ("want") is remembered, and as soon as the ring has
 *     room again one frame brings the reader from "queued" to "want". A
 *     motion-only frame left out this way is counted as coalesced; a frame
 *     with button changes as dropped (one log line per 10 s): the reader
 *     then sees the newest button state late instead of every edge, but
 *     never an inconsistent sequence (a release without its press).
 *
 * The uinput device is set up once with the modern API (UI_DEV_SETUP,
 * UI_ABS_SETUP) over 0..VDD_INPUT_ABS_MAX; desktop coordinates are scaled
 * into that range, so a resize never recreates the device.
 *
 * Property: INPUT_PROP_DIRECT. The kernel documents it as "device
 * coordinates map directly onto the screen" (touchscreens, tablets drawn
 * on), which is exactly what this device's ABS_X/ABS_Y are: the whole
 * desktop scaled into the axis range. INPUT_PROP_POINTER means the
 * opposite (a touchpad-like surface that moves an on-screen pointer
 * relatively). udev's input_id still classifies the device as an
 * absolute mouse because it has BTN_LEFT and no BTN_TOUCH/BTN_TOOL_PEN
 * (ID_INPUT_MOUSE, like QEMU's USB tablet), so libinput and the X server
 * handle it as an absolute pointer and the cursor stays visible.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <linux/input.h>
#include <linux/uinput.h>
#include <pthread.h>
#include <signal.h>
#include <spice/vd_agent.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vdd-input.h"

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "vdd-input"

/* Records in the ring: VDD_INPUT_FAKE_BUFFER bytes of whole events. */
#define RING_RECORDS (VDD_INPUT_FAKE_BUFFER / sizeof(struct input_event))
/* The largest frame: two axes, five buttons, two wheel clicks, SYN. */
#define MAX_FRAME 10u
/* Rate limit for the drop and error log lines. */
#define LOG_INTERVAL_US (10 * G_USEC_PER_SEC)
/* Reopening a FIFO that has no reader yet, or lost it: first retry after
 * REOPEN_MIN_MS, doubling up to REOPEN_MAX_MS. */
#define REOPEN_MIN_MS 50u
#define REOPEN_MAX_MS 2000u

G_STATIC_ASSERT(RING_RECORDS >= 4 * MAX_FRAME);

typedef struct PtrState {
    bool have_pos;     /* false: the reader's position is unknown */
    int32_t x, y;      /* in output units (scaled for uinput) */
    uint32_t buttons;  /* VD_AGENT_*BUTTON_MASK bits */
} PtrState;

typedef struct RateLog {
    gint64 last_us;     /* when the last line was written, 0 = never */
    uint64_t count;     /* occurrences since then */
} RateLog;

struct VddInput {
    GMainContext *ctx;
    VddInputMode mode;
    char *path;
    int fd;             /* -1: the fake sink is not open (yet) */
    unsigned debug;

    VddLayout layout;

    PtrState want;      /* the newest state asked for */
    PtrState queued;    /* the reader's state once the ring is written */

    struct input_event ring[RING_RECORDS];
    struct input_event scratch[RING_RECORDS];
    size_t head, len;   /* records; head's first head_off bytes are written */
    size_t head_off;
    bool tail_motion;   /* the last queued frame is motion-only */
    bool compact_clean; /* no two adjacent motion frames since compaction */

    GSource *out_watch;     /* armed while the sink would block */
    GSource *reopen_timer;  /* fake: waiting for a reader */
    unsigned reopen_ms;
    bool told_waiting;      /* "waiting for a reader" said once per episode */
    bool closing;           /* in vdd_input_free: no new timers */

    RateLog unknown_log, overflow_log, error_log;
    VddInputStats st;
};

static const struct {
    uint32_t mask;
    uint16_t code;
} button_codes[] = {
    {VD_AGENT_LBUTTON_MASK, BTN_LEFT},
    {VD_AGENT_MBUTTON_MASK, BTN_MIDDLE},
    {VD_AGENT_RBUTTON_MASK, BTN_RIGHT},
    {VD_AGENT_SBUTTON_MASK, BTN_SIDE},
    {VD_AGENT_EBUTTON_MASK, BTN_EXTRA},
};

#define KNOWN_BUTTONS                                                                          \
    (VD_AGENT_LBUTTON_MASK | VD_AGENT_MBUTTON_MASK | VD_AGENT_RBUTTON_MASK |                    \
     VD_AGENT_UBUTTON_MASK | VD_AGENT_DBUTTON_MASK | VD_AGENT_SBUTTON_MASK |                    \
     VD_AGENT_EBUTTON_MASK)

static void pump(VddInput *in);
static void schedule_reopen(VddInput *in);

/* ---- small helpers ---- */

/* True when a line is due (first time, or LOG_INTERVAL_US after the last
 * one); *count then holds the occurrences it reports, this one included. */
static bool ratelog_due(RateLog *r, uint64_t *count)
{
    gint64 now = g_get_monotonic_time();
    r->count++;
    if (r->last_us != 0 && now - r->last_us < LOG_INTERVAL_US)
        return false;
    *count = r->count;
    r->count = 0;
    r->last_us = now;
    return true;
}

static const char *mode_name(const VddInput *in)
{
    return in->mode == VDD_INPUT_UINPUT ? "uinput" : "fake uinput";
}

static struct input_event *ring_at(VddInput *in, size_t k)
{
    return &in->ring[(in->head + k) % RING_RECORDS];
}

static size_t ring_free(const VddInput *in)
{
    return RING_RECORDS - in->len;
}

static void ring_clear(VddInput *in)
{
    in->head = in->len = in->head_off = 0;
    in->tail_motion = false;
    in->compact_clean = true;
}

static void set_event(struct input_event *ev, uint16_t type, uint16_t code, int32_t value)
{
    memset(ev, 0, sizeof(*ev));   /* zero timestamp: the kernel or reader fills it */
    ev->type = type;
    ev->code = code;
    ev->value = value;
}

static bool is_motion_frame(const struct input_event *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].type != EV_ABS && f[i].type != EV_SYN)
            return false;
    return true;
}

/* ---- layout and scaling ---- */

bool vdd_layout_to_desktop(const VddLayout *layout, uint8_t display_id, uint32_t x, uint32_t y,
                           int32_t *dx, int32_t *dy)
{
    if (!layout)
        return false;
    uint32_t count = MIN(layout->count, VDP_MAX_MONITORS);
    for (uint32_t i = 0; i < count; i++) {
        const VddDisplay *d = &layout->displays[i];
        if (d->display_id != display_id)
            continue;
        if (d->width == 0 || d->height == 0)
            return false;            /* known but disabled */
        int64_t px = (int64_t)d->x + x, py = (int64_t)d->y + y;
        if (dx)
            *dx = (int32_t)CLAMP(px, INT32_MIN, INT32_MAX);
        if (dy)
            *dy = (int32_t)CLAMP(py, INT32_MIN, INT32_MAX);
        return true;
    }
    return false;
}

/* The desktop size the X server scales the tablet to: the layout's, or the
 * bounding box of its enabled displays when the agent sent none. */
static void desktop_size(const VddLayout *l, uint32_t *w, uint32_t *h)
{
    *w = l->desktop_width;
    *h = l->desktop_height;
    if (*w > 0 && *h > 0)
        return;
    int64_t mw = 0, mh = 0;
    for (uint32_t i = 0; i < MIN(l->count, VDP_MAX_MONITORS); i++) {
        const VddDisplay *d = &l->displays[i];
        if (d->width == 0 || d->height == 0)
            continue;
        mw = MAX(mw, (int64_t)d->x + d->width);
        mh = MAX(mh, (int64_t)d->y + d->height);
    }
    if (*w == 0)
        *w = (uint32_t)CLAMP(mw, 0, UINT32_MAX);
    if (*h == 0)
        *h = (uint32_t)CLAMP(mh, 0, UINT32_MAX);
}

/* Rounding. The ceiling of pos * 32767 / (size - 1) is used because the
 * value has to survive every inverse an X server may apply:
 *  - libinput (scale_axis in evdev.c) maps v to v * R / (max - min + 1),
 *    i.e. v * R / 32768; xf86-input-libinput asks for R = 0xffff and
 *    declares its valuator as 0..0xffff; the X server's dix then rescales
 *    the valuator to the screen as coord * width / (valuator max + 1).
 *    Net: v * size / 32768 * 65535 / 65536, truncated to a pixel (a
 *    position of 321 with 0.22.1's 0..width-1 tablet lands on 320 for this
 *    reason, as observed under Xorg);
 *  - xf86-input-evdev passes v with the axis range unchanged: v * size /
 *    32768, truncated;
 *  - servers that do not add 1 to the maxima: v * (size - 1) / 32767,
 *    truncated or rounded to nearest.
 * The first two accept v in [pos * 32768 / size, (pos + 1) * 32768 / size),
 * the last in [pos * k, (pos + 0.5) * k) with k = 32767 / (size - 1). For
 * size <= 16384 the interval [pos * k, pos * k + 1) lies inside all of
 * them, and its only integer is the ceiling. pos = size - 1 gives 32767,
 * pos = 0 gives 0. The division is exact integer arithmetic. */
uint32_t vdd_input_scale(int32_t pos, uint32_t size)
{
    if (size <= 1 || pos <= 0)
        return 0;
    if ((uint32_t)pos >= size - 1)
        return VDD_INPUT_ABS_MAX;
    uint64_t num = (uint64_t)pos * VDD_INPUT_ABS_MAX + (size - 2);
    return (uint32_t)(num / (size - 1));
}

/* ---- frames and the ring ---- */

/* The records that take the reader from `from` to `to`; 0 if nothing
 * changed. Order as 0.22.1: axes, buttons, wheel, SYN_REPORT. */
static size_t build_frame(const PtrState *from, const PtrState *to, struct input_event *f)
{
    size_t n = 0;
    if (to->have_pos) {
        if (!from->have_pos || from->x != to->x)
            set_event(&f[n++], EV_ABS, ABS_X, to->x);
        if (!from->have_pos || from->y != to->y)
            set_event(&f[n++], EV_ABS, ABS_Y, to->y);
    }
    uint32_t changed = from->buttons ^ to->buttons;
    for (size_t i = 0; i < G_N_ELEMENTS(button_codes); i++)
        if (changed & button_codes[i].mask)
            set_event(&f[n++], EV_KEY, button_codes[i].code,
                      (to->buttons & button_codes[i].mask) ? 1 : 0);
    /* One wheel click per press of the up/down "buttons"; releases are
     * silent. */
    uint32_t pressed = changed & to->buttons;
    if (pressed & VD_AGENT_UBUTTON_MASK)
        set_event(&f[n++], EV_REL, REL_WHEEL, 1);
    if (pressed & VD_AGENT_DBUTTON_MASK)
        set_event(&f[n++], EV_REL, REL_WHEEL, -1);
    if (n > 0)
        set_event(&f[n++], EV_SYN, SYN_REPORT, 0);
    g_assert(n <= MAX_FRAME);
    return n;
}

/* Merge runs of consecutive motion-only frames into one frame each (the
 * last position of the run). The frame whose first bytes are already
 * written is kept as it is. Linearizes the ring at index 0. */
static void compact(VddInput *in)
{
    size_t out = 0, k = 0;
    struct input_event *s = in->scratch;

    if (in->head_off > 0) {
        /* The partly written frame, up to and including its SYN. */
        while (k < in->len) {
            const struct input_event *ev = ring_at(in, k++);
            s[out++] = *ev;
            if (ev->type == EV_SYN)
                break;
        }
    }

    bool run = false, rx = false, ry = false;
    int32_t vx = 0, vy = 0;
    uint64_t run_frames = 0;
    bool last_motion = false;

    while (k < in->len) {
        size_t start = k;
        while (k < in->len && ring_at(in, k)->type != EV_SYN)
            k++;
        if (k < in->len)
            k++;                             /* include the SYN */
        size_t n = k - start;
        bool motion = true;
        for (size_t i = start; i < k; i++) {
            const struct input_event *ev = ring_at(in, i);
            if (ev->type != EV_ABS && ev->type != EV_SYN)
                motion = false;
        }
        if (motion) {
            for (size_t i = start; i < k; i++) {
                const struct input_event *ev = ring_at(in, i);
                if (ev->type == EV_ABS && ev->code == ABS_X) {
                    rx = true;
                    vx = ev->value;
                } else if (ev->type == EV_ABS && ev->code == ABS_Y) {
                    ry = true;
                    vy = ev->value;
                }
            }
            run = true;
            run_frames++;
            continue;
        }
        if (run) {
            if (rx)
                set_event(&s[out++], EV_ABS, ABS_X, vx);
            if (ry)
                set_event(&s[out++], EV_ABS, ABS_Y, vy);
            set_event(&s[out++], EV_SYN, SYN_REPORT, 0);
            in->st.coalesced += run_frames - 1;
            run = rx = ry = false;
            run_frames = 0;
        }
        for (size_t i = start; i < start + n; i++)
            s[out++] = *ring_at(in, i);
        last_motion = false;
    }
    if (run) {
        if (rx)
            set_event(&s[out++], EV_ABS, ABS_X, vx);
        if (ry)
            set_event(&s[out++], EV_ABS, ABS_Y, vy);
        set_event(&s[out++], EV_SYN, SYN_REPORT, 0);
        in->st.coalesced += run_frames - 1;
        last_motion = true;
    }

    g_assert(out <= in->len);
    memcpy(in->ring, s, out * sizeof(*s));
    in->head = 0;
    in->len = out;
    in->tail_motion = last_motion;
    in->compact_clean = true;
}

/* Queue a frame if it fits (after merging motion if needed). */
static bool enqueue(VddInput *in, const struct input_event *f, size_t n)
{
    if (n > ring_free(in) && !in->compact_clean)
        compact(in);
    if (n > ring_free(in))
        return false;
    for (size_t i = 0; i < n; i++)
        *ring_at(in, in->len + i) = f[i];
    in->len += n;
    bool motion = is_motion_frame(f, n);
    if (motion && in->tail_motion)
        in->compact_clean = false;
    in->tail_motion = motion;
    return true;
}

/* ---- writing ---- */

/* writev() that turns SIGPIPE (a FIFO whose reader left) into EPIPE
 * without disturbing a SIGPIPE that was already pending. */
static ssize_t writev_quiet(int fd, const struct iovec *iov, int cnt)
{
    sigset_t pipe_set, saved, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &saved);
    sigemptyset(&pending);
    sigpending(&pending);
    bool already = sigismember(&pending, SIGPIPE) == 1;

    ssize_t r = writev(fd, iov, cnt);
    int err = errno;
    if (r < 0 && err == EPIPE && !already) {
        struct timespec none = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &none) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    errno = err;
    return r;
}

static gboolean on_writable(int fd, GIOCondition cond, gpointer data)
{
    VddInput *in = data;
    g_clear_pointer(&in->out_watch, g_source_unref);
    pump(in);
    return G_SOURCE_REMOVE;
}

static void arm_out_watch(VddInput *in)
{
    if (in->out_watch || in->fd < 0)
        return;
    in->out_watch = g_unix_fd_source_new(in->fd, G_IO_OUT | G_IO_ERR | G_IO_HUP);
    g_source_set_callback(in->out_watch, G_SOURCE_FUNC(on_writable), in, NULL);
    g_source_attach(in->out_watch, in->ctx);
}

static void disarm_out_watch(VddInput *in)
{
    if (in->out_watch) {
        g_source_destroy(in->out_watch);
        g_clear_pointer(&in->out_watch, g_source_unref);
    }
}

static void close_sink(VddInput *in)
{
    disarm_out_watch(in);
    if (in->fd >= 0) {
        close(in->fd);
        in->fd = -1;
    }
}

/* A write failed with err (not EAGAIN/EINTR). */
static void write_failed(VddInput *in, int err)
{
    uint64_t n, lost = 0;
    for (size_t k = 0; k < in->len; k++)
        if (ring_at(in, k)->type == EV_SYN)
            lost++;
    ring_clear(in);
    /* What the reader has is unknown now: the next frame restates the
     * position and every pressed button. */
    in->queued.have_pos = false;
    in->queued.buttons = 0;
    in->st.dropped_overflow += lost;

    if (in->mode == VDD_INPUT_UINPUT) {
        if (ratelog_due(&in->error_log, &n))
            g_warning("writing to %s %s: %s (%" PRIu64 " time(s)); events dropped", mode_name(in),
                      in->path, g_strerror(err), n);
        return;
    }
    if (err == EPIPE)
        g_message("fake uinput %s: the reader went away; waiting for a new one", in->path);
    else if (ratelog_due(&in->error_log, &n))
        g_warning("writing to fake uinput %s: %s (%" PRIu64 " time(s)); reopening it", in->path,
                  g_strerror(err), n);
    close_sink(in);
    /* A reader that went away is normal: look for the next one quickly.
     * Any other failure (a sink that opens but takes nothing, like a full
     * disk) keeps the back-off doubling until a write succeeds. */
    if (err == EPIPE)
        in->reopen_ms = REOPEN_MIN_MS;
    else
        in->reopen_ms = MIN(in->reopen_ms * 2, REOPEN_MAX_MS);
    in->told_waiting = err == EPIPE;
    schedule_reopen(in);
}

/* Write what the sink takes. Returns true if the ring is empty afterwards
 * and the sink is open (more may be queued and written right away). */
static bool flush_ring(VddInput *in)
{
    const size_t rec = sizeof(struct input_event);
    if (in->fd < 0)
        return false;
    if (in->out_watch)
        return false;                /* still blocked; the watch resumes */
    while (in->len > 0) {
        size_t first = MIN(in->len, RING_RECORDS - in->head);
        struct iovec iov[2];
        int cnt = 1;
        iov[0].iov_base = (char *)&in->ring[in->head] + in->head_off;
        iov[0].iov_len = first * rec - in->head_off;
        if (in->len > first) {
            iov[1].iov_base = &in->ring[0];
            iov[1].iov_len = (in->len - first) * rec;
            cnt = 2;
        }
        ssize_t r = writev_quiet(in->fd, iov, cnt);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm_out_watch(in);
            return false;
        }
        if (r < 0) {
            write_failed(in, errno);
            return false;
        }
        if (r == 0) {
            arm_out_watch(in);
            return false;
        }
        in->reopen_ms = REOPEN_MIN_MS;   /* the sink works */
        size_t done = in->head_off + (size_t)r;
        size_t whole = done / rec;
        in->head = (in->head + whole) % RING_RECORDS;
        in->len -= whole;
        in->head_off = done % rec;
    }
    ring_clear(in);
    return true;
}

/* Bring the ring up to the newest state if it fits. True if a frame was
 * queued. */
static bool queue_want(VddInput *in)
{
    struct input_event f[MAX_FRAME];
    size_t n = build_frame(&in->queued, &in->want, f);
    if (n == 0 || !enqueue(in, f, n))
        return false;
    in->queued = in->want;
    return true;
}

/* Write, then catch up with the newest state, until nothing more moves. */
static void pump(VddInput *in)
{
    for (unsigned i = 0; i < 4; i++) {
        flush_ring(in);
        if (!queue_want(in))
            break;
    }
}

/* ---- the fake sink: open and reopen ---- */

static int open_fake(const char *path)
{
    /* O_APPEND: a regular file collects the records after what it holds
     * (0.22.1 overwrote it from offset 0); no effect on a FIFO. */
    return open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_APPEND | O_NOCTTY);
}

static gboolean on_reopen(gpointer data)
{
    VddInput *in = data;
    g_clear_pointer(&in->reopen_timer, g_source_unref);
    int fd = open_fake(in->path);
    if (fd < 0) {
        int err = errno;
        if (err != ENXIO && err != ENOENT) {
            uint64_t n;
            if (ratelog_due(&in->error_log, &n))
                g_warning("opening fake uinput %s: %s; retrying", in->path, g_strerror(err));
        }
        in->reopen_ms = MIN(in->reopen_ms * 2, REOPEN_MAX_MS);
        schedule_reopen(in);
        return G_SOURCE_REMOVE;
    }
    in->fd = fd;
    in->st.opens++;
    in->told_waiting = false;   /* reopen_ms is reset by the first successful write */
    g_message("fake uinput %s: a reader is there; writing events", in->path);
    pump(in);
    return G_SOURCE_REMOVE;
}

static void schedule_reopen(VddInput *in)
{
    if (in->reopen_timer || in->closing)
        return;
    if (!in->told_waiting) {
        g_message("fake uinput %s has no reader; retrying until one opens it", in->path);
        in->told_waiting = true;
    }
    in->reopen_timer = g_timeout_source_new(in->reopen_ms);
    g_source_set_callback(in->reopen_timer, on_reopen, in, NULL);
    g_source_attach(in->reopen_timer, in->ctx);
}

/* ---- the uinput device ---- */

static bool ui_fail(GError **error, const char *path, const char *what)
{
    int err = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "uinput %s: %s failed: %s%s", path,
                what, g_strerror(err), err == ENOTTY ? " (not a uinput device?)" : "");
    return false;
}

#define UI_TRY(call, what)                                                                     \
    do {                                                                                       \
        if ((call) < 0)                                                                        \
            return ui_fail(error, path, what);                                                 \
    } while (0)

static bool uinput_create(int fd, const char *path, GError **error)
{
    int version = 0;
    UI_TRY(ioctl(fd, UI_GET_VERSION, &version), "UI_GET_VERSION");
    if (version < 5) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "uinput %s: version %d; UI_DEV_SETUP needs version 5 (Linux 4.5)", path,
                    version);
        return false;
    }

    UI_TRY(ioctl(fd, UI_SET_EVBIT, EV_KEY), "UI_SET_EVBIT EV_KEY");
    for (size_t i = 0; i < G_N_ELEMENTS(button_codes); i++)
        UI_TRY(ioctl(fd, UI_SET_KEYBIT, (int)button_codes[i].code), "UI_SET_KEYBIT");
    UI_TRY(ioctl(fd, UI_SET_EVBIT, EV_REL), "UI_SET_EVBIT EV_REL");
    UI_TRY(ioctl(fd, UI_SET_RELBIT, REL_WHEEL), "UI_SET_RELBIT REL_WHEEL");
    UI_TRY(ioctl(fd, UI_SET_EVBIT, EV_ABS), "UI_SET_EVBIT EV_ABS");
    UI_TRY(ioctl(fd, UI_SET_ABSBIT, ABS_X), "UI_SET_ABSBIT ABS_X");
    UI_TRY(ioctl(fd, UI_SET_ABSBIT, ABS_Y), "UI_SET_ABSBIT ABS_Y");
    UI_TRY(ioctl(fd, UI_SET_PROPBIT, INPUT_PROP_DIRECT), "UI_SET_PROPBIT INPUT_PROP_DIRECT");

    struct uinput_setup setup;
    memset(&setup, 0, sizeof(setup));
    setup.id.bustype = BUS_VIRTUAL;
    setup.id.vendor = VDD_INPUT_VENDOR;
    setup.id.product = VDD_INPUT_PRODUCT;
    setup.id.version = VDD_INPUT_VERSION;
    g_strlcpy(setup.name, VDD_INPUT_NAME, sizeof(setup.name));
    UI_TRY(ioctl(fd, UI_DEV_SETUP, &setup), "UI_DEV_SETUP");

    static const uint16_t axes[] = {ABS_X, ABS_Y};
    for (size_t i = 0; i < G_N_ELEMENTS(axes); i++) {
        struct uinput_abs_setup abs;
        memset(&abs, 0, sizeof(abs));
        abs.code = axes[i];
        abs.absinfo.minimum = 0;
        abs.absinfo.maximum = VDD_INPUT_ABS_MAX;
        UI_TRY(ioctl(fd, UI_ABS_SETUP, &abs), i == 0 ? "UI_ABS_SETUP ABS_X" : "UI_ABS_SETUP ABS_Y");
    }
    UI_TRY(ioctl(fd, UI_DEV_CREATE), "UI_DEV_CREATE");
    return true;
}

/* ---- public API ---- */

VddInput *vdd_input_new(GMainContext *ctx, VddInputMode mode, const char *path, GError **error)
{
    g_return_val_if_fail(path != NULL && *path != '\0', NULL);
    g_return_val_if_fail(mode == VDD_INPUT_UINPUT || mode == VDD_INPUT_FAKE, NULL);

    VddInput *in = g_new0(VddInput, 1);
    in->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    in->mode = mode;
    in->path = g_strdup(path);
    in->fd = -1;
    in->reopen_ms = REOPEN_MIN_MS;
    ring_clear(in);

    if (mode == VDD_INPUT_UINPUT) {
        int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            int err = errno;
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "cannot open uinput %s: %s",
                        path, g_strerror(err));
            vdd_input_free(in);
            return NULL;
        }
        in->fd = fd;
        if (!uinput_create(fd, path, error)) {
            close(in->fd);
            in->fd = -1;
            vdd_input_free(in);
            return NULL;
        }
        return in;
    }

    int fd = open_fake(path);
    if (fd >= 0) {
        in->fd = fd;
        in->st.opens++;
        return in;
    }
    int err = errno;
    if (err == ENXIO) {
        /* A FIFO nobody reads yet: keep trying, never block. */
        schedule_reopen(in);
        return in;
    }
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
                "cannot open the fake uinput sink %s: %s", path, g_strerror(err));
    vdd_input_free(in);
    return NULL;
}

void vdd_input_free(VddInput *in)
{
    if (!in)
        return;
    in->closing = true;
    if (in->reopen_timer) {
        g_source_destroy(in->reopen_timer);
        g_clear_pointer(&in->reopen_timer, g_source_unref);
    }
    disarm_out_watch(in);
    if (in->fd >= 0) {
        if (in->mode == VDD_INPUT_UINPUT) {
            if (ioctl(in->fd, UI_DEV_DESTROY) < 0)
                g_warning("uinput %s: UI_DEV_DESTROY failed: %s", in->path, g_strerror(errno));
        } else {
            flush_ring(in);          /* one last non-blocking try */
            disarm_out_watch(in);
        }
        close_sink(in);
    }
    g_main_context_unref(in->ctx);
    g_free(in->path);
    g_free(in);
}

void vdd_input_set_layout(VddInput *in, const VddLayout *layout)
{
    g_return_if_fail(in != NULL);
    if (!layout) {
        memset(&in->layout, 0, sizeof(in->layout));
        return;
    }
    in->layout = *layout;
    in->layout.count = MIN(layout->count, VDP_MAX_MONITORS);
}

void vdd_input_set_debug(VddInput *in, unsigned level)
{
    g_return_if_fail(in != NULL);
    in->debug = level;
}

bool vdd_input_mouse(VddInput *in, uint32_t x, uint32_t y, uint32_t buttons, uint8_t display_id)
{
    g_return_val_if_fail(in != NULL, false);
    int32_t dx, dy;
    if (!vdd_layout_to_desktop(&in->layout, display_id, x, y, &dx, &dy)) {
        uint64_t n;
        in->st.dropped_unknown_display++;
        if (ratelog_due(&in->unknown_log, &n))
            g_message("mouse events for display %u dropped: %s (%" PRIu64 " event(s) since the "
                      "last report)",
                      display_id,
                      in->layout.count == 0 ? "no display layout from the session agent yet"
                                            : "not an enabled display of the current layout",
                      n);
        return false;
    }
    in->st.events++;

    PtrState to = {.have_pos = true, .buttons = buttons & KNOWN_BUTTONS};
    if (in->mode == VDD_INPUT_UINPUT) {
        uint32_t w, h;
        desktop_size(&in->layout, &w, &h);
        to.x = (int32_t)vdd_input_scale(dx, w);
        to.y = (int32_t)vdd_input_scale(dy, h);
    } else {
        to.x = dx;
        to.y = dy;
    }
    if (in->debug >= 2)
        g_debug("mouse display %u %u,%u buttons 0x%x -> %d,%d", display_id, x, y, buttons, to.x,
                to.y);
    in->want = to;

    struct input_event f[MAX_FRAME];
    size_t n = build_frame(&in->queued, &in->want, f);
    if (n == 0)
        return true;
    if (!enqueue(in, f, n)) {
        /* Full even after merging motion: the newest state is sent once
         * there is room (pump). */
        if (is_motion_frame(f, n)) {
            in->st.coalesced++;
        } else {
            uint64_t cnt;
            in->st.dropped_overflow++;
            if (ratelog_due(&in->overflow_log, &cnt))
                g_message("%s %s: the reader is too slow; %" PRIu64 " button change(s) did not "
                          "fit in the buffer, the newest state follows when it drains",
                          mode_name(in), in->path, cnt);
        }
        return true;
    }
    in->queued = in->want;
    pump(in);
    return true;
}

void vdd_input_get_stats(const VddInput *in, VddInputStats *st)
{
    g_return_if_fail(in != NULL && st != NULL);
    *st = in->st;
    st->bytes_buffered = (uint64_t)in->len * sizeof(struct input_event) - in->head_off;
}
