async def test_docs_index_links_every_service(http, gateway):
    response = await http.get(f"{gateway.url}/docs")
    assert response.status_code == 200
    assert 'href="/docs/keys"' in response.text


async def test_service_spec_shows_only_public_routes(http, gateway):
    spec = (await http.get(f"{gateway.url}/openapi/keys.json")).json()
    assert "/v1/keys" in spec["paths"]
    assert "/v1/signup" in spec["paths"]
    assert not [path for path in spec["paths"] if path.startswith(("/internal", "/healthz"))]
    assert spec["paths"]["/v1/keys"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/v1/signup"]["post"]


async def test_merged_spec_and_swagger_page(http, gateway):
    merged = (await http.get(f"{gateway.url}/openapi.json")).json()
    assert "/v1/members" in merged["paths"]
    assert "ApiKeyCreate" in merged["components"]["schemas"]
    page = await http.get(f"{gateway.url}/docs/keys")
    assert "/openapi/keys.json" in page.text
    assert (await http.get(f"{gateway.url}/docs/nope")).status_code == 404
