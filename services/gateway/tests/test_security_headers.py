"""Issue 12.8: a post served as HTML carries a CSP that runs and loads nothing, every answer is
`nosniff`, and the API docs load their assets from the gateway itself, not from a CDN."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest


async def test_a_post_as_html_has_a_sandboxing_csp_nosniff_and_no_referrer(gateway, bus, jobs):
    job = await jobs.submit(gateway)
    await bus.publish(jobs.post(job["id"]))
    done = await jobs.wait_for_state(gateway, job["id"], "completed")
    response = await gateway.get(f"/v1/posts/{done['post']['id']}", params={"format": "html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = [part.strip() for part in response.headers["content-security-policy"].split(";")]
    assert "default-src 'none'" in csp
    assert "sandbox" in csp
    assert "img-src 'self'" in csp
    assert not [p for p in csp if p.startswith("script-src")]
    assert [p for p in csp if p.startswith("style-src")] == ["style-src 'unsafe-inline'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # The Accept header reaches the same answer.
    negotiated = await gateway.get(
        f"/v1/posts/{done['post']['id']}", headers={"Accept": "text/html"}
    )
    assert (
        negotiated.headers["content-security-policy"] == response.headers["content-security-policy"]
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/jobs", 200),
        ("GET", "/v1/jobs/nope", 404),
        ("POST", "/v1/jobs", 422),
        ("GET", "/healthz", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/", 200),
    ],
)
async def test_every_answer_is_nosniff(gateway, method, path, status):
    response = await gateway.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == status
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_unauthenticated_answer_is_nosniff_too(gateway):
    response = await gateway.get("/v1/jobs", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_api_docs_reference_no_other_host_and_their_assets_load(gateway, page):
    response = await gateway.get(page, headers={"Authorization": ""})
    assert response.status_code == 200
    html = response.text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""url\s*:\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""spec-url\s*=\s*["']([^"']+)["']""", html)
    assert urls
    assert not [u for u in urls if urlsplit(u).netloc or u.startswith("//")], urls
    assert "cdn.jsdelivr.net" not in html
    assert "unpkg.com" not in html
    assert "fonts.googleapis.com" not in html
    for url in urls:
        asset = await gateway.get(urljoin(f"http://gw{page}", url), headers={"Authorization": ""})
        assert asset.status_code == 200, url
        assert asset.content, url
