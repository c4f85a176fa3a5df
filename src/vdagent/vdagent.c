/* vdagent.c - spice-vdagent, the session agent: options, logging, the one
 * agent per display rule, and the dispatch of the daemon's frames to the
 * clipboard, display, file and mouse modules. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <glib-unix.h>
#include <X11/Xatom.h>
#include <X11/Xlib.h>

#include "va-clipboard.h"
#include "vdp-ratelimit.h"
#include "va-conn.h"
#include "va-display.h"
#include "va-files.h"
#include "va-mouse.h"
#include "va-x11.h"
#include "vdp-ipc-msg.h"
#include "vdp-wire.h"

#define DEFAULT_PORT "/dev/virtio-ports/com.redhat.spice.0"
#define DEFAULT_SOCKET "/run/spice-vdagentd/spice-vdagent-sock"
/* How long a daemonizing parent waits for the child to be up (0.22.1: 10 s). */
#define DAEMONIZE_WAIT_MS 10000
/* Server timestamp wait for the manager selection. */
#define SELECTION_TIME_MS 2000
/* Exit statuses. */
#define EXIT_BAD_ARGS 255   /* as 0.22.1 (exit(-1)) */
#define EXIT_FAILURE_X 1

/* Window managers that show icons on the desktop: files go to the Desktop
 * there, to Downloads elsewhere (0.22.1's whitelist). */
static const char *const wm_with_icons[] = {"Metacity", "Xfwm4", "Marco", "Metacity (Marco)"};

typedef struct App {
    GMainLoop *loop;
    VaX11 *x;
    VaClipboard *cb;
    VaDisplay *disp;
    VaFiles *files;
    VaMouse *mouse;
    VaConn *conn;
    VdpIpcConn *ipc;
    VdpMsg *msg;              /* decode scratch (a large union) */
    uint32_t session_flags;
    Atom manager_atom;
    int exit_status;
    VdpRateLimit rl;
} App;

static App app;

/* ---- options ---- */

static gboolean opt_debug, opt_foreground, opt_abort_x;
static char *opt_port, *opt_socket, *opt_save_dir;
/* -o as 0.22.1 (an int option): -1 (the default) decides by the desktop,
 * 0 never, any other integer always; not an integer: invalid arguments. */
#define OPEN_DIR_AUTO (-1)
static gint opt_open_dir = OPEN_DIR_AUTO;

static const GOptionEntry entries[] = {
    {"debug", 'd', 0, G_OPTION_ARG_NONE, &opt_debug, "Log debug messages", NULL},
    {"virtio-serial-port-path", 's', 0, G_OPTION_ARG_STRING, &opt_port,
     "Virtio port; the agent exits quietly when it does not exist (default " DEFAULT_PORT ")", "PATH"},
    {"vdagentd-socket", 'S', 0, G_OPTION_ARG_STRING, &opt_socket,
     "spice-vdagentd socket (default " DEFAULT_SOCKET ")", "PATH"},
    {"foreground", 'x', 0, G_OPTION_ARG_NONE, &opt_foreground, "Do not daemonize, log to stderr as well", NULL},
    {"file-xfer-save-dir", 'f', 0, G_OPTION_ARG_STRING, &opt_save_dir,
     "Where received files are saved", "DIR|xdg-desktop|xdg-download"},
    {"file-xfer-open-dir", 'o', 0, G_OPTION_ARG_INT, &opt_open_dir,
     "Open the save directory after a transfer (default -1: when the desktop shows no icons)", "0|1"},
    {"x11-abort-on-error", 'y', G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_abort_x,
     "Accepted for compatibility; X errors never abort", NULL},
    {NULL},
};

/* ---- logging ---- */

static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    (void)data;
    if ((level & G_LOG_LEVEL_DEBUG) && !opt_debug)
        return G_LOG_WRITER_HANDLED;
    const char *text = NULL;
    for (gsize i = 0; i < n; i++)
        if (strcmp(fields[i].key, "MESSAGE") == 0)
            text = fields[i].value;
    if (!text)
        return G_LOG_WRITER_UNHANDLED;
    int prio = LOG_INFO;
    if (level & G_LOG_LEVEL_ERROR)
        prio = LOG_ERR;
    else if (level & G_LOG_LEVEL_CRITICAL)
        prio = LOG_CRIT;
    else if (level & G_LOG_LEVEL_WARNING)
        prio = LOG_WARNING;
    else if (level & G_LOG_LEVEL_DEBUG)
        prio = LOG_DEBUG;
    /* Always syslog (the journal keeps the priority); with -x, openlog's
     * LOG_PERROR copies each line to stderr once, as 0.22.1 does (unless
     * stderr is the journal: see stderr_is_journal). */
    syslog(prio, "%s", text);
    return G_LOG_WRITER_HANDLED;
}

/* A systemd unit's stderr connected to the journal (JOURNAL_STREAM names
 * its device and inode): a copy there would log every line twice, the
 * second time without its priority. */
static bool stderr_is_journal(void)
{
    const char *js = g_getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* ---- daemonizing ---- */

static int ready_fd = -1;

/* Fork; the parent waits for the child's "OK" and exits with 0 or 1. */
static void daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        g_warning("pipe: %s", g_strerror(errno));
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        g_warning("fork: %s", g_strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        char buf[2] = {0};
        int r;
        do
            r = poll(&pfd, 1, DAEMONIZE_WAIT_MS);
        while (r < 0 && errno == EINTR);
        _exit(r == 1 && read(p[0], buf, 2) == 2 && memcmp(buf, "OK", 2) == 0 ? 0 : 1);
    }
    close(p[0]);
    ready_fd = p[1];
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
}

static void report_ready(void)
{
    if (ready_fd < 0)
        return;
    if (write(ready_fd, "OK", 2) != 2)
        g_debug("could not tell the parent we are up");
    close(ready_fd);
    ready_fd = -1;
}

/* ---- one agent per display ---- */

/* Own the ICCCM manager selection _SPICE_VDAGENT_S<screen>. Returns false
 * if another agent owns it. */
static bool own_display(App *a)
{
    Display *dpy = va_x11_display(a->x);
    char name[32];
    g_snprintf(name, sizeof(name), "_SPICE_VDAGENT_S%d", DefaultScreen(dpy));
    a->manager_atom = va_x11_atom(a->x, name);
    Time t = va_x11_server_time(a->x, SELECTION_TIME_MS);
    Window me = va_x11_window(a->x);
    /* Check and take under a server grab (a few microseconds): two agents
     * started at once cannot both see the selection free. */
    XGrabServer(dpy);
    Window owner = XGetSelectionOwner(dpy, a->manager_atom);
    if (owner == None)
        XSetSelectionOwner(dpy, a->manager_atom, me, t);
    XUngrabServer(dpy);
    XFlush(dpy);
    if (owner != None) {
        g_message("another spice-vdagent runs on this display (it owns %s); exiting", name);
        return false;
    }
    if (XGetSelectionOwner(dpy, a->manager_atom) != me) {
        g_message("another spice-vdagent took this display at the same time; exiting");
        return false;
    }
    /* ICCCM 2.8: announce the new manager. */
    XEvent ev = {0};
    ev.xclient.type = ClientMessage;
    ev.xclient.window = va_x11_root(a->x);
    ev.xclient.message_type = va_x11_atom(a->x, "MANAGER");
    ev.xclient.format = 32;
    ev.xclient.data.l[0] = (long)t;
    ev.xclient.data.l[1] = (long)a->manager_atom;
    ev.xclient.data.l[2] = (long)me;
    XSendEvent(dpy, va_x11_root(a->x), False, StructureNotifyMask, &ev);
    XFlush(dpy);
    return true;
}

static void on_x_event(void *user, XEvent *ev)
{
    App *a = user;
    if (ev->type == SelectionClear && ev->xselectionclear.selection == a->manager_atom &&
        ev->xselectionclear.window == va_x11_window(a->x)) {
        /* Two agents raced for the display: the one that lost leaves. */
        g_message("another spice-vdagent took over this display; exiting");
        a->exit_status = 0;
        g_main_loop_quit(a->loop);
    }
}

/* ---- save directory ---- */

static bool wm_has_desktop_icons(VaX11 *x)
{
    Display *dpy = va_x11_display(x);
    Atom check = va_x11_atom(x, "_NET_SUPPORTING_WM_CHECK");
    Atom wm_name = va_x11_atom(x, "_NET_WM_NAME");
    Atom utf8 = va_x11_atom(x, "UTF8_STRING");
    bool icons = false;
    Atom type;
    int format;
    unsigned long n, after;
    unsigned char *data = NULL;
    va_x11_trap_push(x);
    if (XGetWindowProperty(dpy, va_x11_root(x), check, 0, 1, False, XA_WINDOW, &type, &format, &n, &after,
                           &data) == Success &&
        type == XA_WINDOW && format == 32 && n == 1) {
        Window wm = (Window)((unsigned long *)(void *)data)[0];
        XFree(data);
        data = NULL;
        if (XGetWindowProperty(dpy, wm, wm_name, 0, 64, False, utf8, &type, &format, &n, &after, &data) ==
                Success &&
            type == utf8 && format == 8 && data) {
            char *name = g_strndup((const char *)data, n);
            for (size_t i = 0; i < G_N_ELEMENTS(wm_with_icons); i++)
                if (strcmp(name, wm_with_icons[i]) == 0)
                    icons = true;
            g_debug("window manager: %s", name);
            g_free(name);
        }
    }
    if (data)
        XFree(data);
    va_x11_trap_pop(x);
    return icons;
}

/* The directory for -f (NULL: none usable). */
static char *resolve_save_dir(VaX11 *x, bool *open_dir)
{
    bool icons = wm_has_desktop_icons(x);
    *open_dir = opt_open_dir == OPEN_DIR_AUTO ? !icons : opt_open_dir != 0;
    const char *dir;
    if (!opt_save_dir)
        dir = g_get_user_special_dir(icons ? G_USER_DIRECTORY_DESKTOP : G_USER_DIRECTORY_DOWNLOAD);
    else if (strcmp(opt_save_dir, "xdg-desktop") == 0)
        dir = g_get_user_special_dir(G_USER_DIRECTORY_DESKTOP);
    else if (strcmp(opt_save_dir, "xdg-download") == 0)
        dir = g_get_user_special_dir(G_USER_DIRECTORY_DOWNLOAD);
    else
        return g_strdup(opt_save_dir);
    if (!dir)
        return NULL;
    /* An XDG directory that does not exist yet is created (as a file
     * manager would); an explicit -f DIR must exist. */
    if (g_mkdir_with_parents(dir, 0755) < 0)
        g_message("cannot create %s: %s", dir, g_strerror(errno));
    return g_strdup(dir);
}

/* ---- the daemon's frames ---- */

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

static void refuse_xfer(App *a, uint32_t id)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_STATUS;
    m->u.xfer_status.id = id;
    m->u.xfer_status.result = VD_AGENT_FILE_XFER_STATUS_DISABLED;
    vdp_ipc_conn_send_vdagent(a->ipc, 0, m, NULL);
    g_free(m);
}

static void handle_vdagent(App *a, const uint8_t *payload, size_t len)
{
    VdpError err = {0};
    if (len < VDP_IPC_VDAGENT_HEAD) {
        if (vdp_rate_ok(&a->rl, "daemon message"))
            g_message("short VDAGENT envelope from the daemon dropped");
        return;
    }
    uint32_t type = vdp_get_le32(payload);
    VdpMsg *m = a->msg;
    memset(m, 0, sizeof(*m));
    if (vdp_msg_decode(VDP_FROM_HOST, vdp_msg_port_for_type(type), type, payload + VDP_IPC_VDAGENT_HEAD,
                       len - VDP_IPC_VDAGENT_HEAD, &vdp_ipc_layout, m, &err) != VDP_OK) {
        if (vdp_rate_ok(&a->rl, "daemon message"))
            g_message("invalid %s from the daemon dropped: %s",
                      vdp_msg_type_name(type) ? vdp_msg_type_name(type) : "message", err.text);
        return;
    }
    switch (type) {
    case VD_AGENT_MONITORS_CONFIG:
        if (a->disp)
            va_display_handle_monitors_config(a->disp, &m->u.monitors);
        else
            g_debug("MONITORS_CONFIG ignored: no display backend");
        return;
    case VD_AGENT_GRAPHICS_DEVICE_INFO:
        if (a->disp)
            va_display_handle_device_info(a->disp, &m->u.device_info);
        return;
    case VD_AGENT_FILE_XFER_START:
    case VD_AGENT_FILE_XFER_DATA:
    case VD_AGENT_FILE_XFER_STATUS:
        if (a->files)
            va_files_handle_msg(a->files, m);
        else if (type == VD_AGENT_FILE_XFER_START)
            refuse_xfer(a, m->u.xfer_start.id);
        return;
    case VD_AGENT_AUDIO_VOLUME_SYNC:
        g_debug("AUDIO_VOLUME_SYNC (%s, %u channels) ignored: volume sync is not implemented",
                m->u.volume.is_playback ? "playback" : "record", m->u.volume.nchannels);
        return;
    default:
        if (a->cb && va_clipboard_handle_msg(a->cb, m))
            return;
        g_debug("%s from the daemon ignored", vdp_msg_type_name(type) ? vdp_msg_type_name(type) : "message");
        return;
    }
}

static bool on_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    App *a = user;
    VdpError err = {0};
    switch (hdr->type) {
    case VDP_IPC_CLIP_BEGIN:
    case VDP_IPC_CLIP_CHUNK:
    case VDP_IPC_CLIP_ABORT:
        close_fds(fds, nfds);
        if (!a->cb)
            return true;
        return va_clipboard_handle_frame(a->cb, hdr, payload);
    case VDP_IPC_VDAGENT:
        close_fds(fds, nfds);
        handle_vdagent(a, payload, hdr->size);
        return true;
    case VDP_IPC_MOUSE: {
        close_fds(fds, nfds);
        VdpIpcMouse ev;
        if (vdp_ipc_mouse_decode(payload, hdr->size, &ev, &err) != VDP_OK) {
            if (vdp_rate_ok(&a->rl, "daemon message"))
                g_message("invalid MOUSE from the daemon dropped: %s", err.text);
        } else if (a->mouse) {
            va_mouse_handle(a->mouse, &ev);
        } else if (vdp_rate_ok(&a->rl, "daemon message")) {
            g_message("MOUSE from the daemon dropped: no XTEST");
        }
        return true;
    }
    case VDP_IPC_SESSION_STATE: {
        close_fds(fds, nfds);
        uint32_t flags;
        if (vdp_ipc_session_state_decode(payload, hdr->size, &flags, &err) != VDP_OK) {
            if (vdp_rate_ok(&a->rl, "daemon message"))
                g_message("invalid SESSION_STATE from the daemon dropped: %s", err.text);
            return true;
        }
        g_debug("session state: %s%s%s%s", flags & VDP_IPC_SESSION_ACTIVE ? "active " : "",
                flags & VDP_IPC_SESSION_LOCKED ? "locked " : "",
                flags & VDP_IPC_SESSION_CLIENT_CONNECTED ? "client " : "",
                flags & VDP_IPC_SESSION_FILE_XFER_ENABLED ? "file-xfer" : "");
        a->session_flags = flags;
        /* Another session became active mid-drag: no button stays down
         * in this one. */
        if (!(flags & VDP_IPC_SESSION_ACTIVE) && a->mouse)
            va_mouse_release_all(a->mouse);
        if (a->cb)
            va_clipboard_session_state(a->cb, flags);
        if (a->files)
            va_files_session_state(a->files, flags);
        return true;
    }
    case VDP_IPC_PING:
        close_fds(fds, nfds);
        vdp_ipc_conn_send(a->ipc, VDP_IPC_PONG, hdr->id, NULL, 0, NULL, 0);
        return true;
    case VDP_IPC_PONG:
        close_fds(fds, nfds);
        return true;
    default:
        close_fds(fds, nfds);
        if (vdp_rate_ok(&a->rl, "daemon message"))
            g_message("unexpected %s frame from the daemon ignored",
                      vdp_ipc_type_name(hdr->type) ? vdp_ipc_type_name(hdr->type) : "unknown");
        return true;
    }
}

static void set_conn_all(App *a, VdpIpcConn *conn)
{
    a->ipc = conn;
    if (!conn) {
        a->session_flags = 0;
        if (a->mouse)
            va_mouse_release_all(a->mouse);
    }
    /* The layout goes first: the daemon opens the port only after it. */
    if (a->disp)
        va_display_set_conn(a->disp, conn);
    if (a->cb)
        va_clipboard_set_conn(a->cb, conn);
    if (a->files)
        va_files_set_conn(a->files, conn);
}

static void on_connected(void *user, VdpIpcConn *conn)
{
    set_conn_all(user, conn);
}

static void on_disconnected(void *user)
{
    set_conn_all(user, NULL);
}

static void on_fatal(void *user, int status, const char *why)
{
    App *a = user;
    g_message("%s; exiting", why);
    a->exit_status = status;
    g_main_loop_quit(a->loop);
}

static const VaConnCallbacks conn_callbacks = {
    .connected = on_connected,
    .disconnected = on_disconnected,
    .frame = on_frame,
    .fatal = on_fatal,
};

static gboolean on_signal(gpointer data)
{
    App *a = data;
    g_message("signal received, exiting");
    a->exit_status = 0;
    g_main_loop_quit(a->loop);
    return G_SOURCE_CONTINUE;
}

static void on_x_lost(void *user)
{
    App *a = user;
    /* Partial files go; the process exits right after. */
    if (a->files) {
        va_files_free(a->files);
        a->files = NULL;
    }
}

static void teardown(App *a)
{
    if (a->x)
        va_x11_remove_handler(a->x, on_x_event, a);
    /* Modules first (they may still send releases), then the connection. */
    if (a->files)
        va_files_free(a->files);
    a->files = NULL;
    if (a->cb)
        va_clipboard_free(a->cb);
    a->cb = NULL;
    if (a->disp)
        va_display_free(a->disp);
    a->disp = NULL;
    if (a->mouse) {
        va_mouse_release_all(a->mouse);
        va_mouse_free(a->mouse);
    }
    a->mouse = NULL;
    va_conn_free(a->conn);
    a->conn = NULL;
    if (a->x)
        va_x11_free(a->x);
    a->x = NULL;
    g_free(a->msg);
}

int main(int argc, char **argv)
{
    GError *error = NULL;
    GOptionContext *oc = g_option_context_new(NULL);
    g_option_context_set_summary(oc, "The SPICE session agent: clipboard, displays and file transfers for one "
                                     "X11 session.");
    g_option_context_add_main_entries(oc, entries, NULL);
    if (!g_option_context_parse(oc, &argc, &argv, &error)) {
        fprintf(stderr, "Invalid arguments, %s\n", error->message);
        g_error_free(error);
        g_option_context_free(oc);
        return EXIT_BAD_ARGS;
    }
    g_option_context_free(oc);
    if (argc > 1) {
        fprintf(stderr, "Invalid arguments, unexpected argument \"%s\"\n", argv[1]);
        return EXIT_BAD_ARGS;
    }
    const char *port = opt_port ? opt_port : DEFAULT_PORT;
    const char *sock = opt_socket ? opt_socket : DEFAULT_SOCKET;

    openlog("spice-vdagent", LOG_PID | (opt_foreground && !stderr_is_journal() ? LOG_PERROR : 0), LOG_USER);
    g_log_set_writer_func(log_writer, NULL, NULL);

    if (!g_file_test(port, G_FILE_TEST_EXISTS)) {
        g_debug("vdagent virtio channel %s does not exist, exiting", port);
        return 0;
    }
    if (!opt_foreground)
        daemonize();
    g_message("spice-vdagent %s started", VERSION);
    signal(SIGPIPE, SIG_IGN);

    App *a = &app;
    a->msg = g_new0(VdpMsg, 1);
    a->loop = g_main_loop_new(NULL, FALSE);
    a->x = va_x11_open(NULL, NULL, &error);
    if (!a->x) {
        g_warning("could not connect to the X server: %s", error->message);
        g_error_free(error);
        g_free(a->msg);
        return EXIT_FAILURE_X;
    }
    va_x11_set_lost_func(a->x, on_x_lost, a);
    va_x11_add_handler(a->x, on_x_event, a);
    if (!own_display(a)) {
        teardown(a);
        report_ready();
        return 0;
    }

    if (!(a->disp = va_display_new(a->x, &error))) {
        g_message("display configuration disabled: %s", error->message);
        g_clear_error(&error);
    }
    if (!(a->cb = va_clipboard_new(a->x, &error))) {
        g_message("clipboard disabled: %s", error->message);
        g_clear_error(&error);
    }
    if (!(a->mouse = va_mouse_new(a->x, &error))) {
        g_message("%s", error->message);
        g_clear_error(&error);
    }
    bool open_dir = false;
    char *dir = resolve_save_dir(a->x, &open_dir);
    if (!dir)
        g_message("could not get file xfer save dir, file transfers will be disabled");
    if (!(a->files = va_files_new(NULL, dir, open_dir, &error))) {
        g_message("file transfers disabled: %s", error->message);
        g_clear_error(&error);
        a->files = va_files_new(NULL, NULL, false, NULL);
    } else if (dir) {
        g_debug("files are saved to %s%s", dir, open_dir ? " (opened afterwards)" : "");
    }
    g_free(dir);

    char name[VDP_IPC_NAME_MAX];
    g_snprintf(name, sizeof(name), "spice-vdagent %s", VERSION);
    a->conn = va_conn_new(NULL, sock, name, &conn_callbacks, a);

    guint sig[3] = {g_unix_signal_add(SIGINT, on_signal, a), g_unix_signal_add(SIGTERM, on_signal, a),
                    g_unix_signal_add(SIGHUP, on_signal, a)};
    report_ready();
    g_main_loop_run(a->loop);
    for (size_t i = 0; i < G_N_ELEMENTS(sig); i++)
        g_source_remove(sig[i]);
    teardown(a);
    g_main_loop_unref(a->loop);
    g_message("spice-vdagent stopped");
    closelog();
    return a->exit_status;
}
