"""The pages of the main window, one per stage of the workflow, in workflow order."""

from __future__ import annotations


def available_pages() -> list[type]:
    from .classification import ClassificationPage
    from .code import CodePage
    from .generate import GeneratePage
    from .models import ModelsPage
    from .project import ProjectPage
    from .review import ReviewPage
    from .train import TrainPage

    return [ProjectPage, ClassificationPage, ModelsPage, GeneratePage, ReviewPage, TrainPage, CodePage]
