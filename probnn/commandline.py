"""What every ``probnn`` command shares: its errors, its common options, the output folder and
the one overwrite rule of every command that trains into ``--out``."""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.tasks.settings import SEED_HELP
from probnn.tasks.validation import SEED


class UsageError(Exception):
    """Bad input the command finds itself (an --out that is a file, a checkpoint it would
    overwrite, ...): printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse's parser with a short error: the problem and where the options are listed, not
    the whole usage block (subcommands' parsers are of this class too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def common_options(p: argparse.ArgumentParser, seed: int = COURSEWORK_SEED) -> None:
    p.add_argument("--seed", type=SEED.arg(), default=seed,
                   help=f"{SEED_HELP} (default {seed})")
    p.add_argument("--data-dir", type=nonempty("--data-dir"), default=None,
                   help="data folder (default: $PROBNN_DATA, then ~/.cache/probnn/data)")
    p.add_argument("--out", type=nonempty("--out"), default=None, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the full traceback")


def nonempty(option: str):
    def parse(text: str) -> str:
        if not text.strip():  # '' would silently mean the default folder
            raise argparse.ArgumentTypeError("must name a folder, not be empty")
        return text
    parse.__name__ = option
    return parse


DEVICE_HELP = "where to compute: cpu (default), cuda, cuda:N, mps, or auto (cuda if there is one)"


def device_name(text: str) -> str:
    """``--device``'s syntax (checked by argparse); whether it exists: :func:`torch_device`."""
    import re
    if not re.fullmatch(r"cpu|cuda(:\d{1,3})?|mps|auto", text):
        raise argparse.ArgumentTypeError("must be cpu, cuda, cuda:N, mps or auto")
    return text


device_name.__name__ = "--device"


def torch_device(name: str):
    """The torch device ``name`` (``auto``: the GPU if there is one, else the CPU), refused
    with one line when this machine has none such."""
    import torch
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {name} requested but no CUDA device is available")
        if (dev.index or 0) >= count:
            raise UsageError(f"--device {name}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                  and torch.backends.mps.is_available()):
        raise UsageError(f"--device {name} requested but no MPS device is available")
    return dev


def device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=device_name, default="cpu", help=DEVICE_HELP)


def folder(path, option: str = "--out") -> Path:
    """The output folder ``path``, checked before any work: refused with one line when it is
    a file, lies under a file, or cannot be created or written. Nothing is created here (the
    command makes the folder when it first writes), so a refused or failed run leaves none."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p} is a file, not a folder")
    existing = next(a for a in (p, *p.absolute().parents) if a.exists())
    if not existing.is_dir():
        raise UsageError(f"{option} {p}: cannot create this folder ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write into this folder" if existing == p else f"create this folder in {existing}"
        raise UsageError(f"{option} {p}: cannot {what} (permission denied)")
    return p


# ----------------------------------------------------------------------------- overwriting
# One rule for every command that trains into --out: an existing checkpoint is continued
# (--resume), kept (neither: refused), or replaced (--force) only once the new training has
# finished. A --force run trains into <name>.ckpt.new beside the old one and renames it over
# the old one at the end; a failed run removes the .new file, an interrupted one leaves it
# (the message says where) and the old checkpoint is never touched. A later --force starts
# afresh, overwriting any .new file; --resume continues <name>.ckpt, never a .new file.
def check_overwrite(args, checkpoints) -> None:
    for p in checkpoints:
        if p.exists() and not p.is_file():
            raise UsageError(f"{p} is in the way: it is a folder (or not a regular file), where "
                             "the checkpoint goes; move it, or use another --out")
    if args.force and args.resume:
        raise UsageError("--force and --resume contradict each other: --resume continues the "
                         "existing checkpoint, --force trains a new one to replace it")
    existing = [str(p) for p in checkpoints if p.exists()]
    if existing and not args.resume and not args.force:
        raise UsageError(f"{' and '.join(existing)} exist{'s' if len(existing) == 1 else ''}; "
                         "pass --resume to continue training or --force to train anew (the "
                         "existing checkpoint is replaced only when the new training has finished)")
    if args.resume:
        for p in checkpoints:
            if not p.exists():
                print(f"probnn: no checkpoint at {p} to resume: training from the start",
                      file=sys.stderr)


def aside(ckpt: Path) -> Path:
    """Where a --force run trains while ``ckpt`` stays as it is."""
    return ckpt.with_name(ckpt.name + ".new")


def put_in_place(new: Path, old: Path) -> None:
    """A finished --force training replaces the old checkpoint: its record (``.json``, where
    it has one) first, then the checkpoint."""
    record = new.with_name(new.name + ".json")
    if record.exists():
        os.replace(record, old.with_name(old.name + ".json"))
    os.replace(new, old)


def discard(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".json")):
        p.unlink(missing_ok=True)


def aside_hint(moved: dict) -> str:
    """What to do after Ctrl-C stopped a --force run (the old checkpoints are unchanged)."""
    pairs = ", ".join(f"{new} (for {old})" for old, new in moved.items())
    if len(moved) == 1:
        return (f"the existing checkpoint is unchanged; the new training so far is in {pairs}: "
                "run with --force again to start it over, or move it over the checkpoint and "
                "run with --resume to continue it")
    return (f"the existing checkpoints are unchanged; the new trainings so far are in {pairs}: "
            "run with --force again to start them over, or move one over its checkpoint and "
            "run with --resume to continue it")


def require_files(paths, what: str = "checkpoint") -> None:
    """Every input file a command reads is there, checked before any work (a command reading
    several would otherwise find a missing one only after the others' work)."""
    for path in paths:
        if not Path(path).is_file():
            kind = " (it is a folder)" if Path(path).is_dir() else ""
            raise UsageError(f"no {what} at {path}{kind}")


def each_checkpoint(args, paths, doing: str):
    """The inputs of each checkpoint in ``paths`` in turn, saying ``doing <path> ...``; every
    path is checked before the first is used."""
    require_files(paths)
    for path in paths:
        if not args.quiet:
            print(f"{doing} {path} ...", file=sys.stderr)
        yield task_inputs(args, path)


def task_inputs(args, *checkpoints):
    """The task inputs of a command: its data folder, ``checkpoints`` and ``--device``."""
    from probnn.tasks.inputs import Inputs
    dev = str(torch_device(args.device)) if getattr(args, "device", None) else "cpu"
    return Inputs(args.data_dir, tuple(checkpoints), dev)


def publish(sections, out: Path, summary: str) -> int:
    """Save the sections' files into ``out`` and print their summary."""
    from probnn.analysis.outputs import markdown, save
    written = save(sections, out, summary)
    print(markdown(sections))
    print(f"wrote {len(written)} files to {out}")
    return 0




@contextmanager
def exclusive(ckpt: Path):
    """Hold ``ckpt``'s lock (the report cache's, :class:`~probnn.jobs.ArtifactLock`) while a
    command trains into it: a second command training the same checkpoint is refused."""
    from probnn.jobs import ArtifactLock
    lock = ArtifactLock(ckpt)
    if not lock.acquire():
        raise UsageError(f"another probnn run is training {ckpt}; wait for it to finish, "
                         "or use another --out")
    try:
        yield
    finally:
        lock.release()
