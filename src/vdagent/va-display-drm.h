/* va-display-drm.h - GRAPHICS_DEVICE_INFO entries to output names, through
 * sysfs (no libdrm, no device opened): the PCI address of the SPICE display
 * channel's device -> /sys/class/drm/cardN of that device -> its connector
 * number device_display_id -> the RandR output names an X driver gives that
 * connector. Pure file reads; sysfs_root is "/sys" except in tests.
 */
#ifndef VA_DISPLAY_DRM_H
#define VA_DISPLAY_DRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "va-display-backend.h"

/* PCI hops in a device address (a device behind bridges: one hop per
 * bridge); real topologies have 2 or 3, sysfs paths are short. */
#define VA_DRM_MAX_HOPS 8u
/* DRM cards and connectors looked at, at most (a machine has a handful). */
#define VA_DRM_MAX_CARDS 64u
#define VA_DRM_MAX_CONNECTORS 64u
/* Candidate RandR names per connector (modesetting's, the QXL driver's,
 * the kernel's). */
#define VA_DRM_MAX_NAMES 3u

typedef struct VaPciAddress {
    uint32_t domain;
    unsigned nhops;
    struct { uint8_t slot, fn; } hops[VA_DRM_MAX_HOPS];
} VaPciAddress;

/* "pci/DDDD/SS.F[/SS.F...]" (hex), as spice-server sends it. */
bool va_drm_parse_address(const char *s, VaPciAddress *a);

/* The kernel connector name ("Virtual-1", "HDMI-A-1") of connector number
 * index (in DRM order: connector_id when sysfs has it, else natural name
 * order) of the card at address a. False if there is no such card or
 * connector. */
bool va_drm_find_connector(const char *sysfs_root, const VaPciAddress *a, uint32_t index,
                           char *out, size_t cap);

/* RandR output names X drivers give a kernel connector, best first
 * (modesetting: "HDMI-A-1" -> "HDMI-1"; xf86-video-qxl: "DP-1" ->
 * "DisplayPort-1"; and the kernel name itself). Returns how many. */
unsigned va_drm_randr_names(const char *connector, char names[][VA_DISP_NAME_MAX],
                            unsigned max);

/* The index in st of the first of names that is an output there, or -1.
 * When st has an output "Virtual-0" (the old QXL driver numbered from 0,
 * the kernel from 1), "Virtual-N" means "Virtual-(N-1)". */
int va_drm_pick_output(const VaDispState *st, const char names[][VA_DISP_NAME_MAX],
                       unsigned n);

#endif /* VA_DISPLAY_DRM_H */
