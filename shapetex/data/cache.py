"""A bounded cache of decoded images for sets that are decoded per batch (too big to preload).

Two levels, both optional:
- memory: an LRU of decoded uint8 tensors holding at most `max_mb` megabytes. It lives in each process
  (every rank and every loader worker has its own), so the total is up to max_mb x processes;
- disk (`spill_dir`): every decoded image is also written once as a .npy file, shared by all processes
  and runs on the machine. Later reads load the small array instead of decoding and resizing the source
  again. Files are written under a temporary name and renamed, so concurrent writers never leave a torn
  file. A file's name is a hash of the image's key and its version (for image files: mtime and size), so
  an edited source image is decoded afresh. Nothing ever deletes files: the folder holds at most one
  decoded copy of the data set per way of storing it (training size, load size, preprocess mode); remove it
  to reclaim the space.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_then_rename


class DecodedCache:
    def __init__(self, max_mb: float = 0, spill_dir: str | Path | None = None):
        self.max_bytes = int(max_mb * 2**20)
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits_memory = self.hits_disk = self.misses = 0

    def __len__(self) -> int:
        return len(self._memory)

    def __getstate__(self):  # a spawned loader worker starts with an empty memory level
        state = self.__dict__.copy()
        state["_memory"], state["bytes"] = OrderedDict(), 0
        return state

    # ---- memory --------------------------------------------------------------------------------
    def _remember(self, key: str, img: torch.Tensor) -> None:
        size = img.numel() * img.element_size()
        if size > self.max_bytes:
            return
        old = self._memory.pop(key, None)
        if old is not None:
            self.bytes -= old.numel() * old.element_size()
        self._memory[key] = img
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._memory.popitem(last=False)
            self.bytes -= dropped.numel() * dropped.element_size()

    # ---- disk ----------------------------------------------------------------------------------
    def spill_path(self, key: str, version: str = "") -> Path:
        digest = hashlib.sha1(f"{key}\0{version}".encode()).hexdigest()
        return self.spill_dir / digest[:2] / f"{digest}.npy"

    def _write(self, path: Path, img: torch.Tensor) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_then_rename(path, lambda tmp: np.save(tmp, img.numpy()))
        except OSError:  # a full or read-only disk costs speed, never the run
            pass

    # ---- the one entry point -------------------------------------------------------------------
    def fetch(self, key: str, decode: Callable[[], torch.Tensor], version: Callable[[], str] | None = None
              ) -> torch.Tensor:
        """The decoded image for `key`: from memory, else from the spill folder, else `decode()` (and stored).
        `version()` (called only when the disk is consulted) tells a changed source apart."""
        img = self._memory.get(key)
        if img is not None:
            self._memory.move_to_end(key)
            self.hits_memory += 1
            return img
        path = self.spill_path(key, version() if version else "") if self.spill_dir else None
        if path is not None and path.exists():
            try:
                img = torch.from_numpy(np.load(path, allow_pickle=False))
                self.hits_disk += 1
            except (OSError, ValueError):
                img = None
        if img is None:
            img = decode()
            self.misses += 1
            if path is not None:
                self._write(path, img)
        self._remember(key, img)
        return img

    def report(self) -> str:
        where = f", spilling to {self.spill_dir}" if self.spill_dir else ""
        return (f"cache {self.bytes / 2**20:.0f}/{self.max_bytes / 2**20:.0f} MB in memory{where} "
                f"(hits: {self.hits_memory} memory, {self.hits_disk} disk; {self.misses} decoded)")
