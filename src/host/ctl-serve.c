/* ctl-serve.c - `vdagentctl serve` and the client side of its control
 * socket.
 *
 * A serve keeps one CtlSession (one guest connection) and accepts commands
 * as JSON lines on a UNIX socket (default "<port>.ctl", mode 0600):
 *
 *   -> {"command": "monitors", "args": ["1920x1080"], "timeout": 10}
 *   <- {"ok": true, "command": "monitors", ...}
 *   <- {"ok": false, "error": "...", "exit": 3}
 *
 * One request at a time per connection; each is answered when its
 * operation finishes, so many clients can wait at once. Lines without "ok"
 * come before the answer: {"event": ...} for watch (until the client goes
 * away) and {"progress": {...}} for send-file with "progress": true.
 *
 * Everything is asynchronous on the main loop. Bounds: a request line of
 * CTL_MAX_REQUEST_LINE, CTL_MAX_PENDING_INPUT over all clients,
 * CTL_MAX_CLIENTS clients, CTL_REQUEST_IDLE_MS to complete a request, and
 * CTL_MAX_CLIENT_BACKLOG of output waiting for a slow watcher.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <glib/gstdio.h>

#include "ctl.h"
#include "vdp-unix.h"

#define READ_PIECE (64u * 1024u)
/* Requests a client may send ahead while one runs, and their bytes. */
#define MAX_QUEUED_LINES 8u
#define MAX_QUEUED_BYTES (1024u * 1024u)
/* Progress lines are dropped (not the client) above this backlog. */
#define PROGRESS_BACKLOG (256u * 1024u)
/* JSON nesting accepted in a request. */
#define JSON_DEPTH 8
/* Structural characters (, : [ {) outside strings accepted in a request:
 * CTL_MAX_ARGS arguments plus the few keys. json-c spends tens of bytes
 * per value, so a request line of small values would otherwise cost
 * many times its own size to parse. */
#define JSON_MAX_TOKENS (2u * CTL_MAX_ARGS + 64u)

/* ---- Peer: a line-oriented, asynchronous socket connection ---- */

typedef struct Peer Peer;

typedef struct PeerCallbacks {
    /* A complete line (without '\n'; NUL-terminated; valid during the call). */
    void (*line)(void *user, char *line, size_t len);
    /* The other side finished sending (it may still read). */
    void (*eof)(void *user);
    /* The connection failed or was closed (hang-up, error, oversize line);
     * the peer is closed. Called at most once, never after peer_close(). */
    void (*failed)(void *user, const char *why);
} PeerCallbacks;

struct Peer {
    int refs;
    GSocketConnection *conn;
    GInputStream *in;
    GOutputStream *out;
    GCancellable *rcancel, *wcancel;
    GByteArray *rbuf;
    size_t scanned;             /* bytes of rbuf known to hold no '\n' */
    size_t max_line;
    size_t *budget;             /* shared input counter (serve) */
    size_t budget_limit;
    GQueue wq;                  /* GBytes */
    size_t wq_bytes;
    bool writing, closed, close_after_flush, eof;
    bool reply_errors;          /* serve side: say why before closing */
    GSource *hup;
    PeerCallbacks cb;
    void *user;
    const char *what;           /* for messages: "control client", "serve" */
};

static Peer *peer_ref(Peer *p)
{
    p->refs++;
    return p;
}

static void peer_unref(Peer *p)
{
    if (--p->refs > 0)
        return;
    if (p->budget)
        *p->budget -= p->rbuf->len;
    g_byte_array_unref(p->rbuf);
    g_queue_clear_full(&p->wq, (GDestroyNotify)g_bytes_unref);
    if (p->hup) {
        g_source_destroy(p->hup);
        g_source_unref(p->hup);
    }
    g_object_unref(p->rcancel);
    g_object_unref(p->wcancel);
    g_object_unref(p->conn);
    g_free(p);
}

static Peer *peer_new(GSocketConnection *conn, size_t max_line, size_t *budget, size_t budget_limit,
                      const PeerCallbacks *cb, void *user, const char *what)
{
    Peer *p = g_new0(Peer, 1);
    p->refs = 1;
    p->conn = g_object_ref(conn);
    p->in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    p->out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    p->rcancel = g_cancellable_new();
    p->wcancel = g_cancellable_new();
    p->rbuf = g_byte_array_new();
    p->max_line = max_line;
    p->budget = budget;
    p->budget_limit = budget_limit;
    g_queue_init(&p->wq);
    p->cb = *cb;
    p->user = user;
    p->what = what;
    return p;
}

/* Close now: no more callbacks. The memory goes with the last ref. */
static void peer_close(Peer *p)
{
    if (p->closed)
        return;
    p->closed = true;
    g_cancellable_cancel(p->rcancel);
    g_cancellable_cancel(p->wcancel);
    if (p->hup)
        g_source_destroy(p->hup);
    /* Closing a socket does not block. */
    g_io_stream_close(G_IO_STREAM(p->conn), NULL, NULL);
}

static void peer_fail(Peer *p, const char *why)
{
    if (p->closed)
        return;
    ctl_debug("%s: %s", p->what, why);
    peer_close(p);
    if (p->cb.failed)
        p->cb.failed(p->user, why);
}

static void peer_write_next(Peer *p);
static void peer_send_json(Peer *p, json_object *obj);
static void peer_finish(Peer *p);

/* Input we will not take (oversize, NUL, flooding): a serve tells the
 * client why (best effort) and closes after that line. */
static void peer_reject(Peer *p, const char *why)
{
    if (p->closed)
        return;
    if (!p->reply_errors) {
        peer_fail(p, why);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(false));
    json_object_object_add(o, "error", json_object_new_string(why));
    json_object_object_add(o, "exit", json_object_new_int(CTL_EXIT_USAGE));
    peer_send_json(p, o);
    json_object_put(o);
    peer_finish(p);
    PeerCallbacks cb = p->cb;
    memset(&p->cb, 0, sizeof(p->cb));
    if (cb.failed)
        cb.failed(p->user, why);
}

static void write_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Peer *p = data;
    GError *error = NULL;
    gsize written = 0;
    bool ok = g_output_stream_write_all_finish(G_OUTPUT_STREAM(src), res, &written, &error);
    p->writing = false;
    GBytes *b = g_queue_pop_head(&p->wq);
    if (b) {
        p->wq_bytes -= g_bytes_get_size(b);
        g_bytes_unref(b);
    }
    if (!ok) {
        if (!p->closed) {
            char *why = g_strdup_printf("write: %s", error->message);
            peer_fail(p, why);
            g_free(why);
        }
        g_error_free(error);
    } else if (!p->closed) {
        peer_write_next(p);
    }
    peer_unref(p);
}

static void peer_write_next(Peer *p)
{
    if (p->writing || p->closed)
        return;
    GBytes *b = g_queue_peek_head(&p->wq);
    if (!b) {
        if (p->close_after_flush)
            peer_close(p);
        return;
    }
    p->writing = true;
    gsize n;
    const void *d = g_bytes_get_data(b, &n);
    g_output_stream_write_all_async(p->out, d, n, G_PRIORITY_DEFAULT, p->wcancel, write_done, peer_ref(p));
}

static size_t peer_backlog(const Peer *p)
{
    return p->wq_bytes;
}

static void peer_send_text(Peer *p, const char *text, size_t len)
{
    if (p->closed || p->close_after_flush)
        return;
    char *line = g_malloc(len + 1);
    memcpy(line, text, len);
    line[len] = '\n';
    GBytes *b = g_bytes_new_take(line, len + 1);
    p->wq_bytes += len + 1;
    g_queue_push_tail(&p->wq, b);
    peer_write_next(p);
}

static void peer_send_json(Peer *p, json_object *obj)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                         &len);
    peer_send_text(p, text, len);
}

/* Write what is queued, then close. */
static void peer_finish(Peer *p)
{
    p->close_after_flush = true;
    g_cancellable_cancel(p->rcancel);
    peer_write_next(p);
}

/* The owner goes away: no more callbacks, no more reading. A peer told to
 * finish still writes out its queue; any other closes now. */
static void peer_detach(Peer *p)
{
    memset(&p->cb, 0, sizeof(p->cb));
    p->user = NULL;
    g_cancellable_cancel(p->rcancel);
    if (p->hup)
        g_source_destroy(p->hup);
    if (!p->close_after_flush)
        peer_close(p);
}

static gboolean hup_cb(GSocket *sock, GIOCondition cond, gpointer data)
{
    Peer *p = data;
    peer_fail(p, "the other side closed the connection");
    return G_SOURCE_REMOVE;
}

static void peer_read_next(Peer *p);

static void read_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Peer *p = data;
    GError *error = NULL;
    GBytes *bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(src), res, &error);
    if (p->closed || !p->cb.line || g_cancellable_is_cancelled(p->rcancel)) {
        if (bytes)
            g_bytes_unref(bytes);
        g_clear_error(&error);
        peer_unref(p);
        return;
    }
    if (!bytes) {
        char *why = g_strdup_printf("read: %s", error->message);
        peer_fail(p, why);
        g_free(why);
        g_error_free(error);
        peer_unref(p);
        return;
    }
    gsize n;
    const uint8_t *d = g_bytes_get_data(bytes, &n);
    if (n == 0) {
        g_bytes_unref(bytes);
        p->eof = true;
        /* A half-closed client still reads its answer; a full close shows
         * as a hang-up. */
        GSocket *sock = g_socket_connection_get_socket(p->conn);
        p->hup = g_socket_create_source(sock, G_IO_HUP | G_IO_ERR, NULL);
        g_source_set_callback(p->hup, (GSourceFunc)(void (*)(void))hup_cb, p, NULL);
        g_source_attach(p->hup, NULL);
        if (p->cb.eof)
            p->cb.eof(p->user);
        peer_unref(p);
        return;
    }
    g_byte_array_append(p->rbuf, d, (guint)n);
    if (p->budget)
        *p->budget += n;
    g_bytes_unref(bytes);
    /* Deliver complete lines; only the new bytes need scanning. */
    size_t start = 0;
    for (size_t i = p->scanned; i < p->rbuf->len && !p->closed && p->cb.line; i++) {
        if (p->rbuf->data[i] != '\n')
            continue;
        size_t len = i - start;
        char *line = g_strndup((const char *)p->rbuf->data + start, len);
        /* g_strndup stops at NUL: keep the real length for the check. */
        bool has_nul = memchr(p->rbuf->data + start, '\0', len) != NULL;
        start = i + 1;
        if (has_nul) {
            g_free(line);
            peer_reject(p, "a request contains a NUL byte");
            break;
        }
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (p->cb.line)
            p->cb.line(p->user, line, len);
        g_free(line);
    }
    if (!p->closed && start > 0) {
        g_byte_array_remove_range(p->rbuf, 0, (guint)start);
        if (p->budget)
            *p->budget -= start;
    }
    p->scanned = p->rbuf->len;
    if (!p->closed && p->cb.line && p->rbuf->len > p->max_line) {
        char *why = g_strdup_printf("a line longer than %zu bytes", p->max_line);
        peer_reject(p, why);
        g_free(why);
    } else if (!p->closed && p->cb.line && p->budget && *p->budget > p->budget_limit) {
        peer_reject(p, "the serve has too much pending input; try again later");
    }
    if (!p->closed && p->cb.line)
        peer_read_next(p);
    peer_unref(p);
}

static void peer_read_next(Peer *p)
{
    if (p->closed || p->eof)
        return;
    g_input_stream_read_bytes_async(p->in, READ_PIECE, G_PRIORITY_DEFAULT, p->rcancel, read_done, peer_ref(p));
}

static GSocketConnection *connection_from_fd(int fd, GError **error)
{
    GSocket *sock = g_socket_new_from_fd(fd, error);
    if (!sock) {
        close(fd);
        return NULL;
    }
    GSocketConnection *conn = g_socket_connection_factory_create_connection(sock);
    g_object_unref(sock);
    return conn;
}

/* ---- the serve ---- */

typedef struct Server Server;

typedef struct Client {
    Server *srv;
    Peer *peer;
    unsigned id;
    GQueue lines;               /* char *: requests waiting behind the running one */
    size_t lines_bytes;
    bool busy;
    bool gone;                  /* peer failed: free once the command ends */
    bool want_progress;
    GCancellable *cancel;
    guint idle_timer;
} Client;

struct Server {
    const CtlOptions *opts;
    CtlSession *session;
    GSocketService *service;
    char *control_path;
    dev_t ctl_dev;
    ino_t ctl_ino;
    GList *clients;
    unsigned next_id;
    size_t pending_input;
    GMainLoop *loop;
    int status;
};

static void client_next(Client *c);

static void client_free(Client *c)
{
    Server *srv = c->srv;
    srv->clients = g_list_remove(srv->clients, c);
    if (c->idle_timer)
        g_source_remove(c->idle_timer);
    g_queue_clear_full(&c->lines, g_free);
    if (c->cancel)
        g_object_unref(c->cancel);
    peer_detach(c->peer);
    peer_unref(c->peer);
    ctl_debug("control client %u gone", c->id);
    g_free(c);
}

static void send_error(Peer *p, int exit_status, const char *msg)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(false));
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_object_add(o, "exit", json_object_new_int(exit_status));
    peer_send_json(p, o);
    json_object_put(o);
}

static gboolean client_idle_expired(gpointer data)
{
    Client *c = data;
    c->idle_timer = 0;
    send_error(c->peer, CTL_EXIT_USAGE, "no complete request within 30 s; closing");
    peer_finish(c->peer);
    client_free(c);
    return G_SOURCE_REMOVE;
}

static void client_arm_idle(Client *c)
{
    if (c->idle_timer)
        g_source_remove(c->idle_timer);
    c->idle_timer = g_timeout_add(CTL_REQUEST_IDLE_MS, client_idle_expired, c);
}

static void client_event(void *user, json_object *ev)
{
    Client *c = user;
    if (c->gone)
        return;
    if (peer_backlog(c->peer) > CTL_MAX_CLIENT_BACKLOG) {
        /* A watcher that does not read: let it go rather than grow. */
        ctl_debug("control client %u does not keep up with events; closing", c->id);
        peer_fail(c->peer, "does not read its events");
        return;
    }
    peer_send_json(c->peer, ev);
}

static void client_progress(void *user, const VdhXferProgress *p)
{
    Client *c = user;
    if (c->gone || !c->want_progress || peer_backlog(c->peer) > PROGRESS_BACKLOG)
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "progress", ctl_progress_to_json(p));
    peer_send_json(c->peer, o);
    json_object_put(o);
}

static void client_done(void *user, CtlResult *res)
{
    Client *c = user;
    c->busy = false;
    g_clear_object(&c->cancel);
    if (c->gone) {
        ctl_result_free(res);
        client_free(c);
        return;
    }
    json_object *o = ctl_result_to_json(res);
    peer_send_json(c->peer, o);
    json_object_put(o);
    ctl_result_free(res);
    client_next(c);
}

/* Strict base64: groups of four, '=' only at the end. */
static bool base64_valid(const char *s, size_t len)
{
    if (len % 4u != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (g_ascii_isalnum(ch) || ch == '+' || ch == '/')
            continue;
        if (ch == '=' && i >= len - 2u && (i == len - 1u || s[len - 1] == '='))
            continue;
        return false;
    }
    return true;
}

/* Count the structural characters outside strings, up to limit + 1. */
static size_t json_tokens(const char *s, size_t len, size_t limit)
{
    size_t n = 0;
    bool in_string = false;
    for (size_t i = 0; i < len && n <= limit; i++) {
        char ch = s[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == ',' || ch == ':' || ch == '[' || ch == '{') {
            n++;
        }
    }
    return n;
}

static CtlRequest *request_from_line(Server *srv, const char *line, size_t len, bool *want_progress,
                                     GError **error)
{
    if (json_tokens(line, len, JSON_MAX_TOKENS) > JSON_MAX_TOKENS) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                    "the request has more than %u JSON values (at most %u arguments)", JSON_MAX_TOKENS,
                    CTL_MAX_ARGS);
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    json_object *obj = json_tokener_parse_ex(tok, line, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr == json_tokener_continue) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "the request line ends inside its JSON object");
        json_object_put(obj);
        return NULL;
    }
    if (jerr != json_tokener_success) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "the request is not valid JSON: %s",
                    json_tokener_error_desc(jerr));
        json_object_put(obj);
        return NULL;
    }
    for (size_t i = end; i < len; i++) {
        if (!g_ascii_isspace(line[i])) {
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "text after the JSON object (one request per line)");
            json_object_put(obj);
            return NULL;
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "the request must be a JSON object");
        json_object_put(obj);
        return NULL;
    }
    const char *command = NULL;
    json_object *args = NULL;
    const char *b64 = NULL;
    size_t b64_len = 0;
    double timeout_s = srv->opts->timeout_s;
    bool bad = false;
    *want_progress = false;
    json_object_object_foreach(obj, key, val)
    {
        if (bad)
            break;
        if (strcmp(key, "command") == 0 && json_object_is_type(val, json_type_string)) {
            command = json_object_get_string(val);
            if ((size_t)json_object_get_string_len(val) != strlen(command) || !command[0]) {
                g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "\"command\" must be a non-empty string");
                bad = true;
            }
        } else if (strcmp(key, "args") == 0 && json_object_is_type(val, json_type_array)) {
            args = val;
        } else if (strcmp(key, "stdin_base64") == 0 && json_object_is_type(val, json_type_string)) {
            b64 = json_object_get_string(val);
            b64_len = (size_t)json_object_get_string_len(val);
        } else if (strcmp(key, "timeout") == 0 &&
                   (json_object_is_type(val, json_type_int) || json_object_is_type(val, json_type_double))) {
            timeout_s = json_object_get_double(val);
            if (!(timeout_s > 0.0 && timeout_s <= CTL_MAX_TIMEOUT_S)) {
                g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "\"timeout\" must be from 0.001 to %.0f seconds",
                            CTL_MAX_TIMEOUT_S);
                bad = true;
            }
        } else if (strcmp(key, "progress") == 0 && json_object_is_type(val, json_type_boolean)) {
            *want_progress = json_object_get_boolean(val);
        } else {
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                        "unknown or mistyped key \"%.40s\" (command: string, args: array of strings, "
                        "stdin_base64: string, timeout: number, progress: boolean)", key);
            bad = true;
        }
    }
    if (!bad && !command) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "the request has no \"command\"");
        bad = true;
    }
    size_t nargs = args ? json_object_array_length(args) : 0;
    if (!bad && nargs > CTL_MAX_ARGS) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "too many arguments (%zu, at most %u)", nargs, CTL_MAX_ARGS);
        bad = true;
    }
    char **argv = NULL;
    if (!bad) {
        argv = g_new0(char *, nargs + 2);
        argv[0] = g_strdup(command);
        for (size_t i = 0; i < nargs && !bad; i++) {
            json_object *a = json_object_array_get_idx(args, i);
            const char *s = json_object_is_type(a, json_type_string) ? json_object_get_string(a) : NULL;
            if (!s || (size_t)json_object_get_string_len(a) != strlen(s)) {
                g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "\"args\" must hold strings without NUL");
                bad = true;
                break;
            }
            argv[i + 1] = g_strdup(s);
        }
    }
    unsigned timeout_ms = (unsigned)(timeout_s * 1000.0 + 0.5);
    CtlRequest *req = bad ? NULL : ctl_request_parse(argv, false, timeout_ms ? timeout_ms : 1, error);
    g_strfreev(argv);
    if (req && req->id == CTL_CMD_SERVE) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "serve cannot be started through a control socket");
        ctl_request_free(req);
        req = NULL;
    }
    if (req && ctl_request_wants_stdin(req)) {
        if (!b64) {
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "%s needs \"stdin_base64\"", req->command);
            ctl_request_free(req);
            req = NULL;
        } else if (b64_len > CTL_MAX_STDIN_BASE64 || !base64_valid(b64, b64_len)) {
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                        "\"stdin_base64\" must be base64 of at most %u characters", CTL_MAX_STDIN_BASE64);
            ctl_request_free(req);
            req = NULL;
        } else {
            gsize n = 0;
            guchar *data = b64_len ? g_base64_decode(b64, &n) : NULL;
            GBytes *bytes = g_bytes_new_take(data, n);
            if (!ctl_request_set_data(req, bytes, error)) {
                ctl_request_free(req);
                req = NULL;
            }
            g_bytes_unref(bytes);
        }
    } else if (req && b64) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "\"stdin_base64\" is only for clipboard set");
        ctl_request_free(req);
        req = NULL;
    }
    json_object_put(obj);
    return req;
}

static void client_handle(Client *c, char *line)
{
    bool want_progress = false;
    GError *error = NULL;
    CtlRequest *req = request_from_line(c->srv, line, strlen(line), &want_progress, &error);
    if (!req) {
        send_error(c->peer, ctl_exit_for_error(error), error->message);
        g_error_free(error);
        return;
    }
    ctl_debug("control client %u: %s", c->id, req->command);
    c->busy = true;
    c->want_progress = want_progress;
    c->cancel = g_cancellable_new();
    CtlHooks hooks = {.event = client_event, .progress = client_progress, .user = c};
    ctl_cmd_run(c->srv->session, req, c->cancel, &hooks, client_done, c);
}

/* Start the next queued request, or wait for one. */
static void client_next(Client *c)
{
    while (!c->busy && !c->gone) {
        char *line = g_queue_pop_head(&c->lines);
        if (!line)
            break;
        c->lines_bytes -= strlen(line);
        client_handle(c, line);
        g_free(line);
    }
    if (c->busy || c->gone)
        return;
    if (c->peer->eof) {
        /* Nothing more will come: answer what is queued and go. */
        peer_finish(c->peer);
        client_free(c);
        return;
    }
    client_arm_idle(c);
}

static void client_line(void *user, char *line, size_t len)
{
    Client *c = user;
    if (c->gone)
        return;
    if (len == 0 || strspn(line, " \t") == len)
        return;   /* blank lines are harmless */
    if (c->idle_timer) {
        g_source_remove(c->idle_timer);
        c->idle_timer = 0;
    }
    if (c->busy || c->lines.length) {
        if (c->lines.length >= MAX_QUEUED_LINES || c->lines_bytes + len > MAX_QUEUED_BYTES) {
            send_error(c->peer, CTL_EXIT_USAGE, "too many requests sent ahead; send one, read its answer");
            peer_finish(c->peer);
            c->gone = true;
            if (c->busy)
                g_cancellable_cancel(c->cancel);   /* client_done frees it */
            else
                client_free(c);
            return;
        }
        g_queue_push_tail(&c->lines, g_strndup(line, len));
        c->lines_bytes += len;
        return;
    }
    client_handle(c, line);
    if (!c->busy)
        client_next(c);
}

static void client_eof(void *user)
{
    Client *c = user;
    if (!c->busy)
        client_next(c);
}

static void client_failed(void *user, const char *why)
{
    Client *c = user;
    ctl_debug("control client %u: %s", c->id, why);
    c->gone = true;
    if (c->busy)
        g_cancellable_cancel(c->cancel);   /* client_done frees it */
    else
        client_free(c);
}

static const PeerCallbacks client_peer_cb = {
    .line = client_line,
    .eof = client_eof,
    .failed = client_failed,
};

static void reject_line(void *user, char *line, size_t len)
{
}

static void reject_failed(void *user, const char *why)
{
}

static const PeerCallbacks reject_cb = {
    .line = reject_line,
    .failed = reject_failed,
};

static gboolean on_incoming(GSocketService *service, GSocketConnection *conn, GObject *source, gpointer data)
{
    Server *srv = data;
    if (g_list_length(srv->clients) >= CTL_MAX_CLIENTS) {
        Peer *p = peer_new(conn, 0, NULL, 0, &reject_cb, NULL, "rejected client");
        char *msg = g_strdup_printf("the serve has %u control clients already; try again later", CTL_MAX_CLIENTS);
        send_error(p, CTL_EXIT_IO, msg);
        g_free(msg);
        peer_finish(p);
        peer_unref(p);   /* the write holds it until done */
        return TRUE;
    }
    Client *c = g_new0(Client, 1);
    c->srv = srv;
    c->id = ++srv->next_id;
    g_queue_init(&c->lines);
    c->peer = peer_new(conn, CTL_MAX_REQUEST_LINE, &srv->pending_input, CTL_MAX_PENDING_INPUT, &client_peer_cb, c,
                       "control client");
    c->peer->reply_errors = true;
    srv->clients = g_list_prepend(srv->clients, c);
    ctl_debug("control client %u connected", c->id);
    client_arm_idle(c);
    peer_read_next(c->peer);
    return TRUE;
}

static gboolean on_quit_signal(gpointer data)
{
    Server *srv = data;
    ctl_debug("signal: stopping");
    g_main_loop_quit(srv->loop);
    return G_SOURCE_CONTINUE;
}

static bool serve_listen(Server *srv, GError **error)
{
    int fd = vdp_unix_listen(srv->control_path, 0600, 16);
    if (fd < 0) {
        int e = errno;
        if (e == EADDRINUSE)
            g_set_error(error, CTL_ERROR, CTL_EXIT_IO,
                        "another vdagentctl serve is already running for %s (its control socket %s answers)",
                        srv->opts->port, srv->control_path);
        else if (e == EEXIST)
            g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "%s exists and is not a socket; not replacing it",
                        srv->control_path);
        else
            g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "cannot listen on %s: %s", srv->control_path,
                        g_strerror(e));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && g_stat(srv->control_path, (GStatBuf *)&st) == 0) {
        srv->ctl_dev = st.st_dev;
        srv->ctl_ino = st.st_ino;
    }
    GError *local = NULL;
    GSocket *sock = g_socket_new_from_fd(fd, &local);
    if (!sock) {
        close(fd);
        g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "control socket %s: %s", srv->control_path, local->message);
        g_error_free(local);
        g_unlink(srv->control_path);
        return false;
    }
    srv->service = g_socket_service_new();
    if (!g_socket_listener_add_socket(G_SOCKET_LISTENER(srv->service), sock, NULL, &local)) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "control socket %s: %s", srv->control_path, local->message);
        g_error_free(local);
        g_object_unref(sock);
        g_unlink(srv->control_path);
        return false;
    }
    g_object_unref(sock);
    g_signal_connect(srv->service, "incoming", G_CALLBACK(on_incoming), srv);
    g_socket_service_start(srv->service);
    return true;
}

/* Remove the control socket if it is still the one we made. */
static void serve_unlink(Server *srv)
{
    GStatBuf st;
    if (g_lstat(srv->control_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == srv->ctl_dev &&
        st.st_ino == srv->ctl_ino)
        g_unlink(srv->control_path);
}

int ctl_serve_run(const CtlOptions *opts, CtlRequest *req)
{
    Server srv = {.opts = opts};
    srv.control_path = req->control_path ? g_strdup(req->control_path) : ctl_control_path_for(opts->port);
    GError *error = NULL;
    if (strlen(srv.control_path) >= 104) {
        g_autofree char *msg = g_strdup_printf("the control socket path %s is too long", srv.control_path);
        ctl_output_error(opts, CTL_EXIT_USAGE, msg);
        g_free(srv.control_path);
        ctl_request_free(req);
        return CTL_EXIT_USAGE;
    }
    srv.session = ctl_session_new(opts, true, &error);
    if (!srv.session || !serve_listen(&srv, &error)) {
        int st = ctl_exit_for_error(error);
        ctl_output_error(opts, st, error->message);
        g_error_free(error);
        ctl_session_free(srv.session);
        g_free(srv.control_path);
        ctl_request_free(req);
        return st;
    }
    srv.loop = g_main_loop_new(NULL, FALSE);
    guint s1 = g_unix_signal_add(SIGINT, on_quit_signal, &srv);
    guint s2 = g_unix_signal_add(SIGTERM, on_quit_signal, &srv);
    ctl_session_start(srv.session);
    ctl_output_serving(opts, opts->port, srv.control_path);
    g_main_loop_run(srv.loop);

    g_source_remove(s1);
    g_source_remove(s2);
    g_socket_service_stop(srv.service);
    g_socket_listener_close(G_SOCKET_LISTENER(srv.service));
    serve_unlink(&srv);
    /* Commands end without answers (their done callbacks are dropped),
     * then the clients go. */
    ctl_session_free(srv.session);
    while (srv.clients)
        client_free(srv.clients->data);
    g_object_unref(srv.service);
    g_main_loop_unref(srv.loop);
    g_free(srv.control_path);
    ctl_request_free(req);
    return CTL_EXIT_OK;
}

/* ---- forwarding a command to a running serve ---- */

typedef struct Forward {
    const CtlOptions *opts;
    CtlRequest *req;
    Peer *peer;
    GMainLoop *loop;
    CtlProgress *pb;
    char *progress_name;
    char *control_path;
    int status;
    bool answered;
    bool interrupted;
} Forward;

static void fwd_line(void *user, char *line, size_t len)
{
    Forward *f = user;
    if (f->answered)
        return;
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *obj = json_tokener_parse_ex(tok, line, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!obj || jerr != json_tokener_success || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        ctl_debug("the serve sent a line that is not a JSON object; ignored");
        return;
    }
    json_object *v;
    if (json_object_object_get_ex(obj, "ok", NULL)) {
        GError *error = NULL;
        CtlResult *res = ctl_result_from_json(obj, &error);
        ctl_progress_clear(f->pb);
        if (!res) {
            ctl_output_error(f->opts, ctl_exit_for_error(error), error->message);
            f->status = ctl_exit_for_error(error);
            g_error_free(error);
        } else {
            f->status = ctl_output_result(f->opts, f->req, res);
            ctl_result_free(res);
        }
        f->answered = true;
        g_main_loop_quit(f->loop);
    } else if (json_object_object_get_ex(obj, "event", NULL)) {
        ctl_output_event(f->opts, obj);
    } else if (json_object_object_get_ex(obj, "progress", &v)) {
        VdhXferProgress p;
        if (ctl_progress_from_json(v, &p, &f->progress_name))
            ctl_progress_update(f->pb, &p);
    }
    json_object_put(obj);
}

static void fwd_failed(void *user, const char *why)
{
    Forward *f = user;
    if (f->answered)
        return;
    ctl_progress_clear(f->pb);
    g_autofree char *msg = g_strdup_printf("the vdagentctl serve on %s ended the connection without answering (%s)",
                                           f->control_path, why);
    ctl_output_error(f->opts, CTL_EXIT_IO, msg);
    f->status = CTL_EXIT_IO;
    f->answered = true;
    g_main_loop_quit(f->loop);
}

static void fwd_eof(void *user)
{
    fwd_failed(user, "end of file");
}

static const PeerCallbacks fwd_cb = {
    .line = fwd_line,
    .eof = fwd_eof,
    .failed = fwd_failed,
};

static gboolean fwd_signal(gpointer data)
{
    Forward *f = data;
    f->interrupted = true;
    g_main_loop_quit(f->loop);
    return G_SOURCE_CONTINUE;
}

static json_object *forward_request(const CtlOptions *opts, const CtlRequest *req, GError **error)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "command", json_object_new_string(req->command));
    json_object *args = json_object_new_array();
    if (req->id == CTL_CMD_SEND_FILE) {
        /* The serve has another working directory: absolute paths. */
        json_object_array_add(args, json_object_new_string("--"));
        for (char **p = req->paths; *p; p++)
            json_object_array_add(args, json_object_new_string(*p));
    } else {
        for (char **a = req->args; a && *a; a++)
            json_object_array_add(args, json_object_new_string(*a));
    }
    json_object_object_add(o, "args", args);
    json_object_object_add(o, "timeout", json_object_new_double(opts->timeout_s));
    if (req->id == CTL_CMD_SEND_FILE && isatty(STDERR_FILENO) == 1)
        json_object_object_add(o, "progress", json_object_new_boolean(true));
    if (req->data) {
        gsize n;
        const guchar *d = g_bytes_get_data(req->data, &n);
        if (n > CTL_MAX_STDIN_BASE64 / 4u * 3u) {
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                        "%" G_GSIZE_FORMAT " bytes of clipboard data: a running serve takes at most %u",
                        n, CTL_MAX_STDIN_BASE64 / 4u * 3u);
            json_object_put(o);
            return NULL;
        }
        char *b64 = g_base64_encode(d, n);
        json_object_object_add(o, "stdin_base64", json_object_new_string(b64));
        g_free(b64);
    }
    return o;
}

/* The control socket sits next to the port, possibly in a directory other
 * users can write to: whoever listens there would get our clipboard data
 * and file contents and could answer anything. Only a serve of our own
 * user (or root's) is sent commands. */
static bool serve_is_trusted(int fd, const char *path, GError **error)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "cannot tell who listens on %s: %s", path,
                    g_strerror(errno));
        return false;
    }
    if (cred.uid != getuid() && cred.uid != 0) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_IO,
                    "%s is served by a process of user id %u, not by you; not sending the "
                    "command there (remove the socket or use another port path)",
                    path, (unsigned)cred.uid);
        return false;
    }
    return true;
}

bool ctl_forward(const CtlOptions *opts, CtlRequest *req, int *exit_status)
{
    char *path = ctl_control_path_for(opts->port);
    if (strlen(path) >= 104) {
        g_free(path);
        return false;
    }
    int fd = vdp_unix_connect(path);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK || e == ENOTDIR) {
            ctl_debug("no serve on %s (%s): opening the port directly", path, g_strerror(e));
            g_free(path);
            return false;
        }
        g_autofree char *msg = g_strdup_printf("cannot reach the vdagentctl serve on %s: %s", path, g_strerror(e));
        ctl_output_error(opts, CTL_EXIT_IO, msg);
        *exit_status = CTL_EXIT_IO;
        g_free(path);
        return true;
    }
    GError *error = NULL;
    if (!serve_is_trusted(fd, path, &error)) {
        close(fd);
        *exit_status = ctl_exit_for_error(error);
        ctl_output_error(opts, *exit_status, error->message);
        g_error_free(error);
        g_free(path);
        return true;
    }
    ctl_debug("a serve answers on %s: sending %s there", path, req->command);
    json_object *rq = forward_request(opts, req, &error);
    GSocketConnection *conn = rq ? connection_from_fd(fd, &error) : NULL;
    if (!rq)
        close(fd);
    if (!conn) {
        *exit_status = ctl_exit_for_error(error);
        ctl_output_error(opts, *exit_status, error->message);
        g_error_free(error);
        json_object_put(rq);
        g_free(path);
        return true;
    }
    Forward f = {.opts = opts, .req = req, .control_path = path, .status = CTL_EXIT_IO};
    f.loop = g_main_loop_new(NULL, FALSE);
    f.pb = ctl_progress_new();
    f.peer = peer_new(conn, CTL_MAX_RESPONSE_LINE, NULL, 0, &fwd_cb, &f, "serve");
    g_object_unref(conn);
    peer_send_json(f.peer, rq);
    json_object_put(rq);
    peer_read_next(f.peer);
    guint s1 = g_unix_signal_add(SIGINT, fwd_signal, &f);
    guint s2 = g_unix_signal_add(SIGTERM, fwd_signal, &f);
    g_main_loop_run(f.loop);
    g_source_remove(s1);
    g_source_remove(s2);
    if (!f.answered && f.interrupted) {
        ctl_progress_clear(f.pb);
        if (req->id == CTL_CMD_WATCH) {
            f.status = CTL_EXIT_OK;
        } else {
            ctl_output_error(opts, CTL_EXIT_INTERRUPTED, "interrupted");
            f.status = CTL_EXIT_INTERRUPTED;
        }
    }
    peer_close(f.peer);
    peer_unref(f.peer);
    ctl_progress_free(f.pb);
    g_free(f.progress_name);
    g_main_loop_unref(f.loop);
    g_free(path);
    *exit_status = f.status;
    return true;
}
