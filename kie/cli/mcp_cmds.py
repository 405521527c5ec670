"""`kie mcp`: serve kie to AI agents over MCP (stdio, or Streamable HTTP on loopback), and
`kie mcp approve QUOTE`, the human's out-of-band approval of a spend an agent asked for.

The MCP SDK is an optional extra and is imported only inside the commands, so `kie --help` stays fast
and works without it.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from kie.cli._common import console, err_console, fail, fmt_credits, fmt_usd, print_json
from kie.cli.session import open_ledger, session, settings_or_fail
from kie.errors import KieError

NO_SDK = "kie mcp needs the MCP SDK, which is not installed; install it with: pip install 'kie[mcp]'"
DEFAULT_PORT = 8766

StoreOpt = Annotated[str | None, typer.Option("--store", help="Ledger URL (default: SQLite in KIE_HOME).")]
SandboxOpt = Annotated[
    bool,
    typer.Option("--sandbox", help="Use the built-in sandbox and its own ledger: no account, no credits."),
]

mcp_app = typer.Typer(
    help="Serve kie to AI agents over MCP: every model, one ledger, spending only with your approval.",
    invoke_without_command=True,
)


@mcp_app.callback(invoke_without_command=True)
def mcp_serve(
    ctx: typer.Context,
    http: Annotated[
        bool, typer.Option("--http", help="Serve Streamable HTTP on 127.0.0.1 instead of stdio.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --http.", min=1, max=65535)] = DEFAULT_PORT,
    store: StoreOpt = None,
    sandbox: SandboxOpt = False,
) -> None:
    """Run the MCP server (stdio by default, for an MCP client's config)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from kie.mcp.server import build_server
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("mcp", "mcp_types"):
            fail(NO_SDK)
        raise
    from kie.client import AsyncKie
    from kie.mcp.app import KieApp
    from kie.mcp.limits import load_limits
    from kie.mcp.run import serve
    from kie.protocol.polling import PollPolicy

    settings = settings_or_fail()
    try:
        limits = load_limits(settings)
    except KieError as exc:
        fail(exc)
    with session(sandbox, quiet=True, settings=settings) as sess:
        ledger = open_ledger(sess.settings, store, sandbox=sess.is_sandbox)
        pointed = sess.settings

        def client() -> AsyncKie:
            return AsyncKie(settings=pointed, poll=PollPolicy(scale=sess.scale), create_interval=None)

        app = KieApp(
            pointed,
            ledger,
            limits,
            client,
            create_interval=0.5 * sess.scale,
            transport="http" if http else "stdio",
            sandbox=sess.is_sandbox,
        )
        where = f"http://127.0.0.1:{port}/mcp" if http else "stdio"
        err_console.print(
            f"kie mcp on {where}{' (sandbox: nothing is spent)' if sess.is_sandbox else ''}; ledger "
            f"{ledger.display_url}; files in {app.output_root}; spends above "
            f"{fmt_credits(limits.auto_approve_credits)} credits need your approval.",
            markup=False,
            highlight=False,
        )
        with contextlib.closing(ledger):
            serve(build_server(app), http=http, port=port)


@mcp_app.command("approve")
def mcp_approve(
    quote: Annotated[str, typer.Argument(help="The quote id the agent showed.")],
    store: StoreOpt = None,
    sandbox: SandboxOpt = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Approve a spend an agent asked for; the agent's same call then runs once."""
    from kie.mcp.consent import approve_quote

    settings = settings_or_fail()
    with contextlib.closing(open_ledger(settings, store, sandbox=sandbox)) as ledger:
        try:
            row = approve_quote(ledger, quote)
        except KieError as exc:
            fail(exc)
    request = row["request"] or {}
    if json_:
        print_json(
            {
                "quote": row["id"],
                "credits": row["credits"],
                "summary": request.get("summary"),
                "expires_at": row["expires_at"],
                "approved": True,
            }
        )
        return
    usd = fmt_usd(row["credits"] * settings.usd_per_credit)
    console.print(
        f"Approved quote {row['id']}: {fmt_credits(row['credits'])} credits ≈ {usd} on "
        f"{request.get('summary', 'the jobs the agent asked for')}. The agent's same call now runs once.",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app, name="mcp")
