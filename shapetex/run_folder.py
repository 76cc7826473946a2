"""Whether a run folder already holds a run, and clearing one on request: training twice into one folder
would overwrite the old config (its checkpoints then no longer load) and prune the new run's checkpoints. The
folder's layout (which files, where) is `run.Run`'s."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs go unguarded there
    fcntl = None

from .checkpoint import PREFIX
from .data.images import DataError
from .run import RUN_FILES, RUN_FOLDERS, Run


class RunFolderInUse(DataError):
    pass


def held_run(run_dir: Path) -> list[str]:
    """What in `run_dir` belongs to an earlier run (empty when nothing does)."""
    run = Run(run_dir)
    found = [path.name for path in (run.config, run.metrics) if path.exists()]
    ckpts = run.checkpoints
    if ckpts.is_dir():
        n = sum(1 for p in ckpts.iterdir() if p.name.startswith(PREFIX))
        if n:
            found.append(f"{n} checkpoint{'s' * (n != 1)}")
    return found


def refuse_if_held(run_dir: Path) -> None:
    found = held_run(run_dir)
    if found:
        raise RunFolderInUse(
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with --resume {run_dir}, train into "
            f"a new folder with --out, or replace it with --overwrite")


def clear_run(run_dir: Path) -> None:
    """Remove an earlier run's files. Each folder is renamed aside before it is deleted, so a kill midway never
    leaves checkpoints that a later resume would take for the new run's."""
    for name in RUN_FOLDERS:
        folder = run_dir / name
        if folder.is_dir():
            doomed = run_dir / f".del-{name}-{os.getpid()}"
            os.replace(folder, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


class RunLock:
    """This process's exclusive claim on a run folder while it trains (or imports) into it, so two runs can never
    mix their config, checkpoints and metrics in one folder. An flock: the kernel drops it when the process dies,
    so a killed run leaves no stale lock (the file stays, unlocked, and the next run takes it)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.fd: int | None = None
        if fcntl is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(Run(self.run_dir).lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: by another process, or by an earlier Trainer of this one still open
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderInUse(f"{self.run_dir} is in use by another shapetex run (process {holder}): wait for it "
                                 "to end or stop it, or train into another folder with --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} on {socket.gethostname()}".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __del__(self):
        self.release()
