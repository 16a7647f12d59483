"""The catalog's endpoints: categories, products, their status and stock, and the import.

Browsing is public, as in any shop: anonymous visitors and members read the enabled
categories and the products sellable on their channel (`channel`, default `web`), never the
cost. A staff caller whose roles may read the route (`config/policy.csv`: every staff role)
reads everything: disabled categories, drafts, offline and (when asked) deleted products,
costs. Writes are for `ops` and admins; each is in the audit log and emits a product event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Final, Literal, cast

from aiohttp import BodyPartReader, web
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    Field,
    RootModel,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from deer import keys
from deer.access.policy import route_pattern
from deer.accounts.admin_common import Page
from deer.accounts.admin_common_http import (
    ID,
    AdminRef,
    Id,
    Name,
    PageQuery,
    Search,
    Strict,
    actor_of,
    page_out,
    path_id,
    ref_out,
    reject_null,
)
from deer.catalog import categories, importing, service, stock
from deer.catalog.categories import CategoryNode, CategoryView
from deer.catalog.models import ProductStatus, StockChange
from deer.catalog.sellable import Channel
from deer.catalog.service import ProductFilter, ProductSort
from deer.catalog.views import ProductView
from deer.errors import ValidationFailed
from deer.web.api import Api, UnsupportedMediaType
from deer.web.auth import caller_of
from deer.web.responses import HttpError

api = Api(tags=["catalog"])

UPLOAD_FIELD: Final = "file"
MULTIPART: Final = "multipart/form-data"
CHUNK: Final = 64 * 1024


def _no_separator(value: str) -> str:
    if categories.PATH_SEPARATOR in value:
        raise ValueError(f"a category name cannot contain {categories.PATH_SEPARATOR!r}")
    return value


def _distinct(values: list[Channel]) -> list[Channel]:
    if len(set(values)) != len(values):
        raise ValueError("a channel is listed twice")
    return values


SortOrder = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
CategoryName = Annotated[Name, AfterValidator(_no_separator)]
Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=service.CODE_PATTERN),
    Field(description="1–64 of `A-Za-z0-9._-`, starting with a letter or digit; unique"),
]
ProductName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=service.MAX_NAME,
        pattern=r"^[^\x00-\x1f\x7f]+$",
    ),
]
Fen = Annotated[int, Field(ge=0, le=service.MAX_FEN, description="fen (1/100 yuan)")]
StockCount = Annotated[int, Field(ge=0, le=service.MAX_STOCK)]
Description = Annotated[str, StringConstraints(max_length=service.MAX_DESCRIPTION)]
ImageUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=512, pattern=service.URL_PATTERN)
]
Images = Annotated[list[ImageUrl], Field(max_length=service.MAX_IMAGES)]
Channels = Annotated[list[Channel], AfterValidator(_distinct)]
Reason = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


def _window(value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
    start = info.data.get("sale_start")
    if value is not None and start is not None and value <= start:
        raise ValueError("must be after sale_start")
    return value


async def _staff_view(request: web.Request) -> bool:
    """Staff whose roles may read this route see everything; anyone else reads as a shopper
    (a sent token is checked all the same: a bad one is 401)."""
    principal = await caller_of(request)
    if principal is None or principal.kind != "staff":
        return False
    resource = request.match_info.route.resource
    assert resource is not None
    route = route_pattern(resource.canonical)
    return request.app[keys.POLICIES].allows(principal.roles, route, request.method)


# --- categories ------------------------------------------------------------------------------


class CategoryIn(Strict):
    name: CategoryName
    parent_id: Id | None = Field(default=None, description="none: a top-level category")
    sort: SortOrder = Field(default=0, description="lower first within its level")
    enabled: bool = True


class CategoryPatch(Strict):
    """Only the fields sent change; `parent_id: null` makes it top-level."""

    name: CategoryName | None = None
    parent_id: Id | None = None
    sort: SortOrder | None = None
    enabled: bool | None = None

    _present = field_validator("name", "sort", "enabled")(reject_null)


class StaffCategory(BaseModel):
    id: int
    name: str
    parent_id: int | None
    sort: int
    enabled: bool = Field(description="a disabled category and its subtree are hidden from members")
    product_count: int = Field(description="products (not deleted) directly in this category")
    created_at: dt.datetime


class StaffCategoryNode(StaffCategory):
    children: list[StaffCategoryNode]


class ShopCategoryNode(BaseModel):
    id: int
    name: str
    parent_id: int | None
    sort: int
    children: list[ShopCategoryNode]


class StaffCategoryTree(BaseModel):
    items: list[StaffCategoryNode] = Field(description="the top-level categories")


class ShopCategoryTree(BaseModel):
    items: list[ShopCategoryNode] = Field(description="the enabled top-level categories")


class CategoryTree(RootModel[StaffCategoryTree | ShopCategoryTree]):
    """Staff read every category with its details; members and visitors the enabled ones."""


def category_out(view: CategoryView) -> StaffCategory:
    return StaffCategory(
        id=view.id,
        name=view.name,
        parent_id=view.parent_id,
        sort=view.sort,
        enabled=view.enabled,
        product_count=view.product_count,
        created_at=view.created_at,
    )


def staff_node_out(node: CategoryNode) -> StaffCategoryNode:
    return StaffCategoryNode(
        **category_out(node.category).model_dump(),
        children=[staff_node_out(child) for child in node.children],
    )


def shop_node_out(node: CategoryNode) -> ShopCategoryNode:
    view = node.category
    return ShopCategoryNode(
        id=view.id,
        name=view.name,
        parent_id=view.parent_id,
        sort=view.sort,
        children=[shop_node_out(child) for child in node.children],
    )


@api.get(
    "/api/categories",
    summary="The category tree, each level in sort order (members: the enabled part)",
    response=CategoryTree,
    public=True,
)
async def category_tree(request: web.Request) -> CategoryTree:
    if await _staff_view(request):
        nodes = await categories.category_tree(enabled_only=False)
        return CategoryTree(StaffCategoryTree(items=[staff_node_out(node) for node in nodes]))
    nodes = await categories.category_tree(enabled_only=True)
    return CategoryTree(ShopCategoryTree(items=[shop_node_out(node) for node in nodes]))


@api.post(
    "/api/categories",
    summary="Create a category",
    body=CategoryIn,
    response=StaffCategory,
    status=201,
    errors=(409,),
)
async def create_category(request: web.Request, body: CategoryIn) -> StaffCategory:
    view = await categories.create_category(
        actor_of(request), body.name, body.parent_id, body.sort, body.enabled
    )
    return category_out(view)


@api.patch(
    f"/api/categories/{ID}",
    summary="Rename, move, reorder, enable or disable a category",
    body=CategoryPatch,
    response=StaffCategory,
    errors=(404, 409),
)
async def update_category(request: web.Request, body: CategoryPatch) -> StaffCategory:
    wanted = cast(categories.CategoryChanges, body.model_dump(exclude_unset=True))
    return category_out(
        await categories.update_category(actor_of(request), path_id(request), wanted)
    )


@api.delete(
    f"/api/categories/{ID}",
    summary="Delete a category without subcategories or products",
    status=204,
    errors=(404, 409),
)
async def delete_category(request: web.Request) -> web.Response:
    await categories.delete_category(actor_of(request), path_id(request))
    return web.Response(status=204)


# --- products --------------------------------------------------------------------------------


class ProductCategory(BaseModel):
    id: int
    name: str
    path: str = Field(description="the names from the root down, joined by `/`: `数码/手机`")
    path_ids: list[int] = Field(description="the ids from the root down")


class ShopProduct(BaseModel):
    id: int
    code: str
    name: str
    category: ProductCategory
    description: str
    images: list[str]
    price: int = Field(description="fen")
    stock: int
    sales: int
    channels: list[Channel]
    sale_start: dt.datetime | None = Field(description="none: on sale from the start")
    sale_end: dt.datetime | None = Field(description="none: no end")


class StaffProduct(ShopProduct):
    cost: int = Field(description="fen; staff only")
    status: ProductStatus
    created_at: dt.datetime
    updated_at: dt.datetime


class ProductOut(RootModel[StaffProduct | ShopProduct]):
    """Staff read a product with its cost and status; members and visitors without."""


class StaffProductPage(BaseModel):
    items: list[StaffProduct]
    total: int
    page: int
    size: int


class ShopProductPage(BaseModel):
    items: list[ShopProduct]
    total: int
    page: int
    size: int


class ProductPage(RootModel[StaffProductPage | ShopProductPage]):
    """Staff read products with their cost and status; members and visitors without."""


def shop_product_out(view: ProductView) -> ShopProduct:
    return ShopProduct(
        id=view.id,
        code=view.code,
        name=view.name,
        category=ProductCategory(
            id=view.category.id,
            name=view.category.name,
            path=view.category.path,
            path_ids=list(view.category.ids),
        ),
        description=view.description,
        images=view.images,
        price=view.price,
        stock=view.stock,
        sales=view.sales,
        channels=[Channel(channel) for channel in view.channels],
        sale_start=view.sale_start,
        sale_end=view.sale_end,
    )


def staff_product_out(view: ProductView) -> StaffProduct:
    return StaffProduct(
        **shop_product_out(view).model_dump(),
        cost=view.cost,
        status=view.status,
        created_at=view.created_at,
        updated_at=view.updated_at,
    )


class ProductQuery(PageQuery):
    category_id: Id | None = Field(default=None, description="this category and its subtree")
    status: ProductStatus | None = Field(
        default=None, description="staff only; without it staff see all but deleted products"
    )
    q: Search | None = Field(default=None, description="part of the name or the code")
    channel: Channel | None = Field(
        default=None, description="members: the channel they shop on (default web)"
    )
    price_min: Fen | None = None
    price_max: Fen | None = None
    sort: ProductSort = ProductSort.NEWEST

    @field_validator("price_max")
    @classmethod
    def _range(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("price_min")
        if value is not None and low is not None and value < low:
            raise ValueError("must not be below price_min")
        return value


class ChannelQuery(Strict):
    channel: Channel = Field(default=Channel.WEB, description="members: the channel they shop on")


class ProductIn(Strict):
    code: Code
    name: ProductName
    category_id: Id
    description: Description = ""
    images: Images = Field(default_factory=list, description="http(s) URLs, the first is the cover")
    price: Fen
    cost: Fen = 0
    stock: StockCount = Field(default=0, description="recorded as the first stock movement")
    channels: Channels = Field(default_factory=list)
    sale_start: AwareDatetime | None = None
    sale_end: AwareDatetime | None = None
    status: Literal["draft", "online"] = "draft"

    _after_start = field_validator("sale_end")(_window)


class ProductPatch(Strict):
    """Only the fields sent change; `null` clears a sales window's end. The status and the
    stock have their own endpoints."""

    code: Code | None = None
    name: ProductName | None = None
    category_id: Id | None = None
    description: Description | None = None
    images: Images | None = None
    price: Fen | None = None
    cost: Fen | None = None
    channels: Channels | None = None
    sale_start: AwareDatetime | None = None
    sale_end: AwareDatetime | None = None

    _present = field_validator(
        "code", "name", "category_id", "description", "images", "price", "cost", "channels"
    )(reject_null)
    _after_start = field_validator("sale_end")(_window)


@api.get(
    "/api/products",
    summary="Products, paged: filters, search and sort (members: what is on sale for them)",
    query=ProductQuery,
    response=ProductPage,
    public=True,
)
async def list_products(request: web.Request, query: ProductQuery) -> ProductPage:
    staff = await _staff_view(request)
    if query.status is not None and not staff:
        raise ValidationFailed(
            "only staff filter by status: shoppers see the products on sale",
            fields=[{"path": "status", "reason": "only staff filter by status"}],
        )
    where = ProductFilter(
        category_id=query.category_id,
        status=query.status,
        q=query.q,
        channel=query.channel,
        price_min=query.price_min,
        price_max=query.price_max,
        sort=query.sort,
    )
    page = await service.list_products(query.paging, where, staff=staff)
    if staff:
        return ProductPage(page_out(StaffProductPage, page, staff_product_out))
    return ProductPage(page_out(ShopProductPage, page, shop_product_out))


@api.post(
    "/api/products",
    summary="Create a product (a draft unless `status` is online)",
    body=ProductIn,
    response=StaffProduct,
    status=201,
    errors=(409,),
)
async def create_product(request: web.Request, body: ProductIn) -> StaffProduct:
    fields = cast(
        service.ProductFields, body.model_dump(exclude={"stock", "status"}, mode="python")
    )
    view = await service.create_product(
        actor_of(request), fields, stock=body.stock, status=ProductStatus(body.status)
    )
    return staff_product_out(view)


class CellErrorOut(BaseModel):
    column: str = Field(description="the column the error is about; empty: the whole row")
    message: str


class ImportRowOut(BaseModel):
    row: int = Field(description="the sheet's row number: the header is row 1")
    code: str
    result: importing.Outcome
    product_id: int | None = Field(
        description="the product; none for an error, or for a product a dry run would create"
    )
    message: str = Field(description="what happened, for people")
    errors: list[CellErrorOut]


class ImportReportOut(BaseModel):
    format: importing.SheetFormat
    dry_run: bool = Field(description="true: nothing was written")
    rows: int
    created: int
    updated: int
    unchanged: int
    failed: int
    items: list[ImportRowOut]


class ImportQuery(Strict):
    dry_run: bool = Field(default=False, description="check every row, write nothing")


def _row_message(row: importing.RowReport) -> str:
    if row.outcome != importing.Outcome.ERROR:
        return f"row {row.row}: {row.code} {row.outcome}"
    problems = "; ".join(
        f"{error.column}: {error.message}" if error.column else error.message
        for error in row.errors
    )
    return f"row {row.row}: {problems}"


def import_out(report: importing.ImportReport) -> ImportReportOut:
    return ImportReportOut(
        format=report.format,
        dry_run=report.dry_run,
        rows=len(report.rows),
        created=report.count(importing.Outcome.CREATED),
        updated=report.count(importing.Outcome.UPDATED),
        unchanged=report.count(importing.Outcome.UNCHANGED),
        failed=report.count(importing.Outcome.ERROR),
        items=[
            ImportRowOut(
                row=row.row,
                code=row.code,
                result=row.outcome,
                product_id=row.product_id,
                message=_row_message(row),
                errors=[CellErrorOut(column=e.column, message=e.message) for e in row.errors],
            )
            for row in report.rows
        ],
    )


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        "payload_too_large",
        f"the file is larger than the limit of {limit} bytes: split it",
        {"limit_bytes": limit},
    )


async def read_upload(request: web.Request, limit: int) -> bytes:
    """The file of a multipart/form-data body's `file` field, at most `limit` bytes."""
    if request.content_type != MULTIPART:
        raise UnsupportedMediaType(f"send the sheet as {MULTIPART} in the field `{UPLOAD_FIELD}`")
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name != UPLOAD_FIELD:
            continue
        data = bytearray()
        while chunk := await part.read_chunk(CHUNK):
            data += chunk
            if len(data) > limit:
                raise _too_large(limit)
        return bytes(data)
    raise ValidationFailed(
        f"send the sheet in the form field `{UPLOAD_FIELD}`",
        fields=[{"path": UPLOAD_FIELD, "reason": "Field required"}],
    )


@api.post(
    "/api/products/import",
    summary="Import products from a CSV (UTF-8 or GBK) or XLSX sheet, upserted by code",
    query=ImportQuery,
    response=ImportReportOut,
    upload=UPLOAD_FIELD,
)
async def import_products(request: web.Request, query: ImportQuery) -> ImportReportOut:
    settings = request.app[keys.SETTINGS]
    data = await read_upload(request, settings.max_body_size)
    sheet = await asyncio.to_thread(importing.read_sheet, data)
    report = await importing.import_products(
        actor_of(request), sheet, dry_run=query.dry_run, zone=settings.zone
    )
    return import_out(report)


@api.get(
    f"/api/products/{ID}",
    summary="One product (members: only one on sale for them, else 404)",
    query=ChannelQuery,
    response=ProductOut,
    errors=(404,),
    public=True,
)
async def get_product(request: web.Request, query: ChannelQuery) -> ProductOut:
    staff = await _staff_view(request)
    view = await service.get_product(path_id(request), staff=staff, channel=query.channel)
    return ProductOut(staff_product_out(view) if staff else shop_product_out(view))


@api.patch(
    f"/api/products/{ID}",
    summary="Change a product's fields (not a deleted one)",
    body=ProductPatch,
    response=StaffProduct,
    errors=(404, 409),
)
async def update_product(request: web.Request, body: ProductPatch) -> StaffProduct:
    wanted = cast(service.ProductFields, body.model_dump(exclude_unset=True))
    return staff_product_out(
        await service.update_product(actor_of(request), path_id(request), wanted)
    )


@api.delete(
    f"/api/products/{ID}",
    summary="Delete a product (softly: it stays for the orders that name it)",
    status=204,
    errors=(404, 409),
)
async def delete_product(request: web.Request) -> web.Response:
    await service.set_status(actor_of(request), path_id(request), ProductStatus.DELETED)
    return web.Response(status=204)


@api.post(
    f"/api/products/{ID}/online",
    summary="Put a draft or offline product on sale (needs a price above 0 and a channel)",
    response=StaffProduct,
    errors=(404, 409),
)
async def put_online(request: web.Request) -> StaffProduct:
    view = await service.set_status(actor_of(request), path_id(request), ProductStatus.ONLINE)
    return staff_product_out(view)


@api.post(
    f"/api/products/{ID}/offline",
    summary="Take an online product off sale",
    response=StaffProduct,
    errors=(404, 409),
)
async def take_offline(request: web.Request) -> StaffProduct:
    view = await service.set_status(actor_of(request), path_id(request), ProductStatus.OFFLINE)
    return staff_product_out(view)


# --- stock -----------------------------------------------------------------------------------


class StockIn(Strict):
    mode: stock.StockMode = Field(description="`set`: the stock becomes value; `delta`: add it")
    value: int = Field(ge=-service.MAX_STOCK, le=service.MAX_STOCK)
    reason: Reason = Field(description="why, for the stock ledger (盘点, 报损, 补货 ...)")

    @field_validator("value")
    @classmethod
    def _fits_mode(cls, value: int, info: ValidationInfo) -> int:
        mode = info.data.get("mode")
        if mode == stock.StockMode.SET and value < 0:
            raise ValueError("a stock cannot be set below 0")
        if mode == stock.StockMode.DELTA and value == 0:
            raise ValueError("a delta of 0 changes nothing")
        return value


class MovementOut(BaseModel):
    id: int
    product_id: int
    change: StockChange
    delta: int = Field(description="signed")
    stock_after: int
    reason: str
    user: AdminRef | None = Field(description="the staff member, for set, delta and import")
    order_id: int | None = Field(description="the order, for reserve, release and restore")
    created_at: dt.datetime


class MovementPage(BaseModel):
    items: list[MovementOut]
    total: int
    page: int
    size: int


def movement_out(view: stock.MovementView) -> MovementOut:
    return MovementOut(
        id=view.id,
        product_id=view.product_id,
        change=view.change,
        delta=view.delta,
        stock_after=view.stock_after,
        reason=view.reason,
        user=ref_out(view.user),
        order_id=view.order_id,
        created_at=view.created_at,
    )


@api.post(
    f"/api/products/{ID}/stock",
    summary="Set or adjust the stock (never below 0); the movement is answered",
    body=StockIn,
    response=MovementOut,
    errors=(404, 409),
)
async def adjust_stock(request: web.Request, body: StockIn) -> MovementOut:
    view = await stock.adjust_stock(
        actor_of(request), path_id(request), body.mode, body.value, body.reason
    )
    return movement_out(view)


@api.get(
    f"/api/products/{ID}/stock-movements",
    summary="A product's stock ledger, newest first, paged",
    query=PageQuery,
    response=MovementPage,
    errors=(404,),
)
async def stock_movements(request: web.Request, query: PageQuery) -> MovementPage:
    page: Page[stock.MovementView] = await stock.list_movements(path_id(request), query.paging)
    return page_out(MovementPage, page, movement_out)
