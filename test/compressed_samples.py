"""Compressed test frames built byte by byte: a PNG that is tiny on the wire and huge decoded."""

import struct
import zlib


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC."""
    return struct.pack('>I', len(payload)) + kind + payload + struct.pack(
        '>I', zlib.crc32(kind + payload))


def huge_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit grey PNG of width x height, all black.

    30000 x 30000 is ~110 KB on the wire and 2.7 GB once decoded to BGR.
    """
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    deflate = zlib.compressobj(9)
    idat = b''.join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)  # 1 bit, grey, no interlace
    return (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr) + png_chunk(b'IDAT', idat)
            + png_chunk(b'IEND', b''))
