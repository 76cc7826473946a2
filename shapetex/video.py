"""Video files in and out, through PyAV (its wheels bundle FFmpeg): the `video` extra. Frames are H x W x 3 uint8
RGB arrays. Nothing here imports PyAV until a video is opened, so `wants_video` costs nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .data.images import DataError

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
# what each written container holds: H.264 (x264, near-lossless crf 18, so the file adds little change of its own
# between frames) where the container takes it, VP9 in WebM
WRITABLE = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}
OPTIONS = {"libx264": {"crf": "18", "preset": "medium"}, "libvpx-vp9": {"crf": "20", "b": "0"}}
DEFAULT_FPS = Fraction(25)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def wants_video(src: str | Path, out: str | Path) -> bool:
    """Whether `translate --input src --out out` is a clip: a video file in, or a video file named as --out."""
    return (is_video(src) and Path(src).is_file()) or is_video(out)


def require_av():
    """PyAV, or one line naming the extra."""
    try:
        import av
    except ImportError:
        raise DataError("video needs PyAV: pip install 'shapetex[video]' (or pip install av); it bundles "
                        "FFmpeg") from None
    return av


@dataclass
class ClipInfo:
    width: int
    height: int
    fps: Fraction
    frames: int | None  # None: the container does not say
    audio: bool = False


class VideoReader:
    """The frames of a video file, in order, with its size, frame rate and frame count."""

    def __init__(self, path: str | Path):
        av = require_av()
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read video {self.path}: {e}; is it a video file?") from None
        if not self._container.streams.video:
            self._container.close()
            raise DataError(f"{self.path} has no video stream")
        s = self._container.streams.video[0]
        s.thread_type = "AUTO"
        fps = s.average_rate or s.guessed_rate or s.base_rate
        self.stream = s
        self.info = ClipInfo(s.codec_context.width, s.codec_context.height, Fraction(fps) if fps else DEFAULT_FPS,
                             s.frames or None, bool(self._container.streams.audio))

    def __iter__(self) -> Iterator[np.ndarray]:
        av = require_av()
        try:
            for frame in self._container.decode(self.stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as e:
            raise DataError(f"{self.path}: the video could not be decoded past a point ({e})") from None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoWriter:
    """Frames into a video file at a fixed frame rate; the codec from the file's suffix (WRITABLE). Odd sizes are
    kept (4:4:4 chroma then, which 4:2:0 cannot hold)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction, suffix: str | None = None):
        av = require_av()
        self.path = Path(path)
        suffix = (suffix or self.path.suffix).lower()
        if suffix not in WRITABLE:
            raise DataError(f"cannot write {suffix or 'no suffix'} video: give --out a name ending in "
                            f"{', '.join(sorted(WRITABLE))}")
        codec = WRITABLE[suffix]
        if codec not in av.codecs_available:  # an FFmpeg built without x264
            codec = "mpeg4"
        self.codec = codec
        self._container = av.open(str(self.path), mode="w", format=_FORMATS.get(suffix))
        s = self._container.add_stream(codec, rate=fps)
        s.width, s.height = width, height
        odd = width % 2 or height % 2
        s.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
        s.options = OPTIONS.get(codec, {})
        s.codec_context.time_base = 1 / Fraction(fps)
        self.stream = s
        self.count = 0
        self._tb = 1 / Fraction(fps)

    def write(self, rgb: np.ndarray) -> None:
        av = require_av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = self.count, self._tb
        for packet in self.stream.encode(frame):
            self._container.mux(packet)
        self.count += 1

    def close(self) -> None:
        for packet in self.stream.encode():  # flush the encoder's delayed frames
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # unwinding: no flush, the temporary file is removed by its owner
            self._container.close()


# FFmpeg's muxer for a suffix, where the temporary name's suffix would not say (write_then_rename keeps it)
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def video_info(path: str | Path) -> ClipInfo:
    """Size, frame rate and the number of frames (counted by decoding when the container does not say)."""
    with VideoReader(path) as r:
        info = r.info
        if info.frames is None:
            info.frames = sum(1 for _ in r)
    return info


def read_frames(path: str | Path) -> list[np.ndarray]:
    with VideoReader(path) as r:
        return list(r)
