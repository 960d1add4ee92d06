"""Per golden table: which columns are exact, which carry a tolerance, which are checked by
properties only (see :mod:`golden_tables`), and the property checks themselves.

A check is ``check(new, golden, found)``: ``new`` and ``golden`` map each table's path to its
frame; it appends what is wrong to ``found``. Checks test what holds on any machine: values
finite and in range, and the report consistent with itself (a sum equal to its terms, one
number equal in two tables, a written count equal to what it counts).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from golden_tables import EXACT, PROPERTY, Spec, Within, column_se, float32, image_mean

N_POINTS = 31  # the xkcd data
COURSEWORK_SEED = 309
MODELS = ("homoscedastic", "heteroscedastic")


def _close(a, b, tol=1e-9) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all((a == b) | (np.abs(a - b) <= tol * np.maximum(1.0, np.abs(b)))))


def _finite(found, name, values) -> None:
    v = np.asarray(values, float)
    if not np.isfinite(v).all():
        found.append(f"{name}: not finite: {v[~np.isfinite(v)][:3]}")


def _integers(found, name, values, lo, hi) -> None:
    v = np.asarray(values, float)
    if not (np.isfinite(v).all() and (v == np.round(v)).all() and (v >= lo).all()
            and (v <= hi).all()):
        found.append(f"{name}: not integers in [{lo}, {hi}]: {v}")


def _need(found, ok, text) -> None:
    if not ok:
        found.append(text)


# ----------------------------------------------------------------------------- Bayesian
def check_nuts_diagnostics(new, golden, found) -> None:
    d = new["bayes/bayes-diagnostics.csv"]
    n = (d["chains"] * d["draws"]).to_numpy(float)
    for col in ("rhat_max", "weights_rhat_max"):
        _need(found, bool((d[col] >= 0.99).all() and np.isfinite(d[col]).all()),
              f"{col} below 0.99 or not finite: {d[col].tolist()}")
    for col in ("ess_bulk_min", "ess_tail_min", "weights_ess_bulk_min"):
        v = d[col].to_numpy(float)
        _need(found, bool(((v > 0) & (v <= 10 * n)).all()), f"{col} outside (0, 10 x draws]: {v}")
    _integers(found, "divergences", d["divergences"], 0, n.min())
    _need(found, bool((d["step_size"] > 0).all()), "step_size not positive")
    _need(found, bool(d["leapfrogs_per_draw"].between(1, 2 ** 10).all()),
          "leapfrogs_per_draw outside [1, 2^10]")


def _pointwise(new, model) -> pd.DataFrame:
    return new[f"bayes/bayes-pointwise_{model}.csv"]


def check_pointwise(new, golden, found) -> None:
    for model in MODELS:
        p = _pointwise(new, model)
        _finite(found, f"{model} psis_elpd_i", p["psis_elpd_i"])
        _finite(found, f"{model} pareto_k", p["pareto_k"])
        refit = p["exact_elpd_i"].notna()
        _need(found, bool((refit == p["exact_mc_se"].notna()).all()),
              f"{model}: exact_mc_se given where no refit was made, or missing")
        expected = p["exact_elpd_i"].where(refit, p["psis_elpd_i"])
        _need(found, _close(p["elpd_i"], expected), f"{model}: elpd_i is not the refit's "
              "term where a point was refitted and the PSIS term elsewhere")


def check_loo(new, golden, found) -> None:
    """The LOO table is the sum of its pointwise terms (arviz's se: sqrt(n var)), its counts
    count the pointwise Pareto k, and the VI table's NUTS row quotes it."""
    loo = new["bayes/bayes-loo.csv"].set_index("model")
    vi = new["bayes/bayes-vi-vs-nuts.csv"]
    for model in MODELS:
        p, row = _pointwise(new, model), loo.loc[model]
        for total, se, term in (("psis_elpd", "psis_se", "psis_elpd_i"), ("elpd", "se", "elpd_i")):
            _need(found, _close(row[total], p[term].sum()), f"{model} {total} != sum of {term}")
            _need(found, _close(row[se], np.sqrt(len(p) * p[term].var(ddof=0))),
                  f"{model} {se} != sqrt(n var({term}))")
        flagged = int((p["pareto_k"] > 0.7).sum())
        _need(found, row["k_over_0.7"] == flagged, f"{model} k_over_0.7 {row['k_over_0.7']} "
              f"!= {flagged} pointwise")
        _need(found, _close(row["k_max"], p["pareto_k"].max()), f"{model} k_max != max k")
        refits = int(p["exact_elpd_i"].notna().sum())
        _need(found, row["refitted"] == refits <= flagged,
              f"{model} refitted {row['refitted']} (pointwise {refits}, flagged {flagged})")
        _need(found, (row["exact_mc_se"] > 0) == (refits > 0) and row["exact_mc_se"] >= 0,
              f"{model} exact_mc_se {row['exact_mc_se']} with {refits} refits")
        nuts = vi[(vi["model"] == model) & (vi["method"] == "nuts")].iloc[0]
        _need(found, _close(nuts["elpd_loo"], row["psis_elpd"]),
              f"{model}: the VI table's NUTS elpd_loo is not the LOO table's")
        _need(found, _close(nuts["lppd_per_point"] * len(p) - row["psis_elpd"], row["p_loo"],
                            1e-6), f"{model}: p_loo != lppd - elpd_loo")


def check_loo_difference(new, golden, found) -> None:
    loo = new["bayes/bayes-loo.csv"].set_index("model")
    diff = new["bayes/bayes-loo-difference.csv"].set_index("homoscedastic - heteroscedastic")
    for row, col in (("psis", "psis_elpd"), ("corrected", "elpd")):
        d = diff.loc[row]
        expected = loo.at["homoscedastic", col] - loo.at["heteroscedastic", col]
        _need(found, _close(d["difference"], expected), f"{row} difference != the elpd difference")
        _need(found, d["se"] > 0 and _close(d["z"], d["difference"] / d["se"]),
              f"{row}: z != difference / se, or se not positive")


def check_vi_table(new, golden, found) -> None:
    vi = new["bayes/bayes-vi-vs-nuts.csv"]
    ok = vi[vi["error"].isna() & ~vi["failed"].astype(bool)]
    _need(found, bool(vi["failed"].isin([True, False]).all()), "VI table: failed is not a flag")
    fits = ok[ok["method"] != "nuts"]
    _finite(found, "VI table elbo_start/elbo_end", fits[["elbo_start", "elbo_end"]].to_numpy())
    _need(found, bool((fits["elbo_end"] > fits["elbo_start"]).all()),
          "VI table: a fit not marked failed whose ELBO did not improve")
    _need(found, len(ok) > 0 and bool(vi.loc[vi["method"] == "nuts", "error"].isna().all()),
          "a NUTS row of the VI table has an error")
    for col in ("lppd_per_point", "elpd_loo", "se", "sigma_mean", "sigma_lo", "sigma_hi"):
        _finite(found, f"VI table {col}", ok[col])
    _need(found, bool(((ok["sigma_lo"] > 0) & (ok["sigma_lo"] <= ok["sigma_mean"])
                       & (ok["sigma_mean"] <= ok["sigma_hi"])).all()),
          "VI table: not 0 < sigma_lo <= sigma_mean <= sigma_hi")
    _need(found, _close(ok["elpd_loo_per_point"] * N_POINTS, ok["elpd_loo"]),
          "VI table: elpd_loo_per_point * 31 != elpd_loo")
    _integers(found, "VI table k_over_0.7", ok["k_over_0.7"], 0, N_POINTS)
    for col in ("f_band_overlap", "y_band_overlap"):
        _need(found, bool(ok[col].between(0, 1).all()), f"VI table {col} outside [0, 1]")
        _need(found, bool((ok.loc[ok["method"] == "nuts", col] == 1).all()),
              f"VI table: NUTS's {col} with itself is not 1")


# ----------------------------------------------------------------------------- VAEs
def _latent_dim(model: str) -> int:
    return int(re.search(r"d(\d+)$", model).group(1))


def check_vae_rows(path):
    def check(new, golden, found) -> None:
        t = new[path]
        # the table is rounded to 2 decimals: 3 roundings of at most 0.005
        gap = (t["elbo_mc"] - (t["reconstruction"] - t["kl"])).abs()
        _need(found, bool((gap <= 0.0151).all()), f"{path}: elbo_mc != reconstruction - kl")
        _need(found, bool((t["kl"] >= 0).all()), f"{path}: negative KL")
        # the paired gap is KL(q || posterior) in expectation: like the KL, it moves with the
        # retrained model by more than its own spread over images; it must be the difference of
        # its two columns (to their rounding) and not below 0 beyond its error
        _need(found, bool((t["gap_200_se"] > 0).all()), f"{path}: paired gap SE not positive")
        gap = t["iwae_200"] - t["elbo_mc_subset"]
        _need(found, bool(((t["gap_200"] - gap).abs() <= 0.0151).all()),
              f"{path}: gap_200 != iwae_200 - elbo_mc_subset")
        _need(found, bool((t["gap_200"] > -3 * t["gap_200_se"]).all()),
              f"{path}: the K=200 bound below ELBO-MC on the same images beyond 3 SE")
        for col in t.filter(regex=r"^unreliable_").columns:
            v = t[col].dropna()
            _need(found, bool(v.between(0, 1).all()), f"{path}: {col} outside [0, 1]")
        for model, units in zip(t["model"], t["active_units"]):
            if not np.isnan(units):
                _integers(found, f"{path} {model} active_units", [units], 0, _latent_dim(model))
    check.__name__ = f"check_vae_rows({path})"
    return check


def check_cvae(new, golden, found) -> None:
    """The confusion matrix counts the classified images (its row sums are the images of each
    true digit: data, exact), its diagonal is the accuracy; the plain VAE's row is the one of
    the comparison table."""
    conf = new["cvae/cvae-d4-confusion.csv"].set_index("Unnamed: 0")
    old = golden["cvae/cvae-d4-confusion.csv"].set_index("Unnamed: 0")
    ev = new["cvae/cvae-d4-evaluation.csv"].set_index("model")
    _integers(found, "confusion counts", conf.to_numpy().ravel(), 0, ev.at["cvae-d4", "classify_images"])
    _need(found, (conf.sum(axis=1) == old.sum(axis=1)).all(),
          "confusion row sums (images per true digit) differ from the golden ones")
    _need(found, conf.to_numpy().sum() == ev.at["cvae-d4", "classify_images"],
          "confusion total != classify_images")
    _need(found, _close(np.trace(conf.to_numpy()) / conf.to_numpy().sum(),
                        ev.at["cvae-d4", "accuracy"], 1e-9), "confusion diagonal != accuracy")
    comp = new["compare/comparison.csv"].set_index("model").loc["vae-d4"]
    same = [c for c in comp.index if c in ev.columns]
    _need(found, _close(ev.loc["vae-d4", same].astype(float), comp[same].astype(float)),
          "the cvae section's vae-d4 row differs from the comparison table's")


def check_rank_bounds(new, golden, found) -> None:
    """Per-image bounds of a retrained model cannot be compared one by one; their mean is (within
    its standard error), and their order is (rank correlation)."""
    path = "vae/vae-d4-bounds.csv"
    a = new[path].set_index("index")["bound"]
    b = golden[path].set_index("index")["bound"]
    a = a.loc[b.index]
    _finite(found, path, a)
    se = b.std() / np.sqrt(len(b))
    _need(found, abs(a.mean() - b.mean()) <= se,
          f"{path}: mean bound {a.mean():.3f} vs golden {b.mean():.3f}, beyond its SE {se:.3f}")
    rho = a.rank().corr(b.rank())
    _need(found, rho >= 0.99, f"{path}: rank correlation with the golden bounds {rho:.4f} < 0.99")


def check_noise_bounds(new, golden, found) -> None:
    t = new["vae/vae-d4-noise-bounds.csv"]
    _finite(found, "noise bounds", t["bound"])
    _need(found, bool((np.diff(t["bound"].to_numpy()) < 0).all()),
          "noise bounds do not fall as the noise grows")


# ----------------------------------------------------------------------------- estimators
def _golden_rows(*key):
    def select(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
        keep = new.set_index(list(key)).index.isin(old.set_index(list(key)).index)
        return new[keep]
    return select


def _golden_objectives(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """The study trains more objectives and seeds than the golden table holds: the rows of
    the golden objectives (of the report's seed, where the golden table has no seeds)."""
    if "seed" not in old:
        new = new[new["seed"].eq(COURSEWORK_SEED)].drop(columns="seed")
    return new[new["objective"].isin(old["objective"])]


def check_snr(path):
    def check(new, golden, found) -> None:
        t = new[path]
        for col in ("snr_mean", "snr_median", "snr_q10", "snr_q90", "mean_abs_grad",
                    "mean_grad_sd"):
            _finite(found, f"{path} {col}", t[col])
            _need(found, bool((t[col] >= 0).all()), f"{path}: negative {col}")
        _need(found, bool(((t["snr_q10"] <= t["snr_median"]) & (t["snr_median"] <= t["snr_q90"])).all()),
              f"{path}: not q10 <= median <= q90")
    check.__name__ = f"check_snr({path})"
    return check


def check_bias_spread(path):
    def check(new, golden, found) -> None:
        t = new[path]
        for col in ("stderr", "sd_of_mean", "per_image_sd", "gap_to_ref_se"):
            _need(found, bool((t[col] >= 0).all() and np.isfinite(t[col]).all()),
                  f"{path}: {col} negative or not finite")
        _need(found, _close(t["stderr"], t["sd_of_mean"] / np.sqrt(t["repeats"]), 1e-6),
              f"{path}: stderr != sd_of_mean / sqrt(repeats)")
        ref = t[t["gap_to_ref"] == 0]
        _need(found, len(ref) >= 1 and (ref["gap_to_ref_se"] == 0).all(),
              f"{path}: no reference row (gap 0, se 0)")
    check.__name__ = f"check_bias_spread({path})"
    return check


def check_objectives(new, golden, found) -> None:
    t = new["estimators/objectives.csv"]
    for col in ("delta_vs_best", "elbo_delta_vs_best"):
        per_seed = t.groupby("seed")[col]
        _need(found, bool((per_seed.max() == 0).all() and (t[col] <= 0).all()),
              f"objectives: {col} is not <= 0 with 0 at each seed's best")
    for col in ("delta_vs_best_se", "elbo_delta_vs_best_se", "holdout_iwae_se"):
        _need(found, bool((t[col] >= 0).all()), f"objectives: negative {col}")


# ----------------------------------------------------------------------------- regression
def _history(new, model) -> pd.DataFrame:
    return new[f"regression/history_{model}.csv"]


def check_histories(new, golden, found) -> None:
    """Training through the dips is chaotic; the first epoch's log-likelihood (the seeded
    initial weights' forward pass, recorded before the first step) is not: within float32
    rounding of the network's dot products (1 + 4 + 20 + 20 terms, bounded by 64 u relative)."""
    summary = new["regression/summary.csv"].set_index("model")
    for model in MODELS:
        h, old = _history(new, model), golden[f"regression/history_{model}.csv"]
        _finite(found, f"{model} history", h["loglik"])
        first, want = h["loglik"].iloc[0], old["loglik"].iloc[0]
        _need(found, abs(first - want) <= abs(want) * 64 * 2.0 ** -24,
              f"{model}: epoch 1 log-likelihood {first!r} vs golden {want!r}")
        row = summary.loc[model]
        _need(found, _close(row["final_loglik"], h["loglik"].iloc[-1]),
              f"{model}: final_loglik is not the history's last")
        after = h[h["epoch"] > 100]
        low = after["loglik"].idxmin()
        _need(found, _close(row["lowest_loglik_after_100"], after["loglik"].min())
              and row["lowest_epoch_after_100"] == h.at[low, "epoch"],
              f"{model}: lowest after epoch 100 is not the history's")
        _need(found, 0 < row["sigma_min"] <= row["sigma_median"] <= row["sigma_max"],
              f"{model}: not 0 < sigma_min <= median <= max")
    homo = summary.loc["homoscedastic"]
    _need(found, homo["sigma_min"] == homo["sigma_max"], "homoscedastic sigma varies with x")
    _need(found, homo["final_loglik"] <= homo["sup_loglik_rich_f"],
          "homoscedastic final log-likelihood above its supremum")


def check_seed_tables(new, golden, found) -> None:
    seeds = new["regression/seeds.csv"].set_index("run")
    cures = new["regression/cures.csv"].set_index("run")
    summary = new["regression/summary.csv"].set_index("model")
    for name, t in (("seeds", seeds), ("cures", cures)):
        for what in ("final_loglik", "lowest_after_100"):
            lo, med, hi = (t[f"{what}_{s}"] for s in ("min", "median", "max"))
            _need(found, bool(((lo <= med) & (med <= hi)).all()), f"{name}: {what} not min <= median <= max")
            own = t[f"coursework_seed_{'final' if what == 'final_loglik' else 'lowest_after_100'}"]
            _need(found, bool(((lo <= own) & (own <= hi)).all()),
                  f"{name}: the coursework seed's {what} outside the seeds' range")
        for run, row in t.iterrows():
            _integers(found, f"{name} {run} seeds_below_-5", [row["seeds_below_-5"]], 0, row["seeds"])
            _need(found, (row["seeds_below_-5"] > 0) == (row["lowest_after_100_min"] < -5),
                  f"{name} {run}: seeds_below_-5 disagrees with the lowest dip")
            _integers(found, f"{name} {run} deepest_dip_seed", [row["deepest_dip_seed"]],
                      COURSEWORK_SEED, COURSEWORK_SEED + row["seeds"] - 1)
    for model in MODELS:
        _need(found, _close(seeds.at[model, "coursework_seed_final"], summary.at[model, "final_loglik"])
              and _close(seeds.at[model, "coursework_seed_lowest_after_100"],
                         summary.at[model, "lowest_loglik_after_100"]),
              f"seeds: {model}'s coursework seed is not the summary's fit")
    _need(found, _close(cures.loc["no cure"], seeds.loc["heteroscedastic"]),
          "cures: the 'no cure' row is not the heteroscedastic ensemble's")


def check_dips(new, golden, found) -> None:
    for name in ("dip_high", "dip_low"):
        t = new[f"regression/{name}.csv"]
        _need(found, sorted(t["point"]) == list(range(N_POINTS)), f"{name}: not every point once")
        _need(found, bool((t["sigma"] > 0).all()), f"{name}: sigma not positive")
        _need(found, _close(t["sq_resid"], (t["y"] - t["f"]) ** 2, 1e-4), f"{name}: sq_resid != (y - f)^2")
        loglik = -0.5 * np.log(2 * np.pi * t["sigma"] ** 2) - t["sq_resid"] / (2 * t["sigma"] ** 2)
        _need(found, _close(t["loglik"], loglik, 1e-4), f"{name}: loglik != log N(y | f, sigma^2)")


# ----------------------------------------------------------------------------- the specs
VAE_ROW = {r"model|images|large_k_images|train_images|classify_images": EXACT,
           r"elbo|elbo_mc|reconstruction|iwae_50|iwae_100": image_mean("images"),
           r"iwae_200|iwae_50_subset|elbo_subset|elbo_mc_subset": image_mean("large_k_images"),
           r"gap_200|gap_200_se": PROPERTY,
           r"train_elbo": image_mean("train_images"),
           r"marginal_iwae_50|iwae_50_classified": image_mean("classify_images"),
           r"kl|active_units|unreliable_\d+|accuracy": PROPERTY}
"""The comparison's numbers are means over images of a retrained VAE, within their standard
error. The KL, and the paired gap IWAE - ELBO (a KL to the posterior in expectation), move more
than their own spread when training's rounding differs (reconstruction and KL trade against
each other, the ELBO does not), so they are checked by ``elbo_mc = reconstruction - kl`` and
``gap = iwae - elbo_mc`` on the same images; counts over a threshold (the share of images with Pareto k > 0.7, the
active units, a near-chance classifier's accuracy) flip with the smallest change of the model,
so they are checked for range and, for the accuracy, against the confusion matrix."""

SNR = {r"objective|elbo|k|side|parameters|unused|samples|images": EXACT,
       r"snr_\w+|mean_abs_grad|mean_grad_sd": PROPERTY}
BIAS_SPREAD = {r"estimator|kind|k|images|repeats": EXACT,
               r"mean|gap_to_ref": PROPERTY,
               r"stderr|sd_of_mean|per_image_sd|gap_to_ref_se": PROPERTY}
POINTWISE = {r"point|x|y": EXACT,
             r"psis_elpd_i|pareto_k|exact_elpd_i|exact_mc_se|elpd_i": PROPERTY}
SEED_TABLE = {r"run|seeds|epochs": EXACT,
              r"final_loglik_\w+|lowest_after_100_\w+|seeds_below_-5|deepest_dip_seed"
              r"|coursework_seed_\w+": PROPERTY}
DIP = {r"point|x|y": EXACT, r"f|sigma|sq_resid|loglik": PROPERTY}

SPECS: dict[str, Spec] = {
    "bayes/bayes-diagnostics.csv": Spec(
        {r"model|chains|draws": EXACT,
         r"rhat_max|ess_\w+|weights_\w+|divergences|step_size|leapfrogs_per_draw": PROPERTY},
        checks=(check_nuts_diagnostics,)),
    "bayes/bayes-loo.csv": Spec(
        {r"model": EXACT, r"psis_elpd": column_se("psis_se"), r"elpd": column_se("se"),
         r"psis_se|p_loo|k_over_0\.7|k_max|refitted|se|exact_mc_se": PROPERTY},
        checks=(check_loo,)),
    "bayes/bayes-loo-difference.csv": Spec(
        {re.escape("homoscedastic - heteroscedastic"): EXACT, r"difference|se|z": PROPERTY},
        checks=(check_loo_difference,)),
    "bayes/bayes-pointwise_heteroscedastic.csv": Spec(POINTWISE, checks=(check_pointwise,)),
    "bayes/bayes-pointwise_homoscedastic.csv": Spec(POINTWISE),
    "bayes/bayes-timings.csv": Spec({r"model|stage": EXACT}),
    "bayes/bayes-vi-vs-nuts.csv": Spec(
        {r"model|method": EXACT,
         r"lppd_per_point|elpd_loo|se|elpd_loo_per_point|k_over_0\.7|sigma_\w+|f_band_overlap"
         r"|y_band_overlap|error|elbo_start|elbo_end|failed": PROPERTY}, checks=(check_vi_table,)),
    "compare/comparison.csv": Spec(VAE_ROW, checks=(check_vae_rows("compare/comparison.csv"),)),
    "cvae/cvae-d4-confusion.csv": Spec({r"Unnamed: 0": EXACT, r"\d": PROPERTY},
                                       checks=(check_cvae,)),
    "cvae/cvae-d4-evaluation.csv": Spec(
        VAE_ROW, checks=(check_vae_rows("cvae/cvae-d4-evaluation.csv"),)),
    "estimators/objectives.csv": Spec(
        {r"objective|elbo|k|epochs|train_images|eval_k|eval_images": EXACT,
         r"train_objective": image_mean("train_images"),
         r"holdout_elbo|holdout_iwae": column_se("holdout_iwae_se"),
         r"holdout_iwae_se|delta_vs_best|delta_vs_best_se|elbo_delta_vs_best"
         r"|elbo_delta_vs_best_se": PROPERTY},
        key=("objective", "seed"), select=_golden_objectives, checks=(check_objectives,)),
    **{f"estimators/vae-{d}-estimators-bias-spread.csv": Spec(
        BIAS_SPREAD, checks=(check_bias_spread(f"estimators/vae-{d}-estimators-bias-spread.csv"),))
       for d in ("d4", "d20")},
    **{f"estimators/vae-{d}-estimators-snr.csv": Spec(
        SNR, key=("objective", "k", "side"), select=_golden_rows("objective", "k", "side"),
        checks=(check_snr(f"estimators/vae-{d}-estimators-snr.csv"),)) for d in ("d4", "d20")},
    "regression/cures.csv": Spec(SEED_TABLE, checks=(check_seed_tables,)),
    "regression/seeds.csv": Spec(SEED_TABLE),
    "regression/dip_high.csv": Spec(DIP, key=("point",), checks=(check_dips,)),
    "regression/dip_low.csv": Spec(DIP, key=("point",)),
    "regression/history_heteroscedastic.csv": Spec({r"epoch": EXACT, r"loglik": PROPERTY},
                                                   checks=(check_histories,)),
    "regression/history_homoscedastic.csv": Spec({r"epoch": EXACT, r"loglik": PROPERTY}),
    "regression/summary.csv": Spec(
        {r"model|epochs": EXACT, r"sup_loglik_rich_f": float32(N_POINTS),
         r"final_loglik|sigma_\w+|lowest_loglik_after_100|lowest_epoch_after_100": PROPERTY}),
    "vae/vae-d4-bound-by-digit.csv": Spec(
        {r"digit|count|mean_ink": EXACT,
         r"mean_bound|median_bound": Within(
             lambda g, c: g["std_bound"].to_numpy(float) / np.sqrt(g["count"].to_numpy(float)),
             "standard error of the digit's mean bound"),
         r"std_bound": Within(
             lambda g, c: g[c].to_numpy(float) / np.sqrt(2 * (g["count"].to_numpy(float) - 1)),
             "standard error of a standard deviation")}),
    "vae/vae-d4-bounds.csv": Spec({r"index|label|ink_pixels": EXACT, r"bound": PROPERTY},
                                  key=("index",), checks=(check_rank_bounds,)),
    "vae/vae-d4-noise-bounds.csv": Spec({r"noise_sd": EXACT, r"bound": PROPERTY},
                                        checks=(check_noise_bounds,)),
}
