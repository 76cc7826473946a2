"""Translating a clip (a video file, or a folder of frames) frame by frame, with one z and one noise field for the
whole clip, and measuring its flicker.

With the same seed for every frame, `Translator` gives every frame the same z and the same noise inputs (a field
fixed by the seed and the pixel position): the streamlined translator's output then changes only where, and as
much as, the input does. Drawing a new z (and noise) per frame, as a frame-by-frame loop over a sampler does, makes
it flicker; `new_z_per_frame` does that, to compare. Flicker is the mean absolute change between consecutive
output frames, against the same for the input: 1 is as much change as the input has, more is flicker.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .config import ConfigError
from .data.images import DataError

STILL = 2  # a pixel whose input changed by at most this (of 255, any channel) counts as still


@dataclass
class Flicker:
    frames: int = 0
    input_change: float = 0.0  # mean |frame t - frame t-1| of the input, in [0, 1] units
    output_change: float = 0.0  # the same of the output
    still_output_change: float = 0.0  # the output's change where the input did not change (STILL)

    @property
    def ratio(self) -> float:
        return self.output_change / self.input_change if self.input_change > 0 else float("inf")

    def line(self, mode: str) -> str:
        if self.frames < 2:
            return "flicker: needs two frames or more"
        ratio = f"{self.ratio:.2f}x the input's" if self.input_change > 0 else "the input is still"
        return (f"flicker ({mode}): the output changes {self.output_change:.4f} per frame, the input "
                f"{self.input_change:.4f} ({ratio}); where the input is still: {self.still_output_change:.4f}")


class FlickerMeter:
    """Accumulates Flicker over (input, output) frame pairs, in order."""

    def __init__(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._sums = np.zeros(3)
        self._still_pixels = 0
        self.result = Flicker()

    def add(self, inp: np.ndarray, out: np.ndarray) -> None:
        inp, out = inp.astype(np.int16), out.astype(np.int16)
        if self._prev is not None:
            d_in, d_out = np.abs(inp - self._prev[0]), np.abs(out - self._prev[1])
            still = d_in.max(axis=-1) <= STILL
            self._sums += (d_in.mean(), d_out.mean(), d_out[still].sum())
            self._still_pixels += int(still.sum()) * d_out.shape[-1]
        self._prev = (inp, out)
        r = self.result
        r.frames += 1
        steps = max(r.frames - 1, 1)
        r.input_change, r.output_change = self._sums[0] / steps / 255, self._sums[1] / steps / 255
        r.still_output_change = self._sums[2] / max(self._still_pixels, 1) / 255


def translate_frames(t, frames: Iterable[np.ndarray], seed: int = 0, new_z_per_frame: bool = False,
                     batch: int = 8, **kwargs) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(input, output) per frame, in order. `t`: a Translator; the frames are H x W x 3 uint8 arrays. One z and
    noise field (from `seed`) for all frames, or a new one per frame (seed + frame index). `kwargs` go to the
    Translator (native, tile, to, ...)."""
    index = 0
    for chunk in _batches(frames, max(1, batch)):
        if new_z_per_frame:
            outs = [t(f, samples=1, seed=seed + index + i, **kwargs)[0] for i, f in enumerate(chunk)]
        else:
            outs = [r[0] for r in t(chunk, samples=1, seed=seed, batch_size=len(chunk), **kwargs)]
        index += len(chunk)
        yield from zip(chunk, outs)


def _batches(frames: Iterable[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    chunk = []
    for f in frames:
        chunk.append(f)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---- the translate command's clip path ------------------------------------------------------------------------
@dataclass
class ClipSource:
    frames: Iterable[np.ndarray]
    width: int
    height: int
    fps: Fraction
    count: int | None
    note: str


def _frame_folder(folder: Path, fps: Fraction) -> ClipSource:
    from .data.images import list_images, load_rgb

    files = list_images(folder)
    first = load_rgb(files[0])
    h, w = first.shape[:2]

    def frames() -> Iterator[np.ndarray]:
        for f in files:
            arr = load_rgb(f)
            if arr.shape[:2] != (h, w):
                raise DataError(f"frame {f} is {arr.shape[1]}x{arr.shape[0]}, the first ({files[0].name}) {w}x{h}: "
                                "a clip's frames must share one size")
            yield arr

    return ClipSource(frames(), w, h, fps, len(files), f"{folder}: {len(files)} frames (in name order), {w}x{h}, "
                                                       f"{_fps_text(fps)} fps (--fps)")


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}"


def output_path(src: Path, out: Path) -> Path:
    """--out as given when it names a video file; else OUT/<input's stem>.mp4 (its own suffix when writable)."""
    from .video import WRITABLE, is_video

    if is_video(out):
        return out
    suffix = src.suffix.lower() if src.suffix.lower() in WRITABLE else ".mp4"
    return out / f"{src.stem}{suffix}"


def run_clip(args: argparse.Namespace) -> int:
    """`shapetex translate` with a video file as --input or --out."""
    from tqdm import tqdm

    from .api import Translator
    from .atomic import write_then_rename
    from .video import VIDEO_SUFFIXES, VideoReader, VideoWriter, is_video, require_av

    require_av()
    src = Path(args.input)
    if args.samples != 1:
        raise ConfigError("--samples: a video gets one output per frame; run again with another --seed for another z")
    if args.fps is not None and not 0 < args.fps < float("inf"):  # nan and inf have no Fraction
        raise ConfigError(f"--fps must be positive, got {args.fps}")
    fps = Fraction(args.fps).limit_denominator(1001) if args.fps else None
    reader = None
    if src.is_dir():
        source = _frame_folder(src, fps or Fraction(25))
    elif src.is_file() and is_video(src):
        reader = VideoReader(src)
        i = reader.info
        if fps is not None and fps != i.fps:
            print(f"note: --fps {args.fps} replaces the clip's {_fps_text(i.fps)} fps")
        source = ClipSource(reader, i.width, i.height, fps or i.fps, i.frames,
                            f"{src}: {i.frames or 'unknown number of'} frames, {i.width}x{i.height}, "
                            f"{_fps_text(i.fps)} fps" + (" (its audio is not copied)" if i.audio else ""))
    elif src.is_file():
        raise DataError(f"--input {src}: a video file ({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder of "
                        "frames is needed to write a video")
    else:
        raise DataError(f"--input not found: {src}")
    try:
        out = output_path(src, Path(args.out))
        if out.exists() and not args.overwrite:
            raise DataError(f"{out} already exists: pass --overwrite to replace it, or choose another --out")
        if out.resolve() == src.resolve():
            raise DataError(f"--out {out} is the input video: choose another --out")
        if args.batch < 1:
            raise ConfigError("--batch must be at least 1")
        t = Translator.load(args.checkpoint, device=args.device, precision=args.precision)
        print(t.precision_line())
        print(source.note)
        kwargs = {"to": args.to} if args.to else {}
        if args.tile:
            kwargs.update(tile=args.tile, overlap=args.overlap)
        mode = "a new z and noise per frame" if args.new_z_per_frame else "one z and noise for the clip"
        meter, codec = FlickerMeter(), []
        out.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with VideoWriter(tmp, source.width, source.height, source.fps, suffix=out.suffix) as w, \
                    tqdm(total=source.count, unit="frame", desc="translating", dynamic_ncols=True) as bar:
                for inp, res in translate_frames(t, source.frames, args.seed, args.new_z_per_frame, args.batch,
                                                 native=args.native or None, **kwargs):
                    w.write(res)
                    meter.add(inp, res)
                    bar.update(1)
                if w.count == 0:
                    raise DataError(f"{src}: no frames decoded")
                codec.append(w.codec)

        write_then_rename(out, write)  # a stop midway leaves nothing under the final name
    finally:
        if reader is not None:
            reader.close()
    r = meter.result
    print(f"wrote {out}: {r.frames} frames, {source.width}x{source.height}, {_fps_text(source.fps)} fps "
          f"({codec[0]})")
    print(meter.result.line(mode))
    return 0
