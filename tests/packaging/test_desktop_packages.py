"""The Debian/Ubuntu packages the install notes name are the ones Qt's xcb plugin loads, and with them the
desktop app opens a window on the xcb platform under Xvfb."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# The C/C++ runtime and the libraries X itself (and xvfb) bring: never missing where X runs.
BASE = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libx11-6", "libxcb1", "libxau6", "libxdmcp6", "libbsd0",
        "libmd0", "libglvnd0", "libglx0", "libxcb-glx0", "libpcre2-8-0", "libexpat1", "libpng16-16", "libfreetype6",
        "libbrotli1", "libzstd1", "libsystemd0", "libcap2", "libgcrypt20", "libgpg-error0", "liblz4-1", "liblzma5"}


def listed_packages(text: str) -> list[str]:
    match = re.search(r"apt-get install -y ([^\n`]+)", text)
    assert match, "no apt-get install line"
    return match.group(1).split()


def test_readme_and_the_bundle_notes_name_the_same_packages():
    notes = listed_packages((REPO / "packaging" / "INSTALL-linux.txt").read_text(encoding="utf-8"))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert listed_packages(readme[readme.index("Installing on an air-gapped workstation"):]) == notes
    for package in ("libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0"):
        assert package in notes      # the ones a desktop Debian lacked
    assert "INSTALL-linux.txt" in (REPO / "packaging" / "build.sh").read_text(encoding="utf-8")


@pytest.mark.skipif(not shutil.which("dpkg") or not shutil.which("ldd"), reason="needs dpkg and ldd (Debian/Ubuntu)")
def test_every_library_the_xcb_plugin_loads_comes_from_a_listed_package():
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    ldd = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout
    assert "not found" not in ldd, ldd
    system = sorted({m.group(1) for m in re.finditer(r"=> (/(?:usr/)?lib\S+)", ldd)})
    owners: dict[str, str] = {}
    for library in system:
        found = subprocess.run(["dpkg", "-S", os.path.realpath(library)], capture_output=True, text=True)
        if found.returncode != 0:
            found = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True)
        assert found.returncode == 0, f"{library} belongs to no package"
        owners[library] = found.stdout.split(":")[0]
    listed = set(listed_packages((REPO / "packaging" / "INSTALL-linux.txt").read_text(encoding="utf-8")))
    missing = {lib: pkg for lib, pkg in owners.items() if pkg not in listed and pkg not in BASE}
    assert missing == {}, f"libraries the xcb plugin loads from packages the notes do not name: {missing}"


@pytest.mark.skipif(not shutil.which("xvfb-run"), reason="needs xvfb-run")
def test_the_desktop_app_opens_a_window_on_xcb_under_xvfb(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(tmp_path / "config"),
               STATCODER_DATA_DIR=str(tmp_path / "data"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    probe = ("import sys; from desktop.app import create_app; from desktop.main_window import MainWindow; "
             "from PySide6.QtWidgets import QApplication; app = create_app(['x']); w = MainWindow(); w.show(); "
             "from desktop.screenshots import settle; settle(500); "
             "image = w.screen().grabWindow(w.winId()); image.save(sys.argv[1]); "
             "print(QApplication.platformName(), image.width(), image.height()); w.close()")
    shot = tmp_path / "window.png"
    done = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", sys.executable, "-c", probe, str(shot)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    platform, width, height = done.stdout.split()[-3:]
    assert platform == "xcb" and int(width) > 600 and int(height) > 400
    assert shot.stat().st_size > 10_000       # a real picture of the window, not an empty image
