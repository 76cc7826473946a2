"""The demo bounds the work of one request and deletes what it wrote (no Gradio, no model: a stand-in translator)."""

import pytest
from PIL import Image

from shapetex.demo import DemoApp, DemoSettings, InputRejected


class Echo:
    """Stands in for a Translator: returns copies of the input, and counts the pixels it was asked for."""

    size, z_dim = 16, 8

    def __init__(self):
        self.work = 0

    def __call__(self, image, samples=1, seed=0, native=False, tile=None, overlap=0):
        self.work += (image.width * image.height if native else self.size**2) * samples
        return [image.copy() for _ in range(samples)]


def _image(path, w, h):
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)
    return str(path)


def test_one_request_is_bounded_in_pixels_times_samples(tmp_path):
    t = Echo()
    app = DemoApp(t, DemoSettings(max_pixels=10**6, max_samples=8, max_work=50_000), tmp_path / "o")
    big = _image(tmp_path / "big.png", 100, 100)
    with pytest.raises(InputRejected, match=r"100 x 100 x 8 samples = 80,000 pixels; this demo translates at most "
                                            r"50,000 \(setting: --max-work\)"):
        app.translate(big, samples=8, seed=0, full_res=True)
    assert t.work == 0  # refused before any translation
    results, _ = app.translate(big, samples=5, seed=0, full_res=True)  # 50,000: just fits
    assert len(results) == 5
    results, _ = app.translate(big, samples=8, seed=0, full_res=False)  # 16 x 16 x 8 at the training size
    assert len(results) == 8


def test_old_results_are_deleted_and_close_removes_the_folder(tmp_path):
    src = _image(tmp_path / "in.png", 20, 20)
    app = DemoApp(Echo(), DemoSettings(keep_results=2), tmp_path / "given")
    paths = [app.translate(src, 1, seed)[0][0][0] for seed in range(4)]
    folders = sorted(p.name for p in (tmp_path / "given").iterdir())
    assert folders == ["00003", "00004"] and all(p.endswith(".png") for p in paths)
    app.close()
    assert list((tmp_path / "given").iterdir()) == []  # a folder we were given stays, emptied of our results
    own = DemoApp(Echo(), DemoSettings())
    own.translate(src, 2, 0)
    assert own.out_dir.exists()
    own.close()
    assert not own.out_dir.exists()
