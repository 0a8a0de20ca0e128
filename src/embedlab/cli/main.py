"""The ``embedlab`` command line: thin Typer apps over the library.

Every :class:`~embedlab.errors.UserError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from embedlab.errors import UserError

app = typer.Typer(
    name="embedlab",
    help="Working, measured tools for embedding-heavy models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from embedlab.cli import blender, data, online, pu, reproduce, scaling, shard, train

    app.add_typer(data.app, name="data")
    app.add_typer(shard.app, name="shard")
    app.add_typer(pu.app, name="pu")
    app.add_typer(scaling.app, name="scaling")
    app.add_typer(online.app, name="online")
    app.add_typer(blender.app, name="blender")
    app.command("train")(train.train_cmd)
    app.command("reproduce")(reproduce.reproduce_cmd)


_register()

#: The arguments of this invocation (commands that relaunch themselves under torchrun).
ARGV: list[str] = []


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    global ARGV
    ARGV = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, standalone_mode=True)
    except UserError as e:
        print(f"embedlab: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("embedlab: interrupted", file=sys.stderr)
        sys.exit(130)
