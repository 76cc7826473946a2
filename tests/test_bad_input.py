"""Hostile or odd input files: crafted tar shards, images that declare huge sizes, 16-bit and rotated images."""

import io
import signal
import struct
import tarfile
import zlib
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from shapetex.data.images import MAX_PIXELS_ENV, DataError, load_rgb, max_pixels, set_max_pixels
from shapetex.data.shards import shard_image_set, tar_members


class Hang(BaseException):
    """Not an OSError (as TimeoutError is), so no `except OSError` in the code under test turns it into a pass."""


@contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging: the old tar reader looped for ever on some headers."""
    def fail(*_):
        raise Hang(f"did not finish in {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _header(name: bytes, size: int, kind: bytes = b"0") -> bytes:
    """One ustar header block with a valid checksum."""
    h = bytearray(512)
    h[: len(name)] = name
    h[100:108], h[108:116], h[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    h[124:136] = f"{size:011o}\0".encode()
    h[136:148] = b"00000000000\0"
    h[156:157] = kind
    h[257:265] = b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def _pax_tar(path, records: bytes, member_size: int = 3) -> None:
    """A pax extended header holding `records`, then a 3-byte image member, then the end blocks."""
    path.write_bytes(_header(b"pax", len(records), b"x") + _pad(records)
                     + _header(b"0001.png", member_size) + _pad(b"abc") + b"\0" * 1024)


def _png_header_only(path, width: int, height: int):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    if path is None:
        return data
    path.write_bytes(data)
    return path


# ---- item 8: tar shards ----------------------------------------------------------------------------
@pytest.mark.parametrize("records", [b"0 ", b"-20 path=x\n", b"14 size=-1024\n", b"12 size=abc\n",
                                     b"3 path=0001.png\n"])
def test_damaged_pax_records_are_refused_not_looped_on(tmp_path, records):
    path = tmp_path / "bad.tar"
    _pax_tar(path, records)
    with _deadline(10), pytest.raises(DataError, match="bad.tar"):
        shard_image_set(path, 16)


def test_a_pax_size_beyond_the_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.tar"
    _pax_tar(path, b"22 size=1000000000000\n")  # 10^12 bytes declared in an 8 KB file
    with _deadline(10), pytest.raises(DataError, match=r"huge.tar.*size 1000000000000 does not fit"):
        list(tar_members(path))
    short = tmp_path / "short.tar"  # a plain header that declares more than the file holds
    short.write_bytes(_header(b"0001.png", 5000) + _pad(b"abc"))
    with pytest.raises(DataError, match="short.tar"):
        list(tar_members(short))


def test_a_shard_member_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.tar"
    with tarfile.open(path, "w") as tf:
        for name, data in (("0001.png", _png_header_only(None, 13000, 13000)), ("0002.png", _png(8))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    images = shard_image_set(path, 8)
    assert tuple(images.decode(1).shape) == (3, 8, 8)
    with pytest.raises(DataError, match=r"bomb.tar:0001.*13000 x 13000.*more than the limit"):
        images.decode(0)


def _png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


# ---- item 9: the pixel limit -------------------------------------------------------------------------
def test_huge_declared_images_are_refused_from_the_header_with_the_file_name(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    big = _png_header_only(tmp_path / "big.png", 10000, 10000)  # 100 M pixels in 57 bytes
    with pytest.raises(DataError, match=r"big.png is 10000 x 10000 = 100,000,000 pixels, more than the limit"):
        load_rgb(big)
    Image.new("RGB", (40, 30)).save(tmp_path / "ok.png")
    assert load_rgb(tmp_path / "ok.png").shape == (30, 40, 3)
    set_max_pixels(1000)  # the setting (data.max_pixels) reaches this process and its loader processes
    assert max_pixels() == 1000
    with pytest.raises(DataError, match="ok.png is 40 x 30 = 1,200 pixels, more than the limit of 1,000"):
        load_rgb(tmp_path / "ok.png")
    assert load_rgb(tmp_path / "ok.png", limit=1200).shape == (30, 40, 3)


def test_build_data_applies_the_configured_pixel_limit(tmp_path, monkeypatch):
    from shapetex.config import DataConfig
    from shapetex.data import build_data

    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    cfg = DataConfig(size=16, builtin_count=8, max_pixels=12345)
    build_data(cfg, "unpaired", 4, 0)
    assert max_pixels() == 12345


# ---- item 10: 16-bit images ------------------------------------------------------------------------
@pytest.mark.parametrize("value, want", [(40000, 156), (1000, 4), (65535, 255), (0, 0)])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_images_keep_their_level(tmp_path, value, want, suffix):
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(np.full((6, 5), value, dtype=np.uint16)).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    assert (load_rgb(path) == want).all()


def test_a_16_bit_gradient_keeps_its_order_and_range(tmp_path):
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    img = Image.fromarray(ramp)
    assert img.mode == "I;16"
    img.save(tmp_path / "ramp.tif")
    out = load_rgb(tmp_path / "ramp.tif")[..., 0].astype(int)
    assert out.flatten()[0] == 0 and out.flatten()[-1] == 255 and (np.diff(out.flatten()) >= 0).all()
    assert np.abs(out - ramp / 257).max() <= 0.5 + 1e-9


# ---- EXIF orientation (item 15) ----------------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: shown turned 90 degrees clockwise
    Image.fromarray(arr).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = load_rgb(tmp_path / "rot.jpg")
    assert out.shape == (20, 10, 3)
    assert out[:8].mean() > 200 and out[12:].mean() < 50  # the white half is now on top
