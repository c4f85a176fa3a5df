/* test-cvt.c - the display module's pure computations, no X server:
 *
 * CRTC assignment (va-display-crtc.c): cases no test server builds (the
 * dummy driver gives each output exactly one CRTC): shared CRTCs where
 * first come, first served fails but an assignment exists, keeping the
 * current CRTC, clones, impossible cases, random cases against brute force.
 *
 * Clock fitting (va_cvt_rb_fit): modes whose 60 Hz pixel clock would not
 * fit XRRModeInfo's 32-bit dotClock get a lower refresh that fits.
 *
 * CVT reduced-blanking timings (va-cvt.c) against the values
 * the `cvt -r` tool prints (xserver-xorg-core), recorded below and, when
 * /usr/bin/cvt is installed, also compared live for more sizes. Widths that
 * are not a multiple of 8 are padded to whole cells by CVT (cvt prints
 * "1368x768R" for 1366): every timing must equal cvt's for the padded
 * width, and hdisplay must stay the exact width asked for. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "va-cvt.h"
#include "va-display-crtc.h"

typedef struct Ref {
    uint32_t w, h;
    double clock_mhz;
    uint32_t hd, hss, hse, ht, vd, vss, vse, vt;
} Ref;

/* `cvt -r W H 60` output (xserver-xorg-core 21.1, Debian 12). */
static const Ref refs[] = {
    {1366, 768, 72.25, 1368, 1416, 1448, 1528, 768, 771, 781, 790},
    {1920, 1080, 138.50, 1920, 1968, 2000, 2080, 1080, 1083, 1088, 1111},
    {2560, 1600, 268.50, 2560, 2608, 2640, 2720, 1600, 1603, 1609, 1646},
    {1001, 777, 55.75, 1008, 1056, 1088, 1168, 777, 780, 790, 800},
    {800, 600, 35.50, 800, 848, 880, 960, 600, 603, 607, 618},
    {1024, 768, 56.00, 1024, 1072, 1104, 1184, 768, 771, 775, 790},
    {1280, 720, 63.75, 1280, 1328, 1360, 1440, 720, 723, 728, 741},
    {3840, 2160, 533.00, 3840, 3888, 3920, 4000, 2160, 2163, 2168, 2222},
    {1234, 789, 68.00, 1240, 1288, 1320, 1400, 789, 792, 802, 812},
    {1280, 1024, 90.75, 1280, 1328, 1360, 1440, 1024, 1027, 1034, 1054},
    {1680, 1050, 119.00, 1680, 1728, 1760, 1840, 1050, 1053, 1059, 1080},
    {64, 64, 0.75, 64, 112, 144, 224, 64, 67, 77, 83},
};

static void check_ref(const Ref *r)
{
    VaCvtMode m;
    assert_true(va_cvt_rb(r->w, r->h, 60.0, &m));
    /* The exact width, not cvt's padded one. */
    assert_int_equal(m.width, r->w);
    assert_int_equal(m.height, r->vd);
    assert_int_equal(m.hsync_start, r->hss);
    assert_int_equal(m.hsync_end, r->hse);
    assert_int_equal(m.htotal, r->ht);
    assert_int_equal(m.vsync_start, r->vss);
    assert_int_equal(m.vsync_end, r->vse);
    assert_int_equal(m.vtotal, r->vt);
    /* Hz, a multiple of the 250 kHz step. */
    assert_int_equal(m.dot_clock, (uint64_t)(r->clock_mhz * 1000.0 + 0.5) * 1000u);
    assert_int_equal(m.dot_clock % 250000u, 0);
    assert_true(m.hsync_positive && m.vsync_negative);
    char name[32];
    snprintf(name, sizeof name, "%ux%u", r->w, r->h);
    assert_string_equal(m.name, name);
    /* Sane ordering whatever the width. */
    assert_true(m.width < m.hsync_start && m.hsync_start < m.hsync_end && m.hsync_end < m.htotal);
    assert_true(m.height < m.vsync_start && m.vsync_start < m.vsync_end && m.vsync_end < m.vtotal);
}

static void test_recorded(void **state)
{
    (void)state;
    for (size_t i = 0; i < G_N_ELEMENTS(refs); i++) {
        printf("# %ux%u\n", refs[i].w, refs[i].h);
        check_ref(&refs[i]);
    }
}

static void test_refresh_in_clock(void **state)
{
    (void)state;
    /* The refresh the timings give is close to the one asked for. */
    const double rates[] = {30.0, 50.0, 60.0, 75.0, 120.0};
    for (size_t i = 0; i < G_N_ELEMENTS(rates); i++) {
        VaCvtMode m;
        assert_true(va_cvt_rb(1920, 1080, rates[i], &m));
        double got = (double)m.dot_clock / ((double)m.htotal * m.vtotal);
        printf("# 1920x1080 @ %.1f -> %.3f Hz\n", rates[i], got);
        assert_true(got > rates[i] * 0.98 && got <= rates[i] * 1.001);
    }
}

static void test_invalid(void **state)
{
    (void)state;
    VaCvtMode m;
    memset(&m, 0x5a, sizeof m);
    VaCvtMode before = m;
    assert_false(va_cvt_rb(0, 768, 60, &m));
    assert_false(va_cvt_rb(1024, 0, 60, &m));
    assert_false(va_cvt_rb(VA_CVT_MAX_SIDE + 1, 768, 60, &m));
    assert_false(va_cvt_rb(1024, VA_CVT_MAX_SIDE + 1, 60, &m));
    assert_false(va_cvt_rb(UINT32_MAX, UINT32_MAX, 60, &m));
    assert_false(va_cvt_rb(1024, 768, 0.0, &m));
    assert_false(va_cvt_rb(1024, 768, -60.0, &m));
    assert_false(va_cvt_rb(1024, 768, 1e9, &m));
    assert_false(va_cvt_rb(1024, 768, 0.0 / 0.0, &m));
    assert_memory_equal(&m, &before, sizeof m);
    /* The largest X screen side still works (cvt pads the width to 32768). */
    assert_true(va_cvt_rb(VA_CVT_MAX_SIDE, VA_CVT_MAX_SIDE, 60, &m));
    assert_int_equal(m.width, VA_CVT_MAX_SIDE);
    assert_int_equal(m.htotal, 32928);
    assert_int_equal(m.vtotal, 33698);
    assert_int_equal(m.dot_clock, 66574500000ull);
    /* A mode so small its clock rounds to 0 has no timings. */
    assert_false(va_cvt_rb(8, 8, 60, &m));
    /* Every side from 32 to 4096 gives ordered timings. */
    for (uint32_t s = 32; s <= 4096; s++) {
        assert_true(va_cvt_rb(s, s, 60, &m));
        assert_int_equal(m.width, s);
        assert_true(m.hsync_start > m.width && m.htotal > m.hsync_end);
        assert_true(m.vtotal > m.vsync_end && m.dot_clock > 0);
    }
}

/* Live comparison with the installed cvt for more sizes. */
static void test_live_cvt(void **state)
{
    (void)state;
    if (!g_file_test("/usr/bin/cvt", G_FILE_TEST_IS_EXECUTABLE)) {
        printf("# /usr/bin/cvt not installed; live comparison skipped\n");
        return;
    }
    const uint32_t sizes[][2] = {{1366, 768}, {1001, 777}, {2560, 1440}, {1440, 900},
                                 {1600, 900}, {1920, 1200}, {1152, 864}, {1023, 767},
                                 {333, 222}, {5120, 2880}, {7680, 4320}, {1367, 769}};
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        char *argv[] = {"/usr/bin/cvt", "-r", NULL, NULL, NULL};
        char ws[16], hs[16];
        snprintf(ws, sizeof ws, "%u", sizes[i][0]);
        snprintf(hs, sizeof hs, "%u", sizes[i][1]);
        argv[2] = ws;
        argv[3] = hs;
        char *out = NULL;
        int status = 0;
        assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                                 &out, NULL, &status, NULL));
        const char *line = strstr(out, "Modeline");
        assert_non_null(line);
        char name[64];
        Ref r = {.w = sizes[i][0], .h = sizes[i][1]};
        int n = sscanf(line, "Modeline %63s %lf %u %u %u %u %u %u %u %u", name, &r.clock_mhz,
                       &r.hd, &r.hss, &r.hse, &r.ht, &r.vd, &r.vss, &r.vse, &r.vt);
        assert_int_equal(n, 10);
        printf("# live %ux%u: %s", r.w, r.h, line);
        check_ref(&r);
        g_free(out);
    }
}

/* ---- clock fitting ---- */

static double refresh_of(const VaCvtMode *m)
{
    return (double)m->dot_clock / ((double)m->htotal * m->vtotal);
}

static void test_fit_clock(void **state)
{
    (void)state;
    VaCvtMode m, plain;
    double used = 0;
    /* A clock that fits: exactly va_cvt_rb's mode. */
    assert_true(va_cvt_rb(1920, 1080, 60, &plain));
    assert_true(va_cvt_rb_fit(1920, 1080, 60, UINT32_MAX, &m, &used));
    assert_memory_equal(&m, &plain, sizeof m);
    assert_true(used == 60.0);

    /* 16000x8000 at 60 Hz: 7.98 GHz, cut to 3.68 GHz in 32 bits before. */
    assert_true(va_cvt_rb(16000, 8000, 60, &plain));
    printf("# 16000x8000 @ 60: %" PRIu64 " Hz\n", plain.dot_clock);
    assert_true(plain.dot_clock > UINT32_MAX);
    assert_true(va_cvt_rb_fit(16000, 8000, 60, UINT32_MAX, &m, &used));
    printf("# fitted: %.2f Hz asked, %.3f Hz by the timings, %" PRIu64 " Hz clock\n", used,
           refresh_of(&m), m.dot_clock);
    assert_true(m.dot_clock <= UINT32_MAX);
    assert_int_equal(m.width, 16000);
    assert_int_equal(m.height, 8000);
    /* The highest that fits, within the search's 1 % steps. */
    assert_true(used < 60.0 && used > 25.0);
    VaCvtMode above;
    assert_true(va_cvt_rb(16000, 8000, used / 0.98, &above));
    assert_true(above.dot_clock > UINT32_MAX);
    /* The largest side at the largest size still fits at some refresh. */
    assert_true(va_cvt_rb_fit(VA_CVT_MAX_SIDE, VA_CVT_MAX_SIDE, 60, UINT32_MAX, &m, &used));
    assert_true(m.dot_clock <= UINT32_MAX && used >= VA_CVT_MIN_REFRESH);
    printf("# %ux%u: %.2f Hz\n", VA_CVT_MAX_SIDE, VA_CVT_MAX_SIDE, used);
    /* A limit nothing meets: false, *m untouched. */
    VaCvtMode before = m;
    assert_false(va_cvt_rb_fit(1920, 1080, 60, 1000, &m, &used));
    assert_memory_equal(&m, &before, sizeof m);
    assert_false(va_cvt_rb_fit(0, 1080, 60, UINT32_MAX, &m, NULL));
}

/* ---- CRTC assignment ---- */

#define BIT(c) (UINT64_C(1) << (c))

/* crtc_of is a valid assignment for outs. */
static void check_assignment(const VaCrtcOutput *outs, unsigned n, unsigned ncrtc,
                             const int *crtc_of)
{
    uint64_t used = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!outs[i].wanted) {
            assert_int_equal(crtc_of[i], -1);
            continue;
        }
        int c = crtc_of[i];
        assert_true(c >= 0 && (unsigned)c < ncrtc);
        assert_true((outs[i].possible & BIT(c)) || outs[i].current == c);
        assert_false(used & BIT(c));
        used |= BIT(c);
    }
}

static void test_crtc_shared(void **state)
{
    (void)state;
    int crtc_of[8];
    /* The review's case: A can use {0,1}, B only {0}. First come, first
     * served gives A 0 and B nothing; the matching gives A 1, B 0. */
    const VaCrtcOutput ab[] = {{true, -1, BIT(0) | BIT(1)}, {true, -1, BIT(0)}};
    assert_int_equal(va_crtc_assign(ab, 2, 2, crtc_of), -1);
    check_assignment(ab, 2, 2, crtc_of);
    assert_int_equal(crtc_of[0], 1);
    assert_int_equal(crtc_of[1], 0);

    /* A chain: A {0,1}, B {1,2}, C {0} -> C 0, A 1, B 2 (two moves). */
    const VaCrtcOutput chain[] = {{true, -1, BIT(0) | BIT(1)},
                                  {true, -1, BIT(1) | BIT(2)},
                                  {true, -1, BIT(0)}};
    assert_int_equal(va_crtc_assign(chain, 3, 3, crtc_of), -1);
    check_assignment(chain, 3, 3, crtc_of);
    assert_int_equal(crtc_of[2], 0);

    /* Impossible: three outputs that can only use two CRTCs. The output
     * reported is one that got none. */
    const VaCrtcOutput three[] = {{true, -1, BIT(0) | BIT(1)},
                                  {true, -1, BIT(0) | BIT(1)},
                                  {true, -1, BIT(1)}};
    int bad = va_crtc_assign(three, 3, 2, crtc_of);
    assert_true(bad >= 0 && bad < 3);
    assert_int_equal(crtc_of[bad], -1);

    /* An output not wanted takes nothing; an output with an empty set
     * fails; a CRTC index past ncrtc is not used. */
    const VaCrtcOutput off[] = {{false, 0, BIT(0)}, {true, -1, BIT(0)}};
    assert_int_equal(va_crtc_assign(off, 2, 1, crtc_of), -1);
    assert_int_equal(crtc_of[0], -1);
    assert_int_equal(crtc_of[1], 0);
    const VaCrtcOutput none[] = {{true, -1, 0}};
    assert_int_equal(va_crtc_assign(none, 1, 4, crtc_of), 0);
    const VaCrtcOutput past[] = {{true, -1, BIT(5)}};
    assert_int_equal(va_crtc_assign(past, 1, 4, crtc_of), 0);
    assert_int_equal(va_crtc_assign(past, 1, 6, crtc_of), -1);
    assert_int_equal(crtc_of[0], 5);
    /* Nothing wanted: trivially fine. */
    assert_int_equal(va_crtc_assign(off, 1, 1, crtc_of), -1);
    /* The 64th CRTC. */
    const VaCrtcOutput last[] = {{true, -1, BIT(63)}};
    assert_int_equal(va_crtc_assign(last, 1, VA_CRTC_MAX, crtc_of), -1);
    assert_int_equal(crtc_of[0], 63);
    assert_int_equal(va_crtc_assign(last, 1, 1000, crtc_of), -1);
}

static void test_crtc_keep_current(void **state)
{
    (void)state;
    int crtc_of[8];
    /* Outputs keep the CRTC they drive when nothing forces a move, even
     * when a lower index is free. */
    const VaCrtcOutput keep[] = {{true, 2, BIT(0) | BIT(1) | BIT(2)},
                                 {true, -1, BIT(0) | BIT(1) | BIT(2)},
                                 {true, 1, BIT(0) | BIT(1) | BIT(2)}};
    assert_int_equal(va_crtc_assign(keep, 3, 3, crtc_of), -1);
    check_assignment(keep, 3, 3, crtc_of);
    assert_int_equal(crtc_of[0], 2);
    assert_int_equal(crtc_of[2], 1);
    assert_int_equal(crtc_of[1], 0);

    /* A current CRTC is moved only when a new output needs it: A drives 0
     * and can use 1; B can only use 0. */
    const VaCrtcOutput move[] = {{true, 0, BIT(0) | BIT(1)}, {true, -1, BIT(0)}};
    assert_int_equal(va_crtc_assign(move, 2, 2, crtc_of), -1);
    assert_int_equal(crtc_of[0], 1);
    assert_int_equal(crtc_of[1], 0);

    /* Clones (two outputs on one CRTC now): one keeps it, the other gets
     * another CRTC it can use. */
    const VaCrtcOutput clone[] = {{true, 0, BIT(0) | BIT(1)}, {true, 0, BIT(0) | BIT(1)}};
    assert_int_equal(va_crtc_assign(clone, 2, 2, crtc_of), -1);
    check_assignment(clone, 2, 2, crtc_of);
    assert_int_equal(crtc_of[0], 0);
    assert_int_equal(crtc_of[1], 1);
    /* ... and when there is no other, the clone fails. */
    assert_int_equal(va_crtc_assign(clone, 2, 1, crtc_of), 1);
}

/* Is there an assignment? Brute force over the outputs in order. */
static bool exists(const VaCrtcOutput *o, unsigned n, unsigned i, uint64_t used)
{
    if (i == n)
        return true;
    if (!o[i].wanted)
        return exists(o, n, i + 1, used);
    uint64_t set = o[i].possible | (o[i].current >= 0 ? BIT(o[i].current) : 0);
    for (unsigned c = 0; c < 64; c++)
        if ((set & BIT(c)) && !(used & BIT(c)) && exists(o, n, i + 1, used | BIT(c)))
            return true;
    return false;
}

static void test_crtc_random(void **state)
{
    (void)state;
    /* Small random cases against brute force: the matching succeeds
     * exactly when some assignment exists, and its answer is valid. */
    GRand *r = g_rand_new_with_seed(20261125);
    unsigned ok = 0, impossible = 0;
    for (int round = 0; round < 5000; round++) {
        unsigned n = (unsigned)g_rand_int_range(r, 1, 7);
        unsigned ncrtc = (unsigned)g_rand_int_range(r, 1, 6);
        VaCrtcOutput o[6];
        for (unsigned i = 0; i < n; i++) {
            o[i].wanted = g_rand_int_range(r, 0, 4) != 0;
            o[i].possible = (uint64_t)g_rand_int_range(r, 0, 1 << ncrtc);
            o[i].current = g_rand_int_range(r, 0, 3) == 0 ? g_rand_int_range(r, 0, (gint32)ncrtc)
                                                          : -1;
            if (o[i].current >= 0)
                o[i].possible |= BIT(o[i].current);
        }
        int crtc_of[6];
        int res = va_crtc_assign(o, n, ncrtc, crtc_of);
        bool possible = exists(o, n, 0, 0);
        if (possible) {
            assert_int_equal(res, -1);
            check_assignment(o, n, ncrtc, crtc_of);
            ok++;
        } else {
            assert_true(res >= 0 && (unsigned)res < n && o[res].wanted);
            impossible++;
        }
    }
    printf("# random: %u assignable, %u impossible, all agreeing with brute force\n", ok,
           impossible);
    assert_true(ok > 100 && impossible > 100);
    g_rand_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_clock),
        cmocka_unit_test(test_crtc_shared),
        cmocka_unit_test(test_crtc_keep_current),
        cmocka_unit_test(test_crtc_random),
        cmocka_unit_test(test_recorded),
        cmocka_unit_test(test_refresh_in_clock),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_live_cvt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
