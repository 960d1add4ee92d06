"""Where probnn looks for its data, and the errors it raises when data is missing or bad."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PROBNN_DATA"


class DataNotFoundError(FileNotFoundError):
    """The data is not in any folder probnn looked in, and could not be downloaded."""


class DataFormatError(ValueError):
    """A data file exists but its contents are not what probnn expects."""


def cache_dir() -> Path:
    """The per-user folder where downloads are kept (``$XDG_CACHE_HOME/probnn/data``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "probnn" / "data"


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders to search, in order: the explicit ``data_dir``, ``$PROBNN_DATA``, the user cache.

    An explicit ``data_dir`` is the only folder searched besides the cache: a user who names a
    folder should not silently get data from somewhere else.
    """
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    elif os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
    dirs.append(cache_dir())
    # de-duplicate while keeping order
    seen, out = set(), []
    for d in dirs:
        try:
            key = d.resolve() if d.exists() else d
        except OSError:  # e.g. a parent folder without search permission: keep it as given
            key = d
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def not_found_message(what: str, relpath: str, searched: list[Path], url: str,
                      download_error: BaseException | None) -> str:
    where = ", ".join(str(d / relpath) for d in searched)
    msg = f"{what} not found. Looked for {where}."
    if download_error is not None:
        why = " ".join(str(download_error).split())  # torchvision's messages span lines
        why = why if len(why) <= 300 else why[:297] + "..."
        msg += f" Download from {url} failed ({type(download_error).__name__}: {why})."
    else:
        msg += " Downloading was not allowed (download=False)."
    msg += (f" Provide it by passing --data-dir DIR (or data_dir=DIR) or setting {ENV_VAR}=DIR,"
            f" where DIR contains {relpath}.")
    files = [d for d in searched if _is_file(d)]
    if files:  # a common slip: naming the data file itself instead of its folder
        msg += f" ({files[0]} is a file: DIR must be the folder that holds {relpath}.)"
    return msg
