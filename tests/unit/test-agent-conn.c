/* test-agent-conn.c - the agent's daemon connection (va-conn) against a
 * scripted daemon on a real UNIX socket: connecting late, every REJECT
 * reason (only VERSION is final), a handshake answered with garbage, the daemon going away and
 * coming back, frames after WELCOME and a frame callback that drops the
 * connection. (The real daemon binary is exercised by
 * tests/integration/test-agent-lifecycle.sh.) */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib-unix.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "va-conn.h"
#include "vdp-ipc-msg.h"
#include "vdp-unix.h"

#define WAIT_MS 20000u

typedef enum Answer { ANS_WELCOME, ANS_REJECT, ANS_GARBAGE, ANS_CLOSE } Answer;

typedef struct Peer {
    struct Daemon *d;
    VdpIpcConn *conn;
    bool hello;
    char name[VDP_IPC_NAME_MAX];
} Peer;

typedef struct Daemon {
    char *path;
    int lfd;
    guint watch;
    Answer answer;
    uint32_t reject_reason;
    unsigned accepted, hellos;
    GPtrArray *peers;
} Daemon;

typedef struct Agent {
    VaConn *c;
    unsigned connected, disconnected, frames, fatal;
    int fatal_status;
    bool drop_next;              /* frame callback returns false once */
    VdpIpcConn *conn;
} Agent;

static gboolean tick(gpointer data)
{
    return G_SOURCE_CONTINUE;
}

/* Waits on the context, woken at least every 50 ms so the deadline holds
 * even when nothing else happens (a connection that gave up). */
static bool wait_cond(bool (*cond)(void *), void *data, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    guint t = g_timeout_add(50, tick, NULL);
    bool ok = true;
    while (!cond(data)) {
        if (g_get_monotonic_time() > end) {
            ok = false;
            break;
        }
        g_main_context_iteration(NULL, TRUE);
    }
    g_source_remove(t);
    return ok;
}

static void spin(unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    while (g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
}

/* ---- the scripted daemon ---- */

static void peer_free(gpointer p)
{
    Peer *peer = p;
    if (peer->conn)
        vdp_ipc_conn_free(peer->conn);
    g_free(peer);
}

static bool peer_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    Peer *p = user;
    Daemon *d = p->d;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (hdr->type != VDP_IPC_HELLO || p->hello)
        return true;
    VdpIpcHello h;
    assert_int_equal(vdp_ipc_hello_decode(payload, hdr->size, &h, NULL), VDP_OK);
    assert_int_equal(h.role, VDP_IPC_ROLE_AGENT);
    g_strlcpy(p->name, h.name, sizeof(p->name));
    p->hello = true;
    d->hellos++;
    uint8_t buf[512];
    size_t n;
    switch (d->answer) {
    case ANS_WELCOME: {
        VdpIpcHello w;
        vdp_ipc_hello_init(&w, 0, "test-daemon");
        n = vdp_ipc_hello_encode(&w, buf, sizeof(buf));
        vdp_ipc_conn_send(p->conn, VDP_IPC_WELCOME, 0, buf, n, NULL, 0);
        break;
    }
    case ANS_REJECT: {
        VdpIpcReject r = {.reason = d->reject_reason};
        g_strlcpy(r.text, "scripted refusal", sizeof(r.text));
        n = vdp_ipc_reject_encode(&r, buf, sizeof(buf));
        vdp_ipc_conn_send(p->conn, VDP_IPC_REJECT, 0, buf, n, NULL, 0);
        break;
    }
    case ANS_GARBAGE:
        /* A PONG instead of WELCOME. */
        vdp_ipc_conn_send(p->conn, VDP_IPC_PONG, 0, NULL, 0, NULL, 0);
        break;
    case ANS_CLOSE:
        vdp_ipc_conn_free(p->conn);
        p->conn = NULL;
        return false;
    }
    return true;
}

static void peer_closed(void *user, const char *why)
{
    Peer *p = user;
    vdp_ipc_conn_free(p->conn);
    p->conn = NULL;
}

static const VdpIpcConnCallbacks peer_cb = {.frame = peer_frame, .closed = peer_closed};

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
    Daemon *d = data;
    int c = vdp_unix_accept(fd);
    if (c < 0)
        return G_SOURCE_CONTINUE;
    Peer *p = g_new0(Peer, 1);
    p->d = d;
    p->conn = vdp_ipc_conn_new(NULL, c, NULL, &peer_cb, p);
    g_ptr_array_add(d->peers, p);
    d->accepted++;
    return G_SOURCE_CONTINUE;
}

static void daemon_listen(Daemon *d)
{
    d->lfd = vdp_unix_listen(d->path, 0600, 8);
    assert_true(d->lfd >= 0);
    d->watch = g_unix_fd_add(d->lfd, G_IO_IN, on_accept, d);
}

/* Stop listening and drop every connection (the daemon exits). */
static void daemon_stop(Daemon *d)
{
    if (d->watch)
        g_source_remove(d->watch);
    d->watch = 0;
    if (d->lfd >= 0)
        close(d->lfd);
    d->lfd = -1;
    g_unlink(d->path);
    g_ptr_array_set_size(d->peers, 0);
}

static Daemon *daemon_new(const char *dir)
{
    Daemon *d = g_new0(Daemon, 1);
    d->path = g_build_filename(dir, "sock", NULL);
    d->lfd = -1;
    d->peers = g_ptr_array_new_with_free_func(peer_free);
    return d;
}

static void daemon_free(Daemon *d)
{
    daemon_stop(d);
    g_ptr_array_free(d->peers, TRUE);
    g_free(d->path);
    g_free(d);
}

/* The newest live peer. */
static Peer *daemon_peer(Daemon *d)
{
    for (guint i = d->peers->len; i > 0; i--) {
        Peer *p = g_ptr_array_index(d->peers, i - 1);
        if (p->conn)
            return p;
    }
    return NULL;
}

/* ---- the agent side ---- */

static void a_connected(void *user, VdpIpcConn *conn)
{
    Agent *a = user;
    a->connected++;
    a->conn = conn;
}

static void a_disconnected(void *user)
{
    Agent *a = user;
    a->disconnected++;
    a->conn = NULL;
}

static bool a_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    Agent *a = user;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    a->frames++;
    if (a->drop_next) {
        a->drop_next = false;
        return false;
    }
    return true;
}

static void a_fatal(void *user, int status, const char *why)
{
    Agent *a = user;
    a->fatal++;
    a->fatal_status = status;
}

static const VaConnCallbacks agent_cb = {
    .connected = a_connected, .disconnected = a_disconnected, .frame = a_frame, .fatal = a_fatal};

typedef struct Fix {
    char *dir;
    Daemon *d;
    Agent a;
} Fix;

static int setup(void **state)
{
    Fix *fx = g_new0(Fix, 1);
    fx->dir = g_dir_make_tmp("test-agent-conn-XXXXXX", NULL);
    fx->d = daemon_new(fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    Fix *fx = *state;
    va_conn_free(fx->a.c);
    daemon_free(fx->d);
    g_rmdir(fx->dir);
    g_free(fx->dir);
    g_free(fx);
    return 0;
}

static void agent_start(Fix *fx)
{
    fx->a.c = va_conn_new(NULL, fx->d->path, "spice-vdagent test", &agent_cb, &fx->a);
    assert_non_null(fx->a.c);
}

static bool is_connected(void *data)
{
    return ((Fix *)data)->a.connected > 0 && ((Fix *)data)->a.conn != NULL;
}

static bool two_connects(void *data)
{
    return ((Fix *)data)->a.connected >= 2 && ((Fix *)data)->a.conn != NULL;
}

static bool is_fatal(void *data)
{
    return ((Fix *)data)->a.fatal > 0;
}

static bool three_hellos(void *data)
{
    return ((Fix *)data)->d->hellos >= 3;
}

static bool got_frame(void *data)
{
    return ((Fix *)data)->a.frames > 0;
}

static bool disconnected(void *data)
{
    return ((Fix *)data)->a.disconnected > 0;
}

/* Started before the daemon: keeps trying, connects when it comes. */
static void test_late_daemon(void **state)
{
    Fix *fx = *state;
    agent_start(fx);
    spin(1500);
    /* Attempts at 0, 0.25, 0.75 s...: retried (a loaded machine may run
     * the timers late, so only the first retry is required). */
    assert_true(va_conn_attempts(fx->a.c) >= 2);
    assert_int_equal(fx->a.connected, 0);
    assert_null(va_conn_get(fx->a.c));
    fx->d->answer = ANS_WELCOME;
    daemon_listen(fx->d);
    assert_true(wait_cond(is_connected, fx, WAIT_MS));
    assert_ptr_equal(va_conn_get(fx->a.c), fx->a.conn);
    Peer *p = daemon_peer(fx->d);
    assert_non_null(p);
    assert_string_equal(p->name, "spice-vdagent test");
    assert_int_equal(va_conn_attempts(fx->a.c), 0);
}

/* The daemon restarts: disconnected once, connected again. */
static void test_daemon_restart(void **state)
{
    Fix *fx = *state;
    fx->d->answer = ANS_WELCOME;
    daemon_listen(fx->d);
    agent_start(fx);
    assert_true(wait_cond(is_connected, fx, WAIT_MS));
    daemon_stop(fx->d);
    assert_true(wait_cond(disconnected, fx, WAIT_MS));
    assert_null(va_conn_get(fx->a.c));
    spin(300);
    daemon_listen(fx->d);
    assert_true(wait_cond(two_connects, fx, WAIT_MS));
    assert_int_equal(fx->a.disconnected, 1);
    assert_int_equal(fx->a.fatal, 0);
}

/* Frames after WELCOME reach the owner; false from it drops the
 * connection, and a new one follows. */
static void test_frames_and_drop(void **state)
{
    Fix *fx = *state;
    fx->d->answer = ANS_WELCOME;
    daemon_listen(fx->d);
    agent_start(fx);
    assert_true(wait_cond(is_connected, fx, WAIT_MS));
    Peer *p = daemon_peer(fx->d);
    uint8_t buf[4];
    size_t n = vdp_ipc_session_state_encode(VDP_IPC_SESSION_ACTIVE, buf, sizeof(buf));
    vdp_ipc_conn_send(p->conn, VDP_IPC_SESSION_STATE, 0, buf, n, NULL, 0);
    assert_true(wait_cond(got_frame, fx, WAIT_MS));
    fx->a.drop_next = true;
    vdp_ipc_conn_send(p->conn, VDP_IPC_SESSION_STATE, 0, buf, n, NULL, 0);
    assert_true(wait_cond(disconnected, fx, WAIT_MS));
    assert_true(wait_cond(two_connects, fx, WAIT_MS));
    assert_int_equal(fx->d->accepted, 2);
}

/* DUPLICATE: another agent serves the session (a greeter's agent still
 * connected when the user's starts, with the daemon's -X). Not final: asked
 * again at the slow rate, and welcomed once the other agent is gone. */
static void test_reject_duplicate(void **state)
{
    Fix *fx = *state;
    fx->d->answer = ANS_REJECT;
    fx->d->reject_reason = VDP_IPC_REJECT_DUPLICATE;
    daemon_listen(fx->d);
    agent_start(fx);
    gint64 t0 = g_get_monotonic_time();
    assert_true(wait_cond(three_hellos, fx, WAIT_MS));
    gint64 took = g_get_monotonic_time() - t0;
    /* Two waits of VA_CONN_RETRY_MAX_MS between the three attempts. */
    assert_true(took >= 2 * (gint64)VA_CONN_RETRY_MAX_MS * 1000 - 100000);
    assert_int_equal(fx->a.fatal, 0);
    assert_int_equal(fx->a.connected, 0);
    fx->d->answer = ANS_WELCOME;
    assert_true(wait_cond(is_connected, fx, WAIT_MS));
    assert_int_equal(fx->a.fatal, 0);
}

static void test_reject_version(void **state)
{
    Fix *fx = *state;
    fx->d->answer = ANS_REJECT;
    fx->d->reject_reason = VDP_IPC_REJECT_VERSION;
    daemon_listen(fx->d);
    agent_start(fx);
    assert_true(wait_cond(is_fatal, fx, WAIT_MS));
    assert_int_equal(fx->a.fatal_status, 1);
    spin(1000);
    assert_int_equal(fx->d->hellos, 1);
}

/* NOT_AUTHORIZED: asked again at the slow rate, then welcomed. */
static void test_reject_not_authorized(void **state)
{
    Fix *fx = *state;
    fx->d->answer = ANS_REJECT;
    fx->d->reject_reason = VDP_IPC_REJECT_NOT_AUTHORIZED;
    daemon_listen(fx->d);
    agent_start(fx);
    gint64 t0 = g_get_monotonic_time();
    assert_true(wait_cond(three_hellos, fx, WAIT_MS));
    gint64 took = g_get_monotonic_time() - t0;
    /* Two waits of VA_CONN_RETRY_MAX_MS between the three attempts. */
    assert_true(took >= 2 * (gint64)VA_CONN_RETRY_MAX_MS * 1000 - 100000);
    assert_int_equal(fx->a.fatal, 0);
    fx->d->answer = ANS_WELCOME;
    assert_true(wait_cond(is_connected, fx, WAIT_MS));
}

/* Garbage for a WELCOME, or a daemon that hangs up: retried. */
static void test_bad_handshake(void **state)
{
    Fix *fx = *state;
    fx->d->answer = ANS_GARBAGE;
    daemon_listen(fx->d);
    agent_start(fx);
    assert_true(wait_cond(three_hellos, fx, WAIT_MS));
    fx->d->answer = ANS_CLOSE;
    unsigned before = fx->d->hellos;
    gint64 end = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;
    while (fx->d->hellos < before + 2 && g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    assert_true(fx->d->hellos >= before + 2);
    assert_int_equal(fx->a.connected, 0);
    assert_int_equal(fx->a.fatal, 0);
    fx->d->answer = ANS_WELCOME;
    assert_true(wait_cond(is_connected, fx, WAIT_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_late_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_not_authorized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_handshake, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
