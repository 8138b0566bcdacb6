"""Typed YAML: a file read into dataclasses whose type hints hold the rules, every error one line.

``build_dataclass(cls, raw, prefix, path)`` checks plain data against a dataclass: an unknown key names the
known ones and the closest match, a wrong type or a value outside its rules names the dotted key and says
the rule in words. The rules sit in ``Annotated`` hints: ``Bound`` (a numeric range), ``Match`` (a text
pattern), ``Items`` (a list's length and distinctness); ``Literal`` lists the choices. ``read_yaml`` refuses
a key given twice and aliases that expand past ``YAML_NODE_BUDGET`` values. ``serlib.common.config`` holds
the parameters file's sections and reads profiles with it; ``serlib.sweep`` reads sweep files with it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import operator
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml


class ConfigError(ValueError):
    """A parameters file holds an unknown key, a wrong type or an impossible value."""


# --------------------------------------------------------------------------- value rules


@dataclass(frozen=True)
class Bound:
    """A numeric bound in an ``Annotated`` hint: ``Annotated[int, Bound(">=", 1)]``."""

    op: str  # >=, >, <=, <
    limit: float


@dataclass(frozen=True)
class Match:
    """A text rule in an ``Annotated`` hint: the whole string matches ``pattern``; ``rule`` says it in words."""

    pattern: str
    rule: str
    refused: tuple = ()  # strings the pattern allows that are still refused (".", "..")


@dataclass(frozen=True)
class Items:
    """Rules for a list in an ``Annotated`` hint: its length and whether its items are distinct."""

    min_len: int = 0
    max_len: Optional[int] = None
    distinct: bool = False


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


YAML_NODE_BUDGET = 100_000  # values a parameters file may expand to, aliases counted at every use
# (a profile holds a few hundred; nested aliases can reach billions)


def read_yaml(path: Path) -> Any:
    """The file's data; a key given twice in one mapping is an error (plain YAML keeps the last), and so is
    a file whose aliases expand past ``YAML_NODE_BUDGET`` values or refer to themselves."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read as a YAML text file ({err})") from err
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        size = _expanded_size(node, {}, set(), path)
        if size > YAML_NODE_BUDGET:
            raise ConfigError(
                f"{path}: its aliases (*name) expand to more than the {YAML_NODE_BUDGET:,} values a "
                "parameters file may hold; write the values out or use fewer aliases"
            )
        _reject_duplicate_keys(node, "", path, set())
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict, open_nodes: set, path: Path) -> int:
    """How many values ``node`` stands for with every alias written out (each node counted once per use,
    computed once per node: linear in the file, whatever the aliases expand to)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ConfigError(
            f"{path}: an alias refers to a value that contains it (line {node.start_mark.line + 1}); "
            "a parameters file holds no recursive values"
        )
    open_nodes.add(id(node))
    children = (
        [v for pair in node.value for v in pair]
        if isinstance(node, yaml.MappingNode)
        else node.value
        if isinstance(node, yaml.SequenceNode)
        else []
    )
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes, path)
        if total > YAML_NODE_BUDGET:
            break  # enough to refuse; the exact size does not matter
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def _reject_duplicate_keys(node: yaml.Node, prefix: str, path: Path, seen: set) -> None:
    if id(node) in seen:  # an alias: its mapping was checked where it was defined
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = f"{prefix}{key_node.value}", key_node.start_mark.line + 1
            if key in lines:
                raise ConfigError(f"{path}: duplicate key '{key}' on lines {lines[key]} and {line}; keep one")
            lines[key] = line
            _reject_duplicate_keys(value_node, f"{key}.", path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{prefix.rstrip('.')}[{i}].", path, seen)


def unknown_key_error(key: str, prefix: str, known: typing.Iterable[str], path: Path) -> ConfigError:
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return ConfigError(f"{path}: unknown key '{prefix}{key}'{hint}; known keys here: {', '.join(known)}")


def build_dataclass(cls: type, raw: Any, prefix: str, path: Path, also_known: tuple = ()) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: '{prefix.rstrip('.') or '<top>'}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    for key in raw:
        if key not in names:
            raise unknown_key_error(str(key), prefix, [*names, *also_known], path)
    return cls(**{name: coerce_value(hints[name], value, f"{prefix}{name}", path) for name, value in raw.items()})


def coerce_value(tp: Any, value: Any, key: str, path: Path) -> Any:
    """``value`` checked against the type hint ``tp`` (rules included), or a ConfigError naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        try:
            value = coerce_value(args[0], value, key, path)
        except ConfigError as err:
            if getattr(err, "key", None) == key:  # the value itself, not one of its items: say every rule
                raise _bad(tp, value, key, path) from None
            raise
        if not all(_obeys(rule, value) for rule in tp.__metadata__):
            raise _bad(tp, value, key, path)
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return coerce_value(option, value, key, path)
            except ConfigError as err:
                if len(options) == 1 and getattr(err, "key", None) != key:
                    raise
        raise _bad(tp, value, key, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict) and value is not None:
            raise _bad(tp, value, key, path)
        return build_dataclass(tp, value, f"{key}.", path)
    if not _is_kind(tp, value):
        raise _bad(tp, value, key, path)
    if origin is list and args:
        return [coerce_value(args[0], v, f"{key}[{i}]", path) for i, v in enumerate(value)]
    if origin is dict and args:
        return {str(k): coerce_value(args[1], v, f"{key}.{k}", path) for k, v in value.items()}
    return float(value) if tp is float else value


def _bad(tp: Any, value: Any, key: str, path: Path) -> ConfigError:
    rule = _describe(tp)
    hint = ""
    if "number" in rule and isinstance(value, str):
        try:
            float(value)
            hint = " (YAML reads a number without a dot as text: write 1.0e-3, not 1e-3)"
        except ValueError:
            pass
    err = ConfigError(f"{path}: '{key}' must be {rule}, got {value!r}{hint}")
    err.key = key  # lets an enclosing Optional or Annotated hint restate the rule in full
    return err


def _is_kind(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin) if isinstance(origin, type) else True


def _obeys(rule: Any, value: Any) -> bool:
    if isinstance(rule, Bound):
        return _COMPARE[rule.op](value, rule.limit)
    if isinstance(rule, Match):
        return re.fullmatch(rule.pattern, value) is not None and value not in rule.refused
    if isinstance(rule, Items):
        if len(value) < rule.min_len or (rule.max_len is not None and len(value) > rule.max_len):
            return False
        return not rule.distinct or len(set(value)) == len(value)
    return True


def _describe(tp: Any) -> str:
    """What a type hint allows, in words: 'an integer >= 1', 'one of auto, cpu, cuda'."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        bounds = [f"{r.op} {r.limit:g}" for r in tp.__metadata__ if isinstance(r, Bound)]
        items = [r for r in tp.__metadata__ if isinstance(r, Items)]
        matches = [r.rule for r in tp.__metadata__ if isinstance(r, Match)]
        if matches:
            return " and ".join(matches)
        if items:
            return _describe_list(items[0], typing.get_args(args[0]))
        return " ".join([_describe(args[0]), " and ".join(bounds)]).strip()
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return f"'{args[0]}'" if len(args) == 1 else f"one of {', '.join(map(str, args))}"
    names = {
        int: "an integer",
        float: "a finite number",
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    return names.get(origin or tp, "a mapping" if dataclasses.is_dataclass(tp) else str(tp))


def _describe_list(rule: Items, item_type: tuple) -> str:
    if rule.max_len is not None and rule.max_len == rule.min_len:
        size = f"a list of {rule.min_len}"
    else:
        size = "a non-empty list" if rule.min_len == 1 else "a list"
    each = f"each {_describe(item_type[0])}" if item_type else ""
    return f"{size} ({', '.join(filter(None, [each, 'distinct' if rule.distinct else '']))})"


def load_typed_yaml(path: str | Path, cls: type) -> Any:
    """A YAML file checked against the dataclass ``cls`` as a profile is (``serlib.sweep`` reads sweep files so):
    a key given twice, an unknown key (with the closest known one) or a wrong type is a ConfigError naming the
    file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file not found: {path}")
    return build_dataclass(cls, read_yaml(path), "", path)


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
