"""The migrated database has every table, column and constraint the models describe."""

from __future__ import annotations

import asyncpg
from tortoise.context import TortoiseContext

from config.settings import Settings
from deer.db import asyncpg_url, tortoise_config


async def test_every_model_column_exists(base_settings: Settings) -> None:
    assert base_settings.database_url is not None
    connection = await asyncpg.connect(asyncpg_url(base_settings.database_url.get_secret_value()))
    try:
        rows = await connection.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    present = {(row["table_name"], row["column_name"]) for row in rows}
    async with TortoiseContext() as context:
        await context.init(config=tortoise_config(base_settings))
        assert context.apps is not None
        expected = {
            (model._meta.db_table, column)
            for model in context.apps.get_models_iterable()
            for column in model._meta.fields_db_projection.values()
        }
    assert expected - present == set()


async def test_integrity_rules_live_in_the_database(base_settings: Settings) -> None:
    assert base_settings.database_url is not None
    connection = await asyncpg.connect(asyncpg_url(base_settings.database_url.get_secret_value()))
    try:
        names = {
            row["name"]
            for row in await connection.fetch(
                "SELECT conname AS name FROM pg_constraint UNION SELECT indexname FROM pg_indexes"
            )
        }
    finally:
        await connection.close()
    assert {
        "product_stock_not_negative",
        "product_money_not_negative",
        "department_parent_name_key",
        "category_parent_name_key",
        "department_manager_id_fkey",
        "department_parent_id_fkey",
    } <= names
