"""Diffusion models from local files to a pipeline for one task.

One loaded model serves every task it can: the components (UNet or transformer, VAE, text
encoders, tokenizers) are loaded once per source and re-assembled into the pipeline class the
task needs (an SDXL checkpoint becomes an inpaint pipeline for `inpaint`, an img2img pipeline
for `refine`). Only .safetensors weights are ever read, and nothing is fetched from a hub.
"""

from __future__ import annotations

import inspect
import json
import weakref
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.device.speed_options import SpeedOptions, pipeline_dtype, prepare_pipeline
from sfumato.core.errors import SfumatoError
from sfumato.core.models.checkpoint_header import tensor_shapes
from sfumato.core.models.guarded_load import load_or_refuse
from sfumato.core.models.registry import ModelEntry, ModelFormat, ModelKind

# model_index.json `_class_name` -> the kind it is registered as
PIPELINE_KINDS: dict[str, str] = {
    "StableDiffusionXLInpaintPipeline": ModelKind.SDXL_INPAINT.value,
    "StableDiffusionXLPipeline": ModelKind.SDXL.value,
    "StableDiffusionXLImg2ImgPipeline": ModelKind.SDXL.value,
    "StableDiffusionInpaintPipeline": ModelKind.SD15_INPAINT.value,
    "StableDiffusionPipeline": ModelKind.SD15.value,
    "StableDiffusionImg2ImgPipeline": ModelKind.SD15.value,
    "FluxFillPipeline": ModelKind.FLUX_FILL.value,
    "FluxPipeline": ModelKind.FLUX.value,
    "FluxImg2ImgPipeline": ModelKind.FLUX.value,
    # edit by instruction (issue 19)
    "StableDiffusionInstructPix2PixPipeline": ModelKind.INSTRUCT_PIX2PIX.value,
    "StableDiffusionXLInstructPix2PixPipeline": ModelKind.SDXL_INSTRUCT_PIX2PIX.value,
    "FluxKontextPipeline": ModelKind.FLUX_KONTEXT.value,
    "FluxKontextInpaintPipeline": ModelKind.FLUX_KONTEXT.value,
    "QwenImageEditPipeline": ModelKind.QWEN_IMAGE_EDIT.value,
    "QwenImageEditInpaintPipeline": ModelKind.QWEN_IMAGE_EDIT.value,
    "QwenImageEditPlusPipeline": ModelKind.QWEN_IMAGE_EDIT_PLUS.value,
    "Flux2KleinPipeline": ModelKind.FLUX2_KLEIN.value,
}

# (kind, task) -> the diffusers pipeline class that runs it
TASK_PIPELINES: dict[tuple[str, str], str] = {
    ("sdxl-inpaint", "inpaint"): "StableDiffusionXLInpaintPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLInpaintPipeline",  # masks latents each step
    ("sd15-inpaint", "inpaint"): "StableDiffusionInpaintPipeline",
    ("sd15", "inpaint"): "StableDiffusionInpaintPipeline",
    ("flux-fill", "inpaint"): "FluxFillPipeline",
    ("sdxl", "refine"): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl-inpaint", "refine"): "StableDiffusionXLInpaintPipeline",  # its UNet wants the mask
    ("sd15", "refine"): "StableDiffusionImg2ImgPipeline",
    ("sd15-inpaint", "refine"): "StableDiffusionInpaintPipeline",
    ("flux", "refine"): "FluxImg2ImgPipeline",
    ("flux-fill", "refine"): "FluxFillPipeline",  # with strength < 1
    # text to image (issue 19); expand outpaints with the inpaint pipelines
    ("sdxl", "generate"): "StableDiffusionXLPipeline",
    ("sd15", "generate"): "StableDiffusionPipeline",
    ("flux", "generate"): "FluxPipeline",
    ("sdxl-inpaint", "expand"): "StableDiffusionXLInpaintPipeline",
    ("sdxl", "expand"): "StableDiffusionXLInpaintPipeline",
    ("sd15-inpaint", "expand"): "StableDiffusionInpaintPipeline",
    ("flux-fill", "expand"): "FluxFillPipeline",
    # edit by instruction: the picture goes in whole, the instruction says what changes
    ("instruct-pix2pix", "edit"): "StableDiffusionInstructPix2PixPipeline",
    ("sdxl-instruct-pix2pix", "edit"): "StableDiffusionXLInstructPix2PixPipeline",
    ("flux-kontext", "edit"): "FluxKontextPipeline",
    ("qwen-image-edit", "edit"): "QwenImageEditPipeline",
    ("qwen-image-edit-plus", "edit"): "QwenImageEditPlusPipeline",
    ("flux2-klein", "edit"): "Flux2KleinPipeline",  # the picture as its reference image
}

# an edit over a selection: the variant that repaints only the mask and keeps the latents
# outside it (used where this diffusers ships it)
SELECTION_PIPELINES: dict[str, str] = {
    "FluxKontextPipeline": "FluxKontextInpaintPipeline",
    "QwenImageEditPipeline": "QwenImageEditInpaintPipeline",
}

# a base family whose UNet takes 8 input channels (noise + the picture's latents)
_INSTRUCT_OF = {ModelKind.SD15.value: ModelKind.INSTRUCT_PIX2PIX.value,
                ModelKind.SDXL.value: ModelKind.SDXL_INSTRUCT_PIX2PIX.value}

_UNSAFE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")


# --- what is this? -----------------------------------------------------------------------


def detect_diffusion_kind(path: Path) -> tuple[str, str] | None:
    """(kind, format) of a diffusers folder or a single .safetensors checkpoint, or None.

    A single checkpoint is recognised from its tensor names; loading it still needs a local
    diffusers config folder of the same architecture (`ModelEntry.config`).
    """
    path = Path(path)
    if path.is_dir():
        kind = _folder_kind(path)
        return (kind, ModelFormat.DIFFUSERS.value) if kind else None
    if path.is_file() and path.suffix.lower() == ".safetensors":
        try:
            kind = checkpoint_kind(tensor_shapes(path))
        except SfumatoError:
            return None
        return (kind, ModelFormat.SINGLE_FILE.value) if kind else None
    return None


def _folder_kind(folder: Path) -> str | None:
    index = _read_json(folder / "model_index.json")
    if index is None:
        return None
    kind = PIPELINE_KINDS.get(str(index.get("_class_name")))
    if kind is None:
        return None
    # Some repos save an inpainting model under the plain class name; the denoiser's input
    # channels tell (9 = latents + mask + masked image for UNets, 384 for FLUX Fill).
    inpaint_of = {
        ModelKind.SDXL.value: ModelKind.SDXL_INPAINT.value,
        ModelKind.SD15.value: ModelKind.SD15_INPAINT.value,
    }
    if kind in inpaint_of:
        unet = _read_json(folder / "unet" / "config.json") or {}
        if unet.get("in_channels") == 9:
            kind = inpaint_of[kind]
        elif unet.get("in_channels") == 8:  # latents + the picture's latents: InstructPix2Pix
            kind = _INSTRUCT_OF[kind]
    elif kind == ModelKind.FLUX.value:
        transformer = _read_json(folder / "transformer" / "config.json") or {}
        if transformer.get("in_channels") == 384:
            kind = ModelKind.FLUX_FILL.value
    return kind


def checkpoint_kind(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The kind of an original-layout (A1111/ComfyUI) checkpoint from its tensor names."""
    unet_in = shapes.get("model.diffusion_model.input_blocks.0.0.weight")
    if unet_in is not None and len(unet_in) == 4:
        inpaint = unet_in[1] == 9
        family = None
        if any(k.startswith("conditioner.embedders.1.") for k in shapes):
            family = ModelKind.SDXL_INPAINT.value if inpaint else ModelKind.SDXL.value
        elif any(k.startswith("cond_stage_model.transformer.") for k in shapes):
            family = ModelKind.SD15_INPAINT.value if inpaint else ModelKind.SD15.value
        if family is not None and unet_in[1] == 8:  # InstructPix2Pix reads the picture too
            return _INSTRUCT_OF[family]
        return family  # None: SD 2.x, the SDXL refiner and others are not served
    for prefix in ("", "model.diffusion_model."):
        img_in = shapes.get(f"{prefix}img_in.weight")
        if img_in is not None and f"{prefix}double_blocks.0.img_attn.qkv.weight" in shapes:
            return ModelKind.FLUX_FILL.value if img_in[-1] == 384 else ModelKind.FLUX.value
    return None


# --- loading -------------------------------------------------------------------------------


def load_pipeline(entry: ModelEntry, task: str, device: str, shared: dict[str, Any],
                  options: SpeedOptions | None = None, masked: bool = False) -> Any:
    """The pipeline that runs `task` with the model `entry`, on `device`; `masked`: the job
    has a selection, so the family's selection variant where there is one.

    `shared` is the caller's long-lived dict: components loaded for one task are found there
    (weakly held, so the caller's LRU cache still frees them) and re-used for another.
    `options` pick the dtype, attention, VAE tiling and compile (default: the defaults).
    """
    diffusers = _import_diffusers()

    target = TASK_PIPELINES.get((entry.kind, task))
    if target is None:
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            f"a {entry.kind} model cannot run {task}; pick a model made for it",
        )
    if masked and hasattr(diffusers, SELECTION_PIPELINES.get(target, "")):
        target = SELECTION_PIPELINES[target]
    options = options or SpeedOptions()
    dtype = pipeline_dtype(options, device, entry.kind)
    key = f"{Path(entry.path).resolve()}|{entry.config or ''}|{dtype}"
    found = _remembered(shared, key)
    if found is None:
        base = _load_base(entry, dtype)
        found = _components_and_config(base)
        _remember(shared, key, *found)
    components, config = found
    pipe = _assemble(getattr(diffusers, target), components, config)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return prepare_pipeline(pipe, options)


def pipeline_bytes(pipe: Any) -> int:
    """Bytes of every parameter and buffer the pipeline's modules hold (for LRU accounting;
    components shared with another cached pipeline are counted in both, erring high)."""
    import torch

    total = 0
    seen: set[int] = set()
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module) or id(component) in seen:
            continue
        seen.add(id(component))
        for tensor in (*component.parameters(), *component.buffers()):
            total += tensor.numel() * tensor.element_size()
    return total


def _load_base(entry: ModelEntry, dtype: Any) -> Any:
    path = Path(entry.path)
    if entry.format == ModelFormat.DIFFUSERS.value:
        variant = check_diffusers_folder(path)
        cls = _pipeline_class(path)
        return load_or_refuse(
            path,
            lambda: cls.from_pretrained(
                str(path), local_files_only=True, use_safetensors=True, torch_dtype=dtype,
                variant=variant, **_built_parts(cls, path),
            ),
        )
    if entry.format == ModelFormat.SINGLE_FILE.value:
        config = _single_file_config(entry)
        check_diffusers_folder(config, weights_optional=True)
        tensor_shapes(path)  # validates the checkpoint before diffusers reads it
        return load_or_refuse(
            path,
            lambda: _pipeline_class(config).from_single_file(
                str(path), config=str(config), local_files_only=True, torch_dtype=dtype
            ),
        )
    raise SfumatoError(
        ErrorCode.WRONG_MODEL_KIND,
        f"model {entry.name!r} is stored as {entry.format}, which is not a diffusion format",
    )


def _pipeline_class(folder: Path) -> Any:
    diffusers = _import_diffusers()

    name = str((_read_json(folder / "model_index.json") or {}).get("_class_name"))
    if name not in PIPELINE_KINDS:
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"{folder}/model_index.json names pipeline {name!r}, which sfumato does not run",
        )
    return getattr(diffusers, name)


def _built_parts(cls: Any, folder: Path) -> dict[str, Any]:
    # Qwen-Image-Edit's Qwen2.5-VL processor: transformers would build it with a video part
    # that needs torchvision; the edit reads pictures only, so sfumato builds that part itself
    if cls.__name__.startswith("QwenImageEdit"):
        from sfumato.core.models.qwen_processor import load_qwen_processor

        return {"processor": load_qwen_processor(folder)}
    return {}


def _single_file_config(entry: ModelEntry) -> Path:
    path = Path(entry.path)
    if path.suffix.lower() != ".safetensors":
        raise SfumatoError(
            ErrorCode.UNSAFE_WEIGHTS,
            f"{path.name} is not .safetensors; pickle checkpoints can run code when loaded. "
            "Use the model's .safetensors release or convert it where you trust it",
        )
    if not entry.config or not (Path(entry.config) / "model_index.json").is_file():
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"the checkpoint {path.name} needs a local diffusers config folder of the same "
            "architecture (model_index.json, tokenizers, configs); re-add it with "
            "`sfumato models add NAME PATH --config FOLDER`",
        )
    return Path(entry.config)


def check_diffusers_folder(folder: Path, weights_optional: bool = False) -> str | None:
    """Refuse a diffusers folder that is missing parts or would need pickle weights; returns
    the weights variant to load ("fp16" when only fp16 files are there, else None).

    With `weights_optional` (a config folder for a single-file checkpoint) components may come
    without weights, but any weights present must still be .safetensors.
    """
    index = _read_json(folder / "model_index.json")
    if index is None:
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"{folder} has no readable model_index.json; it is not a complete diffusers folder",
        )
    variants: set[str | None] = set()
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[:1] == [None]:
            continue
        part = folder / name
        if not part.is_dir():
            raise SfumatoError(
                ErrorCode.CORRUPT_WEIGHTS,
                f"{folder} lacks the {name!r} component its model_index.json lists; "
                "copy the complete model folder again",
            )
        if (part / "config.json").is_file():  # a model component, so it has weights
            variants.add(_check_weights(part, weights_optional))
    variants.discard(None)
    return "fp16" if variants == {"fp16"} else None


def _check_weights(part: Path, optional: bool) -> str | None:
    files = [p for p in part.iterdir() if p.is_file()]
    safe = [p for p in files if p.name.endswith(".safetensors")]
    unsafe = [p for p in files if p.name.endswith(_UNSAFE_SUFFIXES)]
    if not safe and unsafe:
        raise SfumatoError(
            ErrorCode.UNSAFE_WEIGHTS,
            f"{part.name}/{unsafe[0].name} is a pickle weights file, which can run code when "
            "loaded; sfumato loads only .safetensors. Use the model's safetensors release",
        )
    if not safe:
        if optional:
            return None
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"{part} has no weights file; copy the complete model folder again",
        )
    for weights in safe:
        tensor_shapes(weights)  # raises CORRUPT_WEIGHTS naming the damaged file
    plain = [p for p in safe if p.name.count(".") == 1]
    return None if plain else ("fp16" if any(".fp16." in p.name for p in safe) else None)



# --- re-assembling and sharing components ----------------------------------------------------


def _components_and_config(base: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    components = {k: v for k, v in base.components.items() if v is not None}
    # non-module init options saved with the pipeline (e.g. requires_aesthetics_score)
    config = {
        k: v
        for k, v in dict(base.config).items()
        if not k.startswith("_") and k not in base.components and not isinstance(v, list | tuple)
    }
    return components, config


def _remember(shared: dict[str, Any], key: str, components: dict[str, Any],
              config: dict[str, Any]) -> None:
    import torch

    held: dict[str, Any] = {}
    for name, value in components.items():
        if isinstance(value, torch.nn.Module):
            held[name] = weakref.ref(value)  # the big parts: freed when no pipeline uses them
        else:  # tokenizers, the scheduler: small, and each pipeline copies the scheduler
            held[name] = lambda value=value: value
    shared[key] = (held, config)


def _remembered(shared: dict[str, Any], key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    found = shared.get(key)
    if found is None:
        return None
    held, config = found
    components = {name: ref() for name, ref in held.items()}
    if any(value is None for value in components.values()):
        del shared[key]  # some part was freed with its pipeline: load afresh
        return None
    return components, config


def _assemble(cls: Any, components: dict[str, Any], config: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name == "scheduler" and name in components:
            # each pipeline gets its own scheduler: set_timesteps() mutates it
            scheduler = components[name]
            kwargs[name] = type(scheduler).from_config(scheduler.config)
        elif name in components:
            kwargs[name] = components[name]
        elif name == "requires_safety_checker":
            kwargs[name] = False  # sfumato edits artists' own images; no NSFW filter model
        elif name == "add_watermarker":
            kwargs[name] = False  # an invisible watermark would change the artist's pixels
        elif name in config:
            kwargs[name] = config[name]
        elif param.default is param.empty:
            kwargs[name] = None  # an optional module this model does not have
    return cls(**kwargs)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _import_diffusers() -> Any:
    from sfumato.core.models.torchvision_guard import guard_torchvision

    guard_torchvision()  # an unusable torchvision must look absent before diffusers looks
    import diffusers

    return diffusers
