/* vdd-session.c - session tracking through systemd-logind (see vdd-session.h).
 *
 * How the state is followed:
 *  - The seat: Manager.GetSeat(seat) gives the seat's object path (never
 *    built by hand). The seat's PropertiesChanged is subscribed before its
 *    ActiveSession (so) is read with Properties.Get, so no change is lost.
 *  - The active session: ActiveSession gives the session's id and object
 *    path ("" and "/" when there is none). Its PropertiesChanged and its
 *    Lock/Unlock signals are subscribed (by that path, so the bus only sends
 *    us what concerns it), then Properties.GetAll reads Id, User, Class,
 *    Type, LockedHint. When the active session changes, the old
 *    subscriptions go and new ones are made.
 *  - Locked = LockedHint OR the last Lock/Unlock signal (like 0.22.1), with
 *    one fix: LockedHint going from true to false also clears a latched
 *    Lock signal, since a screen locker that unlocks itself only resets
 *    LockedHint, and the session would otherwise stay "locked" forever.
 *  - logind itself: NameOwnerChanged for org.freedesktop.login1 (it may
 *    start after us, or restart) and the Manager's SeatNew (the seat may
 *    appear after us) restart the reading. Nothing is ever polled.
 *
 * Every call is g_dbus_connection_call() with VDD_SESSION_CALL_TIMEOUT_MS
 * and the module's GCancellable; replies are checked with
 * g_variant_is_of_type() and a malformed one is logged and ignored. A reply
 * that belongs to an older read (a generation counter per step) is dropped.
 *
 * Failures: logind absent from the bus or the seat absent: one log line,
 * then wait for the signals above. Other failures (timeouts, access
 * denied): logged once per distinct message, then the seat is read again
 * after a back-off (1 s doubling to 60 s). The first outcome, success or
 * failure, makes the module ready and fires changed().
 *
 * The bus: a connection passed by the caller is used as is. With NULL, a
 * private connection to the system bus is opened asynchronously (address
 * from DBUS_SYSTEM_BUS_ADDRESS or the D-Bus default), so a bus outage can
 * never terminate the process, as the shared g_bus_get() singleton would.
 * When the bus cannot be reached or the connection closes: one warning,
 * no session is active from then on (fail closed), the module stays
 * enabled and ready, lookups fail with G_IO_ERROR_NOT_CONNECTED. There is
 * no reconnection: on a systemd machine the system bus does not restart.
 *
 * Lifetime: the struct is reference counted. The owner holds one
 * reference; every call in flight and every signal subscription holds
 * another. vdd_sessions_free() cancels, unsubscribes and releases all
 * state at once and marks the struct dead; the callbacks that still arrive
 * (with G_IO_ERROR_CANCELLED) see that and only drop their reference. So
 * freeing with calls in flight, or from inside changed(), is safe.
 *
 * Threads: everything runs on the GMainContext given at creation (calls
 * and subscriptions are made with it pushed as the thread-default
 * context). The API must be used from the thread that runs that context.
 */
#include "config.h"

#define G_LOG_DOMAIN "vdd-session"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vdd-session.h"

/* Longest any single logind call may take. logind answers in
 * microseconds; 5 s covers a machine under heavy load at boot, and is far
 * from libdbus's 25 s that 0.22.1 blocked the daemon for. */
#define VDD_SESSION_CALL_TIMEOUT_MS 5000
/* Back-off between re-reads of the seat after a transient failure. */
#define VDD_SESSION_RETRY_MIN_MS 1000u
#define VDD_SESSION_RETRY_MAX_MS 60000u
/* The D-Bus specification's default system bus address. */
#define VDD_SYSTEM_BUS_DEFAULT "unix:path=/var/run/dbus/system_bus_socket"

#define LOGIND_NAME "org.freedesktop.login1"
#define LOGIND_PATH "/org/freedesktop/login1"
#define LOGIND_MANAGER "org.freedesktop.login1.Manager"
#define LOGIND_SEAT "org.freedesktop.login1.Seat"
#define LOGIND_SESSION "org.freedesktop.login1.Session"
#define LOGIND_ERR_NO_SUCH_SEAT "org.freedesktop.login1.NoSuchSeat"
#define DBUS_NAME "org.freedesktop.DBus"
#define DBUS_PATH "/org/freedesktop/DBus"
#define DBUS_PROPS "org.freedesktop.DBus.Properties"

struct VddSessions {
    gatomicrefcount refs;
    bool logind;           /* false: -X */
    bool dead;             /* the owner freed it; callbacks only drop refs */
    bool ready;
    GMainContext *ctx;
    GDBusConnection *bus;  /* NULL while connecting, after a failure, after free */
    bool own_bus;          /* we opened it: we close it */
    bool connecting;
    bool bus_lost;         /* could not connect, or the connection closed */
    char *seat;
    VddSessionEvents ev;
    void *user;
    GCancellable *cancel;

    gulong closed_id;
    guint sub_owner;       /* NameOwnerChanged for login1 */
    guint sub_seat_new;    /* Manager.SeatNew */
    guint sub_seat_props;  /* the seat's PropertiesChanged */
    guint sub_sess_props;  /* the active session's PropertiesChanged */
    guint sub_sess_lock;   /* the active session's Lock and Unlock */

    guint seat_gen;        /* bumped per seat read: older replies are stale */
    char *seat_path;

    guint session_gen;     /* bumped per active session: older replies are stale */
    char *active_path;     /* from ActiveSession; NULL: none */
    char *active_id;       /* its id from ActiveSession */
    bool session_reading;  /* GetAll of the active session in flight */
    VddSessionInfo *active;/* NULL until read (and when none) */
    bool locked_hint;
    bool lock_signal;

    GSource *retry;
    unsigned retry_ms;
    char *last_problem;    /* the last failure logged, to log each once */
    bool said_no_session;  /* "no active session" said for this spell */

    GQueue waiting;        /* Lookups waiting for the bus connection */
};

/* ---- reference counting and small helpers ---- */

static VddSessions *ses_ref(VddSessions *s)
{
    g_atomic_ref_count_inc(&s->refs);
    return s;
}

static void ses_unref(VddSessions *s)
{
    if (!g_atomic_ref_count_dec(&s->refs))
        return;
    /* Everything else went in vdd_sessions_free(). */
    g_free(s->seat);
    g_free(s->last_problem);
    g_clear_object(&s->cancel);
    if (s->ctx)
        g_main_context_unref(s->ctx);
    g_free(s);
}

void vdd_session_info_free(VddSessionInfo *info)
{
    if (!info)
        return;
    g_free(info->id);
    g_free(info);
}

static void emit_changed(VddSessions *s)
{
    if (!s->dead && s->ev.changed)
        s->ev.changed(s->user);
}

/* Becomes ready (once); fires changed() if that or `changed` is news. */
static void settle(VddSessions *s, bool changed)
{
    if (!s->ready) {
        s->ready = true;
        changed = true;
    }
    if (changed)
        emit_changed(s);
}

/* Logs a failure unless it is the same as the last one logged. */
static void problem(VddSessions *s, GLogLevelFlags level, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void problem(VddSessions *s, GLogLevelFlags level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (g_strcmp0(msg, s->last_problem) != 0)
        g_log(G_LOG_DOMAIN, level, "%s", msg);
    g_free(s->last_problem);
    s->last_problem = msg;
}

static void problem_solved(VddSessions *s)
{
    g_clear_pointer(&s->last_problem, g_free);
    s->retry_ms = 0;
}

static bool is_cancelled(const GError *e)
{
    return g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* A reply or signal argument of the wrong type: logged and ignored. */
static bool check_type(GVariant *v, const char *type, const char *what)
{
    if (v && g_variant_is_of_type(v, G_VARIANT_TYPE(type)))
        return true;
    g_warning("logind: %s has type %s instead of %s; ignored", what,
              v ? g_variant_get_type_string(v) : "(none)", type);
    return false;
}

/* ---- calls ---- */

typedef struct Call {
    VddSessions *s;
    guint gen;
} Call;

static Call *call_new(VddSessions *s, guint gen)
{
    Call *c = g_new0(Call, 1);
    c->s = ses_ref(s);
    c->gen = gen;
    return c;
}

static void call_free(Call *c)
{
    ses_unref(c->s);
    g_free(c);
}

/* Sends a method call to logind; the reply comes on s->ctx. */
static void logind_call(VddSessions *s, GDBusConnection *bus, const char *path, const char *iface,
                        const char *method, GVariant *params, GCancellable *cancel,
                        GAsyncReadyCallback cb, gpointer data)
{
    g_main_context_push_thread_default(s->ctx);
    g_dbus_connection_call(bus, LOGIND_NAME, path, iface, method, params, NULL,
                           G_DBUS_CALL_FLAGS_NONE, VDD_SESSION_CALL_TIMEOUT_MS, cancel, cb, data);
    g_main_context_pop_thread_default(s->ctx);
}

/* A subscription holds a reference; every signal is handled with one
 * more held, so changed() may free the module from inside a handler. */
typedef struct Sub {
    VddSessions *s;
    GDBusSignalCallback fn;
} Sub;

static void sub_free(gpointer data)
{
    Sub *sub = data;
    ses_unref(sub->s);
    g_free(sub);
}

static void on_signal(GDBusConnection *bus, const char *sender, const char *path,
                      const char *iface, const char *member, GVariant *params, gpointer data)
{
    Sub *sub = data;
    VddSessions *s = ses_ref(sub->s);
    GDBusSignalCallback fn = sub->fn;
    if (!s->dead)
        fn(bus, sender, path, iface, member, params, s);
    ses_unref(s);
}

static guint subscribe(VddSessions *s, const char *sender, const char *iface, const char *member,
                       const char *path, const char *arg0, GDBusSignalCallback cb)
{
    Sub *sub = g_new0(Sub, 1);
    sub->s = ses_ref(s);
    sub->fn = cb;
    g_main_context_push_thread_default(s->ctx);
    guint id = g_dbus_connection_signal_subscribe(s->bus, sender, iface, member, path, arg0,
                                                  G_DBUS_SIGNAL_FLAGS_NONE, on_signal, sub,
                                                  sub_free);
    g_main_context_pop_thread_default(s->ctx);
    return id;
}

static void unsubscribe(VddSessions *s, guint *id)
{
    if (*id && s->bus)
        g_dbus_connection_signal_unsubscribe(s->bus, *id);
    *id = 0;
}

/* ---- parsing a session's properties ---- */

typedef struct SessionProps {
    const char *id;
    bool have_uid;
    guint32 uid;
    const char *klass;
    const char *type;
    bool have_locked;
    bool locked;
    bool have_active;
    bool active;
    GVariant *keep[6];     /* the values the strings point into */
    unsigned nkeep;
} SessionProps;

static void session_props_clear(SessionProps *p)
{
    for (unsigned i = 0; i < p->nkeep; i++)
        g_variant_unref(p->keep[i]);
    memset(p, 0, sizeof(*p));
}

/* Reads the properties we use from an a{sv}; a property of the wrong type
 * is logged and skipped. The strings stay valid until
 * session_props_clear(). */
static void parse_session_props(GVariant *dict, SessionProps *p, const char *path)
{
    GVariantIter it;
    const char *key;
    GVariant *val;

    g_variant_iter_init(&it, dict);
    while (g_variant_iter_next(&it, "{&sv}", &key, &val)) {
        const char *want = NULL;
        const char **str = NULL;
        if (strcmp(key, "Id") == 0) {
            want = "s";
            str = &p->id;
        } else if (strcmp(key, "Class") == 0) {
            want = "s";
            str = &p->klass;
        } else if (strcmp(key, "Type") == 0) {
            want = "s";
            str = &p->type;
        } else if (strcmp(key, "User") == 0) {
            want = "(uo)";
        } else if (strcmp(key, "LockedHint") == 0 || strcmp(key, "Active") == 0) {
            want = "b";
        }
        if (!want) {
            /* not one of ours */
        } else if (!g_variant_is_of_type(val, G_VARIANT_TYPE(want))) {
            g_warning("logind: session %s property %s has type %s instead of %s; ignored", path,
                      key, g_variant_get_type_string(val), want);
        } else if (str) {
            if (p->nkeep < G_N_ELEMENTS(p->keep)) { /* else a repeated key: skipped */
                p->keep[p->nkeep++] = g_variant_ref(val);
                *str = g_variant_get_string(val, NULL);
            }
        } else if (strcmp(key, "User") == 0) {
            g_variant_get(val, "(u&o)", &p->uid, NULL);
            p->have_uid = true;
        } else if (strcmp(key, "LockedHint") == 0) {
            p->locked = g_variant_get_boolean(val);
            p->have_locked = true;
        } else {
            p->active = g_variant_get_boolean(val);
            p->have_active = true;
        }
        g_variant_unref(val);
    }
}

/* ---- the active session ---- */

static void seat_read_start(VddSessions *s);
static void session_read_start(VddSessions *s);
static void retry_later(VddSessions *s);

/* Forgets the active session. Returns true if one was known (changed()). */
static bool session_drop(VddSessions *s)
{
    unsubscribe(s, &s->sub_sess_props);
    unsubscribe(s, &s->sub_sess_lock);
    g_clear_pointer(&s->active_path, g_free);
    g_clear_pointer(&s->active_id, g_free);
    s->session_gen++;
    s->session_reading = false;
    s->locked_hint = false;
    s->lock_signal = false;
    if (!s->active)
        return false;
    g_clear_pointer(&s->active, vdd_session_info_free);
    return true;
}

/* Recomputes the lock state of the active session; true if it changed. */
static bool lock_update(VddSessions *s)
{
    if (!s->active)
        return false;
    bool locked = s->locked_hint || s->lock_signal;
    if (locked == s->active->locked)
        return false;
    s->active->locked = locked;
    g_info("session %s %s", s->active->id, locked ? "locked" : "unlocked");
    return true;
}

static void set_locked_hint(VddSessions *s, bool hint)
{
    /* A locker that unlocks by itself only clears LockedHint: that also
     * ends a Lock signal's effect. */
    if (s->locked_hint && !hint)
        s->lock_signal = false;
    s->locked_hint = hint;
}

static bool set_class(VddSessions *s, const char *klass)
{
    bool greeter = strcmp(klass, "greeter") == 0;
    if (!s->active || s->active->greeter == greeter)
        return false;
    s->active->greeter = greeter;
    g_info("session %s class %s", s->active->id, klass);
    return true;
}

static void on_session_props_changed(GDBusConnection *bus, const char *sender, const char *path,
                                     const char *iface, const char *member, GVariant *params,
                                     gpointer data)
{
    VddSessions *s = data;
    if (s->dead || g_strcmp0(path, s->active_path) != 0)
        return;
    if (!check_type(params, "(sa{sv}as)", "session PropertiesChanged"))
        return;

    const char *ifname;
    GVariant *changed_props;
    const char **invalidated;
    g_variant_get(params, "(&s@a{sv}^a&s)", &ifname, &changed_props, &invalidated);
    if (strcmp(ifname, LOGIND_SESSION) == 0) {
        SessionProps p = { 0 };
        parse_session_props(changed_props, &p, path);
        bool changed = false;
        if (p.have_locked) {
            set_locked_hint(s, p.locked);
            changed |= lock_update(s);
        }
        if (p.klass)
            changed |= set_class(s, p.klass);
        bool reread = false;
        for (size_t i = 0; invalidated[i]; i++)
            reread |= strcmp(invalidated[i], "LockedHint") == 0 ||
                      strcmp(invalidated[i], "Class") == 0;
        if (changed)
            emit_changed(s);
        session_props_clear(&p);
        if (reread && !s->dead && g_strcmp0(path, s->active_path) == 0)
            session_read_start(s);
    }
    g_variant_unref(changed_props);
    g_free(invalidated);
}

static void on_session_lock(GDBusConnection *bus, const char *sender, const char *path,
                            const char *iface, const char *member, GVariant *params, gpointer data)
{
    VddSessions *s = data;
    if (s->dead || g_strcmp0(path, s->active_path) != 0)
        return;
    if (strcmp(member, "Lock") == 0)
        s->lock_signal = true;
    else if (strcmp(member, "Unlock") == 0)
        s->lock_signal = false;
    else
        return;
    g_debug("session %s: %s signal", s->active_id, member);
    if (lock_update(s))
        emit_changed(s);
}

static void on_session_getall(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *c = data;
    VddSessions *s = c->s;
    GError *err = NULL;
    GVariant *reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &err);

    if (s->dead || c->gen != s->session_gen || is_cancelled(err))
        goto out;
    s->session_reading = false;
    if (!reply) {
        if (g_dbus_error_is_remote_error(err))
            g_dbus_error_strip_remote_error(err);
        problem(s, G_LOG_LEVEL_WARNING, "logind: reading session %s failed: %s", s->active_id,
                err->message);
        /* The seat is read again later, and the session with it. */
        retry_later(s);
        settle(s, false);
        goto out;
    }
    if (!check_type(reply, "(a{sv})", "the session properties reply")) {
        settle(s, false);
        goto out;
    }

    GVariant *dict = g_variant_get_child_value(reply, 0);
    SessionProps p = { 0 };
    parse_session_props(dict, &p, s->active_path);
    const char *id = p.id ? p.id : s->active_id;
    bool changed = false;
    if (!p.have_uid || !id || !*id) {
        g_warning("logind: session %s has no valid Id or User; ignored", s->active_path);
    } else if (!s->active) {
        problem_solved(s);
        if (p.have_locked)
            set_locked_hint(s, p.locked);
        VddSessionInfo *info = g_new0(VddSessionInfo, 1);
        info->id = g_strdup(id);
        info->uid = (uid_t)p.uid;
        info->greeter = p.klass && strcmp(p.klass, "greeter") == 0;
        info->locked = s->locked_hint || s->lock_signal;
        info->active = true;
        s->active = info;
        s->said_no_session = false;
        g_info("active session on %s: %s (uid %u, class %s, type %s%s)", s->seat, info->id,
               (unsigned)info->uid, p.klass ? p.klass : "?", p.type ? p.type : "?",
               info->locked ? ", locked" : "");
        changed = true;
    } else {
        /* A reread after invalidated properties. */
        if (p.have_locked) {
            set_locked_hint(s, p.locked);
            changed |= lock_update(s);
        }
        if (p.klass)
            changed |= set_class(s, p.klass);
    }
    session_props_clear(&p);
    g_variant_unref(dict);
    settle(s, changed);
out:
    if (reply)
        g_variant_unref(reply);
    g_clear_error(&err);
    call_free(c);
}

static void session_read_start(VddSessions *s)
{
    s->session_gen++;
    s->session_reading = true;
    logind_call(s, s->bus, s->active_path, DBUS_PROPS, "GetAll",
                g_variant_new("(s)", LOGIND_SESSION), s->cancel, on_session_getall,
                call_new(s, s->session_gen));
}

/* The seat's ActiveSession is (id, path). */
static void apply_active(VddSessions *s, const char *id, const char *path)
{
    bool none = !*id || strcmp(path, "/") == 0;

    if (!none && g_strcmp0(path, s->active_path) == 0) {
        /* Same session: read it if it is not known yet. */
        if (!s->active && !s->session_reading)
            session_read_start(s);
        else if (!s->session_reading)
            settle(s, false);
        return;
    }
    bool changed = session_drop(s);
    if (none) {
        if (!s->said_no_session)
            g_info("no active session on %s; waiting for logind to report one", s->seat);
        s->said_no_session = true;
        settle(s, changed);
        return;
    }
    s->active_path = g_strdup(path);
    s->active_id = g_strdup(id);
    g_debug("seat %s: active session %s at %s", s->seat, id, path);
    s->sub_sess_props = subscribe(s, LOGIND_NAME, DBUS_PROPS, "PropertiesChanged", path,
                                  LOGIND_SESSION, on_session_props_changed);
    s->sub_sess_lock = subscribe(s, LOGIND_NAME, LOGIND_SESSION, NULL, path, NULL,
                                 on_session_lock);
    session_read_start(s);
    /* The old session's departure is news now; the new one follows when
     * its properties are read. */
    if (changed)
        emit_changed(s);
}

/* ---- the seat ---- */

static gboolean on_retry(gpointer data)
{
    VddSessions *s = data;
    g_clear_pointer(&s->retry, g_source_unref);
    seat_read_start(s);
    return G_SOURCE_REMOVE;
}

static void retry_later(VddSessions *s)
{
    if (s->retry || s->dead || s->bus_lost)
        return;
    s->retry_ms = s->retry_ms ? MIN(s->retry_ms * 2, VDD_SESSION_RETRY_MAX_MS)
                              : VDD_SESSION_RETRY_MIN_MS;
    s->retry = g_timeout_source_new(s->retry_ms);
    g_source_set_callback(s->retry, on_retry, s, NULL);
    g_source_attach(s->retry, s->ctx);
}

static void retry_cancel(VddSessions *s)
{
    if (s->retry) {
        g_source_destroy(s->retry);
        g_clear_pointer(&s->retry, g_source_unref);
    }
}

/* A failed seat step: decides between waiting for a signal and retrying. */
static void seat_failed(VddSessions *s, const char *step, GError *err)
{
    bool absent = g_error_matches(err, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
                  g_error_matches(err, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER);
    char *remote = g_dbus_error_get_remote_error(err);
    bool no_seat = g_strcmp0(remote, LOGIND_ERR_NO_SUCH_SEAT) == 0;
    g_free(remote);
    if (g_dbus_error_is_remote_error(err))
        g_dbus_error_strip_remote_error(err);

    if (absent) {
        problem(s, G_LOG_LEVEL_WARNING,
                "logind is not on the system bus (%s); no session is active until it starts",
                err->message);
    } else if (no_seat) {
        problem(s, G_LOG_LEVEL_INFO, "seat %s does not exist yet; waiting for logind to add it",
                s->seat);
    } else {
        problem(s, G_LOG_LEVEL_WARNING, "logind: %s for seat %s failed: %s; will retry", step,
                s->seat, err->message);
        retry_later(s);
    }
    settle(s, false);
}

/* The reply of a seat step (GetSeat, reading ActiveSession): NULL when it
 * is stale, failed (seat_failed decides what next) or has the wrong type;
 * otherwise the reply, owned by the caller. The caller frees c when done:
 * its reference keeps the module alive while events run. */
static GVariant *seat_reply(GObject *src, GAsyncResult *res, Call *c, const char *step,
                            const char *type)
{
    VddSessions *s = c->s;
    GError *err = NULL;
    GVariant *reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &err);
    bool stale = s->dead || c->gen != s->seat_gen || is_cancelled(err);

    if (!stale && !reply) {
        seat_failed(s, step, err);
    } else if (!stale && !check_type(reply, type, step)) {
        settle(s, false);
        stale = true;
    }
    g_clear_error(&err);
    if (stale && reply)
        g_clear_pointer(&reply, g_variant_unref);
    return reply;
}

static void on_active_get(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *c = data;
    VddSessions *s = c->s;
    GVariant *reply = seat_reply(src, res, c, "reading ActiveSession", "(v)");
    if (!reply) {
        call_free(c);
        return;
    }
    GVariant *v = g_variant_get_child_value(reply, 0);
    GVariant *inner = g_variant_get_variant(v);
    g_variant_unref(v);
    if (check_type(inner, "(so)", "ActiveSession")) {
        problem_solved(s);
        const char *id, *path;
        g_variant_get(inner, "(&s&o)", &id, &path);
        apply_active(s, id, path);
    } else {
        settle(s, false);
    }
    g_variant_unref(inner);
    g_variant_unref(reply);
    call_free(c);
}

static void active_read_start(VddSessions *s)
{
    s->seat_gen++;
    logind_call(s, s->bus, s->seat_path, DBUS_PROPS, "Get",
                g_variant_new("(ss)", LOGIND_SEAT, "ActiveSession"), s->cancel, on_active_get,
                call_new(s, s->seat_gen));
}

static void on_seat_props_changed(GDBusConnection *bus, const char *sender, const char *path,
                                  const char *iface, const char *member, GVariant *params,
                                  gpointer data)
{
    VddSessions *s = data;
    if (s->dead || g_strcmp0(path, s->seat_path) != 0)
        return;
    if (!check_type(params, "(sa{sv}as)", "seat PropertiesChanged"))
        return;

    const char *ifname;
    GVariant *changed_props;
    const char **invalidated;
    g_variant_get(params, "(&s@a{sv}^a&s)", &ifname, &changed_props, &invalidated);
    if (strcmp(ifname, LOGIND_SEAT) == 0) {
        GVariant *v = g_variant_lookup_value(changed_props, "ActiveSession", NULL);
        if (v) {
            if (check_type(v, "(so)", "ActiveSession in PropertiesChanged")) {
                const char *id, *p;
                g_variant_get(v, "(&s&o)", &id, &p);
                s->seat_gen++; /* a Get still in flight is older than this */
                apply_active(s, id, p);
            }
            g_variant_unref(v);
        } else if (g_strv_contains(invalidated, "ActiveSession")) {
            active_read_start(s);
        }
    }
    g_variant_unref(changed_props);
    g_free(invalidated);
}

static void on_get_seat(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *c = data;
    VddSessions *s = c->s;
    GVariant *reply = seat_reply(src, res, c, "GetSeat", "(o)");
    if (!reply) {
        call_free(c);
        return;
    }
    const char *path;
    g_variant_get(reply, "(&o)", &path);
    if (g_strcmp0(path, s->seat_path) != 0) {
        unsubscribe(s, &s->sub_seat_props);
        g_free(s->seat_path);
        s->seat_path = g_strdup(path);
        s->sub_seat_props = subscribe(s, LOGIND_NAME, DBUS_PROPS, "PropertiesChanged", path,
                                      LOGIND_SEAT, on_seat_props_changed);
    }
    active_read_start(s);
    g_variant_unref(reply);
    call_free(c);
}

static void seat_read_start(VddSessions *s)
{
    if (s->dead || !s->bus)
        return;
    retry_cancel(s);
    s->seat_gen++;
    logind_call(s, s->bus, LOGIND_PATH, LOGIND_MANAGER, "GetSeat", g_variant_new("(s)", s->seat),
                s->cancel, on_get_seat, call_new(s, s->seat_gen));
}

static void on_seat_new(GDBusConnection *bus, const char *sender, const char *path,
                        const char *iface, const char *member, GVariant *params, gpointer data)
{
    VddSessions *s = data;
    if (s->dead || !check_type(params, "(so)", "SeatNew"))
        return;
    const char *id;
    g_variant_get(params, "(&s&o)", &id, NULL);
    if (strcmp(id, s->seat) == 0) {
        g_info("seat %s appeared", id);
        seat_read_start(s);
    }
}

static void on_owner_changed(GDBusConnection *bus, const char *sender, const char *path,
                             const char *iface, const char *member, GVariant *params,
                             gpointer data)
{
    VddSessions *s = data;
    if (s->dead || !check_type(params, "(sss)", "NameOwnerChanged"))
        return;
    const char *name, *old_owner, *new_owner;
    g_variant_get(params, "(&s&s&s)", &name, &old_owner, &new_owner);
    if (strcmp(name, LOGIND_NAME) != 0)
        return;
    if (*new_owner) {
        g_info("logind %s on the system bus; reading seat %s", *old_owner ? "restarted" : "appeared",
               s->seat);
        problem_solved(s);
        seat_read_start(s);
        /* The lock state may have moved while logind was away. */
        if (s->active)
            session_read_start(s);
    } else {
        /* Keep the last state: it stays true until logind says otherwise. */
        g_info("logind left the system bus");
    }
}

/* ---- the bus ---- */

static void lookup_start(gpointer lookup, gpointer unused);
static void lookup_fail_later(gpointer lookup, const GError *error);

static void on_bus_closed(GDBusConnection *bus, gboolean remote_vanished, GError *error,
                          gpointer data)
{
    VddSessions *s = data;
    if (s->dead || s->bus_lost)
        return;
    g_warning("system bus connection closed (%s); session tracking stopped, no session is active",
              error ? error->message : "closed locally");
    s->bus_lost = true;
    retry_cancel(s);
    s->seat_gen++;
    ses_ref(s);
    settle(s, session_drop(s));
    ses_unref(s);
}

/* The bus is there: subscribe to logind's presence and read the seat. */
static void bus_start(VddSessions *s)
{
    s->closed_id = g_signal_connect(s->bus, "closed", G_CALLBACK(on_bus_closed), s);
    if (g_dbus_connection_is_closed(s->bus)) {
        on_bus_closed(s->bus, TRUE, NULL, s);
        return;
    }
    s->sub_owner = subscribe(s, DBUS_NAME, DBUS_NAME, "NameOwnerChanged", DBUS_PATH, LOGIND_NAME,
                             on_owner_changed);
    s->sub_seat_new = subscribe(s, LOGIND_NAME, LOGIND_MANAGER, "SeatNew", LOGIND_PATH, NULL,
                                on_seat_new);
    seat_read_start(s);
}

static void on_bus_ready(GObject *src, GAsyncResult *res, gpointer data)
{
    VddSessions *s = data;
    GError *err = NULL;
    GDBusConnection *bus = g_dbus_connection_new_for_address_finish(res, &err);

    if (s->dead) {
        if (bus) {
            g_dbus_connection_close(bus, NULL, NULL, NULL);
            g_object_unref(bus);
        }
        g_clear_error(&err);
        ses_unref(s);
        return;
    }
    s->connecting = false;
    if (!bus) {
        g_warning("cannot connect to the system bus (%s); session tracking is off, no session "
                  "is active (use -X to run without session integration)",
                  err->message);
        s->bus_lost = true;
        GQueue q = s->waiting;
        g_queue_init(&s->waiting);
        GError *e = g_error_new(G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                                "no system bus: %s", err->message);
        for (GList *l = q.head; l; l = l->next)
            lookup_fail_later(l->data, e);
        g_list_free(q.head);
        g_error_free(e);
        g_error_free(err);
        settle(s, false);
        ses_unref(s);
        return;
    }
    s->bus = bus;
    s->own_bus = true;
    bus_start(s);
    GQueue q = s->waiting;
    g_queue_init(&s->waiting);
    g_list_foreach(q.head, lookup_start, NULL);
    g_list_free(q.head);
    ses_unref(s);
}

/* ---- construction ---- */

VddSessions *vdd_sessions_new_logind(GMainContext *ctx, GDBusConnection *bus, const char *seat,
                                     const VddSessionEvents *ev, void *user)
{
    VddSessions *s = g_new0(VddSessions, 1);
    g_atomic_ref_count_init(&s->refs);
    s->logind = true;
    s->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    s->seat = g_strdup(seat && *seat ? seat : "seat0");
    if (ev)
        s->ev = *ev;
    s->user = user;
    s->cancel = g_cancellable_new();
    g_queue_init(&s->waiting);

    if (bus) {
        s->bus = g_object_ref(bus);
        bus_start(s);
        return s;
    }
    const char *addr = g_getenv("DBUS_SYSTEM_BUS_ADDRESS");
    if (!addr || !*addr)
        addr = VDD_SYSTEM_BUS_DEFAULT;
    s->connecting = true;
    g_main_context_push_thread_default(s->ctx);
    g_dbus_connection_new_for_address(addr,
                                      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                          G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                      NULL, s->cancel, on_bus_ready, ses_ref(s));
    g_main_context_pop_thread_default(s->ctx);
    return s;
}

VddSessions *vdd_sessions_new_none(void)
{
    VddSessions *s = g_new0(VddSessions, 1);
    g_atomic_ref_count_init(&s->refs);
    s->ready = true;
    g_queue_init(&s->waiting);
    return s;
}

void vdd_sessions_free(VddSessions *s)
{
    if (!s)
        return;
    g_return_if_fail(!s->dead);
    s->dead = true;
    if (s->cancel)
        g_cancellable_cancel(s->cancel);
    retry_cancel(s);
    session_drop(s);
    unsubscribe(s, &s->sub_seat_props);
    unsubscribe(s, &s->sub_seat_new);
    unsubscribe(s, &s->sub_owner);
    g_clear_pointer(&s->seat_path, g_free);

    GQueue q = s->waiting;
    g_queue_init(&s->waiting);
    if (q.head) {
        GError *e = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                        "session tracking was stopped");
        for (GList *l = q.head; l; l = l->next)
            lookup_fail_later(l->data, e);
        g_list_free(q.head);
        g_error_free(e);
    }
    if (s->bus) {
        if (s->closed_id)
            g_signal_handler_disconnect(s->bus, s->closed_id);
        if (s->own_bus)
            g_dbus_connection_close(s->bus, NULL, NULL, NULL);
        g_clear_object(&s->bus);
    }
    ses_unref(s);
}

bool vdd_sessions_enabled(const VddSessions *s)
{
    return s && s->logind;
}

bool vdd_sessions_ready(const VddSessions *s)
{
    return s && s->ready;
}

const VddSessionInfo *vdd_sessions_active(const VddSessions *s)
{
    return s ? s->active : NULL;
}

/* ---- looking up the session of a process ---- */

typedef struct Lookup {
    VddSessions *s;
    GTask *task;             /* owns this Lookup as its task data */
    GCancellable *cancel;    /* cancelled by the caller's or the module's */
    GCancellable *user_cancel;
    gulong user_cancel_id;
    gulong own_cancel_id;
    guint32 pid;
    char *path;
} Lookup;

static void lookup_free(gpointer data)
{
    Lookup *l = data;
    if (l->user_cancel) {
        g_cancellable_disconnect(l->user_cancel, l->user_cancel_id);
        g_object_unref(l->user_cancel);
    }
    if (l->own_cancel_id)
        g_cancellable_disconnect(l->s->cancel, l->own_cancel_id);
    g_clear_object(&l->cancel);
    g_free(l->path);
    ses_unref(l->s);
    g_free(l);
}

static void cancel_other(GCancellable *fired, gpointer other)
{
    g_cancellable_cancel(other);
}

/* Ends a lookup (consumes `error`); the caller's callback may run now. */
static void lookup_done(Lookup *l, VddSessionInfo *info, GError *error)
{
    GTask *task = l->task;
    if (info)
        g_task_return_pointer(task, info, (GDestroyNotify)vdd_session_info_free);
    else
        g_task_return_error(task, error);
    g_object_unref(task); /* frees l */
}

static gboolean lookup_fail_idle(gpointer data)
{
    GTask *task = data;
    GError *e = g_object_steal_data(G_OBJECT(task), "vdd-error");
    g_task_return_error(task, e);
    return G_SOURCE_REMOVE;
}

/* Ends a waiting lookup from the task's own context, a loop iteration
 * later: never inside vdd_sessions_free() or another callback. */
static void lookup_fail_later(gpointer data, const GError *error)
{
    Lookup *l = data;
    GTask *task = l->task;
    g_object_set_data(G_OBJECT(task), "vdd-error", g_error_copy(error));
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, lookup_fail_idle, task, g_object_unref);
    g_source_attach(src, g_task_get_context(task));
    g_source_unref(src);
}

static void on_lookup_props(GObject *src, GAsyncResult *res, gpointer data)
{
    Lookup *l = data;
    GError *err = NULL;
    GVariant *reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &err);

    if (!reply) {
        if (g_dbus_error_is_remote_error(err))
            g_dbus_error_strip_remote_error(err);
        g_prefix_error(&err, "reading session %s: ", l->path);
        lookup_done(l, NULL, err);
        return;
    }
    if (!check_type(reply, "(a{sv})", "the session properties reply")) {
        g_variant_unref(reply);
        lookup_done(l, NULL, g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                         "malformed properties of session %s", l->path));
        return;
    }
    GVariant *dict = g_variant_get_child_value(reply, 0);
    SessionProps p = { 0 };
    parse_session_props(dict, &p, l->path);
    VddSessionInfo *info = NULL;
    GError *e = NULL;
    if (p.id && *p.id && p.have_uid) {
        VddSessions *s = l->s;
        info = g_new0(VddSessionInfo, 1);
        info->id = g_strdup(p.id);
        info->uid = (uid_t)p.uid;
        info->greeter = p.klass && strcmp(p.klass, "greeter") == 0;
        info->active = p.have_active && p.active;
        info->locked = p.have_locked && p.locked;
        /* The active session's Lock signals count too. */
        if (!s->dead && g_strcmp0(l->path, s->active_path) == 0 && s->lock_signal)
            info->locked = true;
    } else {
        e = g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "session %s has no valid Id or User", l->path);
    }
    session_props_clear(&p);
    g_variant_unref(dict);
    g_variant_unref(reply);
    lookup_done(l, info, e);
}

static void on_lookup_pid(GObject *src, GAsyncResult *res, gpointer data)
{
    Lookup *l = data;
    GError *err = NULL;
    GVariant *reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &err);

    if (!reply) {
        if (g_dbus_error_is_remote_error(err))
            g_dbus_error_strip_remote_error(err);
        g_prefix_error(&err, "no session for pid %u: ", (unsigned)l->pid);
        lookup_done(l, NULL, err);
        return;
    }
    if (!check_type(reply, "(o)", "the GetSessionByPID reply")) {
        g_variant_unref(reply);
        lookup_done(l, NULL, g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                         "malformed GetSessionByPID reply for pid %u",
                                         (unsigned)l->pid));
        return;
    }
    g_variant_get(reply, "(o)", &l->path);
    g_variant_unref(reply);
    logind_call(l->s, G_DBUS_CONNECTION(src), l->path, DBUS_PROPS, "GetAll",
                g_variant_new("(s)", LOGIND_SESSION), l->cancel, on_lookup_props, l);
}

static void lookup_start(gpointer data, gpointer unused)
{
    Lookup *l = data;
    VddSessions *s = l->s;
    if (!s->bus || s->bus_lost) {
        GError *e = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                                        "no connection to the system bus");
        lookup_fail_later(l, e);
        g_error_free(e);
        return;
    }
    logind_call(s, s->bus, LOGIND_PATH, LOGIND_MANAGER, "GetSessionByPID",
                g_variant_new("(u)", l->pid), l->cancel, on_lookup_pid, l);
}

void vdd_sessions_lookup_pid_async(VddSessions *s, pid_t pid, GCancellable *c,
                                   GAsyncReadyCallback cb, gpointer user)
{
    GTask *task = g_task_new(NULL, c, cb, user);
    g_task_set_source_tag(task, vdd_sessions_lookup_pid_async);

    if (!s || !s->logind || s->dead) {
        g_task_return_new_error(task, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                "session integration is off");
        g_object_unref(task);
        return;
    }
    if (pid <= 0) {
        g_task_return_new_error(task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                "invalid pid %ld", (long)pid);
        g_object_unref(task);
        return;
    }
    Lookup *l = g_new0(Lookup, 1);
    l->s = ses_ref(s);
    l->task = task;
    l->pid = (guint32)pid;
    l->cancel = g_cancellable_new();
    g_task_set_task_data(task, l, lookup_free);
    /* Either cancellable stops the calls. An already cancelled one cancels
     * at once; the call then fails with G_IO_ERROR_CANCELLED. */
    l->own_cancel_id = g_cancellable_connect(s->cancel, G_CALLBACK(cancel_other),
                                             l->cancel, NULL);
    if (c) {
        l->user_cancel = g_object_ref(c);
        l->user_cancel_id = g_cancellable_connect(c, G_CALLBACK(cancel_other), l->cancel, NULL);
    }
    if (s->connecting)
        g_queue_push_tail(&s->waiting, l);
    else
        lookup_start(l, NULL);
}

VddSessionInfo *vdd_sessions_lookup_pid_finish(VddSessions *s, GAsyncResult *res, GError **error)
{
    g_return_val_if_fail(g_task_is_valid(res, NULL), NULL);
    return g_task_propagate_pointer(G_TASK(res), error);
}
