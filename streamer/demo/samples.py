"""The demo's sample set: real photos that ship inside scikit-image, and short texts.

Each text pair is (indexed sentence, a paraphrase used as the query).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from streamer.core.extras import require

__all__ = ["PHOTOS", "TEXT_PAIRS", "sample_photo", "transformed_copy", "write_photos"]

PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
    "rocket", "text", "cell", "stereo_motorcycle",
)  # fmt: skip

TEXT_PAIRS = (
    ("A barista pours steamed milk into a cup of espresso.", "someone making a latte"),
    ("The cat is sleeping on the warm windowsill.", "a kitten napping in the sun"),
    ("The rocket lifted off from the launch pad at dawn.", "a spacecraft launching in the morning"),
    ("Heavy rain flooded the streets of the city overnight.", "urban flooding after a storm"),
    ("She scored the winning goal in the final minute.", "a last-second victory in football"),
    ("The bakery sells fresh sourdough bread every morning.", "where to buy artisan loaves"),
    ("Our quarterly revenue grew by twelve percent.", "company sales increased this quarter"),
    ("The hikers reached the summit before the snowstorm.", "climbers got to the mountain top"),
    ("He fixed the leaking kitchen faucet with a new washer.", "repairing a dripping tap"),
    ("The telescope captured images of a distant galaxy.", "astronomy photos of deep space"),
    (
        "Vaccines train the immune system to fight viruses.",
        "how immunization protects against disease",
    ),
    ("The train to Berlin was delayed by two hours.", "late railway departure to Germany"),
    ("Add two cups of flour and stir until smooth.", "a baking recipe step"),
    ("The museum opened a new exhibit on ancient Egypt.", "pharaoh artifacts on display"),
    ("Electric cars are becoming cheaper to buy.", "falling prices of EVs"),
    (
        "The child learned to ride a bicycle without training wheels.",
        "a kid cycling for the first time",
    ),
    ("Solar panels convert sunlight into electricity.", "photovoltaic energy generation"),
    ("The orchestra performed Beethoven's ninth symphony.", "a classical music concert"),
    (
        "Our flight was cancelled because of fog at the airport.",
        "plane grounded due to bad weather",
    ),
    (
        "The doctor recommended more sleep and less coffee.",
        "medical advice about rest and caffeine",
    ),
    ("A new smartphone model was announced yesterday.", "launch of the latest mobile phone"),
    ("The river froze completely during the cold winter.", "ice covering the water in January"),
    (
        "Programmers use version control to track changes in code.",
        "git keeps history of source files",
    ),
    ("The dog fetched the ball from the lake.", "a puppy retrieving a toy from the water"),
    ("Wildfires spread quickly through the dry forest.", "bushfire burning trees in a drought"),
    ("The chef seasoned the soup with basil and garlic.", "cooking with herbs"),
    ("Stock markets fell sharply after the announcement.", "shares dropped on the news"),
    (
        "The library extended its opening hours for exams.",
        "students can study later at the library",
    ),
    ("Bees pollinate flowers while collecting nectar.", "insects helping plants reproduce"),
    (
        "The marathon runner crossed the finish line exhausted.",
        "tired athlete completing a long race",
    ),
)


def sample_photo(name: str) -> Image.Image:
    """One of the scikit-image sample photos (``PHOTOS``), as RGB."""
    require("skimage", extra="embedded", feature="the demo's sample photos")
    from skimage import data

    array = getattr(data, name)()
    if isinstance(array, tuple):  # stereo pairs: the left view
        array = array[0]
    return Image.fromarray(np.asarray(array)).convert("RGB")


def write_photos(folder: Path, *, quality: int = 92) -> dict[str, Path]:
    """Write each sample photo as a JPEG under ``folder``; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in PHOTOS:
        path = folder / f"{name}.jpg"
        if not path.exists():
            sample_photo(name).save(path, "JPEG", quality=quality)
        paths[name] = path
    return paths


def transformed_copy(path: Path, variant: int) -> bytes:
    """A resized, recompressed and cropped copy of a photo, as JPEG bytes."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    crop = (0.08, 0.05, 0.12)[variant % 3]
    scale = (0.6, 0.45, 0.8)[variant % 3]
    left, top = int(width * crop), int(height * crop / 2)
    image = image.crop((left, top, width - int(width * crop / 2), height - int(height * crop)))
    image = image.resize((max(32, int(image.width * scale)), max(32, int(image.height * scale))))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=(40, 55, 30)[variant % 3])
    return buffer.getvalue()
