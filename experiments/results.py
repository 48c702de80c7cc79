"""The results registry: ``experiments/<paper>/results.yaml`` beside every paper's configs.

For every config of the folder, the paper's published numbers (each with the citation of where
it was found) or, where none was found, a ``not_found`` statement of what was looked for and
where; and corrlab's measured numbers, each with the provenance that produced it::

    paper: CoCosNet (Zhang et al., CVPR 2020)
    configs:
      celebahq.yaml:
        published:
          - {metric: fid, value: 14.3, source: "authors, microsoft/CoCosNet issue #19 ..."}
        measured:
          - {metric: fid, value: ..., command: ..., commit: ..., hardware: ...,
             data_sha256: ..., checkpoint_sha256: ..., provenance: {...}}

``corrlab results [PAPER]`` prints the table, paper against corrlab, for every config;
``corrlab results --merge RECORDS.jsonl`` adds the records ``corrlab evaluate`` wrote to the
registry of their config (not ``--quick`` ones, unless ``--include-quick``);
:func:`registry_problems` lists what is missing or unsourced (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from lightning_modules.checkpoint_io import atomic_write
from lightning_modules.errors import ConfigError, report_errors

EXPERIMENTS = Path(__file__).resolve().parent
#: folders under experiments/ that hold configs but no paper
NOT_PAPERS = {"benchmarks", "slurm"}
#: what every measured record must say about how it was produced
#: metric names of the ground-truth leaderboard's records (experiments/leaderboard.py)
LEADERBOARD = "leaderboard/"
MEASURED_FIELDS = ("metric", "value", "command", "commit", "hardware", "data_sha256",
                   "checkpoint_sha256", "provenance")


def paper_folders(root: Path = EXPERIMENTS) -> list[Path]:
    """Every folder of ``root`` holding configs (``*.yaml``, at any depth), except
    :data:`NOT_PAPERS`."""
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_PAPERS
                  and any(c.name != "results.yaml" for c in p.rglob("*.yaml")))


def configs_of(folder: Path) -> list[str]:
    """The folder's configs, as paths relative to it."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml")
                  if p.name != "results.yaml")


def load(folder: Path) -> dict:
    path = folder / "results.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; every paper folder has a results registry")
    registry = yaml.safe_load(path.read_text()) or {}
    if not isinstance(registry.get("configs"), dict):
        raise ConfigError(f"{path}: needs 'paper' and a 'configs' mapping")
    return registry


def registry_problems(root: Path = EXPERIMENTS) -> list[str]:
    """Everything that keeps the registry from being complete: a config without an entry, an
    entry for a config that does not exist, a published number without its source, a config
    with neither published numbers nor a ``not_found`` statement, a measured number without
    its provenance."""
    problems = []
    for folder in paper_folders(root):
        path = folder / "results.yaml"
        try:
            registry = load(folder)
        except ConfigError as error:
            problems.append(str(error))
            continue
        entries = registry["configs"]
        for config in configs_of(folder):
            if config not in entries:
                problems.append(f"{path}: no entry for {config}")
        for config, entry in entries.items():
            where = f"{path}: {config}"
            if config not in configs_of(folder):
                problems.append(f"{where}: no such config in {folder}")
            entry = entry or {}
            published = entry.get("published") or []
            if not published and not str(entry.get("not_found", "")).strip():
                problems.append(f"{where}: neither published numbers nor a not_found statement")
            for number in published:
                if not str(number.get("source", "")).strip() or "value" not in number \
                        or not number.get("metric"):
                    problems.append(f"{where}: published {number} needs metric, value, source")
            for record in entry.get("measured") or []:
                missing = [f for f in MEASURED_FIELDS if f not in record]
                if missing:
                    problems.append(f"{where}: measured {record.get('metric')} lacks {missing}")
    return problems


def table(folder: Path) -> list[str]:
    """Markdown rows: config | metric | paper (source) | corrlab (commit)."""
    registry = load(folder)
    lines = [f"### {registry.get('paper', folder.name)}", "",
             "| config | metric | paper | corrlab |", "|---|---|---:|---:|"]
    for config, entry in registry["configs"].items():
        entry = entry or {}
        published = {n["metric"]: n for n in entry.get("published") or []}
        measured = {r["metric"]: r for r in entry.get("measured") or []
                    if not r["metric"].startswith(LEADERBOARD)}
        metrics = list(dict.fromkeys([*published, *measured]))
        if not metrics:
            lines.append(f"| {config} | | not found | |")
        for metric in metrics:
            paper = (f"{published[metric]['value']} ({published[metric]['source']})"
                     if metric in published else "not found")
            value = measured[metric]["value"] if metric in measured else None
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            ours = f"{shown} ({measured[metric]['commit'][:7]})" if metric in measured else ""
            lines.append(f"| {config} | {metric} | {paper} | {ours} |")
    return lines


def merge(records_file: Path, root: Path = EXPERIMENTS, include_quick: bool = False) -> str:
    """Add each record to ``root/<paper>/results.yaml`` under its config's ``measured`` (a
    record already there, same metric and checkpoint, is skipped; a leaderboard record
    replaces the one of its metric, even for the same checkpoints: a new evaluation)."""
    if not records_file.is_file():
        raise ConfigError(f"{records_file}: no such records file")
    added = skipped = 0
    for line in records_file.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        missing = [f for f in (*MEASURED_FIELDS, "config") if f not in record]
        if missing:
            raise ConfigError(f"{records_file}: a record lacks {missing}")
        if record.get("quick") and not include_quick:
            skipped += 1
            continue
        paper, _, config = record["config"].partition("/")
        folder = root / paper
        registry = load(folder)
        entry = registry["configs"].setdefault(config, {})
        measured = entry.setdefault("measured", []) or []
        entry["measured"] = measured
        if record["metric"].startswith(LEADERBOARD):  # a new leaderboard replaces the old
            measured[:] = [r for r in measured if r.get("metric") != record["metric"]]
        elif any(r.get("metric") == record["metric"]
                 and r.get("checkpoint_sha256") == record["checkpoint_sha256"]
                 for r in measured):
            skipped += 1
            continue
        measured.append({k: v for k, v in record.items() if k != "config"})
        path = folder / "results.yaml"
        header = "".join(line + "\n" for line in path.read_text().splitlines()
                         if line.startswith("#"))
        text = (header + yaml.safe_dump(registry, sort_keys=False, width=100)).encode()
        atomic_write(path, lambda handle, text=text: handle.write(text))
        added += 1
    return f"{records_file}: {added} record(s) added, {skipped} skipped"


def leaderboard_table(root: Path = EXPERIMENTS) -> list[str]:
    """The ground-truth leaderboard (``make leaderboard``) from every registry's
    ``leaderboard/...`` records: mean +- std over seeds and the trivial answers."""
    from experiments.leaderboard import from_registry
    from experiments.leaderboard import table as leaderboard_rows

    found = [dict(record, config=f"{folder.name}/{config}")
             for folder in paper_folders(root)
             for config, entry in load(folder)["configs"].items()
             for record in (entry or {}).get("measured") or []
             if record["metric"].startswith(LEADERBOARD)]
    if not found:
        return []
    return ["### Ground-truth leaderboard (shapes & textures, `make leaderboard`)", "",
            *leaderboard_rows(from_registry(found))]


README = EXPERIMENTS.parent / "README.md"
BEGIN, END = "<!-- results registry: begin (make results) -->", "<!-- results registry: end -->"


def readme_tables(root: Path = EXPERIMENTS) -> str:
    """Every paper's table, as the README shows them between :data:`BEGIN` and :data:`END`."""
    return "\n".join([*(line for folder in paper_folders(root)
                        for line in [*table(folder), ""]),
                      *leaderboard_table(root)]).rstrip() + "\n"


def readme_section(text: str) -> str:
    """The README's generated block (without the markers)."""
    if BEGIN not in text or END not in text:
        raise ConfigError(f"README.md: the markers {BEGIN!r} / {END!r} are missing")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_readme(readme: Path = README, root: Path = EXPERIMENTS) -> str:
    """Regenerate the README's results block from the registry (``make results``)."""
    text = readme.read_text()
    readme_section(text)  # markers present
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{BEGIN}\n{readme_tables(root)}{END}{tail}")
    return f"{readme}: results tables regenerated"


def run(args: argparse.Namespace) -> str:
    if args.write_readme:
        return write_readme()
    if args.merge:
        return merge(Path(args.merge), Path(args.root), args.include_quick)
    folders = paper_folders(Path(args.root))
    if args.paper:
        folders = [f for f in folders if f.name == args.paper]
        if not folders:
            raise ConfigError(f"no paper folder '{args.paper}' (have: "
                              f"{', '.join(f.name for f in paper_folders(Path(args.root)))})")
    return "\n".join(line for folder in folders for line in [*table(folder), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="corrlab results",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("paper", nargs="?", help="a folder of experiments/ (default: all)")
    parser.add_argument("--merge", help="a records file written by corrlab evaluate")
    parser.add_argument("--include-quick", action="store_true",
                        help="also merge --quick records (smoke tests, not paper numbers)")
    parser.add_argument("--write-readme", action="store_true",
                        help="regenerate the README's results tables (make results)")
    parser.add_argument("--root", default=str(EXPERIMENTS), help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return report_errors(lambda: print(run(args)))


if __name__ == "__main__":
    sys.exit(main())
