"""`asr serve`'s adaptation API: POST recordings, poll the job, use the new model by id.

The served model is the session's tiny checkpoint (fast to adapt); recordings are
espeak-ng's (tests/test_adapt.py's `voice_dir`). Checked: a job runs to "done", its
model is listed in /v1/models and chosen with `model=`, with before/after WERs on the
held-back prompts; one job at a time (429 + Retry-After), DELETE stops one and keeps
its best weights; bad uploads get 400/413/415 in OpenAI's error shape.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="asr serve needs the serve extra: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from test_adapt import VOICE_SENTENCES, voice_dir  # noqa: E402, F401  (the fixture)

from asr.checkpoint import load_model  # noqa: E402
from asr.serve import ServeConfig  # noqa: E402
from asr.serve.app import create_app  # noqa: E402
from asr.serve.recognizer import Recognizer  # noqa: E402


def make_client(checkpoint: Path, models_dir: Path, **config) -> TestClient:
    loaded = load_model(checkpoint)
    config = ServeConfig(**{"workers": 1, "models_dir": str(models_dir), **config})
    return TestClient(create_app(Recognizer(loaded, loaded.decoding), config))


def upload(voice: Path, count: int = 8) -> list[tuple[str, tuple[str, bytes]]]:
    return [("file", (f"p{i}.wav", (voice / f"p{i:02d}.wav").read_bytes())) for i in range(count)]


def texts(count: int = 8, **fields: str) -> dict:
    return {"text": VOICE_SENTENCES[:count], **fields}


def wait_for(client: TestClient, job_id: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/v1/adaptations/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_adaptation_job_makes_a_model_that_is_listed_and_chosen(voice_dir, tiny_checkpoint, tmp_path):  # noqa: F811
    with make_client(tiny_checkpoint, tmp_path / "models") as client:
        started = client.post("/v1/adaptations", files=upload(voice_dir), data=texts(test="2", steps="3"))
        assert started.status_code == 202, started.text
        job = started.json()
        assert started.headers["location"] == f"/v1/adaptations/{job['id']}"
        job = wait_for(client, job["id"])
        assert job["status"] == "done", job
        result = job["result"]
        assert result["summary"]["steps"] == 3
        assert 0 <= result["before"]["wer"] and 0 <= result["after"]["wer"]
        assert [p["ref"] for p in result["prompts"]] == VOICE_SENTENCES[6:8]
        assert (tmp_path / "models" / job["model"].split("/")[1] / "model.pt").is_file()
        assert not any((tmp_path / "models").rglob("*.wav"))  # recordings are not kept with the model

        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert ids == [f"{tiny_checkpoint.parent.name}/tiny", job["model"]]
        assert client.get(f"/v1/models/{job['model']}").json()["id"] == job["model"]
        wav = (voice_dir / "p07.wav").read_bytes()
        for model, status in ((job["model"], 200), ("whisper-1", 200), ("adapted/nobody", 404)):
            answer = client.post("/v1/audio/transcriptions", files={"file": ("p.wav", wav)}, data={"model": model})
            assert answer.status_code == status, answer.text
        assert "adapted/nobody" in answer.json()["error"]["message"]

    # A restarted server finds the model on its disk.
    with make_client(tiny_checkpoint, tmp_path / "models") as client:
        assert job["model"] in [m["id"] for m in client.get("/v1/models").json()["data"]]


def test_one_adaptation_at_a_time_and_delete_keeps_the_best(voice_dir, tiny_checkpoint, tmp_path):  # noqa: F811
    with make_client(tiny_checkpoint, tmp_path / "models") as client:
        first = client.post("/v1/adaptations", files=upload(voice_dir), data=texts(steps="10000"))
        assert first.status_code == 202, first.text
        second = client.post("/v1/adaptations", files=upload(voice_dir), data=texts())
        assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
        assert second.json()["error"]["code"] == "adaptation_busy"
        while client.get(f"/v1/adaptations/{first.json()['id']}").json()["progress"].get("step", 0) < 2:
            time.sleep(0.1)
        assert client.delete(f"/v1/adaptations/{first.json()['id']}").status_code == 200
        job = wait_for(client, first.json()["id"])
        assert job["status"] == "cancelled" and job["result"]["summary"]["interrupted"]
        assert 2 <= job["result"]["summary"]["steps"] < 10000
        assert job["model"] in [m["id"] for m in client.get("/v1/models").json()["data"]]
        again = client.post("/v1/adaptations", files=upload(voice_dir), data=texts(steps="1"))
        assert again.status_code == 202, again.text
        assert wait_for(client, again.json()["id"])["status"] == "done"


def test_bad_adaptation_uploads_are_refused_in_one_message(voice_dir, tiny_checkpoint, tmp_path):  # noqa: F811
    with make_client(tiny_checkpoint, tmp_path / "models", max_adapt_upload_mb=0.3) as client:
        def refused(status: int, code: str, files, data) -> str:
            answer = client.post("/v1/adaptations", files=files, data=data)
            assert answer.status_code == status, answer.text
            assert answer.json()["error"]["code"] == code
            return answer.json()["error"]["message"]

        assert "2 'file' fields but 1 'text'" in refused(400, "invalid_field", upload(voice_dir, 2), texts(1))
        message = refused(400, "invalid_adaptation_data", upload(voice_dir, 3), texts(3))
        assert "too little speech" in message and "at least 10 s" in message and str(tmp_path) not in message
        assert "'test'" in refused(400, "invalid_field", upload(voice_dir, 3), texts(3, test="9"))
        assert "unknown field 'voice'" in refused(400, "unknown_field", upload(voice_dir, 3), texts(3, voice="x"))
        assert "--max-adapt-upload-mb" in refused(413, "file_too_large", upload(voice_dir, 8), texts(8))
        answer = client.post("/v1/adaptations", json={"file": "x"})
        assert answer.status_code == 415
        assert not list((tmp_path / "models").glob("*"))
