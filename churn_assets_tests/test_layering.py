"""The core stays Dagster-free: every module of ``churn_assets.core`` imports, in a fresh interpreter,
without Dagster being loaded."""

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "churn_assets" / "core"


def test_no_core_module_imports_dagster():
    modules = sorted(
        "churn_assets.core." + ".".join(p.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__")
        for p in CORE.rglob("*.py")
    )
    assert len(modules) > 20
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith(('dagster.', 'dagster_')))\n"
        "    if loaded:\n"
        "        sys.exit(f'{name} loads {loaded[0]}')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr or done.stdout
