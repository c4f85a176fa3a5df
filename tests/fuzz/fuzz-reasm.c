/* fuzz-reasm.c - libFuzzer target: chunk stream -> reassembler -> decoder.
 *
 * Input layout: one control byte, then the chunk stream as it would arrive
 * from the host on the virtio port.
 *
 *   control bit 0     layout.clipboard_selection (stream heads and decoding)
 *   control bit 1     layout.grab_serial
 *   control bits 2-4  stream threshold, an index into thresholds[]
 *   control bits 5-7  largest feed() piece, an index into pieces[]; the
 *                     piece sizes come from a PRNG seeded with the control
 *                     byte and the input size, so split points vary
 *
 * Every complete message is decoded with vdp_msg_decode and described;
 * every stream head is decoded with vdp_msg_decode_stream_head. A
 * CLIENT_DISCONNECTED on port 2 resets port 1 from inside the callback, as
 * the daemon does. After a framing error the reassembler is reset and the
 * rest of the input is fed. Invariants are checked with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdp-chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

static const size_t thresholds[8] = {1, 5, 12, 64, 300, 2048, 4096, VDP_STREAM_THRESHOLD_DEFAULT};
static const size_t pieces[8] = {1, 2, 7, 31, 256, 2056, 8192, 65536};

typedef struct Fuzz {
    VdpReasm *r;
    VdpLayout layout;
    size_t threshold;
    bool active[3];             /* a stream is open on this port */
    uint64_t expect[3], got[3]; /* its payload bytes after the head */
    uint64_t messages, streams;
    unsigned sink;              /* every delivered byte is read into this */
} Fuzz;

static void touch(Fuzz *f, const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        f->sink += d[i];
}

/* Does the view [p, p + n) lie within [data, data + len)? */
static bool within(const void *p, size_t n, const uint8_t *data, size_t len)
{
    uintptr_t v = (uintptr_t)p, d = (uintptr_t)data;
    return n == 0 || (v >= d && n <= len && v - d <= len - n);
}

static void check_error(VdpResult res, const VdpError *err)
{
    CHECK(err->code == res);
    CHECK(memchr(err->text, '\0', sizeof(err->text)) != NULL);
    CHECK(err->text[0] != '\0');
}

static void describe(const VdpMsg *msg)
{
    char buf[1024], small[8];
    vdp_msg_describe(msg, buf, sizeof(buf));
    CHECK(memchr(buf, '\0', sizeof(buf)) != NULL);
    vdp_msg_describe(msg, small, sizeof(small));
    CHECK(memchr(small, '\0', sizeof(small)) != NULL);
}

static void on_message(void *user, uint32_t port, const VdpMsgHeader *hdr,
                       const uint8_t *data, size_t len)
{
    Fuzz *f = user;
    VdpMsg msg;
    VdpError err;

    CHECK(port == VDP_CLIENT_PORT || port == VDP_SERVER_PORT);
    CHECK(data != NULL && hdr->size == len);
    CHECK(hdr->protocol == VD_AGENT_PROTOCOL);
    CHECK(vdp_msg_check_route(VDP_FROM_HOST, port, hdr->type, NULL) == VDP_OK);
    CHECK(len <= vdp_msg_max_payload(hdr->type));
    CHECK(!vdp_msg_streamable(hdr->type) || len <= f->threshold);
    touch(f, data, len);
    f->messages++;

    VdpResult res = vdp_msg_decode(VDP_FROM_HOST, port, hdr->type, data, len, &f->layout,
                                   &msg, &err);
    if (res == VDP_OK) {
        CHECK(msg.type == hdr->type);
        if (msg.type == VD_AGENT_CLIPBOARD)
            CHECK(within(msg.u.clipboard.data, msg.u.clipboard.size, data, len));
        if (msg.type == VD_AGENT_FILE_XFER_DATA)
            CHECK(within(msg.u.xfer_data.data, msg.u.xfer_data.size, data, len));
        if (msg.type == VD_AGENT_FILE_XFER_START)
            CHECK(within(msg.u.xfer_start.keyfile, msg.u.xfer_start.keyfile_len + 1, data, len));
        describe(&msg);
    } else {
        check_error(res, &err);
    }

    if (hdr->type == VD_AGENT_CLIENT_DISCONNECTED)
        vdp_reasm_reset_port(f->r, VDP_CLIENT_PORT);
}

static void on_begin(void *user, uint32_t port, const VdpMsgHeader *hdr,
                     const uint8_t *head, size_t head_len)
{
    Fuzz *f = user;
    VdpMsg msg;
    VdpError err;

    CHECK(port == VDP_CLIENT_PORT || port == VDP_SERVER_PORT);
    CHECK(!f->active[port]);
    CHECK(vdp_msg_streamable(hdr->type) && hdr->size > f->threshold);
    CHECK(hdr->size <= vdp_msg_max_payload(hdr->type));
    CHECK(head_len == vdp_msg_stream_head_size(hdr->type, &f->layout));
    CHECK(head_len <= hdr->size);
    touch(f, head, head_len);

    VdpResult res = vdp_msg_decode_stream_head(VDP_FROM_HOST, port, hdr->type, head, head_len,
                                               hdr->size, &f->layout, &msg, &err);
    if (res == VDP_OK) {
        CHECK(msg.type == hdr->type);
        describe(&msg);
    } else {
        check_error(res, &err);
    }
    f->active[port] = true;
    f->expect[port] = hdr->size - head_len;
    f->got[port] = 0;
}

static void on_data(void *user, uint32_t port, const uint8_t *data, size_t len)
{
    Fuzz *f = user;
    CHECK(port == VDP_CLIENT_PORT || port == VDP_SERVER_PORT);
    CHECK(f->active[port]);
    CHECK(len > 0 && f->got[port] + len <= f->expect[port]);
    touch(f, data, len);
    f->got[port] += len;
}

static void on_end(void *user, uint32_t port)
{
    Fuzz *f = user;
    CHECK(port == VDP_CLIENT_PORT || port == VDP_SERVER_PORT);
    CHECK(f->active[port] && f->got[port] == f->expect[port]);
    f->active[port] = false;
    f->streams++;
}

static void on_abort(void *user, uint32_t port)
{
    Fuzz *f = user;
    CHECK(port == VDP_CLIENT_PORT || port == VDP_SERVER_PORT);
    CHECK(f->active[port]);
    f->active[port] = false;
}

static void on_problem(void *user, VdpReasmEvent ev, uint32_t port,
                       const VdpMsgHeader *hdr, const VdpError *err)
{
    CHECK(err != NULL && err->code != VDP_OK);
    CHECK(memchr(err->text, '\0', sizeof(err->text)) != NULL && err->text[0] != '\0');
    if (ev == VDP_REASM_DROPPED) {
        CHECK(hdr != NULL);
        CHECK(port == VDP_CLIENT_PORT || port == VDP_SERVER_PORT);
    } else {
        CHECK(ev == VDP_REASM_FATAL && hdr == NULL && err->code == VDP_ERR_FRAMING);
    }
}

/* The most a reassembler may hold: a partial chunk header, and per port a
 * message header plus the larger of a stream head and the largest message
 * it buffers (a streamable one up to the threshold, or any other type up to
 * its limit). */
static size_t buffered_bound(size_t threshold)
{
    size_t largest = threshold > 16 ? threshold : 16;
    for (uint32_t t = 1; t < VD_AGENT_END_MESSAGE; t++)
        if (!vdp_msg_streamable(t) && vdp_msg_max_payload(t) > largest)
            largest = vdp_msg_max_payload(t);
    return VDP_CHUNK_HEADER_SIZE + 2 * (VDP_MSG_HEADER_SIZE + largest);
}

static uint32_t next_rand(uint32_t *s)
{
    /* xorshift32 */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const VdpReasmCallbacks cb = {
        .message = on_message, .stream_begin = on_begin, .stream_data = on_data,
        .stream_end = on_end, .stream_abort = on_abort, .problem = on_problem,
    };
    Fuzz f = {0};

    if (size < 1)
        return 0;
    uint8_t control = data[0];
    f.layout.clipboard_selection = control & 1;
    f.layout.grab_serial = (control >> 1) & 1;
    f.threshold = thresholds[(control >> 2) & 7];
    size_t max_piece = pieces[control >> 5];
    uint32_t seed = 0x9e3779b9u ^ control ^ (uint32_t)size << 8;

    VdpReasmConfig cfg = {
        .dir = VDP_FROM_HOST,
        .max_chunk = VDP_CHUNK_SIZE_DEFAULT,
        .stream_threshold = f.threshold,
        .layout = &f.layout,
    };
    f.r = vdp_reasm_new(&cfg, &cb, &f);
    CHECK(f.r != NULL);
    size_t bound = buffered_bound(f.threshold);

    for (size_t off = 1; off < size;) {
        size_t n = 1 + next_rand(&seed) % max_piece;
        if (n > size - off)
            n = size - off;
        VdpError err;
        VdpResult res = vdp_reasm_feed(f.r, data + off, n, &err);
        CHECK(vdp_reasm_buffered(f.r) <= bound);
        if (res != VDP_OK) {
            check_error(res, &err);
            CHECK(res == VDP_ERR_FRAMING);
            /* stays broken until reset */
            CHECK(vdp_reasm_feed(f.r, data + off, n, &err) == VDP_ERR_FRAMING);
            vdp_reasm_reset(f.r);
            CHECK(!f.active[1] && !f.active[2]);
            CHECK(vdp_reasm_buffered(f.r) == 0);
        }
        off += n;
    }

    VdpReasmStats st;
    vdp_reasm_get_stats(f.r, &st);
    CHECK(st.messages == f.messages && st.streamed == f.streams);
    CHECK(st.bytes <= size - 1);
    vdp_reasm_reset(f.r);
    CHECK(!f.active[1] && !f.active[2]);
    CHECK(vdp_reasm_buffered(f.r) == 0);
    vdp_reasm_free(f.r);
    return 0;
}
