"""The ``--sparsity`` option of the CLI verbs: parsed as soon as it is given, so that a
malformed plan is one line naming the option (``--sparsity 3:2: n must be in 1..m=2, not
3``) before any work, not a bare message from deep in the compiler or the model."""

from __future__ import annotations

from typing import Any

import click


def option_name(param: click.Parameter | None, default: str = "--sparsity") -> str:
    """The long name of a click option (``--sparsity``)."""
    opts = getattr(param, "opts", None) or [default]
    return next((o for o in opts if o.startswith("--")), opts[0])


def check_plan(text: str, option: str = "--sparsity") -> None:
    """Parse one sparsity plan; a :class:`SparsityError` naming ``option`` when it is
    malformed: ``option TEXT: why`` (a message that starts with the piece of ``text`` it
    is about, ``3:2: n must ...`` of ``conv1=3:2``, is not told that piece again)."""
    from sparsa.workloads.sparsity import SparsityError, SparsityPlan
    try:
        SparsityPlan.parse(text)
    except SparsityError as e:
        msg = str(e)
        head, sep, rest = msg.partition(": ")
        if sep and head and head in text:
            msg = rest
        raise SparsityError(f"{option} {text}: {msg}") from None


def check_sparsity(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """click callback of an option that takes one sparsity plan (``None``: not given)."""
    if isinstance(value, str):
        check_plan(value, option_name(param))
    return value


def check_sparsity_list(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """click callback of an option that takes comma-separated sparsity plans (a
    bidirectional spec keeps its commas, see
    :func:`~sparsa.workloads.sparsity.split_plans`); an empty list is left to the verb."""
    from sparsa.workloads.sparsity import split_plans
    if isinstance(value, str):
        for plan in split_plans(value):
            check_plan(plan, option_name(param))
    return value
