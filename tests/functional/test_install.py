"""Packaging: the Python versions imgup claims agree everywhere, and building it is quiet.

CI installs and smoke-tests every claimed version (``.ci/smoke.sh``, called by ``.ci/run``);
these tests keep the claim itself consistent, and need no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def ci_versions() -> list[tuple[int, int]]:
    match = re.search(r'^SUPPORTED_PYTHONS="([^"]+)"', (ROOT / ".ci" / "run").read_text(), re.M)
    assert match, ".ci/run names the Python versions it smoke-tests in SUPPORTED_PYTHONS"
    return [_version(v) for v in match.group(1).split()]


def test_every_claimed_python_version_is_smoke_tested_by_ci_and_the_oldest_is_the_floor() -> None:
    project = PYPROJECT["project"]
    claimed = sorted(
        _version(c.rsplit("::", 1)[1].strip())
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    floor = _version(project["requires-python"].removeprefix(">="))

    assert claimed == sorted(ci_versions())
    assert floor == claimed[0]
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py{floor[0]}{floor[1]}"
    assert _version(PYPROJECT["tool"]["mypy"]["python_version"]) == floor
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python {floor[0]}.{floor[1]} or newer" in readme
    assert sys.version_info[:2] >= floor


def test_the_lambda_runtime_is_a_python_version_ci_tests_the_backend_on() -> None:
    # The smoke test runs the real handlers in the local stack on each claimed version.
    runtimes = set(re.findall(r"Runtime:\s*python(3\.\d+)", (ROOT / "infra.yaml").read_text()))
    assert runtimes, "infra.yaml declares its Lambda runtime"
    assert {_version(r) for r in runtimes} <= set(ci_versions())


@pytest.mark.slow
def test_building_the_package_prints_no_warning_and_declares_its_floor(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    # copytree follows the imgup/infra.yaml symlink, as an sdist would hold the file itself
    shutil.copytree(ROOT / "imgup", source / "imgup", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )

    assert built.returncode == 0, built.stdout + built.stderr
    log = built.stdout + built.stderr
    build_lines = [line for line in log.splitlines() if "is ignored" not in line]  # pip's index config
    assert not [line for line in build_lines if re.search(r"warn|deprecat", line, re.I)]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "imgup/infra.yaml" in names
    assert "Requires-Python: >=3.11" in metadata
    assert "License-Expression: MIT" in metadata
