"""The linters and the type checker run as part of the suite, with the project's settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-lint", "ruff-format", "mypy-strict"],
)
def test_tool_passes(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_models_and_migrations_agree(base_settings: object) -> None:
    """A model change without its migration fails here: run `python run.py makemigrations`."""
    from tortoise.context import TortoiseContext
    from tortoise.migrations.autodetector import MigrationAutodetector

    from config.settings import Settings
    from deer.db import tortoise_config

    assert isinstance(base_settings, Settings)
    config = tortoise_config(base_settings)
    async with TortoiseContext() as context:
        await context.init(config=config)
        assert context.apps is not None
        detector = MigrationAutodetector(context.apps, config["apps"])
        writers = await detector.changes()
    assert [writer.name for writer in writers] == []
