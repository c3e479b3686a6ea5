"""Meters every organisation has without creating them, defined here rather than stored."""

from tollgate_metering.meters.schemas import Aggregation, MeterPublic

API_REQUESTS = "api_requests"

BUILT_IN_METERS = {
    API_REQUESTS: MeterPublic(
        key=API_REQUESTS,
        name="API requests",
        aggregation=Aggregation.COUNT,
        value_property=None,
        # Properties of the gateway's usage events (docs/events.md). "meter" is the route's:
        # api_requests for the operator's API, null for Tollgate's own endpoints.
        group_by=["route", "method", "status", "key_id", "meter"],
        built_in=True,
        created_at=None,
        updated_at=None,
        archived_at=None,
    )
}
