/* test-caps.c - capability sets: set/has/unset across words, equality,
 * the guest and host sets, names, formatting, and the announce codec. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vdp-caps.h"
#include "vdp-msg.h"

static void test_clear(void **state)
{
    VdpCaps caps;
    memset(&caps, 0xAB, sizeof(caps));
    vdp_caps_clear(&caps);
    assert_int_equal(caps.nwords, 0);
    for (unsigned i = 0; i < VDP_MAX_CAPS_WORDS; i++)
        assert_int_equal(caps.words[i], 0);
    assert_false(vdp_caps_has(&caps, 0));
    assert_false(vdp_caps_has(&caps, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL));
}

static void test_set_first_word(void **state)
{
    VdpCaps caps;
    vdp_caps_clear(&caps);
    vdp_caps_set(&caps, 0);
    vdp_caps_set(&caps, 5);
    vdp_caps_set(&caps, 31);
    assert_int_equal(caps.nwords, 1);
    assert_int_equal(caps.words[0], 0x80000021u);
    assert_true(vdp_caps_has(&caps, 0));
    assert_true(vdp_caps_has(&caps, 5));
    assert_true(vdp_caps_has(&caps, 31));
    assert_false(vdp_caps_has(&caps, 1));
    assert_false(vdp_caps_has(&caps, 30));
    assert_false(vdp_caps_has(&caps, 32));
}

static void test_set_across_words(void **state)
{
    VdpCaps caps;
    vdp_caps_clear(&caps);
    vdp_caps_set(&caps, 32);
    assert_int_equal(caps.nwords, 2);
    assert_int_equal(caps.words[0], 0);
    assert_int_equal(caps.words[1], 1);
    vdp_caps_set(&caps, 100);   /* word 3, bit 4 */
    assert_int_equal(caps.nwords, 4);
    assert_int_equal(caps.words[2], 0);
    assert_int_equal(caps.words[3], 1u << 4);
    vdp_caps_set(&caps, 63);
    assert_int_equal(caps.nwords, 4);
    assert_int_equal(caps.words[1], 0x80000001u);
    assert_true(vdp_caps_has(&caps, 32));
    assert_true(vdp_caps_has(&caps, 63));
    assert_true(vdp_caps_has(&caps, 100));
    assert_false(vdp_caps_has(&caps, 99));
    assert_false(vdp_caps_has(&caps, 101));
    assert_false(vdp_caps_has(&caps, 128));   /* beyond nwords */
}

static void test_set_last_and_beyond(void **state)
{
    VdpCaps caps;
    unsigned last = 32u * VDP_MAX_CAPS_WORDS - 1u;
    vdp_caps_clear(&caps);
    vdp_caps_set(&caps, last);
    assert_int_equal(caps.nwords, VDP_MAX_CAPS_WORDS);
    assert_true(vdp_caps_has(&caps, last));
    assert_int_equal(caps.words[VDP_MAX_CAPS_WORDS - 1], 0x80000000u);

    VdpCaps before = caps;
    vdp_caps_set(&caps, last + 1);     /* ignored */
    vdp_caps_set(&caps, 1000000);      /* ignored */
    assert_memory_equal(&before, &caps, sizeof(caps));
    assert_false(vdp_caps_has(&caps, last + 1));
    assert_false(vdp_caps_has(&caps, 1000000));
}

static void test_set_growth_zeroes_gap(void **state)
{
    /* Words past nwords hold junk (e.g. a hand-filled struct): growing
     * must not expose it. */
    VdpCaps caps;
    memset(&caps, 0xFF, sizeof(caps));
    caps.nwords = 1;
    caps.words[0] = 0x1;
    vdp_caps_set(&caps, 3 * 32 + 2);
    assert_int_equal(caps.nwords, 4);
    assert_int_equal(caps.words[1], 0);
    assert_int_equal(caps.words[2], 0);
    assert_int_equal(caps.words[3], 1u << 2);
    assert_false(vdp_caps_has(&caps, 32));
    assert_false(vdp_caps_has(&caps, 64));
}

static void test_unset(void **state)
{
    VdpCaps caps;
    vdp_caps_clear(&caps);
    vdp_caps_set(&caps, 3);
    vdp_caps_set(&caps, 40);
    vdp_caps_unset(&caps, 40);
    assert_false(vdp_caps_has(&caps, 40));
    assert_true(vdp_caps_has(&caps, 3));
    assert_int_equal(caps.nwords, 2);     /* word count is kept */
    assert_int_equal(caps.words[1], 0);
    vdp_caps_unset(&caps, 3);
    assert_int_equal(caps.words[0], 0);
    /* unsetting beyond the set or the maximum is harmless */
    vdp_caps_unset(&caps, 500);
    vdp_caps_unset(&caps, 100000);
    assert_int_equal(caps.nwords, 2);
}

static void test_has_clamps_bad_nwords(void **state)
{
    VdpCaps caps;
    vdp_caps_clear(&caps);
    caps.nwords = 1000;   /* corrupt count: must not read past words[] */
    caps.words[VDP_MAX_CAPS_WORDS - 1] = 0x80000000u;
    assert_true(vdp_caps_has(&caps, 32u * VDP_MAX_CAPS_WORDS - 1u));
    assert_false(vdp_caps_has(&caps, 32u * VDP_MAX_CAPS_WORDS));
    assert_false(vdp_caps_has(&caps, 32u * 1000u - 1u));
}

static void test_equal(void **state)
{
    VdpCaps a, b;
    vdp_caps_clear(&a);
    vdp_caps_clear(&b);
    assert_true(vdp_caps_equal(&a, &b));
    vdp_caps_set(&a, 7);
    assert_false(vdp_caps_equal(&a, &b));
    vdp_caps_set(&b, 7);
    assert_true(vdp_caps_equal(&a, &b));
    /* a trailing zero word does not make sets differ */
    b.nwords = 3;
    assert_true(vdp_caps_equal(&a, &b));
    assert_true(vdp_caps_equal(&b, &a));
    vdp_caps_set(&b, 70);
    assert_false(vdp_caps_equal(&a, &b));
    assert_false(vdp_caps_equal(&b, &a));
}

static void test_both(void **state)
{
    VdpCaps own, peer;
    vdp_caps_clear(&own);
    vdp_caps_clear(&peer);
    vdp_caps_set(&own, VD_AGENT_CAP_CLIPBOARD_SELECTION);
    assert_false(vdp_caps_both(&own, &peer, VD_AGENT_CAP_CLIPBOARD_SELECTION));
    vdp_caps_set(&peer, VD_AGENT_CAP_CLIPBOARD_SELECTION);
    assert_true(vdp_caps_both(&own, &peer, VD_AGENT_CAP_CLIPBOARD_SELECTION));
    vdp_caps_set(&peer, 50);
    assert_false(vdp_caps_both(&own, &peer, 50));
}

static void test_init_guest(void **state)
{
    VdpCaps caps;
    vdp_caps_init_guest(&caps);
    assert_int_equal(caps.nwords, 1);
    assert_int_equal(caps.words[0], 0x38DE7u | (1u << VD_AGENT_CAP_MONITORS_CONFIG_POSITION) |
                                    (1u << VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS));
    assert_int_equal(caps.words[0], 0x3DDE7u);
    assert_true(vdp_caps_has(&caps, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL));
    assert_true(vdp_caps_has(&caps, VD_AGENT_CAP_GUEST_LINEEND_LF));
    assert_false(vdp_caps_has(&caps, VD_AGENT_CAP_CLIPBOARD));
    assert_false(vdp_caps_has(&caps, VD_AGENT_CAP_DISPLAY_CONFIG));
    assert_false(vdp_caps_has(&caps, VD_AGENT_CAP_GUEST_LINEEND_CRLF));
    assert_false(vdp_caps_has(&caps, VD_AGENT_CAP_FILE_XFER_DISABLED));
}

static void test_init_host(void **state)
{
    static const unsigned want[] = {
        VD_AGENT_CAP_MOUSE_STATE, VD_AGENT_CAP_MONITORS_CONFIG, VD_AGENT_CAP_REPLY,
        VD_AGENT_CAP_DISPLAY_CONFIG, VD_AGENT_CAP_CLIPBOARD_BY_DEMAND,
        VD_AGENT_CAP_CLIPBOARD_SELECTION, VD_AGENT_CAP_SPARSE_MONITORS_CONFIG,
        VD_AGENT_CAP_MAX_CLIPBOARD, VD_AGENT_CAP_AUDIO_VOLUME_SYNC,
        VD_AGENT_CAP_MONITORS_CONFIG_POSITION, VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS,
        VD_AGENT_CAP_GRAPHICS_DEVICE_INFO, VD_AGENT_CAP_CLIPBOARD_NO_RELEASE_ON_REGRAB,
        VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL,
    };
    uint32_t word = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        word |= 1u << want[i];
    VdpCaps caps;
    vdp_caps_init_host(&caps);
    assert_int_equal(caps.nwords, 1);
    assert_int_equal(caps.words[0], word);
    assert_false(vdp_caps_has(&caps, VD_AGENT_CAP_FILE_XFER_DISABLED));
    assert_false(vdp_caps_has(&caps, VD_AGENT_CAP_CLIPBOARD));

    /* guest and host agree on both layout capabilities */
    VdpCaps guest;
    VdpLayout layout;
    vdp_caps_init_guest(&guest);
    vdp_layout_from_caps(&layout, &guest, &caps);
    assert_true(layout.clipboard_selection);
    assert_true(layout.grab_serial);
}

static void test_names(void **state)
{
    static const struct { unsigned bit; const char *name; } some[] = {
        {VD_AGENT_CAP_MOUSE_STATE, "mouse-state"},
        {VD_AGENT_CAP_CLIPBOARD_SELECTION, "clipboard-selection"},
        {VD_AGENT_CAP_GUEST_LINEEND_CRLF, "guest-lineend-crlf"},
        {VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS, "file-xfer-detailed-errors"},
        {VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL, "clipboard-grab-serial"},
    };
    for (size_t i = 0; i < sizeof(some) / sizeof(some[0]); i++)
        assert_string_equal(vdp_cap_name(some[i].bit), some[i].name);

    /* all 18 named, lower-case-dashed and distinct */
    for (unsigned bit = 0; bit < VD_AGENT_END_CAP; bit++) {
        const char *n = vdp_cap_name(bit);
        assert_non_null(n);
        assert_true(strlen(n) > 0);
        for (const char *p = n; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '-');
        for (unsigned other = 0; other < bit; other++)
            assert_string_not_equal(n, vdp_cap_name(other));
    }
    assert_null(vdp_cap_name(VD_AGENT_END_CAP));
    assert_null(vdp_cap_name(42));
    assert_null(vdp_cap_name(~0u));
}

static void test_format(void **state)
{
    VdpCaps caps;
    char buf[256];
    vdp_caps_clear(&caps);
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(vdp_caps_format(&caps, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");

    vdp_caps_set(&caps, VD_AGENT_CAP_REPLY);
    vdp_caps_set(&caps, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL);
    vdp_caps_set(&caps, 42);
    vdp_caps_set(&caps, 18);
    const char *want = "reply,clipboard-grab-serial,bit18,bit42";
    assert_int_equal(vdp_caps_format(&caps, buf, sizeof(buf)), strlen(want));
    assert_string_equal(buf, want);
}

static void test_format_truncation(void **state)
{
    VdpCaps caps;
    char buf[12];
    vdp_caps_clear(&caps);
    vdp_caps_set(&caps, VD_AGENT_CAP_MOUSE_STATE);
    vdp_caps_set(&caps, VD_AGENT_CAP_MONITORS_CONFIG);
    const char *want = "mouse-state,monitors-config";

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(vdp_caps_format(&caps, buf, sizeof(buf)), strlen(want));
    assert_string_equal(buf, "mouse-state");   /* 11 chars + NUL */

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(vdp_caps_format(&caps, buf, 5), strlen(want));
    assert_string_equal(buf, "mous");
    assert_int_equal(buf[5], 'x');             /* nothing past size */

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(vdp_caps_format(&caps, buf, 1), strlen(want));
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[1], 'x');

    assert_int_equal(vdp_caps_format(&caps, NULL, 0), strlen(want));
}

static void test_format_guest_set(void **state)
{
    VdpCaps caps;
    char buf[512];
    vdp_caps_init_guest(&caps);
    size_t n = vdp_caps_format(&caps, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_non_null(strstr(buf, "clipboard-by-demand"));
    assert_non_null(strstr(buf, "monitors-config-position"));
    assert_null(strstr(buf, "bit"));
    assert_null(strstr(buf, "display-config"));
    /* 14 names, 13 commas */
    size_t commas = 0;
    for (const char *p = buf; *p; p++)
        commas += *p == ',';
    assert_int_equal(commas, 13);
}

static void roundtrip_announce(const VdpCaps *caps, uint32_t request)
{
    VdpMsg msg, out;
    VdpError err;
    uint8_t buf[4 + 4 * VDP_MAX_CAPS_WORDS];
    memset(&msg, 0, sizeof(msg));
    msg.type = VD_AGENT_ANNOUNCE_CAPABILITIES;
    msg.u.announce.request = request;
    msg.u.announce.caps = *caps;
    size_t n = vdp_msg_encode_payload(&msg, NULL, buf, sizeof(buf), &err);
    assert_int_equal(err.code, VDP_OK);
    assert_int_equal(n, 4 + 4 * caps->nwords);
    assert_int_equal(vdp_msg_decode(VDP_FROM_GUEST, VDP_CLIENT_PORT,
                                    VD_AGENT_ANNOUNCE_CAPABILITIES, buf, n, NULL, &out, &err),
                     VDP_OK);
    assert_int_equal(out.u.announce.request, request);
    assert_int_equal(out.u.announce.caps.nwords, caps->nwords);
    assert_true(vdp_caps_equal(&out.u.announce.caps, caps));
}

static void test_announce_roundtrip(void **state)
{
    VdpCaps caps;
    vdp_caps_init_guest(&caps);
    roundtrip_announce(&caps, 1);

    /* unknown future bits in later words survive */
    vdp_caps_set(&caps, 33);
    vdp_caps_set(&caps, 32u * VDP_MAX_CAPS_WORDS - 1u);
    roundtrip_announce(&caps, 0);

    vdp_caps_clear(&caps);
    roundtrip_announce(&caps, 0);
}

static void test_announce_wire_bytes(void **state)
{
    /* spice-vdagent 0.22.1's announce: request=1, caps[0]=0x00038DE7 */
    static const uint8_t wire[] = {1, 0, 0, 0, 0xE7, 0x8D, 0x03, 0x00};
    VdpMsg msg;
    VdpError err;
    assert_int_equal(vdp_msg_decode(VDP_FROM_GUEST, VDP_CLIENT_PORT,
                                    VD_AGENT_ANNOUNCE_CAPABILITIES, wire, sizeof(wire), NULL,
                                    &msg, &err),
                     VDP_OK);
    assert_int_equal(msg.u.announce.request, 1);
    assert_int_equal(msg.u.announce.caps.nwords, 1);
    assert_int_equal(msg.u.announce.caps.words[0], 0x38DE7u);
    assert_true(vdp_caps_has(&msg.u.announce.caps, VD_AGENT_CAP_GRAPHICS_DEVICE_INFO));
    assert_false(vdp_caps_has(&msg.u.announce.caps, VD_AGENT_CAP_MONITORS_CONFIG_POSITION));
    /* the remaining words are cleared */
    for (unsigned i = 1; i < VDP_MAX_CAPS_WORDS; i++)
        assert_int_equal(msg.u.announce.caps.words[i], 0);
}

static void test_layout_from_caps(void **state)
{
    VdpCaps own, peer;
    VdpLayout layout;
    vdp_caps_init_guest(&own);
    vdp_caps_clear(&peer);
    vdp_layout_from_caps(&layout, &own, &peer);
    assert_false(layout.clipboard_selection);
    assert_false(layout.grab_serial);
    vdp_caps_set(&peer, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL);
    vdp_layout_from_caps(&layout, &own, &peer);
    assert_false(layout.clipboard_selection);
    assert_true(layout.grab_serial);
    vdp_caps_unset(&own, VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL);
    vdp_caps_set(&peer, VD_AGENT_CAP_CLIPBOARD_SELECTION);
    vdp_layout_from_caps(&layout, &own, &peer);
    assert_true(layout.clipboard_selection);
    assert_false(layout.grab_serial);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_set_first_word),
        cmocka_unit_test(test_set_across_words),
        cmocka_unit_test(test_set_last_and_beyond),
        cmocka_unit_test(test_set_growth_zeroes_gap),
        cmocka_unit_test(test_unset),
        cmocka_unit_test(test_has_clamps_bad_nwords),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_both),
        cmocka_unit_test(test_init_guest),
        cmocka_unit_test(test_init_host),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_truncation),
        cmocka_unit_test(test_format_guest_set),
        cmocka_unit_test(test_announce_roundtrip),
        cmocka_unit_test(test_announce_wire_bytes),
        cmocka_unit_test(test_layout_from_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
