"""Rate-distortion of sources: R at target distortions, and whole curves.

:func:`rate_distortion` finds, for each target distortion, the Lagrange slope whose
Blahut-Arimoto point lands on the target (a batched search over all targets at once) and
returns that point with its certified bracket. :func:`rd_curve` computes a whole curve.

A source is turned into a finite problem ``(p, d)`` by :meth:`Source.discretize`
(continuous sources; a :class:`~rdtheory.sources.Discrete` source is used as it is) and
:func:`~rdtheory.distortion.distortion_matrix`; the reproduction alphabet is the source
grid unless ``y`` is given.

For a continuous source the grid cannot represent test channels finer than its spacing:
targets below the grid's resolution ``D_res = sum_x p(x) d_2(x)`` (``d_2(x)`` the
distortion from ``x`` to its nearest reproduction letter other than the closest; ``h^2``
for MSE and ``h`` for absolute error on a grid of spacing ``h``) are refused rather than
answered with the grid's entropy. Near ``D_res`` the discretisation error grows; it falls
like ``h^2`` further up (see :meth:`rdtheory.sources.ContinuousSource.discretize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import short
from .blahut_arimoto import _MAX_ITER, _prepare, _Prepared, _run
from .distortion import distortion_matrix
from .errors import RDError
from .results import RDCurve, RDPoint, RDPoints
from .sources import Discrete

__all__ = ["rate_distortion", "rd_curve"]

# Rounds of the batched slope search before falling back to time sharing.
_ROUNDS = 40
# Iteration budget of a search round (a hit is then finished with the full budget).
_SEARCH_ITER = 300


@dataclass(frozen=True)
class _Problem:
    """A finite rate-distortion problem built from a source and a distortion."""

    p: np.ndarray
    d: np.ndarray
    x: np.ndarray
    y: np.ndarray
    D_min: float  # smallest admissible target (exact minimum, or the grid resolution)
    D_floor: float  # sum_x p(x) min_y d(x, y): D_s -> D_floor as s -> infinity
    D_max: float  # min_y sum_x p(x) d(x, y): rate 0 from here on
    s_top: float  # a slope at which D_s is within ~e^-40 of D_floor
    continuous: bool
    metadata: dict
    prep: _Prepared  # validated (p, d) with the FFT decision, for the engine


def _distortion_name(distortion: Any) -> str:
    if isinstance(distortion, str):
        return distortion.strip().lower()
    return "callable" if callable(distortion) else "matrix"


def _source_meta(source: Any) -> Any:
    to_dict = getattr(source, "to_dict", None)
    if to_dict is None:
        return repr(source)
    try:
        return to_dict(samples=False)
    except TypeError:
        return to_dict()


def _problem(
    source: Any, distortion: Any, n: int, rule: str, span: float | None, y: Any,
    toeplitz: bool | None = None,
) -> _Problem:
    if isinstance(source, Discrete):
        grid, continuous = source, False
    elif hasattr(source, "discretize"):
        grid = source.discretize(n, rule=rule, span=span)
        continuous = not getattr(source, "is_discrete", False)
    else:
        raise RDError(f"source must be an rdtheory Source, got {short(source)}")
    x = np.asarray(grid.values, dtype=float)
    p = np.asarray(grid.probs, dtype=float)
    if y is None:
        yv = x
    else:
        yv = np.asarray(getattr(y, "values", y), dtype=float)
    d = distortion_matrix(distortion, x, None if y is None else yv)
    if y is None and d.shape[1] != x.size:
        raise RDError(f"distortion has {d.shape[1]} columns; pass y= for its reproduction grid")
    yv = yv if yv.shape == (d.shape[1],) else np.arange(d.shape[1], dtype=float)
    pos = p > 0
    dmin_row = d.min(axis=1)
    D_floor = float(p[pos] @ dmin_row[pos])
    D_max = float(np.min(p[pos] @ d[pos]))
    # distance to the second-nearest distinct reproduction value, per row
    excess = d - dmin_row[:, None]
    masked = np.where(excess > 0, excess, np.inf)
    d2 = masked.min(axis=1)
    gap_min = float(np.min(d2[pos])) if np.isfinite(d2[pos]).any() else 1.0
    s_top = 40.0 / gap_min if math.isfinite(gap_min) and gap_min > 0 else 40.0
    if continuous:
        d2f = np.where(np.isfinite(d2), d2, 0.0)
        D_min = D_floor + float(p @ d2f)
    else:
        D_min = D_floor
    meta = {
        "source": _source_meta(source),
        "distortion": _distortion_name(distortion),
        "n": int(x.size),
        "m": int(d.shape[1]),
        "params": {"rule": rule, "span": span, "discretized": bool(continuous)},
    }
    prep = _prepare(p, d, toeplitz)
    return _Problem(p, d, x, yv, D_min, D_floor, D_max, s_top, continuous, meta, prep)


def _targets(D: Any) -> tuple[np.ndarray, bool]:
    try:
        arr = np.asarray(D, dtype=float)
    except (TypeError, ValueError) as exc:
        raise RDError(f"D must be numeric, got {short(D)}") from exc
    if arr.ndim > 1:
        raise RDError(f"D must be a float or a 1-D array, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise RDError(f"D must not be NaN, got {short(arr)}")
    if arr.size and arr.min() < 0:
        raise RDError(f"D must be non-negative, got {float(arr.min())!r}")
    return arr.reshape(-1), arr.ndim == 0


def _slope_map(prob: _Problem, s_lo: float, s_hi: float, count: int, kw: dict) -> RDPoints:
    """A loose batched pass over log-spaced slopes: the map s -> D_s for bracketing."""
    return _slope_map_at(prob, np.geomspace(s_lo, s_hi, count), kw)


def rate_distortion(
    source: Any,
    distortion: Any,
    D: Any,
    *,
    n: int = 2049,
    rule: str = "point",
    span: float | None = None,
    y: Any = None,
    tol_D: float | None = None,
    **ba_kwargs: Any,
) -> RDPoint | RDPoints:
    """R at target distortion(s) D, with certified brackets.

    Parameters
    ----------
    source : Source
        A continuous source (discretised on ``n`` points with ``rule`` and ``span``) or a
        :class:`~rdtheory.sources.Discrete` source (used as it is).
    distortion : str, callable or array_like
        ``"mse"``, ``"abs"``, ``"hamming"``, a callable ``d(x, y)`` or a matrix (see
        :func:`~rdtheory.distortion.distortion_matrix`).
    D : float or array_like
        Target distortion(s), each ``>= D_min``; all are solved together.
    n : int
        Grid size for continuous sources.
    rule, span
        Passed to ``source.discretize``. The default ``"point"`` (probabilities
        proportional to the density at the grid points) is exact to the solver's tolerance
        for smooth densities once ``h <~ 0.6 sqrt(D)``, whereas ``"cell"`` adds Sheppard's
        ``h^2 / (24 sigma^2)`` nats; for a density with a cusp (Laplace) both fall below
        the continuous curve by ``O((h / D)^2)`` (docs: theory, Blahut-Arimoto).
    y : array_like or Discrete, optional
        Reproduction alphabet (default: the source grid).
    tol_D : float, optional
        Absolute tolerance on the returned distortion: ``|distortion - D| <= tol_D``.
        Default ``1e-6 * D`` for each target.
    **ba_kwargs
        Passed to :func:`~rdtheory.blahut_arimoto.blahut_arimoto` (``tol``, ``max_iter``,
        ``base``, ``backend``, ...). ``polish=True`` polishes the unconverged points of
        every search round (not the slope maps) by Newton steps: certified gaps on sources
        with atoms, at seconds per point.

    Returns
    -------
    RDPoint or RDPoints
        One point per target, in the order given. ``distortion`` is within ``tol_D`` of the
        target; ``rate_lower <= R(distortion) <= rate`` for the finite problem. A target
        ``>= D_max`` gets rate 0 (slope 0). Where the curve has a straight segment that no
        single slope lands inside, the point is the time-sharing mixture of the two
        segment ends (its distortion is then the target itself).

    Raises
    ------
    RDError
        A target that is negative, NaN, or below ``D_min``: for a continuous source the
        grid's resolution (module docstring), for a discrete one
        ``sum_x p(x) min_y d(x, y)``.

    Notes
    -----
    ``D_s`` is non-increasing in the slope ``s`` (Berger 1971, Theorem 2.5.2). The search
    brackets every target on a log-spaced slope map and then runs a safeguarded secant in
    ``(log s, log(D_s - D_floor))`` (where ``D_s - D_floor`` is close to ``1/(2s)`` for MSE
    and to ``1/s`` for absolute error), all targets in one batched engine call per round,
    each warm-started from its nearer bracket end.

    Examples
    --------
    >>> from rdtheory.sources import Bernoulli, Gaussian
    >>> pt = rate_distortion(Bernoulli(0.3), "hamming", 0.1)
    >>> round(pt.distortion, 6), round(pt.rate, 5)  # h(0.3) - h(0.1) = 0.41230 bits
    (0.1, 0.4123)
    >>> pts = rate_distortion(Gaussian(1.0), "mse", [0.25, 0.5], n=513)
    >>> [round(float(r), 3) for r in pts.rate]  # 1/2 log2(1/D)
    [1.0, 0.5]
    """
    prob = _problem(source, distortion, n, rule, span, y, ba_kwargs.pop("toeplitz", None))
    t, scalar = _targets(D)
    below = t < prob.D_min * (1 - 1e-12)
    if below.any():
        bad = float(t[below][0])
        what = "the grid resolution" if prob.continuous else "the minimum distortion"
        raise RDError(
            f"D must be >= D_min = {prob.D_min:.6g} ({what}), got {bad!r}"
            + ("; refine the grid (larger n)" if prob.continuous else "")
        )
    if tol_D is not None and not (isinstance(tol_D, (int, float)) and tol_D > 0):
        raise RDError(f"tol_D must be a positive number, got {tol_D!r}")
    span_d = max(prob.D_max - prob.D_floor, 1e-300)
    if tol_D is not None:
        tol_abs = np.full(t.size, float(tol_D))
    else:
        tol_abs = np.maximum(1e-6 * t, 1e-12 * span_d)
    base = float(ba_kwargs.get("base", 2))
    m = prob.d.shape[1]
    out = {
        "distortion": np.empty(t.size),
        "rate": np.empty(t.size),
        "rate_lower": np.empty(t.size),
        "slope": np.empty(t.size),
        "iterations": np.zeros(t.size, dtype=np.int64),
        "converged": np.zeros(t.size, dtype=bool),
        "q": np.empty((t.size, m)),
    }

    zero = t >= prob.D_max - tol_abs
    if zero.any():
        z = _run(prob.prep, 0.0, **ba_kwargs)
        out["distortion"][zero] = np.where(t[zero] >= prob.D_max, t[zero], z.distortion)
        out["rate"][zero] = out["rate_lower"][zero] = 0.0
        out["slope"][zero] = 0.0
        out["converged"][zero] = True
        out["q"][zero] = z.q
    # at the exact minimum of a discrete problem: the top slope (kernel ~ its row minima)
    bottom = ~zero & (t - prob.D_floor <= tol_abs)
    if bottom.any():
        for factor in (1.0, 1e2, 1e4):
            pt = _run(prob.prep, prob.s_top * factor, **ba_kwargs)
            if pt.distortion - prob.D_floor <= float(np.min(tol_abs[bottom])):
                break
        for key in ("distortion", "rate", "rate_lower", "slope", "iterations", "converged"):
            out[key][bottom] = getattr(pt, key)
        out["q"][bottom] = pt.q
    todo = np.flatnonzero(~zero & ~bottom)
    if todo.size:
        _solve_targets(prob, t, todo, tol_abs, out, ba_kwargs)
    pts = RDPoints(base=base, **out)
    return pts[0] if scalar else pts


def _solve_targets(
    prob: _Problem, t: np.ndarray, todo: np.ndarray, tol_abs: np.ndarray, out: dict, kw: dict
) -> None:
    """Batched bracketing + secant in (log s, log(D - D_floor)) for the targets ``todo``."""
    floor = prob.D_floor
    span_d = max(prob.D_max - floor, 1e-300)
    tt = t[todo]
    s_lo = 1e-2 / span_d
    s_hi = max(100.0 / max(float(tt.min()) - floor, 1e-12 * span_d), 10 * s_lo)
    mp = _slope_map(prob, s_lo, s_hi, 12, kw)
    # bracket [a, b] per target: D(a) >= t >= D(b), a < b in slope
    ms, mD = mp.slope, mp.distortion
    mD_mono = np.minimum.accumulate(mD)  # enforce non-increasing in s
    idx = np.searchsorted(-mD_mono, -tt, side="right")  # first map index with D <= t
    ext = 0
    while (idx >= ms.size).any() and ext < 6:  # targets needing larger slopes
        s_more = ms[-1] * np.geomspace(100.0, 100.0**4, 4)
        more = _slope_map_at(prob, s_more, kw)
        mp = _merge(mp, more)
        ms = mp.slope
        mD_mono = np.minimum.accumulate(mp.distortion)
        idx = np.searchsorted(-mD_mono, -tt, side="right")
        ext += 1
    if (idx >= ms.size).any():
        bad = float(tt[idx >= ms.size][0])
        raise RDError(f"D = {bad!r} could not be bracketed up to slope {ms[-1]:.3g}")
    ia = np.maximum(idx - 1, 0)
    sa, Da, qa = ms[ia].copy(), mD_mono[ia].copy(), mp.q[ia].copy()
    sb, Db, qb = ms[idx].copy(), mD_mono[idx].copy(), mp.q[idx].copy()
    sa = np.where(idx == 0, 0.0, sa)
    Da = np.where(idx == 0, prob.D_max, Da)
    ra = np.zeros(tt.size)
    la = np.zeros(tt.size)
    ia0 = idx > 0
    ra[ia0], la[ia0] = mp.rate[ia[ia0]], mp.rate_lower[ia[ia0]]
    rb, lb = mp.rate[idx].copy(), mp.rate_lower[idx].copy()
    conv_b = mp.converged[idx].copy()
    conv_a = np.where(idx > 0, mp.converged[ia], True)
    fin_a = idx == 0  # the D_max end (slope 0) is exact; map points are loose
    fin_b = np.zeros(tt.size, dtype=bool)
    it_b = mp.iterations[idx].copy()
    log_b = math.log(float(kw.get("base", 2)))
    tol_rate = float(kw.get("tol", 1e-7))

    active = np.ones(tt.size, dtype=bool)
    full_iter = int(kw.get("max_iter", _MAX_ITER))
    search_iter = min(full_iter, _SEARCH_ITER)
    for rnd in range(_ROUNDS):
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        # secant in (log s, log(D - floor)) through the bracket ends when both lie on the
        # curve's sloped part; from the b end with the model slope -1 (D ~ c / s, exact
        # for Gaussian MSE) otherwise; kept inside the bracket; bisection every 4th round
        va = np.log(np.maximum(Da[act] - floor, 1e-300))
        vb = np.log(np.maximum(Db[act] - floor, 1e-300))
        vt = np.log(np.maximum(tt[act] - floor, 1e-300))
        ua = np.log(np.where(sa[act] > 0, sa[act], sb[act] * 1e-3))
        ub = np.log(sb[act])
        sloped = Da[act] < prob.D_max - 1e-9 * span_d
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(sloped, (vb - va) / (ub - ua), -1.0)
        g = np.where(np.isfinite(g), np.minimum(g, -1e-3), -1.0)
        u = ub + (vt - vb) / g
        width = ub - ua
        u = np.clip(u, ua + 0.01 * width, ub - 0.01 * width)
        if rnd % 4 == 3:
            u = 0.5 * (ua + ub)
        s_new = np.exp(u)
        # warm start from the larger-slope end: a spread q concentrates fast under the
        # multiplicative updates, a concentrated one spreads slowly
        q0 = qb[act]
        # search with a short iteration budget; a candidate hit is then finished with the
        # full budget (warm) and checked again
        close = np.minimum(np.abs(Da[act] - tt[act]), np.abs(Db[act] - tt[act])) <= 1e-3 * tt[act]
        res = _run(prob.prep, s_new, q0=q0, **{**kw, "max_iter": search_iter})
        # points of a search round (not of the loose map): their gaps are what the
        # engine reaches in this budget, so a bracket between two of them may be taken
        # once it is no wider than their own gaps
        final = np.ones(act.size, dtype=bool)
        if close.any() and search_iter < full_iter:  # endgame: finish these ones fully
            cl = np.flatnonzero(close & ~res.converged)
            if cl.size:
                res = _merge_at(res, cl, _run(prob.prep, s_new[cl], q0=res.q[cl], **kw))
        Dn = res.distortion
        hit = np.abs(Dn - tt[act]) <= tol_abs[todo[act]]
        unfinished = hit & ~res.converged & (search_iter < full_iter)
        if unfinished.any():
            uf = np.flatnonzero(unfinished)
            fin = _run(prob.prep, s_new[uf], q0=res.q[uf], **kw)
            res = _merge_at(res, uf, fin)
            Dn = res.distortion
            hit = np.abs(Dn - tt[act]) <= tol_abs[todo[act]]
        # record the hits
        for key in ("distortion", "rate", "rate_lower", "slope", "iterations", "converged"):
            out[key][todo[act[hit]]] = getattr(res, key)[hit]
        out["q"][todo[act[hit]]] = res.q[hit]
        active[act[hit]] = False
        # update the brackets of the others
        upper = (~hit) & (Dn > tt[act])  # still above the target: new left end
        lower = (~hit) & ~upper
        for sel, is_a in ((upper, True), (lower, False)):
            j = act[sel]
            if j.size == 0:
                continue
            if is_a:
                sa[j], Da[j], qa[j], ra[j], la[j] = (
                    s_new[sel], Dn[sel], res.q[sel], res.rate[sel], res.rate_lower[sel])
                conv_a[j], fin_a[j] = res.converged[sel], final[sel]
            else:
                sb[j], Db[j], qb[j], rb[j], lb[j] = (
                    s_new[sel], Dn[sel], res.q[sel], res.rate[sel], res.rate_lower[sel])
                conv_b[j], it_b[j] = res.converged[sel], res.iterations[sel]
                fin_b[j] = final[sel]
        # time sharing between the bracket ends: its distortion is the target, its rate the
        # chord (an upper bound, R is convex), its lower bound the best of the ends' dual
        # lines; taken when that bracket is within tol (a close bracket) or within twice
        # the ends' own gaps (slopes that do not converge: their D_s is not sharp enough
        # to hit a target closer), when the slopes meet (a straight segment of the curve:
        # no single slope lands inside), or at the last round
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        ts = _timeshare(tt[act], sa[act], Da[act], ra[act], la[act], qa[act],
                        sb[act], Db[act], rb[act], lb[act], qb[act], log_b)
        # within tol, or (round ends that did not converge) within twice their own gaps
        ends_gap = np.where(fin_a[act] & fin_b[act],
                            np.maximum(ra[act] - la[act], rb[act] - lb[act]), 0.0)
        ts_gap = ts["rate"] - ts["rate_lower"]
        take = ts_gap <= np.maximum(tol_rate, 2.0 * ends_gap)
        take |= (sb[act] - sa[act] <= 1e-9 * sb[act]) | (rnd == _ROUNDS - 1)
        if take.any():
            j = act[take]
            for key in ("distortion", "rate", "rate_lower", "slope", "q"):
                out[key][todo[j]] = ts[key][take]
            out["iterations"][todo[j]] = it_b[j]
            out["converged"][todo[j]] = ts_gap[take] <= tol_rate
            active[j] = False


def _timeshare(
    t: np.ndarray, sa: np.ndarray, Da: np.ndarray, ra: np.ndarray, la: np.ndarray,
    qa: np.ndarray, sb: np.ndarray, Db: np.ndarray, rb: np.ndarray, lb: np.ndarray,
    qb: np.ndarray, log_b: float,
) -> dict[str, np.ndarray]:
    """The time-sharing point at distortion ``t`` between bracket ends a (D_a >= t) and b.

    Rate: the chord ``lam r_a + (1 - lam) r_b`` (mixing the two test channels achieves
    it: mutual information is convex in the channel). Lower bound: ``R`` is
    non-increasing, so ``R(t) >= R(D_a) >= l_a``; and ``R`` lies above each end's dual
    line of slope ``-s / ln(base)`` through its lower bound (used where that bound is
    positive, i.e. not clipped at 0).
    """
    lam = np.clip((t - Db) / np.maximum(Da - Db, 1e-300), 0.0, 1.0)
    D = lam * Da + (1 - lam) * Db
    rate = lam * ra + (1 - lam) * rb
    line_a = np.where(la > 0, la + sa / log_b * (Da - D), 0.0)
    line_b = np.where(lb > 0, lb - sb / log_b * (D - Db), 0.0)
    lower = np.minimum(np.maximum(0.0, np.maximum(la, np.maximum(line_a, line_b))), rate)
    return {
        "distortion": D,
        "rate": rate,
        "rate_lower": lower,
        "slope": np.where(lam >= 0.5, sa, sb),
        "q": lam[:, None] * qa + (1 - lam)[:, None] * qb,
    }


def _merge_at(a: RDPoints, idx: np.ndarray, b: RDPoints) -> RDPoints:
    """``a`` with its entries ``idx`` replaced by those of ``b``."""
    fields = ("distortion", "rate", "rate_lower", "slope", "iterations", "converged", "q")
    new = {f: np.array(getattr(a, f), copy=True) for f in fields}
    for f in fields:
        new[f][idx] = getattr(b, f)
    return RDPoints(base=a.base, **new)


def _merge(a: RDPoints, b: RDPoints) -> RDPoints:
    """Two batches of points merged and sorted by slope."""
    order = np.argsort(np.concatenate([a.slope, b.slope]), kind="stable")
    fields = ("distortion", "rate", "rate_lower", "slope", "iterations", "converged", "q")
    return RDPoints(
        base=a.base,
        **{f: np.concatenate([getattr(a, f), getattr(b, f)])[order] for f in fields},
    )


def _slope_map_at(prob: _Problem, s: np.ndarray, kw: dict) -> RDPoints:
    """The engine at slopes ``s`` with a loose tolerance and a short budget."""
    loose = dict(kw)
    loose["tol"] = max(float(kw.get("tol", 1e-7)), 1e-4)
    loose["max_iter"] = min(int(kw.get("max_iter", 200)), 200)
    loose["polish"] = False  # a map only brackets: no Newton polish of its points
    return _run(prob.prep, s, **loose)


def rd_curve(
    source: Any,
    distortion: Any,
    *,
    n_points: int = 64,
    n: int = 2049,
    D_min: float | None = None,
    D_max: float | None = None,
    rule: str = "point",
    span: float | None = None,
    y: Any = None,
    **ba_kwargs: Any,
) -> RDCurve:
    """A rate-distortion curve of ``n_points`` points, each with its certified bracket.

    Parameters
    ----------
    source, distortion, n, rule, span, y
        As for :func:`rate_distortion`.
    n_points : int
        Number of points (>= 2); the last one is ``(D_max, 0)`` when the range reaches it.
    D_min, D_max : float, optional
        Distortion range to cover; default from the problem's ``D_min`` (grid resolution
        or exact minimum) to ``D_max`` (where the rate reaches 0).
    **ba_kwargs
        Passed to :func:`~rdtheory.blahut_arimoto.blahut_arimoto`. ``polish=True``
        certifies the points BA leaves unconverged (sources with atoms: Uniform, Laplace
        under MSE) by Newton steps, at 0.1-10 s per such point on 2049 points.

    Returns
    -------
    RDCurve
        Points sorted by distortion, with ``rate_lower``, ``slope`` and ``converged``, and
        ``metadata`` (source, distortion, grid size, parameters).

    Raises
    ------
    RDError
        ``n_points < 2``; ``D_min`` below the problem's ``D_min``; ``D_max <= D_min``.

    Notes
    -----
    One loose batched pass maps slopes to distortions; the slopes of the curve are then
    read off that map for target distortions spread half linearly and half geometrically
    over the range (dense where the curve bends), and solved in one batched call, warm
    started from the map. The points land near, not exactly on, those targets.

    Examples
    --------
    >>> from rdtheory.sources import Gaussian
    >>> c = rd_curve(Gaussian(1.0), "mse", n_points=8, n=257)
    >>> len(c), bool((c.rate_lower <= c.rate).all()), float(c.rate[-1])
    (8, True, 0.0)
    """
    if not (isinstance(n_points, (int, np.integer)) and n_points >= 2):
        raise RDError(f"n_points must be an integer >= 2, got {n_points!r}")
    prob = _problem(source, distortion, n, rule, span, y, ba_kwargs.pop("toeplitz", None))
    lo = prob.D_min if D_min is None else float(D_min)
    hi = prob.D_max if D_max is None else float(D_max)
    if not math.isfinite(lo) or lo < prob.D_min * (1 - 1e-12):
        raise RDError(f"D_min must be >= {prob.D_min:.6g} (the problem's D_min), got {D_min!r}")
    if not math.isfinite(hi) or hi <= lo:
        raise RDError(f"D_max must be > D_min = {lo:.6g}, got {D_max!r}")
    floor = prob.D_floor
    span_d = max(prob.D_max - floor, 1e-300)
    top = hi >= prob.D_max
    k = n_points - (1 if top else 0)
    hi_eff = min(hi, prob.D_max)
    # slope map: from below the rate-0 slope up to the top slope
    s_lo = 1e-2 / span_d
    s_hi = prob.s_top if lo <= floor else max(100.0 / max(lo - floor, 1e-12 * span_d), 10 * s_lo)
    mp = _slope_map(prob, s_lo, s_hi, 16, ba_kwargs)
    mD = np.minimum.accumulate(mp.distortion)
    # refine the map between the last slope at D_max and the first one clearly below it
    at_max = np.flatnonzero(mD >= prob.D_max - 1e-3 * span_d)
    if at_max.size and at_max[-1] + 1 < mp.slope.size:
        i = at_max[-1]
        fine = _slope_map(prob, mp.slope[i], mp.slope[i + 1], 10, ba_kwargs)[1:-1]
        mp = _merge(mp, fine)
        mD = np.minimum.accumulate(mp.distortion)
    # targets: half linear, half geometric in (D - floor) over [lo, hi_eff)
    a, b = lo - floor, hi_eff - floor
    a_pos = a if a > 0 else b * 1e-6
    n_lin = k // 2
    tg = np.concatenate([
        np.linspace(a_pos, b, n_lin + 1, endpoint=False)[1:],
        np.geomspace(a_pos, b, k - n_lin + 1)[:-1],
    ])
    tg = np.sort(tg)
    # slopes for the targets: interpolate log s against log(D - floor) on the map points
    # clearly below D_max (slopes at or under the rate-0 slope all give D_max, and converge
    # sublinearly)
    ok = (mD - floor > 0) & (mD < prob.D_max - 1e-3 * span_d)
    if not ok.any():
        ok = mD - floor > 0
    us = np.log(mp.slope[ok])[::-1]
    vs = np.log(mD[ok] - floor)[::-1]  # increasing in D: reverse the (decreasing) map
    vs, uniq = np.unique(vs, return_index=True)
    us = us[uniq]
    s_pts = np.exp(np.interp(np.log(tg), vs, us))
    if lo <= floor:  # discrete source with exact minimum: the first point at the top slope
        s_pts[0] = prob.s_top
    s_pts = np.unique(s_pts)
    while 1 < s_pts.size < k:  # duplicates (clamped targets): fill in geometrically
        gaps = np.diff(np.log(s_pts))
        widest = np.argsort(gaps)[::-1][: k - s_pts.size]
        s_pts = np.unique(np.concatenate([s_pts, np.sqrt(s_pts[widest] * s_pts[widest + 1])]))
    # warm start from the nearest map slope at or above (a spread q concentrates fast)
    above = np.searchsorted(mp.slope, s_pts * (1 - 1e-12))
    q0 = mp.q[np.minimum(above, mp.slope.size - 1)]
    pts = _run(prob.prep, s_pts, q0=q0, **ba_kwargs)
    D_, R_, L_, S_, C_ = pts.distortion, pts.rate, pts.rate_lower, pts.slope, pts.converged
    if top:
        z = _run(prob.prep, 0.0, **ba_kwargs)
        D_ = np.append(D_, z.distortion)
        R_ = np.append(R_, 0.0)
        L_ = np.append(L_, 0.0)
        S_ = np.append(S_, 0.0)
        C_ = np.append(C_, True)
    order = np.argsort(D_, kind="stable")
    meta = dict(prob.metadata)
    meta["params"] = {
        **meta["params"],
        "n_points": int(n_points),
        "D_min": float(lo),
        "D_max": float(hi),
        **{k_: v for k_, v in ba_kwargs.items() if isinstance(v, (int, float, str, bool))},
    }
    return RDCurve(
        distortion=D_[order], rate=R_[order], rate_lower=L_[order], slope=S_[order],
        base=float(ba_kwargs.get("base", 2)), metadata=meta, converged=C_[order],
    )
