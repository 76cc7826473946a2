"""`shapetex settings [METHOD]`: every setting a run takes, with its type, default and one-line meaning.

The meanings are the comments beside each field of the settings dataclasses (config.py's DataConfig and
TrainConfig, each method's Settings), read from the source, so the help and the code cannot drift apart."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

_FIELD = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")


def field_comments(cls: type) -> dict[str, str]:
    """{field: the comment on its line} for a dataclass and its dataclass bases (the subclass's wins)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines[1:]:
            m = _FIELD.match(line)
            if m and m.group(2):
                comments[m.group(1)] = m.group(2).strip()
    return comments


def _type_text(tp) -> str:
    text = getattr(tp, "__name__", None) if not typing.get_args(tp) else None
    return text or str(tp).replace("typing.", "")


def describe_settings(cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append((f"{prefix}{f.name}", f"{_type_text(hints[f.name])} = {default}", comments.get(f.name, "")))
    width = max(len(r[0]) for r in rows)
    type_width = min(max(len(r[1]) for r in rows), 34)
    return [f"  {k:<{width}}  {t:<{type_width}}  {c}".rstrip() for k, t, c in rows]


def add_arguments(p) -> None:
    from .methods import METHODS

    p.add_argument("method", nargs="?", choices=sorted(METHODS),
                   help="a method: its model.* settings (default: list the methods and the data/train settings)")


def run(args) -> int:
    from .config import DataConfig, TrainConfig
    from .methods import METHODS

    if args.method:
        cls = METHODS[args.method]
        print(f"model.* settings of --method {args.method} (set with --set model.KEY=VALUE; None: chosen from "
              "the image size):")
        print("\n".join(describe_settings(cls.Settings, "model.")))
        return 0
    print("methods (--method): " + ", ".join(sorted(METHODS)) + "; `shapetex settings METHOD` lists its model.* "
          "settings")
    print("\ndata.* settings (--set data.KEY=VALUE):")
    print("\n".join(describe_settings(DataConfig, "data.")))
    print("\ntrain.* settings (--set train.KEY=VALUE):")
    print("\n".join(describe_settings(TrainConfig, "train.")))
    return 0
