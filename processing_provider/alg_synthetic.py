"""Processing wrapper: ``deformcast:synthetic_scenario`` (the built-in demo scene, or varied physics)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..algorithms.data.synthetic import COVARIATE_NAMES, PHYSICS_MODES, write_scene
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
future truth after the stack), STEP_DAYS (days between acquisitions), CELL_SIZE (metres) and
PHYSICS.</p>
<p><b>PHYSICS</b>: <i>demo</i> (default) writes the documented scene above, the same for the same
seed. <i>varied</i> draws the physics from the seed, to evaluate forecasters on scenes unlike the
demo: 1 to 3 subsidence bowls (Knothe shape, 30-200 mm over the record), each with its own time
law &ndash; onset inside the record (20-80 % of the period) then linear or accelerating
subsidence; subsidence that stops (extraction ends, residual subsidence decays with tau 0.1-0.5 yr);
subsidence that speeds up (rate x2-x4 from a break date); saturating subsidence &ndash; with some
stops and speed-ups in the last year of the record or in the future epochs (regime changes near the
forecast origin); fault creep that is steady, accelerating or has a creep event (2-10 mm step);
rebound uplift with random onset and tau, or none; in about half of the seeds a step in a sub-area
(coseismic-like, or an unwrapping error of half the C-band wavelength, 27.7 mm), zone 4 <i>Step
area</i>; a seasonal amplitude that grows or shrinks with time per lithology class; atmospheric
noise 1-4 mm and white noise 0.5-2.5 mm. Every drawn value is in <i>scene.json</i>
(params &rarr; physics).</p>
<p><b>Outputs</b> (in OUTPUT_FOLDER): OUTPUT_STACK <i>stack.tif</i> (the observed displacement
stack, band descriptions = ISO dates), OUTPUT_TRUTH <i>truth.tif</i> (noise-free truth for the stack
epochs and the future epochs), OUTPUT_FUTURE <i>future_observed.tif</i> (noisy observations after
the stack, for back-tests and residual analysis), OUTPUT_ZONES <i>zones.tif</i> (0 quiet, 1 mining
bowls, 2 fault zone, 3 rebound uplift; 4 step area in varied scenes that have one),
OUTPUT_COVARIATES <i>covariates/*.tif</i> (signed distance to the fault in m, mining mask, lithology
classes, DEM) and <i>scene.json</i> with every parameter and the dates (written last: a folder
without it is unfinished).</p>
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
        self.add_enum("PHYSICS", "Physics (demo: the documented scene; varied: drawn from the seed)",
                      PHYSICS_MODES, "demo", optional=True)
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_STACK", "Displacement stack (observed)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_TRUTH", "Noise-free truth (observed + future)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_FUTURE", "Future observations (noisy)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_ZONES", "Zones"))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_COVARIATES", "Covariates"))
        self.advanced("N_FUTURE", "STEP_DAYS", "CELL_SIZE")

    def _physics(self, parameters, context) -> str:
        if parameters.get("PHYSICS") in (None, ""):
            return "demo"
        return self.enum_value(parameters, "PHYSICS", context)

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
            physics=self._physics(parameters, context),
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
