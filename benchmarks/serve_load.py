"""Load test of `asr serve` on loopback: throughput, latency percentiles, errors and peak RSS.

    python -m benchmarks.serve_load [--clients 1 4 16] [--requests 16] [--workers N] [--max-batch B]
        [--model CKPT] [--utterances 32]

1. Inputs: the first --utterances speechocean762 dev utterances (16 kHz Ogg/Opus, 2 to
   20 s of read speech), or, without the recipe's manifest, as many sentences spoken by
   espeak-ng into benchmarks/.serve-work/ (git-ignored).
2. One `asr serve --port 0` process (the bundled model and its stored decoding, beam
   search + word LM, unless --model), --workers threads and --max-batch (default: the
   server's own, one worker per core, batches of up to 4), the default queue of 32. Two
   requests warm it up.
3. For each N in --clients: N concurrent clients (asyncio + httpx, one connection each)
   send --requests requests each, back to back, cycling through the inputs from
   different starting points. Latency is from sending a request to the last byte of
   its answer (json format), over the answered (200) requests. Throughput counts
   answered requests (and their audio seconds) per wall-clock second of the round.
4. Errors: any answer but 200. Below the queue size (32) there must be none; the
   script exits with status 1 if there are. Above it, the 503s are counted.
5. Peak RSS is the server process's high-water mark (VmHWM) after the round, so it
   includes Python, torch, FastAPI, the model and every worker's decoder and LM.

The clients run in this process on the same cores as the server, as they would on a
one-machine deployment; the machine line says how busy the machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import DEV_MANIFEST, ROOT, machine_line

HERE = Path(__file__).resolve().parent
WORK = HERE / ".serve-work"
QUEUE_SIZE = 32  # asr serve's default
SENTENCES = ["the cat sat on the mat", "open the window and close the door", "she sells sea shells by the sea",
             "my brother found a yellow kite", "we will go to the park after lunch", "four six two nine",
             "please call stella and ask her to bring these things", "the birch canoe slid on the smooth planks"]


def inputs(count: int) -> list[tuple[bytes, float, str]]:
    """(file bytes, seconds, name) of `count` short utterances: dev speech if prepared, else espeak-ng."""
    if DEV_MANIFEST.exists():
        from asr.data.manifest import read_manifest

        whole_files = [u for u in read_manifest(DEV_MANIFEST) if u.offset == 0][:count]
        return [(Path(u.audio_path).read_bytes(), u.duration, Path(u.audio_path).name) for u in whole_files]
    WORK.mkdir(exist_ok=True)
    files = []
    for i in range(count):
        path = WORK / f"s{i}.wav"
        if not path.exists():
            subprocess.run(["espeak-ng", "-s", str(140 + 10 * (i % 4)), "-w", str(path), SENTENCES[i % len(SENTENCES)]],
                           check=True)
        files.append((path.read_bytes(), sf.info(path).duration, path.name))
    return files


def start_server(model: str | None, workers: int | None, max_batch: int | None) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "asr", "serve", "--port", "0"]
    command += ["--model", model] if model else []
    command += ["--workers", str(workers)] if workers else []
    command += ["--max-batch", str(max_batch)] if max_batch else []
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    match = re.search(r"http://\S+/", line)
    if not match:
        server.kill()
        raise SystemExit(f"asr serve did not start: {line!r}")
    print(f"# {line.strip()}", flush=True)
    return server, match.group(0)


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


async def round_of(url: str, files: list, clients: int, requests: int) -> dict:
    import httpx

    latencies, errors, audio = [], [], 0.0

    async def client(index: int, http: httpx.AsyncClient) -> None:
        nonlocal audio
        for r in range(requests):
            data, seconds, name = files[(index * requests + r) % len(files)]
            start = time.perf_counter()
            response = await http.post(f"{url}v1/audio/transcriptions", files={"file": (name, data)})
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
                audio += seconds
            else:
                errors.append(f"{response.status_code} {response.text[:80]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - start
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"requests": len(latencies) + len(errors), "wall": wall, "rps": len(latencies) / wall,
            "audio_per_s": audio / wall, "p50": p50, "p95": p95, "p99": p99, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=16, help="requests per client")
    parser.add_argument("--max-batch", type=int, help="server requests per model call (default: the server's)")
    parser.add_argument("--workers", type=int, help="server worker threads (default: the server's, one per core)")
    parser.add_argument("--model", help="checkpoint to serve (default: the bundled model)")
    parser.add_argument("--utterances", type=int, default=32)
    args = parser.parse_args()

    print(machine_line())
    files = inputs(args.utterances)
    seconds = [s for _, s, _ in files]
    print(f"inputs: {len(files)} utterances ({'speechocean762 dev' if DEV_MANIFEST.exists() else 'espeak-ng'}), "
          f"{min(seconds):.1f} to {max(seconds):.1f} s, mean {np.mean(seconds):.1f} s")
    rows, failed = [], False
    server, url = start_server(args.model, args.workers, args.max_batch)
    try:
        asyncio.run(round_of(url, files, 1, 2))  # warm-up: first calls allocate and fault pages in
        for clients in args.clients:
            result = asyncio.run(round_of(url, files, clients, args.requests))
            rows.append((clients, result, peak_rss_mb(server.pid)))
            failed |= bool(result["errors"]) and clients <= QUEUE_SIZE
            for error in sorted(set(result["errors"]))[:3]:
                print(f"# {clients} clients: {error}")
    finally:
        server.terminate()
        server.wait(30)

    print("\n| clients | requests | throughput (req/s) | audio s/s | p50 (s) | p95 (s) | p99 (s) | errors "
          "| server peak RSS (MiB) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for clients, r, rss in rows:
        print(f"| {clients} | {r['requests']} | {r['rps']:.2f} | {r['audio_per_s']:.1f} | {r['p50']:.2f} "
              f"| {r['p95']:.2f} | {r['p99']:.2f} | {len(r['errors'])} | {rss:.0f} |")
    print(machine_line())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
