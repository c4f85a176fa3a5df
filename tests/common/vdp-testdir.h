/* vdp-testdir.h - remove a test's temporary directory (flat: the tests
 * only put sockets, FIFOs and files directly in it). */
#ifndef VDP_TESTDIR_H
#define VDP_TESTDIR_H

#include <glib.h>
#include <glib/gstdio.h>

static inline void vdp_test_remove_dir(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        char *f = g_build_filename(dir, name, NULL);
        g_unlink(f);
        g_free(f);
    }
    if (d)
        g_dir_close(d);
    g_rmdir(dir);
}

#endif /* VDP_TESTDIR_H */
