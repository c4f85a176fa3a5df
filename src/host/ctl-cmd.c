/* ctl-cmd.c - vdagentctl's commands: parsing words into a validated
 * request, and running requests asynchronously on a session (one VdhHost).
 *
 * The same code serves one-shot invocations and a serve's control clients:
 * a command waits for a ready guest (within its timeout), takes its "lane"
 * if it has one (operations the library runs one at a time: monitor
 * configs, clipboard fetches per selection, file batches), runs, and
 * reports a CtlResult through its done callback, exactly once and never
 * from inside ctl_cmd_run().
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "ctl.h"

G_DEFINE_QUARK(vdagentctl-error-quark, ctl_error)

/* How often a held clipboard offer checks whether the guest fetched it. */
#define SERVED_POLL_MS 20u

/* Bounds of values a user types. Generous, but every one is checked. */
#define MAX_SCREEN_SIZE 32767u          /* pixels per monitor side */
#define MAX_SCREEN_POS 65535            /* |x|, |y| of a monitor */
#define MAX_POINTER_COORD 1048575u      /* mouse x, y */
#define MAX_SCROLL_COUNT 100u
#define DEFAULT_DEPTH 32u

int ctl_exit_for_error(const GError *error)
{
    if (!error)
        return CTL_EXIT_IO;
    if (error->domain == CTL_ERROR)
        return error->code;
    if (error->domain == VDH_ERROR) {
        switch ((VdhError)error->code) {
        case VDH_ERROR_NOT_CONNECTED:
            return CTL_EXIT_NO_GUEST;
        case VDH_ERROR_CAPABILITY:
            return CTL_EXIT_CAPABILITY;
        case VDH_ERROR_TIMEOUT:
            return CTL_EXIT_TIMEOUT;
        case VDH_ERROR_REFUSED:
            return CTL_EXIT_REFUSED;
        case VDH_ERROR_INVALID:
            return CTL_EXIT_USAGE;
        case VDH_ERROR_CANCELLED:
            return CTL_EXIT_INTERRUPTED;
        case VDH_ERROR_BUSY:
        case VDH_ERROR_PROTOCOL:
        case VDH_ERROR_IO:
            return CTL_EXIT_IO;
        }
        return CTL_EXIT_IO;
    }
    if (error->domain == G_IO_ERROR) {
        if (error->code == G_IO_ERROR_CANCELLED)
            return CTL_EXIT_INTERRUPTED;
        if (error->code == G_IO_ERROR_TIMED_OUT)
            return CTL_EXIT_TIMEOUT;
        return CTL_EXIT_IO;
    }
    if (error->domain == G_OPTION_ERROR)
        return CTL_EXIT_USAGE;
    return CTL_EXIT_IO;
}

char *ctl_control_path_for(const char *port)
{
    return g_strconcat(port, ".ctl", NULL);
}

/* ---- parsing helpers ---- */

static bool usage(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static bool usage(GError **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, CTL_ERROR, CTL_EXIT_USAGE, msg);
    g_free(msg);
    return false;
}

/* A user's word, made safe to show: escaped and shortened. */
static char *shown(const char *s)
{
    char *cut = g_utf8_validate(s, -1, NULL) ? g_utf8_substring(s, 0, MIN(g_utf8_strlen(s, -1), 60))
                                             : g_strndup(s, 60);
    char *esc = g_strescape(cut, NULL);
    g_free(cut);
    return esc;
}

static bool parse_unsigned(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                           GError **error)
{
    guint64 v;
    if (!s || !g_ascii_isdigit(s[0]) || !g_ascii_string_to_unsigned(s, 10, min, max, &v, NULL)) {
        g_autofree char *q = shown(s ? s : "");
        return usage(error, "%s must be a whole number from %" PRIu64 " to %" PRIu64 ", not \"%s\"",
                     what, min, max, q);
    }
    *out = v;
    return true;
}

/* Per-command option parsing: entries (may be NULL) plus the positional
 * words, which go to *pos. "--" ends the options. */
static bool parse_words(const char *params, const char *summary, const GOptionEntry *entries,
                        char **words, bool allow_help, char ***pos, GError **error)
{
    char **remaining = NULL;
    GOptionEntry rest[] = {
        {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &remaining, NULL, NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *ctx = g_option_context_new(params);
    g_option_context_set_help_enabled(ctx, allow_help);
    if (summary)
        g_option_context_set_summary(ctx, summary);
    if (entries)
        g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_add_main_entries(ctx, rest, NULL);

    /* argv[0] for GOption, then the words. */
    guint n = words ? g_strv_length(words) : 0;
    char **argv = g_new0(char *, n + 2);
    argv[0] = g_strdup("vdagentctl");
    for (guint i = 0; i < n; i++)
        argv[i + 1] = g_strdup(words[i]);
    GError *local = NULL;
    bool ok = g_option_context_parse_strv(ctx, &argv, &local);
    g_strfreev(argv);
    g_option_context_free(ctx);
    if (!ok) {
        usage(error, "%s: %s", params, local->message);
        g_error_free(local);
        g_strfreev(remaining);
        return false;
    }
    *pos = remaining ? remaining : g_new0(char *, 1);
    return true;
}

static bool no_positional(const char *cmd, char **pos, GError **error)
{
    if (pos[0]) {
        g_autofree char *q = shown(pos[0]);
        return usage(error, "%s takes no argument (got \"%s\")", cmd, q);
    }
    return true;
}

/* "--at X Y" takes two values, which GOption cannot; it is taken out of
 * the words first. Stops at "--". */
static bool take_at(char **words, bool *has, uint32_t *x, uint32_t *y, GError **error)
{
    for (guint i = 0; words[i]; i++) {
        if (strcmp(words[i], "--") == 0)
            break;
        if (strcmp(words[i], "--at") != 0)
            continue;
        if (*has)
            return usage(error, "--at given twice");
        if (!words[i + 1] || !words[i + 2])
            return usage(error, "--at needs two numbers: --at X Y");
        uint64_t vx, vy;
        if (!parse_unsigned("--at X", words[i + 1], 0, MAX_POINTER_COORD, &vx, error) ||
            !parse_unsigned("--at Y", words[i + 2], 0, MAX_POINTER_COORD, &vy, error))
            return false;
        *x = (uint32_t)vx;
        *y = (uint32_t)vy;
        *has = true;
        g_free(words[i]);
        g_free(words[i + 1]);
        g_free(words[i + 2]);
        memmove(&words[i], &words[i + 3], (g_strv_length(words + i + 3) + 1) * sizeof(char *));
        i--;   /* look at what moved into place i */
    }
    return true;
}

static bool parse_display(const char *s, uint8_t *out, GError **error)
{
    if (!s) {
        *out = 0;
        return true;
    }
    uint64_t v;
    if (!parse_unsigned("--display", s, 0, 255, &v, error))
        return false;
    *out = (uint8_t)v;
    return true;
}

typedef struct NamedBit {
    const char *name;
    uint32_t value;
} NamedBit;

static const NamedBit button_names[] = {
    {"left", VD_AGENT_LBUTTON_MASK},
    {"middle", VD_AGENT_MBUTTON_MASK},
    {"right", VD_AGENT_RBUTTON_MASK},
    {"up", VD_AGENT_UBUTTON_MASK},
    {"down", VD_AGENT_DBUTTON_MASK},
    {"side", VD_AGENT_SBUTTON_MASK},
    {"extra", VD_AGENT_EBUTTON_MASK},
};

static const NamedBit *find_button(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(button_names); i++)
        if (strcmp(button_names[i].name, name) == 0)
            return &button_names[i];
    return NULL;
}

static bool parse_buttons(const char *list, uint32_t *mask, GError **error)
{
    *mask = 0;
    if (!list || !list[0] || strcmp(list, "none") == 0)
        return true;
    char **names = g_strsplit(list, ",", -1);
    bool ok = true;
    for (char **n = names; ok && *n; n++) {
        const NamedBit *b = find_button(*n);
        if (!b) {
            g_autofree char *q = shown(*n);
            ok = usage(error, "--buttons: unknown button \"%s\" (left, middle, right, up, down, side, extra)", q);
        } else {
            *mask |= b->value;
        }
    }
    g_strfreev(names);
    return ok;
}

static bool parse_selection(const char *s, uint8_t *out, GError **error)
{
    if (!s || strcmp(s, "clipboard") == 0) {
        *out = VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD;
        return true;
    }
    if (strcmp(s, "primary") == 0) {
        *out = VD_AGENT_CLIPBOARD_SELECTION_PRIMARY;
        return true;
    }
    g_autofree char *q = shown(s);
    return usage(error, "--selection must be clipboard or primary, not \"%s\"", q);
}

static const NamedBit clip_types[] = {
    {"text", VD_AGENT_CLIPBOARD_UTF8_TEXT},
    {"png", VD_AGENT_CLIPBOARD_IMAGE_PNG},
    {"bmp", VD_AGENT_CLIPBOARD_IMAGE_BMP},
    {"tiff", VD_AGENT_CLIPBOARD_IMAGE_TIFF},
    {"jpeg", VD_AGENT_CLIPBOARD_IMAGE_JPG},
};

const char *ctl_clipboard_type_word(uint32_t type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(clip_types); i++)
        if (clip_types[i].value == type)
            return clip_types[i].name;
    return NULL;
}

const char *ctl_selection_name(uint8_t selection)
{
    const char *n = vdp_selection_name(selection);
    return n ? n : "unknown";
}

static bool parse_clip_type(const char *s, bool required, uint32_t *out, GError **error)
{
    if (!s) {
        *out = required ? VD_AGENT_CLIPBOARD_UTF8_TEXT : 0;
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(clip_types); i++) {
        if (strcmp(clip_types[i].name, s) == 0) {
            *out = clip_types[i].value;
            return true;
        }
    }
    if (strcmp(s, "jpg") == 0) {
        *out = VD_AGENT_CLIPBOARD_IMAGE_JPG;
        return true;
    }
    g_autofree char *q = shown(s);
    return usage(error, "--type must be text, png, bmp, tiff or jpeg, not \"%s\"", q);
}

/* ---- monitors: WxH[+X+Y][@MMWxMMH] or "off" ---- */

/* Digits at *p as a number <= max; advances *p. */
static bool take_number(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (!g_ascii_isdigit(*s))
        return false;
    while (g_ascii_isdigit(*s)) {
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > max)
            return false;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

static bool take_signed(const char **p, int64_t max, int64_t *out)
{
    char sign = **p;
    if (sign != '+' && sign != '-')
        return false;
    (*p)++;
    uint64_t v;
    if (!take_number(p, (uint64_t)max, &v))
        return false;
    *out = sign == '-' ? -(int64_t)v : (int64_t)v;
    return true;
}

typedef struct Geom {
    bool off, has_pos, has_mm;
    uint32_t w, h;
    int32_t x, y;
    uint16_t mmw, mmh;
} Geom;

static bool parse_geom(const char *s, Geom *g, GError **error)
{
    memset(g, 0, sizeof(*g));
    if (strcmp(s, "off") == 0) {
        g->off = true;
        return true;
    }
    const char *p = s;
    uint64_t w = 0, h = 0, mw = 0, mh = 0;
    int64_t x = 0, y = 0;
    bool ok = take_number(&p, MAX_SCREEN_SIZE, &w) && *p++ == 'x' && take_number(&p, MAX_SCREEN_SIZE, &h);
    if (ok && (*p == '+' || *p == '-')) {
        ok = take_signed(&p, MAX_SCREEN_POS, &x) && take_signed(&p, MAX_SCREEN_POS, &y);
        g->has_pos = true;
        g->x = (int32_t)x;
        g->y = (int32_t)y;
    }
    if (ok && *p == '@') {
        p++;
        ok = take_number(&p, 65535, &mw) && *p++ == 'x' && take_number(&p, 65535, &mh);
        g->has_mm = true;
        g->mmw = (uint16_t)mw;
        g->mmh = (uint16_t)mh;
        ok = ok && mw > 0 && mh > 0;
    }
    ok = ok && *p == '\0' && w > 0 && h > 0;
    if (!ok) {
        g_autofree char *q = shown(s);
        return usage(error,
                     "monitors: \"%s\" is not WxH[+X+Y][@MMWxMMH] (sizes 1..%u, positions up to "
                     "+-%d, millimetres 1..65535) or off",
                     q, MAX_SCREEN_SIZE, MAX_SCREEN_POS);
    }
    g->w = (uint32_t)w;
    g->h = (uint32_t)h;
    return true;
}

static bool build_monitors(char **pos, VdpMonitorsConfig **out, GError **error)
{
    guint n = g_strv_length(pos);
    if (n == 0)
        return usage(error, "monitors needs at least one geometry: monitors 1920x1080 [1280x1024+1920+0 ...]");
    if (n > VDP_MAX_MONITORS)
        return usage(error, "monitors: %u monitors given, at most %u", n, VDP_MAX_MONITORS);
    VdpMonitorsConfig *mc = g_new0(VdpMonitorsConfig, 1);
    bool any_pos = false, any_mm = false, any_on = false;
    int64_t next_x = 0, next_y = 0;
    for (guint i = 0; i < n; i++) {
        Geom g;
        if (!parse_geom(pos[i], &g, error)) {
            g_free(mc);
            return false;
        }
        VdpMonConfig *m = &mc->monitors[i];
        if (g.off) {
            /* A disabled entry: zero size (needs sparse-monitors-config). */
            continue;
        }
        any_on = true;
        m->width = g.w;
        m->height = g.h;
        m->depth = DEFAULT_DEPTH;
        if (g.has_pos) {
            any_pos = true;
            m->x = g.x;
            m->y = g.y;
        } else {
            /* Side by side, right of the previous monitor. */
            if (next_x > MAX_SCREEN_POS) {
                g_free(mc);
                return usage(error, "monitors: the monitors do not fit side by side; give positions (+X+Y)");
            }
            m->x = (int32_t)next_x;
            m->y = (int32_t)next_y;
        }
        next_x = (int64_t)m->x + m->width;
        next_y = m->y;
        if (g.has_mm) {
            any_mm = true;
            m->mm_width = g.mmw;
            m->mm_height = g.mmh;
        }
    }
    if (!any_on) {
        g_free(mc);
        return usage(error, "monitors: at least one monitor must be enabled");
    }
    mc->count = n;
    mc->flags = (any_pos ? VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS : 0u) |
                (any_mm ? VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE : 0u);
    *out = mc;
    return true;
}

/* ---- device-info: CHANNEL:MONITOR:DISPLAY_ID:ADDRESS ---- */

static bool build_devinfo(CtlRequest *req, char **pos, GError **error)
{
    guint n = g_strv_length(pos);
    if (n == 0)
        return usage(error, "device-info needs at least one CHANNEL:MONITOR:DISPLAY_ID:ADDRESS");
    if (n > VDP_MAX_DEVICE_DISPLAYS)
        return usage(error, "device-info: %u entries given, at most %u", n, VDP_MAX_DEVICE_DISPLAYS);
    req->devinfo = g_new0(VdpGraphicsDeviceInfo, 1);
    req->addresses = g_new0(char *, n + 1);
    for (guint i = 0; i < n; i++) {
        /* The address is everything after the third colon (it may hold
         * colons itself). */
        char **f = g_strsplit(pos[i], ":", 4);
        g_autofree char *q = shown(pos[i]);
        bool ok = g_strv_length(f) == 4;
        uint64_t ch = 0, mon = 0, did = 0;
        if (!ok) {
            usage(error, "device-info: \"%s\" is not CHANNEL:MONITOR:DISPLAY_ID:ADDRESS", q);
        } else {
            ok = parse_unsigned("device-info CHANNEL", f[0], 0, 255, &ch, error) &&
                 parse_unsigned("device-info MONITOR", f[1], 0, VDP_MAX_MONITORS - 1, &mon, error) &&
                 parse_unsigned("device-info DISPLAY_ID", f[2], 0, G_MAXUINT32, &did, error);
        }
        size_t alen = ok ? strlen(f[3]) : 0;
        if (ok && (alen == 0 || alen >= VDP_MAX_DEVICE_ADDRESS)) {
            ok = usage(error, "device-info: the address in \"%s\" must have 1 to %u characters", q,
                       VDP_MAX_DEVICE_ADDRESS - 1u);
        }
        for (size_t k = 0; ok && k < alen; k++) {
            if (!g_ascii_isgraph(f[3][k]))
                ok = usage(error, "device-info: the address in \"%s\" must be printable ASCII without spaces", q);
        }
        if (!ok) {
            g_strfreev(f);
            return false;
        }
        req->addresses[i] = g_strdup(f[3]);
        VdpDeviceDisplayInfo *e = &req->devinfo->info[i];
        e->channel_id = (uint32_t)ch;
        e->monitor_id = (uint32_t)mon;
        e->device_display_id = (uint32_t)did;
        e->device_address = req->addresses[i];
        e->device_address_len = (uint32_t)alen + 1u;
        g_strfreev(f);
    }
    req->devinfo->count = n;
    return true;
}

/* ---- files ---- */

static bool build_paths(CtlRequest *req, char **pos, GError **error)
{
    guint n = g_strv_length(pos);
    if (n == 0)
        return usage(error, "send-file needs at least one FILE");
    if (n > CTL_MAX_ARGS)
        return usage(error, "send-file: %u files given, at most %u in one batch", n, CTL_MAX_ARGS);
    req->paths = g_new0(char *, n + 1);
    g_autofree char *cwd = NULL;
    for (guint i = 0; i < n; i++) {
        if (!pos[i][0])
            return usage(error, "send-file: an empty file name");
        if (g_path_is_absolute(pos[i])) {
            req->paths[i] = g_strdup(pos[i]);
        } else {
            if (!cwd)
                cwd = g_get_current_dir();
            req->paths[i] = g_build_filename(cwd, pos[i], NULL);
        }
        GStatBuf st;
        g_autofree char *q = shown(pos[i]);
        if (g_stat(req->paths[i], &st) != 0)
            return usage(error, "send-file: %s: %s", q, g_strerror(errno));
        if (!S_ISREG(st.st_mode))
            return usage(error, "send-file: %s is not a regular file", q);
        if (g_access(req->paths[i], R_OK) != 0)
            return usage(error, "send-file: %s: %s", q, g_strerror(errno));
    }
    return true;
}

/* ---- commands ---- */

static const char commands_help[] =
    "Commands:\n"
    "  status                        guest connected?, its capabilities, the port\n"
    "  monitors GEOM...              GEOM = WxH[+X+Y][@MMWxMMH] or off\n"
    "  mouse move X Y [--display N] [--buttons LIST]\n"
    "  mouse click BUTTON [--at X Y] [--display N]   left|middle|right|side|extra\n"
    "  mouse scroll up|down [COUNT] [--at X Y] [--display N]\n"
    "  clipboard set [--selection clipboard|primary] [--type text|png|bmp|tiff|jpeg] [--wait-served]\n"
    "                                offer stdin to the guest\n"
    "  clipboard get [--selection ...] [--type ...]  the guest's data to stdout\n"
    "  send-file FILE...             one batch, progress bar on a terminal\n"
    "  watch                         print every guest message until interrupted\n"
    "  volume playback|record [--mute] LEVEL...      0..65535 per channel\n"
    "  display-config [--disable-wallpaper] [--disable-font-smooth] [--disable-animation] [--depth N]\n"
    "  device-info CHANNEL:MONITOR:DISPLAY_ID:ADDRESS...\n"
    "  disconnect                    send CLIENT_DISCONNECTED\n"
    "  serve [--control PATH]        keep the port open, take commands on PATH (default PORT.ctl)\n"
    "\n"
    "`vdagentctl COMMAND --help` describes a command's options.\n"
    "\n"
    "Exit status: 0 ok, 1 usage or invalid arguments, 2 no guest agent connected within\n"
    "the timeout, 3 capability missing, 4 timeout, 5 refused by the guest, 6 I/O or\n"
    "protocol error, 130 interrupted.\n";

const char *ctl_commands_help(void)
{
    return commands_help;
}

static bool parse_status_like(CtlRequest *req, const char *name, char **words, bool allow_help, GError **error)
{
    char **pos = NULL;
    bool ok = parse_words(name, NULL, NULL, words, allow_help, &pos, error) && no_positional(name, pos, error);
    g_strfreev(pos);
    return ok;
}

static bool parse_monitors(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    char **pos = NULL;
    bool ok = parse_words("monitors GEOM...",
                          "Send a monitor configuration and print the guest's REPLY.\n"
                          "GEOM is WxH[+X+Y][@MMWxMMH] (size, position, physical size in mm) or\n"
                          "\"off\" (a disabled monitor, needs sparse-monitors-config). Monitors\n"
                          "without a position are placed right of the previous one.",
                          NULL, words, allow_help, &pos, error) &&
              build_monitors(pos, &req->monitors, error);
    g_strfreev(pos);
    return ok;
}

static bool parse_mouse(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    const char *sub = words[0];
    if (!sub || (allow_help && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0))) {
        if (sub) {
            fputs("Usage:\n  vdagentctl mouse move X Y [--display N] [--buttons LIST]\n"
                  "  vdagentctl mouse click BUTTON [--at X Y] [--display N]\n"
                  "  vdagentctl mouse scroll up|down [COUNT] [--at X Y] [--display N]\n",
                  stdout);
            exit(0);
        }
        return usage(error, "mouse needs move, click or scroll");
    }
    char *display = NULL, *buttons = NULL;
    gboolean at_help = FALSE;   /* "--at X Y" is taken out before GOption runs; listed for --help */
    GOptionEntry e_move[] = {
        {"display", 0, 0, G_OPTION_ARG_FILENAME, &display, "display (monitor) 0..255 (default 0)", "N"},
        {"buttons", 0, 0, G_OPTION_ARG_FILENAME, &buttons,
         "buttons held, comma-separated: left,middle,right,up,down,side,extra", "LIST"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionEntry e_click[] = {
        {"display", 0, 0, G_OPTION_ARG_FILENAME, &display,
         "display (monitor) 0..255 (default: with --at 0, else the display of the remembered position)", "N"},
        {"at", 0, 0, G_OPTION_ARG_NONE, &at_help,
         "--at X Y: where (default: the last position set through this serve, else 0 0)", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    char **rest = g_strdupv(words + 1);
    char **pos = NULL;
    bool ok;
    if (strcmp(sub, "move") == 0) {
        req->id = CTL_CMD_MOUSE_MOVE;
        ok = parse_words("mouse move X Y", "Move the pointer (absolute coordinates).", e_move, rest, allow_help,
                         &pos, error);
        uint64_t x = 0, y = 0;
        if (ok && g_strv_length(pos) != 2)
            ok = usage(error, "mouse move needs X and Y");
        ok = ok && parse_unsigned("mouse move X", pos[0], 0, MAX_POINTER_COORD, &x, error) &&
             parse_unsigned("mouse move Y", pos[1], 0, MAX_POINTER_COORD, &y, error) &&
             parse_buttons(buttons, &req->buttons, error);
        req->x = (uint32_t)x;
        req->y = (uint32_t)y;
        req->has_pos = true;
    } else if (strcmp(sub, "click") == 0 || strcmp(sub, "scroll") == 0) {
        bool click = sub[0] == 'c';
        req->id = click ? CTL_CMD_MOUSE_CLICK : CTL_CMD_MOUSE_SCROLL;
        ok = take_at(rest, &req->has_pos, &req->x, &req->y, error) &&
             parse_words(click ? "mouse click BUTTON" : "mouse scroll up|down [COUNT]",
                         click ? "Press and release a button." : "Turn the wheel COUNT notches (default 1).",
                         e_click, rest, allow_help, &pos, error);
        guint n = ok ? g_strv_length(pos) : 0;
        if (ok && click) {
            const NamedBit *b = n == 1 ? find_button(pos[0]) : NULL;
            if (n != 1 || !b || b->value == VD_AGENT_UBUTTON_MASK || b->value == VD_AGENT_DBUTTON_MASK) {
                ok = usage(error, "mouse click needs one BUTTON: left, middle, right, side or extra");
            } else {
                req->button_mask = b->value;
                req->button_name = b->name;
            }
        } else if (ok) {
            if (n < 1 || n > 2 || (strcmp(pos[0], "up") != 0 && strcmp(pos[0], "down") != 0)) {
                ok = usage(error, "mouse scroll needs up or down, then an optional COUNT");
            } else {
                const NamedBit *b = find_button(pos[0]);
                req->button_mask = b->value;
                req->button_name = b->name;
                uint64_t c = 1;
                if (n == 2)
                    ok = parse_unsigned("mouse scroll COUNT", pos[1], 1, MAX_SCROLL_COUNT, &c, error);
                req->count = (unsigned)c;
            }
        }
    } else {
        g_autofree char *q = shown(sub);
        ok = usage(error, "mouse: unknown action \"%s\" (move, click or scroll)", q);
    }
    ok = ok && parse_display(display, &req->display, error);
    req->has_display = display != NULL;
    g_strfreev(rest);
    g_strfreev(pos);
    g_free(display);
    g_free(buttons);
    return ok;
}

static bool parse_clipboard(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    const char *sub = words[0];
    if (!sub || (allow_help && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0))) {
        if (sub) {
            fputs("Usage:\n  vdagentctl clipboard set [--selection clipboard|primary] "
                  "[--type text|png|bmp|tiff|jpeg] [--wait-served] < DATA\n"
                  "  vdagentctl clipboard get [--selection clipboard|primary] [--type ...] > DATA\n",
                  stdout);
            exit(0);
        }
        return usage(error, "clipboard needs set or get");
    }
    char *sel = NULL, *type = NULL;
    gboolean wait = FALSE;
    GOptionEntry e_set[] = {
        {"selection", 0, 0, G_OPTION_ARG_FILENAME, &sel, "clipboard (default) or primary", "SEL"},
        {"type", 0, 0, G_OPTION_ARG_FILENAME, &type, "text (default), png, bmp, tiff or jpeg", "TYPE"},
        {"wait-served", 0, 0, G_OPTION_ARG_NONE, &wait,
         "fail unless the guest fetches the data within the timeout", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionEntry e_get[] = {
        {"selection", 0, 0, G_OPTION_ARG_FILENAME, &sel, "clipboard (default) or primary", "SEL"},
        {"type", 0, 0, G_OPTION_ARG_FILENAME, &type,
         "text, png, bmp, tiff or jpeg (default: the first type the guest offers)", "TYPE"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    char **rest = g_strdupv(words + 1);
    char **pos = NULL;
    bool ok;
    if (strcmp(sub, "set") == 0) {
        req->id = CTL_CMD_CLIPBOARD_SET;
        ok = parse_words("clipboard set",
                         "Offer stdin to the guest as clipboard data. Without a running serve the\n"
                         "offer is held until the guest fetched it once or the timeout passes.",
                         e_set, rest, allow_help, &pos, error) &&
             no_positional("clipboard set", pos, error) && parse_clip_type(type, true, &req->clip_type, error);
    } else if (strcmp(sub, "get") == 0) {
        req->id = CTL_CMD_CLIPBOARD_GET;
        ok = parse_words("clipboard get",
                         "Write the guest's clipboard data to stdout (waits within the timeout\n"
                         "for the guest to offer some).",
                         e_get, rest, allow_help, &pos, error) &&
             no_positional("clipboard get", pos, error) && parse_clip_type(type, false, &req->clip_type, error);
    } else {
        g_autofree char *q = shown(sub);
        ok = usage(error, "clipboard: unknown action \"%s\" (set or get)", q);
    }
    ok = ok && parse_selection(sel, &req->selection, error);
    req->wait_served = wait;
    g_strfreev(rest);
    g_strfreev(pos);
    g_free(sel);
    g_free(type);
    return ok;
}

static bool parse_send_file(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    char **pos = NULL;
    bool ok = parse_words("send-file FILE...",
                          "Send files to the guest as one batch. A progress bar is shown on\n"
                          "stderr when it is a terminal.",
                          NULL, words, allow_help, &pos, error) &&
              build_paths(req, pos, error);
    g_strfreev(pos);
    return ok;
}

static bool parse_volume(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    gboolean mute = FALSE;
    GOptionEntry e[] = {
        {"mute", 0, 0, G_OPTION_ARG_NONE, &mute, "muted", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    char **pos = NULL;
    bool ok = parse_words("volume playback|record LEVEL...",
                          "Send AUDIO_VOLUME_SYNC: one LEVEL (0..65535) per channel.", e, words, allow_help,
                          &pos, error);
    guint n = ok ? g_strv_length(pos) : 0;
    if (ok && (n < 1 || (strcmp(pos[0], "playback") != 0 && strcmp(pos[0], "record") != 0)))
        ok = usage(error, "volume needs playback or record, then one LEVEL per channel");
    if (ok && n < 2)
        ok = usage(error, "volume needs at least one LEVEL (0..65535)");
    if (ok && n - 1 > VDP_MAX_AUDIO_CHANNELS)
        ok = usage(error, "volume: %u channels given, at most %u", n - 1, VDP_MAX_AUDIO_CHANNELS);
    for (guint i = 1; ok && i < n; i++) {
        uint64_t v;
        ok = parse_unsigned("volume LEVEL", pos[i], 0, 65535, &v, error);
        req->volume[i - 1] = (uint16_t)v;
    }
    if (ok) {
        req->playback = strcmp(pos[0], "playback") == 0;
        req->mute = mute;
        req->nchannels = n - 1;
    }
    g_strfreev(pos);
    return ok;
}

static bool parse_display_config(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    gboolean wallpaper = FALSE, font = FALSE, anim = FALSE;
    char *depth = NULL;
    GOptionEntry e[] = {
        {"disable-wallpaper", 0, 0, G_OPTION_ARG_NONE, &wallpaper, "hide the wallpaper", NULL},
        {"disable-font-smooth", 0, 0, G_OPTION_ARG_NONE, &font, "disable font smoothing", NULL},
        {"disable-animation", 0, 0, G_OPTION_ARG_NONE, &anim, "disable animations", NULL},
        {"depth", 0, 0, G_OPTION_ARG_FILENAME, &depth, "set the colour depth: 8, 16, 24 or 32", "N"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    char **pos = NULL;
    bool ok = parse_words("display-config", "Send DISPLAY_CONFIG.", e, words, allow_help, &pos, error) &&
              no_positional("display-config", pos, error);
    req->display_flags = (wallpaper ? VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_WALLPAPER : 0u) |
                         (font ? VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_FONT_SMOOTH : 0u) |
                         (anim ? VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_ANIMATION : 0u);
    if (ok && depth) {
        uint64_t d;
        ok = parse_unsigned("--depth", depth, 8, 32, &d, error);
        if (ok && d != 8 && d != 16 && d != 24 && d != 32)
            ok = usage(error, "--depth must be 8, 16, 24 or 32");
        req->depth = (uint32_t)d;
        req->display_flags |= VD_AGENT_DISPLAY_CONFIG_FLAG_SET_COLOR_DEPTH;
    }
    g_strfreev(pos);
    g_free(depth);
    return ok;
}

static bool parse_device_info(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    char **pos = NULL;
    bool ok = parse_words("device-info CHANNEL:MONITOR:DISPLAY_ID:ADDRESS...",
                          "Send GRAPHICS_DEVICE_INFO, e.g. 0:0:0:pci/0000/02.0", NULL, words, allow_help,
                          &pos, error) &&
              build_devinfo(req, pos, error);
    g_strfreev(pos);
    return ok;
}

static bool parse_serve(CtlRequest *req, char **words, bool allow_help, GError **error)
{
    char *control = NULL;
    GOptionEntry e[] = {
        {"control", 0, 0, G_OPTION_ARG_FILENAME, &control, "control socket (default PORT.ctl)", "PATH"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    char **pos = NULL;
    bool ok = parse_words("serve",
                          "Keep the port open and run commands sent as JSON lines to the control\n"
                          "socket; other vdagentctl invocations for the same port go there.",
                          e, words, allow_help, &pos, error) &&
              no_positional("serve", pos, error);
    if (ok && control && (!control[0] || strlen(control) >= 100))
        ok = usage(error, "--control must be a path of 1 to 99 bytes");
    if (ok)
        req->control_path = control;
    else
        g_free(control);
    g_strfreev(pos);
    return ok;
}

CtlRequest *ctl_request_parse(char **argv, bool allow_help, unsigned timeout_ms, GError **error)
{
    if (!argv || !argv[0]) {
        usage(error, "no command given (vdagentctl --help lists them)");
        return NULL;
    }
    guint n = g_strv_length(argv);
    if (n - 1 > CTL_MAX_ARGS) {
        usage(error, "too many arguments (%u, at most %u)", n - 1, CTL_MAX_ARGS);
        return NULL;
    }
    for (guint i = 0; i < n; i++) {
        if (strlen(argv[i]) > CTL_MAX_ARG_LEN) {
            usage(error, "an argument is longer than %u bytes", CTL_MAX_ARG_LEN);
            return NULL;
        }
    }
    CtlRequest *req = g_new0(CtlRequest, 1);
    req->command = g_strdup(argv[0]);
    req->args = g_strdupv(argv + 1);
    req->timeout_ms = timeout_ms;
    char **words = g_strdupv(argv + 1);
    const char *c = argv[0];
    bool ok;
    if (strcmp(c, "status") == 0) {
        req->id = CTL_CMD_STATUS;
        ok = parse_status_like(req, "status", words, allow_help, error);
    } else if (strcmp(c, "monitors") == 0) {
        req->id = CTL_CMD_MONITORS;
        ok = parse_monitors(req, words, allow_help, error);
    } else if (strcmp(c, "mouse") == 0) {
        ok = parse_mouse(req, words, allow_help, error);
    } else if (strcmp(c, "clipboard") == 0) {
        ok = parse_clipboard(req, words, allow_help, error);
    } else if (strcmp(c, "send-file") == 0) {
        req->id = CTL_CMD_SEND_FILE;
        ok = parse_send_file(req, words, allow_help, error);
    } else if (strcmp(c, "watch") == 0) {
        req->id = CTL_CMD_WATCH;
        ok = parse_status_like(req, "watch", words, allow_help, error);
    } else if (strcmp(c, "volume") == 0) {
        req->id = CTL_CMD_VOLUME;
        ok = parse_volume(req, words, allow_help, error);
    } else if (strcmp(c, "display-config") == 0) {
        req->id = CTL_CMD_DISPLAY_CONFIG;
        ok = parse_display_config(req, words, allow_help, error);
    } else if (strcmp(c, "device-info") == 0) {
        req->id = CTL_CMD_DEVICE_INFO;
        ok = parse_device_info(req, words, allow_help, error);
    } else if (strcmp(c, "disconnect") == 0) {
        req->id = CTL_CMD_DISCONNECT;
        ok = parse_status_like(req, "disconnect", words, allow_help, error);
    } else if (strcmp(c, "serve") == 0) {
        req->id = CTL_CMD_SERVE;
        ok = parse_serve(req, words, allow_help, error);
    } else {
        g_autofree char *q = shown(c);
        ok = usage(error, "unknown command \"%s\" (vdagentctl --help lists them)", q);
    }
    g_strfreev(words);
    if (!ok) {
        ctl_request_free(req);
        return NULL;
    }
    return req;
}

void ctl_request_free(CtlRequest *req)
{
    if (!req)
        return;
    g_free(req->command);
    g_strfreev(req->args);
    g_free(req->monitors);
    if (req->data)
        g_bytes_unref(req->data);
    g_strfreev(req->paths);
    g_free(req->devinfo);
    g_strfreev(req->addresses);
    g_free(req->control_path);
    g_free(req);
}

bool ctl_request_wants_stdin(const CtlRequest *req)
{
    return req->id == CTL_CMD_CLIPBOARD_SET;
}

bool ctl_request_set_data(CtlRequest *req, GBytes *data, GError **error)
{
    gsize size = 0;
    const char *p = data ? g_bytes_get_data(data, &size) : NULL;
    if (size == 0)
        return usage(error, "clipboard set: nothing to offer (stdin was empty)");
    if (size > CTL_MAX_STDIN)
        return usage(error, "clipboard set: %" G_GSIZE_FORMAT " bytes on stdin, at most %u", size, CTL_MAX_STDIN);
    if (req->clip_type == VD_AGENT_CLIPBOARD_UTF8_TEXT && !g_utf8_validate_len(p, size, NULL))
        return usage(error, "clipboard set: stdin is not UTF-8 text (use --type for images)");
    if (req->data)
        g_bytes_unref(req->data);
    req->data = g_bytes_ref(data);
    return true;
}

/* ---- results ---- */

CtlResult *ctl_result_new(void)
{
    CtlResult *r = g_new0(CtlResult, 1);
    r->obj = json_object_new_object();
    return r;
}

CtlResult *ctl_result_new_error(int exit_status, const char *fmt, ...)
{
    CtlResult *r = ctl_result_new();
    va_list ap;
    va_start(ap, fmt);
    r->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    r->exit = exit_status;
    return r;
}

CtlResult *ctl_result_new_gerror(const GError *error)
{
    int st = ctl_exit_for_error(error);
    if (st == CTL_EXIT_INTERRUPTED)
        return ctl_result_new_error(st, "interrupted");
    CtlResult *r = ctl_result_new_error(st, "%s", error && error->message ? error->message : "unknown error");
    ctl_plain_spaces(r->error);
    return r;
}

void ctl_result_free(CtlResult *res)
{
    if (!res)
        return;
    g_free(res->error);
    if (res->obj)
        json_object_put(res->obj);
    if (res->data)
        g_bytes_unref(res->data);
    g_free(res);
}

/* ---- sessions ---- */

enum {
    LANE_NONE = -1,
    LANE_MONITORS = 0,
    LANE_CLIP_GET,            /* + selection (3 of them) */
    LANE_XFER = LANE_CLIP_GET + 3,
    LANE_COUNT,
};

typedef struct Op Op;

struct CtlSession {
    char *port;
    bool serve;
    unsigned timeout_ms;
    VdhHost *host;
    GList *ops;               /* every running Op */
    GList *watchers;          /* watch Ops */
    GList *clip_waiters;      /* clipboard set Ops holding their offer */
    bool lane_busy[LANE_COUNT];
    GQueue lane_wait[LANE_COUNT];
    uint32_t mouse_x, mouse_y;
    uint8_t mouse_display;    /* the display mouse_x/y are on */
    unsigned offer_gen[3];
    /* flush */
    guint flush_timer;
    void (*flush_cb)(void *user);
    void *flush_user;
    gint64 flush_deadline;
    uint64_t flush_last_out;
    unsigned flush_still;
    GList *orphans;           /* Ops left inside a library call at teardown */
};

struct Op {
    CtlSession *s;
    CtlRequest *req;
    GCancellable *cancel;
    gulong cancel_handler;
    guint cancel_idle;
    guint start_idle;
    bool in_library;          /* an async library call will call back */
    bool orphan;              /* session gone: the callback only frees the Op */
    bool queued;              /* waiting for its lane */
    int lane;
    bool lane_held;
    CtlHooks hooks;
    CtlDoneFunc done;
    void *done_user;
    gint64 t_exec;
    /* clipboard set hold */
    guint poll_timer, deadline_timer;
    unsigned served0, gen;
    /* send-file */
    VdhXferProgress last_progress;
    /* watch */
    uint64_t events;
};

static void op_exec(Op *op);

static void emit_event(CtlSession *s, json_object *ev)
{
    for (GList *l = s->watchers; l; l = l->next) {
        Op *op = l->data;
        op->events++;
        if (op->hooks.event)
            op->hooks.event(op->hooks.user, ev);
    }
    json_object_put(ev);
}

static void clip_offer_ended(CtlSession *s, int sel, const char *outcome, bool by_guest_grab,
                             bool disconnected);

static void ev_connection(void *user, bool connected, const char *why)
{
    CtlSession *s = user;
    ctl_debug("port %s: %s%s%s", s->port, connected ? "guest connected" : "closed", why ? ": " : "",
              why ? why : "");
    emit_event(s, ctl_event_connection(connected, why));
    if (!connected)
        clip_offer_ended(s, -1, "the guest agent disconnected", false, true);
}

static void ev_message(void *user, const VdpMsg *msg)
{
    CtlSession *s = user;
    if (s->watchers)
        emit_event(s, ctl_event_message(msg));
}

static void ev_dropped(void *user, const char *why)
{
    CtlSession *s = user;
    ctl_debug("dropped a message from the guest: %s", why);
    if (s->watchers)
        emit_event(s, ctl_event_dropped(why));
}

static void ev_clipboard_grab(void *user, uint8_t selection, const uint32_t *types, unsigned ntypes)
{
    CtlSession *s = user;
    clip_offer_ended(s, selection, "the guest took the selection", true, false);
}

static const VdhHostEvents host_events = {
    .connection = ev_connection,
    .message = ev_message,
    .dropped = ev_dropped,
    .clipboard_grab = ev_clipboard_grab,
};

CtlSession *ctl_session_new(const CtlOptions *opts, bool serve, GError **error)
{
    CtlSession *s = g_new0(CtlSession, 1);
    s->port = g_strdup(opts->port);
    s->serve = serve;
    s->timeout_ms = opts->timeout_ms;
    for (int i = 0; i < LANE_COUNT; i++)
        g_queue_init(&s->lane_wait[i]);
    VdhHostConfig cfg = {
        .path = opts->port,
        .listen = opts->listen,
        .chunk_size = opts->chunk_size,
        .caps = NULL,
        .max_clipboard = 0,
        .context = NULL,
    };
    s->host = vdh_host_new(&cfg, &host_events, s, error);
    if (!s->host) {
        g_free(s->port);
        g_free(s);
        return NULL;
    }
    return s;
}

void ctl_session_start(CtlSession *s)
{
    vdh_host_start(s->host);
}

static void op_finish(Op *op, CtlResult *res);
static void op_detach(Op *op);
static void op_free(gpointer data);

void ctl_session_free(CtlSession *s)
{
    if (!s)
        return;
    /* Running commands end without a result reaching anyone. Those inside
     * a library call become orphans: if the library calls back while it is
     * freed, the callback only frees the Op; the rest are freed after. */
    while (s->ops) {
        Op *op = s->ops->data;
        op->done = NULL;
        if (op->in_library) {
            op_detach(op);
            op->orphan = true;
            s->orphans = g_list_prepend(s->orphans, op);
            g_cancellable_cancel(op->cancel);
        } else {
            op_finish(op, NULL);
        }
    }
    if (s->flush_timer)
        g_source_remove(s->flush_timer);
    vdh_host_free(s->host);
    g_list_free_full(s->orphans, op_free);
    g_free(s->port);
    g_free(s);
}

/* Output is out when the port's queue is empty and stays so (a streamed
 * clipboard refills it from the library between writes), with a deadline.
 * What the kernel holds is delivered even after we close. */
static gboolean flush_tick(gpointer data)
{
    CtlSession *s = data;
    VdhHostStats st;
    vdh_host_get_stats(s->host, &st);
    bool settled = st.queued == 0 && st.bytes_out == s->flush_last_out;
    s->flush_still = settled ? s->flush_still + 1 : 0;
    s->flush_last_out = st.bytes_out;
    if (s->flush_still >= 3 || !vdh_host_is_connected(s->host) || g_get_monotonic_time() >= s->flush_deadline) {
        s->flush_timer = 0;
        s->flush_cb(s->flush_user);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

void ctl_session_flush(CtlSession *s, unsigned timeout_ms, void (*cb)(void *user), void *user)
{
    s->flush_cb = cb;
    s->flush_user = user;
    s->flush_deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    s->flush_last_out = 0;
    s->flush_still = 0;
    s->flush_timer = g_timeout_add(10, flush_tick, s);
}

/* ---- op machinery ---- */

static gboolean lane_next_idle(gpointer data)
{
    Op *op = data;
    op->start_idle = 0;
    op_exec(op);
    return G_SOURCE_REMOVE;
}

static void lane_release(Op *op)
{
    if (!op->lane_held)
        return;
    CtlSession *s = op->s;
    op->lane_held = false;
    s->lane_busy[op->lane] = false;
    Op *next = g_queue_pop_head(&s->lane_wait[op->lane]);
    if (next) {
        next->queued = false;
        next->lane_held = true;
        s->lane_busy[op->lane] = true;
        next->start_idle = g_idle_add(lane_next_idle, next);
    }
}

/* Take op out of the session: sources, lanes, lists. */
static void op_detach(Op *op)
{
    CtlSession *s = op->s;
    if (op->cancel_handler)
        g_cancellable_disconnect(op->cancel, op->cancel_handler);
    op->cancel_handler = 0;
    if (op->cancel_idle)
        g_source_remove(op->cancel_idle);
    if (op->start_idle)
        g_source_remove(op->start_idle);
    if (op->poll_timer)
        g_source_remove(op->poll_timer);
    if (op->deadline_timer)
        g_source_remove(op->deadline_timer);
    if (op->queued)
        g_queue_remove(&s->lane_wait[op->lane], op);
    lane_release(op);
    s->ops = g_list_remove(s->ops, op);
    s->watchers = g_list_remove(s->watchers, op);
    s->clip_waiters = g_list_remove(s->clip_waiters, op);
}

static void op_free(gpointer data)
{
    Op *op = data;
    g_object_unref(op->cancel);
    ctl_request_free(op->req);
    g_free(op);
}

/* A library callback for an Op whose session is gone. */
static bool op_orphaned(Op *op)
{
    if (!op->orphan)
        return false;
    op->s->orphans = g_list_remove(op->s->orphans, op);
    op_free(op);
    return true;
}

static void op_finish(Op *op, CtlResult *res)
{
    op_detach(op);
    CtlDoneFunc done = op->done;
    void *user = op->done_user;
    op_free(op);
    if (done && res)
        done(user, res);
    else
        ctl_result_free(res);
}

static CtlResult *interrupted(void)
{
    return ctl_result_new_error(CTL_EXIT_INTERRUPTED, "interrupted");
}

static void op_finish_ok(Op *op, CtlResult *res)
{
    json_object_object_add(res->obj, "command", json_object_new_string(op->req->command));
    op_finish(op, res);
}

static gboolean cancel_idle_cb(gpointer data)
{
    Op *op = data;
    op->cancel_idle = 0;
    if (op->in_library)
        return G_SOURCE_REMOVE;   /* the library reports the cancellation */
    if (op->req->id == CTL_CMD_WATCH) {
        CtlResult *r = ctl_result_new();
        json_object_object_add(r->obj, "events", json_object_new_uint64(op->events));
        op_finish_ok(op, r);
    } else {
        op_finish(op, interrupted());
    }
    return G_SOURCE_REMOVE;
}

static void on_cancelled(GCancellable *c, gpointer data)
{
    Op *op = data;
    /* Never finish from inside the signal (disconnecting there deadlocks). */
    if (!op->cancel_idle)
        op->cancel_idle = g_idle_add(cancel_idle_cb, op);
}

/* ---- the commands ---- */

static json_object *caps_array(const VdpCaps *caps)
{
    json_object *a = json_object_new_array();
    for (unsigned bit = 0; caps && bit < 32u * MIN(caps->nwords, VDP_MAX_CAPS_WORDS); bit++) {
        if (!vdp_caps_has(caps, bit))
            continue;
        const char *n = vdp_cap_name(bit);
        char buf[16];
        if (!n) {
            snprintf(buf, sizeof(buf), "bit%u", bit);
            n = buf;
        }
        json_object_array_add(a, json_object_new_string(n));
    }
    return a;
}

static char *caps_hex(const VdpCaps *caps)
{
    GString *s = g_string_new(NULL);
    uint32_t n = MIN(caps->nwords, VDP_MAX_CAPS_WORDS);
    if (n == 0)
        g_string_append(s, "00000000");
    for (uint32_t i = n; i > 0; i--)
        g_string_append_printf(s, "%08" PRIx32, caps->words[i - 1]);
    return g_string_free(s, FALSE);
}

static void add_stats(CtlSession *s, json_object *obj)
{
    VdhHostStats st;
    vdh_host_get_stats(s->host, &st);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "messages_in", json_object_new_uint64(st.messages_in));
    json_object_object_add(o, "messages_out", json_object_new_uint64(st.messages_out));
    json_object_object_add(o, "dropped", json_object_new_uint64(st.dropped));
    json_object_object_add(o, "bytes_in", json_object_new_uint64(st.bytes_in));
    json_object_object_add(o, "bytes_out", json_object_new_uint64(st.bytes_out));
    json_object_object_add(o, "connects", json_object_new_uint64(st.connects));
    json_object_object_add(obj, "stats", o);
}

static void cmd_status(Op *op)
{
    CtlSession *s = op->s;
    const VdpCaps *caps = vdh_host_get_guest_caps(s->host);
    CtlResult *r = ctl_result_new();
    json_object_object_add(r->obj, "connected", json_object_new_boolean(vdh_host_is_connected(s->host)));
    json_object_object_add(r->obj, "port", json_object_new_string(s->port));
    json_object_object_add(r->obj, "state", json_object_new_string(vdh_host_describe_state(s->host)));
    json_object_object_add(r->obj, "capabilities", caps_array(caps));
    if (caps) {
        char *hex = caps_hex(caps);
        json_object_object_add(r->obj, "guest_caps_hex", json_object_new_string(hex));
        g_free(hex);
    }
    json_object_object_add(r->obj, "serve", json_object_new_boolean(s->serve));
    add_stats(s, r->obj);
    op_finish_ok(op, r);
}

static json_object *monitors_json(const VdpMonitorsConfig *mc)
{
    json_object *a = json_object_new_array();
    for (uint32_t i = 0; i < mc->count; i++) {
        const VdpMonConfig *m = &mc->monitors[i];
        json_object *o = json_object_new_object();
        bool on = m->width && m->height;
        json_object_object_add(o, "enabled", json_object_new_boolean(on));
        if (on) {
            json_object_object_add(o, "width", json_object_new_int64(m->width));
            json_object_object_add(o, "height", json_object_new_int64(m->height));
            json_object_object_add(o, "x", json_object_new_int64(m->x));
            json_object_object_add(o, "y", json_object_new_int64(m->y));
            json_object_object_add(o, "depth", json_object_new_int64(m->depth));
            if (mc->flags & VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE) {
                json_object_object_add(o, "mm_width", json_object_new_int64(m->mm_width));
                json_object_object_add(o, "mm_height", json_object_new_int64(m->mm_height));
            }
        }
        json_object_array_add(a, o);
    }
    return a;
}

static void monitors_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Op *op = data;
    if (op_orphaned(op))
        return;
    op->in_library = false;
    GError *error = NULL;
    if (!vdh_host_set_monitors_finish(op->s->host, res, &error)) {
        op_finish(op, ctl_result_new_gerror(error));
        g_error_free(error);
        return;
    }
    const VdpCaps *caps = vdh_host_get_guest_caps(op->s->host);
    CtlResult *r = ctl_result_new();
    json_object_object_add(r->obj, "monitors", monitors_json(op->req->monitors));
    json_object_object_add(r->obj, "use_pos", json_object_new_boolean(
        (op->req->monitors->flags & VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS) != 0));
    json_object_object_add(r->obj, "confirmed",
                           json_object_new_boolean(caps && vdp_caps_has(caps, VD_AGENT_CAP_REPLY)));
    op_finish_ok(op, r);
}

static void cmd_monitors(Op *op)
{
    op->in_library = true;
    vdh_host_set_monitors_async(op->s->host, op->req->monitors, op->req->timeout_ms, op->cancel,
                                monitors_done, op);
}

static json_object *buttons_json(uint32_t mask)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < G_N_ELEMENTS(button_names); i++)
        if (mask & button_names[i].value)
            json_object_array_add(a, json_object_new_string(button_names[i].name));
    return a;
}

static void cmd_mouse(Op *op)
{
    CtlSession *s = op->s;
    CtlRequest *q = op->req;
    GError *error = NULL;
    uint32_t x = q->has_pos ? q->x : s->mouse_x;
    uint32_t y = q->has_pos ? q->y : s->mouse_y;
    /* Without a position the remembered one is used, and it belongs to the
     * display it was set on; an explicit position is on display 0 unless
     * --display says otherwise. */
    uint8_t display = q->has_display ? q->display : q->has_pos ? 0 : s->mouse_display;
    bool ok = true;
    const char *action;
    if (q->id == CTL_CMD_MOUSE_MOVE) {
        action = "move";
        ok = vdh_host_mouse(s->host, x, y, q->buttons, display, &error);
    } else if (q->id == CTL_CMD_MOUSE_CLICK) {
        action = "click";
        ok = vdh_host_mouse_click(s->host, x, y, q->button_mask, display, &error);
    } else {
        action = "scroll";
        for (unsigned i = 0; ok && i < q->count; i++)
            ok = vdh_host_mouse_click(s->host, x, y, q->button_mask, display, &error);
    }
    if (!ok) {
        op_finish(op, ctl_result_new_gerror(error));
        g_error_free(error);
        return;
    }
    s->mouse_x = x;
    s->mouse_y = y;
    s->mouse_display = display;
    CtlResult *r = ctl_result_new();
    json_object_object_add(r->obj, "action", json_object_new_string(action));
    json_object_object_add(r->obj, "x", json_object_new_int64(x));
    json_object_object_add(r->obj, "y", json_object_new_int64(y));
    json_object_object_add(r->obj, "display", json_object_new_int(display));
    if (q->id == CTL_CMD_MOUSE_MOVE) {
        json_object_object_add(r->obj, "buttons", buttons_json(q->buttons));
    } else {
        json_object_object_add(r->obj, "button", json_object_new_string(q->button_name));
        if (q->id == CTL_CMD_MOUSE_SCROLL)
            json_object_object_add(r->obj, "count", json_object_new_int((int)q->count));
    }
    op_finish_ok(op, r);
}

/* -- clipboard set -- */

static CtlResult *clip_set_result(Op *op, const char *outcome, unsigned served)
{
    CtlRequest *q = op->req;
    CtlResult *r = ctl_result_new();
    json_object_object_add(r->obj, "action", json_object_new_string("set"));
    json_object_object_add(r->obj, "selection", json_object_new_string(ctl_selection_name(q->selection)));
    json_object_object_add(r->obj, "type", json_object_new_string(ctl_clipboard_type_word(q->clip_type)));
    json_object_object_add(r->obj, "size", json_object_new_uint64(g_bytes_get_size(q->data)));
    json_object_object_add(r->obj, "served", json_object_new_int64(served));
    json_object_object_add(r->obj, "outcome", json_object_new_string(outcome));
    json_object_object_add(r->obj, "kept", json_object_new_boolean(op->s->serve));
    return r;
}

/* A one-shot run takes its offer back before it goes (a guest asking a
 * vanished host for data would wait in vain). */
static void clip_release_if_ours(Op *op)
{
    CtlSession *s = op->s;
    if (s->serve || op->gen != s->offer_gen[op->req->selection] || !vdh_host_is_connected(s->host))
        return;
    GError *error = NULL;
    if (!vdh_host_clipboard_release(s->host, op->req->selection, &error)) {
        ctl_debug("release of the %s selection: %s", ctl_selection_name(op->req->selection), error->message);
        g_error_free(error);
    }
}

static void clip_hold_end(Op *op, int exit_status, const char *outcome, const char *message)
{
    unsigned served = vdh_host_clipboard_served(op->s->host, op->req->selection);
    if (exit_status == CTL_EXIT_OK || exit_status == CTL_EXIT_TIMEOUT)
        clip_release_if_ours(op);
    if (exit_status != CTL_EXIT_OK) {
        op_finish(op, ctl_result_new_error(exit_status, "%s", message));
        return;
    }
    CtlResult *r = clip_set_result(op, outcome, served - MIN(served, op->served0));
    if (message)
        json_object_object_add(r->obj, "note", json_object_new_string(message));
    op_finish_ok(op, r);
}

static void clip_offer_ended(CtlSession *s, int sel, const char *why, bool by_guest_grab, bool disconnected)
{
    GList *list = g_list_copy(s->clip_waiters);
    for (GList *l = list; l; l = l->next) {
        Op *op = l->data;
        if (sel >= 0 && op->req->selection != sel)
            continue;
        unsigned served = vdh_host_clipboard_served(s->host, op->req->selection);
        if (served > op->served0) {
            clip_hold_end(op, CTL_EXIT_OK, "fetched", NULL);
        } else if (by_guest_grab) {
            op->gen = 0;   /* not ours to release any more */
            clip_hold_end(op, op->req->wait_served ? CTL_EXIT_REFUSED : CTL_EXIT_OK, "replaced",
                          "the guest took the selection before fetching the offer");
        } else if (disconnected) {
            op->gen = 0;
            clip_hold_end(op, op->req->wait_served ? CTL_EXIT_NO_GUEST : CTL_EXIT_OK, "disconnected",
                          "the guest agent disconnected before fetching the offer");
        }
    }
    g_list_free(list);
}

static gboolean clip_poll(gpointer data)
{
    Op *op = data;
    CtlSession *s = op->s;
    if (op->gen != s->offer_gen[op->req->selection]) {
        op->poll_timer = 0;
        clip_hold_end(op, CTL_EXIT_OK, "superseded", "another clipboard set replaced this offer");
        return G_SOURCE_REMOVE;
    }
    if (vdh_host_clipboard_served(s->host, op->req->selection) > op->served0) {
        op->poll_timer = 0;
        clip_hold_end(op, CTL_EXIT_OK, "fetched", NULL);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean clip_deadline(gpointer data)
{
    Op *op = data;
    op->deadline_timer = 0;
    g_autofree char *t = ctl_format_seconds(op->req->timeout_ms);
    g_autofree char *msg = g_strdup_printf("the guest did not fetch the %s offer within %s",
                                           ctl_selection_name(op->req->selection), t);
    if (op->req->wait_served)
        clip_hold_end(op, CTL_EXIT_TIMEOUT, "timeout", msg);
    else
        clip_hold_end(op, CTL_EXIT_OK, "not fetched", msg);
    return G_SOURCE_REMOVE;
}

static void cmd_clipboard_set(Op *op)
{
    CtlSession *s = op->s;
    CtlRequest *q = op->req;
    GError *error = NULL;
    if (!vdh_host_clipboard_set(s->host, q->selection, q->clip_type, q->data, &error)) {
        op_finish(op, ctl_result_new_gerror(error));
        g_error_free(error);
        return;
    }
    op->gen = ++s->offer_gen[q->selection];
    op->served0 = vdh_host_clipboard_served(s->host, q->selection);
    if (s->serve && !q->wait_served) {
        /* The serve keeps answering the guest's requests. */
        op_finish_ok(op, clip_set_result(op, "offered", 0));
        return;
    }
    s->clip_waiters = g_list_prepend(s->clip_waiters, op);
    op->poll_timer = g_timeout_add(SERVED_POLL_MS, clip_poll, op);
    op->deadline_timer = g_timeout_add(q->timeout_ms, clip_deadline, op);
}

/* -- clipboard get -- */

static void clip_get_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Op *op = data;
    if (op_orphaned(op))
        return;
    op->in_library = false;
    GError *error = NULL;
    uint32_t type = 0;
    GBytes *bytes = vdh_host_clipboard_get_finish(op->s->host, res, &type, &error);
    if (!bytes) {
        op_finish(op, ctl_result_new_gerror(error));
        g_error_free(error);
        return;
    }
    CtlResult *r = ctl_result_new();
    const char *word = ctl_clipboard_type_word(type);
    const char *name = vdp_clipboard_type_name(type);
    json_object_object_add(r->obj, "action", json_object_new_string("get"));
    json_object_object_add(r->obj, "selection", json_object_new_string(ctl_selection_name(op->req->selection)));
    json_object_object_add(r->obj, "type", json_object_new_string(word ? word : name ? name : "unknown"));
    json_object_object_add(r->obj, "size", json_object_new_uint64(g_bytes_get_size(bytes)));
    r->data = bytes;
    op_finish_ok(op, r);
}

static void cmd_clipboard_get(Op *op)
{
    op->in_library = true;
    vdh_host_clipboard_get_async(op->s->host, op->req->selection, op->req->clip_type, op->req->timeout_ms,
                                 op->cancel, clip_get_done, op);
}

/* -- send-file -- */

static void xfer_progress(void *user, const VdhXferProgress *p)
{
    Op *op = user;
    op->last_progress = *p;
    op->last_progress.name = NULL;   /* not ours to keep */
    if (op->hooks.progress)
        op->hooks.progress(op->hooks.user, p);
}

static void xfer_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Op *op = data;
    if (op_orphaned(op))
        return;
    op->in_library = false;
    GError *error = NULL;
    if (!vdh_host_send_files_finish(op->s->host, res, &error)) {
        op_finish(op, ctl_result_new_gerror(error));
        g_error_free(error);
        return;
    }
    double secs = (double)(g_get_monotonic_time() - op->t_exec) / 1e6;
    CtlResult *r = ctl_result_new();
    json_object *files = json_object_new_array();
    uint64_t total = 0;
    for (char **p = op->req->paths; *p; p++) {
        GStatBuf st;
        uint64_t size = g_stat(*p, &st) == 0 ? (uint64_t)st.st_size : 0;
        total += size;
        json_object *f = json_object_new_object();
        g_autofree char *base = g_path_get_basename(*p);
        json_object_object_add(f, "path", json_object_new_string(*p));
        json_object_object_add(f, "name", json_object_new_string(base));
        json_object_object_add(f, "size", json_object_new_uint64(size));
        json_object_array_add(files, f);
    }
    if (op->last_progress.batch_size)
        total = op->last_progress.batch_size;
    json_object_object_add(r->obj, "files", files);
    json_object_object_add(r->obj, "bytes", json_object_new_uint64(total));
    json_object_object_add(r->obj, "seconds", json_object_new_double(secs));
    json_object_object_add(r->obj, "bytes_per_second",
                           json_object_new_double(secs > 0 ? (double)total / secs : 0.0));
    op_finish_ok(op, r);
}

static void cmd_send_file(Op *op)
{
    op->in_library = true;
    vdh_host_send_files_async(op->s->host, (const char *const *)op->req->paths, xfer_progress, op,
                              op->req->timeout_ms, op->cancel, xfer_done, op);
}

/* -- the rest -- */

static void finish_sent(Op *op, bool ok, GError *error, CtlResult *r)
{
    if (!ok) {
        ctl_result_free(r);
        op_finish(op, ctl_result_new_gerror(error));
        g_error_free(error);
        return;
    }
    op_finish_ok(op, r);
}

static void cmd_volume(Op *op)
{
    CtlRequest *q = op->req;
    GError *error = NULL;
    bool ok = vdh_host_send_audio_volume(op->s->host, q->playback, q->mute, q->volume, q->nchannels, &error);
    CtlResult *r = ctl_result_new();
    json_object_object_add(r->obj, "stream", json_object_new_string(q->playback ? "playback" : "record"));
    json_object_object_add(r->obj, "mute", json_object_new_boolean(q->mute));
    json_object *levels = json_object_new_array();
    for (unsigned i = 0; i < q->nchannels; i++)
        json_object_array_add(levels, json_object_new_int(q->volume[i]));
    json_object_object_add(r->obj, "levels", levels);
    finish_sent(op, ok, error, r);
}

static void cmd_display_config(Op *op)
{
    CtlRequest *q = op->req;
    GError *error = NULL;
    bool ok = vdh_host_send_display_config(op->s->host, q->display_flags, q->depth, &error);
    CtlResult *r = ctl_result_new();
    json_object *flags = json_object_new_array();
    static const NamedBit names[] = {
        {"disable-wallpaper", VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_WALLPAPER},
        {"disable-font-smooth", VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_FONT_SMOOTH},
        {"disable-animation", VD_AGENT_DISPLAY_CONFIG_FLAG_DISABLE_ANIMATION},
        {"set-color-depth", VD_AGENT_DISPLAY_CONFIG_FLAG_SET_COLOR_DEPTH},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        if (q->display_flags & names[i].value)
            json_object_array_add(flags, json_object_new_string(names[i].name));
    json_object_object_add(r->obj, "flags", flags);
    json_object_object_add(r->obj, "depth", json_object_new_int64(q->depth));
    finish_sent(op, ok, error, r);
}

static void cmd_device_info(Op *op)
{
    CtlRequest *q = op->req;
    GError *error = NULL;
    bool ok = vdh_host_send_graphics_device_info(op->s->host, q->devinfo, &error);
    CtlResult *r = ctl_result_new();
    json_object *a = json_object_new_array();
    for (uint32_t i = 0; i < q->devinfo->count; i++) {
        const VdpDeviceDisplayInfo *e = &q->devinfo->info[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "channel", json_object_new_int64(e->channel_id));
        json_object_object_add(o, "monitor", json_object_new_int64(e->monitor_id));
        json_object_object_add(o, "display_id", json_object_new_int64(e->device_display_id));
        json_object_object_add(o, "address", json_object_new_string(e->device_address));
        json_object_array_add(a, o);
    }
    json_object_object_add(r->obj, "devices", a);
    finish_sent(op, ok, error, r);
}

static void cmd_disconnect(Op *op)
{
    GError *error = NULL;
    bool ok = vdh_host_send_client_disconnected(op->s->host, &error);
    CtlResult *r = ctl_result_new();
    json_object_object_add(r->obj, "sent", json_object_new_string("CLIENT_DISCONNECTED"));
    finish_sent(op, ok, error, r);
}

static int lane_for(const CtlRequest *q)
{
    switch (q->id) {
    case CTL_CMD_MONITORS:
        return LANE_MONITORS;
    case CTL_CMD_CLIPBOARD_GET:
        return LANE_CLIP_GET + (q->selection < 3 ? q->selection : 0);
    case CTL_CMD_SEND_FILE:
        return LANE_XFER;
    default:
        return LANE_NONE;
    }
}

static void op_exec(Op *op)
{
    if (g_cancellable_is_cancelled(op->cancel)) {
        op_finish(op, interrupted());
        return;
    }
    op->t_exec = g_get_monotonic_time();
    switch (op->req->id) {
    case CTL_CMD_STATUS:
        cmd_status(op);
        break;
    case CTL_CMD_MONITORS:
        cmd_monitors(op);
        break;
    case CTL_CMD_MOUSE_MOVE:
    case CTL_CMD_MOUSE_CLICK:
    case CTL_CMD_MOUSE_SCROLL:
        cmd_mouse(op);
        break;
    case CTL_CMD_CLIPBOARD_SET:
        cmd_clipboard_set(op);
        break;
    case CTL_CMD_CLIPBOARD_GET:
        cmd_clipboard_get(op);
        break;
    case CTL_CMD_SEND_FILE:
        cmd_send_file(op);
        break;
    case CTL_CMD_VOLUME:
        cmd_volume(op);
        break;
    case CTL_CMD_DISPLAY_CONFIG:
        cmd_display_config(op);
        break;
    case CTL_CMD_DEVICE_INFO:
        cmd_device_info(op);
        break;
    case CTL_CMD_DISCONNECT:
        cmd_disconnect(op);
        break;
    case CTL_CMD_WATCH:
    case CTL_CMD_SERVE:
        op_finish(op, ctl_result_new_error(CTL_EXIT_USAGE, "%s cannot run here", op->req->command));
        break;
    }
}

static CtlResult *no_guest_result(Op *op)
{
    CtlSession *s = op->s;
    g_autofree char *t = ctl_format_seconds(op->req->timeout_ms);
    CtlResult *r;
    if (vdh_host_is_connected(s->host))
        r = ctl_result_new_error(CTL_EXIT_NO_GUEST,
                                 "no guest agent answered on %s within %s (the port is open, but no agent "
                                 "announced its capabilities)", s->port, t);
    else
        r = ctl_result_new_error(CTL_EXIT_NO_GUEST, "no guest agent connected to %s within %s", s->port, t);
    json_object_object_add(r->obj, "connected", json_object_new_boolean(false));
    json_object_object_add(r->obj, "port", json_object_new_string(s->port));
    ctl_debug("port state: %s", vdh_host_describe_state(s->host));
    return r;
}

static void ready_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Op *op = data;
    if (op_orphaned(op))
        return;
    op->in_library = false;
    GError *error = NULL;
    bool ok = vdh_host_wait_ready_finish(op->s->host, res, &error);
    if (!ok) {
        int st = ctl_exit_for_error(error);
        if (st == CTL_EXIT_INTERRUPTED || g_cancellable_is_cancelled(op->cancel))
            op_finish(op, interrupted());
        else if (!vdh_host_get_guest_caps(op->s->host) || st == CTL_EXIT_NO_GUEST || st == CTL_EXIT_TIMEOUT)
            op_finish(op, no_guest_result(op));
        else
            op_finish(op, ctl_result_new_gerror(error));
        g_error_free(error);
        return;
    }
    CtlSession *s = op->s;
    op->lane = lane_for(op->req);
    if (op->lane != LANE_NONE && s->lane_busy[op->lane]) {
        ctl_debug("%s waits for a running command of its kind", op->req->command);
        op->queued = true;
        g_queue_push_tail(&s->lane_wait[op->lane], op);
        return;
    }
    if (op->lane != LANE_NONE) {
        s->lane_busy[op->lane] = true;
        op->lane_held = true;
    }
    op_exec(op);
}

static gboolean op_begin(gpointer data)
{
    Op *op = data;
    op->start_idle = 0;
    if (g_cancellable_is_cancelled(op->cancel) && op->req->id != CTL_CMD_WATCH) {
        op_finish(op, interrupted());
        return G_SOURCE_REMOVE;
    }
    if (op->req->id == CTL_CMD_WATCH) {
        op->s->watchers = g_list_append(op->s->watchers, op);
        return G_SOURCE_REMOVE;   /* ends when cancelled */
    }
    op->in_library = true;
    vdh_host_wait_ready_async(op->s->host, op->req->timeout_ms, op->cancel, ready_done, op);
    return G_SOURCE_REMOVE;
}

void ctl_cmd_run(CtlSession *s, CtlRequest *req, GCancellable *c, const CtlHooks *hooks, CtlDoneFunc done,
                 void *user)
{
    Op *op = g_new0(Op, 1);
    op->s = s;
    op->req = req;
    op->cancel = c ? g_object_ref(c) : g_cancellable_new();
    op->lane = LANE_NONE;
    if (hooks)
        op->hooks = *hooks;
    op->done = done;
    op->done_user = user;
    if (!req->timeout_ms)
        req->timeout_ms = s->timeout_ms;
    s->ops = g_list_prepend(s->ops, op);
    op->cancel_handler = g_cancellable_connect(op->cancel, G_CALLBACK(on_cancelled), op, NULL);
    op->start_idle = g_idle_add(op_begin, op);
}
