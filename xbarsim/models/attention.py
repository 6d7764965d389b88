"""Multi-head attention with its four projections as separate matrix products.

``nn.MultiheadAttention`` keeps its query, key and value projections in one packed parameter
(``in_proj_weight``) or three (``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ) and runs them
inside ``F.multi_head_attention_forward``; only ``out_proj`` is a module, and even it is read as a
bare weight. ``SplitAttention`` computes exactly what ``nn.MultiheadAttention.forward`` computes
(every option: masks, ``is_causal``, ``need_weights`` averaged or per head, ``batch_first``,
``add_bias_kv``, ``add_zero_attn``, dropout in training) with its projections as four ``nn.Linear``
children, ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``: mapping puts each on tiles like any
Linear. The two products of activations, the scores ``q k^T`` and the context ``softmax(...) v``,
stay digital (float32); each passes through a named ``ProductSite`` (``scores``, ``context``), where
activation noise can be put, and ``macs`` counts their multiply-accumulates.

``attend`` is the computation itself, with the projections passed in: hardware-aware training runs a
torch ``nn.MultiheadAttention`` through it with the chip's noisy products.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Projection = Callable[[torch.Tensor], torch.Tensor]  # (..., in) -> (..., out), bias included


class ProductSite(nn.Module):
    """The identity, as a named place after a digital activation-by-activation product (the attention
    scores before the softmax, or the context before the output projection): activation noise can be
    put after it (``NoiseInjection(model, sigma, where=["...self_attn.scores"])``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _observed(site: ProductSite) -> bool:
    """Whether a hook would see ``site``'s values (the checks ``nn.Module.__call__`` makes before running hooks)."""
    from torch.nn.modules import module as torch_module

    return bool(site._forward_hooks or site._forward_pre_hooks or torch_module._global_forward_hooks
                or torch_module._global_forward_pre_hooks)  # fmt: skip


@dataclass(frozen=True)
class AttentionShape:
    embed_dim: int
    num_heads: int
    dropout: float
    batch_first: bool
    add_zero_attn: bool


def projection_weights(mha: nn.MultiheadAttention) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight (out, in), bias (out,) or None) of the query, key, value and output projections of a torch
    ``nn.MultiheadAttention``, as views of its parameters (gradients flow back to them)."""
    e = mha.embed_dim
    if mha._qkv_same_embed_dim:
        weights = [mha.in_proj_weight[i * e : (i + 1) * e] for i in range(3)]
    else:
        weights = [mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight]
    biases = [None] * 3 if mha.in_proj_bias is None else [mha.in_proj_bias[i * e : (i + 1) * e] for i in range(3)]
    return [*zip(weights, biases), (mha.out_proj.weight, mha.out_proj.bias)]


def shape_of(mha: nn.MultiheadAttention) -> AttentionShape:
    return AttentionShape(mha.embed_dim, mha.num_heads, float(mha.dropout), mha.batch_first, mha.add_zero_attn)


def attend(shape: AttentionShape, projections: tuple[Projection, Projection, Projection, Projection],
           bias_kv: tuple[torch.Tensor, torch.Tensor] | None, training: bool, query: torch.Tensor, key: torch.Tensor,
           value: torch.Tensor, key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
           attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True, is_causal: bool = False,
           sites: tuple[Projection, Projection] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """``nn.MultiheadAttention.forward``'s result, its slow path step by step (torch 2.13's
    ``F.multi_head_attention_forward``), with ``projections`` = (query, key, value, output) products and
    ``sites`` = (after the scores, after the context), or None where nothing observes them. Where torch
    calls ``scaled_dot_product_attention`` (no weights asked for, no dropout) this does too when ``sites``
    is None; else the scores are formed explicitly (the same values to float32 rounding; a row whose keys
    are all masked gives zeros, as there)."""
    is_batched = query.dim() == 3
    key_padding_mask = F._canonical_mask(mask=key_padding_mask, mask_name="key_padding_mask", other_type=F._none_or_dtype(attn_mask),
                                         other_name="attn_mask", target_type=query.dtype)  # fmt: skip
    attn_mask = F._canonical_mask(mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="", target_type=query.dtype,
                                  check_other=False)  # fmt: skip
    if shape.batch_first and is_batched and query is key and key is value:  # self-attention: one copy for the three projections
        query = key = value = query.transpose(1, 0).contiguous()
    elif shape.batch_first and is_batched:
        query, key, value = (x.transpose(1, 0) for x in (query, key, value))
    F._mha_shape_check(query, key, value, key_padding_mask, attn_mask, shape.num_heads)
    if not is_batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != shape.embed_dim:
        raise ValueError(f"attention takes queries of {shape.embed_dim} features, got {embed_dim}")
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's {tuple(value.shape[:2])}")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint.")
    causal = is_causal and key_padding_mask is None and not need_weights  # torch then trusts the hint, not the mask
    attn_mask = None if causal else attn_mask
    heads, head_dim = shape.num_heads, embed_dim // shape.num_heads
    q_proj, k_proj, v_proj, out_proj = projections
    q, k, v = q_proj(query), k_proj(key), v_proj(value)
    src_len = key.shape[0]
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if attn_mask.shape != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, but should be {(tgt_len, src_len)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.shape != (bsz * heads, tgt_len, src_len):
            raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, but should be {(bsz * heads, tgt_len, src_len)}.")
    if bias_kv is not None:
        k = torch.cat([k, bias_kv[0].repeat(1, bsz, 1)])
        v = torch.cat([v, bias_kv[1].repeat(1, bsz, 1)])
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    q = q.reshape(tgt_len, bsz * heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * heads, head_dim).transpose(0, 1)
    v = v.reshape(v.shape[0], bsz * heads, head_dim).transpose(0, 1)
    if shape.add_zero_attn:
        zeros = torch.zeros((bsz * heads, 1, head_dim), dtype=k.dtype, device=k.device)
        k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    src_len = k.size(1)
    if key_padding_mask is not None:
        if key_padding_mask.shape != (bsz, src_len):
            raise ValueError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got {tuple(key_padding_mask.shape)}")
        padding = key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, heads, -1, -1).reshape(bsz * heads, 1, src_len)
        attn_mask = padding if attn_mask is None else attn_mask + padding
    if sites is None and not need_weights and not (training and shape.dropout > 0.0):
        out = out_proj(_fused_context(q, k, v, attn_mask, causal, bsz, heads).reshape(tgt_len * bsz, embed_dim)).view(tgt_len, bsz, -1)
        return _batched_as_given(out, is_batched, shape.batch_first), None
    sites = sites or (_unchanged, _unchanged)
    if causal:
        attn_mask = torch.zeros(tgt_len, src_len, dtype=q.dtype, device=q.device).masked_fill_(
            torch.ones(tgt_len, src_len, dtype=torch.bool, device=q.device).tril().logical_not(), float("-inf")).unsqueeze(0)  # fmt: skip
    q_scaled = q * math.sqrt(1.0 / float(head_dim))
    scores = torch.bmm(q_scaled, k.transpose(-2, -1)) if attn_mask is None else torch.baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))
    weights = torch.softmax(sites[0](scores), dim=-1)
    if not need_weights and attn_mask is not None:  # scaled_dot_product_attention's safe softmax
        weights = weights.masked_fill(torch.isneginf(attn_mask).all(dim=-1, keepdim=True), 0.0)
    if training and shape.dropout > 0.0:
        weights = F.dropout(weights, p=shape.dropout)
    context = sites[1](torch.bmm(weights, v))
    out = out_proj(context.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)).view(tgt_len, bsz, -1)
    out = _batched_as_given(out, is_batched, shape.batch_first)
    if not need_weights:
        return out, None
    weights = weights.view(bsz, heads, tgt_len, src_len)
    if average_attn_weights:
        weights = weights.mean(dim=1)
    return out, (weights if is_batched else weights.squeeze(0))


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


def _fused_context(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, causal: bool, bsz: int,
                   heads: int) -> torch.Tensor:  # fmt: skip
    """softmax(q k^T / sqrt(head_dim) + mask) v by torch's fused ``scaled_dot_product_attention``, called as
    ``F.multi_head_attention_forward`` calls it: q (bsz * heads, L, head_dim), k and v (bsz * heads, S,
    head_dim), attn_mask (1 or bsz * heads, L or 1, S) -> (L, bsz, heads, head_dim)."""
    q, k, v = (t.view(bsz, heads, t.shape[1], t.shape[2]) for t in (q, k, v))
    if attn_mask is not None:
        attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else attn_mask.view(bsz, heads, -1, attn_mask.shape[-1])
    return F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal=causal).permute(2, 0, 1, 3)


def _batched_as_given(out: torch.Tensor, is_batched: bool, batch_first: bool) -> torch.Tensor:
    """out (L, bsz, E) back in the layout of the query: (L, E) unbatched, (bsz, L, E) batch first."""
    if not is_batched:
        return out.squeeze(1)
    return out.transpose(1, 0) if batch_first else out


def product_macs(query: torch.Tensor, key: torch.Tensor, shape: AttentionShape, bias_kv: bool) -> int:
    """Multiply-accumulates of the scores and the context products of one call (both L x S x embed_dim
    per sequence, S counting an added bias or zero key)."""
    seq_dim = 1 if (shape.batch_first and query.dim() == 3) else 0
    tgt, src = query.shape[seq_dim], key.shape[seq_dim] + int(bias_kv) + int(shape.add_zero_attn)
    batch = query.shape[1 - seq_dim] if query.dim() == 3 else 1
    return 2 * batch * tgt * src * shape.embed_dim


class SplitAttention(nn.Module):
    """``nn.MultiheadAttention`` with its projections as four ``nn.Linear`` children (the same values, the
    same forward); build it with ``SplitAttention.of(mha)``. ``bias_k`` / ``bias_v`` (``add_bias_kv``) stay
    parameters: learned keys and values appended to the sequence, not products. ``macs`` counts the
    multiply-accumulates of the digital score and context products since the module was made."""

    # torch's fast paths (TransformerEncoderLayer, TransformerEncoder) read these before calling fused
    # kernels on the packed weights; None sends them down the slow path, which calls this module
    in_proj_weight = None
    in_proj_bias = None

    def __init__(self, shape: AttentionShape, kdim: int, vdim: int, projections: list[nn.Linear],
                 bias_kv: tuple[nn.Parameter, nn.Parameter] | None):  # fmt: skip
        super().__init__()
        self.shape = shape
        self.embed_dim, self.num_heads, self.batch_first = shape.embed_dim, shape.num_heads, shape.batch_first
        self.head_dim, self.dropout, self.add_zero_attn = shape.embed_dim // shape.num_heads, shape.dropout, shape.add_zero_attn
        self.kdim, self.vdim = kdim, vdim
        self._qkv_same_embed_dim = kdim == shape.embed_dim and vdim == shape.embed_dim
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = projections
        self.bias_k, self.bias_v = bias_kv if bias_kv is not None else (None, None)
        self.scores, self.context = ProductSite(), ProductSite()
        self.macs = 0

    @classmethod
    def of(cls, mha: nn.MultiheadAttention) -> SplitAttention:
        """The split form of ``mha``: its projections' weights and biases are views of ``mha``'s (no copy: a
        GPT-2-small-sized network's would take 108 MiB), ``bias_k`` / ``bias_v`` copies; on ``mha``'s device
        ("meta" stays shapes only)."""
        projections = []
        for weight, bias in projection_weights(mha):
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta", dtype=weight.dtype)
            linear.weight = nn.Parameter(weight.detach(), requires_grad=weight.requires_grad)
            if bias is not None:
                linear.bias = nn.Parameter(bias.detach(), requires_grad=bias.requires_grad)
            projections.append(linear)
        bias_kv = None
        if mha.bias_k is not None:
            bias_kv = (nn.Parameter(mha.bias_k.detach().clone()), nn.Parameter(mha.bias_v.detach().clone()))
        return cls(shape_of(mha), mha.kdim, mha.vdim, projections, bias_kv).train(mha.training)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                need_weights: bool = True, attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        bias_kv = None if self.bias_k is None else (self.bias_k, self.bias_v)
        self.macs += product_macs(query, key, self.shape, bias_kv is not None)
        sites = (self.scores, self.context) if _observed(self.scores) or _observed(self.context) else None
        return attend(self.shape, (self.q_proj, self.k_proj, self.v_proj, self.out_proj), bias_kv, self.training, query, key, value,
                      key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal, sites)  # fmt: skip

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def split_attention(network: nn.Module, names: list[str]) -> nn.Module:
    """Replace the ``nn.MultiheadAttention`` modules at ``names`` by their ``SplitAttention`` form, in place;
    returns the root (itself replaced when ``names`` holds "")."""
    for name in names:
        module = network.get_submodule(name)
        if not isinstance(module, nn.MultiheadAttention):
            raise ValueError(f"module {name!r} is a {type(module).__name__}, not an nn.MultiheadAttention")
        split = SplitAttention.of(module)
        if not name:
            return split
        parent, _, child = name.rpartition(".")
        setattr(network.get_submodule(parent) if parent else network, child, split)
    return network
