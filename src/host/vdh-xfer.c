/* vdh-xfer.c - file transfer to the guest, one batch at a time.
 *
 * Per file, in order: open it (GIO, asynchronous), send FILE_XFER_START
 * with the key file, wait for STATUS CAN_SEND_DATA, then read the file in
 * 256 KiB pieces (GIO, asynchronous: the loop never waits for the disk)
 * and send each 64 KiB of them as one FILE_XFER_DATA message. The port
 * queues them (several messages in flight); at the queue's high watermark
 * the transfer pauses and resumes on write_ready, so memory stays bounded
 * by the queue's high watermark plus one message and one read buffer.
 * Then wait for the final status and go on with the next file. The first
 * refusal fails the batch.
 *
 * Waiting for the guest is bounded by timeout_ms: for the answer to
 * START plainly; while sending and for the final status by a watchdog
 * that is re-armed as long as the guest keeps reading (the port's bytes
 * out grow), so a slow guest is not a dead one.
 *
 * Ids count up from 1 per connection (and after CLIENT_DISCONNECTED),
 * like spice-gtk; a status for an id that is not in flight is ignored.
 */
#include "config.h"

#define G_LOG_DOMAIN "vdh-host"

#include <string.h>

#include "vdh-host-priv.h"

/* File data per FILE_XFER_DATA message, as spice-gtk sends it. */
#define VDH_XFER_PIECE (64u * 1024u)
/* Bytes per asynchronous read: a few messages' worth, so the round trip
 * through GIO's worker thread is paid once per four messages. */
#define VDH_XFER_READ (4u * VDH_XFER_PIECE)

#define VDH_XFER_GROUP "vdagent-file-xfer"

typedef enum XferState {
    XFER_OPENING,      /* the file is being opened */
    XFER_WAIT_START,   /* START sent, waiting for CAN_SEND_DATA */
    XFER_SENDING,      /* DATA going out */
    XFER_WAIT_FINAL,   /* everything queued, waiting for SUCCESS */
} XferState;

typedef struct XferFile {
    char *path;
    char *name;        /* base name for the guest, UTF-8 */
    uint64_t size;
} XferFile;

struct VdhXfer {
    VdhHost *h;
    VdhOp *op;                 /* NULL once the batch ended */
    XferFile *files;
    unsigned nfiles, cur;
    uint64_t batch_size, batch_sent;
    VdhXferProgressFunc progress;
    void *progress_user;
    unsigned timeout_ms;

    XferState state;
    uint32_t id;
    bool in_flight;            /* START sent, no final status yet */
    GFileInputStream *in;
    GCancellable *io_cancel;
    bool io_busy;              /* an open or read is running */
    GBytes *buf;               /* read, not all sent yet */
    size_t buf_off;            /* bytes of buf already sent */
    uint64_t read_off, sent;
    uint64_t out_mark;         /* port bytes out when the watchdog was armed */
};

/* ---- the batch object ---- */

static void xfer_free(VdhXfer *x)
{
    for (unsigned i = 0; i < x->nfiles; i++) {
        g_free(x->files[i].path);
        g_free(x->files[i].name);
    }
    g_free(x->files);
    g_clear_object(&x->in);
    g_clear_object(&x->io_cancel);
    g_clear_pointer(&x->buf, g_bytes_unref);
    g_free(x);
}

static XferFile *cur_file(VdhXfer *x)
{
    return &x->files[x->cur];
}

static void send_status(VdhHost *h, uint32_t id, uint32_t result)
{
    VdpMsg msg = {.type = VD_AGENT_FILE_XFER_STATUS};
    msg.u.xfer_status.id = id;
    msg.u.xfer_status.result = result;
    GError *e = NULL;
    if (!vdh_send(h, &msg, &e)) {
        g_debug("cannot tell the guest that transfer %u ended: %s", id, e->message);
        g_error_free(e);
    }
}

/* The batch ended: tell the guest about a file it still waits for (unless
 * the guest itself went away or ended it), then let go. An open or read
 * still running frees the batch when it returns. */
static void xfer_cleanup(VdhOp *op, const GError *error)
{
    VdhXfer *x = op->data;
    VdhHost *h = op->h;
    if (error && x->in_flight && !g_error_matches(error, VDH_ERROR, VDH_ERROR_NOT_CONNECTED))
        send_status(h, x->id, g_error_matches(error, VDH_ERROR, VDH_ERROR_CANCELLED)
                                  ? VD_AGENT_FILE_XFER_STATUS_CANCELLED
                                  : VD_AGENT_FILE_XFER_STATUS_ERROR);
    h->xfer = NULL;
    x->op = NULL;
    g_cancellable_cancel(x->io_cancel);
    if (!x->io_busy)
        xfer_free(x);
}

void vdh_xfer_fail(VdhHost *h, VdhError code, const char *why)
{
    if (h->xfer)
        vdh_op_fail(h->xfer->op, code, "%s", why);
}

/* An open or read returned: false if the batch ended meanwhile (then it
 * was freed here and the host must not be touched). */
static bool io_returned(VdhXfer *x)
{
    x->io_busy = false;
    if (x->op)
        return true;
    xfer_free(x);
    return false;
}

/* ---- progress and the watchdog ---- */

static uint64_t port_bytes_out(VdhHost *h)
{
    VdpPortStats st;
    vdp_port_get_stats(h->port, &st);
    return st.stream.bytes_out;
}

/* Re-armed while the guest keeps reading, or while we are the ones that
 * are slow (reading the file, not blocked on the port). */
static bool watchdog_cb(VdhOp *op)
{
    VdhXfer *x = op->data;
    VdhHost *h = op->h;
    uint64_t out = port_bytes_out(h);
    bool guest_moved = out != x->out_mark;
    bool on_guest = x->state == XFER_WAIT_FINAL || h->write_blocked;
    if (x->state == XFER_WAIT_START || (!guest_moved && on_guest))
        return false;
    x->out_mark = out;
    vdh_op_set_timeout(op, x->timeout_ms, "%s", op->timeout_text);
    return true;
}

static void arm_watchdog(VdhXfer *x)
{
    const char *name = cur_file(x)->name;
    x->out_mark = port_bytes_out(x->h);
    if (x->state == XFER_SENDING)
        vdh_op_set_timeout(x->op, x->timeout_ms, "the guest stopped reading while receiving %s "
                           "(nothing for %u ms)", name, x->timeout_ms);
    else
        vdh_op_set_timeout(x->op, x->timeout_ms, "the guest did not confirm %s within %u ms",
                           name, x->timeout_ms);
}

/* Returns false if the batch ended from inside the callback. */
static bool report_progress(VdhXfer *x)
{
    VdhHost *h = x->h;
    if (!x->progress)
        return true;
    XferFile *f = cur_file(x);
    VdhXferProgress p = {
        .file_index = x->cur,
        .nfiles = x->nfiles,
        .name = f->name,
        .sent = x->sent,
        .size = f->size,
        .batch_sent = x->batch_sent,
        .batch_size = x->batch_size,
    };
    x->progress(x->progress_user, &p);
    return !h->dying && h->xfer == x;
}

/* ---- reading and sending ---- */

static void read_done(GObject *src, GAsyncResult *res, gpointer data);

static void start_read(VdhXfer *x)
{
    size_t n = (size_t)MIN((uint64_t)VDH_XFER_READ, cur_file(x)->size - x->read_off);
    x->io_busy = true;
    g_main_context_push_thread_default(x->h->ctx);
    g_input_stream_read_bytes_async(G_INPUT_STREAM(x->in), n, G_PRIORITY_DEFAULT, x->io_cancel,
                                    read_done, x);
    g_main_context_pop_thread_default(x->h->ctx);
}

static void read_done(GObject *src, GAsyncResult *res, gpointer data)
{
    VdhXfer *x = data;
    GError *e = NULL;
    GBytes *bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(src), res, &e);
    if (!io_returned(x)) {
        g_clear_error(&e);
        g_clear_pointer(&bytes, g_bytes_unref);
        return;
    }
    VdhHost *h = x->h;
    XferFile *f = cur_file(x);
    vdh_enter(h);
    if (!bytes) {
        vdh_op_fail(x->op, VDH_ERROR_IO, "cannot read %s: %s", f->path, e->message);
        g_error_free(e);
    } else if (g_bytes_get_size(bytes) == 0) {
        g_bytes_unref(bytes);
        vdh_op_fail(x->op, VDH_ERROR_IO, "%s ended after %" G_GUINT64_FORMAT " of %"
                    G_GUINT64_FORMAT " bytes (it shrank while being sent)", f->path, x->read_off,
                    f->size);
    } else {
        x->read_off += g_bytes_get_size(bytes);
        x->buf = bytes;
        x->buf_off = 0;
        vdh_xfer_pump(h);
    }
    vdh_leave(h);
}

/* Send the next piece of the buffer read as one DATA message. Returns
 * false when the caller must stop: the port is full (we come back on
 * write_ready or the retry) or the batch ended. */
static bool send_piece(VdhXfer *x)
{
    VdhHost *h = x->h;
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(x->buf, &len);
    size_t n = MIN(len - x->buf_off, (size_t)VDH_XFER_PIECE);
    VdpMsg msg = {.type = VD_AGENT_FILE_XFER_DATA};
    msg.u.xfer_data.id = x->id;
    msg.u.xfer_data.size = n;
    msg.u.xfer_data.data = data ? data + x->buf_off : NULL;
    GError *e = NULL;
    if (!vdh_send(h, &msg, &e)) {
        if (!g_error_matches(e, VDH_ERROR, VDH_ERROR_BUSY)) {
            vdh_op_fail_error(x->op, e);
            return false;
        }
        g_error_free(e);
        if (!h->write_blocked)
            vdh_schedule_pump(h);   /* refused without backpressure: retry */
        return false;
    }
    x->buf_off += n;
    if (x->buf_off == len)
        g_clear_pointer(&x->buf, g_bytes_unref);
    x->sent += n;
    x->batch_sent += n;
    return report_progress(x);
}

void vdh_xfer_pump(VdhHost *h)
{
    VdhXfer *x = h->xfer;
    if (!x || x->state != XFER_SENDING)
        return;
    while (x->buf && !h->write_blocked) {
        if (!send_piece(x))
            return;
    }
    if (x->sent == cur_file(x)->size) {
        x->state = XFER_WAIT_FINAL;
        g_clear_object(&x->in);
        arm_watchdog(x);
        return;
    }
    /* Read ahead even when the port just blocked: one buffer. */
    if (!x->buf && !x->io_busy)
        start_read(x);
}

/* ---- one file after the other ---- */

static void next_file(VdhXfer *x);

static char *start_keyfile(VdhXfer *x, size_t *len)
{
    XferFile *f = cur_file(x);
    GKeyFile *kf = g_key_file_new();
    g_key_file_set_string(kf, VDH_XFER_GROUP, "name", f->name);
    g_key_file_set_uint64(kf, VDH_XFER_GROUP, "size", f->size);
    g_key_file_set_integer(kf, VDH_XFER_GROUP, "file-xfer-nr", (gint)x->cur + 1);
    g_key_file_set_integer(kf, VDH_XFER_GROUP, "file-xfer-total", (gint)x->nfiles);
    gsize n = 0;
    char *text = g_key_file_to_data(kf, &n, NULL);
    g_key_file_free(kf);
    *len = n;
    return text;
}

static uint32_t alloc_id(VdhHost *h)
{
    if (h->next_xfer_id == 0)
        h->next_xfer_id = 1;   /* after a wrap: 0 is never used */
    return h->next_xfer_id++;
}

static void send_start(VdhXfer *x)
{
    VdhHost *h = x->h;
    VdpMsg msg = {.type = VD_AGENT_FILE_XFER_START};
    size_t len = 0;
    char *text = start_keyfile(x, &len);
    x->id = alloc_id(h);
    msg.u.xfer_start.id = x->id;
    msg.u.xfer_start.keyfile = text;
    msg.u.xfer_start.keyfile_len = len;
    GError *e = NULL;
    bool ok = vdh_send(h, &msg, &e);
    g_free(text);
    if (!ok) {
        vdh_op_fail_error(x->op, e);
        return;
    }
    x->in_flight = true;
    x->state = XFER_WAIT_START;
    vdh_op_set_timeout(x->op, x->timeout_ms, "the guest did not answer the transfer of %s "
                       "within %u ms", cur_file(x)->name, x->timeout_ms);
}

static void opened(GObject *src, GAsyncResult *res, gpointer data)
{
    VdhXfer *x = data;
    GError *e = NULL;
    GFileInputStream *in = g_file_read_finish(G_FILE(src), res, &e);
    if (!io_returned(x)) {
        g_clear_error(&e);
        g_clear_object(&in);
        return;
    }
    VdhHost *h = x->h;
    vdh_enter(h);
    if (!in) {
        vdh_op_fail(x->op, VDH_ERROR_IO, "cannot open %s: %s", cur_file(x)->path, e->message);
        g_error_free(e);
    } else {
        x->in = in;
        send_start(x);
    }
    vdh_leave(h);
}

static void next_file(VdhXfer *x)
{
    if (x->cur == x->nfiles) {
        vdh_op_succeed(x->op);
        return;
    }
    x->state = XFER_OPENING;
    x->read_off = x->sent = 0;
    x->io_busy = true;
    GFile *file = g_file_new_for_path(cur_file(x)->path);
    g_main_context_push_thread_default(x->h->ctx);
    g_file_read_async(file, G_PRIORITY_DEFAULT, x->io_cancel, opened, x);
    g_main_context_pop_thread_default(x->h->ctx);
    g_object_unref(file);
}

/* ---- statuses from the guest ---- */

/* What the guest's refusal means, in words. */
static char *gio_error_text(uint32_t code)
{
    GEnumClass *klass = g_type_class_ref(G_TYPE_IO_ERROR_ENUM);
    GEnumValue *v = g_enum_get_value(klass, (gint)code);
    char *text = v ? g_strdelimit(g_strdup(v->value_nick), "-", ' ') : g_strdup("unknown error");
    g_type_class_unref(klass);
    return text;
}

static char *error_detail_text(const VdpFileXferStatus *st)
{
    if (!st->has_detail)
        return g_strdup("it reported an error");
    if (st->error_type != VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO)
        return g_strdup_printf("error type %u, code %u", st->error_type, st->error_code);
    char *what = gio_error_text(st->error_code);
    char *text = g_strdup_printf("%s (GIO error %u)", what, st->error_code);
    g_free(what);
    return text;
}

static char *space_detail_text(const VdpFileXferStatus *st)
{
    if (!st->has_detail)
        return g_strdup("not enough space");
    char *free_text = vdh_format_size(st->disk_free_space);
    char *text = g_strdup_printf("not enough space, %s free", free_text);
    g_free(free_text);
    return text;
}

static char *refusal_reason(const VdpFileXferStatus *st)
{
    switch (st->result) {
    case VD_AGENT_FILE_XFER_STATUS_CANCELLED:
        return g_strdup("cancelled by the guest");
    case VD_AGENT_FILE_XFER_STATUS_ERROR:
        return error_detail_text(st);
    case VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE:
        return space_detail_text(st);
    case VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED:
        return g_strdup("the guest session is locked");
    case VD_AGENT_FILE_XFER_STATUS_VDAGENT_NOT_CONNECTED:
        return g_strdup("no session agent is running in the guest");
    case VD_AGENT_FILE_XFER_STATUS_DISABLED:
        return g_strdup("file transfer is disabled in the guest");
    default:
        return g_strdup_printf("status %u", st->result);
    }
}

static void on_refused(VdhXfer *x, const VdpFileXferStatus *st)
{
    char *why = refusal_reason(st);
    x->in_flight = false;   /* the guest ended it: nothing to tell it */
    vdh_op_fail(x->op, VDH_ERROR_REFUSED, "guest refused %s: %s", cur_file(x)->name, why);
    g_free(why);
}

static void on_can_send(VdhXfer *x)
{
    if (x->state != XFER_WAIT_START) {
        g_debug("CAN_SEND_DATA for transfer %u again: ignored", x->id);
        return;
    }
    x->state = XFER_SENDING;
    if (cur_file(x)->size == 0)
        x->buf = g_bytes_new(NULL, 0);   /* the guest completes on a DATA message */
    arm_watchdog(x);
    if (report_progress(x))
        vdh_xfer_pump(x->h);
}

static void on_success(VdhXfer *x)
{
    if (x->state != XFER_WAIT_FINAL) {
        vdh_op_fail(x->op, VDH_ERROR_PROTOCOL, "the guest reported %s complete before it had "
                    "all of it", cur_file(x)->name);
        return;
    }
    x->in_flight = false;
    x->cur++;
    next_file(x);
}

void vdh_xfer_on_status(VdhHost *h, const VdpFileXferStatus *st)
{
    VdhXfer *x = h->xfer;
    if (!x || !x->in_flight || st->id != x->id) {
        g_debug("FILE_XFER_STATUS %s for transfer %u, which is not in progress: ignored",
                vdp_xfer_status_name(st->result), st->id);
        return;
    }
    if (st->result == VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA)
        on_can_send(x);
    else if (st->result == VD_AGENT_FILE_XFER_STATUS_SUCCESS)
        on_success(x);
    else
        on_refused(x, st);
}

/* ---- the API ---- */

static bool stat_file(XferFile *f, const char *path, GError **error)
{
    GFile *file = g_file_new_for_path(path);
    GError *e = NULL;
    GFileInfo *info = g_file_query_info(file, G_FILE_ATTRIBUTE_STANDARD_TYPE ","
                                        G_FILE_ATTRIBUTE_STANDARD_SIZE, G_FILE_QUERY_INFO_NONE,
                                        NULL, &e);
    g_object_unref(file);
    if (!info) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_IO, "cannot send %s: %s", path, e->message);
        g_error_free(e);
        return false;
    }
    bool regular = g_file_info_get_file_type(info) == G_FILE_TYPE_REGULAR;
    f->size = (uint64_t)g_file_info_get_size(info);
    g_object_unref(info);
    if (!regular) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "cannot send %s: not a regular file",
                    path);
        return false;
    }
    f->path = g_strdup(path);
    f->name = g_filename_display_basename(path);
    return true;
}

static bool check_batch(VdhHost *h, const char *const *paths, GError **error)
{
    if (!vdh_check_ready(h, -1, error))
        return false;
    if (vdh_guest_has(h, VD_AGENT_CAP_FILE_XFER_DISABLED)) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_CAPABILITY,
                    "file transfer is disabled in the guest (it announced %s)",
                    vdp_cap_name(VD_AGENT_CAP_FILE_XFER_DISABLED));
        return false;
    }
    if (!paths || !paths[0]) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_INVALID, "no files to send");
        return false;
    }
    if (h->xfer) {
        g_set_error(error, VDH_ERROR, VDH_ERROR_BUSY, "a file transfer is already running");
        return false;
    }
    return true;
}

static VdhXfer *xfer_new(VdhHost *h, const char *const *paths, GError **error)
{
    VdhXfer *x = g_new0(VdhXfer, 1);
    x->h = h;
    x->nfiles = g_strv_length((char **)paths);
    x->files = g_new0(XferFile, x->nfiles);
    for (unsigned i = 0; i < x->nfiles; i++) {
        if (!stat_file(&x->files[i], paths[i], error)) {
            xfer_free(x);
            return NULL;
        }
        x->batch_size += x->files[i].size;
    }
    x->io_cancel = g_cancellable_new();
    return x;
}

void vdh_host_send_files_async(VdhHost *h, const char *const *paths, VdhXferProgressFunc progress,
                               void *progress_user, unsigned timeout_ms, GCancellable *c,
                               GAsyncReadyCallback cb, gpointer user)
{
    VdhOp *op = vdh_op_new(h, vdh_host_send_files_async, c, cb, user);
    GError *e = NULL;
    VdhXfer *x = check_batch(h, paths, &e) ? xfer_new(h, paths, &e) : NULL;
    if (!x) {
        vdh_op_fail_error(op, e);
        return;
    }
    x->op = op;
    x->progress = progress;
    x->progress_user = progress_user;
    x->timeout_ms = timeout_ms ? timeout_ms : VDH_TIMEOUT_DEFAULT_MS;
    op->data = x;
    op->cleanup = xfer_cleanup;
    op->on_timeout = watchdog_cb;
    h->xfer = x;
    next_file(x);
}

gboolean vdh_host_send_files_finish(VdhHost *h, GAsyncResult *res, GError **error)
{
    return vdh_op_finish(h, res, vdh_host_send_files_async, error);
}

gboolean vdh_host_send_files_sync(VdhHost *h, const char *const *paths,
                                  VdhXferProgressFunc progress, void *progress_user,
                                  unsigned timeout_ms, GError **error)
{
    VdhSync s = {0};
    vdh_host_send_files_async(h, paths, progress, progress_user, timeout_ms, NULL,
                              vdh_sync_callback, &s);
    vdh_sync_wait(h, &s);
    gboolean ok = vdh_host_send_files_finish(h, s.res, error);
    g_object_unref(s.res);
    return ok;
}
