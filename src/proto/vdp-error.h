/* vdp-error.h - result codes and a message buffer for precise diagnostics.
 *
 * Decoders never log; they return a VdpResult and, when given a VdpError,
 * fill it with a sentence that the caller can log as is ("CLIPBOARD_GRAB:
 * 13 bytes of types is not a multiple of 4").
 */
#ifndef VDP_ERROR_H
#define VDP_ERROR_H

#include <stddef.h>

typedef enum VdpResult {
    VDP_OK = 0,
    VDP_ERR_TRUNCATED,      /* shorter than the layout requires */
    VDP_ERR_TRAILING,       /* longer than the layout allows */
    VDP_ERR_OVERFLOW,       /* a count times an element size wraps or exceeds the data */
    VDP_ERR_RANGE,          /* a field outside its known range */
    VDP_ERR_TOO_LARGE,      /* above a named limit */
    VDP_ERR_UNTERMINATED,   /* a string or key file without its NUL */
    VDP_ERR_UNKNOWN_TYPE,   /* message type not known */
    VDP_ERR_WRONG_PORT,     /* message type not allowed on this chunk port */
    VDP_ERR_WRONG_DIRECTION,/* message type never sent by this peer */
    VDP_ERR_PROTOCOL,       /* VDAgentMessage.protocol != VD_AGENT_PROTOCOL, bad magic/version */
    VDP_ERR_FRAMING,        /* chunk/frame header invalid: stream cannot continue */
    VDP_ERR_NOMEM,          /* allocation failed */
    VDP_ERR_BUFFER,         /* caller's output buffer too small */
    VDP_ERR_BUSY,           /* queue full: try again after the ready callback */
    VDP_ERR_IO,             /* a system call failed (errno kept by the caller) */
    VDP_ERR_CLOSED,         /* the connection is closed */
} VdpResult;

#define VDP_ERROR_TEXT_MAX 160

typedef struct VdpError {
    VdpResult code;
    char text[VDP_ERROR_TEXT_MAX];
} VdpError;

/* Short constant name of a result ("truncated", "too large", ...). */
const char *vdp_result_name(VdpResult r);

/* Sets err (if not NULL) and returns code; printf-style text. */
VdpResult vdp_error_set(VdpError *err, VdpResult code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* VDP_ERROR_H */
