"""The backend is an island: it imports only the standard library, boto3 and botocore, and runs
as the package ``imgup_backend`` that the deploy zip holds (docs/internals.md)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import imgup.backend

BACKEND = Path(imgup.backend.__file__).parent
ALLOWED_THIRD_PARTY = {"boto3", "botocore"}


def run_python(code: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_backend_pulls_in_no_cli_modules() -> None:
    code = (
        "import json, sys\n"
        "import imgup.backend.handlers, imgup.backend.rules, imgup.backend.storage\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(run_python(code))
    forbidden = [
        name
        for name in loaded
        if name.split(".")[0] in {"typer", "rich", "httpx", "click", "moto"}
        or name == "imgup.cli"
        or name.startswith("imgup.cli.")
    ]
    assert forbidden == []


def test_the_rules_import_only_the_standard_library() -> None:
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import imgup.backend.rules\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    loaded = json.loads(run_python(code))
    third_party = {name.split(".")[0] for name in loaded} - set(sys.stdlib_module_names) - {"imgup"}
    assert third_party == set()


def test_every_backend_import_is_stdlib_boto_or_relative() -> None:
    for path in sorted(BACKEND.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: fine
                    continue
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            outside = roots - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY - {"__future__"}
            if path.name == "thumbnails.py":  # its function alone has a layer with Pillow
                outside -= {"PIL"}
            assert not outside, f"{path.name}:{node.lineno} imports {outside}"
            if path.name == "rules.py":
                assert not roots & ALLOWED_THIRD_PARTY, f"rules.py:{node.lineno} must be pure"


def test_the_backend_runs_as_the_package_imgup_backend(tmp_path: Path) -> None:
    shutil.copytree(BACKEND, tmp_path / "imgup_backend", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import json, sys\n"
        "import imgup_backend.handlers as h\n"
        "answer = h.images({'httpMethod': 'OPTIONS', 'path': '/images'}, None, {})\n"
        "print(json.dumps([answer['statusCode'], any(m.startswith('imgup.') for m in sys.modules)]))\n"
    )
    assert json.loads(run_python(code, cwd=tmp_path)) == [204, False]


def test_no_handler_but_the_thumbnail_renderer_loads_pillow() -> None:
    code = (
        "import json, sys\n"
        "import imgup.backend.handlers, imgup.backend.thumbnails\n"
        "print(json.dumps('PIL' in sys.modules))\n"
    )
    assert json.loads(run_python(code)) is False
