/* vdp-checksum.h - FNV-1a, the content check shared by the tests and
 * vdp-selftest: both ends hash what they sent and what arrived, piece by
 * piece, so large transfers are verified without keeping them in memory. */
#ifndef VDP_CHECKSUM_H
#define VDP_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#define VDP_FNV_INIT 14695981039346656037ull

static inline uint64_t vdp_fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

#endif /* VDP_CHECKSUM_H */
