/* ctl-output.c - vdagentctl's output: results and errors in words or as
 * JSON (one object per line), watch events, and the send-file progress bar.
 *
 * Results are JSON objects from the start (ctl-cmd.c builds them, a serve
 * sends them over its control socket as they are); the human form is
 * rendered from the same fields, so both outputs always agree.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ctl.h"

/* ---- small things ---- */

static bool debug_on;

void ctl_set_debug(bool on)
{
    debug_on = on;
}

void ctl_debug(const char *fmt, ...)
{
    if (!debug_on)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "vdagentctl: debug: %s\n", text);
    g_free(text);
}

char *ctl_format_seconds(unsigned ms)
{
    if (ms % 1000u == 0)
        return g_strdup_printf("%u s", ms / 1000u);
    return g_strdup_printf("%.3g s", (double)ms / 1000.0);
}

/* g_format_size() separates with a no-break space in UTF-8 locales;
 * plain spaces keep the output easy to grep and to read in any locale. */
char *ctl_format_size(uint64_t bytes)
{
    char *text = g_format_size(bytes);
    return ctl_plain_spaces(text);
}

char *ctl_plain_spaces(char *text)
{
    char *w = text;
    for (const char *r = text; *r;) {
        if ((unsigned char)r[0] == 0xc2 && (unsigned char)r[1] == 0xa0) {
            *w++ = ' ';
            r += 2;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return text;
}

static const char *jstr(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int64_t jint(json_object *obj, const char *key, int64_t dflt)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) ||
        !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return dflt;
    return json_object_get_int64(v);
}

static uint64_t juint(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_uint64(v);
}

static double jdouble(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) ||
        !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return 0.0;
    return json_object_get_double(v);
}

static bool jbool(json_object *obj, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_boolean) &&
           json_object_get_boolean(v);
}

static json_object *jarray(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_array))
        return NULL;
    return v;
}

/* Strings of an array joined with sep. */
static char *join_strings(json_object *a, const char *sep)
{
    GString *s = g_string_new(NULL);
    size_t n = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(a, i);
        if (!json_object_is_type(e, json_type_string))
            continue;
        if (s->len)
            g_string_append(s, sep);
        g_string_append(s, json_object_get_string(e));
    }
    return g_string_free(s, FALSE);
}

static void print_json_line(json_object *obj)
{
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    fputs(text, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static double now_seconds(void)
{
    return (double)g_get_real_time() / 1e6;
}

static char *clock_text(void)
{
    GDateTime *dt = g_date_time_new_now_local();
    char *hms = g_date_time_format(dt, "%H:%M:%S");
    char *text = g_strdup_printf("%s.%03d", hms, g_date_time_get_microsecond(dt) / 1000);
    g_free(hms);
    g_date_time_unref(dt);
    return text;
}

/* ---- the wire form of results ---- */

json_object *ctl_result_to_json(const CtlResult *res)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(res->exit == CTL_EXIT_OK));
    if (res->exit != CTL_EXIT_OK) {
        json_object_object_add(o, "error", json_object_new_string(res->error ? res->error : "failed"));
        json_object_object_add(o, "exit", json_object_new_int(res->exit));
    }
    json_object_object_foreach(res->obj, key, val)
    {
        if (strcmp(key, "ok") != 0 && strcmp(key, "error") != 0 && strcmp(key, "exit") != 0)
            json_object_object_add(o, key, json_object_get(val));
    }
    if (res->data) {
        gsize n;
        const guchar *p = g_bytes_get_data(res->data, &n);
        char *b64 = g_base64_encode(p, n);
        json_object_object_add(o, "data_base64", json_object_new_string(b64));
        g_free(b64);
    }
    return o;
}

CtlResult *ctl_result_from_json(json_object *obj, GError **error)
{
    json_object *okv;
    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, "ok", &okv) ||
        !json_object_is_type(okv, json_type_boolean)) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "the serve sent a response without \"ok\"");
        return NULL;
    }
    CtlResult *res = ctl_result_new();
    if (!json_object_get_boolean(okv)) {
        const char *msg = jstr(obj, "error");
        int64_t st = jint(obj, "exit", CTL_EXIT_IO);
        res->exit = st >= 1 && st <= 255 ? (int)st : CTL_EXIT_IO;
        res->error = g_strdup(msg ? msg : "the serve reported a failure without a reason");
    }
    json_object_object_foreach(obj, key, val)
    {
        if (strcmp(key, "data_base64") == 0) {
            const char *b64 = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : NULL;
            if (!b64) {
                ctl_result_free(res);
                g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "the serve sent data that is not base64");
                return NULL;
            }
            gsize n = 0;
            guchar *p = g_base64_decode(b64, &n);
            res->data = g_bytes_new_take(p, n);
        } else if (strcmp(key, "ok") != 0 && strcmp(key, "error") != 0 && strcmp(key, "exit") != 0) {
            json_object_object_add(res->obj, key, json_object_get(val));
        }
    }
    return res;
}

/* ---- events ---- */

json_object *ctl_event_message(const VdpMsg *msg)
{
    char line[2048];
    vdp_msg_describe(msg, line, sizeof(line));
    json_object *o = json_object_new_object();
    const char *name = vdp_msg_type_name(msg->type);
    json_object_object_add(o, "event", json_object_new_string("message"));
    json_object_object_add(o, "time", json_object_new_double(now_seconds()));
    json_object_object_add(o, "type", json_object_new_string(name ? name : "UNKNOWN"));
    json_object_object_add(o, "text", json_object_new_string(line));
    switch (msg->type) {
    case VD_AGENT_ANNOUNCE_CAPABILITIES: {
        json_object *a = json_object_new_array();
        const VdpCaps *caps = &msg->u.announce.caps;
        for (unsigned bit = 0; bit < 32u * MIN(caps->nwords, VDP_MAX_CAPS_WORDS); bit++) {
            if (!vdp_caps_has(caps, bit))
                continue;
            const char *n = vdp_cap_name(bit);
            char unknown[16];
            if (!n) {
                snprintf(unknown, sizeof(unknown), "bit%u", bit);
                n = unknown;
            }
            json_object_array_add(a, json_object_new_string(n));
        }
        json_object_object_add(o, "request", json_object_new_boolean(msg->u.announce.request != 0));
        json_object_object_add(o, "capabilities", a);
        break;
    }
    case VD_AGENT_REPLY: {
        const char *t = vdp_msg_type_name(msg->u.reply.type);
        json_object_object_add(o, "reply_to", json_object_new_string(t ? t : "UNKNOWN"));
        json_object_object_add(o, "success", json_object_new_boolean(msg->u.reply.error == VD_AGENT_SUCCESS));
        break;
    }
    case VD_AGENT_CLIPBOARD_GRAB: {
        json_object *a = json_object_new_array();
        for (uint32_t i = 0; i < msg->u.grab.ntypes && i < VDP_MAX_GRAB_TYPES; i++) {
            const char *t = vdp_clipboard_type_name(msg->u.grab.types[i]);
            json_object_array_add(a, json_object_new_string(t ? t : "unknown"));
        }
        json_object_object_add(o, "selection", json_object_new_string(ctl_selection_name(msg->u.grab.selection)));
        json_object_object_add(o, "types", a);
        break;
    }
    case VD_AGENT_CLIPBOARD_RELEASE:
        json_object_object_add(o, "selection",
                               json_object_new_string(ctl_selection_name(msg->u.release.selection)));
        break;
    case VD_AGENT_FILE_XFER_STATUS: {
        const char *r = vdp_xfer_status_name(msg->u.xfer_status.result);
        json_object_object_add(o, "id", json_object_new_int64(msg->u.xfer_status.id));
        json_object_object_add(o, "result", json_object_new_string(r ? r : "unknown"));
        break;
    }
    default:
        break;
    }
    return o;
}

json_object *ctl_event_connection(bool connected, const char *why)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string(connected ? "connected" : "disconnected"));
    json_object_object_add(o, "time", json_object_new_double(now_seconds()));
    if (why)
        json_object_object_add(o, "reason", json_object_new_string(why));
    return o;
}

json_object *ctl_event_dropped(const char *why)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string("dropped"));
    json_object_object_add(o, "time", json_object_new_double(now_seconds()));
    json_object_object_add(o, "reason", json_object_new_string(why ? why : "malformed"));
    return o;
}

void ctl_output_event(const CtlOptions *opts, json_object *ev)
{
    if (opts->json) {
        print_json_line(ev);
        return;
    }
    const char *kind = jstr(ev, "event");
    char *clock = clock_text();
    if (kind && strcmp(kind, "message") == 0) {
        const char *text = jstr(ev, "text");
        printf("%s %s\n", clock, text ? text : "?");
    } else if (kind && strcmp(kind, "connected") == 0) {
        printf("%s -- guest connected\n", clock);
    } else if (kind && strcmp(kind, "disconnected") == 0) {
        const char *why = jstr(ev, "reason");
        printf("%s -- port closed%s%s\n", clock, why ? ": " : "", why ? why : "");
    } else if (kind && strcmp(kind, "dropped") == 0) {
        const char *why = jstr(ev, "reason");
        printf("%s !! dropped: %s\n", clock, why ? why : "?");
    }
    fflush(stdout);
    g_free(clock);
}

/* ---- progress ---- */

json_object *ctl_progress_to_json(const VdhXferProgress *p)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "file_index", json_object_new_int64(p->file_index));
    json_object_object_add(o, "nfiles", json_object_new_int64(p->nfiles));
    json_object_object_add(o, "name", json_object_new_string(p->name ? p->name : ""));
    json_object_object_add(o, "sent", json_object_new_uint64(p->sent));
    json_object_object_add(o, "size", json_object_new_uint64(p->size));
    json_object_object_add(o, "batch_sent", json_object_new_uint64(p->batch_sent));
    json_object_object_add(o, "batch_size", json_object_new_uint64(p->batch_size));
    return o;
}

bool ctl_progress_from_json(json_object *obj, VdhXferProgress *p, char **name_storage)
{
    if (!json_object_is_type(obj, json_type_object))
        return false;
    memset(p, 0, sizeof(*p));
    int64_t idx = jint(obj, "file_index", -1), n = jint(obj, "nfiles", -1);
    if (idx < 0 || n < 1 || idx >= n || n > (int64_t)CTL_MAX_ARGS)
        return false;
    p->file_index = (unsigned)idx;
    p->nfiles = (unsigned)n;
    p->sent = juint(obj, "sent");
    p->size = juint(obj, "size");
    p->batch_sent = juint(obj, "batch_sent");
    p->batch_size = juint(obj, "batch_size");
    const char *name = jstr(obj, "name");
    g_free(*name_storage);
    *name_storage = g_strdup(name ? name : "");
    p->name = *name_storage;
    return true;
}

struct CtlProgress {
    bool active;
    gint64 t0, last_draw;
    bool drawn;
};

CtlProgress *ctl_progress_new(void)
{
    CtlProgress *pb = g_new0(CtlProgress, 1);
    pb->active = isatty(STDERR_FILENO) == 1;
    return pb;
}

bool ctl_progress_active(const CtlProgress *pb)
{
    return pb && pb->active;
}

static unsigned terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    return 80;
}

void ctl_progress_update(CtlProgress *pb, const VdhXferProgress *p)
{
    if (!pb || !pb->active)
        return;
    gint64 now = g_get_monotonic_time();
    if (!pb->t0)
        pb->t0 = now;   /* the rate counts from the first byte, not from the wait for the guest */
    bool last = p->batch_size && p->batch_sent >= p->batch_size;
    if (pb->drawn && !last && now - pb->last_draw < 100000)
        return;
    pb->last_draw = now;
    pb->drawn = true;
    double frac = p->batch_size ? (double)p->batch_sent / (double)p->batch_size : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    double secs = (double)(now - pb->t0) / 1e6;
    char *done = ctl_format_size(p->batch_sent);
    char *total = ctl_format_size(p->batch_size);
    char *rate = ctl_format_size(secs > 0.05 ? (guint64)((double)p->batch_sent / secs) : 0);
    char *tail = g_strdup_printf(" %3d%% %s / %s  %s/s  %s (%u/%u)", (int)(frac * 100.0), done, total, rate,
                                 p->name ? p->name : "", p->file_index + 1, p->nfiles);
    unsigned width = terminal_width();
    unsigned tail_len = (unsigned)g_utf8_strlen(tail, -1);
    int bar = (int)width - (int)tail_len - 3;
    if (bar > 40)
        bar = 40;
    GString *line = g_string_new("\r");
    if (bar >= 10) {
        int fill = (int)(frac * bar);
        g_string_append_c(line, '[');
        for (int i = 0; i < bar; i++)
            g_string_append_c(line, i < fill ? '#' : '.');
        g_string_append_c(line, ']');
    }
    g_string_append(line, tail);
    g_string_append(line, "\033[K");
    fputs(line->str, stderr);
    fflush(stderr);
    g_string_free(line, TRUE);
    g_free(done);
    g_free(total);
    g_free(rate);
    g_free(tail);
}

void ctl_progress_clear(CtlProgress *pb)
{
    if (!pb || !pb->active || !pb->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    pb->drawn = false;
}

void ctl_progress_free(CtlProgress *pb)
{
    ctl_progress_clear(pb);
    g_free(pb);
}

/* ---- results in words ---- */

static void print_monitors(json_object *obj)
{
    json_object *a = jarray(obj, "monitors");
    GString *s = g_string_new(NULL);
    size_t n = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(a, i);
        if (s->len)
            g_string_append(s, ", ");
        if (!jbool(m, "enabled")) {
            g_string_append(s, "off");
            continue;
        }
        g_string_append_printf(s, "%" PRId64 "x%" PRId64 "%+" PRId64 "%+" PRId64, jint(m, "width", 0),
                               jint(m, "height", 0), jint(m, "x", 0), jint(m, "y", 0));
        if (jint(m, "mm_width", 0))
            g_string_append_printf(s, "@%" PRId64 "x%" PRId64 "mm", jint(m, "mm_width", 0),
                                   jint(m, "mm_height", 0));
    }
    if (jbool(obj, "confirmed"))
        printf("the guest applied the monitor configuration: %s\n", s->str);
    else
        printf("monitor configuration sent (the guest has no reply capability, so it does not confirm): %s\n",
               s->str);
    g_string_free(s, TRUE);
}

static void print_status(json_object *obj)
{
    char *caps = join_strings(jarray(obj, "capabilities"), " ");
    const char *hex = jstr(obj, "guest_caps_hex");
    json_object *st;
    printf("port:          %s\n", jstr(obj, "port") ? jstr(obj, "port") : "?");
    printf("guest agent:   %s\n", jbool(obj, "connected") ? "connected" : "not connected");
    printf("capabilities:  %s\n", caps[0] ? caps : "(none announced)");
    if (hex)
        printf("caps (hex):    %s\n", hex);
    if (json_object_object_get_ex(obj, "stats", &st))
        printf("messages:      %" PRIu64 " in, %" PRIu64 " out, %" PRIu64 " dropped; %" PRIu64 " connection(s)\n",
               juint(st, "messages_in"), juint(st, "messages_out"), juint(st, "dropped"), juint(st, "connects"));
    if (jbool(obj, "serve"))
        printf("served by:     vdagentctl serve\n");
    g_free(caps);
}

static void print_mouse(const CtlRequest *req, json_object *obj)
{
    int64_t x = jint(obj, "x", 0), y = jint(obj, "y", 0), d = jint(obj, "display", 0);
    if (req->id == CTL_CMD_MOUSE_MOVE) {
        char *held = join_strings(jarray(obj, "buttons"), ",");
        printf("pointer at %" PRId64 ",%" PRId64 " on display %" PRId64 "%s%s\n", x, y, d,
               held[0] ? ", holding " : "", held);
        g_free(held);
    } else if (req->id == CTL_CMD_MOUSE_CLICK) {
        printf("clicked %s at %" PRId64 ",%" PRId64 " on display %" PRId64 "\n",
               jstr(obj, "button") ? jstr(obj, "button") : "?", x, y, d);
    } else {
        printf("scrolled %s %" PRId64 " time(s) at %" PRId64 ",%" PRId64 " on display %" PRId64 "\n",
               jstr(obj, "button") ? jstr(obj, "button") : "?", jint(obj, "count", 1), x, y, d);
    }
}

static void print_clipboard_set(json_object *obj)
{
    const char *outcome = jstr(obj, "outcome");
    const char *note = jstr(obj, "note");
    char *size = ctl_format_size(juint(obj, "size"));
    const char *type = jstr(obj, "type") ? jstr(obj, "type") : "?";
    const char *sel = jstr(obj, "selection") ? jstr(obj, "selection") : "?";
    if (outcome && strcmp(outcome, "fetched") == 0)
        printf("the guest fetched the %s offer (%s of %s)\n", sel, size, type);
    else if (outcome && strcmp(outcome, "offered") == 0)
        printf("offered %s of %s on the %s selection (kept by vdagentctl serve)\n", size, type, sel);
    else
        printf("%s; the %s offer (%s of %s) is withdrawn\n", note ? note : "the offer ended", sel, size, type);
    g_free(size);
}

static bool write_all_stdout(GBytes *data)
{
    gsize n = 0;
    const uint8_t *p = data ? g_bytes_get_data(data, &n) : NULL;
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (gsize)w;
    }
    return true;
}

static void print_send_file(json_object *obj)
{
    json_object *files = jarray(obj, "files");
    size_t n = files ? json_object_array_length(files) : 0;
    GString *names = g_string_new(NULL);
    for (size_t i = 0; i < n; i++) {
        const char *name = jstr(json_object_array_get_idx(files, i), "name");
        if (names->len)
            g_string_append(names, ", ");
        g_string_append(names, name ? name : "?");
    }
    char *total = ctl_format_size(juint(obj, "bytes"));
    char *rate = ctl_format_size((guint64)jdouble(obj, "bytes_per_second"));
    double secs = jdouble(obj, "seconds");
    printf("sent %zu file%s (%s) in %.*f s, %s/s: %s\n", n, n == 1 ? "" : "s", total, secs < 10.0 ? 2 : 1, secs,
           rate, names->str);
    g_free(total);
    g_free(rate);
    g_string_free(names, TRUE);
}

static void print_words(const CtlRequest *req, const CtlResult *res)
{
    json_object *obj = res->obj;
    switch (req->id) {
    case CTL_CMD_STATUS:
        print_status(obj);
        break;
    case CTL_CMD_MONITORS:
        print_monitors(obj);
        break;
    case CTL_CMD_MOUSE_MOVE:
    case CTL_CMD_MOUSE_CLICK:
    case CTL_CMD_MOUSE_SCROLL:
        print_mouse(req, obj);
        break;
    case CTL_CMD_CLIPBOARD_SET:
        print_clipboard_set(obj);
        break;
    case CTL_CMD_CLIPBOARD_GET:
        break;   /* the data itself, written by the caller */
    case CTL_CMD_SEND_FILE:
        print_send_file(obj);
        break;
    case CTL_CMD_WATCH:
        break;
    case CTL_CMD_VOLUME: {
        char *levels = g_strdup("");
        json_object *a = jarray(obj, "levels");
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            char *t = g_strdup_printf("%s%s%d", levels, i ? " " : "", json_object_get_int(json_object_array_get_idx(a, i)));
            g_free(levels);
            levels = t;
        }
        printf("%s volume sent: %s%s\n", jstr(obj, "stream") ? jstr(obj, "stream") : "?", levels,
               jbool(obj, "mute") ? " (muted)" : "");
        g_free(levels);
        break;
    }
    case CTL_CMD_DISPLAY_CONFIG: {
        char *flags = join_strings(jarray(obj, "flags"), ", ");
        printf("display configuration sent: %s", flags[0] ? flags : "no flags");
        if (jint(obj, "depth", 0))
            printf(", depth %" PRId64, jint(obj, "depth", 0));
        printf("\n");
        g_free(flags);
        break;
    }
    case CTL_CMD_DEVICE_INFO: {
        json_object *a = jarray(obj, "devices");
        size_t n = a ? json_object_array_length(a) : 0;
        printf("graphics device info sent for %zu display%s\n", n, n == 1 ? "" : "s");
        break;
    }
    case CTL_CMD_DISCONNECT:
        printf("CLIENT_DISCONNECTED sent\n");
        break;
    case CTL_CMD_SERVE:
        break;
    }
    fflush(stdout);
}

void ctl_output_error(const CtlOptions *opts, int exit_status, const char *message)
{
    if (opts && opts->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(false));
        json_object_object_add(o, "error", json_object_new_string(message));
        json_object_object_add(o, "exit", json_object_new_int(exit_status));
        print_json_line(o);
        json_object_put(o);
        return;
    }
    fprintf(stderr, "vdagentctl: %s\n", message);
}

int ctl_output_result(const CtlOptions *opts, const CtlRequest *req, const CtlResult *res)
{
    if (opts->json) {
        json_object *o = ctl_result_to_json(res);
        if (res->data && req->id == CTL_CMD_CLIPBOARD_GET) {
            gsize n;
            const char *p = g_bytes_get_data(res->data, &n);
            const char *type = jstr(res->obj, "type");
            if (type && strcmp(type, "text") == 0 && g_utf8_validate_len(p, n, NULL))
                json_object_object_add(o, "text", json_object_new_string_len(p, (int)MIN(n, (gsize)G_MAXINT)));
        }
        print_json_line(o);
        json_object_put(o);
        return res->exit;
    }
    if (res->exit != CTL_EXIT_OK) {
        ctl_output_error(opts, res->exit, res->error ? res->error : "failed");
        return res->exit;
    }
    if (req->id == CTL_CMD_CLIPBOARD_GET) {
        if (!write_all_stdout(res->data)) {
            int e = errno;
            fprintf(stderr, "vdagentctl: cannot write the clipboard data to stdout: %s\n", g_strerror(e));
            return CTL_EXIT_IO;
        }
        return CTL_EXIT_OK;
    }
    print_words(req, res);
    if (ferror(stdout))
        return CTL_EXIT_IO;
    return CTL_EXIT_OK;
}

void ctl_output_serving(const CtlOptions *opts, const char *port, const char *control)
{
    if (opts->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(true));
        json_object_object_add(o, "serving", json_object_new_string(port));
        json_object_object_add(o, "control", json_object_new_string(control));
        json_object_object_add(o, "listen", json_object_new_boolean(opts->listen));
        json_object_object_add(o, "pid", json_object_new_int64((int64_t)getpid()));
        print_json_line(o);
        json_object_put(o);
        return;
    }
    printf("serving %s (%s); control socket %s\n", port,
           opts->listen ? "listening for a guest" : "connected to the VM's socket", control);
    fflush(stdout);
}
