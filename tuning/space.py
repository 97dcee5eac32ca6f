"""Search spaces: architecture grids and per-field hyperparameter files.

Keras Tuner's `GridSearch` has raised `KeyError` on conditional
hyperparameters (keras-tuner issue 614), and the R(2+1)D ablation mixes two
model families whose fields differ. So every discrete choice of a search is
folded into ONE categorical hyperparameter whose values are complete trial
settings (`"8+1+6"`, `"8+1+6 dropout=0.3"`), deduplicated per family: a
field that a family does not have is left out of its settings instead of
multiplying its trials. Continuous ranges (`{min, max}` in a space file)
stay separate `Int`/`Float` hyperparameters for RandomSearch and Hyperband
and apply to the families that have the field.

Architecture grids come from the families that declare one
(`models.capabilities.Ablation`): the R(2+1)D families' rows are written
`CNN+CROSS+SELF` (backbone blocks, cross-attention blocks and
self-attention blocks; `N+0+0` is the plain R(2+1)D baseline), and a row
names the family that builds it.
"""

import dataclasses
import itertools

import models
from common.files import jsonable
from train.engine.config import read_yaml_mapping

FULL_GRID_NAME = "full"
RANGE_KEYS = ("min", "max", "step", "sampling")


def registered_ablation():
    """The architecture grid the registered families declare.

    Raises:
        ValueError: no family declares one, or several declare different
            grids (then `--grid` cannot tell which is meant).
    """
    found = []
    for name in models.names():
        ablation = models.get_family(name).ablation
        if ablation is not None and not any(ablation is known for known in found):
            found.append(ablation)
    if not found:
        raise ValueError("--grid: no registered model declares an architecture grid")
    if len(found) > 1:
        raise ValueError("--grid: several registered models declare different architecture "
                         "grids; search one model with --model NAME --space FILE.yaml")
    return found[0]


def grid_families(ablation=None):
    """The names of the families whose rows the grid builds, sorted."""
    ablation = ablation or registered_ablation()
    return sorted(name for name in models.names() if models.get_family(name).ablation is ablation)


def row_format(ablation):
    return "+".join(field.upper().removesuffix("_BLOCKS") for field in ablation.fields)


def parse_architecture(value, source, ablation=None):
    """`"8+1+6"`, `[8, 1, 6]` or `(8, 1, 6)` -> (8, 1, 6)."""
    ablation = ablation or registered_ablation()
    parts = value.split("+") if isinstance(value, str) else value
    try:
        row = tuple(int(str(p).strip()) for p in parts)
    except (TypeError, ValueError):
        row = ()
    if len(row) != len(ablation.fields):
        example = ablation.label(next(iter(ablation.rows.values()))[0])
        raise ValueError(
            f"{source}: architecture {value!r} is not {row_format(ablation)} (e.g. '{example}')"
        )
    return row


def architecture_label(*row, ablation=None):
    """A row's name, e.g. "8+1+6"."""
    return (ablation or registered_ablation()).label(tuple(row))


def architecture(*row, ablation=None):
    """(model name, config fields) of a row."""
    return (ablation or registered_ablation()).resolve(tuple(row))


def architecture_error(*row, ablation=None):
    """Why an architecture is invalid (the config's own message), or None."""
    name, fields = architecture(*row, ablation=ablation)
    try:
        models.get_config(name, **fields)
    except ValueError as error:
        return str(error)
    return None


def grid_architectures(grid):
    """The architectures of `--grid NAME|full|FILE.yaml`, NAME one of the
    grid's named row lists (`seed-ablation`: the notes' ablation table).

    Returns:
        (architectures, skipped): row tuples, and the labels of cartesian
        combinations the grid leaves out (`Ablation.skip`).

    Raises:
        ValueError: an unknown grid name, a missing or malformed file, an
            unknown key, or an invalid architecture listed explicitly.
    """
    ablation = registered_ablation()
    if grid in ablation.rows:
        return [tuple(row) for row in ablation.rows[grid]], []
    if grid == FULL_GRID_NAME:
        return _cartesian(ablation, ablation.full_grid)
    if not grid.endswith((".yaml", ".yml")):
        names = [f"'{name}'" for name in (*ablation.rows, FULL_GRID_NAME)]
        raise ValueError(
            f"--grid {grid!r}: expected {', '.join(names)} or a .yaml file"
        )
    values = read_yaml_mapping(grid, "--grid")
    file_keys = ("architectures", *ablation.fields)
    unknown = sorted(set(values) - set(file_keys))
    if unknown:
        raise ValueError(
            f"--grid {grid}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"valid keys are: {', '.join(file_keys)}"
        )
    if "architectures" in values:
        if set(values) & set(ablation.fields):
            raise ValueError(
                f"--grid {grid}: give either 'architectures' or the lists "
                f"{', '.join(ablation.fields)}, not both"
            )
        listed = _as_list(values["architectures"], "architectures", grid)
        architectures = []
        for item in listed:
            row = parse_architecture(item, f"--grid {grid}", ablation)
            error = architecture_error(*row, ablation=ablation)
            if error:
                raise ValueError(
                    f"--grid {grid}: architecture {ablation.label(row)}: {error}"
                )
            if row not in architectures:
                architectures.append(row)
        return architectures, []
    lists = {}
    for key in ablation.fields:
        items = _as_list(values.get(key, list(ablation.defaults[key])), key, grid)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise ValueError(f"--grid {grid}: {key} must list integers, got {items!r}")
        lists[key] = items
    return _cartesian(ablation, lists, f"--grid {grid}")


def _cartesian(ablation, lists, source="--grid full"):
    """Valid architectures of a product of lists, and the skipped labels."""
    architectures, skipped = [], []
    for combination in itertools.product(*(lists[key] for key in ablation.fields)):
        if ablation.skip(combination):
            skipped.append(ablation.label(combination))
            continue
        error = architecture_error(*combination, ablation=ablation)
        if error:
            raise ValueError(f"{source}: architecture {ablation.label(combination)}: {error}")
        if combination not in architectures:
            architectures.append(combination)
    if not architectures:
        raise ValueError(f"{source}: the grid has no valid architecture")
    return architectures, skipped


def _as_list(value, key, path):
    if not isinstance(value, list) or not value:
        raise ValueError(f"--grid {path}: {key} must be a non-empty list, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Space files: config fields (optimizer settings included) to search
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Range:
    """A continuous or stepped range of one config field.

    Args:
        field: the config field.
        kind: `int` or `float`, the field's type.
        min, max: bounds, both included.
        step: optional step (needed by GridSearch).
        sampling: `"linear"` or `"log"`.
    """

    field: str
    kind: type
    min: float
    max: float
    step: float | None = None
    sampling: str = "linear"

    def declare(self, hp):
        if self.kind is int:
            return hp.Int(self.field, int(self.min), int(self.max),
                          step=int(self.step) if self.step else None, sampling=self.sampling)
        return hp.Float(self.field, float(self.min), float(self.max),
                        step=self.step, sampling=self.sampling)

    def describe(self):
        return {"min": self.min, "max": self.max, "step": self.step, "sampling": self.sampling}


def read_space(path, families):
    """Reads a space file: `field: [values]` or `field: {min, max, step, sampling}`.

    Args:
        path: the YAML file.
        families: model names whose config fields may appear; a field must
            belong to at least one of them.

    Returns:
        (choices, ranges): `{field: [values]}` and a list of `Range`.

    Raises:
        ValueError: unknown fields or keys, empty lists, bad bounds, or a
            value a family's config refuses.
    """
    values = read_yaml_mapping(path, "--space")
    valid = sorted({f for name in families for f in models.get_family(name).config.field_names()})
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(
            f"--space {path}: unknown field(s) {', '.join(map(str, unknown))}; "
            f"valid fields are: {', '.join(valid)}"
        )
    choices, ranges = {}, []
    for field, spec in values.items():
        owners = [n for n in families if field in models.get_family(n).config.field_names()]
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"--space {path}: {field} lists no values")
            for value in spec:
                _check_value(path, owners, field, value)
            choices[field] = list(spec)
        elif isinstance(spec, dict):
            ranges.append(_read_range(path, owners, field, spec))
        else:
            raise ValueError(
                f"--space {path}: {field} must be a list of values or a mapping "
                f"with {', '.join(RANGE_KEYS)}, got {spec!r}"
            )
    return choices, ranges


def _read_range(path, owners, field, spec):
    unknown = sorted(set(spec) - set(RANGE_KEYS))
    if unknown or "min" not in spec or "max" not in spec:
        raise ValueError(
            f"--space {path}: {field} range needs min and max (optional step, "
            f"sampling), got keys {', '.join(map(str, spec))}"
        )
    default = getattr(models.get_family(owners[0]).config, field)
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise ValueError(
            f"--space {path}: {field} is not numeric; list its values instead of a range"
        )
    kind = type(default)
    try:
        low, high = kind(spec["min"]), kind(spec["max"])
        step = None if spec.get("step") is None else kind(spec["step"])
    except (TypeError, ValueError):
        raise ValueError(f"--space {path}: {field} bounds must be numbers, got {spec!r}") from None
    sampling = spec.get("sampling", "linear")
    if sampling not in ("linear", "log"):
        raise ValueError(f"--space {path}: {field} sampling must be 'linear' or 'log', got {sampling!r}")
    if not low < high:
        raise ValueError(f"--space {path}: {field} needs min < max, got {low} and {high}")
    if sampling == "log" and low <= 0:
        raise ValueError(f"--space {path}: {field} with log sampling needs min > 0, got {low}")
    if step is not None and step <= 0:
        raise ValueError(f"--space {path}: {field} step must be > 0, got {step}")
    for value in (low, high):
        _check_value(path, owners, field, value)
    return Range(field, kind, low, high, step, sampling)


def _check_value(path, owners, field, value):
    for name in owners:
        try:
            models.get_family(name).config.with_overrides(**{field: value})
        except ValueError as error:
            raise ValueError(f"--space {path}: {field}={value!r}: {error}") from None


def format_value(value):
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One value of the categorical hyperparameter: a complete trial setting.

    Args:
        label: the hyperparameter value, e.g. `"8+1+6 dropout=0.3"`.
        model: the registered model name.
        overrides: config fields of this setting.
        architecture: `"8+1+6"` in an architecture grid, else `""`.
    """

    label: str
    model: str
    overrides: dict
    architecture: str = ""


def fold_settings(bases, choices):
    """Crosses each base (label, model, overrides) with the listed choices.

    Only the fields a base's model has enter its settings, so a choice
    that does not apply to a model does not repeat its trials.
    """
    settings = {}
    for base_label, model, overrides, architecture in bases:
        fields = models.get_family(model).config.field_names()
        applicable = [(f, v) for f, v in choices.items() if f in fields]
        for combination in itertools.product(*(v for _, v in applicable)):
            extra = {f: value for (f, _), value in zip(applicable, combination)}
            parts = [base_label] if base_label else []
            parts += [f"{f}={format_value(v)}" for f, v in extra.items()]
            label = " ".join(parts) or "defaults"
            if label not in settings:
                settings[label] = Setting(label, model, {**overrides, **extra}, architecture)
    return list(settings.values())


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Everything a hypermodel needs to turn hyperparameters into a model.

    Args:
        hp_name: name of the categorical hyperparameter ("architecture" for
            a grid, "settings" for a model search).
        settings: its values, as `Setting`s.
        ranges: the separate `Range` hyperparameters.
        base: per model name, the config fields every trial starts from.
    """

    hp_name: str
    settings: tuple
    ranges: tuple
    base: dict

    @property
    def families(self):
        return sorted({s.model for s in self.settings})

    def declare(self, hp):
        """Declares the hyperparameters; returns (Setting, range values)."""
        labels = [s.label for s in self.settings]
        label = hp.Choice(self.hp_name, labels, ordered=False)
        setting = next(s for s in self.settings if s.label == label)
        fields = models.get_family(setting.model).config.field_names()
        values = {}
        for item in self.ranges:
            value = item.declare(hp)
            if item.field in fields:
                values[item.field] = value
        return setting, values

    def config(self, setting, range_values=None):
        """The validated config of one trial."""
        overrides = {**self.base.get(setting.model, {}), **setting.overrides, **(range_values or {})}
        return models.get_config(setting.model, **overrides)

    def describe(self):
        """A JSON-able description, to recognise the same search on re-runs."""
        return {
            "hyperparameter": self.hp_name,
            "settings": [
                {"label": s.label, "model": s.model, "overrides": jsonable(s.overrides)}
                for s in self.settings
            ],
            "ranges": [{"field": r.field, **r.describe()} for r in self.ranges],
            "base": jsonable(self.base),
        }


def split_base(base_overrides, families, source):
    """Per family, the base fields it has; a field no family has is an error."""
    valid = sorted({f for n in families for f in models.get_family(n).config.field_names()})
    unknown = sorted(set(base_overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"{source}: unknown field(s) {', '.join(unknown)}; valid fields are: {', '.join(valid)}"
        )
    return {
        name: {
            k: v for k, v in base_overrides.items()
            if k in models.get_family(name).config.field_names()
        }
        for name in families
    }


def grid_space(grid, base_overrides, space_path=None, source="--config/--set", embedded=None):
    """The search space of an architecture grid (plus an optional space file).

    Every trial's config is validated here, before any training, so an
    architecture that does not fit the clip size fails at once.

    Args:
        embedded: per model name, preset fields placed beneath the base
            (the family's preset for the embedded data).

    Returns:
        (SearchSpace, skipped labels).
    """
    ablation = registered_ablation()
    architectures, skipped = grid_architectures(grid)
    families = sorted({ablation.resolve(a)[0] for a in architectures})
    base = split_base(base_overrides, grid_families(ablation), source)
    choices, ranges = read_space(space_path, families) if space_path else ({}, [])
    bases = [
        (ablation.label(a), *ablation.resolve(a), ablation.label(a))
        for a in architectures
    ]
    space = SearchSpace("architecture", tuple(fold_settings(bases, choices)), tuple(ranges),
                        {name: {**(embedded or {}).get(name, {}), **base[name]}
                         for name in families})
    check_space(space)
    return space, skipped


def model_space(name, base_overrides, space_path, source="--config/--set", embedded=None):
    """The search space of `--model NAME --space FILE.yaml` (`embedded` as
    in `grid_space`)."""
    models.get_family(name)
    base = split_base(base_overrides, [name], source)
    base[name] = {**(embedded or {}).get(name, {}), **base[name]}
    choices, ranges = read_space(space_path, [name])
    if not choices and not ranges:
        raise ValueError(f"--space {space_path}: lists no field to search")
    settings = fold_settings([("", name, {}, "")], choices)
    space = SearchSpace("settings", tuple(settings), tuple(ranges), base)
    check_space(space)
    return space


def check_space(space):
    """Validates every setting (and the range bounds) against the base config."""
    for setting in space.settings:
        corners = [{}]
        fields = models.get_family(setting.model).config.field_names()
        for item in space.ranges:
            if item.field in fields:
                corners = [dict(c, **{item.field: v}) for c in corners for v in (item.min, item.max)]
        for corner in corners:
            try:
                space.config(setting, corner)
            except ValueError as error:
                raise ValueError(f"{space.hp_name} {setting.label!r}: {error}") from None
