/* va-display-drm.c - device address -> DRM connector -> RandR output name,
 * through sysfs. See va-display-drm.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "va-display-drm.h"

static bool parse_hex(const char **p, unsigned max_digits, uint32_t *out)
{
    uint32_t v = 0;
    unsigned n = 0;
    while (isxdigit((unsigned char)**p) && n < max_digits) {
        v = v * 16 + (uint32_t)g_ascii_xdigit_value(**p);
        (*p)++;
        n++;
    }
    if (n == 0 || isxdigit((unsigned char)**p))
        return false;
    *out = v;
    return true;
}

bool va_drm_parse_address(const char *s, VaPciAddress *a)
{
    memset(a, 0, sizeof *a);
    if (!s || strncmp(s, "pci/", 4) != 0)
        return false;
    const char *p = s + 4;
    if (!parse_hex(&p, 4, &a->domain))
        return false;
    while (*p == '/') {
        p++;
        uint32_t slot, fn;
        if (a->nhops >= VA_DRM_MAX_HOPS || !parse_hex(&p, 2, &slot) || *p != '.')
            return false;
        p++;
        if (!parse_hex(&p, 1, &fn) || slot > 0x1f || fn > 7)
            return false;
        a->hops[a->nhops].slot = (uint8_t)slot;
        a->hops[a->nhops].fn = (uint8_t)fn;
        a->nhops++;
    }
    return *p == '\0' && a->nhops > 0;
}

/* The PCI path of a sysfs device path: "pciDDDD:BB" gives the domain, each
 * "DDDD:BB:SS.F" a hop. */
static bool address_of_path(const char *path, VaPciAddress *a)
{
    memset(a, 0, sizeof *a);
    bool have_domain = false;
    gchar **parts = g_strsplit(path, "/", -1);
    for (gchar **c = parts; *c; c++) {
        unsigned dom, bus, slot, fn;
        char tail;
        if (!have_domain && sscanf(*c, "pci%4x:%2x%c", &dom, &bus, &tail) == 2) {
            a->domain = dom;
            have_domain = true;
        } else if (have_domain &&
                   sscanf(*c, "%4x:%2x:%2x.%1x%c", &dom, &bus, &slot, &fn, &tail) == 4) {
            if (a->nhops >= VA_DRM_MAX_HOPS) {
                g_strfreev(parts);
                return false;
            }
            a->hops[a->nhops].slot = (uint8_t)slot;
            a->hops[a->nhops].fn = (uint8_t)fn;
            a->nhops++;
        }
    }
    g_strfreev(parts);
    return have_domain && a->nhops > 0;
}

static bool same_address(const VaPciAddress *x, const VaPciAddress *y)
{
    if (x->domain != y->domain || x->nhops != y->nhops)
        return false;
    for (unsigned i = 0; i < x->nhops; i++)
        if (x->hops[i].slot != y->hops[i].slot || x->hops[i].fn != y->hops[i].fn)
            return false;
    return true;
}

static bool is_card_name(const char *n)
{
    if (strncmp(n, "card", 4) != 0 || !n[4])
        return false;
    for (const char *p = n + 4; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

typedef struct Conn {
    char *name;                 /* after "cardN-" */
    long id;                    /* connector_id, or -1 */
} Conn;

/* Natural order of "TYPE-N" names: type, then the number. */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            unsigned long na = strtoul(a, &ea, 10), nb = strtoul(b, &eb, 10);
            if (na != nb)
                return na < nb ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static gint conn_cmp(gconstpointer pa, gconstpointer pb)
{
    const Conn *a = pa, *b = pb;
    if (a->id >= 0 && b->id >= 0 && a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return natural_cmp(a->name, b->name);
}

static long read_connector_id(const char *dir)
{
    char *f = g_build_filename(dir, "connector_id", NULL);
    char *text = NULL;
    long id = -1;
    if (g_file_get_contents(f, &text, NULL, NULL)) {
        char *end;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno == 0 && end != text && v >= 0)
            id = v;
        g_free(text);
    }
    g_free(f);
    return id;
}

bool va_drm_find_connector(const char *sysfs_root, const VaPciAddress *want, uint32_t index,
                           char *out, size_t cap)
{
    char *drm = g_build_filename(sysfs_root, "class", "drm", NULL);
    GDir *dir = g_dir_open(drm, 0, NULL);
    if (!dir) {
        g_free(drm);
        return false;
    }
    /* Find the card. */
    char card[32] = "";
    unsigned ncards = 0;
    const char *n;
    while ((n = g_dir_read_name(dir)) && ncards < VA_DRM_MAX_CARDS) {
        if (!is_card_name(n) || strlen(n) >= sizeof card)
            continue;
        ncards++;
        char *link = g_build_filename(drm, n, NULL);
        char *real = realpath(link, NULL);
        VaPciAddress a;
        if (real && address_of_path(real, &a) && same_address(&a, want))
            g_strlcpy(card, n, sizeof card);
        free(real);
        g_free(link);
        if (card[0])
            break;
    }
    bool found = false;
    if (card[0]) {
        g_dir_rewind(dir);
        GArray *conns = g_array_new(FALSE, FALSE, sizeof(Conn));
        size_t plen = strlen(card);
        while ((n = g_dir_read_name(dir)) && conns->len < VA_DRM_MAX_CONNECTORS) {
            if (strncmp(n, card, plen) != 0 || n[plen] != '-' || !n[plen + 1])
                continue;
            char *cdir = g_build_filename(drm, n, NULL);
            Conn c = {g_strdup(n + plen + 1), read_connector_id(cdir)};
            g_free(cdir);
            g_array_append_val(conns, c);
        }
        g_array_sort(conns, conn_cmp);
        if (index < conns->len) {
            g_strlcpy(out, g_array_index(conns, Conn, index).name, cap);
            found = true;
        }
        for (guint i = 0; i < conns->len; i++)
            g_free(g_array_index(conns, Conn, i).name);
        g_array_free(conns, TRUE);
    }
    g_dir_close(dir);
    g_free(drm);
    return found;
}

/* Kernel connector type names (drm_connector_enum_list) and what the
 * modesetting driver and xf86-video-qxl call them. */
static const struct {
    const char *kernel, *modesetting, *qxl;
} type_names[] = {
    {"Unknown", "None", "Unknown"},
    {"VGA", "VGA", "VGA"},
    {"DVI-I", "DVI-I", "DVI"},
    {"DVI-D", "DVI-D", "DVI"},
    {"DVI-A", "DVI-A", "DVI"},
    {"Composite", "Composite", "Composite"},
    {"SVIDEO", "SVIDEO", "S-video"},
    {"LVDS", "LVDS", "LVDS"},
    {"Component", "Component", "CTV"},
    {"DIN", "DIN", "DIN"},
    {"DP", "DP", "DisplayPort"},
    {"HDMI-A", "HDMI", "HDMI"},
    {"HDMI-B", "HDMI-B", "HDMI"},
    {"TV", "TV", "TV"},
    {"eDP", "eDP", "eDP"},
    {"Virtual", "Virtual", "Virtual"},
    {"DSI", "DSI", "DSI"},
    {"DPI", "DPI", "DPI"},
};

static unsigned add_name(char names[][VA_DISP_NAME_MAX], unsigned n, unsigned max,
                         const char *type, const char *num)
{
    if (n >= max)
        return n;
    char buf[VA_DISP_NAME_MAX];
    snprintf(buf, sizeof buf, "%s-%s", type, num);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(names[i], buf) == 0)
            return n;
    memcpy(names[n], buf, sizeof buf);
    return n + 1;
}

unsigned va_drm_randr_names(const char *connector, char names[][VA_DISP_NAME_MAX], unsigned max)
{
    const char *dash = strrchr(connector, '-');
    if (!dash || dash == connector || !dash[1])
        return 0;
    for (const char *p = dash + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    char type[VA_DISP_NAME_MAX];
    size_t tlen = (size_t)(dash - connector);
    if (tlen >= sizeof type)
        return 0;
    memcpy(type, connector, tlen);
    type[tlen] = '\0';
    unsigned n = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(type_names); i++) {
        if (strcmp(type_names[i].kernel, type) == 0) {
            n = add_name(names, n, max, type_names[i].modesetting, dash + 1);
            n = add_name(names, n, max, type_names[i].qxl, dash + 1);
        }
    }
    return add_name(names, n, max, type, dash + 1);
}

static int output_by_name(const VaDispState *st, const char *name)
{
    for (unsigned i = 0; i < st->n_outputs && i < VA_DISP_MAX_OUTPUTS; i++)
        if (strcmp(st->outputs[i].name, name) == 0)
            return (int)i;
    return -1;
}

int va_drm_pick_output(const VaDispState *st, const char names[][VA_DISP_NAME_MAX], unsigned n)
{
    bool zero_based = output_by_name(st, "Virtual-0") >= 0;
    for (unsigned k = 0; k < n; k++) {
        const char *name = names[k];
        char adj[VA_DISP_NAME_MAX];
        unsigned long num;
        char tail;
        if (zero_based && sscanf(name, "Virtual-%lu%c", &num, &tail) == 1 && num > 0) {
            snprintf(adj, sizeof adj, "Virtual-%lu", num - 1);
            name = adj;
        }
        int i = output_by_name(st, name);
        if (i >= 0)
            return i;
    }
    return -1;
}
