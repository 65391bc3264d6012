"""Dependency installer: the pip commands it builds and the dialog's states.

Nothing big is installed: the process runner is exercised with tiny Python commands.
"""
from __future__ import annotations

import os
import sys

import numpy
import pytest


def test_install_commands_cpu_and_cuda(tmp_path):
    from deformcast.algorithms import deps
    from deformcast.ui.deps_dialog import PYPI, TORCH_BUILDS, command_text, install_commands

    target = str(tmp_path / "dependencies")
    cmds = install_commands(["torch", "optuna", "numpy"], target, "cpu", python="/usr/bin/python3",
                            constraints="/c.txt")
    assert len(cmds) == 2
    torch_cmd, rest = cmds
    assert torch_cmd[:4] == ["/usr/bin/python3", "-m", "pip", "install"]
    for c in cmds:
        i = c.index("--target")
        assert c[i + 1] == target
        assert c[c.index("-c") + 1] == "/c.txt"
        assert "numpy<2" not in c and not any(a.startswith("numpy") for a in c)  # QGIS's numpy is kept
    assert torch_cmd[torch_cmd.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert torch_cmd[torch_cmd.index("--extra-index-url") + 1] == PYPI
    assert torch_cmd[-1] == deps.REQUIRED["torch"]
    assert rest[-1] == deps.REQUIRED["optuna"] and "--index-url" not in rest
    cu = install_commands(["torch"], target, "cu128", python="py", constraints="/c.txt")
    assert len(cu) == 1 and cu[0][cu[0].index("--index-url") + 1] == TORCH_BUILDS["cu128"][1]
    assert install_commands(["scipy"], target, "cu126", python="py")[0][-1] == deps.REQUIRED["scipy"]
    with pytest.raises(ValueError, match="Valid: cpu"):
        install_commands(["torch"], target, "rocm")
    text = command_text(cmds)
    assert text.count("\n") == 1 and "torch==" in text and "--target" in text


def test_constraints_keep_qgis_numpy(tmp_path):
    from deformcast.ui.deps_dialog import write_constraints

    p = write_constraints(str(tmp_path))
    with open(p, encoding="utf-8") as fh:
        lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    assert f"numpy=={numpy.__version__}" in lines
    assert sum(ln.startswith("numpy") for ln in lines) == 1
    assert any(ln.startswith("torch") for ln in lines)
    assert not any(ln.startswith("pytest") for ln in lines)


def test_dependency_dir_and_path(qgis_app, tmp_path, monkeypatch):
    from qgis.core import QgsApplication

    from deformcast.ui.deps_dialog import add_dependency_path, dependency_dir

    d = dependency_dir()
    assert d.startswith(QgsApplication.qgisSettingsDirPath().rstrip("/"))
    assert d.endswith(os.path.join("python", "dependencies"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    missing = str(tmp_path / "nope")
    add_dependency_path(missing)
    assert missing not in sys.path  # nothing added for a folder that does not exist
    folder = tmp_path / "deps"
    (folder / "dc_fake_pkg").mkdir(parents=True)
    (folder / "dc_fake_pkg" / "__init__.py").write_text("VALUE = 7\n")
    add_dependency_path(str(folder))
    add_dependency_path(str(folder))
    assert sys.path.count(str(folder)) == 1 and sys.path[-1] == str(folder)  # last: QGIS's numpy wins
    import dc_fake_pkg

    assert dc_fake_pkg.VALUE == 7


def test_dialog_states(qgis_app, tmp_path):
    from deformcast.ui.deps_dialog import DependencyDialog

    st = {"numpy": True, "torch": False, "optuna": True, "scipy": True, "statsmodels": False}
    dlg = DependencyDialog(status_fn=lambda: dict(st), target=str(tmp_path / "t"), python="/usr/bin/python3")
    assert dlg.state == "ready"
    assert dlg.table.rowCount() == 4  # numpy is QGIS's own, never offered
    assert dlg.selected() == ["torch", "statsmodels"]
    assert dlg.install_btn.isEnabled() and not dlg.cancel_btn.isEnabled()
    shown = dlg.command.toPlainText()
    assert "--target" in shown and str(tmp_path / "t") in shown and "download.pytorch.org/whl/" in shown
    dlg.build.setCurrentIndex(list(dlg.build.itemData(i) for i in range(dlg.build.count())).index("cu126"))
    assert "whl/cu126" in dlg.command.toPlainText()
    dlg.set_selected(["statsmodels"])
    assert "pytorch" not in dlg.command.toPlainText() and not dlg.build.isEnabled()
    dlg.set_selected([])
    assert not dlg.install_btn.isEnabled() and dlg.command.toPlainText() == "(nothing selected)"

    done = DependencyDialog(status_fn=lambda: {n: True for n in st}, target=str(tmp_path / "t"))
    assert done.state == "complete" and done.selected() == [] and not done.install_btn.isEnabled()


def test_dialog_runs_commands_in_background(qgis_app, tmp_path):
    from deformcast.ui.deps_dialog import DependencyDialog

    st = {"torch": False}
    dlg = DependencyDialog(status_fn=lambda: dict(st), target=str(tmp_path / "t"))
    ok_cmds = [[sys.executable, "-c", "print('first step')"], [sys.executable, "-c", "print('second step')"]]
    assert dlg.install(ok_cmds)
    assert dlg.state == "running" and dlg.cancel_btn.isEnabled() and not dlg.install_btn.isEnabled()
    assert dlg.wait(30000) == "done"
    log = dlg.log.toPlainText()
    assert "first step" in log and "second step" in log
    assert str(tmp_path / "t") in sys.path
    sys.path.remove(str(tmp_path / "t"))

    bad = [[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], [sys.executable, "-c", "print('never')"]]
    dlg.install(bad)
    assert dlg.wait(30000) == "failed"
    assert "boom" in dlg.log.toPlainText() and "never" not in dlg.log.toPlainText()
    assert "exit code 3" in dlg.log.toPlainText()

    dlg.install([[sys.executable, "-c", "import time; time.sleep(30)"]])
    assert dlg.state == "running"
    dlg.cancel()
    assert dlg.wait(10000) == "cancelled"
    assert not dlg.cancel_btn.isEnabled()


def test_python_executable_is_a_python(qgis_app):
    from deformcast.ui.deps_dialog import python_executable

    exe = python_executable()
    assert os.path.isfile(exe) and os.path.basename(exe).lower().startswith("python")
