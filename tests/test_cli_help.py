"""Every command line's --help gives each flag its own, non-empty sentence.

The parsers are built in-process: every module that is run with
`python -m` and builds an `ArgumentParser` has a `build_parser`, called
here once per model where its flags depend on the model.
"""

import argparse
import importlib
import inspect
import os
import re

import pytest

import models
from train import tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("models", "data", "train", "common", "tuning", "benchmarks")

# The " (default: ...)" that train.engine.config appends to a config field's
# sentence: two flags must differ in the sentence, not only in the default.
SHOWN_DEFAULT = re.compile(r"\s*\(default: [^()]*\)$")


def cli_modules():
    """The modules that run as a command line and build an ArgumentParser."""
    found = []
    for package in PACKAGES:
        for name in sorted(os.listdir(os.path.join(ROOT, package))):
            if not name.endswith(".py") or name == "__main__.py":
                continue
            with open(os.path.join(ROOT, package, name)) as file:
                source = file.read()
            if 'if __name__ == "__main__":' in source and "ArgumentParser(" in source:
                found.append(f"{package}.{name[:-3]}")
    return found


def parsers(module_name):
    """(label, parser) of every variant of the module's command line."""
    module = importlib.import_module(module_name)
    assert hasattr(module, "build_parser"), (
        f"{module_name} builds its parser inside main; give it a build_parser() so its "
        "--help can be checked"
    )
    build = module.build_parser
    parameters = inspect.signature(build).parameters
    if not parameters:
        return [(module_name, build())]
    (parameter,) = parameters
    variants = [(module_name, build())]
    for name in models.names():
        argument = tasks.task_for(name) if parameter == "task" else name
        variants.append((f"{module_name} for {name}", build(argument)))
    return variants


def help_problems(parser):
    """Flags whose sentence is empty or the same as another flag's."""
    by_sentence = {}
    problems = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        flag = "/".join(action.option_strings) or action.dest
        sentence = SHOWN_DEFAULT.sub("", action.help or "").strip()
        if not sentence:
            problems.append(f"{flag}: no help")
            continue
        by_sentence.setdefault(sentence, []).append(flag)
    problems += [
        f"{', '.join(flags)} share the help {sentence!r}"
        for sentence, flags in by_sentence.items() if len(flags) > 1
    ]
    return problems


def test_the_command_lines_are_found():
    found = cli_modules()
    for name in ("train.run", "train.predict", "train.evaluate", "train.export", "train.app",
                 "data.extract", "tuning.search", "benchmarks.report", "benchmarks.quoted_numbers"):
        assert name in found


@pytest.mark.parametrize("module_name", cli_modules())
def test_every_flag_has_its_own_help(module_name):
    problems = [
        f"{label}: {problem}"
        for label, parser in parsers(module_name)
        for problem in help_problems(parser)
    ]
    assert not problems, "\n".join(problems)


def test_a_shared_or_empty_help_is_found():
    parser = argparse.ArgumentParser()
    parser.add_argument("--l1", help="the regularizer (default: 0.0)")
    parser.add_argument("--l2", help="the regularizer (default: 0.5)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--hidden", help=argparse.SUPPRESS)
    assert help_problems(parser) == ["--quiet: no help", "--l1, --l2 share the help 'the regularizer'"]
