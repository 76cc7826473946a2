"""`shapetex demo --checkpoint RUN`: a local web page (Gradio) to try a trained run.

Upload an image, choose the number of samples and the seed, see the translations side by side and
download them. Gradio is an optional extra (`pip install 'shapetex[demo]'`), imported only here and only
when the command runs. The page is served on localhost by default; no share link is ever made and Gradio's
analytics are off. Uploads are limited in bytes (checked by Gradio before the file is accepted) and in
pixels (read from the image header before anything is decoded, so a decompression bomb is refused
without being unpacked).
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import UserError


@dataclass
class DemoSettings:
    max_upload_mb: float = 20.0  # bytes per upload
    max_pixels: int = 16_000_000  # width x height per image, checked from the header before decoding
    max_samples: int = 8
    default_samples: int = 4
    # pixels translated per request (image pixels x samples; the training size's pixels when not at full
    # resolution): one full-resolution request of 16 MP x 8 samples held a CPU server for half an hour
    max_work: int = 8_000_000
    keep_results: int = 16  # result folders kept on disk (older requests' files are deleted)
    upload_max_age_s: int = 3600  # Gradio's cached uploads and results older than this are deleted
    tile: int = 512  # full-resolution translation runs in tiles of this size above it
    overlap: int = 64


class InputRejected(UserError, ValueError):
    """An upload the demo refuses, with the message the page shows."""


def check_image_file(path: str | Path, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the file's header only; InputRejected if it is not an image or too many pixels."""
    try:
        with Image.open(path) as im:  # parses the header; pixel data is not decoded here
            w, h = im.size
    except Image.DecompressionBombError:
        raise InputRejected(f"Image too large: it declares more pixels than PIL allows; this demo accepts at most "
                            f"{max_pixels:,} pixels.") from None
    except (OSError, ValueError, SyntaxError):
        raise InputRejected("That file is not an image this demo can read (PNG, JPEG, WebP, BMP, GIF, TIFF).") \
            from None
    if w * h > max_pixels:
        raise InputRejected(f"Image too large: {w} x {h} = {w * h:,} pixels; this demo accepts at most "
                            f"{max_pixels:,} pixels (setting: --max-pixels). Please upload a smaller image.")
    return w, h


class DemoApp:
    """What the page does, without Gradio: check an upload, translate it, write the results as PNG files."""

    def __init__(self, translator, settings: DemoSettings | None = None, out_dir: str | Path | None = None):
        self.t = translator
        self.settings = settings or DemoSettings()
        self._owns_dir = out_dir is None  # a folder we made is removed whole on close()
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="shapetex-demo-"))
        self.lock = threading.Lock()
        self.count = 0
        self._folders: list[Path] = []

    def close(self) -> None:
        """Delete what the demo wrote (its own temporary folder, or its result folders in a given one)."""
        with self.lock:
            for folder in [self.out_dir] if self._owns_dir else self._folders:
                shutil.rmtree(folder, ignore_errors=True)
            self._folders = []

    def check_work(self, w: int, h: int, samples: int, full_res: bool) -> None:
        """InputRejected when the request would translate more than max_work pixels (all samples together)."""
        pixels = w * h if full_res else self.t.size * self.t.size
        work = pixels * samples
        if work > self.settings.max_work:
            where = f"{w} x {h}" if full_res else f"{self.t.size} x {self.t.size} (the training size)"
            raise InputRejected(f"Too much work for one request: {where} x {samples} samples = {work:,} pixels; "
                                f"this demo translates at most {self.settings.max_work:,} (setting: --max-work). "
                                "Use fewer samples, or untick full resolution.")

    def _new_folder(self) -> Path:
        """A folder for this request's results; beyond keep_results, the oldest request's folder is deleted."""
        self.count += 1
        folder = self.out_dir / f"{self.count:05d}"
        self._folders.append(folder)
        while len(self._folders) > max(1, self.settings.keep_results):
            shutil.rmtree(self._folders.pop(0), ignore_errors=True)
        return folder

    def check(self, path: str | None) -> str:
        """The status line after an upload."""
        if not path:
            return ""
        try:
            w, h = check_image_file(path, self.settings.max_pixels)
        except InputRejected as e:
            return f"**{e}**"
        return f"{w} x {h} image ready: press Translate."

    def translate(self, path: str | None, samples: int, seed: int, full_res: bool = False) -> tuple[list, str]:
        """[(png path, caption)] and a status line; raises InputRejected with the message to show."""
        if not path:
            raise InputRejected("Upload an image first.")
        w, h = check_image_file(path, self.settings.max_pixels)
        samples = int(min(max(int(samples or 1), 1), self.settings.max_samples))
        seed = int(seed or 0)
        self.check_work(w, h, samples, full_res)
        with Image.open(path) as im:
            im.load()
            image = im.copy()
        s = self.settings
        tile = s.tile if full_res and max(w, h) > s.tile else None
        with self.lock:
            outs = self.t(image, samples=samples, seed=seed, native=full_res, tile=tile, overlap=s.overlap)
            folder = self._new_folder()
            folder.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).stem)[:40] or "image"
            results = []
            for k, out in enumerate(outs):
                dest = folder / f"{stem}_seed{seed}_{k}.png"
                out.save(dest)
                results.append((str(dest), f"seed {seed}, sample {k}"))
        how = "at full resolution" + (f" in {tile} px tiles" if tile else "") if full_res else \
            f"at the training size ({self.t.size} px), resized back"
        return results, f"{samples} translation{'s' if samples > 1 else ''} of the {w} x {h} image, {how}."


def _supported(fn, **kwargs) -> dict:
    """The keyword arguments `fn` accepts (Gradio's signatures change between major versions)."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def _theme(gr):
    # system fonts only: the default theme would make the browser fetch web fonts from the internet
    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "monospace"]
    return gr.themes.Default(font=system, font_mono=mono)


def build_demo(app: DemoApp):
    """The Gradio page (a gr.Blocks) for `app`; elements have ids for scripted browsers."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    s, t = app.settings, app.t
    z_note = "each sample uses a different z" if t.z_dim else "this method is deterministic: samples are the same"
    age = int(s.upload_max_age_s)  # Gradio's cache of uploads and served files: swept, not kept for ever
    blocks_kw = _supported(gr.Blocks.__init__, title="shapetex demo", analytics_enabled=False,
                           delete_cache=(max(60, age // 4), age))
    if "theme" not in inspect.signature(gr.Blocks.launch).parameters:
        blocks_kw["theme"] = _theme(gr)  # Gradio 4 and 5 take the theme here, 6 at launch
    with gr.Blocks(**blocks_kw) as demo:
        gr.Markdown(f"## shapetex: {t.config.method} translator\n"
                    f"Checkpoint `{t.checkpoint}` (trained at {t.size} px). Upload an image, choose the number "
                    f"of samples ({z_note}) and the seed, and press Translate. Limits: "
                    f"{s.max_upload_mb:g} MB and {s.max_pixels:,} pixels per image.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", image_mode=None, label="input image", elem_id="input-image",
                                 **_supported(gr.Image.__init__, sources=["upload", "clipboard"]))
                samples = gr.Slider(1, s.max_samples, value=min(s.default_samples, s.max_samples), step=1,
                                    label="samples", elem_id="samples")
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                full_res = gr.Checkbox(value=t.native_default,  # on for runs trained on crops at the images' scale
                                       label="full resolution (translate at the image's own size)", elem_id="full-res")
                run = gr.Button("Translate", variant="primary", elem_id="translate")
                status = gr.Markdown("", elem_id="status")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="translations", elem_id="outputs", columns=4,
                                     **_supported(gr.Gallery.__init__, format="png", object_fit="contain"))
                files = gr.File(label="download (PNG)", file_count="multiple", elem_id="downloads")

        def on_run(path, n, sd, full):
            try:
                results, message = app.translate(path, n, sd, bool(full))
            except InputRejected as e:
                gr.Warning(str(e))
                return [], None, f"**{e}**"
            return results, [p for p, _ in results], message

        image.upload(app.check, inputs=image, outputs=status)
        image.clear(lambda: "", outputs=status)
        run.click(on_run, inputs=[image, samples, seed, full_res], outputs=[gallery, files, status])
    demo._shapetex_theme = _theme(gr)
    return demo


def launch(demo, settings: DemoSettings, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the page; share links are never made, and Gradio's own start-up lines (which advise
    `share=True` in `launch()`) are not printed: `run` prints the address. Returns (app, local_url, share_url)."""
    import gradio as gr

    max_kb = max(1, int(settings.max_upload_mb * 1024))
    kwargs = dict(server_name=host, server_port=port, share=False, max_file_size=f"{max_kb}kb", show_error=True,
                  prevent_thread_lock=not block, quiet=True, inbrowser=False, ssr_mode=False,
                  mcp_server=False, enable_monitoring=False, footer_links=[], show_api=False, pwa=False,
                  theme=demo._shapetex_theme)
    return demo.launch(**_supported(gr.Blocks.launch, **kwargs))


# ---- command line --------------------------------------------------------------------------------------
def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    d = DemoSettings()
    p.add_argument("--checkpoint", required=True, help="a run folder or a checkpoint folder inside it")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bf16 where the device computes it natively, else fp32")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb, help="largest upload in MB")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help="largest image in pixels (width x height)")
    p.add_argument("--max-samples", type=int, default=d.max_samples)
    p.add_argument("--tile", type=int, default=d.tile, help="full-resolution translation tiles above this size")
    p.add_argument("--max-work", type=int, default=d.max_work,
                   help="most pixels translated per request (image pixels x samples)")


def run_demo(args: argparse.Namespace) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("shapetex demo needs Gradio: pip install 'shapetex[demo]'")
        return 2
    from .api import Translator

    settings = DemoSettings(max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels,
                            max_samples=args.max_samples, tile=args.tile, max_work=args.max_work)
    t = Translator.load(args.checkpoint, device=args.device, precision=args.precision)
    print(t.precision_line())
    app = DemoApp(t, settings)
    # Gradio's uploads go below the demo's own folder, so that closing removes them too
    os.environ.setdefault("GRADIO_TEMP_DIR", str(app.out_dir / "uploads"))
    demo = build_demo(app)
    print(f"shapetex demo: {t.config.method} from {t.checkpoint} on http://{args.host}:{args.port} (Ctrl-C stops)",
          flush=True)
    try:
        launch(demo, settings, args.host, args.port, block=True)
    finally:
        app.close()
    return 0
