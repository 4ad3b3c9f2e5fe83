"""``slicewise`` / ``python -m app``: the command line, with the viewer's commands (``gui``,
``render``, ``review``) handed to it from here, so the core's ``app.cli`` needs no Qt."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.errors import SlicewiseError


def main(argv: Sequence[str] | None = None) -> int:
    from app.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    code = cli_main(args, viewer=run_viewer_command)
    if argv is None and args[:1] == ["predict"] and "distributed" not in sys.modules:
        from app import startup

        startup.exit_now(code)  # the program's own headless run, finished: skip the interpreter's teardown
    return code


def run_viewer_command(args: argparse.Namespace) -> int:
    from app.ui.main import passive_worker_threads

    passive_worker_threads()  # before the viewer's modules import torch
    if args.command == "render":
        from app.ui.render import render

        render(args)
        return 0
    from app.ui.platform_check import platform_problem

    problem = platform_problem()
    if problem is not None:
        raise SlicewiseError(problem)
    if args.command == "review":
        from app.ui.review_mode import run_review

        return run_review(args.results, args.reader, args.blinded, args.threshold)
    from app.ui.main import run_gui

    return run_gui(args.volume, axis=args.axis, volume_index=args.volume_index, skip_damaged=args.skip_damaged)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
