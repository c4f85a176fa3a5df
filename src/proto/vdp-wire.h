/* vdp-wire.h - little-endian access and checked arithmetic for wire codecs.
 *
 * Every multi-byte field on the VDAgent wire and in our IPC is little-endian
 * and may sit at any alignment, so nothing in this project casts a packed
 * struct onto a buffer: fields are read and written byte by byte here, and
 * every size computation that involves untrusted numbers goes through the
 * checked helpers below.
 *
 * Header-only, no dependencies beyond the C library.
 */
#ifndef VDP_WIRE_H
#define VDP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t vdp_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t vdp_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t vdp_get_le64(const uint8_t *p)
{
    return (uint64_t)vdp_get_le32(p) | (uint64_t)vdp_get_le32(p + 4) << 32;
}

static inline void vdp_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void vdp_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void vdp_put_le64(uint8_t *p, uint64_t v)
{
    vdp_put_le32(p, (uint32_t)v);
    vdp_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Checked arithmetic: return false (and leave *out untouched) on overflow. */
static inline bool vdp_add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

static inline bool vdp_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* A bounds-checked cursor over an input buffer. Once a read fails the
 * reader is "failed" and every later read fails too, so a decoder can do a
 * run of reads and check vdp_reader_ok() once. */
typedef struct VdpReader {
    const uint8_t *data;
    size_t len;
    size_t off;
    bool failed;
} VdpReader;

static inline void vdp_reader_init(VdpReader *r, const void *data, size_t len)
{
    r->data = (const uint8_t *)data;
    r->len = len;
    r->off = 0;
    r->failed = false;
}

static inline size_t vdp_reader_left(const VdpReader *r)
{
    return r->failed ? 0 : r->len - r->off;
}

static inline bool vdp_reader_ok(const VdpReader *r)
{
    return !r->failed;
}

/* Returns a pointer to the next n bytes and advances, or NULL (and fails). */
static inline const uint8_t *vdp_reader_take(VdpReader *r, size_t n)
{
    if (r->failed || n > r->len - r->off) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->data + r->off;
    r->off += n;
    return p;
}

static inline uint8_t vdp_read_u8(VdpReader *r)
{
    const uint8_t *p = vdp_reader_take(r, 1);
    return p ? p[0] : 0;
}

static inline uint16_t vdp_read_le16(VdpReader *r)
{
    const uint8_t *p = vdp_reader_take(r, 2);
    return p ? vdp_get_le16(p) : 0;
}

static inline uint32_t vdp_read_le32(VdpReader *r)
{
    const uint8_t *p = vdp_reader_take(r, 4);
    return p ? vdp_get_le32(p) : 0;
}

static inline uint64_t vdp_read_le64(VdpReader *r)
{
    const uint8_t *p = vdp_reader_take(r, 8);
    return p ? vdp_get_le64(p) : 0;
}

/* A bounds-checked cursor over an output buffer; same failure model. A
 * writer with data == NULL only counts (used to compute encoded sizes). */
typedef struct VdpWriter {
    uint8_t *data;
    size_t cap;
    size_t off;
    bool failed;
} VdpWriter;

static inline void vdp_writer_init(VdpWriter *w, void *data, size_t cap)
{
    w->data = (uint8_t *)data;
    w->cap = data ? cap : SIZE_MAX;
    w->off = 0;
    w->failed = false;
}

/* Returns where to write the next n bytes, or NULL: on overflow (the writer
 * fails) or in counting mode (data == NULL; only the offset advances). */
static inline uint8_t *vdp_writer_reserve(VdpWriter *w, size_t n)
{
    if (w->failed || n > w->cap - w->off) {
        w->failed = true;
        return NULL;
    }
    uint8_t *p = w->data ? w->data + w->off : NULL;
    w->off += n;
    return p;
}

static inline bool vdp_writer_ok(const VdpWriter *w)
{
    return !w->failed;
}

static inline void vdp_write_u8(VdpWriter *w, uint8_t v)
{
    uint8_t *p = vdp_writer_reserve(w, 1);
    if (p)
        p[0] = v;
}

static inline void vdp_write_le16(VdpWriter *w, uint16_t v)
{
    uint8_t *p = vdp_writer_reserve(w, 2);
    if (p)
        vdp_put_le16(p, v);
}

static inline void vdp_write_le32(VdpWriter *w, uint32_t v)
{
    uint8_t *p = vdp_writer_reserve(w, 4);
    if (p)
        vdp_put_le32(p, v);
}

static inline void vdp_write_le64(VdpWriter *w, uint64_t v)
{
    uint8_t *p = vdp_writer_reserve(w, 8);
    if (p)
        vdp_put_le64(p, v);
}

static inline void vdp_write_bytes(VdpWriter *w, const void *src, size_t n)
{
    if (w->failed || n > w->cap - w->off) {
        w->failed = true;
        return;
    }
    if (w->data && n)
        memcpy(w->data + w->off, src, n);
    w->off += n;
}

#endif /* VDP_WIRE_H */
