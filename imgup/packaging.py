"""Build the Lambda code bundle: a deterministic zip of ``imgup/backend`` as ``imgup_backend``.

Same sources, same bytes: files in sorted order, fixed timestamps and modes, so the content
hash in the artifact's key changes only when the code does, and re-deploying unchanged code
uploads nothing and changes nothing in the stack.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE_NAME = "imgup_backend"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    name: str = "backend"

    def key(self, stack_name: str) -> str:
        return f"imgup/{stack_name}/{self.name}-{self.sha256[:20]}.zip"


def backend_dir() -> Path:
    return Path(__file__).resolve().parent / "backend"


def build_bundle(source: Path | None = None) -> Bundle:
    source = source or backend_dir()
    files = (
        (f"{PACKAGE_NAME}/{path.relative_to(source).as_posix()}", path.read_bytes(), 0o644)
        for path in sorted(source.rglob("*.py"))
        if "__pycache__" not in path.relative_to(source).as_posix()
    )
    return _zip(files, "backend")


def _zip(files: Iterable[tuple[str, bytes, int]], name: str) -> Bundle:
    """A deterministic zip of (name, bytes, mode), in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path, content, mode in files:
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    data = buffer.getvalue()
    return Bundle(data=data, sha256=hashlib.sha256(data).hexdigest(), name=name)


# --- the thumbnail function's layer --------------------------------------------------------
#
# As SAM builds a Python dependency for Lambda: the manylinux wheel for the function's runtime
# and architecture (infra.yaml: python3.12, x86_64), unpacked under python/, which Lambda puts
# on the function's sys.path. Only the ThumbnailFunction has the layer.

PILLOW = "pillow==13.0.0"
"""The Pillow of the layer: the version imgup is tested with (constraints.txt)."""
LAYER_PYTHON = "3.12"
LAYER_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")


class LayerError(Exception):
    """The layer's wheel could not be had; the message says what pip said."""


def pillow_layer(
    cache_dir: Path, run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> Bundle:
    """The Pillow layer for AWS: the wheel is downloaded once (``pip download``, binary only,
    for the runtime's platform) into ``cache_dir``, then unpacked under ``python/``."""
    wheels = cache_dir / f"{PILLOW.replace('==', '-')}-cp{LAYER_PYTHON.replace('.', '')}"
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        platforms = [arg for platform in LAYER_PLATFORMS for arg in ("--platform", platform)]
        done = run(
            [sys.executable, "-m", "pip", "download", PILLOW, "--no-deps", "--only-binary=:all:"]
            + platforms
            + ["--python-version", LAYER_PYTHON, "--implementation", "cp", "-d", str(wheels), "--quiet"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        found = sorted(wheels.glob("*.whl"))
        if done.returncode != 0 or not found:
            said = [line for line in (done.stderr or "").splitlines() if "is ignored" not in line]
            raise LayerError("; ".join(said[-3:]) or f"pip exited with {done.returncode}")
    with zipfile.ZipFile(found[0]) as wheel:
        files = [
            (f"python/{info.filename}", wheel.read(info), 0o755 if info.filename.endswith(".so") else 0o644)
            for info in sorted(wheel.infolist(), key=lambda i: i.filename)
            if not info.is_dir()
        ]
    return _zip(files, "pillow-layer")


def placeholder_layer() -> Bundle:
    """The layer on the local stack, which runs the thumbnail function in-process with the
    Pillow of imgup's own environment: nothing to download."""
    note = b"The local stack runs the thumbnail function with imgup's own Pillow.\n"
    return _zip([("python/README.txt", note, 0o644)], "pillow-layer")


def template_path() -> Path:
    """infra.yaml; ``imgup/infra.yaml`` is a link to the root file, copied into wheels."""
    return Path(__file__).resolve().parent / "infra.yaml"
