"""Bearer tokens, tenant isolation for every resource, and where the API may listen."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringmaster.api import check_exposure
from ringmaster.api.auth import Authenticator, Principal, is_loopback
from ringmaster.engine.model import TenantId
from ringmaster.settings import ApiSettings, SettingsError
from ringmaster.store import Store

from .helpers import (
    ADMIN_TOKEN,
    T1_EXT_101,
    T1_QUEUE,
    T1_ROUTE,
    T1_TOKEN,
    T2_EXT_201,
    T2_QUEUE,
    T2_ROUTE,
    EngineStub,
    api_client,
    app_for,
    token_client,
    token_settings,
)


@pytest.mark.parametrize("token", [None, "wrong", ADMIN_TOKEN + "x"])
async def test_a_missing_or_unknown_token_is_401(
    stub: EngineStub, store: Store, token: str | None
) -> None:
    async with token_client(stub, store, token) as client:
        response = await client.get("/api/queues")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "secret" not in response.text


async def test_the_schema_and_docs_need_no_token(stub: EngineStub, store: Store) -> None:
    async with token_client(stub, store, None) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 200


async def test_an_admin_sees_every_tenant(admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/api/tenants")).json()["total"] == 2
    assert (await admin.get(f"/api/queues/{T2_QUEUE}")).status_code == 200
    assert (await admin.post("/api/tenants", json={"name": "New"})).status_code == 201


@pytest.mark.parametrize(
    ("path", "own", "other"),
    [
        ("/api/tenants", 1, 2),
        ("/api/extensions", T1_EXT_101, T2_EXT_201),
        ("/api/queues", T1_QUEUE, T2_QUEUE),
        ("/api/did-routes", T1_ROUTE, T2_ROUTE),
    ],
)
async def test_a_tenant_token_sees_only_its_tenant(
    tenant1: httpx.AsyncClient, path: str, own: int, other: int
) -> None:
    listed = (await tenant1.get(path)).json()
    assert [item["id"] for item in listed["items"]] == (
        [own, 2] if path == "/api/extensions" else [own]
    )
    assert all(item.get("tenant_id", item["id"]) == 1 for item in listed["items"])
    filtered = (await tenant1.get(path, params={"tenant_id": 2})).json()
    assert (filtered["items"], filtered["total"]) == ([], 0)
    assert (await tenant1.get(f"{path}/{own}")).status_code == 200
    # another tenant's resource: 404 on every verb, exactly as if it did not exist
    for response in (
        await tenant1.get(f"{path}/{other}"),
        await tenant1.patch(f"{path}/{other}", json={}),
        await tenant1.delete(f"{path}/{other}"),
    ):
        assert response.status_code == 404, response.text
        missing = await tenant1.get(f"{path}/999")
        assert response.json()["detail"] == missing.json()["detail"].replace("999", str(other))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/extensions", {"tenant_id": 2, "number": "1"}),
        (
            "/api/queues",
            {"tenant_id": 2, "name": "Q", "queue_number": "9", "strategy": "ringall", "timeout": 5},
        ),
        ("/api/did-routes", {"tenant_id": 2, "did": "+9", "queue_id": T2_QUEUE}),
    ],
)
async def test_creating_in_another_tenant_is_404(
    tenant1: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await tenant1.post(path, json=body)
    assert response.status_code == 404
    assert response.json() == {"detail": "tenant_id: tenant 2 not found"}


async def test_a_tenant_token_cannot_create_or_delete_tenants(tenant1: httpx.AsyncClient) -> None:
    assert (await tenant1.post("/api/tenants", json={"name": "Mine"})).status_code == 403
    assert (await tenant1.delete("/api/tenants/1")).status_code == 403
    renamed = await tenant1.patch("/api/tenants/1", json={"name": "Ours"})
    assert renamed.json() == {"id": 1, "name": "Ours", "timezone": "UTC"}


async def test_queue_agents_and_calls_of_another_tenant_are_404(
    tenant1: httpx.AsyncClient,
) -> None:
    for response in (
        await tenant1.get(f"/api/queues/{T2_QUEUE}/agents"),
        await tenant1.get(f"/api/queues/{T2_QUEUE}/calls"),
        await tenant1.post(f"/api/queues/{T2_QUEUE}/agents", json={"extension_id": T2_EXT_201}),
        await tenant1.patch(f"/api/queues/{T2_QUEUE}/agents/{T2_EXT_201}", json={"penalty": 1}),
        await tenant1.delete(f"/api/queues/{T2_QUEUE}/agents/{T2_EXT_201}"),
    ):
        assert response.status_code == 404


async def test_changing_another_tenants_agent_is_404_like_a_missing_queue(
    tenant1: httpx.AsyncClient, stub: EngineStub
) -> None:
    other = await tenant1.patch(f"/api/queues/{T2_QUEUE}/agents/{T2_EXT_201}", json={})
    missing = await tenant1.patch(f"/api/queues/999/agents/{T2_EXT_201}", json={})
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == missing.json()["detail"].replace("999", str(T2_QUEUE))
    # nor through its own queue: the other tenant's extension is simply not in it
    mine = await tenant1.patch(f"/api/queues/{T1_QUEUE}/agents/{T2_EXT_201}", json={"penalty": 1})
    assert mine.json() == {"detail": f"extension {T2_EXT_201} is not in queue {T1_QUEUE}"}
    assert stub.applied == []


@pytest.mark.parametrize(
    ("field", "other", "missing"),
    [("queue_id", T2_QUEUE, 99), ("extension", "201", "999")],
)
async def test_a_tenant_token_cannot_overflow_to_another_tenant(
    tenant1: httpx.AsyncClient, field: str, other: int | str, missing: int | str
) -> None:
    kind = "queue" if field == "queue_id" else "extension"
    response = await tenant1.patch(
        f"/api/queues/{T1_QUEUE}", json={"overflow": {"type": kind, field: other}}
    )
    absent = await tenant1.patch(
        f"/api/queues/{T1_QUEUE}", json={"overflow": {"type": kind, field: missing}}
    )
    assert response.status_code == absent.status_code == 422
    # worded exactly as for a queue or extension that does not exist
    (error,) = response.json()["detail"]
    (expected,) = absent.json()["detail"]
    assert error["loc"] == expected["loc"] == ["body", "overflow", field]
    assert error["msg"] == expected["msg"].replace(str(missing), str(other))


def test_tokens_map_to_principals() -> None:
    auth = Authenticator(token_settings())
    assert auth.principal(ADMIN_TOKEN) == Principal(None)
    assert auth.principal(T1_TOKEN) == Principal(TenantId(1))
    # Which token it was, for logs and audit: never the token itself.
    names = [p.name for t in (ADMIN_TOKEN, T1_TOKEN) if (p := auth.principal(t)) is not None]
    assert names == ["admin#1", "tenant-1#1"]
    assert auth.principal("nope") is None
    assert auth.principal("é") is None  # non-ASCII must not raise
    assert Authenticator(ApiSettings()).open


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.1.2.3"])
def test_loopback_without_tokens_is_allowed(host: str) -> None:
    assert is_loopback(host)
    check_exposure(ApiSettings(host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_beyond_loopback_needs_a_token(host: str) -> None:
    with pytest.raises(SettingsError, match=r"api\.host: .* RINGMASTER_API__HOST"):
        check_exposure(ApiSettings(host=host))
    check_exposure(ApiSettings.model_validate({"host": host, "admin_tokens": ["t"]}))
    check_exposure(ApiSettings.model_validate({"host": host, "tenant_tokens": {1: ["t"]}}))


@pytest.mark.parametrize(
    "tokens",
    [
        {"tenant_tokens": {1: []}},
        {"tenant_tokens": {1: [], 2: []}, "admin_tokens": []},
    ],
)
def test_beyond_loopback_token_settings_without_a_token_are_refused(
    tokens: dict[str, Any],
) -> None:
    # `{"1": []}` is a token setting that holds no token: the API would be open.
    with pytest.raises(SettingsError, match=r"api\.host: .* no API token"):
        check_exposure(ApiSettings.model_validate({"host": "0.0.0.0", **tokens}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("admin_tokens", [""]),
        ("admin_tokens", ["   "]),
        ("admin_tokens", ["good", "\t"]),
        ("tenant_tokens", {1: [""]}),
        ("tenant_tokens", {1: [" \n "]}),
    ],
)
def test_empty_or_blank_tokens_are_not_settings(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=r"empty or only whitespace"):
        ApiSettings.model_validate({field: value})


@pytest.mark.parametrize(
    "settings",
    [
        ApiSettings(host="0.0.0.0"),
        ApiSettings.model_validate({"host": "0.0.0.0", "tenant_tokens": {1: []}}),
        ApiSettings.model_validate({"host": "example.com", "admin_tokens": []}),
    ],
)
async def test_off_loopback_a_request_without_a_valid_token_is_401_whatever_the_settings(
    stub: EngineStub, store: Store, settings: ApiSettings
) -> None:
    # check_exposure refuses to start such a daemon; should an app be built anyway,
    # it must still not treat every caller as an admin.
    async with api_client(app_for(stub, store, settings)) as client:
        created_tenant = await client.post("/api/tenants", json={"id": 9, "name": "x"})
        listed = await client.get("/api/queues")
    assert created_tenant.status_code == 401
    assert listed.status_code == 401
    assert not Authenticator(settings).open


def sha256(token: str) -> str:
    """What `printf %s "$TOKEN" | sha256sum` prints, as a setting."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def test_a_token_given_as_its_hash_lets_its_holder_in() -> None:
    auth = Authenticator(
        ApiSettings.model_validate(
            {
                "admin_tokens": [sha256(ADMIN_TOKEN).upper().replace("SHA256:", "sha256:")],
                "tenant_tokens": {1: [sha256(T1_TOKEN)]},
            }
        )
    )
    assert auth.principal(ADMIN_TOKEN) == Principal(None)
    assert auth.principal(T1_TOKEN) == Principal(TenantId(1))
    # The hash itself is no token.
    assert auth.principal(sha256(ADMIN_TOKEN)) is None
    assert auth.principal(sha256(ADMIN_TOKEN).removeprefix("sha256:")) is None


def test_a_named_token_gives_its_name_and_unnamed_ones_their_place(tmp_path: Path) -> None:
    tokens_file = tmp_path / "api-tokens.toml"
    tokens_file.write_text(
        'admin_tokens = ["file-admin"]\n'
        f'[tenant_tokens]\n1 = [{{name = "wallboard", token = "{sha256("wb")}"}}]\n'
    )
    auth = Authenticator(
        ApiSettings.model_validate(
            {
                "admin_tokens": [{"name": "ops", "token": ADMIN_TOKEN}, "second"],
                "tenant_tokens": {1: [T1_TOKEN]},
                "tokens_file": str(tokens_file),
            }
        )
    )
    names = {
        t: p.name
        for t in (ADMIN_TOKEN, "second", "file-admin", T1_TOKEN, "wb")
        if (p := auth.principal(t))
    }
    assert names == {
        ADMIN_TOKEN: "ops",
        "second": "admin#2",
        "file-admin": "admin#3",
        T1_TOKEN: "tenant-1#1",
        "wb": "wallboard",
    }
    assert auth.principal("wb") == Principal(TenantId(1))
    assert not auth.open


@pytest.mark.parametrize("token", ["", " ", "\t"])
def test_a_blank_presented_token_is_never_a_principal(token: str) -> None:
    # Even should a blank token's hash be configured (only the empty one's is refused).
    settings = ApiSettings.model_validate({"admin_tokens": [sha256(" "), sha256("\t")]})
    assert Authenticator(settings).principal(token) is None
