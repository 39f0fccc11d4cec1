"""The command line as a user meets it: help, exit codes, streams, and startup cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imgup.cli import app
from tests.conftest import IMGUP, run_imgup
from tests.isolation import isolated_env

COMMANDS = [
    ["deploy"],
    ["upload"],
    ["list"],
    ["delete"],
    ["show"],
    ["download"],
    ["open"],
    ["gallery"],
    ["tag"],
    ["untag"],
    ["share"],
    ["status"],
    ["cleanup"],
    ["doctor"],
    ["local"],
    ["local", "start"],
    ["local", "stop"],
    ["local", "status"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_text(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    summary = result.output.split("Usage", 1)[1]
    assert len(summary.strip().splitlines()) > 2


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_shows_an_example_of_itself(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    examples = [line.strip() for line in result.output.splitlines() if line.strip().startswith("Example:")]
    assert examples, result.output
    assert "imgup " + command[0] in examples[0]


def test_every_command_of_the_app_is_in_the_list_of_commands() -> None:
    names = {(command.name or command.callback.__name__,) for command in app.registered_commands} | {
        ("local",)
    }
    assert names == {tuple(c[:1]) for c in COMMANDS}


def test_python_dash_m_imgup_help_runs_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imgup", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("deploy", "upload", "list", "status", "cleanup", "local"):
        assert command in result.stdout


def test_help_imports_no_aws_or_http_library() -> None:
    probe = (
        "import sys\n"
        "sys.argv = ['imgup', '--help']\n"
        "from imgup.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'moto', 'httpx'})\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "HEAVY=" in result.stderr
    assert result.stderr.rsplit("HEAVY=", 1)[1].strip() == ""


def test_a_command_with_options_imports_neither_pydantic_nor_the_httpx_command(tmp_path: Path) -> None:
    # Startup is part of every command in a pipeline: Typer 0.29 imports pydantic to coerce
    # options (~0.1 s; constraints.txt pins 0.28), httpx imports its own command-line tool
    # (click, pygments: ~30 ms) unless imgup.api.import_httpx keeps it out.
    probe = (
        "import sys\n"
        "sys.argv = ['imgup', 'list', '--json', '-n', '3', '--name', 'a*']\n"
        "from imgup.cli import main\n"
        "from imgup.api import make_http_client\n"
        "make_http_client(5.0, tls=False).close()\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in ('pydantic', 'httpx._main', 'pygments') if m in sys.modules]\n"
        "sys.stderr.write('LOADED=' + ','.join(loaded) + ' HTTPX=' + str('httpx' in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=isolated_env(tmp_path / "config"),
    )
    assert "LOADED=" in result.stderr, result.stderr
    assert result.stderr.rsplit("LOADED=", 1)[1].strip() == "HTTPX=True"


def test_httpx_works_without_its_command_and_the_command_can_still_be_imported() -> None:
    probe = (
        "import sys\n"
        "from imgup.api import import_httpx\n"
        "httpx = import_httpx()\n"
        "assert 'httpx._main' not in sys.modules\n"
        "answer = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(204))).get('http://x/')\n"
        "import httpx._main\n"
        "print(answer.status_code, httpx._main.main.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["204", "main"]


def test_version_prints_on_stdout() -> None:
    result = run_imgup("--version")
    assert result.code == 0 and result.stdout.startswith("imgup ")


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["list", "--json"],
        ["status"],
        ["upload", "x.jpg"],
        ["delete", "abc"],
        ["cleanup", "--yes"],
        ["doctor"],
    ],
    ids=" ".join,
)
def test_commands_before_any_deploy_exit_3_and_say_to_deploy(command: list[str]) -> None:
    result = run_imgup(*command)
    assert result.code == 3
    assert result.stdout == ""
    assert "Error:" in result.stderr and "imgup deploy" in result.stderr
    assert "Traceback" not in result.stderr


def _fake_record(api_url: str = "http://127.0.0.1:9/_api/x/y/v1", **changes: object) -> dict:
    """A deployment record that points at a closed port: any network call would fail."""
    record = {
        "target": "aws",
        "stack_name": "imgup",
        "region": "us-east-1",
        "api_url": api_url,
        "api_id": "x",
        "bucket": "b",
        "table": "t",
        "artifacts_bucket": "a",
        "max_upload_bytes": 1024,
        "profile": None,
        "endpoint_url": None,
        "api_key_id": None,
        "stack_status": "CREATE_COMPLETE",
        "deployed_at": None,
    }
    record.update(changes)
    return record


def _fake_deployment(config_dir: Path, **changes: object) -> Path:
    """Remember a fake deployment (see ``_fake_record``); its folder in the registry."""
    from imgup.config import Deployment
    from imgup.deployments import DeploymentId, Registry

    deployment = Deployment(**_fake_record(**changes))  # type: ignore[arg-type]
    registry = Registry(config_dir)
    registry.save(deployment, "secret-key-value")
    return registry.directory / DeploymentId.of(deployment).dirname


def test_cleanup_without_yes_and_without_a_terminal_refuses_with_exit_2(isolated: Path) -> None:
    folder = _fake_deployment(isolated)
    result = run_imgup("cleanup")
    assert result.code == 2
    assert "--yes" in result.stderr
    assert (folder / "deployment.json").exists()


def test_bad_files_are_refused_before_any_network_call_with_exit_7_when_all_fail(
    isolated: Path, tmp_path: Path, samples: dict[str, Path]
) -> None:
    _fake_deployment(isolated)
    big = tmp_path / "big.png"
    big.write_bytes(samples["image/png"].read_bytes() + b"\0" * 2048)
    empty = tmp_path / "empty.gif"
    empty.touch()
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    result = run_imgup("upload", str(big), str(empty), str(text), str(tmp_path / "none.webp"), str(tmp_path))
    assert result.code == 7
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert any("big.png" in e and "exceeds the limit (1 KiB)" in e for e in errors)
    assert any("empty.gif: is empty" in e for e in errors)
    assert any("notes.jpg: is not a JPEG, PNG, GIF or WebP image" in e for e in errors)
    assert any("none.webp: no such file" in e for e in errors)
    assert any("is a directory" in e for e in errors)
    assert "Cannot reach" not in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_api_is_a_clear_error_with_exit_5(isolated: Path, samples: dict[str, Path]) -> None:
    _fake_deployment(isolated)
    result = run_imgup("list", "--json", env={"IMGUP_RETRIES": "0", "IMGUP_TIMEOUT": "2"})
    assert result.code == 5
    assert result.stdout == ""
    assert "Cannot reach the API" in result.stderr
    assert "secret-key-value" not in result.stderr


def test_a_bad_setting_in_the_environment_is_a_usage_error(isolated: Path) -> None:
    _fake_deployment(isolated)
    result = run_imgup("list", env={"IMGUP_CONCURRENCY": "many"})
    assert result.code == 2
    assert "IMGUP_CONCURRENCY" in result.stderr


def test_an_invalid_stack_name_is_refused_before_deploying(isolated: Path) -> None:
    result = run_imgup("deploy", "--local", "--stack-name", "My_Stack")
    assert result.code == 2
    assert "Invalid stack name 'My_Stack'" in result.stderr


def test_aws_deploy_without_credentials_says_what_to_set(isolated: Path, monkeypatch) -> None:
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": ""}
    result = run_imgup("deploy", "--region", "us-east-1", env=env, timeout=120)
    assert result.code == 4
    assert "no AWS credentials" in result.stderr and "--local" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_options_are_usage_errors_with_exit_2() -> None:
    result = run_imgup("list", "--colour")
    assert result.code == 2
    assert "No such option" in result.stderr


def test_deploy_progress_prints_stack_events_verbatim_even_with_brackets(capsys) -> None:
    from imgup.context import StderrReporter
    from imgup.stack import StackEvent

    reporter = StderrReporter()
    reporter.step("Creating stack [demo]")
    reporter.stack_event(
        StackEvent("Bucket", "AWS::S3::Bucket", "CREATE_FAILED", "Policy [/] has [red] in it")
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Creating stack [demo]" in captured.err
    assert "CREATE_FAILED" in captured.err and "Policy [/] has [red] in it" in captured.err


def _cleanup_at_a_terminal(answer: str) -> tuple[int, str, str]:
    """``imgup cleanup`` with a pseudo-terminal as stdin, answering its prompt with ``answer``."""
    import os
    import pty

    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [IMGUP, "cleanup"], stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        os.close(secondary)
        os.write(primary, answer.encode() + b"\n")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(primary)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("answer", ["n", ""], ids=["no", "enter"])
def test_answering_no_at_the_cleanup_prompt_deletes_nothing_and_is_not_an_error(
    isolated: Path, answer: str
) -> None:
    folder = _fake_deployment(isolated)

    code, stdout, stderr = _cleanup_at_a_terminal(answer)

    assert code == 0, stderr
    assert stdout == ""
    assert "Delete stack imgup" in stderr and "nothing was deleted" in stderr
    assert "Error" not in stderr
    assert (folder / "deployment.json").exists() and (folder / "api-key").exists()


# --- bad settings are usage errors that name the setting and create nothing -------------


def _one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    assert "Hint:" in stderr and "bug" not in stderr and "Traceback" not in stderr
    return errors[0]


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--local", "--region", "nowhere-1"], {}, "--region"),
        (["--local", "--region", "xx-nowhere-1"], {}, "--region"),  # well formed, but no such region
        (["--local"], {"IMGUP_REGION": "nowhere-1"}, "IMGUP_REGION"),
        (["--region", "xx-nowhere-1"], {}, "--region"),  # AWS: refused before any request
        (["--local", "--wait", "nan"], {}, "--wait"),
        (["--local", "--wait", "1e308"], {}, "--wait"),
        (["--local", "--alert-email", "bob"], {}, "--alert-email"),
    ],
    ids=lambda item: " ".join(item) if isinstance(item, list) else str(item),
)
def test_deploy_with_a_bad_setting_exits_2_naming_it_and_starts_nothing(
    isolated: Path, args, env, named
) -> None:
    result = run_imgup("deploy", *args, env=env)

    assert result.code == 2, result.stderr
    assert result.stdout == ""
    assert named in _one_error(result.stderr)
    assert not (isolated / "local").exists(), "a local stack was started"
    assert not list((isolated / "deployments").glob("*")), "a deployment was remembered"


def test_deploy_with_a_config_dir_it_cannot_write_exits_2_before_starting_anything(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")

    result = run_imgup("deploy", "--local", env={"IMGUP_CONFIG_DIR": str(not_a_dir / "imgup")})

    assert result.code == 2
    assert "Not a directory" in _one_error(result.stderr)
    assert "IMGUP_CONFIG_DIR" in result.stderr
    assert not_a_dir.read_text() == ""


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"timeout": 1e308}, "timeout"),
        ({"concurrency": 1000000}, "concurrency"),
        ({"retries": True}, "retries"),
        ({"concurency": 8}, "'concurency'"),
        ({"region": 5}, "region"),
    ],
    ids=lambda item: json.dumps(item) if isinstance(item, dict) else item,
)
def test_a_bad_config_file_is_a_usage_error_naming_the_setting_for_every_command(
    isolated: Path, values: dict, named: str
) -> None:
    _fake_deployment(isolated)
    (isolated / "config.json").write_text(json.dumps(values))

    for command in (["list"], ["status"], ["upload", "x.jpg"], ["deploy", "--local"]):
        result = run_imgup(*command)
        assert result.code == 2, (command, result.stderr)
        error = _one_error(result.stderr)
        assert named in error and "config.json" in error
    assert not (isolated / "local").exists()


def test_an_unknown_config_key_is_named_with_the_known_ones(isolated: Path) -> None:
    isolated.mkdir(parents=True)
    (isolated / "config.json").write_text('{"stack-name": "gallery"}')

    result = run_imgup("list")

    assert result.code == 2
    assert "'stack-name'" in _one_error(result.stderr)
    assert "Known settings: stack_name, region" in result.stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_upload_bytes", "big"), ("api_url", 5), ("target", "cloud"), ("region", None)],
)
def test_a_deployment_record_with_wrong_types_is_a_usage_error_naming_the_field(
    isolated: Path, field: str, value: object
) -> None:
    folder = _fake_deployment(isolated)
    (folder / "deployment.json").write_text(json.dumps(_fake_record(**{field: value})))

    for command in (["list"], ["status"], ["upload", "x.jpg"], ["doctor"], ["cleanup", "--yes"]):
        result = run_imgup(*command)
        assert result.code == 2, (command, result.stderr)
        error = _one_error(result.stderr)
        assert field in error and "deployment.json" in error


@pytest.mark.parametrize("broken", ["directory", "not-utf8"])
def test_a_broken_api_key_file_is_a_usage_error_naming_it(isolated: Path, broken: str) -> None:
    key = _fake_deployment(isolated) / "api-key"
    key.unlink()
    if broken == "directory":
        key.mkdir()
    else:
        key.write_bytes(b"\xff\xfe\x00key")

    for command in (["list"], ["status", "--show-key"]):
        result = run_imgup(*command)
        assert result.code == 2, (command, result.stderr)
        assert f"The API key file {key}" in _one_error(result.stderr)


def test_an_api_key_file_others_can_read_gets_a_warning_and_the_command_goes_on(isolated: Path) -> None:
    key = _fake_deployment(isolated) / "api-key"
    key.chmod(0o644)

    result = run_imgup("list", env={"IMGUP_RETRIES": "0", "IMGUP_TIMEOUT": "2"})

    assert result.code == 5  # the closed port of the fake deployment, reached after the warning
    assert f"Warning: the API key file {key} is open to other users (mode 0644)" in result.stderr
    assert f"chmod 600 {key}" in result.stderr


def _help_of(command: list[str]) -> str:
    result = run_imgup(*command, "--help")
    assert result.code == 0, result.stderr
    return " ".join(result.stdout.split())


def _params(command: list[str]):
    import typer.main

    group = typer.main.get_command(app)
    for name in command:
        group = group.commands[name]  # type: ignore[attr-defined]
    return group.params


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["local"]], ids=" ".join)
def test_every_option_shows_its_whole_help_text_with_nothing_eaten_as_markup(command: list[str]) -> None:
    shown = _help_of(command)
    for param in _params(command):
        text = " ".join((getattr(param, "help", None) or "").split())
        if text:
            assert text in shown, f"{param.name}: {text!r} is not shown whole"


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        (["upload"], ["Parallel uploads (default: 16", "transient errors (default: 4"]),
        (["list"], ["(default: 50)"]),
        (["deploy"], ["(default: imgup", "[default: 1800]", "(default: 20"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and len(v) == 1 else None,
)
def test_options_with_defaults_say_them(command: list[str], defaults: list[str]) -> None:
    shown = _help_of(command)
    for default in defaults:
        assert default in shown


def test_imgup_alone_says_where_to_start() -> None:
    result = run_imgup()
    text = result.stdout + result.stderr
    assert "Usage" in text
    assert "imgup deploy --local" in text


CORE = [
    "imgup.uploads",
    "imgup.api",
    "imgup.config",
    "imgup.errors",
    "imgup.deployer",
    "imgup.stack",
    "imgup.aws",
    "imgup.doctor",
    "imgup.packaging",
]


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_neither_typer_nor_rich(module: str) -> None:
    probe = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'rich', 'click'})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} pulls in {result.stdout.strip()}"


@pytest.mark.parametrize(
    "command", [["upload", "-"], ["delete", "-", "--yes"], ["show"], ["download", "-"], ["share"]]
)
def test_an_empty_pipe_is_nothing_to_do_and_exits_0(command: list[str]) -> None:
    # `imgup list -q --name 'tmp*' | imgup delete - --yes` on a day when nothing matches.
    result = run_imgup(*command, stdin="")
    assert (result.code, result.stdout) == (0, "")
    assert "on standard input: nothing to do." in result.stderr
