"""The repository documents itself: no file points at a design file outside it."""

from __future__ import annotations

from tests.conftest import ROOT


def test_no_reference_to_a_design_file_outside_the_repository():
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()
    offenders = [str(path.relative_to(ROOT)) for pattern in ("*.py", "*.md", "*.yaml")
                 for path in ROOT.rglob(pattern)
                 if ".venv" not in path.parts and "runs" not in path.parts
                 and "DESIGN.md" in path.read_text(errors="ignore")
                 and path.name != "test_docs.py"]
    assert offenders == []
