/* spice-host - a minimal SPICE host for the interop tests.
 *
 * What QEMU does for a guest with `-vga qxl -chardev spicevmc,name=vdagent`,
 * without a guest: Debian's libspice-server listens on 127.0.0.1, a QXL
 * instance with one primary surface stands in for the display (spice-gtk
 * gets a display channel and spice-server allows client mouse mode), and a char
 * device instance of subtype "vdagent" is bridged to a UNIX socket. The
 * guest daemon connects to that socket as its virtio port (spice-vdagentd
 * -s PATH). As QEMU does when the guest opens and closes the virtio port,
 * the char device is registered with spice-server when the daemon connects
 * and removed when it goes away: that is how spice-server (and through it
 * the client) learns that the agent is connected or gone.
 *
 * Usage: spice-host [--port N|0] [--port-file FILE] --agent-socket PATH
 *                   [--size WxH] [--qxl-monitors-config]
 *
 * Logs to stderr; ends cleanly on SIGTERM/SIGINT (exit 0). SIGUSR1 closes
 * the guest's connection, as if the virtio port went away: spice-server
 * sees the agent leave, and the daemon has to reconnect.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <signal.h>
#include <spice.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The surface may not be smaller than what spice-gtk can show sensibly, nor
 * larger than what we are willing to allocate (4 bytes a pixel): 4096x4096
 * is 64 MiB, more than a test needs. */
#define HOST_MIN_DIM 64
#define HOST_MAX_DIM 4096
#define HOST_DEFAULT_WIDTH 1024
#define HOST_DEFAULT_HEIGHT 768
/* Tries at binding a free TCP port (another process may take the port we
 * found between our probe and spice-server's bind). */
#define HOST_PORT_TRIES 20
/* Refused extra guest connections are logged at most this often (a local
 * process could otherwise connect in a loop and flood the log). */
#define HOST_REFUSE_LOG_INTERVAL_US (5 * G_USEC_PER_SEC)
/* Connections to the guest socket waiting to be accepted: one daemon, plus
 * room for a reconnect racing the close of the previous connection. */
#define HOST_LISTEN_BACKLOG 4
/* QXL memory layout we announce: one memslot group, one slot, one surface. */
#define HOST_MEMSLOT_GEN_BITS 1
#define HOST_MEMSLOT_ID_BITS 1

/* ---- core interface: timers and watches on the default GMainContext ---- */

struct SpiceTimer {
    SpiceTimerFunc func;
    void *opaque;
    guint source;
};

static gboolean timer_fire(gpointer data)
{
    SpiceTimer *t = data;
    t->source = 0;
    t->func(t->opaque);   /* may start, cancel or remove t */
    return G_SOURCE_REMOVE;
}

static SpiceTimer *core_timer_add(SpiceTimerFunc func, void *opaque)
{
    SpiceTimer *t = g_new0(SpiceTimer, 1);
    t->func = func;
    t->opaque = opaque;
    return t;
}

static void core_timer_cancel(SpiceTimer *t)
{
    g_clear_handle_id(&t->source, g_source_remove);
}

static void core_timer_start(SpiceTimer *t, uint32_t ms)
{
    core_timer_cancel(t);
    t->source = g_timeout_add(ms, timer_fire, t);
}

static void core_timer_remove(SpiceTimer *t)
{
    core_timer_cancel(t);
    g_free(t);
}

struct SpiceWatch {
    int fd;
    int mask;
    SpiceWatchFunc func;
    void *opaque;
    guint source;
};

static gboolean watch_fire(gint fd, GIOCondition cond, gpointer data)
{
    SpiceWatch *w = data;
    int ev = 0;
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        ev |= w->mask & SPICE_WATCH_EVENT_READ;
    if (cond & (G_IO_OUT | G_IO_HUP | G_IO_ERR))
        ev |= w->mask & SPICE_WATCH_EVENT_WRITE;
    if (ev == 0)   /* HUP/ERR with no interest left: report it as a read */
        ev = SPICE_WATCH_EVENT_READ;
    /* func may update or remove w: nothing touches w after this call. */
    w->func(fd, ev, w->opaque);
    return G_SOURCE_CONTINUE;
}

static void watch_arm(SpiceWatch *w)
{
    GIOCondition cond = 0;
    g_clear_handle_id(&w->source, g_source_remove);
    if (w->mask & SPICE_WATCH_EVENT_READ)
        cond |= G_IO_IN;
    if (w->mask & SPICE_WATCH_EVENT_WRITE)
        cond |= G_IO_OUT;
    if (cond)
        w->source = g_unix_fd_add(w->fd, cond, watch_fire, w);
}

static SpiceWatch *core_watch_add(int fd, int mask, SpiceWatchFunc func, void *opaque)
{
    SpiceWatch *w = g_new0(SpiceWatch, 1);
    w->fd = fd;
    w->mask = mask;
    w->func = func;
    w->opaque = opaque;
    watch_arm(w);
    return w;
}

static void core_watch_update_mask(SpiceWatch *w, int mask)
{
    if (w->mask == mask && (w->source || mask == 0))
        return;
    w->mask = mask;
    watch_arm(w);
}

static void core_watch_remove(SpiceWatch *w)
{
    g_clear_handle_id(&w->source, g_source_remove);
    g_free(w);
}

static const char *channel_type_name(int type)
{
    static const char *const names[] = {
        [1] = "main", [2] = "display", [3] = "inputs", [4] = "cursor",
        [5] = "playback", [6] = "record", [7] = "tunnel", [8] = "smartcard",
        [9] = "usbredir", [10] = "port", [11] = "webdav",
    };
    if (type > 0 && (size_t)type < G_N_ELEMENTS(names) && names[type])
        return names[type];
    return "unknown";
}

/* May be called from spice-server's worker thread: only logs. */
static void core_channel_event(int event, SpiceChannelEventInfo *info)
{
    const char *what = event == SPICE_CHANNEL_EVENT_CONNECTED ? "connected"
                     : event == SPICE_CHANNEL_EVENT_INITIALIZED ? "initialized"
                     : event == SPICE_CHANNEL_EVENT_DISCONNECTED ? "disconnected" : "event";
    if (!info)
        return;
    if (event == SPICE_CHANNEL_EVENT_CONNECTED)   /* the channel is not known yet */
        fprintf(stderr, "spice-host: a client connection opened\n");
    else
        fprintf(stderr, "spice-host: channel %s:%d %s (connection %d)\n",
                channel_type_name(info->type), info->id, what, info->connection_id);
}

static SpiceCoreInterface core_iface = {
    .base = {
        .type = SPICE_INTERFACE_CORE,
        .description = "vdagent interop host core",
        .major_version = SPICE_INTERFACE_CORE_MAJOR,
        .minor_version = SPICE_INTERFACE_CORE_MINOR,
    },
    .timer_add = core_timer_add,
    .timer_start = core_timer_start,
    .timer_cancel = core_timer_cancel,
    .timer_remove = core_timer_remove,
    .watch_add = core_watch_add,
    .watch_update_mask = core_watch_update_mask,
    .watch_remove = core_watch_remove,
    .channel_event = core_channel_event,
};

/* ---- the host state ---- */

typedef struct Host {
    SpiceServer *server;
    GMainLoop *loop;
    char *agent_path;
    int listen_fd;
    guint listen_source;
    int guest_fd;              /* the daemon's connection, -1 when none */
    bool registered;           /* char device added to spice-server */
    guint in_source;           /* armed when spice-server saw no data */
    guint out_source;          /* armed when a write came back short */
    guint drop_source;         /* idle: close the guest connection */
    gint64 last_refuse_log;
    unsigned refused;
    unsigned guest_connections;
    SpiceCharDeviceInstance vdagent;
    QXLInstance qxl;
    bool qxl_monitors_config;
    uint32_t width, height;
    uint8_t *surface;
    size_t surface_size;
} Host;

static Host host;

/* ---- the vdagent char device, bridged to the guest's socket ---- */

static void guest_drop_later(const char *why);

static gboolean guest_readable(gint fd, GIOCondition cond, gpointer data)
{
    host.in_source = 0;
    /* spice-server reads until we report no data, then we watch again. */
    if (host.registered)
        spice_server_char_device_wakeup(&host.vdagent);
    return G_SOURCE_REMOVE;
}

static gboolean guest_writable(gint fd, GIOCondition cond, gpointer data)
{
    host.out_source = 0;
    if (host.registered)
        spice_server_char_device_wakeup(&host.vdagent);
    return G_SOURCE_REMOVE;
}

static void vmc_state(SpiceCharDeviceInstance *sin, int connected)
{
    fprintf(stderr, "spice-host: spice-server set the vdagent device %s\n",
            connected ? "active" : "inactive");
}

static int vmc_write(SpiceCharDeviceInstance *sin, const uint8_t *buf, int len)
{
    if (host.guest_fd < 0 || len <= 0)
        return 0;
    ssize_t n = send(host.guest_fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
        if (n < len && !host.out_source)
            host.out_source = g_unix_fd_add(host.guest_fd, G_IO_OUT, guest_writable, NULL);
        return (int)n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (!host.out_source)
            host.out_source = g_unix_fd_add(host.guest_fd, G_IO_OUT, guest_writable, NULL);
        return 0;
    }
    guest_drop_later(g_strerror(errno));
    return 0;
}

static int vmc_read(SpiceCharDeviceInstance *sin, uint8_t *buf, int len)
{
    if (host.guest_fd < 0 || len <= 0)
        return 0;
    ssize_t n = recv(host.guest_fd, buf, (size_t)len, MSG_DONTWAIT);
    if (n > 0)
        return (int)n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!host.in_source)
            host.in_source = g_unix_fd_add(host.guest_fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                           guest_readable, NULL);
        return 0;
    }
    guest_drop_later(n == 0 ? "the guest closed the port" : g_strerror(errno));
    return 0;
}

static SpiceCharDeviceInterface vmc_iface = {
    .base = {
        .type = SPICE_INTERFACE_CHAR_DEVICE,
        .description = "vdagent bridge to a UNIX socket",
        .major_version = SPICE_INTERFACE_CHAR_DEVICE_MAJOR,
        .minor_version = SPICE_INTERFACE_CHAR_DEVICE_MINOR,
    },
    .state = vmc_state,
    .write = vmc_write,
    .read = vmc_read,
    /* we call spice_server_char_device_wakeup when the socket becomes
     * writable, so spice-server need not poll with its 100 ms timer */
    .flags = SPICE_CHAR_DEVICE_NOTIFY_WRITABLE,
};

static void guest_close(void)
{
    g_clear_handle_id(&host.in_source, g_source_remove);
    g_clear_handle_id(&host.out_source, g_source_remove);
    g_clear_handle_id(&host.drop_source, g_source_remove);
    if (host.registered) {
        /* as QEMU does when the guest closes the virtio port */
        spice_server_remove_interface(&host.vdagent.base);
        host.registered = false;
    }
    if (host.guest_fd >= 0) {
        close(host.guest_fd);
        host.guest_fd = -1;
    }
}

static gboolean guest_drop_idle(gpointer data)
{
    host.drop_source = 0;
    guest_close();
    fprintf(stderr, "spice-host: guest port closed; agent removed from spice-server\n");
    return G_SOURCE_REMOVE;
}

/* Called from spice-server's callbacks: the interface may not be removed
 * while spice-server is inside them, so it happens on the next iteration. */
static void guest_drop_later(const char *why)
{
    if (host.drop_source)
        return;
    fprintf(stderr, "spice-host: guest port: %s\n", why);
    g_clear_handle_id(&host.in_source, g_source_remove);
    g_clear_handle_id(&host.out_source, g_source_remove);
    host.drop_source = g_idle_add(guest_drop_idle, NULL);
}

static gboolean listener_ready(gint fd, GIOCondition cond, gpointer data)
{
    int c = accept4(host.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fprintf(stderr, "spice-host: accept on %s: %s\n", host.agent_path, g_strerror(errno));
        return G_SOURCE_CONTINUE;
    }
    if (host.guest_fd >= 0 || host.drop_source) {
        /* one guest port, like one virtio port: a second opener is refused */
        host.refused++;
        gint64 now = g_get_monotonic_time();
        if (now - host.last_refuse_log >= HOST_REFUSE_LOG_INTERVAL_US) {
            fprintf(stderr, "spice-host: refused %u extra connection(s) to %s: the port is in use\n",
                    host.refused, host.agent_path);
            host.refused = 0;
            host.last_refuse_log = now;
        }
        close(c);
        return G_SOURCE_CONTINUE;
    }
    host.guest_fd = c;
    host.guest_connections++;
    host.vdagent.base.sif = &vmc_iface.base;
    host.vdagent.subtype = "vdagent";
    if (spice_server_add_interface(host.server, &host.vdagent.base) != 0) {
        fprintf(stderr, "spice-host: spice-server refused the vdagent device\n");
        close(c);
        host.guest_fd = -1;
        return G_SOURCE_CONTINUE;
    }
    host.registered = true;
    fprintf(stderr, "spice-host: guest port opened (connection %u); agent registered\n",
            host.guest_connections);
    /* data may already be waiting */
    spice_server_char_device_wakeup(&host.vdagent);
    return G_SOURCE_CONTINUE;
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "spice-host: socket path too long: %s\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);   /* a test's own path: a stale socket of an earlier run */
    mode_t old = umask(0077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || listen(fd, HOST_LISTEN_BACKLOG) < 0) {
        fprintf(stderr, "spice-host: listen on %s: %s\n", path, g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- QXL: one primary surface, no commands ---- */

static void qxl_attached_worker(QXLInstance *qin) { }
static void qxl_set_compression_level(QXLInstance *qin, int level) { }

static void qxl_get_init_info(QXLInstance *qin, QXLDevInitInfo *info)
{
    memset(info, 0, sizeof(*info));
    info->num_memslots_groups = 1;
    info->num_memslots = 1;
    info->memslot_gen_bits = HOST_MEMSLOT_GEN_BITS;
    info->memslot_id_bits = HOST_MEMSLOT_ID_BITS;
    info->n_surfaces = 1;
    info->qxl_ram_size = (uint32_t)host.surface_size;
}

static int qxl_get_command(QXLInstance *qin, struct QXLCommandExt *cmd) { return 0; }
static int qxl_req_cmd_notification(QXLInstance *qin) { return 1; }
static void qxl_release_resource(QXLInstance *qin, struct QXLReleaseInfoExt info) { }
static int qxl_get_cursor_command(QXLInstance *qin, struct QXLCommandExt *cmd) { return 0; }
static int qxl_req_cursor_notification(QXLInstance *qin) { return 1; }
static void qxl_notify_update(QXLInstance *qin, uint32_t update_id) { }
static int qxl_flush_resources(QXLInstance *qin) { return 0; }
static void qxl_async_complete(QXLInstance *qin, uint64_t cookie) { }
static void qxl_update_area_complete(QXLInstance *qin, uint32_t surface_id,
                                     struct QXLRect *rects, uint32_t n) { }
static void qxl_set_client_capabilities(QXLInstance *qin, uint8_t client_present,
                                        uint8_t caps[SPICE_CAPABILITIES_SIZE]) { }

/* spice-server asks every QXL instance with a NULL config whether it takes
 * the client's monitor configs. If all say yes (1), spice-server 0.15.1
 * hands each MONITORS_CONFIG to them *instead of* the agent: the agent
 * never sees it. So by default we answer no (0), as a QXL device whose guest
 * driver does not take client monitor configs, and spice-server forwards
 * the configs to the agent. --qxl-monitors-config answers yes, to show that
 * behaviour. Only the header is read: spice-server has checked the size. */
static int qxl_client_monitors_config(QXLInstance *qin, VDAgentMonitorsConfig *mc)
{
    if (!host.qxl_monitors_config)
        return 0;
    if (mc) {
        uint32_t n, flags;
        memcpy(&n, &mc->num_of_monitors, sizeof(n));
        memcpy(&flags, &mc->flags, sizeof(flags));
        fprintf(stderr, "spice-host: QXL got a client monitors config: %u monitor(s), flags 0x%x\n",
                n, flags);
    }
    return 1;
}

static QXLInterface qxl_iface = {
    .base = {
        .type = SPICE_INTERFACE_QXL,
        .description = "vdagent interop display",
        .major_version = SPICE_INTERFACE_QXL_MAJOR,
        .minor_version = SPICE_INTERFACE_QXL_MINOR,
    },
    .attached_worker = qxl_attached_worker,
    .set_compression_level = qxl_set_compression_level,
    .get_init_info = qxl_get_init_info,
    .get_command = qxl_get_command,
    .req_cmd_notification = qxl_req_cmd_notification,
    .release_resource = qxl_release_resource,
    .get_cursor_command = qxl_get_cursor_command,
    .req_cursor_notification = qxl_req_cursor_notification,
    .notify_update = qxl_notify_update,
    .flush_resources = qxl_flush_resources,
    .async_complete = qxl_async_complete,
    .update_area_complete = qxl_update_area_complete,
    .set_client_capabilities = qxl_set_client_capabilities,
    .client_monitors_config = qxl_client_monitors_config,
};

static bool display_start(void)
{
    host.qxl.base.sif = &qxl_iface.base;
    host.qxl.id = 0;
    if (spice_server_add_interface(host.server, &host.qxl.base) != 0) {
        fprintf(stderr, "spice-host: spice-server refused the QXL instance\n");
        return false;
    }
    QXLDevMemSlot slot = {
        .slot_group_id = 0,
        .slot_id = 0,
        .generation = 0,
        .virt_start = (uintptr_t)host.surface,
        .virt_end = (uintptr_t)host.surface + host.surface_size,
        .addr_delta = 0,
        .qxl_ram_size = (uint32_t)host.surface_size,
    };
    spice_qxl_add_memslot(&host.qxl, &slot);
    QXLDevSurfaceCreate surf = {
        .width = host.width,
        .height = host.height,
        .stride = (int32_t)(host.width * 4),
        .format = SPICE_SURFACE_FMT_32_xRGB,
        .position = 0,
        .mouse_mode = 1,   /* the guest allows client mouse mode */
        .flags = 0,
        .type = 0,
        .mem = (uintptr_t)host.surface,
        .group_id = 0,
    };
    spice_qxl_create_primary_surface(&host.qxl, 0, &surf);
    return true;
}

/* ---- startup ---- */

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static bool parse_size(const char *s, uint32_t *w, uint32_t *h)
{
    char *end;
    errno = 0;
    unsigned long a = strtoul(s, &end, 10);
    if (errno || end == s || *end != 'x')
        return false;
    const char *p = end + 1;
    unsigned long b = strtoul(p, &end, 10);
    if (errno || end == p || *end)
        return false;
    if (a < HOST_MIN_DIM || a > HOST_MAX_DIM || b < HOST_MIN_DIM || b > HOST_MAX_DIM)
        return false;
    *w = (uint32_t)a;
    *h = (uint32_t)b;
    return true;
}

static gboolean on_signal(gpointer data)
{
    fprintf(stderr, "spice-host: signal, stopping\n");
    g_main_loop_quit(host.loop);
    return G_SOURCE_REMOVE;
}

static gboolean on_usr1(gpointer data)
{
    if (host.guest_fd >= 0) {
        fprintf(stderr, "spice-host: SIGUSR1: closing the guest port\n");
        guest_close();
    } else {
        fprintf(stderr, "spice-host: SIGUSR1: no guest connected\n");
    }
    return G_SOURCE_CONTINUE;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: spice-host --agent-socket PATH [--port N (0: a free one)] [--port-file FILE]\n"
            "                  [--size WxH (%d..%d, default %dx%d)] [--qxl-monitors-config]\n",
            HOST_MIN_DIM, HOST_MAX_DIM, HOST_DEFAULT_WIDTH, HOST_DEFAULT_HEIGHT);
    return 2;
}

int main(int argc, char **argv)
{
    const char *port_file = NULL;
    long want_port = 0;
    host.width = HOST_DEFAULT_WIDTH;
    host.height = HOST_DEFAULT_HEIGHT;
    host.guest_fd = -1;
    host.listen_fd = -1;
    host.qxl_monitors_config = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--agent-socket") && v) {
            host.agent_path = g_strdup(v);
            i++;
        } else if (!strcmp(a, "--port") && v) {
            char *end;
            errno = 0;
            want_port = strtol(v, &end, 10);
            if (errno || *end || end == v || want_port < 0 || want_port > 65535)
                return usage();
            i++;
        } else if (!strcmp(a, "--port-file") && v) {
            port_file = v;
            i++;
        } else if (!strcmp(a, "--size") && v) {
            if (!parse_size(v, &host.width, &host.height))
                return usage();
            i++;
        } else if (!strcmp(a, "--qxl-monitors-config")) {
            host.qxl_monitors_config = true;
        } else {
            return usage();
        }
    }
    if (!host.agent_path)
        return usage();

    signal(SIGPIPE, SIG_IGN);
    host.loop = g_main_loop_new(NULL, FALSE);
    host.surface_size = (size_t)host.width * host.height * 4;
    host.surface = g_malloc0(host.surface_size);

    host.listen_fd = listen_unix(host.agent_path);
    if (host.listen_fd < 0)
        return 1;

    int port = -1;
    for (int t = 0; t < HOST_PORT_TRIES; t++) {
        port = want_port ? (int)want_port : free_tcp_port();
        if (port <= 0) {
            fprintf(stderr, "spice-host: no free TCP port on 127.0.0.1\n");
            return 1;
        }
        host.server = spice_server_new();
        spice_server_set_addr(host.server, "127.0.0.1", SPICE_ADDR_FLAG_IPV4_ONLY);
        spice_server_set_port(host.server, port);
        spice_server_set_noauth(host.server);
        spice_server_set_agent_mouse(host.server, 1);
        spice_server_set_agent_copypaste(host.server, 1);
        spice_server_set_agent_file_xfer(host.server, 1);
        spice_server_set_name(host.server, "vdagent-interop");
        if (spice_server_init(host.server, &core_iface) == 0)
            break;
        spice_server_destroy(host.server);
        host.server = NULL;
        if (want_port) {
            fprintf(stderr, "spice-host: could not listen on 127.0.0.1:%ld\n", want_port);
            return 1;
        }
    }
    if (!host.server) {
        fprintf(stderr, "spice-host: no port after %d tries\n", HOST_PORT_TRIES);
        return 1;
    }

    if (!display_start())
        return 1;
    spice_server_vm_start(host.server);

    host.listen_source = g_unix_fd_add(host.listen_fd, G_IO_IN, listener_ready, NULL);
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGUSR1, on_usr1, NULL);

    fprintf(stderr, "spice-host: listening on 127.0.0.1:%d, agent socket %s, display %ux%u\n",
            port, host.agent_path, host.width, host.height);
    if (port_file) {
        char buf[16];
        snprintf(buf, sizeof(buf), "%d\n", port);
        GError *err = NULL;
        if (!g_file_set_contents(port_file, buf, -1, &err)) {
            fprintf(stderr, "spice-host: %s\n", err->message);
            g_error_free(err);
            return 1;
        }
    }

    g_main_loop_run(host.loop);

    guest_close();
    g_clear_handle_id(&host.listen_source, g_source_remove);
    close(host.listen_fd);
    unlink(host.agent_path);
    spice_server_vm_stop(host.server);
    spice_server_remove_interface(&host.qxl.base);
    spice_server_destroy(host.server);
    g_main_loop_unref(host.loop);
    g_free(host.surface);
    g_free(host.agent_path);
    fprintf(stderr, "spice-host: stopped\n");
    return 0;
}
