/* vdp-dbusmock.h - what the logind tests need before they can run: a
 * dbus-daemon for a private bus and python3-dbusmock for the interpreter
 * that has it (Debian's /usr/bin/python3; a python3 first on PATH may be
 * another one without it). */
#ifndef VDP_DBUSMOCK_H
#define VDP_DBUSMOCK_H

#include <glib.h>
#include <stdbool.h>

#define VDP_TEST_PYTHON "/usr/bin/python3"

/* logind and the dbusmock interfaces the tests talk to; the object paths
 * are the ones the logind template creates. */
#define LOGIND_NAME "org.freedesktop.login1"
#define LOGIND_PATH "/org/freedesktop/login1"
#define MANAGER_IFACE "org.freedesktop.login1.Manager"
#define SEAT_IFACE "org.freedesktop.login1.Seat"
#define SESSION_IFACE "org.freedesktop.login1.Session"
#define MOCK_IFACE "org.freedesktop.DBus.Mock"
#define PROPS_IFACE "org.freedesktop.DBus.Properties"
#define SEAT0_PATH "/org/freedesktop/login1/seat/seat0"
#define SESSION_PATH(id) "/org/freedesktop/login1/session/" id

/* Path of dbus-daemon (PATH, then /usr/bin), newly allocated, or NULL. */
static inline char *vdp_test_find_dbus_daemon(void)
{
    char *path = g_find_program_in_path("dbus-daemon");
    if (!path && g_file_test("/usr/bin/dbus-daemon", G_FILE_TEST_IS_EXECUTABLE))
        path = g_strdup("/usr/bin/dbus-daemon");
    return path;
}

/* Can VDP_TEST_PYTHON import the logind template of dbusmock? */
static inline bool vdp_test_have_dbusmock(void)
{
    char *argv[] = {VDP_TEST_PYTHON, "-c", "import dbusmock.templates.logind", NULL};
    int status = -1;
    if (!g_file_test(VDP_TEST_PYTHON, G_FILE_TEST_IS_EXECUTABLE))
        return false;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                      NULL, NULL, NULL, &status, NULL))
        return false;
    return g_spawn_check_wait_status(status, NULL);
}

#endif /* VDP_DBUSMOCK_H */
