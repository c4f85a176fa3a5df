/* test-agent-pointer.c - a tiny X client for the agent's end-to-end tests:
 *
 *   test-agent-pointer query        prints "X Y MASK" (XQueryPointer on the
 *                                   default root; MASK = button bits 1..5
 *                                   as 1,2,4,8,16)
 *   test-agent-pointer watch SECS   prints "press N" / "release N" for
 *                                   button events on the root window until
 *                                   SECS have passed; "ready" first, once
 *                                   it listens
 *
 * Exit 0, or 1 when the display cannot be opened. */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <X11/Xlib.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "query") != 0 && strcmp(argv[1], "watch") != 0) ||
        (strcmp(argv[1], "watch") == 0 && argc < 3)) {
        fprintf(stderr, "usage: %s query | watch SECS\n", argv[0]);
        return 2;
    }
    Display *dpy = XOpenDisplay(NULL);
    if (!dpy) {
        fprintf(stderr, "cannot open the display\n");
        return 1;
    }
    Window root = DefaultRootWindow(dpy);
    if (strcmp(argv[1], "query") == 0) {
        Window r, child;
        int rx, ry, wx, wy;
        unsigned mask;
        XQueryPointer(dpy, root, &r, &child, &rx, &ry, &wx, &wy, &mask);
        unsigned buttons = (mask & (Button1Mask | Button2Mask | Button3Mask | Button4Mask | Button5Mask)) >> 8;
        printf("%d %d %u\n", rx, ry, buttons);
        XCloseDisplay(dpy);
        return 0;
    }
    double end = now() + atof(argv[2]);
    XSelectInput(dpy, root, ButtonPressMask | ButtonReleaseMask);
    XSync(dpy, False);
    printf("ready\n");
    fflush(stdout);
    while (now() < end) {
        while (XPending(dpy)) {
            XEvent ev;
            XNextEvent(dpy, &ev);
            if (ev.type == ButtonPress || ev.type == ButtonRelease) {
                printf("%s %u\n", ev.type == ButtonPress ? "press" : "release", ev.xbutton.button);
                fflush(stdout);
            }
        }
        struct pollfd p = {.fd = ConnectionNumber(dpy), .events = POLLIN};
        poll(&p, 1, 100);
    }
    XCloseDisplay(dpy);
    return 0;
}
