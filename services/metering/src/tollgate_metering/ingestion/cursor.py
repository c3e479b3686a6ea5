"""Opaque cursors over (time, id) for event listings.

The kit's cursor holds a UUID; event ids are the senders' own strings, so they need their own.
"""

import base64
import json
from datetime import datetime

from pydantic import BaseModel

from tollgate_shared.errors import BadRequestError


class EventCursor(BaseModel):
    time: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps({"t": self.time.isoformat(), "i": self.id}).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, value: str) -> "EventCursor":
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            parsed = json.loads(raw)
            return cls(time=datetime.fromisoformat(parsed["t"]), id=str(parsed["i"]))
        except (ValueError, KeyError, TypeError) as error:
            raise BadRequestError("The cursor is not one this API returned.") from error
