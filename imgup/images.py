"""Managing stored images from the client: fetch one's details, download its bytes verified,
share a link to it.

UI-free like imgup.uploads: each function returns a result or raises an ImgupError whose
message says what went wrong with that one image (the command reports it and goes on).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from .api import ImageApi, describe_transport_error, transport_errors
from .backend import rules
from .errors import ApiError, ImgupError

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$", re.IGNORECASE)
MAX_NAME_BYTES = 255


class ItemFailed(ImgupError):
    """One image of a batch could not be handled; the others go on."""


def check_id(image_id: str) -> str:
    if not rules.is_image_id(image_id):
        raise ItemFailed("not an image id (ids look like 0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b).")
    return image_id


def get_image(api: ImageApi, image_id: str) -> dict[str, Any]:
    """The image's details from the API; ItemFailed when it is not in the gallery."""
    check_id(image_id)
    try:
        return api.get(image_id)
    except ApiError as exc:
        if exc.status in (400, 404):
            raise ItemFailed("not in the gallery.") from None
        raise


def change_tags(api: ImageApi, image_id: str, set_tags: dict[str, str], remove: list[str]) -> dict[str, Any]:
    """The image after setting and removing tags; ItemFailed when it is not in the gallery or
    the API refuses the change (too many tags)."""
    check_id(image_id)
    try:
        return api.change_tags(image_id, set_tags, remove)
    except ApiError as exc:
        if exc.status == 404:
            raise ItemFailed("not in the gallery.") from None
        if exc.status == 400:
            raise ItemFailed(exc.message) from None
        raise


def safe_local_name(name: str) -> str:
    """A stored file name made safe to create on any common file system: no path separators,
    control or reserved characters, no leading dot or trailing dot or space, not a reserved
    device name, at most 255 bytes (keeping the extension), never empty."""
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text).strip().rstrip(". ")
    text = text.lstrip(".") or "image"
    if _RESERVED.match(text):
        text = "_" + text
    if len(text.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, ext = text.rpartition(".")
        if not dot or len(ext) > 16:
            stem, ext = text, ""
        suffix = f".{ext}" if ext else ""
        budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
        text = stem + suffix
    return text


def download(api: ImageApi, image_id: str, directory: Path, *, force: bool = False) -> dict[str, Any]:
    """Save the image under its stored name (made safe) in ``directory``; its SHA-256 and size
    must be the recorded ones. Never overwrites a file unless ``force``. The result: the
    image's id, name, size, SHA-256 and the ``path`` written."""
    image = get_image(api, image_id)
    target = directory / safe_local_name(str(image.get("fileName") or image_id))
    if target.exists() and not force:
        raise ItemFailed(f"{target} exists; pass --force to overwrite it.")
    url = image.get("fileUrl")
    if not url:
        raise ItemFailed("the API gave no fileUrl for it.")
    digest = hashlib.sha256()
    size = 0
    fd, temporary = tempfile.mkstemp(prefix=".imgup-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            try:
                with api.http.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise ItemFailed(f"storage answered HTTP {response.status_code} for its bytes.")
                    for chunk in response.iter_bytes(256 * 1024):
                        digest.update(chunk)
                        size += len(chunk)
                        handle.write(chunk)
            except transport_errors() as exc:
                raise ItemFailed(f"the download failed: {describe_transport_error(exc)}.") from None
        expected = image.get("sha256")
        if expected and digest.hexdigest() != expected:
            raise ItemFailed("the bytes received do not have the recorded SHA-256; nothing was saved.")
        if isinstance(image.get("fileSize"), int) and size != image["fileSize"]:
            raise ItemFailed(
                f"received {size} bytes, but the image has {image['fileSize']}; nothing was saved."
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as any new file, not mkstemp's 0600
        _place(Path(temporary), target, force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return {
        "imageId": image_id,
        "fileName": image.get("fileName"),
        "fileSize": size,
        "sha256": digest.hexdigest(),
        "path": str(target),
    }


def _place(temporary: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the name was taken meanwhile: never overwrite
    except FileExistsError:
        raise ItemFailed(f"{target} exists; pass --force to overwrite it.") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise ItemFailed(f"{target} exists; pass --force to overwrite it.") from None
        os.replace(temporary, target)


def share_image(api: ImageApi, image_id: str, expires_in: int) -> dict[str, Any]:
    """A link to the image that anyone can open for ``expires_in`` seconds: the API's URL and
    the path it answers. The result: the image's id, the ``url``, ``expiresAt`` (UTC) and
    ``expiresIn`` (seconds)."""
    check_id(image_id)
    try:
        answer = api.share(image_id, expires_in)
    except ApiError as exc:
        if exc.status == 404:
            raise ItemFailed("not in the gallery.") from None
        raise
    path = str(answer.get("sharePath") or "")
    if not path.startswith("/share/"):
        raise ApiError("The API answered a share request without a share path.")
    return {
        "imageId": image_id,
        "url": api.base_url + path,
        "expiresAt": answer.get("expiresAt"),
        "expiresIn": answer.get("expiresIn", expires_in),
    }
