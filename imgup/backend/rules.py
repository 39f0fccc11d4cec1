"""The rules of the system, in one place, for both sides: pure functions of the standard library.

The Lambda handlers validate every request with them, and the CLI imports the same module for
its checks before any request (allowed types, size limit, format sniffing), so that a rule has
exactly one implementation. Nothing here does I/O or reads the environment.

Every refusal is a :class:`ValidationError` carrying the HTTP status it deserves and a message
written for a person; the handlers turn it into ``{"error": message}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = [
    "ALLOWED_TYPES",
    "CURSOR_KEYS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "DEFAULT_PAGE_SIZE",
    "EXTENSIONS",
    "GALLERY_PARTITION",
    "MAX_BATCH",
    "MAX_CURSOR_CHARS",
    "MAX_FILE_NAME_CHARS",
    "MAX_KEY_NAME_CHARS",
    "MAX_PAGE_SIZE",
    "MAX_TAGS",
    "MAX_TAG_KEY_CHARS",
    "MAX_TAG_VALUE_CHARS",
    "TAG_KEY_PATTERN",
    "TagChange",
    "parse_tag",
    "parse_tag_filters",
    "validate_tag_change",
    "validate_tag_key",
    "validate_tag_keys",
    "validate_tag_value",
    "validate_tags",
    "MAX_SHARE_SECONDS",
    "SAFE_NAME_PATTERN",
    "SIGNATURES",
    "MAX_JPEG_SEGMENTS",
    "NOT_AN_ALLOWED_IMAGE",
    "PROBE_BYTES",
    "SNIFF_BYTES",
    "TYPE_LABELS",
    "ImageHeader",
    "ListFilter",
    "ListQuery",
    "UploadRequest",
    "ValidationError",
    "decode_cursor",
    "encode_cursor",
    "format_size",
    "format_timestamp",
    "is_image_id",
    "is_timestamp",
    "new_image_id",
    "normalise_type",
    "object_key",
    "glob_literals",
    "parse_limit",
    "parse_glob",
    "parse_list_query",
    "parse_moment",
    "parse_types",
    "probe_image",
    "read_image_header",
    "sanitise_name",
    "sniff_type",
    "validate_file_name",
    "validate_file_size",
    "validate_file_type",
    "validate_sha256",
    "validate_batch",
    "validate_expires_in",
    "validate_image_ids",
    "validate_upload_request",
]

# --- types and sizes ---------------------------------------------------------------------

ALLOWED_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The canonical media types an upload may have. SVG is refused: it is a document that runs scripts."""

_TYPE_ALIASES = {"image/jpg": "image/jpeg"}

TYPE_LABELS: Mapping[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WebP",
}

EXTENSIONS: Mapping[str, str] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}

DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 * 1024

MAX_FILE_NAME_CHARS = 255
"""The longest ``fileName`` accepted, in characters (the common file-system limit)."""

MAX_KEY_NAME_CHARS = 128
"""The longest name segment :func:`sanitise_name` produces, extension included."""

_MAX_EXTENSION_CHARS = 10

SNIFF_BYTES = 12
"""How many leading bytes of a file :func:`sniff_type` needs (WebP: ``RIFF`` size ``WEBP``)."""

# --- listing -----------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
"""The largest page ``GET /images`` serves: what a client that lists everything asks for (1000
images with their presigned URLs are about 2 MB, well inside Lambda's 6 MB answer)."""
GALLERY_PARTITION = "ready"
"""The constant partition value of the sparse ``ReadyByDate`` index (attribute ``galleryPk``)."""

CURSOR_KEYS: frozenset[str] = frozenset({"galleryPk", "imageId", "uploadedAt"})
"""The attributes of a ``ReadyByDate`` LastEvaluatedKey: the table key plus the index key."""

MAX_CURSOR_CHARS = 400


class ValidationError(ValueError):
    """A request or value that the rules refuse.

    ``status`` is the HTTP status to answer with (400, 413, 422...), ``message`` a sentence for a
    person, ``field`` the request field at fault when there is one.
    """

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field

    def __repr__(self) -> str:
        return f"ValidationError({self.message!r}, status={self.status}, field={self.field!r})"


@dataclass(frozen=True)
class UploadRequest:
    """A validated ``POST /upload`` body.

    ``file_type`` is the canonical type (``image/jpg`` becomes ``image/jpeg``); ``content_type``
    is the type exactly as the client declared it, which is the ``Content-Type`` it will send
    with its PUT (the original clients send their own ``fileType``), so it is what gets signed.
    """

    file_name: str
    file_type: str
    file_size: int
    sha256: str | None = None
    content_type: str = ""
    tags: Mapping[str, str] | None = None
    allow_duplicates: bool = False
    """Store these bytes even when a ready image has the same SHA-256 (else that image is the
    answer, and nothing is uploaded)."""

    def __post_init__(self) -> None:
        if not self.content_type:
            object.__setattr__(self, "content_type", self.file_type)

    def to_body(self) -> dict[str, object]:
        """The JSON body of a ``POST /upload`` that validates to this request."""
        body: dict[str, object] = {
            "fileName": self.file_name,
            "fileType": self.content_type,
            "fileSize": self.file_size,
        }
        if self.sha256 is not None:
            body["sha256"] = self.sha256
        if self.tags:
            body["tags"] = dict(self.tags)
        if self.allow_duplicates:
            body["allowDuplicates"] = True
        return body


# --- field rules -------------------------------------------------------------------------

_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


def _is_forbidden_char(ch: str) -> bool:
    return ch in _BIDI_CONTROLS or unicodedata.category(ch) in _FORBIDDEN_CATEGORIES


def normalise_type(declared: object) -> str | None:
    """The canonical allowed type for a declared media type, or None when it is not allowed.

    Case and surrounding blanks are ignored; ``image/jpg`` is taken as ``image/jpeg``.
    """
    if not isinstance(declared, str):
        return None
    lowered = declared.strip().lower()
    lowered = _TYPE_ALIASES.get(lowered, lowered)
    return lowered if lowered in ALLOWED_TYPES else None


def validate_file_type(declared: object) -> str:
    """The canonical type for ``declared``; ValidationError (400) when it is not an allowed image."""
    if not isinstance(declared, str):
        raise ValidationError("fileType must be a string", field="fileType")
    canonical = normalise_type(declared)
    if canonical is None:
        raise ValidationError(
            "Invalid file type. Only image files are allowed (jpeg, jpg, png, gif, webp)",
            field="fileType",
        )
    return canonical


def validate_file_name(name: object) -> str:
    """``name`` itself when it is a usable file name; ValidationError (400) otherwise.

    A file name is a non-blank string of at most 255 characters, with no control, bidi-override
    or line-separator characters and no directory part (``/`` or ``\\``, ``.``, ``..``).
    """
    if not isinstance(name, str):
        raise ValidationError("fileName must be a string", field="fileName")
    if not name.strip():
        raise ValidationError("fileName must not be blank", field="fileName")
    if len(name) > MAX_FILE_NAME_CHARS:
        raise ValidationError(
            f"fileName must be at most {MAX_FILE_NAME_CHARS} characters",
            field="fileName",
        )
    if any(_is_forbidden_char(ch) for ch in name):
        raise ValidationError("fileName must not contain control characters", field="fileName")
    if "/" in name or "\\" in name or name.strip() in {".", ".."}:
        raise ValidationError(
            "fileName must be a file name, not a path (no '/', '\\', '.' or '..')",
            field="fileName",
        )
    return name


def format_size(nbytes: int) -> str:
    """A size for people: ``5 MiB``, ``1.5 MiB``, ``64 KiB``, ``900 bytes`` (binary units)."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if nbytes >= factor:
            value = nbytes / factor
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{nbytes} byte" if nbytes == 1 else f"{nbytes} bytes"


def validate_file_size(size: object, max_bytes: int) -> int:
    """``size`` as an int when it is a whole number of bytes from 1 to ``max_bytes``.

    A bool is not a size; an integral float (``2048.0``) is accepted, a fractional, infinite or
    NaN one is not. Every refusal is a 400, over the limit too: the original API answered a
    declared size over the limit with 400 and its clients branch on it (413 is for what
    completion finds in the stored object, which the original never checked).
    """
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise ValidationError("fileSize must be a whole number of bytes", field="fileSize")
    if isinstance(size, float):
        if not size.is_integer():
            raise ValidationError("fileSize must be a whole number of bytes", field="fileSize")
        size = int(size)
    if size < 1:
        raise ValidationError("fileSize must be at least 1 byte", field="fileSize")
    if size > max_bytes:
        raise ValidationError(
            f"File size exceeds the limit ({format_size(max_bytes)})",
            field="fileSize",
        )
    return size


def validate_sha256(value: object) -> str:
    """A SHA-256 hex digest, lower-cased; ValidationError (400) unless it is 64 hex characters."""
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise ValidationError(
            "sha256 must be 64 hexadecimal characters (the file's SHA-256 digest)",
            field="sha256",
        )
    return value.lower()


def _missing(value: object) -> bool:
    # The original handler tested `!fileName || !fileType`: absent, null and "" are missing.
    return value is None or value == ""


def validate_upload_request(body: object, max_bytes: int) -> UploadRequest:
    """Validate a decoded ``POST /upload`` body against a size limit.

    ``fileName``, ``fileType`` and ``fileSize`` are required; ``sha256``, ``allowDuplicates``
    (a boolean) and ``tags`` (see :func:`validate_tags`) are optional; other fields are
    ignored. Raises ValidationError with the status to answer.
    """
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    if _missing(body.get("fileName")) or _missing(body.get("fileType")):
        raise ValidationError("Missing required fields: fileName and fileType")
    if body.get("fileSize") is None:
        raise ValidationError(
            "Missing required field: fileSize (the file's size in bytes)",
            field="fileSize",
        )
    file_name = validate_file_name(body["fileName"])
    file_type = validate_file_type(body["fileType"])
    file_size = validate_file_size(body["fileSize"], max_bytes)
    raw_sha = body.get("sha256")
    sha256 = None if raw_sha is None else validate_sha256(raw_sha)
    tags = None if body.get("tags") is None else validate_tags(body["tags"])
    allow = body.get("allowDuplicates")
    allow = False if allow is None else allow
    if not isinstance(allow, bool):
        raise ValidationError("allowDuplicates must be true or false", field="allowDuplicates")
    return UploadRequest(
        file_name=file_name,
        file_type=file_type,
        file_size=file_size,
        sha256=sha256,
        content_type=body["fileType"].strip(),
        tags=tags or None,
        allow_duplicates=allow,
    )


# --- batches -----------------------------------------------------------------------------

MAX_BATCH = 100
"""The most files one ``POST /uploads`` presigns, and the most ids one ``POST /uploads/complete``
completes."""


def validate_batch(body: object, field: str) -> list[object]:
    """The list in ``body[field]``: 1 to MAX_BATCH entries; ValidationError (400) otherwise.

    Refusing the whole request is only for its shape; each entry is judged on its own.
    """
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    entries = body.get(field)
    if not isinstance(entries, list):
        raise ValidationError(f"{field} must be a list", field=field)
    if not 1 <= len(entries) <= MAX_BATCH:
        raise ValidationError(
            f"{field} must hold from 1 to {MAX_BATCH} entries, not {len(entries)}", field=field
        )
    return entries


def validate_image_ids(body: object) -> list[str]:
    """The ``imageIds`` of a ``POST /uploads/complete`` body: 1 to MAX_BATCH distinct image ids."""
    ids = validate_batch(body, "imageIds")
    for index, value in enumerate(ids):
        if not is_image_id(value):
            raise ValidationError(
                f"imageIds[{index}] is not an image id (the imageId of an upload)", field="imageIds"
            )
    if len(set(ids)) != len(ids):
        raise ValidationError("imageIds must not repeat an id", field="imageIds")
    return [str(value) for value in ids]


# --- names and keys ----------------------------------------------------------------------

SAFE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
"""What every :func:`sanitise_name` result fully matches."""

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_UNDERSCORES = re.compile(r"_+")
_DOTS = re.compile(r"\.+")
_EXTENSION_RE = re.compile(rf"[A-Za-z0-9]{{1,{_MAX_EXTENSION_CHARS}}}")
_EDGE = "._-"


def sanitise_name(name: str) -> str:
    """A safe S3 key segment made from a file name.

    Keeps the last path component only, folds accents to ASCII, replaces every character
    outside ``A-Z a-z 0-9 . _ -`` with ``_``, collapses runs of dots (so never ``..``), keeps a
    short alphanumeric extension, bounds the length to MAX_KEY_NAME_CHARS, and is never empty
    (``image`` stands in for a name with nothing usable). The result fully matches
    SAFE_NAME_PATTERN, and sanitising it again changes nothing.
    """
    base = re.split(r"[/\\]", str(name))[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    result = _sanitise_ascii(ascii_name)
    for _ in range(3):  # cutting a long name can expose an extension: settle on a fixed point
        again = _sanitise_ascii(result)
        if again == result:
            break
        result = again
    return result


def _sanitise_ascii(name: str) -> str:
    cleaned = _UNSAFE_RUN.sub("_", name)
    cleaned = _DOTS.sub(".", _UNDERSCORES.sub("_", cleaned)).rstrip(_EDGE)
    stem, dot, ext = cleaned.rpartition(".")
    if not dot or not _EXTENSION_RE.fullmatch(ext):
        stem, ext = cleaned, ""
    budget = MAX_KEY_NAME_CHARS - (len(ext) + 1 if ext else 0)
    stem = stem.strip(_EDGE)[:budget].strip(_EDGE) or "image"
    return f"{stem}.{ext}" if ext else stem


def object_key(image_id: str, file_name: str) -> str:
    """The S3 key of an image: ``images/<imageId>/<sanitised name>``."""
    if not is_image_id(image_id):
        raise ValueError("not an image id")
    return f"images/{image_id}/{sanitise_name(file_name)}"


# --- image headers ------------------------------------------------------------------------
#
# One check, used by the server's completion and by the client before it uploads: a file is an
# image of an allowed format only when its header really parses and gives a width and a height.
# probe_image() looks at a file's first bytes and answers with an ImageHeader: the image (type,
# width, height), a refusal (``problem``), or how many leading bytes it needs to decide
# (``needed``). Every decision rests on the bytes given: on a longer prefix of the same file the
# answer is the same, or it was "needed". Hostile bytes (truncated, zero sizes, huge declared
# lengths, endless segments) end in a refusal, never in another exception.

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_GIF_MAGICS = (b"GIF87a", b"GIF89a")
_MAGIC_PREFIXES = (_JPEG_MAGIC, _PNG_SIGNATURE, *_GIF_MAGICS, b"RIFF")

SIGNATURES: Mapping[str, tuple[tuple[tuple[int, bytes], ...], ...]] = {
    "image/jpeg": (((0, _JPEG_MAGIC),),),
    "image/png": (((0, _PNG_SIGNATURE),),),
    "image/gif": tuple(((0, magic),) for magic in _GIF_MAGICS),
    "image/webp": (((0, b"RIFF"), (8, b"WEBP")),),
}
"""The magic bytes of each allowed type, as (offset, bytes) parts that must all match, for
clients that can only look at a file's first bytes (the gallery page): the same claim
:func:`sniff_type` makes, without the header check of :func:`probe_image`."""

PROBE_BYTES = 64 * 1024
"""How many leading bytes to read first for :func:`probe_image`: enough for nearly every image.
A JPEG whose frame header follows large metadata needs more; the probe then says how many."""

MAX_JPEG_SEGMENTS = 4096
"""The most JPEG segments looked at before the frame header (real files have a few dozen)."""

NOT_AN_ALLOWED_IMAGE = "the file is not a JPEG, PNG, GIF or WebP image"

_MAX_PNG_SIDE = 2**31 - 1
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# SOF0-SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_WEBP_CHUNK_MINIMUM = {b"VP8 ": 10, b"VP8L": 5, b"VP8X": 10}


@dataclass(frozen=True)
class ImageHeader:
    """What a file's first bytes say (see :func:`probe_image`).

    - an image: ``file_type`` (canonical media type), ``width`` and ``height`` (pixels, > 0);
    - not an image: ``problem``, a phrase for a person (``file_type`` is the format the file
      claims to be when it starts like one, else None);
    - undecided: ``needed`` > 0, the number of leading bytes to read before asking again
      (``file_type`` is then the format the first bytes announce, if they announce one yet).
    """

    file_type: str | None = None
    width: int = 0
    height: int = 0
    needed: int = 0
    problem: str | None = None

    @property
    def is_image(self) -> bool:
        return self.file_type is not None and self.problem is None and self.needed == 0


def _need(count: int) -> ImageHeader:
    return ImageHeader(needed=count)


def _damaged(file_type: str, detail: str) -> ImageHeader:
    return ImageHeader(
        file_type=file_type, problem=f"the {TYPE_LABELS[file_type]} header is damaged ({detail})"
    )


def _image(file_type: str, width: int, height: int) -> ImageHeader:
    if width < 1 or height < 1:
        return ImageHeader(
            file_type=file_type,
            problem=f"the {TYPE_LABELS[file_type]} image has no pixels ({width}x{height})",
        )
    return ImageHeader(file_type=file_type, width=width, height=height)


def _u16be(data: bytes, at: int) -> int:
    return (data[at] << 8) | data[at + 1]


def _u16le(data: bytes, at: int) -> int:
    return data[at] | (data[at + 1] << 8)


def _u24le(data: bytes, at: int) -> int:
    return data[at] | (data[at + 1] << 8) | (data[at + 2] << 16)


def _u32be(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def _u32le(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _probe_png(data: bytes) -> ImageHeader:
    # signature, then the IHDR chunk: length (13), type, 13 bytes of data, CRC
    if len(data) < 33:
        return _need(33)
    kind = "image/png"
    if _u32be(data, 8) != 13 or data[12:16] != b"IHDR":
        return _damaged(kind, "its first chunk is not a 13-byte IHDR")
    if _u32be(data, 29) != zlib.crc32(data[12:29]):
        return _damaged(kind, "the IHDR checksum is wrong")
    width, height = _u32be(data, 16), _u32be(data, 20)
    depth, colour, compression, filtering, interlace = data[24:29]
    if width > _MAX_PNG_SIDE or height > _MAX_PNG_SIDE:
        return _damaged(kind, "a side is longer than 2^31-1 pixels")
    if depth not in _PNG_DEPTHS.get(colour, set()):
        return _damaged(kind, f"colour type {colour} with bit depth {depth}")
    if compression or filtering or interlace > 1:
        return _damaged(kind, "unknown compression, filter or interlace method")
    return _image(kind, width, height)


def _probe_gif(data: bytes) -> ImageHeader:
    # "GIF8xa", the logical screen descriptor (7 bytes), the global colour table when flagged,
    # then the first block: an extension (!), an image descriptor (,) or the trailer (;).
    if len(data) < 13:
        return _need(13)
    packed = data[10]
    first_block = 13 + (3 << ((packed & 0x07) + 1) if packed & 0x80 else 0)
    if len(data) <= first_block:
        return _need(first_block + 1)
    if data[first_block] not in b"!,;":
        return _damaged("image/gif", "no block follows the screen descriptor")
    return _image("image/gif", _u16le(data, 6), _u16le(data, 8))


def _probe_webp(data: bytes) -> ImageHeader:
    # "RIFF" size "WEBP", then the first chunk: fourcc, size, and the bitstream's own header.
    if len(data) < 20:
        return _need(20)
    kind = "image/webp"
    riff_size = _u32le(data, 4)
    chunk, chunk_size = data[12:16], _u32le(data, 16)
    minimum = _WEBP_CHUNK_MINIMUM.get(chunk)
    if minimum is None:
        return _damaged(kind, "its first chunk is not VP8, VP8L or VP8X")
    if chunk_size < minimum or chunk_size > riff_size - 12:
        return _damaged(kind, "the first chunk's size does not fit the file's")
    if len(data) < 20 + minimum:
        return _need(20 + minimum)
    if chunk == b"VP8L":
        bits = _u32le(data, 21)
        if data[20] != 0x2F or bits >> 29:
            return _damaged(kind, "bad VP8L signature")
        return _image(kind, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width, height = _u24le(data, 24) + 1, _u24le(data, 27) + 1
        if width * height > 2**32 - 1:
            return _damaged(kind, "the canvas is larger than 2^32-1 pixels")
        return _image(kind, width, height)
    tag = data[20]
    if tag & 0x01 or (tag >> 1) & 0x07 > 3 or data[23:26] != b"\x9d\x01\x2a":
        return _damaged(kind, "the VP8 frame is not a key frame")
    return _image(kind, _u16le(data, 26) & 0x3FFF, _u16le(data, 28) & 0x3FFF)


def _probe_jpeg(data: bytes) -> ImageHeader:
    # Walk the marker segments after SOI up to the frame header (SOFn), which gives the size.
    kind = "image/jpeg"
    position = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        if position >= len(data):
            return _need(position + 4)  # a marker and its segment's length
        if data[position] != 0xFF:
            return _damaged(kind, f"no marker at byte {position}")
        while position < len(data) and data[position] == 0xFF:  # fill bytes, then the marker
            position += 1
        if position >= len(data):
            return _need(position + 3)
        marker = data[position]
        position += 1
        if marker == 0x01:  # TEM: a marker without a segment
            continue
        if marker == 0xD9:
            return _damaged(kind, "the image ends before its frame header")
        if marker == 0xDA:
            return _damaged(kind, "image data comes before the frame header")
        if marker == 0x00 or 0xD0 <= marker <= 0xD8:
            return _damaged(kind, f"unexpected marker FF{marker:02X} before the frame header")
        if len(data) < position + 2:
            return _need(position + 2)
        length = _u16be(data, position)
        if length < 2:
            return _damaged(kind, f"a segment length of {length}")
        if marker in _JPEG_SOF:
            if len(data) < position + 8:
                return _need(position + 8)
            components = data[position + 7]
            if components < 1 or length != 8 + 3 * components:
                return _damaged(kind, "the frame header's length does not match its components")
            return _image(kind, _u16be(data, position + 5), _u16be(data, position + 3))
        position += length
    return _damaged(kind, f"no frame header within {MAX_JPEG_SEGMENTS} segments")


def _claimed_type(data: bytes) -> tuple[str | None, int]:
    """The format that the magic bytes announce, or (None, n) when n bytes are needed to tell,
    or (None, 0) when they announce none."""
    if data.startswith(_JPEG_MAGIC):
        return "image/jpeg", 0
    if data.startswith(_PNG_SIGNATURE):
        return "image/png", 0
    if data.startswith(_GIF_MAGICS):
        return "image/gif", 0
    if len(data) >= 12 and data.startswith(b"RIFF"):
        return ("image/webp", 0) if data[8:12] == b"WEBP" else (None, 0)
    if len(data) < 12 and data.startswith(b"RIFF") and b"WEBP".startswith(data[8:12]):
        return None, 12
    waiting = [len(magic) for magic in _MAGIC_PREFIXES if magic.startswith(data) and len(magic) > len(data)]
    return None, min(waiting, default=0)


_PROBES = {
    "image/jpeg": _probe_jpeg,
    "image/png": _probe_png,
    "image/gif": _probe_gif,
    "image/webp": _probe_webp,
}


def probe_image(first_bytes: bytes | bytearray | memoryview, size: int | None = None) -> ImageHeader:
    """Check that a file's first bytes are the header of a JPEG, PNG, GIF or WebP image.

    ``first_bytes`` are the file's leading bytes (PROBE_BYTES of them are nearly always
    enough); ``size`` is the whole file's size when known. The answer is the image (type,
    width, height), a refusal (``problem``), or, when more bytes are needed and the file may
    have them, ``needed``: read that many leading bytes and call again (see
    :func:`read_image_header`, which does the reading). Pure, and never raises on any bytes.

    Checked: JPEG, the marker segments up to the frame header (SOFn); PNG, the IHDR chunk with
    its CRC; GIF, the logical screen descriptor and the block after it; WebP, the RIFF header
    and the first VP8, VP8L or VP8X chunk's frame header.
    """
    data = bytes(first_bytes)
    if size is not None:
        data = data[: max(size, 0)]
    claimed, wanted = _claimed_type(data)
    if claimed is None:
        header = _need(wanted) if wanted else ImageHeader(problem=NOT_AN_ALLOWED_IMAGE)
    else:
        header = _PROBES[claimed](data)
        if header.needed:
            header = ImageHeader(file_type=claimed, needed=header.needed)
    if header.needed and size is not None and header.needed > len(data) >= size:
        if claimed is None:
            return ImageHeader(problem=NOT_AN_ALLOWED_IMAGE)
        return ImageHeader(
            file_type=claimed,
            problem=f"the file ends inside its {TYPE_LABELS[claimed]} header ({size} bytes)",
        )
    return header


def read_image_header(read: Callable[[int, int], bytes], size: int) -> ImageHeader:
    """:func:`probe_image` for a file of ``size`` bytes read through ``read(offset, length)``
    (a file's read, an S3 ranged GET), asking for more bytes only while the probe needs them."""
    data = read(0, min(size, PROBE_BYTES)) if size > 0 else b""
    while True:
        header = probe_image(data, size)
        if not header.needed:
            return header
        want = min(size, max(header.needed, 2 * len(data))) - len(data)
        more = read(len(data), want)
        if not more:  # the file is shorter than it said: judge what there is
            return probe_image(data, len(data))
        data += more


def sniff_type(first_bytes: bytes) -> str | None:
    """The image type that a file's first bytes announce, or None (magic bytes only).

    A quick guess that parses nothing: whether the file really is an image is
    :func:`probe_image`'s to say.
    """
    claimed, _ = _claimed_type(bytes(first_bytes[:SNIFF_BYTES]))
    return claimed


# --- ids and timestamps ------------------------------------------------------------------

_IMAGE_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def new_image_id() -> str:
    """A fresh image id: a random UUID in its canonical lower-case form."""
    return str(uuid.uuid4())


def is_image_id(value: object) -> bool:
    """True when ``value`` is an image id: a UUID in canonical lower-case form."""
    return isinstance(value, str) and _IMAGE_ID_RE.fullmatch(value) is not None


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds, ``2026-11-25T12:00:00.000000Z``, the ``uploadedAt`` form."""
    if moment.tzinfo is None:
        raise ValueError("a timestamp needs a timezone")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_timestamp(value: object) -> bool:
    """True when ``value`` is a real moment written as :func:`format_timestamp` writes it."""
    if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


# --- pagination --------------------------------------------------------------------------

_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]+")
_BAD_CURSOR = "Invalid cursor: pass the nextCursor of a previous answer unchanged"


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _check_cursor_key(key: object) -> dict[str, str]:
    if not isinstance(key, dict) or set(key) != CURSOR_KEYS:
        raise ValidationError(_BAD_CURSOR, field="cursor")
    if (
        key["galleryPk"] != GALLERY_PARTITION
        or not is_image_id(key["imageId"])
        or not is_timestamp(key["uploadedAt"])
    ):
        raise ValidationError(_BAD_CURSOR, field="cursor")
    return {name: key[name] for name in sorted(CURSOR_KEYS)}


def encode_cursor(key: Mapping[str, str]) -> str:
    """An opaque cursor (base64url JSON, no padding) for a ``ReadyByDate`` LastEvaluatedKey.

    ``key`` holds plain strings: ``{"galleryPk": "ready", "imageId": ..., "uploadedAt": ...}``.
    """
    checked = _check_cursor_key(dict(key))
    raw = json.dumps(checked, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: object) -> dict[str, str]:
    """The LastEvaluatedKey (plain strings) in a cursor made by :func:`encode_cursor`.

    Anything else, whether garbled, truncated, forged with other keys or values, or too long,
    raises ValidationError (400), never another exception.
    """
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_CHARS:
        raise ValidationError(_BAD_CURSOR, field="cursor")
    if not _CURSOR_RE.fullmatch(cursor) or len(cursor) % 4 == 1:
        raise ValidationError(_BAD_CURSOR, field="cursor")
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
        key = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (binascii.Error, ValueError, RecursionError):
        raise ValidationError(_BAD_CURSOR, field="cursor") from None
    return _check_cursor_key(key)


def parse_limit(raw: object, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """The page size from a ``limit`` query parameter: absent or empty gives ``default``.

    Only plain decimal digits for a number from 1 to ``maximum`` are accepted.
    """
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise ValidationError(f"limit must be a whole number from 1 to {maximum}", field="limit")
    value = int(raw)
    if not 1 <= value <= maximum:
        raise ValidationError(f"limit must be a whole number from 1 to {maximum}", field="limit")
    return value


# --- tags --------------------------------------------------------------------------------
#
# A tag is a short label on an image: a key and a value (``camera=x100``, ``trip=iceland``).
# Keys are case-insensitive (kept in lower case), values are kept as given. The same rules
# serve the API (``tags`` in upload requests, ``POST /images/{id}/tags``, the ``tag`` filter)
# and the CLI (``--tag K=V``, ``imgup tag``, ``imgup untag``), which checks before any request.

MAX_TAGS = 10
"""The most tags one image carries."""
MAX_TAG_KEY_CHARS = 64
MAX_TAG_VALUE_CHARS = 128
TAG_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.:-]*")
"""What a tag key fully matches, once lower-cased: letters, digits and ``_ . : -``, starting
with a letter or a digit (so a key is also safe in a query string, a CSV cell and a shell)."""
_TAG_KEY_RULE = (
    f"1 to {MAX_TAG_KEY_CHARS} letters, digits, '_', '.', ':' or '-', starting with a letter or a digit"
)


def validate_tag_key(raw: object, field: str = "tags") -> str:
    """A tag key in lower case; ValidationError (400) unless it follows the key rule."""
    if not isinstance(raw, str):
        raise ValidationError("A tag key must be a string", field=field)
    key = raw.lower()
    if not 1 <= len(key) <= MAX_TAG_KEY_CHARS or not key.isascii() or not TAG_KEY_PATTERN.fullmatch(key):
        raise ValidationError(f"Invalid tag key {raw[:80]!r}: a key is {_TAG_KEY_RULE}", field=field)
    return key


def validate_tag_value(raw: object, key: str, field: str = "tags") -> str:
    """A tag value as given; ValidationError (400) unless it is 0 to MAX_TAG_VALUE_CHARS
    characters with no control, bidi-override or line-separator character and no blank at
    either end."""
    if not isinstance(raw, str):
        raise ValidationError(f"The value of tag {key!r} must be a string", field=field)
    if len(raw) > MAX_TAG_VALUE_CHARS:
        raise ValidationError(
            f"The value of tag {key!r} must be at most {MAX_TAG_VALUE_CHARS} characters", field=field
        )
    if any(_is_forbidden_char(ch) for ch in raw):
        raise ValidationError(f"The value of tag {key!r} must not contain control characters", field=field)
    if raw != raw.strip():
        raise ValidationError(f"The value of tag {key!r} must not start or end with a blank", field=field)
    return raw


def validate_tags(raw: object, field: str = "tags") -> dict[str, str]:
    """A ``{"key": "value"}`` object of at most MAX_TAGS tags, keys lower-cased (two keys that
    differ only in case are refused); ValidationError (400) otherwise."""
    if not isinstance(raw, dict):
        raise ValidationError(f"{field} must be a JSON object of key: value", field=field)
    if len(raw) > MAX_TAGS:
        raise ValidationError(f"An image has at most {MAX_TAGS} tags, not {len(raw)}", field=field)
    tags: dict[str, str] = {}
    for raw_key, raw_value in raw.items():
        key = validate_tag_key(raw_key, field)
        if key in tags:
            raise ValidationError(f"Tag key {key!r} is given twice (keys ignore case)", field=field)
        tags[key] = validate_tag_value(raw_value, key, field)
    return tags


def validate_tag_keys(raw: object, field: str = "remove") -> list[str]:
    """A list of at most MAX_TAGS distinct tag keys, lower-cased; ValidationError otherwise."""
    if not isinstance(raw, list):
        raise ValidationError(f"{field} must be a list of tag keys", field=field)
    if len(raw) > MAX_TAGS:
        raise ValidationError(f"{field} names at most {MAX_TAGS} tag keys, not {len(raw)}", field=field)
    return list(dict.fromkeys(validate_tag_key(key, field) for key in raw))


@dataclass(frozen=True)
class TagChange:
    """A validated ``POST /images/{imageId}/tags`` body: tags to set and keys to remove."""

    set: Mapping[str, str]
    remove: tuple[str, ...]

    def apply(self, current: Mapping[str, str]) -> dict[str, str]:
        """The tags after the change; ValidationError (400) when they would be too many."""
        after = {k: v for k, v in current.items() if k not in self.remove}
        after.update(self.set)
        if len(after) > MAX_TAGS:
            raise ValidationError(
                f"An image has at most {MAX_TAGS} tags; this change would give it {len(after)}",
                field="set",
            )
        return after


def validate_tag_change(body: object) -> TagChange:
    """``{"set": {key: value}, "remove": [key]}``, either part optional but not both; a key
    may not be both set and removed."""
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    if body.get("set") is None and body.get("remove") is None:
        raise ValidationError(
            'Give the tags to set ({"set": {...}}) or the keys to remove ({"remove": [...]})'
        )
    set_tags = {} if body.get("set") is None else validate_tags(body["set"], "set")
    remove = () if body.get("remove") is None else tuple(validate_tag_keys(body["remove"]))
    both = sorted(set(set_tags) & set(remove))
    if both:
        raise ValidationError(f"Tag {both[0]!r} cannot be both set and removed", field="remove")
    return TagChange(set_tags, remove)


def parse_tag(text: str, *, value_needed: bool = True, field: str = "tag") -> tuple[str, str | None]:
    """``KEY=VALUE`` (the first ``=`` splits) as (key, value); ``KEY`` alone is (key, None)
    where no value is needed (a filter on the key). ValidationError (400) otherwise."""
    key, equals, value = text.partition("=")
    if not equals:
        if value_needed:
            raise ValidationError(f"A tag is KEY=VALUE, not {text[:80]!r}", field=field)
        return validate_tag_key(key, field), None
    checked = validate_tag_key(key, field)
    return checked, validate_tag_value(value, checked, field)


# --- listing filters ---------------------------------------------------------------------
#
# ``GET /images`` takes its filters as query parameters: ``name`` (a glob on fileName), ``type``
# (image types, comma-separated), ``since`` and ``until`` (moments of uploadedAt), ``order``
# (newest or oldest first). They are validated here into a ListFilter, and the image table
# (storage.ImageStore) serves them: dates and order from the ReadyByDate sort key, the rest
# as a FilterExpression plus an exact check. A new filter is one more field of ListFilter, its
# parsing below, and its clause in storage.

MAX_GLOB_CHARS = MAX_FILE_NAME_CHARS
TYPE_NAMES: Mapping[str, str] = {
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
}
_MOMENT_RE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?")
_ORDERS = ("newest", "oldest")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class ListFilter:
    """Which ready images a listing keeps (every field None or empty: all of them).

    ``name`` is a glob on fileName (``*``, ``?``, ``[...]``, case-sensitive, like
    ``find -name``); ``types`` canonical media types; ``since`` (inclusive) and ``until``
    (exclusive) are ``uploadedAt`` strings (format_timestamp); ``tags`` (key, value) pairs that
    an image must all have, a value of None asking only for the key.
    """

    name: str | None = None
    types: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()

    @property
    def empty(self) -> bool:
        return self == ListFilter()

    def to_params(self) -> dict[str, str | list[str]]:
        """The query parameters of ``GET /images`` that ask for this filter (``tag`` is
        repeated, once per tag: a value may hold a comma)."""
        params: dict[str, str | list[str]] = {}
        for name, value in self.to_json().items():
            if isinstance(value, list):
                params[name] = [str(v) for v in value] if name == "tag" else ",".join(map(str, value))
            else:
                params[name] = str(value)
        return params

    def to_json(self) -> dict[str, object]:
        """The filter as the API echoes it (only what was given)."""
        given: dict[str, object] = {}
        if self.name is not None:
            given["name"] = self.name
        if self.types:
            given["type"] = list(self.types)
        if self.since is not None:
            given["since"] = self.since
        if self.until is not None:
            given["until"] = self.until
        if self.tags:
            given["tag"] = [key if value is None else f"{key}={value}" for key, value in self.tags]
        return given


@dataclass(frozen=True)
class ListQuery:
    """A validated ``GET /images`` request."""

    limit: int = DEFAULT_PAGE_SIZE
    start_key: dict[str, str] | None = None
    filter: ListFilter = ListFilter()
    oldest_first: bool = False
    count_remaining: bool = False


def glob_literals(pattern: str) -> tuple[str, list[str]]:
    """What every name that ``pattern`` matches must hold literally: its prefix (up to the
    first wildcard; all of it when there is none) and the literal runs after it. Nothing after
    a ``[`` is used (a set is not a literal), so the answer never excludes a true match."""
    runs: list[str] = []
    current = ""
    for ch in pattern:
        if ch in "*?[":
            runs.append(current)
            current = ""
            if ch == "[":
                return runs[0], [r for r in runs[1:] if r]
            continue
        current += ch
    runs.append(current)
    return runs[0], [r for r in runs[1:] if r]


def parse_glob(raw: object) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > MAX_GLOB_CHARS:
        raise ValidationError(
            f"name must be a glob of at most {MAX_GLOB_CHARS} characters, e.g. name=*.png", field="name"
        )
    if any(_is_forbidden_char(ch) for ch in raw):
        raise ValidationError("name must not contain control characters", field="name")
    return raw


def parse_types(raw: object) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    wrong = ValidationError(
        "type must be one or more of jpeg, png, gif, webp, separated by commas, e.g. type=png,jpeg",
        field="type",
    )
    if not isinstance(raw, str) or len(raw) > 100:
        raise wrong
    found: list[str] = []
    for part in raw.split(","):
        name = part.strip().lower()
        canonical = TYPE_NAMES.get(name) or normalise_type(name)
        if canonical is None:
            raise wrong
        if canonical not in found:
            found.append(canonical)
    return tuple(found)


def parse_moment(raw: object, field: str) -> datetime:
    """A moment from an ISO 8601 date or date and time: ``2026-01-31`` (midnight UTC),
    ``2026-01-31T12:00:00Z``, ``2026-01-31T12:00+02:00``; a time without a zone is UTC."""
    if not isinstance(raw, str) or len(raw) > 40 or not _MOMENT_RE.fullmatch(raw):
        raise ValidationError(
            f"{field} must be an ISO 8601 date or time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z",
            field=field,
        )
    text = raw.replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field} is not a real date or time: {raw}", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    if not 1970 <= moment.year <= 9998:
        raise ValidationError(f"{field} must be a moment from 1970 on", field=field)
    return moment


def _flag(raw: object, field: str) -> bool:
    if raw is None or raw == "":
        return False
    if not isinstance(raw, str) or raw.lower() not in _BOOLEANS:
        raise ValidationError(f"{field} must be true or false", field=field)
    return _BOOLEANS[raw.lower()]


def parse_tag_filters(raw: object) -> tuple[tuple[str, str | None], ...]:
    """The ``tag`` parameter(s) of ``GET /images``: ``KEY=VALUE`` (the image has that tag) or
    ``KEY`` (it has the key), one per parameter, at most MAX_TAGS; all must hold."""
    if raw is None or raw == "":
        return ()
    given = raw if isinstance(raw, list) else [raw]
    if len(given) > MAX_TAGS or not all(isinstance(g, str) for g in given):
        raise ValidationError(f"tag is KEY=VALUE or KEY, given at most {MAX_TAGS} times", field="tag")
    return tuple(dict.fromkeys(parse_tag(str(g), value_needed=False) for g in given if g))


def parse_list_query(params: Mapping[str, object]) -> ListQuery:
    """Validate the query parameters of ``GET /images``: ``limit``, ``cursor``, ``name``,
    ``type``, ``since``, ``until``, ``tag`` (a list when repeated), ``order`` and
    ``countRemaining``; others are ignored."""
    since = until = None
    if params.get("since") not in (None, ""):
        since = parse_moment(params["since"], "since")
    if params.get("until") not in (None, ""):
        until = parse_moment(params["until"], "until")
    if since is not None and until is not None and since >= until:
        raise ValidationError("since must be before until", field="since")
    order = params.get("order") or "newest"
    if order not in _ORDERS:
        raise ValidationError("order must be newest or oldest", field="order")
    raw_cursor = params.get("cursor")
    return ListQuery(
        limit=parse_limit(params.get("limit")),
        start_key=None if raw_cursor in (None, "") else decode_cursor(raw_cursor),
        filter=ListFilter(
            name=parse_glob(params.get("name")),
            types=parse_types(params.get("type")),
            since=None if since is None else format_timestamp(since),
            until=None if until is None else format_timestamp(until),
            tags=parse_tag_filters(params.get("tag")),
        ),
        oldest_first=order == "oldest",
        count_remaining=_flag(params.get("countRemaining"), "countRemaining"),
    )


def before(stamp: str) -> str:
    """The last ``uploadedAt`` before ``stamp`` (one microsecond earlier): an exclusive bound
    as an inclusive one, for a key condition (BETWEEN includes both ends)."""
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return format_timestamp(moment - timedelta(microseconds=1))


# --- sharing -------------------------------------------------------------------------------

MAX_SHARE_SECONDS = 7 * 24 * 3600
"""The longest life of a share link: 7 days."""


def validate_expires_in(body: object) -> int:
    """The ``expiresIn`` of a ``POST /images/{imageId}/share`` body: whole seconds from 1 to
    MAX_SHARE_SECONDS (absent: one hour)."""
    if body is None:
        return 3600
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    value = body.get("expiresIn", 3600)
    wrong = ValidationError(
        f"expiresIn must be a whole number of seconds from 1 to {MAX_SHARE_SECONDS} (7 days)",
        field="expiresIn",
    )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong
    if isinstance(value, float):
        if not value.is_integer():
            raise wrong
        value = int(value)
    if not 1 <= value <= MAX_SHARE_SECONDS:
        raise wrong
    return value
