"""Small real images of the four allowed formats, and files that only pretend to be images."""

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


def jpeg_bytes(padding: int = 64) -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00" + b"\x00" * padding + b"\xff\xd9"


def gif_bytes(padding: int = 32) -> bytes:
    return b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * padding + b";"


def webp_bytes(padding: int = 40) -> bytes:
    body = b"WEBPVP8 " + b"\x00" * padding
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
