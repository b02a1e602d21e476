"""``driver``: run, plan and list pteflow pipelines.

One module per command (``add_parser(sub)`` and ``main(args)``); each parses its flags
into the Python API's options once (``args.py``) and calls the API (``driver/api.py``).
Here: the parser tree, and the mapping of ``pteflow.ir.errors`` to exit codes.

Start-up imports nothing heavy: torch and ExecuTorch load only when a command needs
them, so ``driver --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import (
    bisect,
    cache,
    check_coverage,
    generate,
    inspect,
    list_cmd,
    plan,
    qnn_sdk,
    repro,
    run,
    sweep,
)
from .args import Parser

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": run.main,
    "plan": plan.main,
    "list": list_cmd.main,
    "check-coverage": check_coverage.main,
    "bisect": bisect.main,
    "repro": repro.main,
    "cache": cache.main,
    "qnn-sdk": qnn_sdk.cmd_qnn_sdk,
    "inspect": inspect.main,
    "sweep": sweep.main,
    "generate": generate.main,
}


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="driver",
        description="pteflow: compile PyTorch models to ExecuTorch .pte files with a "
        "pass manager that orders passes from their declared contracts.",
        epilog="Run 'driver COMMAND --help' for a command's options.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands = (
        run,
        bisect,
        repro,
        plan,
        check_coverage,
        cache,
        list_cmd,
        qnn_sdk,
        inspect,
        sweep,
        generate,
    )
    for module in commands:
        module.add_parser(sub)
    return p


def _repro_hint(e: BaseException) -> None:
    where = getattr(e, "repro_dir", None)
    if where is not None:
        sys.stderr.write(f"driver: reproduce it alone with: driver repro {where}\n")


def main(argv: Sequence[str] | None = None) -> int:
    the_parser = parser()
    args = the_parser.parse_args(argv)
    if not args.command:
        the_parser.print_help()
        return 2
    debug = getattr(args, "debug", False)
    from pteflow.ir import interrupts
    from pteflow.ir.errors import InvariantError, PassFailedError, UserError

    try:
        with interrupts.noticed():
            return COMMANDS[args.command](args)
    except UserError as e:
        if debug:
            raise
        sys.stderr.write(f"driver: error: {e}\n")
        return 2
    except PassFailedError as e:
        if debug:
            raise
        if e.is_user_error:
            sys.stderr.write(f"driver: error: in pass {e.pass_name}: {e.__cause__}\n")
            return 2
        sys.stderr.write(f"driver: {e} (run with --debug for the traceback)\n")
        _repro_hint(e)
        return 1
    except InvariantError as e:
        if debug:
            raise
        sys.stderr.write(f"driver: {e} (run with --debug for the traceback)\n")
        _repro_hint(e)
        return 1
    except Terminated:
        sys.stderr.write("driver: terminated\n")
        return 143
    except KeyboardInterrupt:
        sys.stderr.write("driver: interrupted\n")
        return 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the same clean-up runs."""


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise Terminated


def entry() -> None:
    """The ``driver`` command: ``main`` on ``sys.argv``, then a quick exit (cli/quick_exit.py).

    SIGTERM (``kill``, ``timeout``, a job scheduler) ends a run as Ctrl-C does: temporary
    files removed, the cache's unfinished entries left out, exit 143.
    """
    import signal

    from .quick_exit import exit_now

    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    exit_now(main())
