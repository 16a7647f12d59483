"""Errors of the shop, each with its stable code (documented in docs/API.md)."""

from __future__ import annotations

from deer.errors import Conflict, NotFound, ValidationFailed


class CartFull(Conflict):
    code = "cart_full"
    default_message = "the cart is full: remove a line before adding another product"


class QuantityLimit(Conflict):
    code = "quantity_limit"
    default_message = "a cart line holds at most the maximum quantity of one product"


class NotSellable(Conflict):
    code = "not_sellable"
    default_message = "this product cannot be bought now"


class NotInCart(NotFound):
    code = "not_in_cart"
    default_message = "this product is not in the cart"


class UnknownCommand(ValidationFailed):
    code = "unknown_command"
    default_message = "the cart does not know this command"
