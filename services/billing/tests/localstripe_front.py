"""localstripe (PyPI, a stateful fake Stripe) with a test-only front: what Stripe does and
localstripe does not, emulated in the same process so it can use localstripe's store.

Run as a script: `python localstripe_front.py --port N`. The billing tests start it as a
subprocess (conftest.py) and point the stripe SDK at it.

Stripe's real behaviour emulated here (localstripe 1.15.10 lacks it):
- Idempotency-Key: a POST repeated with the same key and the same parameters gets the first
  response again (header Idempotent-Replayed: true) and creates nothing; the same key with other
  parameters is a 400 idempotency_error; a repeat while the first is still running waits for it.
- POST /v1/invoices without a subscription: a one-off invoice of the customer's pending items
  (pending_invoice_items_behavior=include, auto_advance=false); localstripe makes invoices only
  for subscriptions.
- POST /v1/invoices/{id}/finalize: a draft becomes open.
- POST /v1/invoices/{id}/pay with a declined card: a 402 card_error (localstripe answers 200 with
  the invoice left open), attempt_count goes up, and invoice.payment_failed is sent.
- Checkout Sessions in setup mode: POST/GET /v1/checkout/sessions backed by a localstripe
  SetupIntent. What the customer does on Stripe's page is
  POST /_config/front/checkout/{id}/complete with a card number: the PaymentMethod is made,
  the SetupIntent confirmed and the method attached to the customer, and
  checkout.session.completed is sent.
- attempt_count counts the payment attempts (localstripe says 1 from the creation on).
- POST /v1/invoices/{id}/void: an open or uncollectible invoice becomes void (its unpaid
  payment intent canceled); a paid, void or draft one is a 400 invalid_request_error (Stripe
  deletes drafts instead). localstripe's own void accepts drafts and fails on an invoice never
  tried (no payment intent to cancel).
- POST /v1/invoices/{id}/mark_uncollectible (localstripe lacks it): an open invoice becomes
  uncollectible (status "uncollectible"); anything else is a 400. It can still be paid (Stripe
  allows it: the customer pays late) or voided.
  Not emulated: the invoice.voided / invoice.marked_uncollectible events Stripe sends (billing
  ignores them) and status_transitions.marked_uncollectible_at.

Test controls (not Stripe; under /_config/ like localstripe's own): GET /_config/front/requests
lists every /v1 request (method, path, Idempotency-Key); POST /_config/front/delay
{"path", "seconds"} holds the next response to that path that long (after the object is made),
so a client times out and retries; GET /_config/front/webhook-deliveries lists the webhooks
localstripe sent (event, URL, the answer's status and body); POST
/_config/front/forget-idempotency-keys is Stripe's 24 hours passing (it keeps a key that long);
POST /_config/front/refuse {"path", "body_contains"} makes every later POST to that path whose
form body contains the text answer what Stripe answers a request it will never accept (400
invalid_request_error, code parameter_invalid_string), and DELETE /_config/front/refuse lifts
every such rule: a customer or invoice Stripe refuses for good, without a real reason to make.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError
from localstripe.webhooks import schedule_webhook

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Nothing reads the pickle back (the front always starts from scratch) and several fronts may
# run at once: localstripe writing one shared /tmp file on every change is skipped.
resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]


@dataclass
class Recorded:
    fingerprint: str
    status: int
    body: bytes
    content_type: str


@dataclass
class FrontState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, Recorded] = field(default_factory=dict)
    running: dict[str, asyncio.Lock] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[tuple[str, str]] = field(default_factory=list)  # (path, body text)


state = FrontState()


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "idempotency_key": request.headers.get("Idempotency-Key"),
            }
        )
    return await handler(request)


@web.middleware
async def refuse(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The test's refusal rules (POST /_config/front/refuse), before anything is made."""
    if request.method == "POST" and state.refusals:
        body = (await request.read()).decode("utf-8", "replace")
        for path, text in state.refusals:
            if request.path == path and text in body:
                return web.json_response(
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "parameter_invalid_string",
                            "message": "Refused by the test (a request Stripe never accepts).",
                        }
                    },
                    status=400,
                )
    return await handler(request)


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/v1/"):
        return await handler(request)
    body = await request.read()
    fingerprint = hashlib.sha256(request.path.encode() + b"\n" + body).hexdigest()
    async with state.running.setdefault(key, asyncio.Lock()):
        recorded = state.replies.get(key)
        if recorded is None:
            response = await handler(request)
            assert isinstance(response, web.Response)
            recorded = Recorded(
                fingerprint,
                response.status,
                response.body if isinstance(response.body, bytes) else b"",
                response.content_type,
            )
            state.replies[key] = recorded
            delay = state.delays.pop(request.path, 0.0)
        elif recorded.fingerprint != fingerprint:
            return web.json_response(
                {
                    "error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the "
                        "same parameters they were first used with.",
                    }
                },
                status=400,
            )
        else:
            response = web.Response(
                status=recorded.status, body=recorded.body, content_type=recorded.content_type
            )
            response.headers["Idempotent-Replayed"] = "true"
            return response
    if delay:
        await asyncio.sleep(delay)
    return response


async def send_webhook(event: Any) -> None:
    """localstripe's webhook sender (signed "<t>.<body>", a second after the event), which
    also records each delivery's answer for the tests."""
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    await asyncio.sleep(1)
    for webhook in list(webhooks._webhooks.values()):
        if webhook.events is not None and event.type not in webhook.events:
            continue
        signature = hmac.new(
            webhook.secret.encode(), b"%d.%s" % (event.created, payload), hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": f"t={event.created},v1={signature}",
        }
        delivery = {
            "event_id": event.id,
            "type": event.type,
            "object_id": event.data["object"].get("id"),
            "url": webhook.url,
        }
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(webhook.url, data=payload, headers=headers) as response,
            ):
                delivery.update(status=response.status, body=await response.text())
        except aiohttp.ClientError as error:
            delivery.update(status=None, body=str(error))
        state.deliveries.append(delivery)


webhooks._send_webhook = send_webhook


def _export(obj: Any) -> web.Response:
    return server.json_response(obj._export())


async def create_invoice(request: web.Request) -> web.Response:
    """A one-off invoice of the customer's pending items (localstripe makes invoices only for
    subscriptions, and refuses auto_advance: it never advances one by itself anyway)."""
    data = _data(request, await server.get_post_data(request))
    if str(data.pop("auto_advance", "false")).lower() != "false":
        raise UserError(400, "This front only knows auto_advance=false")
    if data.pop("pending_invoice_items_behavior", None) != "include":
        raise UserError(400, "This front only knows pending_invoice_items_behavior=include")
    expand = data.pop("expand", None)
    return server.json_response(resources.Invoice(**data)._export(expand=expand))


async def finalize_invoice(request: web.Request) -> web.Response:
    invoice = resources.Invoice._api_retrieve(request.match_info["id"])
    if invoice.status != "draft":
        raise UserError(400, "This invoice is already finalized")
    invoice._finalize()
    return _export(invoice)


# An invoice marked uncollectible (localstripe knows no such status): "uncollectible" while it
# would otherwise be open.
_localstripe_status = resources.Invoice.status


def _status_with_uncollectible(invoice: Any) -> str:
    status: str = _localstripe_status.fget(invoice)
    if status == "open" and getattr(invoice, "_front_uncollectible", False):
        return "uncollectible"
    return status


resources.Invoice.status = property(_status_with_uncollectible)


def _invalid(message: str) -> UserError:
    return UserError(400, message)


async def void_invoice(request: web.Request) -> web.Response:
    invoice = resources.Invoice._api_retrieve(request.match_info["id"])
    if invoice.status not in ("open", "uncollectible"):
        raise _invalid(f"You can only void open or uncollectible invoices ({invoice.status}).")
    if invoice.payment_intent:
        intent = resources.PaymentIntent._api_retrieve(invoice.payment_intent)
        if intent.status != "canceled":
            resources.PaymentIntent._api_cancel(intent.id)
    invoice._front_uncollectible = False
    invoice._voided = True
    invoice.status_transitions["voided_at"] = int(time.time())
    return _export(invoice)


async def mark_uncollectible(request: web.Request) -> web.Response:
    invoice = resources.Invoice._api_retrieve(request.match_info["id"])
    if invoice.status != "open":
        raise _invalid(f"You can only mark open invoices uncollectible ({invoice.status}).")
    invoice._front_uncollectible = True
    return _export(invoice)


async def pay_invoice(request: web.Request) -> web.Response:
    marked = resources.Invoice._api_retrieve(request.match_info["id"])
    was_uncollectible = marked.status == "uncollectible"
    marked._front_uncollectible = False  # Stripe takes a late payment of one
    try:
        invoice = resources.Invoice._api_pay_invoice(request.match_info["id"])
    except UserError:
        marked._front_uncollectible = was_uncollectible
        raise
    # Stripe counts every attempt (localstripe says 1 from the invoice's creation on).
    invoice._front_attempts = getattr(invoice, "_front_attempts", 0) + 1
    invoice.attempt_count = invoice._front_attempts
    if invoice.status != "open":
        return _export(invoice)
    # Declined: Stripe tells the webhooks and answers a card error.
    invoice._on_payment_failure_now()
    invoice._front_uncollectible = was_uncollectible
    payment = resources.PaymentIntent._api_retrieve(invoice.payment_intent)
    error = payment.last_payment_error or {}
    raise UserError(
        402,
        error.get("message") or "Your card was declined.",
        {
            "type": "card_error",
            "code": error.get("code") or "card_declined",
            "charge": error.get("charge"),
        },
    )


class CheckoutSession(resources.StripeObject):  # type: ignore[misc]
    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(
        self,
        mode: str | None = None,
        customer: str | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        metadata: dict[str, str] | None = None,
        payment_method_types: list[str] | None = None,
        currency: str | None = None,
        client_reference_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        if mode != "setup":
            raise UserError(400, "This front only knows setup mode")
        if not customer or not success_url:
            raise UserError(400, "customer and success_url are required")
        resources.Customer._api_retrieve(customer)
        setup_intent = resources.SetupIntent(
            customer=customer, payment_method_types=payment_method_types or ["card"]
        )
        super().__init__()
        self.mode = mode
        self.customer = customer
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.metadata = metadata or {}
        self.client_reference_id = client_reference_id
        self.currency = currency
        self.setup_intent = setup_intent.id
        self.status = "open"
        self.url = f"https://checkout.stripe.test/c/pay/{self.id}"


def _data(request: web.Request, data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}


async def create_checkout_session(request: web.Request) -> web.Response:
    data = _data(request, await server.get_post_data(request))
    data.pop("expand", None)
    return _export(CheckoutSession(**data))


async def retrieve_checkout_session(request: web.Request) -> web.Response:
    return _export(CheckoutSession._api_retrieve(request.match_info["id"]))


async def complete_checkout_session(request: web.Request) -> web.Response:
    """What the customer does on Stripe's hosted page: enter a card and confirm."""
    session = CheckoutSession._api_retrieve(request.match_info["id"])
    card = await request.json()
    method = resources.PaymentMethod(
        type="card",
        card={
            "number": card["number"],
            "exp_month": card.get("exp_month", 12),
            "exp_year": card.get("exp_year", time.gmtime().tm_year + 2),
            "cvc": "123",
        },
    )
    resources.SetupIntent._api_confirm(session.setup_intent, payment_method=method.id)
    resources.PaymentMethod._api_attach(method.id, customer=session.customer)
    session.status = "complete"
    schedule_webhook(resources.Event("checkout.session.completed", session))
    return _export(session)


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(state.requests)


async def forget_keys(request: web.Request) -> web.Response:
    """Stripe forgets a key after 24 hours: this is that day passing."""
    state.replies.clear()
    return web.json_response({})


async def list_deliveries(request: web.Request) -> web.Response:
    return web.json_response(state.deliveries)


async def add_refusal(request: web.Request) -> web.Response:
    body = await request.json()
    state.refusals.append((body["path"], body.get("body_contains", "")))
    return web.json_response({})


async def clear_refusals(request: web.Request) -> web.Response:
    state.refusals.clear()
    return web.json_response({})


async def delay_next(request: web.Request) -> web.Response:
    body = await request.json()
    state.delays[body["path"]] = float(body["seconds"])
    return web.json_response({})


def build_app() -> web.Application:
    app = web.Application(
        middlewares=[
            record_requests,
            refuse,
            idempotency,
            server.error_middleware,
            server.auth_middleware,
        ]
    )
    app.on_response_prepare.append(server.add_cors_headers)
    # Ours first: aiohttp takes the first route that matches.
    app.router.add_post("/v1/invoices", create_invoice)
    app.router.add_post("/v1/invoices/{id}/finalize", finalize_invoice)
    app.router.add_post("/v1/invoices/{id}/pay", pay_invoice)
    app.router.add_post("/v1/invoices/{id}/void", void_invoice)
    app.router.add_post("/v1/invoices/{id}/mark_uncollectible", mark_uncollectible)
    app.router.add_post("/v1/checkout/sessions", create_checkout_session)
    app.router.add_get("/v1/checkout/sessions/{id}", retrieve_checkout_session)
    app.router.add_post("/_config/front/checkout/{id}/complete", complete_checkout_session)
    app.router.add_get("/_config/front/requests", list_requests)
    app.router.add_get("/_config/front/webhook-deliveries", list_deliveries)
    app.router.add_post("/_config/front/delay", delay_next)
    app.router.add_post("/_config/front/forget-idempotency-keys", forget_keys)
    app.router.add_post("/_config/front/refuse", add_refusal)
    app.router.add_delete("/_config/front/refuse", clear_refusals)
    for route in server.app.router.routes():
        app.router.add_route(route.method, route.resource.canonical, route.handler)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    web.run_app(build_app(), host="127.0.0.1", port=arguments.port, print=None)


if __name__ == "__main__":
    main()
