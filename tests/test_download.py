"""`shapetex download` against a real HTTP server on 127.0.0.1 started by the test (no network): small archives
laid out as the reference's, and reference-format .pth files built here. The server serves Range requests and
can cut a transfer midway, so resuming is exercised for real."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image
from reference_nets import RefCutResnet, RefResnet, randomize

from shapetex import Translator
from shapetex.cli import main
from shapetex.data.layouts import dataroot_layout, paired_layout
from shapetex.downloads.command import get_dataset
from shapetex.downloads.fetch import DownloadError
from shapetex.downloads.registry import Entry, lookup, target_of

NGF = 4


class Served:
    """What the server holds, what it was asked, and how many of the next responses per path it cuts midway."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.log: list[tuple[str, str | None]] = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        state: Served = self.server.state
        rng = self.headers.get("Range")
        state.log.append((self.path, rng))
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start = 0
        if rng and self.headers.get("If-Range", etag) == etag:  # the file changed since: the whole file again
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.end_headers()
        if state.cut.get(self.path, 0) > 0:  # half the body, then the connection goes
            state.cut[self.path] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A mirror of the reference's server on 127.0.0.1, and the cache in tmp_path."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = Served()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("SHAPETEX_DOWNLOAD_MIRROR", f"http://127.0.0.1:{httpd.server_port}")
    monkeypatch.setenv("SHAPETEX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # a proxy in the environment must not take these
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def png(colour, size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def cyclegan_zip(name: str, n: int = 2, pad: int = 0) -> bytes:
    """NAME/trainA trainB testA testB, as the reference's zips hold them (`pad`: extra bytes, for a long file)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for sub, colour in (("trainA", (200, 40, 40)), ("trainB", (40, 40, 200)), ("testA", (210, 50, 50)),
                            ("testB", (50, 50, 210))):
            for i in range(n):
                z.writestr(f"{name}/{sub}/{i}.png", png(colour))
        if pad:
            z.writestr(f"{name}/README.txt", np.random.default_rng(0).bytes(pad))
    return buf.getvalue()


def pix2pix_tar(name: str) -> bytes:
    """NAME/train val test of side-by-side AB images, as the reference's .tar.gz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for sub in ("train", "val", "test"):
            for i in range(2):
                data = png((i * 50, 90, 90), (16, 8))
                info = tarfile.TarInfo(f"{name}/{sub}/{i}.jpg")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pth_bytes(net: torch.nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return buf.getvalue()


def cache_files(tmp_path) -> list[str]:
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_download_dataset_lands_where_dataroot_and_paired_read(server, tmp_path, capsys):
    server.files["/cyclegan/datasets/horse2zebra.zip"] = cyclegan_zip("horse2zebra")
    server.files["/pix2pix/datasets/facades.tar.gz"] = pix2pix_tar("facades")
    assert main(["download", "dataset", "horse2zebra", "--no-progress"]) == 0
    out = capsys.readouterr().out
    target = tmp_path / "cache" / "datasets" / "cyclegan" / "horse2zebra"
    assert f"--dataroot {target}" in out and "recorded" in out
    layout = dataroot_layout(target)
    assert layout.source == "domains" and layout.train == [str(target / "trainA"), str(target / "trainB")]
    assert layout.held == [str(target / "testA"), str(target / "testB")]
    # the archive is gone once unpacked; its sha256 record stays, for the next download to be checked against
    assert cache_files(tmp_path) == sorted(["datasets/cyclegan/horse2zebra.zip.sha256"] + [
        f"datasets/cyclegan/horse2zebra/{s}/{i}.png" for s in ("trainA", "trainB", "testA", "testB") for i in (0, 1)])
    digest = hashlib.sha256(server.files["/cyclegan/datasets/horse2zebra.zip"]).hexdigest()
    assert (target.parent / "horse2zebra.zip.sha256").read_text().split()[0] == digest

    # published by two projects: the family is needed, in one line
    assert main(["download", "dataset", "facades"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pix2pix/facades" in err and "cyclegan/facades" in err
    assert main(["download", "dataset", "pix2pix/facades", "--no-progress"]) == 0
    paired = paired_layout(tmp_path / "cache" / "datasets" / "pix2pix" / "facades")
    assert paired.source == "paired" and paired.train[0].endswith("facades/train") and paired.held[0].endswith("val")

    # a second time: nothing fetched; --list says it is here and how it is checked
    n = len(server.log)
    assert main(["download", "dataset", "horse2zebra"]) == 0 and len(server.log) == n
    assert main(["download", "--list"]) == 0
    listed = capsys.readouterr().out
    line = next(ln for ln in listed.splitlines() if ln.strip().startswith("horse2zebra ") and "unpaired" in ln)
    assert f"recorded {digest[:10]}" in line and line.endswith("yes")


def test_download_model_imports_it_so_translate_takes_its_name(server, tmp_path, capsys):
    ref = randomize(RefResnet(9, NGF)).eval()
    server.files["/cyclegan/pretrained_models/horse2zebra.pth"] = pth_bytes(ref)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(photo)
    # not downloaded yet: one line that says how
    assert main(["translate", "--checkpoint", "horse2zebra", "--input", str(photo), "--out", str(tmp_path / "o")]) == 2
    assert "shapetex download model horse2zebra" in capsys.readouterr().err
    assert main(["download", "model", "horse2zebra", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resnet_9blocks" in out and "translate --checkpoint horse2zebra" in out
    assert main(["translate", "--checkpoint", "horse2zebra", "--input", str(photo), "--out", str(tmp_path / "o")]) == 0
    assert Image.open(tmp_path / "o" / "photo.png").size == (32, 24)
    t = Translator.load("horse2zebra")  # the reference network's outputs exactly
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(t.translate_tensor(x)[:, 0], ref(x))
    assert t.config.method == "cyclegan" and t.config.data.size == 256


def test_cut_models_come_out_of_cuts_archive(server, tmp_path, capsys):
    ref = randomize(RefCutResnet(9, NGF)).eval()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in (("checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth", pth_bytes(ref)),
                           ("checkpoints/cat2dog_cut_pretrained/latest_net_G.pth", b"other")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    server.files["/CUT/pretrained_models.tar"] = buf.getvalue()
    assert main(["download", "model", "horse2zebra_cut", "--no-progress"]) == 0
    t = Translator.load("horse2zebra_cut")
    assert t.config.method == "cut"
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(t.translate_tensor(x)[:, 0], ref(x))


def test_a_checksum_mismatch_is_refused_and_nothing_is_left(server, tmp_path, capsys):
    data = cyclegan_zip("apple2orange")
    server.files["/cyclegan/datasets/apple2orange.zip"] = data
    # a published hash that the served file does not match (pooch checks it)
    wrong = Entry("dataset", "cyclegan", "apple2orange", "cyclegan/datasets/apple2orange.zip", "test",
                  sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(DownloadError, match="does not match the published sha256"):
        get_dataset(wrong, progress=False, say=lambda s: None)
    assert cache_files(tmp_path) == []
    right = Entry("dataset", "cyclegan", "apple2orange", "cyclegan/datasets/apple2orange.zip", "test",
                  sha256=hashlib.sha256(data).hexdigest())
    assert get_dataset(right, progress=False, say=lambda s: None).is_dir()

    # none published: the first download's sha256 is recorded; a later download that differs is refused
    server.files["/cyclegan/datasets/horse2zebra.zip"] = cyclegan_zip("horse2zebra")
    assert main(["download", "dataset", "horse2zebra", "--no-progress"]) == 0
    before = cache_files(tmp_path)
    server.files["/cyclegan/datasets/horse2zebra.zip"] = cyclegan_zip("horse2zebra", n=3)  # the server's changed
    capsys.readouterr()
    assert main(["download", "dataset", "horse2zebra", "--force", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sha256 recorded at its first download" in err and "Traceback" not in err
    assert cache_files(tmp_path) == before  # no archive, no part file; the dataset from the first download stays


def test_a_cut_connection_is_resumed(server, tmp_path, capsys):
    path = "/cyclegan/datasets/monet2photo.zip"
    data = cyclegan_zip("monet2photo", pad=300_000)
    server.files[path] = data
    server.cut[path] = 1  # the first transfer stops halfway: resumed at once, in the same command
    assert main(["download", "dataset", "monet2photo", "--no-progress", "--keep-archive"]) == 0
    asked = [r for p, r in server.log if p == path]
    assert len(asked) == 2 and asked[0] is None  # then the rest: from what reached the disk (up to half)
    assert 0 < int(re.fullmatch(r"bytes=(\d+)-", asked[1]).group(1)) <= len(data) // 2
    archive = tmp_path / "cache" / "datasets" / "cyclegan" / "monet2photo.zip"
    assert archive.read_bytes() == data

    # cut on every attempt of the command: it stops in one line, keeps what came, and the next run resumes it
    path = "/cyclegan/datasets/vangogh2photo.zip"
    server.files[path] = data = cyclegan_zip("vangogh2photo", pad=300_000)
    server.cut[path] = 4
    capsys.readouterr()
    assert main(["download", "dataset", "vangogh2photo", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "run the same command again to resume" in err
    part = tmp_path / "cache" / "datasets" / "cyclegan" / "vangogh2photo.zip.part"
    have = part.stat().st_size
    assert 0 < have < len(data) and data.startswith(part.read_bytes())
    assert main(["download", "dataset", "vangogh2photo", "--no-progress"]) == 0
    assert [r for p, r in server.log if p == path][-1] == f"bytes={have}-"
    assert (target_of(lookup("dataset", "vangogh2photo")) / "trainA" / "0.png").is_file() and not part.exists()


def test_unknown_names_and_no_network_are_one_line(server, tmp_path, capsys, monkeypatch):
    assert main(["download", "dataset", "horse2zeebra"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no dataset named 'horse2zeebra'" in err and "horse2zebra" in err
    assert main(["download", "model", "pix2pix/cityscapes"]) == 2  # a dataset's name, not a model's
    assert "pix2pix/cityscapes is a dataset, not a model" in capsys.readouterr().err
    assert main(["download", "dataset", "pix2pix/cityscapes"]) == 2  # not hosted: where to get it instead
    assert "cityscapes-dataset.com" in capsys.readouterr().err

    # offline: a port nothing listens on
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("SHAPETEX_DOWNLOAD_MIRROR", f"http://127.0.0.1:{port}")
    assert main(["download", "model", "style_monet", "--dir", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err.strip()
    url = f"http://127.0.0.1:{port}/cyclegan/pretrained_models/style_monet.pth"
    assert "\n" not in err and "Traceback" not in err and url in err
    assert "retry when the network is back" in err and f"--dir {tmp_path / 'mine'}" in err
    assert not any((tmp_path / "mine").rglob("*.part"))

    # a file downloaded by hand and put where that line says is taken (and its sha256 recorded)
    ref = randomize(RefResnet(9, NGF)).eval()
    by_hand = tmp_path / "mine" / "models" / "cyclegan" / "style_monet.pth"
    by_hand.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), by_hand)
    assert main(["download", "model", "style_monet", "--dir", str(tmp_path / "mine")]) == 0
    assert f"--checkpoint {tmp_path / 'mine' / 'models' / 'cyclegan' / 'style_monet'}" in capsys.readouterr().out
