import json

import numpy as np
from helpers import tiny_config
from PIL import Image

from shapetex import Translator
from shapetex.cli import main
from shapetex.train import Trainer


def _trained(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(run, budget=16)).run()
    return run


def test_train_writes_a_complete_run_folder(tmp_path):
    run = tmp_path / "cli"
    code = main(["train", "--data", "builtin", "--size", "32", "--batch", "8", "--budget", "16", "--out", str(run),
                 "--set", "data.builtin_count=32", "--set", "model.g_channel_max=32", "--set", "model.d_channel_max=32",
                 "--set", "train.log_every=8", "--set", "train.sample_every=8"])
    assert code == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "adversarial" and cfg["model"]["bottleneck_res"] == 16 and cfg["model"]["z_dim"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["images"] == 16 and "loss_g" in rows[-1] and rows[-1]["images_per_s"] > 0
    assert (run / "samples" / "0000000008.png").exists()
    summary = (run / "summary.md").read_text()  # the paper's two conditions, at the end of the run
    assert "recon_mse" in summary and "d_accuracy" in summary
    grid = Image.open(run / "samples" / "0000000016.png")
    assert grid.width > grid.height / 8 * 4  # input column + 4 z samples per row


def test_translate_odd_inputs_keeps_names_sizes_and_reports_failures(tmp_path, capsys):
    run = _trained(tmp_path)
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.new("RGBA", (257, 123), (10, 200, 30, 100)).save(src / "rgba.png")
    Image.new("L", (19, 45), 128).save(src / "sub" / "gray.png")
    Image.new("P", (40, 40)).save(src / "pal.gif")
    Image.fromarray(np.zeros((30, 31, 3), np.uint8)).save(src / "photo.jpg")
    (src / "bad.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    code = main(["translate", "--checkpoint", str(run), "--input", str(src), "--samples", "2", "--out", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "could not read 1 of 5" in err and "bad.png" in err
    for name, size in [("rgba_0.png", (257, 123)), ("rgba_1.png", (257, 123)), ("sub/gray_0.png", (19, 45)),
                       ("pal_1.png", (40, 40)), ("photo_0.png", (31, 30))]:
        assert Image.open(out / name).size == size, name


def test_translator_api_is_repeatable_per_seed_and_varies_with_it(tmp_path):
    t = Translator.load(_trained(tmp_path))
    img = Image.new("RGB", (32, 32), (150, 80, 40))
    a = np.asarray(t(img, samples=2, seed=3)[1])
    b = np.asarray(t(img, samples=2, seed=3)[1])
    c = np.asarray(t(img, samples=2, seed=4)[1])
    assert (a == b).all() and not (a == c).all()
    arr = t(np.zeros((20, 24, 3), np.uint8))[0]
    assert isinstance(arr, np.ndarray) and arr.shape == (20, 24, 3)


def test_missing_input_is_a_clear_error(tmp_path, capsys):
    run = _trained(tmp_path)
    assert main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "nope.png")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["translate", "--checkpoint", str(tmp_path), "--input", str(tmp_path)]) == 2


def test_translate_never_merges_overwrites_or_replaces_sources_silently(tmp_path, capsys):
    run = _trained(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (32, 32), (200, 0, 0)).save(src / "a.jpg")
    Image.new("RGB", (32, 32), (0, 200, 0)).save(src / "a.png")
    Image.new("RGB", (32, 32), (0, 0, 200)).save(src / "b.png")
    out = tmp_path / "out"
    args = ["translate", "--checkpoint", str(run), "--input", str(src), "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.png", "a_png.png", "b.png", "index.html"]
    assert "wrote 3 images" in text
    assert "a.jpg, a.png share a name" in text
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main([*args, "--seed", "7"]) == 2  # outputs exist: refused, nothing rewritten
    err = capsys.readouterr().err
    assert "3 of 3 outputs already exist" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main([*args, "--seed", "7", "--overwrite"]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} != before
    sources = {p.name: p.read_bytes() for p in src.iterdir()}
    for bad_out in (src, src / "sub"):  # the input folder, or inside it: refused even with --overwrite
        assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--out", str(bad_out),
                     "--overwrite"]) == 2
        assert "inside the input folder" in capsys.readouterr().err
    # one file translated next to itself: b.png -> b.png would replace the source
    assert main(["translate", "--checkpoint", str(run), "--input", str(src / "b.png"), "--out", str(src),
                 "--overwrite"]) == 2
    assert "one of the input images" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in src.iterdir()} == sources


def test_translate_folder_batches_tiles_and_writes_an_index(tmp_path, capsys):
    run = _trained(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (24 + i, 30, 3), dtype=np.uint8)).save(src / f"im{i}.png")
    outs = {}
    for batch in (1, 3):
        out = tmp_path / f"out{batch}"
        assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--samples", "2", "--batch",
                     str(batch), "--out", str(out)]) == 0
        outs[batch] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))}
    assert len(outs[1]) == 10 and outs[1].keys() == outs[3].keys()
    assert all(np.array_equal(outs[1][k], outs[3][k]) for k in outs[1])  # the batch does not change the results
    page = (tmp_path / "out3" / "index.html").read_text()
    assert page.count("<tr>") == 6 and '<img src="../in/im0.png">' in page and '<img src="im0_1.png">' in page
    assert "side by side:" in capsys.readouterr().out
    tiled = tmp_path / "tiled"
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(big / "wide.png")
    assert main(["translate", "--checkpoint", str(run), "--input", str(big), "--tile", "32", "--overlap", "8",
                 "--out", str(tiled), "--no-index"]) == 0
    assert Image.open(tiled / "wide.png").size == (90, 70) and not (tiled / "index.html").exists()
    mine = tmp_path / "out1" / "index.html"
    mine.write_text("<html>my own page</html>")  # a page shapetex did not write is never replaced
    assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--out", str(tmp_path / "out1"),
                 "--overwrite"]) == 0
    assert mine.read_text() == "<html>my own page</html>" and "left as it is" in capsys.readouterr().out
