"""Before any work: is every model the options need there and complete? All problems in one error.

The backends say what they need (``needs``); the pre-flight asks the registry which backend each option
value goes to, looks every need up the way the loader will (``weights.locate``), and raises one
``MissingModels`` (a ``ModelError``, exit code 3) listing every missing or incomplete model with where to
put it, instead of stopping at the first.
"""

from __future__ import annotations

from ..errors import ModelError
from ..options import PipelineOptions
from .registry import SEGMENTATION_WITHOUT_WEIGHTS, backend_class
from .runtime import resolve_device
from .weights import locate

TASK_OPTIONS = {"depth": "depth.model", "segmentation": "segment.model", "inpainting": "inpaint.lama_model"}
"""The option that picks each task's backend, named in front of that task's problems."""


class MissingModels(ModelError):
    """One or more models the job needs are missing or incomplete; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            lines = "\n".join(f"  {number}. {problem}" for number, problem in enumerate(self.problems, 1))
            message = f"the models this job needs are not all available ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


def required_models(options: PipelineOptions) -> list[tuple[str, str]]:
    """``(task, option value)`` for every network the options use (weights-free choices need none)."""
    wanted = []
    if not options.depth.depth_file:
        wanted.append(("depth", options.depth.model))
    if options.segment.model.strip().lower() not in SEGMENTATION_WITHOUT_WEIGHTS:
        wanted.append(("segmentation", options.segment.model))
    if options.inpaint.method == "lama":
        wanted.append(("inpainting", options.inpaint.lama_model))
    return wanted


def model_problems(options: PipelineOptions) -> list[str]:
    """One message per missing or incomplete model (and an unusable device), in pipeline order."""
    runtime = options.runtime
    problems = []
    try:
        resolve_device(runtime.device)  # an unknown device name is bad input (InputError): raised as it is
    except ModelError as exc:
        problems.append(str(exc))
    for task, model in required_models(options):
        option = TASK_OPTIONS[task]
        try:
            needs = backend_class(task, model).needs(model)
        except ModelError as exc:
            problems.append(f"{option}: {exc}")
            continue
        for need in needs:
            try:
                locate(need, runtime.models_dir, runtime.offline)
            except ModelError as exc:
                problems.append(f"{option}: {exc}")
    return problems


def check_models(options: PipelineOptions) -> None:
    """Resolve every model the options need before any work, so missing weights fail fast, all at once."""
    problems = model_problems(options)
    if problems:
        raise MissingModels(problems)
