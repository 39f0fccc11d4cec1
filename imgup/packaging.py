"""Build the Lambda code bundle: a deterministic zip of ``imgup/backend`` as ``imgup_backend``.

Same sources, same bytes: files in sorted order, fixed timestamps and modes, so the content
hash in the artifact's key changes only when the code does, and re-deploying unchanged code
uploads nothing and changes nothing in the stack.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE_NAME = "imgup_backend"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str

    def key(self, stack_name: str) -> str:
        return f"imgup/{stack_name}/backend-{self.sha256[:20]}.zip"


def backend_dir() -> Path:
    return Path(__file__).resolve().parent / "backend"


def build_bundle(source: Path | None = None) -> Bundle:
    source = source or backend_dir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(source.rglob("*.py")):
            relative = path.relative_to(source).as_posix()
            if "__pycache__" in relative:
                continue
            info = zipfile.ZipInfo(f"{PACKAGE_NAME}/{relative}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    return Bundle(data=data, sha256=hashlib.sha256(data).hexdigest())


def template_path() -> Path:
    """infra.yaml; ``imgup/infra.yaml`` is a link to the root file, copied into wheels."""
    return Path(__file__).resolve().parent / "infra.yaml"
