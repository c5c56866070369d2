"""The synthetic data are the same bytes whatever BLAS kernel the CPU gets, so that `data.dvc`'s hashes hold on
every machine: the generators use no BLAS product (whose summation order is the kernel's)."""

import os
import platform
import subprocess
import sys

import pytest

# Hashes what the generators compute, for many draws: raw float bits, so one differing sum shows (a uint8 image
# only shows the rare sum that crosses a rounding boundary).
SCRIPT = """
import hashlib
import numpy as np
from dira.data.synthetic import luna16, pe, phantom, segmentation_scenes
digest = hashlib.sha256()
for seed in range(40):
    rng = np.random.default_rng(seed)
    digest.update(phantom.cosine_field(rng, 16, 96).tobytes())
    scene = segmentation_scenes.draw_thorax(80, 64, rng)
    digest.update(scene.density.tobytes() + scene.shading.tobytes())
    points = rng.normal(size=(500, 3))
    start, end = rng.normal(size=3), rng.normal(size=3)
    digest.update(luna16._segment_distance(points, start, end).tobytes())
    digest.update(pe.segment_distance(points, start, end).tobytes())
    digest.update(phantom.draw_chest(["Nodule", "Effusion"], 64, rng, np.random.default_rng(seed))[0].tobytes())
print(digest.hexdigest())
"""
# OpenBLAS kernels every x86-64 CPU with AVX runs: SSE3 only, and AVX without FMA (the default here is newer).
CORE_TYPES = ("Prescott", "Sandybridge")


# numpy's AVX-512 kernels, which an AVX2-only host lacks (its float32 power, float64 exp / log, ... round differently).
AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"


def _digest(core_type: str | None, disabled_simd: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"}}
    if core_type:
        env["OPENBLAS_CORETYPE"] = core_type
    if disabled_simd:
        env["NPY_DISABLE_CPU_FEATURES"] = disabled_simd
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.machine() not in {"x86_64", "AMD64"}, reason="OpenBLAS core types are x86 kernels")
def test_synthetic_generators_compute_the_same_bits_with_every_blas_kernel():
    default = _digest(None)
    assert {core: _digest(core) for core in CORE_TYPES} == dict.fromkeys(CORE_TYPES, default)


def _has_avx512() -> bool:
    from numpy._core._multiarray_umath import __cpu_features__

    return bool(__cpu_features__.get("AVX512F")) and bool(__cpu_features__.get("AVX512_SKX"))


@pytest.mark.skipif(platform.machine() not in {"x86_64", "AMD64"} or not _has_avx512(),
                    reason="needs an AVX-512 host to compare numpy's AVX-512 kernels with its AVX2 ones")
def test_synthetic_generators_compute_the_same_bits_without_numpys_avx512_kernels():
    assert _digest(None, disabled_simd=AVX512) == _digest(None)
