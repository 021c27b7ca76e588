"""The one way an operator runs a long ``Task``: modal in the UI, blocking in background mode.

In the UI the task is stepped from a timer while the status bar shows its progress; Esc cancels it and
returns control at once (the task cleans up in the background). In background mode (``blender -b``) the task
runs to its end on the main thread and prints its progress; Ctrl-C cancels it.
"""

from __future__ import annotations

import bpy

from ..worker.task import Task, run_blocking


class TaskOperator:
    """Mixin for a ``bpy.types.Operator``: call ``run_task`` from ``execute``; override ``task_finished``."""

    task_title = "Photo3D"
    _task: Task | None = None
    _timer = None

    def task_finished(self, context: bpy.types.Context) -> set[str]:
        """Called once the task has ended on its own; returns the operator's result."""
        return {"FINISHED"}

    def task_cancelled(self, context: bpy.types.Context) -> set[str]:
        """Called when the user cancelled (Esc, Ctrl-C); returns the operator's result."""
        self.report({"WARNING"}, f"{self.task_title} cancelled")
        return {"CANCELLED"}

    def run_task(self, context: bpy.types.Context, task: Task) -> set[str]:
        self._task = task
        if bpy.app.background or context.window is None:
            try:
                run_blocking(task, on_progress=lambda share, text: print(f"{self.task_title}: {text}", flush=True))
            except KeyboardInterrupt:
                return self.task_cancelled(context)
            return self.task_finished(context)
        task.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0.0, 1.0)
        self._show_progress(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self._task.cancel()  # returns at once; the worker is stopped in the background
            self._end_ui(context)
            return self.task_cancelled(context)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        ended = self._task.step()
        self._show_progress(context)
        if not ended:
            return {"PASS_THROUGH"}
        self._end_ui(context)
        return self.task_finished(context)

    def _show_progress(self, context: bpy.types.Context) -> None:
        share, text = self._task.status
        context.window_manager.progress_update(share)
        context.workspace.status_text_set(f"{self.task_title}: {text} (Esc to cancel)")
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()

    def _end_ui(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)
