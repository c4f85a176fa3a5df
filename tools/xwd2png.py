#!/usr/bin/env python3
"""xwd2png.py IN.xwd OUT.png - convert an `xwd -root` dump (ZPixmap,
24/32 bits per pixel, TrueColor) to PNG with the standard library only."""
import struct
import sys
import zlib


def read_xwd(path):
    data = open(path, "rb").read()
    if len(data) < 100:
        raise ValueError("not an XWD file: %d bytes" % len(data))
    hdr = struct.unpack(">25I", data[:100])
    (header_size, version, fmt, depth, width, height, _xoff, byte_order, _unit,
     _bit_order, _pad, bpp, bpl, _vclass, rmask, gmask, bmask, _bits_rgb,
     _cmap_entries, ncolors) = hdr[:20]
    if version != 7 or fmt != 2:
        raise ValueError("unsupported XWD: version %d, format %d" % (version, fmt))
    if bpp not in (24, 32) or depth < 24:
        raise ValueError("unsupported XWD: %d bits per pixel, depth %d" % (bpp, depth))
    if width == 0 or height == 0 or width > 32767 or height > 32767:
        raise ValueError("unsupported XWD size %dx%d" % (width, height))
    off = header_size + ncolors * 12
    need = off + bpl * height
    if len(data) < need:
        raise ValueError("XWD truncated: %d bytes, %d needed" % (len(data), need))

    def shift(mask):
        s = 0
        while mask and not mask & 1:
            mask >>= 1
            s += 1
        return s

    rs, gs, bs = shift(rmask), shift(gmask), shift(bmask)
    step = bpp // 8
    endian = "little" if byte_order == 0 else "big"
    rows = []
    for y in range(height):
        line = data[off + y * bpl: off + y * bpl + width * step]
        out = bytearray(1 + width * 3)  # filter byte 0, then RGB
        for x in range(width):
            p = int.from_bytes(line[x * step:(x + 1) * step], endian)
            out[1 + x * 3] = (p & rmask) >> rs & 0xFF
            out[2 + x * 3] = (p & gmask) >> gs & 0xFF
            out[3 + x * 3] = (p & bmask) >> bs & 0xFF
        rows.append(bytes(out))
    return width, height, b"".join(rows)


def write_png(path, width, height, raw):
    def chunk(tag, body):
        return (struct.pack(">I", len(body)) + tag + body +
                struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6))
    png += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def main():
    if len(sys.argv) != 3:
        print("usage: xwd2png.py IN.xwd OUT.png", file=sys.stderr)
        return 2
    try:
        w, h, raw = read_xwd(sys.argv[1])
    except (OSError, ValueError) as e:
        print("xwd2png: %s" % e, file=sys.stderr)
        return 1
    write_png(sys.argv[2], w, h, raw)
    print("%dx%d" % (w, h))
    return 0


if __name__ == "__main__":
    sys.exit(main())
