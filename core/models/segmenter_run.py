"""One segmenter (SAM, SAM 2.1 or SAM 3) answering prompts on a picture: the picture as the
model sees it, prompts mapped into the model's pixels, the image encoder's embeddings kept per
picture (a second prompt on the same layer version skips the encoder), and the low-resolution
mask mapped back onto the picture's pixels.

Pre- and post-processing are written here rather than taken from transformers' processors:
SAM 2's and SAM 3's need torchvision (unusable beside a CPU torch), and a 4096² layer must not
be resized again for every click. They follow SamProcessor / Sam2Processor exactly (the tests
compare the coordinates with theirs): SAM resizes the longest side to its working size and pads
the rest; SAM 2 and SAM 3 stretch the picture to the working square.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import WORDS_FAMILY
from sfumato.core.errors import SfumatoError

FAMILY_OF_ARCHITECTURE = {"SamModel": "sam", "Sam2Model": "sam2", "Sam3Model": "sam3"}
FAMILY_NAMES = {"sam": "SAM", "sam2": "SAM 2.1", "sam3": "SAM 3"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what SAM and SAM 2 were trained on
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # SAM 3's normalisation
EMBEDDINGS_KEPT = 4  # layer versions whose encoder output is kept (a few MB each)
SUBJECT_WORDS = "the main subject"  # SAM 3's prompt for "select subject"
WORDS_THRESHOLD = 0.3  # Sam3Processor's default score for keeping an instance


@dataclass(frozen=True)
class Prompts:
    """What to select, in the picture's pixels: points (x, y, 1 include / 0 exclude), a box
    (x0, y0, x1, y1) and words. None of them: the main subject."""

    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    text: str = ""

    @property
    def subject(self) -> bool:
        return not self.points and self.box is None and not self.text


class Segmenter:
    """A loaded segmenter; kept in the model cache, so its embeddings go when it goes."""

    def __init__(self, family: str, model: Any, device: str, tokenizer: Any = None) -> None:
        self.family = family
        self.model = model
        self.device = device
        self.tokenizer = tokenizer
        self.side = int(_image_size(model.config))
        self._embeddings: OrderedDict[str, Any] = OrderedDict()
        self.encoder_runs = 0  # how often the image encoder ran (the cache's effect)

    @property
    def name(self) -> str:
        return FAMILY_NAMES[self.family]

    @property
    def takes_words(self) -> bool:
        return self.family == "sam3"

    # --- geometry: picture pixels <-> model pixels -----------------------------------------

    def scaled_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the picture inside the model's square."""
        if self.family != "sam":
            return self.side, self.side
        scale = self.side / max(height, width)  # SamImageProcessor._get_preprocess_shape
        return int(height * scale + 0.5), int(width * scale + 0.5)

    def to_model(self, xy: np.ndarray, height: int, width: int) -> np.ndarray:
        """Picture coordinates (..., 2) as the model's prompt encoder takes them."""
        scaled_h, scaled_w = self.scaled_size(height, width)
        out = np.asarray(xy, np.float64).copy()
        out[..., 0] *= scaled_w / width
        out[..., 1] *= scaled_h / height
        return out

    def from_model(self, xy: np.ndarray, height: int, width: int) -> np.ndarray:
        """The inverse of `to_model`."""
        scaled_h, scaled_w = self.scaled_size(height, width)
        out = np.asarray(xy, np.float64).copy()
        out[..., 0] *= width / scaled_w
        out[..., 1] *= height / scaled_h
        return out

    def model_input(self, rgba8: np.ndarray) -> np.ndarray:
        """The picture as the model sees it: (side, side, 3) uint8, resized (and, for SAM,
        padded with black at the bottom and right); transparent pixels show mid grey."""
        from PIL import Image

        height, width = rgba8.shape[:2]
        scaled_h, scaled_w = self.scaled_size(height, width)
        pixels = np.ascontiguousarray(rgba8)
        # PIL premultiplies RGBA while resizing, so transparent colour never bleeds in; an
        # opaque layer is read as RGBX (alpha ignored), which skips that pass
        mode = "RGBX" if int(pixels[..., 3].min()) == 255 else "RGBA"
        image = Image.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1)
        small = np.asarray(image.resize((scaled_w, scaled_h), Image.Resampling.BILINEAR,
                                        reducing_gap=3.0))
        if mode == "RGBX":
            small = small.copy()
            small[..., 3] = 255
        alpha = small[..., 3:4].astype(np.float32) / 255.0
        rgb = small[..., :3].astype(np.float32) * alpha + 127.5 * (1.0 - alpha)
        square = np.zeros((self.side, self.side, 3), np.uint8)
        square[:scaled_h, :scaled_w] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        return square

    # --- running -------------------------------------------------------------------------

    def segment(self, rgba8: np.ndarray, prompts: Prompts) -> np.ndarray:
        """The selected object as a bool (H, W) mask of the picture."""
        if prompts.text and not self.takes_words:
            raise words_refused(self.name)
        height, width = rgba8.shape[:2]
        square = self.model_input(rgba8)
        embeddings = self.embeddings(square, self.scaled_size(height, width))
        if self.family == "sam3":
            low_res = self.decode_words(embeddings, prompts, height, width)
        else:
            low_res = self._decode_prompts(embeddings, prompts, height, width)
        return self._to_picture(low_res, height, width) > 0

    def embeddings(self, square: np.ndarray, scaled: tuple[int, int]) -> Any:
        """The image encoder's output for this model input (`scaled`: the picture's part of
        the square), from the cache when the same picture (layer version) was encoded
        before: the key is the model input itself, so any change to the layer misses."""
        key = hashlib.blake2b(square.data, digest_size=16, person=b"%dx%d" % scaled).hexdigest()
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            return self._embeddings[key]
        import torch

        mean, std = (HALF, HALF) if self.family == "sam3" else (IMAGENET_MEAN, IMAGENET_STD)
        pixels = torch.from_numpy(square).to(self.device).permute(2, 0, 1)[None].float() / 255
        pixels = (pixels - torch.tensor(mean, device=self.device)[:, None, None]) / \
            torch.tensor(std, device=self.device)[:, None, None]
        if self.family == "sam":  # SAM pads with zeros after normalising
            scaled_h, scaled_w = scaled
            pixels[..., scaled_h:, :] = 0
            pixels[..., :, scaled_w:] = 0
        with torch.inference_mode():
            if self.family == "sam3":
                found = self.model.get_vision_features(pixel_values=pixels)
            else:
                found = self.model.get_image_embeddings(pixels)
        self.encoder_runs += 1
        self._embeddings[key] = found
        while len(self._embeddings) > EMBEDDINGS_KEPT:
            self._embeddings.popitem(last=False)
        return found

    def decode(self, embeddings: Any, points: np.ndarray | None, labels: np.ndarray | None,
               box: np.ndarray | None, multimask: bool) -> tuple[Any, Any]:
        """The mask decoder: low-resolution mask logits (N, h, w) and their predicted IoU (N,),
        prompts already in model pixels. The model's boundary (tests inject a known mask here)."""
        import torch

        kwargs: dict[str, Any] = {"image_embeddings": embeddings, "multimask_output": multimask}
        if points is not None and labels is not None:
            kwargs["input_points"] = torch.tensor(points, dtype=torch.float32,
                                                  device=self.device)[None, None]
            kwargs["input_labels"] = torch.tensor(labels, dtype=torch.long,
                                                  device=self.device)[None, None]
        if box is not None:
            kwargs["input_boxes"] = torch.tensor(box, dtype=torch.float32,
                                                 device=self.device)[None, None]
        with torch.inference_mode():
            out = self.model(**kwargs)
        return out.pred_masks[0, 0], out.iou_scores[0, 0]

    def decode_words(self, embeddings: Any, prompts: Prompts, height: int, width: int) -> Any:
        """SAM 3: every object the words (and box) name, as one low-resolution logit map (the
        union of the instances scoring above WORDS_THRESHOLD, as Sam3Processor keeps them)."""
        import torch

        if prompts.points:
            raise SfumatoError(ErrorCode.BAD_PARAMS, "a SAM 3 segmenter takes words and a box, "
                               "not points; for clicks choose a SAM or SAM 2.1 segmenter")
        # Sam3Processor's words for a box alone; the subject gets a subject prompt
        words = prompts.text or (SUBJECT_WORDS if prompts.subject else "visual")
        tokens = self.tokenizer([words], padding="max_length", max_length=32, truncation=True,
                                return_tensors="pt")
        box = None
        if prompts.box is not None:  # Sam3Processor: normalised to [0, 1], centre and size
            require_torchvision("SAM 3's box prompts (roi_align)")
            x0, y0, x1, y1 = prompts.box
            box = np.array([(x0 + x1) / 2 / width, (y0 + y1) / 2 / height,
                            (x1 - x0) / width, (y1 - y0) / height])
        logits, scores = self.decode_text(embeddings, tokens.input_ids.to(self.device),
                                          tokens.attention_mask.to(self.device), box)
        keep = scores > WORDS_THRESHOLD
        if not bool(keep.any()):
            if not prompts.subject:
                return torch.full_like(logits[0], -1.0)  # nothing of that name: empty
            keep = scores == scores.max()  # there is always a main subject
        return logits[keep].max(dim=0).values

    def decode_text(self, embeddings: Any, input_ids: Any, attention_mask: Any,
                    box: np.ndarray | None) -> tuple[Any, Any]:
        """SAM 3's detector and mask decoder: per-instance low-resolution mask logits (Q, h, w)
        and their scores (Q,), the presence score folded in. The model's boundary."""
        import torch

        kwargs: dict[str, Any] = {"vision_embeds": embeddings, "input_ids": input_ids,
                                  "attention_mask": attention_mask}
        if box is not None:
            kwargs["input_boxes"] = torch.tensor(box, dtype=torch.float32,
                                                 device=self.device)[None, None]
            kwargs["input_boxes_labels"] = torch.ones((1, 1), dtype=torch.long,
                                                      device=self.device)
        with torch.inference_mode():
            out = self.model(**kwargs)
        scores = out.pred_logits[0].sigmoid()
        if getattr(out, "presence_logits", None) is not None:
            scores = scores * out.presence_logits[0].sigmoid()
        return out.pred_masks[0], scores

    def _decode_prompts(self, embeddings: Any, prompts: Prompts, height: int,
                        width: int) -> Any:
        points = labels = box = None
        if prompts.points:
            raw = np.array([(x, y) for x, y, _ in prompts.points], np.float64)
            points = self.to_model(raw, height, width)
            labels = np.array([label for _, _, label in prompts.points], np.int64)
        if prompts.box is not None or prompts.subject:
            corners = prompts.box or (0.0, 0.0, float(width), float(height))
            box = self.to_model(np.array(corners, np.float64).reshape(2, 2),
                                height, width).reshape(4)
        # one point is ambiguous (a shirt or the person?): ask for three and keep the best;
        # the subject is the largest of the three objects in the whole layer's box
        several = prompts.subject or (len(prompts.points) == 1 and box is None)
        logits, scores = self.decode(embeddings, points, labels, box, several)
        if prompts.subject:
            best = int((logits > 0).flatten(1).sum(1).argmax())
        else:
            best = int(scores.argmax())
        return logits[best]

    def _to_picture(self, low_res: Any, height: int, width: int) -> np.ndarray:
        """Low-resolution logits as (H, W) float32 over the picture (bilinear, as
        post_process_masks does)."""
        import torch.nn.functional as F

        logits = low_res[None, None].float()
        if self.family == "sam":  # up to the padded square, drop the padding
            scaled_h, scaled_w = self.scaled_size(height, width)
            logits = F.interpolate(logits, (self.side, self.side), mode="bilinear",
                                   align_corners=False)[..., :scaled_h, :scaled_w]
        logits = F.interpolate(logits, (height, width), mode="bilinear", align_corners=False)
        return logits[0, 0].cpu().numpy()


def require_torchvision(what: str) -> None:
    """A typed refusal when torchvision is unusable (the guard hid it) and `what` needs it."""
    try:
        import torchvision.ops  # noqa: F401
    except ImportError:
        from sfumato.core.models.torchvision_guard import torchvision_hint

        raise SfumatoError(ErrorCode.MISSING_DEPENDENCY, f"{what} need torchvision, which is "
                           f"unusable here: {torchvision_hint()}; meanwhile give words alone, "
                           "or use a SAM 2.1 segmenter for boxes") from None


def words_refused(family: str) -> SfumatoError:
    return SfumatoError(ErrorCode.WRONG_MODEL_KIND, f"a {family} segmenter cannot take words; "
                        f"words need a {WORDS_FAMILY} segmenter (kind segmenter, Sam3Model): "
                        "register one with `sfumato models add NAME FOLDER` and choose it, or "
                        "select with points or a box instead")


def _image_size(config: Any) -> int:
    prompt = getattr(config, "prompt_encoder_config", None)
    if prompt is not None:
        return int(prompt.image_size)
    vision = config.vision_config
    size = getattr(vision, "image_size", None) or vision.backbone_config.image_size
    return int(size[0] if isinstance(size, list | tuple) else size)

