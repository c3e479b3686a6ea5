"""The metering service: meters and deduplicated usage events, from the API and the gateway."""
