"""Stop requests. Ctrl-C (SIGINT) and SIGTERM, which schedulers (SLURM, Kubernetes, `timeout`, `docker stop`)
send before they kill, end every command the same way: as an exception that unwinds the stack, so each
`finally` runs and no partial file is left under a final name. The trainer catches both signals itself while it
trains, to finish the step and write a checkpoint first; experiments then raise `StopRequested` to end there."""

from __future__ import annotations

import signal


class StopRequested(KeyboardInterrupt):
    """A stop asked for by a signal; `signum` gives the exit status, 128 + signum, as a shell reports it."""

    def __init__(self, signum: int = signal.SIGINT, message: str | None = None):
        self.signum = int(signum)
        super().__init__(message or f"stopped by {signal.Signals(self.signum).name}")

    def __reduce__(self):  # raised in an experiment's worker process, it travels back to the parent pickled
        return type(self), (self.signum, str(self))


def _raise(signum, frame):
    raise StopRequested(signum)


def raise_on_sigterm() -> None:
    """SIGTERM raises StopRequested (Python's default would end the process with no cleanup at all)."""
    try:
        signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread: the host application owns its signals
        pass


def exit_status(e: BaseException) -> int:
    return 128 + getattr(e, "signum", signal.SIGINT)


_requested: int | None = None  # the signal that asked this process to stop, where a flag is used


def note_stop(signum: int) -> None:
    """Remember that this process was asked to stop (a pool worker then takes no further call)."""
    global _requested
    _requested = signum


def clear_stop() -> None:
    """Forget an earlier stop: a new experiment in this process (a notebook's next call) may run."""
    global _requested
    _requested = None


def _note(signum, frame):
    note_stop(signum)


def requested() -> int | None:
    """The stop signal noted by flag_on_signals (None: none)."""
    return _requested


def flag_on_signals() -> dict:
    """SIGINT and SIGTERM only note the request (see `requested`): for code that must not be interrupted at an
    arbitrary point, such as a process pool's bookkeeping, where an exception raised inside a lock would leave it
    held and hang every process waiting on it. Returns the handlers it replaced."""
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, _note)
        except ValueError:  # not the main thread
            pass
    return old
