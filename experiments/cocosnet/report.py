"""Print the CoCosNet demo's ground-truth figures at initialisation and after training, beside
the trivial answers, and where its image tables are.

    python -m experiments.cocosnet.report runs/cocosnet_demo/demo
"""

from __future__ import annotations

import sys
from pathlib import Path

from callbacks.metric_plot import read_metrics

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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__)
        return 2
    run = Path(args[0])
    if not (run / "metrics.csv").is_file():
        print(f"{run}: no metrics.csv (has the run started?)")
        return 1
    series = {name: values for name, values in read_metrics(run / "metrics.csv").items()
              if name.startswith("exemplar/")}
    if "exemplar/l1_to_truth" not in series:
        print(f"{run}: no exemplar/ ground-truth figures in metrics.csv")
        return 1
    first = {name: values[0][1] for name, values in series.items()}
    last = {name: values[-1][1] for name, values in series.items()}
    start, end = series["exemplar/l1_to_truth"][0][0], series["exemplar/l1_to_truth"][-1][0]
    print(f"CoCosNet demo, {run}: ground truth on {run / 'metrics.csv'}")
    print(f"| | at {start:g} kimg | at {end:g} kimg | trivial answer |")
    print("|---|---:|---:|---:|")
    for key, label, trivial in ROWS:
        if key in last:
            baseline = f"{last[trivial]:.3f}" if trivial and trivial in last else ""
            print(f"| {label} | {first[key]:.3f} | {last[key]:.3f} | {baseline} |")
    print("trivial answers: copy the exemplar (images), match every pixel to itself (EPE)")
    tables = sorted((run / "image_tables").glob("*.png"))
    if tables:
        print(f"image tables (input | exemplar | warped exemplar | output | target | truth): "
              f"{tables[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
