"""The ``probnn`` command line: a thin layer over the tasks.

Every command parses its arguments into a task's config (:mod:`probnn.tasks`), runs the task,
builds the question's sections (:mod:`probnn.analysis`), saves them and prints their summary:
the same task and builder the report's job for that question calls. See README.md.
"""
from __future__ import annotations

import os
import signal
import sys

from probnn.inference.signals import STOP_SIGNALS

# Run as the program (not imported by a notebook or the tests): a stop signal during the
# seconds of imports before a command starts (torch, pyro) ends it quietly, as it would a
# shell command, instead of a KeyboardInterrupt traceback from inside some import (SIGINT)
# or a silent death (SIGTERM, SIGHUP); main() takes over once the command runs.
AS_PROGRAM = __name__ == "__main__" or os.path.basename(sys.argv[0]) == "probnn"


def _stopped_early(signum, frame):
    os.write(2, b"\nprobnn: interrupted\n")
    os._exit(130)


if AS_PROGRAM:
    for _sig in STOP_SIGNALS:
        signal.signal(_sig, _stopped_early)

import argparse  # noqa: E402

from probnn import __version__  # noqa: E402
from probnn.tasks.validation import ConfigError, int_between  # noqa: E402

from . import evaluation_commands as ev  # noqa: E402
from . import training_commands as tr  # noqa: E402
from .commandline import (Parser, UsageError, common_options, device_option,  # noqa: E402
                          folder, nonempty, torch_device)


# ----------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    from collections import Counter

    from probnn.report import default_cache, make_report

    out = folder(args.out or "out/report")
    cache = folder(args.cache_dir or default_cache(), "--cache-dir")
    run = make_report(out, data_dir=args.data_dir, quick=args.quick, seed=args.seed,
                      cache=cache, workers=args.jobs, progress=not args.quiet,
                      device=args.device, scheduler=args.scheduler)
    counts = Counter(run.statuses().values())
    print(f"{len(run.jobs)} jobs (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f") in {run.seconds:.0f} s")
    for line in run.broken or ():
        print(f"report: check failed: {line}", file=sys.stderr)
    print(f"report: {run.index.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command, its options generated from its task's config (:mod:`probnn.options`)."""
    parser = Parser(prog="probnn", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the full traceback")
    parser.add_argument("--version", action="version", version=f"probnn {__version__}",
                        help="print the installed probnn version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    tr.add_regression(sub)
    ev.add_bayes_regression(sub)
    vae = sub.add_parser("vae", help="Bernoulli-image VAE on MNIST (questions c-e)")
    vsub = vae.add_subparsers(dest="vae_command", required=True)
    tr.add_vae_train(vsub, conditional=False)
    ev.add_vae_figures(vsub)
    ev.add_vae_compare(vsub)
    cvae = sub.add_parser("cvae", help="label-conditioned VAE (question f)")
    csub = cvae.add_subparsers(dest="cvae_command", required=True)
    tr.add_vae_train(csub, conditional=True)
    ev.add_cvae_figures(csub)
    ev.add_bounds(sub)
    _add_report(sub)
    ev.add_estimators(sub)
    ev.add_objectives(sub)
    return parser


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="the main job: train or reuse every model, write the HTML report")
    common_options(p)
    p.add_argument("--quick", action="store_true",
                   help="a first look in a few minutes: few epochs, small subsets")
    p.add_argument("--cache-dir", type=nonempty("--cache-dir"), default=None,
                   help="checkpoints and results to reuse (default ~/.cache/probnn/report)")
    # each worker holds its own copy of MNIST and a model (about 2 GB while training): more
    # workers than cores only share the cores, and 100 of them would exhaust the memory
    p.add_argument("--jobs", type=int_between(1, max(2, os.cpu_count() or 1)).arg(), default=None,
                   help="worker processes, at most the number of cores (default 2 on a machine "
                        "with 2+ cores); 1: in this process")
    device_option(p)
    p.add_argument("--scheduler", type=nonempty("--scheduler"),
                   default=os.environ.get("PROBNN_SCHEDULER") or None, metavar="ADDRESS",
                   help="run the jobs on this running Dask cluster (e.g. tcp://host:8786; default "
                        "$PROBNN_SCHEDULER) instead of worker processes on this machine: every "
                        "worker must read and write --cache-dir at the same path (README: More "
                        "than one machine)")
    p.set_defaults(func=cmd_report)


def _stop_as_interrupt():
    """While a command runs, SIGINT (Ctrl-C), SIGTERM (``kill``) and SIGHUP (a closed terminal)
    all stop it as Ctrl-C does: a training saves its checkpoint (:func:`probnn.inference.train.fit`
    handles them itself while it trains), the report's workers stop and save, and the command
    exits 130 with one line instead of dying without a word."""
    from probnn.inference.train import handling
    return handling(STOP_SIGNALS, signal.default_int_handler)


def _out_of_memory(e: BaseException) -> bool:
    """torch reports a failed allocation as a RuntimeError ("DefaultCPUAllocator: can't
    allocate memory", "CUDA out of memory"); Python as MemoryError."""
    text = str(e)
    return isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status: 0 done, 2 bad input (argparse's usage errors
    exit 2 themselves), 1 an internal error, 130 interrupted. Every error is one line on
    stderr; ``--debug`` shows the traceback instead."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    from probnn.datasets import DataFormatError, DataNotFoundError
    from probnn.inference.checkpoint import CheckpointError
    from probnn.runner import JobBusy, SchedulerUnreachable
    try:
        with _stop_as_interrupt():
            if getattr(args, "device", None) and not getattr(args, "scheduler", None):
                # a device this machine lacks: refused before any work (on a cluster of one's
                # own, the workers' devices count, not this machine's)
                torch_device(args.device)
            return args.func(args)
    except KeyboardInterrupt as e:  # TrainingInterrupted and the runner's Interrupted say how to go on
        print(f"\nprobnn: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    except (DataNotFoundError, DataFormatError, CheckpointError, ConfigError, UsageError,
            JobBusy, SchedulerUnreachable) as e:
        if debug:
            raise
        print(f"probnn: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # a training that diverged says where
        if debug:
            raise
        print(f"probnn: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a folder that became unwritable: the OS's words
        if debug:
            raise
        # os.replace(tmp, target) fails naming both: the target is the file the user knows
        where = f": {e.filename2 or e.filename}" if (e.filename2 or e.filename) else ""
        print(f"probnn: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # a safety net: bad input is caught above, with its own message
        if debug:
            raise
        if _out_of_memory(e):
            print("probnn: not enough memory for this run (" + " ".join(str(e).split())[:160]
                  + "): use smaller sizes (e.g. --batch-size, --particles, --k)", file=sys.stderr)
            return 1
        first = next(iter(str(e).splitlines()), "")
        print(f"probnn: internal error: {type(e).__name__}: {first} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if AS_PROGRAM:  # done: a signal during the interpreter's shutdown changes nothing
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
