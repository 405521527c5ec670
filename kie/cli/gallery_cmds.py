"""`kie gallery`: serve the local web gallery over the ledger (see `kie.gallery`).

Starlette, the ledger and the sandbox are imported inside the command, so `kie --help` stays fast.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from kie.cli._common import console, err_console, fail
from kie.errors import KieError


def register(app: typer.Typer) -> None:
    app.command("gallery")(gallery)


def gallery(
    store: Annotated[
        str | None, typer.Option("--store", help="Ledger URL (default: SQLite in KIE_HOME).")
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to serve on (0: a free one).")
    ] = 0,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind. Anything but loopback lets other machines reach a page that can spend.",
        ),
    ] = "127.0.0.1",
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Browse the sandbox's ledger; re-runs go to the built-in sandbox."),
    ] = False,
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Print the URL without opening a browser.")
    ] = False,
    max_credits: Annotated[
        str | None,
        typer.Option(
            "--max-credits",
            metavar="CREDITS",
            help="Cap on what this gallery's re-runs may commit in all (default: KIE_MAX_CREDITS).",
        ),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for re-run results.")] = Path(
        "kie-output"
    ),
) -> None:
    """Browse, compare and re-run results in a local web gallery (prints its URL with a session token)."""
    from kie.cli.client_cmds import output_folder
    from kie.cli.session import SANDBOX_TIME_SCALE, open_ledger, session, settings_or_fail
    from kie.config import budget_value
    from kie.gallery.server import GalleryServer, is_loopback

    settings = settings_or_fail()
    try:
        budget = budget_value(max_credits, "--max-credits")
    except KieError as exc:
        fail(exc)
    budget = budget if budget is not None else settings.max_credits
    if sandbox and store:
        fail(
            "--store names the real ledger and cannot be combined with --sandbox; sandbox work is kept in "
            f"{settings.home / 'sandbox' / 'ledger.db'}."
        )
    if not is_loopback(host):
        err_console.print(
            f"[yellow]--host {host}: the gallery is reachable from other machines; anyone who gets its URL "
            "can spend credits through it.[/]"
        )
    output = output_folder(output)
    with session(sandbox, settings=settings) if sandbox else contextlib.nullcontext() as sess:
        used = sess.settings if sess is not None else settings
        ledger = open_ledger(used, store, sandbox=sandbox)
        scale = SANDBOX_TIME_SCALE if sandbox else 1.0
        try:
            server = GalleryServer(
                ledger,
                home=settings.home,
                settings=used,
                output_dir=output.resolve(),
                max_credits=budget,
                host=host,
                port=port,
                sandbox=sandbox,
                poll_scale=scale,
                create_interval=0.5 * scale,
            )
        except OSError as exc:
            fail(
                f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port or stop what uses it."
            )
        except KieError as exc:
            fail(exc)
        cap = "no cap" if budget is None else f"at most {budget:g} credits"
        console.print(f"kie gallery over {ledger.display_url}; re-runs: {cap}, results in {output}.")
        console.print(f"Open: {server.url}", soft_wrap=True)
        console.print("Press Ctrl-C to stop.")
        if not no_open:
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(server.url)
        server.serve()
        ledger.close()
