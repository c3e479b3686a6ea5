"""JSON numbers parsed straight into Decimal, never through a float.

FastAPI reads a JSON body with json.loads, which makes 0.05 a float; pydantic would then build
the Decimal from that float's shortest repr, so a price with more significant digits than a
float holds would be silently changed. Here every JSON number with a fraction or an exponent
becomes a Decimal of exactly the digits sent.
"""

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def loads_with_decimals(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


class DecimalJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_with_decimals(await self.body())
        return self._json


class DecimalJSONRoute(APIRoute):
    """Route class for routers whose bodies carry money or quantities."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_decimal_json(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return with_decimal_json
