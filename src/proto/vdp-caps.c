/* vdp-caps.c - VDAgent capability sets: build, query, name, format. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <spice/vd_agent.h>

#include "vdp-caps.h"

#define CAPS_MAX_BITS (32u * VDP_MAX_CAPS_WORDS)

/* Lower-case, dash-separated forms of the VD_AGENT_CAP_* names. */
static const char *const cap_names[VD_AGENT_END_CAP] = {
    [VD_AGENT_CAP_MOUSE_STATE] = "mouse-state",
    [VD_AGENT_CAP_MONITORS_CONFIG] = "monitors-config",
    [VD_AGENT_CAP_REPLY] = "reply",
    [VD_AGENT_CAP_CLIPBOARD] = "clipboard",
    [VD_AGENT_CAP_DISPLAY_CONFIG] = "display-config",
    [VD_AGENT_CAP_CLIPBOARD_BY_DEMAND] = "clipboard-by-demand",
    [VD_AGENT_CAP_CLIPBOARD_SELECTION] = "clipboard-selection",
    [VD_AGENT_CAP_SPARSE_MONITORS_CONFIG] = "sparse-monitors-config",
    [VD_AGENT_CAP_GUEST_LINEEND_LF] = "guest-lineend-lf",
    [VD_AGENT_CAP_GUEST_LINEEND_CRLF] = "guest-lineend-crlf",
    [VD_AGENT_CAP_MAX_CLIPBOARD] = "max-clipboard",
    [VD_AGENT_CAP_AUDIO_VOLUME_SYNC] = "audio-volume-sync",
    [VD_AGENT_CAP_MONITORS_CONFIG_POSITION] = "monitors-config-position",
    [VD_AGENT_CAP_FILE_XFER_DISABLED] = "file-xfer-disabled",
    [VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS] = "file-xfer-detailed-errors",
    [VD_AGENT_CAP_GRAPHICS_DEVICE_INFO] = "graphics-device-info",
    [VD_AGENT_CAP_CLIPBOARD_NO_RELEASE_ON_REGRAB] = "clipboard-no-release-on-regrab",
    [VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL] = "clipboard-grab-serial",
};

/* Words a set really holds, whatever a caller stored in nwords. */
static uint32_t caps_words(const VdpCaps *caps)
{
    return caps->nwords < VDP_MAX_CAPS_WORDS ? caps->nwords : VDP_MAX_CAPS_WORDS;
}

static uint32_t bit_mask(unsigned bit)
{
    return (uint32_t)1 << (bit % 32u);
}

void vdp_caps_clear(VdpCaps *caps)
{
    memset(caps, 0, sizeof(*caps));
}

void vdp_caps_set(VdpCaps *caps, unsigned bit)
{
    if (bit >= CAPS_MAX_BITS)
        return;
    uint32_t word = bit / 32u;
    /* Growing: the words between the old end and this one read as zero. */
    for (uint32_t i = caps_words(caps); i <= word; i++)
        caps->words[i] = 0;
    if (caps->nwords <= word)
        caps->nwords = word + 1;
    caps->words[word] |= bit_mask(bit);
}

void vdp_caps_unset(VdpCaps *caps, unsigned bit)
{
    /* nwords stays: a peer's announced word count is kept. */
    if (vdp_caps_has(caps, bit))
        caps->words[bit / 32u] &= ~bit_mask(bit);
}

bool vdp_caps_has(const VdpCaps *caps, unsigned bit)
{
    if (bit >= 32u * caps_words(caps))
        return false;
    return (caps->words[bit / 32u] & bit_mask(bit)) != 0;
}

/* Compares the bits, not the word counts: {1 word: 0x1} equals
 * {2 words: 0x1, 0x0}. */
bool vdp_caps_equal(const VdpCaps *a, const VdpCaps *b)
{
    uint32_t na = caps_words(a), nb = caps_words(b);
    uint32_t n = na > nb ? na : nb;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t wa = i < na ? a->words[i] : 0;
        uint32_t wb = i < nb ? b->words[i] : 0;
        if (wa != wb)
            return false;
    }
    return true;
}

bool vdp_caps_both(const VdpCaps *own, const VdpCaps *peer, unsigned bit)
{
    return vdp_caps_has(own, bit) && vdp_caps_has(peer, bit);
}

static void caps_init_bits(VdpCaps *caps, const unsigned *bits, size_t n)
{
    vdp_caps_clear(caps);
    for (size_t i = 0; i < n; i++)
        vdp_caps_set(caps, bits[i]);
}

void vdp_caps_init_guest(VdpCaps *caps)
{
    static const unsigned bits[] = {
        /* spice-vdagent 0.22.1: 0x38DE7 */
        VD_AGENT_CAP_MOUSE_STATE,
        VD_AGENT_CAP_MONITORS_CONFIG,
        VD_AGENT_CAP_REPLY,
        VD_AGENT_CAP_CLIPBOARD_BY_DEMAND,
        VD_AGENT_CAP_CLIPBOARD_SELECTION,
        VD_AGENT_CAP_SPARSE_MONITORS_CONFIG,
        VD_AGENT_CAP_GUEST_LINEEND_LF,
        VD_AGENT_CAP_MAX_CLIPBOARD,
        VD_AGENT_CAP_AUDIO_VOLUME_SYNC,
        VD_AGENT_CAP_GRAPHICS_DEVICE_INFO,
        VD_AGENT_CAP_CLIPBOARD_NO_RELEASE_ON_REGRAB,
        VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL,
        /* ours on top */
        VD_AGENT_CAP_MONITORS_CONFIG_POSITION,
        VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS,
    };
    caps_init_bits(caps, bits, sizeof(bits) / sizeof(bits[0]));
}

void vdp_caps_init_host(VdpCaps *caps)
{
    static const unsigned bits[] = {
        /* what every spice-gtk client announces */
        VD_AGENT_CAP_MOUSE_STATE,
        VD_AGENT_CAP_MONITORS_CONFIG,
        VD_AGENT_CAP_REPLY,
        VD_AGENT_CAP_DISPLAY_CONFIG,
        /* the features vdp-caps.h lists */
        VD_AGENT_CAP_CLIPBOARD_BY_DEMAND,
        VD_AGENT_CAP_CLIPBOARD_SELECTION,
        VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL,
        VD_AGENT_CAP_CLIPBOARD_NO_RELEASE_ON_REGRAB,
        VD_AGENT_CAP_SPARSE_MONITORS_CONFIG,
        VD_AGENT_CAP_MONITORS_CONFIG_POSITION,
        VD_AGENT_CAP_MAX_CLIPBOARD,
        VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS,
        VD_AGENT_CAP_AUDIO_VOLUME_SYNC,
        VD_AGENT_CAP_GRAPHICS_DEVICE_INFO,
    };
    caps_init_bits(caps, bits, sizeof(bits) / sizeof(bits[0]));
}

const char *vdp_cap_name(unsigned bit)
{
    return bit < VD_AGENT_END_CAP ? cap_names[bit] : NULL;
}

/* Appends one item to buf with snprintf semantics; *len counts the full
 * text whether it fits or not. */
static void format_item(char *buf, size_t size, size_t *len, unsigned bit)
{
    char *dst = *len < size ? buf + *len : NULL;
    size_t room = *len < size ? size - *len : 0;
    const char *sep = *len ? "," : "";
    const char *name = vdp_cap_name(bit);
    int n = name ? snprintf(dst, room, "%s%s", sep, name)
                 : snprintf(dst, room, "%sbit%u", sep, bit);
    if (n > 0)
        *len += (size_t)n;
}

size_t vdp_caps_format(const VdpCaps *caps, char *buf, size_t size)
{
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    for (unsigned bit = 0; bit < 32u * caps_words(caps); bit++) {
        if (vdp_caps_has(caps, bit))
            format_item(buf, size, &len, bit);
    }
    return len;
}
