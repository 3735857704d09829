"""Model zoo: published architectures at their standard input sizes.

=============  ==========================================================  ==============
name           network                                                      default input
=============  ==========================================================  ==============
resnet18       ResNet-18 (He et al. 2016), ImageNet classifier              224x224
resnet50       ResNet-50 v1 (stride in the 1x1 -> 3x3 as torchvision v1.5)  224x224
vgg16          VGG-16 (configuration D)                                     224x224
mobilenetv2    MobileNetV2 1.0 (Sandler et al. 2018), ReLU6 = clip          224x224
bert-base      BERT-base encoder (12 layers, d=768, 12 heads), no pooler    seq 128
vit-b16        ViT-B/16 (12 layers, d=768, 197 tokens with the class token) 224x224
gpt2           GPT-2 small (12 layers, d=768) with the (tied) LM head        seq 128
gpt2-block     one GPT-2 small decoder block                                seq 128
gpt2-decode    GPT-2 small generating one token against a KV cache          KV length 1024
=============  ==========================================================  ==============

All take ``batch``; the transformers take ``seq`` (``gpt2-decode``: the KV length, i.e.
the number of cached tokens plus the new one). MAC counts are GEMM MACs only (conv, linear,
attention matmuls). Attention keeps the full ``seq x seq`` score matrix (the causal mask of
GPT-2 is an ``add`` of a constant, as in the reference implementations).

GPT-2's default sequence is 128 (as bert-base), not its 1024-token context: at 1024 the
whole model is 146 GMAC (the LM head alone 39.5), which makes every whole-network compile
and simulation of the zoo an order of magnitude slower. Pass ``seq=1024`` for the full
context.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import WorkloadError
from .graph import GraphBuilder, Workload

__all__ = ["ZOO", "ZOO_NAMES", "build", "canonical", "DEFAULT_SEQ"]

DEFAULT_SEQ = {"bert-base": 128, "gpt2": 128, "gpt2-block": 128, "gpt2-decode": 1024}


# ---- CNNs ---------------------------------------------------------------------------------
def _conv_bn(b: GraphBuilder, x: str, cout: int, k: int, stride: int, name: str,
             act: str | None = "relu", groups: int = 1) -> str:
    y = b.conv(x, cout, k, stride=stride, groups=groups, name=name)
    y = b.op("batchnorm", y, name=f"{name}.bn")
    if act == "relu":
        y = b.op("relu", y, name=f"{name}.relu")
    elif act == "relu6":
        y = b.op("clip", y, name=f"{name}.relu6", min=0.0, max=6.0)
    return y


def _resnet(name: str, blocks: list[int], bottleneck: bool, batch: int) -> Workload:
    b = GraphBuilder(name)
    x = b.input("input", (batch, 3, 224, 224))
    x = _conv_bn(b, x, 64, 7, 2, "conv1")
    x = b.op("maxpool", x, name="maxpool", kernel=3, stride=2, pads=1)
    cin = 64
    for si, n in enumerate(blocks):
        width = 64 * 2 ** si
        cout = width * 4 if bottleneck else width
        for bi in range(n):
            stride = 2 if bi == 0 and si > 0 else 1
            pre = f"layer{si + 1}.{bi}"
            inp = x
            if bottleneck:
                y = _conv_bn(b, inp, width, 1, 1, f"{pre}.conv1")
                y = _conv_bn(b, y, width, 3, stride, f"{pre}.conv2")
                y = _conv_bn(b, y, cout, 1, 1, f"{pre}.conv3", act=None)
            else:
                y = _conv_bn(b, inp, width, 3, stride, f"{pre}.conv1")
                y = _conv_bn(b, y, width, 3, 1, f"{pre}.conv2", act=None)
            if stride != 1 or cin != cout:
                inp = _conv_bn(b, inp, cout, 1, stride, f"{pre}.downsample", act=None)
            x = b.op("add", y, inp, name=f"{pre}.add")
            x = b.op("relu", x, name=f"{pre}.relu")
            cin = cout
    x = b.op("globalavgpool", x, name="avgpool")
    x = b.op("flatten", x, name="flatten", axis=1)
    b.linear(x, 1000, name="fc")
    return b.build(batch=batch)


def resnet18(batch: int = 1) -> Workload:
    """ResNet-18 at 224x224 (1.82 GMAC at batch 1)."""
    return _resnet("resnet18", [2, 2, 2, 2], False, batch)


def resnet50(batch: int = 1) -> Workload:
    """ResNet-50 at 224x224 (4.1 GMAC at batch 1)."""
    return _resnet("resnet50", [3, 4, 6, 3], True, batch)


def vgg16(batch: int = 1) -> Workload:
    """VGG-16 (configuration D) at 224x224 (15.5 GMAC at batch 1)."""
    b = GraphBuilder("vgg16")
    x = b.input("input", (batch, 3, 224, 224))
    cfg = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
    for si, stage in enumerate(cfg):
        for ci, c in enumerate(stage):
            name = f"conv{si + 1}_{ci + 1}"
            x = b.relu(b.conv(x, c, 3, bias=True, name=name), name=f"{name}.relu")
        x = b.op("maxpool", x, name=f"pool{si + 1}", kernel=2, stride=2)
    x = b.op("flatten", x, name="flatten", axis=1)
    for i, f in enumerate([4096, 4096]):
        x = b.relu(b.linear(x, f, name=f"fc{i + 6}"), name=f"fc{i + 6}.relu")
        x = b.op("dropout", x, name=f"fc{i + 6}.dropout")
    b.linear(x, 1000, name="fc8")
    return b.build(batch=batch)


def mobilenetv2(batch: int = 1) -> Workload:
    """MobileNetV2 1.0 at 224x224 (0.30 GMAC at batch 1)."""
    b = GraphBuilder("mobilenetv2")
    x = b.input("input", (batch, 3, 224, 224))
    x = _conv_bn(b, x, 32, 3, 2, "conv0", act="relu6")
    cin = 32
    idx = 0
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            pre = f"block{idx}"
            hidden = cin * t
            y = x
            if t != 1:
                y = _conv_bn(b, y, hidden, 1, 1, f"{pre}.expand", act="relu6")
            y = _conv_bn(b, y, hidden, 3, stride, f"{pre}.dw", act="relu6", groups=hidden)
            y = _conv_bn(b, y, c, 1, 1, f"{pre}.project", act=None)
            if stride == 1 and cin == c:
                y = b.op("add", y, x, name=f"{pre}.add")
            x = y
            cin = c
            idx += 1
    x = _conv_bn(b, x, 1280, 1, 1, "conv_last", act="relu6")
    x = b.op("globalavgpool", x, name="avgpool")
    x = b.op("flatten", x, name="flatten", axis=1)
    x = b.op("dropout", x, name="dropout")
    b.linear(x, 1000, name="classifier")
    return b.build(batch=batch)


# ---- transformers -------------------------------------------------------------------------
def _attention(b: GraphBuilder, x: str, pre: str, d: int, heads: int, causal: bool,
               fused_qkv: bool, kv_past: str | None = None) -> str:
    """Multi-head self-attention on ``x[B, S, d]``; returns the output projection's input
    merged back to ``[B, S, d]`` and projected."""
    bsz, s, _ = b.shape(x)
    hd = d // heads
    if fused_qkv:
        qkv = b.linear(x, 3 * d, name=f"{pre}.qkv")
        parts = [b.op("slice", qkv, name=f"{pre}.{n}", axes=[2], starts=[i * d],
                      ends=[(i + 1) * d]) for i, n in enumerate("qkv")]
    else:
        parts = [b.linear(x, d, name=f"{pre}.{n}") for n in ("query", "key", "value")]
    heads_ = []
    for p, n in zip(parts, "qkv", strict=True):
        r = b.op("reshape", p, name=f"{pre}.{n}.split_heads", shape=[bsz, s, heads, hd])
        heads_.append(b.op("transpose", r, name=f"{pre}.{n}.heads", perm=[0, 2, 1, 3]))
    q, k, v = heads_
    if kv_past is not None:     # decode: append the new token to the cache
        k = b.op("concat", f"{kv_past}.k", k, name=f"{pre}.k.cache", axis=2)
        v = b.op("concat", f"{kv_past}.v", v, name=f"{pre}.v.cache", axis=2)
    kv = b.shape(k)[2]
    scores = b.matmul(q, k, transpose_b=True, name=f"{pre}.scores")
    scores = b.op("mul", scores, name=f"{pre}.scale", const_shape=[1])
    if causal:
        scores = b.op("add", scores, name=f"{pre}.causal_mask", const_shape=[1, 1, s, kv])
    probs = b.op("softmax", scores, name=f"{pre}.softmax", axis=-1)
    ctx = b.matmul(probs, v, name=f"{pre}.context")
    ctx = b.op("transpose", ctx, name=f"{pre}.merge", perm=[0, 2, 1, 3])
    ctx = b.op("reshape", ctx, name=f"{pre}.merge_heads", shape=[bsz, s, d])
    return b.linear(ctx, d, name=f"{pre}.proj" if fused_qkv else f"{pre}.output")


def _bert_layer(b: GraphBuilder, x: str, pre: str, d: int = 768, heads: int = 12,
                ff: int = 3072) -> str:
    a = _attention(b, x, f"{pre}.attn", d, heads, causal=False, fused_qkv=False)
    x = b.op("layernorm", b.op("add", a, x, name=f"{pre}.attn.add"), name=f"{pre}.attn.ln",
             axis=-1)
    h = b.op("gelu", b.linear(x, ff, name=f"{pre}.ffn.fc1"), name=f"{pre}.ffn.gelu")
    h = b.linear(h, d, name=f"{pre}.ffn.fc2")
    return b.op("layernorm", b.op("add", h, x, name=f"{pre}.ffn.add"), name=f"{pre}.ffn.ln",
                axis=-1)


def bert_base(batch: int = 1, seq: int = 128) -> Workload:
    """BERT-base encoder (11.2 GMAC at batch 1, sequence 128)."""
    if not 1 <= seq <= 512:
        raise WorkloadError(f"bert-base: seq must be in 1..512 (BERT's position embeddings), "
                            f"not {seq}")
    b = GraphBuilder("bert-base")
    ids = b.input("input_ids", (batch, seq))
    x = b.op("gather", ids, name="embeddings.word", num=30522, dim=768)
    x = b.op("add", x, name="embeddings.position", const_shape=[1, seq, 768])
    x = b.op("add", x, name="embeddings.token_type", const_shape=[1, seq, 768])
    x = b.op("layernorm", x, name="embeddings.ln", axis=-1)
    for i in range(12):
        x = _bert_layer(b, x, f"encoder.{i}")
    return b.build(batch=batch, seq=seq)


def vit_b16(batch: int = 1) -> Workload:
    """ViT-B/16 at 224x224 (17.6 GMAC at batch 1)."""
    d, heads, ff = 768, 12, 3072
    b = GraphBuilder("vit-b16")
    x = b.input("input", (batch, 3, 224, 224))
    x = b.conv(x, d, 16, stride=16, pad=0, bias=True, name="patch_embed")
    x = b.op("reshape", x, name="patch_embed.flatten", shape=[batch, d, 196])
    x = b.op("transpose", x, name="patch_embed.tokens", perm=[0, 2, 1])
    cls = b.op("constant", name="cls_token", shape=[batch, 1, d])
    x = b.op("concat", cls, x, name="tokens", axis=1)
    x = b.op("add", x, name="pos_embed", const_shape=[1, 197, d])
    for i in range(12):
        pre = f"blocks.{i}"
        h = b.op("layernorm", x, name=f"{pre}.ln1", axis=-1)
        h = _attention(b, h, f"{pre}.attn", d, heads, causal=False, fused_qkv=True)
        x = b.op("add", h, x, name=f"{pre}.attn.add")
        h = b.op("layernorm", x, name=f"{pre}.ln2", axis=-1)
        h = b.op("gelu", b.linear(h, ff, name=f"{pre}.mlp.fc1"), name=f"{pre}.mlp.gelu")
        h = b.linear(h, d, name=f"{pre}.mlp.fc2")
        x = b.op("add", h, x, name=f"{pre}.mlp.add")
    x = b.op("layernorm", x, name="norm", axis=-1)
    x = b.op("slice", x, name="cls_out", axes=[1], starts=[0], ends=[1])
    x = b.op("reshape", x, name="cls_flat", shape=[batch, d])
    b.linear(x, 1000, name="head")
    return b.build(batch=batch)


def _gpt2_block(b: GraphBuilder, x: str, pre: str, kv_past: str | None = None) -> str:
    d, ff = 768, 3072
    h = b.op("layernorm", x, name=f"{pre}.ln_1", axis=-1)
    h = _attention(b, h, f"{pre}.attn", d, 12, causal=True, fused_qkv=True, kv_past=kv_past)
    x = b.op("add", h, x, name=f"{pre}.attn.add")
    h = b.op("layernorm", x, name=f"{pre}.ln_2", axis=-1)
    h = b.op("gelu", b.linear(h, ff, name=f"{pre}.mlp.fc"), name=f"{pre}.mlp.gelu")
    h = b.linear(h, d, name=f"{pre}.mlp.proj")
    return b.op("add", h, x, name=f"{pre}.mlp.add")


def _gpt2(name: str, batch: int, seq: int, n_layers: int, head: bool, decode: bool
          ) -> Workload:
    b = GraphBuilder(name)
    s = 1 if decode else seq
    if decode and not 2 <= seq <= 1024:
        raise WorkloadError(f"{name}: the KV length (seq) must be in 2..1024 (GPT-2's "
                            f"context), not {seq}")
    if not decode and seq > 1024:
        raise WorkloadError(f"{name}: seq must be in 1..1024 (GPT-2's context), not {seq}")
    if head or decode:
        ids = b.input("input_ids", (batch, s))
        x = b.op("gather", ids, name="wte", num=50257, dim=768)
        x = b.op("add", x, name="wpe", const_shape=[1, s, 768])
    else:
        x = b.input("hidden", (batch, s, 768))
    for i in range(n_layers):
        past = None
        if decode:
            past = f"past.{i}"
            b.input(f"{past}.k", (batch, 12, seq - 1, 64))
            b.input(f"{past}.v", (batch, 12, seq - 1, 64))
        x = _gpt2_block(b, x, f"h.{i}", kv_past=past)
    if head:
        x = b.op("layernorm", x, name="ln_f", axis=-1)
        b.add("linear", [x], "lm_head", in_features=768, out_features=50257, bias=False,
              tied_to="wte")
    return b.build(batch=batch, seq=seq)


def gpt2(batch: int = 1, seq: int = 128) -> Workload:
    """GPT-2 small, 12 blocks and the LM head (tied to ``wte``), at sequence ``seq``."""
    return _gpt2("gpt2", batch, seq, 12, head=True, decode=False)


def gpt2_block(batch: int = 1, seq: int = 128) -> Workload:
    """One GPT-2 small decoder block on hidden states ``[batch, seq, 768]``."""
    return _gpt2("gpt2-block", batch, seq, 1, head=False, decode=False)


def gpt2_decode(batch: int = 1, seq: int = 1024) -> Workload:
    """GPT-2 small generating one token with ``seq - 1`` cached keys/values per layer (so
    attention spans ``seq`` positions): every GEMM has ``P = batch``."""
    return _gpt2("gpt2-decode", batch, seq, 12, head=True, decode=True)


ZOO: dict[str, Callable[..., Workload]] = {
    "resnet18": resnet18, "resnet50": resnet50, "vgg16": vgg16, "mobilenetv2": mobilenetv2,
    "bert-base": bert_base, "vit-b16": vit_b16, "gpt2": gpt2, "gpt2-block": gpt2_block,
    "gpt2-decode": gpt2_decode,
}
#: the zoo's names, in table order
ZOO_NAMES: tuple[str, ...] = tuple(ZOO)


def canonical(name: str) -> str:
    """The zoo key of ``name`` (case-insensitive, with the short aliases ``bert``, ``vit``)."""
    key = name.strip().lower()
    return {"bert": "bert-base", "vit": "vit-b16", "vit_b16": "vit-b16",
            "bert_base": "bert-base"}.get(key, key)


def build(name: str, batch: int = 1, seq: int | None = None) -> Workload:
    """Build zoo network ``name`` (case-insensitive) at ``batch`` (and ``seq``)."""
    key = canonical(name)
    fn = ZOO.get(key)
    if fn is None:
        raise WorkloadError(f"unknown workload {name!r}: known names are "
                            f"{', '.join(ZOO_NAMES)}, or a .onnx / SCALE-Sim .csv file")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise WorkloadError(f"{key}: batch must be an integer >= 1, not {batch!r}")
    if key in DEFAULT_SEQ:
        s = DEFAULT_SEQ[key] if seq is None else seq
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise WorkloadError(f"{key}: seq must be an integer >= 1, not {seq!r}")
        wl = fn(batch=batch, seq=s)
    else:
        if seq is not None:
            raise WorkloadError(f"{key} takes no seq (it is not a sequence model)")
        wl = fn(batch=batch)
    wl.attrs.setdefault("source", f"zoo:{key}")
    return wl
