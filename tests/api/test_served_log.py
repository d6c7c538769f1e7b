"""What the API logs: the served log in each mode, request ids joining it to events and error logs, and
writes that fail (an unwritable record, a full disk) without losing a suggestions response."""

from __future__ import annotations

import pytest

from api import create_app
from api.schemas import SuggestionsOut
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from tests.api.common import KEY


@pytest.mark.parametrize("mode", ["ids", "off"])
def test_served_log_modes(app_settings, world, mode):
    from dataclasses import replace

    from graph.eventlog import EventLog

    settings = replace(app_settings, api=replace(app_settings.api, served_log=mode))
    save_snapshot(from_store(world), ArtifactStore(settings.snapshot_dir), source="test")
    body = create_app(settings, store=world).test_client().get("/v1/users/a1/suggestions").get_json()
    records = list(EventLog(settings.data_dir / "served").read_records())
    if mode == "off":
        assert records == []
        return
    (served,) = records
    assert [c["user_id"] for c in served["candidates"]] == [s["user_id"] for s in body["suggestions"]]
    assert all(c.keys() == {"user_id", "position", "sources", "scores"} for c in served["candidates"])


def test_every_response_has_a_request_id_that_joins_the_served_log_the_events_and_the_logs(app, client, app_settings,
                                                                                         monkeypatch, caplog):
    """The caller's X-Request-ID is kept when it is a plain token, else one is made; it is on every response, in
    error bodies, in the served-log record of a suggestions response (so events carrying it join that record
    exactly, as an extra field kept with the event) and in the log line of an unhandled error."""
    import re

    from graph.eventlog import EventLog

    resp = client.get("/v1/users/a1/suggestions", headers={"X-Request-ID": "lb-7f3a.2:1"})
    body = resp.get_json()
    assert resp.headers["X-Request-ID"] == body["request_id"] == "lb-7f3a.2:1"
    SuggestionsOut.model_validate(body)
    (served,) = EventLog(app_settings.data_dir / "served").read_records()
    assert served["request_id"] == "lb-7f3a.2:1" and served["viewer"] == "a1"
    event = {"type": "impression", "src": "a1", "dst": body["suggestions"][0]["user_id"], "ts": 1.7e9,
             "position": 0, "request_id": body["request_id"]}
    assert client.post("/v1/events", json=event, headers=KEY).status_code == 202
    (logged,) = [ev for ev in app.extensions["pymk"].events.read() if ev.type == "impression"]
    assert logged.extra["request_id"] == served["request_id"]

    made = set()
    for given in (None, "", "has space", "x" * 129, "semi;colon", "ü"):
        headers = {} if given is None else {"X-Request-ID": given}
        resp = client.get("/v1/users/nobody/suggestions", headers=headers)
        rid = resp.headers["X-Request-ID"]
        assert resp.status_code == 404 and resp.get_json()["error"]["request_id"] == rid
        assert re.fullmatch(r"[0-9a-f]{32}", rid) and rid not in made, (given, rid)
        made.add(rid)
    assert client.get("/healthz", headers={"X-Request-ID": "h1"}).headers["X-Request-ID"] == "h1"

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.extensions["pymk"], "suggestions", crash)
    with caplog.at_level("ERROR", logger="api.errors"):
        resp = client.get("/v1/users/a1/suggestions", headers={"X-Request-ID": "r-500"})
    assert resp.status_code == 500 and resp.get_json()["error"] == {
        "code": "internal_error", "message": "internal error; it has been logged with its request_id",
        "request_id": "r-500"}
    assert "unhandled error (request r-500)" in caplog.text and "boom" in caplog.text


def test_a_served_log_record_that_cannot_be_written_is_lost_not_the_response(app, client, monkeypatch, caplog):
    import orjson

    svc = app.extensions["pymk"]

    def unwritable(records):
        raise orjson.JSONEncodeError("Type is not JSON serializable: numpy.float32")

    monkeypatch.setattr(svc.served_log, "append_records", unwritable)
    with caplog.at_level("ERROR"):
        for _ in range(2):
            assert client.get("/v1/users/a1/suggestions").status_code == 200
    assert svc.served_log_failures == 2
    assert caplog.text.count("served log: Type is not JSON serializable") == 1   # once a minute, with its traceback
    assert "Traceback" in caplog.text


def test_a_full_disk_fails_event_writes_with_503_but_never_suggestions(app, client, app_settings, monkeypatch):
    from graph.eventlog import EventLog
    from tests.test_event_log import _disk_fills_after

    _disk_fills_after(monkeypatch, keep=5)
    resp = client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b0", "ts": 1.0}, headers=KEY)
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert resp.get_json()["error"]["code"] == "event_log_unavailable"
    resp = client.get("/v1/users/a1/suggestions")            # its served-log record is lost, not the response
    assert resp.status_code == 200 and resp.get_json()["suggestions"]
    assert app.extensions["pymk"].served_log_failures == 1
    monkeypatch.undo()
    assert client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b0", "ts": 1.0},
                       headers=KEY).status_code == 202    # the client's retry, once there is room
    assert [e.type for e in EventLog(app_settings.event_log_dir).read()] == ["send"]
    assert list(EventLog(app_settings.data_dir / "served").read_records()) == []
