"""The import rules of the house, read from the sources: thin transports over a core that knows
none, and a bridge that needs only the contract (so it can run alone, without MLX)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(*parts: str) -> list[Path]:
    base = ROOT.joinpath(*parts)
    return [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# What the bridge may import of osaurus: the generated code and modules that import no more.
CONTRACT = ("osaurus.v1", "osaurus.client", "osaurus.durations", "osaurus.request_id")


@pytest.mark.parametrize("module", CONTRACT[1:])
def test_the_contract_modules_import_nothing_of_the_core(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    core = {n for n in imports(path) if _within(n, "osaurus")}
    assert core <= {"osaurus.v1"}, core


@pytest.mark.parametrize("path", sources("rest_bridge"), ids=lambda p: p.name)
def test_the_bridge_imports_only_the_contract_of_osaurus(path: Path) -> None:
    allowed = CONTRACT
    core = {n for n in imports(path) if _within(n, "osaurus") and n != "osaurus"}
    assert all(any(_within(n, a) for a in allowed) for n in core), core


CORE = (
    "engine",
    "chat",
    "models",
    "errors.py",
    "config.py",
    "system.py",
    "durations.py",
    "auth.py",
    "rate_limit.py",
    "metrics.py",
    "request_id.py",
)


@pytest.mark.parametrize(
    "path", [p for part in CORE for p in sources("osaurus", part)], ids=lambda p: p.name
)
def test_the_core_knows_no_transport(path: Path) -> None:
    transports = {"grpc", "grpc_status", "fastapi", "starlette", "rest_bridge", "osaurus.v1"}
    transports |= {"osaurus.client", "osaurus.services", "osaurus.server"}
    found = {n for n in imports(path) if any(_within(n, t) for t in transports)}
    assert not found, f"{path.relative_to(ROOT)} imports {found}"


def test_only_the_launcher_wires_in_the_bridge() -> None:
    importers = {
        p.relative_to(ROOT).as_posix()
        for p in sources("osaurus")
        if any(_within(n, "rest_bridge") for n in imports(p))
    }
    assert importers == {"osaurus/launcher.py"}
