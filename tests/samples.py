"""Small images of the four allowed formats whose headers really parse (type, width, height)."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path


def png_bytes(padding: int = 64) -> bytes:
    """A real 1x1 RGB PNG, padded with a text chunk of ``padding`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"tEXt", b"c\x00" + b"x" * max(0, padding))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(padding: int = 64, width: int = 1, height: int = 1) -> bytes:
    """A baseline JPEG's structure: SOI, a JFIF APP0, the frame header (SOF0) of a
    ``width`` x ``height`` greyscale image, a scan of ``padding`` bytes of entropy data, EOI."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0\x00\x0b\x08" + struct.pack(">HH", height, width) + b"\x01\x01\x11\x00"
    sos = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + app0 + sof0 + sos + b"\x00" * padding + b"\xff\xd9"


def gif_bytes(padding: int = 32) -> bytes:
    """A real 1x1 GIF; ``padding`` bytes go into a comment extension before the image."""
    comment = b""
    if padding > 0:
        text = b"x" * padding
        blocks = b"".join(
            bytes([len(text[i : i + 255])]) + text[i : i + 255] for i in range(0, len(text), 255)
        )
        comment = b"\x21\xfe" + blocks + b"\x00"
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00"  # screen descriptor, 2-colour global table
        + b"\x00\x00\x00\xff\xff\xff"
        + comment
        + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # image descriptor
        + b"\x02\x02\x44\x01\x00"  # LZW data
        + b";"
    )


def webp_bytes(padding: int = 40, width: int = 1, height: int = 1) -> bytes:
    """A lossy WebP's structure: RIFF, a VP8 chunk whose key-frame header says ``width`` x
    ``height``, then ``padding`` bytes of frame data."""
    frame = b"\x10\x00\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * padding
    chunk = b"VP8 " + struct.pack("<I", len(frame)) + frame + b"\x00" * (len(frame) % 2)
    body = b"WEBP" + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


SAMPLES = {
    "image/png": png_bytes(),
    "image/jpeg": jpeg_bytes(),
    "image/gif": gif_bytes(),
    "image/webp": webp_bytes(),
}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_samples(directory: Path, stem: str = "photo", padding: int = 0) -> dict[str, Path]:
    """One file per format in ``directory``; ``padding`` adds bytes so sizes differ."""
    made = {}
    for kind, data in SAMPLES.items():
        path = directory / f"{stem}-{EXTENSIONS[kind]}.{EXTENSIONS[kind]}"
        path.write_bytes(data + b"\x00" * padding)
        made[kind] = path
    return made
