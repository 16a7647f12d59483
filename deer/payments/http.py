"""Payment endpoints: the providers' callbacks (public: providers sign them, not our JWT) and,
in development, a way to make the dev provider call back."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from deer import keys
from deer.errors import DeerError, NotFound
from deer.payments import notices
from deer.payments.provider import MAX_AMOUNT, MERCHANT_NO, NotifyAnswer
from deer.web.api import Api
from deer.web.responses import STATUS_OF_KIND

log = logging.getLogger(__name__)

api = Api(tags=["payments"], public=True)
dev_api = Api(tags=["payments"], public=True)

MerchantNo = Annotated[str, StringConstraints(pattern=f"^{MERCHANT_NO.pattern}$")]


class Simulation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_trade_no: MerchantNo
    amount: int = Field(ge=1, le=MAX_AMOUNT, description="fen")
    event: Literal["payment", "refund"] = "payment"
    out_refund_no: MerchantNo | None = Field(default=None, description="needed for a refund")

    @model_validator(mode="after")
    def _refund_is_named(self) -> Simulation:
        if self.event == "refund" and self.out_refund_no is None:
            raise ValueError("a refund needs its out_refund_no")
        return self


class NoticeReceipt(BaseModel):
    notice_id: int
    status: notices.Delivery = Field(description="applied, duplicate (a replay) or refused")
    code: str = Field(description="the sink's code when it refused (amount_mismatch, ...)")
    message: str
    event_type: str
    transaction_id: str


def register(app: web.Application) -> None:
    """The callbacks always; the simulator only where the dev provider may run."""
    api.register(app)
    settings = app[keys.SETTINGS]
    if settings.env != "production" and "dev" in settings.enabled_payment_providers:
        dev_api.register(app)


@api.post(
    "/api/payments/{provider}/notify",
    summary="A payment provider's callback (signed by the provider; answered in its format)",
    errors=(401, 404, 422, 503),
)
async def notify(request: web.Request) -> web.StreamResponse:
    provider = request.app[keys.PAYMENTS].provider(request.match_info["provider"])
    body = await request.read()
    try:
        await notices.receive(provider, request.app[keys.PAYMENT_SINK], request.headers, body)
    except DeerError as exc:
        return _answer(provider.refused(STATUS_OF_KIND[exc.kind], exc.code, exc.message))
    except Exception:
        log.exception("a %s payment notice failed", provider.name)
        return _answer(provider.refused(500, "internal", "internal error; it will be retried"))
    return _answer(provider.accepted())


def _answer(answer: NotifyAnswer) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body or None)
    if answer.content_type is not None:
        response.content_type = answer.content_type
    return response


@dev_api.post(
    "/api/payments/dev/simulate",
    summary="Development only: the dev provider calls back as if a payment or refund succeeded",
    body=Simulation,
    response=NoticeReceipt,
    errors=(401, 404),
)
async def simulate(request: web.Request, body: Simulation) -> NoticeReceipt:
    dev = request.app[keys.PAYMENTS].dev
    if dev is None or request.app[keys.SETTINGS].env == "production":
        raise NotFound()
    headers, raw = dev.simulated_notice(
        body.event, body.out_trade_no, body.amount, body.out_refund_no
    )
    receipt = await notices.receive(dev, request.app[keys.PAYMENT_SINK], headers, raw)
    return NoticeReceipt(
        notice_id=receipt.notice_id,
        status=receipt.status,
        code=receipt.applied.code,
        message=receipt.applied.message,
        event_type=receipt.event.event_type,
        transaction_id=receipt.event.transaction_id,
    )
