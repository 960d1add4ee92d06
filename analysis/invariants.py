"""What must hold between a report's numbers, checked before it is rendered.

The report states many estimates of a few quantities; some orderings hold by construction in
expectation, and the same quantity measured in two sections must agree within its uncertainty.
:func:`check_report` runs every check and returns one line per violation; the report prints
them at its top, so a reader sees a broken invariant beside the numbers rather than after. The
checks (``z`` standard errors of tolerance, default :data:`Z_CHECK`):

1. every number printed is finite: no infinite table cell, no ``nan``/``inf`` in an answer;
2. on the same images, ELBO <= IWAE-K <= IWAE-K' (K < K') and IWAE <= AIS, each a paired mean
   difference that may exceed 0 by at most z standard errors; BDMC's lower <= upper bound
   within their Monte Carlo errors;
3. the same quantity in two sections agrees: question (e)'s estimates and the bounds
   section's of the images both scored (the bounds images are drawn from (e)'s subset) differ
   by at most z standard errors of the paired difference;
4. no answer names a winner inside the uncertainty: when (e)'s answer names a best model, its
   paired difference to the runner-up is beyond the answer's own
   :data:`~probnn.analysis.comparison.Z` standard errors.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from probnn.inference.paired import Paired, PerImage, paired_difference

from .comparison import Z
from .holdout_table import k_columns
from .outputs import Section

Z_CHECK = 3.0
"""Standard errors of tolerance: a report runs a few dozen checks, and at 2 one in twenty
would fire by Monte Carlo chance alone; at 3, one in 370."""

_NONFINITE = re.compile(r"(?<![\w-])([-+−]?inf|nan)(?![\w-])", re.IGNORECASE)


TRUE_INFINITIES = frozenset({"sup_loglik_rich_f"})
"""Columns whose infinite value is the true answer, not a failed estimate: the supremum of the
heteroscedastic likelihood is +inf (sigma(x) -> 0 at a point that f fits exactly)."""


def printed_numbers_finite(sections: Iterable[Section]) -> list[str]:
    """Check 1 over every table and answer of ``sections`` (a missing cell, NaN, is allowed in
    a table: it is shown empty, not as a number; so is +inf in :data:`TRUE_INFINITIES`)."""
    out = []
    for s in sections:
        for t in s.tables:
            num = t.frame.select_dtypes("number")
            num = num[[c for c in num.columns if c not in TRUE_INFINITIES]]
            bad = np.isinf(num.to_numpy(dtype=float))
            if bad.any():
                r, c = map(int, np.argwhere(bad)[0])
                out.append(f"{s.id}: table {t.name} has an infinite value ({num.index[r]}, "
                           f"{num.columns[c]})")
        for a in s.answers:
            if m := _NONFINITE.search(a):
                out.append(f"{s.id}: an answer prints {m.group(0)!r}: …{a[max(0, m.start() - 60):m.end()]}")
    return out


def critical(z: float, n: int) -> float:
    """The Student-t quantile with n - 1 degrees of freedom that has the normal's tail beyond
    ``z``: a standard error estimated from a handful of images (the quick report has 4) is
    itself uncertain, and a bare z would make the checks fire by chance there."""
    from scipy import stats
    return float(stats.t.ppf(stats.norm.cdf(z), n - 1)) if n > 1 else math.inf


def _above(p: Paired, z: float, extra_se: float = 0.0) -> bool:
    """Whether ``p.mean`` is above zero by more than z standard errors (a violated ``<=``);
    ``extra_se``: a Monte Carlo error not in the paired spread (AIS's own), added in quadrature."""
    se = math.hypot(p.se if np.isfinite(p.se) else 0.0, extra_se)
    return p.n > 0 and p.mean > critical(z, p.n) * se


def ordered(per_image: PerImage, columns: Sequence[str], where: str, z: float = Z_CHECK,
            extra_se: Mapping[str, float] | None = None) -> list[str]:
    """Check 2 on one set of images: ``columns[0] <= columns[1] <= ...`` (paired);
    ``extra_se``: column -> a Monte Carlo error of its mean beyond the paired spread."""
    out, extra_se = [], extra_se or {}
    for lo, hi in zip(columns, columns[1:]):
        if lo in per_image and hi in per_image:
            p = paired_difference(per_image, lo, per_image, hi)
            if _above(p, z, math.hypot(extra_se.get(lo, 0.0), extra_se.get(hi, 0.0))):
                out.append(f"{where}: {lo} exceeds {hi} by {p.mean:.2f} ± {p.se:.2f} nats on "
                           f"the same {p.n} images (beyond its Monte Carlo error)")
    return out


def _k_sorted(columns) -> list[str]:
    """The IWAE-K columns by K, K >= 2 (IWAE-1 is a one-sample ELBO, not above it)."""
    return [c for k, c in k_columns(columns, "iwae") if k > 1]


def holdout_orders(name: str, per_image: Mapping, z: float = Z_CHECK) -> list[str]:
    """Check 2 for question (e)'s estimates of one model: ELBO-MC <= IWAE-K <= IWAE-K'."""
    out = []
    for part, pi in per_image.items():
        if isinstance(pi, PerImage):
            out += ordered(pi, ["elbo_mc", *_k_sorted(pi.values)], f"(e) {name} ({part})", z)
    return out


def bounds_per_image(result) -> PerImage:
    """A bounds result's per-image table as a :class:`~probnn.inference.paired.PerImage` (indices into the holdout)."""
    df = result.per_image
    return PerImage(df["index"].to_numpy(), {c: df[c].to_numpy() for c in df.columns
                                            if c != "index" and pd.api.types.is_float_dtype(df[c])})


def bounds_orders(result, z: float = Z_CHECK) -> list[str]:
    """Check 2 for one model of the bounds section: ELBO <= IWAE-K <= ... <= AIS, and BDMC's
    lower <= upper bound at every schedule."""
    pi = bounds_per_image(result)
    ais_se = (float(np.sqrt((result.per_image["ais_se"] ** 2).sum())) / len(pi)
              if "ais_se" in result.per_image else 0.0)
    out = ordered(pi, ["elbo", *_k_sorted(pi.values), "ais"], f"bounds {result.name}", z,
                  {"ais": ais_se})
    for r in getattr(result, "bdmc", pd.DataFrame()).itertuples():
        se = math.hypot(getattr(r, "lower_se", 0.0), getattr(r, "upper_se", 0.0))
        if r.lower - r.upper > z * se:
            out.append(f"bounds {result.name}: BDMC lower bound {r.lower:.2f} above the upper "
                       f"{r.upper:.2f} at {r.steps} steps (more than {z:g} standard errors)")
    return out


def agreement(name: str, a: PerImage, b: PerImage, pairs: Mapping[str, str], where: str,
              z: float = Z_CHECK) -> list[str]:
    """Check 3: each estimate ``a[k]`` agrees with ``b[pairs[k]]`` on the common images."""
    out = []
    for ca, cb in pairs.items():
        if ca in a and cb in b:
            p = paired_difference(a, ca, b, cb)
            if p.n > 1 and abs(p.mean) > critical(z, p.n) * p.se:
                out.append(f"{name}: {ca} of (e) and {cb} of {where} differ by "
                           f"{p.mean:.2f} ± {p.se:.2f} nats on the same {p.n} images")
    return out


def winner_named_beyond_uncertainty(answer: str, per_image: Mapping, table: pd.DataFrame,
                                    column: str, z: float = Z) -> list[str]:
    """Check 4 for question (e): a model called best must beat the runner-up beyond z se
    (the answer's own rule, :data:`~probnn.analysis.comparison.Z`)."""
    m = re.search(r"the best model is (.+?):", answer)
    if not m or column not in table or table[column].notna().sum() < 2:
        return []
    ranked = table[column].dropna().sort_values(ascending=False).index
    a, b = (per_image.get(n, {}).get("subset") for n in ranked[:2])
    if a is None or b is None or column not in a or column not in b:
        return [f"(e): names {m.group(1)} best without per-image estimates to back it"]
    p = paired_difference(a, column, b, column)
    return [] if p.beyond(z) else [
        f"(e): names {m.group(1)} best, but its difference to {ranked[1]} is {p.mean:.2f} ± "
        f"{p.se:.2f} nats, within {z:g} standard errors"]


def check_report(sections: Iterable[Section], holdouts: Sequence = (), bounds: Sequence = (),
                 z: float = Z_CHECK) -> list[str]:
    """Every check above on a report's sections and results: ``holdouts`` (question (e)'s
    :class:`~probnn.tasks.holdout.Result` objects) and ``bounds`` (the bounds section's); one
    line per violation, none when all hold."""
    sections = list(sections)
    out = printed_numbers_finite(sections)
    by_name = {r.name: r.per_image for r in holdouts}
    for name, pi in by_name.items():
        out += holdout_orders(name, pi, z)
    for r in bounds:
        out += bounds_orders(r, z)
        sub = by_name.get(r.name, {}).get("subset")
        if sub is not None:
            bp = bounds_per_image(r)
            k = _k_sorted(sub.values)[-1:]
            out += agreement(r.name, sub, bp, {**{c: c for c in k}, "elbo_mc": "elbo"},
                             "the bounds section", z)
    compare = next((s for s in sections if s.id == "vae-e"), None)
    if compare is not None and compare.tables and compare.answers:
        table = compare.tables[0].frame
        col = (_k_sorted(table.columns) or [None])[-1]
        if col:
            out += winner_named_beyond_uncertainty(compare.answers[0], by_name, table, col)
    return out
