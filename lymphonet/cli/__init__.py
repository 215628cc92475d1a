"""The ``lymphonet`` command: one subcommand per module in this package.

Each module ``lymphonet/cli/<name>.py`` defines ``register(subparsers)``, which adds its parser and
sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
Modules keep heavy imports (torch, pandas, pydicom) inside their functions so ``--help`` stays fast.
Every subcommand is a thin call into the library; no science lives here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from lymphonet import __version__
from lymphonet.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lymphonet",
        description="Predict radiation-induced lymphopenia from dose maps, schedules and clinical "
                    "features.",
    )
    parser.add_argument("--version", action="version", version=f"lymphonet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lymphonet`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:  # paths shown relative to the working folder, never absolute
        print(f"lymphonet {args.command}: error: {err.redacted(Path.cwd())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
