"""The results registry: every paper config has an entry, every published number its source,
every measured number its provenance; ``corrlab results`` prints paper against corrlab."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from experiments.cli import main
from experiments.results import paper_folders, registry_problems


def test_every_paper_config_has_a_sourced_registry_entry():
    assert registry_problems() == []
    names = {folder.name for folder in paper_folders()}
    assert {"swapping_autoencoder", "stylegan2", "few_shot_cdc", "adaconv",
            "cocosnet"} <= names


def test_registry_problems_name_what_is_missing(tmp_path: Path):
    paper = tmp_path / "paper"
    (paper / "sub").mkdir(parents=True)
    for name in ("a.yaml", "b.yaml", "sub/c.yaml"):
        (paper / name).write_text("model: {}\n")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "x.yaml").write_text("{}\n")   # not a paper folder
    (tmp_path / "empty").mkdir()
    (paper / "results.yaml").write_text(yaml.safe_dump({"paper": "P", "configs": {
        "a.yaml": {"published": [{"metric": "fid", "value": "1.0"}]},
        "sub/c.yaml": {"not_found": "looked everywhere",
                       "measured": [{"metric": "fid", "value": 2.0, "commit": "abc"}]},
        "gone.yaml": {"not_found": "x"}}}))
    problems = "\n".join(registry_problems(tmp_path))
    assert "no entry for b.yaml" in problems
    assert "a.yaml: published" in problems and "source" in problems
    assert "sub/c.yaml: measured fid lacks ['command', 'hardware'" in problems
    assert "gone.yaml: no such config" in problems
    assert "benchmarks" not in problems and "empty" not in problems
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "d.yaml").write_text("{}\n")
    assert "other/results.yaml: missing" in "\n".join(registry_problems(tmp_path))


def test_corrlab_results_prints_paper_against_corrlab(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["results", "few_shot_cdc"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "| paper/ffhq_babies.yaml | fid | 74.39 (CDC paper Table 1" in out
    assert "| demo.yaml | | not found | |" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["results", "stylegan2"])
    out = capsys.readouterr().out
    assert "| shapes32.yaml | fid | not found | 333.3 (8ccebd6) |" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["results", "no_such_paper"])
    assert exit_info.value.code == 2 and "no paper folder" in capsys.readouterr().err


def test_readme_tables_are_the_registry(tmp_path: Path):
    from experiments.results import README, readme_section, readme_tables, write_readme

    assert readme_section(README.read_text()) == readme_tables(), \
        "README results tables differ from experiments/*/results.yaml: run `make results`"
    # a changed registry changes the tables; regenerating brings the README back in line
    root = tmp_path / "experiments"
    shutil.copytree(README.parent / "experiments" / "stylegan2", root / "stylegan2")
    path = root / "stylegan2" / "results.yaml"
    path.write_text(path.read_text().replace("333.3", "111.1"))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results registry: begin (make results) -->\nold\n"
                      "<!-- results registry: end -->\noutro\n")
    write_readme(readme, root)
    text = readme.read_text()
    assert "111.1 (8ccebd6)" in text and "old" not in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert readme_section(text) == readme_tables(root)


def test_quick_evaluation_caps_every_fid_type_callback(tmp_path: Path):
    from experiments.evaluate import QUICK, quick_config

    root = Path(__file__).resolve().parents[1] / "experiments"
    for config, count in (("swapping_autoencoder/demo.yaml", "num_pairs"),
                          ("stylegan2/shapes32.yaml", "num_images"),
                          ("adaconv/coco_wikiart.yaml", "num_images")):
        settings = yaml.safe_load(quick_config(root / config, tmp_path).read_text())
        capped = [c["init_args"] for c in settings["trainer"]["callbacks"]
                  if c["class_path"].split(".")[-1] in ("FID", "SwapFID", "ArtFID")]
        assert capped, config
        for args in capped:
            assert args[count] == QUICK[count] and args["num_real"] == QUICK["num_real"]
            assert "num_images" not in args or count == "num_images"  # SwapFID: num_pairs
