"""A new user's first hour with the `kie` executable: no silent sandbox, no spend on a mistake, exit
codes and output that scripts can trust. Real processes against a real sandbox over HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kie import catalog
from kie.sandbox.server import SandboxServer
from kie.store import Ledger
from tests.cli.test_commands_e2e import KIE, env

MODEL = "bytedance/seedream-v4-text-to-image"


def run(args: list[str], run_env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KIE, *args], capture_output=True, text=True, env=run_env, timeout=timeout)


def against(sandbox: SandboxServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user pointed at a Kie (here the sandbox) with a real key."""
    return env(tmp_path) | {
        "KIE_API_KEY": sandbox.api_key,
        "KIE_BASE_URL": sandbox.url,
        "KIE_UPLOAD_BASE_URL": sandbox.url,
        "KIE_POLL_SCALE": str(sandbox.config.time_scale),
        **extra,
    }


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def summary(stdout: str) -> dict[str, Any]:
    """The closing JSON object of a `--json` batch run (after one event per line)."""
    start = 0 if stdout.startswith("{\n") else stdout.rindex("\n{\n") + 1
    data: dict[str, Any] = json.loads(stdout[start:])
    return data


def real_ledger_jobs(tmp_path: Path) -> int:
    db = tmp_path / "home" / "ledger.db"
    if not db.exists():
        return 0
    ledger = Ledger(f"sqlite:///{db}")
    try:
        return len(ledger.jobs())
    finally:
        ledger.close()


# -- no silent sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "nano-banana-pro", "--prompt", "a fox"],
        ["credits"],
        ["task", "get", "abc123"],
        ["batch", "run", "{batch}"],
        ["upload", "{image}"],
    ],
)
def test_without_a_key_every_spending_command_stops_with_one_sentence(
    tmp_path: Path, args: list[str]
) -> None:
    batch = write_rows(tmp_path / "b.jsonl", [{"model": MODEL, "prompt": "x"}])
    image = tmp_path / "me.png"
    Image.new("RGB", (8, 8)).save(image)
    argv = [a.format(batch=batch, image=image) for a in args]
    proc = run(argv, env(tmp_path), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "KIE_API_KEY" in proc.stderr and "--sandbox" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert real_ledger_jobs(tmp_path) == 0


def test_sandbox_work_is_marked_and_kept_out_of_the_real_ledger(tmp_path: Path) -> None:
    batch = write_rows(tmp_path / "b.jsonl", [{"id": "a", "model": MODEL, "prompt": "a cat"}])
    out = tmp_path / "out"
    proc = run(["batch", "run", str(batch), "-o", str(out), "--sandbox", "--json"], env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"')]
    assert events and all(event.get("sandbox") is True for event in events)
    closing = summary(proc.stdout)
    assert closing["sandbox"] is True and closing["counts"] == {"done": 1}
    assert real_ledger_jobs(tmp_path) == 0
    sandbox_ledger = Ledger(f"sqlite:///{tmp_path / 'home' / 'sandbox' / 'ledger.db'}")
    assert [j["state"] for j in sandbox_ledger.jobs()] == ["done"]
    sandbox_ledger.close()
    credits = run(["credits", "--sandbox", "--json"], env(tmp_path))
    assert json.loads(credits.stdout)["sandbox"] is True


def test_sandbox_refuses_a_real_store(tmp_path: Path) -> None:
    batch = write_rows(tmp_path / "b.jsonl", [{"model": MODEL, "prompt": "x"}])
    proc = run(
        ["batch", "run", str(batch), "--sandbox", "--store", f"sqlite:///{tmp_path}/x.db"], env(tmp_path)
    )
    assert proc.returncode == 2 and "--store" in proc.stderr and "Traceback" not in proc.stderr


# -- batches upload local files ------------------------------------------------------------------------


def test_a_batch_row_with_a_local_image_reaches_kie_as_an_uploaded_url(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    Image.new("RGB", (32, 32), "red").save(tmp_path / "real.png")
    batch = write_rows(
        tmp_path / "b.jsonl",
        [
            {
                "id": "edit",
                "model": "google/nano-banana-edit",
                "prompt": "add a hat",
                "image_urls": ["real.png"],
            }
        ],
    )
    run_env = against(sandbox, tmp_path, KIE_STORE_URL=f"sqlite:///{tmp_path / 'l.db'}")
    proc = run(["batch", "run", str(batch), "-o", str(tmp_path / "out"), "--rate", "100/1"], run_env)
    assert proc.returncode == 0, proc.stderr
    (task,) = sandbox.state.tasks.values()
    (url,) = task.input["image_urls"]
    assert url.startswith(sandbox.url) and "real.png" not in url
    (job,) = Ledger(run_env["KIE_STORE_URL"]).jobs()
    assert job["input"]["image_urls"] == [url]  # recorded, so a resume never uploads again

    second = run(["batch", "run", str(batch), "-o", str(tmp_path / "out"), "--rate", "100/1"], run_env)
    assert second.returncode == 0 and len(sandbox.state.tasks) == 1


def test_a_text_file_given_as_an_image_is_refused_before_spend(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "notes.png").write_text("hi")
    run_env = against(sandbox, tmp_path)
    proc = run(
        [
            "generate",
            "google/nano-banana-edit",
            "--prompt",
            "x",
            "-i",
            f"image_urls={tmp_path / 'notes.png'}",
        ],
        run_env,
    )
    assert proc.returncode == 2 and "image_urls" in proc.stderr and "Traceback" not in proc.stderr
    assert not sandbox.state.tasks and not any("upload" in ep for ep, _ in sandbox.state.requests)


# -- nothing paid for that cannot be saved ------------------------------------------------------------


def test_output_on_an_existing_file_is_refused_and_costs_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"x")
    before = sandbox.state.balance
    proc = run(
        ["generate", MODEL, "--prompt", "a fox", "-o", str(tmp_path / "photo.jpg")],
        against(sandbox, tmp_path),
    )
    assert proc.returncode == 2 and "existing file" in proc.stderr and "Traceback" not in proc.stderr
    assert sandbox.state.balance == before and not sandbox.state.tasks


def test_output_under_a_file_is_refused_before_spend(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    proc = run(
        ["generate", MODEL, "--prompt", "a fox", "-o", str(tmp_path / "f" / "out")],
        against(sandbox, tmp_path),
    )
    assert proc.returncode == 2 and "Cannot write results" in proc.stderr and "Traceback" not in proc.stderr
    assert not sandbox.state.tasks


# -- transport failures are bounded and visible ----------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_batch_against_a_closed_port_pauses_with_exit_1_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    batch = write_rows(tmp_path / "b.jsonl", [{"id": "a", "model": MODEL, "prompt": "x"}])
    run_env = env(tmp_path) | {
        "KIE_API_KEY": "sk-anything",
        "KIE_BASE_URL": url,
        "KIE_UPLOAD_BASE_URL": url,
        "KIE_UNREACHABLE_TIMEOUT": "2",
    }
    proc = run(["batch", "run", str(batch), "-o", str(tmp_path / "out")], run_env, timeout=110)
    assert proc.returncode == 1, proc.stderr
    assert f"Kie unreachable at {url}" in proc.stderr and "Traceback" not in proc.stderr
    assert "kie batch resume" in proc.stderr
    (job,) = Ledger(f"sqlite:///{tmp_path / 'home' / 'ledger.db'}").jobs()
    assert job["state"] == "pending"  # never reached Kie, so it is simply still to do


def test_a_connection_error_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    proc = run(["credits"], env(tmp_path) | {"KIE_API_KEY": "sk-x", "KIE_BASE_URL": url}, timeout=110)
    assert proc.returncode == 1 and url in proc.stderr and "Traceback" not in proc.stderr


# -- exit codes ------------------------------------------------------------------------------------------


def test_exit_0_when_every_row_is_done(sandbox: SandboxServer, tmp_path: Path) -> None:
    batch = write_rows(
        tmp_path / "b.jsonl", [{"id": f"r{n}", "model": MODEL, "prompt": f"p{n}"} for n in range(3)]
    )
    proc = run(
        ["batch", "run", str(batch), "-o", str(tmp_path / "o"), "--rate", "100/1"], against(sandbox, tmp_path)
    )
    assert proc.returncode == 0, proc.stderr


def test_exit_3_and_the_next_step_when_rows_failed(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("generation", "fail_generation", times=1)
    batch = write_rows(
        tmp_path / "b.jsonl", [{"id": f"r{n}", "model": MODEL, "prompt": f"p{n}"} for n in range(3)]
    )
    proc = run(
        ["batch", "run", str(batch), "-o", str(tmp_path / "o"), "--rate", "100/1"], against(sandbox, tmp_path)
    )
    assert proc.returncode == 3, proc.stderr
    assert "kie batch retry-failed" in proc.stderr


def test_exit_3_when_the_budget_stops_the_batch(sandbox: SandboxServer, tmp_path: Path) -> None:
    batch = write_rows(
        tmp_path / "b.jsonl", [{"id": f"r{n}", "model": MODEL, "prompt": f"p{n}"} for n in range(4)]
    )
    proc = run(
        ["batch", "run", str(batch), "-o", str(tmp_path / "o"), "--rate", "100/1", "--max-credits", "8"],
        against(sandbox, tmp_path),
    )
    assert proc.returncode == 3, proc.stderr
    assert "kie batch resume" in proc.stderr


def test_exit_2_when_authentication_fails_for_every_command(sandbox: SandboxServer, tmp_path: Path) -> None:
    wrong = against(sandbox, tmp_path, KIE_API_KEY="sk-wrong-key-0000")
    batch = write_rows(tmp_path / "b.jsonl", [{"id": "a", "model": MODEL, "prompt": "x"}])
    for args in (
        ["credits"],
        ["generate", MODEL, "--prompt", "x", "-o", str(tmp_path / "o")],
        ["batch", "run", str(batch), "-o", str(tmp_path / "o")],
    ):
        proc = run(args, wrong)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "--api-key" not in proc.stderr and "sk-wrong-key-0000" not in proc.stderr + proc.stdout


def test_exit_1_when_the_generation_fails_on_kie(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("generation", "fail_generation")
    proc = run(["generate", MODEL, "--prompt", "x", "-o", str(tmp_path / "o")], against(sandbox, tmp_path))
    assert proc.returncode == 1 and "failed" in proc.stderr and ".." not in proc.stderr


def test_exit_2_for_an_empty_batch_file(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("# nothing yet\n")
    proc = run(["batch", "run", str(tmp_path / "empty.jsonl")], against(sandbox, tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_exit_130_after_ctrl_c_with_running_tasks_finished(sandbox: SandboxServer, tmp_path: Path) -> None:
    batch = write_rows(
        tmp_path / "b.jsonl", [{"id": f"r{n}", "model": MODEL, "prompt": f"p{n}"} for n in range(30)]
    )
    proc = subprocess.Popen(
        [KIE, "batch", "run", str(batch), "-o", str(tmp_path / "o"), "--rate", "5/1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=against(sandbox, tmp_path),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith('{"') and json.loads(line).get("event") == "running":
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    closing = summary(out)
    assert closing["counts"].get("pending", 0) > 0 and "submitting" not in closing["counts"]


# -- output for pipes ----------------------------------------------------------------------------------------


def test_piped_models_lists_every_id_whole(tmp_path: Path) -> None:
    proc = run(["models", "--all"], env(tmp_path))
    assert proc.returncode == 0
    header, *rows = proc.stdout.splitlines()
    assert header.split("\t")[0] == "id"
    listed = {row.split("\t")[0] for row in rows}
    assert {m.id for m in catalog.all_models()} <= listed
    assert run(["models"], env(tmp_path)).stdout.count("kling-3.0/video\t") == 1


def test_piped_upload_prints_the_bare_url(sandbox: SandboxServer, tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    proc = run(["upload", str(tmp_path / "photo.png")], against(sandbox, tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("\n") and proc.stdout.count("\n") == 1
    assert proc.stdout.strip().startswith(sandbox.url)


# -- input checks before spend -----------------------------------------------------------------


@pytest.mark.parametrize("budget", ["nan", "-5", "inf", "lots"])
def test_a_budget_that_is_not_a_finite_number_is_refused_before_spend(
    sandbox: SandboxServer, tmp_path: Path, budget: str
) -> None:
    batch = write_rows(tmp_path / "b.jsonl", [{"id": "a", "model": MODEL, "prompt": "x"}])
    proc = run(["batch", "run", str(batch), "--max-credits", budget], against(sandbox, tmp_path))
    assert proc.returncode == 2 and "--max-credits" in proc.stderr, proc.stderr
    by_env = run(["batch", "run", str(batch)], against(sandbox, tmp_path, KIE_MAX_CREDITS=budget))
    assert by_env.returncode == 2 and "KIE_MAX_CREDITS" in by_env.stderr
    assert not sandbox.state.tasks


def test_an_empty_prompt_is_refused_before_spend(sandbox: SandboxServer, tmp_path: Path) -> None:
    proc = run(["generate", MODEL, "--prompt", "  "], against(sandbox, tmp_path))
    assert proc.returncode == 2 and "--prompt" in proc.stderr and not sandbox.state.tasks


def test_a_repeated_input_key_is_named(sandbox: SandboxServer, tmp_path: Path) -> None:
    proc = run(
        ["generate", "nano-banana-pro", "--prompt", "x", "-i", "resolution=4K", "-i", "resolution=2K"],
        against(sandbox, tmp_path),
    )
    assert proc.returncode == 2 and "-i resolution" in proc.stderr and not sandbox.state.tasks


def test_a_key_with_a_trailing_newline_works(sandbox: SandboxServer, tmp_path: Path) -> None:
    proc = run(["credits", "--json"], against(sandbox, tmp_path, KIE_API_KEY=sandbox.api_key + "\n"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["credits"] > 0


@pytest.mark.parametrize("bad", ["sk-abc\x01def", "sk-ключ-123", "sk has space"])
def test_a_key_with_control_or_non_ascii_characters_is_refused_unechoed(tmp_path: Path, bad: str) -> None:
    proc = run(["credits"], env(tmp_path) | {"KIE_API_KEY": bad})
    assert proc.returncode == 2 and "KIE_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert bad not in proc.stderr and "abc" not in proc.stderr and "ключ" not in proc.stderr


# -- conventions ---------------------------------------------------------------------------------------------


def test_version_help_and_completion(tmp_path: Path) -> None:
    for flag in ("--version", "-V"):
        proc = run([flag], env(tmp_path))
        assert proc.returncode == 0 and proc.stdout.startswith("kie ")
    short = run(["batch", "run", "-h"], env(tmp_path))
    assert short.returncode == 0 and "--max-credits" in short.stdout and "<bool>" not in short.stdout
    assert "--install-completion" in run(["--help"], env(tmp_path)).stdout


def test_sandbox_prints_the_poll_scale_with_the_other_exports(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [KIE, "sandbox", "--port", "0", "--time-scale", "0.01", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert info["exports"]["KIE_POLL_SCALE"] == "0.01" and info["exports"]["KIE_BASE_URL"] == info["url"]


def test_retry_failed_and_resolve_speak_json(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("generation", "fail_generation")
    batch = write_rows(tmp_path / "b.jsonl", [{"id": "a", "model": MODEL, "prompt": "x"}])
    run_env = against(sandbox, tmp_path)
    first = run(["batch", "run", str(batch), "-o", str(tmp_path / "o"), "--json"], run_env)
    batch_id = summary(first.stdout)["batch"]
    retried = run(["batch", "retry-failed", batch_id, "--json"], run_env)
    assert retried.returncode == 0 and json.loads(retried.stdout)["queued"] == 1
    missing = run(["jobs", "resolve", "nope", "--abandon", "--json"], run_env)
    assert missing.returncode == 2 and "kie jobs list" in missing.stderr


def test_error_sentences_end_with_one_full_stop(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_msg="Something went wrong.")
    proc = run(["generate", MODEL, "--prompt", "x", "-o", str(tmp_path / "o")], against(sandbox, tmp_path))
    assert proc.returncode == 1
    assert ".." not in proc.stderr.replace("...", "")


def test_no_internal_tags_in_what_users_read(tmp_path: Path) -> None:
    texts = [
        run(["models", "show", "Seedream"], env(tmp_path)).stdout,
        run(["cost", "nano-banana-pro", "-i", "resolution=4K"], env(tmp_path)).stdout,
        run(["recommend", "--use-case", "budget"], env(tmp_path)).stdout,
        Path(__file__).parents[2].joinpath("README.md").read_text(),
    ]
    for text in texts:
        for tag in ("S-HAR", "S-CLA", "[REAL]", "Appendix C", "§", "kie-api.md", "the seeds"):
            assert tag not in text, tag


def test_the_sdk_error_for_no_key_mentions_the_sandbox() -> None:
    from kie import Kie
    from kie.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="KIE_API_KEY") as caught:
        Kie()  # the autouse fixture has removed any KIE_API_KEY
    assert "sandbox" in str(caught.value)
