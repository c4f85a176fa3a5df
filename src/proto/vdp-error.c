/* vdp-error.c - result names and error text. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "vdp-error.h"

const char *vdp_result_name(VdpResult r)
{
    switch (r) {
    case VDP_OK: return "ok";
    case VDP_ERR_TRUNCATED: return "truncated";
    case VDP_ERR_TRAILING: return "trailing bytes";
    case VDP_ERR_OVERFLOW: return "count overflows the data";
    case VDP_ERR_RANGE: return "value out of range";
    case VDP_ERR_TOO_LARGE: return "too large";
    case VDP_ERR_UNTERMINATED: return "not NUL-terminated";
    case VDP_ERR_UNKNOWN_TYPE: return "unknown type";
    case VDP_ERR_WRONG_PORT: return "wrong chunk port";
    case VDP_ERR_WRONG_DIRECTION: return "wrong direction";
    case VDP_ERR_PROTOCOL: return "protocol mismatch";
    case VDP_ERR_FRAMING: return "framing error";
    case VDP_ERR_NOMEM: return "out of memory";
    case VDP_ERR_BUFFER: return "buffer too small";
    case VDP_ERR_BUSY: return "queue full";
    case VDP_ERR_IO: return "I/O error";
    case VDP_ERR_CLOSED: return "closed";
    }
    return "unknown error";
}

VdpResult vdp_error_set(VdpError *err, VdpResult code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
    }
    return code;
}
