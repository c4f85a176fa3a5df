/* va-x11.h - the session agent's one connection to the X server.
 *
 * Every X11 backend (clipboard, RandR display, XTest mouse) shares this
 * connection: one Display, its fd watched on the agent's GMainContext, every
 * event handed to every registered handler (each picks what is its own),
 * X errors that never abort the process (Xlib's default handler exits), and
 * a trap to check the outcome of a group of requests.
 *
 * Xlib is not thread safe as used here: call it only from the thread that
 * runs the context.
 */
#ifndef VA_X11_H
#define VA_X11_H

#include <stdbool.h>

#include <gio/gio.h>
#include <X11/Xlib.h>

typedef struct VaX11 VaX11;

/* Handlers at most: the agent registers one per module (a handful); a
 * fixed bound lets dispatch copy the list once into a fixed array. */
#define VA_X11_MAX_HANDLERS 16u
/* Events handed out per dispatch at most (fewer if fewer were queued on
 * entry); then the main loop goes round, so that a client flooding us
 * with events cannot starve the other sources. */
#define VA_X11_MAX_EVENTS_PER_DISPATCH 256u
/* Events Xlib may hold queued at most. Reading the connection (Xlib reads
 * all that is available, and every round trip reads all events before its
 * reply) is faster than handling, so a client that floods us with
 * XSendEvent (any client of the session can) would otherwise make the
 * queue, and our memory, grow as long as the flood lasts. Past this many
 * (a desktop never queues more than a few hundred; 65536 queued events
 * take about 13 MB) the whole queue is dropped at once (XSync discarding,
 * O(1)) with a rate-limited log line; the modules' own timeouts cover
 * the answers that were dropped with it. */
#define VA_X11_MAX_QUEUED_EVENTS 65536
/* Error traps nest at most this deep with exact accounting; deeper ones
 * share the innermost level's error (no code here nests more than 2). */
#define VA_X11_MAX_TRAP_DEPTH 8u

/* An event for whoever wants it. A handler may add or remove handlers
 * (itself included) from inside the call: a removed one is not called any
 * more, an added one from the next event on. Events are handed out at
 * most VA_X11_MAX_EVENTS_PER_DISPATCH per main loop iteration; under a
 * flood (VA_X11_MAX_QUEUED_EVENTS) queued events are dropped unseen. */
typedef void (*VaX11EventFunc)(void *user, XEvent *ev);

/* Open the display (NULL: $DISPLAY) and watch it on ctx. Fails with a
 * G_IO_ERROR when the display cannot be opened. */
VaX11 *va_x11_open(GMainContext *ctx, const char *display_name, GError **error);
/* Closes the display. Handlers must have been removed or be harmless. */
void va_x11_free(VaX11 *x);

Display *va_x11_display(VaX11 *x);
Window va_x11_root(VaX11 *x);
/* An InputOnly window of our own (never mapped), for selections, property
 * transfers and server timestamps. Created with PropertyChangeMask. */
Window va_x11_window(VaX11 *x);

/* Past VA_X11_MAX_HANDLERS the handler is refused (a critical log line:
 * a programming error, never caused by input). */
void va_x11_add_handler(VaX11 *x, VaX11EventFunc fn, void *user);
void va_x11_remove_handler(VaX11 *x, VaX11EventFunc fn, void *user);

/* How many times the event queue was dropped for exceeding
 * VA_X11_MAX_QUEUED_EVENTS (a flood), since the connection was opened. */
unsigned long va_x11_flood_drops(VaX11 *x);

/* Called once when the connection to the X server breaks (the server went
 * away: the session is over). After it returns the process exits with
 * status 0, as Xlib does not allow using the display any more. Use it to
 * remove partial files and the like; it must not call Xlib. */
typedef void (*VaX11LostFunc)(void *user);
void va_x11_set_lost_func(VaX11 *x, VaX11LostFunc fn, void *user);

/* Error trap: between push and pop, X errors are recorded instead of
 * logged; pop syncs with the server and returns the first error code
 * recorded (0: none). Only errors of requests made after the push count
 * (an earlier request's error that arrives meanwhile is not the trap's).
 * Traps nest: an error inside an inner trap counts for the outer ones. Outside a trap, errors are logged at
 * debug level (rate-limited) and otherwise ignored. */
void va_x11_trap_push(VaX11 *x);
int va_x11_trap_pop(VaX11 *x);

/* A current server timestamp (for selection ownership): appends zero bytes
 * to a property of our window and waits for the PropertyNotify, at most
 * timeout_ms; other events read meanwhile are queued and dispatched later,
 * never lost. Returns CurrentTime if the server did not answer in time. */
Time va_x11_server_time(VaX11 *x, int timeout_ms);

/* Intern an atom (cached by Xlib). */
Atom va_x11_atom(VaX11 *x, const char *name);

#endif /* VA_X11_H */
