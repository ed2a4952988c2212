"""The package layout: who may import whom. A service package never imports another
service's package; what two services share lives in a library package."""

import ast
from pathlib import Path

HERE = Path(__file__).parent

# Libraries, and the libraries each may import.
LIBRARIES = {
    "v1": set(),  # generated from proto/
    "common": {"v1"},
    "rules": {"common", "v1"},
}
# Programs: the six services, the tools, and the first-party libraries each may import
# besides its own package and the libraries.
PROGRAMS = {
    "producer": set(),
    "rule_service": set(),
    "rule_updater": set(),
    "evaluator": set(),
    "aggregator": set(),
    "sender": set(),
    "cli": set(),
    "migrate": set(),
    "smtp_sink": set(),
    "webhook_sink": set(),
    "demo": {"producer"},  # the alert-producer is a library as well as a CLI
}
# Test code: may import anything.
TEST_PACKAGES = {"testsupport", "e2e", "deploy_checks"}


def first_party_imports(path: Path) -> set[str]:
    """The alerting.<package> names a module imports."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        imported |= {name.split(".")[1] for name in names if name.startswith("alerting.") and name.count(".") >= 1}
    return imported


def test_every_package_is_known() -> None:
    packages = {path.name for path in HERE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert packages <= set(LIBRARIES) | set(PROGRAMS) | TEST_PACKAGES


def test_no_package_imports_what_it_may_not() -> None:
    allowed = {**LIBRARIES, **{name: set(LIBRARIES) | extra for name, extra in PROGRAMS.items()}}
    violations = []
    for package, may_import in allowed.items():
        for path in sorted((HERE / package).rglob("*.py")):
            if path.name.endswith("_test.py"):
                continue
            for imported in first_party_imports(path) - may_import - {package}:
                violations.append(f"{path.relative_to(HERE)} imports alerting.{imported}")
    assert violations == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "main.py"
    module.write_text("import alerting.evaluator.main\nfrom alerting.rules import snapshot\nfrom . import x\n")
    assert first_party_imports(module) == {"evaluator", "rules"}
