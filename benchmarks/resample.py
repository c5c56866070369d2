"""Resampling a CT to 1 mm isotropic: this package's resampler against SimpleITK and scipy.ndimage.zoom.

A synthetic 512×512×300 int16 chest CT (``dira.data.synthetic.luna16``'s anatomy, 0.7×0.7×1.25 mm) goes
to 1×1×1 mm with linear interpolation and float32 output. Rows:

- ``dira resample``: :func:`dira.data.volumes.resample.resample`, on SimpleITK's grid (output index n samples
  input index n·new/old), with ``--threads`` threads;
- ``dira, 1 thread``: the same with one thread (e.g. inside a pool of one-volume workers);
- ``SimpleITK Resample``: ``sitk.Resample`` to the same grid (origin, direction kept; the same size), linear,
  ``sitkFloat32`` output, with ``SetGlobalDefaultNumberOfThreads(--threads)``; only the call is timed (the
  conversions from and to numpy are not), which favours it;
- ``scipy zoom``: ``scipy.ndimage.zoom(order=1, output=float32)`` by the factors old/new; it samples its own grid
  (index n → n·(size_in − 1)/(size_out − 1): first and last centres aligned), so its error is given against the
  float64 reference on SimpleITK's grid (the samples both grids have, i.e. the common leading part) and, in
  brackets, against a float64 reference on zoom's own grid.

The float64 reference interpolates axis by axis in float64 at the grid's coordinates; it is itself checked
against ``scipy.ndimage.map_coordinates`` (order 1, float64) at random points. Peak RSS of resampling one
512×512×600 volume is measured in a fresh child process per resampler (``resource.getrusage``), started
before the parent allocates anything (on Linux a child inherits its parent's peak through ``exec``).
Timings are medians of ``--repeats`` runs, rows interleaved; compare rows of one run, not runs on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import SimpleITK as sitk
from scipy import ndimage

from dira.data.synthetic.luna16 import IDENTITY, draw, plan_anatomy
from dira.data.volumes.geometry import Geometry
from dira.data.volumes.resample import resample, resampled_geometry

SOURCE_SPACING = (0.7, 0.7, 1.25)  # mm, x y z
TARGET_SPACING = (1.0, 1.0, 1.0)


def ct_geometry(slices: int) -> Geometry:
    return Geometry((-178.85, -178.85, -420.0), SOURCE_SPACING, IDENTITY, (512, 512, slices))


def phantom(slices: int, seed: int) -> tuple[np.ndarray, Geometry]:
    geometry = ct_geometry(slices)
    anatomy = plan_anatomy(np.random.default_rng([seed, 0]), geometry, want_nodules=3)
    return draw(geometry, anatomy, np.random.default_rng([seed, 1]), slab=8), geometry


def reference(volume: np.ndarray, coordinates: list[np.ndarray]) -> np.ndarray:
    """float64 linear interpolation at per-axis input coordinates (array order z, y, x), axis by axis."""
    out = volume.astype(np.float64)
    for axis, position in enumerate(coordinates):
        size = out.shape[axis]
        position = np.clip(position, 0, size - 1)
        lower = np.minimum(np.floor(position).astype(np.int64), size - 1)
        upper = np.minimum(lower + 1, size - 1)
        shape = [1, 1, 1]
        shape[axis] = len(position)
        weight = (position - lower).reshape(shape)
        below = np.take(out, lower, axis=axis)
        out = below + (np.take(out, upper, axis=axis) - below) * weight
    return out


def check_reference(volume: np.ndarray, coordinates: list[np.ndarray], ref: np.ndarray, seed: int) -> float:
    """Max |reference − map_coordinates| at 200,000 random output points (both float64)."""
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(c), 200_000) for c in coordinates]
    points = np.stack([c[p] for c, p in zip(coordinates, picks, strict=True)])
    expected = ndimage.map_coordinates(volume.astype(np.float64), points, order=1, mode="nearest")
    return float(np.abs(ref[tuple(picks)] - expected).max())


def simpleitk_image(volume: np.ndarray, geometry: Geometry) -> sitk.Image:
    image = sitk.GetImageFromArray(volume)
    image.SetOrigin(geometry.origin)
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.flat_direction)
    return image


def simpleitk_resample(image: sitk.Image, target: Geometry) -> sitk.Image:
    return sitk.Resample(image, target.size, sitk.Transform(), sitk.sitkLinear, target.origin, target.spacing,
                         target.flat_direction, 0.0, sitk.sitkFloat32)


def zoom_factors(geometry: Geometry) -> tuple[float, ...]:
    return tuple(old / new for old, new in zip(geometry.spacing[::-1], TARGET_SPACING[::-1], strict=True))


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def peak_rss_child(which: str, slices: int, threads: int) -> None:
    """Run in a fresh process: print JSON with the peak RSS (MiB) before and after one resampling."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    geometry = ct_geometry(slices)
    volume = np.random.default_rng(0).integers(-1024, 1500, geometry.array_shape, dtype=np.int16)
    target = resampled_geometry(geometry, TARGET_SPACING)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if which == "ours":
        out, _ = resample(volume, geometry, TARGET_SPACING, threads=threads)
    else:
        out = sitk.GetArrayViewFromImage(simpleitk_resample(simpleitk_image(volume, geometry), target))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mib": before, "peak_mib": after, "input_mib": volume.nbytes / 2**20,
                      "output_mib": out.nbytes / 2**20, "shape_in": volume.shape, "shape_out": out.shape}))


def measure_rss(which: str, slices: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--rss-child", which, "--rss-slices", str(slices), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rss-slices", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rss-child", choices=("ours", "simpleitk"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        peak_rss_child(args.rss_child, args.rss_slices, args.threads)
        return
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731

    # First: Linux carries a parent's peak RSS into a child it starts (getrusage's ru_maxrss survives exec).
    log(f"peak RSS of one 512×512×{args.rss_slices} volume, in child processes ...")
    rss = {which: measure_rss(which, args.rss_slices, args.threads) for which in ("ours", "simpleitk")}
    log(f"drawing a 512×512×{args.slices} CT phantom ...")
    volume, geometry = phantom(args.slices, args.seed)
    target = resampled_geometry(geometry, TARGET_SPACING)
    sitk_grid = [np.arange(n) * new / old for n, old, new in
                 zip(target.array_shape, geometry.spacing[::-1], TARGET_SPACING[::-1], strict=True)]
    log("float64 reference on SimpleITK's grid ...")
    ref = reference(volume, sitk_grid)
    ref_check = check_reference(volume, sitk_grid, ref, args.seed)

    image = simpleitk_image(volume, geometry)
    factors = zoom_factors(geometry)
    rows: dict[str, list[float]] = {"ours": [], "ours_1_thread": [], "simpleitk": [], "zoom": []}
    results: dict[str, np.ndarray] = {}
    for repeat in range(args.repeats):
        log(f"timing, round {repeat + 1} of {args.repeats} ...")
        seconds, (results["ours"], _) = timed(lambda: resample(volume, geometry, TARGET_SPACING, threads=args.threads))
        rows["ours"].append(seconds)
        rows["ours_1_thread"].append(timed(lambda: resample(volume, geometry, TARGET_SPACING, threads=1))[0])
        seconds, resampled = timed(lambda: simpleitk_resample(image, target))
        rows["simpleitk"].append(seconds)
        results["simpleitk"] = sitk.GetArrayFromImage(resampled)
        seconds, results["zoom"] = timed(lambda: ndimage.zoom(volume, factors, order=1, output=np.float32))
        rows["zoom"].append(seconds)

    zoom = results["zoom"]
    common = tuple(slice(0, min(a, b)) for a, b in zip(zoom.shape, ref.shape, strict=True))
    zoom_grid = [np.arange(m) * (n - 1) / (m - 1) for n, m in zip(volume.shape, zoom.shape, strict=True)]
    errors = {
        "ours": float(np.abs(results["ours"] - ref).max()),
        "simpleitk": float(np.abs(results["simpleitk"] - ref).max()),
        "zoom": float(np.abs(zoom[common] - ref[common]).max()),
        "zoom_own_grid": float(np.abs(zoom - reference(volume, zoom_grid)).max()),
    }

    median = {name: statistics.median(times) for name, times in rows.items()}
    report = {
        "ours_s": median["ours"], "ours_1_thread_s": median["ours_1_thread"], "simpleitk_s": median["simpleitk"],
        "zoom_s": median["zoom"],
        "ratio_vs_simpleitk": median["simpleitk"] / median["ours"], "ratio_vs_zoom": median["zoom"] / median["ours"],
        "ours_max_err_hu": errors["ours"], "simpleitk_max_err_hu": errors["simpleitk"],
        "zoom_max_err_hu_on_simpleitk_grid": errors["zoom"], "zoom_max_err_hu_on_own_grid": errors["zoom_own_grid"],
        "reference_vs_map_coordinates_hu": ref_check,
        "ours_peak_rss_mib": rss["ours"]["peak_mib"], "simpleitk_peak_rss_mib": rss["simpleitk"]["peak_mib"],
        "rss": rss, "times_s": rows, "threads": args.threads, "repeats": args.repeats,
        "shape_in_zyx": volume.shape, "shape_out_zyx": target.array_shape, "zoom_shape_out_zyx": zoom.shape,
        "spacing_in": SOURCE_SPACING, "spacing_out": TARGET_SPACING,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "SimpleITK": sitk.Version.VersionString()},
        "machine": {"cpus": len(__import__("os").sched_getaffinity(0)), "processor": platform.processor()},
    }
    print(f"512×512×{args.slices} int16, {SOURCE_SPACING} mm → 1 mm isotropic {target.array_shape[::-1]} (x, y, z), "
          f"linear, float32 out, {args.threads} threads, median of {args.repeats}")
    print(f"{'row':<20} {'s/volume':>9} {'vs ours':>8} {'max |err| HU (float64 ref, SimpleITK grid)':>44}")
    print(f"{'dira resample':<20} {median['ours']:>9.3f} {1:>8.2f} {errors['ours']:>44.5f}")
    print(f"{'dira, 1 thread':<20} {median['ours_1_thread']:>9.3f} {median['ours_1_thread'] / median['ours']:>8.2f} "
          f"{'(same samples)':>44}")
    print(f"{'SimpleITK Resample':<20} {median['simpleitk']:>9.3f} {median['simpleitk'] / median['ours']:>8.2f} "
          f"{errors['simpleitk']:>44.5f}")
    zoom_error = f"{errors['zoom']:.1f} ({errors['zoom_own_grid']:.5f} on its own grid)"
    print(f"{'scipy zoom':<20} {median['zoom']:>9.3f} {median['zoom'] / median['ours']:>8.2f} {zoom_error:>44}")
    print(f"reference vs map_coordinates: {ref_check:.2e} HU")
    for which, numbers in rss.items():
        print(f"peak RSS, 512×512×{args.rss_slices} → {tuple(numbers['shape_out'])[::-1]}: {which} "
              f"{numbers['peak_mib']:.0f} MiB (before resampling {numbers['before_mib']:.0f}; input "
              f"{numbers['input_mib']:.0f}, output {numbers['output_mib']:.0f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
