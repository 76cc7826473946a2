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
