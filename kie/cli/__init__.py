"""The `kie` command line: one Typer app, one module per group of commands.

User mistakes end in one sentence on stderr and exit code 2; nothing prints a traceback for them. The
exit codes are one table for every command (see `kie.cli._common`). Command modules import the heavy
parts (the ledger, the sandbox, the batch engine) inside the commands that use them, so `kie --help`
and `kie cost` start at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from kie.cli import batch_cmds, client_cmds, gallery_cmds, mcp_cmds, pricing, webhook_cmds, worker_cmds
from kie.cli._common import INTERRUPTED, err_console, exit_code_for, one_sentence
from kie.cli.models import models_app
from kie.errors import KieError


def _no_flag_types() -> None:
    """Typer's rich help prints `<bool>` beside every flag. A flag takes no value, so the tag only
    misleads; options that take a value keep theirs (`<path>`, `<int>`)."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:
        return

    def display(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display  # type: ignore[method-assign]


_no_flag_types()

app = typer.Typer(
    name="kie",
    help="The Kie.ai toolkit: every model validated and priced before spend; results never lost.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("kie")
        except PackageNotFoundError:
            number = "unknown (not installed)"
        typer.echo(f"kie {number}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", help="Print the version and exit.", callback=_version, is_eager=True),
    ] = False,
) -> None:
    """The Kie.ai toolkit: every model validated and priced before spend; results never lost."""


app.add_typer(models_app, name="models")
app.command("cost")(pricing.cost)
app.command("recommend")(pricing.recommend)
client_cmds.register(app)
batch_cmds.register(app)
webhook_cmds.register(app)
gallery_cmds.register(app)
mcp_cmds.register(app)
worker_cmds.register(app)


def main() -> None:
    try:
        app()
    except KieError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(one_sentence(str(exc)))}")
        raise SystemExit(exit_code_for(exc)) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        raise SystemExit(INTERRUPTED) from None
