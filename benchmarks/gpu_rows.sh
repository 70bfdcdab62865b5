#!/usr/bin/env bash
# The GPU rows of benchmarks/RESULTS.md section 10, as one script for a machine with a CUDA GPU
# (about 5 minutes on one GPU and 16 cores; each step is bounded by `timeout`):
#
#   bash benchmarks/gpu_rows.sh [OUT_DIR]
#
# 1. the CUDA tests (the device path agrees with the CPU; nothing else needs a GPU);
# 2. env steps/s of the GPU vector env at 64, 256 and 1,024 envs, against the CPU batched env and
#    DummyVecEnv in the same run;
# 3. PPO frames/s at 1,024 envs on the GPU (policy on the GPU too), against the CPU batched env.
set -u
out="${1:-benchmark-gpu}"
mkdir -p "$out"
python="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
timeout 300 "$python" -m pytest -q tests/test_batched_structures.py > "$out/tests.txt" 2>&1
echo "tests: exit $?" >> "$out/tests.txt"
timeout 900 "$python" benchmarks/vec_env.py --kinds gpu batched dummy --n-envs 64 256 1024 \
    --rounds 2 --warmup 2 > "$out/vec_env.md" 2>&1
echo "vec_env: exit $?" >> "$out/vec_env.md"
timeout 900 "$python" benchmarks/ppo_fps.py --kinds gpu batched --n-envs 1024 --timesteps 131072 \
    --batch-size 4096 > "$out/ppo_fps.txt" 2>&1
echo "ppo_fps: exit $?" >> "$out/ppo_fps.txt"
tail -n +1 "$out"/*
