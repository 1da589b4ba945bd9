"""Each job's settings are one dataclass; its command-line flags are derived from the fields.

A field declared with :func:`option` carries its flag's help (and, where it differs from the
field's name, the flag itself); :func:`add_arguments` turns the fields into argparse
arguments with the dataclass's defaults, and :func:`from_args` builds the settings back from
the parsed namespace. The defaults live in one place (the dataclass), and a job run from
Python takes the same settings as one run from the shell.

    bool, default False   ->  --flag (store_true)
    bool, with no_flag    ->  --no-flag (store_false; the field defaults to True)
    bool | None           ->  --flag / --no-flag (None: the job decides)
    list[...] / tuple     ->  nargs="+"
    anything else         ->  the field's type (int, float, str), optional when it may be None
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from typing import Any

__all__ = ["add_arguments", "check_positive", "from_args", "option"]


def option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,
           choices: Sequence[Any] | None = None, metavar: str | None = None, positional: bool = False,
           no_flag: str | None = None, group: str | None = None, default_factory: Any = dataclasses.MISSING,
           show_default: bool = True, parse: Any = None) -> Any:
    """A settings field with its command-line flag.

    ``flag``: the flag's name when it is not ``--field-name``; ``no_flag``: a boolean that
    defaults to True, turned off by this flag; ``positional``: an argument without a flag;
    ``group``: the heading it is listed under in ``--help``; ``show_default``: append
    "(default: X)" to the help; ``parse``: turns the flag's text into the field's value (one
    argument, even for a list)."""
    meta = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None, "metavar": metavar,
            "positional": positional, "no_flag": no_flag, "group": group, "show_default": show_default,
            "parse": parse}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"cli": meta})
    return dataclasses.field(default=default, metadata={"cli": meta})


def _options(cls) -> list[tuple[dataclasses.Field, dict, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, f.metadata["cli"], hints[f.name]) for f in dataclasses.fields(cls) if "cli" in f.metadata]


def _unwrap(hint) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed); a union with bool is a flag."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and bool in args:
        return bool, type(None) in args
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return hint, False


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def add_arguments(parser: argparse.ArgumentParser, cls, skip: Sequence[str] = (),
                  helps: dict[str, str] | None = None) -> None:
    """``cls``'s option fields as ``parser``'s arguments (all but ``skip``; ``helps``: other
    help texts by field name, for a command that reads a field more widely)."""
    groups: dict[str, Any] = {}
    for f, meta, hint in _options(cls):
        if f.name in skip:
            continue
        target = parser
        if meta["group"]:
            target = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        kind, optional = _unwrap(hint)
        default, text = _default(f), (helps or {}).get(f.name, meta["help"])
        kwargs: dict[str, Any] = {"dest": f.name}
        if kind is bool and meta["no_flag"]:
            target.add_argument(meta["no_flag"], action="store_false", help=text, **kwargs)
            continue
        if kind is bool:
            action = argparse.BooleanOptionalAction if optional else "store_true"
            target.add_argument(meta["flag"] or "--" + f.name.replace("_", "-"), action=action, default=default,
                                help=text, **kwargs)
            continue
        origin = typing.get_origin(kind)
        if meta["parse"]:
            kind = meta["parse"]
        elif origin in (list, tuple):
            kwargs["nargs"] = "+"
            kind = typing.get_args(kind)[0]
        if meta["show_default"] and not meta["positional"] and default not in (None, [], ()):
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            text += f" (default: {shown})"
        kwargs.update(type=kind if kind in (int, float) or meta["parse"] else str, help=text, metavar=meta["metavar"],
                      choices=meta["choices"])
        if meta["positional"]:
            kwargs.pop("dest")
            target.add_argument(f.name, **kwargs)
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        target.add_argument(meta["flag"] or "--" + f.name.replace("_", "-"), default=default, required=required,
                            **kwargs)


def from_args(cls, args: argparse.Namespace, **given: Any):
    """``cls`` built from the parsed ``args`` (its option fields) and ``given`` (the rest)."""
    values = {f.name: getattr(args, f.name) for f, _, _ in _options(cls) if hasattr(args, f.name)}
    values.update(given)
    return cls(**values)


def check_positive(**flags: float | None) -> None:
    """Each value given (by its flag's name, ``target_ms=...``) is a finite number above zero."""
    from .errors import StaircaseError

    for name, value in flags.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise StaircaseError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
