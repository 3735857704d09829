"""A small CNN training step with bidirectional masks, evaluated directly (numerics
reference for the three GEMMs of convolution layers).

:class:`CNNTrainGraph` speaks the workload layer protocol like
:class:`sparsa.compiler.reference.TrainGraph` (its MLP sibling), so
:func:`sparsa.compiler.compile_workload` compiles it and every GEMM output can be compared
with the executor's. Per convolution layer ``i`` (NHWC, stride 1, ``W[kh, kw, cin, cout]``
viewed as ``W[K = kh*kw*cin, Q = cout]``):

* forward: ``h_{i+1} = relu(requant(conv(h_i, W_i * fwd_i)))`` computed by direct
  convolution (:func:`~sparsa.compiler.reference.conv_direct`, not im2col; no ReLU after
  the last layer); the core's GEMM is ``im2col(h_i) @ W``;
* backward-data: ``dX_col = requant(dY (W_i * bwd_i)^T)`` ``[P, K]`` — the mask
  ``bwd_i`` is N:M along ``Q`` of ``W`` = the reduction axis of this GEMM; the host folds
  ``dX_col`` back (col2im, saturating to int8) and applies the ReLU derivative;
* weight-gradient: ``dW_i = im2col(h_i)^T dY`` (int32, dense: both operands are
  activations/gradients).

:func:`conv_input_grad` and :func:`conv_weight_grad` compute the same gradients directly
(as correlations over shifted slices) so tests can check that the GEMM formulation is the
convolution's gradient.
"""

from __future__ import annotations

import numpy as np

from .quant import choose_shift, matmul_exact, requant
from .reference import GemmDims, RefLayer, TrainStepGraph, conv_direct, im2col

__all__ = ["CNNTrainGraph", "col2im", "conv_input_grad", "conv_weight_grad"]


def _wrap32(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, np.int64).astype(np.uint32).view(np.int32)


def col2im(cols: np.ndarray, shape: tuple[int, int, int, int], kh: int, kw: int,
           pad: int) -> np.ndarray:
    """Inverse layout of :func:`~sparsa.compiler.reference.im2col` for stride 1, summing
    overlapping contributions (int64): ``[N*OH*OW, kh*kw*C]`` -> NHWC ``shape``."""
    n, h, w, c = shape
    oh, ow = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    cols = np.asarray(cols, np.int64).reshape(n, oh, ow, kh * kw, c)
    xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), np.int64)
    j = 0
    for dy in range(kh):
        for dx in range(kw):
            xp[:, dy:dy + oh, dx:dx + ow, :] += cols[:, :, :, j, :]
            j += 1
    return xp[:, pad:pad + h, pad:pad + w, :]


def conv_input_grad(dy: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Direct ``dL/dx`` of a stride-1 convolution: ``dy`` NHWC (output), ``w[kh,kw,cin,cout]``."""
    kh, kw, cin, cout = w.shape
    n, oh, ow, _ = dy.shape
    h, wd = oh - 2 * pad + kh - 1, ow - 2 * pad + kw - 1
    xp = np.zeros((n, h + 2 * pad, wd + 2 * pad, cin), np.int64)
    for a in range(kh):
        for b in range(kw):
            xp[:, a:a + oh, b:b + ow, :] += np.einsum("nhwo,co->nhwc", dy.astype(np.int64),
                                                      w[a, b].astype(np.int64))
    return xp[:, pad:pad + h, pad:pad + wd, :]


def conv_weight_grad(x: np.ndarray, dy: np.ndarray, kh: int, kw: int, pad: int
                     ) -> np.ndarray:
    """Direct ``dL/dW[kh, kw, cin, cout]`` of a stride-1 convolution."""
    n, oh, ow, _ = dy.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros((kh, kw, x.shape[3], dy.shape[3]), np.int64)
    for a in range(kh):
        for b in range(kw):
            out[a, b] = np.einsum("nhwc,nhwo->co", xp[:, a:a + oh, b:b + ow, :],
                                  dy.astype(np.int64))
    return out


class CNNTrainGraph(TrainStepGraph):
    """A stride-1 CNN training step (see the module docstring).

    Parameters
    ----------
    x : numpy.ndarray
        int8 NHWC input.
    convs : list of (cout, k)
        Output channels and (square, odd) kernel size of each convolution (padding
        ``k // 2``).
    sparsity : str
        A plan, e.g. ``"fwd=2:8,bwd=2:8,method=bimask"``.
    seed : int
    """

    def __init__(self, x: np.ndarray, convs: list[tuple[int, int]], sparsity: str,
                 seed: int = 0) -> None:
        from sparsa.workloads.sparsity import SparsityPlan, make_masks
        self._init_step("cnn-train", seed)
        rng = np.random.default_rng(seed)
        plan = SparsityPlan.parse(sparsity)
        self.weights: dict[str, np.ndarray] = {}     # [kh, kw, cin, cout] unmasked
        self.acts: list[np.ndarray] = [np.asarray(x, np.int8)]
        self.grads: dict[str, np.ndarray] = {}       # dY (int8 NHWC) fed to each layer
        self.dx32: dict[str, np.ndarray] = {}        # bwd_data int32 before requant
        h = self.acts[0]
        for i, (cout, k) in enumerate(convs):
            name = f"conv{i}"
            cin = h.shape[3]
            w4 = rng.integers(-127, 128, size=(k, k, cin, cout))
            w4[w4 == 0] = 1
            w4 = w4.astype(np.int8)
            self.weights[name] = w4
            w = w4.reshape(k * k * cin, cout)
            mr = make_masks(w, plan.spec_for(name), seed=seed)
            self.masks[name] = mr
            wf = np.where(mr.fwd, w, 0).reshape(w4.shape)
            y = _wrap32(conv_direct(h, wf, 1, k // 2, 1)).reshape(-1, cout)
            relu = i < len(convs) - 1
            out = requant(y, choose_shift(y, relu), relu)
            prev = self._layers[-1].name if self._layers else "x"
            xcol = im2col(h, k, k, 1, k // 2)
            self._add(f"{name}.fwd", "fwd", name, GemmDims(xcol.shape[0], w.shape[0], cout),
                      w[None], xcol, out, (prev,))
            if relu:
                rl = RefLayer(f"{name}.relu", "relu", (f"{name}.fwd",), {"phase": "fwd"}, self)
                self._layers.append(rl)
                self.values[rl.name] = out
            h = out.reshape(h.shape[0], h.shape[1], h.shape[2], cout)
            self.acts.append(h)
        g = rng.integers(-128, 128, size=h.shape).astype(np.int8)
        for i in reversed(range(len(convs))):
            name = f"conv{i}"
            w4, mr = self.weights[name], self.masks[name]
            k = w4.shape[0]
            w = w4.reshape(-1, w4.shape[3])
            x = self.acts[i]
            xcol = im2col(x, k, k, 1, k // 2)
            g2 = g.reshape(-1, g.shape[3])
            self.grads[name] = g
            dw = _wrap32(matmul_exact(np.ascontiguousarray(xcol.T), g2))
            self._add(f"{name}.wgrad", "wgrad", name, GemmDims(xcol.shape[1], xcol.shape[0],
                                                               w.shape[1], 1, "act_b"),
                      g2[None], np.ascontiguousarray(xcol.T), dw)
            if i > 0:
                wb = np.where(mr.bwd_or_dense(), w, 0)
                y = _wrap32(matmul_exact(g2, np.ascontiguousarray(wb.T)))
                self.dx32[name] = y
                dxc = requant(y, choose_shift(y, False), False)
                self._add(f"{name}.bwd_data", "bwd_data", name,
                          GemmDims(g2.shape[0], w.shape[1], w.shape[0]),
                          np.ascontiguousarray(w.T)[None], g2, dxc)
                dx = np.clip(col2im(dxc, x.shape, k, k, k // 2), -128, 127)
                g = np.where(x > 0, dx, 0).astype(np.int8)   # host: col2im, ReLU derivative

    def _kind(self, phase: str) -> str:
        return "conv" if phase != "wgrad" else "gemm"
