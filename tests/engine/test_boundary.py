"""engine/ must never import Qt: import every engine module with PySide6 blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO


def test_every_engine_module_imports_without_pyside6():
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('PySide6', 'shiboken6', 'PyQt5', 'PyQt6'):
                    raise ImportError('Qt is blocked in this test: ' + name)
                return None

        sys.meta_path.insert(0, Block())
        import engine
        names = [m.name for m in pkgutil.walk_packages(engine.__path__, 'engine.') if m.name != 'engine.__main__']
        for name in names:
            importlib.import_module(name)
        assert not any(m.split('.')[0] in ('PySide6', 'shiboken6') for m in sys.modules)
        print(len(names))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 10
