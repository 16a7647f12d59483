"""The shop's refusals (cart and orders), each with its stable code (docs/API.md)."""

from __future__ import annotations

from deer.errors import Conflict, NotFound, ValidationFailed


class OrderNotFound(NotFound):
    code = "order_not_found"
    default_message = "no such order"


class OutOfStock(Conflict):
    code = "out_of_stock"
    default_message = "not enough stock for this order"


class CartFull(Conflict):
    code = "cart_full"
    default_message = "the cart is full: remove a line before adding another product"


class QuantityLimit(Conflict):
    code = "quantity_limit"
    default_message = "a cart line holds at most the maximum quantity of one product"


class NotSellable(Conflict):
    code = "not_sellable"
    default_message = "this product cannot be bought now"


class IllegalTransition(Conflict):
    code = "illegal_transition"
    default_message = "the order cannot do this in its current state"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "this Idempotency-Key was used for a different order"


class IdempotencyKeyRequired(ValidationFailed):
    code = "idempotency_key_required"
    default_message = "send an Idempotency-Key header (1-128 printable characters) to order"


class EmptyOrder(ValidationFailed):
    code = "empty_order"
    default_message = "the order has no lines (select cart lines or send lines)"


class AmountMismatch(Conflict):
    code = "amount_mismatch"
    default_message = "the amount paid is not the amount due"


class RefundExceedsPaid(Conflict):
    code = "refund_exceeds_paid"
    default_message = "the refund is more than what is left of the amount paid"


class RefundInProgress(Conflict):
    code = "refund_in_progress"
    default_message = "a refund of this order is in progress; wait for its result"


class UnknownRefund(NotFound):
    code = "unknown_refund"
    default_message = "the order has no such refund"


class PaymentExpired(Conflict):
    code = "payment_expired"
    default_message = "the time to pay this order is over; it is being cancelled"


class WechatNotBound(Conflict):
    code = "wechat_not_bound"
    default_message = "sign in with WeChat first: WeChat Pay needs your WeChat account"


class NotInCart(NotFound):
    code = "not_in_cart"
    default_message = "this product is not in the cart"


class UnknownCommand(ValidationFailed):
    code = "unknown_command"
    default_message = "the cart does not know this command"
