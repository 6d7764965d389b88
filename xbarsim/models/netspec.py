"""A network's structure as data, so that a chip file can rebuild it without running code from the file.

Two forms, both plain JSON:

- a zoo model: ``{"zoo": "lenet5", "kwargs": {"image_size": 8}}``, its arguments checked against the
  constructor's signature (``zoo.check_kwargs``);
- a tree of standard ``torch.nn`` layers from the allow-list ``ALLOWED``:
  ``{"layers": {"type": "Sequential", "children": [["0", {"type": "Linear", "args": {...}}], ...]}}``,
  every argument checked against its rule (an integer >= 1, a probability, ...). A layer built from
  other layers (``TransformerEncoder(encoder_layer, num_layers, norm)``, ``Transformer(custom_encoder=...)``)
  takes them as arguments that are themselves layer descriptions (``LayerRule``), built the same way.

Nothing named in a description is imported or called: a type name is looked up in ``ALLOWED`` and
a zoo name in ``zoo.ZOO``. Any other network (a user's own class) has no description (``describe``
returns None) and must be passed by the user when its chip is loaded.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import XbarsimError, shown
from . import zoo

MAX_DEPTH = 32  # nesting of Sequentials and layer arguments in a described tree
MAX_REPEATS = 1000  # layers of a TransformerEncoder / TransformerDecoder
_CHILD_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class Rule:
    """What one constructor argument may be: a check and its wording for error messages."""

    def __init__(self, check: Callable[[Any], bool], wording: str):
        self.check, self.wording = check, wording


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _ints(low: int) -> Rule:
    one = lambda v: _is_int(v) and v >= low  # noqa: E731
    return Rule(lambda v: one(v) or (isinstance(v, list) and 1 <= len(v) <= 3 and all(one(x) for x in v)),
                f"an integer >= {low} or a list of 1 to 3 of them")  # fmt: skip


def _optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.check(v), f"null or {rule.wording}")


def _one_of(*values: Any) -> Rule:
    return Rule(lambda v: any(v == x and type(v) is type(x) for x in values), "one of " + ", ".join(map(repr, values)))


BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
INT = Rule(_is_int, "an integer")
COUNT = Rule(lambda v: _is_int(v) and v >= 1, "an integer >= 1")
REAL = Rule(_is_real, "a finite number")
POSITIVE = Rule(lambda v: _is_real(v) and v > 0, "a finite number > 0")
PROBABILITY = Rule(lambda v: _is_real(v) and 0 <= v <= 1, "a number in [0, 1]")
SIZE = _ints(1)
REPEATS = Rule(lambda v: _is_int(v) and 1 <= v <= MAX_REPEATS, f"an integer from 1 to {MAX_REPEATS}")
PADDING = Rule(lambda v: _ints(0).check(v) or v in ("same", "valid"), "an integer >= 0, a list of them, 'same' or 'valid'")

_CONV = {"in_channels": COUNT, "out_channels": COUNT, "kernel_size": SIZE, "stride": SIZE, "padding": PADDING,
         "dilation": SIZE, "groups": COUNT, "bias": BOOL,
         "padding_mode": _one_of("zeros", "reflect", "replicate", "circular")}  # fmt: skip
_NORM = {"num_features": COUNT, "eps": POSITIVE, "momentum": _optional(PROBABILITY), "affine": BOOL, "track_running_stats": BOOL}
_MAX_POOL = {"kernel_size": SIZE, "stride": _optional(SIZE), "padding": _ints(0), "dilation": SIZE,
             "return_indices": _one_of(False), "ceil_mode": BOOL}  # fmt: skip
_AVG_POOL = {"kernel_size": SIZE, "stride": _optional(SIZE), "padding": _ints(0), "ceil_mode": BOOL, "count_include_pad": BOOL}
_RNN = {"input_size": COUNT, "hidden_size": COUNT, "num_layers": COUNT, "bias": BOOL, "batch_first": BOOL,
        "dropout": PROBABILITY, "bidirectional": BOOL}  # fmt: skip
_INPLACE = {"inplace": BOOL}


class LayerRule(Rule):
    """An argument that is itself a layer (a description of one of ``types``), or null if ``optional``."""

    def __init__(self, types: tuple[str, ...], optional: bool = False):
        super().__init__(lambda v: (optional and v is None) or (isinstance(v, dict) and v.get("type") in types),
                         ("null or " if optional else "") + f"a {' or '.join(types)} layer description")  # fmt: skip
        self.optional = optional


_ATTENTION = {"embed_dim": COUNT, "num_heads": COUNT, "dropout": PROBABILITY, "bias": BOOL, "add_bias_kv": BOOL,
              "add_zero_attn": BOOL, "kdim": _optional(COUNT), "vdim": _optional(COUNT), "batch_first": BOOL}  # fmt: skip
_TRANSFORMER_LAYER = {"d_model": COUNT, "nhead": COUNT, "dim_feedforward": COUNT, "dropout": PROBABILITY,
                      "activation": _one_of("relu", "gelu"), "layer_norm_eps": POSITIVE, "batch_first": BOOL,
                      "norm_first": BOOL, "bias": BOOL}  # fmt: skip
_NORM_ARG = {"norm": LayerRule(("LayerNorm",), optional=True)}

# type name -> (class, rules of the constructor arguments a description may give)
ALLOWED: dict[str, tuple[type[nn.Module], dict[str, Rule]]] = {
    "Sequential": (nn.Sequential, {}),
    "Identity": (nn.Identity, {}),
    "Linear": (nn.Linear, {"in_features": COUNT, "out_features": COUNT, "bias": BOOL}),
    "Conv1d": (nn.Conv1d, _CONV),
    "Conv2d": (nn.Conv2d, _CONV),
    "BatchNorm1d": (nn.BatchNorm1d, _NORM),
    "BatchNorm2d": (nn.BatchNorm2d, _NORM),
    "LayerNorm": (nn.LayerNorm, {"normalized_shape": SIZE, "eps": POSITIVE, "elementwise_affine": BOOL, "bias": BOOL}),
    "ReLU": (nn.ReLU, _INPLACE),
    "ReLU6": (nn.ReLU6, _INPLACE),
    "LeakyReLU": (nn.LeakyReLU, {"negative_slope": REAL, **_INPLACE}),
    "ELU": (nn.ELU, {"alpha": REAL, **_INPLACE}),
    "GELU": (nn.GELU, {"approximate": _one_of("none", "tanh")}),
    "SiLU": (nn.SiLU, _INPLACE),
    "Hardswish": (nn.Hardswish, _INPLACE),
    "Sigmoid": (nn.Sigmoid, {}),
    "Tanh": (nn.Tanh, {}),
    "Softmax": (nn.Softmax, {"dim": _optional(INT)}),
    "LogSoftmax": (nn.LogSoftmax, {"dim": _optional(INT)}),
    "MaxPool1d": (nn.MaxPool1d, _MAX_POOL),
    "MaxPool2d": (nn.MaxPool2d, _MAX_POOL),
    "AvgPool1d": (nn.AvgPool1d, _AVG_POOL),
    "AvgPool2d": (nn.AvgPool2d, {**_AVG_POOL, "divisor_override": _optional(COUNT)}),
    "AdaptiveAvgPool1d": (nn.AdaptiveAvgPool1d, {"output_size": SIZE}),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, {"output_size": SIZE}),
    "AdaptiveMaxPool1d": (nn.AdaptiveMaxPool1d, {"output_size": SIZE}),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, {"output_size": SIZE}),
    "Flatten": (nn.Flatten, {"start_dim": INT, "end_dim": INT}),
    "Dropout": (nn.Dropout, {"p": PROBABILITY, **_INPLACE}),
    "Dropout1d": (nn.Dropout1d, {"p": PROBABILITY, **_INPLACE}),
    "Dropout2d": (nn.Dropout2d, {"p": PROBABILITY, **_INPLACE}),
    "LSTM": (nn.LSTM, {**_RNN, "proj_size": _one_of(0)}),
    "GRU": (nn.GRU, _RNN),
    "RNN": (nn.RNN, {**_RNN, "nonlinearity": _one_of("tanh", "relu")}),
    "Embedding": (nn.Embedding, {"num_embeddings": COUNT, "embedding_dim": COUNT, "padding_idx": _optional(INT),
                                 "max_norm": _one_of(None), "norm_type": POSITIVE, "scale_grad_by_freq": BOOL, "sparse": BOOL}),
    "MultiheadAttention": (nn.MultiheadAttention, _ATTENTION),
    "TransformerEncoderLayer": (nn.TransformerEncoderLayer, _TRANSFORMER_LAYER),
    "TransformerDecoderLayer": (nn.TransformerDecoderLayer, _TRANSFORMER_LAYER),
    "TransformerEncoder": (nn.TransformerEncoder, {"encoder_layer": LayerRule(("TransformerEncoderLayer",)), "num_layers": REPEATS,
                                                   **_NORM_ARG, "enable_nested_tensor": BOOL, "mask_check": BOOL}),
    "TransformerDecoder": (nn.TransformerDecoder, {"decoder_layer": LayerRule(("TransformerDecoderLayer",)), "num_layers": REPEATS,
                                                   **_NORM_ARG}),
    "Transformer": (nn.Transformer, {"d_model": COUNT, "nhead": COUNT, "batch_first": BOOL,
                                     "custom_encoder": LayerRule(("TransformerEncoder",)),
                                     "custom_decoder": LayerRule(("TransformerDecoder",))}),
}
_NAME_OF = {cls: name for name, (cls, _) in ALLOWED.items()}


def _activation(layer: nn.Module) -> str | None:
    return {id(F.relu): "relu", id(F.gelu): "gelu"}.get(id(layer.activation))


def _layer_args() -> dict[str, Callable[[nn.Module], Any]]:
    return {"d_model": lambda m: m.self_attn.embed_dim, "nhead": lambda m: m.self_attn.num_heads,
            "dim_feedforward": lambda m: m.linear1.out_features, "dropout": lambda m: m.dropout.p, "activation": _activation,
            "layer_norm_eps": lambda m: m.norm1.eps, "batch_first": lambda m: m.self_attn.batch_first,
            "bias": lambda m: m.linear1.bias is not None}  # fmt: skip


# constructor arguments that a layer does not keep as attributes of the same name: how to read them. A layer
# argument (``LayerRule``) reads the sub-layer, which is described in its turn
_READERS: dict[str, dict[str, Callable[[nn.Module], Any]]] = {
    "MultiheadAttention": {"bias": lambda m: m.in_proj_bias is not None, "add_bias_kv": lambda m: m.bias_k is not None},
    "TransformerEncoderLayer": _layer_args(),
    "TransformerDecoderLayer": _layer_args(),
    "TransformerEncoder": {"encoder_layer": lambda m: m.layers[0], "num_layers": lambda m: len(m.layers)},
    "TransformerDecoder": {"decoder_layer": lambda m: m.layers[0], "num_layers": lambda m: len(m.layers)},
    "Transformer": {"custom_encoder": lambda m: m.encoder, "custom_decoder": lambda m: m.decoder},
}
# layers that build sub-layers of their own: a description of one must rebuild it exactly (``_same_structure``)
_COMPOSITE = ("MultiheadAttention", *(name for name in _READERS if name.startswith("Transformer")))


# ---------------------------------------------------------------- describing
def describe(model: nn.Module) -> dict[str, Any] | None:
    """The description of ``model`` as data, or None when it is neither a zoo model nor a tree of
    allow-listed layers (then whoever loads its chip must pass the model)."""
    name = getattr(type(model), "zoo_name", None)
    if name is not None and zoo.ZOO.get(name) is type(model) and hasattr(model, "init_kwargs"):
        kwargs = {key: list(v) if isinstance(v, tuple) else v for key, v in model.init_kwargs.items()}
        try:
            zoo.check_kwargs(name, kwargs)
        except XbarsimError:
            return None
        return {"zoo": name, "kwargs": kwargs}
    tree = _describe_layer(model)
    return None if tree is None else {"layers": tree}


def _describe_layer(module: nn.Module) -> dict[str, Any] | None:
    type_name = _NAME_OF.get(type(module))
    if type_name is None:
        return None
    if type(module) is nn.Sequential:
        children = []
        for name, child in module.named_children():
            node = _describe_layer(child)
            if node is None or not _CHILD_NAME.match(name):
                return None
            children.append([name, node])
        return {"type": type_name, "children": children}
    args = {}
    readers = _READERS.get(type_name, {})
    for arg, rule in ALLOWED[type_name][1].items():
        value = readers[arg](module) if arg in readers else getattr(module, arg)
        if arg == "bias" and not isinstance(value, bool):  # Linear, Conv, LayerNorm hold the parameter
            value = value is not None
        if isinstance(rule, LayerRule) and value is not None:
            value = _describe_layer(value)
            if value is None:
                return None
        value = list(value) if isinstance(value, tuple) else value
        if not rule.check(value):
            return None
        args[arg] = value
    node = {"type": type_name, "args": args}
    return node if type_name not in _COMPOSITE or _rebuilds(module, node) else None


def _rebuilds(module: nn.Module, node: dict[str, Any]) -> bool:
    """Whether ``node`` builds ``module``'s exact structure (a user may have changed a layer's parts after
    building it: a different dropout in one encoder layer, a replaced norm)."""
    try:
        with on_meta():
            rebuilt = _build_layer(node, "", 0)
    except XbarsimError:
        return False
    return _same_structure(module, rebuilt)


def _same_structure(a: nn.Module, b: nn.Module) -> bool:
    """The same modules (names and types), parameters and buffers (names and shapes), and plain settings
    (numbers, text, flags and functions such as an activation) throughout."""
    ours, theirs = list(a.named_modules()), list(b.named_modules())
    if [name for name, _ in ours] != [name for name, _ in theirs]:
        return False
    return all(type(x) is type(y) and _tensor_shapes(x) == _tensor_shapes(y) and _settings(x) == _settings(y)
               for (_, x), (_, y) in zip(ours, theirs))  # fmt: skip


def _tensor_shapes(module: nn.Module) -> dict[str, tuple[int, ...] | None]:
    tensors = {**module._parameters, **module._buffers}
    return {name: None if t is None else tuple(t.shape) for name, t in tensors.items()}


def _settings(module: nn.Module) -> dict[str, Any]:
    plain = (bool, int, float, str, tuple, type(None))
    return {key: (value if isinstance(value, plain) else id(value)) for key, value in vars(module).items()
            if key != "training" and not key.startswith("_") and (isinstance(value, plain) or callable(value))}  # fmt: skip


# ---------------------------------------------------------------- building
class _FillsSkipped(TorchFunctionMode):
    """Inside a meta-device build: random and constant fills return their tensor untouched (a meta tensor has no
    values to fill). On the meta device torch runs them as Python references whose first call imports
    torch._dynamo (~1.5 s; any nn.Embedding or MultiheadAttention initialises with them)."""

    SKIPPED = frozenset({
        torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.random_, torch.Tensor.bernoulli_, torch.Tensor.exponential_,
        torch.Tensor.log_normal_, torch.Tensor.cauchy_, torch.Tensor.geometric_,
        nn.init.uniform_, nn.init.normal_, nn.init.trunc_normal_, nn.init.constant_, nn.init.ones_, nn.init.zeros_, nn.init.eye_,
        nn.init.dirac_, nn.init.xavier_uniform_, nn.init.xavier_normal_, nn.init.kaiming_uniform_, nn.init.kaiming_normal_,
        nn.init.orthogonal_, nn.init.sparse_,
    })  # fmt: skip

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.SKIPPED:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


@contextmanager
def on_meta() -> Iterator[None]:
    """Build on the meta device: shapes only, no memory, fills skipped (``_FillsSkipped``)."""
    with torch.device("meta"), _FillsSkipped():
        yield


def build(description: Any, device: str = "cpu") -> nn.Module:
    """The network a description (from ``describe``) stands for, on ``device`` ("meta": shapes only,
    no memory). It is built on the meta device first and its parameter memory checked
    (``check_memory``) before any memory is allocated. Raises XbarsimError naming the part of the
    description that is wrong, or the memory it would need."""
    meta = _build(description, "meta")
    check_memory(meta, "the network")
    return meta if device == "meta" else _build(description, device)


def _build(description: Any, device: str) -> nn.Module:
    if not isinstance(description, dict) or len(description) != (2 if "zoo" in description else 1):
        raise XbarsimError("the network description must be {'zoo': name, 'kwargs': {...}} or {'layers': tree}")
    with on_meta() if device == "meta" else torch.device(device):
        if "zoo" in description:
            name = description["zoo"]
            kwargs = zoo.check_kwargs(name, description.get("kwargs"))
            return constructed(lambda: zoo.ZOO[name](**kwargs), f"zoo model {name!r}")
        if "layers" not in description:
            raise XbarsimError("the network description must be {'zoo': name, 'kwargs': {...}} or {'layers': tree}")
        return _build_layer(description["layers"], "", 0)


def available_memory() -> int:
    """Bytes of memory this machine can give now without swapping (psutil's estimate)."""
    return psutil.virtual_memory().available


def check_memory(network: nn.Module, what: str) -> None:
    """Refuse ``network`` (built on the meta device) when its parameters and buffers would need more
    memory than is available: a chip of it needs several times more still."""
    tensors = dict(network.named_parameters())
    tensors.update(network.named_buffers())
    sizes = {name: t.numel() * t.element_size() for name, t in tensors.items()}
    need, available = sum(sizes.values()), available_memory()
    if need > available:
        largest = max(sizes, key=sizes.__getitem__)
        raise XbarsimError(f"{what} would need {_gib(need)} for its parameters (the largest, {largest}: "
                           f"{_gib(sizes[largest])}), more than the {_gib(available)} of memory available")  # fmt: skip


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**28 else f"{n / 2**20:,.1f} MiB"


def _build_layer(node: Any, path: str, depth: int) -> nn.Module:
    """The layer at module path ``path`` ("" for the root) from its node of the description."""
    where = f"layer {path!r}" if path else "the root layer"
    if depth > MAX_DEPTH:
        raise XbarsimError(f"{where}: layers nested deeper than {MAX_DEPTH}")
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise XbarsimError(f"{where}: a layer must be {{'type': name, 'args': {{...}}}}")
    type_name = node["type"]
    if type_name not in ALLOWED:
        raise XbarsimError(f"{where}: type {type_name[:60]!r} is not on the allow-list of standard torch.nn layers "
                           f"(xbarsim.models.netspec.ALLOWED); pass the model to load it")  # fmt: skip
    if type_name == "Sequential":
        return nn.Sequential(OrderedDict(_children(node, path, depth)))
    cls, rules = ALLOWED[type_name]
    args = node.get("args", {})
    if set(node) - {"type", "args"} or not isinstance(args, dict):
        raise XbarsimError(f"{where}: a {type_name} takes only 'args' (a mapping of its constructor arguments)")
    for arg, value in args.items():
        if arg not in rules:
            raise XbarsimError(f"{where}: {type_name} has no argument {str(arg)[:60]!r} here (allowed: {', '.join(rules) or 'none'})")
        if not rules[arg].check(value):
            raise XbarsimError(f"{where}: {type_name} argument {arg} must be {rules[arg].wording} (got {shown(value)})")
    built = {k: _build_layer(v, f"{path}.{k}" if path else k, depth + 1) if isinstance(rules[k], LayerRule) and v is not None
             else tuple(v) if isinstance(v, list) else v for k, v in args.items()}  # fmt: skip
    return constructed(lambda: cls(**built), f"{where}: {type_name}")


def _children(node: dict, path: str, depth: int) -> list[tuple[str, nn.Module]]:
    where = f"layer {path!r}" if path else "the root layer"
    children = node.get("children")
    if set(node) - {"type", "children"} or not isinstance(children, list):
        raise XbarsimError(f"{where}: a Sequential takes only 'children', a list of [name, layer] pairs")
    built: dict[str, nn.Module] = {}
    for pair in children:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and _CHILD_NAME.match(pair[0])):
            raise XbarsimError(f"{where}: each child must be [name, layer], the name made of letters, digits and _")
        if pair[0] in built:
            raise XbarsimError(f"{where}: two children named {pair[0]!r}")
        built[pair[0]] = _build_layer(pair[1], f"{path}.{pair[0]}" if path else pair[0], depth + 1)
    return list(built.items())


def constructed(make: Callable[[], nn.Module], what: str) -> nn.Module:
    """``make()``, with the constructor's complaint about impossible values as an XbarsimError (and without
    TransformerEncoder's warning that its layers do not qualify for its nested-tensor fast path)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
            return make()
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError, IndexError, AssertionError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise XbarsimError(f"{what} cannot be built with these arguments: {message}") from None
