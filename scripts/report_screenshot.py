"""Screenshot of the main job's report summary (the first screen of report.html) for docs/.

Usage: .venv/bin/python scripts/report_screenshot.py OUT/report.html docs/ui_report_summary.png
"""
import os, sys
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "pkgroot"))
from qgis.core import QgsApplication
app = QgsApplication([], False); app.initQgis()
from deformcast.ui.workflow_dialog import ReportViewer
rv = ReportViewer([sys.argv[1]])
rv.resize(1000, 1100)
rv.show(); app.processEvents(); app.processEvents()
rv.grab().save(sys.argv[2])
print("saved", sys.argv[2])
rv.close(); del rv
app.exitQgis()
