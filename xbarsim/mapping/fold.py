"""Folding a BatchNorm that directly follows a conv or linear layer into that layer."""

from __future__ import annotations

import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

_FOLDABLE = {
    nn.Conv1d: nn.BatchNorm1d,
    nn.Conv2d: nn.BatchNorm2d,
    nn.Linear: nn.BatchNorm1d,
}


def _pairs_by_graph(model: nn.Module) -> list[tuple[str, str]] | None:
    """(layer, batchnorm) names where the BN's only input is the layer's output, which nothing
    else uses; found by torch.fx tracing. None when the model cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means: use the fallback
        return None
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.modules.batchnorm._BatchNorm):
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, torch.fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        if calls[prev.target] == 1 and calls[node.target] == 1 and _foldable(modules[prev.target], modules[node.target]):
            pairs.append((prev.target, node.target))
    return pairs


def _pairs_in_sequentials(model: nn.Module) -> list[tuple[str, str]]:
    """Fallback: consecutive (layer, BN) children of every nn.Sequential."""
    pairs = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (a, first), (b, second) in zip(children, children[1:]):
                if _foldable(first, second):
                    prefix = f"{name}." if name else ""
                    pairs.append((prefix + a, prefix + b))
    return pairs


def _foldable(layer: nn.Module, bn: nn.Module) -> bool:
    return type(layer) in _FOLDABLE and type(bn) is _FOLDABLE[type(layer)] and bn.track_running_stats


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """Put ``module`` at dotted ``name`` inside ``model``; returns the root (``module`` itself
    when ``name`` is empty, i.e. the model is the layer)."""
    if not name:
        return module
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)
    return model


def fold_batchnorm(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every foldable BatchNorm into the layer before it, in place (the model must be in
    eval mode); the BN becomes ``nn.Identity``. Returns the folded (layer, BN) name pairs."""
    pairs = _pairs_by_graph(model)
    if pairs is None:
        pairs = _pairs_in_sequentials(model)
    for layer_name, bn_name in pairs:
        _fuse(model.get_submodule(layer_name), model.get_submodule(bn_name), layer_name)
        set_submodule(model, bn_name, nn.Identity())
    return pairs


def _fuse(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm, name: str) -> None:
    """torch's fuse_conv_bn_eval / fuse_linear_bn_eval (the same values) on ``layer`` itself: they
    deep-copy the layer first (ResNet-18: 0.3-0.5 s of copies that map_model, which folds its own copy, drops)."""
    if layer.training or bn.training:
        raise ValueError(f"layer {name!r}: BatchNorm folding needs the model in eval mode")
    if isinstance(layer, nn.Linear):
        if layer.out_features != bn.num_features and bn.num_features != 1:
            raise ValueError(f"layer {name!r}: a BatchNorm of {bn.num_features} features cannot fold into {layer.out_features} outputs")
        fused = fuse_linear_bn_weights(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    else:
        fused = fuse_conv_bn_weights(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias, False)
    layer.weight, layer.bias = fused


def replace_folded(model: nn.Module, pairs: list[tuple[str, str]]) -> None:
    """Give a fresh model the structure of a folded one: the folded BNs become ``nn.Identity``
    and their layers get a bias (the folded values come from the saved state)."""
    for layer_name, bn_name in pairs:
        layer = model.get_submodule(layer_name)
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros(layer.weight.shape[0]))
        set_submodule(model, bn_name, nn.Identity())
