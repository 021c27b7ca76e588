"""The sidebar's settings (``scene.photo3d``) and what they mean as plain settings objects.

Settings live on the scene, so they are saved with the .blend and undo with it. Their defaults, ranges and
choices come from the modules that use them (``motion.paths``, ``effects.params``, ``render.settings``), so
the sidebar, the batch and the maths cannot drift apart.
"""

from __future__ import annotations

import bpy

from ..effects.build import apply_effects
from ..effects.params import EFFECTS, KINDS, LIMITS, EffectError, EffectSettings
from ..motion.keyframes import pivot_depth_from_layer
from ..motion.paths import DEFAULTS as PATH_DEFAULTS
from ..motion.paths import EASINGS, PRESETS, PathSettings
from ..render.settings import DEFAULTS as RENDER_DEFAULTS
from ..render.settings import FRAME_RATES, OUTPUTS, QUALITY, RESOLUTIONS, RenderSettings
from ..scene.photo_scene import PhotoScene


def _title(name: str) -> str:
    return name.replace("_", " ").title()


# Enum items as module constants: Blender evaluates the (postponed) annotations below without this module's
# helpers in scope, so names inside a comprehension there would not resolve.
PRESET_ITEMS = [(p, _title(p), "") for p in PRESETS]
EASING_ITEMS = [(e, _title(e), "") for e in EASINGS]
RESOLUTION_ITEMS = [(r, _title(r), "") for r in RESOLUTIONS]
FPS_ITEMS = [(str(f), f"{f} fps", "") for f in FRAME_RATES]
QUALITY_ITEMS = [(q, q.title(), "") for q in QUALITY]
OUTPUT_ITEMS = [(o, o, "") for o in OUTPUTS]


def picked_pivot(settings: bpy.types.PropertyGroup, photo: PhotoScene) -> float | None:
    """The pivot the user chose: a depth picked in the viewport, else a layer's depth, else None (automatic).
    The camera path and the effects both use it."""
    if settings.pivot_depth > 0.0:
        return float(settings.pivot_depth)
    if settings.pivot_layer >= 0:
        return pivot_depth_from_layer(photo, settings.pivot_layer)
    return None


def scene_effects(scene: bpy.types.Scene) -> list[EffectSettings]:
    """The enabled effects as the scene's settings describe them."""
    settings = scene.photo3d
    chosen = []
    for kind in EFFECTS:
        item = getattr(settings, kind.lower())
        if item.enabled:
            chosen.append(
                EffectSettings(
                    kind, amount=item.amount, speed=item.speed, size=item.size, colour=tuple(item.colour),
                    wind=settings.wind, near=item.near, far=item.far, seed=settings.effects_seed,
                )
            )  # fmt: skip
    return chosen


def apply_scene_effects(context: bpy.types.Context, photo: PhotoScene) -> list[bpy.types.Object]:
    """Build the scene's enabled effects into ``photo``, measured at the picked pivot."""
    settings = context.scene.photo3d
    return apply_effects(photo, scene_effects(context.scene), pivot_depth=picked_pivot(settings, photo))


def _sync(self, context: bpy.types.Context) -> None:
    """Property update: re-apply the scene's effects to the active photo; a bad combination waits (the panel
    says why) instead of raising inside Blender's property update."""
    photo = PhotoScene.active(context)
    if photo is None or not getattr(context.scene.photo3d, "live_effects", True):
        return
    try:
        apply_scene_effects(context, photo)
    except (EffectError, ValueError) as exc:
        print(f"Photo3D: effects not applied: {exc}")


def _effect_settings_class(kind: str) -> type:
    natural = KINDS[kind]

    def number(name: str, description: str, default: float) -> bpy.props.FloatProperty:
        low, high = LIMITS[name]
        return bpy.props.FloatProperty(
            name=_title(name), description=description, default=default, min=low, max=high, update=_sync
        )

    annotations = {
        "enabled": bpy.props.BoolProperty(name=kind.title(), default=False, update=_sync),
        "amount": number("amount", "Density (fog: its opacity at the far end)", natural.amount),
        "speed": number("speed", "Times the natural speed", 1.0),
        "size": number("size", "Times the natural size", 1.0),
        "colour": bpy.props.FloatVectorProperty(
            name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=natural.colour, update=_sync
        ),
        "near": bpy.props.FloatProperty(
            name="Near",
            description="Start of the depth band: 0 in front of the nearest layer, 1 the backdrop",
            default=natural.near,
            min=0.0,
            max=1.0,
            update=_sync,
        ),  # fmt: skip
        "far": bpy.props.FloatProperty(
            name="Far", description="End of the depth band", default=natural.far, min=0.0, max=1.0, update=_sync
        ),
    }
    return type(f"Photo3D{kind.title()}Settings", (bpy.types.PropertyGroup,), {"__annotations__": annotations})


EFFECT_CLASSES = {kind: _effect_settings_class(kind) for kind in EFFECTS}


class Photo3DSceneSettings(bpy.types.PropertyGroup):
    path_preset: bpy.props.EnumProperty(name="Preset", items=PRESET_ITEMS, default=PATH_DEFAULTS.preset)
    use_safe_amplitude: bpy.props.BoolProperty(
        name="Safe Amplitude",
        description="Keep what the camera reveals inside the inpainted bands (off: use Amplitude)",
        default=True,
    )
    amplitude: bpy.props.FloatProperty(
        name="Amplitude", description="Metres for moves, radians for orbit, a factor for zoom", default=0.1, min=0.0
    )
    duration: bpy.props.IntProperty(name="Frames", default=PATH_DEFAULTS.duration_frames, min=2, max=100000)
    easing: bpy.props.EnumProperty(name="Easing", items=EASING_ITEMS, default=PATH_DEFAULTS.easing)
    loop: bpy.props.BoolProperty(name="Seamless Loop", default=PATH_DEFAULTS.loop)
    overscan: bpy.props.BoolProperty(
        name="Overscan",
        description="Zoom in just enough never to show past the photo's edge",
        default=PATH_DEFAULTS.overscan,
    )
    seed: bpy.props.IntProperty(name="Seed", default=PATH_DEFAULTS.seed, min=0)
    pivot_layer: bpy.props.IntProperty(
        name="Pivot Layer",
        description="Layer whose depth is the pivot and focus of the path and the effects (-1: automatic)",
        default=-1,
        min=-1,
    )
    pivot_depth: bpy.props.FloatProperty(
        name="Pivot Depth",
        description="Depth picked in the viewport for the pivot and focus (0: use the pivot layer or automatic)",
        default=0.0,
        min=0.0,
    )
    use_dof: bpy.props.BoolProperty(name="Depth of Field", description="Focus on the pivot", default=False)
    fstop: bpy.props.FloatProperty(name="F-Stop", default=2.8, min=0.1, max=128.0)

    resolution: bpy.props.EnumProperty(name="Resolution", items=RESOLUTION_ITEMS, default=RENDER_DEFAULTS.resolution)
    fps: bpy.props.EnumProperty(name="Frame Rate", items=FPS_ITEMS, default=str(RENDER_DEFAULTS.fps))
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default=RENDER_DEFAULTS.quality)
    output: bpy.props.EnumProperty(name="Output", items=OUTPUT_ITEMS, default=RENDER_DEFAULTS.output)
    motion_blur: bpy.props.BoolProperty(name="Motion Blur", default=RENDER_DEFAULTS.motion_blur)
    filepath: bpy.props.StringProperty(name="Output Path", default="//photo3d_render/", subtype="FILE_PATH")


def _effect_properties() -> dict[str, object]:
    """The properties ``Photo3DSceneSettings`` gains for the effects."""
    props: dict[str, object] = {k.lower(): bpy.props.PointerProperty(type=c) for k, c in EFFECT_CLASSES.items()}
    low, high = LIMITS["wind"]
    props["wind"] = bpy.props.FloatProperty(
        name="Wind", description="Sideways drift, frame heights per second (negative: to the left)",
        default=0.0, min=low, max=high, update=_sync,
    )  # fmt: skip
    props["effects_seed"] = bpy.props.IntProperty(name="Seed", default=0, min=0, update=_sync)
    props["live_effects"] = bpy.props.BoolProperty(
        name="Live", description="Re-apply the effects whenever a setting changes", default=True
    )
    return props


Photo3DSceneSettings.__annotations__.update(_effect_properties())


def path_settings(settings: Photo3DSceneSettings, photo: PhotoScene, fps: float) -> PathSettings:
    """The scene's camera-path choices as ``PathSettings`` for ``photo``."""
    return PathSettings(
        preset=settings.path_preset,
        amplitude=None if settings.use_safe_amplitude else settings.amplitude,
        duration_frames=settings.duration,
        easing=settings.easing,
        loop=settings.loop,
        pivot_depth=picked_pivot(settings, photo),
        seed=settings.seed,
        fps=fps,
        overscan=settings.overscan,
    )


def render_settings(settings: Photo3DSceneSettings) -> RenderSettings:
    return RenderSettings(
        resolution=settings.resolution,
        fps=int(settings.fps),
        quality=settings.quality,
        output=settings.output,
        motion_blur=settings.motion_blur,
        filepath=settings.filepath,
    )


classes = (*EFFECT_CLASSES.values(), Photo3DSceneSettings)


def register() -> None:
    bpy.types.Scene.photo3d = bpy.props.PointerProperty(type=Photo3DSceneSettings)


def unregister() -> None:
    del bpy.types.Scene.photo3d
