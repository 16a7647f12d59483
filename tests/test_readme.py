"""README starts with the two commands, and CI runs the second one word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_starts_with_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text.split("\n## ")[0]
    assert re.findall(r"```bash\n(.+?)\n```", head) == readme_commands()[:2]
    assert len(readme_commands()[:2]) == 2
    assert text.index("```bash") < text.index("deer is an open-source")
    run, test = readme_commands()[:2]
    assert run.endswith("run.py")
    assert test == "bash tests/setup.sh && .venv/bin/python -m pytest"
    assert "'.[test]'" in (ROOT / "tests" / "setup.sh").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = readme_commands()[1]
    assert test_command in ci.splitlines()
