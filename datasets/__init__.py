"""Data loading: the xkcd regression data and MNIST, read from a data folder.

Lookup order: an explicit ``data_dir``, then ``$PROBNN_DATA``, then the user cache
(``~/.cache/probnn/data``), into which the real download code saves when allowed.
"""
from .paths import DataFormatError, DataNotFoundError, ENV_VAR, cache_dir, candidate_dirs
from .mnist import MNIST_RAW, find_mnist, holdout_split, load_mnist, mnist_files, mnist_splits
from .xkcd import XKCD_URL, find_xkcd, load_xkcd, read_xkcd_csv

__all__ = [
    "DataFormatError", "DataNotFoundError", "ENV_VAR", "cache_dir", "candidate_dirs",
    "MNIST_RAW", "find_mnist", "holdout_split", "mnist_files", "load_mnist", "mnist_splits", "XKCD_URL", "find_xkcd", "load_xkcd", "read_xkcd_csv",
]
