/* test-ipc.c - the IPC codec: frame header validation at every bound,
 * HELLO/WELCOME/REJECT round trips and malformed payloads, the frame
 * encoder, and the streaming decoder (splits at every byte offset, several
 * frames per feed, descriptor assignment, limits, stopping). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vdp-ipc.h"
#include "vdp-msg.h"
#include "vdp-wire.h"

/* ---- helpers ---- */

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static int open_devnull(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void make_header(uint8_t out[VDP_IPC_HEADER_SIZE], uint16_t type, uint8_t nfds,
                        uint8_t flags, uint32_t id, uint32_t size)
{
    VdpIpcHeader h = {.type = type, .nfds = nfds, .flags = flags, .id = id, .size = size};
    vdp_ipc_header_encode(&h, out);
}

#define MAX_COLLECT 64

typedef struct Collector {
    unsigned count;
    VdpIpcHeader hdr[MAX_COLLECT];
    uint8_t *payload[MAX_COLLECT];
    int fds[MAX_COLLECT][VDP_IPC_MAX_FDS];
    unsigned nfds[MAX_COLLECT];
    unsigned stop_after;            /* return false after this many frames (0 = never) */
    VdpIpcDecoder **free_on_stop;   /* free the decoder from inside the callback */
    bool close_fds;
} Collector;

static bool collect(void *user, const VdpIpcHeader *hdr, const uint8_t *payload,
                    int *fds, unsigned nfds)
{
    Collector *c = user;
    assert_true(c->count < MAX_COLLECT);
    assert_non_null(payload);
    assert_int_equal(nfds, hdr->nfds);
    unsigned i = c->count++;
    c->hdr[i] = *hdr;
    c->payload[i] = malloc(hdr->size ? hdr->size : 1);
    assert_non_null(c->payload[i]);
    memcpy(c->payload[i], payload, hdr->size);
    c->nfds[i] = nfds;
    for (unsigned k = 0; k < nfds; k++) {
        c->fds[i][k] = fds[k];
        if (c->close_fds)
            close(fds[k]);
    }
    if (c->stop_after && c->count == c->stop_after) {
        if (c->free_on_stop) {
            vdp_ipc_decoder_free(*c->free_on_stop);
            *c->free_on_stop = NULL;
        }
        return false;
    }
    return true;
}

static void collector_reset(Collector *c)
{
    for (unsigned i = 0; i < c->count; i++)
        free(c->payload[i]);
    memset(c, 0, sizeof(*c));
}

/* A stream of test frames. */
typedef struct TestFrame {
    uint16_t type;
    uint32_t id;
    uint8_t nfds;
    size_t size;
} TestFrame;

static size_t build_stream(const TestFrame *f, size_t n, uint8_t *out, size_t cap)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *payload = malloc(f[i].size ? f[i].size : 1);
        assert_non_null(payload);
        for (size_t k = 0; k < f[i].size; k++)
            payload[k] = (uint8_t)(k * 7 + i * 31 + 1);
        size_t w = vdp_ipc_frame_encode(f[i].type, f[i].id, f[i].nfds, payload, f[i].size,
                                        out + off, cap - off);
        assert_int_equal(w, VDP_IPC_HEADER_SIZE + f[i].size);
        off += w;
        free(payload);
    }
    return off;
}

static void check_frames(const Collector *c, const TestFrame *f, size_t n)
{
    assert_int_equal(c->count, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c->hdr[i].type, f[i].type);
        assert_int_equal(c->hdr[i].id, f[i].id);
        assert_int_equal(c->hdr[i].size, f[i].size);
        assert_int_equal(c->hdr[i].flags, 0);
        for (size_t k = 0; k < f[i].size; k++)
            assert_int_equal(c->payload[i][k], (uint8_t)(k * 7 + i * 31 + 1));
    }
}

/* ---- header ---- */

static void test_header_roundtrip(void **state)
{
    uint8_t raw[VDP_IPC_HEADER_SIZE];
    VdpIpcHeader h = {.type = VDP_IPC_VDAGENT, .nfds = 3, .flags = 0, .id = 0x11223344u, .size = 0x0102u};
    vdp_ipc_header_encode(&h, raw);
    static const uint8_t expect[VDP_IPC_HEADER_SIZE] = {
        0x04, 0x00, 0x03, 0x00, 0x44, 0x33, 0x22, 0x11, 0x02, 0x01, 0x00, 0x00,
    };
    assert_memory_equal(raw, expect, sizeof(expect));

    VdpIpcHeader out;
    VdpError err;
    assert_int_equal(vdp_ipc_header_decode(raw, &out, &err), VDP_OK);
    assert_int_equal(out.type, h.type);
    assert_int_equal(out.nfds, h.nfds);
    assert_int_equal(out.flags, 0);
    assert_int_equal(out.id, h.id);
    assert_int_equal(out.size, h.size);
}

static void expect_header(uint16_t type, uint8_t nfds, uint8_t flags, uint32_t size, VdpResult want)
{
    uint8_t raw[VDP_IPC_HEADER_SIZE];
    VdpIpcHeader out;
    VdpError err = {VDP_OK, ""};
    make_header(raw, type, nfds, flags, 7, size);
    VdpResult r = vdp_ipc_header_decode(raw, &out, &err);
    assert_int_equal(r, want);
    if (want != VDP_OK) {
        assert_int_equal(err.code, want);
        assert_true(strlen(err.text) > 10);
    }
}

static void test_header_bounds(void **state)
{
    expect_header(VDP_IPC_HELLO, 0, 0, 0, VDP_OK);
    expect_header(VDP_IPC_TYPE_END - 1, 0, 0, 0, VDP_OK);
    expect_header(0, 0, 0, 0, VDP_ERR_UNKNOWN_TYPE);
    expect_header(VDP_IPC_TYPE_END, 0, 0, 0, VDP_ERR_UNKNOWN_TYPE);
    expect_header(0xffff, 0, 0, 0, VDP_ERR_UNKNOWN_TYPE);
    expect_header(VDP_IPC_PING, 0, 1, 0, VDP_ERR_RANGE);
    expect_header(VDP_IPC_PING, 0, 0x80, 0, VDP_ERR_RANGE);
    expect_header(VDP_IPC_VDAGENT, VDP_IPC_MAX_FDS, 0, 1, VDP_OK);
    expect_header(VDP_IPC_VDAGENT, VDP_IPC_MAX_FDS + 1, 0, 1, VDP_ERR_TOO_LARGE);
    expect_header(VDP_IPC_VDAGENT, 0xff, 0, 1, VDP_ERR_TOO_LARGE);
    expect_header(VDP_IPC_VDAGENT, 0, 0, VDP_IPC_MAX_FRAME, VDP_OK);
    expect_header(VDP_IPC_VDAGENT, 0, 0, VDP_IPC_MAX_FRAME + 1, VDP_ERR_TOO_LARGE);
    expect_header(VDP_IPC_VDAGENT, 0, 0, UINT32_MAX, VDP_ERR_TOO_LARGE);

    /* NULL err and NULL hdr are allowed. */
    uint8_t raw[VDP_IPC_HEADER_SIZE];
    make_header(raw, 0, 0, 0, 0, 0);
    assert_int_equal(vdp_ipc_header_decode(raw, NULL, NULL), VDP_ERR_UNKNOWN_TYPE);
    make_header(raw, VDP_IPC_PONG, 0, 0, 0, 0);
    assert_int_equal(vdp_ipc_header_decode(raw, NULL, NULL), VDP_OK);
}

static void test_names(void **state)
{
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_HELLO), "HELLO");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_WELCOME), "WELCOME");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_REJECT), "REJECT");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_VDAGENT), "VDAGENT");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_PING), "PING");
    assert_string_equal(vdp_ipc_type_name(VDP_IPC_PONG), "PONG");
    for (unsigned t = VDP_IPC_HELLO; t < VDP_IPC_TYPE_END; t++)
        assert_non_null(vdp_ipc_type_name((uint16_t)t));
    assert_null(vdp_ipc_type_name(0));
    assert_null(vdp_ipc_type_name(VDP_IPC_TYPE_END));
    assert_string_equal(vdp_ipc_reject_reason_name(VDP_IPC_REJECT_VERSION), "version");
    assert_string_equal(vdp_ipc_reject_reason_name(VDP_IPC_REJECT_NOT_AUTHORIZED), "not-authorized");
    assert_string_equal(vdp_ipc_reject_reason_name(VDP_IPC_REJECT_DUPLICATE), "duplicate");
    assert_string_equal(vdp_ipc_reject_reason_name(VDP_IPC_REJECT_TOO_MANY), "too-many");
    assert_string_equal(vdp_ipc_reject_reason_name(VDP_IPC_REJECT_PROTOCOL), "protocol");
    assert_null(vdp_ipc_reject_reason_name(0));
    assert_null(vdp_ipc_reject_reason_name(99));
}

static void test_ipc_layout(void **state)
{
    assert_true(vdp_ipc_layout.clipboard_selection);
    assert_true(vdp_ipc_layout.grab_serial);
}

/* ---- HELLO / WELCOME ---- */

static void test_hello_roundtrip(void **state)
{
    VdpIpcHello h, out;
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "spice-vdagent 0.1.0");
    assert_int_equal(h.magic, VDP_IPC_MAGIC);
    assert_int_equal(h.major, VDP_IPC_VERSION_MAJOR);
    assert_int_equal(h.minor, VDP_IPC_VERSION_MINOR);
    assert_int_equal(h.role, VDP_IPC_ROLE_AGENT);
    assert_int_equal(h.features, 0);

    size_t need = vdp_ipc_hello_encode(&h, NULL, 0);
    assert_int_equal(need, 16 + strlen("spice-vdagent 0.1.0") + 1);
    uint8_t buf[128];
    assert_int_equal(vdp_ipc_hello_encode(&h, buf, need - 1), 0);
    assert_int_equal(vdp_ipc_hello_encode(&h, buf, need), need);
    /* Wire: "VDAG" magic, version, role, features, name. */
    assert_memory_equal(buf, "VDAG", 4);
    assert_int_equal(vdp_get_le16(buf + 4), VDP_IPC_VERSION_MAJOR);
    assert_int_equal(vdp_get_le16(buf + 6), VDP_IPC_VERSION_MINOR);
    assert_int_equal(vdp_get_le32(buf + 8), VDP_IPC_ROLE_AGENT);
    assert_int_equal(vdp_get_le32(buf + 12), 0);
    assert_string_equal((const char *)buf + 16, "spice-vdagent 0.1.0");

    VdpError err;
    memset(&out, 0x5a, sizeof(out));
    assert_int_equal(vdp_ipc_hello_decode(buf, need, &out, &err), VDP_OK);
    assert_memory_equal(&out, &h, sizeof(h));   /* name padded with NULs like init */
    assert_int_equal(vdp_ipc_hello_check(&out, &err), VDP_OK);

    /* WELCOME: same layout, role 0, empty name allowed. */
    VdpIpcHello w;
    vdp_ipc_hello_init(&w, 0, NULL);
    need = vdp_ipc_hello_encode(&w, buf, sizeof(buf));
    assert_int_equal(need, 17);
    assert_int_equal(vdp_ipc_hello_decode(buf, need, &out, &err), VDP_OK);
    assert_string_equal(out.name, "");
    assert_int_equal(out.role, 0);
}

static void test_hello_init_truncates(void **state)
{
    char longname[200];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    VdpIpcHello h;
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_CONTROL, longname);
    assert_int_equal(strlen(h.name), VDP_IPC_NAME_MAX - 1);
    uint8_t buf[128];
    size_t n = vdp_ipc_hello_encode(&h, buf, sizeof(buf));
    assert_int_equal(n, 16 + VDP_IPC_NAME_MAX);
    VdpIpcHello out;
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, NULL), VDP_OK);
    assert_string_equal(out.name, h.name);
}

static size_t raw_hello(uint8_t *buf, const void *name, size_t name_len)
{
    vdp_put_le32(buf, VDP_IPC_MAGIC);
    vdp_put_le16(buf + 4, 1);
    vdp_put_le16(buf + 6, 0);
    vdp_put_le32(buf + 8, VDP_IPC_ROLE_AGENT);
    vdp_put_le32(buf + 12, 0);
    memcpy(buf + 16, name, name_len);
    return 16 + name_len;
}

static void test_hello_malformed(void **state)
{
    uint8_t buf[256];
    VdpIpcHello out;
    VdpError err;
    size_t n;

    /* Truncated: every length below the minimum. */
    n = raw_hello(buf, "a", 2);
    for (size_t len = 0; len < 17; len++) {
        assert_int_equal(vdp_ipc_hello_decode(buf, len, &out, &err), VDP_ERR_TRUNCATED);
        assert_int_equal(err.code, VDP_ERR_TRUNCATED);
    }
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_OK);

    /* Missing NUL. */
    n = raw_hello(buf, "abc", 3);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_ERR_UNTERMINATED);

    /* Longest valid name: 63 bytes + NUL. */
    char name[VDP_IPC_NAME_MAX + 8];
    memset(name, 'n', sizeof(name));
    name[VDP_IPC_NAME_MAX - 1] = '\0';
    n = raw_hello(buf, name, VDP_IPC_NAME_MAX);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_OK);
    assert_int_equal(strlen(out.name), VDP_IPC_NAME_MAX - 1);

    /* Oversized: 64 bytes + NUL. */
    memset(name, 'n', sizeof(name));
    name[VDP_IPC_NAME_MAX] = '\0';
    n = raw_hello(buf, name, VDP_IPC_NAME_MAX + 1);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_ERR_TOO_LARGE);
    /* Oversized and unterminated. */
    memset(name, 'n', sizeof(name));
    n = raw_hello(buf, name, VDP_IPC_NAME_MAX);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_ERR_TOO_LARGE);

    /* Trailing bytes after the NUL. */
    n = raw_hello(buf, "abc\0x", 5);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_ERR_TRAILING);
    n = raw_hello(buf, "abc\0\0", 5);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_ERR_TRAILING);

    /* Control characters. */
    n = raw_hello(buf, "a\nb", 4);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_ERR_RANGE);
    n = raw_hello(buf, "a\x7f", 3);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_ERR_RANGE);

    /* UTF-8 is fine. */
    n = raw_hello(buf, "agent \xc3\xa9t\xc3\xa9", 12);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_OK);

    /* A decode error leaves the output untouched. */
    memset(&out, 0x33, sizeof(out));
    n = raw_hello(buf, "abc", 3);
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, NULL), VDP_ERR_UNTERMINATED);
    assert_int_equal(out.magic, 0x33333333u);
}

static void test_hello_check(void **state)
{
    VdpIpcHello h;
    VdpError err;

    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "x");
    assert_int_equal(vdp_ipc_hello_check(&h, &err), VDP_OK);

    h.magic = 0x12345678u;
    assert_int_equal(vdp_ipc_hello_check(&h, &err), VDP_ERR_PROTOCOL);
    assert_non_null(strstr(err.text, "magic"));

    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "x");
    h.major = VDP_IPC_VERSION_MAJOR + 1;
    assert_int_equal(vdp_ipc_hello_check(&h, &err), VDP_ERR_PROTOCOL);
    assert_non_null(strstr(err.text, "version"));
    h.major = 0;
    assert_int_equal(vdp_ipc_hello_check(&h, &err), VDP_ERR_PROTOCOL);

    /* A newer minor is fine. */
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "x");
    h.minor = 42;
    h.features = 0xffffffffu;
    assert_int_equal(vdp_ipc_hello_check(&h, &err), VDP_OK);

    /* Bad magic through the decoder: decode is structural, check semantic. */
    uint8_t buf[64];
    size_t n = raw_hello(buf, "x", 2);
    vdp_put_le32(buf, 0xdeadbeefu);
    VdpIpcHello out;
    assert_int_equal(vdp_ipc_hello_decode(buf, n, &out, &err), VDP_OK);
    assert_int_equal(vdp_ipc_hello_check(&out, &err), VDP_ERR_PROTOCOL);
}

static void test_hello_encode_invalid(void **state)
{
    VdpIpcHello h;
    uint8_t buf[128];
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "ok");
    memset(h.name, 'z', sizeof(h.name));   /* no NUL */
    assert_int_equal(vdp_ipc_hello_encode(&h, buf, sizeof(buf)), 0);
    assert_int_equal(vdp_ipc_hello_encode(&h, NULL, 0), 0);
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, "bad\tname");
    assert_int_equal(vdp_ipc_hello_encode(&h, buf, sizeof(buf)), 0);
}

/* ---- REJECT ---- */

static void test_reject_roundtrip(void **state)
{
    VdpIpcReject r, out;
    memset(&r, 0, sizeof(r));
    r.reason = VDP_IPC_REJECT_DUPLICATE;
    strcpy(r.text, "session 3 already has an agent");

    size_t need = vdp_ipc_reject_encode(&r, NULL, 0);
    assert_int_equal(need, 4 + strlen(r.text) + 1);
    uint8_t buf[VDP_IPC_REASON_MAX + 8];
    assert_int_equal(vdp_ipc_reject_encode(&r, buf, need - 1), 0);
    assert_int_equal(vdp_ipc_reject_encode(&r, buf, sizeof(buf)), need);
    assert_int_equal(vdp_get_le32(buf), VDP_IPC_REJECT_DUPLICATE);

    VdpError err;
    assert_int_equal(vdp_ipc_reject_decode(buf, need, &out, &err), VDP_OK);
    assert_int_equal(out.reason, r.reason);
    assert_string_equal(out.text, r.text);

    /* Longest text: 255 bytes + NUL. */
    memset(r.text, 't', VDP_IPC_REASON_MAX - 1);
    r.text[VDP_IPC_REASON_MAX - 1] = '\0';
    need = vdp_ipc_reject_encode(&r, buf, sizeof(buf));
    assert_int_equal(need, 4 + VDP_IPC_REASON_MAX);
    assert_int_equal(vdp_ipc_reject_decode(buf, need, &out, &err), VDP_OK);
    assert_int_equal(strlen(out.text), VDP_IPC_REASON_MAX - 1);

    /* Unknown non-zero reasons are accepted (a newer daemon). */
    vdp_put_le32(buf, 77);
    assert_int_equal(vdp_ipc_reject_decode(buf, need, &out, &err), VDP_OK);
    assert_int_equal(out.reason, 77);

    /* Reason 0 cannot be encoded. */
    r.reason = 0;
    assert_int_equal(vdp_ipc_reject_encode(&r, buf, sizeof(buf)), 0);
}

static void test_reject_malformed(void **state)
{
    uint8_t buf[VDP_IPC_REASON_MAX + 16];
    VdpIpcReject out;
    VdpError err;

    vdp_put_le32(buf, VDP_IPC_REJECT_VERSION);
    memcpy(buf + 4, "no", 3);
    for (size_t len = 0; len < 5; len++)
        assert_int_equal(vdp_ipc_reject_decode(buf, len, &out, &err), VDP_ERR_TRUNCATED);
    assert_int_equal(vdp_ipc_reject_decode(buf, 7, &out, &err), VDP_OK);
    assert_int_equal(vdp_ipc_reject_decode(buf, 6, &out, &err), VDP_ERR_UNTERMINATED);
    buf[7] = 'x';
    assert_int_equal(vdp_ipc_reject_decode(buf, 8, &out, &err), VDP_ERR_TRAILING);

    vdp_put_le32(buf, 0);
    assert_int_equal(vdp_ipc_reject_decode(buf, 7, &out, &err), VDP_ERR_RANGE);

    vdp_put_le32(buf, VDP_IPC_REJECT_PROTOCOL);
    memset(buf + 4, 'o', VDP_IPC_REASON_MAX);
    buf[4 + VDP_IPC_REASON_MAX] = '\0';
    assert_int_equal(vdp_ipc_reject_decode(buf, 4 + VDP_IPC_REASON_MAX + 1, &out, &err),
                     VDP_ERR_TOO_LARGE);
    assert_int_equal(vdp_ipc_reject_decode(buf, 4 + VDP_IPC_REASON_MAX, &out, &err),
                     VDP_ERR_TOO_LARGE);

    memcpy(buf + 4, "line1\nline2", 12);
    assert_int_equal(vdp_ipc_reject_decode(buf, 16, &out, &err), VDP_ERR_RANGE);

    VdpIpcReject r;
    r.reason = VDP_IPC_REJECT_PROTOCOL;
    memset(r.text, 'q', sizeof(r.text));   /* no NUL */
    assert_int_equal(vdp_ipc_reject_encode(&r, buf, sizeof(buf)), 0);
}

/* ---- frame encoder ---- */

static void test_frame_encode(void **state)
{
    static uint8_t big[VDP_IPC_HEADER_SIZE + VDP_IPC_MAX_FRAME + 1];
    static uint8_t payload[VDP_IPC_MAX_FRAME + 1];
    VdpIpcHeader h;

    memset(payload, 0xa5, sizeof(payload));
    size_t n = vdp_ipc_frame_encode(VDP_IPC_PING, 9, 0, NULL, 0, big, sizeof(big));
    assert_int_equal(n, VDP_IPC_HEADER_SIZE);
    assert_int_equal(vdp_ipc_header_decode(big, &h, NULL), VDP_OK);
    assert_int_equal(h.type, VDP_IPC_PING);
    assert_int_equal(h.id, 9);
    assert_int_equal(h.size, 0);

    n = vdp_ipc_frame_encode(VDP_IPC_VDAGENT, 1, VDP_IPC_MAX_FDS, payload, VDP_IPC_MAX_FRAME,
                             big, sizeof(big));
    assert_int_equal(n, VDP_IPC_HEADER_SIZE + VDP_IPC_MAX_FRAME);
    assert_int_equal(vdp_ipc_header_decode(big, &h, NULL), VDP_OK);
    assert_int_equal(h.nfds, VDP_IPC_MAX_FDS);
    assert_int_equal(h.size, VDP_IPC_MAX_FRAME);
    assert_memory_equal(big + VDP_IPC_HEADER_SIZE, payload, VDP_IPC_MAX_FRAME);

    assert_int_equal(vdp_ipc_frame_encode(VDP_IPC_VDAGENT, 1, 0, payload, VDP_IPC_MAX_FRAME + 1,
                                          big, sizeof(big)), 0);
    assert_int_equal(vdp_ipc_frame_encode(VDP_IPC_VDAGENT, 1, VDP_IPC_MAX_FDS + 1, payload, 1,
                                          big, sizeof(big)), 0);
    assert_int_equal(vdp_ipc_frame_encode(0, 1, 0, payload, 1, big, sizeof(big)), 0);
    assert_int_equal(vdp_ipc_frame_encode(VDP_IPC_TYPE_END, 1, 0, payload, 1, big, sizeof(big)), 0);
    assert_int_equal(vdp_ipc_frame_encode(VDP_IPC_PING, 1, 0, payload, 4, big, 15), 0);
    assert_int_equal(vdp_ipc_frame_encode(VDP_IPC_PING, 1, 0, payload, 4, big, 16), 16);
    assert_int_equal(vdp_ipc_frame_encode(VDP_IPC_PING, 1, 0, NULL, 4, big, 16), 0);
    assert_int_equal(vdp_ipc_frame_encode(VDP_IPC_PING, 1, 0, payload, 4, NULL, 0), 16);
}

/* ---- decoder ---- */

static const TestFrame mixed_frames[] = {
    {VDP_IPC_HELLO, 1, 0, 30},
    {VDP_IPC_PING, 2, 0, 0},
    {VDP_IPC_VDAGENT, 3, 0, 100},
    {VDP_IPC_PONG, 4, 0, 0},
    {VDP_IPC_VDAGENT, 0xffffffffu, 0, 1},
};
#define N_MIXED (sizeof(mixed_frames) / sizeof(mixed_frames[0]))

static void test_decoder_split_every_offset(void **state)
{
    uint8_t stream[1024];
    size_t len = build_stream(mixed_frames, N_MIXED, stream, sizeof(stream));

    for (size_t cut = 0; cut <= len; cut++) {
        Collector c;
        memset(&c, 0, sizeof(c));
        VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
        assert_non_null(d);
        size_t used;
        VdpError err;
        assert_int_equal(vdp_ipc_decoder_feed(d, stream, cut, &used, &err), VDP_OK);
        assert_int_equal(used, cut);
        assert_true(vdp_ipc_decoder_buffered(d) <= VDP_IPC_HEADER_SIZE + 100);
        assert_int_equal(vdp_ipc_decoder_feed(d, stream + cut, len - cut, &used, &err), VDP_OK);
        assert_int_equal(used, len - cut);
        assert_int_equal(vdp_ipc_decoder_buffered(d), 0);
        check_frames(&c, mixed_frames, N_MIXED);
        vdp_ipc_decoder_free(d);
        collector_reset(&c);
    }

    /* Two cuts: every (a, b) pair. */
    for (size_t a = 0; a <= len; a += 3) {
        for (size_t b = a; b <= len; b += 5) {
            Collector c;
            memset(&c, 0, sizeof(c));
            VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
            assert_int_equal(vdp_ipc_decoder_feed(d, stream, a, NULL, NULL), VDP_OK);
            assert_int_equal(vdp_ipc_decoder_feed(d, stream + a, b - a, NULL, NULL), VDP_OK);
            assert_int_equal(vdp_ipc_decoder_feed(d, stream + b, len - b, NULL, NULL), VDP_OK);
            check_frames(&c, mixed_frames, N_MIXED);
            vdp_ipc_decoder_free(d);
            collector_reset(&c);
        }
    }
}

static void test_decoder_byte_by_byte(void **state)
{
    uint8_t stream[1024];
    size_t len = build_stream(mixed_frames, N_MIXED, stream, sizeof(stream));
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    for (size_t i = 0; i < len; i++) {
        size_t used = 99;
        assert_int_equal(vdp_ipc_decoder_feed(d, stream + i, 1, &used, NULL), VDP_OK);
        assert_int_equal(used, 1);
    }
    /* Empty feeds are harmless. */
    assert_int_equal(vdp_ipc_decoder_feed(d, NULL, 0, NULL, NULL), VDP_OK);
    check_frames(&c, mixed_frames, N_MIXED);
    vdp_ipc_decoder_free(d);
    collector_reset(&c);
}

static void test_decoder_many_in_one_feed(void **state)
{
    TestFrame frames[40];
    for (unsigned i = 0; i < 40; i++) {
        frames[i].type = (uint16_t)(VDP_IPC_HELLO + i % (VDP_IPC_TYPE_END - 1));
        frames[i].id = i;
        frames[i].nfds = 0;
        frames[i].size = (i * 37) % 200;
    }
    static uint8_t stream[40 * 220];
    size_t len = build_stream(frames, 40, stream, sizeof(stream));
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    size_t used;
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, len, &used, NULL), VDP_OK);
    assert_int_equal(used, len);
    check_frames(&c, frames, 40);
    assert_int_equal(vdp_ipc_decoder_buffered(d), 0);
    vdp_ipc_decoder_free(d);
    collector_reset(&c);
}

static void test_decoder_max_frame(void **state)
{
    static uint8_t stream[2 * (VDP_IPC_HEADER_SIZE + VDP_IPC_MAX_FRAME)];
    TestFrame frames[] = {
        {VDP_IPC_VDAGENT, 1, 0, VDP_IPC_MAX_FRAME},
        {VDP_IPC_VDAGENT, 2, 0, VDP_IPC_MAX_FRAME},
    };
    size_t len = build_stream(frames, 2, stream, sizeof(stream));
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    const size_t step = 4093;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        assert_int_equal(vdp_ipc_decoder_feed(d, stream + off, n, NULL, NULL), VDP_OK);
        assert_true(vdp_ipc_decoder_buffered(d) <= VDP_IPC_HEADER_SIZE + VDP_IPC_MAX_FRAME);
    }
    check_frames(&c, frames, 2);
    vdp_ipc_decoder_free(d);
    collector_reset(&c);
}

static void test_decoder_oversize_rejected_before_alloc(void **state)
{
    uint8_t hdr[VDP_IPC_HEADER_SIZE];
    make_header(hdr, VDP_IPC_VDAGENT, 0, 0, 1, VDP_IPC_MAX_FRAME + 1);

    /* Whole header at once. */
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    VdpError err;
    size_t used;
    assert_int_equal(vdp_ipc_decoder_feed(d, hdr, sizeof(hdr), &used, &err), VDP_ERR_TOO_LARGE);
    assert_non_null(strstr(err.text, "limit"));
    assert_true(vdp_ipc_decoder_buffered(d) <= VDP_IPC_HEADER_SIZE);
    assert_int_equal(c.count, 0);
    /* The stream cannot continue. */
    uint8_t ping[VDP_IPC_HEADER_SIZE];
    make_header(ping, VDP_IPC_PING, 0, 0, 1, 0);
    assert_int_equal(vdp_ipc_decoder_feed(d, ping, sizeof(ping), &used, &err), VDP_ERR_FRAMING);
    assert_int_equal(c.count, 0);
    vdp_ipc_decoder_free(d);

    /* Header split, with payload-looking bytes behind it. */
    d = vdp_ipc_decoder_new(collect, &c);
    assert_int_equal(vdp_ipc_decoder_feed(d, hdr, 5, NULL, NULL), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_buffered(d), 5);
    uint8_t rest[64];
    memcpy(rest, hdr + 5, sizeof(hdr) - 5);
    memset(rest + sizeof(hdr) - 5, 0, sizeof(rest) - (sizeof(hdr) - 5));
    assert_int_equal(vdp_ipc_decoder_feed(d, rest, sizeof(rest), &used, &err), VDP_ERR_TOO_LARGE);
    assert_int_equal(used, sizeof(hdr) - 5);
    assert_true(vdp_ipc_decoder_buffered(d) <= VDP_IPC_HEADER_SIZE);
    vdp_ipc_decoder_free(d);

    /* Other invalid headers fail the decoder the same way. */
    make_header(hdr, 0, 0, 0, 1, 0);
    d = vdp_ipc_decoder_new(collect, &c);
    assert_int_equal(vdp_ipc_decoder_feed(d, hdr, sizeof(hdr), NULL, &err), VDP_ERR_UNKNOWN_TYPE);
    vdp_ipc_decoder_free(d);
    make_header(hdr, VDP_IPC_PING, 0, 2, 1, 0);
    d = vdp_ipc_decoder_new(collect, &c);
    assert_int_equal(vdp_ipc_decoder_feed(d, hdr, sizeof(hdr), NULL, &err), VDP_ERR_RANGE);
    vdp_ipc_decoder_free(d);
    make_header(hdr, VDP_IPC_PING, VDP_IPC_MAX_FDS + 1, 0, 1, 0);
    d = vdp_ipc_decoder_new(collect, &c);
    assert_int_equal(vdp_ipc_decoder_feed(d, hdr, sizeof(hdr), NULL, &err), VDP_ERR_TOO_LARGE);
    vdp_ipc_decoder_free(d);
    assert_int_equal(c.count, 0);
}

/* Heap bytes in use, as glibc sees them (0-deltas under ASan, which has
 * its own allocator: the test below checks the measurement works). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_decoder_no_allocation_for_oversize(void **state)
{
    Collector c;
    memset(&c, 0, sizeof(c));
    uint8_t hdr[VDP_IPC_HEADER_SIZE + 16];
    memset(hdr, 0, sizeof(hdr));

    /* Control: a frame of exactly the limit, split, allocates its size. */
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    make_header(hdr, VDP_IPC_VDAGENT, 0, 0, 1, VDP_IPC_MAX_FRAME);
    size_t before = heap_in_use();
    assert_int_equal(vdp_ipc_decoder_feed(d, hdr, sizeof(hdr), NULL, NULL), VDP_OK);
    size_t control = heap_in_use() - before;
    assert_int_equal(vdp_ipc_decoder_buffered(d), sizeof(hdr));
    vdp_ipc_decoder_free(d);

    /* One byte above: refused, nothing allocated. */
    d = vdp_ipc_decoder_new(collect, &c);
    make_header(hdr, VDP_IPC_VDAGENT, 0, 0, 1, VDP_IPC_MAX_FRAME + 1);
    before = heap_in_use();
    assert_int_equal(vdp_ipc_decoder_feed(d, hdr, sizeof(hdr), NULL, NULL), VDP_ERR_TOO_LARGE);
    size_t refused = heap_in_use() - before;
    vdp_ipc_decoder_free(d);
    if (control >= VDP_IPC_MAX_FRAME)
        assert_true(refused < 1024);
    else
        assert_int_equal(refused, 0);   /* the allocator is not glibc's (ASan) */
    assert_int_equal(c.count, 0);
}

static void test_decoder_bad_frame_after_good(void **state)
{
    uint8_t stream[256];
    TestFrame good[] = {{VDP_IPC_PING, 5, 0, 3}};
    size_t len = build_stream(good, 1, stream, sizeof(stream));
    make_header(stream + len, 200, 0, 0, 1, 0);
    len += VDP_IPC_HEADER_SIZE;
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    size_t used;
    VdpError err;
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, len, &used, &err), VDP_ERR_UNKNOWN_TYPE);
    assert_int_equal(used, len);
    check_frames(&c, good, 1);
    vdp_ipc_decoder_free(d);
    collector_reset(&c);
}

static void test_decoder_fds_assigned(void **state)
{
    TestFrame frames[] = {
        {VDP_IPC_VDAGENT, 1, 1, 10},
        {VDP_IPC_PING, 2, 0, 0},
        {VDP_IPC_VDAGENT, 3, 2, 0},
        {VDP_IPC_VDAGENT, 4, VDP_IPC_MAX_FDS, 5},
    };
    uint8_t stream[256];
    size_t len = build_stream(frames, 4, stream, sizeof(stream));
    size_t off1 = VDP_IPC_HEADER_SIZE + 10;                  /* frame 2 start */
    size_t off2 = off1 + VDP_IPC_HEADER_SIZE;                /* frame 3 start */
    size_t off3 = off2 + VDP_IPC_HEADER_SIZE;                /* frame 4 start */

    int fds[1 + 2 + VDP_IPC_MAX_FDS];
    for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        fds[i] = open_devnull();

    Collector c;
    memset(&c, 0, sizeof(c));
    c.close_fds = true;
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    VdpError err;
    /* As a receiver sees it: the fds come with the read holding the first
     * byte of their frame; reads split inside headers and payloads. */
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds, 1, &err), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, 5, NULL, &err), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream + 5, off1 + 3 - 5, NULL, &err), VDP_OK);
    assert_int_equal(c.count, 1);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream + off1 + 3, off2 + 1 - (off1 + 3), NULL, &err), VDP_OK);
    assert_int_equal(c.count, 2);
    /* Frame 3's fds arrive with a read that began at its second byte. */
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds + 1, 2, &err), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds + 3, VDP_IPC_MAX_FDS, &err), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream + off2 + 1, len - (off2 + 1), NULL, &err), VDP_OK);
    (void)off3;
    check_frames(&c, frames, 4);
    assert_int_equal(c.nfds[0], 1);
    assert_int_equal(c.fds[0][0], fds[0]);
    assert_int_equal(c.nfds[1], 0);
    assert_int_equal(c.nfds[2], 2);
    assert_int_equal(c.fds[2][0], fds[1]);
    assert_int_equal(c.fds[2][1], fds[2]);
    assert_int_equal(c.nfds[3], VDP_IPC_MAX_FDS);
    for (unsigned k = 0; k < VDP_IPC_MAX_FDS; k++)
        assert_int_equal(c.fds[3][k], fds[3 + k]);
    vdp_ipc_decoder_free(d);
    for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        assert_false(fd_is_open(fds[i]));   /* closed by the collector */
    collector_reset(&c);
}

static void test_decoder_missing_fds(void **state)
{
    TestFrame frames[] = {{VDP_IPC_VDAGENT, 1, 2, 4}};
    uint8_t stream[64];
    size_t len = build_stream(frames, 1, stream, sizeof(stream));
    int fd = open_devnull();

    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    VdpError err;
    assert_int_equal(vdp_ipc_decoder_push_fds(d, &fd, 1, &err), VDP_OK);
    /* The header is complete after this feed with only 1 of 2 fds. */
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, VDP_IPC_HEADER_SIZE - 1, NULL, &err), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream + VDP_IPC_HEADER_SIZE - 1,
                                          len - VDP_IPC_HEADER_SIZE + 1, NULL, &err),
                     VDP_ERR_FRAMING);
    assert_non_null(strstr(err.text, "file descriptors"));
    assert_int_equal(c.count, 0);
    assert_true(fd_is_open(fd));
    vdp_ipc_decoder_free(d);
    assert_false(fd_is_open(fd));   /* unused queued fds are closed */

    /* A frame whose fds never came at all. */
    d = vdp_ipc_decoder_new(collect, &c);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, len, NULL, &err), VDP_ERR_FRAMING);
    vdp_ipc_decoder_free(d);
}

static void test_decoder_too_many_fds(void **state)
{
    int fds[2 * VDP_IPC_MAX_FDS + 1];
    for (unsigned i = 0; i < 2 * VDP_IPC_MAX_FDS + 1; i++)
        fds[i] = open_devnull();
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    VdpError err;
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds, VDP_IPC_MAX_FDS, &err), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds + VDP_IPC_MAX_FDS, VDP_IPC_MAX_FDS + 1, &err),
                     VDP_ERR_TOO_LARGE);
    assert_int_equal(err.code, VDP_ERR_TOO_LARGE);
    /* Refused ones stay the caller's; up to the limit still fits. */
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds + VDP_IPC_MAX_FDS, VDP_IPC_MAX_FDS, &err), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds + 2 * VDP_IPC_MAX_FDS, 1, &err), VDP_ERR_TOO_LARGE);
    assert_true(fd_is_open(fds[2 * VDP_IPC_MAX_FDS]));
    close(fds[2 * VDP_IPC_MAX_FDS]);
    /* Invalid arguments. */
    int bad = -1;
    assert_int_equal(vdp_ipc_decoder_push_fds(d, NULL, 0, &err), VDP_OK);
    vdp_ipc_decoder_free(d);
    for (unsigned i = 0; i < 2 * VDP_IPC_MAX_FDS; i++)
        assert_false(fd_is_open(fds[i]));

    d = vdp_ipc_decoder_new(collect, &c);
    assert_int_equal(vdp_ipc_decoder_push_fds(d, &bad, 1, &err), VDP_ERR_RANGE);
    assert_int_equal(vdp_ipc_decoder_push_fds(d, NULL, 1, &err), VDP_ERR_RANGE);
    vdp_ipc_decoder_free(d);
}

static void test_decoder_free_closes_claimed_fds(void **state)
{
    /* Header complete (fds claimed) but the payload never finished. */
    TestFrame frames[] = {{VDP_IPC_VDAGENT, 1, 2, 100}};
    uint8_t stream[200];
    build_stream(frames, 1, stream, sizeof(stream));
    int fds[2] = {open_devnull(), open_devnull()};
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    assert_int_equal(vdp_ipc_decoder_push_fds(d, fds, 2, NULL), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, VDP_IPC_HEADER_SIZE + 50, NULL, NULL), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_buffered(d), VDP_IPC_HEADER_SIZE + 50);
    assert_int_equal(c.count, 0);
    vdp_ipc_decoder_free(d);
    assert_false(fd_is_open(fds[0]));
    assert_false(fd_is_open(fds[1]));
}

static void test_decoder_stop(void **state)
{
    uint8_t stream[1024];
    size_t len = build_stream(mixed_frames, N_MIXED, stream, sizeof(stream));
    Collector c;
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    size_t used;
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, len, &used, NULL), VDP_OK);
    assert_int_equal(c.count, 2);
    size_t first_two = 2 * VDP_IPC_HEADER_SIZE + mixed_frames[0].size + mixed_frames[1].size;
    assert_int_equal(used, first_two);
    assert_int_equal(vdp_ipc_decoder_buffered(d), 0);
    /* The unconsumed rest can be fed later. */
    c.stop_after = 0;
    assert_int_equal(vdp_ipc_decoder_feed(d, stream + used, len - used, &used, NULL), VDP_OK);
    assert_int_equal(used, len - first_two);
    check_frames(&c, mixed_frames, N_MIXED);
    vdp_ipc_decoder_free(d);
    collector_reset(&c);

    /* Stopping on a buffered (split) frame, and freeing the decoder from
     * inside the callback that returns false. */
    memset(&c, 0, sizeof(c));
    c.stop_after = 1;
    d = vdp_ipc_decoder_new(collect, &c);
    c.free_on_stop = &d;
    assert_int_equal(vdp_ipc_decoder_feed(d, stream, 7, NULL, NULL), VDP_OK);
    assert_int_equal(vdp_ipc_decoder_feed(d, stream + 7, len - 7, &used, NULL), VDP_OK);
    assert_null(d);
    assert_int_equal(used, VDP_IPC_HEADER_SIZE + mixed_frames[0].size - 7);
    assert_int_equal(c.count, 1);
    collector_reset(&c);
}

static void test_decoder_new_invalid(void **state)
{
    assert_null(vdp_ipc_decoder_new(NULL, NULL));
    vdp_ipc_decoder_free(NULL);
    Collector c;
    memset(&c, 0, sizeof(c));
    VdpIpcDecoder *d = vdp_ipc_decoder_new(collect, &c);
    VdpError err;
    assert_int_equal(vdp_ipc_decoder_feed(d, NULL, 5, NULL, &err), VDP_ERR_RANGE);
    vdp_ipc_decoder_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_bounds),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ipc_layout),
        cmocka_unit_test(test_hello_roundtrip),
        cmocka_unit_test(test_hello_init_truncates),
        cmocka_unit_test(test_hello_malformed),
        cmocka_unit_test(test_hello_check),
        cmocka_unit_test(test_hello_encode_invalid),
        cmocka_unit_test(test_reject_roundtrip),
        cmocka_unit_test(test_reject_malformed),
        cmocka_unit_test(test_frame_encode),
        cmocka_unit_test(test_decoder_split_every_offset),
        cmocka_unit_test(test_decoder_byte_by_byte),
        cmocka_unit_test(test_decoder_many_in_one_feed),
        cmocka_unit_test(test_decoder_max_frame),
        cmocka_unit_test(test_decoder_oversize_rejected_before_alloc),
        cmocka_unit_test(test_decoder_no_allocation_for_oversize),
        cmocka_unit_test(test_decoder_bad_frame_after_good),
        cmocka_unit_test(test_decoder_fds_assigned),
        cmocka_unit_test(test_decoder_missing_fds),
        cmocka_unit_test(test_decoder_too_many_fds),
        cmocka_unit_test(test_decoder_free_closes_claimed_fds),
        cmocka_unit_test(test_decoder_stop),
        cmocka_unit_test(test_decoder_new_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
