"""Processing wrapper: ``deformcast:synthetic_scenario`` (the built-in demo scene)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..algorithms.synthetic import COVARIATE_NAMES, write_scene
from .base import DeformCastAlgorithm


class SyntheticScenarioAlgorithm(DeformCastAlgorithm):
    ALG_ID = "synthetic_scenario"
    DISPLAY_NAME = "Synthetic demo scene (Rhineland coalfield)"
    GROUP = "data"
    REQUIRES = ("numpy",)
    HELP = """
<p>Writes a synthetic InSAR displacement scene with <b>known physics</b> for demos, tests and
benchmarks: a Rhineland-like lignite coalfield with two accelerating mining/dewatering subsidence
bowls (Knothe influence function), a creeping fault with a sharp step, a groundwater-rebound
uplift area approaching its asymptote, a seasonal signal that depends on lithology, power-law
atmospheric noise plus white noise, and decorrelated holes (a pit lake, a forest, random pixels).
Values are millimetres, positive = uplift, referenced to the first acquisition; EPSG:25832.</p>
<p><b>Parameters</b>: SEED (the same seed gives the same scene), OUTPUT_FOLDER, and optionally
WIDTH and HEIGHT (pixels), N_EPOCHS (acquisitions in the stack, at least 30), N_FUTURE (epochs of
future truth after the stack), STEP_DAYS (days between acquisitions) and CELL_SIZE (metres).</p>
<p><b>Outputs</b> (in OUTPUT_FOLDER): OUTPUT_STACK <i>stack.tif</i> (the observed displacement
stack, band descriptions = ISO dates), OUTPUT_TRUTH <i>truth.tif</i> (noise-free truth for the stack
epochs and the future epochs), OUTPUT_FUTURE <i>future_observed.tif</i> (noisy observations after
the stack, for back-tests and residual analysis), OUTPUT_ZONES <i>zones.tif</i> (0 quiet, 1 mining
bowls, 2 fault zone, 3 rebound uplift), OUTPUT_COVARIATES <i>covariates/*.tif</i> (signed distance
to the fault in m, mining mask, lithology classes, DEM) and <i>scene.json</i> with every parameter
and the dates (written last: a folder without it is unfinished).</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        Num = QgsProcessingParameterNumber
        self.addParameter(Num("SEED", "Random seed", Num.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        for name, label, default, lo in (
            ("WIDTH", "Width (pixels)", 100, 16),
            ("HEIGHT", "Height (pixels)", 80, 16),
            ("N_EPOCHS", "Acquisitions in the stack", 150, 1),
            ("N_FUTURE", "Future epochs of truth after the stack", 12, 1),
            ("STEP_DAYS", "Days between acquisitions", 12, 1),
        ):
            self.addParameter(Num(name, label, Num.Integer, default, optional=True, minValue=lo))
        self.addParameter(Num("CELL_SIZE", "Cell size (m)", Num.Double, 50.0, optional=True, minValue=0.0))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_STACK", "Displacement stack (observed)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_TRUTH", "Noise-free truth (observed + future)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_FUTURE", "Future observations (noisy)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_ZONES", "Zones"))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_COVARIATES", "Covariates"))

    def execute(self, parameters, context, feedback, progress):
        def num(name, default, integer=True):
            if parameters.get(name) is None:
                return default
            return (self.parameterAsInt if integer else self.parameterAsDouble)(parameters, name, context)

        folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        files = write_scene(
            folder,
            seed=num("SEED", 0),
            width=num("WIDTH", 100),
            height=num("HEIGHT", 80),
            n_epochs=num("N_EPOCHS", 150),
            n_future=num("N_FUTURE", 12),
            step_days=num("STEP_DAYS", 12),
            cell=num("CELL_SIZE", 50.0, integer=False),
            progress=progress,
        )
        if context.project() is not None:  # desktop runs: open the stack and the zones, styled
            for key, name in (("zones", "Synthetic zones"), ("stack", "Synthetic displacement stack")):
                context.addLayerToLoadOnCompletion(
                    files[key], QgsProcessingContext.LayerDetails(name, context.project(), key))
        return {
            "OUTPUT_FOLDER": folder,
            "OUTPUT_STACK": files["stack"],
            "OUTPUT_TRUTH": files["truth"],
            "OUTPUT_FUTURE": files["future_observed"],
            "OUTPUT_ZONES": files["zones"],
            "OUTPUT_COVARIATES": [files[n] for n in COVARIATE_NAMES],
        }
