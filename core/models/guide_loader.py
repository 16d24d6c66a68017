"""Guide models (ControlNet, T2I-Adapter, IP-Adapter and the image encoder it reads with) and
preprocessor models (depth, pose): what a local file or folder is, and loading one through
diffusers' or transformers' own loaders. Only .safetensors weights are read; nothing is fetched.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode

from ..errors import SfumatoError, error_detail
from .checkpoint_header import tensor_shapes
from .registry import ModelEntry, ModelFormat, ModelKind

# config.json `_class_name` of a diffusers model folder -> its kind
DIFFUSERS_GUIDES: dict[str, str] = {
    "ControlNetModel": ModelKind.CONTROLNET.value,
    "FluxControlNetModel": ModelKind.CONTROLNET.value,
    "T2IAdapter": ModelKind.T2I_ADAPTER.value,
}
# config.json `architectures[0]` of a transformers model folder -> its kind
TRANSFORMERS_MODELS: dict[str, str] = {
    "CLIPVisionModelWithProjection": ModelKind.IMAGE_ENCODER.value,
    "DPTForDepthEstimation": ModelKind.DEPTH_ESTIMATOR.value,
    "DepthAnythingForDepthEstimation": ModelKind.DEPTH_ESTIMATOR.value,
    "GLPNForDepthEstimation": ModelKind.DEPTH_ESTIMATOR.value,
    "ZoeDepthForDepthEstimation": ModelKind.DEPTH_ESTIMATOR.value,
    "VitPoseForPoseEstimation": ModelKind.POSE_ESTIMATOR.value,
}
# config.json `model_type` of a transformers folder whose `architectures` is missing -> its kind
TRANSFORMERS_MODEL_TYPES: dict[str, str] = {"vitpose": ModelKind.POSE_ESTIMATOR.value}
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")


# --- what is this? -------------------------------------------------------------------------


def detect_guide_kind(path: Path) -> tuple[str, str] | None:
    """(kind, format) of a guide or preprocessor model folder, or of an IP-Adapter
    .safetensors file; None when it is none of those."""
    if path.is_dir():
        config = read_config(path)
        if config is None:
            return None
        kind = DIFFUSERS_GUIDES.get(str(config.get("_class_name")))
        if kind is not None:
            return kind, ModelFormat.DIFFUSERS.value
        architectures = config.get("architectures") or [None]
        kind = TRANSFORMERS_MODELS.get(str(architectures[0])) or \
            TRANSFORMERS_MODEL_TYPES.get(str(config.get("model_type")))
        return (kind, ModelFormat.TRANSFORMERS.value) if kind else None
    if path.is_file() and path.suffix.lower() == ".safetensors":
        try:
            names = tensor_shapes(path)
        except SfumatoError:
            return None
        if any(k.startswith("image_proj.") for k in names) and any(
                k.startswith("ip_adapter.") for k in names):
            return ModelKind.IP_ADAPTER.value, ModelFormat.SAFETENSORS.value
    return None


@dataclass(frozen=True)
class IPAdapterFacts:
    variant: str  # "ip-adapter", "plus" (Plus and Plus Face), "full-face", "faceid"
    cross_attention_dim: int  # the UNet it fits
    image_features: int  # the encoder width it reads: projection (plain) or hidden size (Plus)


def ip_adapter_facts(path: Path) -> IPAdapterFacts:
    """The variant of an IP-Adapter .safetensors file and the sizes it fits, from its header."""
    shapes = tensor_shapes(path)
    to_k = shapes.get("ip_adapter.1.to_k_ip.weight")
    if to_k is None or len(to_k) != 2:
        raise SfumatoError(ErrorCode.CORRUPT_WEIGHTS,
                           f"{path.name} lacks ip_adapter.1.to_k_ip.weight; it is not a complete "
                           "IP-Adapter file")
    cross = int(to_k[1])
    if "image_proj.proj.weight" in shapes:
        return IPAdapterFacts("ip-adapter", cross, int(shapes["image_proj.proj.weight"][1]))
    if "image_proj.proj_in.weight" in shapes and "image_proj.latents" in shapes:
        return IPAdapterFacts("plus", cross, int(shapes["image_proj.proj_in.weight"][1]))
    if "image_proj.proj.3.weight" in shapes:
        return IPAdapterFacts("full-face", cross, int(shapes["image_proj.proj.0.weight"][0]))
    return IPAdapterFacts("faceid", cross, 0)


def guide_family_fits(entry: ModelEntry, unet_config: Any) -> bool:
    """Whether a ControlNet / T2I-Adapter / IP-Adapter was made for a UNet of this config
    (SD 1.5 vs SDXL: cross-attention width and SDXL's text-time conditioning), read from
    its config or header only, without loading it."""
    sdxl = getattr(unet_config, "addition_embed_type", None) == "text_time"
    cross = getattr(unet_config, "cross_attention_dim", None)
    if entry.kind == ModelKind.IP_ADAPTER.value:
        return ip_adapter_facts(Path(entry.path)).cross_attention_dim == cross
    config = read_config(Path(entry.path)) or {}
    if entry.kind == ModelKind.T2I_ADAPTER.value:
        return str(config.get("adapter_type", "")).endswith("_xl") == sdxl
    if entry.kind == ModelKind.CONTROLNET.value:
        if config.get("_class_name") != "ControlNetModel":
            return False  # a FLUX ControlNet fits no UNet
        return (config.get("addition_embed_type") == "text_time") == sdxl and \
            config.get("cross_attention_dim") == cross
    return False


def flux_controlnet(entry: ModelEntry) -> bool:
    return (read_config(Path(entry.path)) or {}).get("_class_name") == "FluxControlNetModel"


# --- loading --------------------------------------------------------------------------------


def load_guide_model(entry: ModelEntry, device: str) -> Any:
    """The loaded model of a guide or preprocessor entry, on `device`. IP-Adapters are not
    loaded here: diffusers loads them into a pipeline's UNet (core/guidance.py)."""
    import torch

    from .torchvision_guard import guard_torchvision

    path = Path(entry.path)
    check_folder_weights(path)
    dtype = torch.float32
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if flux_controlnet(entry) else torch.float16
    guard_torchvision()  # an unusable torchvision must look absent before these libraries look
    import diffusers
    if entry.kind in (ModelKind.CONTROLNET.value, ModelKind.T2I_ADAPTER.value):
        cls = getattr(diffusers, str((read_config(path) or {}).get("_class_name")))
        model = _guarded(path, lambda: cls.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, torch_dtype=dtype))
        return model.to(device).eval()
    if entry.kind == ModelKind.IMAGE_ENCODER.value:
        from transformers import CLIPVisionModelWithProjection

        model = _guarded(path, lambda: CLIPVisionModelWithProjection.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, dtype=dtype))
        return model.to(device).eval()
    if entry.kind == ModelKind.DEPTH_ESTIMATOR.value:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        model = _guarded(path, lambda: AutoModelForDepthEstimation.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, dtype=torch.float32))
        processor = _guarded(path, lambda: AutoImageProcessor.from_pretrained(
            str(path), local_files_only=True))
        return DepthEstimator(model.to(device).eval(), processor)
    if entry.kind == ModelKind.POSE_ESTIMATOR.value:
        from transformers import AutoImageProcessor, VitPoseForPoseEstimation

        model = _guarded(path, lambda: VitPoseForPoseEstimation.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, dtype=torch.float32))
        processor = _guarded(path, lambda: AutoImageProcessor.from_pretrained(
            str(path), local_files_only=True))
        return PoseEstimator(model.to(device).eval(), processor)
    raise SfumatoError(ErrorCode.WRONG_MODEL_KIND,
                       f"model {entry.name!r} is a {entry.kind} model, not a guide or a "
                       "preprocessor model")


@dataclass
class DepthEstimator:
    model: Any
    processor: Any


@dataclass
class PoseEstimator:
    model: Any  # a ViTPose model: keypoint heatmaps for one person's box
    processor: Any  # its image processor: the box size and normalisation


def check_folder_weights(path: Path) -> None:
    """Refuse a model folder that holds only pickle weights, or no weights at all."""
    if not path.is_dir():
        if path.suffix.lower() != ".safetensors":
            raise SfumatoError(ErrorCode.UNSAFE_WEIGHTS,
                               f"{path.name} is not .safetensors; sfumato loads only safetensors")
        tensor_shapes(path)
        return
    files = [p for p in path.iterdir() if p.is_file()]
    safe = [p for p in files if p.name.endswith(".safetensors")]
    if not safe:
        pickles = [p.name for p in files if p.name.endswith(_PICKLE_SUFFIXES)]
        if pickles:
            raise SfumatoError(
                ErrorCode.UNSAFE_WEIGHTS,
                f"{path.name}/{pickles[0]} is a pickle weights file, which can run code when "
                "loaded; sfumato loads only .safetensors. Use the model's safetensors release",
            )
        raise SfumatoError(ErrorCode.CORRUPT_WEIGHTS,
                           f"{path} has no .safetensors weights; copy the complete folder again")
    for weights in safe:
        tensor_shapes(weights)  # names the damaged file, if one is


def read_config(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _guarded(path: Path, load: Any) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return load()
    except SfumatoError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"the model at {path} could not be loaded ({error_detail(exc, 300)}); check that it "
            "is complete and of the kind it was registered as",
        ) from None
