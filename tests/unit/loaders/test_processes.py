"""Writer processes: results and errors cross the process boundary intact.

moto cannot reach into a spawned process, so these loads talk to a small fake
DynamoDB endpoint served from this process over HTTP: it answers DescribeTable
and BatchWriteItem, and can answer an operation with an error.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cachewarm.errors import ConfigError, PermanentError, TableNotFoundError
from cachewarm.settings import Settings
from loaders.errors import CheckpointError, InputError, LoadFailed, StillUnprocessed
from loaders.pipeline import load_file
from loaders.report import read_rejects

TABLE = "Restaurants"


class FakeDynamo:
    """Answers DynamoDB's JSON protocol: DescribeTable, BatchWriteItem (all processed), or a scripted error."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}  # operation -> error code answered to every request
        self.written: list[str] = []  # PK of every item put
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                operation = self.headers["X-Amz-Target"].rsplit(".", 1)[-1]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                status, answer = fake.answer(operation, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, operation: str, body: dict) -> tuple[int, dict]:
        if operation in self.errors:
            code = self.errors[operation]
            return 400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": f"fake {code}"}
        if operation == "DescribeTable":
            return 200, {"Table": {"TableName": body["TableName"], "TableStatus": "ACTIVE"}}
        if operation == "BatchWriteItem":
            with self.lock:
                for request in body["RequestItems"][TABLE]:
                    self.written.append(request["PutRequest"]["Item"]["PK"]["S"])
            return 200, {"UnprocessedItems": {}}
        return 400, {"__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException", "message": operation}


@pytest.fixture
def fake_dynamo() -> Iterator[FakeDynamo]:
    fake = FakeDynamo()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def settings(fake_dynamo, monkeypatch, tmp_path) -> Settings:
    monkeypatch.chdir(tmp_path)  # default rejects/checkpoint paths land here
    return Settings(aws_region="us-east-1", table_name=TABLE, redis_url="redis://127.0.0.1:1/0",
                    dynamodb_endpoint=fake_dynamo.url)


def _input(tmp_path, count: int = 400, bad: tuple[int, ...] = ()) -> str:
    lines = [json.dumps({"PK": f"P#{i}", "SK": "S", "n": i}) for i in range(count)]
    for index in bad:
        lines[index] = "not json"
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("error", [
    TableNotFoundError("Restaurants"),
    ConfigError("REDIS_URL", "redis://:secret@h", "bad port"),
    InputError("x.jsonl: no such file"),
    CheckpointError("belongs to another input"),
    StillUnprocessed("3 items were still not written"),
    PermanentError("DynamoDB refused our credentials"),
])
def test_project_errors_pickle_with_type_message_attributes_and_exit_code(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and copy.args == error.args
    assert copy.exit_code == error.exit_code
    assert vars(copy) == vars(error)  # TableNotFoundError.table, ConfigError.variable


def test_an_exit_code_set_on_the_instance_survives_pickling():
    error = LoadFailed("stopped")
    error.exit_code = 3
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.exit_code) == (LoadFailed, "stopped", 3)


def test_writer_processes_write_every_line_and_report_their_memory(settings, fake_dynamo, tmp_path):
    path = _input(tmp_path, bad=(5, 300))
    report = load_file(path, settings=settings, workers=2, threads=2, block_bytes=2048, invalidate=False)
    assert (report.lines, report.written, report.rejected, report.workers) == (400, 398, 2, 2)
    assert sorted(fake_dynamo.written) == sorted(f"P#{i}" for i in range(400) if i not in (5, 300))
    assert [r.line for r in read_rejects(report.rejects_path)] == [6, 301]
    assert not (tmp_path / "items.jsonl.checkpoint").exists()
    # This process never loaded an AWS SDK; the writers did, so their memory is in the figure too.
    assert report.peak_rss_mb is not None and report.peak_rss_mb > 60


def test_a_missing_table_found_by_a_writer_process_reaches_the_caller(settings, fake_dynamo, tmp_path):
    fake_dynamo.errors["DescribeTable"] = "ResourceNotFoundException"
    with pytest.raises(TableNotFoundError) as failure:
        load_file(_input(tmp_path), settings=settings, workers=2, invalidate=False)
    assert str(failure.value) == str(TableNotFoundError(TABLE))
    assert failure.value.table == TABLE and failure.value.exit_code == 1
    assert fake_dynamo.written == []


def test_a_table_lost_while_writer_processes_write_stops_the_load_with_a_resume_hint(settings, fake_dynamo,
                                                                                    tmp_path):
    fake_dynamo.errors["BatchWriteItem"] = "ResourceNotFoundException"
    with pytest.raises(LoadFailed) as failure:
        load_file(_input(tmp_path), settings=settings, workers=2, threads=1, block_bytes=2048, invalidate=False)
    message = str(failure.value)
    assert message.startswith(str(TableNotFoundError(TABLE)))  # the writer's error, then the hint
    assert "re-run with --resume" in message and failure.value.exit_code == 1
    assert (tmp_path / "items.jsonl.checkpoint").exists()  # kept for --resume


def test_another_error_of_a_writer_process_arrives_as_raised(settings, fake_dynamo, tmp_path):
    fake_dynamo.errors["BatchWriteItem"] = "AccessDeniedException"
    with pytest.raises(PermanentError) as failure:
        load_file(_input(tmp_path), settings=settings, workers=2, threads=1, block_bytes=2048, invalidate=False)
    assert type(failure.value) is PermanentError  # as with workers=1: not rebuilt from its class name
    assert str(failure.value) == "DynamoDB refused our credentials (AccessDeniedException): fake AccessDeniedException"
    assert failure.value.exit_code == 1
    assert (tmp_path / "items.jsonl.checkpoint").exists()
