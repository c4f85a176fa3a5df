/* test-cvt.c - CVT reduced-blanking timings (va-cvt.c) against the values
 * the `cvt -r` tool prints (xserver-xorg-core), recorded below and, when
 * /usr/bin/cvt is installed, also compared live for more sizes. Widths that
 * are not a multiple of 8 are padded to whole cells by CVT (cvt prints
 * "1368x768R" for 1366): every timing must equal cvt's for the padded
 * width, and hdisplay must stay the exact width asked for. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "va-cvt.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded),
        cmocka_unit_test(test_refresh_in_clock),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_live_cvt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
