"""Controls (ControlNet, T2I-Adapter) and image prompts (IP-Adapter, Plus, Plus Face) applied to
the SD 1.5 / SDXL pipelines the diffusion tasks already run, inpaint and img2img alike.

Why not diffusers' ControlNet pipeline classes: there is no T2I-Adapter inpaint or img2img
pipeline to mix them with, and a ControlNet pipeline is a different pipeline (a ControlNet at
scale 0 would not give the picture the plain pipeline gives). Instead the task's own pipeline
runs unchanged and a forward pre-hook on its UNet adds, at every step, what diffusers'
ControlNet and T2I-Adapter pipelines add: the ControlNets' residuals (computed from the scaled
4-channel latents, the text embeddings and SDXL's added conditions, times their scale, inside
their start/end window) and the adapters' features (times their scale). Image prompts go
through diffusers' own IP-Adapter loader into the UNet for the run, and out again after it.
FLUX (refine with a FLUX model) has no UNet: its controls run through diffusers'
FluxControlNetImg2ImgPipeline, built around the task pipeline's components.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sfumato.bridge.geometry import Rect
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.diffusion.guide_inputs import ControlRequest, Guides, ImagePromptRequest
from sfumato.core.diffusion.pipeline_call import is_flux
from sfumato.core.errors import SfumatoError, error_detail
from sfumato.core.models.guide_loader import (
    IPAdapterFacts,
    flux_controlnet,
    guide_family_fits,
    ip_adapter_facts,
    read_config,
)
from sfumato.core.models.registry import ModelEntry, ModelFormat, ModelKind
from sfumato.core.pixels.compose import from_float, resize_rgb, rgb_over_grey, to_float
from sfumato.core.preprocessors.catalogue import (
    CONTROL_KINDS,
    NEEDS_MODEL,
    missing_model_message,
    preprocess,
)
from sfumato.core.task_api import ModelProvider

CONTROL_MODEL_KINDS = frozenset({ModelKind.CONTROLNET.value, ModelKind.T2I_ADAPTER.value})
IP_KINDS = frozenset({ModelKind.IP_ADAPTER.value})
# the pipeline a task's FLUX pipeline becomes when it has controls
FLUX_CONTROL_PIPELINES = {"FluxImg2ImgPipeline": "FluxControlNetImg2ImgPipeline",
                          "FluxPipeline": "FluxControlNetPipeline"}  # generate


@dataclass
class _Control:
    request: ControlRequest
    model: Any  # a ControlNetModel or a T2IAdapter
    adapter: bool  # a T2I-Adapter


@dataclass
class _ImagePrompt:
    request: ImagePromptRequest
    entry: ModelEntry
    facts: IPAdapterFacts


@dataclass
class LoadedGuides:
    """The guides of one request, their models loaded and checked against the pipeline."""

    controls: list[_Control]
    image_prompts: list[_ImagePrompt]
    encoder: Any | None
    models: ModelProvider
    warnings: list[str] = field(default_factory=list)
    flux_pipeline: str | None = None  # FLUX: the diffusers ControlNet pipeline class to use

    def over(self, crop: Rect, layer_size: tuple[int, int]) -> CropGuidance:
        """These guides for one crop of a layer of `layer_size` (height, width)."""
        return CropGuidance(self, crop, layer_size)


def load_guides(models: ModelProvider, pipe: Any, guides: Guides) -> LoadedGuides | None:
    """Load (or find cached) every model the request's guides need; None when it has none.
    Every refusal names what to install or change."""
    if not guides:
        return None
    if is_flux(pipe):
        return _flux_guides(models, pipe, guides)
    unet_config = pipe.unet.config
    controls = []
    for control in guides.controls:
        entry = _control_entry(models, control, _family(unet_config),
                               lambda e: guide_family_fits(e, unet_config))
        controls.append(_Control(control, _like(models.load_guide(entry, unet_config),
                                                 pipe.unet),
                                 entry.kind == ModelKind.T2I_ADAPTER.value))
    prompts = [_image_prompt(models, prompt, unet_config) for prompt in guides.image_prompts]
    encoder = _like(_image_encoder(models, prompts), pipe.unet) if prompts else None
    return LoadedGuides(controls, prompts, encoder, models, list(guides.warnings))


def _flux_guides(models: ModelProvider, pipe: Any, guides: Guides) -> LoadedGuides:
    # FLUX has no UNet to hook: its controls go through diffusers' FluxControlNetImg2Img
    # pipeline, built around the same components (core/guidance.py: CropGuidance.applied)
    if guides.image_prompts:
        raise SfumatoError(ErrorCode.WRONG_MODEL_KIND,
                           "image prompts run on SD 1.5 and SDXL models; pick one of those")
    if type(pipe).__name__ not in FLUX_CONTROL_PIPELINES:
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            "FLUX ControlNets run with FLUX (dev/schnell) models in refine and generate; FLUX "
            "Fill has no ControlNet pipeline. Use a FLUX model, or pick an SD 1.5 or SDXL model",
        )
    controls = []
    for control in guides.controls:
        entry = _control_entry(models, control, "FLUX", flux_controlnet)
        controls.append(_Control(control, _like(models.load_guide(entry), pipe.transformer),
                                 adapter=False))
    return LoadedGuides(controls, [], None, models, list(guides.warnings),
                        flux_pipeline=FLUX_CONTROL_PIPELINES[type(pipe).__name__])


def _like(model: Any, denoiser: Any) -> Any:
    """`model` in the denoiser's dtype (the speed options may pick bf16 or fp16): IP-Adapter
    embeddings and control residuals then meet the UNet in the dtype it computes in."""
    if model.dtype != denoiser.dtype:
        model.to(dtype=denoiser.dtype)
    return model


# --- finding the models ------------------------------------------------------------------------


def _family(unet_config: Any) -> str:
    return "SDXL" if getattr(unet_config, "addition_embed_type", None) == "text_time" \
        else "SD 1.5"


def _control_entry(models: ModelProvider, control: ControlRequest, family: str,
                   fits: Callable[[ModelEntry], bool]) -> ModelEntry:
    if control.model is not None:
        entry = models.entry(control.model, CONTROL_MODEL_KINDS, default=None)
        if not fits(entry):
            raise SfumatoError(
                ErrorCode.WRONG_MODEL_KIND,
                f"control model {entry.name!r} was not made for {family} models like this "
                f"one; pick a {family} ControlNet or T2I-Adapter",
            )
        return entry
    aliases = CONTROL_KINDS[control.kind]
    for entry in models.candidates(CONTROL_MODEL_KINDS):
        if any(alias in entry.name.lower() for alias in aliases) and fits(entry):
            return entry
    raise SfumatoError(
        ErrorCode.UNKNOWN_MODEL,
        f"no {family} ControlNet or T2I-Adapter for {control.kind} is registered: download one "
        f"(a diffusers folder, or one .safetensors file as ComfyUI and A1111 keep them) and "
        f"add it with `sfumato models add "
        f"{control.kind}-{family.replace(' ', '').lower()} PATH` (an id containing "
        f"\"{control.kind}\" is picked for {control.kind} controls), or name one in the request",
    )


def _image_prompt(models: ModelProvider, prompt: ImagePromptRequest,
                  unet_config: Any) -> _ImagePrompt:
    family = _family(unet_config)
    if prompt.model is not None:
        entry = models.entry(prompt.model, IP_KINDS, default=None)
        if not guide_family_fits(entry, unet_config):
            raise SfumatoError(ErrorCode.WRONG_MODEL_KIND,
                               f"IP-Adapter {entry.name!r} was not made for {family} models "
                               f"like this one; pick a {family} IP-Adapter")
    else:
        fitting = [e for e in models.candidates(IP_KINDS) if guide_family_fits(e, unet_config)]
        if not fitting:
            raise SfumatoError(
                ErrorCode.UNKNOWN_MODEL,
                f"no {family} IP-Adapter is registered: download an IP-Adapter, IP-Adapter "
                "Plus or Plus Face .safetensors file with its image_encoder folder and add it "
                "with `sfumato models add ip-adapter FILE --config IMAGE_ENCODER_FOLDER`",
            )
        entry = fitting[0]
    facts = ip_adapter_facts(Path(entry.path))
    if facts.variant == "faceid":
        raise SfumatoError(
            ErrorCode.WRONG_MODEL_KIND,
            f"{entry.name!r} is an IP-Adapter FaceID, which reads insightface face embeddings "
            "that sfumato does not compute; use IP-Adapter Plus Face instead",
        )
    return _ImagePrompt(prompt, entry, facts)


def _image_encoder(models: ModelProvider, prompts: list[_ImagePrompt]) -> Any:
    entries = {_encoder_entry(models, prompt).path: _encoder_entry(models, prompt)
               for prompt in prompts}
    if len(entries) > 1:
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           "these image prompts' IP-Adapters read with different image "
                           "encoders, and one run holds one; use IP-Adapters that share one")
    return models.load_guide(next(iter(entries.values())))


def _encoder_entry(models: ModelProvider, prompt: _ImagePrompt) -> ModelEntry:
    entry, facts = prompt.entry, prompt.facts
    if entry.config:
        return ModelEntry(f"{entry.name}/image-encoder", ModelKind.IMAGE_ENCODER.value,
                          entry.config, ModelFormat.TRANSFORMERS.value)
    # Plain IP-Adapters read the encoder's projected embedding, the others its hidden states
    width_key = "projection_dim" if facts.variant == "ip-adapter" else "hidden_size"
    for candidate in models.candidates(frozenset({ModelKind.IMAGE_ENCODER.value})):
        config = read_config(Path(candidate.path)) or {}
        config = config.get("vision_config", config)
        if config.get(width_key) == facts.image_features:
            return candidate
    raise SfumatoError(
        ErrorCode.UNKNOWN_MODEL,
        f"IP-Adapter {entry.name!r} needs the CLIP image encoder it was trained with "
        f"({width_key} {facts.image_features}), and none is registered: add its image_encoder "
        "folder with `sfumato models add NAME FOLDER`, or re-add the adapter with "
        "--config FOLDER",
    )


# --- one crop, one run -------------------------------------------------------------------------


@dataclass
class CropGuidance:
    guides: LoadedGuides
    crop: Rect
    layer_size: tuple[int, int]

    @property
    def warnings(self) -> list[str]:
        return self.guides.warnings

    def control_images(self, model_image: np.ndarray) -> list[np.ndarray]:
        """Each control's image at the model's size, (H, W, 3) uint8: a sent image stretched
        to the layer raster when its size differs, cut to the crop and resized; "auto" made
        from the model's view of the crop."""
        height, width = model_image.shape[:2]
        images = []
        for control in self.guides.controls:
            request = control.request
            if request.image is None:
                source = from_float(model_image, np.dtype(np.uint8))
                images.append(preprocess(request.kind, source, self._preprocessor_model))
                continue
            layer_h, layer_w = self.layer_size
            pixels = request.image
            if pixels.shape[:2] != (layer_h, layer_w):
                pixels = resize_rgb(pixels, (layer_w, layer_h))
            # transparent = no signal: controls are drawn light on black
            rgba = to_float(pixels[self.crop.slices])
            rgb = rgba[..., :3] * rgba[..., 3:4]
            images.append(from_float(resize_rgb(rgb, (width, height)), np.dtype(np.uint8)))
        return images

    def _preprocessor_model(self, kind: str) -> Any:
        found = self.guides.models.candidates(frozenset({kind}))
        if not found:
            control_kind = next(k for k, v in NEEDS_MODEL.items() if v == kind)
            raise SfumatoError(ErrorCode.UNKNOWN_MODEL, missing_model_message(control_kind))
        return self.guides.models.load_guide(found[0])

    @contextmanager
    def applied(self, pipe: Any, model_image: np.ndarray, steps: int) -> Iterator[GuidedRuns]:
        """The pipeline with these guides in place for as many runs as the caller makes."""
        import torch

        images = self.control_images(model_image)
        if self.guides.flux_pipeline is not None:
            yield self._flux_runs(pipe, images)
            return
        device = pipe.unet.device
        hook = _UNetControls(
            [(c, torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device))
             for c, image in zip(self.guides.controls, images, strict=True)],
            steps,
        )
        handle = pipe.unet.register_forward_pre_hook(hook, with_kwargs=True) \
            if images else None
        runs = GuidedRuns(hook, {})
        try:
            if self.guides.image_prompts:
                runs.kwargs["ip_adapter_image"] = _load_image_prompts(pipe, self.guides)
            yield runs
        finally:
            if handle is not None:
                handle.remove()
            if self.guides.image_prompts:
                pipe.unload_ip_adapter()  # the UNet is shared with other cached pipelines


    def _flux_runs(self, pipe: Any, images: list[np.ndarray]) -> GuidedRuns:
        import diffusers  # the task's pipeline loaded it, behind the torchvision guard
        from PIL import Image

        cls = getattr(diffusers, str(self.guides.flux_pipeline))
        controls = self.guides.controls
        nets = [c.model for c in controls]
        accepted = inspect.signature(cls.__init__).parameters
        parts = {k: v for k, v in pipe.components.items() if k in accepted}
        scheduler = parts["scheduler"]  # its own: set_timesteps() mutates it
        parts["scheduler"] = type(scheduler).from_config(scheduler.config)
        flux = cls(**parts, controlnet=nets[0] if len(nets) == 1 else nets)
        flux.set_progress_bar_config(disable=True)
        pictures = [Image.fromarray(image, "RGB") for image in images]

        def each(values: list[Any]) -> Any:
            return values[0] if len(values) == 1 else values

        kwargs = {
            "control_image": each(pictures),
            "controlnet_conditioning_scale": each([c.request.scale for c in controls]),
            "control_guidance_start": each([c.request.start for c in controls]),
            "control_guidance_end": each([c.request.end for c in controls]),
        }
        return GuidedRuns(None, kwargs, flux)


@dataclass
class GuidedRuns:
    hook: _UNetControls | None
    kwargs: dict[str, Any]  # for the pipeline call
    pipe: Any = None  # the pipeline to call instead of the task's, if any

    def next_run(self) -> None:
        if self.hook is not None:
            self.hook.step = 0


def _load_image_prompts(pipe: Any, guides: LoadedGuides) -> list[Any]:
    from PIL import Image
    from transformers import CLIPImageProcessor

    encoder: Any = guides.encoder
    pipe.register_modules(image_encoder=encoder)
    if getattr(pipe, "feature_extractor", None) is None:
        side = int(encoder.config.image_size)
        pipe.register_modules(feature_extractor=CLIPImageProcessor(size=side, crop_size=side))
    try:
        # the tensors come from the model cache: a warm job reads nothing from disk
        weights = [guides.models.ip_adapter_weights(p.entry) for p in guides.image_prompts]
        pipe.load_ip_adapter(weights, subfolder=[""] * len(weights),
                             weight_name=[""] * len(weights), image_encoder_folder=None,
                             local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        pipe.unload_ip_adapter()
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"an IP-Adapter could not be loaded ({error_detail(exc, 300)}); check that it is "
            "complete and made for this model",
        ) from None
    pipe.set_ip_adapter_scale([p.request.weight for p in guides.image_prompts])
    pictures = []
    for prompt in guides.image_prompts:
        rgb = from_float(rgb_over_grey(prompt.request.image), np.dtype(np.uint8))
        pictures.append(Image.fromarray(rgb, "RGB"))
    return pictures


class _UNetControls:
    """A UNet forward pre-hook adding ControlNet residuals and T2I-Adapter features."""

    def __init__(self, controls: list[tuple[_Control, Any]], steps: int) -> None:
        self.controls = controls
        self.steps = max(1, steps)
        self.step = 0

    def _active(self, request: ControlRequest, step: int) -> bool:
        # the window rule of diffusers' ControlNet pipelines (control_guidance_start/end)
        return not (step / self.steps < request.start or (step + 1) / self.steps > request.end)

    def __call__(self, unet: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        import torch

        step, self.step = self.step, self.step + 1
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        text: Any = args[2] if len(args) > 2 else kwargs.get("encoder_hidden_states")
        batch = sample.shape[0]
        down: list[Any] | None = None
        mid: Any = None
        adapted: list[Any] | None = None
        with torch.no_grad():
            for control, image in self.controls:
                if not self._active(control.request, step):
                    continue
                model = control.model
                cond = image.to(model.dtype).expand(batch, -1, -1, -1)
                if control.adapter:
                    features = [f * control.request.scale for f in model(cond[:1])]
                    adapted = features if adapted is None else \
                        [a + f for a, f in zip(adapted, features, strict=True)]
                    continue
                res_down, res_mid = model(
                    sample[:, :4].to(model.dtype), timestep,
                    encoder_hidden_states=text.to(model.dtype),
                    controlnet_cond=cond, conditioning_scale=control.request.scale,
                    added_cond_kwargs=kwargs.get("added_cond_kwargs"), return_dict=False,
                )
                if down is None:
                    down, mid = list(res_down), res_mid
                else:
                    down = [a + b for a, b in zip(down, res_down, strict=True)]
                    mid = mid + res_mid
        if down is not None:
            kwargs["down_block_additional_residuals"] = tuple(d.to(sample.dtype) for d in down)
            kwargs["mid_block_additional_residual"] = mid.to(sample.dtype)
        if adapted is not None:
            # a fresh list each call: the UNet pops from it
            kwargs["down_intrablock_additional_residuals"] = [
                f.to(sample.dtype).expand(batch, -1, -1, -1).clone() for f in adapted]
        return args, kwargs
