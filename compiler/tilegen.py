"""GEMM tile programs built directly from the ISA (no graph): test and benchmark workloads.

:func:`build_gemm_program` turns a list of GEMMs ``Y = X @ W`` into one :class:`Program` that
tiles each GEMM over the array (P tiles x K passes x Q blocks), double-buffers activations
and weights, overlaps the next pass's weight LOAD and PRELOAD with the current COMPUTE,
prefetches the next activation block in chunks spread over the current block's passes
(each behind the next pass's weight LOAD, which its PRELOAD waits for with ``load_slack``),
stores a pass's results behind the next COMPUTE (``exec_slack=1``) and chains
``accumulate`` over K; ``wait`` masks carry exactly the hazards of this schedule. :func:`random_gemm_specs` draws random GEMMs for a sparsity
mode. The RTL bench, ``sparsa verify`` and the benchmarks run these programs; the expected
outputs come from plain numpy (``X @ W``), independent of the reference executor.

Modes: ``"dense"`` (compact rows expanded by ``LOAD expand=1``, PE row ``r`` holds ``W[r]``)
or ``"N:M"`` with ``N <= config.n`` and ``M`` one of the config's window widths wider than
``n`` (``W`` has at most ``N`` non-zeros per aligned window of ``M`` along K; ``M == m``
loads full activation entries, a narrower ``M`` compact rows that ``LOAD expand=1,
cmp_m=M`` spreads, e.g. 2:4 on an ``m = 8`` array).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from sparsa.hw import layout
from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Compute, Instr, Load, Preload, Store, Target, Unit, act_load_fields
from sparsa.hw.timing import act_entry_beats, load_entry_beats, store_entry_beats

from . import wformat
from .errors import CompileError
from .program import Program, TensorInfo

__all__ = ["GemmSpec", "parse_mode", "random_nm_weights", "random_gemm_specs",
           "build_gemm_program", "expected_output", "read_outputs"]


@dataclass
class GemmSpec:
    """One GEMM ``Y[P, Q] = X[P, K] @ W[K, Q]`` and how its result is stored."""

    x: np.ndarray            # int8 [P, K]
    w: np.ndarray            # int8 [K, Q], Q a multiple of config.cols
    mode: str = "dense"
    relu: int = 0
    requant: int = 0
    shift: int = 0
    load_stride_extra: int = 0   # extra beats between DRAM entries (exercise dram_stride)
    store_stride_extra: int = 0


def parse_mode(cfg: AccelConfig, mode: str) -> tuple[int, int] | None:
    """``"dense"`` -> ``None``; ``"N:M"`` -> ``(N, M)`` checked against the config."""
    if mode == "dense":
        return None
    try:
        n, m = (int(v) for v in mode.split(":"))
    except ValueError:
        raise CompileError(f"mode={mode!r} is invalid: allowed 'dense' or 'N:M'") from None
    wins = [w for w in cfg.windows if w > cfg.n or w == cfg.m]
    if m not in wins or not 1 <= n <= cfg.n:
        raise CompileError(f"mode={mode!r} does not run on {cfg.name} (n={cfg.n}, m={cfg.m}): "
                           f"allowed N:M with 1 <= N <= {cfg.n} and M in {wins}")
    return n, m


def _act_window(cfg: AccelConfig, nm: tuple[int, int] | None) -> tuple[int, int]:
    """(window width, activation LOAD window field: 0 for full entries) of a mode."""
    mode = "dense" if nm is None else "sparse"
    kp = wformat.tile_k(cfg, mode, 0 if nm is None else nm[1])
    return wformat.tile_window(cfg, kp), wformat.act_window_field(cfg, mode, kp)


def random_nm_weights(rng: np.random.Generator, k: int, q: int, n: int, m: int) -> np.ndarray:
    """Random int8 ``[k, q]`` with exactly ``n`` non-zeros per aligned ``m`` window per column
    (fewer in a last partial window)."""
    kw = -(-k // m) * m
    keys = rng.random((kw // m, m, q))
    keep = np.argsort(keys, axis=1) < n
    vals = rng.integers(-128, 128, size=(kw, q))
    vals[vals == 0] = 1
    w = np.where(keep.reshape(kw, q), vals, 0).astype(np.int8)
    return w[:k]


def random_gemm_specs(cfg: AccelConfig, rng: np.random.Generator, count: int, mode: str, *,
                      max_p: int = 12, max_passes: int = 3, max_qblocks: int = 2
                      ) -> list[GemmSpec]:
    """``count`` random GEMM tiles for ``mode`` with random store options and strides."""
    nm = parse_mode(cfg, mode)
    kp = cfg.act_row_bytes(_act_window(cfg, nm)[0])
    specs = []
    for _ in range(count):
        p = int(rng.integers(1, max_p + 1))
        k = int(rng.integers(1, max_passes * kp + 1))
        q = cfg.cols * int(rng.integers(1, max_qblocks + 1))
        x = rng.integers(-128, 128, size=(p, k)).astype(np.int8)
        if nm is None:
            w = rng.integers(-128, 128, size=(k, q)).astype(np.int8)
        else:
            w = random_nm_weights(rng, k, q, *nm)
        requant = int(rng.integers(0, 2))
        specs.append(GemmSpec(x=x, w=w, mode=mode, relu=int(rng.integers(0, 2)), requant=requant,
                              shift=int(rng.integers(0, 20)) if requant else 0,
                              load_stride_extra=int(rng.integers(0, 2)),
                              store_stride_extra=int(rng.integers(0, 2))))
    return specs


def expected_output(cfg: AccelConfig, spec: GemmSpec) -> np.ndarray:
    """``X @ W`` in int32 wrapping arithmetic, then the STORE path (ReLU / requantisation)."""
    y = spec.x.astype(np.int64) @ spec.w.astype(np.int64)
    y32 = y.astype(np.uint32).view(np.int32)
    out = []
    for qb in range(spec.w.shape[1] // cfg.cols):
        blk = y32[:, qb * cfg.cols:(qb + 1) * cfg.cols]
        out.append(layout.decode_store_rows(
            cfg, layout.encode_store_rows(cfg, blk, relu=spec.relu, requant=spec.requant,
                                          shift=spec.shift), requant=spec.requant))
    return np.concatenate(out, axis=1)


class _Dram:
    def __init__(self, beat_bytes: int, rng: np.random.Generator) -> None:
        self.bb = beat_bytes
        self.chunks: list[np.ndarray] = []
        self.beats = 0
        self.rng = rng

    def put(self, rows: np.ndarray, stride: int) -> int:
        """Place beat-padded rows ``[count, eb*bb]`` at ``stride`` beats apart; return addr."""
        count, width = rows.shape
        if width > stride * self.bb:
            raise CompileError(f"stride {stride} beats is shorter than a {width}-byte entry")
        img = self.rng.integers(0, 256, size=(count, stride * self.bb), dtype=np.uint8)
        img[:, :width] = rows
        addr = self.beats
        self.chunks.append(img.reshape(-1))
        self.beats += count * stride
        return addr

    def reserve(self, nbeats: int) -> int:
        """``nbeats`` beats of random bytes (an output region: missing writes show)."""
        return self.put(self.rng.integers(0, 256, size=(nbeats, self.bb), dtype=np.uint8), 1)


def build_gemm_program(cfg: AccelConfig, specs: list[GemmSpec], *, seed: int = 0,
                       max_p_tile: int | None = None) -> Program:
    """One program running every GEMM of ``specs`` in order (see the module docstring).

    Output ``i`` is the tensor ``y{i}`` (``fmt`` ``out_i8`` or ``out_i32``, one STORE row per
    P row and Q block, Q blocks stored one after the other); read it back with
    :func:`read_outputs`. Uninitialised output beats hold random bytes, so a missing write
    shows up in the final image.
    """
    rng = np.random.default_rng(seed)
    dram = _Dram(cfg.beat_bytes, rng)
    pt = max_p_tile or min(cfg.act_entries // 2, 256)
    qmax = max(s.w.shape[1] // cfg.cols for s in specs)
    pt = min(pt, cfg.act_entries // 2, cfg.acc_entries // (2 * qmax))
    if pt < 1:
        raise CompileError(f"{cfg.name}: accumulator scratchpad too small for {qmax} Q blocks")
    abuf = [0, pt]
    wbuf = [0, cfg.rows]
    aset = [0, qmax * pt]
    tensors: dict[str, TensorInfo] = {}

    # passes: dicts with the data addresses; built first, then scheduled
    passes = []
    act_block = 0
    acc_set = 0
    for gi, s in enumerate(specs):
        nm = parse_mode(cfg, s.mode)
        dense = nm is None
        P, K = s.x.shape
        if s.w.shape[0] != K or s.w.shape[1] % cfg.cols:
            raise CompileError(f"gemm {gi}: w shape {s.w.shape} does not match x {s.x.shape} "
                               f"and cols={cfg.cols}")
        win, aw = _act_window(cfg, nm)
        kp = cfg.act_row_bytes(win)
        nk = -(-K // kp)
        nq = s.w.shape[1] // cfg.cols
        xe = np.zeros((P, nk * kp), np.int8)
        xe[:, :K] = s.x
        we = np.zeros((nk * kp, s.w.shape[1]), np.int8)
        we[:K] = s.w
        eb_a = act_entry_beats(cfg, aw)
        eb_w = load_entry_beats(cfg, Target.WGT, 0)
        eb_s = store_entry_beats(cfg, s.requant)
        s_stride = eb_s + s.store_stride_extra
        out_addr = dram.reserve(P * nq * s_stride)
        tensors[f"y{gi}"] = TensorInfo(
            name=f"y{gi}", addr=out_addr, beats=P * nq * s_stride, shape=(P, s.w.shape[1]),
            dtype="int8" if s.requant else "int32", fmt="out_i8" if s.requant else "out_i32",
            role="output", meta={"stride": s_stride, "qblocks": nq, "rows": P})
        for p0 in range(0, P, pt):
            pc = min(pt, P - p0)
            for kb in range(nk):
                xt = xe[p0:p0 + pc, kb * kp:(kb + 1) * kp]
                ent = layout.pack_act_dense(cfg, xt, aw) if aw else \
                    layout.pack_act_entries(cfg, xt)
                a_addr = dram.put(layout.to_beats(cfg, ent), eb_a + s.load_stride_extra)
                for qb in range(nq):
                    wt = we[kb * kp:(kb + 1) * kp, qb * cfg.cols:(qb + 1) * cfg.cols]
                    v, i = layout.dense_weights(cfg, wt) if dense else \
                        layout.compress_nm(cfg, wt, win)
                    went = layout.pack_wgt_entries(cfg, v, i)
                    w_addr = dram.put(layout.to_beats(cfg, went), eb_w + s.load_stride_extra)
                    passes.append(dict(
                        act_block=act_block, a_addr=a_addr, act_win=aw,
                        a_stride=eb_a + s.load_stride_extra, count=pc, w_addr=w_addr,
                        w_stride=eb_w + s.load_stride_extra, acc_set=acc_set,
                        acc_off=qb * pt, accumulate=int(kb > 0),
                        store=None if kb < nk - 1 else Store(
                            acc_addr=0, count=pc,
                            dram_addr=out_addr + (qb * P + p0) * s_stride,
                            dram_stride=s_stride, relu=s.relu, requant=s.requant,
                            shift=s.shift, wait=Unit.EXEC)))
                act_block += 1
            acc_set += 1

    # act blocks: their load and the passes that read them
    blocks: dict[int, list[int]] = {}
    for i, ps in enumerate(passes):
        blocks.setdefault(ps["act_block"], []).append(i)

    def act_loads(b: int, parts: int) -> list[Load]:
        """Block ``b``'s activation LOAD split into ``parts`` chunks (prefetch in the gaps)."""
        ps = passes[blocks[b][0]]
        n = ps["count"]
        parts = max(1, min(parts, n))
        edges = [n * j // parts for j in range(parts + 1)]
        return [Load(target=Target.ACT, sp_addr=abuf[b % 2] + lo, count=hi - lo,
                     dram_addr=ps["a_addr"] + lo * ps["a_stride"], dram_stride=ps["a_stride"],
                     **act_load_fields(cfg, ps["act_win"]))
                for lo, hi in zip(edges, edges[1:], strict=False)]

    # chunk c of block b+1's activations is issued after the c-th compute of block b (not
    # after the last one: the first pass over block b+1 would wait for that chunk's data)
    chunks: dict[int, list[Load]] = {}
    for b, idxs in blocks.items():
        if b + 1 in blocks:
            for c, ld in enumerate(act_loads(b + 1, max(1, len(idxs) - 1))):
                chunks.setdefault(idxs[c], []).append(ld)

    def wgt_load(i: int, then: list[Load] = ()) -> list[Instr]:
        """Pass ``i``'s weight LOAD, the LOADs ``then``, and the PRELOAD, which lets those
        run on (``load_slack``)."""
        ps = passes[i]
        return [Load(target=Target.WGT, sp_addr=wbuf[i % 2], count=cfg.rows,
                     dram_addr=ps["w_addr"], dram_stride=ps["w_stride"]), *then,
                Preload(wsp_addr=wbuf[i % 2], wait=Unit.LOAD, load_slack=len(then))]

    instrs: list[Instr] = []
    deferred: list[Store] = []     # STOREs of the previous pass's COMPUTE
    if passes:
        instrs += act_loads(passes[0]["act_block"], 1) + wgt_load(0)
    for i, ps in enumerate(passes):
        acc_addr = aset[ps["acc_set"] % 2] + ps["acc_off"]
        wait = Unit.PRE
        if blocks[ps["act_block"]][0] == i:
            wait |= Unit.LOAD      # first pass over a freshly loaded activation block
        if ps["acc_set"] >= 2 and not ps["accumulate"]:
            wait |= Unit.STORE     # the accumulator set was last read by an older STORE
        instrs.append(Compute(asp_addr=abuf[ps["act_block"] % 2], acc_addr=acc_addr,
                              count=ps["count"], accumulate=ps["accumulate"], swap=1, wait=wait))
        if i + 1 < len(passes):
            instrs += wgt_load(i + 1, chunks.get(i, []))
        else:
            instrs += chunks.get(i, [])
        # a pass's STORE goes out behind the next COMPUTE, which may still run on
        # (exec_slack=1): the array need not drain before every STORE
        instrs += deferred
        deferred = []
        if ps["store"] is not None:
            st = ps["store"]
            deferred.append(Store(acc_addr=acc_addr, count=st.count, dram_addr=st.dram_addr,
                                  dram_stride=st.dram_stride, relu=st.relu,
                                  requant=st.requant, shift=st.shift, wait=Unit.EXEC,
                                  exec_slack=1))
    instrs += [dataclasses.replace(st, exec_slack=0) for st in deferred]
    image = np.concatenate(dram.chunks) if dram.chunks else np.zeros(cfg.beat_bytes, np.uint8)
    if image.size == 0:
        image = np.zeros(cfg.beat_bytes, np.uint8)
    return Program(config=cfg, instructions=instrs, dram=image, tensors=tensors,
                   meta={"generator": "tilegen", "seed": seed, "p_tile": pt})


def read_outputs(program: Program, dram: np.ndarray) -> list[np.ndarray]:
    """Decode every ``y{i}`` output tensor of a :func:`build_gemm_program` program."""
    cfg = program.config
    outs = []
    i = 0
    while f"y{i}" in program.tensors:
        t = program.tensors[f"y{i}"]
        stride, nq, P = t.meta["stride"], t.meta["qblocks"], t.meta["rows"]
        bb = cfg.beat_bytes
        raw = dram[t.addr * bb:(t.addr + t.beats) * bb].reshape(nq, P, stride * bb)
        blocks = [layout.decode_store_rows(cfg, raw[q], requant=int(t.dtype == "int8"))
                  for q in range(nq)]
        outs.append(np.concatenate(blocks, axis=1))
        i += 1
    return outs
