/* vdp-xserver.h - start and stop a throwaway X server (Xvfb or Xorg) for a
 * test program: the server picks a free display itself (-displayfd) and
 * says so once it accepts connections, so there is no race with other
 * servers; it dies with the test (PR_SET_PDEATHSIG). Header only. */
#ifndef VDP_XSERVER_H
#define VDP_XSERVER_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

/* Arguments a caller may pass, besides -displayfd N which is added. */
#define VDP_XSERVER_MAX_ARGS 32

typedef struct VdpXServer {
    pid_t pid;          /* -1: not running */
    char name[32];      /* ":N" */
} VdpXServer;

/* argv: the server and its options (NULL-terminated, without -displayfd).
 * Its output goes to out_path, or /dev/null when NULL. Waits at most
 * timeout_ms for the display number. */
static inline bool vdp_xserver_start(VdpXServer *s, const char *const *argv, const char *out_path,
                                     int timeout_ms)
{
    s->pid = -1;
    s->name[0] = '\0';
    const char *args[VDP_XSERVER_MAX_ARGS + 3];
    unsigned n = 0;
    while (argv[n] && n < VDP_XSERVER_MAX_ARGS) {
        args[n] = argv[n];
        n++;
    }
    if (argv[n])
        return false;
    int p[2];
    if (pipe(p) != 0)
        return false;
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", p[1]);
    args[n++] = "-displayfd";
    args[n++] = fdarg;
    args[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);   /* never outlive a crashed test */
        setpgid(0, 0);                      /* nor get the terminal's signals */
        close(p[0]);
        int in = open("/dev/null", O_RDONLY);
        int out = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600)
                           : open("/dev/null", O_WRONLY);
        if (in >= 0)
            dup2(in, 0);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        execvp(args[0], (char **)args);
        _exit(127);
    }
    s->pid = pid;
    close(p[1]);
    char buf[16] = {0};
    size_t got = 0;
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    while (got < sizeof buf - 1 && !strchr(buf, '\n')) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int left = (int)((deadline - g_get_monotonic_time()) / 1000);
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            break;
        ssize_t r = read(p[0], buf + got, sizeof buf - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(p[0]);
    if (!strchr(buf, '\n') || atoi(buf) < 0)
        return false;   /* s->pid stays set: the caller stops it */
    snprintf(s->name, sizeof s->name, ":%d", atoi(buf));
    return true;
}

/* SIGTERM, up to 5 s of grace, then SIGKILL. */
static inline void vdp_xserver_stop(VdpXServer *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = -1;
            return;
        }
        g_usleep(50000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = -1;
}

#endif /* VDP_XSERVER_H */
