"""Reading config files safely, and turning validation errors into one line per problem for people.

YAML is read with a loader that refuses anchors and aliases (so an "anchor bomb" fails at its first
anchor instead of expanding to gigabytes), duplicate keys and every tag beyond plain data, and that
reads ``1e-3`` as a number as YAML 1.2 does. A validation error becomes lines such as
``chip.yaml: tile.rows: must be an integer >= 1 and <= 65536 (got true)``: no pydantic URLs, and
inputs shown only in short.
"""

from __future__ import annotations

import dataclasses
import json
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from .errors import XbarsimError
from .limits import MAX_NESTING
from .paths import regular_file

MAX_CONFIG_BYTES = 16 * 2**20
"""Larger files are refused before parsing: a config or spec is a few kilobytes."""
MAX_ITEMS = 1_000_000
"""Values in the lists and mappings of one config, spec, JSON argument or checkpoint (tensors aside)."""


class ConfigError(XbarsimError):
    """A config or spec file (or dict) that cannot be used: one line per problem, naming the field."""


# ---------------------------------------------------------------- YAML without anchors
class _PlainDataLoader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases, duplicate keys or nesting deeper than ``MAX_NESTING`` (PyYAML
    composes nodes recursively); ``1e-3`` is a float (YAML 1.2)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed; write the values out", event.start_mark
            )
        if self.depth >= MAX_NESTING:
            raise yaml.composer.ComposerError(None, None, _too_deep(), event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):
                continue  # SafeConstructor refuses it, with its own message
            if key in seen:
                problem = f"duplicate key {short_repr(key)}"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_PlainDataLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_mapping_file(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping at the top of a YAML (.yaml/.yml) or JSON file; every error names the file.

    ``what`` names the kind of file in messages (``"chip config"``, ``"sweep spec"``). A missing file raises
    ``FileNotFoundError``; anything else wrong raises ``ConfigError``.
    """
    path = regular_file(path, what)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"{what} {path}: expected a .yaml, .yml or .json file")
    text = _read_text(path, what)
    try:
        if suffix == ".json":
            data = json.loads(text, parse_constant=_no_constant)
        else:
            data = yaml.load(text, Loader=_PlainDataLoader)  # a SafeLoader, stricter still
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} {path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # json's scanner recurses per level
        raise ConfigError(f"{what} {path}: {_too_deep()}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path}: not valid YAML: {_yaml_problem(exc)}") from None
    except ValueError as exc:  # _no_constant
        raise ConfigError(f"{what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: expected a mapping (key: value lines) at the top level, found {_kind(data)}")
    check_plain_data(data, f"{what} {path}")
    return data


def parse_json(text: str, what: str = "") -> Any:
    """The value of a JSON text (no NaN or infinities, nesting checked); ConfigError names ``what``."""
    head = f"{what}: " if what else ""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{head}not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise ConfigError(f"{head}{_too_deep()}") from None
    except ValueError as exc:  # _no_constant
        raise ConfigError(f"{head}{exc}") from None
    check_plain_data(value, what)
    return value


def check_plain_data(value: Any, what: str) -> None:
    """Refuse ``value`` (lists, tuples, sets and mappings of anything) when it nests deeper than
    ``MAX_NESTING`` or holds more than ``MAX_ITEMS`` items counted along every path (shared or circular
    parts counted again, so a pickled "billion laughs" is refused too). Walked without recursion, so that
    what later prints or checks it recursively cannot hit Python's recursion limit or run for ages."""
    stack, items = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = list(item)
        else:
            continue
        head = f"{what}: " if what else ""
        if depth > MAX_NESTING:
            raise ConfigError(f"{head}{_too_deep()}")
        items += len(children)
        if items > MAX_ITEMS:
            raise ConfigError(f"{head}more than {MAX_ITEMS:,} values in lists and mappings (tensors aside)")
        stack.extend((child, depth + 1) for child in children)


def _too_deep() -> str:
    return f"nested more than {MAX_NESTING} levels deep (lists and mappings inside each other)"


def _read_text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{what} {path}: {size:,} bytes is too large for a config (limit {MAX_CONFIG_BYTES:,})")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path}: not a text file (byte {exc.start} is not UTF-8)") from None
    if "\x00" in text:
        raise ConfigError(f"{what} {path}: not a text file (it holds NUL bytes)")
    return text


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a config may hold")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem or exc.context}{where}"
    return _one_line(str(exc))


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({short_repr(value)})"


# ---------------------------------------------------------------- dataclasses checked like configs
def strict_model_of(cls: type, replace: dict[str, tuple[Any, Any]] | None = None) -> type[BaseModel]:
    """A strict pydantic model with the fields of dataclass ``cls``: unknown keys refused, no type
    coercion, no NaN/Inf; a field whose type is a dataclass becomes a nested model of the same kind.
    ``replace`` maps a field name to its (annotation, default) in the model (e.g. a name instead of
    an object). ``model.model_dump()`` gives the keyword arguments for ``cls`` (nested: dicts)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        fields[field.name] = (replace or {}).get(field.name) or (_nested(hints[field.name]), default)
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    return create_model(cls.__name__, __config__=config, **fields)


def _nested(annotation: Any) -> Any:
    """A dataclass annotation (alone or in ``X | None``) as its strict model."""
    if dataclasses.is_dataclass(annotation):
        return strict_model_of(annotation)
    members = typing.get_args(annotation)
    if members and any(dataclasses.is_dataclass(m) for m in members):
        return typing.Union[tuple(_nested(m) for m in members)]  # noqa: UP007 - built from a tuple
    return annotation


# ---------------------------------------------------------------- validation errors for people
def validate(model: type[BaseModel], data: Any, source: str | None = None) -> Any:
    """``model.model_validate(data)``; a failure raises ``ConfigError`` naming ``source`` and each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, source)) from None


def format_validation_error(exc: ValidationError, model: type[BaseModel] | None = None,
                            source: str | None = None) -> str:  # fmt: skip
    """One line per problem, ``SOURCE: field.path: what is wrong (got VALUE)``.

    Errors of the alternatives of one union at one place become one line ("must be a string or a mapping");
    when one alternative fits the input's shape and fails deeper inside, only that deeper error is kept.
    """
    errors = [(error, *_field_path(model, error["loc"])) for error in exc.errors(include_url=False)]
    deeper = {site for _, path, _, _, sites in errors for site in sites if path != site}
    problems: dict[str, list[str]] = {}
    shown: dict[str, str] = {}
    for error, path, field, parent, _ in errors:
        if path in deeper:
            continue
        problems.setdefault(path, []).append(_problem(error, field, parent))
        if error["type"] not in ("missing", "extra_forbidden", "value_error", "assertion_error", "union_tag_invalid"):
            shown.setdefault(path, f" (got {short_repr(error['input'])})")
    lines = []
    for path, messages in problems.items():
        text = " or ".join(dict.fromkeys(messages))
        text = text.replace(" or must be ", " or ")
        head = f"{source}: " if source else ""
        lines.append(_one_line(f"{head}{path + ': ' if path else ''}{text}{shown.get(path, '')}"))
    return "\n".join(lines)


def _field_path(model: type[BaseModel] | None,
                loc: tuple[Any, ...]) -> tuple[str, FieldInfo | None, type | None, list[str]]:  # fmt: skip
    """The dotted path a person wrote, the field it names, the model holding it, and the paths of the unions
    on the way.

    Pydantic's locations also hold the tag of a tagged union (``write_noise.absolute.sigma``) and labels of
    union alternatives (``chip.str``); those are not in the user's file and are dropped.
    """
    parts: list[str] = []
    sites: list[str] = []
    expected: Any = model
    field: FieldInfo | None = None
    parent: type | None = None
    for part in loc:
        optional = _union_members(expected)
        if len(optional) == 1:  # ``X | None``: pydantic's location holds no label for it
            expected = optional[0]
        if _is_model(expected):
            parent, field = expected, expected.model_fields.get(part) if isinstance(part, str) else None
            parts.append(str(part))
            expected = field.annotation if field is not None else None
            continue
        members = _union_members(expected)
        if members:
            member = _member_for(members, part)
            if member is not None:
                expected = member
                sites.append(".".join(parts))
                continue
        origin = typing.get_origin(expected)
        if origin is dict:
            expected = typing.get_args(expected)[1] if typing.get_args(expected) else None
        elif origin is list:
            expected = typing.get_args(expected)[0] if typing.get_args(expected) else None
        else:
            expected = None
        field = None
        parts.append(_loc_part(part))
    return ".".join(parts), field, parent, sites


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return ()


def _member_for(members: tuple[Any, ...], part: Any) -> Any:
    """The union member a location part selects: a tag (``absolute``) or a label (``str``, ``dict[str,any]``)."""
    for member in members:
        if _is_model(member):
            kind = member.model_fields.get("kind")
            if kind is not None and kind.default == part:
                return member
        if isinstance(part, str):
            name = getattr(typing.get_origin(member) or member, "__name__", "")
            if name and part.split("[")[0] == name.lower():
                return member
    return None


def _loc_part(part: Any) -> str:
    text = str(part)
    return text if text.isprintable() and len(text) <= 60 else short_repr(part)


def _problem(error: dict[str, Any], field: FieldInfo | None, parent: type | None) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        cause = ctx.get("error")
        return str(cause) if cause is not None else error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = f" (allowed: {', '.join(parent.model_fields)})" if _is_model(parent) else ""
        return f"unknown field{allowed}"
    if kind == "missing":
        return "missing (required)"
    if kind == "union_tag_invalid":
        key = str(ctx.get("discriminator", "kind")).strip("'")
        return f"unknown {key} {short_repr(ctx.get('tag'))}; choose from {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"needs a {ctx.get('discriminator', 'kind')!r} entry"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping (key: value)"
    expected = _expected(field) if field is not None else None
    if expected is not None:
        return f"must be {expected}"
    text = _one_line(error["msg"]).replace("Input should be", "must be").replace("Input", "the value")
    return text.replace("a valid integer", "an integer").replace("a valid ", "a ")


def _expected(field: FieldInfo) -> str | None:
    """What a scalar field accepts, e.g. 'an integer >= 2 and <= 24 or null'."""
    annotation = field.annotation
    members = _union_members(annotation) or (annotation,)
    optional = type(None) in typing.get_args(annotation)
    if len(members) != 1:
        return None
    member = members[0]
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    if typing.get_origin(member) is Literal:
        text = "one of " + ", ".join(repr(v) for v in typing.get_args(member))
    elif member in names:
        text = names[member]
    else:
        return None
    bounds = [f"{symbol} {getattr(m, attr)}" for m in field.metadata
              for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if hasattr(m, attr)]  # fmt: skip
    return text + (" " + " and ".join(bounds) if bounds else "") + (" or null" if optional else "")


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 40, 40, 4, 4, 2


def short_repr(value: Any) -> str:
    """A short rendering of an input, bounded in time and length whatever its size."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return _one_line(_SHORT.repr(value))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
