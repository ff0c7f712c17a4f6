"""Dependencies point inward (STYLE.md): the contracts in pyproject.toml hold, and only the
entry points (``web``, ``cli``) import the composition root ``app``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INNER_PACKAGES = ("hub", "lookup", "integrations", "state")


def test_import_contracts_are_kept() -> None:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--config",
               str(ROOT / "pyproject.toml")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,  # noqa: S603 -- a fixed command from this venv
                            check=False)
    assert 0 == result.returncode, result.stdout[-3000:]


def _imports_app(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "app" and node.level == 0:
            return True
        if isinstance(node, ast.Import) and any(a.name == "app" for a in node.names):
            return True
    return False


def test_only_entry_points_import_the_composition_root() -> None:
    offenders = [str(path.relative_to(ROOT)) for package in INNER_PACKAGES
                 for path in sorted((ROOT / package).rglob("*.py")) if _imports_app(path)]
    assert [] == offenders
