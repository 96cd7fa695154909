"""Turn medical pixel data into the 8-bit RGB images vision encoders expect.

DICOM needs care that photo libraries don't give: stored values must go through the modality LUT (e.g. CT to
Hounsfield units), a display window, MONOCHROME1 inversion (bone is stored dark) and palette/colour conversion.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["dicom_to_pil", "array_to_pil", "downscale", "encode_image", "DEFAULT_MAX_SIDE"]

DEFAULT_MAX_SIDE = 512
CT_SOFT_TISSUE_WINDOW = (40.0, 400.0)  # centre, width in HU; used when a CT header carries no window


def _first(value) -> float | None:
    try:  # None and "" (an empty DICOM value) fail float() too
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None


def _header_window(ds) -> tuple[float, float] | None:
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is None or not width:
        return CT_SOFT_TISSUE_WINDOW if ds.get("Modality") == "CT" and "RescaleIntercept" in ds else None
    return centre, width


def _window_to_uint8(values: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    values = values.astype(np.float32)
    if window is None:  # no window in the header: robust min-max on the 1st-99th percentile
        low, high = np.percentile(values, [1, 99])
    else:
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    high = high if high > low else low + 1
    return (np.clip((values - low) / (high - low), 0, 1) * 255).round().astype(np.uint8)


def dicom_to_pil(ds, *, frame: int | None = None, burn_overlay: bool = False) -> Image.Image:
    """Render a pydicom dataset as an 8-bit RGB image (middle frame of a multi-frame file unless `frame`)."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    photometric = ds.get("PhotometricInterpretation", "MONOCHROME2")
    pixels, frames = ds.pixel_array, int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        pixels = pixels[frame if frame is not None else frames // 2]
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        rgb = (rgb >> 8).astype(np.uint8) if rgb.dtype != np.uint8 else rgb
        return Image.fromarray(rgb, "RGB")
    if pixels.ndim == 3:  # RGB (pydicom already converted YBR to RGB)
        return Image.fromarray(pixels.astype(np.uint8), "RGB")
    gray = _window_to_uint8(apply_modality_lut(pixels, ds), _header_window(ds))
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    if burn_overlay and (0x6000, 0x3000) in ds:
        gray = np.where(ds.overlay_array(0x6000).astype(bool), 255, gray).astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")


def array_to_pil(array: np.ndarray) -> Image.Image:
    """A uint8 grey or RGB array (e.g. scikit-image sample data) as an RGB image."""
    if array.dtype != np.uint8:
        array = _window_to_uint8(array, None)
    return Image.fromarray(array).convert("RGB")


def downscale(image: Image.Image, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """Shrink so the longest side is at most `max_side` (aspect ratio kept); smaller images are returned as is."""
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, fmt: str = "PNG") -> dict:
    """`{"bytes", "path"}` as the `datasets.Image` feature stores it (so writers need no re-encoding)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return {"bytes": buffer.getvalue(), "path": None}
