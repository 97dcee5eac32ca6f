"""Config resolution: family defaults < YAML file < command-line flags."""

import argparse
import dataclasses
import os

import yaml


def add_field_arguments(parser, config, embedded=None):
    """Adds one `--field-name` flag per config field, default shown; with
    `embedded` (a preset's name and fields), a field that preset changes
    also shows the value the embedded data will use."""
    group = parser.add_argument_group(
        f"{type(config).__name__} fields (override the defaults and --config)"
    )
    descriptions = field_descriptions(type(config))
    preset, preset_fields = embedded or (None, {})
    for field in dataclasses.fields(config):
        default = getattr(config, field.name)
        shown = f"default: {flag_value(default)}"
        if field.name in preset_fields and differs(preset_fields[field.name], default):
            shown += (f"; on the embedded data, preset {preset}: "
                      f"{flag_value(preset_fields[field.name])}")
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=f"field__{field.name}",
            default=argparse.SUPPRESS,
            metavar=_metavar(default),
            help=f"{descriptions.get(field.name, '')} ({shown})".strip(),
        )


def presets_epilog(name, presets):
    """One line per preset: its name and the fields it sets."""
    lines = [f"presets of {name} (--preset NAME):"]
    for preset, fields in presets.items():
        values = " ".join(f"{key}={flag_value(value)}" for key, value in fields.items())
        lines.append(f"  {preset}: {values or '(the defaults)'}")
    return "\n".join(lines)


def field_descriptions(config_class):
    """Each field's first sentence from the `Args:` sections of the config
    class and its bases, so --help says what a field means."""
    descriptions = {}
    for cls in reversed(config_class.__mro__):
        lines = (cls.__doc__ or "").splitlines()
        if not any(line.strip() == "Args:" for line in lines):
            continue
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
        current = None
        for line in lines[start + 1:]:
            stripped = line.strip()
            if not stripped:
                current = None
                continue
            head, sep, text = stripped.partition(": ")
            if sep and all(part.isidentifier() for part in head.split(", ")):
                for name in head.split(", "):
                    descriptions[name] = text
                current = head.split(", ")
            elif current:
                for name in current:
                    descriptions[name] += " " + stripped
    return {name: text.split(". ")[0].rstrip(".") for name, text in descriptions.items()}


def _metavar(default):
    if isinstance(default, tuple):
        return "A,B,..."
    if isinstance(default, bool):
        return "BOOL"
    return type(default).__name__.upper()


def field_overrides(args):
    """The config fields set on the command line, by field name."""
    return {
        key[len("field__"):]: value
        for key, value in vars(args).items()
        if key.startswith("field__")
    }


def read_yaml_mapping(path, flag):
    """Reads a YAML file that must hold one mapping; `flag` names it in errors.

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file is not valid YAML or not a mapping.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{flag} {path}: no such file")
    with open(path) as file:
        try:
            values = yaml.safe_load(file) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{flag} {path}: not valid YAML ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{flag} {path}: expected a mapping")
    return values


def read_yaml_overrides(path, config):
    """Reads a flat YAML mapping of config fields.

    Raises:
        ValueError: the file is missing, not a mapping, or names a field the
            config does not have.
    """
    values = read_yaml_mapping(path, "--config")
    unknown = sorted(set(values) - set(config.field_names()))
    if unknown:
        raise ValueError(
            f"--config {path}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"valid keys are: {', '.join(config.field_names())}"
        )
    return values


def user_overrides(config, yaml_path, cli_overrides):
    """The fields the user set: the YAML file's, then the flags'.

    Raises:
        ValueError: the YAML file is missing, not a mapping, or names a
            field the config does not have.
    """
    overrides = {}
    if yaml_path:
        overrides.update(read_yaml_overrides(yaml_path, config))
    overrides.update(cli_overrides)
    return overrides


def flag_value(value):
    """A config value as a command-line flag spells it: `4,16,16,1`."""
    if isinstance(value, (tuple, list)):
        return ",".join("none" if v is None else str(v) for v in value)
    return "none" if value is None else str(value)


def differs(value, other):
    """Whether two config values differ (tuples and lists compare alike)."""
    def normal(v):
        return tuple(normal(x) for x in v) if isinstance(v, (tuple, list)) else v

    return normal(value) != normal(other)
