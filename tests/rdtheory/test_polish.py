"""The Newton polish of unconverged BA slopes (rdtheory._polish, blahut_arimoto(polish=True)).

Oracles: the dual feasibility of the certificates, checked here by direct summation; the
mutual information and distortion of the returned channel, recomputed here; an
independent convex solver (scipy SLSQP) on a small problem; and plain BA run on the same
problems (each algorithm's lower line must lie below the other's upper point).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp

from rdtheory import rate_distortion, rd_curve
from rdtheory.blahut_arimoto import _certificates, blahut_arimoto
from rdtheory.distortion import distortion_matrix
from rdtheory.sources import Laplace, Uniform


def _uniform_mse(n: int) -> tuple[np.ndarray, np.ndarray]:
    g = Uniform(-1.0, 1.0).discretize(n, rule="point")
    return np.asarray(g.probs), distortion_matrix("mse", g.values)


def _channel_point(p: np.ndarray, d: np.ndarray, s: float, q: np.ndarray) -> tuple[float, float]:
    """(D, I) in nats of the channel Q(y|x) = q(y) exp(-s d) / Z(x), computed directly."""
    logk = np.log(np.maximum(q, 1e-300))[None, :] - s * d
    logz = logsumexp(logk, axis=1)
    cond = np.exp(logk - logz[:, None])
    D = float(p @ (cond * d).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(cond > 0, cond * (logk - logz[:, None] - np.log(q)[None, :]), 0.0)
    return D, float(p @ terms.sum(axis=1))


def test_polish_certifies_the_atoms_of_a_uniform_source() -> None:
    p, d = _uniform_mse(257)
    slopes = [3.0, 30.0, 300.0]
    ba = blahut_arimoto(p, d, slopes, max_iter=60, base=math.e)
    assert not ba.converged.any()  # BA alone stalls on the atoms
    pol = blahut_arimoto(p, d, slopes, max_iter=60, base=math.e, polish=True)
    assert pol.converged.all()
    assert np.all(pol.gap <= 1e-7 * math.log(2) + 1e-15)
    pos = p > 0
    for i, s in enumerate(slopes):
        # the upper point is the channel of the returned q
        D, I = _channel_point(p, d, s, pol.q[i])
        assert abs(D - pol.distortion[i]) <= 1e-9
        assert abs(I - pol.rate[i]) <= 1e-9
        # the lower bound is met by a dual-feasible certificate at the returned q
        best = -np.inf
        for cert in _certificates(p, d, s, pol.q[i]):
            ll = cert["log_lam"][pos]
            lhs = logsumexp(np.log(p[pos])[:, None] + ll[:, None] - s * d[pos], axis=0)
            assert lhs.max() <= 1e-12, cert["name"]
            best = max(best, -s * pol.distortion[i] + cert["intercept"])
        assert pol.rate_lower[i] <= best + 1e-9
        assert pol.rate[i] - best <= 1e-7
        # and the polished point beats BA's upper bound on R + s D
        assert pol.rate[i] + s * pol.distortion[i] <= ba.rate[i] + s * ba.distortion[i] + 1e-12


def test_polish_agrees_with_an_independent_convex_solver() -> None:
    p, d = _uniform_mse(41)
    s = 60.0
    K = np.exp(-s * (d - d.min(axis=1, keepdims=True)))
    shift = float(p @ d.min(axis=1))

    def objective(q: np.ndarray) -> float:
        return -float(p @ np.log(np.maximum(K @ q, 1e-300))) + s * shift

    m = d.shape[1]
    res = minimize(objective, np.full(m, 1.0 / m), method="SLSQP", bounds=[(0.0, 1.0)] * m,
                   constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1.0}],
                   options={"ftol": 1e-14, "maxiter": 2000})
    assert res.success
    pt = blahut_arimoto(p, d, s, max_iter=20, base=math.e, polish=True)
    assert pt.converged
    upper = pt.rate + s * pt.distortion  # min over channels of I + s D, from above
    lower = pt.rate_lower + s * pt.distortion
    assert lower <= res.fun + 1e-12
    assert upper <= res.fun + 1e-9


@st.composite
def _problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    n = draw(st.integers(2, 12))
    m = draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    p = rng.dirichlet(np.full(n, 0.5))
    d = rng.random((n, m)) ** 2
    return p, d, draw(st.floats(0.5, 200.0))


@given(_problems())
def test_polish_never_loosens_and_agrees_with_ba(prob) -> None:
    p, d, s = prob
    ba = blahut_arimoto(p, d, s, max_iter=25, base=math.e)
    pol = blahut_arimoto(p, d, s, max_iter=25, base=math.e, polish=True)
    assert 0.0 <= pol.rate_lower <= pol.rate
    assert pol.gap <= ba.gap + 1e-12
    # each algorithm's lower line lies below the other's upper point (at its own D)
    if pol.rate_lower > 0:
        assert pol.rate_lower + s * (pol.distortion - ba.distortion) <= ba.rate + 1e-10
    if ba.rate_lower > 0:
        assert ba.rate_lower + s * (ba.distortion - pol.distortion) <= pol.rate + 1e-10
    np.testing.assert_allclose(pol.q.sum(), 1.0, atol=1e-9)


def test_polish_leaves_converged_slopes_alone() -> None:
    p, d = _uniform_mse(65)
    a = blahut_arimoto(p, d, [0.5, 2.0], tol=1e-3)
    assert a.converged.all()
    b = blahut_arimoto(p, d, [0.5, 2.0], tol=1e-3, polish=True)
    for f in ("distortion", "rate", "rate_lower", "q"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_rd_curve_with_polish_is_certified_everywhere() -> None:
    c = rd_curve(Laplace(1.0), "mse", n=257, n_points=6, polish=True)
    assert c.converged.all()
    assert np.all(c.rate - c.rate_lower <= 1e-7 + 1e-12)
    assert c.metadata["params"]["polish"] is True


def test_rate_distortion_with_polish_hits_targets_certified() -> None:
    targets = np.array([0.01, 0.05, 0.2])
    plain = rate_distortion(Uniform(-1.0, 1.0), "mse", targets, n=257)
    pts = rate_distortion(Uniform(-1.0, 1.0), "mse", targets, n=257, polish=True)
    assert not plain.converged.any() and pts.converged.all()
    np.testing.assert_allclose(pts.distortion, targets, rtol=1e-6)
    # both brackets hold the same R(D): each lower bound is below the other's upper bound
    assert np.all(pts.rate_lower <= plain.rate + 1e-12)
    assert np.all(plain.rate_lower <= pts.rate + 1e-12)


def test_torch_backend_polishes_like_numpy() -> None:
    p, d = _uniform_mse(129)
    a = blahut_arimoto(p, d, [30.0, 300.0], max_iter=40, polish=True)
    b = blahut_arimoto(p, d, [30.0, 300.0], max_iter=40, polish=True, backend="torch")
    assert a.converged.all() and b.converged.all()
    np.testing.assert_allclose(a.rate, b.rate, atol=1e-7)
    np.testing.assert_allclose(a.distortion, b.distortion, rtol=1e-6)
