"""The package layout: who may import whom. The table is the `__dependencies_rules__` of
src/python/alerting/BUILD, which Pants enforces on every dependency it infers; this test reads
it and checks what Pants does not: that every package has a row of its own, that every import
statement keeps to it (one Pants could not infer a dependency from too), and that
docs/architecture/ARCHITECTURE.md's table says the same."""

import ast
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ARCHITECTURE = Path("docs/architecture/ARCHITECTURE.md")

# What a package may import: a set of alerting.<package> names, or ANYTHING.
ANYTHING = None
Allowed = set[str] | None


def flatten(item: str | tuple[Any, ...]) -> list[str]:
    return [item] if isinstance(item, str) else [name for part in item for name in flatten(part)]


def read_rules(build: Path) -> dict[str, Allowed]:
    """The table of `build`'s __dependencies_rules__: each package a selector `/<package>/**`
    names (and "<python_tests>", the test modules) -> the packages it may import, from its
    first rule set. The rules name packages as `/<package>/**` or as the generated code's
    `//proto/alerting/<package>/**`; other paths (third-party requirements) are no package."""
    rule_sets: list[tuple[Any, ...]] = []

    def ignore(*args: object, **kwargs: object) -> None:
        pass

    # A BUILD file is Python: run it with its other symbols doing nothing.
    exec(compile(build.read_text(), str(build), "exec"), {
        "__dependencies_rules__": lambda *given: rule_sets.extend(given), "__defaults__": ignore,
        "resources": ignore, "python_tests": ignore, "pex_binary": "pex_binary"})
    table: dict[str, Allowed] = {}
    for selectors, *rules in rule_sets:
        allowed: Allowed = set()
        for rule in flatten(tuple(rules)):
            if rule == "*":
                allowed = ANYTHING
            elif match := re.fullmatch(r"(?:/|//proto/alerting/)(\w+)/\*\*", rule):
                assert allowed is not ANYTHING, f"{rule} after '*'"
                allowed.add(match[1])
            else:
                assert rule == "!*" or rule.startswith("//3rdparty/"), f"a rule this test cannot read: {rule}"
        for selector in flatten(selectors):
            if selector == "*":
                continue  # the rest: none is a package (test_every_package_has_its_own_rules)
            package = re.fullmatch(r"/(\w+)/\*\*", selector)
            assert package or selector == "<python_tests>", f"a selector this test cannot read: {selector}"
            table.setdefault(package[1] if package else selector, allowed)
    return table


RULES = read_rules(HERE / "BUILD")


def first_party_imports(path: Path) -> set[str]:
    """The alerting.<package> names a module imports."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        imported |= {name.split(".")[1] for name in names if name.startswith("alerting.") and name.count(".") >= 1}
    return imported


def packages() -> set[str]:
    return {path.name for path in HERE.iterdir() if path.is_dir() and path.name != "__pycache__"}


def test_every_package_has_its_own_rules() -> None:
    """A package left to the last rule set ("*") may depend on nothing: a new one gets a row."""
    assert packages() <= set(RULES) - {"<python_tests>"}


def test_no_module_imports_what_the_rules_do_not_allow() -> None:
    violations = []
    for package in sorted(packages()):
        for path in sorted((HERE / package).rglob("*.py")):
            allowed = RULES["<python_tests>" if path.name.endswith("_test.py") else package]
            if allowed is ANYTHING:
                continue
            for imported in sorted(first_party_imports(path) - allowed - {package}):
                violations.append(f"{path.relative_to(HERE)} imports alerting.{imported}")
    assert violations == []


def documented_table() -> dict[str, Allowed]:
    """ARCHITECTURE's "Packages and who may import whom": each `alerting.<package>` of a row ->
    the packages its last column names in backquotes ("anything": ANYTHING; "—": none)."""
    section = ARCHITECTURE.read_text().split("### Packages and who may import whom\n", 1)[1].strip().split("\n\n", 1)[0]
    table: dict[str, Allowed] = {}
    for row in section.splitlines()[2:]:
        names, _, may_import = (cell.strip() for cell in row.strip("|").split("|"))
        allowed = ANYTHING if may_import == "anything" else set(re.findall(r"`(\w+)`", may_import))
        for name in re.findall(r"`alerting\.(\w+)`", names):
            table[name] = allowed
    return table


def test_architecture_documents_the_rules() -> None:
    documented = documented_table()
    # alerting.v1, generated from proto/, is under no rule of this BUILD: it imports nothing.
    assert documented.pop("v1") == set()
    rules = {name: allowed if allowed is ANYTHING else allowed - {name} for name, allowed in RULES.items()}
    assert documented == {name: allowed for name, allowed in rules.items() if name != "<python_tests>"}
    assert rules["<python_tests>"] is ANYTHING  # as ARCHITECTURE says below its table


def test_the_rules_read_as_pants_applies_them(tmp_path: Path) -> None:
    """The first rule set whose selector names a package is its row; '*' allows anything."""
    build = tmp_path / "BUILD"
    build.write_text(
        'A = ("//proto/alerting/v1/**", "//3rdparty/**")\n'
        "__dependencies_rules__(\n"
        '    (("<python_tests>", "/tests/**"), "*"),\n'
        '    ("/lib/**", A, "!*"),\n'
        '    *[(f"/{name}/**", f"/{name}/**", "/lib/**", A, "!*") for name in ("one", "lib")],\n'
        '    ("*", "!*"),\n'
        ")\n")
    assert read_rules(build) == {
        "<python_tests>": ANYTHING, "tests": ANYTHING, "lib": {"v1"}, "one": {"one", "lib", "v1"}}


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "main.py"
    module.write_text("import alerting.evaluator.main\nfrom alerting.rules import snapshot\nfrom . import x\n")
    assert first_party_imports(module) == {"evaluator", "rules"}
