"""Startup cost: how long `import kie` and the `kie` command take before doing any work, next to
`import httpx` (the floor for any HTTP client).

Every figure is the median wall time of N fresh processes, after one untimed run that fills the bytecode
cache. The second table lists the heavy modules each one loads: an import nobody needs is the usual
reason a `--help` feels slow. It uses this interpreter and the `kie` script installed beside it.

    .venv/bin/python benchmarks/startup.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("sqlalchemy", "alembic", "starlette", "uvicorn", "PIL", "kie.sandbox", "kie.store")

# Runs a command the way its entry point would, then reports which heavy modules it had loaded by exit.
PROBE = """
import atexit, json, sys
heavy = {heavy!r}
def report():
    sys.stderr.write("\\nLOADED " + json.dumps([m for m in heavy if m in sys.modules]) + "\\n")
atexit.register(report)
sys.argv = {argv!r}
{body}
"""


Probe = tuple[list[str], str]  # (sys.argv, code) that reproduce a row inside the probe


def commands(python: str, kie: str) -> list[tuple[str, list[str], Probe | None]]:
    """(label, argv to time, probe) for each row; the first row is the baseline."""
    run_cli = "from kie.cli import main\nmain()"
    return [
        ("import httpx (baseline)", [python, "-c", "import httpx"], None),
        ("import kie", [python, "-c", "import kie"], (["-c"], "import kie")),
        ("kie --help", [kie, "--help"], (["kie", "--help"], run_cli)),
        (
            "kie cost nano-banana-pro",
            [kie, "cost", "nano-banana-pro"],
            (["kie", "cost", "nano-banana-pro"], run_cli),
        ),
    ]


def run(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds for one fresh process. A failing command stops the run: its time would mean nothing."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` exited with {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return elapsed


def median_seconds(argv: list[str], env: dict[str, str], runs: int) -> float:
    run(argv, env)  # warm-up: compiles bytecode, fills the OS file cache
    return statistics.median(run(argv, env) for _ in range(runs))


def loaded(python: str, probe: Probe, env: dict[str, str]) -> list[str]:
    argv, body = probe
    code = PROBE.format(heavy=HEAVY, argv=argv, body=body)
    proc = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=False)
    for line in reversed(proc.stderr.splitlines()):
        if line.startswith("LOADED "):
            return list(json.loads(line.removeprefix("LOADED ")))
    sys.exit(f"Could not read the modules loaded by `{' '.join(argv)}`: {proc.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    args = parser.parse_args()
    python = sys.executable
    kie = str(Path(python).with_name("kie"))
    if not Path(kie).exists():
        sys.exit(f"No `kie` script next to {python}; install the project into this interpreter with pip.")

    with tempfile.TemporaryDirectory() as tmp:
        # No user config, data directory or debug logging may change what the commands do.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIE_")}
        env |= {"KIE_CONFIG": str(Path(tmp) / "none.toml"), "KIE_HOME": str(Path(tmp) / "home")}
        rows = [
            (label, median_seconds(argv, env, args.runs), loaded(python, probe, env) if probe else None)
            for label, argv, probe in commands(python, kie)
        ]

    baseline = rows[0][1]
    print(f"median of {args.runs} runs; Python {sys.version.split()[0]} at {python}")
    print(f"{'command':<28}{'ms':>9}{'x httpx':>10}  heavy modules loaded")
    for label, seconds, modules in rows:
        heavy = "-" if modules is None else (", ".join(modules) or "none")
        print(f"{label:<28}{seconds * 1000:>9.0f}{seconds / baseline:>10.2f}  {heavy}")


if __name__ == "__main__":
    main()
