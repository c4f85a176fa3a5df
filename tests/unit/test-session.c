/* test-session.c - VddSessions against python3-dbusmock's logind template
 * on a private bus.
 *
 * Every test starts its own dbus-daemon (a config in a temporary directory
 * that allows everything, no service activation) and, when it needs one,
 * `/usr/bin/python3 -m dbusmock --template logind` on it, with
 * DBUS_SYSTEM_BUS_ADDRESS and DBUS_SESSION_BUS_ADDRESS pointing to that
 * bus. The real system bus is never touched. The test drives the mock
 * through its org.freedesktop.DBus.Mock interface (AddSeat, AddSession,
 * AddObject, AddMethod, UpdateProperties, EmitSignal) and through
 * Properties.Set, with blocking calls on a control connection; the module
 * gets its own connection and runs on the test's GMainContext.
 *
 * What the template offers and lacks (dbusmock 0.28): Manager.GetSeat and
 * GetSession return a path built from the id whether or not the object
 * exists; there is no GetSessionByPID (added here with AddMethod); seats
 * and sessions are made by AddSeat/AddSession, and AddSession makes the new
 * session the seat's ActiveSession even when `active` is false (that only
 * sets the session's Active and State); sessions have Class "user" and
 * Type "test", and the methods Lock/Unlock (emit the signals) and
 * SetLockedHint (PropertiesChanged with the value); Properties.Set on any
 * mock object emits PropertiesChanged with the new value.
 *
 * Waiting is always bounded (WAIT_MS per condition). The program exits
 * with 77 (skipped) only when /usr/bin/python3 cannot import dbusmock or
 * dbus-daemon is missing.
 *
 * Set VDD_TEST_VERBOSE=1 to see the module's log and the helpers' output.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vdd-session.h"
#include "vdp-testdir.h"
#include "vdp-dbusmock.h"

/* Longest any single wait may take before the test fails. */
#define WAIT_MS 15000
/* Tick that keeps waits checking their deadline. */
#define TICK_MS 5
/* Timeout of the test's own (blocking) control calls. */
#define CTL_TIMEOUT_MS 10000

#define PYTHON VDP_TEST_PYTHON

static bool verbose;
static char *dbus_daemon_path;
/* The private bus of every test: one address, set as DBUS_SYSTEM_BUS_ADDRESS
 * in main() before any thread exists (setenv() is not thread-safe), so the
 * module's own connection (bus NULL) finds it too. */
static char *base_dir;
static char *bus_socket;
static char *bus_addr;

/* ---- log capture ---- */

static struct {
    int warnings;
    int infos;
    int criticals;   /* any domain */
    GString *all;    /* every module message of the current test */
} logs;

static void log_handler(const char *domain, GLogLevelFlags level, const char *msg, gpointer data)
{
    if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
        logs.criticals++;
    if (g_strcmp0(domain, "vdd-session") == 0) {
        if (level & G_LOG_LEVEL_WARNING)
            logs.warnings++;
        if (level & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_MESSAGE))
            logs.infos++;
        g_string_append_printf(logs.all, "%s\n", msg);
    }
    if (verbose || (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)))
        fprintf(stderr, "  [%s] %s\n", domain ? domain : "-", msg);
}

static void logs_reset(void)
{
    logs.warnings = logs.infos = logs.criticals = 0;
    g_string_truncate(logs.all, 0);
}

/* How often `needle` occurs in the module's log of this test. */
static int logs_count(const char *needle)
{
    int n = 0;
    for (const char *p = logs.all->str; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- environment: a private bus, the mock, a context ---- */

typedef struct Env {
    GMainContext *ctx;
    char *dir;
    char *addr;
    GPid bus_pid;
    GPid mock_pid;
    GDBusConnection *ctl;    /* the test's control connection */
    GDBusConnection *conn;   /* the module's connection */
} Env;

static int env_setup(void **state)
{
    Env *e = g_new0(Env, 1);
    e->ctx = g_main_context_new();
    g_main_context_push_thread_default(e->ctx);
    e->dir = g_dir_make_tmp("vdd-ses-XXXXXX", NULL);
    assert_non_null(e->dir);
    e->addr = g_strdup(bus_addr);
    g_unlink(bus_socket);
    logs_reset();
    *state = e;
    return 0;
}

static void stop_process(GPid *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    for (;;) {
        pid_t r = waitpid(*pid, NULL, WNOHANG);
        if (r == *pid || (r < 0 && errno != EINTR))
            break;
        if (g_get_monotonic_time() > deadline) {
            kill(*pid, SIGKILL);
            waitpid(*pid, NULL, 0);
            break;
        }
        g_usleep(10000);
    }
    *pid = 0;
}

static void pump(Env *e, unsigned ms);

static int env_teardown(void **state)
{
    Env *e = *state;
    pump(e, 20);
    if (e->conn) {
        g_dbus_connection_close_sync(e->conn, NULL, NULL);
        g_clear_object(&e->conn);
    }
    if (e->ctl) {
        g_dbus_connection_close_sync(e->ctl, NULL, NULL);
        g_clear_object(&e->ctl);
    }
    stop_process(&e->mock_pid);
    stop_process(&e->bus_pid);
    pump(e, 20);
    g_main_context_pop_thread_default(e->ctx);
    g_main_context_unref(e->ctx);
    vdp_test_remove_dir(e->dir);
    g_unlink(bus_socket);
    g_free(e->addr);
    g_free(e->dir);
    int criticals = logs.criticals;
    g_free(e);
    assert_int_equal(criticals, 0);
    return 0;
}

static gboolean tick_cb(gpointer data)
{
    return G_SOURCE_CONTINUE;
}

/* Iterates the context until `expr` holds; fails the test after WAIT_MS. */
#define WAIT_FOR(e, expr)                                                                    \
    do {                                                                                     \
        gint64 deadline_ = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;                  \
        GSource *tick_ = g_timeout_source_new(TICK_MS);                                      \
        g_source_set_callback(tick_, tick_cb, NULL, NULL);                                   \
        g_source_attach(tick_, (e)->ctx);                                                    \
        while (!(expr) && g_get_monotonic_time() < deadline_)                                \
            g_main_context_iteration((e)->ctx, TRUE);                                        \
        g_source_destroy(tick_);                                                             \
        g_source_unref(tick_);                                                               \
        if (!(expr))                                                                         \
            fail_msg("timed out after %d ms waiting for: %s", WAIT_MS, #expr);               \
    } while (0)

/* Iterates the context for `ms` milliseconds. */
static void pump(Env *e, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    GSource *tick = g_timeout_source_new(TICK_MS);
    g_source_set_callback(tick, tick_cb, NULL, NULL);
    g_source_attach(tick, e->ctx);
    while (g_get_monotonic_time() < end)
        g_main_context_iteration(e->ctx, TRUE);
    g_source_destroy(tick);
    g_source_unref(tick);
}

static GDBusConnection *connect_bus(Env *e, bool must)
{
    GError *err = NULL;
    GDBusConnection *c = g_dbus_connection_new_for_address_sync(
        e->addr,
        G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
            G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
        NULL, NULL, &err);
    if (!c && must)
        fail_msg("cannot connect to the private bus: %s", err->message);
    g_clear_error(&err);
    return c;
}

/* Helpers die with the test, even if it crashes. */
static void child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

static GPid spawn(char **argv, char **envp)
{
    GPid pid = 0;
    GError *err = NULL;
    GSpawnFlags flags = G_SPAWN_DO_NOT_REAP_CHILD;
    if (!verbose)
        flags |= G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL;
    if (!g_spawn_async(NULL, argv, envp, flags, child_setup, NULL, &pid, &err))
        fail_msg("cannot start %s: %s", argv[0], err->message);
    return pid;
}

/* Starts the private dbus-daemon and the control connection. */
static void bus_start(Env *e)
{
    char *conf = g_build_filename(e->dir, "bus.conf", NULL);
    char *text = g_strdup_printf(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n"
        "  <listen>%s</listen>\n"
        "  <auth>EXTERNAL</auth>\n"
        "  <policy context=\"default\">\n"
        "    <allow user=\"*\"/>\n"
        "    <allow own=\"*\"/>\n"
        "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
        "    <allow eavesdrop=\"true\"/>\n"
        "  </policy>\n"
        "</busconfig>\n",
        e->addr);
    assert_true(g_file_set_contents(conf, text, -1, NULL));
    char *conf_arg = g_strdup_printf("--config-file=%s", conf);
    char *argv[] = { dbus_daemon_path, conf_arg, "--nofork", "--nopidfile", NULL };
    e->bus_pid = spawn(argv, NULL);
    g_free(conf_arg);
    g_free(text);
    g_free(conf);

    gint64 deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!(e->ctl = connect_bus(e, false))) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the private dbus-daemon did not come up");
        g_usleep(10000);
    }
}

static GVariant *ctl_call(Env *e, const char *dest, const char *path, const char *iface,
                          const char *method, GVariant *params)
{
    GError *err = NULL;
    GVariant *r = g_dbus_connection_call_sync(e->ctl, dest, path, iface, method, params, NULL,
                                              G_DBUS_CALL_FLAGS_NO_AUTO_START, CTL_TIMEOUT_MS,
                                              NULL, &err);
    if (!r)
        fail_msg("%s.%s on %s: %s", iface, method, path, err->message);
    return r;
}

static void mock_call(Env *e, const char *path, const char *iface, const char *method,
                      GVariant *params)
{
    g_variant_unref(ctl_call(e, LOGIND_NAME, path, iface, method, params));
}

static bool logind_on_bus(Env *e)
{
    GVariant *r = ctl_call(e, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "NameHasOwner",
                           g_variant_new("(s)", LOGIND_NAME));
    gboolean has;
    g_variant_get(r, "(b)", &has);
    g_variant_unref(r);
    return has;
}

/* Starts the logind mock on the private bus and waits for its name. */
static void mock_start(Env *e)
{
    char **envp = g_get_environ();
    envp = g_environ_setenv(envp, "DBUS_SYSTEM_BUS_ADDRESS", e->addr, TRUE);
    envp = g_environ_setenv(envp, "DBUS_SESSION_BUS_ADDRESS", e->addr, TRUE);
    char *argv[] = { PYTHON, "-m", "dbusmock", "--template", "logind", NULL };
    e->mock_pid = spawn(argv, envp);
    g_strfreev(envp);
    gint64 deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!logind_on_bus(e)) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the logind mock did not appear on the bus");
        g_usleep(20000);
    }
}

/* The private bus with the mock, and a connection for the module. */
static void env_start(Env *e)
{
    bus_start(e);
    mock_start(e);
    e->conn = connect_bus(e, true);
}

/* ---- mock control ---- */

static void add_seat(Env *e, const char *seat)
{
    mock_call(e, LOGIND_PATH, MOCK_IFACE, "AddSeat", g_variant_new("(s)", seat));
}

static void add_session(Env *e, const char *id, unsigned uid, const char *user, bool active)
{
    mock_call(e, LOGIND_PATH, MOCK_IFACE, "AddSession",
              g_variant_new("(ssusb)", id, "seat0", uid, user, active));
}

static void set_prop(Env *e, const char *path, const char *iface, const char *name,
                     GVariant *value)
{
    mock_call(e, path, PROPS_IFACE, "Set", g_variant_new("(ssv)", iface, name, value));
}

static void set_active(Env *e, const char *id, const char *path)
{
    set_prop(e, SEAT0_PATH, SEAT_IFACE, "ActiveSession", g_variant_new("(so)", id, path));
}

/* PropertiesChanged with exactly this value, whatever its type. */
static void update_prop(Env *e, const char *path, const char *iface, const char *name,
                        GVariant *value)
{
    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", name, value);
    mock_call(e, path, MOCK_IFACE, "UpdateProperties", g_variant_new("(sa{sv})", iface, &b));
}

static void emit_session_signal(Env *e, const char *path, const char *name)
{
    mock_call(e, path, MOCK_IFACE, "EmitSignal",
              g_variant_new("(sss@av)", SESSION_IFACE, name, "",
                            g_variant_new_array(G_VARIANT_TYPE_VARIANT, NULL, 0)));
}

static void add_method(Env *e, const char *path, const char *iface, const char *name,
                       const char *in, const char *out, const char *code)
{
    mock_call(e, path, MOCK_IFACE, "AddMethod",
              g_variant_new("(sssss)", iface, name, in, out, code));
}

/* A session object at any path, with the given User value (its type is
 * the test's choice). */
static void add_session_object(Env *e, const char *path, const char *id, GVariant *user,
                               const char *klass)
{
    GVariantBuilder props;
    g_variant_builder_init(&props, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&props, "{sv}", "Id", g_variant_new_string(id));
    g_variant_builder_add(&props, "{sv}", "User", user);
    g_variant_builder_add(&props, "{sv}", "Class", g_variant_new_string(klass));
    g_variant_builder_add(&props, "{sv}", "Type", g_variant_new_string("x11"));
    g_variant_builder_add(&props, "{sv}", "LockedHint", g_variant_new_boolean(FALSE));
    g_variant_builder_add(&props, "{sv}", "Active", g_variant_new_boolean(TRUE));
    mock_call(e, LOGIND_PATH, MOCK_IFACE, "AddObject",
              g_variant_new("(ssa{sv}@a(ssss))", path, SESSION_IFACE, &props,
                            g_variant_new_array(G_VARIANT_TYPE("(ssss)"), NULL, 0)));
}

/* GetSessionByPID: 4242 -> session c1, 4343 -> session 2 after a delay of
 * `delay` seconds, anything else -> NoSessionForPID like logind. */
static void add_get_session_by_pid(Env *e, double delay)
{
    char *code = g_strdup_printf(
        "import time\n"
        "if args[0] == 4242:\n"
        "    ret = dbus.ObjectPath('/org/freedesktop/login1/session/c1')\n"
        "elif args[0] == 4343:\n"
        "    time.sleep(%g)\n"
        "    ret = dbus.ObjectPath('/org/freedesktop/login1/session/2')\n"
        "else:\n"
        "    raise dbus.exceptions.DBusException('PID %%d does not belong to any known session'"
        " %% args[0], name='org.freedesktop.login1.NoSessionForPID')\n",
        delay);
    add_method(e, LOGIND_PATH, MANAGER_IFACE, "GetSessionByPID", "u", "o", code);
    g_free(code);
}

/* ---- the module under test ---- */

typedef struct Watch {
    int changed;
    VddSessions *s;
    bool free_in_changed;
} Watch;

static void on_changed(void *user)
{
    Watch *w = user;
    w->changed++;
    if (verbose) {
        const VddSessionInfo *a = vdd_sessions_active(w->s);
        fprintf(stderr, "  changed #%d: ready %d active %s uid %d greeter %d locked %d\n",
                w->changed, w->s ? vdd_sessions_ready(w->s) : -1, a ? a->id : "-",
                a ? (int)a->uid : -1, a ? a->greeter : -1, a ? a->locked : -1);
    }
    if (w->free_in_changed) {
        vdd_sessions_free(w->s);
        w->s = NULL;
    }
}

static const VddSessionEvents events = { .changed = on_changed };

static void start_module(Env *e, Watch *w, GDBusConnection *bus)
{
    w->s = vdd_sessions_new_logind(e->ctx, bus, "seat0", &events, w);
    assert_non_null(w->s);
    assert_true(vdd_sessions_enabled(w->s));
}

static const char *active_id(const Watch *w)
{
    const VddSessionInfo *a = vdd_sessions_active(w->s);
    return a ? a->id : NULL;
}

static bool active_is(const Watch *w, const char *id)
{
    return g_strcmp0(active_id(w), id) == 0;
}

static bool active_locked(const Watch *w)
{
    const VddSessionInfo *a = vdd_sessions_active(w->s);
    return a && a->locked;
}

typedef struct Lookup {
    bool done;
    VddSessionInfo *info;
    GError *error;
    VddSessions *s;
} Lookup;

static void on_lookup(GObject *src, GAsyncResult *res, gpointer data)
{
    Lookup *l = data;
    l->info = vdd_sessions_lookup_pid_finish(l->s, res, &l->error);
    l->done = true;
}

static void lookup(Env *e, VddSessions *s, pid_t pid, GCancellable *c, Lookup *l)
{
    memset(l, 0, sizeof(*l));
    l->s = s;
    vdd_sessions_lookup_pid_async(s, pid, c, on_lookup, l);
}

static void lookup_clear(Lookup *l)
{
    vdd_session_info_free(l->info);
    g_clear_error(&l->error);
    memset(l, 0, sizeof(*l));
}

/* ---- tests ---- */

/* -X: no information, lookups not supported. */
static void test_none(void **state)
{
    Env *e = *state;
    VddSessions *s = vdd_sessions_new_none();
    assert_false(vdd_sessions_enabled(s));
    assert_true(vdd_sessions_ready(s));
    assert_null(vdd_sessions_active(s));
    Lookup l;
    lookup(e, s, getpid(), NULL, &l);
    WAIT_FOR(e, l.done);
    assert_null(l.info);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED));
    lookup_clear(&l);
    vdd_sessions_free(s);
    vdd_sessions_free(NULL);
}

/* Boot: the seat has no active session. Ready, nothing active, one info
 * line and no polling; then a session appears and becomes active. */
static void test_no_active_then_active(void **state)
{
    Env *e = *state;
    env_start(e);
    add_seat(e, "seat0");
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    assert_false(vdd_sessions_ready(w.s));
    WAIT_FOR(e, vdd_sessions_ready(w.s));
    assert_int_equal(w.changed, 1);
    assert_null(vdd_sessions_active(w.s));
    pump(e, 300);
    assert_int_equal(w.changed, 1);
    assert_int_equal(logs.warnings, 0);
    assert_int_equal(logs_count("no active session"), 1);

    add_session(e, "2", 1000, "alice", true);
    WAIT_FOR(e, active_is(&w, "2"));
    assert_int_equal(w.changed, 2);
    const VddSessionInfo *a = vdd_sessions_active(w.s);
    assert_int_equal(a->uid, 1000);
    assert_false(a->greeter);
    assert_false(a->locked);
    assert_true(a->active);
    assert_int_equal(logs.warnings, 0);
    assert_int_equal(logs_count("no active session"), 1);
    vdd_sessions_free(w.s);
}

/* A greeter session with a non-numeric id ("c1"): its object path is
 * whatever logind says; class changes and its Lock signal are seen. */
static void test_greeter_c1(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "c1", 115, "gdm", true);
    set_prop(e, SESSION_PATH("c1"), SESSION_IFACE, "Class", g_variant_new_string("greeter"));
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, vdd_sessions_ready(w.s) && vdd_sessions_active(w.s));
    assert_int_equal(w.changed, 1);
    const VddSessionInfo *a = vdd_sessions_active(w.s);
    assert_string_equal(a->id, "c1");
    assert_int_equal(a->uid, 115);
    assert_true(a->greeter);
    assert_false(a->locked);

    set_prop(e, SESSION_PATH("c1"), SESSION_IFACE, "Class", g_variant_new_string("user"));
    WAIT_FOR(e, w.changed == 2);
    assert_false(vdd_sessions_active(w.s)->greeter);

    mock_call(e, SESSION_PATH("c1"), SESSION_IFACE, "Lock", NULL);
    WAIT_FOR(e, active_locked(&w));
    assert_int_equal(w.changed, 3);
    assert_int_equal(logs.warnings, 0);
    vdd_sessions_free(w.s);
}

/* Real logind escapes a leading digit: session "2" lives at .../_32. The
 * module must use the path it is given. */
static void test_escaped_path(void **state)
{
    Env *e = *state;
    env_start(e);
    add_seat(e, "seat0");
    const char *path = SESSION_PATH("_32");
    add_session_object(e, path, "2",
                       g_variant_new("(uo)", 1000, "/org/freedesktop/login1/user/_31000"),
                       "user");
    set_active(e, "2", path);
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, active_is(&w, "2"));
    assert_int_equal(vdd_sessions_active(w.s)->uid, 1000);
    emit_session_signal(e, path, "Lock");
    WAIT_FOR(e, active_locked(&w));
    emit_session_signal(e, path, "Unlock");
    WAIT_FOR(e, !active_locked(&w));
    assert_int_equal(w.changed, 3);
    vdd_sessions_free(w.s);
}

/* LockedHint through PropertiesChanged. */
static void test_locked_hint(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "2", 1000, "alice", true);
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, active_is(&w, "2"));
    assert_false(active_locked(&w));

    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", TRUE));
    WAIT_FOR(e, active_locked(&w));
    assert_int_equal(w.changed, 2);
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", FALSE));
    WAIT_FOR(e, !active_locked(&w));
    assert_int_equal(w.changed, 3);

    /* Already locked when first read. */
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", TRUE));
    Watch w2 = { 0 };
    start_module(e, &w2, e->conn);
    WAIT_FOR(e, active_is(&w2, "2"));
    assert_true(active_locked(&w2));
    assert_int_equal(w2.changed, 1);
    vdd_sessions_free(w2.s);
    vdd_sessions_free(w.s);
}

/* Lock/Unlock signals, and how they combine with LockedHint. */
static void test_lock_signals(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "2", 1000, "alice", true);
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, active_is(&w, "2"));

    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Lock", NULL);
    WAIT_FOR(e, active_locked(&w));
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Unlock", NULL);
    WAIT_FOR(e, !active_locked(&w));
    assert_int_equal(w.changed, 3);

    /* Locked by hint: an Unlock signal alone does not unlock (OR). */
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", TRUE));
    WAIT_FOR(e, active_locked(&w));
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Unlock", NULL);
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Lock", NULL);
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Unlock", NULL);
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", FALSE));
    WAIT_FOR(e, !active_locked(&w));
    assert_int_equal(w.changed, 5);

    /* A Lock signal, then the locker sets and clears LockedHint by itself:
     * the falling hint ends the latched signal too. */
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Lock", NULL);
    WAIT_FOR(e, active_locked(&w));
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", TRUE));
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", FALSE));
    WAIT_FOR(e, !active_locked(&w));
    assert_int_equal(w.changed, 7);
    assert_int_equal(logs.warnings, 0);
    vdd_sessions_free(w.s);
}

/* Switching between two sessions; an inactive session's signals do not
 * count; back to none. */
static void test_switch(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "2", 1000, "alice", true);
    add_session(e, "3", 1001, "bob", true); /* the mock makes 3 active */
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, active_is(&w, "3"));
    assert_int_equal(vdd_sessions_active(w.s)->uid, 1001);
    assert_int_equal(w.changed, 1);

    set_active(e, "2", SESSION_PATH("2"));
    WAIT_FOR(e, active_is(&w, "2"));
    assert_int_equal(vdd_sessions_active(w.s)->uid, 1000);
    /* One event for 3 leaving, one for 2 read. */
    assert_int_equal(w.changed, 3);

    mock_call(e, SESSION_PATH("3"), SESSION_IFACE, "Lock", NULL);
    mock_call(e, SESSION_PATH("3"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", TRUE));
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Lock", NULL);
    WAIT_FOR(e, active_locked(&w));
    assert_int_equal(w.changed, 4);

    set_active(e, "3", SESSION_PATH("3"));
    WAIT_FOR(e, active_is(&w, "3"));
    assert_true(active_locked(&w)); /* its LockedHint */
    assert_int_equal(w.changed, 6);

    set_active(e, "", "/");
    WAIT_FOR(e, vdd_sessions_active(w.s) == NULL);
    assert_int_equal(w.changed, 7);
    set_active(e, "2", SESSION_PATH("2"));
    WAIT_FOR(e, active_is(&w, "2"));
    assert_false(active_locked(&w)); /* the old Lock signal is forgotten */
    assert_int_equal(logs.warnings, 0);
    vdd_sessions_free(w.s);
}

/* GetSessionByPID: success, unknown pid, invalid pid, cancelled. */
static void test_lookup_pid(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "c1", 115, "gdm", false);
    set_prop(e, SESSION_PATH("c1"), SESSION_IFACE, "Class", g_variant_new_string("greeter"));
    add_session(e, "2", 1000, "alice", true);
    add_get_session_by_pid(e, 0);
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, active_is(&w, "2"));

    Lookup l;
    lookup(e, w.s, 4242, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_null(l.error);
    assert_non_null(l.info);
    assert_string_equal(l.info->id, "c1");
    assert_int_equal(l.info->uid, 115);
    assert_true(l.info->greeter);
    assert_false(l.info->active);
    assert_false(l.info->locked);
    lookup_clear(&l);

    mock_call(e, SESSION_PATH("c1"), SESSION_IFACE, "SetLockedHint", g_variant_new("(b)", TRUE));
    lookup(e, w.s, 4242, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_non_null(l.info);
    assert_true(l.info->locked);
    lookup_clear(&l);

    /* The active session: its Lock signal counts. */
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Lock", NULL);
    WAIT_FOR(e, active_locked(&w));
    lookup(e, w.s, 4343, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_non_null(l.info);
    assert_string_equal(l.info->id, "2");
    assert_int_equal(l.info->uid, 1000);
    assert_true(l.info->active);
    assert_true(l.info->locked);
    assert_false(l.info->greeter);
    lookup_clear(&l);

    lookup(e, w.s, 999, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_null(l.info);
    assert_non_null(l.error);
    assert_non_null(strstr(l.error->message, "does not belong to any known session"));
    lookup_clear(&l);

    lookup(e, w.s, 0, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT));
    lookup_clear(&l);

    GCancellable *c = g_cancellable_new();
    g_cancellable_cancel(c);
    lookup(e, w.s, 4242, c, &l);
    WAIT_FOR(e, l.done);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
    lookup_clear(&l);
    g_object_unref(c);
    vdd_sessions_free(w.s);
}

/* Replies and signals of the wrong type are logged and ignored. */
static void test_malformed(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "2", 1000, "alice", true);
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, active_is(&w, "2"));
    assert_int_equal(logs.warnings, 0);

    /* LockedHint as a string, then a real Lock: only the Lock counts. */
    update_prop(e, SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_string("yes"));
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Lock", NULL);
    WAIT_FOR(e, active_locked(&w));
    assert_int_equal(w.changed, 2);
    assert_int_equal(logs.warnings, 1);
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Unlock", NULL);
    WAIT_FOR(e, !active_locked(&w));

    /* ActiveSession as a string, then a real change. */
    update_prop(e, SEAT0_PATH, SEAT_IFACE, "ActiveSession", g_variant_new_string("3"));
    set_active(e, "", "/");
    WAIT_FOR(e, vdd_sessions_active(w.s) == NULL);
    assert_int_equal(logs.warnings, 2);
    assert_int_equal(w.changed, 4);

    /* A session whose User is a string: not usable, no crash. */
    add_session_object(e, SESSION_PATH("9"), "9", g_variant_new_string("1000"), "user");
    set_active(e, "9", SESSION_PATH("9"));
    WAIT_FOR(e, logs.warnings == 4); /* User's type, then "no valid Id or User" */
    assert_null(vdd_sessions_active(w.s));
    assert_int_equal(w.changed, 4);

    /* A GetSessionByPID that answers a string. */
    add_method(e, LOGIND_PATH, MANAGER_IFACE, "GetSessionByPID", "u", "s",
               "ret = '/org/freedesktop/login1/session/2'");
    Lookup l;
    lookup(e, w.s, 4242, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_null(l.info);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    lookup_clear(&l);
    assert_int_equal(logs.warnings, 5);
    vdd_sessions_free(w.s);

    /* A malformed ActiveSession when first read: ready, nothing active. */
    update_prop(e, SEAT0_PATH, SEAT_IFACE, "ActiveSession", g_variant_new_string("9"));
    Watch w2 = { 0 };
    start_module(e, &w2, e->conn);
    WAIT_FOR(e, vdd_sessions_ready(w2.s));
    assert_null(vdd_sessions_active(w2.s));
    assert_int_equal(w2.changed, 1);
    assert_int_equal(logs.warnings, 6);
    vdd_sessions_free(w2.s);
}

/* Freed with calls in flight, from inside changed(), while connecting. */
static void test_free_in_flight(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "2", 1000, "alice", true);
    add_get_session_by_pid(e, 0.3);

    /* GetSeat in flight. */
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    vdd_sessions_free(w.s);
    pump(e, 100);
    assert_int_equal(w.changed, 0);

    /* A lookup in flight (the mock sleeps 0.3 s). */
    Watch w2 = { 0 };
    start_module(e, &w2, e->conn);
    WAIT_FOR(e, active_is(&w2, "2"));
    Lookup l;
    lookup(e, w2.s, 4343, NULL, &l);
    pump(e, 20);
    vdd_sessions_free(w2.s);
    WAIT_FOR(e, l.done);
    assert_null(l.info);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
    lookup_clear(&l);

    /* Freed by its own changed() handler, with a session read and a lock
     * signal still coming. */
    Watch w3 = { .free_in_changed = true };
    start_module(e, &w3, e->conn);
    WAIT_FOR(e, w3.s == NULL);
    mock_call(e, SESSION_PATH("2"), SESSION_IFACE, "Lock", NULL);
    pump(e, 100);
    assert_int_equal(w3.changed, 1);

    /* Freed while its own bus connection is being opened, with a lookup
     * waiting for it. */
    Watch w4 = { 0 };
    start_module(e, &w4, NULL);
    lookup(e, w4.s, 4242, NULL, &l);
    vdd_sessions_free(w4.s);
    WAIT_FOR(e, l.done);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
    lookup_clear(&l);
    pump(e, 200);
    assert_int_equal(w4.changed, 0);
}

/* NULL bus: the module opens its own connection to DBUS_SYSTEM_BUS_ADDRESS;
 * a lookup made while connecting waits for it. */
static void test_own_connection(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "2", 1000, "alice", true);
    add_get_session_by_pid(e, 0);
    Watch w = { 0 };
    start_module(e, &w, NULL);
    Lookup l;
    lookup(e, w.s, 4343, NULL, &l);
    WAIT_FOR(e, l.done && active_is(&w, "2"));
    assert_non_null(l.info);
    assert_string_equal(l.info->id, "2");
    lookup_clear(&l);
    assert_int_equal(logs.warnings, 0);
    vdd_sessions_free(w.s);
    pump(e, 50);
}

/* No bus at all (a container): one warning, ready, nothing active,
 * lookups fail; never a crash. */
static void test_no_bus(void **state)
{
    Env *e = *state;
    /* No dbus-daemon runs: nothing listens at DBUS_SYSTEM_BUS_ADDRESS. */
    Watch w = { 0 };
    start_module(e, &w, NULL);
    Lookup l;
    lookup(e, w.s, 4242, NULL, &l); /* waits for the connection, then fails */
    WAIT_FOR(e, vdd_sessions_ready(w.s) && l.done);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED));
    lookup_clear(&l);
    assert_true(vdd_sessions_enabled(w.s));
    assert_null(vdd_sessions_active(w.s));
    assert_int_equal(w.changed, 1);
    assert_int_equal(logs.warnings, 1);
    assert_int_equal(logs_count("cannot connect to the system bus"), 1);

    lookup(e, w.s, 4242, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_true(g_error_matches(l.error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED));
    lookup_clear(&l);
    pump(e, 200);
    assert_int_equal(logs.warnings, 1);
    vdd_sessions_free(w.s);
}

/* The bus goes away (dbus-daemon killed) with a lookup in flight: a log
 * line, nothing active, lookups fail, no crash. */
static void test_bus_gone(void **state)
{
    Env *e = *state;
    env_start(e);
    add_session(e, "2", 1000, "alice", true);
    add_get_session_by_pid(e, 2.0);
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, active_is(&w, "2"));
    Lookup l;
    lookup(e, w.s, 4343, NULL, &l);
    pump(e, 20);

    stop_process(&e->bus_pid);
    WAIT_FOR(e, vdd_sessions_active(w.s) == NULL && l.done);
    assert_int_equal(w.changed, 2);
    assert_null(l.info);
    assert_non_null(l.error);
    lookup_clear(&l);
    assert_int_equal(logs_count("system bus connection closed"), 1);

    lookup(e, w.s, 4242, NULL, &l);
    WAIT_FOR(e, l.done);
    assert_non_null(l.error);
    lookup_clear(&l);
    pump(e, 100);
    assert_int_equal(logs_count("system bus connection closed"), 1);
    assert_true(vdd_sessions_ready(w.s));
    vdd_sessions_free(w.s);
}

/* logind starts after us: one warning, then its name appearing on the bus
 * starts the reading; no polling while it is absent. */
static void test_logind_late(void **state)
{
    Env *e = *state;
    bus_start(e);
    e->conn = connect_bus(e, true);
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, vdd_sessions_ready(w.s));
    assert_null(vdd_sessions_active(w.s));
    assert_int_equal(logs.warnings, 1);
    assert_int_equal(logs_count("logind is not on the system bus"), 1);
    pump(e, 1500);
    assert_int_equal(logs.warnings, 1);
    assert_int_equal(w.changed, 1);

    mock_start(e);
    add_session(e, "2", 1000, "alice", true);
    WAIT_FOR(e, active_is(&w, "2"));

    /* logind restarts: the last state stays until it reports another. */
    stop_process(&e->mock_pid);
    WAIT_FOR(e, logs_count("logind left the system bus") == 1);
    assert_true(active_is(&w, "2"));
    mock_start(e);
    add_session(e, "3", 1001, "bob", true);
    /* The module may read before the mock has the seat (then it warns
     * and retries a second later), so no warning count here. */
    WAIT_FOR(e, active_is(&w, "3"));
    assert_int_equal(vdd_sessions_active(w.s)->uid, 1001);
    vdd_sessions_free(w.s);
}

/* The seat does not exist yet (logind answers NoSuchSeat): one info line,
 * then SeatNew starts the reading. */
static void test_seat_late(void **state)
{
    Env *e = *state;
    env_start(e);
    add_method(e, LOGIND_PATH, MANAGER_IFACE, "GetSeat", "s", "o",
               "raise dbus.exceptions.DBusException('No seat ' + args[0],"
               " name='org.freedesktop.login1.NoSuchSeat')");
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, vdd_sessions_ready(w.s));
    assert_null(vdd_sessions_active(w.s));
    assert_int_equal(logs.warnings, 0);
    assert_int_equal(logs_count("does not exist yet"), 1);
    pump(e, 1500);
    assert_int_equal(logs_count("does not exist yet"), 1);

    add_session(e, "2", 1000, "alice", true);
    add_method(e, LOGIND_PATH, MANAGER_IFACE, "GetSeat", "s", "o",
               "ret = dbus.ObjectPath('/org/freedesktop/login1/seat/' + args[0])");
    pump(e, 100);
    assert_null(vdd_sessions_active(w.s));
    mock_call(e, LOGIND_PATH, MOCK_IFACE, "EmitSignal",
              g_variant_new("(sss@av)", MANAGER_IFACE, "SeatNew", "so",
                            g_variant_new_parsed("[<'seat0'>, <%o>]", SEAT0_PATH)));
    WAIT_FOR(e, active_is(&w, "2"));
    assert_int_equal(logs.warnings, 0);
    vdd_sessions_free(w.s);
}

/* A transient failure (here AccessDenied): logged once however often it
 * repeats, retried with a back-off until it works. */
static void test_retry(void **state)
{
    Env *e = *state;
    env_start(e);
    add_method(e, LOGIND_PATH, MANAGER_IFACE, "GetSeat", "s", "o",
               "raise dbus.exceptions.DBusException('not now',"
               " name='org.freedesktop.DBus.Error.AccessDenied')");
    Watch w = { 0 };
    start_module(e, &w, e->conn);
    WAIT_FOR(e, vdd_sessions_ready(w.s));
    assert_int_equal(w.changed, 1);
    assert_int_equal(logs_count("will retry"), 1);
    pump(e, 1300); /* the first retry (after 1 s) fails the same way */
    assert_int_equal(logs_count("will retry"), 1);
    assert_int_equal(logs.warnings, 1);

    add_session(e, "2", 1000, "alice", true);
    add_method(e, LOGIND_PATH, MANAGER_IFACE, "GetSeat", "s", "o",
               "ret = dbus.ObjectPath('/org/freedesktop/login1/seat/' + args[0])");
    WAIT_FOR(e, active_is(&w, "2"));
    assert_int_equal(w.changed, 2);
    vdd_sessions_free(w.s);
}

/* ---- main ---- */

int main(void)
{
    verbose = g_getenv("VDD_TEST_VERBOSE") != NULL;
    dbus_daemon_path = vdp_test_find_dbus_daemon();
    if (!dbus_daemon_path) {
        printf("SKIP: test-session needs dbus-daemon (Debian package dbus-daemon)\n");
        return 77;
    }
    if (!vdp_test_have_dbusmock()) {
        printf("SKIP: test-session needs python3-dbusmock for " PYTHON "\n");
        g_free(dbus_daemon_path);
        return 77;
    }
    /* Never talk to a real bus: the system bus is the tests' private one. */
    base_dir = g_dir_make_tmp("vdd-ses-XXXXXX", NULL);
    if (!base_dir) {
        fprintf(stderr, "cannot make a temporary directory\n");
        return 1;
    }
    bus_socket = g_build_filename(base_dir, "bus", NULL);
    bus_addr = g_strdup_printf("unix:path=%s", bus_socket);
    g_setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_addr, TRUE);
    g_setenv("DBUS_SESSION_BUS_ADDRESS", bus_addr, TRUE);
    g_unsetenv("DBUS_STARTER_ADDRESS");
    logs.all = g_string_new(NULL);
    g_log_set_default_handler(log_handler, NULL);
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_ERROR);
    signal(SIGPIPE, SIG_IGN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_none, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_no_active_then_active, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_greeter_c1, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_escaped_path, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_locked_hint, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_lock_signals, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_switch, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_lookup_pid, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_malformed, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_own_connection, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_no_bus, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_bus_gone, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_logind_late, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_seat_late, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_retry, env_setup, env_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    g_string_free(logs.all, TRUE);
    g_unlink(bus_socket);
    g_rmdir(base_dir);
    g_free(bus_addr);
    g_free(bus_socket);
    g_free(base_dir);
    g_free(dbus_daemon_path);
    return rc;
}
