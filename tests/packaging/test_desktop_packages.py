"""The Debian/Ubuntu packages the install notes name are the ones Qt's xcb plugin loads from the system:
for the bundle (packaging/INSTALL-linux.txt and the README's install steps) the few it does not carry, for a
source install (the README's desktop section) all of them; and with them the desktop app opens a window on
the xcb platform under Xvfb. packaging/check-minimal-debian.sh checks the bundle's list on a minimal Debian
(it needs root and the network, so it is not run here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BUNDLE = Path(os.environ.get("STATCODER_BUNDLE_DIR", REPO / "dist" / "statcoder"))

# The C/C++ runtime and the libraries X itself (and xvfb) bring: never missing where X runs.
BASE = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libx11-6", "libxcb1", "libxau6", "libxdmcp6", "libbsd0",
        "libmd0", "libglvnd0", "libglx0", "libxcb-glx0", "libpcre2-8-0", "libexpat1", "libpng16-16", "libfreetype6",
        "libbrotli1", "libzstd1", "libsystemd0", "libcap2", "libgcrypt20", "libgpg-error0", "liblz4-1", "liblzma5"}

# The C library's own files, never bundled and always there.
GLIBC = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libresolv.so.2",
         "ld-linux-x86-64.so.2", "linux-vdso.so.1"}
# The package each library that the bundled xcb plugin takes from the system comes from
# (libGLX and libGLdispatch are libgl1's own dependencies, installed with it).
FROM_THE_SYSTEM = {"libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-keysyms.so.1": "libxcb-keysyms1",
                   "libxcb.so.1": "libxcb1", "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1",
                   "libGLX.so.0": "libgl1", "libGLdispatch.so.0": "libgl1"}


def listed_packages(text: str) -> list[str]:
    match = re.search(r"apt-get install -y ([^\n`]+)", text)
    assert match, "no apt-get install line"
    return match.group(1).split()


def bundle_notes() -> list[str]:
    return listed_packages((REPO / "packaging" / "INSTALL-linux.txt").read_text(encoding="utf-8"))


def source_install_list() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The desktop application"):]
    return listed_packages(section[:section.index("\n## ")])


def test_readme_and_the_bundle_notes_name_the_same_packages():
    notes = bundle_notes()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert listed_packages(readme[readme.index("### Installing on an air-gapped workstation"):]) == notes
    for package in ("libxcb-icccm4", "libxcb-keysyms1", "libegl1", "libfontconfig1"):
        assert package in notes      # the ones a minimal Debian 12 with xvfb lacked (check-minimal-debian.sh)
    assert set(notes) <= set(source_install_list())   # a source install needs what the bundle needs, and more
    assert "INSTALL-linux.txt" in (REPO / "packaging" / "build.sh").read_text(encoding="utf-8")


@pytest.mark.bundle
@pytest.mark.skipif(not (BUNDLE / "_internal").is_dir(), reason=f"no bundle at {BUNDLE}: build it with packaging/build.sh")
@pytest.mark.skipif(not shutil.which("ldd"), reason="needs ldd")
def test_every_library_the_bundled_xcb_plugin_loads_is_bundled_or_from_a_listed_package():
    internal = BUNDLE / "_internal"
    plugins = internal / "PySide6" / "Qt" / "plugins"
    binaries = [plugins / "platforms" / "libqxcb.so", *sorted((plugins / "xcbglintegrations").glob("*.so"))]
    # The bundle's programs run with LD_LIBRARY_PATH=_internal (PyInstaller's bootloader sets it).
    env = dict(os.environ, LD_LIBRARY_PATH=str(internal))
    outside: dict[str, str] = {}
    for binary in binaries:
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True, env=env).stdout
        for name, where in re.findall(r"^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$", ldd, re.MULTILINE):
            if not where.startswith(str(internal)):
                outside[name] = where
    unexplained = {name: where for name, where in outside.items() if name not in GLIBC and name not in FROM_THE_SYSTEM}
    assert unexplained == {}, (f"the bundle's xcb plugin loads these from the system, and the install notes name no "
                               f"package for them (bundle them: install them on the build machine): {unexplained}")
    listed = set(bundle_notes())
    assert {FROM_THE_SYSTEM[name] for name in outside if name in FROM_THE_SYSTEM} <= listed


def source_xcb_plugin_ldd() -> str:
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout


def skip_unless_this_machine_has_them(ldd: str) -> None:
    """The source install's packages are this machine's business, not the code's: say which are missing."""
    missing = sorted(set(re.findall(r"(\S+) => not found", ldd)))
    if missing:
        pytest.skip(f"this machine lacks {', '.join(missing)}: install the README desktop section's packages")


@pytest.mark.skipif(not shutil.which("dpkg") or not shutil.which("ldd"), reason="needs dpkg and ldd (Debian/Ubuntu)")
def test_every_library_the_xcb_plugin_loads_from_source_comes_from_a_listed_package():
    ldd = source_xcb_plugin_ldd()
    skip_unless_this_machine_has_them(ldd)
    system = sorted({m.group(1) for m in re.finditer(r"=> (/(?:usr/)?lib\S+)", ldd)})
    owners: dict[str, str] = {}
    for library in system:
        found = subprocess.run(["dpkg", "-S", os.path.realpath(library)], capture_output=True, text=True)
        if found.returncode != 0:
            found = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True)
        assert found.returncode == 0, f"{library} belongs to no package"
        owners[library] = found.stdout.split(":")[0]
    listed = set(source_install_list())
    missing = {lib: pkg for lib, pkg in owners.items() if pkg not in listed and pkg not in BASE}
    assert missing == {}, f"libraries the xcb plugin loads from packages the README's desktop section does not name: {missing}"


@pytest.mark.skipif(not shutil.which("xvfb-run"), reason="needs xvfb-run")
def test_the_desktop_app_opens_a_window_on_xcb_under_xvfb(tmp_path):
    if shutil.which("ldd"):
        skip_unless_this_machine_has_them(source_xcb_plugin_ldd())
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
