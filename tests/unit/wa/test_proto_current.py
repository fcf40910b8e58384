"""The generated protobuf modules are exactly what scripts/gen-proto makes from our .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "src" / "wahttp" / "wa" / "proto"


def test_generated_modules_are_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-proto"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".py", ".pyi"))
    committed = sorted(
        p.name for p in PROTO_DIR.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi"))
    )
    assert fresh == committed, "a .proto file was added or removed: run scripts/gen-proto"
    for name in fresh:
        assert (tmp_path / name).read_text() == (PROTO_DIR / name).read_text(), (
            f"{name} is stale: run scripts/gen-proto"
        )


def test_every_proto_has_generated_modules() -> None:
    for proto in PROTO_DIR.glob("*.proto"):
        assert (PROTO_DIR / f"{proto.stem}_pb2.py").exists(), proto.name
