"""The search space of the outer loop: configuration keys and the ranges the outer optimizer may choose them from.

Written in the ``[meta.space]`` table of a meta configuration, one entry per key of the inner
:class:`~nestgrad.config.ExperimentConfig` in dotted form::

    [meta.space]
    "optimizer.eta" = {log_uniform = [1e-6, 1e-3]}
    "network.weight_scale" = {log_uniform = [0.3, 3.0], start = 1.0}
    "network.neuron_params.tau_m" = {uniform = [5.0, 40.0]}
    "task.batch_size" = {int_uniform = [1, 4]}
    "network.neuron_params.surrogate_gradient_function" = {choice = ["piecewise_linear", "exponential"]}

The outer optimizer works in the unit cube: every key is one coordinate ``u`` in [0, 1], mapped to its value linearly
(``uniform``), linearly in the logarithm (``log_uniform``), to the nearest integer (``int_uniform``) or to one of a
list (``choice``: [0, 1] is cut into equal bins). ``start`` is the value the search starts from (default: the base
configuration's value if it has one, else the middle of the range).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any

from nestgrad.config import ExperimentConfig
from nestgrad.errors import ConfigError

KINDS = ("uniform", "log_uniform", "int_uniform", "choice")
SECTIONS = {f.name: f.type for f in dataclasses.fields(ExperimentConfig)}


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Dimension:
    """One key of the search space. ``low``/``high`` bound the value (uniform, log_uniform, int_uniform);
    ``choices`` lists the values of a ``choice``."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()
    start: Any = None

    def value(self, u: float) -> Any:
        """The configuration value at unit coordinate ``u`` (clipped to [0, 1])."""
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "uniform":
            return self.low + u * (self.high - self.low)
        if self.kind == "log_uniform":
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        if self.kind == "int_uniform":
            n = int(self.high - self.low) + 1
            return int(self.low) + min(int(u * n), n - 1)
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def coordinate(self, value: Any) -> float:
        """The unit coordinate of ``value`` (the middle of its bin for int_uniform and choice)."""
        if self.kind == "uniform":
            return (value - self.low) / (self.high - self.low)
        if self.kind == "log_uniform":
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        if self.kind == "int_uniform":
            return (int(value) - self.low + 0.5) / (self.high - self.low + 1)
        return (self.choices.index(value) + 0.5) / len(self.choices)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "int_uniform" and not (isinstance(value, int) and not isinstance(value, bool)):
            return False
        return _number(value) and self.low <= value <= self.high


def get_key(config: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key in a configuration dictionary."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def set_keys(config: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the configuration dictionary ``config`` with the dotted ``values`` set (tables created as needed)."""
    out = copy.deepcopy(config)
    for key, value in values.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value.value if isinstance(value, enum.Enum) else value
    return out


def _field_of(key: str, where: str) -> dataclasses.Field[Any]:
    """The dataclass field a dotted key names (its first two parts), or a ConfigError naming the key."""
    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS or not all(parts):
        raise ConfigError(
            f"{where}: key {key!r} names no configuration value; write 'section.key' with a section of "
            f"{', '.join(SECTIONS)} (e.g. 'optimizer.eta', 'network.neuron_params.tau_m')"
        )
    klass = {f.name: f for f in dataclasses.fields(ExperimentConfig)}[parts[0]].default_factory  # type: ignore[misc]
    fields = {f.name: f for f in dataclasses.fields(klass)}
    if parts[1] not in fields:
        raise ConfigError(
            f"{where}: key {key!r}: [{parts[0]}] has no key {parts[1]!r}; known keys: {', '.join(sorted(fields))}"
        )
    return fields[parts[1]]


@dataclass(frozen=True)
class SearchSpace:
    """The keys the outer loop searches over, in the order of the table."""

    dimensions: tuple[Dimension, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def values(self, x: Any) -> dict[str, Any]:
        """Configuration values (key -> value) of a point ``x`` of the unit cube (coordinates beyond the space's
        dimension are ignored: the outer loop pads a one-key space, which CMA-ES cannot search, with one)."""
        if len(x) < len(self.dimensions):
            raise ValueError(f"a point of {len(x)} coordinates for a space of {len(self.dimensions)} keys")
        return {d.key: d.value(u) for d, u in zip(self.dimensions, x, strict=False)}

    def start(self) -> list[float]:
        """The unit coordinates the search starts from."""
        return [d.coordinate(d.start) for d in self.dimensions]

    @classmethod
    def from_table(
        cls, table: Any, base: dict[str, Any], reserved: dict[str, str], where: str = "meta.space"
    ) -> SearchSpace:
        """Parse and check ``[meta.space]`` against the base configuration ``base`` (a dictionary of an
        ExperimentConfig). ``reserved`` maps keys the outer loop sets itself to the reason. Every value a key may
        take (both ends of a range, every choice) must make a valid ExperimentConfig; errors name the key."""
        if not isinstance(table, dict) or not table:
            raise ConfigError(f'{where}: a table with at least one key is required (e.g. "optimizer.eta" = ...)')
        dims = []
        for key, spec in table.items():
            name = f'{where}."{key}"'
            if key in reserved:
                raise ConfigError(f"{name}: the outer loop sets this key itself ({reserved[key]})")
            field = _field_of(key, where)
            nested = key.count(".") > 1
            found, current = get_key(base, key)
            if not nested and field.type in ("dict[str, Any]",):
                raise ConfigError(f"{name}: a table; name one of its entries (e.g. '{key}.tau_m')")
            if nested and field.type not in ("dict[str, Any]",):
                raise ConfigError(f"{name}: {'.'.join(key.split('.')[:2])} is not a table")
            dims.append(cls._dimension(name, key, spec, found, current))
        space = cls(tuple(dims))
        for d in space.dimensions:  # both ends and every choice must be a valid configuration
            probes = list(d.choices) if d.kind == "choice" else [d.value(0.0), d.value(1.0), d.start]
            for value in probes:
                try:
                    ExperimentConfig.from_dict(set_keys(base, {d.key: value}), source="configuration")
                except ConfigError as err:
                    raise ConfigError(f'{where}."{d.key}" = {value!r} makes an invalid configuration: {err}') from None
        return space

    @staticmethod
    def _dimension(name: str, key: str, spec: Any, found: bool, current: Any) -> Dimension:
        if not isinstance(spec, dict):
            raise ConfigError(f"{name} = {spec!r}: a table such as {{log_uniform = [1e-6, 1e-3]}} is required")
        kinds = [k for k in spec if k in KINDS]
        unknown = sorted(set(spec) - set(KINDS) - {"start"})
        if unknown or len(kinds) != 1:
            raise ConfigError(
                f"{name} = {spec!r}: exactly one of {', '.join(KINDS)} (and optionally start) is required"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        kind = kinds[0]
        bounds = spec[kind]
        if kind == "choice":
            if not isinstance(bounds, list) or len(bounds) < 2 or len({repr(b) for b in bounds}) != len(bounds):
                raise ConfigError(f"{name}: choice = {bounds!r}: a list of at least two different values is required")
            dim = Dimension(key, kind, choices=tuple(bounds))
        else:
            if not (isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)):
                raise ConfigError(f"{name}: {kind} = {bounds!r}: [low, high], two finite numbers, is required")
            low, high = bounds
            if not low < high:
                raise ConfigError(f"{name}: {kind} = {bounds!r}: low < high is required")
            if kind == "log_uniform" and low <= 0:
                raise ConfigError(f"{name}: log_uniform = {bounds!r}: both ends must be > 0")
            if kind == "int_uniform" and not all(isinstance(b, int) for b in bounds):
                raise ConfigError(f"{name}: int_uniform = {bounds!r}: two integers are required")
            if kind != "int_uniform" and found and isinstance(current, int | float) and isinstance(current, bool):
                raise ConfigError(f"{name}: the key is true or false; use choice = [true, false]")
            if kind != "int_uniform" and found and not _number(current) and current is not None:
                raise ConfigError(f"{name}: the key holds {current!r}, not a number; use choice = [...]")
            dim = Dimension(key, kind, float(low), float(high))
        if "start" in spec:
            start = spec["start"]
        elif found and dim.contains(current):
            start = current
        else:  # the middle of the range (the first choice)
            start = dim.choices[0] if kind == "choice" else dim.value(0.5)
        if not dim.contains(start):
            raise ConfigError(f"{name}: start = {start!r} lies outside the range")
        return dataclasses.replace(dim, start=start)
