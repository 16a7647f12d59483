"""Headless Chromium (Debian's `chromium`) for tests of pages: render, dump the DOM, screenshot."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

RENDER_TIMEOUT = 60.0
# Flags for a closed network: without the background-networking ones Chromium keeps trying
# to reach Google's hosts.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=10000",
)


def chromium_path() -> str:
    path = os.environ.get("DEER_TEST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Chromium is missing: run `bash tests/setup.sh` (it installs Debian's chromium)"
        )
    return path


async def render(url: str, screenshot: Path | None = None) -> str:
    """The DOM of `url` after its scripts ran, as Chromium serialises it."""
    with tempfile.TemporaryDirectory(prefix="deer-chromium-") as profile:
        args = [*FLAGS, f"--user-data-dir={profile}"]
        if screenshot is not None:
            shot = await asyncio.create_subprocess_exec(
                chromium_path(),
                *args,
                f"--screenshot={screenshot}",
                "--window-size=1280,1600",
                url,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.wait_for(shot.wait(), RENDER_TIMEOUT)
        process = await asyncio.create_subprocess_exec(
            chromium_path(),
            *args,
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), RENDER_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    return out.decode()
