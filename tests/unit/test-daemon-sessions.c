/* test-daemon-sessions.c - the real spice-vdagentd with session integration:
 * the daemon runs without -X (-x -s PORT -S SOCK -f -u FIFO) with
 * DBUS_SYSTEM_BUS_ADDRESS pointing to a private dbus-daemon on which
 * python3-dbusmock's logind template plays logind. Its port is served by
 * the host library (VdhHost, listen mode).
 *
 * Agents are real processes: the test process itself, or forked children
 * that connect() to the daemon's socket (so SO_PEERCRED names them, with
 * the uid they chose) and hand the connected socket to the test over
 * SCM_RIGHTS; the test then speaks the protocol on it. The mock's
 * GetSessionByPID (added with AddMethod) maps those pids to sessions,
 * optionally after a delay.
 *
 * Also: -X -o exits 0 after the client session, and socket activation
 * through systemd-socket-activate (one inherited fd works, two make the
 * daemon exit 1).
 *
 * Every helper process dies with the test (PR_SET_PDEATHSIG); every test
 * has a failure timeout (alarm). Exit 77 if dbus-daemon or python3-dbusmock
 * is missing. VDD_TEST_VERBOSE=1 prints the daemon's log after each test.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <gio/gio.h>
#include <glib.h>

#include "test-agent.h"
#include "vdh-host.h"
#include "vdh-host-priv.h"   /* next_xfer_id, to reuse a transfer id */
#include "vdp-unix.h"
#include "vdp-dbusmock.h"

#define WAIT_MS 8000u
#define TEST_TIMEOUT_S 90u
#define CTL_TIMEOUT_MS 10000
#define PYTHON VDP_TEST_PYTHON
#define SOCKET_ACTIVATE "/usr/bin/systemd-socket-activate"
#define NOBODY 65534u


static bool verbose;
static char *dbus_daemon_path;
static char *bus_dir, *bus_socket, *bus_addr;

#define MAX_KIDS 8
#define MAX_MAP 8

typedef struct Fixture {
    char *dir, *port_path, *sock_path, *fifo_path, *log_path;
    int fifo_fd;
    GPid bus_pid, mock_pid, daemon_pid;
    bool daemon_reaped;
    int daemon_status;
    GDBusConnection *ctl;
    VdhHost *host;
    pid_t kids[MAX_KIDS];
    unsigned nkids;
    struct {
        pid_t pid;
        const char *path;
    } map[MAX_MAP];
    unsigned nmap;
    double delay;
} Fixture;

static Fixture *F;

/* ---- processes ---- */

static void child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int logfd = GPOINTER_TO_INT(data);
    if (logfd > 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
    }
}

static GPid spawn(char **argv, char **envp, bool to_log)
{
    GPid pid = 0;
    GError *err = NULL;
    int logfd = -1;
    if (to_log) {
        logfd = open(F->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        assert_true(logfd >= 0);
    }
    GSpawnFlags flags = G_SPAWN_DO_NOT_REAP_CHILD;
    if (!to_log && !verbose)
        flags |= G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL;
    gboolean ok = g_spawn_async(NULL, argv, envp, flags, child_setup, GINT_TO_POINTER(logfd), &pid, &err);
    if (logfd >= 0)
        close(logfd);
    if (!ok)
        fail_msg("cannot start %s: %s", argv[0], err->message);
    return pid;
}

/* waitpid with a deadline; true if it exited (status set). */
static bool wait_exit(pid_t pid, int *status, unsigned ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)ms * 1000;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
        if (g_get_monotonic_time() > deadline)
            return false;
        /* keep the host and agents alive meanwhile */
        test_spin(10);
    }
}

static void stop_process(GPid *pid, int sig)
{
    if (*pid <= 0)
        return;
    int status;
    kill(*pid, sig);
    if (!wait_exit(*pid, &status, 5000)) {
        kill(*pid, SIGKILL);
        waitpid(*pid, &status, 0);
    }
    *pid = 0;
}

/* ---- the private bus and the logind mock ---- */

static GDBusConnection *connect_bus(void)
{
    return g_dbus_connection_new_for_address_sync(
        bus_addr, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
        NULL, NULL, NULL);
}

static GVariant *ctl_call(const char *dest, const char *path, const char *iface, const char *method,
                          GVariant *params)
{
    GError *err = NULL;
    GVariant *r = g_dbus_connection_call_sync(F->ctl, dest, path, iface, method, params, NULL,
                                              G_DBUS_CALL_FLAGS_NO_AUTO_START, CTL_TIMEOUT_MS, NULL, &err);
    if (!r)
        fail_msg("%s.%s on %s: %s", iface, method, path, err->message);
    return r;
}

static void mock_call(const char *path, const char *iface, const char *method, GVariant *params)
{
    g_variant_unref(ctl_call(LOGIND_NAME, path, iface, method, params));
}

static bool logind_on_bus(void)
{
    GVariant *r = ctl_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                           "NameHasOwner", g_variant_new("(s)", LOGIND_NAME));
    gboolean has;
    g_variant_get(r, "(b)", &has);
    g_variant_unref(r);
    return has;
}

static void bus_and_mock_start(void)
{
    char *conf = g_build_filename(F->dir, "bus.conf", NULL);
    char *text = g_strdup_printf("<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                                 " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                                 "<busconfig>\n"
                                 "  <listen>%s</listen>\n"
                                 "  <auth>EXTERNAL</auth>\n"
                                 "  <policy context=\"default\">\n"
                                 "    <allow user=\"*\"/>\n"
                                 "    <allow own=\"*\"/>\n"
                                 "    <allow send_destination=\"*\"/>\n"
                                 "    <allow receive_sender=\"*\"/>\n"
                                 "  </policy>\n"
                                 "</busconfig>\n",
                                 bus_addr);
    assert_true(g_file_set_contents(conf, text, -1, NULL));
    char *conf_arg = g_strdup_printf("--config-file=%s", conf);
    char *bargv[] = {dbus_daemon_path, conf_arg, "--nofork", "--nopidfile", NULL};
    unlink(bus_socket);
    F->bus_pid = spawn(bargv, NULL, false);
    g_free(conf_arg);
    g_free(text);
    g_free(conf);
    gint64 deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!(F->ctl = connect_bus())) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the private dbus-daemon did not come up");
        g_usleep(10000);
    }
    char *margv[] = {PYTHON, "-m", "dbusmock", "--template", "logind", NULL};
    F->mock_pid = spawn(margv, NULL, false);
    deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!logind_on_bus()) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the logind mock did not appear on the bus");
        g_usleep(20000);
    }
    mock_call(LOGIND_PATH, MOCK_IFACE, "AddSeat", g_variant_new("(s)", "seat0"));
}

static void add_session(const char *id, unsigned uid)
{
    char user[32];
    snprintf(user, sizeof(user), "user%u", uid);
    mock_call(LOGIND_PATH, MOCK_IFACE, "AddSession", g_variant_new("(ssusb)", id, "seat0", uid, user, TRUE));
}

static void set_active(const char *id, const char *path)
{
    mock_call(SEAT0_PATH, PROPS_IFACE, "Set",
              g_variant_new("(ssv)", SEAT_IFACE, "ActiveSession", g_variant_new("(so)", id, path)));
}

static void update_prop(const char *path, const char *iface, const char *name, GVariant *value)
{
    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", name, value);
    mock_call(path, MOCK_IFACE, "UpdateProperties", g_variant_new("(sa{sv})", iface, &b));
}

/* (Re)defines GetSessionByPID from F->map: listed pids get their session
 * after F->delay seconds, others NoSessionForPID like logind. */
static void publish_map(void)
{
    GString *code = g_string_new("import time\nm = {");
    for (unsigned i = 0; i < F->nmap; i++)
        g_string_append_printf(code, "%d: '%s', ", (int)F->map[i].pid, F->map[i].path);
    g_string_append_printf(code, "}\n"
                                 "if args[0] in m:\n"
                                 "    time.sleep(%g)\n"
                                 "    ret = dbus.ObjectPath(m[args[0]])\n"
                                 "else:\n"
                                 "    raise dbus.exceptions.DBusException('PID %%d does not belong to any known "
                                 "session' %% args[0], name='org.freedesktop.login1.NoSessionForPID')\n",
                           F->delay);
    mock_call(LOGIND_PATH, MOCK_IFACE, "AddMethod",
              g_variant_new("(sssss)", MANAGER_IFACE, "GetSessionByPID", "u", "o", code->str));
    g_string_free(code, TRUE);
}

static void map_pid(pid_t pid, const char *path)
{
    assert_true(F->nmap < MAX_MAP);
    F->map[F->nmap].pid = pid;
    F->map[F->nmap].path = path;
    F->nmap++;
    publish_map();
}

/* ---- the daemon ---- */

static const char *daemon_path(void)
{
    static char path[4096];
    const char *top = getenv("top_builddir");
    snprintf(path, sizeof(path), "%s/spice-vdagentd", top && *top ? top : ".");
    return path;
}

static bool socket_up(void *data)
{
    int fd = vdp_unix_connect(data);
    if (fd < 0) {
        g_usleep(10000);
        return false;
    }
    close(fd);
    return true;
}

static void start_daemon(bool no_sessions, bool one_session)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)daemon_path();
    argv[n++] = "-x";
    if (no_sessions)
        argv[n++] = "-X";
    if (one_session)
        argv[n++] = "-o";
    argv[n++] = "-f";
    argv[n++] = "-s";
    argv[n++] = F->port_path;
    argv[n++] = "-S";
    argv[n++] = F->sock_path;
    argv[n++] = "-u";
    argv[n++] = F->fifo_path;
    argv[n] = NULL;
    char **env = g_get_environ();
    env = g_environ_setenv(env, "VDAGENTD_TEST_HANDSHAKE_MS", "3000", TRUE);
    F->daemon_pid = spawn(argv, env, true);
    g_strfreev(env);
    assert_true(test_wait(socket_up, F->sock_path, WAIT_MS));
}

static char *daemon_log(void)
{
    char *text = NULL;
    if (!g_file_get_contents(F->log_path, &text, NULL, NULL))
        text = g_strdup("");
    return text;
}

static bool log_has(const char *needle)
{
    char *t = daemon_log();
    bool r = strstr(t, needle) != NULL;
    g_free(t);
    return r;
}

/* ---- fixture ---- */

static void setup_dirs(void)
{
    alarm(TEST_TIMEOUT_S);
    F = g_new0(Fixture, 1);
    F->dir = g_dir_make_tmp("test-dsess-XXXXXX", NULL);
    assert_non_null(F->dir);
    /* other uids' agents must reach the socket inside */
    assert_int_equal(chmod(F->dir, 0755), 0);
    F->port_path = g_build_filename(F->dir, "port", NULL);
    F->sock_path = g_build_filename(F->dir, "sock", NULL);
    F->fifo_path = g_build_filename(F->dir, "fifo", NULL);
    F->log_path = g_build_filename(F->dir, "daemon.log", NULL);
    assert_int_equal(mkfifo(F->fifo_path, 0600), 0);
    F->fifo_fd = open(F->fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(F->fifo_fd >= 0);
    VdhHostConfig cfg = {.path = F->port_path, .listen = true};
    GError *error = NULL;
    F->host = vdh_host_new(&cfg, NULL, NULL, &error);
    assert_non_null(F->host);
    vdh_host_start(F->host);
}

/* The bus and the mock with seat0, no daemon yet. */
static int setup_bus(void **state)
{
    setup_dirs();
    bus_and_mock_start();
    return 0;
}

static int setup_plain(void **state)
{
    setup_dirs();
    return 0;
}

static void rm_rf(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    if (!d)
        return;
    const char *name;
    while ((name = g_dir_read_name(d))) {
        char *p = g_build_filename(dir, name, NULL);
        unlink(p);
        g_free(p);
    }
    g_dir_close(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    int status = F->daemon_status;
    bool gone = true;
    if (F->daemon_pid > 0 && !F->daemon_reaped) {
        kill(F->daemon_pid, SIGTERM);
        gone = wait_exit(F->daemon_pid, &status, WAIT_MS);
        if (!gone) {
            kill(F->daemon_pid, SIGKILL);
            waitpid(F->daemon_pid, &status, 0);
        }
    }
    for (unsigned i = 0; i < F->nkids; i++) {
        kill(F->kids[i], SIGKILL);
        waitpid(F->kids[i], NULL, 0);
    }
    if (F->host)
        vdh_host_free(F->host);
    if (F->ctl) {
        g_dbus_connection_close_sync(F->ctl, NULL, NULL);
        g_clear_object(&F->ctl);
    }
    stop_process(&F->mock_pid, SIGTERM);
    stop_process(&F->bus_pid, SIGTERM);
    if (verbose) {
        char *t = daemon_log();
        fprintf(stderr, "---- daemon log ----\n%s--------------------\n", t);
        g_free(t);
    }
    close(F->fifo_fd);
    rm_rf(F->dir);
    g_free(F->dir);
    g_free(F->port_path);
    g_free(F->sock_path);
    g_free(F->fifo_path);
    g_free(F->log_path);
    bool had_daemon = F->daemon_pid > 0;
    g_free(F);
    F = NULL;
    alarm(0);
    if (had_daemon) {
        /* a clean exit (SIGTERM, or -o) */
        assert_true(gone);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    return 0;
}

/* ---- agents in other processes ---- */

static bool send_fd(int via, int fd)
{
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(via, &mh, MSG_NOSIGNAL) == 1;
}

static int recv_fd(int via)
{
    struct pollfd p = {.fd = via, .events = POLLIN};
    if (poll(&p, 1, (int)WAIT_MS) != 1)
        return -1;
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    if (recvmsg(via, &mh, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

typedef enum KidMode {
    KID_STAY,          /* stays alive until killed */
    KID_EXIT,          /* exits right after handing over the socket */
} KidMode;

/* Forks a process that (as uid, if not 0) connects to the daemon's socket
 * and hands the connection over. Returns the connected fd; *pid_out is the
 * child (registered for teardown unless it is to exit). */
static int kid_connect(uid_t uid, KidMode mode, pid_t *pid_out)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(F->sock_path) < sizeof(sa.sun_path));
    strcpy(sa.sun_path, F->sock_path);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* async-signal-safe calls only from here on */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[0]);
        if (uid != 0) {
            if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
                _exit(2);
            /* like a process that exec'd as that user: /proc/PID is its own */
            prctl(PR_SET_DUMPABLE, 1);
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            _exit(3);
        if (!send_fd(sv[1], fd))
            _exit(4);
        /* the test's copy is the only one: closing it ends the connection */
        close(fd);
        if (mode == KID_EXIT)
            _exit(0);
        for (;;)
            pause();
    }
    close(sv[1]);
    int fd = recv_fd(sv[0]);
    close(sv[0]);
    assert_true(fd >= 0);
    if (mode == KID_STAY) {
        assert_true(F->nkids < MAX_KIDS);
        F->kids[F->nkids++] = pid;
    }
    *pid_out = pid;
    return fd;
}

/* ---- helpers ---- */

static bool answered(void *data)
{
    TestAgent *a = data;
    return a->welcomed || a->rejected || a->closed;
}

static TestAgent *agent_on_fd(int fd)
{
    TestAgent *a = test_agent_new_fd(fd, VDP_IPC_ROLE_AGENT, "test-agent");
    assert_non_null(a);
    assert_true(test_wait(answered, a, WAIT_MS));
    return a;
}

static TestAgent *agent_here(void)
{
    TestAgent *a = test_agent_connect(F->sock_path, VDP_IPC_ROLE_AGENT, "test-agent");
    assert_non_null(a);
    assert_true(test_wait(answered, a, WAIT_MS));
    return a;
}

static void send_layout(TestAgent *a, bool two)
{
    VdpIpcGuestLayout *l = g_new0(VdpIpcGuestLayout, 1);
    if (two)
        test_layout_two(l);
    else
        test_layout_one(l);
    assert_true(test_agent_send_layout(a, l));
    g_free(l);
}

static void host_ready(void)
{
    GError *error = NULL;
    if (!vdh_host_wait_ready_sync(F->host, WAIT_MS, &error))
        fail_msg("host not ready: %s", error->message);
}

static bool host_connected(void *d)
{
    return vdh_host_is_connected(F->host);
}

static bool host_disconnected(void *d)
{
    return !vdh_host_is_connected(F->host);
}

typedef struct FlagWait {
    TestAgent *a;
    uint32_t mask, want;
} FlagWait;

static bool flags_are(void *data)
{
    FlagWait *w = data;
    return w->a->session_states > 0 && (w->a->session_flags & w->mask) == w->want;
}

static bool wait_flags(TestAgent *a, uint32_t mask, uint32_t want)
{
    FlagWait w = {a, mask, want};
    return test_wait(flags_are, &w, WAIT_MS);
}

static bool has_monitors(void *data)
{
    return ((TestAgent *)data)->nmsgs[VD_AGENT_MONITORS_CONFIG] > 0;
}

static bool two_monitors(void *data)
{
    return ((TestAgent *)data)->nmsgs[VD_AGENT_MONITORS_CONFIG] >= 2;
}

static void host_monitors(unsigned width)
{
    VdpMonitorsConfig *cfg = g_new0(VdpMonitorsConfig, 1);
    cfg->count = 1;
    cfg->monitors[0] = (VdpMonConfig){.width = width, .height = 600, .depth = 32};
    GError *error = NULL;
    if (!vdh_host_set_monitors_sync(F->host, cfg, WAIT_MS, &error))
        fail_msg("set monitors: %s", error->message);
    g_free(cfg);
}

static unsigned monitors_width(TestAgent *a)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(a, VD_AGENT_MONITORS_CONFIG, m));
    unsigned w = m->u.monitors.monitors[0].width;
    g_free(m);
    return w;
}

static void assert_rejected(TestAgent *a, uint32_t reason)
{
    assert_false(a->welcomed);
    assert_true(a->rejected);
    assert_int_equal(a->reject_reason, reason);
}

/* ---- 1. the agent of the active session ---- */

static void test_active_agent(void **state)
{
    add_session("2", 0);
    set_active("2", SESSION_PATH("2"));
    map_pid(getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    /* no port before the layout */
    test_spin(300);
    assert_false(vdh_host_is_connected(F->host));
    send_layout(a, false);
    host_ready();
    assert_true(wait_flags(a, VDP_IPC_SESSION_CLIENT_CONNECTED, VDP_IPC_SESSION_CLIENT_CONNECTED));
    host_monitors(800);
    assert_true(test_wait(has_monitors, a, WAIT_MS));
    assert_int_equal(monitors_width(a), 800);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

/* A session owner that is not root: its own agent gets in (the /proc
 * owner check passes for a live process of that uid). */
static void test_user_agent(void **state)
{
    add_session("3", NOBODY);
    set_active("3", SESSION_PATH("3"));
    publish_map();
    start_daemon(false, false);
    pid_t pid;
    int fd = kid_connect(NOBODY, KID_STAY, &pid);
    map_pid(pid, SESSION_PATH("3"));
    TestAgent *a = agent_on_fd(fd);
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    test_agent_free(a);
}

/* ---- 2. CVE-2020-25653 ---- */

/* uid 65534 claims a session owned by uid 1000. */
static void test_other_uid(void **state)
{
    add_session("2", 1000);
    set_active("2", SESSION_PATH("2"));
    publish_map();
    start_daemon(false, false);
    pid_t pid;
    int fd = kid_connect(NOBODY, KID_STAY, &pid);
    map_pid(pid, SESSION_PATH("2"));
    TestAgent *a = agent_on_fd(fd);
    assert_rejected(a, VDP_IPC_REJECT_NOT_AUTHORIZED);
    assert_true(log_has("does not own session 2"));
    test_agent_free(a);
    /* the port never opened for it */
    assert_false(vdh_host_is_connected(F->host));
}

/* The status tells who is logged in, whether the session is locked and
 * whether a SPICE client is watching: only root may ask for it. */
static void test_status_needs_root(void **state)
{
    start_daemon(true, false);
    pid_t pid;
    int fd = kid_connect(NOBODY, KID_STAY, &pid);
    TestAgent *c = test_agent_new_fd(fd, VDP_IPC_ROLE_CONTROL, "nosy");
    assert_non_null(c);
    assert_true(test_wait(answered, c, WAIT_MS));
    assert_rejected(c, VDP_IPC_REJECT_NOT_AUTHORIZED);
    test_agent_free(c);
    /* root still gets it */
    TestAgent *r = test_agent_connect(F->sock_path, VDP_IPC_ROLE_CONTROL, "root");
    assert_non_null(r);
    assert_true(test_wait(answered, r, WAIT_MS));
    assert_true(r->welcomed);
    test_agent_free(r);
}

static void test_no_session(void **state)
{
    add_session("2", 0);
    set_active("2", SESSION_PATH("2"));
    publish_map();   /* nothing mapped: NoSessionForPID */
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_rejected(a, VDP_IPC_REJECT_NOT_AUTHORIZED);
    char *needle = g_strdup_printf("no login session for pid %d", (int)getpid());
    assert_true(log_has(needle));
    g_free(needle);
    test_agent_free(a);
}

/* The connecting process exits (and is reaped) while the lookup runs; its
 * connection lives on in another process. */
static void test_pid_gone(void **state)
{
    add_session("2", 0);
    set_active("2", SESSION_PATH("2"));
    F->delay = 1.5;
    publish_map();
    start_daemon(false, false);
    pid_t pid;
    int fd = kid_connect(0, KID_EXIT, &pid);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    map_pid(pid, SESSION_PATH("2"));
    TestAgent *a = agent_on_fd(fd);
    assert_false(a->welcomed);
    assert_true(a->rejected || a->closed);
    if (a->rejected)
        assert_int_equal(a->reject_reason, VDP_IPC_REJECT_NOT_AUTHORIZED);
    test_spin(200);
    assert_false(a->welcomed);
    test_agent_free(a);
}

/* ---- 3. CVE-2020-25652: one agent per session ---- */

static void test_duplicate(void **state)
{
    add_session("2", 0);
    set_active("2", SESSION_PATH("2"));
    map_pid(getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    TestAgent *b = agent_here();
    assert_rejected(b, VDP_IPC_REJECT_DUPLICATE);
    test_agent_free(b);
    /* the first keeps working */
    send_layout(a, false);
    host_ready();
    host_monitors(640);
    assert_true(test_wait(has_monitors, a, WAIT_MS));
    assert_int_equal(monitors_width(a), 640);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    assert_false(a->closed);
    test_agent_free(a);
}

/* ---- 4. session switch ---- */

/* Sessions 2 (active) and 3, both root's, and the daemon; an agent for each
 * in a process of its own: *a is the active session's, *b the other's. */
static void two_session_agents(TestAgent **a, TestAgent **b)
{
    add_session("2", 0);
    add_session("3", 0);
    set_active("2", SESSION_PATH("2"));
    publish_map();
    start_daemon(false, false);
    pid_t pa, pb;
    int fa = kid_connect(0, KID_STAY, &pa);
    int fb = kid_connect(0, KID_STAY, &pb);
    map_pid(pa, SESSION_PATH("2"));
    map_pid(pb, SESSION_PATH("3"));
    *a = agent_on_fd(fa);
    *b = agent_on_fd(fb);
    assert_true((*a)->welcomed);
    assert_true((*b)->welcomed);
    assert_true(wait_flags(*a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
}

static void test_switch(void **state)
{
    TestAgent *a, *b;
    two_session_agents(&a, &b);
    assert_true(wait_flags(b, VDP_IPC_SESSION_ACTIVE, 0));
    /* only the active agent's layout opens the port */
    send_layout(b, true);
    test_spin(300);
    assert_false(vdh_host_is_connected(F->host));
    send_layout(a, false);
    host_ready();
    host_monitors(800);
    assert_true(test_wait(has_monitors, a, WAIT_MS));
    assert_int_equal(b->nmsgs[VD_AGENT_MONITORS_CONFIG], 0);

    /* switch: b becomes active and gets the cached config, and the port
     * stays open throughout: the session module reports the old session's
     * departure before the new one is read, and the daemon must not close
     * the port in between (the SPICE client would see the agent vanish). */
    VdhHostStats st0;
    vdh_host_get_stats(F->host, &st0);
    set_active("3", SESSION_PATH("3"));
    assert_true(wait_flags(b, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, 0));
    assert_true(test_wait(has_monitors, b, WAIT_MS));
    assert_int_equal(monitors_width(b), 800);
    assert_true(test_wait(host_connected, NULL, WAIT_MS));
    VdhHostStats st1;
    vdh_host_get_stats(F->host, &st1);
    assert_int_equal(st1.connects, st0.connects);
    assert_false(log_has("closed the agent port"));
    host_ready();
    unsigned a_before = a->nmsgs[VD_AGENT_MONITORS_CONFIG];
    host_monitors(1024);
    assert_true(test_wait(two_monitors, b, WAIT_MS));
    assert_int_equal(monitors_width(b), 1024);
    assert_int_equal(a->nmsgs[VD_AGENT_MONITORS_CONFIG], a_before);

    /* the newly active agent goes away: no active agent, port closes */
    test_agent_free(b);
    assert_true(test_wait(host_disconnected, NULL, WAIT_MS));
    /* back to session 2: its agent's layout reopens the port */
    set_active("2", SESSION_PATH("2"));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    assert_true(test_wait(host_connected, NULL, WAIT_MS));
    host_ready();
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

/* CVE-2020-25651: an agent that does not own a transfer (here the
 * inactive session's) cannot accept it: its CAN_SEND_DATA is ignored and
 * nobody receives the file's data. */
typedef struct XferWait {
    bool done, ok;
    GError *error;
} XferWait;

static void xfer_sent(GObject *src, GAsyncResult *res, gpointer user)
{
    XferWait *w = user;
    w->ok = vdh_host_send_files_finish(F->host, res, &w->error);
    w->done = true;
}

static bool xfer_finished(void *d)
{
    return ((XferWait *)d)->done;
}

static bool got_start(void *d)
{
    return ((TestAgent *)d)->nmsgs[VD_AGENT_FILE_XFER_START] > 0;
}

static void test_xfer_owner(void **state)
{
    TestAgent *a, *b;
    two_session_agents(&a, &b);
    send_layout(a, false);
    host_ready();

    char *path = g_build_filename(F->dir, "secret.bin", NULL);
    char data[4096];
    memset(data, 'x', sizeof(data));
    assert_true(g_file_set_contents(path, data, sizeof(data), NULL));
    const char *paths[] = {path, NULL};
    XferWait w = {0};
    vdh_host_send_files_async(F->host, paths, NULL, NULL, WAIT_MS, NULL, xfer_sent, &w);
    assert_true(test_wait(got_start, a, WAIT_MS));
    assert_int_equal(b->nmsgs[VD_AGENT_FILE_XFER_START], 0);
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(a, VD_AGENT_FILE_XFER_START, m));
    uint32_t id = m->u.xfer_start.id;
    g_free(m);
    /* the other agent claims it */
    assert_true(test_agent_send_xfer_status(b, id, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA));
    test_spin(500);
    assert_false(w.done);
    assert_int_equal(b->nmsgs[VD_AGENT_FILE_XFER_DATA], 0);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_DATA], 0);
    assert_false(b->closed);
    /* the owner refuses: the host learns it */
    assert_true(test_agent_send_xfer_status(a, id, VD_AGENT_FILE_XFER_STATUS_ERROR));
    assert_true(test_wait(xfer_finished, &w, WAIT_MS));
    assert_false(w.ok);
    g_clear_error(&w.error);
    assert_int_equal(b->nmsgs[VD_AGENT_FILE_XFER_DATA], 0);
    unlink(path);
    g_free(path);
    test_agent_free(b);
    test_agent_free(a);
}

/* ---- 5. lock ---- */

static void test_lock(void **state)
{
    add_session("2", 0);
    set_active("2", SESSION_PATH("2"));
    map_pid(getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED, VDP_IPC_SESSION_ACTIVE));
    update_prop(SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(TRUE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED,
                           VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED));
    update_prop(SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(FALSE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED, VDP_IPC_SESSION_ACTIVE));
    test_agent_free(a);
}

/* ---- 6. a greeter session ---- */

/* An active greeter session c1 of root, its agent is the test process. */
static void add_greeter(void)
{
    const char *path = SESSION_PATH("c1");
    GVariantBuilder props;
    g_variant_builder_init(&props, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&props, "{sv}", "Id", g_variant_new_string("c1"));
    g_variant_builder_add(&props, "{sv}", "User",
                          g_variant_new("(uo)", 0u, "/org/freedesktop/login1/user/_0"));
    g_variant_builder_add(&props, "{sv}", "Class", g_variant_new_string("greeter"));
    g_variant_builder_add(&props, "{sv}", "Type", g_variant_new_string("x11"));
    g_variant_builder_add(&props, "{sv}", "LockedHint", g_variant_new_boolean(FALSE));
    g_variant_builder_add(&props, "{sv}", "Active", g_variant_new_boolean(TRUE));
    mock_call(LOGIND_PATH, MOCK_IFACE, "AddObject",
              g_variant_new("(ssa{sv}@a(ssss))", path, SESSION_IFACE, &props,
                            g_variant_new_array(G_VARIANT_TYPE("(ssss)"), NULL, 0)));
    set_active("c1", path);
    map_pid(getpid(), path);
}

static void test_greeter(void **state)
{
    add_greeter();
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    send_layout(a, false);
    host_ready();
    test_agent_free(a);
}

/* ---- 6b. file transfers and the session state ---- */

static char *make_file(const char *name, size_t size)
{
    char *path = g_build_filename(F->dir, name, NULL);
    char *data = g_malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)(i * 7u + 1u);
    assert_true(g_file_set_contents(path, data, (gssize)size, NULL));
    g_free(data);
    return path;
}

static bool got_xfer_status(void *d)
{
    return ((TestAgent *)d)->nmsgs[VD_AGENT_FILE_XFER_STATUS] > 0;
}

static bool got_xfer_data(void *d)
{
    return ((TestAgent *)d)->xfer_data_msgs > 0;
}

static bool all_data_in(void *d)
{
    TestAgent *a = d;
    return a->xfer_size > 0 && a->xfer_received == a->xfer_size;
}

static uint32_t last_start_id(TestAgent *a)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(a, VD_AGENT_FILE_XFER_START, m));
    uint32_t id = m->u.xfer_start.id;
    g_free(m);
    return id;
}

/* The agent's last FILE_XFER_STATUS is CANCELLED for id. */
static void assert_agent_cancelled(TestAgent *a, uint32_t id)
{
    assert_true(test_wait(got_xfer_status, a, WAIT_MS));
    VdpMsg *m = g_new0(VdpMsg, 1);
    assert_true(test_agent_last(a, VD_AGENT_FILE_XFER_STATUS, m));
    assert_int_equal(m->u.xfer_status.id, id);
    assert_int_equal(m->u.xfer_status.result, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
    g_free(m);
}

/* Sends one file synchronously; returns the error (NULL on success). */
static GError *send_one(const char *path)
{
    const char *paths[] = {path, NULL};
    GError *error = NULL;
    if (vdh_host_send_files_sync(F->host, paths, NULL, NULL, WAIT_MS, &error))
        return NULL;
    assert_non_null(error);
    return error;
}

/* The active session is locked: START is refused with SESSION_LOCKED (the
 * host announces FILE_XFER_DETAILED_ERRORS, so the reason reaches it) and
 * the agent never sees the transfer. Unlocked, the same file goes through. */
static void test_xfer_locked(void **state)
{
    add_session("2", 0);
    set_active("2", SESSION_PATH("2"));
    map_pid(getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    a->xfer_accept = true;
    send_layout(a, false);
    host_ready();
    assert_true(vdp_caps_has(vdh_host_get_guest_caps(F->host), VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS));
    update_prop(SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(TRUE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED,
                           VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED));

    char *path = make_file("locked.bin", 1000);
    GError *error = send_one(path);
    assert_non_null(error);
    assert_true(g_error_matches(error, VDH_ERROR, VDH_ERROR_REFUSED));
    if (!strstr(error->message, "locked"))
        fail_msg("unexpected error: %s", error->message);
    g_clear_error(&error);
    test_spin(300);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_START], 0);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_DATA], 0);

    update_prop(SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(FALSE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED, VDP_IPC_SESSION_ACTIVE));
    error = send_one(path);
    if (error)
        fail_msg("transfer after unlocking: %s", error->message);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_START], 1);
    assert_int_equal(a->xfer_done, 1);
    assert_int_equal(a->bad_frames, 0);
    g_free(path);
    test_agent_free(a);
}

/* The active session is a greeter: START is refused with DISABLED. */
static void test_xfer_greeter(void **state)
{
    add_greeter();
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    a->xfer_accept = true;
    send_layout(a, false);
    host_ready();
    char *path = make_file("greeter.bin", 1000);
    GError *error = send_one(path);
    assert_non_null(error);
    assert_true(g_error_matches(error, VDH_ERROR, VDH_ERROR_REFUSED));
    if (!strstr(error->message, "disabled"))
        fail_msg("unexpected error: %s", error->message);
    g_clear_error(&error);
    test_spin(300);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_START], 0);
    g_free(path);
    test_agent_free(a);
}

/* A transfer is running (all its data delivered, the agent has not
 * answered yet) when another session becomes active: the host's transfer
 * fails as cancelled, the old agent is told CANCELLED for that id (so it
 * deletes the partial file), and the new agent never hears of it. */
static void test_xfer_switch(void **state)
{
    TestAgent *a, *b;
    two_session_agents(&a, &b);
    a->xfer_accept = true;
    a->xfer_no_success = true;
    b->xfer_accept = true;
    send_layout(a, false);
    host_ready();

    char *path = make_file("switch.bin", 300 * 1024);
    const char *paths[] = {path, NULL};
    XferWait w = {0};
    vdh_host_send_files_async(F->host, paths, NULL, NULL, WAIT_MS, NULL, xfer_sent, &w);
    assert_true(test_wait(all_data_in, a, WAIT_MS));
    uint32_t id = last_start_id(a);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_STATUS], 0);
    assert_false(w.done);

    set_active("3", SESSION_PATH("3"));
    assert_true(wait_flags(b, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    assert_true(test_wait(xfer_finished, &w, WAIT_MS));
    assert_false(w.ok);
    assert_non_null(w.error);
    if (!strstr(w.error->message, "cancelled"))
        fail_msg("unexpected error: %s", w.error->message);
    g_clear_error(&w.error);
    assert_agent_cancelled(a, id);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_STATUS], 1);
    test_spin(200);
    assert_int_equal(b->nmsgs[VD_AGENT_FILE_XFER_START], 0);
    assert_int_equal(b->nmsgs[VD_AGENT_FILE_XFER_STATUS], 0);
    /* a late answer of the old agent for it is ignored */
    assert_true(test_agent_send_xfer_status(a, id, VD_AGENT_FILE_XFER_STATUS_SUCCESS));
    test_spin(200);
    assert_true(log_has("no such transfer"));
    assert_false(a->closed);
    assert_int_equal(a->bad_frames, 0);
    assert_int_equal(b->bad_frames, 0);
    g_free(path);
    test_agent_free(b);
    test_agent_free(a);
}

/* The client cancels a transfer mid-way: its STATUS CANCELLED reaches the
 * owner, and the daemon forgets the id, so a new START with the same id
 * is accepted (not refused as "already in use"). */
static void test_xfer_client_cancel(void **state)
{
    add_session("2", 0);
    set_active("2", SESSION_PATH("2"));
    map_pid(getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    a->xfer_accept = true;
    a->xfer_no_success = true;
    send_layout(a, false);
    host_ready();

    char *big = make_file("big.bin", 4u * 1024u * 1024u);
    const char *paths[] = {big, NULL};
    XferWait w = {0};
    GCancellable *c = g_cancellable_new();
    vdh_host_send_files_async(F->host, paths, NULL, NULL, WAIT_MS, c, xfer_sent, &w);
    assert_true(test_wait(got_xfer_data, a, WAIT_MS));
    uint32_t id = last_start_id(a);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_STATUS], 0);
    g_cancellable_cancel(c);
    assert_true(test_wait(xfer_finished, &w, WAIT_MS));
    assert_false(w.ok);
    assert_true(g_error_matches(w.error, VDH_ERROR, VDH_ERROR_CANCELLED));
    g_clear_error(&w.error);
    g_object_unref(c);
    assert_agent_cancelled(a, id);

    /* the same id again: accepted and completed */
    F->host->next_xfer_id = id;
    a->xfer_no_success = false;
    unsigned starts = a->nmsgs[VD_AGENT_FILE_XFER_START];
    char *small = make_file("small.bin", 5000);
    GError *error = send_one(small);
    if (error)
        fail_msg("transfer with the reused id %u: %s", id, error->message);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_START], starts + 1);
    assert_int_equal(last_start_id(a), id);
    assert_int_equal(a->xfer_received, 5000);
    assert_int_equal(a->xfer_done, 1);
    assert_false(log_has("already in use"));
    assert_int_equal(a->bad_frames, 0);
    g_free(small);
    g_free(big);
    test_agent_free(a);
}

/* ---- 7. -X -o ---- */

static void test_one_session(void **state)
{
    start_daemon(true, true);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    send_layout(a, false);
    host_ready();
    /* the agent goes away: the port would close, so the daemon exits */
    test_agent_free(a);
    assert_true(wait_exit(F->daemon_pid, &F->daemon_status, WAIT_MS));
    F->daemon_reaped = true;
    assert_true(WIFEXITED(F->daemon_status));
    assert_int_equal(WEXITSTATUS(F->daemon_status), 0);
    assert_true(log_has("Exiting after one client session"));
}

/* ---- 8. socket activation ---- */

static void test_socket_activation(void **state)
{
    if (!g_file_test(SOCKET_ACTIVATE, G_FILE_TEST_IS_EXECUTABLE))
        skip();
    char *argv[] = {SOCKET_ACTIVATE, "-l", F->sock_path, (char *)daemon_path(), "-x", "-X", "-s",
                    F->port_path, "-f", "-u", F->fifo_path, NULL};
    F->daemon_pid = spawn(argv, NULL, true);
    gint64 deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!g_file_test(F->sock_path, G_FILE_TEST_EXISTS) && g_get_monotonic_time() < deadline)
        g_usleep(10000);
    TestAgent *a = agent_here();
    assert_true(a->welcomed);
    send_layout(a, false);
    host_ready();
    assert_true(log_has("serving on the socket from systemd"));
    test_agent_free(a);
}

static void test_socket_activation_two(void **state)
{
    if (!g_file_test(SOCKET_ACTIVATE, G_FILE_TEST_IS_EXECUTABLE))
        skip();
    char *other = g_build_filename(F->dir, "sock2", NULL);
    char *argv[] = {SOCKET_ACTIVATE, "-l", F->sock_path, "-l", other, (char *)daemon_path(), "-x", "-X",
                    "-s", F->port_path, "-f", "-u", F->fifo_path, NULL};
    F->daemon_pid = spawn(argv, NULL, true);
    gint64 deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!g_file_test(F->sock_path, G_FILE_TEST_EXISTS) && g_get_monotonic_time() < deadline)
        g_usleep(10000);
    /* a connection makes systemd-socket-activate start the daemon */
    int fd = vdp_unix_connect(F->sock_path);
    assert_true(wait_exit(F->daemon_pid, &F->daemon_status, WAIT_MS));
    if (fd >= 0)
        close(fd);
    F->daemon_reaped = true;
    assert_true(WIFEXITED(F->daemon_status));
    assert_int_equal(WEXITSTATUS(F->daemon_status), 1);
    assert_true(log_has("too many sockets"));
    F->daemon_status = 0;   /* the exit status was the point */
    g_free(other);
}

int main(void)
{
    verbose = g_getenv("VDD_TEST_VERBOSE") != NULL;
    dbus_daemon_path = vdp_test_find_dbus_daemon();
    if (!dbus_daemon_path) {
        printf("SKIP: test-daemon-sessions needs dbus-daemon\n");
        return 77;
    }
    if (!vdp_test_have_dbusmock()) {
        printf("SKIP: test-daemon-sessions needs python3-dbusmock for " PYTHON "\n");
        return 77;
    }
    bus_dir = g_dir_make_tmp("test-dsess-bus-XXXXXX", NULL);
    if (!bus_dir)
        return 1;
    bus_socket = g_build_filename(bus_dir, "bus", NULL);
    bus_addr = g_strdup_printf("unix:path=%s", bus_socket);
    /* the daemon and the mock inherit these: never a real bus */
    g_setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_addr, TRUE);
    g_setenv("DBUS_SESSION_BUS_ADDRESS", bus_addr, TRUE);
    g_unsetenv("DBUS_STARTER_ADDRESS");
    g_unsetenv("LISTEN_FDS");
    g_unsetenv("LISTEN_PID");
    g_unsetenv("NOTIFY_SOCKET");
    signal(SIGPIPE, SIG_IGN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_active_agent, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_user_agent, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_other_uid, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_no_session, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_status_needs_root, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_pid_gone, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_switch, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_owner, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_greeter, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_locked, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_greeter, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_switch, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_xfer_client_cancel, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_one_session, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_socket_activation, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_socket_activation_two, setup_plain, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(bus_socket);
    rmdir(bus_dir);
    g_free(bus_addr);
    g_free(bus_socket);
    g_free(bus_dir);
    g_free(dbus_daemon_path);
    return rc;
}
