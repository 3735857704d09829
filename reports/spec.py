"""The sweep YAML schema and its expansion into design points.

A sweep spec names the axes of a design space; :func:`load_spec` validates it (pydantic, no
unknown keys) and :meth:`SweepSpec.expand` turns it into the list of :class:`DesignPoint`.
Everything that can be wrong with a spec is found here, before any point is evaluated: an
unknown key, a value of the wrong type, a configuration :class:`~sparsa.hw.config.AccelConfig`
rejects, an unknown sparsity spec or dataflow, an empty axis. Each error is one line that
names the spec file and the offending key.

Example::

    name: demo
    workloads: [resnet50, bert-base]
    configs:                      # cross product of the listed axes ...
      base: 16x16-n2m4            # preset(s) the other fields start from
      rows: [8, 16, 32]
      cols: [8, 16, 32]
      m: [4, 8]
      scratchpad_kib: [64]        # sets wgt_sp_kib, act_sp_kib and acc_sp_kib together
      dram_bytes_per_cycle: [16, 32]
      skip_invalid: false         # true: drop combinations AccelConfig rejects
    # configs: [16x16-n2m4, {preset: 8x8-n2m8, dram_bytes_per_cycle: 8}, my.yaml]  # ... or a list
    sparsity: [dense, "2:4", "2:8"]
    dataflows: [ws, os, is]
    train: [false, true]
    batch: [1]
    seq: [128]                    # transformer sequence length (ignored by CNNs)
    area: true                    # area per design point from sparsa.hw.area
    per_layer: false              # also store per-layer rows (for the utilisation plot)

Instead of the axes, ``points:`` lists design points explicitly; each point is a mapping
with ``workload`` and ``config`` and optionally ``sparsity``, ``dataflow``, ``train``,
``batch``, ``seq`` and ``per_layer`` (defaults: dense, ws, false, 1, none, the spec's).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sparsa.hw.config import (
    PRESETS,
    AccelConfig,
    ConfigError,
    from_dict,
    read_yaml,
    resolve_config,
)

from .errors import ReportError

__all__ = ["DATAFLOWS", "DesignPoint", "SweepSpec", "load_spec", "parse_spec", "point_hash"]

#: Dataflows the model implements (weight-, output- and input-stationary).
DATAFLOWS = ("ws", "os", "is")

#: Config fields a ``configs:`` mapping can sweep (besides ``base`` and ``scratchpad_kib``).
CONFIG_AXES = ("rows", "cols", "n", "m", "wgt_sp_kib", "act_sp_kib", "acc_sp_kib",
               "dram_bytes_per_cycle", "dram_latency_cycles", "clock_mhz")

#: Version of the point description that enters the content hash.
HASH_VERSION = 1


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list) else [v]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class ConfigAxesSpec(_Strict):
    """``configs:`` as a cross product of config fields."""

    base: list[str] = ["16x16-n2m4"]
    rows: list[int] | None = None
    cols: list[int] | None = None
    n: list[int] | None = None
    m: list[int] | None = None
    scratchpad_kib: list[float] | None = None
    wgt_sp_kib: list[float] | None = None
    act_sp_kib: list[float] | None = None
    acc_sp_kib: list[float] | None = None
    dram_bytes_per_cycle: list[int] | None = None
    dram_latency_cycles: list[int] | None = None
    clock_mhz: list[float] | None = None
    skip_invalid: bool = False

    @field_validator("*", mode="before")
    @classmethod
    def _wrap(cls, v: Any, info: Any) -> Any:
        if info.field_name == "skip_invalid" or v is None:
            return v
        return _as_list(v)


class PointSpec(_Strict):
    """One explicit design point of ``points:``."""

    workload: str
    config: str | dict[str, Any]
    sparsity: str = "dense"
    dataflow: str = "ws"
    train: bool = False
    batch: int = 1
    seq: int | None = None
    per_layer: bool | None = None


class SweepSpecModel(_Strict):
    """The raw schema; :class:`SweepSpec` is what :func:`load_spec` returns."""

    name: str = "sweep"
    workloads: list[str] | None = None
    configs: ConfigAxesSpec | list[str | dict[str, Any]] | None = None
    sparsity: list[str] = ["dense"]
    dataflows: list[str] = ["ws"]
    train: list[bool] = [False]
    batch: list[int] = [1]
    seq: list[int | None] = [None]
    options: dict[str, Any] = {}
    area: bool = True
    per_layer: bool = False
    points: list[PointSpec] | None = None

    @field_validator("workloads", "sparsity", "dataflows", "train", "batch", "seq",
                     mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return v if v is None else _as_list(v)


@dataclass(frozen=True)
class DesignPoint:
    """One point of a design space: what is simulated, on which hardware.

    ``config`` is the full :class:`AccelConfig`; ``key`` is the content hash of everything
    that determines the result (the config's fields except its name, the workload, sparsity,
    dataflow, training flag, batch, sequence length and options).
    """

    index: int
    workload: str
    config: AccelConfig
    sparsity: str = "dense"
    dataflow: str = "ws"
    train: bool = False
    batch: int = 1
    seq: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    area: bool = True
    per_layer: bool = False
    workload_obj: Any = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return point_hash(self)

    def to_task(self) -> dict[str, Any]:
        """A plain picklable dict handed to the evaluation function."""
        return {"index": self.index, "hash": self.key, "workload": self.workload,
                "config": self.config.to_dict(), "sparsity": self.sparsity,
                "dataflow": self.dataflow, "train": self.train, "batch": self.batch,
                "seq": self.seq, "options": dict(self.options), "area": self.area,
                "per_layer": self.per_layer, "workload_obj": self.workload_obj}


def point_hash(p: DesignPoint) -> str:
    """Content hash (16 hex digits) of a design point; the store's key."""
    cfg = p.config.to_dict()
    cfg.pop("name", None)
    desc = {"v": HASH_VERSION, "workload": p.workload, "config": cfg, "sparsity": p.sparsity,
            "dataflow": p.dataflow, "train": bool(p.train), "batch": p.batch, "seq": p.seq,
            "options": p.options}
    text = json.dumps(desc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec: its name, source and design points (in a fixed order)."""

    name: str
    source: str
    points: tuple[DesignPoint, ...]
    raw: dict[str, Any]

    def __len__(self) -> int:
        return len(self.points)


# ---- validation helpers --------------------------------------------------------------------
def _err(source: str, key: str, msg: str) -> ReportError:
    return ReportError(f"{source}: {key}: {msg}")


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("list[union[str,dict[str,any]]]", "ConfigAxesSpec") or "[" in str(part):
            continue  # pydantic's union-branch labels
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _allowed(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key ``loc`` was found."""
    parts = [p for p in loc[:-1] if isinstance(p, str) and p.isidentifier()]
    if parts[:1] == ["configs"]:
        model: type[BaseModel] = ConfigAxesSpec
    elif parts[:1] == ["points"]:
        model = PointSpec
    else:
        model = SweepSpecModel
    return list(model.model_fields)


def _pydantic_error(source: str, e: ValidationError) -> ReportError:
    errs = e.errors()
    # prefer "unknown key" errors: they are the most precise
    errs.sort(key=lambda d: d["type"] != "extra_forbidden")
    first = errs[0]
    key = _loc(first["loc"])
    if first["type"] == "extra_forbidden":
        return _err(source, key, f"unknown key; allowed: {', '.join(_allowed(first['loc']))}")
    return _err(source, key, f"{first['msg']} (got {first.get('input')!r})")


def _check_sparsity(source: str, key: str, text: str) -> str:
    from sparsa.workloads.errors import WorkloadError
    from sparsa.workloads.sparsity import SparsityPlan

    try:
        SparsityPlan.parse(text)
    except WorkloadError as e:
        raise _err(source, key, str(e).splitlines()[0]) from None
    return text


def _check_dataflow(source: str, key: str, text: str) -> str:
    if text not in DATAFLOWS:
        raise _err(source, key, f"unknown dataflow {text!r}; allowed: {', '.join(DATAFLOWS)}")
    return text


def _known_workloads() -> set[str] | None:
    """Names of the model zoo, or ``None`` when this checkout has no zoo."""
    try:
        from sparsa.workloads import ZOO_NAMES
    except ImportError:
        return None
    return {str(n).lower() for n in ZOO_NAMES}


def _check_workload(source: str, key: str, name: str, known: set[str] | None) -> str:
    if known is None or name.lower() in known:
        return name
    if os.path.isfile(name) and name.lower().endswith((".onnx", ".csv")):
        return name
    if os.path.isdir(name):
        raise _err(source, key, f"{name!r} is a directory, not a workload; allowed a zoo "
                                f"name, an .onnx model or a SCALE-Sim .csv")
    if os.path.exists(name):
        raise _err(source, key, f"{name!r}: workload files must end in .onnx or .csv")
    raise _err(source, key, f"unknown workload {name!r}; allowed: {', '.join(sorted(known))} "
                            "or a model file (.onnx, .csv)")


def _config_from(source: str, key: str, item: str | dict[str, Any]) -> AccelConfig:
    try:
        if isinstance(item, str):
            return resolve_config(item)
        return from_dict(dict(item), source=f"{source}: {key}")
    except ConfigError as e:
        msg = str(e).splitlines()[0]
        if msg.startswith(f"{source}: "):
            raise ReportError(msg) from None
        raise _err(source, key, msg) from None


def _unique_names(cfgs: list[AccelConfig]) -> list[AccelConfig]:
    """Configs that share a name but differ in hardware get ``+field=value`` suffixes for
    the fields that differ within that name (e.g. a preset swept over DRAM latency), so
    tables and plots, which group rows by config name, never merge different designs."""
    def hw(c: AccelConfig) -> dict[str, Any]:
        return {k: v for k, v in c.to_dict().items() if k != "name"}

    groups: dict[str, list[AccelConfig]] = {}
    for c in cfgs:
        groups.setdefault(c.name, []).append(c)
    renamed: dict[int, AccelConfig] = {}
    for name, group in groups.items():
        dicts = [hw(c) for c in group]
        if all(d == dicts[0] for d in dicts):
            continue
        varying = [k for k in dicts[0] if any(d[k] != dicts[0][k] for d in dicts)]
        for c, d in zip(group, dicts, strict=True):
            suffix = "".join(f"+{k}={d[k]:g}" if isinstance(d[k], float) else f"+{k}={d[k]}"
                             for k in varying)
            renamed[id(c)] = dataclasses.replace(c, name=name + suffix)
    return [renamed.get(id(c), c) for c in cfgs]


def _nonempty(source: str, key: str, values: list[Any] | None) -> None:
    if values is not None and len(values) == 0:
        raise _err(source, key, "empty list: the cross product has no points")


def _axis_configs(source: str, axes: ConfigAxesSpec) -> list[AccelConfig]:
    _nonempty(source, "configs.base", axes.base)
    for b in axes.base:
        if b not in PRESETS:
            raise _err(source, "configs.base",
                       f"unknown preset {b!r}; allowed: {', '.join(PRESETS)}")
    names = ["base", *CONFIG_AXES, "scratchpad_kib"]
    values = {k: getattr(axes, k) for k in names if getattr(axes, k) is not None}
    for k, v in values.items():
        _nonempty(source, f"configs.{k}", v)
    if "scratchpad_kib" in values:
        for k in ("wgt_sp_kib", "act_sp_kib", "acc_sp_kib"):
            if k in values:
                raise _err(source, "configs.scratchpad_kib",
                           f"sets {k} too; give one of scratchpad_kib and {k}")
    keys = list(values)
    out: list[AccelConfig] = []
    seen: set[str] = set()
    for combo in itertools.product(*(values[k] for k in keys)):
        d = dict(zip(keys, combo, strict=True))
        base = PRESETS[d.pop("base")]
        sp = d.pop("scratchpad_kib", None)
        if sp is not None:
            d.update(wgt_sp_kib=sp, act_sp_kib=sp, acc_sp_kib=sp)
        d = {k: (int(v) if isinstance(v, float) and v.is_integer() and k.endswith("kib")
                 else v) for k, v in d.items()}
        try:
            cfg = dataclasses.replace(base, **d)
        except ConfigError as e:
            if axes.skip_invalid:
                continue
            shown = ", ".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
            raise _err(source, "configs",
                       f"impossible config ({shown}): {str(e).splitlines()[0]}") from None
        if cfg != base:
            cfg = dataclasses.replace(cfg, name=cfg.key)
        hw_key = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "name"},
                            sort_keys=True)
        if hw_key not in seen:
            seen.add(hw_key)
            out.append(cfg)
    if not out:
        raise _err(source, "configs", "every combination is an impossible config "
                                      "(skip_invalid dropped them all): no points")
    return out


# ---- public API ---------------------------------------------------------------------------
def parse_spec(data: Any, source: str = "spec", *,
               workloads: Mapping[str, Any] | None = None) -> SweepSpec:
    """Validate a spec mapping and expand it into design points.

    ``workloads`` maps extra workload names to workload objects built in Python (e.g. with
    :class:`sparsa.workloads.GraphBuilder`); the objects travel with the points to the
    workers. The content hash covers the name only, so keep names unique per network.

    Raises
    ------
    ReportError
        One line naming ``source`` and the offending key.
    """
    if not isinstance(data, dict):
        raise ReportError(f"{source}: expected a mapping with workloads/configs/sparsity/... "
                          f"keys, got {type(data).__name__}")
    try:
        m = SweepSpecModel.model_validate(data)
    except ValidationError as e:
        raise _pydantic_error(source, e) from None
    if not m.name or m.name in (".", "..") or any(c in m.name for c in "/\\\0"):
        raise _err(source, "name", f"{m.name!r} is not a plain name (it names the default "
                                   f"results folder sweeps/<name>); no '/', '\\', '.' or '..'")
    known = _known_workloads()
    custom = dict(workloads or {})
    if known is not None:
        known |= {k.lower() for k in custom}
    common = {"options": m.options, "area": m.area, "per_layer": m.per_layer}
    points: list[DesignPoint] = []
    if m.points is not None:
        axes_given = [k for k in ("workloads", "configs") if k in data]
        if axes_given:
            raise _err(source, axes_given[0], "give either points or the axes "
                                              "(workloads, configs, ...), not both")
        _nonempty(source, "points", m.points)
        for i, p in enumerate(m.points):
            key = f"points[{i}]"
            for k in ("batch", "seq"):
                v = getattr(p, k)
                if v is not None and v < 1:
                    raise _err(source, f"{key}.{k}", f"must be >= 1, not {v}")
            points.append(DesignPoint(
                index=i,
                workload=_check_workload(source, f"{key}.workload", p.workload, known),
                config=_config_from(source, f"{key}.config", p.config),
                sparsity=_check_sparsity(source, f"{key}.sparsity", p.sparsity),
                dataflow=_check_dataflow(source, f"{key}.dataflow", p.dataflow),
                train=p.train, batch=p.batch, seq=p.seq, workload_obj=custom.get(p.workload),
                **{**common, **({} if p.per_layer is None else {"per_layer": p.per_layer})}))
    else:
        if m.workloads is None:
            raise _err(source, "workloads", "missing: list the workloads (or give points)")
        for key in ("workloads", "sparsity", "dataflows", "train", "batch", "seq"):
            _nonempty(source, key, getattr(m, key))
        wls = [_check_workload(source, "workloads", w, known) for w in m.workloads]
        sps = [_check_sparsity(source, "sparsity", s) for s in m.sparsity]
        dfs = [_check_dataflow(source, "dataflows", d) for d in m.dataflows]
        for key in ("batch", "seq"):
            for v in getattr(m, key):
                if v is not None and v < 1:
                    raise _err(source, key, f"must be >= 1, not {v}")
        if m.configs is None:
            cfgs = [resolve_config(None)]
        elif isinstance(m.configs, list):
            _nonempty(source, "configs", m.configs)
            cfgs = [_config_from(source, f"configs[{i}]", c) for i, c in enumerate(m.configs)]
        else:
            cfgs = _axis_configs(source, m.configs)
        cfgs = _unique_names(cfgs)
        combos = itertools.product(wls, cfgs, sps, dfs, m.train, m.batch, m.seq)
        no_seq: set[tuple] = set()
        for w, c, s, d, t, b, q in combos:
            if (q is not None or len(m.seq) > 1) and w not in custom and not _takes_seq(w):
                # the seq axis is for the sequence models: a CNN runs once, without one
                if (w, id(c), s, d, t, b) in no_seq:
                    continue
                no_seq.add((w, id(c), s, d, t, b))
                q = None
            points.append(DesignPoint(index=len(points), workload=w, config=c, sparsity=s,
                                      dataflow=d, train=t, batch=b, seq=q,
                                      workload_obj=custom.get(w), **common))
    if m.points is not None:
        named = _unique_names([p.config for p in points])
        points = [dataclasses.replace(p, config=c) for p, c in zip(points, named, strict=True)]
    seen: dict[str, int] = {}
    for p in points:
        if p.key in seen:
            raise _err(source, "points" if m.points is not None else "configs",
                       f"design point {p.index} repeats point {seen[p.key]} "
                       f"(same hardware, workload and settings)")
        seen[p.key] = p.index
    return SweepSpec(name=m.name, source=source, points=tuple(points), raw=data)


def _takes_seq(workload: str) -> bool:
    """Whether a workload has a sequence length (zoo transformers, ONNX files with a
    symbolic one); zoo CNNs and SCALE-Sim topologies do not."""
    from sparsa.workloads.zoo import DEFAULT_SEQ, ZOO, canonical
    if workload.strip().lower().endswith(".csv"):
        return False
    key = canonical(workload)
    return key in DEFAULT_SEQ or key not in ZOO


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep YAML file (see the module docstring for the schema)."""
    return parse_spec(read_yaml(path, ReportError, "sweep spec"), source=str(Path(path)))

