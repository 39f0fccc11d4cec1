"""Unit and property tests of imgup.backend.rules: pure functions, no I/O."""

from __future__ import annotations

import base64
import json
import re
import string
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from imgup.backend import rules
from imgup.backend.rules import UploadRequest, ValidationError

LIMIT = rules.DEFAULT_MAX_UPLOAD_BYTES
GOOD = {"fileName": "profile.jpg", "fileType": "image/jpeg", "fileSize": 2048576}


def refused(body: object, max_bytes: int = LIMIT) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        rules.validate_upload_request(body, max_bytes)
    return caught.value


# --- validate_upload_request -------------------------------------------------------------


def test_the_original_clients_request_is_accepted() -> None:
    request = rules.validate_upload_request(dict(GOOD), LIMIT)
    assert request == UploadRequest("profile.jpg", "image/jpeg", 2048576, None, "image/jpeg")


def test_image_jpg_is_taken_as_image_jpeg_but_signed_as_declared() -> None:
    request = rules.validate_upload_request({**GOOD, "fileType": "image/jpg"}, LIMIT)
    assert request.file_type == "image/jpeg"
    assert request.content_type == "image/jpg"


@pytest.mark.parametrize("declared", ["image/png", "IMAGE/PNG", " image/png "])
def test_a_declared_type_is_matched_without_regard_to_case_or_blanks(declared: str) -> None:
    assert rules.validate_upload_request({**GOOD, "fileType": declared}, LIMIT).file_type == "image/png"


@pytest.mark.parametrize(
    "declared",
    ["image/svg+xml", "text/html", "application/octet-stream", "image/", "image/png; x=y", "jpeg"],
)
def test_types_other_than_the_four_images_are_refused_with_the_original_message(declared: str) -> None:
    error = refused({**GOOD, "fileType": declared})
    assert error.status == 400
    assert error.message.startswith("Invalid file type. Only image files are allowed")


@pytest.mark.parametrize(
    "body",
    [
        {"fileType": "image/png", "fileSize": 1},
        {"fileName": "a.png", "fileSize": 1},
        {"fileName": "", "fileType": "image/png", "fileSize": 1},
        {"fileName": "a.png", "fileType": None, "fileSize": 1},
        {},
    ],
)
def test_a_missing_name_or_type_keeps_the_original_message(body: dict) -> None:
    error = refused(body)
    assert (error.status, error.message) == (400, "Missing required fields: fileName and fileType")


def test_file_size_is_now_required() -> None:
    error = refused({"fileName": "a.png", "fileType": "image/png"})
    assert error.status == 400
    assert "fileSize" in error.message


@pytest.mark.parametrize("body", [[], "a", 3, None, True, [GOOD]])
def test_a_body_that_is_not_a_json_object_is_refused(body: object) -> None:
    assert refused(body).status == 400


@pytest.mark.parametrize("size", [True, False, "2048", [1], {"n": 1}, 1.5, float("nan"), float("inf")])
def test_a_size_that_is_not_a_whole_number_is_refused(size: object) -> None:
    error = refused({**GOOD, "fileSize": size})
    assert (error.status, error.field) == (400, "fileSize")


@pytest.mark.parametrize("size", [0, -1, -(10**30)])
def test_a_size_below_one_byte_is_refused(size: int) -> None:
    assert refused({**GOOD, "fileSize": size}).status == 400


@pytest.mark.parametrize("size", [LIMIT + 1, 10**30, 1e300])
def test_a_declared_size_over_the_limit_is_400_as_in_the_original_api_with_the_limit_in_the_message(
    size: float,
) -> None:
    error = refused({**GOOD, "fileSize": size})
    assert (error.status, error.field) == (400, "fileSize")
    assert error.message == "File size exceeds the limit (5 MiB)"


def test_a_whole_float_size_is_accepted_as_an_int() -> None:
    assert rules.validate_upload_request({**GOOD, "fileSize": 2048.0}, LIMIT).file_size == 2048


def test_the_limit_itself_is_accepted() -> None:
    assert rules.validate_upload_request({**GOOD, "fileSize": LIMIT}, LIMIT).file_size == LIMIT


@pytest.mark.parametrize(
    "name",
    [
        "   ",
        "x" * 256 + ".png",
        "a\x00b.png",
        "a\nb.png",
        "a\u202egnp.exe",
        "a\u2028b.png",
        "\ud800.png",
        "../etc/passwd.png",
        "dir/a.png",
        "C:\\Users\\me\\a.png",
        "..",
        ".",
        42,
        ["a.png"],
    ],
)
def test_unusable_file_names_are_refused(name: object) -> None:
    error = refused({**GOOD, "fileName": name})
    assert (error.status, error.field) == (400, "fileName")


def test_a_255_character_name_is_accepted() -> None:
    name = "x" * 251 + ".png"
    assert rules.validate_upload_request({**GOOD, "fileName": name}, LIMIT).file_name == name


@pytest.mark.parametrize("digest", ["", "abc", "g" * 64, "a" * 63, "a" * 65, 12, True, " " + "a" * 63])
def test_a_malformed_checksum_is_refused(digest: object) -> None:
    error = refused({**GOOD, "sha256": digest})
    assert (error.status, error.field) == (400, "sha256")


def test_a_checksum_is_kept_in_lower_case() -> None:
    request = rules.validate_upload_request({**GOOD, "sha256": "AB" * 32}, LIMIT)
    assert request.sha256 == "ab" * 32


def test_unknown_fields_are_ignored() -> None:
    assert rules.validate_upload_request({**GOOD, "extra": {"x": 1}}, LIMIT).file_name == "profile.jpg"


def test_the_limit_is_written_for_people() -> None:
    assert rules.format_size(5 * 1024 * 1024) == "5 MiB"
    assert rules.format_size(1536 * 1024) == "1.5 MiB"
    assert rules.format_size(16 * 1024) == "16 KiB"
    assert rules.format_size(1) == "1 byte"


# --- sanitise_name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("profile.jpg", "profile.jpg"),
        ("My Photo (1).JPG", "My_Photo_1.JPG"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
        ("a..b...png", "a.b.png"),
        ("été à la plage.png", "ete_a_la_plage.png"),
        ("写真.png", "image.png"),
        ("", "image"),
        ("...", "image"),
        (".png", "image.png"),
        (".hidden.png", "hidden.png"),
        ("-rf.gif", "rf.gif"),
        ("a\x00\x1f\x7fb.webp", "a_b.webp"),
        ("photo.tar.gz", "photo.tar.gz"),
        ("noext", "noext"),
    ],
)
def test_names_become_safe_key_segments(name: str, expected: str) -> None:
    assert rules.sanitise_name(name) == expected


def test_a_long_name_is_cut_but_keeps_its_extension() -> None:
    result = rules.sanitise_name("x" * 1000 + ".webp")
    assert len(result) == rules.MAX_KEY_NAME_CHARS
    assert result.endswith(".webp")


def test_the_object_key_is_images_then_id_then_safe_name() -> None:
    image_id = rules.new_image_id()
    assert rules.object_key(image_id, "../a b.png") == f"images/{image_id}/a_b.png"


SAFE_KEY_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@given(st.text(max_size=600))
@example("..")
@example("../..//\\..")
@example("\x00")
@example("a" + "." * 300 + "b")
def test_any_name_sanitises_to_a_safe_non_empty_segment(name: str) -> None:
    result = rules.sanitise_name(name)
    assert result
    assert rules.SAFE_NAME_PATTERN.fullmatch(result)
    assert SAFE_KEY_SEGMENT.fullmatch(result)
    assert "/" not in result and "\\" not in result and ".." not in result
    assert not any(unicodedata.category(ch).startswith("C") for ch in result)
    assert len(result) <= rules.MAX_KEY_NAME_CHARS
    assert rules.sanitise_name(result) == result


@given(
    st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=40),
    st.sampled_from(["jpg", "png", "gif", "webp", "JPEG"]),
)
def test_a_plain_name_keeps_its_stem_and_its_extension(stem: str, ext: str) -> None:
    assert rules.sanitise_name(f"{stem}.{ext}") == f"{stem}.{ext}"


# --- sniff_type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", "image/png"),
        (b"GIF87a\x01\x00", "image/gif"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
        (b"hello, world", None),
        (b"\x89PNG", None),
        (b"", None),
    ],
)
def test_sniffing_recognises_the_four_formats_by_their_first_bytes(head: bytes, expected: str | None) -> None:
    assert rules.sniff_type(head) == expected


def test_sniffing_needs_only_sniff_bytes() -> None:
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 100
    assert rules.sniff_type(webp[: rules.SNIFF_BYTES]) == "image/webp"
    assert rules.sniff_type(memoryview(webp)) == "image/webp"


@given(st.binary(max_size=64))
def test_sniffing_never_fails_on_arbitrary_bytes(data: bytes) -> None:
    assert rules.sniff_type(data) in {None, *rules.ALLOWED_TYPES}


# --- ids, limit, cursors -----------------------------------------------------------------


def test_new_image_ids_are_image_ids() -> None:
    assert rules.is_image_id(rules.new_image_id())


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "../x",
        "A" * 36,
        "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4",
        "0B7E2C1E-8A4F-4D7A-9C55-2F0A5F1B3C4D",
        None,
        5,
    ],
)
def test_anything_but_a_lower_case_uuid_is_not_an_image_id(value: object) -> None:
    assert not rules.is_image_id(value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, rules.DEFAULT_PAGE_SIZE), ("", rules.DEFAULT_PAGE_SIZE), ("1", 1), ("1000", 1000), ("007", 7)],
)
def test_limit_accepts_absent_or_a_number_in_range(raw: str | None, expected: int) -> None:
    assert rules.parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "1001", "-1", "+5", "1.5", "ten", " 5", "１", "9" * 50, 5, ["5"]])
def test_limit_refuses_anything_else_with_400(raw: object) -> None:
    with pytest.raises(ValidationError) as caught:
        rules.parse_limit(raw)
    assert caught.value.status == 400


KEY = {
    "galleryPk": "ready",
    "imageId": "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d",
    "uploadedAt": "2026-11-25T12:00:00.000000Z",
}


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    cursor = rules.encode_cursor(KEY)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert rules.decode_cursor(cursor) == KEY


def forge(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a",
        "a" * 1000,
        forge([1, 2]),
        forge({**KEY, "extra": "x"}),
        forge({k: v for k, v in KEY.items() if k != "imageId"}),
        forge({**KEY, "galleryPk": "pending"}),
        forge({**KEY, "imageId": "../../x"}),
        forge({**KEY, "imageId": {"S": KEY["imageId"]}}),
        forge({**KEY, "uploadedAt": "2026-13-45T99:00:00.000000Z"}),
        forge({**KEY, "uploadedAt": 5}),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode().rstrip("="),
        base64.urlsafe_b64encode(b'{"a": NaN}').decode().rstrip("="),
        5,
        None,
    ],
)
def test_a_bad_or_forged_cursor_is_a_400(cursor: object) -> None:
    with pytest.raises(ValidationError) as caught:
        rules.decode_cursor(cursor)
    assert (caught.value.status, caught.value.field) == (400, "cursor")


@given(st.text(max_size=500))
def test_decoding_any_string_as_a_cursor_raises_only_validation_error(cursor: str) -> None:
    try:
        rules.decode_cursor(cursor)
    except ValidationError as error:
        assert error.status == 400


@given(st.binary(max_size=300))
def test_decoding_any_base64_payload_raises_only_validation_error(payload: bytes) -> None:
    try:
        rules.decode_cursor(base64.urlsafe_b64encode(payload).decode().rstrip("="))
    except ValidationError as error:
        assert error.status == 400


# --- round trip of valid requests --------------------------------------------------------

name_chars = st.characters(
    blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
    blacklist_characters="/\\\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
)
valid_names = st.text(name_chars, min_size=1, max_size=255).filter(
    lambda n: n.strip() and n.strip() not in {".", ".."}
)
declared_types = st.sampled_from(
    ["image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp", "Image/PNG", "IMAGE/JPG"]
)


@given(
    name=valid_names,
    declared=declared_types,
    size=st.integers(min_value=1, max_value=LIMIT),
    digest=st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex),
)
def test_any_valid_request_round_trips(name: str, declared: str, size: int, digest: str | None) -> None:
    body = {"fileName": name, "fileType": declared, "fileSize": size}
    if digest is not None:
        body["sha256"] = digest
    request = rules.validate_upload_request(json.loads(json.dumps(body)), LIMIT)
    assert request.file_name == name
    assert request.file_type in rules.ALLOWED_TYPES
    assert request.file_size == size
    assert request.sha256 == digest
    assert rules.validate_upload_request(request.to_body(), LIMIT) == request
    assert rules.SAFE_NAME_PATTERN.fullmatch(rules.sanitise_name(request.file_name))


@given(
    st.dictionaries(
        st.sampled_from(["fileName", "fileType", "fileSize", "sha256", "x"]),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    )
)
def test_validation_of_any_flat_body_raises_only_validation_error(body: dict) -> None:
    try:
        request = rules.validate_upload_request(body, LIMIT)
    except ValidationError as error:
        assert error.status == 400
    else:
        assert 1 <= request.file_size <= LIMIT
