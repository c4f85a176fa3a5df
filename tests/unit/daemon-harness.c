/* daemon-harness.c - the shared harness of the spice-vdagentd tests
 * (test-daemon.c, test-daemon-sessions.c, test-daemon-clipboard.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
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

#include "daemon-harness.h"
#include "vdp-unix.h"

bool dh_verbose(void)
{
    return g_getenv("VDD_TEST_VERBOSE") != NULL;
}

/* ---- the test directory ---- */

void dh_setup(DaemonHarness *h, const char *prefix, unsigned wait_ms, unsigned timeout_s)
{
    alarm(timeout_s);
    memset(h, 0, sizeof(*h));
    h->wait_ms = wait_ms;
    h->fifo_fd = -1;
    char *tmpl = g_strdup_printf("%s-XXXXXX", prefix);
    h->dir = g_dir_make_tmp(tmpl, NULL);
    g_free(tmpl);
    assert_non_null(h->dir);
    h->port_path = g_build_filename(h->dir, "port", NULL);
    h->sock_path = g_build_filename(h->dir, "sock", NULL);
    h->fifo_path = g_build_filename(h->dir, "fifo", NULL);
    h->log_path = g_build_filename(h->dir, "daemon.log", NULL);
    assert_int_equal(mkfifo(h->fifo_path, 0600), 0);
    h->fifo_fd = open(h->fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(h->fifo_fd >= 0);
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

/* ---- processes ---- */

typedef struct ChildSetup {
    int logfd;  /* > 0: stdout and stderr go there */
} ChildSetup;

static void child_setup(gpointer data)
{
    const ChildSetup *c = data;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (c->logfd > 0) {
        dup2(c->logfd, 1);
        dup2(c->logfd, 2);
    }
}

GPid dh_spawn(DaemonHarness *h, char **argv, char **envp, DhOutput out)
{
    GPid pid = 0;
    GError *err = NULL;
    ChildSetup c = {.logfd = -1};
    if (out == DH_OUT_LOG) {
        c.logfd = open(h->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        assert_true(c.logfd >= 0);
    }
    GSpawnFlags flags = G_SPAWN_DO_NOT_REAP_CHILD;
    if (out == DH_OUT_QUIET && !dh_verbose())
        flags |= G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL;
    gboolean ok = g_spawn_async(NULL, argv, envp, flags, child_setup, &c, &pid, &err);
    if (c.logfd >= 0)
        close(c.logfd);
    if (!ok)
        fail_msg("cannot start %s: %s", argv[0], err->message);
    return pid;
}

bool dh_wait_exit(pid_t pid, int *status, unsigned ms)
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

void dh_stop_process(GPid *pid, int sig)
{
    if (*pid <= 0)
        return;
    int status;
    kill(*pid, sig);
    if (!dh_wait_exit(*pid, &status, DH_STOP_MS)) {
        kill(*pid, SIGKILL);
        waitpid(*pid, &status, 0);
    }
    *pid = 0;
}

/* ---- the daemon ---- */

const char *dh_daemon_path(void)
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

/* Room for the fixed arguments and the options a test adds. */
#define DH_MAX_ARGS 24

void dh_start_daemon(DaemonHarness *h, const DhDaemonOpts *o)
{
    char *argv[DH_MAX_ARGS];
    unsigned n = 0;
    argv[n++] = (char *)dh_daemon_path();
    argv[n++] = "-x";
    for (const char *const *a = o->args; a && *a; a++) {
        assert_true(n < DH_MAX_ARGS - 8);
        argv[n++] = (char *)*a;
    }
    argv[n++] = "-f";
    argv[n++] = "-s";
    argv[n++] = h->port_path;
    argv[n++] = "-S";
    argv[n++] = h->sock_path;
    argv[n++] = "-u";
    argv[n++] = h->fifo_path;
    argv[n] = NULL;
    char **env = g_get_environ();
    char ms[16];
    snprintf(ms, sizeof(ms), "%u", o->handshake_ms);
    env = g_environ_setenv(env, "VDAGENTD_TEST_HANDSHAKE_MS", ms, TRUE);
    if (o->small_asan_quarantine) {
        /* Under AddressSanitizer freed memory sits in a quarantine (256 MiB
         * by default) and counts in the RSS: keep it small so the peak RSS
         * still says whether the daemon holds the data. */
        const char *asan = g_environ_getenv(env, "ASAN_OPTIONS");
        char *asan_opts =
            g_strdup_printf("%s%squarantine_size_mb=1", asan ? asan : "", asan && *asan ? ":" : "");
        env = g_environ_setenv(env, "ASAN_OPTIONS", asan_opts, TRUE);
        g_free(asan_opts);
    }
    h->daemon_pid = dh_spawn(h, argv, env, o->out);
    g_strfreev(env);
    assert_true(test_wait(socket_up, h->sock_path, h->wait_ms));
}

char *dh_daemon_log(DaemonHarness *h)
{
    char *text = NULL;
    if (!g_file_get_contents(h->log_path, &text, NULL, NULL))
        text = g_strdup("");
    return text;
}

unsigned dh_log_count(DaemonHarness *h, const char *needle)
{
    char *t = dh_daemon_log(h);
    unsigned n = 0;
    for (const char *p = t; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    g_free(t);
    return n;
}

/* ---- the host library on the port ---- */

void dh_start_host(DaemonHarness *h, const VdpCaps *caps, int32_t max_clipboard, const VdhHostEvents *ev,
                   void *user)
{
    VdhHostConfig cfg = {.path = h->port_path, .listen = true, .caps = caps, .max_clipboard = max_clipboard};
    GError *error = NULL;
    h->host = vdh_host_new(&cfg, ev, user, &error);
    assert_non_null(h->host);
    vdh_host_start(h->host);
}

void dh_host_ready(DaemonHarness *h)
{
    GError *error = NULL;
    if (!vdh_host_wait_ready_sync(h->host, h->wait_ms, &error))
        fail_msg("host not ready: %s", error->message);
}

bool dh_host_connected(void *h)
{
    return vdh_host_is_connected(((DaemonHarness *)h)->host);
}

bool dh_host_disconnected(void *h)
{
    return !dh_host_connected(h);
}

void dh_files_progress(void *user, const VdhXferProgress *p)
{
    ((DhAsync *)user)->sent = p->sent;
}

void dh_files_sent(GObject *src, GAsyncResult *res, gpointer user)
{
    DhAsync *w = user;
    w->ok = vdh_host_send_files_finish(w->host, res, &w->error);
    w->done = true;
}

void dh_monitors_set(GObject *src, GAsyncResult *res, gpointer user)
{
    DhAsync *w = user;
    w->ok = vdh_host_set_monitors_finish(w->host, res, &w->error);
    w->done = true;
}

bool dh_async_done(void *d)
{
    return ((DhAsync *)d)->done;
}

/* ---- agents ---- */

bool dh_agent_answered(void *data)
{
    TestAgent *a = data;
    return a->welcomed || a->rejected || a->closed;
}

TestAgent *dh_agent_connect(DaemonHarness *h)
{
    TestAgent *a = test_agent_connect(h->sock_path, VDP_IPC_ROLE_AGENT, "test-agent");
    assert_non_null(a);
    assert_true(test_wait(dh_agent_answered, a, h->wait_ms));
    return a;
}

TestAgent *dh_agent_on_fd(DaemonHarness *h, int fd)
{
    TestAgent *a = test_agent_new_fd(fd, VDP_IPC_ROLE_AGENT, "test-agent");
    assert_non_null(a);
    assert_true(test_wait(dh_agent_answered, a, h->wait_ms));
    return a;
}

void dh_send_layout(TestAgent *a, bool two)
{
    VdpIpcGuestLayout *l = g_new0(VdpIpcGuestLayout, 1);
    if (two)
        test_layout_two(l);
    else
        test_layout_one(l);
    assert_true(test_agent_send_layout(a, l));
    g_free(l);
}

typedef struct Count {
    const unsigned *p;
    unsigned want;
} Count;

static bool count_reached(void *data)
{
    Count *c = data;
    return *c->p >= c->want;
}

bool dh_wait_count(const unsigned *p, unsigned want, unsigned ms)
{
    Count c = {p, want};
    return test_wait(count_reached, &c, ms);
}

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

static int recv_fd(int via, unsigned ms)
{
    struct pollfd p = {.fd = via, .events = POLLIN};
    if (poll(&p, 1, (int)ms) != 1)
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

int dh_kid_connect(DaemonHarness *h, uid_t uid, DhKidMode mode, const char *session_path, pid_t *pid_out)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(h->sock_path) < sizeof(sa.sun_path));
    strcpy(sa.sun_path, h->sock_path);
    /* with a session, the kid's pid is known before it connects: map it
     * first, then let the kid go on */
    int go[2] = {-1, -1};
    if (session_path)
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* async-signal-safe calls only from here on */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[0]);
        if (session_path) {
            close(go[1]);
            char b;
            if (read(go[0], &b, 1) != 1)
                _exit(5);
        }
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
        if (mode == DH_KID_EXIT)
            _exit(0);
        for (;;)
            pause();
    }
    close(sv[1]);
    if (mode == DH_KID_STAY) {
        assert_true(h->nkids < DH_MAX_KIDS);
        h->kids[h->nkids++] = pid;
    }
    if (session_path) {
        close(go[0]);
        dh_map_pid(h, pid, session_path);
        assert_int_equal(write(go[1], "g", 1), 1);
        close(go[1]);
    }
    int fd = recv_fd(sv[0], h->wait_ms);
    close(sv[0]);
    assert_true(fd >= 0);
    *pid_out = pid;
    return fd;
}

/* ---- the private bus and the logind mock ---- */

static char *dbus_daemon_path;
static char *bus_dir, *bus_socket, *bus_addr;

bool dh_bus_init(const char *prefix)
{
    dbus_daemon_path = vdp_test_find_dbus_daemon();
    char *tmpl = g_strdup_printf("%s-XXXXXX", prefix);
    bus_dir = g_dir_make_tmp(tmpl, NULL);
    g_free(tmpl);
    if (!bus_dir)
        return false;
    bus_socket = g_build_filename(bus_dir, "bus", NULL);
    bus_addr = g_strdup_printf("unix:path=%s", bus_socket);
    g_setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_addr, TRUE);
    g_setenv("DBUS_SESSION_BUS_ADDRESS", bus_addr, TRUE);
    g_unsetenv("DBUS_STARTER_ADDRESS");
    g_unsetenv("LISTEN_FDS");
    g_unsetenv("LISTEN_PID");
    g_unsetenv("NOTIFY_SOCKET");
    return true;
}

const char *dh_bus_dbus_daemon(void)
{
    return dbus_daemon_path;
}

void dh_bus_fini(void)
{
    if (bus_socket)
        unlink(bus_socket);
    if (bus_dir)
        rmdir(bus_dir);
    g_clear_pointer(&bus_addr, g_free);
    g_clear_pointer(&bus_socket, g_free);
    g_clear_pointer(&bus_dir, g_free);
    g_clear_pointer(&dbus_daemon_path, g_free);
}

static GDBusConnection *connect_bus(void)
{
    return g_dbus_connection_new_for_address_sync(
        bus_addr, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
        NULL, NULL, NULL);
}

GVariant *dh_ctl_call(DaemonHarness *h, const char *dest, const char *path, const char *iface,
                      const char *method, GVariant *params)
{
    GError *err = NULL;
    GVariant *r = g_dbus_connection_call_sync(h->ctl, dest, path, iface, method, params, NULL,
                                              G_DBUS_CALL_FLAGS_NO_AUTO_START, DH_CTL_TIMEOUT_MS, NULL, &err);
    if (!r)
        fail_msg("%s.%s on %s: %s", iface, method, path, err->message);
    return r;
}

void dh_mock_call(DaemonHarness *h, const char *path, const char *iface, const char *method, GVariant *params)
{
    g_variant_unref(dh_ctl_call(h, LOGIND_NAME, path, iface, method, params));
}

static bool logind_on_bus(DaemonHarness *h)
{
    GVariant *r = dh_ctl_call(h, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "NameHasOwner", g_variant_new("(s)", LOGIND_NAME));
    gboolean has;
    g_variant_get(r, "(b)", &has);
    g_variant_unref(r);
    return has;
}

void dh_bus_and_mock_start(DaemonHarness *h)
{
    assert_non_null(bus_addr);
    assert_non_null(dbus_daemon_path);
    char *conf = g_build_filename(h->dir, "bus.conf", NULL);
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
    h->bus_pid = dh_spawn(h, bargv, NULL, DH_OUT_QUIET);
    g_free(conf_arg);
    g_free(text);
    g_free(conf);
    gint64 deadline = g_get_monotonic_time() + (gint64)h->wait_ms * 1000;
    while (!(h->ctl = connect_bus())) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the private dbus-daemon did not come up");
        g_usleep(10000);
    }
    char *margv[] = {VDP_TEST_PYTHON, "-m", "dbusmock", "--template", "logind", NULL};
    h->mock_pid = dh_spawn(h, margv, NULL, DH_OUT_QUIET);
    deadline = g_get_monotonic_time() + (gint64)h->wait_ms * 1000;
    while (!logind_on_bus(h)) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the logind mock did not appear on the bus");
        g_usleep(20000);
    }
    dh_mock_call(h, LOGIND_PATH, MOCK_IFACE, "AddSeat", g_variant_new("(s)", "seat0"));
}

void dh_add_session(DaemonHarness *h, const char *id, unsigned uid, const char *user)
{
    dh_mock_call(h, LOGIND_PATH, MOCK_IFACE, "AddSession", g_variant_new("(ssusb)", id, "seat0", uid, user, TRUE));
}

void dh_set_active(DaemonHarness *h, const char *id, const char *path)
{
    dh_mock_call(h, SEAT0_PATH, PROPS_IFACE, "Set",
                 g_variant_new("(ssv)", SEAT_IFACE, "ActiveSession", g_variant_new("(so)", id, path)));
}

void dh_add_greeter(DaemonHarness *h, const char *id, const char *path)
{
    GVariantBuilder props;
    g_variant_builder_init(&props, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&props, "{sv}", "Id", g_variant_new_string(id));
    g_variant_builder_add(&props, "{sv}", "User", g_variant_new("(uo)", 0u, "/org/freedesktop/login1/user/_0"));
    g_variant_builder_add(&props, "{sv}", "Class", g_variant_new_string("greeter"));
    g_variant_builder_add(&props, "{sv}", "Type", g_variant_new_string("x11"));
    g_variant_builder_add(&props, "{sv}", "LockedHint", g_variant_new_boolean(FALSE));
    g_variant_builder_add(&props, "{sv}", "Active", g_variant_new_boolean(TRUE));
    dh_mock_call(h, LOGIND_PATH, MOCK_IFACE, "AddObject",
                 g_variant_new("(ssa{sv}@a(ssss))", path, SESSION_IFACE, &props,
                               g_variant_new_array(G_VARIANT_TYPE("(ssss)"), NULL, 0)));
    dh_set_active(h, id, path);
    dh_map_pid(h, getpid(), path);
}

void dh_update_prop(DaemonHarness *h, const char *path, const char *iface, const char *name, GVariant *value)
{
    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", name, value);
    dh_mock_call(h, path, MOCK_IFACE, "UpdateProperties", g_variant_new("(sa{sv})", iface, &b));
}

void dh_publish_map(DaemonHarness *h)
{
    GString *code = g_string_new("import time\nm = {");
    for (unsigned i = 0; i < h->nmap; i++)
        g_string_append_printf(code, "%d: '%s', ", (int)h->map[i].pid, h->map[i].path);
    g_string_append_printf(code, "}\n"
                                 "if args[0] in m:\n"
                                 "    time.sleep(%g)\n"
                                 "    ret = dbus.ObjectPath(m[args[0]])\n"
                                 "else:\n"
                                 "    raise dbus.exceptions.DBusException('PID %%d does not belong to any known "
                                 "session' %% args[0], name='org.freedesktop.login1.NoSessionForPID')\n",
                           h->delay);
    dh_mock_call(h, LOGIND_PATH, MOCK_IFACE, "AddMethod",
                 g_variant_new("(sssss)", MANAGER_IFACE, "GetSessionByPID", "u", "o", code->str));
    g_string_free(code, TRUE);
}

void dh_map_pid(DaemonHarness *h, pid_t pid, const char *path)
{
    assert_true(h->nmap < DH_MAX_MAP);
    h->map[h->nmap].pid = pid;
    h->map[h->nmap].path = g_strdup(path);
    h->nmap++;
    dh_publish_map(h);
}

/* ---- the end of a test ---- */

static DhExit stop_daemon(DaemonHarness *h)
{
    DhExit e = {.had_daemon = h->daemon_pid > 0, .gone = true, .status = h->daemon_status};
    if (h->daemon_pid > 0 && !h->daemon_reaped) {
        kill(h->daemon_pid, SIGTERM);
        e.gone = dh_wait_exit(h->daemon_pid, &e.status, h->wait_ms);
        if (!e.gone) {
            kill(h->daemon_pid, SIGKILL);
            waitpid(h->daemon_pid, &e.status, 0);
        }
    }
    return e;
}

static void cleanup(DaemonHarness *h)
{
    for (unsigned i = 0; i < h->nkids; i++) {
        kill(h->kids[i], SIGKILL);
        waitpid(h->kids[i], NULL, 0);
    }
    if (h->host)
        vdh_host_free(h->host);
    if (h->ctl) {
        g_dbus_connection_close_sync(h->ctl, NULL, NULL);
        g_clear_object(&h->ctl);
    }
    dh_stop_process(&h->mock_pid, SIGTERM);
    dh_stop_process(&h->bus_pid, SIGTERM);
    if (dh_verbose()) {
        char *t = dh_daemon_log(h);
        fprintf(stderr, "---- daemon log ----\n%s--------------------\n", t);
        g_free(t);
    }
    if (h->fifo_fd >= 0)
        close(h->fifo_fd);
    rm_rf(h->dir);
    g_free(h->dir);
    g_free(h->port_path);
    g_free(h->sock_path);
    g_free(h->fifo_path);
    g_free(h->log_path);
    for (unsigned i = 0; i < h->nmap; i++)
        g_free(h->map[i].path);
    memset(h, 0, sizeof(*h));
    h->fifo_fd = -1;
}

DhExit dh_finish(DaemonHarness *h)
{
    DhExit e = stop_daemon(h);
    cleanup(h);
    alarm(0);
    return e;
}

void dh_assert_clean_exit(const DhExit *e)
{
    if (!e->had_daemon)
        return;
    /* a clean exit (SIGTERM, or the daemon's own reason the test checked) */
    assert_true(e->gone);
    assert_true(WIFEXITED(e->status));
    assert_int_equal(WEXITSTATUS(e->status), 0);
}
