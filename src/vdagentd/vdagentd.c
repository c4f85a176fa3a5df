/* vdagentd.c - spice-vdagentd: options, logging, daemonizing, systemd
 * integration, signals; the work is in vdd-daemon.c.
 *
 * Environment (tests only): VDAGENTD_TEST_HANDSHAKE_MS=N shortens the time
 * an IPC client has to send HELLO (default 5000 ms).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#ifdef WITH_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "vdd-daemon.h"
#include "vdd-status.h"

#define DEFAULT_PORT_PATH "/dev/virtio-ports/com.redhat.spice.0"
#define DEFAULT_SOCKET_PATH "/run/spice-vdagentd/spice-vdagent-sock"
#define DEFAULT_UINPUT_PATH "/dev/uinput"
#define PIDFILE "/run/spice-vdagentd/spice-vdagentd.pid"
/* How long the parent of a daemonizing run waits for the child to say it
 * is serving (or to fail). */
#define READY_TIMEOUT_MS 10000

static int opt_debug;
static char *opt_port_path;
static char *opt_socket_path;
static char *opt_uinput_path;
static gboolean opt_fake_uinput;
static gboolean opt_foreground;
static gboolean opt_one_session;
static gboolean opt_no_sessions;
static gboolean opt_status;
static gboolean opt_json;
static gboolean opt_allow_clipboard_locked;

static gboolean count_debug(const gchar *name, const gchar *value, gpointer data, GError **error)
{
    opt_debug++;
    return TRUE;
}

static const GOptionEntry entries[] = {
    {"debug", 'd', G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, (gpointer)count_debug,
     "Log debug messages (twice: also per mouse event)", NULL},
    {"virtio-serial-port-path", 's', 0, G_OPTION_ARG_FILENAME, &opt_port_path,
     "The agent port: a character device or a UNIX socket (default " DEFAULT_PORT_PATH ")", "PATH"},
    {"vdagentd-socket", 'S', 0, G_OPTION_ARG_FILENAME, &opt_socket_path,
     "The session agents' socket (default " DEFAULT_SOCKET_PATH ")", "SOCKET"},
    {"uinput-device", 'u', 0, G_OPTION_ARG_FILENAME, &opt_uinput_path,
     "The uinput device, or the sink file with -f (default " DEFAULT_UINPUT_PATH ")", "DEVICE"},
    {"fake-uinput", 'f', 0, G_OPTION_ARG_NONE, &opt_fake_uinput,
     "Write raw input events to the -u file (a FIFO) instead of using uinput", NULL},
    {"foreground", 'x', 0, G_OPTION_ARG_NONE, &opt_foreground,
     "Do not daemonize; log to stderr", NULL},
    {"one-session", 'o', 0, G_OPTION_ARG_NONE, &opt_one_session,
     "Exit after one client session", NULL},
    {"disable-session-integration", 'X', 0, G_OPTION_ARG_NONE, &opt_no_sessions,
     "Do not use systemd-logind (then one session agent at most)", NULL},
    {"status", 0, 0, G_OPTION_ARG_NONE, &opt_status,
     "Ask the running daemon for its state and print it", NULL},
    {"json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "With --status: print JSON", NULL},
    {"allow-clipboard-when-locked", 0, 0, G_OPTION_ARG_NONE, &opt_allow_clipboard_locked,
     "Share the clipboard also while the active session is locked or a greeter", NULL},
    {NULL},
};

/* ---- logging ---- */

static bool log_to_journal;

static int syslog_priority(GLogLevelFlags level)
{
    if (level & G_LOG_LEVEL_ERROR)
        return LOG_CRIT;
    if (level & G_LOG_LEVEL_CRITICAL)
        return LOG_ERR;
    if (level & G_LOG_LEVEL_WARNING)
        return LOG_WARNING;
    if (level & G_LOG_LEVEL_MESSAGE)
        return LOG_NOTICE;
    if (level & G_LOG_LEVEL_INFO)
        return LOG_INFO;
    return LOG_DEBUG;
}

static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    if ((level & G_LOG_LEVEL_DEBUG) && opt_debug == 0)
        return G_LOG_WRITER_HANDLED;
    if (opt_foreground)
        return g_log_writer_standard_streams(level, fields, n, data);
    if (log_to_journal && g_log_writer_journald(level, fields, n, data) == G_LOG_WRITER_HANDLED)
        return G_LOG_WRITER_HANDLED;
    const char *msg = NULL;
    for (gsize i = 0; i < n; i++)
        if (strcmp(fields[i].key, "MESSAGE") == 0)
            msg = fields[i].value;
    syslog(syslog_priority(level), "%s", msg ? msg : "");
    return G_LOG_WRITER_HANDLED;
}

static void setup_logging(void)
{
    if (opt_debug > 0)
        g_log_set_debug_enabled(TRUE);
    if (!opt_foreground) {
        struct stat st;
        log_to_journal = stat("/run/systemd/journal/socket", &st) == 0;
        openlog("spice-vdagentd", LOG_PID, LOG_DAEMON);
    }
    g_log_set_writer_func(log_writer, NULL, NULL);
}

/* ---- daemonizing ---- */

static int ready_fd = -1;
static bool wrote_pidfile;

/* Returns in the child only. The parent exits 0 once the child reports
 * readiness, 1 if it dies or stays silent. */
static void daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        g_printerr("spice-vdagentd: pipe: %s\n", g_strerror(errno));
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        g_printerr("spice-vdagentd: fork: %s\n", g_strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        char c = 0;
        int r;
        do {
            r = poll(&pfd, 1, READY_TIMEOUT_MS);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) {
            g_printerr("spice-vdagentd: the daemon did not become ready within %d s\n",
                       READY_TIMEOUT_MS / 1000);
            _exit(1);
        }
        _exit(read(p[0], &c, 1) == 1 && c == '1' ? 0 : 1);
    }
    close(p[0]);
    ready_fd = p[1];
    if (setsid() < 0)
        g_warning("setsid: %s", g_strerror(errno));
    int null = open("/dev/null", O_RDWR);
    if (null < 0) {
        g_warning("/dev/null: %s", g_strerror(errno));
        _exit(1);
    }
    for (int fd = 0; fd <= 2; fd++)
        if (dup2(null, fd) < 0)
            _exit(1);
    if (null > 2)
        close(null);
}

static void write_pidfile(void)
{
    char *text = g_strdup_printf("%d\n", (int)getpid());
    GError *error = NULL;
    if (g_file_set_contents_full(PIDFILE, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, &error))
        wrote_pidfile = true;
    else
        g_warning("could not write %s: %s", PIDFILE, error->message);
    g_clear_error(&error);
    g_free(text);
}

static void report_ready(bool ok)
{
    if (ready_fd < 0)
        return;
    char c = ok ? '1' : '0';
    if (write(ready_fd, &c, 1) != 1)
        g_warning("could not report readiness: %s", g_strerror(errno));
    close(ready_fd);
    ready_fd = -1;
}

/* ---- main ---- */

typedef struct Main {
    GMainLoop *loop;
    int status;
} Main;

static gboolean on_signal(gpointer data)
{
    Main *m = data;
    g_message("quitting on a signal");
    m->status = 0;
    g_main_loop_quit(m->loop);
    return G_SOURCE_CONTINUE;
}

static void on_quit(void *user, int status)
{
    Main *m = user;
    m->status = status;
    g_main_loop_quit(m->loop);
}

static unsigned env_uint(const char *name)
{
    const char *v = g_getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    return (*end || n > 3600000ul) ? 0 : (unsigned)n;
}

int main(int argc, char **argv)
{
    GError *error = NULL;
    GOptionContext *oc = g_option_context_new(NULL);
    g_option_context_set_summary(oc, "Spice guest agent daemon, version " PACKAGE_VERSION);
    g_option_context_add_main_entries(oc, entries, NULL);
    if (!g_option_context_parse(oc, &argc, &argv, &error)) {
        g_printerr("Invalid arguments, %s\n", error->message);
        g_clear_error(&error);
        g_option_context_free(oc);
        return 1;
    }
    g_option_context_free(oc);
    if (argc > 1) {
        g_printerr("Invalid arguments, unexpected argument: %s\n", argv[1]);
        return 1;
    }
    if (opt_json && !opt_status) {
        g_printerr("Invalid arguments, --json needs --status\n");
        return 1;
    }
    const char *socket_path = opt_socket_path ? opt_socket_path : DEFAULT_SOCKET_PATH;
    if (opt_status)
        return vdd_status_run_client(socket_path, opt_json);

    setup_logging();
    signal(SIGPIPE, SIG_IGN);

    int listen_fd = -1;
#ifdef WITH_SYSTEMD
    int n = sd_listen_fds(0);
    if (n > 1) {
        g_critical("received too many sockets from systemd (%d)", n);
        return 1;
    }
    if (n == 1)
        listen_fd = SD_LISTEN_FDS_START;
    else if (n < 0)
        g_warning("sd_listen_fds: %s", g_strerror(-n));
#endif

    if (!opt_foreground)
        daemonize();

    Main m = {.status = 0};
    GMainContext *ctx = g_main_context_default();
    m.loop = g_main_loop_new(ctx, FALSE);
    g_unix_signal_add(SIGINT, on_signal, &m);
    g_unix_signal_add(SIGTERM, on_signal, &m);
    g_unix_signal_add(SIGHUP, on_signal, &m);

    VddOptions opt = {
        .port_path = opt_port_path ? opt_port_path : DEFAULT_PORT_PATH,
        .socket_path = socket_path,
        .uinput_path = opt_uinput_path ? opt_uinput_path : DEFAULT_UINPUT_PATH,
        .fake_uinput = opt_fake_uinput,
        .one_session = opt_one_session,
        .no_session_integration = opt_no_sessions,
        .allow_clipboard_when_locked = opt_allow_clipboard_locked,
        .debug = opt_debug,
        .listen_fd = listen_fd,
        .handshake_ms = env_uint("VDAGENTD_TEST_HANDSHAKE_MS"),
    };
    VddDaemon *d = vdd_daemon_new(ctx, &opt, on_quit, &m, &error);
    if (!d) {
        g_critical("%s", error->message);
        g_clear_error(&error);
        report_ready(false);
        g_main_loop_unref(m.loop);
        return 1;
    }
    if (!opt_foreground)
        write_pidfile();
    report_ready(true);
#ifdef WITH_SYSTEMD
    sd_notify(0, "READY=1");
#endif
    g_message("spice-vdagentd %s serving on %s", PACKAGE_VERSION,
              listen_fd >= 0 ? "the socket from systemd" : socket_path);

    g_main_loop_run(m.loop);

#ifdef WITH_SYSTEMD
    sd_notify(0, "STOPPING=1");
#endif
    vdd_daemon_free(d);
    /* Let sources released by the teardown finalize. */
    while (g_main_context_iteration(ctx, FALSE))
        ;
    g_main_loop_unref(m.loop);
    if (wrote_pidfile)
        unlink(PIDFILE);
    g_message("vdagentd quitting, returning status %d", m.status);
    g_free(opt_port_path);
    g_free(opt_socket_path);
    g_free(opt_uinput_path);
    return m.status;
}
