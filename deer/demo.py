"""Placeholder, replaced below."""


async def seed_demo(progress: bool = True) -> dict[str, int]:
    return {}
