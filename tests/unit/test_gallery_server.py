"""The gallery page's server (imgup.gallery) on a socket: who gets the API key, and what the
page's files are served with. No deployment is needed: the page's configuration is given."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import httpx
import pytest

from imgup.backend import rules
from imgup.gallery import GalleryServer, PageConfig, PortInUse, content_security_policy, storage_origins

KEY = "k" * 40
CONFIG = PageConfig(
    api_url="http://127.0.0.1:4566/_api/us-east-1/abc123/v1",
    api_key=KEY,
    stack_name="imgup",
    target="local",
    region="us-east-1",
    max_upload_bytes=5 * 1024 * 1024,
    storage_origins=("http://127.0.0.1:4566",),
)


@pytest.fixture
def server() -> Iterator[GalleryServer]:
    running = GalleryServer(CONFIG, 0)
    running.serve_in_thread()
    try:
        yield running
    finally:
        running.shutdown()


@pytest.fixture
def browser(server: GalleryServer) -> Iterator[httpx.Client]:
    """A client that behaves like the page: it follows the launch link and keeps the cookie."""
    with httpx.Client(trust_env=False, timeout=5, base_url=server.url) as client:
        yield client


def test_the_launch_link_carries_a_session_token_and_never_the_api_key(server: GalleryServer) -> None:
    assert server.launch_url.startswith(f"http://127.0.0.1:{server.port}/?session=")
    assert KEY not in server.launch_url
    assert len(server.token) >= 32


def test_the_launch_link_sets_an_http_only_same_site_cookie_and_leads_to_the_page(
    server: GalleryServer, browser: httpx.Client
) -> None:
    answer = browser.get(server.launch_url)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"imgup_gallery_{server.port}={server.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_the_page_with_its_session_gets_the_api_url_key_and_limits(
    server: GalleryServer, browser: httpx.Client
) -> None:
    browser.get(server.launch_url)
    answer = browser.get("/config.json", headers={"sec-fetch-site": "same-origin"})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in answer.headers
    config = answer.json()
    assert config["apiUrl"] == CONFIG.api_url
    assert config["apiKey"] == KEY
    assert config["maxUploadBytes"] == 5 * 1024 * 1024
    assert config["maxBatch"] == rules.MAX_BATCH
    assert {t["type"] for t in config["types"]} == set(rules.ALLOWED_TYPES)


def test_the_configuration_is_refused_without_the_session_cookie(browser: httpx.Client) -> None:
    answer = browser.get("/config.json")
    assert answer.status_code == 403
    assert KEY not in answer.text
    assert "imgup gallery" in answer.json()["error"]


def test_a_wrong_session_token_gets_no_cookie(server: GalleryServer, browser: httpx.Client) -> None:
    answer = browser.get("/?session=not-the-token")
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    assert browser.get("/config.json").status_code == 403


def test_another_site_cannot_read_the_configuration_even_with_the_cookie(
    server: GalleryServer, browser: httpx.Client
) -> None:
    browser.get(server.launch_url)
    cross_site = browser.get("/config.json", headers={"sec-fetch-site": "cross-site"})
    other_origin = browser.get("/config.json", headers={"origin": "https://evil.example"})
    assert cross_site.status_code == other_origin.status_code == 403
    assert KEY not in cross_site.text + other_origin.text


def test_a_request_for_another_host_name_is_refused_against_dns_rebinding(
    server: GalleryServer, browser: httpx.Client
) -> None:
    browser.get(server.launch_url)
    answer = browser.get("/config.json", headers={"host": f"evil.example:{server.port}"})
    assert answer.status_code == 421
    assert KEY not in answer.text


def test_the_page_is_served_from_the_package_with_a_policy_that_allows_only_its_peers(
    browser: httpx.Client,
) -> None:
    answer = browser.get("/")
    assert answer.status_code == 200
    assert answer.text == resources.files("imgup").joinpath("web", "index.html").read_text()
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "connect-src 'self' http://127.0.0.1:4566;" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["referrer-policy"] == "no-referrer"
    for path, kind in (("/gallery.js", "text/javascript"), ("/gallery.css", "text/css")):
        served = browser.get(path)
        assert served.status_code == 200
        assert served.headers["content-type"].startswith(kind)


def test_the_page_loads_nothing_from_another_server() -> None:
    page = resources.files("imgup").joinpath("web")
    for name in ("index.html", "gallery.css", "gallery.js"):
        text = page.joinpath(name).read_text()
        assert "https://" not in text.replace("https://*", ""), name
        assert "//cdn" not in text, name


def test_unknown_paths_and_other_methods_are_refused(browser: httpx.Client) -> None:
    assert browser.get("/../pyproject.toml").status_code == 404
    assert browser.get("/web/gallery.js").status_code == 404
    answer = browser.post("/config.json", content=b"x" * 100)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD"


def test_a_port_in_use_is_reported_as_such(server: GalleryServer) -> None:
    with pytest.raises(PortInUse):
        GalleryServer(CONFIG, server.port)


def test_on_aws_the_page_may_reach_s3_of_the_apis_partition() -> None:
    api = "https://a1b2c3.execute-api.eu-west-1.amazonaws.com/v1"
    assert storage_origins(api, None) == ("https://*.amazonaws.com",)
    assert storage_origins("https://x.execute-api.cn-north-1.amazonaws.com.cn/v1", None) == (
        "https://*.amazonaws.com.cn",
    )
    aws = PageConfig(api, KEY, "imgup", "aws", "eu-west-1", 1, storage_origins(api, None))
    assert (
        "connect-src 'self' https://a1b2c3.execute-api.eu-west-1.amazonaws.com https://*.amazonaws.com;"
        in (content_security_policy(aws))
    )


@pytest.mark.parametrize("file_type", sorted(rules.ALLOWED_TYPES))
def test_the_pages_magic_bytes_are_those_the_rules_sniff(file_type: str) -> None:
    for parts in rules.SIGNATURES[file_type]:
        head = bytearray(16)
        for offset, magic in parts:
            head[offset : offset + len(magic)] = magic
        assert rules.sniff_type(bytes(head)) == file_type
