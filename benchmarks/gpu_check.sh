#!/usr/bin/env bash
# The GPU check, for a machine with CUDA (none was available where this project is developed):
#   benchmarks/gpu_check.sh            (from the project folder, after ./run_tests.sh set up .venv)
# 1. the CUDA tests of the suite (those skipped without CUDA), 2. a small training run with
# device "cuda" in float32 and float64, 3. with two or more GPUs, the same run on 2 ranks over
# nccl, 4. one training step (forward + backward + Adam) of each bench_speed shape timed on the
# GPU beside the CPU. Prints what it measured; exits 3 with one line when there is no CUDA.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
PY="${PY:-$here/.venv/bin/python}"
export MPLBACKEND=Agg
gpus="$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')"
if [[ "$gpus" == "0" ]]; then
    echo "gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False); nothing measured" >&2
    exit 3
fi
echo "== $gpus CUDA device(s): $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"
echo "== 1. CUDA tests"
"$PY" -m pytest -q -rs tests/test_simple_kan.py tests/test_runtime.py tests/test_pipeline.py -k "cuda or device"
out="$(mktemp -d)"
sets=(--set 'layer_dims=[2,5,1]' --set num_steps=300 --set plots=false --set symbolic=false
      --set progress_bar=false --set dataset_size=3000 --set test_size=500)
for dtype in float32 float64; do
    echo "== 2. training on cuda, $dtype"
    "$PY" pykan_mit.py --dir "$out/cuda_$dtype" --set device='"cuda"' --set dtype="\"$dtype\"" "${sets[@]}" | tail -1
done
if (( gpus >= 2 )); then
    echo "== 3. 2 ranks over nccl"
    "$PY" -m torch.distributed.run --standalone --nproc_per_node=2 pykan_mit.py \
        --dir "$out/nccl" --set device='"cuda"' "${sets[@]}" | tail -1
else
    echo "== 3. skipped: 2 ranks over nccl need two GPUs"
fi
echo "== 4. one training step per bench_speed shape, median of 20 (ms)"
"$PY" - <<'PYEOF'
import statistics, sys, time
import torch
sys.path.insert(0, "benchmarks")
from bench_speed import SHAPES
from simple_kan import SimpleKAN

def step_ms(dims, batch, grid, device, dtype):
    torch.manual_seed(0)
    model = SimpleKAN(dims, grid_size=grid, dtype=dtype, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, dims[0], dtype=dtype, device=device) * 2 - 1
    y = torch.rand(batch, dims[-1], dtype=dtype, device=device)
    times = []
    for i in range(23):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)

print("| shape | batch | grid | dtype | cpu ms | cuda ms | cpu/cuda |")
print("|---|---|---|---|---|---|---|")
for dims, batch, grid in SHAPES:
    for dtype in (torch.float32, torch.float64):
        cpu, gpu = (step_ms(dims, batch, grid, d, dtype) for d in ("cpu", "cuda"))
        name = str(dtype).removeprefix("torch.")
        print(f"| {dims} | {batch} | {grid} | {name} | {cpu:.3f} | {gpu:.3f} | {cpu / gpu:.1f} |")
PYEOF
rm -rf "$out"
