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
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <gio/gio.h>
#include <glib.h>

#include "daemon-harness.h"
#include "test-agent.h"
#include "vdh-host.h"
#include "vdh-host-priv.h"   /* next_xfer_id, to reuse a transfer id */
#include "vdp-unix.h"

#define WAIT_MS 8000u
#define TEST_TIMEOUT_S 90u
#define PYTHON VDP_TEST_PYTHON
#define SOCKET_ACTIVATE "/usr/bin/systemd-socket-activate"
#define NOBODY 65534u

typedef struct Fixture {
    DaemonHarness h;
} Fixture;

static Fixture *F;

/* ---- the logind mock ---- */

static void add_session(const char *id, unsigned uid)
{
    char user[32];
    snprintf(user, sizeof(user), "user%u", uid);
    dh_add_session(&F->h, id, uid, user);
}

/* ---- the daemon ---- */

static void start_daemon(bool no_sessions, bool one_session)
{
    const char *args[3];
    unsigned n = 0;
    if (no_sessions)
        args[n++] = "-X";
    if (one_session)
        args[n++] = "-o";
    args[n] = NULL;
    DhDaemonOpts o = {.args = args, .handshake_ms = 3000, .out = DH_OUT_LOG};
    dh_start_daemon(&F->h, &o);
}

static bool log_has(const char *needle)
{
    return dh_log_count(&F->h, needle) > 0;
}

/* ---- fixture ---- */

static void setup_dirs(void)
{
    F = g_new0(Fixture, 1);
    dh_setup(&F->h, "test-dsess", WAIT_MS, TEST_TIMEOUT_S);
    /* other uids' agents must reach the socket inside */
    assert_int_equal(chmod(F->h.dir, 0755), 0);
    dh_start_host(&F->h, NULL, 0, NULL, NULL);
}

/* The bus and the mock with seat0, no daemon yet. */
static int setup_bus(void **state)
{
    setup_dirs();
    dh_bus_and_mock_start(&F->h);
    return 0;
}

static int setup_plain(void **state)
{
    setup_dirs();
    return 0;
}

static int teardown(void **state)
{
    DhExit e = dh_finish(&F->h);
    g_clear_pointer(&F, g_free);
    /* a clean exit (SIGTERM, or -o) */
    dh_assert_clean_exit(&e);
    return 0;
}

/* ---- helpers ---- */

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
    if (!vdh_host_set_monitors_sync(F->h.host, cfg, WAIT_MS, &error))
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
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_map_pid(&F->h, getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    /* no port before the layout */
    test_spin(300);
    assert_false(vdh_host_is_connected(F->h.host));
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
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
    dh_set_active(&F->h, "3", SESSION_PATH("3"));
    dh_publish_map(&F->h);
    start_daemon(false, false);
    pid_t pid;
    int fd = dh_kid_connect(&F->h, NOBODY, DH_KID_STAY, NULL, &pid);
    dh_map_pid(&F->h, pid, SESSION_PATH("3"));
    TestAgent *a = dh_agent_on_fd(&F->h, fd);
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    test_agent_free(a);
}

/* ---- 2. CVE-2020-25653 ---- */

/* uid 65534 claims a session owned by uid 1000. */
static void test_other_uid(void **state)
{
    add_session("2", 1000);
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_publish_map(&F->h);
    start_daemon(false, false);
    pid_t pid;
    int fd = dh_kid_connect(&F->h, NOBODY, DH_KID_STAY, NULL, &pid);
    dh_map_pid(&F->h, pid, SESSION_PATH("2"));
    TestAgent *a = dh_agent_on_fd(&F->h, fd);
    assert_rejected(a, VDP_IPC_REJECT_NOT_AUTHORIZED);
    assert_true(log_has("does not own session 2"));
    test_agent_free(a);
    /* the port never opened for it */
    assert_false(vdh_host_is_connected(F->h.host));
}

/* The status tells who is logged in, whether the session is locked and
 * whether a SPICE client is watching: only root may ask for it. */
static void test_status_needs_root(void **state)
{
    start_daemon(true, false);
    pid_t pid;
    int fd = dh_kid_connect(&F->h, NOBODY, DH_KID_STAY, NULL, &pid);
    TestAgent *c = test_agent_new_fd(fd, VDP_IPC_ROLE_CONTROL, "nosy");
    assert_non_null(c);
    assert_true(test_wait(dh_agent_answered, c, WAIT_MS));
    assert_rejected(c, VDP_IPC_REJECT_NOT_AUTHORIZED);
    test_agent_free(c);
    /* root still gets it */
    TestAgent *r = test_agent_connect(F->h.sock_path, VDP_IPC_ROLE_CONTROL, "root");
    assert_non_null(r);
    assert_true(test_wait(dh_agent_answered, r, WAIT_MS));
    assert_true(r->welcomed);
    test_agent_free(r);
}

static void test_no_session(void **state)
{
    add_session("2", 0);
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_publish_map(&F->h);   /* nothing mapped: NoSessionForPID */
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
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
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    F->h.delay = 1.5;
    dh_publish_map(&F->h);
    start_daemon(false, false);
    pid_t pid;
    int fd = dh_kid_connect(&F->h, 0, DH_KID_EXIT, NULL, &pid);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    dh_map_pid(&F->h, pid, SESSION_PATH("2"));
    TestAgent *a = dh_agent_on_fd(&F->h, fd);
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
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_map_pid(&F->h, getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    TestAgent *b = dh_agent_connect(&F->h);
    assert_rejected(b, VDP_IPC_REJECT_DUPLICATE);
    test_agent_free(b);
    /* the first keeps working */
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
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
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_publish_map(&F->h);
    start_daemon(false, false);
    pid_t pa, pb;
    int fa = dh_kid_connect(&F->h, 0, DH_KID_STAY, NULL, &pa);
    int fb = dh_kid_connect(&F->h, 0, DH_KID_STAY, NULL, &pb);
    dh_map_pid(&F->h, pa, SESSION_PATH("2"));
    dh_map_pid(&F->h, pb, SESSION_PATH("3"));
    *a = dh_agent_on_fd(&F->h, fa);
    *b = dh_agent_on_fd(&F->h, fb);
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
    dh_send_layout(b, true);
    test_spin(300);
    assert_false(vdh_host_is_connected(F->h.host));
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
    host_monitors(800);
    assert_true(test_wait(has_monitors, a, WAIT_MS));
    assert_int_equal(b->nmsgs[VD_AGENT_MONITORS_CONFIG], 0);

    /* switch: b becomes active and gets the cached config, and the port
     * stays open throughout: the session module reports the old session's
     * departure before the new one is read, and the daemon must not close
     * the port in between (the SPICE client would see the agent vanish). */
    VdhHostStats st0;
    vdh_host_get_stats(F->h.host, &st0);
    dh_set_active(&F->h, "3", SESSION_PATH("3"));
    assert_true(wait_flags(b, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, 0));
    assert_true(test_wait(has_monitors, b, WAIT_MS));
    assert_int_equal(monitors_width(b), 800);
    assert_true(test_wait(dh_host_connected, &F->h, WAIT_MS));
    VdhHostStats st1;
    vdh_host_get_stats(F->h.host, &st1);
    assert_int_equal(st1.connects, st0.connects);
    assert_false(log_has("closed the agent port"));
    dh_host_ready(&F->h);
    unsigned a_before = a->nmsgs[VD_AGENT_MONITORS_CONFIG];
    host_monitors(1024);
    assert_true(test_wait(two_monitors, b, WAIT_MS));
    assert_int_equal(monitors_width(b), 1024);
    assert_int_equal(a->nmsgs[VD_AGENT_MONITORS_CONFIG], a_before);

    /* the newly active agent goes away: no active agent, port closes */
    test_agent_free(b);
    assert_true(test_wait(dh_host_disconnected, &F->h, WAIT_MS));
    /* back to session 2: its agent's layout reopens the port */
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    assert_true(test_wait(dh_host_connected, &F->h, WAIT_MS));
    dh_host_ready(&F->h);
    assert_int_equal(a->bad_frames, 0);
    test_agent_free(a);
}

/* CVE-2020-25651: an agent that does not own a transfer (here the
 * inactive session's) cannot accept it: its CAN_SEND_DATA is ignored and
 * nobody receives the file's data. */
static bool got_start(void *d)
{
    return ((TestAgent *)d)->nmsgs[VD_AGENT_FILE_XFER_START] > 0;
}

static void test_xfer_owner(void **state)
{
    TestAgent *a, *b;
    two_session_agents(&a, &b);
    dh_send_layout(a, false);
    dh_host_ready(&F->h);

    char *path = g_build_filename(F->h.dir, "secret.bin", NULL);
    char data[4096];
    memset(data, 'x', sizeof(data));
    assert_true(g_file_set_contents(path, data, sizeof(data), NULL));
    const char *paths[] = {path, NULL};
    DhAsync w = {.host = F->h.host};
    vdh_host_send_files_async(F->h.host, paths, NULL, NULL, WAIT_MS, NULL, dh_files_sent, &w);
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
    assert_true(test_wait(dh_async_done, &w, WAIT_MS));
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
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_map_pid(&F->h, getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED, VDP_IPC_SESSION_ACTIVE));
    dh_update_prop(&F->h, SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(TRUE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED,
                           VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED));
    dh_update_prop(&F->h, SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(FALSE));
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED, VDP_IPC_SESSION_ACTIVE));
    test_agent_free(a);
}

/* ---- 6. a greeter session ---- */

static void test_greeter(void **state)
{
    dh_add_greeter(&F->h, "c1", SESSION_PATH("c1"));
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
    test_agent_free(a);
}

/* ---- 6b. file transfers and the session state ---- */

static char *make_file(const char *name, size_t size)
{
    char *path = g_build_filename(F->h.dir, name, NULL);
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
    if (vdh_host_send_files_sync(F->h.host, paths, NULL, NULL, WAIT_MS, &error))
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
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_map_pid(&F->h, getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    a->xfer_accept = true;
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
    assert_true(vdp_caps_has(vdh_host_get_guest_caps(F->h.host), VD_AGENT_CAP_FILE_XFER_DETAILED_ERRORS));
    dh_update_prop(&F->h, SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(TRUE));
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

    dh_update_prop(&F->h, SESSION_PATH("2"), SESSION_IFACE, "LockedHint", g_variant_new_boolean(FALSE));
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
    dh_add_greeter(&F->h, "c1", SESSION_PATH("c1"));
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    assert_true(wait_flags(a, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    a->xfer_accept = true;
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
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
    dh_send_layout(a, false);
    dh_host_ready(&F->h);

    char *path = make_file("switch.bin", 300 * 1024);
    const char *paths[] = {path, NULL};
    DhAsync w = {.host = F->h.host};
    vdh_host_send_files_async(F->h.host, paths, NULL, NULL, WAIT_MS, NULL, dh_files_sent, &w);
    assert_true(test_wait(all_data_in, a, WAIT_MS));
    uint32_t id = last_start_id(a);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_STATUS], 0);
    assert_false(w.done);

    dh_set_active(&F->h, "3", SESSION_PATH("3"));
    assert_true(wait_flags(b, VDP_IPC_SESSION_ACTIVE, VDP_IPC_SESSION_ACTIVE));
    assert_true(test_wait(dh_async_done, &w, WAIT_MS));
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
    dh_set_active(&F->h, "2", SESSION_PATH("2"));
    dh_map_pid(&F->h, getpid(), SESSION_PATH("2"));
    start_daemon(false, false);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    a->xfer_accept = true;
    a->xfer_no_success = true;
    dh_send_layout(a, false);
    dh_host_ready(&F->h);

    char *big = make_file("big.bin", 4u * 1024u * 1024u);
    const char *paths[] = {big, NULL};
    DhAsync w = {.host = F->h.host};
    GCancellable *c = g_cancellable_new();
    vdh_host_send_files_async(F->h.host, paths, NULL, NULL, WAIT_MS, c, dh_files_sent, &w);
    assert_true(test_wait(got_xfer_data, a, WAIT_MS));
    uint32_t id = last_start_id(a);
    assert_int_equal(a->nmsgs[VD_AGENT_FILE_XFER_STATUS], 0);
    g_cancellable_cancel(c);
    assert_true(test_wait(dh_async_done, &w, WAIT_MS));
    assert_false(w.ok);
    assert_true(g_error_matches(w.error, VDH_ERROR, VDH_ERROR_CANCELLED));
    g_clear_error(&w.error);
    g_object_unref(c);
    assert_agent_cancelled(a, id);

    /* the same id again: accepted and completed */
    F->h.host->next_xfer_id = id;
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
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
    /* the agent goes away: the port would close, so the daemon exits */
    test_agent_free(a);
    assert_true(dh_wait_exit(F->h.daemon_pid, &F->h.daemon_status, WAIT_MS));
    F->h.daemon_reaped = true;
    assert_true(WIFEXITED(F->h.daemon_status));
    assert_int_equal(WEXITSTATUS(F->h.daemon_status), 0);
    assert_true(log_has("Exiting after one client session"));
}

/* ---- 8. socket activation ---- */

static void test_socket_activation(void **state)
{
    if (!g_file_test(SOCKET_ACTIVATE, G_FILE_TEST_IS_EXECUTABLE))
        skip();
    char *argv[] = {SOCKET_ACTIVATE, "-l", F->h.sock_path, (char *)dh_daemon_path(), "-x", "-X", "-s",
                    F->h.port_path, "-f", "-u", F->h.fifo_path, NULL};
    F->h.daemon_pid = dh_spawn(&F->h, argv, NULL, DH_OUT_LOG);
    gint64 deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!g_file_test(F->h.sock_path, G_FILE_TEST_EXISTS) && g_get_monotonic_time() < deadline)
        g_usleep(10000);
    TestAgent *a = dh_agent_connect(&F->h);
    assert_true(a->welcomed);
    dh_send_layout(a, false);
    dh_host_ready(&F->h);
    assert_true(log_has("serving on the socket from systemd"));
    test_agent_free(a);
}

static void test_socket_activation_two(void **state)
{
    if (!g_file_test(SOCKET_ACTIVATE, G_FILE_TEST_IS_EXECUTABLE))
        skip();
    char *other = g_build_filename(F->h.dir, "sock2", NULL);
    char *argv[] = {SOCKET_ACTIVATE, "-l", F->h.sock_path, "-l", other, (char *)dh_daemon_path(), "-x", "-X",
                    "-s", F->h.port_path, "-f", "-u", F->h.fifo_path, NULL};
    F->h.daemon_pid = dh_spawn(&F->h, argv, NULL, DH_OUT_LOG);
    gint64 deadline = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (!g_file_test(F->h.sock_path, G_FILE_TEST_EXISTS) && g_get_monotonic_time() < deadline)
        g_usleep(10000);
    /* a connection makes systemd-socket-activate start the daemon */
    int fd = vdp_unix_connect(F->h.sock_path);
    assert_true(dh_wait_exit(F->h.daemon_pid, &F->h.daemon_status, WAIT_MS));
    if (fd >= 0)
        close(fd);
    F->h.daemon_reaped = true;
    assert_true(WIFEXITED(F->h.daemon_status));
    assert_int_equal(WEXITSTATUS(F->h.daemon_status), 1);
    assert_true(log_has("too many sockets"));
    F->h.daemon_status = 0;   /* the exit status was the point */
    g_free(other);
}

int main(void)
{
    /* the daemon and the mock inherit the private bus: never a real bus */
    if (!dh_bus_init("test-dsess-bus"))
        return 1;
    if (!dh_bus_dbus_daemon()) {
        printf("SKIP: test-daemon-sessions needs dbus-daemon\n");
        dh_bus_fini();
        return 77;
    }
    if (!vdp_test_have_dbusmock()) {
        printf("SKIP: test-daemon-sessions needs python3-dbusmock for " PYTHON "\n");
        dh_bus_fini();
        return 77;
    }
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
    dh_bus_fini();
    return rc;
}
