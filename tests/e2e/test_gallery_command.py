"""``imgup gallery`` run as a user runs it, against the local stack: the link, the page's
configuration, Ctrl-C, a port in use, and the API's CORS answers that the page relies on."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import run_imgup
from tests.gallery_support import running_gallery

pytestmark = pytest.mark.e2e

PAGE_ORIGIN = "http://127.0.0.1:8800"


def test_gallery_prints_its_link_serves_the_page_and_stops_cleanly_on_ctrl_c(local_stack) -> None:
    with running_gallery(local_stack) as gallery:
        with httpx.Client(trust_env=False, timeout=10) as client:
            page = client.get(gallery.link, follow_redirects=True)
            assert page.status_code == 200
            assert '<script src="gallery.js" defer></script>' in page.text
            config = client.get(gallery.url + "config.json").json()
        code, rest, stderr = gallery.stop()
    assert config["apiUrl"] == local_stack.api_url
    assert config["apiKey"] == local_stack.api_key
    assert local_stack.api_key not in gallery.link
    assert code == 0
    assert rest == ""
    assert "Serving the gallery of imgup (the local stack)" in stderr
    assert "Stopped the gallery." in stderr
    assert "Traceback" not in stderr and "Interrupted" not in stderr


def test_gallery_on_a_port_in_use_exits_2_and_says_so(local_stack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = local_stack.imgup("gallery", "--no-open", "--port", str(port), timeout=60)
    assert result.code == 2
    assert result.stdout == ""
    assert f"Port {port} on 127.0.0.1 is in use." in result.stderr
    assert "--port" in result.stderr


def test_gallery_with_nothing_deployed_exits_3_before_serving() -> None:
    result = run_imgup("gallery", "--no-open", timeout=60)
    assert result.code == 3
    assert result.stdout == ""
    assert "imgup deploy" in result.stderr


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/images"), ("POST", "/uploads"), ("DELETE", "/images/x")]
)
def test_the_apis_preflight_lets_a_page_send_the_api_key(local_stack, method: str, path: str) -> None:
    answer = httpx.options(
        local_stack.api_url + path,
        headers={
            "origin": PAGE_ORIGIN,
            "access-control-request-method": method,
            "access-control-request-headers": "content-type,x-api-key",
        },
        trust_env=False,
    )
    assert answer.status_code in (200, 204)
    assert answer.headers["access-control-allow-origin"] in ("*", PAGE_ORIGIN)
    assert "x-api-key" in answer.headers["access-control-allow-headers"].lower()
    assert method in answer.headers["access-control-allow-methods"]


def test_the_apis_answers_and_refusals_carry_cors_headers(local_stack) -> None:
    listed = httpx.get(
        local_stack.api_url + "/images",
        headers={"origin": PAGE_ORIGIN, "x-api-key": local_stack.api_key},
        trust_env=False,
    )
    refused = httpx.get(local_stack.api_url + "/images", headers={"origin": PAGE_ORIGIN}, trust_env=False)
    assert listed.status_code == 200
    assert refused.status_code == 403
    for answer in (listed, refused):
        assert answer.headers["access-control-allow-origin"] in ("*", PAGE_ORIGIN)
