"""Benchmark of the coder (rdprune.coding) against zstd, the storage baselines and NNCodec.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_coder.py                  # ~20 M weights
    OMP_NUM_THREADS=1 python benchmarks/bench_coder.py --weights 2e6    # quick
    OMP_NUM_THREADS=1 python benchmarks/bench_coder.py --skip-speed     # the table only
    NNCODEC_PATH=/path/to/site python benchmarks/bench_coder.py         # with NNCodec

Three parts, in one process, threads pinned to 1:

1. speed: ``compress`` / ``decompress`` of a synthetic model of ``--weights`` weights
   (Laplacian, magnitude-pruned to ``--sparsity`` globally, uniform levels), in weights
   per second, side by side with zstd-3 of the fp32 tensors and NNCodec (when importable);
2. sizes of the same tensors: ours, the lossless reference (THEORY section 7), dense fp32,
   CSR, bitmask + fp16, zstd-3 of fp32, Deep-Compression-style (4- and 8-bit relative
   indices + Huffman), NNCodec (dependent quantisation off, the same levels);
3. overhead over the reference for one tensor of 1e5 and 1e6 weights at sparsities
   50, 90 and 99 %, Gaussian and Laplacian weights (seeded), for uniform levels (4 and 8
   bits) and a 16-entry k-means codebook, with the value model the coder chose and
   NNCodec's overhead on the same uniform levels;
4. the floor under the hardest cell of that table (1e5 weights, 99 % sparse, 8-bit
   levels) over ``--floor-seeds`` seeds, and at 10 and 12 bits (seed 1): our overhead
   split into positions, values (model description and fit) and framing (ANS
   termination, rounding), beside the
   overhead of an *oracle* that knows the source law, the step and the threshold and
   pays no parameters, framing or termination: ``-log2 P(levels) - k H(levels)``.

NNCodec (``pip install nncodec``, a source build) pins numpy<2, torchvision, opencv and
pandas; its coder does not use them but its import chain (``nncodec.nnc`` ->
``nncodec.framework``) loads them. Build it into a separate directory
(``pip install --no-deps --target DIR nncodec``) and point ``NNCODEC_PATH`` (or
``--nncodec-path``) at it: the benchmark then stands in empty modules for those
framework-only imports, and says so.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
import zstandard

from rdprune import baselines
from rdprune.coding import compress, decompress, estimate, inspect
from rdprune.coding.container import tensor_to_bytes
from rdprune.quantize import KMeansQuantizer, UniformQuantizer

torch.set_num_threads(1)

_FRAMEWORK_ONLY = ("torchvision", "cv2", "pandas", "h5py", "ptflops", "torchmetrics", "click",
                   "tensorflow", "wandb", "PIL")


def _enable_nncodec(path: str | None) -> str:
    """Make ``nncodec.nnc`` importable if possible; returns a status line."""
    if path:
        sys.path.insert(0, path)
    if baselines.nncodec_available():
        return "NNCodec: imported as installed"
    try:
        import nncodec  # noqa: F401
    except ImportError as exc:
        return f"NNCodec: not available ({exc}); pass --nncodec-path or set NNCODEC_PATH"
    import importlib.abc
    import importlib.machinery
    from unittest import mock

    class _Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in _FRAMEWORK_ONLY:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            module = mock.MagicMock(name=spec.name)
            module.__path__ = []
            module.__spec__ = spec
            return module

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, _Stub())
    if baselines.nncodec_available():
        return ("NNCodec: imported with empty stand-ins for its framework-only imports "
                f"({', '.join(_FRAMEWORK_ONLY)})")
    return "NNCodec: found but not importable"


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _nnc_qp(peak: float, bits: int) -> int:
    """NNCodec qp whose step is closest to ``peak / 2**(bits-1)`` (in log scale)."""
    return round(4 * math.log2(peak / 2 ** (bits - 1)))


def _nnc_step(qp: int) -> float:
    """NNCodec's quantiser step at ``qp_density=2``: ``(1 + (qp mod 4)/4) 2**floor(qp/4)``
    (measured: its decoder reconstructs ``level * step`` with this step)."""
    return (1 + (qp & 3) / 4) * 2.0 ** (qp >> 2)


def _model(total: int, sparsity: float, seed: int) -> dict[str, torch.Tensor]:
    """Four Laplacian matrices (scales differ per layer), pruned globally by magnitude."""
    g = torch.Generator().manual_seed(seed)
    rows = 2048
    cols = max(1, total // (4 * rows))
    state = {}
    for i, scale in enumerate((0.05, 0.03, 0.02, 0.04)):
        u = torch.rand(rows, cols, generator=g, dtype=torch.float64) - 0.5
        lap = -scale * torch.sign(u) * torch.log1p(-2 * u.abs())
        state[f"layer{i}.weight"] = lap.to(torch.float32)
    flat = torch.cat([t.abs().reshape(-1) for t in state.values()])
    k = round(sparsity * flat.numel())
    thr = flat.kthvalue(k).values if k else torch.tensor(-1.0)
    return {n: torch.where(t.abs() > thr, t, torch.zeros(())) for n, t in state.items()}


def _pruned_matrix(n: int, sparsity: float, seed: int, dist: str = "gauss") -> torch.Tensor:
    """A ``rows x n/rows`` matrix of Gaussian or Laplacian weights, magnitude-pruned."""
    g = torch.Generator().manual_seed(seed)
    rows = 250 if n <= 100_000 else 1000
    if dist == "gauss":
        w = torch.randn(rows, n // rows, generator=g)
    else:  # Laplacian by inversion of its CDF
        u = torch.rand(rows, n // rows, generator=g, dtype=torch.float64) - 0.5
        w = (-torch.sign(u) * torch.log1p(-2 * u.abs())).to(torch.float32)
    k = round((1 - sparsity) * w.numel())
    thr = w.abs().flatten().kthvalue(w.numel() - k).values
    return torch.where(w.abs() > thr, w, torch.zeros(()))


def speed_and_sizes(args: argparse.Namespace, have_nnc: bool) -> None:
    state = _model(int(args.weights), args.sparsity, args.seed)
    n = sum(t.numel() for t in state.values())
    k = sum(int((t != 0).sum()) for t in state.values())
    peak = max(float(t.abs().max()) for t in state.values())
    qp = _nnc_qp(peak, args.bits)
    q = UniformQuantizer(step=_nnc_step(qp))  # NNCodec's own step: the same levels
    quantised = {nm: q.dequantize(q.quantize(t)) for nm, t in state.items()}
    print(f"\n== speed: {n / 1e6:.2f} M weights, {100 * (1 - k / n):.1f} % sparse, uniform step "
          f"{q.step:.4g} (NNCodec qp {qp}, ~{args.bits} bits), best of {args.repeat} ==")
    t_enc, data = _best(lambda: compress(quantised, quantizer=q), args.repeat)
    t_dec, out = _best(lambda: decompress(data), args.repeat)
    assert all(torch.equal(out[nm], quantised[nm]) for nm in quantised), "decode mismatch"
    raw = b"".join(tensor_to_bytes(t) for t in quantised.values())
    zc = zstandard.ZstdCompressor(level=3)
    t_zenc, zdata = _best(lambda: zc.compress(raw), args.repeat)
    t_zdec, _ = _best(lambda: zstandard.ZstdDecompressor().decompress(zdata), args.repeat)
    rows = [("rdprune (this)", t_enc, t_dec), ("zstd-3 of fp32", t_zenc, t_zdec)]
    nnc_size = None
    if have_nnc:
        t_nenc, nbs = _best(lambda: baselines.nncodec_encode(quantised, qp=qp, use_dq=False), 1)
        t_ndec, ndec = _best(lambda: baselines.nncodec_decode(nbs), 1)
        nnc_size = len(nbs)
        same = all(np.array_equal(ndec[nm], quantised[nm].numpy()) for nm in quantised)
        mask_kept = all(np.array_equal(ndec[nm] != 0, quantised[nm].numpy() != 0)
                        for nm in quantised)
        rows.append(("NNCodec 2.1.3 (dq off)", t_nenc, t_ndec))
    print(f"{'coder':24s} {'encode M w/s':>13s} {'decode M w/s':>13s} {'enc time ratio':>15s} "
          f"{'dec time ratio':>15s}")
    for name, te, td in rows:
        print(f"{name:24s} {n / te / 1e6:13.1f} {n / td / 1e6:13.1f} {te / t_enc:15.2f} "
              f"{td / t_dec:15.2f}")
    if have_nnc:
        print(f"NNCodec decode equals the quantised tensors bit for bit: {same}; "
              f"mask preserved: {mask_kept}")

    print(f"\n== sizes of the same {n / 1e6:.2f} M weights ==")
    ref = estimate(quantised, quantizer=q)
    rep = inspect(data)
    sizes = {"rdprune (this)": len(data),
             "lossless reference": math.ceil(ref.reference_bits / 8)}
    sizes.update(baselines.baseline_sizes(quantised))
    if nnc_size is not None:
        sizes["NNCodec 2.1.3 (dq off)"] = nnc_size
    print(f"{'storage':26s} {'bytes':>12s} {'bits/weight':>12s} {'vs rdprune':>11s}")
    for name, size in sizes.items():
        print(f"{name:26s} {size:12d} {8 * size / n:12.4f} {size / len(data):11.3f}")
    print(f"rdprune overhead over the reference: {rep.overhead_percent:+.3f} % (file), "
          f"positions: {sorted({r.positions for r in rep.tensors})}, "
          f"values: {sorted({r.values for r in rep.tensors})}")


def overhead_table(have_nnc: bool) -> None:
    print("\n== overhead over log2 C(n,k) + k H(levels) + side (one tensor, per record) ==")
    head = (f"{'weights':>7s} {'n':>8s} {'sparsity':>8s} {'quantiser':>10s} {'ref bytes':>10s} "
            f"{'ours':>8s} {'values':>12s}")
    head += f" {'NNCodec':>8s}" if have_nnc else ""
    print(head)
    cases = [(d, n, s) for d in ("gauss", "laplace") for n in (100_000, 1_000_000)
             for s in (0.5, 0.9, 0.99)]
    for dist, n, s in cases:
        w = _pruned_matrix(n, s, seed=1, dist=dist)
        peak = float(w.abs().max())
        for label, bits in (("unif-4b", 4), ("unif-8b", 8), ("kmeans16", None)):
            if bits is None:
                quant = KMeansQuantizer(16)
                wq, qp = w, None
            else:
                qp = _nnc_qp(peak, bits)
                quant = UniformQuantizer(step=_nnc_step(qp))
                wq = quant.dequantize(quant.quantize(w))
            row = inspect(compress({"w": wq}, quantizer=quant)).tensors[0]
            line = (f"{dist:>7s} {n:8d} {s:8.2f} {label:>10s} {row.reference_bits / 8:10.0f} "
                    f"{row.overhead_percent:+7.2f}% {row.values:>12s}")
            if have_nnc:
                if qp is None:
                    line += f" {'-':>8s}"
                else:
                    size = baselines.nncodec_bytes({"w": wq}, qp=qp, use_dq=False)
                    ovh = 100 * (8 * size - row.reference_bits) / row.reference_bits
                    line += f" {ovh:+7.2f}%"
            print(line)


def _oracle_bits(kept: np.ndarray, levels: np.ndarray, step: float, dist: str) -> float:
    """``-log2 P(levels)`` under the true law of the kept levels (sign bits included).

    The magnitudes of the kept weights follow the source law cut at the pruning threshold
    ``t = min |kept|``; level ``l`` covers ``[max(t, (l - 1/2) step), (l + 1/2) step)``.
    """
    from scipy.stats import norm

    mags = np.abs(levels)
    t = float(np.abs(kept).min())
    grid = np.arange(1, int(mags.max()) + 64, dtype=np.float64)
    lo = np.maximum((grid - 0.5) * step, t)
    hi = (grid + 0.5) * step
    sf = norm.sf if dist == "gauss" else (lambda x: np.exp(-x))
    prob = np.where(hi > lo, sf(lo) - sf(hi), 0.0)
    prob /= prob.sum()
    return float(-np.log2(prob[mags - 1]).sum()) + mags.size


def _termination_bits(trials: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Bits an ANS stream spends over the information it carries: plain, and seeded.

    Each trial codes 500 symbols of a random 20-letter law, and 1000 fair bits. Plain: the
    bits with ``Bernoulli(0.5)`` in the same empty coder; seeded: the bits (and a
    sentinel 1) as the coder's initial words, the symbols pushed on top.
    """
    import constriction

    from rdprune.coding.models import coder_to_bytes

    rng = np.random.default_rng(0)
    stack, model = constriction.stream.stack, constriction.stream.model
    plain, seeded = np.empty(trials), np.empty(trials)
    for i in range(trials):
        p = rng.dirichlet(np.ones(20))
        x = rng.choice(20, size=500, p=p).astype(np.int32)
        bits = rng.integers(0, 2, 1000).astype(np.uint8)
        info = float(-np.log2(p[x]).sum()) + bits.size
        cat = model.Categorical(p, perfect=False)
        coder = stack.AnsCoder()
        coder.encode_reverse(bits.astype(np.int32), model.Bernoulli(0.5, perfect=False))
        coder.encode_reverse(x, cat)
        plain[i] = 8 * len(coder_to_bytes(coder)) - info
        seed = np.concatenate([bits, [1], np.zeros(-(bits.size + 1) % 32, np.uint8)])
        words = np.frombuffer(np.packbits(seed, bitorder="little").tobytes(), "<u4")
        coder = stack.AnsCoder(words.astype(np.uint32), seal=False)
        coder.encode_reverse(x, cat)
        seeded[i] = 8 * len(coder_to_bytes(coder)) - info
    return plain, seeded


def floor_table(seeds: int, bits_list: tuple[int, ...] = (8, 10, 12)) -> None:
    """Our overhead on the hardest cells, split up, beside an oracle's (module docstring)."""
    from scipy.special import gammaln

    from rdprune.coding import positions, values

    print("\n== the floor: 1e5 weights, 99 % sparse; bits over the reference ==")
    print(f"{'weights':>7s} {'bits':>4s} {'seed':>4s} {'levels':>6s} {'ref':>6s} {'1 %':>5s} "
          f"{'ours':>5s} {'=pos':>5s} {'+val':>5s} {'+frame':>6s} {'oracle':>6s} "
          f"{'ours %':>7s} {'oracle %':>8s}")
    for dist in ("gauss", "laplace"):
        for bits in bits_list:
            for seed in range(1, (seeds if bits == 8 else 1) + 1):
                w = _pruned_matrix(100_000, 0.99, seed=seed, dist=dist)
                quant = UniformQuantizer(step=_nnc_step(_nnc_qp(float(w.abs().max()), bits)))
                kept = w[w != 0]
                levels = quant.quantize(kept).levels.numpy().astype(np.int64)
                wq = quant.dequantize(quant.quantize(w))
                row = inspect(compress({"w": wq}, quantizer=quant)).tensors[0]
                n, k = w.numel(), levels.size
                log2c = float(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)) / math.log(2)
                counts = np.unique(levels, return_counts=True)[1]
                k_h = float((counts * np.log2(k / counts)).sum())
                pos = positions.plan_positions((wq != 0).numpy().reshape(-1), tuple(w.shape))
                val = values.plan_levels(levels)
                ours = row.actual_bits - row.reference_bits
                pos_x, val_x = pos.cost_bits - log2c, val.cost_bits - k_h
                oracle = _oracle_bits(kept.double().numpy(), levels, quant.step, dist) - k_h
                ref = row.reference_bits
                print(f"{dist:>7s} {bits:4d} {seed:4d} {counts.size:6d} {ref:6.0f} "
                      f"{ref / 100:5.0f} {ours:5.0f} {pos_x:5.0f} {val_x:5.0f} "
                      f"{ours - pos_x - val_x:6.0f} "
                      f"{oracle:6.0f} {100 * ours / ref:6.2f}% {100 * oracle / ref:7.2f}%")
    plain, seeded = _termination_bits()
    for label, v in (("plain", plain), ("seeded with the sign bits", seeded)):
        lo, hi = np.percentile(v, [5, 95])
        print(f"ANS termination, {label}: {v.mean():.1f} bits (5-95 %: {lo:.1f}-{hi:.1f}), "
              f"{v.size} streams")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=float, default=20e6)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nncodec-path", default=os.environ.get("NNCODEC_PATH"))
    p.add_argument("--skip-table", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--floor-seeds", type=int, default=5,
                   help="seeds of the floor table (0: skip it)")
    args = p.parse_args(argv)
    status = _enable_nncodec(args.nncodec_path)
    have = baselines.nncodec_available()
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads 1; {status}")
    if not args.skip_speed:
        speed_and_sizes(args, have)
    if not args.skip_table:
        overhead_table(have)
    if args.floor_seeds > 0:
        floor_table(args.floor_seeds)


if __name__ == "__main__":
    main()
