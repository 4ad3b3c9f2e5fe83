"""The bench's ``seg_peak_mem_ratio`` in a fresh process: ``python -m app.tools.seg_memory VOLUME``.

TensorFlow started and the built-in lesion U-Net traced on a small volume first (not the
volume's cost); then the peak resident memory while VOLUME is opened and segmented (a one-class
map, kept as uint8) and its label map made, over the memory before.  Prints ``RESULT {json}``.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time

MIB = 2**20


def rss(field: str = "VmRSS") -> int:
    """Bytes of ``field`` (VmRSS, VmHWM) in /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def main(path: str) -> dict:
    import torch

    from app.inference import Engine
    from app.io import load_volume
    from app.strategies import get_strategy
    from app.volume import Volume

    engine = Engine()
    model = engine.load("builtin:lesion")
    strategy = get_strategy("slice")
    engine.run(Volume.from_tensor(torch.zeros((4, 512, 512))), strategy, model)  # traced on the volume's slice size
    gc.collect()
    baseline = peak = rss()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss())
            time.sleep(0.002)

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    volume = load_volume(path)
    prediction = engine.run(volume, strategy, model)
    labels = prediction.dense.label_map()
    stop.set()
    sampler.join()
    top = max(peak, rss("VmHWM")) if reset else peak
    d, h, w, c = volume.shape
    return {
        "peak_extra_mib": (top - baseline) / MIB,
        "float32_mib": d * h * w * c * 4 / MIB,
        "map_mib": prediction.dense.probabilities.nbytes / MIB,
        "baseline_mib": baseline / MIB,
        "hwm_reset": reset,
        "mask_voxels": int(labels.sum()),
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1])), flush=True)
