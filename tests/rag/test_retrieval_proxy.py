"""The wire from llmops.rag to the dashboards, through the real LiteLLM proxy: retrieval metadata
sent with a request lands in the spend log the s3_v2 logger writes, and the aggregator turns it
into the age of the documents behind that answer.

The proxy, the stubs and the moto server are tests/test_gateway_proxy.py's fixtures (the config
generated for a regulated stack); this module starts its own instance of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lambdas.spend_aggregator.aggregate import Aggregator
from llmops import rag
from tests.test_gateway_proxy import chat, moto, proxy, stubs, wait_for_records  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def test_retrieval_metadata_reaches_the_spend_log_and_becomes_document_age(proxy, moto):  # noqa: F811
    now = datetime.now(UTC)
    fees = rag.point_payload(
        source_id="kb/fees",
        source_updated_at=now - timedelta(days=3),
        embedding_model="bge-m3",
        source_version="7",
    )
    limits = rag.point_payload(
        source_id="kb/limits", source_updated_at=now - timedelta(hours=2), embedding_model="bge-m3"
    )
    hits = [{"id": 1, "payload": fees}, {"id": 2, "payload": limits}]
    metadata = rag.retrieval_metadata(hits, collection="kb")
    reply = chat(proxy, "chat-primary", "what are the fees?", metadata=metadata)
    (record,) = wait_for_records(moto["s3"], lambda r: r["id"] == reply["id"])
    assert record["metadata"]["requester_metadata"]["retrieval"] == metadata["retrieval"]

    aggregator = Aggregator()
    aggregator.add(record)
    [age] = [e for e in aggregator.emf_records("test") if "RetrievedNewestDocumentAgeSeconds" in e]
    request_time = record["startTime"]
    assert age["RetrievedNewestDocumentAgeSeconds"] == [
        pytest.approx(request_time - (now - timedelta(hours=2)).timestamp(), abs=1e-3)
    ]
    assert age["RetrievedOldestDocumentAgeSeconds"] == [
        pytest.approx(request_time - (now - timedelta(days=3)).timestamp(), abs=1e-3)
    ]
    assert (age["Model"], age["Route"]) == ("chat-primary", "self-hosted")
