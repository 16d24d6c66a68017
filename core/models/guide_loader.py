"""Guide models (ControlNet, T2I-Adapter, IP-Adapter and the image encoder it reads with) and
preprocessor models (depth, pose): what a local file or folder is, and loading one through
diffusers' or transformers' own loaders. Only .safetensors weights are read; nothing is fetched.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.checkpoint_header import corrupt_weights, tensor_shapes
from sfumato.core.models.guarded_load import load_or_refuse
from sfumato.core.models.registry import ModelEntry, ModelFormat, ModelKind

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
    "SamModel": ModelKind.SEGMENTER.value,
    "Sam2Model": ModelKind.SEGMENTER.value,
    "Sam3Model": ModelKind.SEGMENTER.value,
    "VitMatteForImageMatting": ModelKind.MATTING.value,
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
        if single_file_controlnet(names) is not None:
            return ModelKind.CONTROLNET.value, ModelFormat.SINGLE_FILE.value
    return None


@dataclass(frozen=True)
class ControlNetFacts:
    """What a single-file SD 1.5 / SDXL ControlNet is, from its tensor names and shapes."""

    prefix: str  # "control_model." (original layout), "" (bare original or diffusers layout)
    diffusers_layout: bool
    sdxl: bool  # it has SDXL's text-time embedding
    cross_attention_dim: int | None

    @property
    def family(self) -> str:
        return "SDXL" if self.sdxl else "SD 1.5"


def single_file_controlnet(shapes: dict[str, tuple[int, ...]]) -> ControlNetFacts | None:
    """A ControlNet kept as one .safetensors file (ComfyUI models/controlnet, A1111
    models/ControlNet): the original layout (`input_hint_block`, `zero_convs`, usually under
    `control_model.`) or diffusers' names saved as one file; None when it is neither."""
    facts = None
    for prefix in ("control_model.", ""):
        if f"{prefix}input_hint_block.0.weight" in shapes and \
                f"{prefix}zero_convs.0.0.weight" in shapes:
            facts = prefix, False, f"{prefix}label_emb.0.0.weight" in shapes
            break
    else:
        if "controlnet_cond_embedding.conv_in.weight" in shapes and \
                "controlnet_down_blocks.0.weight" in shapes:
            facts = "", True, "add_embedding.linear_1.weight" in shapes
    if facts is None:
        return None
    cross = next((shape[1] for key, shape in shapes.items()
                  if key.endswith("attn2.to_k.weight") and len(shape) == 2), None)
    return ControlNetFacts(*facts, cross_attention_dim=cross)


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


def read_ip_adapter(path: Path) -> dict[str, dict[str, Any]]:
    """An IP-Adapter .safetensors file's tensors split as diffusers' load_ip_adapter takes a
    state dict ({"image_proj": ..., "ip_adapter": ...})."""
    from safetensors.torch import load_file

    ip_adapter_facts(path)  # refuses an incomplete file before reading it
    parts: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # SafetensorError for a damaged file, OSError
        raise corrupt_weights(path, exc) from None
    for key, tensor in tensors.items():
        part, _, name = key.partition(".")
        if part in parts:
            parts[part][name] = tensor
    return parts


def guide_family_fits(entry: ModelEntry, unet_config: Any) -> bool:
    """Whether a ControlNet / T2I-Adapter / IP-Adapter was made for a UNet of this config
    (SD 1.5 vs SDXL: cross-attention width and SDXL's text-time conditioning), read from
    its config or header only, without loading it."""
    sdxl = getattr(unet_config, "addition_embed_type", None) == "text_time"
    cross = getattr(unet_config, "cross_attention_dim", None)
    if entry.kind == ModelKind.IP_ADAPTER.value:
        return ip_adapter_facts(Path(entry.path)).cross_attention_dim == cross
    if entry.kind == ModelKind.CONTROLNET.value and entry.format == ModelFormat.SINGLE_FILE.value:
        facts = single_file_controlnet(tensor_shapes(Path(entry.path)))
        return facts is not None and facts.sdxl == sdxl and facts.cross_attention_dim == cross
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


def load_guide_model(entry: ModelEntry, device: str, unet_config: Any = None) -> Any:
    """The loaded model of a guide or preprocessor entry, on `device`. IP-Adapters are not
    loaded here: diffusers loads them into a pipeline's UNet (core/guidance.py). A single-file
    ControlNet needs `unet_config`, the config of the UNet it runs beside."""
    import torch
    from sfumato.core.models.torchvision_guard import guard_torchvision

    path = Path(entry.path)
    check_folder_weights(path)
    dtype = torch.float32
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if flux_controlnet(entry) else torch.float16
    guard_torchvision()  # an unusable torchvision must look absent before these libraries look
    import diffusers
    if entry.kind == ModelKind.CONTROLNET.value and entry.format == ModelFormat.SINGLE_FILE.value:
        return _single_file_controlnet(path, unet_config, dtype).to(device).eval()
    if entry.kind in (ModelKind.CONTROLNET.value, ModelKind.T2I_ADAPTER.value):
        cls = getattr(diffusers, str((read_config(path) or {}).get("_class_name")))
        model = load_or_refuse(path, lambda: cls.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, torch_dtype=dtype))
        return model.to(device).eval()
    if entry.kind == ModelKind.IMAGE_ENCODER.value:
        from transformers import CLIPVisionModelWithProjection

        model = load_or_refuse(path, lambda: CLIPVisionModelWithProjection.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, dtype=dtype))
        return model.to(device).eval()
    if entry.kind == ModelKind.DEPTH_ESTIMATOR.value:
        from transformers import AutoModelForDepthEstimation

        return DepthEstimator(*_with_processor(path, AutoModelForDepthEstimation, device))
    if entry.kind == ModelKind.POSE_ESTIMATOR.value:
        from transformers import VitPoseForPoseEstimation

        return PoseEstimator(*_with_processor(path, VitPoseForPoseEstimation, device))
    raise SfumatoError(ErrorCode.WRONG_MODEL_KIND,
                       f"model {entry.name!r} is a {entry.kind} model, not a guide or a "
                       "preprocessor model")


def controlnet_config(unet_config: Any, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The diffusers config of a single-file ControlNet: a ControlNet is a trained copy of its
    base UNet's encoder, so the UNet's config gives what the file cannot tell (attention heads,
    norm groups); the file's shapes give what ControlNets change (input and hint channels,
    cross-attention width, transformer depth of the "small"/"mid" SDXL variants)."""
    import diffusers

    facts = single_file_controlnet(shapes)
    if facts is None or unet_config is None:
        raise SfumatoError(ErrorCode.INTERNAL, "a single-file ControlNet loads beside a UNet")
    accepted = inspect.signature(diffusers.ControlNetModel.__init__).parameters
    config = {k: v for k, v in dict(unet_config).items() if k in accepted}
    names = _original_names(shapes, facts)
    conv_in = names.get("input_blocks.0.0.weight")
    if conv_in is not None:
        config["in_channels"] = int(conv_in[1])
    hint_in = names["input_hint_block.0.weight"]
    config["conditioning_channels"] = int(hint_in[1])
    hint = sorted((int(k.split(".")[1]), shape) for k, shape in names.items()
                  if re.fullmatch(r"input_hint_block\.\d+\.weight", k))
    # conv_in, then pairs of blocks (same width, then a strided step up), then conv_out
    widths = [int(hint_in[0])] + [int(shape[0]) for _, shape in hint[1:-1]][1::2]
    config["conditioning_embedding_out_channels"] = widths
    if facts.cross_attention_dim is not None:
        config["cross_attention_dim"] = facts.cross_attention_dim
    layers = int(config.get("layers_per_block", 2))
    depths = []
    for block in range(len(config.get("block_out_channels", ()))):
        pattern = rf"down_blocks\.{block}\.attentions\.0\.transformer_blocks\.(\d+)\." \
            if facts.diffusers_layout else \
            rf"input_blocks\.{1 + block * (layers + 1)}\.1\.transformer_blocks\.(\d+)\."
        found = {int(m[1]) for k in names if (m := re.match(pattern, k))}
        depths.append(max(found) + 1 if found else 1)
    config["transformer_layers_per_block"] = depths
    return {"_class_name": "ControlNetModel", **config}


def _original_names(shapes: dict[str, tuple[int, ...]],
                    facts: ControlNetFacts) -> dict[str, tuple[int, ...]]:
    """The file's shapes under original-layout names, whichever layout it is in."""
    if not facts.diffusers_layout:
        return {k.removeprefix(facts.prefix): v for k, v in shapes.items()
                if k.startswith(facts.prefix)}
    renamed = {
        "conv_in.weight": "input_blocks.0.0.weight",
        "controlnet_cond_embedding.conv_in.weight": "input_hint_block.0.weight",
        "controlnet_cond_embedding.conv_out.weight": "input_hint_block.99.weight",  # the last
    }
    named = {ldm: shapes[key] for key, ldm in renamed.items() if key in shapes}
    for key, shape in shapes.items():
        if m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.weight", key):
            named[f"input_hint_block.{2 * (int(m[1]) + 1)}.weight"] = shape
        if key.startswith("down_blocks."):
            named[key] = shape  # transformer depths are counted under diffusers' names
    return named


def _with_processor(path: Path, model_class: Any, device: str) -> tuple[Any, Any]:
    """A transformers preprocessor model and the image processor saved beside it; float32
    everywhere, since it runs once per job, on one picture."""
    import torch
    from transformers import AutoImageProcessor

    model = load_or_refuse(path, lambda: model_class.from_pretrained(
        str(path), local_files_only=True, use_safetensors=True, dtype=torch.float32))
    processor = load_or_refuse(path, lambda: AutoImageProcessor.from_pretrained(
        str(path), local_files_only=True))
    return model.to(device).eval(), processor

def _single_file_controlnet(path: Path, unet_config: Any, dtype: Any) -> Any:
    """Through diffusers' own single-file loader, with the config written to a private
    folder (diffusers would otherwise fetch a default config from the hub)."""
    import tempfile

    import diffusers
    import torch
    from safetensors import safe_open

    shapes = tensor_shapes(path)
    config = controlnet_config(unet_config, shapes)
    facts = single_file_controlnet(shapes)
    # diffusers' converter (0.42) drops the SDXL text-time embedding of the original layout
    # (`label_emb`): those two linear layers are made in memory, then read here by LDM name
    label_emb = facts is not None and facts.sdxl and not facts.diffusers_layout
    with tempfile.TemporaryDirectory(prefix="sfumato-controlnet-") as folder:
        (Path(folder) / "config.json").write_text(json.dumps(config))
        model = load_or_refuse(path, lambda: diffusers.ControlNetModel.from_single_file(
            str(path), config=folder, local_files_only=True, torch_dtype=dtype,
            low_cpu_mem_usage=not label_emb))
    if label_emb:
        with safe_open(str(path), framework="pt") as handle, torch.no_grad():
            for layer, ldm in ((model.add_embedding.linear_1, "label_emb.0.0"),
                               (model.add_embedding.linear_2, "label_emb.0.2")):
                for name in ("weight", "bias"):
                    key = f"{facts.prefix}{ldm}.{name}"  # type: ignore[union-attr]
                    getattr(layer, name).copy_(handle.get_tensor(key))
    return model


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

