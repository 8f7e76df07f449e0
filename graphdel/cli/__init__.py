"""The ``graphdel`` command: a thin shell over :mod:`graphdel.api`.

Every subcommand maps to a few lines of the Python API; errors the user can cause are printed as one line
(``graphdel: error: ...``) with exit status 2, never as a traceback.

This module builds the parser and runs a command (:func:`main`, the console entry point; ``python -m
graphdel.cli`` runs it too); the commands live beside it, grouped by what they work on:
:mod:`graphdel.cli.verbs` (train, forget, evaluate), :mod:`graphdel.cli.describe` (data stats, methods),
:mod:`graphdel.cli.reports` (report, verify, history, compare), :mod:`graphdel.cli.experiments` (audit,
demo), with the options and output helpers they share in :mod:`graphdel.cli.common`. None of them imports
torch before a command runs, so ``graphdel --help`` and argument errors answer at once (tests/test_cli.py).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from graphdel.cli.common import DEFAULT_DEVICE
from graphdel.cli.describe import _add_data, _add_methods, cmd_data_stats, cmd_methods
from graphdel.cli.experiments import _add_audit, _add_demo, cmd_audit, cmd_demo
from graphdel.cli.reports import (_add_compare, _add_history, _add_report, _add_verify, cmd_compare,
                                  cmd_history, cmd_report, cmd_verify)
from graphdel.cli.verbs import _add_evaluate, _add_forget, _add_train, cmd_evaluate, cmd_forget, cmd_train
from graphdel.device import check_device_name  # torch-free
from graphdel.errors import GraphdelError

__all__ = ["main", "build_parser", "COMMANDS", "DEFAULT_DEVICE", "cmd_train", "cmd_forget", "cmd_evaluate",
           "cmd_data_stats", "cmd_methods", "cmd_report", "cmd_verify", "cmd_history", "cmd_compare",
           "cmd_audit", "cmd_demo"]


def build_parser() -> argparse.ArgumentParser:
    """The ``graphdel`` argument parser, with every subcommand of :data:`COMMANDS` (each sets ``func``)."""
    parser = argparse.ArgumentParser(prog="graphdel", description="Multimodal machine unlearning on graph-text data.")
    parser.add_argument("--version", action="version", version=f"graphdel {__import__('graphdel').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


COMMANDS = [_add_train, _add_forget, _add_evaluate, _add_methods, _add_data]
COMMANDS += [_add_report, _add_verify, _add_history, _add_audit, _add_demo]
COMMANDS += [_add_compare]


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` minus ``--nproc N`` / ``--nproc=N`` (what the processes under torchrun are given)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _run_under_torchrun(args, argv: list[str]) -> int:
    """Re-execute this command as ``python -m torch.distributed.run --nproc-per-node N -m graphdel.cli``;
    the exit status is torchrun's (non-zero when any process failed). torchrun's per-process folders go to
    a temporary folder removed afterwards (left to itself, torchrun leaves one in /tmp at every launch)."""
    import subprocess
    import tempfile

    from graphdel.distributed import torchrun_command

    with tempfile.TemporaryDirectory(prefix="graphdel-torchrun-") as logs:
        return subprocess.call(torchrun_command(args.nproc, "graphdel.cli", _without_nproc(argv), logs))


def main(argv: list[str] | None = None) -> int:
    """Run the ``graphdel`` command on ``argv`` (default ``sys.argv[1:]``) and return its exit status.

    ``--nproc N > 1`` re-runs the command under torchrun; a process started by torchrun joins the process
    group and only rank 0 prints. A :class:`~graphdel.errors.GraphdelError` is printed as one line and
    returns 2; an interrupt returns 130.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    nproc = getattr(args, "nproc", 1)
    try:
        if nproc < 1:
            raise GraphdelError(f"--nproc must be >= 1, got {nproc}")
        if hasattr(args, "device"):
            check_device_name(args.device)  # a misspelt device, before anything is loaded
        if nproc == 1 and "RANK" not in os.environ:  # one plain process: torch.distributed is not needed
            return args.func(args)
        from graphdel import distributed

        if nproc > 1 and not distributed.launched_by_torchrun():
            from graphdel.device import check_processes

            # said once here, not once by each of the N processes: CUDA without a GPU, fewer GPUs than N
            check_processes(getattr(args, "device", "auto"), nproc)
            return _run_under_torchrun(args, list(sys.argv[1:] if argv is None else argv))
        if distributed.launched_by_torchrun() and hasattr(args, "nproc"):
            # one process of `--nproc N`: join the group; only rank 0 prints (and writes, see the API)
            distributed.init_from_env(getattr(args, "device", "auto"))
            if not distributed.is_main():
                sys.stdout = open(os.devnull, "w")
        return args.func(args)
    except GraphdelError as e:
        print(f"graphdel: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        # the last net: paths are checked up front (graphdel.runs.check_output), but any too-long name is a
        # user's mistake, not a bug worth a traceback
        print(f"graphdel: error: file name too long: {str(e.filename)[:80]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphdel: interrupted; no run folder was finished", file=sys.stderr)
        return 130
    finally:
        if "graphdel.distributed" in sys.modules:  # imported above or by the command
            sys.modules["graphdel.distributed"].shutdown()
