"""The invoice PDF's font: Noto Sans regular and bold, from the fontpkg-noto-sans package.

The package (SIL Open Font License 1.1) ships Noto Sans as one variable font (weight and width
axes). A PDF embeds static fonts, so the regular (400) and bold (700) instances are cut once per
process, on the first invoice rendered, into a private temporary directory (about 2 s of CPU;
in Kubernetes /tmp is the pod's scratch volume) and every later document loads those files.
"""

import functools
import tempfile
import threading
from pathlib import Path

import fontpkg
from fontTools import ttLib
from fontTools.varLib import instancer

FAMILY = "NotoSans"
# fpdf2 style ("" regular, "B" bold) → weight.
WEIGHTS = {"": 400, "B": 700}
# OpenType layout (kerning, ligatures): fpdf2 drops it when it embeds a font (no text shaping),
# and instancing it is most of the work (about 8 s a weight with it, 1 s without).
_LAYOUT_TABLES = ("GDEF", "GPOS", "GSUB")

_lock = threading.Lock()


def _cut_instance(variable_font: Path, weight: int, target: Path) -> None:
    font = ttLib.TTFont(variable_font)
    for table in _LAYOUT_TABLES:
        if table in font:
            del font[table]
    instancer.instantiateVariableFont(
        font, {"wght": weight, "wdth": 100}, inplace=True, static=True, updateFontNames=True
    )
    font.save(target)


@functools.cache
def _cut_fonts() -> tuple[tempfile.TemporaryDirectory[str], dict[str, Path]]:
    variable_font = Path(fontpkg.path("Noto Sans"))
    # Kept alive by the cache; removed when the process exits.
    directory = tempfile.TemporaryDirectory(prefix="tollgate-invoice-fonts-")
    files = {}
    for style, weight in WEIGHTS.items():
        files[style] = Path(directory.name) / f"{FAMILY}-{weight}.ttf"
        _cut_instance(variable_font, weight, files[style])
    return directory, files


def font_files() -> dict[str, Path]:
    """The static TrueType file of each style ("" and "B"), cut on the first call."""
    with _lock:  # two first invoices at once cut the fonts once
        _, files = _cut_fonts()
        if not all(path.exists() for path in files.values()):  # a tmp cleaner removed them
            _cut_fonts.cache_clear()
            _, files = _cut_fonts()
        return files
