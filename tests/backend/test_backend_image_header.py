"""rules.probe_image and rules.read_image_header: a file is an image only when its header
really parses and gives a width and a height; hostile bytes get a refusal, never an exception."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from imgup.backend import rules
from tests.samples import SAMPLES, gif_bytes, jpeg_bytes, png_bytes, webp_bytes

# --- builders of valid headers with chosen sizes -----------------------------------------


def png(width: int, height: int, *, depth: int = 8, colour: int = 2) -> bytes:
    data = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + data
        + struct.pack(">I", zlib.crc32(b"IHDR" + data))
    )


def jpeg(width: int, height: int, *, segments: list[tuple[int, bytes]] = (), sof: int = 0xC0) -> bytes:
    body = b"".join(
        bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data for marker, data in segments
    )
    frame = bytes([0xFF, sof]) + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return (
        b"\xff\xd8" + body + frame + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 8 + b"\xff\xd9"
    )


def gif(width: int, height: int, *, table_bits: int | None = 0) -> bytes:
    packed = 0 if table_bits is None else 0x80 | table_bits
    table = b"" if table_bits is None else b"\x00" * (3 << (table_bits + 1))
    return (
        b"GIF89a" + struct.pack("<HHBBB", width, height, packed, 0, 0) + table + b"\x2c" + b"\x00" * 9 + b";"
    )


def riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    return riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8)


def webp_extended(width: int, height: int) -> bytes:
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff(b"VP8X", b"\x10\x00\x00\x00" + size)


def probe(data: bytes) -> rules.ImageHeader:
    return rules.probe_image(data, len(data))


def refusal(data: bytes) -> str:
    header = probe(data)
    assert not header.is_image and header.problem, header
    return header.problem


# --- what parses -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_sample_format_parses_to_its_type_and_size(kind: str) -> None:
    header = probe(SAMPLES[kind])
    assert (header.is_image, header.file_type, header.width, header.height) == (True, kind, 1, 1)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(640, 480), ("image/png", 640, 480)),
        (png(1, 70000, depth=1, colour=0), ("image/png", 1, 70000)),
        (jpeg(1920, 1080), ("image/jpeg", 1920, 1080)),
        (jpeg(3, 4, sof=0xC2), ("image/jpeg", 3, 4)),  # progressive
        (jpeg(65535, 1, segments=[(0xE1, b"Exif\x00\x00" + b"\x00" * 60000)]), ("image/jpeg", 65535, 1)),
        (gif(320, 200), ("image/gif", 320, 200)),
        (gif(2, 3, table_bits=None), ("image/gif", 2, 3)),
        (gif(2, 3, table_bits=7), ("image/gif", 2, 3)),
        (webp_bytes(0, 16383, 1), ("image/webp", 16383, 1)),
        (webp_lossless(16384, 2), ("image/webp", 16384, 2)),
        (webp_extended(2**24, 200), ("image/webp", 2**24, 200)),
    ],
)
def test_a_real_header_gives_type_width_and_height(data: bytes, expected: tuple) -> None:
    header = probe(data)
    assert header.is_image
    assert (header.file_type, header.width, header.height) == expected
    assert rules.sniff_type(data) == expected[0]


@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_any_png_size_reads_back(width: int, height: int) -> None:
    header = probe(png(width, height))
    assert (header.width, header.height) == (width, height)


@given(
    st.integers(1, 65535),
    st.integers(1, 65535),
    st.lists(
        st.tuples(st.sampled_from([0xE0, 0xE1, 0xE2, 0xDB, 0xC4, 0xFE, 0xDD]), st.binary(max_size=300)),
        max_size=6,
    ),
    st.sampled_from(sorted(rules._JPEG_SOF)),
)
def test_any_jpeg_size_reads_back_after_any_metadata_segments(width, height, segments, sof) -> None:
    header = probe(jpeg(width, height, segments=segments, sof=sof))
    assert (header.file_type, header.width, header.height) == ("image/jpeg", width, height)


@given(st.integers(1, 65535), st.integers(1, 65535), st.none() | st.integers(0, 7))
def test_any_gif_size_reads_back(width: int, height: int, table_bits: int | None) -> None:
    header = probe(gif(width, height, table_bits=table_bits))
    assert (header.file_type, header.width, header.height) == ("image/gif", width, height)


@given(st.integers(1, 16383), st.integers(1, 16383), st.sampled_from([webp_bytes, webp_lossless]))
def test_any_webp_size_reads_back(width: int, height: int, make) -> None:
    data = make(0, width, height) if make is webp_bytes else make(width, height)
    header = probe(data)
    assert (header.file_type, header.width, header.height) == ("image/webp", width, height)


# --- what does not -----------------------------------------------------------------------

HOSTILE = {
    "gif signature alone": b"GIF89a",
    "gif87 signature alone": b"GIF87a",
    "gif of zero width": gif(0, 10),
    "gif of zero height": gif(10, 0),
    "gif without a block after its screen": gif_bytes(0)[:13] + b"\x00" * 6 + b"\x00" * 20,
    "png signature alone": b"\x89PNG\r\n\x1a\n",
    "png with a huge first chunk": b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffIHDR" + b"\x00" * 40,
    "png whose first chunk is not ihdr": b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT" + b"\x00" * 40,
    "png with a bad ihdr crc": png(10, 10)[:-1] + b"\x00",
    "png of zero width": png(0, 10),
    "png wider than the format allows": png(2**31, 1),
    "png with an impossible bit depth": png(1, 1, depth=3),
    "png with an unknown colour type": png(1, 1, colour=5),
    "png cut inside ihdr": png(10, 10)[:20],
    "jpeg magic alone": b"\xff\xd8\xff",
    "jpeg without a frame header": jpeg_bytes(0)[:20] + b"\xff\xd9",
    "jpeg scan before frame": b"\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 20,
    "jpeg segment length zero": b"\xff\xd8\xff\xe0\x00\x00" + b"\x00" * 40,
    "jpeg segment length one": b"\xff\xd8\xff\xe1\x00\x01" + b"\x00" * 40,
    "jpeg segment longer than the file": b"\xff\xd8\xff\xe1\xff\xff" + b"\x00" * 100,
    "jpeg garbage where a marker belongs": b"\xff\xd8\xff\xe0\x00\x04ab" + b"xyz" * 20,
    "jpeg of zero height (dnl)": jpeg(100, 0),
    "jpeg of zero width": jpeg(0, 100),
    "jpeg frame with no components": b"\xff\xd8\xff\xc0\x00\x08\x08\x00\x01\x00\x01\x00" + b"\x00" * 20,
    "jpeg frame whose length lies": b"\xff\xd8\xff\xc0\x00\x20\x08\x00\x01\x00\x01\x01\x01\x11\x00"
    + b"\x00" * 40,
    "jpeg of endless tiny segments": b"\xff\xd8" + b"\xff\xfe\x00\x02" * (rules.MAX_JPEG_SEGMENTS + 5),
    "jpeg of fill bytes only": b"\xff\xd8" + b"\xff" * 10_000,
    "jpeg restart marker before the frame": b"\xff\xd8\xff\xd0" + b"\x00" * 40,
    "webp header alone": b"RIFF\x00\x00\x00\x00WEBP",
    "webp with riff size zero": b"RIFF\x00\x00\x00\x00WEBPVP8 \x0a\x00\x00\x00" + b"\x00" * 20,
    "webp with an unknown first chunk": riff(b"ALPH", b"\x00" * 20),
    "webp with a huge first chunk": b"RIFF\xff\xff\xff\x7fWEBPVP8L\xff\xff\xff\xff" + b"\x00" * 20,
    "webp vp8 that is not a key frame": riff(
        b"VP8 ", b"\x11\x00\x00\x9d\x01\x2a\x01\x00\x01\x00" + b"\x00" * 4
    ),
    "webp vp8 without its start code": riff(
        b"VP8 ", b"\x10\x00\x00\x00\x00\x00\x01\x00\x01\x00" + b"\x00" * 4
    ),
    "webp vp8 of zero width": webp_bytes(4, 0, 10),
    "webp vp8l with a bad signature": riff(b"VP8L", b"\x2e" + b"\x00" * 12),
    "webp vp8l of another version": riff(b"VP8L", b"\x2f\x00\x00\x00\x20" + b"\x00" * 8),
    "webp canvas over 2^32 pixels": webp_extended(2**24, 2**24),
    "riff that is not webp": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 30,
    "svg": b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
    "text": b"I am text posing as a PNG.",
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_header_that_does_not_parse_is_refused_with_a_reason(case: str) -> None:
    assert refusal(HOSTILE[case])


def test_the_six_bytes_gif89a_are_not_a_gif() -> None:
    header = probe(b"GIF89a")
    assert (header.is_image, header.file_type) == (False, "image/gif")
    assert header.problem == "the file ends inside its GIF header (6 bytes)"


def test_bytes_that_announce_no_allowed_format_say_so() -> None:
    assert refusal(b"hello, world, this is not an image") == rules.NOT_AN_ALLOWED_IMAGE


def test_without_the_files_size_a_short_prefix_asks_for_more() -> None:
    assert rules.probe_image(b"GIF89a").needed == 13
    assert rules.probe_image(b"").needed == 3
    assert rules.probe_image(b"RIFF").needed == 12
    exif = jpeg(10, 10, segments=[(0xE1, b"\x00" * 40_000), (0xE2, b"\x00" * 40_000)])
    header = rules.probe_image(exif[: rules.PROBE_BYTES])
    assert header.needed == 2 + 40_004 + 40_004 + 4  # the frame header's marker and length
    assert header.file_type == "image/jpeg" and not header.is_image
    assert rules.probe_image(exif[: header.needed]).needed == header.needed + 6
    assert rules.probe_image(exif[: header.needed + 6]).is_image


# --- properties that hold for any bytes --------------------------------------------------

VALID = [
    *SAMPLES.values(),
    png(300, 200),
    jpeg(7, 9, segments=[(0xE1, b"x" * 500)]),
    gif(5, 6),
    webp_lossless(9, 9),
]


def _mutations() -> st.SearchStrategy[bytes]:
    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(VALID)))
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(data)))
        return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)

    return mutate()


any_bytes = st.binary(max_size=200) | _mutations()


@given(any_bytes)
@example(b"\xff\xd8" + b"\xff" * 300)
@example(b"RIFF\xff\xff\xff\xffWEBPVP8X\xff\xff\xff\xff" + b"\xff" * 10)
def test_a_whole_file_is_always_judged_image_or_refused_never_raising(data: bytes) -> None:
    header = rules.probe_image(data, len(data))
    assert header.needed == 0
    assert header.is_image != bool(header.problem)
    if header.is_image:
        assert header.file_type in rules.ALLOWED_TYPES
        assert header.width >= 1 and header.height >= 1
        assert rules.sniff_type(data) == header.file_type


@given(any_bytes, st.data())
def test_a_prefix_is_judged_as_the_whole_file_or_asks_for_more_than_it_has(data: bytes, draw) -> None:
    whole = rules.probe_image(data)
    cut = draw.draw(st.integers(0, len(data)))
    partial = rules.probe_image(data[:cut])
    if partial.needed:
        assert partial.needed > cut
    else:
        assert partial == whole


@given(any_bytes)
def test_reading_through_a_callback_gives_the_same_answer_as_the_whole_file(data: bytes) -> None:
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        assert length > 0 and offset == sum(n for _, n in reads)
        reads.append((offset, length))
        return data[offset : offset + length]

    assert rules.read_image_header(read, len(data)) == rules.probe_image(data, len(data))
    assert sum(n for _, n in reads) <= len(data)


def test_a_large_image_is_judged_from_one_read_of_its_first_bytes() -> None:
    data = png_bytes(padding=3 * 1024 * 1024)
    reads: list[int] = []

    def read(offset: int, length: int) -> bytes:
        reads.append(length)
        return data[offset : offset + length]

    assert rules.read_image_header(read, len(data)).is_image
    assert reads == [rules.PROBE_BYTES]


def test_a_jpeg_with_metadata_beyond_the_first_read_is_read_further_in_few_steps() -> None:
    segments = [(0xE1, b"\x00" * 65_000)] * 20  # 1.3 MB of metadata before the frame header
    data = jpeg(800, 600, segments=segments) + jpeg_bytes(1000)
    reads: list[int] = []

    def read(offset: int, length: int) -> bytes:
        reads.append(length)
        return data[offset : offset + length]

    header = rules.read_image_header(read, len(data))
    assert (header.width, header.height) == (800, 600)
    assert len(reads) <= 6
    assert sum(reads) <= 2 * 1_400_000


def test_a_file_shorter_than_said_is_judged_on_what_there_is() -> None:
    data = gif_bytes()[:9]  # the file shrank after its size was taken
    header = rules.read_image_header(lambda offset, length: data[offset : offset + length], 1000)
    assert header.problem == "the file ends inside its GIF header (9 bytes)"
