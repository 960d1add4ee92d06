"""The quick report's golden tables, and how each of their columns is compared.

The golden CSVs (``tests/golden/quick-report``) were written by ``probnn report --quick --seed
309`` on one machine. Another x86-64 CPU (other SIMD widths, other oneDNN/BLAS kernels) sums in
another order, so a number is compared with its golden value in one of three ways, chosen per
column (:data:`SPECS`; ``tests/golden/README.md`` gives the table in prose):

``EXACT``
    Deterministic on any CPU at a fixed thread count: data (x, y, labels, ink), seeds and the
    images chosen, settings, counts, shapes, the names of rows.
``Within(se)``
    Computed from a model whose training sums in a CPU-dependent order (the VAEs train in
    bf16 and Adam's first, sign-like steps amplify rounding): the value may move, by less than
    the quantity's own standard error ``se`` (a column of the golden row, or the spread of the
    image mean: the per-image standard deviation over the square root of the images averaged).
``PROPERTY``
    A chaotic trajectory (quick-mode NUTS with 80 draws, maximum-likelihood training through its
    log-likelihood dips, gradient SNRs from 3 samples, spreads from 2 repeats, a near-chance
    classifier's counts): the value is not compared; the table's checks (:attr:`Spec.checks`)
    test that it is finite, in its valid range and consistent with the rest of the report.

Every golden column must be named by exactly one rule (:func:`unclassified` lists the rest).

Command line (from the project root)::

    python tests/golden_tables.py check OUT        # OUT: a quick report's --out folder
    python tests/golden_tables.py regenerate OUT   # copy OUT's tables over the golden ones

``check`` prints every number that moved beyond its rule and every failed check; ``regenerate``
prints the same against the old goldens, then writes OUT's tables (timing columns dropped).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

GOLDEN = Path(__file__).parent / "golden" / "quick-report"
TIMING = ("seconds", "ms_per_image", "train_seconds", "eval_seconds", "ms_per_leapfrog")
EXACT, PROPERTY = "exact", "property"
FLOAT32_ROUNDING = 2.0 ** -24


@dataclass(frozen=True)
class Within:
    """|new - golden| <= ``se(golden, col)`` elementwise: the quantity's own standard error."""
    se: Callable[[pd.DataFrame, str], np.ndarray]
    why: str


@dataclass(frozen=True)
class Spec:
    """How one golden table is compared: ``rules`` maps column-name patterns (full regular
    expressions) to ``EXACT``, ``PROPERTY`` or a :class:`Within`; ``key`` aligns the new rows
    with the golden ones (default: by position); ``select(new, golden)`` reduces a new table to the
    rows the golden one holds; ``checks`` test properties of the new tables (see
    ``golden_specs.py``)."""
    rules: dict[str, object]
    key: tuple[str, ...] = ()
    """The columns that name a row (those of them that the golden table has)."""
    select: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame] | None = None
    checks: tuple[Callable[[dict, dict, list[str]], None], ...] = field(default=())


# ----------------------------------------------------------------------------- standard errors
def per_image_sd() -> float:
    """The spread of one image's log-likelihood bound over MNIST images, as the golden report
    measured it (the d=4 VAE's IWAE bound of 500 training images, about 50 nats)."""
    return float(pd.read_csv(GOLDEN / "vae" / "vae-d4-bounds.csv")["bound"].std())


def image_mean(count: str) -> Within:
    """A mean over the ``count`` column's images: its standard error sd / sqrt(n)."""
    return Within(lambda g, c: per_image_sd() / np.sqrt(g[count].to_numpy(float)),
                  f"standard error of a mean over `{count}` images")


def column_se(se: str) -> Within:
    return Within(lambda g, c: g[se].to_numpy(float), f"its standard error `{se}`")


def float32(terms: int) -> Within:
    return Within(lambda g, c: np.abs(g[c].to_numpy(float)) * terms * FLOAT32_ROUNDING,
                  f"float32 rounding of a sum of {terms} terms")


# ----------------------------------------------------------------------------- comparison
def _numbers(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(float)


def compare_column(rule, new: pd.Series, old: pd.Series, golden: pd.DataFrame,
                   col: str) -> str | None:
    """What is wrong with ``new`` against ``old`` under ``rule``, or None."""
    if rule == PROPERTY:
        return None
    if rule == EXACT:
        if old.dtype.kind in "fiub" and new.dtype.kind in "fiub":
            a, b = _numbers(new), _numbers(old)
            same = (a == b) | (np.isnan(a) & np.isnan(b))
        else:
            same = (new.astype(str) == old.astype(str)).to_numpy()
        if same.all():
            return None
        i = int(np.flatnonzero(~same)[0])
        return f"{col}: {(~same).sum()} values differ (row {i}: {new.iloc[i]!r} != {old.iloc[i]!r})"
    a, b, se = _numbers(new), _numbers(old), rule.se(golden, col)
    same = (a == b) | (np.isnan(a) & np.isnan(b))  # equal infinities too
    with np.errstate(invalid="ignore"):
        bad = ~same & ~(np.abs(a - b) <= se)
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    return (f"{col}: {bad.sum()} values moved beyond {rule.why} (row {i}: {a[i]!r} vs golden "
            f"{b[i]!r}, allowed {se[i] if np.ndim(se) else se:.3g})")


def specs() -> dict[str, Spec]:
    """The spec of every golden table, by path (declared in ``golden_specs.py``)."""
    from golden_specs import SPECS
    return SPECS


def rule_for(spec: Spec, col: str):
    hits = [rule for pattern, rule in spec.rules.items() if re.fullmatch(pattern, col)]
    return hits[0] if len(hits) == 1 else None


def unclassified() -> list[str]:
    """Golden columns named by no rule, or by more than one."""
    missing = []
    for golden in sorted(GOLDEN.rglob("*.csv")):
        rel = golden.relative_to(GOLDEN).as_posix()
        spec = specs().get(rel)
        cols = pd.read_csv(golden).columns
        missing += [f"{rel}: {c}" for c in cols if spec is None or rule_for(spec, c) is None]
    return missing


def read_report(out: Path) -> dict[str, pd.DataFrame]:
    """Every CSV of a report folder that has a golden twin, timing columns dropped."""
    tables = {}
    for golden in sorted(GOLDEN.rglob("*.csv")):
        rel = golden.relative_to(GOLDEN).as_posix()
        if (out / rel).is_file():
            t = pd.read_csv(out / rel)
            tables[rel] = t.drop(columns=[c for c in TIMING if c in t])
    return tables


def compare(out: Path) -> list[str]:
    """Every problem of the report in ``out`` against the goldens: a missing table, row or
    column, a number moved beyond its rule, a failed property check."""
    problems = [f"unclassified golden column {c}" for c in unclassified()]
    tables = read_report(out)
    goldens = {g.relative_to(GOLDEN).as_posix(): pd.read_csv(g) for g in GOLDEN.rglob("*.csv")}
    for golden in sorted(GOLDEN.rglob("*.csv")):
        rel = golden.relative_to(GOLDEN).as_posix()
        if rel not in tables:
            problems.append(f"{rel}: missing")
            continue
        problems += [f"{rel}: {p}" for p in compare_table(specs()[rel], tables[rel],
                                                          goldens[rel])]
    for rel, spec in specs().items():
        for check in spec.checks:
            found: list[str] = []
            try:
                check(tables, goldens, found)
            except (KeyError, IndexError, ValueError, TypeError) as e:
                found.append(f"check {check.__name__} could not run: {e!r}")
            problems += [f"{rel}: {p}" for p in found]
    return problems


def compare_table(spec: Spec, new: pd.DataFrame, old: pd.DataFrame) -> list[str]:
    if spec.select is not None:
        new = spec.select(new, old)
    missing = [c for c in old.columns if c not in new.columns]
    if missing:
        return [f"columns missing: {missing}"]
    key = [k for k in spec.key if k in old]  # a golden table may hold fewer keys
    if key:
        new = new.set_index(key)
        old_keyed = old.set_index(key)
        absent = old_keyed.index.difference(new.index)
        if len(absent) or len(new.index) != len(old_keyed.index):
            return [f"rows differ: {len(absent)} golden rows missing, {len(new)} rows against "
                    f"{len(old)}"]
        new = new.loc[old_keyed.index].reset_index()
    elif len(new) != len(old):
        return [f"{len(new)} rows against the golden {len(old)}"]
    new = new.reset_index(drop=True)
    rules = {c: rule_for(spec, c) for c in old.columns}  # unclassified ones are reported apart
    return [p for c, rule in rules.items()
            if rule is not None and (p := compare_column(rule, new[c], old[c], old, c)) is not None]


def regenerate(out: Path) -> None:
    for rel, table in read_report(out).items():
        table.to_csv(GOLDEN / rel, index=False)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("check", "regenerate"):
        print(__doc__.split("Command line")[1].strip(), file=sys.stderr)
        return 2
    out = Path(argv[1])
    problems = compare(out)
    print("\n".join(problems) if problems else "every golden number within its rule")
    if argv[0] == "regenerate":
        regenerate(out)
        print(f"wrote {len(list(GOLDEN.rglob('*.csv')))} golden tables from {out}")
        return 0
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
