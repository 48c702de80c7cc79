"""Print the CoCosNet demo's ground-truth figures at initialisation and after training, beside
the trivial answers, and where its image tables are.

    python -m experiments.cocosnet.report runs/cocosnet_demo/demo
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

#: (metric, what it is, trivial answer's metric)
ROWS = [("exemplar/l1_to_truth", "output L1 to the truth", "exemplar/l1_exemplar_to_truth"),
        ("exemplar/lpips_to_truth", "output LPIPS to the truth",
         "exemplar/lpips_exemplar_to_truth"),
        ("exemplar/l1_warped_to_truth", "warped exemplar L1 to the truth",
         "exemplar/l1_exemplar_to_truth"),
        ("exemplar/lpips_warped_to_truth", "warped exemplar LPIPS to the truth",
         "exemplar/lpips_exemplar_to_truth"),
        ("exemplar/epe", "correspondence end-point error (px)", "exemplar/epe_identity"),
        ("exemplar/within_1px", "correspondence within 1 px", None)]


def history(metrics: Path) -> list[dict[str, float]]:
    rows = []
    with open(metrics, newline="") as handle:
        for row in csv.DictReader(handle):
            values = {}
            for key, value in row.items():
                if key.startswith("exemplar/") and value:
                    try:
                        values[key] = float(value)
                    except ValueError:
                        continue
            if "exemplar/l1_to_truth" in values:
                values["kimg"] = float(row.get("progress/kimg") or 0)
                rows.append(values)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__)
        return 2
    run = Path(args[0])
    if not (run / "metrics.csv").is_file():
        print(f"{run}: no metrics.csv (has the run started?)")
        return 1
    rows = history(run / "metrics.csv")
    if not rows:
        print(f"{run}: no exemplar/ ground-truth figures in metrics.csv")
        return 1
    first, last = rows[0], rows[-1]
    print(f"CoCosNet demo, {run}: ground truth on {run / 'metrics.csv'}")
    print(f"| | at {first['kimg']:g} kimg | at {last['kimg']:g} kimg | trivial answer |")
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
