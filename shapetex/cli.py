"""The `shapetex` command: quickstart, train, translate (and the commands other modules add)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError, RunConfig, apply_override
from .data.images import DataError, list_images
from .data.layouts import dataroot_layout, paired_layout
from .errors import UserError
from .output_names import plan_outputs, printable
from .reference_flags import add_reference_flags, apply_reference_flags, netg_overrides
from .run import Run

# Commands that live in their own modules: name -> (module, its add-arguments function, its run function, help).
# A module is imported only when its command runs (or its --help is asked for); none of them imports cli.
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "evaluate": ("shapetex.evaluate", "add_arguments", "run",
                 "score a trained run or a folder of outputs: FID, KID, diversity, structure, paired L1/PSNR/SSIM"),
    "experiment": ("shapetex.experiments.cli", "add_arguments", "run",
                   "run one of the paper's experiments and report whether its claim held"),
    "export": ("shapetex.export", "add_export_arguments", "run_export",
               "export a trained run as an ONNX or TorchScript model"),
    "demo": ("shapetex.demo", "add_demo_arguments", "run_demo",
             "serve a local web page to try a trained run (needs the demo extra: Gradio)"),
    "report": ("shapetex.report", "add_report_arguments", "run_report",
               "write a self-contained HTML report of a run (RUN/report.html)"),
    "download": ("shapetex.downloads.command", "add_arguments", "run",
                 "download a standard dataset or a pretrained model by name (pix2pix, CycleGAN, CUT)"),
    "import": ("shapetex.import_reference", "add_arguments", "run",
               "turn a pytorch-CycleGAN-and-pix2pix generator (.pth) into a shapetex run folder"),
    "settings": ("shapetex.settings_help", "add_arguments", "run",
                 "list every setting (data.*, train.*, or a method's model.*) with its default and meaning"),
}


# ---- train -----------------------------------------------------------------------------------------
def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=["builtin", "builtin:colours", "builtin:stripes", "folders"],
                   help="built-in procedural set (builtin = builtin:colours, warm -> cool fills; builtin:stripes, "
                        "plain -> striped, the harder variant), or folders given below")
    g.add_argument("--shape", help="folder of shape images (fed to the encoder)")
    g.add_argument("--texture", help="folder of texture images (what the discriminator sees as real)")
    g.add_argument("--paired", help="paired data: side-by-side AB images, or a folder holding A/ and B/; a folder "
                                    "holding train/ trains on train/ and holds out val/ (else test/)")
    g.add_argument("--direction", choices=["AtoB", "BtoA"], help="for paired data: which half is the input")
    g.add_argument("--domains", nargs="+", help="one folder per domain (cycle-consistent methods)")
    g.add_argument("--dataroot", help="a CycleGAN-style dataset folder with trainA/ and trainB/ (testA/ and testB/ "
                                      "held out), or a pix2pix one with train/ (as --paired)")
    g.add_argument("--size", type=int, help="training resolution in pixels (square)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .methods import METHODS

    p.add_argument("--method", choices=sorted(METHODS), metavar="METHOD",
                   help=f"{', '.join(sorted(METHODS))} (default: adversarial); `shapetex settings METHOD` lists a "
                        "method's settings")
    add_data_arguments(p)
    g = p.add_argument_group("training")
    g.add_argument("--budget", type=int, help="training length in images shown to the discriminator")
    g.add_argument("--batch", type=int, help="global batch size (all processes together)")
    g.add_argument("--out", help="run folder (default runs/<method>). A folder that already holds a run is refused "
                                 "unless --resume or --overwrite is given")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    g.add_argument("--config", help="YAML file with settings (command-line flags win)")
    g.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its newest checkpoint")
    g.add_argument("--overwrite", action="store_true",
                   help="train afresh into an --out folder that holds a run, deleting its checkpoints, metrics and "
                        "samples")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting, e.g. --set model.r1_gamma=1 --set train.log_every=500 (repeatable)")
    add_reference_flags(p)  # hidden: the reference's train.py flags, as aliases or refused with the shapetex way


def config_from_args(args: argparse.Namespace) -> RunConfig:
    apply_reference_flags(args)
    if args.resume:
        from .checkpoint import config_path, list_checkpoints

        found = list_checkpoints(args.resume)  # the newest checkpoint's own settings, else the run's
        run_cfg = config_path(found[-1]) if found else Run(args.resume).config
        if not run_cfg.exists():
            raise DataError(f"--resume: {run_cfg} not found")
        cfg = RunConfig.load(run_cfg)
    elif args.config:
        cfg = RunConfig.load(args.config)
    else:
        cfg = RunConfig()
    d = cfg.data
    if args.method:
        cfg.method = args.method
    if args.shape or args.texture or args.paired or args.dataroot or args.domains or args.data:
        d.holdout_folders = []  # another data source: held-out folders of a loaded config no longer apply
    if args.shape or args.texture:
        d.source, d.shape, d.texture = "folders", args.shape, args.texture
    layout = dataroot_layout(args.dataroot) if args.dataroot else paired_layout(args.paired) if args.paired else None
    if layout is not None:
        d.source, d.holdout_folders = layout.source, layout.held
        if layout.source == "paired":
            d.paired = layout.train[0]
        else:
            d.domains = layout.train
        if layout.note and int(os.environ.get("RANK", 0)) == 0:  # under torchrun, only the main process speaks
            print(layout.note)
    if args.domains:
        d.source, d.domains = "domains", list(args.domains)
    if args.data:
        d.source, _, task = args.data.partition(":")
        if task:
            d.builtin_task = task
    for name, target in (("direction", d), ("size", d), ("budget", cfg.train), ("batch", cfg.train),
                         ("seed", cfg.train), ("device", cfg.train), ("precision", cfg.train)):
        value = getattr(args, name)
        if value is not None:
            setattr(target, name, value)
    if args.out:
        cfg.out = args.out
    elif args.resume:
        cfg.out = args.resume
    elif not args.config:
        cfg.out = f"runs/{cfg.method}"
    for item in netg_overrides(args, cfg.method) + args.overrides:  # an explicit --set wins over --netG
        if "=" not in item:
            raise ConfigError(f"--set wants KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        apply_override(cfg, key.strip(), value.strip())
    from .engine import resolve_device
    from .methods import resolve_settings

    resolve_settings(cfg.validate())  # a model.* value of the wrong type or name: one line, before anything runs
    resolve_device(cfg.train.device)  # a device this machine lacks (cuda:99): refused before anything runs too
    return cfg


def run_train(args: argparse.Namespace) -> int:
    from .train import train

    cfg = config_from_args(args)
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues a run and --overwrite deletes it: give one of them")
    result = train(cfg, resume=bool(args.resume), overwrite=args.overwrite)
    if result["stopped_by"]:  # stopped early (Ctrl-C, SIGTERM): not a finished run, so not exit status 0
        from .stopping import StopRequested

        raise StopRequested(result["stopped_by"], f"stopped at {result['images_seen']:,} images (checkpointed); "
                                                  f"continue with: shapetex train --resume {result['run_dir']}")
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, only the main process speaks
        print(f"run folder: {result['run_dir']}  (samples: {result['samples']})")
    return 0


# ---- translate -------------------------------------------------------------------------------------
def add_translate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a run folder or a checkpoint folder inside it, or the name "
                                                       "of a model fetched by `shapetex download model NAME`")
    p.add_argument("--input", required=True, help="an image file, a folder of images, or a video file (a folder "
                                                  "of frames too, with --out CLIP.mp4)")
    p.add_argument("--out", default="out", help="output folder (default out/); not the input folder. Outputs are "
                                                "<name>.png (<name>_<ext>.png where inputs share a name); a video "
                                                "file name (.mp4, .mov, .mkv, .webm) writes a video")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist in --out")
    p.add_argument("--samples", type=int, default=1, help="outputs per input (different z)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--to", help="target domain (multi-domain methods)")
    p.add_argument("--native", action="store_true",
                   help="translate at the image's own size instead of resizing to the training size")
    p.add_argument("--tile", type=int, help="translate at the image's own size in overlapping tiles of this many "
                                            "pixels (for images too large to translate at once)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    p.add_argument("--batch", type=int, default=8, help="images translated together (default 8); results do not "
                                                        "depend on it")
    p.add_argument("--no-index", action="store_true", help="do not write OUT/index.html (inputs beside outputs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bf16 where the device computes it natively, else fp32")
    g = p.add_argument_group("video (needs the video extra: pip install 'shapetex[video]')")
    g.add_argument("--fps", type=float, help="frame rate of a video made from a folder of frames (default 25); "
                                             "a video input keeps its own")
    g.add_argument("--new-z-per-frame", action="store_true",
                   help="draw a new z and noise for every frame (the frame-by-frame way; it flickers), instead of "
                        "one for the whole clip: to compare the flicker figure printed at the end")


def run_translate(args: argparse.Namespace) -> int:
    from .video import wants_video

    if wants_video(args.input, args.out):
        from .clip import run_clip

        return run_clip(args)
    from PIL import Image

    from .api import Translator
    from .atomic import write_then_rename
    from .data.images import load_rgb

    src = Path(args.input)
    if src.is_dir():
        files, root = list_images(src), src
    elif src.is_file():
        files, root = [src], src.parent
    else:
        raise DataError(f"--input not found: {src}")
    out = Path(args.out)
    plan, notes = plan_outputs(files, root, out, args.samples, args.overwrite, folder_input=src.is_dir())
    for line in notes:
        print(printable(line))
    from tqdm import tqdm

    if args.batch < 1:
        raise ConfigError("--batch must be at least 1")
    if args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {args.samples}")
    t = Translator.load(args.checkpoint, device=args.device, precision=args.precision)
    print(t.precision_line())
    kwargs = {"to": args.to} if args.to else {}
    if args.tile:
        kwargs.update(tile=args.tile, overlap=args.overlap)
    failed, written, done = [], 0, []
    bar = tqdm(total=len(files), unit="img", desc="translating", disable=len(files) < 2, dynamic_ncols=True)
    for start in range(0, len(files), args.batch):
        batch_files = files[start:start + args.batch]
        chunk, images = [], []
        for f in batch_files:
            try:
                images.append(Image.fromarray(load_rgb(f)))
                chunk.append(f)
            except DataError as e:
                failed.append(f"{f}: {e}")
        if images:
            results = t(images, samples=args.samples, seed=args.seed, native=args.native or None, batch_size=args.batch,
                        **kwargs)
            for f, outs in zip(chunk, results, strict=True):
                for r, dest in zip(outs, plan[f], strict=True):
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    # a kill mid-write must not leave a truncated image that a rerun would count as done
                    write_then_rename(dest, r.save)
                    written += 1
                done.append(f)
        bar.update(len(batch_files))
    bar.close()
    print(f"wrote {written} images for {len(files) - len(failed)} inputs to {out}")
    if done and not args.no_index:
        index = write_index(out, done, plan)
        print(f"side by side: {index}" if index else f"{out / 'index.html'} is not shapetex's: left as it is")
    if failed:
        print(f"could not read {len(failed)} of {len(files)} inputs:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
    return 0 if len(failed) < len(files) else 1


INDEX_MARK = "<!-- written by shapetex translate -->"


def write_index(out: Path, inputs: list[Path], plan: dict) -> Path | None:
    """OUT/index.html: each input beside its outputs (links relative to OUT, so the folder can be opened as is).
    An index.html that shapetex did not write is left alone (None)."""
    import html
    import urllib.parse

    path = out / "index.html"
    if path.exists() and INDEX_MARK not in path.read_text(errors="replace")[:200]:
        return None
    def cell(p: Path) -> str:  # the link keeps the name's exact bytes (a non-UTF-8 name too), the label shows it
        href = urllib.parse.quote(os.fsencode(os.path.relpath(p.resolve(), out.resolve())))
        return f'<td><img src="{html.escape(href)}"><br>{html.escape(printable(p.name))}</td>'

    rows = ["<tr>" + "".join(cell(p) for p in [f, *plan[f]]) + "</tr>" for f in inputs]
    page = (f"<!doctype html>{INDEX_MARK}<meta charset=utf-8><title>shapetex translations</title>"
            "<style>img{max-width:256px;image-rendering:pixelated}td{vertical-align:top;font:12px sans-serif}"
            "</style><table><tr><th>input</th><th colspan=99>outputs</th></tr>" + "\n".join(rows) + "</table>\n")
    path.write_text(page, encoding="utf-8")
    return path


# ---- quickstart ------------------------------------------------------------------------------------
def add_quickstart_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/quickstart", help="run folder (default runs/quickstart)")
    p.add_argument("--budget", type=int, help="training images (default: the quickstart's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole run (weights, data order, z)")
    p.add_argument("--size", type=int, help="resolution (default 32)")
    p.add_argument("--task", choices=["colours", "stripes"], default="colours",
                   help="built-in task: colours (default; warm -> cool fills) or stripes (plain -> striped, harder)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when the verdict fails (default: exit 0 once trained and scored, verdict printed)")


def run_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import quickstart

    return quickstart(out=args.out, budget=args.budget, size=args.size, seed=args.seed, task=args.task,
                      strict=args.strict)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; of the modules in COMMANDS only `command`'s is imported (all with None)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="shapetex", description="Image-to-image translation with GANs. `shapetex COMMAND --help` for details.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO messages)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    sub = parser.add_subparsers(dest="command", required=True)
    builtin = {
        "quickstart": ("train on the built-in data and report how well it worked", add_quickstart_arguments,
                       run_quickstart),
        "train": ("train a translator (or continue one with --resume)", add_train_arguments, run_train),
        "translate": ("translate an image or a folder with a trained run", add_translate_arguments, run_translate),
    }
    for name, (module, add_name, run_name, help_text) in COMMANDS.items():
        if command in (None, name):
            mod = importlib.import_module(module)
            builtin[name] = (help_text, getattr(mod, add_name), getattr(mod, run_name))
        else:  # listed in `shapetex --help`, its module left unimported
            builtin[name] = (help_text, lambda p: None, None)
    for name, (help_text, add, run) in builtin.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback when the command fails")
        p.set_defaults(run=run)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Failures that are the input's, the settings' or the machine's, not a bug: one line each, a traceback only
    with --debug. UserError (DataError, ConfigError, divergence...; see shapetex.errors) and the machine's: files
    (OSError), a YAML file that does not parse, running out of memory, a damaged safetensors file. A plain
    ValueError, like any other exception, is a bug: its traceback is shown."""
    import yaml

    kinds: list[type[BaseException]] = [UserError, OSError, yaml.YAMLError, MemoryError]
    if "safetensors" in sys.modules:
        from safetensors import SafetensorError

        kinds.append(SafetensorError)
    if "torch" in sys.modules:
        import torch

        kinds.append(torch.cuda.OutOfMemoryError)
    return tuple(kinds)


_OS_HINTS = {errno.ENOSPC: "the disk is full: free some space or write elsewhere (--out)",
             errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere (--out)",
             errno.EROFS: "that file system is read-only: write elsewhere (--out)",
             errno.EACCES: "permission denied: choose a folder you may write to, or fix its permissions",
             errno.EPERM: "permission denied: choose a folder you may write to, or fix its permissions",
             errno.ENOTDIR: "a file stands where a folder is needed: choose another path",
             errno.EEXIST: "a file stands where a folder is needed: choose another path"}


# what PyTorch's CPU allocator says when an allocation fails: it raises a plain RuntimeError, not MemoryError
_CPU_OOM = ("DefaultCPUAllocator: can't allocate memory", "not enough memory")


def out_of_memory(e: BaseException) -> bool:
    """Whether `e` is running out of memory: MemoryError, CUDA's OutOfMemoryError, or the CPU allocator's
    RuntimeError."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or \
        (isinstance(e, RuntimeError) and any(m in str(e) for m in _CPU_OOM))


def describe_error(e: BaseException) -> str:
    """One line: what failed, on which file, and what to do."""
    if isinstance(e, OSError) and e.strerror and not isinstance(e, FileNotFoundError):
        where = f"{e.filename}: " if e.filename else ""
        hint = _OS_HINTS.get(e.errno or 0)
        return f"{where}{e.strerror}" + (f" ({hint})" if hint else "")
    if out_of_memory(e):
        return "out of memory: lower --batch or the image size (data.size, data.max_pixels)"
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, (UserError, OSError)) else f"{type(e).__name__}: {text}"


def _resume_hint(args: argparse.Namespace) -> str:
    """How to carry on after a stop, for the commands that keep what they did."""
    if args.command == "train":
        run = getattr(args, "out", None) or getattr(args, "resume", None)
        if run and Run(run).config.exists():
            return f"continue with: shapetex train --resume {run}"
        return "stopped before training began: nothing to resume, start it again"
    if args.command == "experiment":
        return "runs that finished are kept: run the same command with --resume to read them back"
    if args.command == "translate":
        from .video import wants_video

        if wants_video(args.input, args.out):
            return "a video is written under a temporary name until whole: nothing was left under --out"
        return "the images written are whole: run it again with --overwrite to redo them all"
    if args.command == "download":
        return "what was received is kept: run the same command again to resume"
    return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_in(argv)).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from .stopping import exit_status, raise_on_sigterm

    raise_on_sigterm()
    try:
        return args.run(args)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (StopRequested)
        if args.debug:
            raise
        said = str(e) or "interrupted"
        hint = _resume_hint(args) if "resume" not in said else ""
        print(f"shapetex {args.command}: {said}{'; ' + hint if hint else ''}", file=sys.stderr)
        return exit_status(e)
    except (*_expected_errors(), RuntimeError) as e:
        # a plain ValueError or another RuntimeError is a bug: not caught here, or re-raised, it keeps its traceback
        if args.debug or not (isinstance(e, _expected_errors()) or out_of_memory(e)):
            raise
        print(f"shapetex {args.command}: error: {describe_error(e)} (--debug shows the traceback)", file=sys.stderr)
        return 2

