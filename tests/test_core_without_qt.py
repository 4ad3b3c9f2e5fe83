"""The core never imports Qt: importing and using it leaves PySide6 and pyqtgraph unloaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = [p.stem for p in (Path(__file__).parents[1] / "app").glob("*.py") if p.stem != "__main__"]


def test_core_modules_import_no_qt():
    imports = "; ".join(f"import app.{name}" for name in CORE)
    code = (
        f"import sys; {imports}; import app.io, app.strategies, app.inference, app.inference.engine; "
        "print(sorted(m for m in ('PySide6', 'pyqtgraph') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_qt_import_statement_outside_ui():
    root = Path(__file__).parents[1] / "app"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "ui" not in path.relative_to(root).parts
        and any(line.lstrip().startswith(("import PySide6", "from PySide6", "import pyqtgraph", "from pyqtgraph")) for line in path.read_text().splitlines())
    ]
    assert offenders == []
