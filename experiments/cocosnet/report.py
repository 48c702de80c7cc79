"""Print the CoCosNet demo's ground-truth figures at initialisation and after training, beside
the trivial answers, and where its image tables are.

    python -m experiments.cocosnet.report runs/cocosnet_demo/demo
    python -m experiments.cocosnet.report runs/cocosnet_demo/demo \
        --shipped runs/cocosnet_demo/shipped_model         (make cocosnet-demo)

With ``--shipped``, the shipped trained model's figures (``corrlab validate`` on the same
held-out pairs) in a third column, and both image tables side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callbacks.metric_plot import read_metrics
from experiments.report import side_by_side

#: (metric, what it is, trivial answer's metric)
ROWS = [("exemplar/l1_to_truth", "output L1 to the truth", "exemplar/l1_exemplar_to_truth"),
        ("exemplar/lpips_to_truth", "output LPIPS to the truth",
         "exemplar/lpips_exemplar_to_truth"),
        ("exemplar/structure_accuracy", "output structure accuracy (higher is better)",
         "exemplar/structure_accuracy_exemplar"),
        ("exemplar/texture_accuracy", "output texture accuracy (higher is better)",
         "exemplar/texture_accuracy_exemplar"),
        ("exemplar/l1_warped_to_truth", "warped exemplar L1 to the truth",
         "exemplar/l1_exemplar_to_truth"),
        ("exemplar/lpips_warped_to_truth", "warped exemplar LPIPS to the truth",
         "exemplar/lpips_exemplar_to_truth"),
        ("exemplar/epe", "correspondence end-point error (px)", "exemplar/epe_identity"),
        ("exemplar/within_1px", "correspondence within 1 px", None)]


def ground_truth_series(run: Path) -> dict[str, list[tuple[float, float]]]:
    """The ``exemplar/`` ground-truth figures of ``run/metrics.csv``: ``(kimg, value)`` each."""
    if not (run / "metrics.csv").is_file():
        raise SystemExit(f"{run}: no metrics.csv (has the run started?)")
    series = {name: values for name, values in read_metrics(run / "metrics.csv").items()
              if name.startswith("exemplar/")}
    if "exemplar/l1_to_truth" not in series:
        raise SystemExit(f"{run}: no exemplar/ ground-truth figures in metrics.csv")
    return series


def last_image_table(run: Path) -> Path | None:
    tables = sorted((run / "image_tables").glob("*.png"))
    return tables[-1] if tables else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.cocosnet.report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the demo run's folder")
    parser.add_argument("--shipped", type=Path,
                        help="the shipped trained model's evaluation folder (corrlab validate)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    series = ground_truth_series(args.run)
    first = {name: values[0][1] for name, values in series.items()}
    last = {name: values[-1][1] for name, values in series.items()}
    start, end = series["exemplar/l1_to_truth"][0][0], series["exemplar/l1_to_truth"][-1][0]
    columns = [f"at {start:g} kimg", f"at {end:g} kimg"]
    shipped = {}
    if args.shipped:
        shipped_series = ground_truth_series(args.shipped)
        shipped = {name: values[-1][1] for name, values in shipped_series.items()}
        kimg = shipped_series["exemplar/l1_to_truth"][-1][0]
        columns.append(f"shipped model ({kimg:g} kimg)")
    print(f"CoCosNet demo, {args.run}: ground truth on {args.run / 'metrics.csv'}"
          + (f"; shipped model on {args.shipped / 'metrics.csv'}" if args.shipped else ""))
    print("| | " + " | ".join(columns) + " | trivial answer |")
    print("|---|" + "---:|" * (len(columns) + 1))
    for key, label, trivial in ROWS:
        if key in last:
            cells = [f"{first[key]:.3f}", f"{last[key]:.3f}"]
            if args.shipped:
                cells.append(f"{shipped[key]:.3f}" if key in shipped else "")
            baseline = f"{last[trivial]:.3f}" if trivial and trivial in last else ""
            print(f"| {label} | " + " | ".join(cells) + f" | {baseline} |")
    print("trivial answers: copy the exemplar (images), match every pixel to itself (EPE)")
    table = last_image_table(args.run)
    if table:
        print(f"image tables (input | exemplar | warped exemplar | output | target | truth): "
              f"{table}")
    shipped_table = last_image_table(args.shipped) if args.shipped else None
    if table and shipped_table:
        both = side_by_side(table, shipped_table, args.run.parent / "demo_vs_shipped.png")
        print(f"image tables side by side (this run | shipped model): {both}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
