"""The one training loop every method uses: devices, DDP, precision, EMA, checkpoints, samples, logs.

Each step's randomness (z, noise, flips) is seeded from (seed, step, rank) and each batch is a pure
function of the step, so a resumed run continues exactly where the killed one stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from . import checkpoint as ckpts
from . import tb
from .config import ConfigError, RunConfig
from .data import build_data
from .data.images import DataError
from .data.preprocess import resolve_load_size
from .data.stream import Prefetcher
from .engine import Engine, available_cores, init_distributed
from .methods import build_method
from .methods.base import Method
from .run import Run
from .run_folder import RunLock, clear_run, refuse_if_held
from .sampling import save_sample_grid
from .stopping import note_stop

log = logging.getLogger(__name__)


class TrainingDiverged(DataError):
    """Losses or gradients stayed non-finite: a one-line error that names the last good checkpoint."""


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 9_973 + rank * 7_919_993) % (2**63 - 1)


def flip_batch(batch: dict[str, torch.Tensor], together: bool, generator: torch.Generator) -> None:
    """Random horizontal flips: per image, or one decision per index for all tensors (paired data)."""
    images = [k for k, v in batch.items() if v.ndim == 4]
    if not images:
        return
    n = batch[images[0]].shape[0]
    shared = torch.rand(n, generator=generator) < 0.5
    for k in images:
        mask = shared if together else torch.rand(batch[k].shape[0], generator=generator) < 0.5
        if mask.any():
            idx = mask.nonzero().squeeze(1).to(batch[k].device)
            batch[k][idx] = batch[k][idx].flip(-1)


def check_crop_sides(cfg: RunConfig, multiple: int) -> None:
    """Training crops go through the networks as they are (no padding): each side a multiple of the method's."""
    h, w = cfg.data.size, cfg.data.width or cfg.data.size
    if h % multiple or w % multiple:
        raise DataError(f"training crops of {h}x{w} px: {cfg.method}'s networks want sides that are multiples of "
                        f"{multiple}; change data.size / data.width")


class Trainer:
    """`resume`: continue the run in cfg.out from its newest complete checkpoint. Otherwise cfg.out must not
    hold a run already, unless `overwrite`, which removes that run's files first."""

    def __init__(self, cfg: RunConfig, resume: bool = False, overwrite: bool = False):
        t = cfg.train
        self.rank, self.world, device = init_distributed(t.device)
        if t.threads:
            torch.set_num_threads(t.threads)
        else:  # PyTorch counts the host's cores; a container or a CPU run under torchrun may have fewer each
            cores = max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
            if torch.get_num_threads() > cores:
                torch.set_num_threads(cores)
        if t.batch % self.world:
            raise ConfigError(f"global batch {t.batch} must be divisible by the {self.world} processes")
        self.engine = Engine(device, t.precision, t.channels_last, self.rank, self.world, compile=t.compile)
        torch.manual_seed(t.seed)  # the same initial weights on every rank and in every rerun
        self.method: Method = build_method(cfg, self.engine)
        # what the run saves: its settings as resolved (a later default change cannot alter a saved run);
        # the caller's config is left as given
        self.cfg = cfg = dataclasses.replace(cfg, model=self.method.settings_dict())
        self.run_dir = Path(cfg.out)
        self.folder = Run(self.run_dir)  # where the run's files go
        # data.load_size left at None means the method's (the saved settings keep None: a later --size scales it)
        self.data = dataclasses.replace(cfg.data, load_size=resolve_load_size(cfg.data, self.method.load_ratio))
        check_crop_sides(cfg, self.method.input_multiple)
        self.step, self.images_seen = 0, 0
        self.train_seconds = 0.0  # wall time spent in training steps, summed over resumes (train.max_minutes)
        self._saved_at: int | None = None  # images seen of the newest checkpoint on disk (None: none yet)
        # the inputs first: a missing or empty folder is refused before anything in the run folder is touched
        self.source, self.holdout = build_data(self.data, self.method.data_kind, t.batch, t.seed, self.rank,
                                               self.world, holdout_count=16)
        self.lock = RunLock(self.run_dir) if self.engine.is_main else None
        try:
            self._prepare_folder(resume, overwrite)
        except BaseException:
            self.release()
            raise
        self._stop_requested = False
        self.stop_signal: int | None = None  # the signal that asked this run to stop (SIGINT, SIGTERM)
        self.time_capped = False  # the run stopped at train.max_minutes
        self.tb = tb.open_logger(self.run_dir, self.engine.is_main, purge_step=self.images_seen)

    def _prepare_folder(self, resume: bool, overwrite: bool) -> None:
        """Under the folder's lock: recover or clear it (or refuse a held one), load the checkpoint to resume."""
        if self.engine.is_main:
            if resume:
                for line in ckpts.recover(self.run_dir):
                    print(line)
            elif overwrite:
                clear_run(self.run_dir)
            else:
                refuse_if_held(self.run_dir)
        self.method.setup_training()
        if self.cfg.train.fused_optimizers:
            self.engine.fuse_optimizers()
        if resume:
            self._resume()  # validates and loads; writes nothing, so a refused resume leaves the run as it was
        if self.engine.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.folder.write_config(self.cfg)
            if resume:  # rows past the checkpoint are trained again: drop them, image counts stay increasing
                dropped = self.folder.drop_metrics_after(self.images_seen)
                if dropped:
                    print(f"{self.folder.metrics.name}: dropped {dropped} rows past {self.images_seen} images "
                          "(trained again)")

    # ---- state ---------------------------------------------------------------------------------
    def _resume(self) -> None:
        for bad in ckpts.incomplete_checkpoints(self.run_dir):
            if self.engine.is_main:
                print(f"skipping incomplete checkpoint {bad} (files missing: its save was interrupted)")
        found = ckpts.list_checkpoints(self.run_dir)
        if not found:
            log.warning("no checkpoint in %s: starting from scratch", self.run_dir)
            return
        ckpt = found[-1]
        self._check_resumable(ckpt)
        state = ckpts.load_checkpoint(ckpt, self.method.networks(), self.engine.optimizers)
        c = ckpts.resume_counters(ckpt, state)
        self._saved_at = c["images_seen"]
        self.step, self.images_seen = c["step"], c["images_seen"]
        self.train_seconds = c.get("train_seconds", 0.0)
        self.engine.skipped_steps = c.get("skipped_steps", 0)
        if "scaler" in state and self.engine.scaler.is_enabled():
            self.engine.scaler.load_state_dict(state["scaler"])
        if self.engine.is_main:
            print(f"resumed from {ckpt} at {self.images_seen} images (step {self.step})")

    def _check_resumable(self, ckpt: Path) -> None:
        """Refuse settings the checkpoint cannot continue with, before anything is loaded or written."""
        saved = RunConfig.load(ckpts.config_path(ckpt)) if ckpts.config_path(ckpt).exists() else None
        batch = ckpts.resume_counters(ckpt, ckpts.read_state(ckpt))["global_batch"]
        wrong = []
        if batch != self.cfg.train.batch:
            wrong.append(f"global batch {batch}, not {self.cfg.train.batch}: resume with --batch {batch}")
        if saved is not None and saved.method != self.cfg.method:
            wrong.append(f"method {saved.method}, not {self.cfg.method}: resume with --method {saved.method}")
        if saved is not None and saved.data.size != self.cfg.data.size:
            wrong.append(f"size {saved.data.size} px, not {self.cfg.data.size}: resume with --size {saved.data.size}")
        if saved is not None and saved.data.width != self.cfg.data.width:
            wrong.append(f"crop width {saved.data.width}, not {self.cfg.data.width}: resume with "
                         f"--set data.width={saved.data.width}")
        if wrong:
            raise DataError(f"--resume {self.run_dir}: {ckpt.name} was trained with " + "; ".join(wrong) +
                            " (or train a new run with another --out)")

    def save(self) -> Path | None:
        if not self.engine.is_main or self._saved_at == self.images_seen:
            return None  # the newest checkpoint already holds exactly these weights
        if self.engine.consecutive_bad or not self._weights_finite():
            print(f"no checkpoint at {self.images_seen} images: the last step had non-finite losses or weights; "
                  f"the last good one stays the newest")
            return None
        counters = {"step": self.step, "images_seen": self.images_seen, "global_batch": self.cfg.train.batch,
                    "skipped_steps": self.engine.skipped_steps, "train_seconds": round(self.train_seconds, 3)}
        extra = {"scaler": self.engine.scaler.state_dict()} if self.engine.scaler.is_enabled() else {}
        path = ckpts.save_checkpoint(self.run_dir, self.method.networks(), self.engine.optimizers, counters,
                                     keep=self.cfg.train.keep_checkpoints, extra=extra, config=self.cfg.to_dict())
        self._saved_at = self.images_seen
        return path

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for net in self.method.networks().values()
                   for p in net.state_dict().values() if p.is_floating_point())

    def _diverged_message(self) -> str:
        good = ckpts.list_checkpoints(self.run_dir)
        where = (f"the last good checkpoint is {good[-1]}: continue from it with --resume {self.run_dir} and a "
                 f"lower learning rate (--set model.lr_g=... --set model.lr_d=...) or --precision fp32"
                 if good else "no checkpoint was written: start again with a lower learning rate or fp32")
        return (f"training diverged in {self.run_dir}: {self.engine.consecutive_bad} consecutive steps had "
                f"non-finite losses or gradients, stopped at {self.images_seen} images; {where}")

    # ---- the loop ------------------------------------------------------------------------------
    def _request_stop(self, signum, frame):
        self._stop_requested = True
        self.stop_signal = signum
        note_stop(signum)  # the process remembers it past this run (an experiment's worker starts no other)

    def _stop_agreed(self) -> bool:
        """A stop request seen by any process stops every process after the same step (else the others
        would wait forever in the next step's gradient all-reduce)."""
        if self.engine.distributed:
            flag = torch.tensor([float(self._stop_requested)], device=self.engine.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self._stop_requested = bool(flag.item())
        return self._stop_requested

    def _due(self, every: int, before: int) -> bool:
        return every > 0 and self.images_seen // every > before // every

    def _write_metrics(self, row: dict) -> None:
        self.folder.append_metrics(row)
        self.tb.log_row(row)

    def samples(self) -> Path | None:
        if not self.engine.is_main or self.holdout is None:
            return None
        path = self.folder.sample_path(self.images_seen)
        save_sample_grid(self.method, self.holdout, path, self.cfg.train.samples_per_input, self.cfg.train.seed)
        self.tb.log_grid(path, self.images_seen)
        return path

    def monitors(self) -> dict[str, float]:
        if self.holdout is None:
            return {}
        holdout = {k: self.engine.prepare_images(v) for k, v in self.holdout.items() if v.dtype == torch.uint8}
        gen = torch.random.fork_rng(devices=[])
        with gen:
            torch.manual_seed(self.cfg.train.seed)
            return self.method.monitors(holdout)

    def write_summary(self) -> None:
        """summary.md: what the method's `summary` hook says about its monitors (for the adversarial methods the
        paper's two conditions)."""
        if not self.engine.is_main:
            return
        text = self.method.summary(self.run_dir, self.folder.metrics_rows())  # in file order, as logged
        self.folder.summary.write_text(f"# {self.cfg.method} run: {self.images_seen} images\n\n{text}\n")
        print(text)

    def run(self, stop_after_images: int | None = None) -> dict:
        """Train until the budget (or `stop_after_images`, for tests that simulate a kill); the run folder's lock
        is released when it returns or fails."""
        try:
            result = self._run(stop_after_images)
        except BaseException:
            self.release()
            raise
        if self.images_seen >= self.cfg.train.budget or self._stop_requested:
            self.release()  # ended: a chunk of a longer run (stop_after_images) keeps the folder
        return result

    def release(self) -> None:
        """Give up the run folder's lock (another process may then train into it)."""
        if self.lock is not None:
            self.lock.release()

    def _run(self, stop_after_images: int | None) -> dict:
        t, e = self.cfg.train, self.engine
        limit = min(t.budget, stop_after_images) if stop_after_images else t.budget
        old_handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[sig] = signal.signal(sig, self._request_stop)
            except ValueError:  # not the main thread
                pass
        prefetch = Prefetcher(self.source, self.step, self.cfg.data.workers)
        if e.is_main:
            print(f"data: {self.source.report()}")
            lrs = ", ".join(f"{n} {o.param_groups[0]['lr']:.3g}" for n, o in e.optimizers.items())
            print(f"training {self.cfg.method} at {self.cfg.data.size}px, global batch {t.batch} "
                  f"({t.batch // self.world} per process x {self.world}), lr {lrs}, budget {t.budget} images "
                  f"-> {self.run_dir}")
            counts = self.method.parameter_counts()
            print("parameters: " + ", ".join(f"{n} {c / 1e6:.2f}M" for n, c in counts.items()))
            self.folder.parameters.write_text(json.dumps(counts, indent=2) + "\n")
        pbar = tqdm(total=limit, initial=self.images_seen, unit="img", disable=not e.is_main, dynamic_ncols=True,
                    mininterval=1.0)
        sums: dict[str, float] = {}
        count, t_log, img_log = 0, time.perf_counter(), self.images_seen
        last: dict = {}
        for net in self.method.networks().values():
            net.train()
        try:
            while self.images_seen < limit and not self._stop_agreed():
                step_start = time.perf_counter()
                torch.manual_seed(step_seed(t.seed, self.step, self.rank))
                raw = prefetch.next()
                batch = {k: e.prepare_images(v) if v.dtype == torch.uint8 else v.to(e.device) for k, v in raw.items()}
                if self.cfg.data.flip:
                    g = torch.Generator().manual_seed(step_seed(t.seed + 1, self.step, self.rank))
                    flip_batch(batch, self.method.flip_together, g)
                logs = self.method.train_step(batch, self.step)
                before = self.images_seen
                self.step += 1
                self.images_seen += t.batch
                if self.method.ema_of:
                    self.method.update_ema(self.method.ema_beta(self.images_seen, t.batch))
                if e.consecutive_bad >= t.max_bad_steps:
                    raise TrainingDiverged(self._diverged_message())
                for k, v in logs.items():  # non-finite values stay so: a diverged loss must not read as 0
                    if isinstance(v, torch.Tensor):  # a device tensor: summed on the device, read at log time
                        v = v.detach().float()
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                pbar.update(t.batch)
                if self._due(t.log_every, before) or self.images_seen >= limit:
                    now = time.perf_counter()
                    rate = (self.images_seen - img_log) / max(now - t_log, 1e-9)
                    last = {k: float(v) / count for k, v in sums.items()}
                    row = {"images": self.images_seen, "step": self.step, "images_per_s": round(rate, 2),
                           "skipped_steps": e.skipped_steps, **{k: round(v, 5) for k, v in last.items()}}
                    if e.is_main and (self._due(t.monitor_every, before) or self.images_seen >= limit):
                        row.update({k: round(v, 5) for k, v in self.monitors().items()})
                    if e.is_main:
                        self._write_metrics(row)
                        pbar.set_postfix({k: f"{v:.3g}" for k, v in last.items() if k.startswith("loss")},
                                         refresh=False)
                    sums, count, t_log, img_log = {}, 0, time.perf_counter(), self.images_seen
                    last = row
                if self._due(t.sample_every, before):
                    self.samples()
                if self._due(t.checkpoint_every, before):
                    self.save()
                self.train_seconds += time.perf_counter() - step_start
                if t.max_minutes and self.train_seconds >= t.max_minutes * 60:
                    self.time_capped = self._stop_requested = True  # every process stops after the same step
        finally:
            pbar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        self.save()
        sample_path = self.samples()
        self.write_summary()
        if e.distributed:
            dist.barrier()
        if self.time_capped and e.is_main:
            print(f"stopped at the time cap (train.max_minutes {t.max_minutes:g}) after {self.images_seen} images")
        elif self._stop_requested and e.is_main:
            print(f"stopped on request at {self.images_seen} images; "
                  f"resume with: shapetex train --resume {self.run_dir}")
        return {"run_dir": str(self.run_dir), "images_seen": self.images_seen, "last": last,
                "samples": str(sample_path) if sample_path else None, "skipped_steps": e.skipped_steps,
                "train_seconds": self.train_seconds, "time_capped": self.time_capped, "stopped_by": self.stop_signal}


def train(cfg: RunConfig, resume: bool = False, overwrite: bool = False) -> dict:
    return Trainer(cfg, resume=resume, overwrite=overwrite).run()
