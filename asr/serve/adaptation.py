"""The server's models and its one adaptation at a time ("teach it your voice").

    models = Models(recognizer, Path("~/.cache/asr/adapted"), workers=2)
    models.get("adapted/voice-...")        # a Recognizer, loaded on first use; None if unknown
    models.describe()                      # what /v1/models lists: the served model, then every adapted one
    jobs = Adaptations(models, config)
    job = jobs.submit(folder, test_count=5, steps=0)   # AdaptationBusy while one runs
    jobs.get(job.id).view()                # what GET /v1/adaptations/{id} answers

An adaptation job is the recordings of one person (DATA for asr.adapt, saved under
the job's upload folder as NNN.wav + NNN.txt). The last `test_count` of them are kept
out of adaptation altogether: after it, both the served model and the new one
transcribe them with their default decoding, and the job reports both WERs (the
page's before/after figure). The job runs in a thread of its own: training shares
the cores with transcription requests, which go on being served meanwhile.

Adapted models live in `models_dir/NAME/` (model.pt with its LM and lexicon beside it,
asr.adapt.vocabulary) and outlive the server: a restart lists them again. Each job's
wall time is bounded by `max_adapt_minutes` (training gets 80% of it as its budget; at
the limit, on DELETE, or when the server stops (`close`), training stops and the best
weights so far are kept).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from asr.checkpoint import load_model
from asr.data.manifest import Utterance
from asr.errors import AsrError
from asr.serve import ServeConfig
from asr.serve.recognizer import Recognizer

ADAPTED_PREFIX = "adapted/"  # ids of adapted models: "adapted/NAME"
MODEL_FILE = "model.pt"


class AdaptationBusy(Exception):
    """An adaptation is running; the server takes one at a time."""

    def __init__(self, retry_after: int):
        super().__init__(f"an adaptation is running; retry in {retry_after} s")
        self.retry_after = retry_after


class Models:
    """The served model plus every adapted model under `models_dir`, as Recognizers by id."""

    def __init__(self, default: Recognizer, models_dir: Path, workers: int = 1):
        self.default = default
        self.models_dir = Path(models_dir)
        self.workers = workers
        self._loaded: dict[str, Recognizer] = {default.model_id: default}
        self._lock = threading.Lock()

    def path_of(self, model_id: str) -> Path | None:
        """The checkpoint of an adapted model's id, if it exists."""
        if not model_id.startswith(ADAPTED_PREFIX):
            return None
        name = model_id[len(ADAPTED_PREFIX):]
        path = self.models_dir / name / MODEL_FILE
        return path if "/" not in name and name not in ("", ".", "..") and path.is_file() else None

    def adapted_ids(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(f"{ADAPTED_PREFIX}{p.parent.name}" for p in self.models_dir.glob(f"*/{MODEL_FILE}"))

    def get(self, model_id: str) -> Recognizer | None:
        """The Recognizer of `model_id` (the served one, or an adapted one, loaded once), or None."""
        with self._lock:
            if model_id in self._loaded:
                return self._loaded[model_id]
            path = self.path_of(model_id)
            if path is None:
                return None
            loaded = load_model(path)
            recognizer = Recognizer(loaded, loaded.decoding, self.workers, name=model_id)
            self._loaded[model_id] = recognizer
            return recognizer

    def describe(self) -> list[dict]:
        """/v1/models' list: the served model first, then the adapted ones (with what adaptation measured)."""
        out = [self.default.describe()]
        for model_id in self.adapted_ids():
            recognizer = self.get(model_id)
            if recognizer is not None:
                out.append(recognizer.describe())
        return out


@dataclass
class AdaptationJob:
    """One adaptation: its state, progress and result, as GET /v1/adaptations/{id} shows them."""

    id: str
    name: str  # the model's folder under models_dir; the model id is "adapted/NAME"
    folder: Path  # upload folder: train/ (DATA) and test/ (before/after prompts)
    test: list[Utterance]
    steps: int = 0  # 0: asr.adapt's default budget
    status: str = "queued"  # queued | running | done | failed | cancelled
    error: str | None = None
    progress: dict = field(default_factory=dict)
    result: dict | None = None
    created: float = field(default_factory=time.time)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def model_id(self) -> str:
        return f"{ADAPTED_PREFIX}{self.name}"

    def view(self) -> dict:
        return {"id": self.id, "object": "adaptation", "status": self.status, "model": self.model_id,
                "created": int(self.created), "progress": self.progress, "result": self.result, "error": self.error}


class Adaptations:
    """At most one adaptation job running; finished jobs stay listed until the server stops."""

    def __init__(self, models: Models, config: ServeConfig):
        self.models = models
        self.config = config
        self.jobs: dict[str, AdaptationJob] = {}
        self.running: AdaptationJob | None = None
        self.closing = False  # the server is stopping: a job ends without its before/after test
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def retry_after(self) -> int:
        """Seconds until the running job is likely done (its ETA, else its time limit)."""
        job = self.running
        if job is None:
            return 1
        eta = job.progress.get("eta_s")
        limit = self.config.max_adapt_minutes * 60 - (time.time() - job.created)
        return max(1, int(eta if eta is not None else limit))

    def submit(self, folder: Path, test: list[Utterance], steps: int = 0) -> AdaptationJob:
        """Start adapting on `folder`/train (checked by the caller); AdaptationBusy if a job runs."""
        with self._lock:
            if self.running is not None:
                raise AdaptationBusy(self.retry_after())
            name = f"voice-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
            job = AdaptationJob(id=f"adapt-{uuid.uuid4().hex[:12]}", name=name, folder=folder, test=test, steps=steps)
            self.jobs[job.id] = job
            self.running = job
            self._thread = threading.Thread(target=self._run, args=(job,), name=f"asr-{job.id}", daemon=True)
        self._thread.start()
        return job

    def cancel(self, job: AdaptationJob) -> None:
        job.stop.set()

    def close(self, seconds: float) -> None:
        """Stop the running job, if any, as the server stops: training ends at its next step and
        keeps its best weights (the model is there after a restart); wait up to `seconds` for it.
        A thread still in torch when the interpreter exits aborts the process."""
        self.closing = True
        job, thread = self.running, self._thread
        if job is not None and thread is not None:
            job.stop.set()
            thread.join(seconds)

    def _run(self, job: AdaptationJob) -> None:
        from asr.adapt.job import AdaptConfig, AdaptJob, adapt

        limit = self.config.max_adapt_minutes * 60
        watchdog = threading.Timer(limit, job.stop.set)  # the hard bound: training stops, the best is kept
        watchdog.start()
        out = self.models.models_dir / job.name / MODEL_FILE
        try:
            job.status = "running"
            config = AdaptConfig(steps=job.steps, minutes=0.8 * self.config.max_adapt_minutes)

            def on_progress(progress) -> None:
                job.progress = {k: (round(v, 3) if isinstance(v, float) else v)
                                for k, v in dataclasses.asdict(progress).items()}

            data = AdaptJob(data=str(job.folder / "train"), out=str(out), base=self.models.default.loaded.path)
            summary = adapt(data, config, on_progress, job.stop, log=lambda _: None)
            if self.closing:
                job.status = "cancelled"
                return
            job.progress = {**job.progress, "phase": "testing"}
            job.result = {"summary": {k: summary[k] for k in ("steps", "seconds", "loss_before", "loss_after",
                                                                "held_out_loss_before", "held_out_loss_after",
                                                                "new_words", "tuned", "interrupted")},
                          **self._before_after(job)}
            job.progress = {**job.progress, "phase": "done"}
            job.status = "cancelled" if summary["interrupted"] and not watchdog.finished.is_set() else "done"
        except AsrError as err:
            job.status, job.error = "failed", str(err)
        except Exception as err:  # a bug: the job reports it, the server goes on
            job.status, job.error = "failed", f"internal error ({type(err).__name__}: {err})"
            raise
        finally:
            watchdog.cancel()
            with self._lock:
                self.running = None
            shutil.rmtree(job.folder / "train", ignore_errors=True)

    def _before_after(self, job: AdaptationJob) -> dict:
        """WER/CER of the served model and of the new one on the job's test prompts (default decoding)."""
        if not job.test:
            return {"before": None, "after": None, "prompts": []}
        from asr.evaluate import score

        paths = [Path(u.audio_path) for u in job.test]
        scores, rows = {}, {}
        for key, recognizer in (("before", self.models.default), ("after", self.models.get(job.model_id))):
            hyps = recognizer.transcribe(paths)
            failed = next((h for h in hyps if isinstance(h, Exception)), None)
            if failed is not None:
                raise failed
            summary, rows[key] = score(job.test, {u.id: h for u, h in zip(job.test, hyps)})
            scores[key] = {"wer": summary["wer"], "cer": summary["cer"], "words": summary["words"]}
        prompts = [{"ref": b["ref"], "before": b["hyp"], "after": a["hyp"]}
                   for b, a in zip(rows["before"], rows["after"])]
        return {**scores, "prompts": prompts}
