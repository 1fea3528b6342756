"""``/docs`` and ``/redoc`` work offline: every file they load is the daemon's own."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib.resources import files

import httpx
import pytest

from ringmaster.store import Store

from .helpers import EngineStub, token_client

#: The media type each kind of file must be served as.
MEDIA_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class _References(HTMLParser):
    """Every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_a_docs_page_loads_only_the_daemons_own_files(
    page: str, stub: EngineStub, store: Store
) -> None:
    # As FastAPI's own pages: no token needed, even with tokens configured.
    async with token_client(stub, store, None) as client:
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        # And the browser may fetch nothing from another host, whatever the scripts ask.
        policy = response.headers["content-security-policy"]
        assert policy.startswith("default-src 'self';")
        assert "http" not in policy
        html = response.text
        urls = _references(html)
        assert len(urls) >= 2  # a script and the icon at least
        # No other host: neither a URL with one, nor anything that names a CDN or fonts.
        assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
        assert "http://" not in html
        assert "https://" not in html
        assert "'/openapi.json'" in html or '"/openapi.json"' in html
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rindex(".") :]
            media = asset.headers["content-type"].split(";")[0]
            assert media in MEDIA_TYPES[suffix], (url, media)
            assert len(asset.content) > 0


async def test_the_schema_itself_needs_no_token(stub: EngineStub, store: Store) -> None:
    async with token_client(stub, store, None) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        # The pages are no operations of the API.
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert not {"/docs", "/redoc"} & set(paths)


def test_the_assets_ship_in_the_package_with_their_licences() -> None:
    docs = files("ringmaster.api") / "static" / "docs"
    for name in (
        "README.md",
        "swagger-ui/swagger-ui-bundle.js",
        "swagger-ui/swagger-ui.css",
        "swagger-ui/favicon-32x32.png",
        "swagger-ui/LICENSE",
        "swagger-ui/NOTICE",
        "redoc/redoc.standalone.js",
        "redoc/LICENSE",
    ):
        assert docs.joinpath(name).is_file(), name


async def test_an_unknown_asset_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/docs/swagger-ui/nothing.js")).status_code == 404
    assert (await client.get("/static/docs/../provisioning.py")).status_code == 404
