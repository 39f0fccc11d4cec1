"""The Lambda bundle: deterministic bytes, only the backend's sources, a key with the hash."""

from __future__ import annotations

import compileall
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from imgup.packaging import PACKAGE_NAME, backend_dir, build_bundle


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of the backend sources that a test may change."""
    copy = tmp_path / "backend"
    shutil.copytree(backend_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def entries(data: bytes) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.infolist()


def test_building_twice_gives_identical_bytes_and_hash():
    first, second = build_bundle(), build_bundle()

    assert first.data == second.data
    assert first.sha256 == second.sha256 == hashlib.sha256(first.data).hexdigest()


def test_the_bundle_holds_exactly_the_backend_python_files_under_imgup_backend():
    expected = sorted(
        f"{PACKAGE_NAME}/{path.relative_to(backend_dir()).as_posix()}"
        for path in backend_dir().rglob("*.py")
        if "__pycache__" not in path.parts
    )

    names = [info.filename for info in entries(build_bundle().data)]

    assert names == expected
    assert f"{PACKAGE_NAME}/handlers.py" in names
    assert f"{PACKAGE_NAME}/__init__.py" in names
    assert not any(name.endswith(("cli.py", "api.py", "uploads.py", "deployer.py")) for name in names)


def test_every_entry_has_the_fixed_timestamp_and_mode():
    infos = entries(build_bundle().data)

    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o644}


def test_the_entries_hold_the_source_bytes(source):
    with zipfile.ZipFile(io.BytesIO(build_bundle(source).data)) as zf:
        for path in sorted(source.rglob("*.py")):
            entry = f"{PACKAGE_NAME}/{path.relative_to(source).as_posix()}"
            assert zf.read(entry) == path.read_bytes(), entry


def test_the_bundle_does_not_depend_on_where_the_sources_live(source):
    assert build_bundle(source).data == build_bundle().data


def test_compiled_files_other_files_timestamps_and_modes_do_not_change_the_bundle(source):
    before = build_bundle(source)
    compileall.compile_dir(source, quiet=1)
    (source / "__pycache__" / "stray.py").write_text("x = 1\n", encoding="utf-8")
    (source / "README.txt").write_text("not code\n", encoding="utf-8")
    for path in source.glob("*.py"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
        path.chmod(0o755)

    after = build_bundle(source)

    assert after.sha256 == before.sha256
    assert "__pycache__" not in " ".join(info.filename for info in entries(after.data))


def test_changing_a_source_file_changes_the_hash_and_the_key(source):
    before = build_bundle(source)
    rules = source / "rules.py"
    rules.write_text(rules.read_text(encoding="utf-8") + "\n# a change\n", encoding="utf-8")

    after = build_bundle(source)

    assert after.sha256 != before.sha256
    assert after.key("gallery") != before.key("gallery")


def test_adding_a_source_file_changes_the_hash(source):
    before = build_bundle(source)
    (source / "extra.py").write_text("VALUE = 1\n", encoding="utf-8")

    after = build_bundle(source)

    assert after.sha256 != before.sha256
    assert f"{PACKAGE_NAME}/extra.py" in [info.filename for info in entries(after.data)]


def test_the_key_sits_under_the_stack_and_carries_the_content_hash():
    bundle = build_bundle()

    key = bundle.key("gallery")

    assert key.startswith("imgup/gallery/")
    assert key.endswith(".zip")
    assert bundle.sha256[:20] in key
    assert bundle.key("other") != key


def test_the_bundle_imports_as_imgup_backend_from_the_zip_alone(tmp_path):
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(build_bundle().data)
    code = "import imgup_backend.handlers, imgup_backend.rules\nprint(imgup_backend.handlers.__file__)\n"

    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(archive)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(archive))
