"""Build resources/models/deformcast_workflow.model3, the graphical model the provider ships:
stack (+ covariates) -> tune -> predict -> uncertainty -> zoning, main choices exposed.

Every default (horizon, trials, ensemble size, epochs, thresholds, architecture) and every
modelling choice of its ``tune`` step (coding strategy, target, anchor, validation, samples, seed,
device) comes from the chain (:mod:`algorithms.chain`), the same declaration ``deformcast:workflow``
and the workflow dialog read; zoning reads the ensemble-median deformation over the horizon,
as in the main job. Run after changing the chain or the algorithms' parameters:

    .venv/bin/python scripts/build_model.py

(the model is a QGIS XML file; it can also be opened and edited in the graphical modeler).
``tests/test_workflow_qgis.py`` checks that the shipped file is what this script writes.
"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _qgis import ROOT, ensure_pkg, start_processing  # noqa: E402

OUT = os.path.join(ROOT, "resources", "models", "deformcast_workflow.model3")
MODEL_NAME = "deformcast_workflow_model"


def model_settings():
    """What the model takes from the chain: ``(parameter defaults, tune statics, other statics)``."""
    ensure_pkg()
    from deformcast.algorithms import chain

    d = chain.defaults()
    params = {"ARCHITECTURE": d["ARCHITECTURES"][0], "HORIZON": d["HORIZON"], "N_TRIALS": d["N_TRIALS"],
              "TOP_K": d["TOP_K"], "MAX_EPOCHS": d["MAX_EPOCHS"], "THRESHOLDS": d["THRESHOLDS"]}
    tune = {"ENCODING": list(d["ENCODING"]), "TARGET": d["TARGET"], "ANCHOR": d["ANCHOR"],
            "VALIDATION": d["VALIDATION"], "SEARCH_SPACE": d["SEARCH_SPACE"] or "",
            "MAX_SAMPLES": d["MAX_SAMPLES"], "SEED": d["SEED"], "DEVICE": d["DEVICE"], "PRUNER": "median",
            "LOCAL_WORKERS": d["LOCAL_WORKERS"]}
    other = {"DEVICE": d["DEVICE"], "N_CLASSES": d["N_CLASSES"], "MIN_AREA": d["MIN_AREA"], "MMU": d["MMU"]}
    return params, tune, other


def build(out_path: str = OUT) -> str:
    """Write the model (QGIS and the DeformCast provider must be initialised). Returns the path."""
    ensure_pkg()
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource as Src,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterEnum,
        QgsProcessingParameterMultipleLayers,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterString,
    )
    from qgis.PyQt.QtCore import QPointF

    from deformcast.algorithms import chain

    defaults, tune_statics, other = model_settings()
    m = QgsProcessingModelAlgorithm(MODEL_NAME, "Decision", "deformcast")
    m.setName(MODEL_NAME)
    m.setGroup("Decision")
    m.setHelpContent({"ALG_DESC": "Graphical model of the DeformCast chain: TPE tuning of one architecture "
                                  "(with the rolling-origin skill gate), ensemble forecast, uncertainty maps and "
                                  "tiered control zones, with the defaults of the full workflow. Open it in the "
                                  "modeler to change or extend the chain."})

    def param(defn, x, y):
        p = QgsProcessingModelParameter(defn.name())
        p.setPosition(QPointF(x, y))
        m.addModelParameter(defn, p)

    N = QgsProcessingParameterNumber
    B = chain.BY_NAME
    param(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack"), 120, 60)
    param(QgsProcessingParameterMultipleLayers("COVARIATES", B["COVARIATES"].label, QgsProcessing.TypeRaster,
                                               optional=True), 340, 60)
    arch = QgsProcessingParameterEnum("ARCHITECTURE", "Architecture", list(B["ARCHITECTURES"].choices), False,
                                      defaults["ARCHITECTURE"])
    arch.setUsesStaticStrings(True)
    param(arch, 560, 60)
    for i, name in enumerate(("HORIZON", "N_TRIALS", "TOP_K", "MAX_EPOCHS")):
        p = B[name]
        param(N(name, p.label, N.Integer, defaults[name], minValue=p.minimum), 780 + 220 * (i % 3),
              60 + 80 * (i // 3))
    param(QgsProcessingParameterString("THRESHOLDS", B["THRESHOLDS"].label, defaults["THRESHOLDS"]), 1440, 60)

    def child(alg_id, cid, desc, x, y, sources, statics=None, outputs=None, mandatory=()):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(cid)
        c.setDescription(desc)
        c.setPosition(QPointF(x, y))
        for name, src in sources.items():
            c.addParameterSources(name, [src])
        for name, v in (statics or {}).items():
            c.addParameterSources(name, [Src.fromStaticValue(v)])
        outs = {}
        for child_out, label in (outputs or {}).items():
            o = QgsProcessingModelOutput(label)
            o.setChildId(cid)
            o.setChildOutputName(child_out)
            o.setPosition(QPointF(x + 180, y + 40))
            # intermediate layers the next step reads (members, ambiguity, exceedance) are not model
            # outputs: a model output left unset in a headless run would not be written at all
            o.setMandatory(label in mandatory)
            outs[label] = o
        c.setModelOutputs(outs)
        m.addChildAlgorithm(c)

    P, C = Src.fromModelParameter, Src.fromChildOutput
    child("deformcast:tune", "tune", "Tune (TPE) and skill gate", 300, 260,
          {"INPUT": P("INPUT"), "COVARIATES": P("COVARIATES"), "ARCHITECTURE": P("ARCHITECTURE"),
           "HORIZON": P("HORIZON"), "N_TRIALS": P("N_TRIALS"), "TOP_K": P("TOP_K"),
           "MAX_EPOCHS": P("MAX_EPOCHS")},
          tune_statics, {"OUTPUT_FOLDER": "Model folder"})
    child("deformcast:predict", "predict", "Ensemble forecast", 300, 420,
          {"INPUT": P("INPUT"), "MODEL_FOLDER": C("tune", "OUTPUT_FOLDER"), "COVARIATES": P("COVARIATES")},
          {"QUANTILES": "10,50,90", "DEVICE": other["DEVICE"]},
          {"OUTPUT_MEDIAN": "Forecast (median)"})
    child("deformcast:uncertainty", "uncertainty", "Susceptibility and uncertainty", 300, 580,
          {"MEMBERS": C("predict", "OUTPUT_MEMBERS"), "INPUT": P("INPUT"), "THRESHOLDS": P("THRESHOLDS")},
          {"N_CLASSES": other["N_CLASSES"], "MODE": "magnitude", "BLOCK_ROWS": 0},
          {"OUTPUT_SUSCEPTIBILITY": "Susceptibility"})
    child("deformcast:zoning", "zoning", "Tiered control zones", 300, 740,
          {"SUSCEPTIBILITY": C("uncertainty", "OUTPUT_SUSCEPTIBILITY"), "AMBIGUITY": C("uncertainty", "OUTPUT_AMBIGUITY"),
           "EXCEEDANCE": C("uncertainty", "OUTPUT_EXCEEDANCE"), "FORECAST": C("uncertainty", "OUTPUT_DEFORMATION")},
          {"UNCERTAINTY_TYPE": "ambiguity", "EXCEEDANCE_BAND": 1, "MIN_AREA": other["MIN_AREA"], "MMU": other["MMU"],
           "EIGHT_CONNECTED": False, "DISCONTINUITIES": True},
          {"OUTPUT_TIERS": "Control tiers", "OUTPUT_ZONES": "Control zones"},
          mandatory=("Control tiers", "Control zones"))
    ok, issues = m.validate() if hasattr(m, "validate") else (True, [])
    if not ok:
        raise SystemExit("model invalid: " + "; ".join(issues))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    if not m.toFile(out_path):
        raise SystemExit(f"cannot write {out_path}")
    return out_path


def main():
    if os.environ.get("QT_HASH_SEED") != "0":  # Qt orders XML attributes by hash: a stable file needs a fixed seed
        os.environ["QT_HASH_SEED"] = "0"
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
    app, prov = start_processing()
    print(len(prov.algorithms()), "algorithms")
    print(build(OUT))
    app.exitQgis()


if __name__ == "__main__":
    main()
