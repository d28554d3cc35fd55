"""Start the desktop application."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from engine import __version__

from .main_window import MainWindow


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("statcoder")
    app.setOrganizationName("statcoder")
    app.setApplicationVersion(__version__)
    return app


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    app = create_app(argv)
    window = MainWindow()
    window.show()
    projects = [a for a in argv[1:] if a.endswith(".statcoder")]
    if projects:  # `statcoder-desktop path/to/project.statcoder` opens it
        window.open_project(projects[0])
    if "--smoke-test" in argv:  # start, show the window, and exit: used by the bundle smoke test
        from PySide6.QtCore import QTimer

        QTimer.singleShot(200, app.quit)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
