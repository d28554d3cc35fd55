"""The message bar (issue 15, item 7): it floats over the page, so showing it moves nothing, and it
clears itself instead of going stale; an unexpected error with details stays until dismissed."""

from __future__ import annotations


def test_showing_a_message_does_not_move_the_page(window, qtbot):
    before = window.stack.mapTo(window, window.stack.rect().topLeft()), window.stack.height()
    window.ctx.notify("Trained model 3 in 2.0 s; validation top-1 73.9 %.", "info")
    qtbot.waitUntil(lambda: window.messages.isVisible())
    after = window.stack.mapTo(window, window.stack.rect().topLeft()), window.stack.height()
    assert after == before
    assert window.messages.width() > window.stack.width() * 0.9   # spans the page it floats over


def test_messages_clear_themselves(window, qtbot, monkeypatch):
    monkeypatch.setattr(type(window.messages), "TIMEOUTS_MS", {"info": 50, "warning": 80, "error": 120})
    window.ctx.notify("done", "info")
    qtbot.waitUntil(lambda: not window.messages.isVisible(), timeout=3000)
    assert window.messages.text == "" and window.messages.level == ""
    window.messages.show_message("Unexpected error (OSError): disk", "error", details="Traceback …")
    qtbot.wait(300)
    assert window.messages.isVisible()   # details to read: it waits for the user
