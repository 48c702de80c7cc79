"""Compare style-transfer checkpoints with the truth on shapes & textures.

    python -m experiments.adaconv.report ADAIN.ckpt ADACONV.ckpt [--pairs 64] [--out DIR]

For fixed (content, style) pairs the correct answer is ``render(layout of the content, texture
of the style)``. Prints a markdown table (L1 and LPIPS to the truth, layout kept: hue-edge
correlation with the content) for each checkpoint and for the trivial answers (the content
image, the style image) and the truth itself, and writes ``table.png``: content | style | one
column per checkpoint | truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from callbacks.accuracy import structure_accuracy, texture_accuracy
from callbacks.image_logging import save_png
from callbacks.image_table import image_table
from callbacks.style_error import style_scores
from callbacks.swap_error import swap_pairs_with_truth, swap_truth_labels


def main(argv: list[str] | None = None) -> None:
    from lightning_modules.adaconv import load_style_transfer
    from lightning_modules.pretrained import LPIPS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=54321, help="pairs seed (not the "
                        "callback's, so the report measures on pairs training never logged)")
    parser.add_argument("--rows", type=int, default=6, help="rows of table.png")
    parser.add_argument("--out", default="runs/adaconv_demo")
    args = parser.parse_args(argv)
    content, style, truth = swap_pairs_with_truth(args.pairs, args.size, args.seed)
    labels = swap_truth_labels(args.pairs, args.size, args.seed)
    lpips = LPIPS("alex")
    rows = {"content image (trivial)": content, "style image (trivial)": style}
    columns = {"content": content[:args.rows], "style": style[:args.rows]}
    for checkpoint in args.checkpoints:
        model = load_style_transfer(checkpoint).eval()
        with torch.no_grad():
            stylised = model.stylize(content, style).clamp(-1, 1)
        label = type(model).__name__.replace("StyleTransfer", "")
        rows[label] = stylised
        columns[label] = stylised[:args.rows]
    rows["truth"] = truth
    columns["truth"] = truth[:args.rows]
    print(f"| {args.pairs} pairs, {args.size} px | L1 to truth | LPIPS to truth | layout kept "
          f"| structure acc. | texture acc. |")
    print("|---|---:|---:|---:|---:|---:|")
    results = {}
    for label, images in rows.items():
        scores = style_scores(images, content, truth, lpips)
        scores["structure_accuracy"] = float(structure_accuracy(images, labels).mean())
        scores["texture_accuracy"] = float(texture_accuracy(images, truth, labels).mean())
        results[label] = scores
        print(f"| {label} | {scores['l1']:.4f} | {scores['lpips']:.4f} | "
              f"{scores['layout_kept']:.3f} | {scores['structure_accuracy']:.3f} | "
              f"{scores['texture_accuracy']:.3f} |")
    out = Path(args.out)
    path = save_png(image_table(columns), out / "table.png")
    (out / "report.json").write_text(json.dumps({"pairs": args.pairs, "size": args.size,
                                                 "seed": args.seed, "results": results,
                                                 **lpips.provenance}, indent=2))
    print(f"table: {path}")


if __name__ == "__main__":
    main()
