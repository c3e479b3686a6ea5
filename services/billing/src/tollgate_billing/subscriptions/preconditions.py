"""Optimistic concurrency for clients that want it: the subscription's version as its ETag,
checked against If-Match under the row lock, so of two changes made from the same view only
the first applies (without If-Match, changes apply one after the other)."""

from fastapi import Response

from tollgate_billing.subscriptions.models import Subscription
from tollgate_shared.errors import BadRequestError, ProblemError


class SubscriptionChangedError(ProblemError):
    status, slug, title = 412, "subscription-changed", "Subscription changed"


def etag_of(subscription: Subscription) -> str:
    return f'"{subscription.version}"'


def set_etag(response: Response, subscription: Subscription) -> None:
    response.headers["ETag"] = etag_of(subscription)


def check_if_match(subscription: Subscription, if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    tags = [tag.strip().removeprefix("W/") for tag in if_match.split(",")]
    if not all(len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit() for tag in tags):
        raise BadRequestError('If-Match must hold the subscription\'s ETag, e.g. "3".')
    if etag_of(subscription) not in tags:
        raise SubscriptionChangedError(
            f"The subscription changed since you read it (it is at version "
            f"{subscription.version}); read it again and decide.",
            version=subscription.version,
        )
