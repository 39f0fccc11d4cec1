"""The gallery page in Chromium against the local stack: what a person does with it.

Each test works on images of its own (names with the test's prefix), in one local stack and
one ``imgup gallery`` per module; the API is asked afterwards what was really stored.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.browser.conftest import DESKTOP, PHONE, open_gallery, screenshot, wait_until_listed

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


FORMATS = {".jpg": "JPEG", ".png": "PNG", ".gif": "GIF", ".webp": "WEBP"}


def copies(directory: Path, prefix: str, *names: str) -> list[Path]:
    """Pictures of their own for each test (the gallery keeps one copy of the same bytes):
    a landscape of colours drawn from the name, in the format its extension says."""
    from PIL import Image, ImageDraw

    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for name in names:
        target = directory / f"{prefix}-{name}"
        seed = hashlib.sha256(target.name.encode()).digest()
        sky, land, sun = seed[0:3], seed[3:6], (255, 220, 120)
        image = Image.new("RGB", (640, 420), tuple(sky))
        draw = ImageDraw.Draw(image)
        draw.ellipse((420 + seed[6] % 80, 50, 520 + seed[6] % 80, 150), fill=sun)
        draw.polygon(
            [
                (0, 300),
                (160 + seed[7], 180),
                (360, 290),
                (520, 200 + seed[8] % 60),
                (640, 280),
                (640, 420),
                (0, 420),
            ],
            fill=tuple(land),
        )
        image.save(target, FORMATS[target.suffix])
        made.append(target)
    return made


def stored(local_stack) -> dict[str, dict]:
    listed = local_stack.imgup("list", "--all", "--json")
    assert listed.code == 0, listed.stderr
    return {image["fileName"]: image for image in listed.json()}


def upload(page, files: list[Path]) -> None:
    page.set_input_files("#file-input", [str(f) for f in files])
    for f in files:
        page.locator(".tile", has_text=f.name).wait_for()


def tile(page, name: str):
    return page.locator(".tile", has=page.get_by_text(name, exact=True))


def test_two_images_uploaded_through_the_page_appear_in_the_grid_and_are_stored(
    tab, local_stack, tmp_path: Path
) -> None:
    files = copies(tmp_path, "up", "sunset.jpg", "ocean.png")
    upload(tab.page, files)

    grid_names = tab.page.locator(".tile-name").all_inner_texts()
    assert grid_names[:2] in (["up-sunset.jpg", "up-ocean.png"], ["up-ocean.png", "up-sunset.jpg"])
    for f in files:
        shown = tile(tab.page, f.name)
        assert shown.locator("img").get_attribute("alt") == f.name
        assert shown.locator(".badge").inner_text() == ("JPEG" if f.suffix == ".jpg" else "PNG")
    images = stored(local_stack)
    for f in files:
        # The page hashed the bytes itself (crypto.subtle) and the presigned PUT bound them.
        assert images[f.name]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert images[f.name]["fileSize"] == f.stat().st_size
    assert tab.page.locator(".upload-item[data-state=failed]").count() == 0
    assert {"POST /uploads", "POST /uploads/complete"} <= set(tab.api_calls)
    assert tab.offsite == []
    assert tab.console_errors == []


def test_the_viewer_opens_from_the_keyboard_steps_with_the_arrow_keys_and_closes_with_escape(
    tab, tmp_path: Path
) -> None:
    upload(tab.page, copies(tmp_path, "view", "forest.gif", "dusk.webp"))
    names = tab.page.locator(".tile-name").all_inner_texts()
    first = names[0]
    tab.page.locator(".tile-open").first.focus()
    tab.page.keyboard.press("Enter")

    dialog = tab.page.get_by_role("dialog")
    dialog.wait_for()
    assert dialog.locator("#viewer-title").inner_text() == first
    assert dialog.locator("#viewer-image").get_attribute("alt") == first
    tab.page.keyboard.press("ArrowRight")
    assert dialog.locator("#viewer-title").inner_text() == names[1]
    assert dialog.locator("#viewer-position").inner_text().startswith("Image 2 of ")
    tab.page.keyboard.press("ArrowLeft")
    assert dialog.locator("#viewer-title").inner_text() == first
    with tab.page.expect_download() as saving:
        dialog.get_by_role("button", name="Download").click()
    saved = tmp_path / "saved"
    saving.value.save_as(saved)
    assert saving.value.suggested_filename == first
    assert saved.read_bytes() == (tmp_path / first).read_bytes()  # through the bucket's CORS GET
    assert dialog.get_by_role("link", name="Open original").get_attribute("target") == "_blank"
    tab.page.keyboard.press("Escape")

    dialog.wait_for(state="hidden")
    focused = tab.page.evaluate("document.activeElement.closest('.tile')?.dataset.id")
    assert focused == tile(tab.page, first).get_attribute("data-id")


def test_deleting_from_the_viewer_asks_first_then_removes_the_image(tab, local_stack, tmp_path: Path) -> None:
    kept, doomed = copies(tmp_path, "del", "sunset.jpg", "ocean.png")
    upload(tab.page, [kept, doomed])
    tile(tab.page, doomed.name).locator(".tile-open").click()
    dialog = tab.page.get_by_role("dialog")

    dialog.get_by_role("button", name="Delete…").click()
    assert (
        dialog.locator("#viewer-confirm-text").inner_text() == f"Delete {doomed.name}? It cannot be undone."
    )
    dialog.get_by_role("button", name="Keep it").click()
    assert doomed.name in stored(local_stack)

    dialog.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    tile(tab.page, doomed.name).wait_for(state="detached")

    images = stored(local_stack)
    assert doomed.name not in images
    assert kept.name in images
    assert dialog.is_visible()  # it shows the next image
    assert dialog.locator("#viewer-title").inner_text() != doomed.name


def test_a_too_large_file_and_non_images_get_the_pages_errors_and_nothing_is_sent(
    tab, local_stack, tmp_path: Path
) -> None:
    before = {image["imageId"] for image in stored(local_stack).values()}
    too_large = tmp_path / "huge.png"
    too_large.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024 - 7))  # the limit + 1
    text = tmp_path / "notes.txt"
    text.write_text("not a picture\n")
    disguised = tmp_path / "holiday.jpg"
    disguised.write_text("<html>not a JPEG either</html>")
    tab.api_calls.clear()

    tab.page.set_input_files("#file-input", [str(too_large), str(text), str(disguised)])

    alerts = tab.page.get_by_role("alert")
    alerts.nth(2).wait_for()
    messages = sorted(alerts.all_inner_texts())
    assert messages == [
        "holiday.jpg: is not a JPEG, PNG, GIF or WebP image (by its content).",
        "huge.png: 5,242,881 bytes exceeds the limit (5 MiB).",
        "notes.txt: is not a JPEG, PNG, GIF or WebP image (by its content).",
    ]
    assert [call for call in tab.api_calls if call.startswith("POST")] == []
    assert {image["imageId"] for image in stored(local_stack).values()} == before


def test_filters_by_name_and_type_ask_the_api_and_show_only_what_matches(tab, tmp_path: Path) -> None:
    upload(tab.page, copies(tmp_path, "flt", "sunset.jpg", "ocean.png", "dusk.webp"))
    page = tab.page

    page.get_by_label("Type").select_option(label="PNG")
    wait_until_listed(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.badge')].every(b => b.textContent === 'PNG')"
    )
    assert "flt-ocean.png" in page.locator(".tile-name").all_inner_texts()

    page.get_by_label("Type").select_option(label="All types")
    page.get_by_label("Name").fill("flt-*.webp")
    shown_names = "() => [...document.querySelectorAll('.tile-name')].map(n => n.textContent).join()"
    page.wait_for_function(f"() => ({shown_names})() === 'flt-dusk.webp'")

    page.get_by_label("Name").fill("no-such-image")
    page.get_by_text("No images match these filters.").wait_for()
    page.get_by_role("button", name="Clear").click()
    tile(page, "flt-sunset.jpg").wait_for()
    listed = [call for call in tab.api_calls if call.startswith("GET /images?")]
    assert listed, tab.api_calls


def test_the_page_can_be_used_with_the_keyboard_alone(tab) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # the tier may be skipped

    page = tab.page
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    assert page.evaluate("document.activeElement.id") == "file-input"
    chooser = None
    for key in ("Space", "Enter"):  # either activates a file input; a busy machine may drop one
        try:
            with page.expect_file_chooser(timeout=10_000) as opened:
                page.keyboard.press(key)
            chooser = opened.value
            break
        except PlaywrightTimeout:
            assert page.evaluate("document.activeElement.id") == "file-input"
    assert chooser is not None and chooser.is_multiple()
    assert page.get_by_label(re.compile("Choose images")).get_attribute("type") == "file"


def test_tags_given_at_upload_edited_in_the_viewer_and_filtered_by_round_trip_through_the_api(
    tab, local_stack, tmp_path: Path
) -> None:
    page = tab.page
    page.get_by_label("Tags for new uploads (optional)").fill("Trip=Iceland, camera=x100")
    upload(page, copies(tmp_path, "tag", "sunset.jpg", "forest.gif"))
    upload_tags = {"trip": "Iceland", "camera": "x100"}
    images = stored(local_stack)
    assert images["tag-sunset.jpg"]["tags"] == images["tag-forest.gif"]["tags"] == upload_tags
    assert tile(page, "tag-sunset.jpg").locator(".chip").all_inner_texts() == ["camera=x100", "trip=Iceland"]

    tile(page, "tag-sunset.jpg").locator(".tile-open").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Add a tag (KEY=VALUE)").fill("Place=Vík, south")
    dialog.get_by_role("button", name="Add tag").click()
    dialog.get_by_text("place=Vík, south").wait_for()
    dialog.get_by_role("button", name="Remove tag camera=x100").click()
    dialog.get_by_role("button", name="Remove tag camera=x100").wait_for(state="detached")
    dialog.get_by_label("Add a tag (KEY=VALUE)").fill("bad key=1")
    dialog.get_by_role("button", name="Add tag").click()
    assert "Invalid tag key 'bad key'" in dialog.get_by_role("alert").inner_text()
    page.keyboard.press("Escape")

    edited = {"trip": "Iceland", "place": "Vík, south"}
    assert stored(local_stack)["tag-sunset.jpg"]["tags"] == edited
    assert tile(page, "tag-sunset.jpg").locator(".chip").all_inner_texts() == [
        "place=Vík, south",
        "trip=Iceland",
    ]

    page.get_by_label("Tag", exact=True).fill("place=Vík, south")
    shown_names = "() => [...document.querySelectorAll('.tile-name')].map(n => n.textContent).join()"
    page.wait_for_function(f"() => ({shown_names})() === 'tag-sunset.jpg'")
    page.get_by_label("Tag", exact=True).fill("camera")
    page.wait_for_function(f"() => ({shown_names})() === 'tag-forest.gif'")
    assert any(call.startswith("GET /images?") and "tag=camera" in call for call in tab.api_calls)


def test_bad_tags_for_new_uploads_stop_the_upload_before_any_request(
    tab, local_stack, tmp_path: Path
) -> None:
    before = {image["imageId"] for image in stored(local_stack).values()}
    tab.api_calls.clear()
    tab.page.get_by_label("Tags for new uploads (optional)").fill("trip=Iceland, oops")
    tab.page.set_input_files("#file-input", [str(f) for f in copies(tmp_path, "badtag", "ocean.png")])
    alert = tab.page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "Tags for new uploads: A tag is KEY=VALUE, not 'oops'. Nothing was uploaded."
    assert [call for call in tab.api_calls if call.startswith("POST")] == []
    assert {image["imageId"] for image in stored(local_stack).values()} == before


def test_a_listing_that_fails_shows_the_error_and_a_way_to_try_again(chromium, gallery) -> None:
    seen = open_gallery(chromium, gallery)
    page = seen.page
    try:
        failing = [True]
        failures: list[str] = []

        def fail(route) -> None:
            if failing[0]:
                failures.append(route.request.url)
                route.fulfill(status=500, json={"error": "Internal server error", "requestId": "r-1"})
            else:
                route.fallback()

        page.route("**/images?*", fail)
        page.get_by_label("Name").fill("anything")  # a new listing, which fails (after its retries)
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert alert.inner_text() == "The gallery could not be loaded: Internal server error"
        assert len(failures) == 4  # the first request and 3 retries
        failing[0] = False
        page.get_by_role("button", name="Try again").click()
        alert.wait_for(state="detached")
        page.get_by_text("No images match these filters.").wait_for()
    finally:
        page.context.close()


def test_screenshots_at_desktop_and_phone_width(chromium, gallery, tab, tmp_path: Path) -> None:
    tab.page.get_by_label("Tags for new uploads (optional)").fill("set=examples")
    upload(tab.page, copies(tmp_path, "shot", "sunset.jpg", "ocean.png", "dusk.webp", "forest.gif"))
    # The server makes each thumbnail after completion; the page swaps it in as it comes.
    tab.page.wait_for_function(
        "() => [...document.querySelectorAll('.tile')].filter(t => t.textContent.includes('shot-'))"
        ".every(t => t.querySelector('img').src.includes('/thumbnails/'))"
    )
    shots = [screenshot(tab.page, "desktop")]
    tab.page.locator(".tile-open").first.click()
    tab.page.get_by_role("dialog").wait_for()
    shots.append(screenshot(tab.page, "desktop-viewer", full_page=False))

    phone = open_gallery(chromium, gallery, PHONE)
    try:
        shots.append(screenshot(phone.page, "phone"))
        columns = phone.page.evaluate(
            "getComputedStyle(document.querySelector('#grid')).gridTemplateColumns.split(' ').length"
        )
        assert columns == 2
        assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone.page.locator(".tile-open").first.click()
        phone.page.get_by_role("dialog").wait_for()
        shots.append(screenshot(phone.page, "phone-viewer", full_page=False))
        assert phone.offsite == []
    finally:
        phone.page.context.close()
    assert all(shot.stat().st_size > 10_000 for shot in shots)
    assert DESKTOP["width"] > PHONE["width"]


def test_bytes_already_in_the_gallery_are_reported_and_not_stored_again(
    tab, local_stack, tmp_path: Path
) -> None:
    [picture] = copies(tmp_path, "dup", "sunset.jpg")
    upload(tab.page, [picture])
    before = {image["imageId"] for image in stored(local_stack).values()}
    again = tmp_path / "again"
    again.mkdir()
    renamed = again / "dup-again.jpg"
    renamed.write_bytes(picture.read_bytes())

    tab.page.set_input_files("#file-input", [str(renamed)])
    tab.page.locator(".upload-item", has_text="dup-again.jpg").get_by_text(
        "Already in the gallery"
    ).wait_for()

    assert {image["imageId"] for image in stored(local_stack).values()} == before
    assert tab.page.locator(".tile", has_text="dup-sunset.jpg").count() == 1
