/* vdp-fake-guest - a scripted guest agent without X, for vdagentctl's tests.
 *
 * It connects to a port socket like spice-vdagentd -s PATH does (VdpPort in
 * CONNECT mode, reconnecting with a short back-off), and behaves like a
 * simple guest agent:
 *  - announces its capabilities (a spice-vdagent set, minus --no-cap NAME,
 *    plus file-xfer-disabled with --file-xfer-disabled) with request=1 when
 *    the port opens, and answers the host's request=1;
 *  - answers MONITORS_CONFIG with REPLY (success, --reply-error, or nothing
 *    with --no-reply);
 *  - receives files into --save-dir (the key file's name reduced to its
 *    base name, size checked, NOT_ENOUGH_SPACE with --free-space N);
 *  - offers --clipboard-text after the capability exchange and answers
 *    REQUESTs with it;
 *  - fetches the host's clipboard on GRAB (utf8) into --clipboard-out.
 *
 * Every line on stdout is flushed at once, so a test can follow it:
 *   "<- DESCRIPTION"   a decoded message from the host (vdp_msg_describe)
 *   "-> DESCRIPTION"   a message sent to the host
 *   "== event"         connected, disconnected, saved, clipboard-out, ...
 *   "!! problem"       dropped input, refused transfers, local errors
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdp-caps.h"
#include "vdp-chunk.h"
#include "vdp-checksum.h"
#include "vdp-msg.h"
#include "vdp-port.h"

/* Clipboard data we accept from the host: plenty for tests, and bounded. */
#define FAKE_MAX_CLIPBOARD (128u * 1024u * 1024u)
/* Largest file we accept (a test tool, not a file server). */
#define FAKE_MAX_FILE_SIZE (UINT64_C(16) * 1024 * 1024 * 1024)
/* Files being received at once. */
#define FAKE_MAX_XFERS 64u

/* ---- options ---- */

static char *opt_socket;
static char **opt_no_cap;
static gboolean opt_file_xfer_disabled;
static gboolean opt_reply_error;
static gboolean opt_no_reply;
static char *opt_save_dir;
static char *opt_free_space;
static char *opt_clipboard_text;
static char *opt_clipboard_selection;
static char *opt_clipboard_out;
static int opt_reconnect_max = 100;

static const GOptionEntry entries[] = {
    {"socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_socket,
     "port socket to connect to (required)", "PATH"},
    {"no-cap", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_no_cap,
     "do not announce this capability (repeatable; e.g. monitors-config)", "NAME"},
    {"file-xfer-disabled", 0, 0, G_OPTION_ARG_NONE, &opt_file_xfer_disabled,
     "announce file-xfer-disabled and refuse transfers", NULL},
    {"reply-error", 0, 0, G_OPTION_ARG_NONE, &opt_reply_error,
     "answer MONITORS_CONFIG with REPLY error", NULL},
    {"no-reply", 0, 0, G_OPTION_ARG_NONE, &opt_no_reply,
     "never answer MONITORS_CONFIG (the host times out)", NULL},
    {"save-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_save_dir,
     "save received files in DIR (else they are received and discarded)", "DIR"},
    {"free-space", 0, 0, G_OPTION_ARG_STRING, &opt_free_space,
     "bytes free: larger files are refused with NOT_ENOUGH_SPACE", "N"},
    {"clipboard-text", 0, 0, G_OPTION_ARG_FILENAME, &opt_clipboard_text,
     "offer TEXT as the guest clipboard after the capability exchange", "TEXT"},
    {"clipboard-selection", 0, 0, G_OPTION_ARG_STRING, &opt_clipboard_selection,
     "selection for --clipboard-text: clipboard (default) or primary", "SEL"},
    {"clipboard-out", 0, 0, G_OPTION_ARG_FILENAME, &opt_clipboard_out,
     "fetch the host's clipboard (utf8) on GRAB and write it to FILE", "FILE"},
    {"reconnect-max", 0, 0, G_OPTION_ARG_INT, &opt_reconnect_max,
     "longest reconnect back-off in ms (default 100)", "MS"},
    {NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* ---- state ---- */

typedef struct Xfer {
    uint32_t id;
    char *path;          /* NULL when discarding (no --save-dir) */
    int fd;
    uint64_t size, received;
    uint64_t hash;
} Xfer;

typedef struct Guest {
    GMainLoop *loop;
    VdpPort *port;
    VdpCaps own, peer;
    bool have_peer;
    VdpLayout layout;
    bool grab_sent;            /* our clipboard offer went out on this connection */
    bool own_selection;        /* we still own the offered selection */
    uint8_t offer_selection;
    uint32_t serial[3];        /* grab serials per selection */
    bool clip_request_pending[3];
    bool has_free_space;
    uint64_t free_space;
    GHashTable *xfers;         /* id -> Xfer */
    int status;
} Guest;

static Guest guest;

/* ---- output ---- */

static void say(const char *prefix, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void say(const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stdout, "%s %s\n", prefix, text);
    fflush(stdout);
    g_free(text);
}

static void describe(const char *prefix, const VdpMsg *m)
{
    char line[1024];
    vdp_msg_describe(m, line, sizeof(line));
    say(prefix, "%s", line);
}

static void send_msg(const VdpMsg *m)
{
    VdpError err = {0};
    if (vdp_port_send_msg(guest.port, m, &guest.layout, &err) != VDP_OK) {
        say("!!", "cannot send %s: %s", vdp_msg_type_name(m->type),
            err.text[0] ? err.text : vdp_result_name(err.code));
        return;
    }
    describe("->", m);
}

/* ---- capabilities ---- */

static bool build_caps(VdpCaps *caps, GError **error)
{
    vdp_caps_init_guest(caps);
    for (char **n = opt_no_cap; n && *n; n++) {
        bool found = false;
        for (unsigned bit = 0; bit < VD_AGENT_END_CAP && !found; bit++) {
            const char *name = vdp_cap_name(bit);
            if (name && strcmp(name, *n) == 0) {
                vdp_caps_unset(caps, bit);
                found = true;
            }
        }
        if (!found) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "unknown capability name \"%s\"", *n);
            return false;
        }
    }
    if (opt_file_xfer_disabled)
        vdp_caps_set(caps, VD_AGENT_CAP_FILE_XFER_DISABLED);
    return true;
}

static void send_announce(uint32_t request)
{
    VdpMsg m = {.type = VD_AGENT_ANNOUNCE_CAPABILITIES};
    m.u.announce.request = request;
    m.u.announce.caps = guest.own;
    send_msg(&m);
}

static bool both_have(unsigned bit)
{
    return guest.have_peer && vdp_caps_both(&guest.own, &guest.peer, bit);
}

/* ---- clipboard ---- */

static void offer_clipboard(void)
{
    if (!opt_clipboard_text || guest.grab_sent || !both_have(VD_AGENT_CAP_CLIPBOARD_BY_DEMAND))
        return;
    uint8_t sel = guest.offer_selection;
    if (sel != VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD && !guest.layout.clipboard_selection) {
        say("!!", "the host has no clipboard-selection: cannot offer selection %u", sel);
        return;
    }
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_GRAB};
    m.u.grab.selection = sel;
    m.u.grab.serial = ++guest.serial[sel];
    m.u.grab.ntypes = 1;
    m.u.grab.types[0] = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    send_msg(&m);
    guest.grab_sent = true;
    guest.own_selection = true;
}

static void answer_request(const VdpClipboardRequest *rq)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD};
    m.u.clipboard.selection = rq->selection;
    if (guest.own_selection && rq->selection == guest.offer_selection &&
        rq->type == VD_AGENT_CLIPBOARD_UTF8_TEXT) {
        m.u.clipboard.type = VD_AGENT_CLIPBOARD_UTF8_TEXT;
        m.u.clipboard.data = (const uint8_t *)opt_clipboard_text;
        m.u.clipboard.size = strlen(opt_clipboard_text);
    } else {
        /* What spice-vdagent sends when it has nothing of that type. */
        m.u.clipboard.type = VD_AGENT_CLIPBOARD_NONE;
        m.u.clipboard.data = NULL;
        m.u.clipboard.size = 0;
    }
    send_msg(&m);
}

static void host_grab(const VdpClipboardGrab *g)
{
    if (g->selection >= G_N_ELEMENTS(guest.serial))
        return;
    if (g->serial > guest.serial[g->selection])
        guest.serial[g->selection] = g->serial;
    if (g->selection == guest.offer_selection)
        guest.own_selection = false;
    if (!opt_clipboard_out)
        return;
    bool has_text = false;
    for (uint32_t i = 0; i < g->ntypes && i < VDP_MAX_GRAB_TYPES; i++)
        has_text = has_text || g->types[i] == VD_AGENT_CLIPBOARD_UTF8_TEXT;
    if (!has_text) {
        say("!!", "host offers no utf8-text on selection %u: not fetched", g->selection);
        return;
    }
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_REQUEST};
    m.u.request.selection = g->selection;
    m.u.request.type = VD_AGENT_CLIPBOARD_UTF8_TEXT;
    send_msg(&m);
    guest.clip_request_pending[g->selection] = true;
}

static void host_clipboard(const VdpClipboard *cb)
{
    if (cb->selection >= G_N_ELEMENTS(guest.clip_request_pending) ||
        !guest.clip_request_pending[cb->selection]) {
        say("!!", "unrequested CLIPBOARD data on selection %u ignored", cb->selection);
        return;
    }
    guest.clip_request_pending[cb->selection] = false;
    if (!opt_clipboard_out)
        return;
    GError *error = NULL;
    /* g_file_set_contents writes a temporary file and renames it, so a
     * test polling for the file never sees it half written. */
    if (!g_file_set_contents(opt_clipboard_out, (const char *)(cb->size ? cb->data : (const uint8_t *)""),
                             (gssize)cb->size, &error)) {
        say("!!", "clipboard-out: %s", error->message);
        g_error_free(error);
        return;
    }
    say("==", "clipboard-out %s size=%zu fnv1a=%016" PRIx64, opt_clipboard_out, cb->size,
        vdp_fnv1a(VDP_FNV_INIT, cb->data, cb->size));
}

/* ---- file transfer ---- */

static void send_status(uint32_t id, uint32_t result, bool detail, uint64_t free_space,
                        uint32_t io_error)
{
    VdpMsg m = {.type = VD_AGENT_FILE_XFER_STATUS};
    m.u.xfer_status.id = id;
    m.u.xfer_status.result = result;
    if (detail && both_have(VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS)) {
        m.u.xfer_status.has_detail = true;
        if (result == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE) {
            m.u.xfer_status.disk_free_space = free_space;
        } else {
            m.u.xfer_status.error_type = VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO;
            m.u.xfer_status.error_code = io_error;
        }
    } else if (result != VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA &&
               result != VD_AGENT_FILE_XFER_STATUS_SUCCESS &&
               result != VD_AGENT_FILE_XFER_STATUS_CANCELLED &&
               !both_have(VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS)) {
        /* Clients without detailed errors only know ERROR. */
        m.u.xfer_status.result = VD_AGENT_FILE_XFER_STATUS_ERROR;
    }
    send_msg(&m);
}

static void xfer_free(gpointer data)
{
    Xfer *x = data;
    if (x->fd >= 0)
        close(x->fd);
    g_free(x->path);
    g_free(x);
}

/* Drop a transfer, removing its partial file. */
static void xfer_abort(Xfer *x, const char *why)
{
    say("!!", "transfer %u aborted after %" PRIu64 " of %" PRIu64 " bytes: %s", x->id,
        x->received, x->size, why);
    if (x->fd >= 0) {
        close(x->fd);
        x->fd = -1;
    }
    if (x->path)
        g_unlink(x->path);
    g_hash_table_remove(guest.xfers, GUINT_TO_POINTER(x->id));
}

static void xfer_abort_all(const char *why)
{
    GList *list = g_hash_table_get_values(guest.xfers);
    for (GList *l = list; l; l = l->next)
        xfer_abort(l->data, why);
    g_list_free(list);
}

/* Create NAME in the save dir, or "NAME (n)" if it exists. */
static int create_unique(const char *name, char **path_out)
{
    for (unsigned n = 0; n < 100; n++) {
        char *file = n ? g_strdup_printf("%s (%u)", name, n) : g_strdup(name);
        char *path = g_build_filename(opt_save_dir, file, NULL);
        g_free(file);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *path_out = path;
            return fd;
        }
        int e = errno;
        g_free(path);
        if (e != EEXIST) {
            errno = e;
            return -1;
        }
    }
    errno = EEXIST;
    return -1;
}

static void xfer_finish(Xfer *x)
{
    if (x->fd >= 0 && close(x->fd) != 0) {
        int e = errno;
        x->fd = -1;
        send_status(x->id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, (uint32_t)g_io_error_from_errno(e));
        xfer_abort(x, g_strerror(e));
        return;
    }
    x->fd = -1;
    send_status(x->id, VD_AGENT_FILE_XFER_STATUS_SUCCESS, false, 0, 0);
    say("==", "saved %s size=%" PRIu64 " fnv1a=%016" PRIx64, x->path ? x->path : "(discarded)",
        x->size, x->hash);
    if (guest.has_free_space)
        guest.free_space = guest.free_space > x->size ? guest.free_space - x->size : 0;
    g_hash_table_remove(guest.xfers, GUINT_TO_POINTER(x->id));
}

static void xfer_start(const VdpFileXferStart *s)
{
    uint32_t id = s->id;
    if (opt_file_xfer_disabled) {
        send_status(id, VD_AGENT_FILE_XFER_STATUS_DISABLED, false, 0, 0);
        return;
    }
    if (g_hash_table_contains(guest.xfers, GUINT_TO_POINTER(id))) {
        say("!!", "transfer id %u is already in use", id);
        send_status(id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, G_IO_ERROR_EXISTS);
        return;
    }
    if (g_hash_table_size(guest.xfers) >= FAKE_MAX_XFERS) {
        send_status(id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, G_IO_ERROR_BUSY);
        return;
    }
    GKeyFile *kf = g_key_file_new();
    GError *error = NULL;
    char *name = NULL, *base = NULL;
    uint64_t size = 0;
    bool ok = g_key_file_load_from_data(kf, s->keyfile, s->keyfile_len, G_KEY_FILE_NONE, &error);
    if (ok) {
        name = g_key_file_get_string(kf, "vdagent-file-xfer", "name", &error);
        ok = name != NULL;
    }
    if (ok) {
        size = g_key_file_get_uint64(kf, "vdagent-file-xfer", "size", &error);
        ok = error == NULL;
    }
    g_key_file_free(kf);
    if (!ok) {
        say("!!", "transfer %u: bad key file: %s", id, error->message);
        g_error_free(error);
        g_free(name);
        send_status(id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, G_IO_ERROR_INVALID_DATA);
        return;
    }
    /* Confined to a base name: no directories, no "." or "..". */
    base = g_path_get_basename(name);
    bool name_ok = g_utf8_validate(name, -1, NULL) && base[0] && strcmp(base, ".") != 0 &&
                   strcmp(base, "..") != 0 && strcmp(base, "/") != 0;
    if (!name_ok) {
        say("!!", "transfer %u: unusable file name", id);
        send_status(id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, G_IO_ERROR_INVALID_FILENAME);
        goto out;
    }
    if (strcmp(base, name) != 0)
        say("==", "transfer %u: name \"%s\" reduced to \"%s\"", id, name, base);
    if (guest.has_free_space && size > guest.free_space) {
        say("!!", "transfer %u: %s needs %" PRIu64 " bytes, %" PRIu64 " free", id, base, size,
            guest.free_space);
        send_status(id, VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE, true, guest.free_space, 0);
        goto out;
    }
    if (size > FAKE_MAX_FILE_SIZE) {
        send_status(id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, G_IO_ERROR_NO_SPACE);
        goto out;
    }
    Xfer *x = g_new0(Xfer, 1);
    x->id = id;
    x->fd = -1;
    x->size = size;
    x->hash = VDP_FNV_INIT;
    if (opt_save_dir) {
        x->fd = create_unique(base, &x->path);
        if (x->fd < 0) {
            int e = errno;
            say("!!", "transfer %u: cannot create %s in %s: %s", id, base, opt_save_dir, g_strerror(e));
            send_status(id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, (uint32_t)g_io_error_from_errno(e));
            xfer_free(x);
            goto out;
        }
    }
    g_hash_table_insert(guest.xfers, GUINT_TO_POINTER(id), x);
    send_status(id, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA, false, 0, 0);
    if (size == 0)
        xfer_finish(x);
out:
    g_free(base);
    g_free(name);
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void xfer_data(const VdpFileXferData *d)
{
    Xfer *x = g_hash_table_lookup(guest.xfers, GUINT_TO_POINTER(d->id));
    if (!x) {
        say("!!", "data for unknown transfer %u ignored", d->id);
        return;
    }
    if (d->size > x->size - x->received) {
        send_status(x->id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, G_IO_ERROR_INVALID_DATA);
        xfer_abort(x, "more data than announced");
        return;
    }
    if (x->fd >= 0 && !write_all(x->fd, d->data, (size_t)d->size)) {
        int e = errno ? errno : EIO;
        send_status(x->id, VD_AGENT_FILE_XFER_STATUS_ERROR, true, 0, (uint32_t)g_io_error_from_errno(e));
        xfer_abort(x, g_strerror(e));
        return;
    }
    x->received += d->size;
    x->hash = vdp_fnv1a(x->hash, d->data, (size_t)d->size);
    if (x->received == x->size)
        xfer_finish(x);
}

static void xfer_status(const VdpFileXferStatus *st)
{
    Xfer *x = g_hash_table_lookup(guest.xfers, GUINT_TO_POINTER(st->id));
    if (!x)
        return;
    const char *name = vdp_xfer_status_name(st->result);
    xfer_abort(x, name ? name : "status from the host");
}

/* ---- messages ---- */

static void handle(const VdpMsg *m)
{
    switch (m->type) {
    case VD_AGENT_ANNOUNCE_CAPABILITIES:
        guest.peer = m->u.announce.caps;
        guest.have_peer = true;
        vdp_layout_from_caps(&guest.layout, &guest.own, &guest.peer);
        if (m->u.announce.request)
            send_announce(0);
        offer_clipboard();
        break;
    case VD_AGENT_MONITORS_CONFIG:
        if (!opt_no_reply && vdp_caps_has(&guest.own, VD_AGENT_CAP_REPLY)) {
            VdpMsg r = {.type = VD_AGENT_REPLY};
            r.u.reply.type = VD_AGENT_MONITORS_CONFIG;
            r.u.reply.error = opt_reply_error ? VD_AGENT_ERROR : VD_AGENT_SUCCESS;
            send_msg(&r);
        }
        break;
    case VD_AGENT_CLIPBOARD_GRAB:
        host_grab(&m->u.grab);
        break;
    case VD_AGENT_CLIPBOARD_REQUEST:
        answer_request(&m->u.request);
        break;
    case VD_AGENT_CLIPBOARD_RELEASE:
        break;
    case VD_AGENT_CLIPBOARD:
        host_clipboard(&m->u.clipboard);
        break;
    case VD_AGENT_FILE_XFER_START:
        xfer_start(&m->u.xfer_start);
        break;
    case VD_AGENT_FILE_XFER_DATA:
        xfer_data(&m->u.xfer_data);
        break;
    case VD_AGENT_FILE_XFER_STATUS:
        xfer_status(&m->u.xfer_status);
        break;
    case VD_AGENT_CLIENT_DISCONNECTED:
        /* The client is gone: per-client state goes with it. */
        xfer_abort_all("client disconnected");
        memset(guest.clip_request_pending, 0, sizeof(guest.clip_request_pending));
        guest.grab_sent = false;
        guest.own_selection = false;
        break;
    default:
        break;
    }
}

static void on_message(void *user, uint32_t chunk_port, const VdpMsgHeader *hdr,
                       const uint8_t *data, size_t len)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    VdpError err = {0};
    if (vdp_msg_decode(VDP_FROM_HOST, chunk_port, hdr->type, data, len, &guest.layout, m, &err) != VDP_OK) {
        say("!!", "dropped: %s", err.text);
    } else {
        describe("<-", m);
        handle(m);
    }
    g_free(m);
}

static void on_problem(void *user, VdpReasmEvent ev, uint32_t chunk_port, const VdpMsgHeader *hdr,
                       const VdpError *err)
{
    say("!!", "%s on chunk port %u: %s", ev == VDP_REASM_FATAL ? "framing error" : "dropped",
        chunk_port, err->text);
}

static void on_state(void *user, VdpPortState state, const char *why)
{
    switch (state) {
    case VDP_PORT_STATE_OPEN:
        say("==", "connected to %s", opt_socket);
        guest.have_peer = false;
        memset(&guest.layout, 0, sizeof(guest.layout));
        memset(guest.clip_request_pending, 0, sizeof(guest.clip_request_pending));
        guest.grab_sent = false;
        guest.own_selection = false;
        send_announce(1);
        break;
    case VDP_PORT_STATE_WAITING:
        if (guest.have_peer)
            say("==", "disconnected%s%s", why ? ": " : "", why ? why : "");
        guest.have_peer = false;
        xfer_abort_all("port closed");
        break;
    case VDP_PORT_STATE_STOPPED:
        break;
    }
}

static size_t max_payload(void *user, uint32_t type)
{
    size_t limit = vdp_msg_max_payload(type);
    if (type == VD_AGENT_CLIPBOARD && limit > FAKE_MAX_CLIPBOARD + 8u)
        limit = FAKE_MAX_CLIPBOARD + 8u;
    return limit;
}

static const VdpPortCallbacks port_cb = {
    .state_changed = on_state,
    .message = on_message,
    .problem = on_problem,
};

static gboolean on_signal(gpointer data)
{
    g_main_loop_quit(guest.loop);
    return G_SOURCE_CONTINUE;
}

static bool parse_options(int argc, char **argv, GError **error)
{
    GOptionContext *ctx = g_option_context_new("- a scripted SPICE guest agent for tests");
    g_option_context_add_main_entries(ctx, entries, NULL);
    bool ok = g_option_context_parse(ctx, &argc, &argv, error);
    g_option_context_free(ctx);
    if (!ok)
        return false;
    if (argc > 1) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument \"%s\"", argv[1]);
        return false;
    }
    if (!opt_socket || !opt_socket[0]) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "-s PATH is required");
        return false;
    }
    if (opt_reconnect_max < 10 || opt_reconnect_max > 60000) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--reconnect-max must be between 10 and 60000 ms");
        return false;
    }
    if (opt_reply_error && opt_no_reply) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "--reply-error and --no-reply exclude each other");
        return false;
    }
    if (opt_free_space) {
        guint64 v;
        if (!g_ascii_string_to_unsigned(opt_free_space, 10, 0, G_MAXUINT64, &v, error))
            return false;
        guest.has_free_space = true;
        guest.free_space = v;
    }
    guest.offer_selection = VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD;
    if (opt_clipboard_selection) {
        if (strcmp(opt_clipboard_selection, "primary") == 0) {
            guest.offer_selection = VD_AGENT_CLIPBOARD_SELECTION_PRIMARY;
        } else if (strcmp(opt_clipboard_selection, "clipboard") != 0) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--clipboard-selection must be clipboard or primary");
            return false;
        }
    }
    if (opt_clipboard_text && (!opt_clipboard_text[0] || !g_utf8_validate(opt_clipboard_text, -1, NULL))) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--clipboard-text must be non-empty UTF-8");
        return false;
    }
    if (opt_save_dir && !g_file_test(opt_save_dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--save-dir %s is not a directory", opt_save_dir);
        return false;
    }
    return build_caps(&guest.own, error);
}

int main(int argc, char **argv)
{
    GError *error = NULL;
    if (!parse_options(argc, argv, &error)) {
        fprintf(stderr, "vdp-fake-guest: %s\n", error->message);
        g_error_free(error);
        return 1;
    }
    guest.xfers = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, xfer_free);
    guest.loop = g_main_loop_new(NULL, FALSE);

    VdpPortConfig cfg = {
        .path = opt_socket,
        .mode = VDP_PORT_CONNECT,
        .dir = VDP_FROM_HOST,
        .max_payload = max_payload,
        .layout = &guest.layout,
        .reconnect_min_ms = 10,
        .reconnect_max_ms = (unsigned)opt_reconnect_max,
    };
    guest.port = vdp_port_new(NULL, &cfg, &port_cb, NULL);
    if (!guest.port) {
        fprintf(stderr, "vdp-fake-guest: invalid port configuration\n");
        return 1;
    }
    guint s1 = g_unix_signal_add(SIGINT, on_signal, NULL);
    guint s2 = g_unix_signal_add(SIGTERM, on_signal, NULL);
    char caps[1024];
    vdp_caps_format(&guest.own, caps, sizeof(caps));
    say("==", "fake guest for %s, caps %s", opt_socket, caps);
    vdp_port_start(guest.port);
    g_main_loop_run(guest.loop);

    say("==", "exiting");
    g_source_remove(s1);
    g_source_remove(s2);
    xfer_abort_all("exiting");
    vdp_port_free(guest.port);
    g_hash_table_destroy(guest.xfers);
    g_main_loop_unref(guest.loop);
    g_strfreev(opt_no_cap);
    g_free(opt_socket);
    g_free(opt_save_dir);
    g_free(opt_free_space);
    g_free(opt_clipboard_text);
    g_free(opt_clipboard_selection);
    g_free(opt_clipboard_out);
    return guest.status;
}
