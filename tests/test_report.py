import base64
import html
import io
import json
import re
import shutil
import sys

import pytest
import torch
from helpers import tiny_config
from PIL import Image

from shapetex import tb
from shapetex.cli import main
from shapetex.run import Run
from shapetex.train import Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("report") / "run"
    cfg = tiny_config(out, budget=24)
    cfg.train.log_every = cfg.train.sample_every = cfg.train.monitor_every = 8
    Trainer(cfg).run()
    return out


def _images(page: str) -> dict[str, bytes]:
    return {html.unescape(alt): base64.b64decode(data)
            for alt, data in re.findall(r'alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)}


def test_report_embeds_plots_grids_config_and_final_metrics(run, capsys):
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    images = _images(page)
    # the loss curves: a real PNG picture
    loss = Image.open(io.BytesIO(images["losses plot"]))
    assert loss.format == "PNG" and loss.width > 200 and loss.height > 100
    assert "condition monitors plot" in images  # recon_mse, d_accuracy
    # every sample grid over time, byte for byte
    grids = sorted(p for p in (run / "samples").glob("*.png"))
    assert [p.stem for p in grids] == ["0000000008", "0000000016", "0000000024"]
    for p in grids:
        assert images[f"sample grid at {int(p.stem)} images"] == p.read_bytes()
    # config values and the last metrics line
    cfg = json.loads((run / "config.json").read_text())
    assert "<td>model.g_channel_max</td><td>32</td>" in page
    assert f"<td>train.budget</td><td>{cfg['train']['budget']}</td>" in page
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"<td>loss_g</td><td>{last['loss_g']:.6g}</td>" in page
    assert "summary.md" in page or not (run / "summary.md").exists()
    # self-contained: nothing loaded from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_report_keeps_few_grids_of_many_and_refuses_a_non_run(run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(out), "--max-grids", "2"]) == 0
    names = [k for k in _images(out.read_text()) if k.startswith("sample grid")]
    assert names == ["sample grid at 8 images", "sample grid at 24 images"]  # the first and the last
    assert main(["report", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_tensorboard_logger_as_the_trainer_would_call_it(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")

    cfg = tiny_config(tmp_path / "run", budget=16)
    cfg.train.log_every = cfg.train.sample_every = cfg.train.monitor_every = 8
    trainer = Trainer(cfg)  # the trainer logs to TensorBoard itself when it is installed
    trainer.run()
    trainer.tb.close()
    acc = _events(tmp_path / "run" / "tb")
    tags = acc.Tags()
    assert {"loss/loss_g", "loss/loss_d", "speed/images_per_s", "monitor/recon_mse", "monitor/d_accuracy"} \
        <= set(tags["scalars"])
    rows = Run(tmp_path / "run").metrics_rows(last_per_image=True)
    assert [e.step for e in acc.Scalars("loss/loss_g")] == [r["images"] for r in rows] == [8, 16]
    assert acc.Scalars("loss/loss_g")[-1].value == pytest.approx(rows[-1]["loss_g"], rel=1e-4)
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [8, 16, 16]  # every 8 images, and the final grid
    shown = Image.open(io.BytesIO(grids[0].encoded_image_string))
    assert shown.size == Image.open(tmp_path / "run" / "samples" / "0000000008.png").size


def test_tensorboard_backfill_and_absence(run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    shutil.rmtree(run / "tb", ignore_errors=True)  # as for a run trained without TensorBoard installed
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--tensorboard"]) == 0
    acc = _events(run / "tb")
    assert len(acc.Scalars("monitor/recon_mse")) == 3 and len(acc.Images("samples")) == 3
    # without tensorboard the logger does nothing and says so through its type
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    logger = tb.open_logger(tmp_path / "other")
    assert not logger.enabled
    logger.log_row({"images": 8, "loss_g": 1.0})
    assert not (tmp_path / "other").exists()
    assert tb.backfill(run) is None


def test_report_tensorboard_without_tensorboard_names_the_extra(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["report", str(run), "--out", str(tmp_path / "r2.html"), "--tensorboard"]) == 0
    assert '".[tb]"' in capsys.readouterr().out  # which extra installs it


def test_markdown_tables_in_run_summaries_render_as_tables():
    from shapetex.report import _markdown_block

    text = "# run\n\n| output | silhouette |\n| --- | --- |\n| translator | 0.5 |\n| identity | 1 |\n\n- a"
    html_text = _markdown_block(text)
    assert "<pre>" not in html_text and html_text.count("<tr>") == 3
    assert "<th>output</th><th>silhouette</th>" in html_text and "<td>translator</td><td>0.5</td>" in html_text
    assert "<li>a</li>" in html_text and "---" not in html_text
