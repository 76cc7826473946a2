"""Video in, video out: a short clip of moving shapes made here (a real H.264 encode through PyAV), translated end
to end by `shapetex translate`; frame count, size and rate kept; one z and noise field for the clip flickers less
than a new one per frame."""

from __future__ import annotations

import importlib.util
import re
import sys
from fractions import Fraction

import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image

from shapetex import Translator
from shapetex.cli import main
from shapetex.clip import FlickerMeter, translate_frames
from shapetex.train import Trainer

needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None,
                              reason="PyAV is not installed: pip install 'shapetex[video]' (the test extra has it)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    Trainer(tiny_config(out, budget=16)).run()
    return out


def moving_shapes(n: int = 16, size: tuple[int, int] = (40, 48)) -> list[np.ndarray]:
    """A square sliding right and a disc sliding down, over a still background with a still stripe."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    frames = []
    for t in range(n):
        a = np.zeros((h, w, 3), np.uint8)
        a[...] = (40, 70, 100)
        a[:, w - 6:w - 3] = (240, 240, 240)
        a[8:22, 2 + t:16 + t] = (230, 130, 40)
        a[(yy - 4 - t) ** 2 + (xx - 30) ** 2 < 36] = (60, 200, 80)
        frames.append(a)
    return frames


def write_clip(path, frames, fps=Fraction(12)):
    from shapetex.video import VideoWriter

    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, fps) as v:
        for f in frames:
            v.write(f)
    return path


@needs_av
def test_a_clip_is_translated_end_to_end_keeping_frames_size_and_rate(run, tmp_path, capsys):
    from shapetex.video import read_frames, video_info

    clip = write_clip(tmp_path / "clip.mp4", moving_shapes(16))
    out = tmp_path / "res" / "out.mp4"
    assert main(["translate", "--checkpoint", str(run), "--input", str(clip), "--out", str(out), "--batch", "5"]) == 0
    printed = capsys.readouterr().out
    info = video_info(out)
    assert (info.frames, info.width, info.height, info.fps) == (16, 48, 40, Fraction(12))
    assert re.search(r"flicker \(one z and noise for the clip\): the output changes [\d.]+ per frame", printed)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.mp4"]  # no temporary file left beside it
    # the output is the translation of each frame, as stills would be (up to the encoder's rounding)
    t = Translator.load(run)
    decoded = read_frames(clip)
    still = np.asarray(t(Image.fromarray(decoded[7]), seed=0)[0], np.float32)
    assert np.abs(read_frames(out)[7].astype(np.float32) - still).mean() < 8

    # again: refused without --overwrite; an odd size and 29.97 fps from a folder of frames are kept too
    assert main(["translate", "--checkpoint", str(run), "--input", str(clip), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(moving_shapes(5, (37, 49))):
        Image.fromarray(f).save(frames / f"{i:03d}.png")
    assert main(["translate", "--checkpoint", str(run), "--input", str(frames), "--out", str(tmp_path / "f.mkv"),
                 "--fps", "29.97"]) == 0
    info = video_info(tmp_path / "f.mkv")
    assert (info.frames, info.width, info.height) == (5, 49, 37) and abs(float(info.fps) - 29.97) < 1e-3


@needs_av
def test_one_z_for_the_clip_flickers_less_than_a_new_z_per_frame(run, tmp_path, capsys):
    t = Translator.load(run)
    frames = moving_shapes(12)
    figures = {}
    for per_frame in (False, True):
        meter = FlickerMeter()
        for inp, out in translate_frames(t, frames, seed=3, new_z_per_frame=per_frame, batch=4):
            assert out.shape == inp.shape and out.dtype == np.uint8
            meter.add(inp, out)
        figures[per_frame] = meter.result
    fixed, new = figures[False], figures[True]
    assert fixed.frames == new.frames == 12 and fixed.input_change == new.input_change > 0
    assert fixed.output_change < new.output_change / 2
    assert fixed.still_output_change < new.still_output_change / 2  # where the input is still, so is the output
    # the batch does not change a frame's output (one z for the clip, whatever the batch holds)
    one = [o for _, o in translate_frames(t, frames[:5], seed=3, batch=1)]
    five = [o for _, o in translate_frames(t, frames[:5], seed=3, batch=5)]
    assert all(np.array_equal(a, b) for a, b in zip(one, five))

    # and the command prints the figure for both ways
    clip = write_clip(tmp_path / "clip.mp4", frames)
    ratios = []
    for extra in ([], ["--new-z-per-frame"]):
        out = tmp_path / f"o{len(extra)}.mp4"
        assert main(["translate", "--checkpoint", str(run), "--input", str(clip), "--out", str(out), *extra]) == 0
        ratios.append(float(re.search(r"\(([\d.]+)x the input's\)", capsys.readouterr().out).group(1)))
    assert ratios[0] < ratios[1] / 2


@needs_av
def test_a_clip_that_fails_midway_leaves_no_file(run, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(moving_shapes(4)):
        Image.fromarray(f).save(frames / f"{i:03d}.png")
    Image.new("RGB", (10, 10)).save(frames / "004.png")  # a frame of another size
    out = tmp_path / "res"
    out.mkdir()
    assert main(["translate", "--checkpoint", str(run), "--input", str(frames), "--out", str(out / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("shapetex translate: error: frame") and "004.png is 10x10" in err and "share one" in err
    assert list(out.iterdir()) == []


def test_without_pyav_a_video_is_one_line_naming_the_extra(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError, as when it is not installed
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")
    assert main(["translate", "--checkpoint", str(run), "--input", str(clip), "--out", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'shapetex[video]'" in err
