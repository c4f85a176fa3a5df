/* vdp-caps.h - VDAgent capability sets.
 *
 * Bit i lives in words[i / 32] & (1 << (i % 32)), as VD_AGENT_HAS_CAPABILITY
 * defines. A set keeps every word a peer announced (up to
 * VDP_MAX_CAPS_WORDS), including bits we do not know yet.
 */
#ifndef VDP_CAPS_H
#define VDP_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdp-error.h"
#include "vdp-limits.h"

typedef struct VdpCaps {
    uint32_t nwords;                   /* words announced (0 = nothing known) */
    uint32_t words[VDP_MAX_CAPS_WORDS];
} VdpCaps;

void vdp_caps_clear(VdpCaps *caps);
void vdp_caps_set(VdpCaps *caps, unsigned bit);    /* grows nwords as needed; bits >= 32*VDP_MAX_CAPS_WORDS ignored */
void vdp_caps_unset(VdpCaps *caps, unsigned bit);
bool vdp_caps_has(const VdpCaps *caps, unsigned bit);
bool vdp_caps_equal(const VdpCaps *a, const VdpCaps *b);

/* Both peers have the bit: what decides a message layout. */
bool vdp_caps_both(const VdpCaps *own, const VdpCaps *peer, unsigned bit);

/* What a guest agent of this project announces: every capability of
 * spice-vdagent 0.22.1 (0x38DE7) plus MONITORS_CONFIG_POSITION (we honour
 * USE_POS) and FILE_XFER_DETAILED_ERRORS. */
void vdp_caps_init_guest(VdpCaps *caps);

/* What the host endpoint announces: a spice-gtk 0.42 client's set
 * (by-demand clipboard with selections, grab serials, no release on regrab,
 * sparse monitors with positions, max clipboard, file-transfer detailed
 * errors, audio volume sync, graphics device info). */
void vdp_caps_init_host(VdpCaps *caps);

/* Name of a capability bit ("clipboard-selection"), or NULL if unknown. */
const char *vdp_cap_name(unsigned bit);

/* Comma-separated names of the bits set; unknown bits as "bit42". Always
 * NUL-terminates; returns the length that the full text needs (like
 * snprintf), so truncation is detectable. */
size_t vdp_caps_format(const VdpCaps *caps, char *buf, size_t size);

#endif /* VDP_CAPS_H */
