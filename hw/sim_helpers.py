"""Stream helpers for ``amaranth.sim`` async testbenches, shared by all unit tests.

They follow the ``amaranth.lib.stream`` transfer rules: a transfer happens on a clock edge
where both ``valid`` and ``ready`` are high; a source keeps ``valid`` and ``payload`` until
then. Use them inside a testbench added with ``Simulator.add_testbench``::

    async def bench(ctx):
        await stream_put(ctx, dut.instr, word)
        beat = await stream_get(ctx, dut.wr)
"""

from __future__ import annotations

from typing import Any

from amaranth.lib import data

__all__ = ["stream_put", "stream_get"]


async def stream_put(ctx: Any, stream: Any, payload: Any) -> None:
    """Present ``payload`` on ``stream`` (a source interface) until the sink takes it.

    ``payload`` may be a plain integer for a payload with a data layout (it is then the
    payload's raw bits). Returns after the clock edge of the transfer, with ``valid`` low.
    """
    target = stream.payload
    if isinstance(payload, int) and isinstance(target, data.View):
        target = target.as_value()
    ctx.set(stream.valid, 1)
    ctx.set(target, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx: Any, stream: Any) -> Any:
    """Raise ``ready`` on ``stream`` (a sink interface) until a payload arrives; return it.

    Returns after the clock edge of the transfer, with ``ready`` low again.
    """
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload
