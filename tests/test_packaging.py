"""The installed package: one top-level name (``citedesk``) in the wheel, every module importable from it,
and imports that follow the data flow (connectors → ingest → store → retrieval → serving).

The wheel is built from this checkout without build isolation (setuptools is already installed) and without
dependencies, then unpacked with pip into a folder of its own; the modules are imported from there in a
subprocess, so the editable install of the checkout cannot stand in for it.
"""

from __future__ import annotations

import ast
import csv
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("config", "connectors", "core", "ingest", "retrieval", "serving")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("citedesk-*.whl")
    return path


def test_wheel_record_has_one_top_level_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        record_name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(zf.read(record_name).decode())))
    tops = {row[0].split("/", 1)[0] for row in rows if row}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"citedesk"}, sorted(tops)
    paths = {row[0] for row in rows if row}
    # package data travels with the code: templates of the audit page and the Alembic migrations
    assert "citedesk/serving/api/templates/audit_list.html" in paths
    assert "citedesk/serving/db/migrations/env.py" in paths
    assert any(p.startswith("citedesk/serving/db/migrations/versions/") for p in paths)


def _modules() -> list[str]:
    names = []
    for folder in FOLDERS:
        for f in sorted((REPO / folder).rglob("*.py")):
            rel = f.relative_to(REPO).with_suffix("")
            if "migrations" in rel.parts:  # Alembic scripts run inside Alembic, not as imports
                continue
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            names.append("citedesk." + ".".join(parts))
    return names


def test_every_module_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # "bin" holds the console script `citedesk`
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "citedesk"]
    code = ("import importlib, sys\n"
            f"mods = {_modules()!r}\n"
            "for m in mods:\n"
            "    mod = importlib.import_module(m)\n"
            f"    assert mod.__file__.startswith({str(target)!r}), (m, mod.__file__)\n"
            "print(len(mods))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip()) == len(_modules()) > 60


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("citedesk.")}


# Which packages each top-level folder may import (besides itself). retrieval owns the store and the encoders
# that ingest writes with; serving reaches ingest only through its composition root.
ALLOWED = {
    "core": set(),
    "config": {"core"},
    "connectors": {"core"},
    "retrieval": {"core"},
    "ingest": {"core", "retrieval"},
    "serving": {"core", "config", "connectors", "retrieval", "serving"},
}
SERVING_MAY_IMPORT_INGEST = {"serving/container.py"}


def test_imports_follow_the_data_flow() -> None:
    wrong = []
    for folder in FOLDERS:
        for f in (REPO / folder).rglob("*.py"):
            rel = f.relative_to(REPO).as_posix()
            for module in _imports(f):
                pkg = module.split(".")[1]
                if pkg == folder:
                    continue
                if pkg == "ingest" and rel in SERVING_MAY_IMPORT_INGEST:
                    continue
                if pkg not in ALLOWED[folder]:
                    wrong.append(f"{rel} imports {module}")
    assert not wrong, "\n".join(sorted(wrong))


def test_retrieval_never_imports_ingest_and_serving_only_through_the_composition_root() -> None:
    # the rule above, spelled out for the two directions the restructuring removed
    offenders = [f.relative_to(REPO).as_posix() for folder in ("retrieval", "serving") for f in (REPO / folder).rglob("*.py")
                 if any(m.startswith("citedesk.ingest") for m in _imports(f))]
    assert offenders == ["serving/container.py"]
