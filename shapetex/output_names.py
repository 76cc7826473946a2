"""Where `translate` writes each input's outputs, decided for all inputs before anything is written: one file
per output (inputs that share a stem keep their extension in the name), never over a source image, and over
an existing file only when asked."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from .data.images import DataError


def printable(text: str) -> str:
    """A file name as text that can be printed and written as UTF-8: bytes of a non-UTF-8 name (held by Python as
    lone surrogates) become U+FFFD."""
    return os.fsencode(text).decode("utf-8", "replace")


def plan_outputs(files: list[Path], root: Path, out: Path, samples: int, overwrite: bool = False,
                 folder_input: bool = True) -> tuple[dict[Path, list[Path]], list[str]]:
    """input file -> its output paths, and notes to print (renamed outputs)."""
    out_r, root_r = out.resolve(), root.resolve()
    if folder_input and (out_r == root_r or root_r in out_r.parents):
        raise DataError(f"--out {out} is inside the input folder {root}: outputs would mix with the source images "
                        "(and replace those named like them); choose an --out outside it")
    by_stem: dict[Path, list[Path]] = defaultdict(list)
    for f in files:
        rel = f.relative_to(root)
        by_stem[rel.with_suffix("")].append(rel)
    plan, notes = {}, []
    for rels in by_stem.values():
        for rel in rels:
            # a.jpg and a.png would both become a.png: with a shared stem, the extension goes into the name
            base = f"{rel.stem}_{rel.suffix.lstrip('.').lower()}" if len(rels) > 1 else rel.stem
            names = [f"{base}.png"] if samples == 1 else [f"{base}_{k}.png" for k in range(samples)]
            plan[root / rel] = [out / rel.parent / n for n in names]
        if len(rels) > 1:
            notes.append(f"note: {', '.join(str(r) for r in rels)} share a name; written as "
                         f"{', '.join(str(plan[root / r][0].relative_to(out)) for r in rels)}")
    dests = [d for ds in plan.values() for d in ds]
    seen: dict[Path, Path] = {}
    sources = {f.resolve() for f in files}
    for src, ds in plan.items():
        for d in ds:
            if d.resolve() in sources:
                raise DataError(f"output {d} is one of the input images and would replace it: choose another --out")
            if d in seen:
                raise DataError(f"{seen[d]} and {src} would both be written to {d}: rename one of them")
            seen[d] = src
    existing = [d for d in dests if d.exists()]
    if existing and not overwrite:
        raise DataError(f"{len(existing)} of {len(dests)} outputs already exist (e.g. {existing[0]}): pass "
                        "--overwrite to replace them, or choose another --out")
    return plan, notes
