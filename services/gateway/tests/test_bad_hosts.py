"""A job URL whose host DNS cannot carry (a label over 63 characters, a name over 253, a name
IDNA cannot encode) is refused at submission as `bad_url`, not failed later by the crawler."""

from __future__ import annotations

import pytest

LONG_LABEL = "a" * 64
LONG_NAME = ".".join(["b" * 63] * 4)  # 255 characters


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"https://{LONG_LABEL}.example.com/post", "at most 63"),
        (f"https://www.{LONG_LABEL}/post", "at most 63"),
        (f"https://{LONG_NAME}/post", "at most 253"),
    ],
)
async def test_a_url_with_a_host_dns_cannot_carry_is_a_bad_url(gateway, jobs, url, says):
    response = await gateway.post("/v1/jobs", json=jobs.good | {"url": url})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "bad_url"
    assert error["message"].startswith("url: the host name")
    assert says in error["message"]
    listed = (await gateway.get("/v1/jobs", params={"q": LONG_LABEL[:20]})).json()["data"]
    assert listed == []


async def test_a_batch_refuses_such_an_item_and_queues_the_rest(gateway, jobs):
    response = await gateway.post(
        "/v1/jobs/batch",
        json={"jobs": [jobs.good | {"url": f"https://{LONG_LABEL}.example/x"}, jobs.good]},
    )

    assert response.status_code == 200
    bad, good = response.json()["results"]
    assert (bad["status"], bad["error"]["code"]) == (422, "bad_url")
    assert good["status"] == 202


async def test_names_that_fit_are_still_accepted(gateway, jobs):
    await jobs.submit(gateway, url=f"https://{'a' * 63}.example.com/post")
    await jobs.submit(gateway, url="https://bücher.example/post")
