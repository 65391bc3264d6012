"""The main report's plain-language front (algorithms.story) on real rasters of a small scene:
tier areas and places, named zones, the example pixels, the JSON summary; zone names of a raster."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.maps import residuals, uncertainty
from deformcast.algorithms import story
from deformcast.algorithms.io import styles
from deformcast.algorithms.decision import zoning
from deformcast.algorithms.io.raster import make_grid, open_stack, read_raster, write_raster, write_stack
from deformcast.algorithms.report import Report

DATES = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-01-01") + 12 * 8, 12)
FC_DATES = DATES[-1] + 12 * np.arange(1, 4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 30 x 40 scene at 50 m: a subsidence bowl in the north-west, members, later observations,
    a named zone raster; uncertainty, residuals and zoning run for real."""
    d = tmp_path_factory.mktemp("story")
    h, w = 30, 40
    grid = make_grid(300000, 5650000, 50.0, w, h)
    yy, xx = np.mgrid[0:h, 0:w]
    bowl = -40.0 * np.exp(-((yy - 8) ** 2 + (xx - 9) ** 2) / 18.0)
    stack = np.stack([bowl * k / 8 for k in range(8)]).astype(np.float32)
    rng = np.random.default_rng(0)
    bands, names = [], []
    for m in range(8):
        noise = rng.normal(0, 0.5 + 2.0 * (xx > 30), size=(h, w))  # the east edge is uncertain
        for j, dt in enumerate(FC_DATES):
            bands.append(stack[-1] + bowl * (j + 1) / 8 + noise * (j + 1) / 3)
            names.append(f"member{m} {dt}")
    sp = write_stack(str(d / "stack.tif"), stack, DATES, grid)
    mp = write_raster(str(d / "members.tif"), np.stack(bands).astype(np.float32), grid, names)
    med = np.median(np.stack(bands).reshape(8, 3, h, w), axis=0).astype(np.float32)
    fp = write_stack(str(d / "median.tif"), med, FC_DATES, grid)
    later = write_stack(str(d / "later.tif"), med + rng.normal(0, 0.5, med.shape).astype(np.float32), FC_DATES, grid)
    zones = np.where(bowl < -5, 1, 0).astype(np.uint8)
    zp = write_raster(str(d / "scene_zones.tif"), zones, grid, ["zone"], "uint8", None,
                      styles.categorical([(0, "Background (quiet)", "#cccccc"), (1, "Mining bowl", "#d7191c")]))
    unc = uncertainty.run_uncertainty(mp, sp, thresholds=[10.0], **{
        f"{k}_path": str(d / f"{k}.tif") for k in ("susceptibility", "spread", "ambiguity", "exceedance", "deformation")})
    res = residuals.run_residuals(fp, later, zones=zp, n_permutations=0, hotspots_path=str(d / "gi.tif"))
    zon = zoning.run_zoning(unc.susceptibility_path, unc.ambiguity_path, unc.exceedance_path,
                            forecast=unc.deformation_path, tiers_path=str(d / "tiers.tif"),
                            zones_path=str(d / "zones.gpkg"), report_path=str(d / "zoning_report.html"))
    s = {"output_folder": str(d), "paths": {"stack": sp, "forecast_members": mp, "zones": zp, "future_observed": later,
                                            "tiers": zon.tiers_path, "zones_polygons": zon.zones_path},
         "gate": {"sentence": "Over 3 rolling origins the ensemble median beats the best classical forecast."}}
    info = open_stack(sp)
    st = story.build_summary(s, info, unc, zon, res, {"coverage_p10_p90": 0.55}, {"verdict": "win",
                                                                                  "action": "ensemble kept"}, [])
    return {"d": d, "s": s, "story": st, "zon": zon, "grid": grid, "info": info, "res": res, "unc": unc}


def test_summary_tiers_areas_and_places(run):
    st, zon = run["story"], run["zon"]
    tiers = read_raster(zon.tiers_path)[0][0]
    by = {t["tier"]: t for t in st["tiers"]}
    for k in (1, 2, 3, 4):
        assert by[k]["pixels"] == int((tiers == k).sum())
        assert by[k]["area_ha"] == pytest.approx((tiers == k).sum() * 2500 / 1e4)
        assert by[k]["name"] == zoning.TIERS[k][0] and by[k]["action"] == zoning.TIERS[k][2]
    t1 = by[1]
    assert t1["pixels"] > 20 and t1["n_zones"] >= 1
    # the bowl is in the north-west quarter and in the named zone 'Mining bowl'
    assert t1["where"]["direction"] in ("north-west", "north", "west")
    assert max(t1["where"]["named_zones"], key=t1["where"]["named_zones"].get) == "Mining bowl"
    x0, y0, x1, y1 = t1["where"]["bbox"]
    assert 300000 <= x0 < x1 <= 300000 + 20 * 50 and 5650000 - 20 * 50 <= y0 < y1 <= 5650000
    assert st["total_valid_ha"] == pytest.approx(np.isin(tiers, (1, 2, 3, 4)).sum() * 0.25)
    assert st["mmu_m2"] == zoning.DEFAULT_MMU_M2 and st["n_zone_polygons"] == zon.n_zones
    assert st["sieve"]["zones_after"] == zon.sieve["zones_after"]


def test_summary_uncertainty_examples_verdict(run):
    st = run["story"]
    ex = st["examples"]
    assert ex["least certain"]["col"] > 30 and ex["most certain"]["col"] <= 30  # the noisy east edge
    assert ex["least certain"]["width_mm"] > ex["most certain"]["width_mm"]
    u = st["uncertainty"]
    assert u["coverage_p10_p90"] == 0.55 and u["median_width_mm"] < u["p95_width_mm"]
    assert "too narrow" in u["sentence"]   # coverage far below 80 % is the main uncertainty
    assert st["verdict"] == "win" and st["verdict_sentence"].startswith("Over 3 rolling origins")
    names = [z["name"] for z in st["residual_zones"]]
    assert "Mining bowl" in names and "Background (quiet)" in names and not any(n.startswith("zone ") for n in names)
    json.dumps(st, allow_nan=False)  # strict JSON


def test_front_html_has_summary_glossary_fans_and_relative_links(run):
    d, st = run["d"], run["story"]
    fig = story.fan_figure(st["examples"], run["s"]["paths"]["stack"], run["s"]["paths"]["forecast_members"],
                           run["s"]["paths"]["future_observed"], stack_dates=run["info"].dates)
    rep = Report("t")
    story.write_front(rep, st, fig)
    html = Path(rep.save(str(d / "front.html"))).read_text()
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Glossary</h2>")
    assert "data:image/png" in html and "&lt;b&gt;" not in html and "&lt;" not in html.replace("&lt;b", "")
    for term, _ in story.GLOSSARY:
        assert st["glossary"].count(term) == 1
    links = {x["href"]: x for x in st["links"]}
    assert links["zoning_report.html"]["exists"] and links["tiers.tif"]["exists"]
    assert all(not h.startswith("/") for h in links)
    assert "href='zoning_report.html'" in html


def test_story_direction():
    g = make_grid(0, 1000, 10.0, 100, 100)
    assert story.direction(g, 49.5, 49.5)["direction"] == "centre"
    assert story.direction(g, 0, 99)["direction"] == "north-east"
    assert story.direction(g, 99, 0)["direction"] == "south-west"
    assert story.direction(g, 50, 0)["distance_km"] == pytest.approx(0.495, abs=0.01)


def test_raster_zone_names_from_categories_and_style(tmp_path):
    from osgeo import gdal

    from deformcast.algorithms.decision.zone_names import raster_zone_names

    g = make_grid(0, 100, 10, 3, 2)
    a = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    p = write_raster(str(tmp_path / "z.tif"), a, g, dtype="uint8",
                     qml=styles.categorical([(1, "Bowl", "#ff0000"), (2, "Fault zone", "#00ff00")]))
    assert raster_zone_names(gdal.Open(p), p) == {1: "Bowl", 2: "Fault zone"}
    z, names = residuals.zones_array(p, g)
    assert names == {1: "Bowl", 2: "Fault zone"}
    mem = gdal.GetDriverByName("MEM").Create("", 3, 2, 1, gdal.GDT_Byte)   # category names win over a style
    mem.GetRasterBand(1).SetCategoryNames(["", "Pit", "Step"])
    assert raster_zone_names(mem, p) == {1: "Pit", 2: "Step"}
    q = write_raster(str(tmp_path / "plain.tif"), a, g, dtype="uint8")
    assert residuals.zones_array(q, g)[1] == {1: "zone 1", 2: "zone 2"}


def test_a_step_of_a_whole_phase_cycle_found_in_the_stack_is_named_first_and_other_steps_are_not(run):
    found = [{"date": "2021-02-06", "epoch": 3, "pixels": 40, "step_mm": -27.9, "cycles": 1, "row": 5.0, "col": 35.0},
             {"date": "2021-03-02", "epoch": 5, "pixels": 30, "step_mm": -18.0, "cycles": 0, "row": 20.0, "col": 5.0}]
    s = dict(run["s"], modelling={"steps_detected": found})
    st = story.build_summary(s, run["info"], run["unc"], run["zon"], run["res"], {}, {}, [])
    sent = st["unwrapping_sentence"]
    # the patch's place: the centre of pixel (5, 35) of the 50 m grid from (300000, 5650000), north-east of the centre
    assert "2021-02-06 (40 pixels, -27.9 mm around x 301775, y 5649725, " in sent and "north-east" in sent
    assert "2021-03-02" not in sent and "unwrapping" in sent
    rep = Report("t")
    story.write_front(rep, st)
    html = Path(rep.save(str(run["d"] / "u.html"))).read_text()
    summary = html[html.index("<h2>Summary</h2>"):html.index("<h2>Tiers and what to do</h2>")]
    assert "phase-unwrapping error" in summary
    assert "unwrapping_sentence" not in run["story"]        # no such step: no sentence
