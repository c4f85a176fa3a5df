/* vdd-status.c - the status JSON and the --status client. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vdd-status.h"
#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"
#include "vdp-ipc.h"
#include "vdp-unix.h"

/* How long --status waits for the daemon's answer. */
#define STATUS_TIMEOUT_MS 5000
/* The longest document: it travels in one STATUS_REPLY frame with its NUL.
 * Agents (local users) choose their layouts: 64 agents with 256 displays
 * each would be about 1.2 MB, so above this the per-display and
 * per-monitor lists are left out (their counts stay). */
#define STATUS_MAX_TEXT (VDP_IPC_MAX_FRAME - 1u)

/* ---- the document ---- */

static json_object *layout_json(const VddLayout *l, bool brief)
{
    if (!l)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "desktop_width", json_object_new_int64(l->desktop_width));
    json_object_object_add(o, "desktop_height", json_object_new_int64(l->desktop_height));
    uint32_t count = MIN(l->count, VDP_MAX_MONITORS);
    if (brief) {
        json_object_object_add(o, "displays_omitted", json_object_new_int64(count));
        return o;
    }
    json_object *arr = json_object_new_array();
    for (uint32_t i = 0; i < count; i++) {
        const VddDisplay *d = &l->displays[i];
        json_object *e = json_object_new_object();
        json_object_object_add(e, "id", json_object_new_int64(d->display_id));
        json_object_object_add(e, "x", json_object_new_int(d->x));
        json_object_object_add(e, "y", json_object_new_int(d->y));
        json_object_object_add(e, "width", json_object_new_int64(d->width));
        json_object_object_add(e, "height", json_object_new_int64(d->height));
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "displays", arr);
    return o;
}

static json_object *caps_json(const VdpCaps *caps)
{
    json_object *arr = json_object_new_array();
    for (unsigned bit = 0; caps && bit < caps->nwords * 32u; bit++) {
        if (!vdp_caps_has(caps, bit))
            continue;
        const char *n = vdp_cap_name(bit);
        if (n) {
            json_object_array_add(arr, json_object_new_string(n));
        } else {
            char b[16];
            snprintf(b, sizeof(b), "bit%u", bit);
            json_object_array_add(arr, json_object_new_string(b));
        }
    }
    return arr;
}

static json_object *monitors_json(const VdpMonitorsConfig *m, bool brief)
{
    if (!m)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "flags", json_object_new_int64(m->flags));
    uint32_t count = MIN(m->count, VDP_MAX_MONITORS);
    if (brief) {
        json_object_object_add(o, "monitors_omitted", json_object_new_int64(count));
        return o;
    }
    json_object *arr = json_object_new_array();
    for (uint32_t i = 0; i < count; i++) {
        const VdpMonConfig *c = &m->monitors[i];
        json_object *e = json_object_new_object();
        json_object_object_add(e, "width", json_object_new_int64(c->width));
        json_object_object_add(e, "height", json_object_new_int64(c->height));
        json_object_object_add(e, "depth", json_object_new_int64(c->depth));
        json_object_object_add(e, "x", json_object_new_int(c->x));
        json_object_object_add(e, "y", json_object_new_int(c->y));
        json_object_object_add(e, "mm_width", json_object_new_int(c->mm_width));
        json_object_object_add(e, "mm_height", json_object_new_int(c->mm_height));
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "monitors", arr);
    return o;
}

/* Strings in the document may come from anyone: an agent's name is what a
 * local user put in its HELLO (any bytes but NUL, possibly cut in the middle
 * of a character). JSON is UTF-8 text and json-c copies bytes >= 0x80 as
 * they are, so invalid sequences are replaced with U+FFFD here; so are the
 * control characters (C0, DEL, C1: U+009B is a CSI to some terminals) that
 * a reader printing the text could act on. */
static json_object *str_or_null(const char *s)
{
    if (!s)
        return NULL;
    char *valid = g_utf8_make_valid(s, -1);
    GString *out = g_string_sized_new(strlen(valid));
    for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (c < 0x20 || (c >= 0x7f && c < 0xa0))
            g_string_append_unichar(out, 0xFFFD);
        else
            g_string_append_len(out, p, g_utf8_next_char(p) - p);
    }
    json_object *o = json_object_new_string_len(out->str, (int)out->len);
    g_string_free(out, TRUE);
    g_free(valid);
    return o;
}

static char *status_text(const VddStatusInfo *info, bool brief)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "version", json_object_new_string(PACKAGE_VERSION));
    json_object *port = json_object_new_object();
    json_object_object_add(port, "path", str_or_null(info->port_path));
    json_object_object_add(port, "state", str_or_null(info->port_state));
    json_object_object_add(port, "opens", json_object_new_int64((int64_t)info->port_opens));
    json_object_object_add(root, "port", port);
    json_object *client = json_object_new_object();
    json_object_object_add(client, "connected", json_object_new_boolean(info->client_connected));
    json_object_object_add(client, "capabilities", caps_json(info->client_caps));
    json_object_object_add(root, "client", client);
    json_object_object_add(root, "session_integration", json_object_new_boolean(info->session_integration));
    json_object_object_add(root, "active_session", str_or_null(info->active_session));
    json_object_object_add(root, "locked", json_object_new_boolean(info->locked));
    json_object *agents = json_object_new_array();
    for (unsigned i = 0; i < info->nagents; i++) {
        const VddStatusAgent *a = &info->agents[i];
        json_object *e = json_object_new_object();
        json_object_object_add(e, "pid", json_object_new_int64(a->pid));
        json_object_object_add(e, "uid", json_object_new_int64(a->uid));
        json_object_object_add(e, "session", str_or_null(a->session));
        json_object_object_add(e, "name", str_or_null(a->name));
        json_object_object_add(e, "active", json_object_new_boolean(a->active));
        json_object_object_add(e, "layout", layout_json(a->layout, brief));
        json_object_array_add(agents, e);
    }
    json_object_object_add(root, "agents", agents);
    json_object_object_add(root, "mouse", str_or_null(info->mouse));
    json_object *clip = json_object_new_object();
    static const char *const sel_names[VDD_STATUS_NSEL] = {"clipboard", "primary", "secondary"};
    for (unsigned i = 0; i < VDD_STATUS_NSEL; i++)
        json_object_object_add(clip, sel_names[i],
                               str_or_null(info->clipboard_owner[i] ? info->clipboard_owner[i] : "none"));
    json_object_object_add(clip, "locked_out", json_object_new_boolean(info->clipboard_gated));
    json_object_object_add(root, "clipboard", clip);
    json_object_object_add(root, "file_transfers", json_object_new_int64(info->file_transfers));
    json_object_object_add(root, "monitors_config", monitors_json(info->monitors, brief));
    char *out = g_strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return out;
}

char *vdd_status_to_json(const VddStatusInfo *info)
{
    char *out = status_text(info, false);
    if (strlen(out) <= STATUS_MAX_TEXT)
        return out;
    g_free(out);
    out = status_text(info, true);
    if (strlen(out) <= STATUS_MAX_TEXT)
        return out;
    /* Cannot happen with the connection limits (64 agents, short names). */
    g_free(out);
    return g_strdup_printf("{\"version\":\"%s\",\"error\":\"the status is too large\"}",
                           PACKAGE_VERSION);
}

/* ---- text output ---- */

static const char *jstr(json_object *o, const char *key, const char *dflt)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return dflt;
    return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static bool jbool(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static json_object *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static void print_text(json_object *root)
{
    json_object *port = jget(root, "port");
    json_object *client = jget(root, "client");
    printf("spice-vdagentd %s\n", jstr(root, "version", "?"));
    printf("port:            %s (%s)\n", jstr(port, "state", "?"), jstr(port, "path", "?"));
    bool conn = jbool(client, "connected");
    printf("client:          %s\n", conn ? "connected" : "not connected");
    json_object *caps = jget(client, "capabilities");
    if (caps && json_object_array_length(caps) > 0) {
        printf("client caps:     ");
        for (size_t i = 0; i < json_object_array_length(caps); i++)
            printf("%s%s", i ? ", " : "", json_object_get_string(json_object_array_get_idx(caps, i)));
        printf("\n");
    }
    if (jbool(root, "session_integration"))
        printf("active session:  %s%s\n", jstr(root, "active_session", "none"),
               jbool(root, "locked") ? " (locked)" : "");
    else
        printf("active session:  session integration disabled\n");
    printf("mouse:           %s\n", jstr(root, "mouse", "?"));
    json_object *clip = jget(root, "clipboard");
    if (clip)
        printf("clipboard:       clipboard %s, primary %s, secondary %s%s\n", jstr(clip, "clipboard", "?"),
               jstr(clip, "primary", "?"), jstr(clip, "secondary", "?"),
               jbool(clip, "locked_out") ? " (not shared: session locked)" : "");
    printf("file transfers:  %" PRId64 "\n", jint(root, "file_transfers"));
    json_object *agents = jget(root, "agents");
    size_t n = agents ? json_object_array_length(agents) : 0;
    printf("agents:          %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(agents, i);
        printf("  pid %" PRId64 " uid %" PRId64 " session %s%s", jint(a, "pid"), jint(a, "uid"),
               jstr(a, "session", "-"), jbool(a, "active") ? " active" : "");
        json_object *l = jget(a, "layout");
        if (l) {
            printf(", desktop %" PRId64 "x%" PRId64, jint(l, "desktop_width"), jint(l, "desktop_height"));
            json_object *ds = jget(l, "displays");
            for (size_t j = 0; ds && j < json_object_array_length(ds); j++) {
                json_object *d = json_object_array_get_idx(ds, j);
                printf(" [%" PRId64 ": %" PRId64 "x%" PRId64 "%+" PRId64 "%+" PRId64 "]", jint(d, "id"),
                       jint(d, "width"), jint(d, "height"), jint(d, "x"), jint(d, "y"));
            }
            if (jget(l, "displays_omitted"))
                printf(", %" PRId64 " display(s) not listed", jint(l, "displays_omitted"));
        } else {
            printf(", no layout yet");
        }
        printf("\n");
    }
    json_object *mc = jget(root, "monitors_config");
    if (mc) {
        json_object *ms = jget(mc, "monitors");
        size_t m = ms ? json_object_array_length(ms) : 0;
        size_t total = ms ? m : (size_t)jint(mc, "monitors_omitted");
        printf("monitors config: %zu monitor%s, flags 0x%" PRIx64 "%s\n", total,
               total == 1 ? "" : "s", (uint64_t)jint(mc, "flags"),
               ms ? "" : " (not listed: the status was too large)");
        for (size_t j = 0; j < m; j++) {
            json_object *c = json_object_array_get_idx(ms, j);
            printf("  %zu: %" PRId64 "x%" PRId64 "%+" PRId64 "%+" PRId64 " depth %" PRId64, j,
                   jint(c, "width"), jint(c, "height"), jint(c, "x"), jint(c, "y"), jint(c, "depth"));
            if (jint(c, "mm_width") || jint(c, "mm_height"))
                printf(" (%" PRId64 "x%" PRId64 " mm)", jint(c, "mm_width"), jint(c, "mm_height"));
            printf("\n");
        }
    } else {
        printf("monitors config: none received\n");
    }
}

/* ---- the client ---- */

typedef struct StatusClient {
    VdpIpcConn *conn;
    bool done;
    char *json;
    char *error;
} StatusClient;

static void client_fail(StatusClient *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void client_fail(StatusClient *c, const char *fmt, ...)
{
    if (c->done)
        return;
    va_list ap;
    va_start(ap, fmt);
    c->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    c->done = true;
}

static bool client_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    StatusClient *c = user;
    VdpError err = {0};
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (c->done)
        return true;
    switch (hdr->type) {
    case VDP_IPC_WELCOME: {
        VdpIpcHello w;
        if (vdp_ipc_hello_decode(payload, hdr->size, &w, &err) != VDP_OK ||
            vdp_ipc_hello_check(&w, &err) != VDP_OK) {
            client_fail(c, "bad answer from the daemon: %s", err.text);
            break;
        }
        if (vdp_ipc_conn_send(c->conn, VDP_IPC_STATUS_REQUEST, 1, NULL, 0, NULL, 0) != VDP_OK)
            client_fail(c, "could not send the request");
        break;
    }
    case VDP_IPC_REJECT: {
        VdpIpcReject r;
        if (vdp_ipc_reject_decode(payload, hdr->size, &r, &err) == VDP_OK)
            client_fail(c, "the daemon refused the connection: %s", r.text);
        else
            client_fail(c, "the daemon refused the connection");
        break;
    }
    case VDP_IPC_STATUS_REPLY: {
        const char *json;
        size_t len;
        if (vdp_ipc_status_reply_decode(payload, hdr->size, &json, &len, &err) != VDP_OK) {
            client_fail(c, "bad status from the daemon: %s", err.text);
            break;
        }
        c->json = g_strndup(json, len);
        c->done = true;
        break;
    }
    default:
        break;
    }
    return true;
}

static void client_closed(void *user, const char *why)
{
    client_fail(user, "the daemon closed the connection: %s", why ? why : "end of file");
}

static gboolean client_timeout(gpointer data)
{
    client_fail(data, "no answer from the daemon within %d ms", STATUS_TIMEOUT_MS);
    return G_SOURCE_REMOVE;
}

int vdd_status_run_client(const char *socket_path, bool as_json)
{
    int fd = vdp_unix_connect(socket_path);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            fprintf(stderr, "spice-vdagentd: no daemon listening on %s\n", socket_path);
        else
            fprintf(stderr, "spice-vdagentd: cannot connect to %s: %s\n", socket_path, g_strerror(e));
        return 1;
    }
    GMainContext *ctx = g_main_context_new();
    StatusClient c = {0};
    static const VdpIpcConnCallbacks cb = {.frame = client_frame, .closed = client_closed};
    c.conn = vdp_ipc_conn_new(ctx, fd, NULL, &cb, &c);
    if (!c.conn) {
        fprintf(stderr, "spice-vdagentd: cannot use the connection: %s\n", g_strerror(errno));
        g_main_context_unref(ctx);
        return 1;
    }
    VdpIpcHello h;
    uint8_t buf[16 + VDP_IPC_NAME_MAX];
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_CONTROL, "spice-vdagentd --status " PACKAGE_VERSION);
    size_t n = vdp_ipc_hello_encode(&h, buf, sizeof(buf));
    if (vdp_ipc_conn_send(c.conn, VDP_IPC_HELLO, 1, buf, n, NULL, 0) != VDP_OK)
        client_fail(&c, "could not send the handshake");
    GSource *t = g_timeout_source_new(STATUS_TIMEOUT_MS);
    g_source_set_callback(t, client_timeout, &c, NULL);
    g_source_attach(t, ctx);
    while (!c.done)
        g_main_context_iteration(ctx, TRUE);
    g_source_destroy(t);
    g_source_unref(t);
    vdp_ipc_conn_free(c.conn);
    g_main_context_unref(ctx);

    int ret = 0;
    if (c.error) {
        fprintf(stderr, "spice-vdagentd: %s\n", c.error);
        ret = 1;
    } else if (as_json) {
        printf("%s\n", c.json);
    } else {
        json_object *root = json_tokener_parse(c.json);
        if (!root) {
            fprintf(stderr, "spice-vdagentd: the daemon's status is not valid JSON\n");
            ret = 1;
        } else {
            print_text(root);
            json_object_put(root);
        }
    }
    fflush(stdout);
    g_free(c.error);
    g_free(c.json);
    return ret;
}
