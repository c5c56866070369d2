#!/usr/bin/env bash
# Issue 14's GPU check, as one script of under 8 minutes on one H100/H200: the step of MoCo-v2 (base, dira) and
# TransVW (dira) beside the references, fused optimisers off / on, and the batched 2D and 3D views on the GPU.
# Writes JSON files to ${OUT:-.}; paste the printed tables into docs/cost.md and benchmarks/README.md.
set -euo pipefail
out="${OUT:-.}"
cd "$(dirname "$0")/.."
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
timeout 300 python benchmarks/pretrain_step.py --device cuda --methods mocov2 transvw --variants base dira \
    --batch-size 64 --fused off on --json "$out/pretrain_step.json" || echo "pretrain_step.py failed: $?"
timeout 60 python benchmarks/views.py --device cuda --gpu-batch 256 --json "$out/views.json" || echo "views.py failed: $?"
timeout 60 python benchmarks/views3d.py --device cuda --batch 64 --json "$out/views3d.json" || echo "views3d.py failed: $?"
