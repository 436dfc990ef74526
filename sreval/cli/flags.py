"""Where a library parameter becomes a command-line flag: the one table, and the rewording of a `ParameterError`.

The library speaks of its parameters by their Python names ("delta must be in (0, 1), got 2"); the user typed
flags. A parameter maps to the flag of the command that passed it: first this table, then the command's own
`--NAME` option (`_` written `-`) when it has one; a parameter no option gives (an internal one) keeps its name.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterator

from sreval.errors import ParameterError

_SET = "--set"


def _recipe_fields() -> dict[str, str]:
    """Recipe fields are set with `sreval train --set FIELD=VALUE`."""
    from sreval.train.recipes import Recipe

    return {f.name: f"{_SET} {f.name}=…" for f in dataclasses.fields(Recipe)}


# Command ("study simulate") → parameter → flag, where the flag is not `--` + the parameter's name.
FLAGS: dict[str, dict[str, str]] = {
    "run-benchmarks": {"names": "--metrics", "spec": "--methods", "url": "--db"},
    "evaluate": {"names": "--metrics", "key": "--dataset", "url": "--db"},
    "runs": {"url": "--db"},
    "interpolate": {"alphas": "--sweep", "prefix": "--name-prefix"},
    "train": {"items": _SET},
    "study create": {"spec": "--methods", "train_dir": "--calibration-dir", "folder": "--dir", "url": "--db"},
    "study invite": {"url": "--db"},
    "study status": {"url": "--db"},
    "study export": {"url": "--db"},
    "study simulate": {"url": "--db"},
    "study close": {"url": "--db"},
    "study list": {"url": "--db"},
    "analyze": {"n_boot": "--bootstrap", "url": "--db"},
    "analyze power": {"target": "--power", "url": "--db"},
    "report": {"gallery_images": "--gallery", "url": "--db"},
}


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its words ("study simulate"); "" is the program's own."""
    return dict(_walk(parser, ""))


def _walk(parser: argparse.ArgumentParser, words: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{words} {name}".strip())


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def flag_for(parameter: str, command: str, options: set[str]) -> str | None:
    """The flag of `command` (whose parser has `options`) that gave `parameter`, or None when none did."""
    table = FLAGS.get(command, {})
    if parameter in table:
        return table[parameter]
    own = "--" + parameter.replace("_", "-")
    if own in options:
        return own
    if command == "train":
        return _recipe_fields().get(parameter)
    return None


def reworded(error: ParameterError, command: str, options: set[str]) -> str:
    """The error's message with the parameter written as the flag where the message speaks of it as such: at the
    start of the message or of a clause, or where it says to give it ("--delta must be in (0, 1), got 2"). Other
    mentions are the word in its ordinary sense ("no study named 'x'") and stay."""
    message = str(error)
    flag = flag_for(error.parameter, command, options)
    if flag is None:
        return message
    where = r"(?:^|(?<=: )|(?<=; )|(?<=\. )|(?<=give )|(?<=Give ))"
    mention = re.compile(rf"{where}{re.escape(error.parameter)}(?![\w\-'\"])")
    return mention.sub(lambda _: flag, message)


def command_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, set[str]]:
    """The words of the command `args` were parsed for ("study simulate"), and the options of its parser."""
    words: list[str] = []
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, actions[0].dest, None) if actions else None
        if not isinstance(name, str) or name not in actions[0].choices:
            return " ".join(words), options_of(parser)
        words.append(name)
        parser = actions[0].choices[name]
