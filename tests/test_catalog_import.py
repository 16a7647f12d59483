"""Product import: CSV in UTF-8 (with BOM) and GBK, XLSX; upsert by code; a report for every
row; good rows applied, bad rows changing nothing; dry runs; limits and unreadable files."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import aiohttp
import pytest
from openpyxl import Workbook

from deer.accounts.models import AuditLog
from deer.app import create_app
from deer.catalog import importing
from deer.catalog.models import Product, ProductStatus, StockMovement
from tests.auth_helpers import bearer, error_code, field_paths, staff_token
from tests.catalog_helpers import (
    Client,
    catalog_state,
    make_category,
    make_product,
    ops,
    relayed_events,
)

# Outbox rows stay until the test relays them: no relay runs in the app.
pytestmark = pytest.mark.manual_outbox_relay

SHANGHAI = dt.timezone(dt.timedelta(hours=8))

CSV_ROWS = [
    "编码,名称,分类,价格,成本,库存,渠道,状态,描述,图片,开售时间,sale_end",
    'HW-1,华为 Mate 70,数码/手机,"6,999.50",5200,10,小程序|web,上架,"旗舰,卫星通话",'
    "https://img.example.com/1.jpg|https://img.example.com/2.jpg,2026/11/11 10:00,",
    "OLD-1,,,1299,,40,,,,,,",
    "BAD-1,坏价格,数码/手机,12.345,,,app,,,,,",
    "BAD-2,没有分类,数码/平板,10,,,,,,,,",
    ",,,,,,,,,,,",
    "HW-1,重复,数码/手机,10,,,,,,,,",
    "SAME-1,不变,,,,,,,,,,",
    "GONE-1,已删除,,10,,,,,,,,",
    "ON-1,,,,,,,草稿,,,,",
    "NEW-2,缺价格,数码,,,,,,,,,",
]


def csv_bytes(rows: list[str], encoding: str = "utf-8-sig") -> bytes:
    return "\r\n".join(rows).encode(encoding)


async def upload(
    client: Client,
    token: str,
    content: bytes,
    *,
    filename: str = "products.csv",
    dry_run: bool = False,
) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("note", "商品导入")
    form.add_field("file", content, filename=filename, content_type="application/octet-stream")
    response = await client.post(
        "/api/products/import",
        data=form,
        params={"dry_run": "true"} if dry_run else None,
        headers=bearer(token),
    )
    return response.status, await response.json()


async def seed() -> dict[str, Product]:
    digital = await make_category("数码")
    phones = await make_category("手机", digital)
    return {
        "old": await make_product("OLD-1", phones, price=1_099_00, stock=5),
        "same": await make_product("SAME-1", phones, name="不变"),
        "gone": await make_product("GONE-1", phones, status=ProductStatus.DELETED),
        "online": await make_product("ON-1", phones),
    }


def outcomes(report: dict[str, Any]) -> list[tuple[int, str, str, list[tuple[str, str]]]]:
    return [
        (
            item["row"],
            item["code"],
            item["result"],
            [(error["column"], error["message"]) for error in item["errors"]],
        )
        for item in report["items"]
    ]


EXPECTED_ROWS = [
    (2, "HW-1", "created", []),
    (3, "OLD-1", "updated", []),
    (
        4,
        "BAD-1",
        "error",
        [
            ("price", "'12.345': at most 2 decimals (fen)"),
            ("channels", "'app' is not a channel: mini_program (小程序) or web (网页)"),
        ],
    ),
    (
        5,
        "BAD-2",
        "error",
        [("category", "no category has the path '数码/平板' (create it first, or give its id)")],
    ),
    (7, "HW-1", "error", [("code", "the code HW-1 is already in row 2")]),
    (8, "SAME-1", "unchanged", []),
    (9, "GONE-1", "error", [("code", "the product GONE-1 is deleted; it cannot change")]),
    (10, "ON-1", "error", [("status", "a product cannot go from online to draft")]),
    (11, "NEW-2", "error", [("", "a new product needs price")]),
]


async def test_a_utf8_csv_applies_good_rows_and_reports_every_row(client: Client) -> None:
    seeded = await seed()
    token = await ops(client)
    untouched = Product.filter(code__in=["SAME-1", "GONE-1", "ON-1"]).order_by("id")
    untouched_before = await untouched.values()
    status, report = await upload(client, token, csv_bytes(CSV_ROWS))
    assert status == 200, report
    assert {k: v for k, v in report.items() if k != "items"} == {
        "format": "csv-utf-8",
        "dry_run": False,
        "rows": 9,
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "failed": 6,
    }
    assert outcomes(report) == EXPECTED_ROWS
    assert report["items"][0]["message"] == "row 2: HW-1 created"
    assert report["items"][2]["message"] == (
        "row 4: price: '12.345': at most 2 decimals (fen); channels: 'app' is not a channel:"
        " mini_program (小程序) or web (网页)"
    )

    created = await Product.get(code="HW-1")
    assert report["items"][0]["product_id"] == created.id
    assert (
        created.name,
        created.price,
        created.cost,
        created.stock,
        created.channels,
        created.status,
        created.description,
        created.images,
        created.sale_start,
        created.sale_end,
    ) == (
        "华为 Mate 70",
        699_950,
        520_000,
        10,
        ["mini_program", "web"],
        ProductStatus.ONLINE,
        "旗舰,卫星通话",
        ["https://img.example.com/1.jpg", "https://img.example.com/2.jpg"],
        dt.datetime(2026, 11, 11, 10, 0, tzinfo=SHANGHAI),
        None,
    )
    old = await Product.get(id=seeded["old"].id)
    assert (old.price, old.stock, old.name) == (129_900, 40, seeded["old"].name)
    assert await untouched.values() == untouched_before
    # rows are applied a few at a time: the order across products is not the sheet's
    movements = (
        await StockMovement.all()
        .order_by("reason")
        .values("product_id", "change", "delta", "stock_after", "reason")
    )
    assert movements == [
        {
            "product_id": created.id,
            "change": "import",
            "delta": 10,
            "stock_after": 10,
            "reason": "import row 2",
        },
        {
            "product_id": old.id,
            "change": "import",
            "delta": 35,
            "stock_after": 40,
            "reason": "import row 3",
        },
    ]
    audits = await AuditLog.filter(action__startswith="product.").order_by("action")
    assert [(a.action, a.target_id, a.details["via"]) for a in audits] == [
        ("product.create", str(created.id), "import"),
        ("product.update", str(old.id), "import"),
    ]
    assert audits[1].details["changes"] == {"price": [109_900, 129_900], "stock": [5, 40]}
    events = sorted(await relayed_events(client), key=lambda event: str(event["type"]))
    assert [(e["type"], e["product"]["code"]) for e in events] == [
        ("product.created", "HW-1"),
        ("product.updated", "OLD-1"),
    ]
    assert events[1]["changes"] == ["price", "stock"]


async def test_a_dry_run_reports_the_same_and_writes_nothing(client: Client) -> None:
    seeded = await seed()
    token = await ops(client)
    before = await catalog_state()
    status, report = await upload(client, token, csv_bytes(CSV_ROWS), dry_run=True)
    assert status == 200, report
    assert (report["dry_run"], report["created"], report["updated"], report["failed"]) == (
        True,
        1,
        1,
        6,
    )
    assert outcomes(report) == EXPECTED_ROWS
    assert [item["product_id"] for item in report["items"][:2]] == [None, seeded["old"].id]
    assert await catalog_state() == before
    assert await relayed_events(client) == []


async def test_a_gbk_csv_from_chinese_excel(client: Client) -> None:
    await seed()
    token = await ops(client)
    rows = [
        "商品编码,商品名称,商品分类,售价,库存,销售渠道,状态",
        "GBK-1,小米 14 徕卡影像,数码/手机,3999,8,网页、小程序,上架",
        "GBK-2,红米耳机,数码/手机,￥99.9,abc,网页,下架",
    ]
    status, report = await upload(client, token, csv_bytes(rows, "gbk"))
    assert status == 200, report
    assert report["format"] == "csv-gbk"
    assert outcomes(report) == [
        (2, "GBK-1", "created", []),
        (
            3,
            "GBK-2",
            "error",
            [("stock", "'abc': the stock is a whole number from 0 to 1000000000")],
        ),
    ]
    product = await Product.get(code="GBK-1")
    assert (product.name, product.price, product.stock, product.channels, product.status) == (
        "小米 14 徕卡影像",
        399_900,
        8,
        ["web", "mini_program"],
        ProductStatus.ONLINE,
    )


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def test_an_xlsx_workbook(client: Client) -> None:
    seeded = await seed()
    phones_id = seeded["old"].category_id
    token = await ops(client)
    content = xlsx_bytes(
        [
            ["code", "name", "category", "price", "cost", "stock", "channels", "sale_end", None],
            [1001, "数字编码", phones_id, 12.99, 8, 3.0, "web", dt.datetime(2027, 1, 1), None],
            ["OLD-1", None, None, 1099, None, 5, None, None, None],
            [],
            ["X-1", "价格为负", "数码/手机", -5, None, None, None, None, None],
            ["X-2", "库存小数", "数码", 5, None, 2.5, None, "明天", None],
        ]
    )
    status, report = await upload(client, token, content, filename="商品.xlsx")
    assert status == 200, report
    assert report["format"] == "xlsx"
    assert outcomes(report) == [
        (2, "1001", "created", []),
        (3, "OLD-1", "unchanged", []),
        (5, "X-1", "error", [("price", "'-5': from 0 to 10000000000 yuan")]),
        (
            6,
            "X-2",
            "error",
            [
                ("stock", "'2.5': the stock is a whole number from 0 to 1000000000"),
                ("sale_end", "'明天' is not a time such as 2026-11-11 10:00"),
            ],
        ),
    ]
    product = await Product.get(code="1001")
    assert (product.price, product.cost, product.stock, product.category_id, product.sale_end) == (
        1_299,
        800,
        3,
        phones_id,
        dt.datetime(2027, 1, 1, tzinfo=SHANGHAI),
    )
    assert product.status == ProductStatus.DRAFT


async def test_unreadable_files_are_refused_whole(client: Client) -> None:
    await seed()
    token = await ops(client)
    before = await catalog_state()
    cases: list[tuple[bytes, str]] = [
        (b"", "import_file_invalid"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old excel", "import_file_invalid"),
        (b"PK\x03\x04 not really a zip", "import_file_invalid"),
        (csv_bytes(["code,name,colour", "A,B,red"]), "import_file_invalid"),
        (csv_bytes(["name,price", "A,1"]), "import_file_invalid"),
        (csv_bytes(["code,code", "A,B"]), "import_file_invalid"),
        (b"\xff\xfe\x00\x81code", "import_file_invalid"),
    ]
    for content, code in cases:
        status, body = await upload(client, token, content)
        assert (status, error_code(body)) == (422, code), (content, body)
    status, body = await upload(client, token, csv_bytes(["code,name,colour", "A,B,red"]))
    assert body["error"]["details"]["unknown"] == ["colour"]

    response = await client.post("/api/products/import", json={"rows": []}, headers=bearer(token))
    assert (response.status, error_code(await response.json())) == (415, "unsupported_media_type")
    form = aiohttp.FormData()
    form.add_field("sheet", b"code\nA", filename="a.csv")
    response = await client.post("/api/products/import", data=form, headers=bearer(token))
    body = await response.json()
    assert (response.status, field_paths(body)) == (422, {"file"})
    response = await client.post(
        "/api/products/import", data=form, params={"dry_run": "maybe"}, headers=bearer(token)
    )
    assert (response.status, field_paths(await response.json())) == (422, {"dry_run"})
    assert await catalog_state() == before


async def test_too_many_rows(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    await seed()
    monkeypatch.setattr(importing, "MAX_ROWS", 3)
    token = await ops(client)
    rows = ["code,name,category,price", *(f"N-{i},新品,数码,1" for i in range(4))]
    before = await catalog_state()
    status, body = await upload(client, token, csv_bytes(rows))
    assert (status, error_code(body)) == (422, "import_too_many_rows")
    assert body["error"]["details"] == {"limit": 3}
    assert await catalog_state() == before
    status, body = await upload(client, token, csv_bytes([*rows[:4], "", ",,,"]))
    assert (status, body["created"]) == (200, 3)  # blank rows do not count


async def test_a_file_over_the_body_limit(aiohttp_client: Any, make_settings: Any) -> None:
    client = await aiohttp_client(create_app(make_settings(max_body_size=4096)))
    await seed()
    token = await staff_token(client, "ops_lina", ["ops"])
    rows = ["code,name,category,price", *(f"N-{i},新品{'好' * 20},数码,1" for i in range(100))]
    before = await catalog_state()
    status, body = await upload(client, token, csv_bytes(rows))
    assert (status, error_code(body)) == (413, "payload_too_large")
    assert body["error"]["details"] == {"limit_bytes": 4096}
    assert await catalog_state() == before


async def test_the_documented_example_file_imports(client: Client, repo_root: Any) -> None:
    digital = await make_category("数码")
    await make_category("手机", digital)
    await make_category("耳机", digital)
    await make_category("家居")
    token = await ops(client)
    content = (repo_root / "docs" / "examples" / "products-import.csv").read_bytes()
    status, report = await upload(client, token, content)
    assert status == 200, report
    assert outcomes(report) == [
        (2, "HW-M70-512", "created", []),
        (3, "MI-14-256", "created", []),
        (4, "FB-PRO-4", "created", []),
        (5, "ZT-PILLOW", "error", [("status", "a new product starts as draft or online")]),
    ]
    product = await Product.get(code="FB-PRO-4")
    assert (product.price, product.cost, product.status, product.sale_end) == (
        129_990,
        82_000,
        ProductStatus.DRAFT,
        dt.datetime(2027, 1, 1, tzinfo=SHANGHAI),
    )
    status, report = await upload(client, token, content)
    assert [item["result"] for item in report["items"]] == [
        "unchanged",
        "unchanged",
        "unchanged",
        "error",
    ]


async def test_the_upload_is_documented_as_multipart(client: Client) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/products/import"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"] == {"file": {"type": "string", "format": "binary"}}
    assert {"413", "415", "422"} <= set(operation["responses"])
    assert operation["parameters"][0]["name"] == "dry_run"
