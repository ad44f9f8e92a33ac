#!/usr/bin/env bash
# The size race at equal CPU time: conf/race_{continue,stack,conv,wide}.yaml train on the same data with the
# same augmentation (the synthetic part frozen to the first 8,500 stage-1 utterances, data/race_synth.jsonl,
# so that a render still running does not give later contenders more), two at a time (1 thread each), each
# until its run has used MINUTES of CPU time (cpu_s in its metrics.jsonl: the trainer and its data-loading
# worker), when it gets SIGINT (it saves last.pt and stops; rerunning this script continues unfinished
# contenders). Then one table: dev_report greedy CER at equal CPU minutes. The `continue` contender starts from
# the bundled model's weights, which cost 6 CPU-hours before the race (train.log of the bundled run: 1 h 38 min
# + 4 h 23 min on one core); the table says so.
# Run from recipes/speechocean762 after stage 1:   local/race.sh [MINUTES (default 90)]
set -euo pipefail
minutes=${1:-90}
asr=${ASR:-asr}
contenders=(continue stack conv wide)
race_synth=8500  # synthetic utterances every contender trains on

cpu_used() {  # CPU seconds of the newest logged window of exp/race-$1, 0 before the first
  python3 -c "import json,sys; lines=[json.loads(l) for l in open(sys.argv[1]) if '\"cpu_s\"' in l]; \
print(int(lines[-1]['cpu_s']) if lines else 0)" exp/race-$1/metrics.jsonl 2>/dev/null || echo 0
}

train_until_budget() {  # train contender $1 until it has used $minutes of CPU time; a run that dies before
  local name=$1 tries=0  # (a crash) is resumed from its last.pt, up to 5 times
  while [ "$(cpu_used $name)" -lt $((minutes * 60)) ]; do
    if [ $((tries += 1)) -gt 5 ]; then
      echo "error: contender $name failed 5 times; see exp/race-$name.log" >&2
      return 1
    fi
    $asr train --config conf/race_$name.yaml --exp-dir exp/race-$name >> exp/race-$name.log 2>&1 &
    local pid=$!
    while kill -0 $pid 2>/dev/null; do
      sleep 30
      if [ "$(cpu_used $name)" -ge $((minutes * 60)) ]; then kill -INT $pid; fi
    done
    wait $pid || echo "contender $name: training exited with status $? at $(cpu_used $name) CPU-s" >&2
  done
}

mkdir -p exp
if [ ! -s data/race_synth.jsonl ]; then
  if [ "$(wc -l < data/synth.jsonl)" -lt $race_synth ]; then
    echo "error: data/synth.jsonl has fewer than $race_synth utterances; run stage 1 further first" >&2; exit 1
  fi
  head -n $race_synth data/synth.jsonl > data/race_synth.jsonl.tmp && mv data/race_synth.jsonl.tmp data/race_synth.jsonl
fi
for ((i = 0; i < ${#contenders[@]}; i += 2)); do
  train_until_budget ${contenders[i]} &
  train_until_budget ${contenders[i + 1]} &
  wait
done

python3 - "$minutes" "${contenders[@]}" <<'PY'
import json, sys
minutes, names = int(sys.argv[1]), sys.argv[2:]
marks = [m for m in (15, 30, 45, 60, 90, 120, 180) if m <= minutes]
ahead = {"continue": "6 h (the bundled model's training)"}
print("| contender | CPU time before the race | " + " | ".join(f"CER at {m} CPU-min" for m in marks) + " | steps |")
print("| --- | --- | " + " | ".join("---:" for _ in marks) + " | ---: |")
for name in names:
    records = [json.loads(line) for line in open(f"exp/race-{name}/metrics.jsonl")]
    cpu = {r["step"]: r["cpu_s"] for r in records if "cpu_s" in r}  # logged windows
    dev = []  # (CPU seconds when evaluated, dev CER): the window logged at or before the evaluation's step
    for r in records:
        if "dev_cer" in r:
            before = [s for s in cpu if s <= r["step"]]
            dev.append((cpu[max(before)] if before else 0.0, r["dev_cer"]))
    cells = []
    for m in marks:
        reached = [cer for seconds, cer in dev if seconds <= m * 60]
        cells.append(f"{reached[-1]:.2%}" if reached else "–")
    print(f"| {name} | {ahead.get(name, '0')} | " + " | ".join(cells) + f" | {max(cpu, default=0)} |")
PY
