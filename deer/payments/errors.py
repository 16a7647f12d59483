"""Payment errors: stable codes for the order side, the notify endpoint and the API."""

from __future__ import annotations

from deer.errors import Conflict, NotFound, Unauthorized, Unavailable, ValidationFailed


class BadSignature(Unauthorized):
    """A callback whose authenticity cannot be established: missing or wrong signature,
    unknown key serial, a timestamp outside the replay window, a body that does not decrypt.
    `details.reason` says which; nothing of it is recorded or applied."""

    code = "bad_signature"
    default_message = "the notice's signature does not verify"


class MalformedNotice(ValidationFailed):
    code = "malformed_notice"
    default_message = "the notice is authentic but its body is not understood"


class UnknownPaymentProvider(NotFound):
    code = "unknown_payment_provider"
    default_message = "no such payment provider is enabled here"


class InvalidPaymentRequest(ValidationFailed):
    code = "invalid_payment_request"
    default_message = "the payment request is not valid"


class PaymentProviderUnavailable(Unavailable):
    """The provider could not be reached, timed out, failed, or refused our credentials; the
    request may be retried as is (prepay and refund are idempotent by their numbers)."""

    code = "payment_provider_unavailable"
    default_message = "the payment provider is unavailable: try again shortly"


class PaymentRefused(Conflict):
    """The provider refused the request for a reason retrying will not change;
    `details.provider_code` and `details.provider_message` carry its own words."""

    code = "payment_refused"
    default_message = "the payment provider refused the request"


class AlreadyPaid(PaymentRefused):
    code = "payment_already_paid"
    default_message = "this order is already paid"


class PaymentClosed(PaymentRefused):
    code = "payment_closed"
    default_message = "this payment is closed: pay with a new order number"


class RefundBalanceInsufficient(PaymentRefused):
    code = "refund_insufficient_balance"
    default_message = "the merchant account's balance cannot cover this refund now"


class PaymentNumberReused(PaymentRefused):
    """The same out_trade_no / out_refund_no was used before with other parameters."""

    code = "payment_number_reused"
    default_message = "this payment or refund number was already used with other parameters"
