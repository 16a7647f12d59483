"""Errors of the catalog, each with its stable code (listed in docs/API.md and docs/catalog.md)."""

from __future__ import annotations

from deer.errors import Conflict, ValidationFailed


class CategoryNameTaken(Conflict):
    code = "category_name_taken"
    default_message = "another category of the same parent has this name"


class CategoryCycle(Conflict):
    code = "category_cycle"
    default_message = "a category cannot move under itself or one of its subcategories"


class CategoryNotEmpty(Conflict):
    code = "category_not_empty"
    default_message = (
        "the category still has subcategories or products (deleted products count too:"
        " disable the category instead)"
    )


class ProductCodeTaken(Conflict):
    code = "product_code_taken"
    default_message = "another product has this code"


class ProductDeleted(Conflict):
    code = "product_deleted"
    default_message = "this product is deleted: it can no longer be changed"


class IllegalTransition(Conflict):
    code = "illegal_transition"
    default_message = "a product cannot go from this status to that one"


class ProductNotReady(Conflict):
    code = "product_not_ready"
    default_message = "an online product needs a price above 0 and at least one channel"


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    default_message = "the stock cannot go below zero"


class ImportFileInvalid(ValidationFailed):
    code = "import_file_invalid"
    default_message = "the file cannot be read as a product sheet (CSV or XLSX)"


class ImportTooManyRows(ValidationFailed):
    code = "import_too_many_rows"
    default_message = "the file has more rows than one import takes"
