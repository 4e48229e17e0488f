"""Constrained Newton polish of a Blahut-Arimoto output marginal (Wang 2007).

Blahut-Arimoto converges sublinearly where the optimal reproduction has atoms (Laplace
under MSE, Uniform, empirical sources): its certified gap stalls around 1e-5..1e-3 bits.
The BA objective ``G(q) = -sum_x p(x) log (K q)(x)`` is the negative log-likelihood of a
mixture with weights ``q`` over the "components" ``K[:, y]``, so the constrained Newton
method for mixing distributions applies unchanged: from the current ``q`` with
``Zt = K q``, the second-order model of ``G`` in the new weights ``b`` is the
non-negative least-squares problem

.. math::

    \\min_{b \\ge 0} \\; \\sum_x p(x) \\Big(\\frac{(K b)(x)}{\\tilde Z(x)} - 2\\Big)^2
    + \\rho^2 \\Big(\\sum_y b(y) - 1\\Big)^2,

over a support that keeps the current support and adds the local maxima of
``c(y) = sum_x p(x) K[x, y] / Zt(x)`` above 1 (where ``G`` still decreases). A line
search between ``q`` and the normalised ``b`` keeps every step monotone. Near the optimum
the steps are Newton steps, so the gap closes quadratically where BA crawls.

Only the *bulk* source letters (``p >= 1e-10 max p``) enter the fit: far-tail letters of
negligible probability would otherwise pin tiny reproduction atoms at the grid's edges,
which the fit cannot resolve and which do not matter. The caller certifies the result
on the full problem (the tail-drop dual certificates of
:mod:`rdtheory.blahut_arimoto` absorb the tail letters), after mixing in a little of
the starting marginal so that no tail letter loses its reproduction.

Reference: Y. Wang, "On fast computation of the non-parametric maximum likelihood
estimate of a mixing distribution", J. R. Statist. Soc. B 69(2), 2007.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cnm_polish"]

_BULK = 1e-10  # source letters with p >= _BULK max p enter the fit
_RHO = 1e3  # weight of the sum-to-one row
_START = 1e-10  # the start keeps the weights of q0 above _START max q0
_DROP = 1e-13  # weights below _DROP max q are set to zero after each step
_MIX = 1e-10  # share of the starting marginal mixed back in


def _local_max(v: np.ndarray) -> np.ndarray:
    """Indices of the (weak) local maxima of a 1-D array."""
    left = np.concatenate([[-np.inf], v[:-1]])
    right = np.concatenate([v[1:], [-np.inf]])
    return np.flatnonzero((v >= left) & (v >= right))


def cnm_polish(
    p: np.ndarray,
    K: np.ndarray,
    q0: np.ndarray,
    tol: float,
    *,
    max_iter: int = 40,
    max_work: float = 4e9,
) -> np.ndarray:
    """Polish an output marginal ``q0`` by the constrained Newton method.

    Parameters
    ----------
    p : numpy.ndarray, shape (N,)
        Source pmf (positive entries).
    K : numpy.ndarray, shape (N, M)
        Kernel ``exp(-s (d - rowmin))`` (zeros allowed).
    q0 : numpy.ndarray, shape (M,)
        Starting output marginal, positive everywhere (a BA iterate).
    tol : float
        Stop when ``log max_y c(y) <= tol`` on the bulk letters (nats).
    max_iter : int
        Newton steps at most.
    max_work : float
        Stop after the step that takes the summed size of the least-squares solves past
        this: a solve costs about ``N x candidates x (its solution's support)``
        operations (about 2e-9 s each here), so the default bounds a slope to roughly
        10 s. Sources with a few atoms converge long before; where the optimal support
        is most of the grid the polish stops early and the certificate reports what it
        reached.

    Returns
    -------
    numpy.ndarray, shape (M,)
        ``(1 - 1e-10) q + 1e-10 q0`` for the polished ``q`` (or ``q0``); sums to 1.
    """
    from scipy.optimize import nnls

    bulk = p >= _BULK * p.max()
    pb = p[bulk] / p[bulk].sum()
    Kb = np.ascontiguousarray(K[bulk])
    sp = np.sqrt(pb)
    q = np.where(q0 >= _START * q0.max(), q0, 0.0)
    q = q / q.sum()
    work = 0.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        zt = Kb @ q
        G = -float(pb @ np.log(zt))
        for _ in range(max_iter):
            if not np.isfinite(G) or (zt <= 0).any():
                return q0
            c = Kb.T @ (pb / zt)
            if float(np.log(c.max())) <= tol:
                break
            grow = _local_max(c)
            support = np.union1d(np.flatnonzero(q > 0), grow[c[grow] > 1.0])
            A = np.vstack([sp[:, None] * Kb[:, support] / zt[:, None],
                           np.full((1, support.size), _RHO)])
            b = np.concatenate([2.0 * sp, [_RHO]])
            try:
                beta = nnls(A, b, maxiter=100 * support.size)[0]
            except RuntimeError:  # the active-set solver's iteration cap
                break
            if not beta.sum() > 0:
                break
            work += Kb.shape[0] * support.size * max(1, int(np.count_nonzero(beta)))
            target = np.zeros_like(q)
            target[support] = beta / beta.sum()
            step = 1.0
            while step > 1e-8:
                trial = (1.0 - step) * q + step * target
                zt_t = Kb @ trial
                G_t = -float(pb @ np.log(zt_t))
                if G_t <= G:
                    break
                step *= 0.5
            else:
                break
            trial[trial < _DROP * trial.max()] = 0.0
            q = trial / trial.sum()
            zt = Kb @ q
            G = -float(pb @ np.log(zt))
            if work > max_work:  # this step is taken; the next would go over budget
                break
    out = (1.0 - _MIX) * q + _MIX * q0
    return out / out.sum()
