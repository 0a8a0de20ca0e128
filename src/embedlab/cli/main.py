"""The ``embedlab`` command line: thin Typer apps over the library.

Every :class:`~embedlab.errors.UserError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
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


class _DropFxTracingNotice(logging.Filter):
    """Drops torch's one notice "is_fx_tracing will return true for both fx.symbolic_trace
    and torch.export ...". TorchRec's ``KeyedJaggedTensor``/``JaggedTensor`` use torch.fx's
    ``ProxyableClassMeta``, whose constructor calls the deprecated ``is_fx_tracing()``, so
    every process that builds a batch (each training run, each torchrun worker) logs it once
    at WARNING. It concerns TorchRec's code, not the user's, and says nothing actionable."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("is_fx_tracing will return true")


# only that logger and that message: every other torch warning still shows
logging.getLogger("torch.fx._symbolic_trace").addFilter(_DropFxTracingNotice())

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
