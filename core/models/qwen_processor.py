"""Qwen-Image-Edit's picture reader (Qwen2.5-VL's processor) without torchvision.

The edit pipelines call `processor(text=..., images=..., padding=True, return_tensors="pt")`
and read input_ids, attention_mask, pixel_values and image_grid_thw: pictures only, never
video. transformers builds Qwen2VLProcessor with a video processor, which exists only with a
working torchvision (PyPI's torchvision is a CUDA build that cannot load beside a CPU torch).
So the processor is built here from the model's own `processor/` folder with the image part
alone: transformers' PIL image processor for Qwen2-VL (the same resize, normalisation and
patching as the torchvision one) and the folder's tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"


def load_qwen_processor(folder: Path) -> Any:
    """The picture-only Qwen2.5-VL processor from a diffusers folder's `processor/` part."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    part = Path(folder) / "processor"
    if not (part / "preprocessor_config.json").is_file():
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"{part} has no preprocessor_config.json (Qwen2.5-VL's image settings); copy the "
            "complete model folder again",
        )
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(part), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(part), local_files_only=True)
    if tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) in (None, tokenizer.unk_token_id):
        raise SfumatoError(
            ErrorCode.CORRUPT_WEIGHTS,
            f"the tokenizer in {part} has no {IMAGE_TOKEN} token; this is not a Qwen2.5-VL "
            "processor folder",
        )
    return _processor_class()(image_processor=image_processor, tokenizer=tokenizer)


def _processor_class() -> type:
    from transformers import Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class PictureQwenProcessor(Qwen2VLProcessor):  # type: ignore[misc]
        """Qwen2VLProcessor with its image processor and tokenizer only (no video part)."""

        # transformers takes a processor's parts from its __init__'s parameter names
        def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                     chat_template: str | None = None, **kwargs: Any) -> None:
            self.image_token, self.video_token = IMAGE_TOKEN, VIDEO_TOKEN
            self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
            self.video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
            ProcessorMixin.__init__(self, image_processor, tokenizer,
                                    chat_template=chat_template)

    return PictureQwenProcessor
