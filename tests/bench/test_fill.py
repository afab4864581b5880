"""The benchmark's queue filler: copies of one library-made message, each with fresh ids."""

from __future__ import annotations

import base64
import json
import uuid

from bench.fill import _copies, _decoded


def test_base64_json_bodies_are_recognised():
    document = json.dumps({"id": "x"})
    assert _decoded(base64.b64encode(document.encode()).decode()) == (document, True)
    assert _decoded(document) == (document, False)
    assert _decoded("aGVsbG8=") == ("aGVsbG8=", False)  # base64, but not of a document


def test_copies_keep_the_format_and_get_fresh_ids(queues, sqs_endpoint, monkeypatch):
    url = queues.create("bench")
    monkeypatch.setenv("BENCH_ENDPOINT", sqs_endpoint)
    monkeypatch.setenv("BENCH_QUEUE", queues.prefix + "bench")
    original = str(uuid.uuid4())
    document = {"headers": {"id": original, "root_id": original}, "body": "payload"}

    def send_one() -> None:
        queues.sqs.send_message(
            QueueUrl=url,
            MessageBody=base64.b64encode(json.dumps(document).encode()).decode(),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "bench"}},
        )

    _copies(send_one, 25)
    received = []
    while len(received) < 25:
        batch = queues.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        assert batch, f"only {len(received)} of 25 messages"
        received += batch
    documents = [json.loads(base64.b64decode(m["Body"])) for m in received]
    assert {d["body"] for d in documents} == {"payload"}
    assert all(d["headers"]["id"] == d["headers"]["root_id"] for d in documents)
    assert len({d["headers"]["id"] for d in documents}) == 25
    assert original in {d["headers"]["id"] for d in documents}
    assert {m["MessageAttributes"]["kind"]["StringValue"] for m in received} == {"bench"}
