/* vdp-ipc.c - the daemon <-> session agent IPC codec: frame headers,
 * handshake payloads, the frame encoder and the streaming frame decoder.
 *
 * Plain C, no I/O (the decoder only close()s descriptors it owns).
 *
 * File descriptor rule (see vdp-ipc.h). A sender attaches a frame's fds to
 * the sendmsg() that carries the frame's first byte. On an AF_UNIX stream
 * socket the kernel hands ancillary data out with the recvmsg() that reads
 * the first byte of the sendmsg() it was attached to (possibly together
 * with earlier bytes, never later). The receiver pushes them with
 * vdp_ipc_decoder_push_fds() before feeding the bytes of that read. So by
 * the time a frame's header is complete, every fd of that frame has been
 * queued. The decoder therefore claims a frame's nfds from the front of the
 * queue at the moment its 12-byte header is complete; if fewer are queued
 * then, the peer lied (or sent the fds too late) and the stream fails.
 * Descriptors nobody claims stay queued (bounded by VDP_IPC_FD_QUEUE_MAX;
 * pushing more fails) and are closed with the decoder.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdp-ipc.h"
#include "vdp-msg.h"
#include "vdp-wire.h"

const VdpLayout vdp_ipc_layout = {true, true};

/* HELLO/WELCOME fixed part: u32 magic, u16 major, u16 minor, u32 role,
 * u32 features; then the NUL-terminated name. */
#define HELLO_FIXED_SIZE 16u
/* REJECT fixed part: u32 reason; then the NUL-terminated text. */
#define REJECT_FIXED_SIZE 4u
/* Descriptors received but not yet claimed by a frame. */
#define VDP_IPC_FD_QUEUE_MAX (2u * VDP_IPC_MAX_FDS)

/* ---- frame header ---- */

void vdp_ipc_header_encode(const VdpIpcHeader *hdr, uint8_t out[VDP_IPC_HEADER_SIZE])
{
    vdp_put_le16(out, hdr->type);
    out[2] = hdr->nfds;
    out[3] = hdr->flags;
    vdp_put_le32(out + 4, hdr->id);
    vdp_put_le32(out + 8, hdr->size);
}

static bool type_valid(uint32_t type)
{
    return type >= VDP_IPC_HELLO && type < VDP_IPC_TYPE_END;
}

VdpResult vdp_ipc_header_decode(const uint8_t in[VDP_IPC_HEADER_SIZE],
                                VdpIpcHeader *hdr, VdpError *err)
{
    VdpIpcHeader h;

    h.type = vdp_get_le16(in);
    h.nfds = in[2];
    h.flags = in[3];
    h.id = vdp_get_le32(in + 4);
    h.size = vdp_get_le32(in + 8);

    if (!type_valid(h.type))
        return vdp_error_set(err, VDP_ERR_UNKNOWN_TYPE,
                             "IPC frame type %u is unknown", (unsigned)h.type);
    if (h.flags != 0)
        return vdp_error_set(err, VDP_ERR_RANGE,
                             "IPC %s frame has flags 0x%02x; version 1 defines none",
                             vdp_ipc_type_name(h.type), (unsigned)h.flags);
    if (h.nfds > VDP_IPC_MAX_FDS)
        return vdp_error_set(err, VDP_ERR_TOO_LARGE,
                             "IPC %s frame announces %u file descriptors, more than the limit of %u",
                             vdp_ipc_type_name(h.type), (unsigned)h.nfds, VDP_IPC_MAX_FDS);
    if (h.size > VDP_IPC_MAX_FRAME)
        return vdp_error_set(err, VDP_ERR_TOO_LARGE,
                             "IPC %s frame of %u bytes is above the limit of %u bytes",
                             vdp_ipc_type_name(h.type), (unsigned)h.size, VDP_IPC_MAX_FRAME);
    if (hdr)
        *hdr = h;
    return VDP_OK;
}

const char *vdp_ipc_type_name(uint16_t type)
{
    switch (type) {
    case VDP_IPC_HELLO: return "HELLO";
    case VDP_IPC_WELCOME: return "WELCOME";
    case VDP_IPC_REJECT: return "REJECT";
    case VDP_IPC_VDAGENT: return "VDAGENT";
    case VDP_IPC_PING: return "PING";
    case VDP_IPC_PONG: return "PONG";
    case VDP_IPC_GUEST_LAYOUT: return "GUEST_LAYOUT";
    case VDP_IPC_MOUSE: return "MOUSE";
    case VDP_IPC_SESSION_STATE: return "SESSION_STATE";
    case VDP_IPC_STATUS_REQUEST: return "STATUS_REQUEST";
    case VDP_IPC_STATUS_REPLY: return "STATUS_REPLY";
    case VDP_IPC_CLIP_BEGIN: return "CLIP_BEGIN";
    case VDP_IPC_CLIP_CHUNK: return "CLIP_CHUNK";
    case VDP_IPC_CLIP_ABORT: return "CLIP_ABORT";
    case VDP_IPC_CLIP_DATA_FD: return "CLIP_DATA_FD";
    default: return NULL;
    }
}

const char *vdp_ipc_reject_reason_name(uint32_t reason)
{
    switch (reason) {
    case VDP_IPC_REJECT_VERSION: return "version";
    case VDP_IPC_REJECT_NOT_AUTHORIZED: return "not-authorized";
    case VDP_IPC_REJECT_DUPLICATE: return "duplicate";
    case VDP_IPC_REJECT_TOO_MANY: return "too-many";
    case VDP_IPC_REJECT_PROTOCOL: return "protocol";
    default: return NULL;
    }
}

/* ---- strings in handshake payloads ----
 *
 * A string field is the last field of its payload: its bytes, one NUL, and
 * nothing after. Including the NUL it must fit `max`. ASCII control
 * characters are refused: these strings end up in logs and status output. */

static bool char_ok(unsigned char c)
{
    return c >= 0x20 && c != 0x7f;
}

/* Length of a valid string held in a fixed array, or max if invalid. */
static size_t field_strlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != '\0') {
        if (!char_ok((unsigned char)s[n]))
            return max;
        n++;
    }
    return n;   /* == max: no NUL inside the array */
}

static VdpResult string_decode(const char *what, const uint8_t *p, size_t len,
                               size_t max, char *out, VdpError *err)
{
    const uint8_t *nul = len ? memchr(p, '\0', len) : NULL;

    if (!nul) {
        if (len >= max)
            return vdp_error_set(err, VDP_ERR_TOO_LARGE,
                                 "%s of %zu bytes without NUL is longer than the limit of %zu bytes",
                                 what, len, max - 1);
        return vdp_error_set(err, VDP_ERR_UNTERMINATED, "%s is not NUL-terminated", what);
    }
    size_t n = (size_t)(nul - p);
    if (n + 1 > max)
        return vdp_error_set(err, VDP_ERR_TOO_LARGE,
                             "%s of %zu bytes is longer than the limit of %zu bytes",
                             what, n, max - 1);
    if (n + 1 < len)
        return vdp_error_set(err, VDP_ERR_TRAILING, "%zu bytes follow the NUL of the %s",
                             len - n - 1, what);
    for (size_t i = 0; i < n; i++) {
        if (!char_ok(p[i]))
            return vdp_error_set(err, VDP_ERR_RANGE,
                                 "%s contains control character 0x%02x at offset %zu",
                                 what, (unsigned)p[i], i);
    }
    memcpy(out, p, n);
    memset(out + n, 0, max - n);
    return VDP_OK;
}

/* ---- HELLO / WELCOME ---- */

size_t vdp_ipc_hello_encode(const VdpIpcHello *h, uint8_t *out, size_t cap)
{
    size_t n = field_strlen(h->name, VDP_IPC_NAME_MAX);
    if (n >= VDP_IPC_NAME_MAX)
        return 0;

    VdpWriter w;
    vdp_writer_init(&w, out, cap);
    vdp_write_le32(&w, h->magic);
    vdp_write_le16(&w, h->major);
    vdp_write_le16(&w, h->minor);
    vdp_write_le32(&w, h->role);
    vdp_write_le32(&w, h->features);
    vdp_write_bytes(&w, h->name, n);
    vdp_write_u8(&w, 0);
    return vdp_writer_ok(&w) ? w.off : 0;
}

VdpResult vdp_ipc_hello_decode(const uint8_t *in, size_t len, VdpIpcHello *h, VdpError *err)
{
    VdpIpcHello tmp;
    VdpReader r;

    if (!in && len)
        return vdp_error_set(err, VDP_ERR_RANGE, "HELLO: no input buffer");
    if (len < HELLO_FIXED_SIZE + 1)
        return vdp_error_set(err, VDP_ERR_TRUNCATED,
                             "HELLO of %zu bytes is shorter than the minimum of %u",
                             len, HELLO_FIXED_SIZE + 1);
    memset(&tmp, 0, sizeof(tmp));
    vdp_reader_init(&r, in, len);
    tmp.magic = vdp_read_le32(&r);
    tmp.major = vdp_read_le16(&r);
    tmp.minor = vdp_read_le16(&r);
    tmp.role = vdp_read_le32(&r);
    tmp.features = vdp_read_le32(&r);
    VdpResult res = string_decode("HELLO name", in + r.off, vdp_reader_left(&r),
                                  VDP_IPC_NAME_MAX, tmp.name, err);
    if (res != VDP_OK)
        return res;
    if (h)
        *h = tmp;
    return VDP_OK;
}

void vdp_ipc_hello_init(VdpIpcHello *h, uint32_t role, const char *name)
{
    memset(h, 0, sizeof(*h));
    h->magic = VDP_IPC_MAGIC;
    h->major = VDP_IPC_VERSION_MAJOR;
    h->minor = VDP_IPC_VERSION_MINOR;
    h->role = role;
    h->features = 0;
    if (name) {
        size_t n = strnlen(name, VDP_IPC_NAME_MAX - 1);
        memcpy(h->name, name, n);
    }
}

VdpResult vdp_ipc_hello_check(const VdpIpcHello *h, VdpError *err)
{
    if (h->magic != VDP_IPC_MAGIC)
        return vdp_error_set(err, VDP_ERR_PROTOCOL,
                             "bad magic 0x%08x (expected 0x%08x): the peer does not speak the vdagent IPC",
                             (unsigned)h->magic, VDP_IPC_MAGIC);
    if (h->major != VDP_IPC_VERSION_MAJOR)
        return vdp_error_set(err, VDP_ERR_PROTOCOL,
                             "the peer speaks IPC version %u.%u, we speak %u.%u: major versions differ",
                             (unsigned)h->major, (unsigned)h->minor,
                             VDP_IPC_VERSION_MAJOR, VDP_IPC_VERSION_MINOR);
    if (!memchr(h->name, '\0', sizeof(h->name)))
        return vdp_error_set(err, VDP_ERR_UNTERMINATED, "HELLO name is not NUL-terminated");
    return VDP_OK;
}

/* ---- REJECT ---- */

size_t vdp_ipc_reject_encode(const VdpIpcReject *r, uint8_t *out, size_t cap)
{
    size_t n = field_strlen(r->text, VDP_IPC_REASON_MAX);
    if (n >= VDP_IPC_REASON_MAX || r->reason == 0)
        return 0;

    VdpWriter w;
    vdp_writer_init(&w, out, cap);
    vdp_write_le32(&w, r->reason);
    vdp_write_bytes(&w, r->text, n);
    vdp_write_u8(&w, 0);
    return vdp_writer_ok(&w) ? w.off : 0;
}

VdpResult vdp_ipc_reject_decode(const uint8_t *in, size_t len, VdpIpcReject *r, VdpError *err)
{
    VdpIpcReject tmp;

    if (!in && len)
        return vdp_error_set(err, VDP_ERR_RANGE, "REJECT: no input buffer");
    if (len < REJECT_FIXED_SIZE + 1)
        return vdp_error_set(err, VDP_ERR_TRUNCATED,
                             "REJECT of %zu bytes is shorter than the minimum of %u",
                             len, REJECT_FIXED_SIZE + 1);
    memset(&tmp, 0, sizeof(tmp));
    tmp.reason = vdp_get_le32(in);
    /* Unknown non-zero reasons are accepted: a newer daemon may add some,
     * and the text explains them anyway. 0 is never a reason. */
    if (tmp.reason == 0)
        return vdp_error_set(err, VDP_ERR_RANGE, "REJECT reason 0 is not a reason");
    VdpResult res = string_decode("REJECT text", in + REJECT_FIXED_SIZE, len - REJECT_FIXED_SIZE,
                                  VDP_IPC_REASON_MAX, tmp.text, err);
    if (res != VDP_OK)
        return res;
    if (r)
        *r = tmp;
    return VDP_OK;
}

/* ---- frame encoder ---- */

size_t vdp_ipc_frame_encode(uint16_t type, uint32_t id, uint8_t nfds,
                            const uint8_t *payload, size_t len,
                            uint8_t *out, size_t cap)
{
    if (!type_valid(type) || len > VDP_IPC_MAX_FRAME || nfds > VDP_IPC_MAX_FDS)
        return 0;
    if (len && !payload)
        return 0;
    size_t total = VDP_IPC_HEADER_SIZE + len;
    if (!out)
        return total;           /* size query, like the payload encoders */
    if (cap < total)
        return 0;

    VdpIpcHeader hdr = {
        .type = type, .nfds = nfds, .flags = 0, .id = id, .size = (uint32_t)len,
    };
    vdp_ipc_header_encode(&hdr, out);
    if (len)
        memcpy(out + VDP_IPC_HEADER_SIZE, payload, len);
    return total;
}

/* ---- frame decoder ---- */

struct VdpIpcDecoder {
    VdpIpcFrameFunc fn;
    void *user;
    bool failed;                         /* an error was returned: no more frames */

    /* The header being assembled (when a read split it). */
    uint8_t hdr_buf[VDP_IPC_HEADER_SIZE];
    size_t hdr_have;

    /* The current frame once its header is complete. */
    bool have_hdr;
    VdpIpcHeader hdr;
    uint8_t *payload;                    /* hdr.size bytes, only when split across feeds */
    size_t payload_have;
    int frame_fds[VDP_IPC_MAX_FDS];      /* claimed at header completion */
    unsigned frame_nfds;

    /* Received descriptors not yet claimed: a ring. */
    int fdq[VDP_IPC_FD_QUEUE_MAX];
    unsigned fdq_head, fdq_count;
};

VdpIpcDecoder *vdp_ipc_decoder_new(VdpIpcFrameFunc fn, void *user)
{
    if (!fn)
        return NULL;
    VdpIpcDecoder *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->fn = fn;
    d->user = user;
    return d;
}

static void close_fd(int fd)
{
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
}

void vdp_ipc_decoder_free(VdpIpcDecoder *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < d->fdq_count; i++)
        close_fd(d->fdq[(d->fdq_head + i) % VDP_IPC_FD_QUEUE_MAX]);
    for (unsigned i = 0; i < d->frame_nfds; i++)
        close_fd(d->frame_fds[i]);
    free(d->payload);
    free(d);
}

VdpResult vdp_ipc_decoder_push_fds(VdpIpcDecoder *d, const int *fds, unsigned n, VdpError *err)
{
    if (n == 0)
        return VDP_OK;
    if (!fds)
        return vdp_error_set(err, VDP_ERR_RANGE, "no descriptor array given for %u descriptors", n);
    if (n > VDP_IPC_FD_QUEUE_MAX - d->fdq_count)
        return vdp_error_set(err, VDP_ERR_TOO_LARGE,
                             "the peer sent %u file descriptors with %u still unclaimed, more than the limit of %u",
                             n, d->fdq_count, VDP_IPC_FD_QUEUE_MAX);
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] < 0)
            return vdp_error_set(err, VDP_ERR_RANGE, "descriptor %d is not valid", fds[i]);
    }
    for (unsigned i = 0; i < n; i++) {
        d->fdq[(d->fdq_head + d->fdq_count) % VDP_IPC_FD_QUEUE_MAX] = fds[i];
        d->fdq_count++;
    }
    return VDP_OK;
}

/* The header is complete: validate it and claim its descriptors. */
static VdpResult start_frame(VdpIpcDecoder *d, const uint8_t *raw, VdpError *err)
{
    VdpResult r = vdp_ipc_header_decode(raw, &d->hdr, err);
    if (r != VDP_OK)
        return r;
    if (d->hdr.nfds > d->fdq_count)
        return vdp_error_set(err, VDP_ERR_FRAMING,
                             "IPC %s frame announces %u file descriptors but only %u arrived with it",
                             vdp_ipc_type_name(d->hdr.type), (unsigned)d->hdr.nfds, d->fdq_count);
    for (unsigned i = 0; i < d->hdr.nfds; i++) {
        d->frame_fds[i] = d->fdq[d->fdq_head];
        d->fdq_head = (d->fdq_head + 1) % VDP_IPC_FD_QUEUE_MAX;
        d->fdq_count--;
    }
    d->frame_nfds = d->hdr.nfds;
    d->have_hdr = true;
    d->hdr_have = 0;
    d->payload_have = 0;
    return VDP_OK;
}

VdpResult vdp_ipc_decoder_feed(VdpIpcDecoder *d, const uint8_t *data, size_t len,
                               size_t *consumed, VdpError *err)
{
    static const uint8_t empty[1];
    size_t off = 0;

    if (consumed)
        *consumed = 0;
    if (d->failed)
        return vdp_error_set(err, VDP_ERR_FRAMING,
                             "the IPC stream already failed; it cannot continue");
    if (!data && len)
        return vdp_error_set(err, VDP_ERR_RANGE, "no input buffer for %zu bytes", len);

    for (;;) {
        if (!d->have_hdr) {
            const uint8_t *raw;
            if (off == len)
                break;
            if (d->hdr_have == 0 && len - off >= VDP_IPC_HEADER_SIZE) {
                raw = data + off;
                off += VDP_IPC_HEADER_SIZE;
            } else {
                size_t take = VDP_IPC_HEADER_SIZE - d->hdr_have;
                if (take > len - off)
                    take = len - off;
                memcpy(d->hdr_buf + d->hdr_have, data + off, take);
                d->hdr_have += take;
                off += take;
                if (d->hdr_have < VDP_IPC_HEADER_SIZE)
                    break;
                raw = d->hdr_buf;
            }
            VdpResult r = start_frame(d, raw, err);
            if (r != VDP_OK) {
                d->failed = true;
                if (consumed)
                    *consumed = off;
                return r;
            }
        }

        /* Payload: straight from the input when it is all there, else
         * buffered in exactly hdr.size bytes. */
        const uint8_t *payload;
        size_t size = d->hdr.size;
        if (size == 0) {
            payload = empty;
        } else if (!d->payload && len - off >= size) {
            payload = data + off;
            off += size;
        } else {
            if (!d->payload) {
                d->payload = malloc(size);
                if (!d->payload) {
                    d->failed = true;
                    if (consumed)
                        *consumed = off;
                    return vdp_error_set(err, VDP_ERR_NOMEM,
                                         "no memory for an IPC frame of %zu bytes", size);
                }
            }
            size_t take = size - d->payload_have;
            if (take > len - off)
                take = len - off;
            memcpy(d->payload + d->payload_have, data + off, take);
            d->payload_have += take;
            off += take;
            if (d->payload_have < size)
                break;
            payload = d->payload;
        }

        /* Complete. Reset the state before the call: the callback may
         * free the decoder when it returns false. */
        VdpIpcHeader hdr = d->hdr;
        int fds[VDP_IPC_MAX_FDS];
        unsigned nfds = d->frame_nfds;
        memcpy(fds, d->frame_fds, nfds * sizeof(int));
        uint8_t *owned = d->payload;
        d->payload = NULL;
        d->payload_have = 0;
        d->frame_nfds = 0;
        d->have_hdr = false;
        if (consumed)
            *consumed = off;

        bool more = d->fn(d->user, &hdr, payload, fds, nfds);
        free(owned);
        if (!more)
            return VDP_OK;
    }
    if (consumed)
        *consumed = off;
    return VDP_OK;
}

size_t vdp_ipc_decoder_buffered(const VdpIpcDecoder *d)
{
    if (!d->have_hdr)
        return d->hdr_have;
    return VDP_IPC_HEADER_SIZE + d->payload_have;
}
