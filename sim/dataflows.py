"""Model-only array variants: output-stationary (``os``) and input-stationary (``is``).

They run the GEMMs of a compiled program (``program.layers``: ``P``, ``K``, ``Q``,
``groups``, array ``mode``) on an array of the same shape, with the same scratchpads, DMA,
DRAM and controller as the real weight-stationary core, and produce an
:class:`~sparsa.sim.model.OpStream` that :class:`~sparsa.sim.model.CoreModel` times exactly
like the core's own instructions. Loads, preloads and stores use the core's formulas
(:mod:`sparsa.hw.timing`); only the array's compute time and the tiling differ.

N:M is modelled the same way in every dataflow: in sparse mode the weight operand is
stored compressed (``n`` values + ``ceil(log2 m)``-bit indices per window of ``m`` along K)
and every PE selects ``window[index]`` from an ``m``-value activation window.

``is`` -- input stationary
    A pass holds an activation tile (``k_per_pass`` values of K -- ``rows*m/n`` in sparse
    mode, ``rows`` dense -- for ``cols`` rows of P) in the PEs; the ``n`` PE rows of a group
    share one stationary window. Compressed weight columns stream through for every ``q``:
    ``compute_cycles(cfg, Q)`` (the core's fill/drain, ``T = Q``). Partial sums of all Q
    stay in the accumulator across the K passes (Q is split into chunks that fit).
``os`` -- output stationary
    A pass holds ``rows x cols`` outputs (P x Q). Compressed weights stream from the top,
    activation windows from the left; every window is used by ``n`` consecutive steps, so
    ``T = ceil(K/m) * n`` steps (dense: ``T = K``). Fill/drain: ``rows + cols`` skew plus
    the core's compute overhead; the outputs drain into the accumulator while the next
    pass fills. Each array row's activation link moves ``link_bytes_per_row`` bytes per
    cycle (default ``ceil(m/n)``, the wire budget of the WS core whose ``n`` rows share an
    ``m``-byte window link); a window needs ``ceil(m / link)`` cycles, so a narrower link
    stretches every window to ``max(n, ceil(m/link))`` steps -- the "window bandwidth"
    limit.

Both arrays are pipelined like the core (``hw/isa.py``): the next pass streams while the
current one drains, a pass's results are stored behind the next pass, and LOADs overlap
their DRAM latency.

Loop order: the streamed operand of a pass is loaded double-buffered while the previous
pass computes. ``os`` takes, per GEMM, whichever nest reads the fewest DRAM bytes
(:func:`_os_order`): P blocks outermost (a block's activations serve every Q block when
they fit half the activation scratchpad; the weights are re-read per P block unless all
of them fit half the weight scratchpad), Q blocks outermost (the mirror image), or tiled
(super-blocks of P blocks sharing each weight block, K split into chunks whose
activations stay on chip and whose partial sums accumulate). ``is``
runs P blocks in super-blocks as large as the accumulator half holds partial sums of one Q
chunk for, so each streamed weight chunk serves the whole super-block (all weights are
read once when they fit half the weight scratchpad); the stationary activation tiles are
loaded once per Q chunk; the chunk size is the one that reads the fewest bytes
(:func:`_is_chunks`).
"""

from __future__ import annotations

from typing import Any

from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Unit
from sparsa.hw.timing import (
    COMPUTE_OVERHEAD,
    compute_cycles,
    load_cycles,
    load_issue_cycles,
    preload_cycles,
    store_cycles,
)

from .errors import SimError
from .model import ACTIONS, LayerSpec, OpStream, ops_from_program

__all__ = ["variant_ops", "VARIANTS", "VARIANT_OPTIONS", "check_variant_options"]

VARIANTS = ("os", "is")
_LOAD, _PRE, _EXEC, _STORE = int(Unit.LOAD), int(Unit.PRE), int(Unit.EXEC), int(Unit.STORE)


class _Emitter:
    """Builds the op lists with the core's double-buffered pass schedule (as tilegen):
    ``EXEC(i)`` then the loads/preload of pass ``i+1`` then ``STORE(i)``."""

    def __init__(self, cfg: AccelConfig) -> None:
        self.cfg = cfg
        self.unit: list[int] = []
        self.wait: list[int] = []
        self.cycles: list[int] = []
        self.beats: list[int] = []
        self.stream: list[int] = []
        self.layer: list[int] = []
        self.window: list[int] = []
        self.accept: list[int] = []
        self.slack: list[int] = []

    def op(self, unit: int, wait: int, cycles: int, beats: int, layer: int, stream: int = 0,
           window: int = 0, accept: int | None = None, slack: int = 0) -> None:
        self.unit.append(unit)
        self.wait.append(wait)
        self.cycles.append(cycles)
        self.beats.append(beats)
        self.stream.append(stream)
        self.layer.append(layer)
        self.window.append(window)
        self.accept.append(cycles if accept is None else accept)
        self.slack.append(slack)

    def load(self, count: int, entry_bytes: int, layer: int) -> int:
        if count <= 0:
            return 0
        eb = self.cfg.beats(entry_bytes)
        self.op(_LOAD, 0, load_cycles(self.cfg, count, eb), count * eb, layer,
                accept=load_issue_cycles(count))
        return count * eb * self.cfg.beat_bytes

    def run(self, passes: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
        """Emit every pass; return DRAM bytes per layer."""
        dram: dict[int, dict[str, int]] = {}

        def pre_loads(p: dict[str, Any]) -> None:
            d = dram.setdefault(p["layer"], {"dram_read": 0, "dram_write": 0})
            for count, eb in p["stream_loads"]:
                d["dram_read"] += self.load(count, eb, p["layer"])
            for count, eb in p["stat_loads"]:
                d["dram_read"] += self.load(count, eb, p["layer"])
            self.op(_PRE, _LOAD, preload_cycles(self.cfg), 0, p["layer"])

        def stores(p: dict[str, Any], slack: int) -> None:
            for count, eb in p["stores"]:
                beats = self.cfg.beats(eb)
                self.op(_STORE, _EXEC, store_cycles(self.cfg, count, beats), count * beats,
                        p["layer"], slack=slack)
                d = dram.setdefault(p["layer"], {"dram_read": 0, "dram_write": 0})
                d["dram_write"] += count * beats * self.cfg.beat_bytes

        if passes:
            pre_loads(passes[0])
        for i, p in enumerate(passes):
            # no STORE wait: accumulator halves alternate and the in-order STORE unit has
            # finished pass i-2's store before pass i+1's computes issue. The array is
            # pipelined like the core's: the next pass streams while this one drains.
            wait = _PRE | (_LOAD if p["stream_loads"] else 0)
            self.op(_EXEC, wait, p["exec_cycles"], 0, p["layer"], p["stream"], p["window"],
                    accept=max(1, p["stream"] + p["window"]))
            if i + 1 < len(passes):
                pre_loads(passes[i + 1])
            if i:                          # the previous pass's results, behind this pass
                stores(passes[i - 1], 1)
        if passes:
            stores(passes[-1], 0)
        return dram


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _gemms(program: Any) -> list[tuple[int, Any, int, int, int, int, int, int]]:
    """(layer index in the WS op stream, layer, P, K, Q, groups, sparse window width (0 in
    dense mode), out bytes)."""
    out = []
    j = 0
    for ly in program.layers:
        if ly.kind == "host":
            continue
        m = ly.meta
        if not all(k in m for k in ("P", "K", "Q")):
            raise SimError(f"layer {ly.name!r}: the os/is dataflows need GEMM shapes (P, K, Q) "
                           f"in the program's layers; compile a workload")
        modes = m.get("mode") or ["dense"]
        sparse = all(x == "sparse" for x in modes)
        win = min(m.get("window") or [program.config.m]) if sparse else 0
        K, Q, groups = int(m["K"]), int(m["Q"]), int(m.get("groups", 1))
        pk = int(m.get("pack", 1))
        if pk > 1:
            # groups packed block-diagonally (compiler.grouppack): the mode and window are
            # the packed GEMM's, so these arrays run the same packed GEMMs
            K, Q, groups = int(m["pack_k"]), Q * pk, groups // pk
        if sparse and int(m.get("passes", 1)) > 1:
            # in passes (wformat.split_passes): modelled as a GEMM over `passes` copies of K
            # (these arrays re-stream the activations for every pass)
            K = int(m["passes"]) * _ceil(K, win) * win
        ob = 4 if ly.kind == "wgrad" else 1
        out.append((j, ly, int(m["P"]), K, Q, groups, int(win), ob))
        j += 1
    return out


#: Options of :func:`variant_ops` (``run_point``'s ``options["variant"]``).
VARIANT_OPTIONS = ("link_bytes_per_row",)


def check_variant_options(options: dict[str, Any]) -> None:
    """The :func:`variant_ops` options in ``options`` are known and valid (``None`` means
    the default); :class:`SimError` naming the option otherwise."""
    for k, v in options.items():
        if k not in VARIANT_OPTIONS:
            raise SimError(f"unknown variant option {k!r}; allowed: {', '.join(VARIANT_OPTIONS)}")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise SimError(f"variant option {k}={v!r} is invalid; allowed an integer >= 1")


def _os_order(cfg: AccelConfig, P: int, npb: int, nqb: int, unit: int, nunits: int,
              steps_per_unit: int, wgt_half: int, act_half_bytes: int,
              acc_half: int) -> tuple[Any, ...]:
    """Loop nest of an ``os`` GEMM, the one of three that reads the fewest DRAM bytes (ties:
    the first). K is ``nunits`` units of ``unit`` activation bytes (a window, or a value),
    each ``steps_per_unit`` array steps and compressed weight rows.

    * ``("p", x_keep, w_keep)``: P blocks outermost; a block's activations serve every Q
      block when they fit half the activation scratchpad, the weights are read once only
      when all of them fit half the weight scratchpad, else once per P block.
    * ``("q", x_keep, w_keep)``: Q blocks outermost, the mirror image.
    * ``("t", sup, units, qgroup, w_keep)``: tiled: super-blocks of ``sup`` P blocks, K in
      chunks of ``units``, Q blocks in groups of ``qgroup``; per chunk and Q block one
      weight block serves the whole super-block, whose activations of the chunk stay on
      chip for the Q group; outputs accumulate over the chunks. Every ``sup`` that fits is
      a candidate.
    """
    R, bb = cfg.rows, cfg.beat_bytes
    kbytes, k_entries = nunits * unit, nunits * steps_per_unit
    a_all = P * cfg.beats(kbytes) * bb
    w_all = nqb * k_entries * cfg.beats(cfg.wgt_entry_bytes) * bb
    a_blk, a_every = R * kbytes <= act_half_bytes, P * kbytes <= act_half_bytes
    w_blk, w_every = k_entries <= wgt_half, nqb * k_entries <= wgt_half
    plans = [(a_all * (1 if a_blk else nqb) + w_all * (1 if w_every else npb),
              ("p", a_blk, w_every)),
             (w_all * (1 if w_blk else npb) + a_all * (1 if a_every else nqb),
              ("q", a_every, w_blk))]
    for sup in range(1, npb + 1):
        # sup P blocks share each weight block: their activations of one K chunk fill at
        # most half the activation scratchpad, one weight block of the chunk half the
        # weight scratchpad, their partial sums of a Q group the accumulator half
        units = min(nunits, act_half_bytes // (sup * R * unit),
                    wgt_half // steps_per_unit)
        if units < 1:
            break
        qgroup = nqb if units >= nunits else max(1, acc_half // (sup * R))
        full, rest = divmod(nunits, units)
        row = (full * cfg.beats(units * unit) + (cfg.beats(rest * unit) if rest else 0)) * bb
        plans.append((P * row * _ceil(nqb, qgroup)
                      + w_all * (1 if w_every else _ceil(npb, sup)),
                      ("t", sup, units, qgroup, w_every)))
        if sup * R >= P:
            break
    return min(plans, key=lambda c: c[0])[1]


def _os_passes(plan: tuple[Any, ...], npb: int, nqb: int, nunits: int
               ) -> Any:
    """The passes of an ``os`` nest (:func:`_os_order`): ``(pb, qb, first unit, units,
    load activations, load weights, last K chunk)``."""
    if plan[0] in ("p", "q"):
        _, x_keep, w_keep = plan
        blocks = [(pb, qb) for qb in range(nqb) for pb in range(npb)] if plan[0] == "q" \
            else [(pb, qb) for pb in range(npb) for qb in range(nqb)]
        for pb, qb in blocks:
            # an operand block is loaded once when it stays on chip, else for every pass
            yield pb, qb, 0, nunits, qb == 0 or not x_keep, pb == 0 or not w_keep, True
        return
    _, sup, units, qgroup, w_keep = plan
    for s0 in range(0, npb, sup):
        for g0 in range(0, nqb, qgroup):
            for c0 in range(0, nunits, units):
                cu = min(units, nunits - c0)
                for qb in range(g0, min(nqb, g0 + qgroup)):
                    for pb in range(s0, min(npb, s0 + sup)):
                        yield (pb, qb, c0, cu, qb == g0, pb == s0 and (s0 == 0 or not w_keep),
                               c0 + cu == nunits)


def _is_chunks(cfg: AccelConfig, P: int, Q: int, npb: int, nk: int, kp: int, w_entry: int,
               w_resident: bool, wgt_half: int, acc_half: int) -> tuple[int, int]:
    """Q chunk and P super-block of an ``is`` GEMM: ``(qchunk, sup)``, the pair that reads
    the fewest DRAM bytes (ties: the larger chunk, fewer passes). A super-block's partial
    sums of one Q chunk (``sup * qchunk`` accumulator entries) fill at most the
    accumulator half, so each streamed weight chunk serves ``sup`` P blocks; the
    activation tiles are read once per Q chunk."""
    bb = cfg.beat_bytes
    acts = P * nk * cfg.beats(kp) * bb                  # every stationary tile, one Q chunk
    wgts = nk * Q * cfg.beats(w_entry) * bb             # every streamed column, once
    best: tuple[int, int, int] | None = None
    for s in range(1, npb + 1):
        qc = max(1, min(Q, acc_half // s))
        sup = max(1, acc_half // qc) if qc <= wgt_half else 1
        cost = acts * _ceil(Q, qc) + (wgts if w_resident else wgts * _ceil(npb, sup))
        if best is None or cost < best[0] or (cost == best[0] and qc > best[1]):
            best = (cost, qc, sup)
        if acc_half // s < 1:
            break
    assert best is not None
    return best[1], best[2]


def variant_ops(program: Any, cfg: AccelConfig, dataflow: str, *,
                link_bytes_per_row: int | None = None) -> OpStream:
    """The :class:`OpStream` of ``program``'s GEMMs on the ``os`` or ``is`` array.

    Parameters
    ----------
    program : Program
        A compiled workload (its layers carry the GEMM shapes and modes).
    cfg : AccelConfig
    dataflow : {"os", "is"}
    link_bytes_per_row : int, optional
        ``os`` only: activation bytes per cycle each array row receives (default
        ``ceil(m / n)``).
    """
    if dataflow not in VARIANTS:
        raise SimError(f"dataflow={dataflow!r} is not a model variant; allowed: "
                       f"{', '.join(VARIANTS)}")
    check_variant_options({"link_bytes_per_row": link_bytes_per_row})
    link = link_bytes_per_row if link_bytes_per_row is not None else _ceil(cfg.m, cfg.n)
    ws = ops_from_program(program, cfg)       # layer specs (names, MACs) of the same program
    gemms = _gemms(program)
    if not gemms:
        raise SimError("the os/is dataflows need GEMM shapes (P, K, Q) in the program's "
                       "layers; this program has none (compile a workload)")
    if len(gemms) != len(ws.layers):
        raise SimError("program layers and instruction notes disagree")
    R, C = cfg.rows, cfg.cols
    em = _Emitter(cfg)
    passes: list[dict[str, Any]] = []
    acts = [{k: 0 for k in ACTIONS} for _ in gemms]
    wgt_half = cfg.wgt_entries // 2
    acc_half = cfg.acc_entries // 2
    act_half_bytes = (cfg.act_entries // 2) * cfg.act_entry_bytes
    for j, _ly, P, K, Q, G, win, ob in gemms:
        a = acts[j]
        sparse = win > 0
        kp = cfg.act_row_bytes(win) if sparse else R     # K per pass (spatial K)
        nwin = _ceil(K, win) if sparse else 0
        for _g in range(G):
            if dataflow == "is":
                nk = _ceil(K, kp)
                w_entry = R + _ceil(R * cfg.idx_bits, 8)   # one streamed column
                w_entries = nk * Q                       # one compressed column per q per pass
                w_resident = w_entries <= wgt_half
                npb = _ceil(P, C)
                qchunk, sup = _is_chunks(cfg, P, Q, npb, nk, kp, w_entry, w_resident,
                                         wgt_half, acc_half)
                for ps in range(0, npb, sup):
                    for q0 in range(0, Q, qchunk):
                        qc = min(qchunk, Q - q0)
                        for kb in range(nk):
                            for pb in range(ps, min(npb, ps + sup)):
                                pc = min(C, P - pb * C)
                                wload = [] if (w_resident and ps > 0) or pb > ps else \
                                    [(qc, w_entry)]
                                passes.append(dict(
                                    layer=j, stream_loads=wload,
                                    stat_loads=[(pc, kp)],
                                    exec_cycles=compute_cycles(cfg, qc), stream=qc, window=0,
                                    stores=[(qc, pc * ob)] if kb == nk - 1 else []))
                                a["pe_ops"] += qc * R * C
                                a["sram_act_read"] += pc * cfg.act_entry_bytes
                                a["sram_act_write"] += pc * cfg.act_entry_bytes
                                a["sram_wgt_read"] += qc * R
                                a["sram_meta_read"] += qc * (w_entry - R)
                                if wload:
                                    a["sram_wgt_write"] += qc * R
                                    a["sram_meta_write"] += qc * (w_entry - R)
                                a["sram_acc_write"] += qc * cfg.acc_entry_bytes
                                a["sram_acc_read"] += qc * cfg.acc_entry_bytes * (
                                    (kb > 0) + (kb == nk - 1))
            else:  # os
                per_win = max(cfg.n, _ceil(win, link)) if sparse else max(1, _ceil(1, link))
                # K in units of a window (sparse: n steps each) or of one value (dense)
                unit, nunits, spu = (win, nwin, cfg.n) if sparse else (1, K, 1)
                npb, nqb = _ceil(P, R), _ceil(Q, C)
                plan = _os_order(cfg, P, npb, nqb, unit, nunits, spu, wgt_half,
                                 act_half_bytes, acc_half)
                for pb, _qb, c0, cu, xl, wl, last in _os_passes(plan, npb, nqb, nunits):
                    pc = min(R, P - pb * R)
                    steps = cu * spu                            # = weight rows of the chunk
                    t_eff = cu * per_win if sparse else cu
                    kbytes = cu * unit
                    xload = [(pc, kbytes)] if xl else []
                    wload = [(steps, cfg.wgt_entry_bytes)] if wl else []
                    passes.append(dict(
                        layer=j, stream_loads=xload, stat_loads=wload,
                        exec_cycles=t_eff + R + C + COMPUTE_OVERHEAD, stream=steps,
                        window=t_eff - steps, stores=[(pc, C * ob)] if last else []))
                    a["pe_ops"] += steps * R * C
                    a["sram_act_read"] += pc * kbytes
                    if xload:
                        a["sram_act_write"] += pc * kbytes
                    a["sram_wgt_read"] += steps * C
                    a["sram_meta_read"] += steps * cfg.wgt_idx_bytes
                    if wload:
                        a["sram_wgt_write"] += steps * C
                        a["sram_meta_write"] += steps * cfg.wgt_idx_bytes
                    # outputs drain into the accumulator (added to the partial sums of the
                    # earlier K chunks) and are read once more by the STORE
                    a["sram_acc_write"] += pc * cfg.acc_entry_bytes
                    a["sram_acc_read"] += pc * cfg.acc_entry_bytes * ((c0 > 0) + last)
    dram = em.run(passes)
    specs = []
    for (j, _ly, *_rest), a, base in zip(gemms, acts, ws.layers, strict=True):
        a["mux_selects"] = a["pe_ops"]
        a["nonzero_macs"] = base.actions.get("nonzero_macs", base.nonzero_macs)
        a.update(dram.get(j, {"dram_read": 0, "dram_write": 0}))
        specs.append(LayerSpec(name=base.name, kind=base.kind, mode=base.mode,
                               dense_macs=base.dense_macs, nonzero_macs=base.nonzero_macs,
                               actions=a))
    return OpStream(unit=em.unit, wait=em.wait, cycles=em.cycles, beats=em.beats,
                    stream=em.stream, layer=em.layer, layers=specs,
                    read_offset=cfg.dram_latency_cycles, window_cycles=em.window,
                    accept=em.accept, slack=em.slack,
                    swap=[int(u == _EXEC) for u in em.unit])
