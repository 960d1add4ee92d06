"""arviz 0.2x and the ArviZ 1.x packages (arviz-stats, arviz-base) give the same LOO, comparison,
diagnostics and Pareto k through :mod:`probnn.inference.arviz_compat`."""
import importlib.util

import numpy as np
import pytest

from probnn.inference import arviz_compat as az, psis

HAVE = [b for b, mods in (("arviz", ["arviz"]), ("arviz-stats", ["arviz_stats", "arviz_base"]))
        if all(importlib.util.find_spec(m) for m in mods)]


def _data(backend, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    ll = rng.normal(-1.5 - shift, 0.3, size=(2, 300, 12))
    ll[:, :, 3] += rng.standard_t(2, size=(2, 300))  # one point with a heavy tail: large k
    post = {"a": rng.normal(size=(2, 300)), "f": rng.normal(size=(2, 300, 12))}
    return az.from_dict(post, {"y": ll}, {"y": np.zeros(12)}, {"f": ["point"], "y": ["point"]},
                        {"point": np.arange(12)}, backend=backend)


@pytest.mark.parametrize("backend", HAVE)
def test_loo_is_the_psis_sum_of_its_pointwise_terms(backend):
    r = az.loo(_data(backend), backend=backend)
    assert isinstance(r, az.PsisLoo) and r.loo_i.shape == r.pareto_k.shape == (12,)
    assert r.elpd_loo == pytest.approx(r.loo_i.sum())
    assert r.se == pytest.approx(np.sqrt(12 * np.var(r.loo_i)))
    assert r.n_samples == 600 and r.n_data_points == 12
    assert np.argmax(r.pareto_k) == 3


@pytest.mark.parametrize("backend", HAVE)
def test_compare_has_the_same_columns_from_every_backend(backend):
    data = {"good": _data(backend), "worse": _data(backend, shift=0.5, seed=1)}
    t = az.compare(data, backend=backend)
    assert list(t.columns[:len(az.COMPARE_COLUMNS)]) == az.COMPARE_COLUMNS
    assert list(t.index) == ["good", "worse"] and t["rank"].tolist() == [0, 1]
    assert t.loc["worse", "elpd_diff"] > 0 and t["weight"].sum() == pytest.approx(1.0)


def test_unknown_backend_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown ArviZ backend 'arviz2'"):
        az.loo(None, backend="arviz2")


@pytest.mark.skipif(len(HAVE) < 2, reason="needs arviz 0.2x and arviz-stats/arviz-base installed")
def test_both_backends_agree():
    """PSIS, R-hat and ESS (bulk, and tail at the 5% and 95% quantiles) are the same algorithms, and :func:`az.loo` gives arviz-stats arviz
    0.2x's PSIS tail length (S = 600 draws here: 75 against arviz-stats' own 74), so the LOO
    terms, Pareto k and the comparison agree to rounding."""
    a, b = (_data(x) for x in HAVE)
    la, lb = az.loo(a, backend="arviz"), az.loo(b, backend="arviz-stats")
    np.testing.assert_allclose(la.loo_i, lb.loo_i, rtol=1e-12)
    np.testing.assert_allclose(la.pareto_k, lb.pareto_k, rtol=0, atol=1e-12)
    assert (la.elpd_loo, la.se, la.p_loo, la.warning) == pytest.approx(
        (lb.elpd_loo, lb.se, lb.p_loo, lb.warning), rel=1e-12)
    for f in (az.rhat, az.ess, lambda g, backend: az.ess(g, method="tail", backend=backend)):
        ra = f(az.group(a, "posterior"), backend="arviz")
        rb = f(az.group(b, "posterior"), backend="arviz-stats")
        for v in ("a", "f"):
            np.testing.assert_allclose(ra[v].values, rb[v].values, rtol=1e-8)
    draws = np.random.default_rng(4).normal(size=500)
    assert az.ess_of_draws(draws, backend="arviz") == pytest.approx(
        az.ess_of_draws(draws, backend="arviz-stats"))
    ta = az.compare({"good": a, "worse": _data("arviz", 0.5, 1)}, backend="arviz")
    tb = az.compare({"good": b, "worse": _data("arviz-stats", 0.5, 1)}, backend="arviz-stats")
    cols = ["rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "warning"]
    np.testing.assert_allclose(ta[cols].astype(float), tb[cols].astype(float), rtol=1e-9, atol=1e-12)


def _stats_tail(n_draws, r_eff=1.0):
    """arviz-stats 0.8's PSIS tail length (``_get_ps_tails``)."""
    return int(np.floor(3 * np.sqrt(n_draws / r_eff)) if n_draws * r_eff > 225 else np.floor(n_draws / 5))


@pytest.mark.parametrize("n_draws, r_eff", [(20, 1.0), (80, 0.25), (101, 1.0), (226, 1.0),
                                             (600, 0.96), (1000, 2.0), (5000, 1.0)])
@pytest.mark.skipif("arviz" not in HAVE, reason="needs arviz 0.2x")
def test_psislw_is_arviz_0_2x_s(n_draws, r_eff):
    """probnn's PSIS (the weights arviz-stats' LOO is given) is arviz 0.2x's to rounding, on
    its tail length ceil(min(S / 5, 3 sqrt(S / r_eff))) (S = 20: 4 draws, too few to fit)."""
    assert psis.tail_length(n_draws, r_eff) == int(np.ceil(min(n_draws / 5, 3 * np.sqrt(n_draws / r_eff))))
    lr = np.random.default_rng(5).standard_t(3, size=(4, n_draws))
    lw, k = psis.psislw(lr, r_eff)
    with az._quiet():
        import arviz
        lw_ref, k_ref = arviz.psislw(lr.copy(), reff=r_eff)
    np.testing.assert_allclose(k, k_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lw, lw_ref, rtol=0, atol=1e-9)
    assert np.allclose(np.exp(lw).sum(axis=-1), 1.0) and (np.isinf(k).all() if n_draws == 20 else np.isfinite(k).all())


@pytest.mark.parametrize("n_draws", [50, 101, 226, 400, 1000, 5000])
@pytest.mark.skipif("arviz" not in HAVE, reason="needs arviz 0.2x")
def test_pareto_k_of_importance_weights_is_arviz_psislw_s(n_draws):
    w = np.random.default_rng(3).standard_t(3, size=(6, n_draws))
    np.testing.assert_allclose(psis.pareto_k(w), az.pareto_k(w, backend="arviz"), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_draws", [50, 101, 226, 400, 1000, 5000])
@pytest.mark.skipif("arviz-stats" not in HAVE, reason="needs arviz-stats/arviz-base")
def test_arviz_stats_pareto_k_differs_only_by_its_tail_length(n_draws):
    """arviz-stats' psislw takes log-likelihood values (it smooths their negation); given the
    negated log weights, its k is probnn's on arviz-stats' tail length: the reference k where
    the two rules give the same length (S = 50, 400), another where they do not (by up to 0.08
    at S = 101, 0.04 at S = 1000 on these weights)."""
    w = np.random.default_rng(3).standard_t(3, size=(6, n_draws))
    k_stats = az.pareto_k(w, backend="arviz-stats")
    np.testing.assert_allclose(k_stats, psis.pareto_k(w, tail=_stats_tail(n_draws)), rtol=0, atol=1e-12)
    if _stats_tail(n_draws) == psis.tail_length(n_draws):
        np.testing.assert_allclose(k_stats, psis.pareto_k(w), rtol=0, atol=1e-12)
    else:
        assert np.abs(k_stats - psis.pareto_k(w)).max() > 1e-3


def test_pareto_k_recovers_the_shape_of_pareto_weights():
    """Weights w = U^(-xi) have a Pareto tail of shape xi. Over 40 rows of S = 5000 (M = 213),
    the mean k is xi within 4 standard errors of the mean (the rows' own spread), after the
    prior's pull (n k + 5) / (n + 10) towards 0.5."""
    xi = 0.8
    u = np.random.default_rng(7).uniform(size=(40, 5000))
    k = psis.pareto_k(-xi * np.log(u))
    m = psis.tail_length(5000)
    expected = (m * xi + 5) / (m + 10)
    assert abs(k.mean() - expected) < 4 * k.std(ddof=1) / np.sqrt(len(k))
    assert np.isinf(psis.pareto_k(np.zeros((1, 20)) + np.arange(20.0)))[0]  # M = 4: too few to fit
