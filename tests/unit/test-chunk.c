/* test-chunk.c - chunk encoder and reassembler.
 *
 * Most tests build a chunk stream, feed it and compare the log of callback
 * events with the exact expected sequence. Events are logged as:
 *   "M<port> <TYPE> <len>;"        message()
 *   "B<port> <TYPE> <size>/<head>;" stream_begin()
 *   "E<port> <bytes>;"             stream_end() (bytes = stream_data total)
 *   "A<port> <bytes>;"             stream_abort()
 *   "X<port> <TYPE> <result>;"     problem(DROPPED)
 *   "F<port>;"                     problem(FATAL)
 * Payload bytes are checked separately (copies, hashes, or by position).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vdp-chunk.h"
#include "vdp-wire.h"

/* ---- helpers: a growable byte buffer (doubling, so appends are linear) ---- */

typedef struct Buf {
    uint8_t *data;
    size_t len, cap;
} Buf;

static uint8_t *buf_extend(Buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        b->cap = cap;
    }
    uint8_t *p = b->data + b->len;
    b->len += n;
    return p;
}

static void buf_append(Buf *b, const void *d, size_t n)
{
    uint8_t *p = buf_extend(b, n);
    if (n)
        memcpy(p, d, n);
}

static void buf_free(Buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* The test pattern: payload byte i of a message salted with s. */
static uint8_t pat(size_t i, unsigned s)
{
    return (uint8_t)(i * 131u + (i >> 9) + s * 17u);
}

static uint8_t *pattern(size_t len, unsigned salt)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = pat(i, salt);
    return p;
}

static uint32_t fnv(const uint8_t *d, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 16777619u;
    return h;
}

/* Append a message (header + payload) with any protocol/type/size. */
static void put_msg_raw(Buf *b, uint32_t protocol, uint32_t type, const void *payload,
                        uint32_t size)
{
    VdpMsgHeader h = {.protocol = protocol, .type = type, .opaque = 0x1122334455667788u,
                      .size = size};
    vdp_msg_header_encode(&h, buf_extend(b, VDP_MSG_HEADER_SIZE));
    buf_append(b, payload, size);
}

static void put_msg(Buf *b, uint32_t type, const void *payload, uint32_t size)
{
    put_msg_raw(b, VD_AGENT_PROTOCOL, type, payload, size);
}

/* Append a message whose payload is pattern(size, salt). */
static void put_pat_msg(Buf *b, uint32_t type, uint32_t size, unsigned salt)
{
    uint8_t *p = pattern(size, salt);
    put_msg(b, type, p, size);
    free(p);
}

/* Append one chunk of any size (0 allowed). */
static void put_chunk(Buf *b, uint32_t port, const void *d, size_t len)
{
    vdp_chunk_header_encode(port, (uint32_t)len, buf_extend(b, VDP_CHUNK_HEADER_SIZE));
    buf_append(b, d, len);
}

/* Append d framed by the encoder. */
static void put_chunks(Buf *b, uint32_t port, const uint8_t *d, size_t len, size_t max_chunk)
{
    size_t need = vdp_chunk_framed_size(len, max_chunk);
    uint8_t *out = buf_extend(b, need);
    assert_int_equal(vdp_chunk_frame(port, d, len, max_chunk, out, need), need);
}

/* ---- the recorder ---- */

typedef struct RecMsg {
    uint32_t port, type;
    size_t len;
    uint32_t hash;
    bool data_null;
} RecMsg;

typedef struct Rec {
    VdpReasm *r;
    char log[65536];
    size_t loglen;
    RecMsg msgs[64];
    size_t nmsgs;
    VdpError last_err;
    uint8_t head[16];
    size_t head_len;
    size_t stream_got[3];
    const uint8_t *in_lo, *in_hi;   /* what feed() is working on */
    size_t max_buffered;
    uint32_t mouse_next;        /* MOUSE_STATE x values are checked to count up */
    bool check_mouse;
    /* actions */
    uint32_t reset_on_type;     /* message() of this type resets reset_target */
    uint32_t reset_target;      /* a port, or 0 for vdp_reasm_reset() */
    bool reset_in_data;         /* first stream_data() resets its port */
    bool reset_in_begin;        /* stream_begin() resets its port */
    bool reset_on_fatal;
    size_t limit_clipboard;     /* max_payload for CLIPBOARD, 0 = protocol limit */
} Rec;

static Rec T;

static void rec_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void rec_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(T.log + T.loglen, sizeof(T.log) - T.loglen, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(T.log) - T.loglen);
    T.loglen += (size_t)n;
}

static const char *tname(uint32_t type)
{
    static char buf[32];
    const char *n = vdp_msg_type_name(type);
    if (n)
        return n;
    snprintf(buf, sizeof(buf), "type%u", type);
    return buf;
}

static void note_buffered(void)
{
    size_t b = vdp_reasm_buffered(T.r);
    if (b > T.max_buffered)
        T.max_buffered = b;
}

static void on_message(void *user, uint32_t port, const VdpMsgHeader *hdr,
                       const uint8_t *data, size_t len)
{
    assert_ptr_equal(user, &T);
    assert_int_equal(hdr->size, len);
    assert_int_equal(hdr->protocol, VD_AGENT_PROTOCOL);
    assert_true(hdr->opaque == 0x1122334455667788u);
    rec_log("M%u %s %zu;", port, tname(hdr->type), len);
    if (T.nmsgs < 64)
        T.msgs[T.nmsgs++] = (RecMsg){port, hdr->type, len, data ? fnv(data, len) : 0, data == NULL};
    if (T.check_mouse && hdr->type == VD_AGENT_MOUSE_STATE)
        assert_int_equal(vdp_get_le32(data), T.mouse_next++);
    note_buffered();
    if (T.reset_on_type && hdr->type == T.reset_on_type) {
        if (T.reset_target)
            vdp_reasm_reset_port(T.r, T.reset_target);
        else
            vdp_reasm_reset(T.r);
    }
}

static void on_begin(void *user, uint32_t port, const VdpMsgHeader *hdr,
                     const uint8_t *head, size_t head_len)
{
    rec_log("B%u %s %u/%zu;", port, tname(hdr->type), hdr->size, head_len);
    assert_true(head_len <= sizeof(T.head));
    memcpy(T.head, head, head_len);
    T.head_len = head_len;
    assert_int_equal(T.stream_got[port], 0);
    note_buffered();
    if (T.reset_in_begin)
        vdp_reasm_reset_port(T.r, port);
}

static void on_data(void *user, uint32_t port, const uint8_t *data, size_t len)
{
    assert_true(len > 0);
    /* zero copy: the piece lies within the input being fed */
    assert_true(data >= T.in_lo && data + len <= T.in_hi);
    /* streamed payloads in these tests are pattern(size, 0) after the head */
    size_t off = T.head_len + T.stream_got[port];
    for (size_t i = 0; i < len; i++)
        if (data[i] != pat(off + i, 0))
            fail_msg("stream byte %zu is %u, expected %u", off + i, data[i], pat(off + i, 0));
    T.stream_got[port] += len;
    note_buffered();
    if (T.reset_in_data) {
        T.reset_in_data = false;
        vdp_reasm_reset_port(T.r, port);
    }
}

static void on_end(void *user, uint32_t port)
{
    rec_log("E%u %zu;", port, T.stream_got[port]);
    T.stream_got[port] = 0;
}

static void on_abort(void *user, uint32_t port)
{
    rec_log("A%u %zu;", port, T.stream_got[port]);
    T.stream_got[port] = 0;
}

static void on_problem(void *user, VdpReasmEvent ev, uint32_t port,
                       const VdpMsgHeader *hdr, const VdpError *err)
{
    T.last_err = *err;
    assert_true(strlen(err->text) > 10);
    if (ev == VDP_REASM_FATAL) {
        assert_null(hdr);
        assert_int_equal(err->code, VDP_ERR_FRAMING);
        rec_log("F%u;", port);
        if (T.reset_on_fatal)
            vdp_reasm_reset(T.r);
    } else {
        assert_non_null(hdr);
        rec_log("X%u %s %s;", port, tname(hdr->type), vdp_result_name(err->code));
    }
}

static size_t max_payload(void *user, uint32_t type)
{
    if (type == VD_AGENT_CLIPBOARD && T.limit_clipboard)
        return T.limit_clipboard;
    return vdp_msg_max_payload(type);
}

static const VdpReasmCallbacks all_cb = {
    .message = on_message, .stream_begin = on_begin, .stream_data = on_data,
    .stream_end = on_end, .stream_abort = on_abort, .problem = on_problem,
};
static const VdpReasmCallbacks buffered_cb = {
    .message = on_message, .problem = on_problem,
};

static const VdpLayout sel_layout = {.clipboard_selection = true, .grab_serial = true};

/* Start a test: a fresh recorder and reassembler (FROM_HOST, 2048-byte
 * chunks unless cfg says otherwise). */
static void rec_start(const VdpReasmConfig *cfg, const VdpReasmCallbacks *cb)
{
    VdpReasmConfig def = {.dir = VDP_FROM_HOST, .max_chunk = VDP_CHUNK_SIZE_DEFAULT,
                          .max_payload = max_payload};
    memset(&T, 0, sizeof(T));
    T.r = vdp_reasm_new(cfg ? cfg : &def, cb ? cb : &all_cb, &T);
    assert_non_null(T.r);
}

static void rec_stop(void)
{
    vdp_reasm_free(T.r);
    T.r = NULL;
}

/* Feed len bytes in pieces of at most piece bytes; stop at an error. */
static VdpResult feed(const uint8_t *d, size_t len, size_t piece)
{
    VdpError err;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        T.in_lo = d + off;
        T.in_hi = d + off + n;
        VdpResult res = vdp_reasm_feed(T.r, d + off, n, &err);
        note_buffered();
        if (res != VDP_OK) {
            assert_int_equal(err.code, res);
            T.last_err = err;
            return res;
        }
    }
    return VDP_OK;
}

static void feed_ok(const Buf *b, size_t piece)
{
    assert_int_equal(feed(b->data, b->len, piece), VDP_OK);
}

#define assert_log(expected) assert_string_equal(T.log, (expected))

static void assert_msg(size_t i, uint32_t port, uint32_t type, const uint8_t *payload, size_t len)
{
    assert_true(i < T.nmsgs);
    assert_int_equal(T.msgs[i].port, port);
    assert_int_equal(T.msgs[i].type, type);
    assert_int_equal(T.msgs[i].len, len);
    assert_int_equal(T.msgs[i].hash, fnv(payload, len));
}

static void assert_pat_msg(size_t i, uint32_t port, uint32_t type, size_t len, unsigned salt)
{
    uint8_t *p = pattern(len, salt);
    assert_msg(i, port, type, p, len);
    free(p);
}

/* ---- encoder ---- */

static void test_framed_size(void **state)
{
    assert_int_equal(vdp_chunk_framed_size(0, 0), 0);
    assert_int_equal(vdp_chunk_framed_size(1, 0), 9);
    assert_int_equal(vdp_chunk_framed_size(2048, 0), 2056);
    assert_int_equal(vdp_chunk_framed_size(2049, 0), 2049 + 16);
    assert_int_equal(vdp_chunk_framed_size(2049, 2048), 2049 + 16);
    assert_int_equal(vdp_chunk_framed_size(5, 1), 45);
    assert_int_equal(vdp_chunk_framed_size(20, 7), 20 + 24);
    assert_int_equal(vdp_chunk_framed_size(SIZE_MAX, 1), 0);
    assert_int_equal(vdp_chunk_framed_size(SIZE_MAX - 4, 0), 0);
}

static void test_header_encode(void **state)
{
    uint8_t h[VDP_CHUNK_HEADER_SIZE];
    static const uint8_t want[] = {2, 0, 0, 0, 0x04, 0x03, 0x02, 0x01};
    vdp_chunk_header_encode(2, 0x01020304u, h);
    assert_memory_equal(h, want, sizeof(want));
}

/* Check that out holds len bytes of data framed in chunks of the given
 * sizes on port. */
static void check_frames(const uint8_t *out, uint32_t port, const uint8_t *data,
                         const size_t *sizes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(vdp_get_le32(out), port);
        assert_int_equal(vdp_get_le32(out + 4), sizes[i]);
        assert_memory_equal(out + 8, data, sizes[i]);
        out += 8 + sizes[i];
        data += sizes[i];
    }
}

static void test_frame_max1(void **state)
{
    uint8_t out[64];
    static const uint8_t d[] = "abc";
    static const size_t sizes[] = {1, 1, 1};
    assert_int_equal(vdp_chunk_frame(1, d, 3, 1, out, sizeof(out)), 27);
    check_frames(out, 1, d, sizes, 3);
    /* one byte too small */
    assert_int_equal(vdp_chunk_frame(1, d, 3, 1, out, 26), 0);
    assert_int_equal(vdp_chunk_frame(1, d, 0, 1, out, sizeof(out)), 0);
}

static void test_frame_default(void **state)
{
    uint8_t *d = pattern(5000, 1);
    uint8_t out[5100];
    static const size_t sizes[] = {2048, 2048, 904};
    assert_int_equal(vdp_chunk_frame(2, d, 5000, 0, out, sizeof(out)), 5024);
    check_frames(out, 2, d, sizes, 3);
    assert_int_equal(vdp_chunk_frame(2, d, 5000, 2048, out, sizeof(out)), 5024);
    check_frames(out, 2, d, sizes, 3);
    assert_int_equal(vdp_chunk_frame(2, d, 2048, 2048, out, sizeof(out)), 2056);
    check_frames(out, 2, d, sizes, 1);
    assert_int_equal(vdp_chunk_frame(2, d, 5000, 0, out, 5023), 0);
    free(d);
}

static void test_frame_odd(void **state)
{
    uint8_t *d = pattern(20, 2);
    uint8_t out[64];
    static const size_t sizes7[] = {7, 7, 6};
    static const size_t sizes13[] = {13, 7};
    assert_int_equal(vdp_chunk_frame(1, d, 20, 7, out, sizeof(out)), 44);
    check_frames(out, 1, d, sizes7, 3);
    assert_int_equal(vdp_chunk_frame(1, d, 20, 13, out, sizeof(out)), 36);
    check_frames(out, 1, d, sizes13, 2);
    assert_int_equal(vdp_chunk_frame(1, d, 20, 20, out, sizeof(out)), 28);
    assert_int_equal(vdp_chunk_frame(1, d, 20, 21, out, sizeof(out)), 28);
    free(d);
}

/* Frames written by the encoder reassemble to the original messages. */
static void test_frame_roundtrip(void **state)
{
    static const size_t maxes[] = {1, 2, 7, 19, 20, 21, 2048};
    for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
        Buf msgs = {0}, in = {0};
        put_pat_msg(&msgs, VD_AGENT_CLIPBOARD_GRAB, 40, 3);
        put_pat_msg(&msgs, VD_AGENT_MAX_CLIPBOARD, 4, 4);
        put_chunks(&in, 1, msgs.data, msgs.len, maxes[m]);
        rec_start(NULL, NULL);
        feed_ok(&in, in.len);
        assert_log("M1 CLIPBOARD_GRAB 40;M1 MAX_CLIPBOARD 4;");
        assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_GRAB, 40, 3);
        assert_pat_msg(1, 1, VD_AGENT_MAX_CLIPBOARD, 4, 4);
        rec_stop();
        buf_free(&msgs);
        buf_free(&in);
    }
}

/* ---- reassembly ---- */

static void test_single_message(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_MOUSE_STATE, 13, 5);
    put_chunk(&in, 2, m.data, m.len);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("M2 MOUSE_STATE 13;");
    assert_pat_msg(0, 2, VD_AGENT_MOUSE_STATE, 13, 5);
    assert_int_equal(vdp_reasm_buffered(T.r), 0);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

static void test_header_split_every_offset(void **state)
{
    for (size_t split = 1; split < VDP_MSG_HEADER_SIZE; split++) {
        Buf m = {0}, in = {0};
        put_pat_msg(&m, VD_AGENT_CLIPBOARD_GRAB, 12, (unsigned)split);
        put_chunk(&in, 1, m.data, split);
        put_chunk(&in, 1, m.data + split, m.len - split);
        rec_start(NULL, NULL);
        /* feed chunk by chunk, so the first feed ends inside the header */
        assert_int_equal(feed(in.data, 8 + split, in.len), VDP_OK);
        assert_log("");
        assert_int_equal(vdp_reasm_buffered(T.r), split);
        assert_int_equal(feed(in.data + 8 + split, in.len - 8 - split, in.len), VDP_OK);
        assert_log("M1 CLIPBOARD_GRAB 12;");
        assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_GRAB, 12, (unsigned)split);
        rec_stop();
        buf_free(&m);
        buf_free(&in);
    }
}

/* Port 1 and port 2 chunks alternate while both ports are mid-message. */
static void build_interleaved(Buf *in)
{
    Buf grab = {0}, m1 = {0}, m2 = {0};
    put_pat_msg(&grab, VD_AGENT_CLIPBOARD_GRAB, 40, 1);   /* 60 bytes */
    put_pat_msg(&m1, VD_AGENT_MOUSE_STATE, 13, 2);        /* 33 bytes */
    put_pat_msg(&m2, VD_AGENT_MOUSE_STATE, 13, 3);
    put_chunk(in, 1, grab.data, 10);
    put_chunk(in, 2, m1.data, 5);
    put_chunk(in, 1, grab.data + 10, 15);
    put_chunk(in, 2, m1.data + 5, 28);
    put_chunk(in, 2, m2.data, 33);
    put_chunk(in, 1, grab.data + 25, 35);
    buf_free(&grab);
    buf_free(&m1);
    buf_free(&m2);
}

#define INTERLEAVED_LOG "M2 MOUSE_STATE 13;M2 MOUSE_STATE 13;M1 CLIPBOARD_GRAB 40;"

static void check_interleaved(void)
{
    assert_log(INTERLEAVED_LOG);
    assert_pat_msg(0, 2, VD_AGENT_MOUSE_STATE, 13, 2);
    assert_pat_msg(1, 2, VD_AGENT_MOUSE_STATE, 13, 3);
    assert_pat_msg(2, 1, VD_AGENT_CLIPBOARD_GRAB, 40, 1);
}

static void test_interleaved_mid_message(void **state)
{
    Buf in = {0};
    build_interleaved(&in);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    check_interleaved();
    assert_int_equal(vdp_reasm_buffered(T.r), 0);
    rec_stop();
    buf_free(&in);
}

/* Every feed size from 1 byte up: chunk headers, message headers and
 * bodies split across feed() calls at every position. */
static void test_feed_piece_sizes(void **state)
{
    Buf in = {0};
    build_interleaved(&in);
    for (size_t piece = 1; piece <= in.len; piece++) {
        rec_start(NULL, NULL);
        feed_ok(&in, piece);
        check_interleaved();
        rec_stop();
    }
    buf_free(&in);
}

static void test_partial_chunk_header(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 9);
    put_chunk(&in, 1, m.data, m.len);
    for (size_t split = 1; split < VDP_CHUNK_HEADER_SIZE; split++) {
        rec_start(NULL, NULL);
        assert_int_equal(feed(in.data, split, in.len), VDP_OK);
        assert_int_equal(vdp_reasm_buffered(T.r), split);
        assert_int_equal(feed(in.data + split, in.len - split, in.len), VDP_OK);
        assert_log("M1 CLIPBOARD_REQUEST 8;");
        assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_REQUEST, 8, 9);
        rec_stop();
    }
    buf_free(&m);
    buf_free(&in);
}

/* A chunk ends one message and starts the next (inside its header). */
static void test_chunk_ends_one_starts_next(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);   /* 28 bytes */
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_RELEASE, 4, 2);   /* 24 bytes */
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_GRAB, 12, 3);     /* 32 bytes */
    put_chunk(&in, 1, m.data, 40);                       /* 28 + 12 header bytes */
    put_chunk(&in, 1, m.data + 40, 30);                  /* ends inside GRAB's header */
    put_chunk(&in, 1, m.data + 70, m.len - 70);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("M1 CLIPBOARD_REQUEST 8;M1 CLIPBOARD_RELEASE 4;M1 CLIPBOARD_GRAB 12;");
    assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);
    assert_pat_msg(1, 1, VD_AGENT_CLIPBOARD_RELEASE, 4, 2);
    assert_pat_msg(2, 1, VD_AGENT_CLIPBOARD_GRAB, 12, 3);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

static void test_chunk_several_messages(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_MOUSE_STATE, 13, 1);
    put_msg(&m, VD_AGENT_CLIENT_DISCONNECTED, NULL, 0);
    put_pat_msg(&m, VD_AGENT_GRAPHICS_DEVICE_INFO, 30, 2);
    put_pat_msg(&m, VD_AGENT_MOUSE_STATE, 13, 3);
    put_chunk(&in, 2, m.data, m.len);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("M2 MOUSE_STATE 13;M2 CLIENT_DISCONNECTED 0;M2 GRAPHICS_DEVICE_INFO 30;"
               "M2 MOUSE_STATE 13;");
    assert_pat_msg(0, 2, VD_AGENT_MOUSE_STATE, 13, 1);
    assert_pat_msg(2, 2, VD_AGENT_GRAPHICS_DEVICE_INFO, 30, 2);
    assert_pat_msg(3, 2, VD_AGENT_MOUSE_STATE, 13, 3);
    VdpReasmStats st;
    vdp_reasm_get_stats(T.r, &st);
    assert_int_equal(st.chunks, 1);
    assert_int_equal(st.messages, 4);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

static void test_zero_size_chunks(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);
    put_chunk(&in, 1, NULL, 0);
    put_chunk(&in, 1, m.data, 10);
    put_chunk(&in, 2, NULL, 0);
    put_chunk(&in, 1, NULL, 0);
    put_chunk(&in, 1, m.data + 10, m.len - 10);
    put_chunk(&in, 1, NULL, 0);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("M1 CLIPBOARD_REQUEST 8;");
    assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);
    VdpReasmStats st;
    vdp_reasm_get_stats(T.r, &st);
    assert_int_equal(st.chunks, 6);
    assert_int_equal(st.bytes, in.len);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* Zero-size messages are delivered with a non-NULL pointer and len 0. */
static void test_zero_size_message(void **state)
{
    Buf m = {0}, in = {0};
    put_msg(&m, VD_AGENT_CLIENT_DISCONNECTED, NULL, 0);
    put_msg(&m, VD_AGENT_CLIPBOARD_RELEASE, NULL, 0);   /* no selection prefix */
    put_chunk(&in, 2, m.data, 20);
    put_chunk(&in, 1, m.data + 20, 20);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("M2 CLIENT_DISCONNECTED 0;M1 CLIPBOARD_RELEASE 0;");
    assert_false(T.msgs[0].data_null);
    assert_false(T.msgs[1].data_null);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* A message above its limit is skipped without being buffered; the next
 * message on the port is delivered. */
static void test_oversize_skipped(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 5000, 1);
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 2);
    put_chunks(&in, 1, m.data, m.len, 2048);
    rec_start(NULL, NULL);
    T.limit_clipboard = 100;
    feed_ok(&in, 64);
    assert_log("X1 CLIPBOARD too large;M1 CLIPBOARD_REQUEST 8;");
    assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_REQUEST, 8, 2);
    assert_int_equal(T.last_err.code, VDP_ERR_TOO_LARGE);
    assert_string_equal(T.last_err.text, "CLIPBOARD of 5000 bytes on chunk port 1 is above its "
                                         "limit of 100 bytes; skipping it");
    assert_true(T.max_buffered <= VDP_CHUNK_HEADER_SIZE + VDP_MSG_HEADER_SIZE);
    VdpReasmStats st;
    vdp_reasm_get_stats(T.r, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.messages, 1);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* The protocol limits apply without a max_payload hook. */
static void test_oversize_default_limit(void **state)
{
    Buf m = {0}, in = {0};
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048};
    put_pat_msg(&m, VD_AGENT_MOUSE_STATE, 14, 1);
    put_pat_msg(&m, VD_AGENT_MOUSE_STATE, 13, 2);
    put_chunk(&in, 2, m.data, m.len);
    rec_start(&cfg, NULL);
    feed_ok(&in, in.len);
    assert_log("X2 MOUSE_STATE too large;M2 MOUSE_STATE 13;");
    assert_pat_msg(0, 2, VD_AGENT_MOUSE_STATE, 13, 2);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

static void test_unknown_type_dropped(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, 0, 5, 1);
    put_pat_msg(&m, VD_AGENT_END_MESSAGE, 3000, 2);
    put_msg(&m, 0xffffffffu, NULL, 0);
    put_pat_msg(&m, VD_AGENT_MAX_CLIPBOARD, 4, 3);
    put_chunks(&in, 1, m.data, m.len, 2048);
    rec_start(NULL, NULL);
    feed_ok(&in, 100);
    assert_log("X1 type0 unknown type;X1 type17 unknown type;X1 type4294967295 unknown type;"
               "M1 MAX_CLIPBOARD 4;");
    assert_pat_msg(0, 1, VD_AGENT_MAX_CLIPBOARD, 4, 3);
    assert_true(T.max_buffered <= VDP_CHUNK_HEADER_SIZE + VDP_MSG_HEADER_SIZE);
    assert_string_equal(T.last_err.text, "unknown message type 4294967295; skipping its 0 bytes");
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

static void test_bad_protocol_dropped(void **state)
{
    Buf m = {0}, in = {0};
    uint8_t *p = pattern(40, 1);
    put_msg_raw(&m, 2, VD_AGENT_CLIPBOARD_GRAB, p, 40);
    put_msg_raw(&m, 0, VD_AGENT_CLIPBOARD_GRAB, p, 4);
    put_msg(&m, VD_AGENT_CLIPBOARD_GRAB, p, 40);
    put_chunks(&in, 1, m.data, m.len, 33);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("X1 CLIPBOARD_GRAB protocol mismatch;X1 CLIPBOARD_GRAB protocol mismatch;"
               "M1 CLIPBOARD_GRAB 40;");
    assert_msg(0, 1, VD_AGENT_CLIPBOARD_GRAB, p, 40);
    assert_string_equal(T.last_err.text, "message of type 7 on chunk port 1 has protocol 0, "
                                         "expected 1; skipping its 4 bytes");
    rec_stop();
    free(p);
    buf_free(&m);
    buf_free(&in);
}

/* Types on the wrong chunk port or from the wrong peer are dropped. */
static void test_wrong_route_dropped(void **state)
{
    Buf c = {0}, s = {0}, in = {0};
    put_pat_msg(&s, VD_AGENT_CLIPBOARD, 10, 1);         /* client type on port 2 */
    put_pat_msg(&s, VD_AGENT_MOUSE_STATE, 13, 2);
    put_pat_msg(&c, VD_AGENT_MOUSE_STATE, 13, 3);       /* server type on port 1 */
    put_pat_msg(&c, VD_AGENT_REPLY, 8, 4);              /* guest-only type */
    put_pat_msg(&c, VD_AGENT_CLIPBOARD, 10, 5);
    put_chunk(&in, 2, s.data, s.len);
    put_chunk(&in, 1, c.data, c.len);
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("X2 CLIPBOARD wrong chunk port;M2 MOUSE_STATE 13;X1 MOUSE_STATE wrong chunk port;"
               "X1 REPLY wrong direction;M1 CLIPBOARD 10;");
    assert_pat_msg(0, 2, VD_AGENT_MOUSE_STATE, 13, 2);
    assert_pat_msg(1, 1, VD_AGENT_CLIPBOARD, 10, 5);
    rec_stop();
    buf_free(&c);
    buf_free(&s);
    buf_free(&in);
}

static void test_bad_chunk_port_fatal(void **state)
{
    static const uint32_t bad_ports[] = {0, 3, 0x80000001u};
    for (size_t i = 0; i < 3; i++) {
        Buf m = {0}, good = {0}, bad = {0};
        char want[64];
        put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);
        put_chunk(&good, 1, m.data, m.len);
        put_chunk(&bad, 1, m.data, 10);     /* a partial message, then garbage */
        put_chunk(&bad, bad_ports[i], m.data, m.len);
        rec_start(NULL, NULL);
        assert_int_equal(feed(bad.data, bad.len, bad.len), VDP_ERR_FRAMING);
        snprintf(want, sizeof(want), "F%u;", bad_ports[i]);
        assert_log(want);
        assert_int_equal(T.last_err.code, VDP_ERR_FRAMING);
        assert_non_null(strstr(T.last_err.text, "out of range"));
        /* stays broken, even for valid input */
        assert_int_equal(feed(good.data, good.len, good.len), VDP_ERR_FRAMING);
        assert_log(want);
        /* reset recovers */
        vdp_reasm_reset(T.r);
        assert_int_equal(vdp_reasm_buffered(T.r), 0);
        feed_ok(&good, 3);
        strcat(want, "M1 CLIPBOARD_REQUEST 8;");
        assert_log(want);
        assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);
        rec_stop();
        buf_free(&m);
        buf_free(&good);
        buf_free(&bad);
    }
}

static void test_chunk_above_max_fatal(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 2100, 1);
    put_chunk(&in, 1, m.data, 2048);                /* the maximum is fine */
    put_chunk(&in, 1, m.data + 2048, m.len - 2048); /* 72 bytes */
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("M1 CLIPBOARD 2100;");
    rec_stop();

    in.len = 0;
    put_chunk(&in, 1, m.data, 2049);
    rec_start(NULL, NULL);
    assert_int_equal(feed(in.data, in.len, 1), VDP_ERR_FRAMING);
    assert_log("F1;");
    assert_string_equal(T.last_err.text, "chunk of 2049 bytes on port 1 is above the maximum "
                                         "of 2048 bytes: chunk framing lost");
    rec_stop();

    /* max_chunk 0: no limit */
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 0};
    in.len = 0;
    put_chunk(&in, 1, m.data, m.len);
    rec_start(&cfg, NULL);
    feed_ok(&in, in.len);
    assert_log("M1 CLIPBOARD 2100;");
    assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD, 2100, 1);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* A fatal error in the middle of a stream; reset aborts the stream. */
static void test_fatal_then_reset_aborts_stream(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 16};
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 100, 0);
    put_chunk(&in, 1, m.data, 50);
    put_chunk(&in, 7, m.data, 1);
    rec_start(&cfg, NULL);
    assert_int_equal(feed(in.data, in.len, in.len), VDP_ERR_FRAMING);
    vdp_reasm_reset(T.r);
    assert_log("B1 CLIPBOARD 100/4;F7;A1 26;");
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* Without stream callbacks, a large clipboard is buffered whole. */
static void test_no_stream_callbacks(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 200000, 7);
    put_chunks(&in, 1, m.data, m.len, 2048);
    rec_start(NULL, &buffered_cb);
    feed_ok(&in, 5000);
    assert_log("M1 CLIPBOARD 200000;");
    assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD, 200000, 7);
    assert_true(T.max_buffered >= 200000);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* Non-streamable types above the threshold are still buffered. */
static void test_nonstreamable_above_threshold(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 16};
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_MONITORS_CONFIG, 48, 1);
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 16, 2);   /* at the threshold: buffered */
    put_chunks(&in, 1, m.data, m.len, 7);
    rec_start(&cfg, NULL);
    feed_ok(&in, in.len);
    assert_log("M1 MONITORS_CONFIG 48;M1 CLIPBOARD 16;");
    assert_pat_msg(0, 1, VD_AGENT_MONITORS_CONFIG, 48, 1);
    assert_pat_msg(1, 1, VD_AGENT_CLIPBOARD, 16, 2);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* ---- streaming ---- */

#define BIG_DATA (10u * 1024u * 1024u)

/* A 10 MiB CLIPBOARD (selection prefix) in 2048-byte chunks with port-2
 * MOUSE_STATE messages in between, some split around port-1 chunks. */
static void test_stream_10mib(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .layout = &sel_layout};
    static const uint8_t head[8] = {1, 0, 0, 0, VD_AGENT_CLIPBOARD_UTF8_TEXT, 0, 0, 0};
    static const char mouse_log[] = "M2 MOUSE_STATE 13;";
    Buf msg = {0}, in = {0}, exp = {0};
    uint8_t mouse[VDP_MSG_HEADER_SIZE + 13] = {0};
    size_t tail = 0;            /* bytes of a split MOUSE_STATE still to send */
    uint32_t mice = 0;
    char line[64];

    /* payload byte j is pat(j, 0), except the 8-byte head */
    uint8_t *payload = pattern(8 + BIG_DATA, 0);
    memcpy(payload, head, 8);
    put_msg(&msg, VD_AGENT_CLIPBOARD, payload, 8 + BIG_DATA);
    free(payload);

    snprintf(line, sizeof(line), "B1 CLIPBOARD %u/8;", 8 + BIG_DATA);
    buf_append(&exp, line, strlen(line));
    for (size_t off = 0, k = 0; off < msg.len; off += 2048, k++) {
        size_t n = msg.len - off < 2048 ? msg.len - off : 2048;
        put_chunk(&in, 1, msg.data + off, n);
        if (off + n == msg.len) {
            snprintf(line, sizeof(line), "E1 %u;", BIG_DATA);
            buf_append(&exp, line, strlen(line));
        }
        if (tail) {
            put_chunk(&in, 2, mouse + sizeof(mouse) - tail, tail);
            buf_append(&exp, mouse_log, strlen(mouse_log));
            tail = 0;
        }
        if (k % 7 == 3) {
            vdp_msg_header_encode(&(VdpMsgHeader){VD_AGENT_PROTOCOL, VD_AGENT_MOUSE_STATE,
                                                  0x1122334455667788u, 13}, mouse);
            vdp_put_le32(mouse + VDP_MSG_HEADER_SIZE, mice++);
            if (k % 2) {
                /* split: the rest follows the next port-1 chunk */
                put_chunk(&in, 2, mouse, 25);
                tail = sizeof(mouse) - 25;
            } else {
                put_chunk(&in, 2, mouse, sizeof(mouse));
                buf_append(&exp, mouse_log, strlen(mouse_log));
            }
        }
    }
    assert_int_equal(tail, 0);
    buf_append(&exp, "", 1);

    rec_start(&cfg, NULL);
    T.check_mouse = true;
    feed_ok(&in, 3001);
    assert_string_equal(T.log, (const char *)exp.data);
    assert_memory_equal(T.head, head, 8);
    assert_int_equal(T.mouse_next, mice);
    assert_true(mice > 700);
    assert_true(T.max_buffered < 100);
    VdpReasmStats st;
    vdp_reasm_get_stats(T.r, &st);
    assert_int_equal(st.streamed, 1);
    assert_int_equal(st.messages, mice);
    assert_int_equal(st.bytes, in.len);
    rec_stop();
    buf_free(&msg);
    buf_free(&in);
    buf_free(&exp);
}

/* The stream head split across chunks at every offset. */
static void test_stream_head_split(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 16,
                          .layout = &sel_layout};
    Buf m = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 100, 0);
    for (size_t a = 1; a < 28; a++) {
        for (size_t b = a + 1; b <= 28; b++) {
            Buf in = {0};
            put_chunk(&in, 1, m.data, a);
            put_chunk(&in, 1, m.data + a, b - a);
            put_chunk(&in, 1, m.data + b, m.len - b);
            rec_start(&cfg, NULL);
            feed_ok(&in, 1 + a % 5);
            assert_log("B1 CLIPBOARD 100/8;E1 92;");
            assert_memory_equal(T.head, m.data + VDP_MSG_HEADER_SIZE, 8);
            assert_true(T.max_buffered <= VDP_CHUNK_HEADER_SIZE + VDP_MSG_HEADER_SIZE);
            rec_stop();
            buf_free(&in);
        }
    }
    buf_free(&m);
}

static void test_stream_file_xfer_data(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_FILE_XFER_DATA, 12 + 200000, 0);
    put_pat_msg(&m, VD_AGENT_FILE_XFER_DATA, 12 + 1000, 1);
    put_chunks(&in, 1, m.data, m.len, 2048);
    rec_start(NULL, NULL);
    feed_ok(&in, 65536);
    assert_log("B1 FILE_XFER_DATA 200012/12;E1 200000;M1 FILE_XFER_DATA 1012;");
    assert_memory_equal(T.head, m.data + VDP_MSG_HEADER_SIZE, 12);
    assert_pat_msg(0, 1, VD_AGENT_FILE_XFER_DATA, 1012, 1);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* A streamed message shorter than its head is dropped as truncated; one
 * exactly its head size begins and ends with no data. */
static void test_stream_truncated_and_exact(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 4,
                          .layout = &sel_layout};
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 6, 0);
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 8, 0);
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 9, 0);
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);
    put_chunks(&in, 1, m.data, m.len, 5);
    rec_start(&cfg, NULL);
    feed_ok(&in, in.len);
    assert_log("X1 CLIPBOARD truncated;B1 CLIPBOARD 8/8;E1 0;B1 CLIPBOARD 9/8;E1 1;"
               "M1 CLIPBOARD_REQUEST 8;");
    assert_string_equal(T.last_err.text, "CLIPBOARD of 6 bytes on chunk port 1 is shorter "
                                         "than its 8-byte head; skipping it");
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* The layout is read when each stream begins. */
static void test_stream_layout_change(void **state)
{
    VdpLayout layout = {0};
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 4,
                          .layout = &layout};
    Buf m1 = {0}, m2 = {0};
    put_pat_msg(&m1, VD_AGENT_CLIPBOARD, 30, 0);
    put_chunk(&m2, 1, m1.data, m1.len);
    rec_start(&cfg, NULL);
    feed_ok(&m2, m2.len);
    layout.clipboard_selection = true;
    feed_ok(&m2, m2.len);
    assert_log("B1 CLIPBOARD 30/4;E1 26;B1 CLIPBOARD 30/8;E1 22;");
    rec_stop();
    buf_free(&m1);
    buf_free(&m2);
}

static void test_reset_port_during_stream(void **state)
{
    Buf c = {0}, s = {0}, in = {0}, in2 = {0};
    put_pat_msg(&c, VD_AGENT_CLIPBOARD, 100000, 0);
    put_pat_msg(&s, VD_AGENT_MOUSE_STATE, 13, 1);
    put_chunks(&in, 1, c.data, 3 * 2048, 2048);
    put_chunk(&in, 2, s.data, 10);          /* port 2 mid-message too */
    rec_start(NULL, NULL);
    feed_ok(&in, in.len);
    assert_log("B1 CLIPBOARD 100000/4;");
    assert_int_equal(vdp_reasm_buffered(T.r), 10);
    vdp_reasm_reset_port(T.r, 1);
    assert_log("B1 CLIPBOARD 100000/4;A1 6120;");
    assert_int_equal(vdp_reasm_buffered(T.r), 10);   /* port 2 untouched */
    vdp_reasm_reset_port(T.r, 1);                    /* nothing left to abort */
    vdp_reasm_reset_port(T.r, 3);                    /* ignored */
    c.len = 0;
    put_pat_msg(&c, VD_AGENT_CLIPBOARD_REQUEST, 8, 2);
    put_chunk(&in2, 1, c.data, c.len);
    put_chunk(&in2, 2, s.data + 10, s.len - 10);
    feed_ok(&in2, in2.len);
    assert_log("B1 CLIPBOARD 100000/4;A1 6120;M1 CLIPBOARD_REQUEST 8;M2 MOUSE_STATE 13;");
    assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_REQUEST, 8, 2);
    assert_pat_msg(1, 2, VD_AGENT_MOUSE_STATE, 13, 1);
    rec_stop();
    buf_free(&c);
    buf_free(&s);
    buf_free(&in);
    buf_free(&in2);
}

/* The daemon's case: CLIENT_DISCONNECTED on port 2 resets port 1 from
 * inside message(), once during a stream, once during a buffered message. */
static void test_reset_from_callback(void **state)
{
    Buf c = {0}, s = {0}, in = {0};
    put_pat_msg(&c, VD_AGENT_CLIPBOARD, 100000, 0);
    put_msg(&s, VD_AGENT_CLIENT_DISCONNECTED, NULL, 0);
    put_chunks(&in, 1, c.data, 2 * 2048, 2048);
    put_chunk(&in, 2, s.data, s.len);
    c.len = 0;
    put_pat_msg(&c, VD_AGENT_CLIPBOARD_GRAB, 40, 1);
    put_chunk(&in, 1, c.data, 30);                   /* a buffered message, cut */
    put_chunk(&in, 2, s.data, s.len);
    put_chunk(&in, 1, c.data, c.len);                /* then sent whole */
    rec_start(NULL, NULL);
    T.reset_on_type = VD_AGENT_CLIENT_DISCONNECTED;
    T.reset_target = 1;
    feed_ok(&in, in.len);
    assert_log("B1 CLIPBOARD 100000/4;M2 CLIENT_DISCONNECTED 0;A1 4072;"
               "M2 CLIENT_DISCONNECTED 0;M1 CLIPBOARD_GRAB 40;");
    assert_pat_msg(2, 1, VD_AGENT_CLIPBOARD_GRAB, 40, 1);
    assert_int_equal(vdp_reasm_buffered(T.r), 0);
    rec_stop();
    buf_free(&c);
    buf_free(&s);
    buf_free(&in);
}

/* message() resets its own port; the next message in the chunk is fine. */
static void test_reset_own_port_from_message(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 1);
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_RELEASE, 4, 2);
    put_chunk(&in, 1, m.data, m.len);
    rec_start(NULL, NULL);
    T.reset_on_type = VD_AGENT_CLIPBOARD_REQUEST;
    T.reset_target = 1;
    feed_ok(&in, in.len);
    assert_log("M1 CLIPBOARD_REQUEST 8;M1 CLIPBOARD_RELEASE 4;");
    assert_pat_msg(1, 1, VD_AGENT_CLIPBOARD_RELEASE, 4, 2);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* stream_data() resets its own port: the stream is aborted; the port's
 * next bytes start a new message. */
static void test_reset_from_stream_data(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 16,
                          .layout = &sel_layout};
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 100, 0);
    put_chunk(&in, 1, m.data, VDP_MSG_HEADER_SIZE + 8 + 10);
    m.len = 0;
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 3);
    put_chunk(&in, 1, m.data, m.len);
    rec_start(&cfg, NULL);
    T.reset_in_data = true;
    feed_ok(&in, in.len);
    assert_log("B1 CLIPBOARD 100/8;A1 10;M1 CLIPBOARD_REQUEST 8;");
    assert_pat_msg(0, 1, VD_AGENT_CLIPBOARD_REQUEST, 8, 3);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* stream_begin() resets its own port, also for a stream with no data
 * after its head: aborted, never ended. */
static void test_reset_from_stream_begin(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 3};
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 4, 0);
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 10, 0);
    put_chunk(&in, 1, m.data, m.len - 6);    /* the second one's data follows */
    m.len = 0;
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 3);
    put_chunk(&in, 1, m.data, m.len);
    rec_start(&cfg, NULL);
    T.reset_in_begin = true;
    feed_ok(&in, in.len);
    assert_log("B1 CLIPBOARD 4/4;A1 0;B1 CLIPBOARD 10/4;A1 0;M1 CLIPBOARD_REQUEST 8;");
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

/* vdp_reasm_reset() from message(): the rest of that feed is discarded,
 * the next feed starts on fresh framing. */
static void test_full_reset_from_callback(void **state)
{
    Buf m = {0}, in = {0}, in2 = {0};
    put_pat_msg(&m, VD_AGENT_MOUSE_STATE, 13, 1);
    put_chunk(&in, 2, m.data, m.len);
    m.len = 0;
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 2);
    put_chunk(&in, 1, m.data, m.len);
    put_chunk(&in2, 1, m.data, m.len);
    rec_start(NULL, NULL);
    T.reset_on_type = VD_AGENT_MOUSE_STATE;
    T.reset_target = 0;
    feed_ok(&in, in.len);
    assert_log("M2 MOUSE_STATE 13;");
    assert_int_equal(vdp_reasm_buffered(T.r), 0);
    feed_ok(&in2, in2.len);
    assert_log("M2 MOUSE_STATE 13;M1 CLIPBOARD_REQUEST 8;");
    rec_stop();
    buf_free(&m);
    buf_free(&in);
    buf_free(&in2);
}

/* vdp_reasm_reset() from problem(FATAL): this feed fails, the next works. */
static void test_reset_from_fatal(void **state)
{
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD_REQUEST, 8, 2);
    put_chunk(&in, 9, m.data, m.len);
    rec_start(NULL, NULL);
    T.reset_on_fatal = true;
    assert_int_equal(feed(in.data, in.len, in.len), VDP_ERR_FRAMING);
    in.len = 0;
    put_chunk(&in, 1, m.data, m.len);
    feed_ok(&in, in.len);
    assert_log("F9;M1 CLIPBOARD_REQUEST 8;");
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

static void test_stats(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048, .stream_threshold = 100,
                          .max_payload = max_payload};
    Buf m = {0}, in = {0};
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 1000, 0);    /* streamed */
    put_pat_msg(&m, VD_AGENT_CLIPBOARD, 50, 0);      /* buffered */
    put_pat_msg(&m, VD_AGENT_MOUSE_STATE, 13, 0);    /* dropped: wrong port */
    put_chunks(&in, 1, m.data, m.len, 500);          /* 3 chunks */
    put_chunk(&in, 2, NULL, 0);
    rec_start(&cfg, NULL);
    feed_ok(&in, 77);
    VdpReasmStats st;
    vdp_reasm_get_stats(T.r, &st);
    assert_int_equal(st.chunks, 4);
    assert_int_equal(st.messages, 1);
    assert_int_equal(st.streamed, 1);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.bytes, in.len);
    vdp_reasm_reset(T.r);
    vdp_reasm_get_stats(T.r, &st);
    assert_int_equal(st.chunks, 4);
    rec_stop();
    buf_free(&m);
    buf_free(&in);
}

static void test_new_requires_message(void **state)
{
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST};
    VdpReasmCallbacks cb = {0};
    assert_null(vdp_reasm_new(&cfg, &cb, NULL));
    vdp_reasm_free(NULL);
}

/* ---- randomized streams ---- */

typedef struct Rng {
    uint64_t s;
} Rng;

static uint32_t rng_next(Rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static uint32_t rng_below(Rng *r, uint32_t n)
{
    return rng_next(r) % n;
}

typedef struct Expect {
    uint32_t type, size;
    unsigned salt;
    bool drop, streamed;
} Expect;

typedef struct RandCheck {
    VdpReasm *r;
    Expect *exp[3];
    size_t nexp[3], next[3];
    size_t stream_off[3];       /* payload offset of the next stream byte */
    bool streaming[3];
    size_t threshold;
} RandCheck;

static uint8_t rand_byte(unsigned salt, size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13 ^ salt * 97u ^ i);
}

static const Expect *rand_expect(RandCheck *c, uint32_t port)
{
    assert_true(port == 1 || port == 2);
    assert_true(c->next[port] < c->nexp[port]);
    return &c->exp[port][c->next[port]];
}

static void rand_message(void *user, uint32_t port, const VdpMsgHeader *hdr,
                         const uint8_t *data, size_t len)
{
    RandCheck *c = user;
    const Expect *e = rand_expect(c, port);
    assert_false(e->drop);
    assert_false(e->streamed);
    assert_int_equal(hdr->type, e->type);
    assert_int_equal(len, e->size);
    for (size_t i = 0; i < len; i++)
        if (data[i] != rand_byte(e->salt, i))
            fail_msg("port %u message %zu byte %zu differs", port, c->next[port], i);
    c->next[port]++;
}

static void rand_begin(void *user, uint32_t port, const VdpMsgHeader *hdr,
                       const uint8_t *head, size_t head_len)
{
    RandCheck *c = user;
    const Expect *e = rand_expect(c, port);
    assert_true(e->streamed);
    assert_false(c->streaming[port]);
    assert_int_equal(hdr->type, e->type);
    assert_int_equal(hdr->size, e->size);
    for (size_t i = 0; i < head_len; i++)
        assert_int_equal(head[i], rand_byte(e->salt, i));
    c->streaming[port] = true;
    c->stream_off[port] = head_len;
}

static void rand_data(void *user, uint32_t port, const uint8_t *data, size_t len)
{
    RandCheck *c = user;
    const Expect *e = rand_expect(c, port);
    assert_true(c->streaming[port]);
    for (size_t i = 0; i < len; i++)
        if (data[i] != rand_byte(e->salt, c->stream_off[port] + i))
            fail_msg("port %u stream %zu byte %zu differs", port, c->next[port],
                     c->stream_off[port] + i);
    c->stream_off[port] += len;
}

static void rand_end(void *user, uint32_t port)
{
    RandCheck *c = user;
    const Expect *e = rand_expect(c, port);
    assert_true(c->streaming[port]);
    assert_int_equal(c->stream_off[port], e->size);
    c->streaming[port] = false;
    c->next[port]++;
}

static void rand_abort(void *user, uint32_t port)
{
    fail_msg("unexpected stream_abort on port %u", port);
}

static void rand_problem(void *user, VdpReasmEvent ev, uint32_t port,
                         const VdpMsgHeader *hdr, const VdpError *err)
{
    RandCheck *c = user;
    assert_int_equal(ev, VDP_REASM_DROPPED);
    const Expect *e = rand_expect(c, port);
    assert_true(e->drop);
    assert_int_equal(hdr->type, e->type);
    assert_int_equal(hdr->size, e->size);
    c->next[port]++;
}

/* Host types with their chunk ports. */
static const uint32_t host_types[] = {
    VD_AGENT_MOUSE_STATE, VD_AGENT_MONITORS_CONFIG, VD_AGENT_CLIPBOARD,
    VD_AGENT_DISPLAY_CONFIG, VD_AGENT_ANNOUNCE_CAPABILITIES, VD_AGENT_CLIPBOARD_GRAB,
    VD_AGENT_CLIPBOARD_REQUEST, VD_AGENT_CLIPBOARD_RELEASE, VD_AGENT_FILE_XFER_START,
    VD_AGENT_FILE_XFER_STATUS, VD_AGENT_FILE_XFER_DATA, VD_AGENT_CLIENT_DISCONNECTED,
    VD_AGENT_MAX_CLIPBOARD, VD_AGENT_AUDIO_VOLUME_SYNC, VD_AGENT_GRAPHICS_DEVICE_INFO,
};

static void run_random(uint64_t seed, size_t nmsgs)
{
    static const size_t thresholds[] = {16, 100, 1024, VDP_STREAM_THRESHOLD_DEFAULT};
    Rng rng = {seed};
    RandCheck c = {0};
    Buf stream[3] = {{0}}, in = {0};
    VdpLayout layout = {.clipboard_selection = rng_below(&rng, 2)};

    print_message("random stream: seed %llu\n", (unsigned long long)seed);
    c.threshold = thresholds[rng_below(&rng, 4)];
    for (uint32_t port = 1; port <= 2; port++) {
        c.exp[port] = calloc(nmsgs, sizeof(Expect));
        assert_non_null(c.exp[port]);
    }

    /* Messages into each port's stream. */
    for (size_t i = 0; i < nmsgs; i++) {
        Expect e = {.salt = (unsigned)i};
        uint32_t port;
        if (rng_below(&rng, 100) < 4) {
            /* something to drop: unknown type or too large a MOUSE_STATE */
            port = 1 + rng_below(&rng, 2);
            e.drop = true;
            if (rng_below(&rng, 2)) {
                e.type = VD_AGENT_END_MESSAGE + rng_below(&rng, 100);
                e.size = rng_below(&rng, 5000);
            } else {
                port = VDP_SERVER_PORT;
                e.type = VD_AGENT_MOUSE_STATE;
                e.size = 14 + rng_below(&rng, 3000);
            }
        } else {
            e.type = host_types[rng_below(&rng, sizeof(host_types) / sizeof(host_types[0]))];
            port = vdp_msg_port_for_type(e.type);
            size_t limit = vdp_msg_max_payload(e.type);
            size_t cap = vdp_msg_streamable(e.type) && rng_below(&rng, 4) == 0 ? 100000 : 300;
            if (limit > cap)
                limit = cap;
            e.size = rng_below(&rng, (uint32_t)limit + 1);
            e.streamed = vdp_msg_streamable(e.type) && e.size > c.threshold;
        }
        uint8_t *p = malloc(e.size ? e.size : 1);
        assert_non_null(p);
        for (size_t j = 0; j < e.size; j++)
            p[j] = rand_byte(e.salt, j);
        put_msg(&stream[port], e.type, p, e.size);
        free(p);
        c.exp[port][c.nexp[port]++] = e;
    }

    /* Frame both streams, interleaving at chunk granularity. */
    size_t pos[3] = {0};
    while (pos[1] < stream[1].len || pos[2] < stream[2].len) {
        uint32_t port = 1 + rng_below(&rng, 2);
        if (pos[port] == stream[port].len)
            port = 3 - port;
        size_t n = rng_below(&rng, 10) == 0 ? rng_below(&rng, 8) : 1 + rng_below(&rng, 2048);
        if (n > stream[port].len - pos[port])
            n = stream[port].len - pos[port];
        put_chunk(&in, port, stream[port].data + pos[port], n);
        pos[port] += n;
    }

    /* Feed in random pieces. */
    static const VdpReasmCallbacks cb = {
        .message = rand_message, .stream_begin = rand_begin, .stream_data = rand_data,
        .stream_end = rand_end, .stream_abort = rand_abort, .problem = rand_problem,
    };
    VdpReasmConfig cfg = {.dir = VDP_FROM_HOST, .max_chunk = 2048,
                          .stream_threshold = c.threshold, .layout = &layout};
    c.r = vdp_reasm_new(&cfg, &cb, &c);
    assert_non_null(c.r);
    for (size_t off = 0; off < in.len;) {
        size_t n = rng_below(&rng, 3) == 0 ? 1 + rng_below(&rng, 16) : 1 + rng_below(&rng, 5000);
        if (n > in.len - off)
            n = in.len - off;
        VdpError err;
        assert_int_equal(vdp_reasm_feed(c.r, in.data + off, n, &err), VDP_OK);
        /* never more than two partial messages up to the threshold or the
         * largest non-streamable message generated (300) */
        assert_true(vdp_reasm_buffered(c.r) <= 8 + 2 * (20 + 16 + 300 + c.threshold));
        off += n;
    }
    for (uint32_t port = 1; port <= 2; port++) {
        assert_int_equal(c.next[port], c.nexp[port]);
        assert_false(c.streaming[port]);
        free(c.exp[port]);
        buf_free(&stream[port]);
    }
    assert_int_equal(vdp_reasm_buffered(c.r), 0);
    VdpReasmStats st;
    vdp_reasm_get_stats(c.r, &st);
    assert_int_equal(st.bytes, in.len);
    assert_int_equal(st.messages + st.streamed + st.dropped, nmsgs);
    print_message("  threshold %zu, %zu bytes in %llu chunks: %llu buffered, %llu streamed, "
                  "%llu dropped\n", c.threshold, in.len, (unsigned long long)st.chunks,
                  (unsigned long long)st.messages, (unsigned long long)st.streamed,
                  (unsigned long long)st.dropped);
    vdp_reasm_free(c.r);
    buf_free(&in);
}

/* TEST_CHUNK_SEED=N runs just that seed (to reproduce a failure). */
static void test_random_streams(void **state)
{
    static const uint64_t seeds[] = {1, 2, 3, 42, 20240601, 0xdeadbeef, 7777, 123456789};
    const char *env = getenv("TEST_CHUNK_SEED");
    if (env) {
        run_random(strtoull(env, NULL, 0), 2000);
        return;
    }
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
        run_random(seeds[i], 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framed_size),
        cmocka_unit_test(test_header_encode),
        cmocka_unit_test(test_frame_max1),
        cmocka_unit_test(test_frame_default),
        cmocka_unit_test(test_frame_odd),
        cmocka_unit_test(test_frame_roundtrip),
        cmocka_unit_test(test_single_message),
        cmocka_unit_test(test_header_split_every_offset),
        cmocka_unit_test(test_interleaved_mid_message),
        cmocka_unit_test(test_feed_piece_sizes),
        cmocka_unit_test(test_partial_chunk_header),
        cmocka_unit_test(test_chunk_ends_one_starts_next),
        cmocka_unit_test(test_chunk_several_messages),
        cmocka_unit_test(test_zero_size_chunks),
        cmocka_unit_test(test_zero_size_message),
        cmocka_unit_test(test_oversize_skipped),
        cmocka_unit_test(test_oversize_default_limit),
        cmocka_unit_test(test_unknown_type_dropped),
        cmocka_unit_test(test_bad_protocol_dropped),
        cmocka_unit_test(test_wrong_route_dropped),
        cmocka_unit_test(test_bad_chunk_port_fatal),
        cmocka_unit_test(test_chunk_above_max_fatal),
        cmocka_unit_test(test_fatal_then_reset_aborts_stream),
        cmocka_unit_test(test_no_stream_callbacks),
        cmocka_unit_test(test_nonstreamable_above_threshold),
        cmocka_unit_test(test_stream_10mib),
        cmocka_unit_test(test_stream_head_split),
        cmocka_unit_test(test_stream_file_xfer_data),
        cmocka_unit_test(test_stream_truncated_and_exact),
        cmocka_unit_test(test_stream_layout_change),
        cmocka_unit_test(test_reset_port_during_stream),
        cmocka_unit_test(test_reset_from_callback),
        cmocka_unit_test(test_reset_own_port_from_message),
        cmocka_unit_test(test_reset_from_stream_data),
        cmocka_unit_test(test_reset_from_stream_begin),
        cmocka_unit_test(test_full_reset_from_callback),
        cmocka_unit_test(test_reset_from_fatal),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_new_requires_message),
        cmocka_unit_test(test_random_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
