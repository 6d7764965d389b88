"""Attention and transformer layers on a chip: which ``nn.MultiheadAttention`` modules are split into four
projections (``models.attention.SplitAttention``) so that each goes on tiles as a Linear, and what
``nn.TransformerEncoder`` needs once its layers hold them.

Torch's encoder has a fast path in inference: with a key padding mask it packs the sequences into a
nested tensor and runs fused kernels on the packed weights (``torch._transformer_encoder_layer_fwd``), so
the padded positions of its output are zeros (then its final norm). Those kernels would bypass the tiles.
``prepare_encoders`` turns the fast path off on the mapped copy (every layer then runs its modules, the
analog ones included) and, where torch would have taken it, sets the padded positions as torch does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.attention import SplitAttention, split_attention

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def is_attention(module: nn.Module) -> bool:
    """A torch ``nn.MultiheadAttention`` whose forward is torch's (a subclass with its own is not split)."""
    return isinstance(module, nn.MultiheadAttention) and type(module).forward is nn.MultiheadAttention.forward


def split_selected(network: nn.Module, layers: Iterable[str] | None) -> tuple[nn.Module, list[str]]:
    """Split the attention modules that are mapped: every one (``layers`` None) or those named in ``layers``.
    Returns the network (the root itself may have been one) and the split names."""
    modules = dict(network.named_modules())
    names = [n for n, m in modules.items() if is_attention(m)] if layers is None else [n for n in layers if is_attention(modules.get(n))]
    return split_attention(network, names), names


def projection_names(attention: str) -> list[str]:
    """The module names of a split attention's four projections."""
    return [f"{attention}.{p}" if attention else p for p in PROJECTIONS]


def split_parents(layer_names: Iterable[str], network: nn.Module) -> list[str]:
    """The ``nn.MultiheadAttention`` modules of ``network`` whose projections are among ``layer_names`` (the
    analog layers of a chip file): the ones to split before the file's layers can find their places."""
    modules = dict(network.named_modules())
    parents = []
    for name in layer_names:
        parent, _, leaf = name.rpartition(".")
        if leaf in PROJECTIONS and is_attention(modules.get(parent)) and parent not in parents:
            parents.append(parent)
    return parents


def attention_modules(network: nn.Module) -> dict[str, SplitAttention]:
    """Every split attention of a mapped network, by module name: their digital products are counted."""
    return {name: m for name, m in network.named_modules() if isinstance(m, SplitAttention)}


def prepare_encoders(network: nn.Module) -> None:
    """Turn torch's nested-tensor fast path off in every ``nn.TransformerEncoder`` whose layers hold a split
    attention, and where it was on, give padded positions the values torch's fast path gives them."""
    for module in network.modules():
        if not isinstance(module, nn.TransformerEncoder) or not any(isinstance(m, SplitAttention) for m in module.modules()):
            continue
        if module.use_nested_tensor:
            module.register_forward_hook(_padded_as_nested, with_kwargs=True)
        module.use_nested_tensor = False


def _padded_as_nested(encoder: nn.TransformerEncoder, args: tuple, kwargs: dict, output: torch.Tensor) -> torch.Tensor:
    """Where torch's encoder would have packed the batch into a nested tensor (its conditions, in order),
    the padded positions are zeros before the final norm: ``norm(0)`` after it."""
    names = ("src", "mask", "src_key_padding_mask")
    given = {**dict(zip(names, args)), **{k: v for k, v in kwargs.items() if k in names}}
    src, mask, padding = given["src"], given.get("mask"), given.get("src_key_padding_mask")
    padding = F._canonical_mask(mask=padding, mask_name="src_key_padding_mask", other_type=F._none_or_dtype(mask),
                                other_name="mask", target_type=src.dtype)  # fmt: skip
    first = encoder.layers[0]
    nested = (torch.backends.mha.get_fastpath_enabled() and not first.training and src.dim() == 3 and padding is not None
              and (not getattr(encoder, "mask_check", True) or torch._nested_tensor_from_mask_left_aligned(src, padding.logical_not()))
              and not src.is_nested and mask is None and not torch.is_autocast_enabled()
              and not (torch.is_grad_enabled() and (src.requires_grad or any(p.requires_grad for p in first.parameters()))))  # fmt: skip
    if not nested:
        return output
    fill = torch.zeros(output.shape[-1], dtype=output.dtype)
    fill = fill if encoder.norm is None else encoder.norm(fill)
    return torch.where(padding.logical_not().unsqueeze(-1), output, fill)
