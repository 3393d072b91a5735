"""Reading ``/metrics`` in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.api import Client


async def scrape(client: Client) -> tuple[str, dict[str, float]]:
    """GET /metrics: the exposition text and its samples as ``{'name{labels}': value}``."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await resp.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return text, samples
