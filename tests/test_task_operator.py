"""Blender tier: the one task pattern (``ui.task_operator``) steps a task from the timer, shows its progress,
and on Esc cancels it and hands control back in the same call, without waiting for the task's clean-up."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

pytestmark = pytest.mark.blender


class SlowToStop:
    """A task whose clean-up after ``cancel`` takes as long as the test wants (``released``)."""

    def __init__(self) -> None:
        self.steps = 0
        self.cancelled = False
        self.released = threading.Event()
        self.cleanup = None

    def start(self) -> None:
        pass

    def step(self) -> bool:
        self.steps += 1
        return self.steps >= 3

    @property
    def status(self) -> tuple[float, str]:
        return self.steps / 3, f"step {self.steps}"

    def cancel(self) -> None:
        self.cancelled = True
        self.cleanup = threading.Thread(target=self.released.wait, daemon=True)
        self.cleanup.start()


class FakeUI:
    """The parts of a context and window manager the task operator touches, recording what it shows."""

    def __init__(self) -> None:
        self.shown: list[object] = []
        self.window_manager = SimpleNamespace(
            progress_update=self.shown.append,
            progress_end=lambda: self.shown.append("end"),
            event_timer_remove=lambda timer: self.shown.append("timer removed"),
        )
        self.workspace = SimpleNamespace(status_text_set=self.shown.append)
        self.screen = None


def _operator(task):
    from tests.blender_support import addon_module

    base = addon_module("photo3d_addon.ui.task_operator").TaskOperator

    class Probe(base):
        reports: list

        def report(self, kind, text):
            self.reports.append((kind, text))

        def task_finished(self, context):
            return {"FINISHED"}

    probe = Probe()
    probe.reports, probe._task, probe._timer = [], task, object()
    return probe


def test_timer_steps_show_progress_until_the_task_ends(photo3d_extension):
    task, ui = SlowToStop(), FakeUI()
    probe = _operator(task)
    timer = SimpleNamespace(type="TIMER", value="NOTHING")
    results = [probe.modal(ui, timer) for _ in range(3)]
    assert results == [{"PASS_THROUGH"}, {"PASS_THROUGH"}, {"FINISHED"}]
    assert 1 / 3 in ui.shown and any("step 2" in str(s) and "Esc to cancel" in str(s) for s in ui.shown)
    assert ui.shown[-3:] == ["timer removed", "end", None]  # the status bar is given back


def test_esc_cancels_and_returns_at_once(photo3d_extension):
    task, ui = SlowToStop(), FakeUI()
    probe = _operator(task)
    result = probe.modal(ui, SimpleNamespace(type="ESC", value="PRESS"))
    # Returned while the task's clean-up is still running: nothing waited for it.
    assert result == {"CANCELLED"} and task.cancelled and task.cleanup.is_alive()
    assert "timer removed" in ui.shown and ui.shown[-1] is None
    assert probe.reports and probe.reports[-1][0] == {"WARNING"}
    task.released.set()
    task.cleanup.join(5)
