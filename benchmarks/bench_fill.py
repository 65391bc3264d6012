"""What finding the pixels that hold one value at every date (``io/fill.py``) costs when a stack is opened.

``open_stack`` reads 12 bands spread over the record, once per file state and process. Measured here on
the stacks of ``bench_predict.py`` (1000 x 1000 x 150 by default) in the user layouts: DeformCast's own,
tiled + DEFLATE + pixel interleave (read from its converted copy, as ``open_stack`` does), striped
band-interleaved, a VRT of one GeoTIFF per date. The conversion itself is not timed here.

Usage::

    .venv/bin/python benchmarks/bench_fill.py [FOLDER] [--size 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg, vm_mb  # noqa: E402

ensure_pkg()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default=os.path.join("build", "bench_predict"))
    ap.add_argument("--size", type=int, default=1000)
    a = ap.parse_args()
    import bench_predict as bp
    from deformcast.algorithms.io import fill, raster

    os.makedirs(a.folder, exist_ok=True)
    rows = []
    for layout in ("own", "tiled_pixel", "striped_band", "vrt"):
        path = bp.make_layout(a.folder, a.size, layout)
        info = raster.open_stack(path)   # converts an unfriendly layout once (not timed)
        fill._CACHE.clear()
        info.fill, info.fill_values = None, ()
        t = time.perf_counter()
        sc = fill.scan(lambda r, b: raster.read_stack(info, rows=r, bands=b), info.n_epochs, info.grid.height)
        mask = sc.mask
        dt = time.perf_counter() - t
        rows.append({"layout": layout, "pixels": info.grid.width * info.grid.height, "epochs": info.n_epochs,
                     "seconds": round(dt, 2), "constant_pixels": 0 if mask is None else int(mask.sum()),
                     "read_from": os.path.basename(info.source)})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"peak_rss_mb": round(vm_mb(), 1)}))


if __name__ == "__main__":
    main()
