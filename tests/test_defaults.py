"""One source of defaults and choices: the CLI help, the import operator, the preferences, the sidebar and the
batch agree with ``core.options`` and with the add-on's own default objects (paths, render, effects)."""

from __future__ import annotations

import re

import pytest

from core.cli import _parser
from core.options import LIMITS, PipelineOptions
from tests.pure_addon import addon

CORE = PipelineOptions()
choices = addon("importing.choices")
paths = addon("motion.paths")
params = addon("effects.params")


def _help(flag: str) -> str:
    """The CLI's help line of ``flag`` on ``convert``, whitespace folded."""
    convert = next(a for a in _parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith("convert"))
    action = next(a for a in convert._actions if flag in a.option_strings)
    return re.sub(r"\s+", " ", action.help % {"default": action.default} if action.help else "")


@pytest.mark.parametrize(
    ("flag", "default"),
    [
        ("--layers", CORE.layers.max_layers),
        ("--representation", CORE.geometry.representation),
        ("--inpaint", CORE.inpaint.method),
        ("--device", CORE.runtime.device),
    ],
)
def test_cli_help_states_the_core_default(flag, default):
    assert f"default {default}" in _help(flag)


def test_import_choices_derive_from_core():
    assert choices.DEFAULTS.layers == CORE.layers.max_layers
    assert choices.DEFAULTS.representation == CORE.geometry.representation.upper()
    assert choices.DEFAULTS.inpaint == CORE.inpaint.method.upper()
    assert choices.DEFAULTS.depth_kind == CORE.depth.depth_kind.upper()
    assert choices.DEFAULTS.device == CORE.runtime.device
    assert (1, LIMITS["layers.max_layers"].high) == (choices.MIN_LAYERS, choices.MAX_LAYERS)
    for items, key in (
        (choices.REPRESENTATION_ITEMS, "geometry.representation"),
        (choices.INPAINT_ITEMS, "inpaint.method"),
        (choices.DEPTH_KIND_ITEMS, "depth.depth_kind"),
    ):
        assert sorted(i[0].lower() for i in items) == sorted(LIMITS[key].choices)
    assert [i[0] for i in choices.DEVICE_ITEMS] == list(LIMITS["runtime.device"].choices)
    # The default options the operator sends are the core defaults (for what the import does not set).
    sent = choices.pipeline_options(choices.DEFAULTS)
    assert sent["layers"]["max_layers"] == CORE.layers.max_layers
    assert sent["inpaint"]["method"] == CORE.inpaint.method
    assert sent["geometry"]["representation"] == CORE.geometry.representation


def test_effect_defaults_are_the_kinds():
    for kind in params.EFFECTS:
        assert params.EffectSettings(kind).amount == params.KINDS[kind].amount
        assert params.parse_effect(kind.lower()).amount == params.KINDS[kind].amount


# -- Blender: the operator's, the preferences', the sidebar's and the batch's defaults -------------------------
def _rna(cls):
    """The RNA holding a class's properties (an operator's are on its operator type, not the class)."""
    return cls.get_rna_type() if hasattr(cls, "get_rna_type") else cls.bl_rna


def _rna_default(cls, name: str):
    prop = _rna(cls).properties[name]
    if prop.type == "ENUM":
        return prop.default
    if getattr(prop, "is_array", False):
        return tuple(prop.default_array)
    return prop.default


def _enum_ids(cls, name: str) -> list[str]:
    return [item.identifier for item in _rna(cls).properties[name].enum_items]


@pytest.mark.blender
def test_operator_preferences_sidebar_and_batch_agree(photo3d_extension):
    import bpy

    from tests.blender_support import EXTENSION, addon_module

    defaults = addon_module("photo3d_addon.importing.choices").DEFAULTS
    operator = bpy.ops.photo3d.import_image
    prefs = type(bpy.context.preferences.addons[EXTENSION].preferences)
    for name in ("representation", "layers", "quality", "inpaint", "segmentation", "depth_kind", "depth_scale"):
        assert _rna_default(operator, name) == getattr(defaults, name), name
    for name in ("representation", "layers", "quality", "inpaint", "segmentation"):
        assert _rna_default(prefs, f"default_{name}") == getattr(defaults, name), name
    assert _rna_default(prefs, "device") == defaults.device
    for cls, name in ((operator, "layers"), (prefs, "default_layers")):
        prop = _rna(cls).properties[name]
        assert (prop.hard_min, prop.hard_max) == (LIMITS["layers.max_layers"].low, LIMITS["layers.max_layers"].high)
    assert sorted(i.lower() for i in _enum_ids(operator, "inpaint")) == sorted(LIMITS["inpaint.method"].choices)
    assert _enum_ids(prefs, "device") == list(LIMITS["runtime.device"].choices)

    path = addon_module("photo3d_addon.motion.paths").DEFAULTS
    render = addon_module("photo3d_addon.render.settings").DEFAULTS
    kinds = addon_module("photo3d_addon.effects.params").KINDS
    sidebar = type(bpy.context.scene.photo3d)
    assert _rna_default(sidebar, "path_preset") == path.preset
    assert _rna_default(sidebar, "duration") == path.duration_frames
    assert _rna_default(sidebar, "easing") == path.easing
    assert _rna_default(sidebar, "loop") == path.loop
    assert _rna_default(sidebar, "overscan") == path.overscan
    assert _rna_default(sidebar, "resolution") == render.resolution
    assert _rna_default(sidebar, "fps") == str(render.fps)
    assert _rna_default(sidebar, "quality") == render.quality
    assert _rna_default(sidebar, "output") == render.output
    assert _rna_default(sidebar, "motion_blur") == render.motion_blur
    for kind, natural in kinds.items():
        group = type(getattr(bpy.context.scene.photo3d, kind.lower()))
        assert _rna_default(group, "amount") == pytest.approx(natural.amount), kind

    batch = addon_module("photo3d_addon.batch.run").DEFAULTS
    assert batch["layers"] == defaults.layers and batch["representation"] == defaults.representation
    assert batch["inpaint"] == defaults.inpaint and batch["device"] == defaults.device
    assert batch["depth_kind"] == defaults.depth_kind
    assert (batch["path"], batch["frames"], batch["loop"]) == (path.preset, path.duration_frames, path.loop)
    assert (batch["resolution"], batch["fps"], batch["quality"]) == (render.resolution, render.fps, render.quality)
    assert (batch["output"], batch["motion_blur"]) == (render.output, render.motion_blur)


def test_retired_options_still_load_and_change_nothing():
    """``harmonize.grid_downsample`` and ``layers.feather_px`` were never read by a stage: they are gone, and an
    old config or add-on that still sends them loads with the same options as without them."""
    old = PipelineOptions.from_dict({"harmonize": {"grid_downsample": 4}, "layers": {"feather_px": 2.0}})
    assert old.to_dict() == PipelineOptions().to_dict()
    assert "grid_downsample" not in old.to_dict()["harmonize"] and "feather_px" not in old.to_dict()["layers"]
