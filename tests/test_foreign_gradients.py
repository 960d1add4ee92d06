"""Mean gradients of probnn's objectives on pairs written in the style of Pyro's test suite,
against Pyro's own ELBOs on the same pairs, every model and guide parameter:

- the IWAE objective and DReG against ``RenyiELBO(alpha=0)`` (the IWAE bound's gradient; DReG
  changes the guide's estimator, not its expectation);
- STL against ``Trace_ELBO`` (dropping the score term, whose expectation is zero, leaves the
  ELBO's gradient: the two differ in variance, not in mean).

Means over seeded repeats are compared by a z-test with the standard error of the
difference (4.5 SE); each test also shows it could fail, by the same test on the pair with
its scale, subsample N/B or mask switched off (what a tool that ignored them would compute).
One torch thread: these tensors are tiny, and on shared cores a second thread costs more
than the arithmetic (a (4, 2) softmax took 6 ms with two threads, 3 us with one).
"""
import pytest
from pyro.infer import RenyiELBO, Trace_ELBO

from probnn.inference.elbos import make_elbo
from probnn.inference.structure import ModelError
from gradient_pairs import (GRADIENT_PAIRS, hierarchical_pair, mean_gradient, store_parameters,
                            z_scores)

K, REPEATS, Z_MAX = 4, 200, 4.5


@pytest.mark.parametrize("name", list(GRADIENT_PAIRS))
def test_mean_gradients_agree_with_pyros_elbos(name, one_thread):
    pair = GRADIENT_PAIRS[name]()
    params = store_parameters(pair)
    pyro_kw = dict(num_particles=K, vectorize_particles=pair.vectorize,
                   max_plate_nesting=pair.nesting)

    def grad(elbo, calls, seed):
        return mean_gradient(elbo, pair, calls, params, REPEATS, seed)

    renyi = grad(RenyiELBO(alpha=0, **pyro_kw), pair.calls(), 10_000)
    trace = grad(Trace_ELBO(**pyro_kw), pair.calls(whole=True), 20_000)
    ours = {n: grad(make_elbo(n, K, max_plate_nesting=pair.nesting), pair.calls(whole=True), 0)
            for n in ("iwae", "dreg-iwae", "stl")}
    for n, ref in (("iwae", renyi), ("dreg-iwae", renyi), ("stl", trace)):
        z = z_scores(ours[n], ref)
        assert float(z.max()) < Z_MAX, (name, n, z, ours[n], ref)
    # measured, not trivially: some gradient resolved at 5 standard errors from zero
    assert float((renyi[0].abs() / renyi[1]).max()) > 5, renyi
    if pair.broken:  # the same test tells the feature switched off from on
        off = grad(RenyiELBO(alpha=0, **pyro_kw), pair.calls(broken=True), 30_000)
        assert float(z_scores(ours["iwae"], off).max()) > 3 * Z_MAX, (name, off, ours["iwae"])


def test_a_hierarchical_guide_stl_and_iwae_agree_with_pyro_and_dreg_refuses(one_thread):
    """q(z2 | z1): STL (its cut path has zero mean for K = 1) and IWAE follow Pyro; DReG is a
    ModelError naming both sites, raised before any computation (no gradient is left)."""
    pair = hierarchical_pair()
    params = store_parameters(pair)
    kw = dict(num_particles=K, vectorize_particles=True, max_plate_nesting=1)
    for ours, ref, calls in (("stl", Trace_ELBO(**kw), pair.calls(whole=True)),
                             ("iwae", RenyiELBO(alpha=0, **kw), pair.calls())):
        got = mean_gradient(make_elbo(ours, K), pair, pair.calls(whole=True), params, REPEATS, 0)
        want = mean_gradient(ref, pair, calls, params, REPEATS, 10_000)
        assert float(z_scores(got, want).max()) < Z_MAX, (ours, got, want)
    for p in params:
        p.grad = None
    with pytest.raises(ModelError, match="guide site 'z2' is drawn given guide site 'z1'"):
        make_elbo("dreg-iwae", K).loss_and_grads(pair.model, pair.guide, **pair.rows[0])
    assert all(p.grad is None for p in params)
