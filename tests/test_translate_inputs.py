"""`shapetex translate` on rotated, 16-bit and truncated files."""

import io

import numpy as np
from PIL import Image
from test_evaluate import _tiny_run

from shapetex.cli import main


def _noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _translate(run, src, out):
    return main(["translate", "--checkpoint", str(run), "--input", str(src), "--out", str(out)])


def test_translate_reads_exif_orientation_16_bit_levels_and_reports_truncated_files(tmp_path, capsys):
    run = _tiny_run(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees: a 20 x 10 stored image is 10 x 20 on screen
    Image.fromarray(_noise(10, 20)).save(src / "rotated.jpg", exif=exif.tobytes())
    Image.fromarray(np.full((9, 12), 40000, np.uint16)).save(src / "deep.tif")  # 16-bit: level 156 of 255
    Image.fromarray(np.full((9, 12, 3), 156, np.uint8)).save(src / "same.png")
    buf = io.BytesIO()
    Image.fromarray(_noise(40, 40, seed=1)).save(buf, "PNG")
    (src / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    buf = io.BytesIO()
    Image.fromarray(_noise(40, 40, seed=2)).save(buf, "JPEG")
    (src / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    out = tmp_path / "out"
    assert _translate(run, src, out) == 0
    err = capsys.readouterr().err
    assert "could not read 2 of 5" in err and "cut.png" in err and "cut.jpg" in err
    assert Image.open(out / "rotated.png").size == (10, 20)
    deep, same = (np.asarray(Image.open(out / name)) for name in ("deep.png", "same.png"))
    assert deep.shape == (9, 12, 3) and (deep == same).all()  # the 16-bit image reads as its 8-bit equal
    assert not (out / "cut.png").exists()
