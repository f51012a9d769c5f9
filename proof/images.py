"""An uploaded image made safe to keep: a real JPEG, PNG or WebP within the size limits, turned
upright, scaled down, and re-encoded without any metadata (EXIF and its GPS position gone)."""

import io
import warnings
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from dispatch.errors import InvalidInput

ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP"}


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def image_cleaned(upload: IO[bytes], *, keep_transparency: bool) -> CleanImage:
    """The upload as an image fit to store, or InvalidInput saying why not. A signature keeps
    its transparency (PNG); a photo becomes a JPEG."""
    raw = upload.read(settings.DISPATCH_PROOF_MAX_BYTES + 1)
    if len(raw) > settings.DISPATCH_PROOF_MAX_BYTES:
        raise InvalidInput(f"The image is larger than {settings.DISPATCH_PROOF_MAX_BYTES} bytes.", field="file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, do not merely warn
            with Image.open(io.BytesIO(raw)) as probe:
                image_format = probe.format
                probe.verify()  # a truncated or forged file fails here, before it is decoded
            with Image.open(io.BytesIO(raw)) as opened:
                if opened.width * opened.height > settings.DISPATCH_PROOF_MAX_PIXELS:
                    raise InvalidInput("The image has too many pixels.", field="file")
                image = ImageOps.exif_transpose(opened)
                image.load()
    except InvalidInput:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInput("The file is not an image we can read (JPEG, PNG or WebP).", field="file") from exc
    if image_format not in ACCEPTED_FORMATS:
        raise InvalidInput("The image must be a JPEG, PNG or WebP.", field="file")
    image.thumbnail((settings.DISPATCH_PROOF_MAX_SIDE_PX, settings.DISPATCH_PROOF_MAX_SIDE_PX))
    pixels = image.convert("RGBA" if keep_transparency else "RGB")
    pixels.info = {}  # Pillow writes a file's comment, colour profile and the like back from here
    out = io.BytesIO()
    if keep_transparency:
        pixels.save(out, format="PNG", optimize=True)
        return CleanImage(out.getvalue(), "image/png", "png", pixels.width, pixels.height)
    pixels.save(out, format="JPEG", quality=85, optimize=True)  # no exif= argument: no EXIF either
    return CleanImage(out.getvalue(), "image/jpeg", "jpg", pixels.width, pixels.height)
