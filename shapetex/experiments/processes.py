"""Runs of an experiment side by side, each in its own spawned process (one job each, a few at a time)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from ..stopping import StopRequested, flag_on_signals, requested


def in_processes(fn: Callable, calls: list[tuple], jobs: int, on_result: Callable | None = None) -> list:
    """fn(*args) for each call, `jobs` at a time, each in a spawned process; the results in call order, and
    on_result(result) as each arrives. A failed call, Ctrl-C or SIGTERM ends the whole job promptly: queued calls
    are cancelled and running ones get SIGTERM, so each trainer finishes its step and checkpoints, then the error
    (or the stop) is raised here. Leaving the pool the usual way would wait for every running call to end.
    Signals only set a flag, here and in the workers (flag_on_signals), checked between waits: an exception
    raised inside the pool's locks would leave them held and hang the processes."""
    old = flag_on_signals()
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=flag_on_signals)
    futures = [pool.submit(fn, *args) for args in calls]
    try:
        pending = set(futures)
        while pending:
            if requested():
                raise StopRequested(requested())
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in done:
                result = f.result()  # a call's error (or its stop) is raised here
                if on_result is not None:
                    on_result(result)
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        # the workers' pids: the pool has no public way to signal its running calls
        for pid in list(getattr(pool, "_processes", {}) or {}):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        pool.shutdown(wait=True, cancel_futures=True)  # each worker checkpoints and stops within a step
        raise
    finally:
        pool.shutdown(wait=False)
        for sig, handler in old.items():
            signal.signal(sig, handler)
