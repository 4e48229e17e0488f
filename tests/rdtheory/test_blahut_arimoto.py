"""Tests of the Blahut-Arimoto engine (rdtheory.blahut_arimoto).

Oracles: closed forms (Bernoulli and uniform sources under Hamming distortion, which are
exact for these finite problems), a literal textbook BA written here in the probability
domain (Cover & Thomas, sec. 10.8), the dual-feasibility constraint of every certificate
checked with scipy's logsumexp, and the laws R >= 0, rate_lower <= rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp

from rdtheory import RDError
from rdtheory.blahut_arimoto import _certificates, _is_toeplitz, _prepare, blahut_arimoto
from rdtheory.closed_form import bernoulli_hamming_rd, uniform_hamming_rd
from rdtheory.distortion import distortion_matrix
from rdtheory.results import RDPoint, RDPoints
from rdtheory.sources import Gaussian, Laplace


def _hamming(m: int) -> np.ndarray:
    return 1.0 - np.eye(m)


def _reference_ba(
    p: np.ndarray, d: np.ndarray, s: float, iters: int
) -> tuple[float, float, float]:
    """Textbook BA in the probability domain (Cover & Thomas 2006, sec. 10.8), in nats.

    Returns ``(D, R, gap)`` with Blahut's gap ``log max_y c(y)`` of the last iterate.
    """
    q = np.full(d.shape[1], 1.0 / d.shape[1])
    A = np.exp(-s * d)
    for _ in range(iters):
        cond = q * A
        cond /= cond.sum(axis=1, keepdims=True)
        q = p @ cond
    Z = A @ q
    cond = q * A / Z[:, None]
    D = float(np.sum(p[:, None] * cond * d))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(cond > 0, cond * np.log(cond / q), 0.0)
    gap = float(np.log(np.max(A.T @ (p / Z))))
    return D, float(p @ terms.sum(axis=1)), gap


# ----------------------------------------------------------------------------- closed forms


@given(p1=st.floats(0.05, 0.5), s=st.floats(0.05, 25.0))
def test_bernoulli_hamming_matches_closed_form(p1: float, s: float) -> None:
    pt = blahut_arimoto([1 - p1, p1], _hamming(2), s, tol=1e-9)
    exact = float(bernoulli_hamming_rd(p1, pt.distortion))
    assert abs(pt.rate - exact) <= 1e-6
    assert pt.rate_lower <= exact + 1e-12 <= pt.rate + 2e-12
    assert pt.converged and pt.gap <= 1e-9


@given(m=st.integers(2, 12), s=st.floats(0.05, 30.0))
def test_uniform_hamming_matches_closed_form(m: int, s: float) -> None:
    pt = blahut_arimoto(np.full(m, 1.0 / m), _hamming(m), s, tol=1e-9)
    exact = float(uniform_hamming_rd(m, pt.distortion))
    assert abs(pt.rate - exact) <= 1e-6
    assert pt.rate_lower <= exact + 1e-12 <= pt.rate + 2e-12


def test_doubly_symmetric_point_in_nats_and_bits() -> None:
    # fair bit, slope ln 9 nats: D = 1 / (1 + 9) and R = ln 2 - h(D)
    pt_bits = blahut_arimoto([0.5, 0.5], _hamming(2), math.log(9.0))
    pt_nats = blahut_arimoto([0.5, 0.5], _hamming(2), math.log(9.0), base=math.e)
    h = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))
    assert pt_bits.distortion == pytest.approx(0.1, abs=1e-9)
    assert pt_nats.rate == pytest.approx(math.log(2) - h, abs=1e-9)
    assert pt_bits.rate == pytest.approx(pt_nats.rate / math.log(2), abs=1e-12)


# ----------------------------------------------------------------------------- bounds laws


@st.composite
def _problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 7))
    m = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(n, 0.7))
    scale = 10.0 ** draw(st.floats(-3, 3))
    d = scale * rng.random((n, m)) ** 2
    s = np.array(draw(st.lists(st.floats(0.0, 1e6), min_size=1, max_size=5))) / scale
    return p, d, s


@given(_problems())
def test_bounds_ordered_and_finite_for_any_problem(prob) -> None:
    p, d, s = prob
    pts = blahut_arimoto(p, d, s, max_iter=300)
    assert isinstance(pts, RDPoints) and len(pts) == s.size
    for arr in (pts.distortion, pts.rate, pts.rate_lower, pts.q):
        assert np.all(np.isfinite(arr))
    assert np.all(pts.rate >= 0) and np.all(pts.rate_lower >= 0)
    assert np.all(pts.rate_lower <= pts.rate)
    assert np.all(pts.gap[pts.converged] <= 1e-7)
    floor = p @ d.min(axis=1)
    dmax = (p @ d).min()
    assert np.all(pts.distortion >= floor - 1e-12 * (1 + floor))
    assert np.all(pts.distortion <= d.max() * (1 + 1e-12))
    np.testing.assert_allclose(pts.q.sum(axis=1), 1.0, atol=1e-9)
    zero = s == 0
    assert np.all(pts.rate[zero] == 0) and np.allclose(pts.distortion[zero], dmax)


@given(_problems())
def test_rate_agrees_with_textbook_blahut_arimoto(prob) -> None:
    # At slope s both minimise V = R + s D over channels. The reference's V is an upper
    # bound on the optimum, within its own gap of it; ours is within our gap.
    p, d, s = prob
    s = s[(s > 0) & (s * d.max() < 30)][:1]  # the reference has no log domain
    for si in s:
        pt = blahut_arimoto(p, d, float(si), base=math.e, tol=1e-10, max_iter=3000)
        D_ref, R_ref, gap_ref = _reference_ba(p, d, float(si), 3000)
        v_ref = R_ref + si * D_ref
        v_up, v_low = pt.rate + si * pt.distortion, pt.rate_lower + si * pt.distortion
        if pt.rate_lower > 0:  # else it is R >= 0, not the dual line
            assert v_low <= v_ref + 1e-12
        assert v_up <= v_ref + 1e-9 + pt.gap
        assert v_ref - v_up <= gap_ref + 1e-12


def test_certificates_are_dual_feasible() -> None:
    g = Gaussian().discretize(129)
    d = distortion_matrix("mse", g.values)
    for s, iters in ((0.8, 3), (5.0, 40), (60.0, 10)):
        pt = blahut_arimoto(g.probs, d, s, max_iter=iters, tol=1e-14, base=math.e)
        certs = _certificates(g.probs, d, s, pt.q)
        pos = g.probs > 0
        best = -np.inf
        for cert in certs:
            ll = cert["log_lam"][pos]
            lhs = logsumexp(np.log(g.probs[pos])[:, None] + ll[:, None] - s * d[pos], axis=0)
            assert lhs.max() <= 1e-12, cert["name"]
            best = max(best, -s * pt.distortion + cert["intercept"])
        # the engine's reported lower bound is at least as good as these certificates
        # at its last point (it keeps the best one seen)
        assert pt.rate_lower >= best - 1e-10
        assert pt.rate_lower <= pt.rate


def test_capped_certificate_closes_the_tail_gap() -> None:
    # a grid with near-empty tails: Blahut's gap log max c stalls, the capped one does not
    g = Gaussian().discretize(513)
    d = distortion_matrix("mse", g.values)
    pt = blahut_arimoto(g.probs, d, 5.0, max_iter=40, tol=1e-12, base=math.e)
    certs = _certificates(g.probs, d, 5.0, pt.q)
    lower = {c["name"]: -5.0 * pt.distortion + c["intercept"] for c in certs}
    blahut_gap = pt.rate - lower["blahut"]
    capped_gap = pt.rate - max(v for k, v in lower.items() if k != "blahut")
    assert blahut_gap > 1e-3 and capped_gap < 1e-7


# ----------------------------------------------------------------------------- numerics


@given(s=st.floats(0.0, 1e6), scale=st.floats(1e-3, 1e3))
def test_log_domain_no_overflow_or_nan(s: float, scale: float) -> None:
    g = Laplace().discretize(33, span=6.0)
    d = scale * distortion_matrix("abs", g.values) + scale * 0.5  # no exact matches
    pts = blahut_arimoto(g.probs, d, [s, s / 3, 10 * s], max_iter=200)
    assert np.all(np.isfinite(pts.rate)) and np.all(np.isfinite(pts.distortion))
    assert np.all(pts.rate_lower <= pts.rate) and np.all(pts.rate >= 0)
    assert np.all(pts.rate <= g.entropy(base=2) + 1e-9)


def test_huge_slope_gives_the_entropy_with_exact_matches() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4])
    pt = blahut_arimoto(p, _hamming(4), 1e6)
    H = float(-(p * np.log2(p)).sum())
    assert pt.distortion < 1e-300 + 1e-12
    assert pt.rate == pytest.approx(H, abs=1e-12)
    assert pt.rate_lower == pytest.approx(H, abs=1e-9)


def test_zero_slope_is_rate_zero_at_dmax() -> None:
    p = np.array([0.2, 0.5, 0.3])
    d = np.array([[0.0, 2.0], [1.0, 0.5], [3.0, 0.0]])
    pt = blahut_arimoto(p, d, 0.0)
    assert pt.rate == 0.0 and pt.rate_lower == 0.0 and pt.converged
    assert pt.distortion == pytest.approx((p @ d).min())
    assert pt.q.tolist() == [0.0, 1.0]


def test_fft_and_dense_products_agree() -> None:
    g = Gaussian().discretize(257)
    d = distortion_matrix("mse", g.values)
    s = np.array([0.7, 3.0, 40.0])
    a = blahut_arimoto(g.probs, d, s, toeplitz=True, tol=1e-11)
    b = blahut_arimoto(g.probs, d, s, toeplitz=False, tol=1e-11)
    np.testing.assert_allclose(a.rate, b.rate, atol=1e-9)
    np.testing.assert_allclose(a.distortion, b.distortion, atol=1e-9)


def test_squarem_and_plain_agree_and_squarem_is_faster() -> None:
    g = Gaussian().discretize(257)
    d = distortion_matrix("mse", g.values)
    s = np.array([0.55, 1.0, 3.0])
    a = blahut_arimoto(g.probs, d, s, accelerate=True, tol=1e-9)
    b = blahut_arimoto(g.probs, d, s, accelerate=False, tol=1e-9)
    assert a.converged.all() and b.converged.all()
    np.testing.assert_allclose(a.rate + s / math.log(2) * a.distortion,
                               b.rate + s / math.log(2) * b.distortion, atol=3e-9)
    assert a.iterations.sum() < b.iterations.sum() / 2


def test_iteration_cap_reports_an_honest_gap() -> None:
    g = Gaussian().discretize(129)
    d = distortion_matrix("mse", g.values)
    pt = blahut_arimoto(g.probs, d, 0.52, max_iter=3, tol=1e-12)
    assert not pt.converged and pt.iterations <= 4
    assert pt.gap > 1e-12 and pt.rate_lower <= pt.rate


def test_separate_reproduction_alphabet() -> None:
    # N = 7 source letters, M = 3 reproduction letters: literal BA as the oracle
    x = np.linspace(-1.5, 1.5, 7)
    p = np.exp(-(x**2))
    p /= p.sum()
    y = np.array([-1.0, 0.0, 1.0])
    d = distortion_matrix("mse", x, y)
    pt = blahut_arimoto(p, d, 2.0, base=math.e, tol=1e-11)
    D_ref, R_ref, gap_ref = _reference_ba(p, d, 2.0, 50000)
    assert gap_ref < 1e-10
    assert pt.distortion == pytest.approx(D_ref, abs=1e-7)
    assert pt.rate == pytest.approx(R_ref, abs=1e-7)
    assert pt.q.shape == (3,)


def test_batch_and_scalar_results() -> None:
    pts = blahut_arimoto([0.5, 0.5], _hamming(2), [0.5, 2.0, 0.0])
    assert len(pts) == 3 and isinstance(pts[1], RDPoint)
    assert [pt.slope for pt in pts] == [0.5, 2.0, 0.0]
    sub = pts[1:]
    assert isinstance(sub, RDPoints) and len(sub) == 2
    assert pts.q.shape == (3, 2)
    d = pts[0].to_dict()
    assert d["unit"] == "bits" and d["gap"] == pytest.approx(pts[0].gap)


def test_torch_backend_matches_numpy() -> None:
    import torch  # a hard dependency of the package; imported here to keep rdtheory torch-free
    g = Gaussian().discretize(65)  # dense products
    d = distortion_matrix("mse", g.values)
    s = np.array([0.7, 2.0, 20.0])
    a = blahut_arimoto(g.probs, d, s, tol=1e-11)
    b = blahut_arimoto(g.probs, d, s, tol=1e-11, backend="torch", device="cpu",
                       dtype=torch.float64)
    for key in ("distortion", "rate", "rate_lower"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), atol=1e-9, rtol=0)
    lap = Laplace().discretize(129)  # FFT products
    d2 = distortion_matrix("abs", lap.values)
    a2 = blahut_arimoto(lap.probs, d2, s, tol=1e-11)
    b2 = blahut_arimoto(lap.probs, d2, s, tol=1e-11, backend="torch")
    for key in ("distortion", "rate", "rate_lower"):
        np.testing.assert_allclose(getattr(a2, key), getattr(b2, key), atol=1e-9, rtol=0)


def test_torch_float32_keeps_bounds_ordered() -> None:
    import torch  # a hard dependency of the package; imported here to keep rdtheory torch-free
    g = Gaussian().discretize(129)
    d = distortion_matrix("mse", g.values)
    pts = blahut_arimoto(g.probs, d, [0.7, 5.0], backend="torch", dtype=torch.float32,
                         max_iter=200)
    assert np.all(np.isfinite(pts.rate)) and np.all(pts.rate_lower <= pts.rate)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"p": [0.5, -0.1, 0.6]}, "p"),
        ({"p": [0.5, 0.4, 0.3]}, "p"),
        ({"p": [0.5, float("nan"), 0.5]}, "p"),
        ({"d": -np.ones((3, 2))}, "d"),
        ({"d": np.full((3, 2), np.nan)}, "d"),
        ({"d": np.ones((2, 2))}, "d"),
        ({"d": np.ones(3)}, "d"),
        ({"slope": float("nan")}, "slope"),
        ({"slope": [1.0, -2.0]}, "slope"),
        ({"slope": np.ones((2, 2))}, "slope"),
        ({"backend": "jax"}, "backend"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"base": 1.0}, "base"),
        ({"q0": [0.5, 0.6, 0.1]}, "q0"),
        ({"accelerate": "anderson"}, "accelerate"),
        ({"polish": "yes"}, "polish"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"p": [0.2, 0.3, 0.5], "d": np.ones((3, 2)) - np.eye(3, 2), "slope": 1.0}
    args.update(kwargs)
    p, d, s = args.pop("p"), args.pop("d"), args.pop("slope")
    with pytest.raises(RDError, match=name):
        blahut_arimoto(p, d, s, **args)


def test_rderror_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        blahut_arimoto([1.0], [[-1.0]], 1.0)


# ----------------------------------------------------------------------------- Toeplitz test


def test_toeplitz_detection_on_floating_grids_and_perturbations() -> None:
    # oracle: the construction. A uniform grid with a difference distortion is Toeplitz up
    # to rounding (~1e-13 relative here); one interior entry moved by 1e-6 relative is not,
    # and neither is 0.0 turned into -0.0 (bit patterns far apart).
    g = Gaussian().discretize(1024)
    d = distortion_matrix("mse", g.values)
    assert _prepare(g.probs, d).use_fft
    bad = d.copy()
    bad[700, 300] *= 1 + 1e-6
    assert not _prepare(g.probs, bad).use_fft
    with pytest.raises(RDError, match="toeplitz"):
        blahut_arimoto(g.probs, bad, 1.0, toeplitz=True)
    close = d.copy()
    close[700, 300] *= 1 + 1e-14
    assert _prepare(g.probs, close).use_fft
    neg0 = d.copy()
    neg0[500, 500] = -0.0
    assert not _is_toeplitz(neg0)
    # a rectangular Toeplitz matrix (M != N) and a non-Toeplitz one with equal first row/col
    x = np.arange(200.0)
    rect = np.abs(x[:, None] - x[None, :150])
    assert _is_toeplitz(rect)
    rect2 = rect.copy()
    rect2[-1, -1] += 1.0
    assert not _is_toeplitz(rect2)


def test_fft_and_dense_agree_with_forbidden_pairs() -> None:
    # one-sided distortion d = x - y for y <= x, +inf otherwise: Toeplitz with inf entries
    x = np.linspace(0.0, 6.0, 129)
    p = np.exp(-x)
    p /= p.sum()
    diff = x[:, None] - x[None, :]
    d = np.where(diff >= 0, diff, np.inf)
    assert _prepare(p, d).use_fft
    s = np.array([1.5, 6.0])
    a = blahut_arimoto(p, d, s, toeplitz=True, tol=1e-10)
    b = blahut_arimoto(p, d, s, toeplitz=False, tol=1e-10)
    np.testing.assert_allclose(a.rate, b.rate, atol=1e-8)
    np.testing.assert_allclose(a.distortion, b.distortion, atol=1e-8)
    assert np.all(a.rate_lower <= a.rate)
