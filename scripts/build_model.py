"""Build resources/models/deformcast_workflow.model3, the graphical model the provider ships:
stack (+ covariates) -> tune -> predict -> uncertainty -> zoning, main choices exposed.

Run after changing algorithm parameters:  .venv/bin/python scripts/build_model.py
(the model is a QGIS XML file; it can also be opened and edited in the graphical modeler).
"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "pkgroot"))
os.makedirs(os.path.join(ROOT, "build", "pkgroot"), exist_ok=True)
link = os.path.join(ROOT, "build", "pkgroot", "deformcast")
if not os.path.exists(link):
    os.symlink(ROOT, link)

from qgis.core import (  # noqa: E402
    QgsApplication,
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
from qgis.PyQt.QtCore import QPointF  # noqa: E402

OUT = os.path.join(ROOT, "resources", "models", "deformcast_workflow.model3")
ARCHS = ["lstm", "gru", "tcn", "cnn_lstm", "transformer", "resnet_transformer"]


def main():
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from deformcast.processing_provider.provider import DeformCastProvider

    prov = DeformCastProvider()
    if not QgsApplication.processingRegistry().addProvider(prov):
        raise SystemExit("cannot register the DeformCast provider")
    print(len(prov.algorithms()), "algorithms")

    m = QgsProcessingModelAlgorithm("deformcast_workflow_model", "Decision", "deformcast")
    m.setName("deformcast_workflow_model")
    m.setGroup("Decision")
    m.setHelpContent({"ALG_DESC": "Graphical model of the DeformCast chain: TPE tuning of one architecture, "
                                  "ensemble forecast, uncertainty maps and tiered control zones. Open it in the "
                                  "modeler to change or extend the chain."})

    def param(defn, x, y):
        p = QgsProcessingModelParameter(defn.name())
        p.setPosition(QPointF(x, y))
        m.addModelParameter(defn, p)

    N = QgsProcessingParameterNumber
    param(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack"), 120, 60)
    param(QgsProcessingParameterMultipleLayers("COVARIATES", "Covariates", QgsProcessing.TypeRaster, optional=True),
          340, 60)
    arch = QgsProcessingParameterEnum("ARCHITECTURE", "Architecture", ARCHS, False, "resnet_transformer")
    arch.setUsesStaticStrings(True)
    param(arch, 560, 60)
    param(N("HORIZON", "Forecast horizon (epochs)", N.Integer, 6, minValue=1), 780, 60)
    param(N("N_TRIALS", "TPE trials", N.Integer, 10, minValue=1), 1000, 60)
    param(N("TOP_K", "Ensemble size", N.Integer, 10, minValue=2), 1220, 60)
    param(N("MAX_EPOCHS", "Maximum epochs per trial", N.Integer, 25, minValue=1), 1220, 140)
    param(QgsProcessingParameterString("THRESHOLDS", "Exceedance thresholds (mm over the horizon)", "10,20"), 1440, 60)

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
    child("deformcast:tune", "tune", "Tune (TPE)", 300, 260,
          {"INPUT": P("INPUT"), "COVARIATES": P("COVARIATES"), "ARCHITECTURE": P("ARCHITECTURE"),
           "HORIZON": P("HORIZON"), "N_TRIALS": P("N_TRIALS"), "TOP_K": P("TOP_K"),
           "MAX_EPOCHS": P("MAX_EPOCHS")},
          {"ENCODING": ["none"], "PRUNER": "median", "SEED": 42, "DEVICE": "auto"}, {"OUTPUT_FOLDER": "Model folder"})
    child("deformcast:predict", "predict", "Ensemble forecast", 300, 420,
          {"INPUT": P("INPUT"), "MODEL_FOLDER": C("tune", "OUTPUT_FOLDER"), "COVARIATES": P("COVARIATES")},
          {"QUANTILES": "10,50,90", "DEVICE": "auto"},
          {"OUTPUT_MEDIAN": "Forecast (median)"})
    child("deformcast:uncertainty", "uncertainty", "Susceptibility and uncertainty", 300, 580,
          {"MEMBERS": C("predict", "OUTPUT_MEMBERS"), "INPUT": P("INPUT"), "THRESHOLDS": P("THRESHOLDS")},
          {"N_CLASSES": 5, "MODE": "magnitude", "BLOCK_ROWS": 0},
          {"OUTPUT_SUSCEPTIBILITY": "Susceptibility"})
    child("deformcast:zoning", "zoning", "Tiered control zones", 300, 740,
          {"SUSCEPTIBILITY": C("uncertainty", "OUTPUT_SUSCEPTIBILITY"), "AMBIGUITY": C("uncertainty", "OUTPUT_AMBIGUITY"),
           "EXCEEDANCE": C("uncertainty", "OUTPUT_EXCEEDANCE"), "FORECAST": C("predict", "OUTPUT_MEDIAN")},
          {"UNCERTAINTY_TYPE": "ambiguity", "EXCEEDANCE_BAND": 1, "MIN_AREA": 0.0, "EIGHT_CONNECTED": False},
          {"OUTPUT_TIERS": "Control tiers", "OUTPUT_ZONES": "Control zones"},
          mandatory=("Control tiers", "Control zones"))
    ok, issues = m.validate() if hasattr(m, "validate") else (True, [])
    if not ok:
        raise SystemExit("model invalid: " + "; ".join(issues))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    if not m.toFile(OUT):
        raise SystemExit(f"cannot write {OUT}")
    print(OUT)
    app.exitQgis()


if __name__ == "__main__":
    main()
