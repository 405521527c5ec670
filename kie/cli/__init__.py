"""The `kie` command line: one Typer app, one module per group of commands.

User mistakes end in one sentence on stderr and exit code 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import typer
from rich.markup import escape

from kie.cli import batch_cmds, client_cmds, pricing, webhook_cmds
from kie.cli._common import err_console
from kie.cli.models import models_app
from kie.errors import KieError

app = typer.Typer(
    name="kie",
    help="The Kie.ai toolkit: every model validated and priced before spend; results never lost.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models_app, name="models")
app.command("cost")(pricing.cost)
app.command("recommend")(pricing.recommend)
client_cmds.register(app)
batch_cmds.register(app)
webhook_cmds.register(app)


def main() -> None:
    try:
        app()
    except KieError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        raise SystemExit(130) from None
