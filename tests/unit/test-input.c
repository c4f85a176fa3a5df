/* test-input.c - vdd-input: the layout mapping, the uinput scaling against
 * the inverse mappings X servers apply, uinput failing cleanly (there is no
 * /dev/uinput on the test machines), and the fake uinput sink into regular
 * files and FIFOs: exact event sequences, unknown displays, a reader that
 * never reads (no stall, bounded memory, coalescing, order after draining),
 * a FIFO that gets its reader late, and a reader that goes away.
 *
 * Every loop runs on its own GMainContext with a deadline. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/input.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <gio/gio.h>
#include <glib.h>
#include <spice/vd_agent.h>

#include "vdd-input.h"
#include "vdd-status.h"
#include "vdp-ipc-msg.h"
#include "vdp-ipc.h"
#include <json-c/json.h>
#include "vdp-testdir.h"

#define TEST_TIMEOUT_MS 5000

#define L VD_AGENT_LBUTTON_MASK
#define M VD_AGENT_MBUTTON_MASK
#define R VD_AGENT_RBUTTON_MASK
#define U VD_AGENT_UBUTTON_MASK
#define D VD_AGENT_DBUTTON_MASK
#define S VD_AGENT_SBUTTON_MASK
#define E VD_AGENT_EBUTTON_MASK

/* ---- helpers ---- */

typedef struct Ev {
    uint16_t type, code;
    int32_t value;
} Ev;

#define SYN {EV_SYN, SYN_REPORT, 0}
#define AX(v) {EV_ABS, ABS_X, (v)}
#define AY(v) {EV_ABS, ABS_Y, (v)}
#define KEY(c, v) {EV_KEY, (c), (v)}
#define WHEEL(v) {EV_REL, REL_WHEEL, (v)}

static unsigned log_dropped_lines;

static void count_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
    if (strstr(msg, "dropped") || strstr(msg, "too slow"))
        log_dropped_lines++;
    if (g_getenv("TEST_INPUT_VERBOSE"))
        fprintf(stderr, "[%s] %s\n", domain ? domain : "", msg);
}

static gboolean on_deadline(gpointer data)
{
    *(bool *)data = true;
    return G_SOURCE_REMOVE;
}

/* Iterate ctx for ms milliseconds. */
static void run_for(GMainContext *ctx, int ms)
{
    bool done = false;
    GSource *t = g_timeout_source_new((guint)ms);
    g_source_set_callback(t, on_deadline, &done, NULL);
    g_source_attach(t, ctx);
    while (!done)
        g_main_context_iteration(ctx, TRUE);
    g_source_unref(t);
}

static char *tmp_dir;

static int setup_dir(void **state)
{
    GError *err = NULL;
    tmp_dir = g_dir_make_tmp("test-input-XXXXXX", &err);
    assert_non_null(tmp_dir);
    log_dropped_lines = 0;
    return 0;
}

static int teardown_dir(void **state)
{
    vdp_test_remove_dir(tmp_dir);
    g_clear_pointer(&tmp_dir, g_free);
    return 0;
}

static char *tmp_path(const char *name)
{
    return g_build_filename(tmp_dir, name, NULL);
}

/* Append every whole record readable from fd now (non-blocking) to out. */
static void read_records(int fd, GByteArray *raw)
{
    uint8_t buf[8192];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r > 0) {
            g_byte_array_append(raw, buf, (guint)r);
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
}

/* Decode raw records; timestamps must be zero. */
static GArray *decode(const GByteArray *raw)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(Ev));
    assert_int_equal(raw->len % sizeof(struct input_event), 0);
    for (size_t off = 0; off < raw->len; off += sizeof(struct input_event)) {
        struct input_event ie;
        memcpy(&ie, raw->data + off, sizeof(ie));
        assert_int_equal(ie.input_event_sec, 0);
        assert_int_equal(ie.input_event_usec, 0);
        Ev e = {ie.type, ie.code, ie.value};
        g_array_append_val(a, e);
    }
    return a;
}

static void print_events(const Ev *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "  [%zu] %u %u %d\n", i, ev[i].type, ev[i].code, ev[i].value);
}

static void assert_events(const GArray *got, size_t from, const Ev *want, size_t n)
{
    if (got->len - from != n) {
        fprintf(stderr, "got %zu events, want %zu:\n", (size_t)got->len - from, n);
        print_events(&g_array_index(got, Ev, from), got->len - from);
        fail();
    }
    for (size_t i = 0; i < n; i++) {
        const Ev *g = &g_array_index(got, Ev, from + i);
        if (g->type != want[i].type || g->code != want[i].code || g->value != want[i].value) {
            fprintf(stderr, "event %zu differs: got %u %u %d, want %u %u %d\n", i, g->type,
                    g->code, g->value, want[i].type, want[i].code, want[i].value);
            print_events(&g_array_index(got, Ev, from), got->len - from);
            fail();
        }
    }
}

/* Display 0 at 0,0 1024x768; display 1 at 1024,0 1366x768; display 2 known
 * but disabled. */
static VddLayout two_displays(void)
{
    VddLayout l;
    memset(&l, 0, sizeof(l));
    l.desktop_width = 1024 + 1366;
    l.desktop_height = 768;
    l.count = 3;
    l.displays[0] = (VddDisplay){.display_id = 0, .x = 0, .y = 0, .width = 1024, .height = 768};
    l.displays[1] = (VddDisplay){.display_id = 1, .x = 1024, .y = 0, .width = 1366, .height = 768};
    l.displays[2] = (VddDisplay){.display_id = 2, .x = 0, .y = 0, .width = 0, .height = 0};
    return l;
}

/* What a reader's device state becomes from a stream of events. */
typedef struct Reader {
    int32_t x, y;
    bool have_x, have_y;
    uint32_t keys;       /* bit per BTN_LEFT..BTN_EXTRA offset */
    int wheel;
} Reader;

static int key_bit(uint16_t code)
{
    assert_true(code >= BTN_LEFT && code <= BTN_EXTRA);
    return code - BTN_LEFT;
}

/* ---- layout and scaling ---- */

static void test_layout_to_desktop(void **state)
{
    VddLayout l = two_displays();
    int32_t x = -1, y = -1;
    assert_true(vdd_layout_to_desktop(&l, 0, 10, 20, &x, &y));
    assert_int_equal(x, 10);
    assert_int_equal(y, 20);
    assert_true(vdd_layout_to_desktop(&l, 1, 10, 20, &x, &y));
    assert_int_equal(x, 1034);
    assert_int_equal(y, 20);
    assert_false(vdd_layout_to_desktop(&l, 2, 10, 20, &x, &y));   /* disabled */
    assert_false(vdd_layout_to_desktop(&l, 3, 10, 20, &x, &y));   /* unknown */
    assert_false(vdd_layout_to_desktop(NULL, 0, 10, 20, &x, &y));

    /* Displays below and left of the origin, ids not in order, huge values
     * saturate instead of wrapping. */
    VddLayout m;
    memset(&m, 0, sizeof(m));
    m.count = 2;
    m.displays[0] = (VddDisplay){.display_id = 7, .x = -800, .y = 600, .width = 800, .height = 600};
    m.displays[1] = (VddDisplay){.display_id = 3, .x = INT32_MAX - 5, .y = 0, .width = 10, .height = 10};
    assert_true(vdd_layout_to_desktop(&m, 7, 5, 6, &x, &y));
    assert_int_equal(x, -795);
    assert_int_equal(y, 606);
    assert_true(vdd_layout_to_desktop(&m, 3, 100, 0, &x, &y));
    assert_int_equal(x, INT32_MAX);
    m.count = 0;
    assert_false(vdd_layout_to_desktop(&m, 7, 5, 6, &x, &y));
}

static void test_scale_edges(void **state)
{
    assert_int_equal(vdd_input_scale(0, 1920), 0);
    assert_int_equal(vdd_input_scale(1919, 1920), VDD_INPUT_ABS_MAX);
    assert_int_equal(vdd_input_scale(5000, 1920), VDD_INPUT_ABS_MAX);   /* clamped */
    assert_int_equal(vdd_input_scale(-3, 1920), 0);
    assert_int_equal(vdd_input_scale(0, 0), 0);
    assert_int_equal(vdd_input_scale(7, 1), 0);
    assert_int_equal(vdd_input_scale(1365, 1366), VDD_INPUT_ABS_MAX);
    assert_int_equal(vdd_input_scale(1023, 1024), VDD_INPUT_ABS_MAX);
    /* Strictly increasing over the pixels. */
    for (uint32_t w = 2; w <= 4096; w++) {
        uint32_t prev = vdd_input_scale(0, w);
        for (uint32_t x = 1; x < w; x++) {
            uint32_t v = vdd_input_scale((int32_t)x, w);
            assert_true(v > prev);
            assert_true(v <= VDD_INPUT_ABS_MAX);
            prev = v;
        }
    }
}

/* The inverse mappings (see vdd_input_scale in vdd-input.h/.c). Every
 * value is >= 0, so the integer conversion is the floor (no libm). */
static int64_t inv_libinput(uint32_t v, uint32_t w)
{
    double dev = (double)v * 65535.0 / 32768.0;   /* libinput -> 0..0xffff */
    double scr = dev * (double)w / 65536.0;        /* dix rescale, max + 1 */
    return (int64_t)(scr);
}

static int64_t inv_evdev(uint32_t v, uint32_t w)
{
    return (int64_t)((double)v * (double)w / 32768.0);
}

static int64_t inv_legacy_trunc(uint32_t v, uint32_t w)
{
    return (int64_t)((double)v * (double)(w - 1) / 32767.0);
}

static int64_t inv_legacy_round(uint32_t v, uint32_t w)
{
    return (int64_t)((double)v * (double)(w - 1) / 32767.0 + 0.5);
}

static void check_width(uint32_t w)
{
    for (uint32_t x = 0; x < w; x++) {
        uint32_t v = vdd_input_scale((int32_t)x, w);
        if (inv_libinput(v, w) != x || inv_evdev(v, w) != x || inv_legacy_trunc(v, w) != x ||
            inv_legacy_round(v, w) != x)
            fail_msg("width %u pixel %u -> %u -> libinput %" PRId64 " evdev %" PRId64
                     " legacy %" PRId64 "/%" PRId64,
                     w, x, v, inv_libinput(v, w), inv_evdev(v, w), inv_legacy_trunc(v, w),
                     inv_legacy_round(v, w));
    }
}

static void test_scale_inverse(void **state)
{
    /* The widths of the brief first, then every width up to 4096 and the
     * big ones (8K, the dummy driver's 8192, the documented 16384). */
    check_width(1366);
    check_width(1920);
    check_width(1024);
    check_width(768);
    for (uint32_t w = 2; w <= 4096; w++)
        check_width(w);
    static const uint32_t big[] = {5120, 7680, 8192, 10240, 15360, 16383, 16384};
    for (size_t i = 0; i < G_N_ELEMENTS(big); i++)
        check_width(big[i]);
}

/* ---- uinput: fails cleanly here ---- */

static void test_uinput_missing(void **state)
{
    GError *err = NULL;
    char *p = tmp_path("no-such-uinput");
    VddInput *in = vdd_input_new(NULL, VDD_INPUT_UINPUT, p, &err);
    assert_null(in);
    assert_non_null(err);
    assert_true(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
    assert_non_null(strstr(err->message, p));
    g_clear_error(&err);
    g_free(p);
}

static void test_uinput_not_uinput(void **state)
{
    /* /dev/null opens but takes no uinput ioctl: the first one fails and
     * says which. */
    GError *err = NULL;
    VddInput *in = vdd_input_new(NULL, VDD_INPUT_UINPUT, "/dev/null", &err);
    assert_null(in);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "UI_GET_VERSION"));
    g_clear_error(&err);
}

static void test_fake_missing(void **state)
{
    GError *err = NULL;
    char *p = tmp_path("missing.fifo");
    VddInput *in = vdd_input_new(NULL, VDD_INPUT_FAKE, p, &err);
    assert_null(in);
    assert_true(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
    g_clear_error(&err);
    g_free(p);
}

/* ---- fake sink: exact sequences ---- */

/* The script both sequence tests run, and what it must produce. */
static void run_script(VddInput *in)
{
    assert_true(vdd_input_mouse(in, 10, 20, 0, 0));
    assert_true(vdd_input_mouse(in, 10, 20, 0, 0));       /* nothing changed: nothing */
    assert_true(vdd_input_mouse(in, 10, 25, 0, 0));       /* only Y */
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));        /* display 1: x + 1024, only X */
    assert_true(vdd_input_mouse(in, 5, 25, L, 1));
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));
    assert_true(vdd_input_mouse(in, 5, 25, M, 1));
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));
    assert_true(vdd_input_mouse(in, 5, 25, R, 1));
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));
    assert_true(vdd_input_mouse(in, 5, 25, S, 1));
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));
    assert_true(vdd_input_mouse(in, 5, 25, E, 1));
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));
    assert_true(vdd_input_mouse(in, 5, 25, U, 1));        /* wheel up: +1 */
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));        /* release: nothing */
    assert_true(vdd_input_mouse(in, 5, 25, D, 1));        /* wheel down: -1 */
    assert_true(vdd_input_mouse(in, 5, 25, 0, 1));
    assert_true(vdd_input_mouse(in, 100, 200, L | R, 0)); /* move and press together */
    assert_true(vdd_input_mouse(in, 100, 200, R | 0x100, 0)); /* unknown bits ignored */
    assert_true(vdd_input_mouse(in, 1365, 767, 0, 1));    /* last pixel of display 1 */
}

static const Ev script_events[] = {
    AX(10), AY(20), SYN,
    AY(25), SYN,
    AX(1029), SYN,
    KEY(BTN_LEFT, 1), SYN, KEY(BTN_LEFT, 0), SYN,
    KEY(BTN_MIDDLE, 1), SYN, KEY(BTN_MIDDLE, 0), SYN,
    KEY(BTN_RIGHT, 1), SYN, KEY(BTN_RIGHT, 0), SYN,
    KEY(BTN_SIDE, 1), SYN, KEY(BTN_SIDE, 0), SYN,
    KEY(BTN_EXTRA, 1), SYN, KEY(BTN_EXTRA, 0), SYN,
    WHEEL(1), SYN,
    WHEEL(-1), SYN,
    AX(100), AY(200), KEY(BTN_LEFT, 1), KEY(BTN_RIGHT, 1), SYN,
    KEY(BTN_LEFT, 0), SYN,
    AX(2389), AY(767), KEY(BTN_RIGHT, 0), SYN,
};

static void test_fake_file_sequence(void **state)
{
    assert_int_equal(sizeof(struct input_event), sizeof(long) == 8 ? 24 : 16);
    char *p = tmp_path("events.bin");
    /* Something already in the file stays: records are appended. */
    assert_true(g_file_set_contents(p, "", 0, NULL));
    GMainContext *ctx = g_main_context_new();
    GError *err = NULL;
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, &err);
    assert_non_null(in);
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);
    run_script(in);
    VddInputStats st;
    vdd_input_get_stats(in, &st);
    assert_int_equal(st.events, 21);
    assert_int_equal(st.bytes_buffered, 0);    /* a file takes everything at once */
    vdd_input_free(in);

    char *data;
    gsize len;
    assert_true(g_file_get_contents(p, &data, &len, NULL));
    GByteArray raw = {(guint8 *)data, (guint)len};
    GArray *got = decode(&raw);
    assert_events(got, 0, script_events, G_N_ELEMENTS(script_events));
    g_array_unref(got);
    g_free(data);

    /* A second daemon run appends after the first run's records. */
    in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, &err);
    assert_non_null(in);
    vdd_input_set_layout(in, &l);
    assert_true(vdd_input_mouse(in, 1, 2, 0, 0));
    vdd_input_free(in);
    assert_true(g_file_get_contents(p, &data, &len, NULL));
    assert_int_equal(len, (G_N_ELEMENTS(script_events) + 3) * sizeof(struct input_event));
    g_free(data);

    g_main_context_unref(ctx);
    g_free(p);
}

static int open_reader(const char *fifo)
{
    int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void test_fake_fifo_sequence(void **state)
{
    char *p = tmp_path("events.fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    int rfd = open_reader(p);
    GMainContext *ctx = g_main_context_new();
    GError *err = NULL;
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, &err);
    assert_non_null(in);
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);
    run_script(in);
    while (g_main_context_iteration(ctx, FALSE))
        ;
    GByteArray *raw = g_byte_array_new();
    read_records(rfd, raw);
    GArray *got = decode(raw);
    assert_events(got, 0, script_events, G_N_ELEMENTS(script_events));
    g_array_unref(got);
    g_byte_array_unref(raw);
    vdd_input_free(in);
    close(rfd);
    g_main_context_unref(ctx);
    g_free(p);
}

static void test_unknown_display(void **state)
{
    char *p = tmp_path("events.bin");
    assert_true(g_file_set_contents(p, "", 0, NULL));
    GMainContext *ctx = g_main_context_new();
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, NULL);
    assert_non_null(in);
    guint h = g_log_set_handler("vdd-input", G_LOG_LEVEL_MASK, count_log, NULL);

    /* No layout yet. */
    assert_false(vdd_input_mouse(in, 1, 1, 0, 0));
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);
    assert_false(vdd_input_mouse(in, 1, 1, L, 2));    /* disabled */
    assert_false(vdd_input_mouse(in, 1, 1, L, 9));    /* unknown */
    for (int i = 0; i < 1000; i++)
        assert_false(vdd_input_mouse(in, (uint32_t)i, 1, 0, 5));
    assert_true(vdd_input_mouse(in, 3, 4, 0, 0));
    /* The layout goes away again. */
    vdd_input_set_layout(in, NULL);
    assert_false(vdd_input_mouse(in, 3, 4, 0, 0));

    VddInputStats st;
    vdd_input_get_stats(in, &st);
    assert_int_equal(st.dropped_unknown_display, 1004);
    assert_int_equal(st.events, 1);
    /* One line, not one per event (the next is due after 10 s). */
    assert_int_equal(log_dropped_lines, 1);
    vdd_input_free(in);
    g_log_remove_handler("vdd-input", h);

    char *data;
    gsize len;
    assert_true(g_file_get_contents(p, &data, &len, NULL));
    GByteArray raw = {(guint8 *)data, (guint)len};
    GArray *got = decode(&raw);
    static const Ev want[] = {AX(3), AY(4), SYN};
    assert_events(got, 0, want, G_N_ELEMENTS(want));
    g_array_unref(got);
    g_free(data);
    g_main_context_unref(ctx);
    g_free(p);
}

/* Apply a stream to a reader state; checks that every frame ends with SYN
 * and that key events are real edges (no release without its press). */
static void replay(Reader *r, const GArray *ev, size_t from, size_t *frames)
{
    bool open_frame = false;
    for (size_t i = from; i < ev->len; i++) {
        const Ev *e = &g_array_index(ev, Ev, i);
        switch (e->type) {
        case EV_ABS:
            if (e->code == ABS_X) {
                r->x = e->value;
                r->have_x = true;
            } else {
                assert_int_equal(e->code, ABS_Y);
                r->y = e->value;
                r->have_y = true;
            }
            open_frame = true;
            break;
        case EV_KEY: {
            uint32_t bit = 1u << key_bit(e->code);
            assert_int_equal(!!(r->keys & bit), !e->value);   /* an edge */
            r->keys ^= bit;
            open_frame = true;
            break;
        }
        case EV_REL:
            assert_int_equal(e->code, REL_WHEEL);
            r->wheel += e->value;
            open_frame = true;
            break;
        case EV_SYN:
            assert_int_equal(e->code, SYN_REPORT);
            assert_true(open_frame);                         /* no empty frames */
            open_frame = false;
            if (frames)
                (*frames)++;
            break;
        default:
            fail_msg("unexpected event type %u", e->type);
        }
    }
    assert_false(open_frame);
}

/* ---- a reader that never reads ---- */

#define STALL_EVENTS 100000u

static void test_fifo_stalled_reader(void **state)
{
    char *p = tmp_path("stall.fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    int rfd = open_reader(p);
    GMainContext *ctx = g_main_context_new();
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, NULL);
    assert_non_null(in);
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);

    /* Motion on both displays; the left button goes down at i % 1000 ==
     * 500 and up at i % 1000 == 900: 100 clicks, each at a known place. */
    typedef struct Edge {
        uint16_t code;
        int32_t value, x, y;
    } Edge;
    GArray *edges = g_array_new(FALSE, FALSE, sizeof(Edge));
    uint64_t max_buffered = 0;
    uint32_t buttons = 0;
    int32_t last_x = 0, last_y = 0;
    gint64 t0 = g_get_monotonic_time();
    for (uint32_t i = 0; i < STALL_EVENTS; i++) {
        uint8_t disp = (i / 7000) % 2;
        uint32_t x = (i * 7) % 1000, y = (i * 13) % 700;
        uint32_t before = buttons;
        if (i % 1000 == 500)
            buttons |= L;
        else if (i % 1000 == 900)
            buttons &= ~(uint32_t)L;
        else if (i % 5000 == 17)
            buttons ^= R;
        assert_true(vdd_input_mouse(in, x, y, buttons, disp));
        last_x = (int32_t)x + (disp ? 1024 : 0);
        last_y = (int32_t)y;
        if ((before ^ buttons) & L) {
            Edge e = {BTN_LEFT, (buttons & L) ? 1 : 0, last_x, last_y};
            g_array_append_val(edges, e);
        }
        if ((before ^ buttons) & R) {
            Edge e = {BTN_RIGHT, (buttons & R) ? 1 : 0, last_x, last_y};
            g_array_append_val(edges, e);
        }
        VddInputStats st;
        vdd_input_get_stats(in, &st);
        max_buffered = MAX(max_buffered, st.bytes_buffered);
    }
    gint64 elapsed = g_get_monotonic_time() - t0;
    fprintf(stderr, "%u events into a stalled FIFO: %.3f s\n", STALL_EVENTS, elapsed / 1e6);
    assert_true(elapsed < G_USEC_PER_SEC / 2);
    assert_true(max_buffered <= VDD_INPUT_FAKE_BUFFER);
    assert_true(max_buffered > VDD_INPUT_FAKE_BUFFER / 2);   /* it did fill up */

    VddInputStats st;
    vdd_input_get_stats(in, &st);
    assert_int_equal(st.events, STALL_EVENTS);
    assert_true(st.coalesced > 0);
    assert_int_equal(st.dropped_overflow, 0);   /* the clicks all fit */

    /* Now the reader drains: read while the loop writes, until the last
     * position and the final button state are there. */
    GByteArray *raw = g_byte_array_new();
    Reader rd = {0};
    gint64 deadline = g_get_monotonic_time() + TEST_TIMEOUT_MS * 1000;
    GArray *got = NULL;
    for (;;) {
        while (g_main_context_iteration(ctx, FALSE))
            ;
        read_records(rfd, raw);
        vdd_input_get_stats(in, &st);
        if (st.bytes_buffered == 0 && raw->len % sizeof(struct input_event) == 0) {
            while (g_main_context_iteration(ctx, FALSE))
                ;
            read_records(rfd, raw);
            g_clear_pointer(&got, g_array_unref);
            got = decode(raw);
            memset(&rd, 0, sizeof(rd));
            replay(&rd, got, 0, NULL);
            if (rd.x == last_x && rd.y == last_y)
                break;
        }
        assert_true(g_get_monotonic_time() < deadline);
        g_usleep(1000);
    }
    assert_int_equal(rd.x, last_x);
    assert_int_equal(rd.y, last_y);
    assert_int_equal(rd.keys & 1u, (buttons & L) ? 1u : 0u);
    assert_int_equal(!!(rd.keys & (1u << (BTN_RIGHT - BTN_LEFT))), !!(buttons & R));
    /* Far fewer records than events: motion was merged. */
    assert_true(got->len < STALL_EVENTS * 3 / 4);

    /* Every button edge, in order, each where it happened. */
    Reader sim = {0};
    size_t k = 0;
    for (size_t i = 0; i < got->len; i++) {
        const Ev *e = &g_array_index(got, Ev, i);
        if (e->type == EV_ABS && e->code == ABS_X)
            sim.x = e->value;
        if (e->type == EV_ABS && e->code == ABS_Y)
            sim.y = e->value;
        if (e->type != EV_KEY)
            continue;
        assert_true(k < edges->len);
        const Edge *w = &g_array_index(edges, Edge, k);
        assert_int_equal(e->code, w->code);
        assert_int_equal(e->value, w->value);
        assert_int_equal(sim.x, w->x);
        assert_int_equal(sim.y, w->y);
        k++;
    }
    assert_int_equal(k, edges->len);
    assert_true(k >= 200);

    g_array_unref(got);
    g_array_unref(edges);
    g_byte_array_unref(raw);
    vdd_input_free(in);
    close(rfd);
    g_main_context_unref(ctx);
    g_free(p);
}

/* Clicks faster than the buffer: some do not fit; the reader's stream
 * stays consistent and ends in the newest state; one log line. */
static void test_fifo_overflow_buttons(void **state)
{
    char *p = tmp_path("overflow.fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    int rfd = open_reader(p);
    GMainContext *ctx = g_main_context_new();
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, NULL);
    assert_non_null(in);
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);
    guint h = g_log_set_handler("vdd-input", G_LOG_LEVEL_MASK, count_log, NULL);

    uint32_t buttons = 0;
    VddInputStats st;
    for (uint32_t i = 0; i < 20000; i++) {
        buttons ^= (i % 3 == 0) ? L : M;
        assert_true(vdd_input_mouse(in, i % 500, 3, buttons, 0));
        vdd_input_get_stats(in, &st);
        assert_true(st.bytes_buffered <= VDD_INPUT_FAKE_BUFFER);
    }
    assert_true(vdd_input_mouse(in, 77, 88, buttons, 1));
    vdd_input_get_stats(in, &st);
    assert_true(st.dropped_overflow > 0);
    assert_int_equal(log_dropped_lines, 1);
    g_log_remove_handler("vdd-input", h);

    GByteArray *raw = g_byte_array_new();
    gint64 deadline = g_get_monotonic_time() + TEST_TIMEOUT_MS * 1000;
    Reader rd;
    for (;;) {
        while (g_main_context_iteration(ctx, FALSE))
            ;
        read_records(rfd, raw);
        vdd_input_get_stats(in, &st);
        if (st.bytes_buffered == 0) {
            while (g_main_context_iteration(ctx, FALSE))
                ;
            read_records(rfd, raw);
            GArray *got = decode(raw);
            memset(&rd, 0, sizeof(rd));
            replay(&rd, got, 0, NULL);     /* edges only, whole frames */
            g_array_unref(got);
            if (rd.x == 77 + 1024 && rd.y == 88)
                break;
        }
        assert_true(g_get_monotonic_time() < deadline);
        g_usleep(1000);
    }
    assert_int_equal(!!(rd.keys & 1u), !!(buttons & L));
    assert_int_equal(!!(rd.keys & 4u), !!(buttons & M));   /* BTN_MIDDLE = BTN_LEFT + 2 */

    g_byte_array_unref(raw);
    vdd_input_free(in);
    close(rfd);
    g_main_context_unref(ctx);
    g_free(p);
}

/* ---- FIFO readers coming and going ---- */

static void test_fifo_reader_later(void **state)
{
    char *p = tmp_path("late.fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    GMainContext *ctx = g_main_context_new();
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time();
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, &err);   /* ENXIO: no reader */
    assert_non_null(in);
    assert_true(g_get_monotonic_time() - t0 < G_USEC_PER_SEC / 10);
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);
    assert_true(vdd_input_mouse(in, 10, 20, 0, 1));
    assert_true(vdd_input_mouse(in, 11, 20, L, 1));
    run_for(ctx, 300);          /* a few retries, nobody there */
    assert_true(vdd_input_mouse(in, 11, 20, 0, 1));

    int rfd = open_reader(p);
    GByteArray *raw = g_byte_array_new();
    static const Ev want[] = {
        AX(1034), AY(20), SYN, AX(1035), KEY(BTN_LEFT, 1), SYN, KEY(BTN_LEFT, 0), SYN,
    };
    gint64 deadline = g_get_monotonic_time() + TEST_TIMEOUT_MS * 1000;
    while (raw->len < sizeof(want) / sizeof(want[0]) * sizeof(struct input_event)) {
        g_main_context_iteration(ctx, FALSE);
        read_records(rfd, raw);
        assert_true(g_get_monotonic_time() < deadline);
        g_usleep(2000);
    }
    GArray *got = decode(raw);
    assert_events(got, 0, want, G_N_ELEMENTS(want));
    g_array_unref(got);
    g_byte_array_unref(raw);
    vdd_input_free(in);
    close(rfd);
    g_main_context_unref(ctx);
    g_free(p);
}

/* A sink that opens but never takes a write (/dev/full: ENOSPC) must not be
 * reopened 20 times a second forever: the back-off keeps doubling until a
 * write succeeds. */
static void test_fake_write_fails_backs_off(void **state)
{
    GMainContext *ctx = g_main_context_new();
    GError *err = NULL;
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, "/dev/full", &err);
    assert_non_null(in);
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);
    gint64 end = g_get_monotonic_time() + 1500 * 1000;
    uint32_t x = 0;
    while (g_get_monotonic_time() < end) {
        vdd_input_mouse(in, x++ % 500, 20, 0, 0);   /* a host moving the mouse */
        run_for(ctx, 10);
    }
    VddInputStats st;
    vdd_input_get_stats(in, &st);
    /* 50, 100, 200, 400, 800 ms: at most 6 opens in 1.5 s (a fixed 50 ms
     * retry would be about 30). */
    assert_true(st.opens >= 2);
    assert_true(st.opens <= 6);
    vdd_input_free(in);
    g_main_context_unref(ctx);
}

static void test_fifo_reader_goes_away(void **state)
{
    /* SIGPIPE must not kill us: the default action stays in place. */
    signal(SIGPIPE, SIG_DFL);
    char *p = tmp_path("away.fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    int rfd = open_reader(p);
    GMainContext *ctx = g_main_context_new();
    VddInput *in = vdd_input_new(ctx, VDD_INPUT_FAKE, p, NULL);
    assert_non_null(in);
    VddLayout l = two_displays();
    vdd_input_set_layout(in, &l);
    assert_true(vdd_input_mouse(in, 1, 2, R, 0));
    GByteArray *raw = g_byte_array_new();
    read_records(rfd, raw);
    assert_int_equal(raw->len, 4 * sizeof(struct input_event));
    close(rfd);

    /* The write fails with EPIPE; the next reader first gets the whole
     * state again (position and the held button), then the rest. */
    assert_true(vdd_input_mouse(in, 5, 2, R, 0));
    assert_true(vdd_input_mouse(in, 6, 2, R, 0));
    run_for(ctx, 100);
    rfd = open_reader(p);
    g_byte_array_set_size(raw, 0);
    static const Ev want[] = {AX(5), AY(2), KEY(BTN_RIGHT, 1), SYN, AX(6), SYN};
    gint64 deadline = g_get_monotonic_time() + TEST_TIMEOUT_MS * 1000;
    while (raw->len < G_N_ELEMENTS(want) * sizeof(struct input_event)) {
        g_main_context_iteration(ctx, FALSE);
        read_records(rfd, raw);
        assert_true(g_get_monotonic_time() < deadline);
        g_usleep(2000);
    }
    GArray *got = decode(raw);
    assert_events(got, 0, want, G_N_ELEMENTS(want));
    g_array_unref(got);
    g_byte_array_unref(raw);
    vdd_input_free(in);
    close(rfd);
    g_main_context_unref(ctx);
    g_free(p);
}

/* ---- the status JSON (vdd-status.c; it shows VddLayouts) ---- */

/* A local user names its agent in HELLO with any bytes but NUL; the status
 * document must still be valid JSON (UTF-8 text) with no control
 * characters a terminal would act on, and ordinary UTF-8 must survive. */
static void test_status_json_strings(void **state)
{
    VddLayout l = two_displays();
    VddStatusAgent agents[3] = {
        {.pid = 10, .uid = 1000, .session = "2", .name = "evil\xff\xfe\xc0\xaf name", .layout = &l},
        {.pid = 11, .uid = 1001, .session = "3\xe2\x82", .name = "csi \xc2\x9b" "31m \x1b[2J \x7f"},
        {.pid = 12, .uid = 1002, .session = "c1", .name = "Zo\xc3\xab \xe2\x9c\x93"},
    };
    VddStatusInfo info = {
        .port_path = "/dev/virtio-ports/com.redhat.spice.0",
        .port_state = "open",
        .session_integration = true,
        .active_session = "2",
        .mouse = "fake",
        .nagents = 3,
        .agents = agents,
    };
    char *json = vdd_status_to_json(&info);
    assert_non_null(json);
    assert_true(g_utf8_validate(json, -1, NULL));
    for (const char *p = json; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        assert_false(c < 0x20 || (c >= 0x7f && c < 0xa0));
    }
    /* Still a document with the agents in it, readable text kept. */
    assert_non_null(strstr(json, "Zo\xc3\xab \xe2\x9c\x93"));
    assert_non_null(strstr(json, "\"pid\":12"));
    g_free(json);
}

/* Local users choose the layouts their agents report (up to
 * VDP_MAX_MONITORS displays each, VDD_AGENTS_MAX_TOTAL agents): the status
 * must still fit one STATUS_REPLY frame, or --status stops working for
 * root. Every agent is still listed. */
static void test_status_json_bounded(void **state)
{
    enum { NAGENTS = 64 };
    VddLayout *l = g_new0(VddLayout, 1);
    l->desktop_width = l->desktop_height = 65535;
    l->count = VDP_MAX_MONITORS;
    for (uint32_t i = 0; i < l->count; i++)
        l->displays[i] = (VddDisplay){.display_id = 4000000000u + i, .x = -1048576,
                                      .y = -1048576, .width = 65535, .height = 65535};
    VdpMonitorsConfig *mc = g_new0(VdpMonitorsConfig, 1);
    mc->count = VDP_MAX_MONITORS;
    for (uint32_t i = 0; i < mc->count; i++)
        mc->monitors[i] = (VdpMonConfig){.width = 4000000000u, .height = 4000000000u,
                                         .depth = 32, .x = INT32_MIN, .y = INT32_MIN,
                                         .mm_width = 65535, .mm_height = 65535};
    VddStatusAgent agents[NAGENTS];
    char names[NAGENTS][VDP_IPC_NAME_MAX];
    for (unsigned i = 0; i < NAGENTS; i++) {
        memset(names[i], 'n', sizeof(names[i]) - 1);
        names[i][sizeof(names[i]) - 1] = 0;
        agents[i] = (VddStatusAgent){.pid = 4000000 + (pid_t)i, .uid = 4000000000u,
                                     .session = "c123456", .name = names[i], .layout = l};
    }
    VddStatusInfo info = {.port_path = "/dev/virtio-ports/com.redhat.spice.0",
                          .port_state = "open", .session_integration = true,
                          .active_session = "c123456", .mouse = "uinput", .monitors = mc,
                          .nagents = NAGENTS, .agents = agents};
    char *json = vdd_status_to_json(&info);
    assert_non_null(json);
    assert_true(strlen(json) + 1 <= VDP_IPC_MAX_FRAME);
    assert_int_not_equal(vdp_ipc_status_reply_encode(json, NULL, 0), 0);
    json_object *root = json_tokener_parse(json);
    assert_non_null(root);
    json_object *arr = NULL;
    assert_true(json_object_object_get_ex(root, "agents", &arr));
    assert_int_equal(json_object_array_length(arr), NAGENTS);
    json_object_put(root);
    g_free(json);

    /* A small status keeps every display. */
    info.nagents = 1;
    json = vdd_status_to_json(&info);
    root = json_tokener_parse(json);
    assert_non_null(root);
    json_object *a0 = json_object_array_get_idx(json_object_object_get(root, "agents"), 0);
    json_object *lay = json_object_object_get(a0, "layout");
    assert_int_equal(json_object_array_length(json_object_object_get(lay, "displays")),
                     VDP_MAX_MONITORS);
    json_object_put(root);
    g_free(json);
    g_free(mc);
    g_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_to_desktop),
        cmocka_unit_test(test_scale_edges),
        cmocka_unit_test(test_scale_inverse),
        cmocka_unit_test_setup_teardown(test_uinput_missing, setup_dir, teardown_dir),
        cmocka_unit_test(test_uinput_not_uinput),
        cmocka_unit_test_setup_teardown(test_fake_missing, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fake_file_sequence, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fake_fifo_sequence, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_unknown_display, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fifo_stalled_reader, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fifo_overflow_buttons, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fifo_reader_later, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fifo_reader_goes_away, setup_dir, teardown_dir),
        cmocka_unit_test(test_fake_write_fails_backs_off),
        cmocka_unit_test(test_status_json_strings),
        cmocka_unit_test(test_status_json_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
