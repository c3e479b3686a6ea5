"""With the keys service down, cached keys keep working and unknown keys get 503, not 401."""

from tollgate_gateway.app import create_app as create_gateway
from tollgate_keys.app import create_app as create_keys
from tollgate_shared import api_key_format
from tollgate_shared.testing.http import serving

from .conftest import PASSWORD, bearer


async def test_cached_keys_survive_keys_outage(http, gateway_settings, keys_settings):
    async with (
        serving(create_keys(keys_settings)) as keys,
        serving(create_gateway(gateway_settings(keys_url=keys.url))) as gateway,
    ):
        signup = await http.post(
            f"{gateway.url}/v1/signup",
            json={
                "organization_name": "Outage Inc",
                "email": "outage-" + api_key_format.generate_key()[8:16] + "@example.com",
                "password": PASSWORD,
            },
        )
        key = signup.json()["api_key"]["key"]
        warm = await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key))
        assert warm.status_code == 200
        await keys.stop()

        cached = await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key))
        assert cached.status_code == 200
        unknown = await http.get(
            f"{gateway.url}/api/demo/hello", headers=bearer(api_key_format.generate_key())
        )
        assert unknown.status_code == 503
        assert unknown.json()["type"].endswith("/authentication-unavailable")
        assert unknown.headers["retry-after"] == "1"
        await keys.start()
