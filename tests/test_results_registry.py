"""The results registry: every paper config has an entry, every published number its source,
every measured number its provenance; ``corrlab results`` prints paper against corrlab."""

from __future__ import annotations

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
