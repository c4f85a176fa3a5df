/* vdd-agents.c - the IPC server: accept, authenticate, handshake, and
 * per-connection state. Policy in vdd-agents.h. */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdd-agents.h"
#include "vdp-ratelimit.h"
#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"
#include "vdp-ipc.h"
#include "vdp-unix.h"
#include "vdp-wire.h"


/* Pending connect()s the kernel keeps for us while the loop is busy. */
#define LISTEN_BACKLOG 16
/* A REJECT is the first and only thing written on a fresh socket, so it
 * always fits in the socket buffer; this bounds the wait anyway. */
#define REJECT_FLUSH_MS 100

/* One session lookup; outlives the agent if the agent goes first (then
 * a is NULL and the result is ignored without touching anything else). */
typedef struct Lookup {
    struct VddAgent *a;
    VddSessions *sessions;
} Lookup;

typedef enum AgentState {
    ST_HELLO,      /* waiting for HELLO */
    ST_AUTH,       /* HELLO from an agent, session lookup running */
    ST_AGENT,      /* an authenticated session agent */
    ST_CONTROL,    /* a control/status client */
} AgentState;

struct VddAgent {
    VddAgents *owner;
    VdpIpcConn *conn;
    AgentState state;
    unsigned serial;            /* connection number, for logs */
    pid_t pid;
    uid_t uid;
    char *session;
    char name[VDP_IPC_NAME_MAX];
    GSource *timeout;
    GSource *drop_idle;
    char *drop_why;
    GCancellable *cancel;
    struct Lookup *lookup;      /* the session lookup running, or NULL */
    bool has_layout;
    VddLayout layout;
    bool flags_sent;
    uint32_t flags;
};

struct VddAgents {
    GMainContext *ctx;
    char *socket_path;
    bool unlink_socket;
    int listen_fd;
    GSource *listen_src;
    GList *conns;               /* VddAgent*, all states, in accept order */
    VddSessions *sessions;
    unsigned handshake_ms, max_total, max_per_uid;
    VddAgentsEvents ev;
    void *user;
    unsigned next_serial;
    VdpMsg *scratch;            /* decoded VDAgent messages (large union) */
    gint64 last_accept_error_log;
    VdpRateLimit reject_log;    /* a local user can connect in a loop; an agent
                                 * refused as a duplicate retries every 4 s */
};

static const char *role_label(const VddAgent *a)
{
    switch (a->state) {
    case ST_AGENT:
    case ST_AUTH:
        return "agent";
    case ST_CONTROL:
        return "control client";
    default:
        return "connection";
    }
}

#define ALOG(level, a, fmt, ...) \
    g_log("vdagentd", level, "%s #%u (pid %d, uid %u): " fmt, role_label(a), (a)->serial, \
          (int)(a)->pid, (unsigned)(a)->uid, ##__VA_ARGS__)

/* ---- teardown ---- */

static void agent_destroy(VddAgent *a, bool notify)
{
    VddAgents *as = a->owner;
    if (notify && a->state == ST_AGENT && as->ev.agent_removed)
        as->ev.agent_removed(as->user, a);
    as->conns = g_list_remove(as->conns, a);
    if (a->lookup)
        a->lookup->a = NULL;
    if (a->cancel) {
        g_cancellable_cancel(a->cancel);
        g_object_unref(a->cancel);
    }
    if (a->timeout) {
        g_source_destroy(a->timeout);
        g_source_unref(a->timeout);
    }
    if (a->drop_idle) {
        g_source_destroy(a->drop_idle);
        g_source_unref(a->drop_idle);
    }
    vdp_ipc_conn_free(a->conn);
    g_free(a->session);
    g_free(a->drop_why);
    g_free(a);
}

static void agent_drop(VddAgent *a, const char *why)
{
    ALOG(G_LOG_LEVEL_MESSAGE, a, "disconnecting: %s", why);
    agent_destroy(a, true);
}

static gboolean drop_idle_cb(gpointer data)
{
    VddAgent *a = data;
    g_source_unref(a->drop_idle);
    a->drop_idle = NULL;
    agent_drop(a, a->drop_why ? a->drop_why : "send failed");
    return G_SOURCE_REMOVE;
}

/* Disconnect from an idle callback: for paths where the caller still
 * holds the pointer (sending from inside the daemon's routing). */
static void agent_drop_later(VddAgent *a, const char *why)
{
    if (a->drop_idle)
        return;
    a->drop_why = g_strdup(why);
    a->drop_idle = g_idle_source_new();
    g_source_set_callback(a->drop_idle, drop_idle_cb, a, NULL);
    g_source_attach(a->drop_idle, a->owner->ctx);
}

static void send_reject(VddAgent *a, uint32_t reason, const char *text)
{
    VdpIpcReject r = {.reason = reason};
    g_strlcpy(r.text, text, sizeof(r.text));
    uint8_t buf[4 + VDP_IPC_REASON_MAX];
    size_t n = vdp_ipc_reject_encode(&r, buf, sizeof(buf));
    if (n > 0 && vdp_ipc_conn_send(a->conn, VDP_IPC_REJECT, 0, buf, n, NULL, 0) == VDP_OK)
        vdp_ipc_conn_flush_sync(a->conn, REJECT_FLUSH_MS);
}

/* Reject and close; never notifies agent_removed (not an agent yet). */
static void agent_reject(VddAgent *a, uint32_t reason, const char *text)
{
    if (vdp_rate_ok(&a->owner->reject_log, "connection rejected"))
        ALOG(G_LOG_LEVEL_MESSAGE, a, "rejected (%s): %s", vdp_ipc_reject_reason_name(reason), text);
    send_reject(a, reason, text);
    a->state = ST_HELLO;
    agent_destroy(a, false);
}

static void send_welcome(VddAgent *a)
{
    VdpIpcHello w;
    uint8_t buf[16 + VDP_IPC_NAME_MAX];
    vdp_ipc_hello_init(&w, 0, "spice-vdagentd " PACKAGE_VERSION);
    size_t n = vdp_ipc_hello_encode(&w, buf, sizeof(buf));
    vdp_ipc_conn_send(a->conn, VDP_IPC_WELCOME, 0, buf, n, NULL, 0);
}

static void handshake_done(VddAgent *a, AgentState st)
{
    if (a->timeout) {
        g_source_destroy(a->timeout);
        g_source_unref(a->timeout);
        a->timeout = NULL;
    }
    a->state = st;
    send_welcome(a);
    ALOG(G_LOG_LEVEL_INFO, a, "connected: \"%s\"%s%s", a->name, a->session ? ", session " : "",
         a->session ? a->session : "");
    if (st == ST_AGENT && a->owner->ev.agent_added)
        a->owner->ev.agent_added(a->owner->user, a);
}

static bool has_other_agent(VddAgents *as, const VddAgent *self, const char *session)
{
    for (GList *l = as->conns; l; l = l->next) {
        VddAgent *o = l->data;
        if (o == self || o->state != ST_AGENT)
            continue;
        if (!session || g_strcmp0(o->session, session) == 0)
            return true;
    }
    return false;
}

/* The owner of /proc/<pid> now: guards against the pid having been reused
 * by another user's process since connect() (CVE-2020-25653). */
static bool proc_owned_by(pid_t pid, uid_t uid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    return stat(path, &st) == 0 && st.st_uid == uid;
}

static void lookup_done(GObject *src, GAsyncResult *res, gpointer data)
{
    GError *error = NULL;
    Lookup *lk = data;
    VddAgent *a = lk->a;
    if (!a) {
        /* The agent went away (and maybe the daemon with it). */
        g_free(lk);
        return;
    }
    a->lookup = NULL;
    VddSessionInfo *info = vdd_sessions_lookup_pid_finish(lk->sessions, res, &error);
    g_free(lk);
    g_clear_object(&a->cancel);
    if (!info) {
        char *t = g_strdup_printf("no login session for pid %d: %s", (int)a->pid,
                                  error ? error->message : "unknown");
        g_clear_error(&error);
        agent_reject(a, VDP_IPC_REJECT_NOT_AUTHORIZED, t);
        g_free(t);
        return;
    }
    if (a->uid != 0 && a->uid != info->uid) {
        char *t = g_strdup_printf("uid %u does not own session %s (owner uid %u)", (unsigned)a->uid,
                                  info->id, (unsigned)info->uid);
        vdd_session_info_free(info);
        agent_reject(a, VDP_IPC_REJECT_NOT_AUTHORIZED, t);
        g_free(t);
        return;
    }
    if (!proc_owned_by(a->pid, a->uid)) {
        vdd_session_info_free(info);
        agent_reject(a, VDP_IPC_REJECT_NOT_AUTHORIZED,
                     "the connecting process is gone or its pid now belongs to another user");
        return;
    }
    if (has_other_agent(a->owner, a, info->id)) {
        char *t = g_strdup_printf("session %s already has an agent", info->id);
        vdd_session_info_free(info);
        agent_reject(a, VDP_IPC_REJECT_DUPLICATE, t);
        g_free(t);
        return;
    }
    a->session = g_strdup(info->id);
    vdd_session_info_free(info);
    vdp_ipc_conn_pause_read(a->conn, false);
    handshake_done(a, ST_AGENT);
}

/* Returns false when a was freed. */
static bool handle_hello(VddAgent *a, const VdpIpcHeader *hdr, const uint8_t *payload)
{
    VddAgents *as = a->owner;
    VdpIpcHello h;
    VdpError err = {0};
    if (hdr->type != VDP_IPC_HELLO) {
        char *t = g_strdup_printf("%s frame before HELLO", vdp_ipc_type_name(hdr->type));
        agent_reject(a, VDP_IPC_REJECT_PROTOCOL, t);
        g_free(t);
        return false;
    }
    if (vdp_ipc_hello_decode(payload, hdr->size, &h, &err) != VDP_OK) {
        agent_reject(a, VDP_IPC_REJECT_PROTOCOL, err.text);
        return false;
    }
    if (vdp_ipc_hello_check(&h, &err) != VDP_OK) {
        agent_reject(a, h.magic == VDP_IPC_MAGIC ? VDP_IPC_REJECT_VERSION : VDP_IPC_REJECT_PROTOCOL,
                     err.text);
        return false;
    }
    g_strlcpy(a->name, h.name, sizeof(a->name));
    if (h.role == VDP_IPC_ROLE_CONTROL) {
        /* The status names the logged-in users and sessions, the lock
         * state and whether a SPICE client is watching: root only. */
        if (a->uid != 0) {
            agent_reject(a, VDP_IPC_REJECT_NOT_AUTHORIZED,
                         "the daemon's status is only available to root");
            return false;
        }
        handshake_done(a, ST_CONTROL);
        return true;
    }
    if (h.role != VDP_IPC_ROLE_AGENT) {
        char *t = g_strdup_printf("unknown role %u", h.role);
        agent_reject(a, VDP_IPC_REJECT_PROTOCOL, t);
        g_free(t);
        return false;
    }
    if (!vdd_sessions_enabled(as->sessions)) {
        /* -X: no way to tell sessions apart, so exactly one agent. */
        if (has_other_agent(as, a, NULL)) {
            agent_reject(a, VDP_IPC_REJECT_DUPLICATE,
                         "another agent is connected and session integration is off (-X)");
            return false;
        }
        handshake_done(a, ST_AGENT);
        return true;
    }
    a->state = ST_AUTH;
    vdp_ipc_conn_pause_read(a->conn, true);
    a->cancel = g_cancellable_new();
    a->lookup = g_new0(Lookup, 1);
    a->lookup->a = a;
    a->lookup->sessions = as->sessions;
    vdd_sessions_lookup_pid_async(as->sessions, a->pid, a->cancel, lookup_done, a->lookup);
    return true;
}

static bool handle_agent_frame(VddAgent *a, const VdpIpcHeader *hdr, const uint8_t *payload)
{
    VddAgents *as = a->owner;
    VdpError err = {0};
    switch (hdr->type) {
    case VDP_IPC_GUEST_LAYOUT: {
        VdpIpcGuestLayout *gl = g_new(VdpIpcGuestLayout, 1);
        if (vdp_ipc_guest_layout_decode(payload, hdr->size, gl, &err) != VDP_OK) {
            g_free(gl);
            agent_drop(a, err.text);
            return false;
        }
        a->layout.desktop_width = gl->desktop_width;
        a->layout.desktop_height = gl->desktop_height;
        a->layout.count = gl->count;
        for (uint32_t i = 0; i < gl->count; i++) {
            a->layout.displays[i].display_id = gl->displays[i].display_id;
            a->layout.displays[i].x = gl->displays[i].x;
            a->layout.displays[i].y = gl->displays[i].y;
            a->layout.displays[i].width = gl->displays[i].width;
            a->layout.displays[i].height = gl->displays[i].height;
        }
        a->has_layout = true;
        ALOG(G_LOG_LEVEL_DEBUG, a, "layout: desktop %ux%u, %u displays", gl->desktop_width,
             gl->desktop_height, gl->count);
        g_free(gl);
        if (as->ev.agent_layout)
            as->ev.agent_layout(as->user, a);
        return true;
    }
    case VDP_IPC_VDAGENT: {
        if (hdr->size < VDP_IPC_VDAGENT_HEAD) {
            agent_drop(a, "VDAGENT frame without its type");
            return false;
        }
        uint32_t type = vdp_get_le32(payload);
        if (vdp_msg_decode(VDP_FROM_GUEST, vdp_msg_port_for_type(type), type, payload + 4,
                           hdr->size - 4, &vdp_ipc_layout, as->scratch, &err) != VDP_OK) {
            agent_drop(a, err.text);
            return false;
        }
        if (as->ev.agent_vdagent)
            as->ev.agent_vdagent(as->user, a, as->scratch);
        return true;
    }
    default:
        break;
    }
    char *t = g_strdup_printf("an agent may not send %s frames", vdp_ipc_type_name(hdr->type));
    agent_drop(a, t);
    g_free(t);
    return false;
}

static bool handle_control_frame(VddAgent *a, const VdpIpcHeader *hdr, const uint8_t *payload)
{
    VddAgents *as = a->owner;
    VdpError err = {0};
    if (hdr->type != VDP_IPC_STATUS_REQUEST) {
        char *t = g_strdup_printf("a control client may not send %s frames", vdp_ipc_type_name(hdr->type));
        agent_drop(a, t);
        g_free(t);
        return false;
    }
    if (vdp_ipc_status_request_decode(payload, hdr->size, &err) != VDP_OK) {
        agent_drop(a, err.text);
        return false;
    }
    char *json = as->ev.status_json ? as->ev.status_json(as->user) : g_strdup("{}");
    size_t n = vdp_ipc_status_reply_encode(json, NULL, 0);
    uint8_t *buf = n ? g_malloc(n) : NULL;
    bool ok = n && vdp_ipc_status_reply_encode(json, buf, n) == n &&
              vdp_ipc_conn_send(a->conn, VDP_IPC_STATUS_REPLY, hdr->id, buf, n, NULL, 0) == VDP_OK;
    g_free(buf);
    g_free(json);
    if (!ok) {
        agent_drop(a, "could not send the status");
        return false;
    }
    return true;
}

static void close_fds(int *fds, unsigned nfds)
{
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
}

/* CLIP_DATA_FD: the head, and exactly one descriptor when there is data. */
static bool handle_clip_fd(VddAgent *a, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds,
                           unsigned nfds)
{
    VddAgents *as = a->owner;
    VdpIpcClipHead h;
    VdpError err = {0};
    if (vdp_ipc_clip_head_decode(payload, hdr->size, &h, &err) != VDP_OK) {
        close_fds(fds, nfds);
        char *t = g_strdup_printf("CLIP_DATA_FD: %s", err.text);
        agent_drop(a, t);
        g_free(t);
        return false;
    }
    unsigned want = h.size > 0 ? 1u : 0u;
    if (nfds != want) {
        close_fds(fds, nfds);
        char *t = g_strdup_printf("CLIP_DATA_FD of %llu bytes with %u descriptors (%u expected)",
                                  (unsigned long long)h.size, nfds, want);
        agent_drop(a, t);
        g_free(t);
        return false;
    }
    int fd = want ? fds[0] : -1;
    if (as->ev.agent_clip_fd)
        as->ev.agent_clip_fd(as->user, a, &h, fd);
    else if (fd >= 0)
        close(fd);
    return true;
}

static bool conn_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    VddAgent *a = user;
    if (a->state == ST_AGENT && hdr->type == VDP_IPC_CLIP_DATA_FD)
        return handle_clip_fd(a, hdr, payload, fds, nfds);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (nfds > 0) {
        agent_drop(a, "file descriptors sent where none are expected");
        return false;
    }
    if (hdr->type == VDP_IPC_PING && a->state != ST_HELLO) {
        vdp_ipc_conn_send(a->conn, VDP_IPC_PONG, hdr->id, payload, hdr->size, NULL, 0);
        return true;
    }
    if (hdr->type == VDP_IPC_PONG && a->state != ST_HELLO)
        return true;
    switch (a->state) {
    case ST_HELLO:
        return handle_hello(a, hdr, payload);
    case ST_AUTH:
        /* Reading is paused during the lookup; frames already decoded
         * from the same read may still arrive: the agent did not wait. */
        agent_reject(a, VDP_IPC_REJECT_PROTOCOL, "frame sent before WELCOME");
        return false;
    case ST_AGENT:
        return handle_agent_frame(a, hdr, payload);
    case ST_CONTROL:
        return handle_control_frame(a, hdr, payload);
    }
    return true;
}

static void conn_closed(void *user, const char *why)
{
    VddAgent *a = user;
    if (a->state == ST_CONTROL || a->state == ST_HELLO)
        ALOG(G_LOG_LEVEL_DEBUG, a, "closed: %s", why ? why : "end of file");
    else
        ALOG(G_LOG_LEVEL_MESSAGE, a, "disconnected: %s", why ? why : "end of file");
    agent_destroy(a, true);
}

static void conn_write_ready(void *user)
{
    VddAgent *a = user;
    VddAgents *as = a->owner;
    if (a->state == ST_AGENT && !a->drop_idle && as->ev.agent_write_ready)
        as->ev.agent_write_ready(as->user, a);
}

static const VdpIpcConnCallbacks conn_cb = {
    .frame = conn_frame,
    .closed = conn_closed,
    .write_ready = conn_write_ready,
};

static gboolean handshake_timeout_cb(gpointer data)
{
    VddAgent *a = data;
    g_source_unref(a->timeout);
    a->timeout = NULL;
    ALOG(G_LOG_LEVEL_MESSAGE, a, "dropped: no handshake within %u ms", a->owner->handshake_ms);
    agent_destroy(a, false);
    return G_SOURCE_REMOVE;
}

static unsigned count_uid(VddAgents *as, uid_t uid)
{
    unsigned n = 0;
    for (GList *l = as->conns; l; l = l->next)
        if (((VddAgent *)l->data)->uid == uid)
            n++;
    return n;
}

static void accept_one(VddAgents *as, int fd)
{
    VddAgent *a = g_new0(VddAgent, 1);
    a->owner = as;
    a->serial = ++as->next_serial;
    a->pid = -1;
    a->uid = (uid_t)-1;
    VdpStreamConfig scfg = {
        .high_watermark = VDD_AGENT_QUEUE_HIGH,
        .queue_limit = VDD_AGENT_QUEUE_LIMIT,
        .pass_fds = true,
    };
    a->conn = vdp_ipc_conn_new(as->ctx, fd, &scfg, &conn_cb, a);
    if (!a->conn) {
        g_message("IPC connection #%u: cannot use the socket: %s", a->serial, g_strerror(errno));
        g_free(a);
        return;
    }
    gid_t gid;
    bool cred = vdp_ipc_conn_peer_cred(a->conn, &a->pid, &a->uid, &gid) && a->pid > 0;
    unsigned total = g_list_length(as->conns);
    as->conns = g_list_append(as->conns, a);
    if (!cred) {
        ALOG(G_LOG_LEVEL_MESSAGE, a, "dropped: cannot get the peer's credentials");
        agent_destroy(a, false);
        return;
    }
    if (total >= as->max_total) {
        agent_reject(a, VDP_IPC_REJECT_TOO_MANY, "too many connections to spice-vdagentd");
        return;
    }
    if (count_uid(as, a->uid) > as->max_per_uid) {
        agent_reject(a, VDP_IPC_REJECT_TOO_MANY, "too many connections from this user");
        return;
    }
    a->timeout = g_timeout_source_new(as->handshake_ms);
    g_source_set_callback(a->timeout, handshake_timeout_cb, a, NULL);
    g_source_attach(a->timeout, as->ctx);
    ALOG(G_LOG_LEVEL_DEBUG, a, "accepted");
}

static gboolean listen_cb(gint fd, GIOCondition cond, gpointer data)
{
    VddAgents *as = data;
    /* A bounded number per wakeup keeps a flood from starving the port. */
    for (unsigned i = 0; i < 32; i++) {
        int c = vdp_unix_accept(as->listen_fd);
        if (c < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                gint64 now = g_get_monotonic_time();
                if (now - as->last_accept_error_log > 10 * G_USEC_PER_SEC) {
                    g_warning("accepting an IPC connection: %s", g_strerror(errno));
                    as->last_accept_error_log = now;
                }
            }
            break;
        }
        accept_one(as, c);
    }
    return G_SOURCE_CONTINUE;
}

VddAgents *vdd_agents_new(GMainContext *ctx, const VddAgentsConfig *cfg, const VddAgentsEvents *ev,
                          void *user, GError **error)
{
    VddAgents *as = g_new0(VddAgents, 1);
    as->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    as->socket_path = g_strdup(cfg->socket_path);
    as->sessions = cfg->sessions;
    as->handshake_ms = cfg->handshake_ms ? cfg->handshake_ms : VDD_AGENTS_HANDSHAKE_MS;
    as->max_total = cfg->max_total ? cfg->max_total : VDD_AGENTS_MAX_TOTAL;
    as->max_per_uid = cfg->max_per_uid ? cfg->max_per_uid : VDD_AGENTS_MAX_PER_UID;
    if (ev)
        as->ev = *ev;
    as->user = user;
    as->scratch = g_new0(VdpMsg, 1);
    if (cfg->listen_fd >= 0) {
        as->listen_fd = cfg->listen_fd;
        g_unix_set_fd_nonblocking(as->listen_fd, TRUE, NULL);
    } else {
        char *dir = g_path_get_dirname(cfg->socket_path);
        if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
            g_mkdir_with_parents(dir, 0755);
        g_free(dir);
        /* 0666: every user's agent must be able to connect; who gets in is
         * decided per connection (vdd-agents.h). */
        as->listen_fd = vdp_unix_listen(cfg->socket_path, 0666, LISTEN_BACKLOG);
        if (as->listen_fd < 0) {
            int e = errno;
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
                        "could not create the server socket %s: %s", cfg->socket_path, g_strerror(e));
            g_main_context_unref(as->ctx);
            g_free(as->socket_path);
            g_free(as->scratch);
            g_free(as);
            return NULL;
        }
        as->unlink_socket = true;
    }
    as->listen_src = g_unix_fd_source_new(as->listen_fd, G_IO_IN);
    g_source_set_callback(as->listen_src, G_SOURCE_FUNC(listen_cb), as, NULL);
    g_source_attach(as->listen_src, as->ctx);
    return as;
}

void vdd_agents_free(VddAgents *as)
{
    if (!as)
        return;
    while (as->conns)
        agent_destroy(as->conns->data, false);
    if (as->listen_src) {
        g_source_destroy(as->listen_src);
        g_source_unref(as->listen_src);
    }
    if (as->listen_fd >= 0)
        close(as->listen_fd);
    if (as->unlink_socket && as->socket_path)
        unlink(as->socket_path);
    g_free(as->socket_path);
    g_free(as->scratch);
    g_main_context_unref(as->ctx);
    g_free(as);
}

unsigned vdd_agents_count(const VddAgents *as)
{
    unsigned n = 0;
    for (GList *l = as->conns; l; l = l->next)
        if (((VddAgent *)l->data)->state == ST_AGENT)
            n++;
    return n;
}

VddAgent *vdd_agents_nth(const VddAgents *as, unsigned i)
{
    for (GList *l = as->conns; l; l = l->next) {
        VddAgent *a = l->data;
        if (a->state != ST_AGENT)
            continue;
        if (i-- == 0)
            return a;
    }
    return NULL;
}

VddAgent *vdd_agents_find_session(const VddAgents *as, const char *session_id)
{
    if (!session_id)
        return NULL;
    for (GList *l = as->conns; l; l = l->next) {
        VddAgent *a = l->data;
        if (a->state == ST_AGENT && g_strcmp0(a->session, session_id) == 0)
            return a;
    }
    return NULL;
}

unsigned vdd_agents_connections(const VddAgents *as)
{
    return g_list_length(as->conns);
}

pid_t vdd_agent_pid(const VddAgent *a) { return a->pid; }
uid_t vdd_agent_uid(const VddAgent *a) { return a->uid; }
const char *vdd_agent_session(const VddAgent *a) { return a->session; }
const char *vdd_agent_name(const VddAgent *a) { return a->name; }

const VddLayout *vdd_agent_layout(const VddAgent *a)
{
    return a->has_layout ? &a->layout : NULL;
}

static bool check_sent(VddAgent *a, VdpResult r, const char *what)
{
    if (r == VDP_OK)
        return true;
    char *t = g_strdup_printf("cannot queue %s: %s", what, vdp_result_name(r));
    agent_drop_later(a, t);
    g_free(t);
    return false;
}

bool vdd_agent_write_blocked(const VddAgent *a)
{
    return vdp_ipc_conn_write_blocked(a->conn);
}

bool vdd_agent_send_vdagent(VddAgent *a, const VdpMsg *msg)
{
    if (a->drop_idle)
        return false;
    VdpError err = {0};
    VdpResult r = vdp_ipc_conn_send_vdagent(a->conn, 0, msg, &err);
    return check_sent(a, r, vdp_msg_type_name(msg->type));
}

bool vdd_agent_send_mouse(VddAgent *a, int32_t x, int32_t y, uint32_t buttons)
{
    if (a->drop_idle)
        return false;
    VdpIpcMouse m = {.x = x, .y = y, .buttons = buttons & VDP_IPC_MOUSE_BUTTONS_ALL};
    uint8_t buf[VDP_IPC_MOUSE_SIZE];
    size_t n = vdp_ipc_mouse_encode(&m, buf, sizeof(buf));
    return check_sent(a, vdp_ipc_conn_send(a->conn, VDP_IPC_MOUSE, 0, buf, n, NULL, 0), "MOUSE");
}

bool vdd_agent_send_clip_begin(VddAgent *a, const VdpIpcClipHead *head)
{
    if (a->drop_idle)
        return false;
    uint8_t buf[VDP_IPC_CLIP_HEAD_SIZE];
    size_t n = vdp_ipc_clip_head_encode(head, buf, sizeof(buf));
    if (!n)
        return false;
    return check_sent(a, vdp_ipc_conn_send(a->conn, VDP_IPC_CLIP_BEGIN, 0, buf, n, NULL, 0), "CLIP_BEGIN");
}

bool vdd_agent_send_clip_chunk(VddAgent *a, const uint8_t *data, size_t len)
{
    if (a->drop_idle || len == 0 || len > VDP_IPC_MAX_FRAME)
        return false;
    return check_sent(a, vdp_ipc_conn_send(a->conn, VDP_IPC_CLIP_CHUNK, 0, data, len, NULL, 0), "CLIP_CHUNK");
}

bool vdd_agent_send_clip_abort(VddAgent *a, uint32_t selection)
{
    if (a->drop_idle)
        return false;
    uint8_t buf[VDP_IPC_CLIP_ABORT_SIZE];
    size_t n = vdp_ipc_clip_abort_encode(selection, buf, sizeof(buf));
    if (!n)
        return false;
    return check_sent(a, vdp_ipc_conn_send(a->conn, VDP_IPC_CLIP_ABORT, 0, buf, n, NULL, 0), "CLIP_ABORT");
}

bool vdd_agent_dropping(const VddAgent *a)
{
    return a->drop_idle != NULL;
}

bool vdd_agent_send_session_state(VddAgent *a, uint32_t flags)
{
    if (a->drop_idle || (a->flags_sent && a->flags == flags))
        return false;
    uint8_t buf[VDP_IPC_SESSION_STATE_SIZE];
    size_t n = vdp_ipc_session_state_encode(flags, buf, sizeof(buf));
    if (!check_sent(a, vdp_ipc_conn_send(a->conn, VDP_IPC_SESSION_STATE, 0, buf, n, NULL, 0),
                    "SESSION_STATE"))
        return false;
    a->flags_sent = true;
    a->flags = flags;
    return true;
}
