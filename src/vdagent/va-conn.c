/* va-conn.c - the connection to spice-vdagentd (see va-conn.h). */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "va-conn.h"
#include "vdp-unix.h"

typedef enum ConnState {
    ST_IDLE,        /* waiting for the retry timer */
    ST_HELLO,       /* HELLO sent, waiting for WELCOME */
    ST_UP,          /* welcomed */
    ST_DEAD,        /* fatal: no more attempts */
} ConnState;

struct VaConn {
    GMainContext *ctx;
    char *path;
    char *name;
    VaConnCallbacks cb;
    void *user;
    ConnState state;
    VdpIpcConn *conn;
    GSource *timer;           /* retry or WELCOME timeout */
    unsigned delay_ms;        /* next retry delay */
    unsigned attempts;
    int last_errno;           /* connect failure last logged */
    bool logged_waiting;
    uint32_t slow_reason;     /* last REJECT retried slowly (logged once), 0: none */
};

static void schedule(VaConn *c, unsigned ms);
static void attempt(VaConn *c);

static void stop_timer(VaConn *c)
{
    if (c->timer) {
        g_source_destroy(c->timer);
        g_source_unref(c->timer);
        c->timer = NULL;
    }
}

/* Free the connection; tell the owner if it was welcomed. Then retry
 * unless fatal. */
static void drop(VaConn *c, unsigned retry_ms)
{
    stop_timer(c);
    bool was_up = c->state == ST_UP;
    VdpIpcConn *conn = c->conn;
    c->conn = NULL;
    if (c->state != ST_DEAD)
        c->state = ST_IDLE;
    if (was_up && c->cb.disconnected)
        c->cb.disconnected(c->user);
    if (conn)
        vdp_ipc_conn_free(conn);
    if (c->state != ST_DEAD)
        schedule(c, retry_ms);
}

static unsigned next_delay(VaConn *c)
{
    unsigned d = c->delay_ms;
    c->delay_ms = MIN(c->delay_ms * 2, VA_CONN_RETRY_MAX_MS);
    return d;
}

static void fatal(VaConn *c, int status, const char *why)
{
    c->state = ST_DEAD;
    drop(c, 0);
    if (c->cb.fatal)
        c->cb.fatal(c->user, status, why);
}

static void handle_reject(VaConn *c, const VdpIpcHeader *hdr, const uint8_t *payload)
{
    VdpIpcReject r;
    VdpError err = {0};
    if (vdp_ipc_reject_decode(payload, hdr->size, &r, &err) != VDP_OK) {
        g_message("spice-vdagentd sent a bad REJECT (%s); retrying", err.text);
        drop(c, next_delay(c));
        return;
    }
    switch (r.reason) {
    case VDP_IPC_REJECT_DUPLICATE:
    case VDP_IPC_REJECT_NOT_AUTHORIZED:
        /* DUPLICATE: another agent serves the session (with the daemon's
         * -X, a greeter's agent still connected when the user's starts);
         * it may leave any time, and the X selection already keeps two
         * agents off one display. NOT_AUTHORIZED: the session may be
         * registered with logind a moment later. Both: ask again at the
         * slow rate, one log line per change of answer. */
        if (c->slow_reason != r.reason)
            g_message("%s (%s); retrying every %u s",
                      r.reason == VDP_IPC_REJECT_DUPLICATE ? "another agent already serves this session"
                                                           : "spice-vdagentd does not accept this session yet",
                      r.text, VA_CONN_RETRY_MAX_MS / 1000);
        c->slow_reason = r.reason;
        c->delay_ms = VA_CONN_RETRY_MAX_MS;
        drop(c, VA_CONN_RETRY_MAX_MS);
        return;
    case VDP_IPC_REJECT_VERSION: {
        char *why = g_strdup_printf("spice-vdagentd speaks another IPC version: %s", r.text);
        fatal(c, 1, why);
        g_free(why);
        return;
    }
    default:
        g_message("spice-vdagentd refused the connection (%s: %s); retrying",
                  vdp_ipc_reject_reason_name(r.reason) ? vdp_ipc_reject_reason_name(r.reason) : "?", r.text);
        drop(c, next_delay(c));
        return;
    }
}

static bool on_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    VaConn *c = user;
    VdpError err = {0};
    if (c->state == ST_UP) {
        if (c->cb.frame(c->user, hdr, payload, fds, nfds))
            return true;
        g_message("dropping the daemon connection after a protocol error");
        drop(c, VA_CONN_RETRY_MIN_MS);
        return false;
    }
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (hdr->type == VDP_IPC_REJECT) {
        handle_reject(c, hdr, payload);
        return false;
    }
    VdpIpcHello w;
    if (hdr->type != VDP_IPC_WELCOME || vdp_ipc_hello_decode(payload, hdr->size, &w, &err) != VDP_OK ||
        vdp_ipc_hello_check(&w, &err) != VDP_OK) {
        g_message("spice-vdagentd answered the handshake with %s (%s); retrying",
                  vdp_ipc_type_name(hdr->type) ? vdp_ipc_type_name(hdr->type) : "an unknown frame",
                  err.text[0] ? err.text : "unexpected");
        if (hdr->type == VDP_IPC_WELCOME && w.magic == VDP_IPC_MAGIC && w.major != VDP_IPC_VERSION_MAJOR) {
            char *why = g_strdup_printf("spice-vdagentd speaks IPC version %u, this agent %u", w.major,
                                        VDP_IPC_VERSION_MAJOR);
            fatal(c, 1, why);
            g_free(why);
            return false;
        }
        drop(c, next_delay(c));
        return false;
    }
    stop_timer(c);
    c->state = ST_UP;
    c->delay_ms = VA_CONN_RETRY_MIN_MS;
    c->last_errno = 0;
    c->logged_waiting = false;
    c->slow_reason = 0;
    g_message("connected to spice-vdagentd (%s) after %u attempt(s)", w.name, c->attempts);
    c->attempts = 0;
    VdpIpcConn *conn = c->conn;
    c->cb.connected(c->user, conn);
    /* connected() may have failed the connection (a send error closes it
     * through on_closed, which frees it). */
    return c->conn == conn;
}

static void on_closed(void *user, const char *why)
{
    VaConn *c = user;
    if (c->state == ST_UP)
        g_message("lost the connection to spice-vdagentd (%s); reconnecting", why);
    else
        g_debug("handshake with spice-vdagentd failed: %s", why);
    drop(c, c->state == ST_UP ? VA_CONN_RETRY_MIN_MS : next_delay(c));
}

static const VdpIpcConnCallbacks conn_cb = {.frame = on_frame, .closed = on_closed};

static gboolean welcome_timeout_cb(gpointer data)
{
    VaConn *c = data;
    g_source_unref(c->timer);
    c->timer = NULL;
    g_message("spice-vdagentd did not answer the handshake within %u ms; retrying", VA_CONN_WELCOME_MS);
    drop(c, next_delay(c));
    return G_SOURCE_REMOVE;
}

static void attempt(VaConn *c)
{
    c->attempts++;
    int fd = vdp_unix_connect(c->path);
    if (fd < 0) {
        int e = errno;
        if (!c->logged_waiting || e != c->last_errno)
            g_message("cannot connect to spice-vdagentd at %s (%s); retrying with back-off up to %u ms", c->path,
                      g_strerror(e), VA_CONN_RETRY_MAX_MS);
        c->logged_waiting = true;
        c->last_errno = e;
        schedule(c, next_delay(c));
        return;
    }
    c->conn = vdp_ipc_conn_new(c->ctx, fd, NULL, &conn_cb, c);
    if (!c->conn) {
        schedule(c, next_delay(c));
        return;
    }
    VdpIpcHello h;
    uint8_t buf[128];
    vdp_ipc_hello_init(&h, VDP_IPC_ROLE_AGENT, c->name);
    size_t n = vdp_ipc_hello_encode(&h, buf, sizeof(buf));
    c->state = ST_HELLO;
    if (!n || vdp_ipc_conn_send(c->conn, VDP_IPC_HELLO, 1, buf, n, NULL, 0) != VDP_OK) {
        drop(c, next_delay(c));
        return;
    }
    c->timer = g_timeout_source_new(VA_CONN_WELCOME_MS);
    g_source_set_callback(c->timer, welcome_timeout_cb, c, NULL);
    g_source_attach(c->timer, c->ctx);
}

static gboolean retry_cb(gpointer data)
{
    VaConn *c = data;
    g_source_unref(c->timer);
    c->timer = NULL;
    attempt(c);
    return G_SOURCE_REMOVE;
}

static void schedule(VaConn *c, unsigned ms)
{
    stop_timer(c);
    c->timer = ms ? g_timeout_source_new(ms) : g_idle_source_new();
    g_source_set_callback(c->timer, retry_cb, c, NULL);
    g_source_attach(c->timer, c->ctx);
}

VaConn *va_conn_new(GMainContext *ctx, const char *socket_path, const char *name,
                    const VaConnCallbacks *cb, void *user)
{
    VaConn *c = g_new0(VaConn, 1);
    c->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    c->path = g_strdup(socket_path);
    c->name = g_strdup(name);
    c->cb = *cb;
    c->user = user;
    c->delay_ms = VA_CONN_RETRY_MIN_MS;
    schedule(c, 0);
    return c;
}

void va_conn_free(VaConn *c)
{
    if (!c)
        return;
    stop_timer(c);
    if (c->conn) {
        vdp_ipc_conn_flush_sync(c->conn, 100);
        vdp_ipc_conn_free(c->conn);
    }
    g_main_context_unref(c->ctx);
    g_free(c->path);
    g_free(c->name);
    g_free(c);
}

VdpIpcConn *va_conn_get(VaConn *c)
{
    return c->state == ST_UP ? c->conn : NULL;
}

unsigned va_conn_attempts(const VaConn *c)
{
    return c->attempts;
}
