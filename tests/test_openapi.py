"""The OpenAPI document describes exactly the routes the app serves, for its configuration."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from schemathesis.specs.openapi.definitions import OPENAPI_31

from jobs.settings import Settings
from server.app import create_app
from server.auth import OPEN_API_PATHS
from server.openapi import OPENAPI_PATH, build_openapi
from tests.api import Client

TOKEN = "openapi-token-0123456789"
METHODS = {"get", "post", "put", "patch", "delete"}


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every /api route the app serves (HEAD comes with GET)."""
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        if resource.canonical.startswith("/api/"):
            found.add((route.method.lower(), resource.canonical))
    return found


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


@pytest.mark.parametrize("token", [None, TOKEN])
def test_every_route_is_described_and_nothing_else(settings: Settings, token: str | None) -> None:
    configured = replace(settings, api_token=token)
    app = create_app(configured)
    document = build_openapi(configured)
    served = app_operations(app)
    described = document_operations(document)
    assert served - described == set(), "routes missing from the document"
    assert described - served == set(), "documented operations the app does not serve"
    assert len(served) >= 19


@pytest.mark.parametrize("token", [None, TOKEN])
def test_the_document_is_valid_openapi_3_1(settings: Settings, token: str | None) -> None:
    document = build_openapi(replace(settings, api_token=token))
    assert document["openapi"] == "3.1.0"
    validator = jsonschema_rs.validator_for(OPENAPI_31)
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_auth_is_described_as_configured(settings: Settings) -> None:
    guarded = build_openapi(replace(settings, api_token=TOKEN))
    assert guarded["security"] == [{"bearerAuth": []}, {"sessionCookie": []}]
    schemes = guarded["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "VIDCORRECT_API_TOKEN",
    }
    assert schemes["sessionCookie"]["in"] == "cookie"
    for method, path, operation in operations(guarded):
        if path in OPEN_API_PATHS:
            assert operation["security"] == [], (method, path)
            assert "401" not in operation["responses"] or (method, path) == (
                "post",
                "/api/session/",
            )
        else:
            assert "security" not in operation, (method, path)  # the document's default
            unauthorized = operation["responses"]["401"]
            assert "WWW-Authenticate" in unauthorized["headers"], (method, path)
    open_document = build_openapi(settings)
    assert "security" not in open_document
    assert "securitySchemes" not in open_document["components"]
    for method, path, operation in operations(open_document):
        assert "401" not in operation["responses"], (method, path)


def test_responses_cover_the_error_shape_and_the_statuses(settings: Settings) -> None:
    document = build_openapi(replace(settings, api_token=TOKEN))
    error = {"$ref": "#/components/schemas/Error"}
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert {"403", "421", "503"} <= set(responses), (method, path)
        for status, answer in responses.items():
            if int(status) >= 400:
                assert answer["content"]["application/json"]["schema"] == error, (path, status)
    submit = document["paths"]["/api/video-apply-mask/{video_id}/"]["post"]["responses"]
    assert {"200", "202", "400", "401", "404", "409", "413", "415", "422", "429", "503"} <= set(
        submit
    )
    assert "Retry-After" in submit["429"]["headers"]
    sign_in = document["paths"]["/api/session/"]["post"]["responses"]
    assert {"401", "415", "429"} <= set(sign_in)
    assert "Retry-After" in sign_in["429"]["headers"]
    assert submit["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Submitted"
    }
    upload = document["paths"]["/api/videos/"]["post"]
    assert {"201", "400", "401", "413", "415", "503"} <= set(upload["responses"])
    assert {"multipart/form-data", "video/*", "application/octet-stream"} <= set(
        upload["requestBody"]["content"]
    )
    events = document["paths"]["/api/task-status/{task_id}/events"]["get"]["responses"]["200"]
    assert set(events["content"]) == {"text/event-stream"}
    legacy = build_openapi(replace(settings, use_async_tasks=False))
    legacy_submit = legacy["paths"]["/api/video-analyze/{video_id}/"]["post"]["responses"]
    assert {"200", "422"} <= set(legacy_submit)
    assert "202" not in legacy_submit


async def test_the_document_is_served_without_a_token(
    aiohttp_client: AiohttpClient, settings: Settings, client: Client
) -> None:
    guarded_settings = replace(settings, api_token=TOKEN)
    guarded = await aiohttp_client(create_app(guarded_settings))
    resp = await guarded.get(OPENAPI_PATH)
    assert resp.status == 200
    assert await resp.json() == build_openapi(guarded_settings)
    resp = await client.get(OPENAPI_PATH)
    assert resp.status == 200
    assert "security" not in await resp.json()


def test_the_webhook_is_described(settings: Settings) -> None:
    """What the workers post (tests/test_webhooks.py checks the requests themselves)."""
    hook = build_openapi(settings)["webhooks"]["taskEnded"]["post"]
    assert hook["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Task"
    }
    headers = {p["name"] for p in hook["parameters"] if p["in"] == "header"}
    assert {"X-Vidcorrect-Signature", "X-Vidcorrect-Timestamp", "X-Vidcorrect-Delivery"} <= headers
    schemas = build_openapi(settings)["components"]["schemas"]
    assert "callback_url" in schemas["Task"]["properties"]
