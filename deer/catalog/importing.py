"""Bulk import of products from a CSV (UTF-8 with or without BOM, or GBK as Chinese Excel
saves it) or XLSX sheet: columns found by their header, rows upserted by product code.

Each row is applied in a transaction of its own: a good row is written (with its stock
movement, audit record and event) whatever the other rows hold, a row with an error changes
nothing. The answer reports every row: `created`, `updated`, `unchanged` or `error` with
messages naming the column. A dry run applies each row the same way and rolls it back, so it
reports exactly what a real run would (against the data of that moment).

Row numbers are the sheet's: the header is row 1, the first product row 2 (as Excel shows
them). Blank rows are skipped. A blank cell leaves the product's value as it is (or takes the
default for a new product).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from deer.accounts.audit import Actor
from deer.catalog.categories import PATH_SEPARATOR, ids_by_path
from deer.catalog.errors import ImportFileInvalid, ImportTooManyRows
from deer.catalog.models import Product, ProductStatus, StockChange
from deer.catalog.sellable import Channel
from deer.catalog.service import (
    CODE_PATTERN,
    MAX_DESCRIPTION,
    MAX_FEN,
    MAX_IMAGES,
    MAX_NAME,
    MAX_STOCK,
    URL_PATTERN,
    ProductFields,
    change_product,
    insert_product,
    product_conflict,
)
from deer.errors import DeerError, ValidationFailed

MAX_ROWS: Final = 5_000  # product rows per import (the body limit caps the bytes)
# Rows applied at once, each in a transaction (and a pooled connection) of its own: the codes
# of a file are distinct, so they never wait for one another's locks.
CONCURRENT_ROWS: Final = 4
CODE: Final = re.compile(CODE_PATTERN)
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
URL: Final = re.compile(URL_PATTERN)
LIST_SEPARATORS: Final = re.compile(r"\s*[|,，、;；]\s*")
XLSX_MAGIC: Final = b"PK\x03\x04"
OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0"  # the old binary .xls
MAX_UNPACKED: Final = 64 * 1024 * 1024  # bytes an XLSX may unpack to (zip bombs)

# Column -> the headers people write for it (Chinese Excel templates included).
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "code": ("code", "编码", "商品编码", "货号"),
    "name": ("name", "名称", "商品名称"),
    "category": ("category", "分类", "商品分类", "类目"),
    "price": ("price", "价格", "售价"),
    "cost": ("cost", "成本", "成本价"),
    "stock": ("stock", "库存"),
    "channels": ("channels", "渠道", "销售渠道"),
    "status": ("status", "状态"),
    "description": ("description", "描述", "商品描述"),
    "images": ("images", "图片"),
    "sale_start": ("sale_start", "开售时间", "开始时间"),
    "sale_end": ("sale_end", "停售时间", "结束时间"),
}
HEADERS: Final = {alias.lower(): column for column, aliases in COLUMNS.items() for alias in aliases}
CHANNELS: Final = {
    "mini_program": Channel.MINI_PROGRAM,
    "miniprogram": Channel.MINI_PROGRAM,
    "小程序": Channel.MINI_PROGRAM,
    "web": Channel.WEB,
    "网页": Channel.WEB,
    "网站": Channel.WEB,
}
STATUSES: Final = {
    "draft": ProductStatus.DRAFT,
    "草稿": ProductStatus.DRAFT,
    "online": ProductStatus.ONLINE,
    "上架": ProductStatus.ONLINE,
    "offline": ProductStatus.OFFLINE,
    "下架": ProductStatus.OFFLINE,
}
NEW_PRODUCT_NEEDS: Final = ("name", "category", "price")


class SheetFormat(StrEnum):
    CSV_UTF8 = "csv-utf-8"
    CSV_GBK = "csv-gbk"
    XLSX = "xlsx"


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ERROR = "error"


@dataclass(frozen=True)
class CellError:
    column: str  # "" when the row as a whole is refused
    message: str


@dataclass(frozen=True)
class RowReport:
    row: int
    code: str
    outcome: Outcome
    product_id: int | None = None
    errors: tuple[CellError, ...] = ()


@dataclass(frozen=True)
class ImportReport:
    format: SheetFormat
    dry_run: bool
    rows: list[RowReport]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)


@dataclass(frozen=True)
class Sheet:
    format: SheetFormat
    columns: list[str]  # canonical names, "" for a column without a header
    rows: list[tuple[int, list[Any]]]  # (row number, cells), blank rows left out


# --- reading the file ----------------------------------------------------------------------


def read_sheet(data: bytes) -> Sheet:
    """The header and product rows of a CSV or XLSX file (CPU-bound: call it in a thread)."""
    if data.startswith(OLE_MAGIC):
        raise ImportFileInvalid("this is an old .xls workbook: save it as .xlsx or CSV (UTF-8)")
    if data.startswith(XLSX_MAGIC):
        sheet_format, rows = SheetFormat.XLSX, _xlsx_rows(data)
    else:
        sheet_format, text = _decode(data)
        rows = _csv_rows(text)
    numbered = enumerate(rows, start=1)
    header = next(numbered, None)
    if header is None:
        raise ImportFileInvalid("the file is empty: the first row must name the columns")
    columns = _columns(header[1])
    found: list[tuple[int, list[Any]]] = []
    for number, cells in numbered:
        if all(_blank(cell) for cell in cells):
            continue
        if len(found) == MAX_ROWS:
            raise ImportTooManyRows(
                f"one import takes at most {MAX_ROWS} product rows: split the file",
                limit=MAX_ROWS,
            )
        found.append((number, list(cells)))
    return Sheet(sheet_format, columns, found)


def _decode(data: bytes) -> tuple[SheetFormat, str]:
    try:
        return SheetFormat.CSV_UTF8, data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return SheetFormat.CSV_GBK, data.decode("gb18030")  # GBK and its superset
    except UnicodeDecodeError:
        raise ImportFileInvalid(
            "the file is neither an XLSX workbook nor CSV text in UTF-8 or GBK"
        ) from None


def _csv_rows(text: str) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        yield from reader
    except csv.Error as exc:
        raise ImportFileInvalid(f"the CSV is malformed near row {reader.line_num}: {exc}") from None


def _xlsx_rows(data: bytes) -> Iterator[list[Any]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileInvalid(f"the XLSX workbook cannot be read: {exc}") from None
    if unpacked > MAX_UNPACKED:  # members never unpack to more than their stated size
        raise ImportFileInvalid("the XLSX workbook unpacks to more than 64 MiB")
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileInvalid(f"the XLSX workbook cannot be read: {exc}") from None
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # a wrong stored size must neither drop rows nor pad them
        header = list(next(sheet.iter_rows(max_row=1, values_only=True), ()))
        while header and _blank(header[-1]):
            header.pop()
        yield header
        if header:
            yield from (
                list(row)
                for row in sheet.iter_rows(min_row=2, max_col=len(header), values_only=True)
            )
    finally:
        workbook.close()


def _columns(header: list[Any]) -> list[str]:
    columns: list[str] = []
    unknown: list[str] = []
    for cell in header:
        name = _text(cell)
        column = HEADERS.get(name.lower(), "") if name else ""
        if name and not column:
            unknown.append(name)
        if column and column in columns:
            raise ImportFileInvalid(f"the column {name!r} appears twice", column=column)
        columns.append(column)
    if unknown:
        raise ImportFileInvalid(
            f"unknown columns: {', '.join(unknown)}; the columns are {', '.join(COLUMNS)}",
            unknown=unknown,
        )
    if "code" not in columns:
        raise ImportFileInvalid("the first row must name the columns, `code` among them")
    return columns


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)  # Excel keeps every number as a float: 1001, not 1001.0
    return str(cell).strip().lstrip("\ufeff")


# --- one row's cells as product fields ------------------------------------------------------


@dataclass
class RowPlan:
    """What a row asks for, or why it cannot be applied."""

    number: int
    code: str = ""
    fields: ProductFields = field(default_factory=lambda: ProductFields())
    stock: int | None = None
    status: ProductStatus | None = None
    given: set[str] = field(default_factory=set)  # the columns with a value
    errors: list[CellError] = field(default_factory=list)


class _CellInvalid(ValueError):
    pass


def _code(cell: Any) -> str:
    value = _text(cell)
    if not CODE.fullmatch(value):
        raise _CellInvalid(
            "a code is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _name(cell: Any) -> str:
    value = _text(cell)
    if len(value) > MAX_NAME or CONTROL.search(value):
        raise _CellInvalid(f"a name is at most {MAX_NAME} characters, without control characters")
    return value


def _yuan_to_fen(cell: Any) -> int:
    """`12.5`, `¥1,299.00` or an Excel number, in yuan with at most 2 decimals -> fen."""
    if isinstance(cell, bool):
        raise _CellInvalid("an amount in yuan, such as 12.50")
    if isinstance(cell, float):
        cell = repr(cell)  # the shortest decimal that is this float: 12.99, not 12.9899...
    text = _text(cell).lstrip("¥￥").replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise _CellInvalid(f"{_text(cell)!r} is not an amount in yuan, such as 12.50") from None
    fen = amount * 100
    if not amount.is_finite() or fen != fen.to_integral_value():
        raise _CellInvalid(f"{_text(cell)!r}: at most 2 decimals (fen)")
    if not 0 <= fen <= MAX_FEN:
        raise _CellInvalid(f"{_text(cell)!r}: from 0 to {MAX_FEN // 100} yuan")
    return int(fen)


def _stock(cell: Any) -> int:
    text = _text(cell)
    if not text.isdigit() or int(text) > MAX_STOCK:
        raise _CellInvalid(f"{text!r}: the stock is a whole number from 0 to {MAX_STOCK}")
    return int(text)


def _channels(cell: Any) -> list[str]:
    channels: list[str] = []
    for word in LIST_SEPARATORS.split(_text(cell)):
        channel = CHANNELS.get(word.lower())
        if channel is None:
            raise _CellInvalid(f"{word!r} is not a channel: mini_program (小程序) or web (网页)")
        if channel not in channels:
            channels.append(channel.value)
    return channels


def _status(cell: Any) -> ProductStatus:
    value = _text(cell)
    status = STATUSES.get(value.lower())
    if status is None:
        raise _CellInvalid(
            f"{value!r} is not a status: draft (草稿), online (上架), offline (下架)"
        )
    return status


def _description(cell: Any) -> str:
    value = _text(cell)
    if len(value) > MAX_DESCRIPTION:
        raise _CellInvalid(f"a description is at most {MAX_DESCRIPTION:,} characters")
    return value


def _images(cell: Any) -> list[str]:
    urls = [url.strip() for url in _text(cell).split("|") if url.strip()]
    if len(urls) > MAX_IMAGES:
        raise _CellInvalid(f"at most {MAX_IMAGES} images")
    for url in urls:
        if not URL.fullmatch(url):
            raise _CellInvalid(f"{url!r} is not an http(s) URL")
    return urls


def _time_reader(zone: ZoneInfo) -> Callable[[Any], dt.datetime]:
    """A time cell: an Excel date, or `2026-11-11 10:00` (also `2026/11/11`, or with a zone);
    a time without a zone is in the business time zone."""

    def read(cell: Any) -> dt.datetime:
        if isinstance(cell, dt.datetime):
            value = cell
        elif isinstance(cell, dt.date):
            value = dt.datetime.combine(cell, dt.time())
        else:
            text = _text(cell)
            try:
                value = dt.datetime.fromisoformat(
                    re.sub(r"^(\d{4})/(\d{1,2})/(\d{1,2})", _iso_date, text)
                )
            except ValueError:
                raise _CellInvalid(f"{text!r} is not a time such as 2026-11-11 10:00") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(dt.UTC)

    return read


def _iso_date(match: re.Match[str]) -> str:
    year, month, day = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}"


def plan_row(
    number: int, columns: list[str], cells: list[Any], categories: dict[str, int], zone: ZoneInfo
) -> RowPlan:
    """Read one row's cells into the fields to write; every bad cell is reported."""
    plan = RowPlan(number)
    readers: dict[str, Callable[[Any], Any]] = {
        "code": _code,
        "name": _name,
        "category": lambda cell: _category(cell, categories),
        "price": _yuan_to_fen,
        "cost": _yuan_to_fen,
        "stock": _stock,
        "channels": _channels,
        "status": _status,
        "description": _description,
        "images": _images,
        "sale_start": _time_reader(zone),
        "sale_end": _time_reader(zone),
    }
    values: dict[str, Any] = {}
    for column, cell in zip(columns, cells, strict=False):
        if not column or _blank(cell):
            continue
        try:
            values[column] = readers[column](cell)
        except _CellInvalid as exc:
            plan.errors.append(CellError(column, str(exc)))
    plan.given = set(values) | {error.column for error in plan.errors}
    if "code" not in plan.given:
        plan.errors.append(CellError("code", "every row needs the product's code"))
    plan.code = values.get("code") or _text(_cell_of(columns, cells, "code"))
    if "category" in values:
        values["category_id"] = values.pop("category")
    plan.stock = values.pop("stock", None)
    plan.status = values.pop("status", None)
    plan.fields = ProductFields(**values)  # type: ignore[typeddict-item]
    return plan


def _cell_of(columns: list[str], cells: list[Any], column: str) -> Any:
    index = columns.index(column)
    return cells[index] if index < len(cells) else None


def _category(cell: Any, categories: dict[str, int]) -> int:
    """A category id, or a path from the root such as `数码/手机`."""
    text = _text(cell)
    if text.isdigit():
        return int(text)
    path = PATH_SEPARATOR.join(part.strip() for part in re.split(r"[/／]", text))
    found = categories.get(path)
    if found is None:
        raise _CellInvalid(f"no category has the path {path!r} (create it first, or give its id)")
    return found


# --- applying the rows ------------------------------------------------------------------------


class _RolledBack(Exception):
    """Ends a dry run's transaction once its row was applied, with what it did."""

    def __init__(self, report: RowReport) -> None:
        super().__init__(report.outcome)
        self.report = report


def _duplicates(plans: Iterable[RowPlan]) -> None:
    first_row: dict[str, int] = {}
    for plan in plans:
        if not plan.code or plan.errors:
            continue
        if plan.code in first_row:
            plan.errors.append(
                CellError("code", f"the code {plan.code} is already in row {first_row[plan.code]}")
            )
        else:
            first_row[plan.code] = plan.number


async def import_products(
    actor: Actor, sheet: Sheet, *, dry_run: bool, zone: ZoneInfo
) -> ImportReport:
    categories = await ids_by_path()
    plans = [
        plan_row(number, sheet.columns, cells, categories, zone) for number, cells in sheet.rows
    ]
    _duplicates(plans)
    slots = asyncio.Semaphore(CONCURRENT_ROWS)

    async def apply(plan: RowPlan) -> RowReport:
        async with slots:
            return await _apply(actor, plan, dry_run=dry_run)

    reports = await asyncio.gather(*(apply(plan) for plan in plans))
    return ImportReport(sheet.format, dry_run, list(reports))


async def _apply(actor: Actor, plan: RowPlan, *, dry_run: bool) -> RowReport:
    if plan.errors:
        return RowReport(plan.number, plan.code, Outcome.ERROR, errors=tuple(plan.errors))
    try:
        async with in_transaction():
            report = await _upsert(actor, plan)
            if dry_run:  # a new product's id would be another one in a real run
                created = report.outcome == Outcome.CREATED
                raise _RolledBack(replace(report, product_id=None) if created else report)
    except _RolledBack as rolled_back:
        return rolled_back.report
    except IntegrityError as exc:
        return _refused(plan, product_conflict(exc))
    except DeerError as exc:
        return _refused(plan, exc)
    return report


async def _upsert(actor: Actor, plan: RowPlan) -> RowReport:
    reason = f"import row {plan.number}"
    product = await Product.filter(code=plan.code).select_for_update().first()
    if product is None:
        missing = [column for column in NEW_PRODUCT_NEEDS if column not in plan.given]
        if missing:
            return _error(plan, "", f"a new product needs {', '.join(missing)}")
        if plan.status not in (None, ProductStatus.DRAFT, ProductStatus.ONLINE):
            return _error(plan, "status", "a new product starts as draft or online")
        view = await insert_product(
            actor,
            plan.fields,
            stock=plan.stock or 0,
            status=plan.status or ProductStatus.DRAFT,
            stock_change=StockChange.IMPORT,
            stock_reason=reason,
            via="import",
        )
        return RowReport(plan.number, plan.code, Outcome.CREATED, view.id)
    if product.status == ProductStatus.DELETED:
        return _error(plan, "code", f"the product {plan.code} is deleted; it cannot change")
    changed = await change_product(
        actor,
        product,
        plan.fields,
        stock=plan.stock,
        status=plan.status,
        stock_change=StockChange.IMPORT,
        stock_reason=reason,
        via="import",
    )
    outcome = Outcome.UPDATED if changed is not None else Outcome.UNCHANGED
    return RowReport(plan.number, plan.code, outcome, product.id)


def _error(plan: RowPlan, column: str, message: str) -> RowReport:
    return RowReport(plan.number, plan.code, Outcome.ERROR, errors=(CellError(column, message),))


# The column a refusal of the service is about, by its field or its code.
FIELD_COLUMNS: Final = {"category_id": "category"}
CODE_COLUMNS: Final = {
    "illegal_transition": "status",
    "product_not_ready": "status",
    "product_code_taken": "code",
    "product_deleted": "code",
}


def _refused(plan: RowPlan, error: DeerError) -> RowReport:
    """A refusal of the service as the row's errors, named by the sheet's columns."""
    fields = error.details.get("fields")
    if isinstance(error, ValidationFailed) and fields:
        errors = tuple(
            CellError(FIELD_COLUMNS.get(f["path"], f["path"]), str(f["reason"])) for f in fields
        )
    else:
        errors = (CellError(CODE_COLUMNS.get(error.code, ""), error.message),)
    return RowReport(plan.number, plan.code, Outcome.ERROR, errors=errors)
