"""Before the QApplication exists: can Qt's platform plugin load here?  If not, say what to install.

Qt aborts the process (exit 134) with its own long message when its ``xcb`` plugin misses a
shared library, or when there is no display at all.  This check finds that out first, without
loading Qt: it resolves the plugin's libraries (``ldd``) and names the missing ones with the
Debian/Ubuntu and Fedora packages that bring them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

#: shared library → (Debian/Ubuntu package, Fedora package)
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
}
HEADLESS = "use `slicewise predict` or `slicewise render` to work without a display"
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def platform_name(env: Mapping[str, str]) -> str | None:
    """The Qt platform plugin the viewer will use, or None when there is no display at all."""
    if env.get("QT_QPA_PLATFORM"):
        return env["QT_QPA_PLATFORM"].split(":")[0]
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    if env.get("DISPLAY"):
        return "xcb"
    return None


def plugin_path(platform: str) -> Path | None:
    """PySide6's plugin file for ``platform`` (e.g. ``…/Qt/plugins/platforms/libqxcb.so``), found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "Qt" / "plugins" / "platforms" / f"libq{platform}.so"
        if candidate.is_file():
            return candidate
    return None


def ldd(path: Path) -> str:
    """What ``ldd`` says of ``path`` (empty where there is no ldd, e.g. macOS and Windows)."""
    tool = shutil.which("ldd")
    if tool is None:
        return ""
    try:
        return subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reports as ``not found``, each once, in its order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def install_hint(libraries: list[str]) -> str:
    """``sudo apt-get install … (Debian/Ubuntu) · sudo dnf install … (Fedora)`` for ``libraries``."""
    debian = [PACKAGES.get(lib, (lib, lib))[0] for lib in libraries]
    fedora = [PACKAGES.get(lib, (lib, lib))[1] for lib in libraries]
    return (f"sudo apt-get install {' '.join(dict.fromkeys(debian))} (Debian/Ubuntu) · "
            f"sudo dnf install {' '.join(dict.fromkeys(fedora))} (Fedora)")


def platform_problem(env: Mapping[str, str] | None = None, resolve: Callable[[Path], str] = ldd) -> str | None:
    """Why the viewer cannot start here, as one line for the user; None when it can."""
    env = os.environ if env is None else env
    platform = platform_name(env)
    if platform is None:
        return f"the viewer needs a display (no DISPLAY or WAYLAND_DISPLAY is set): {HEADLESS}"
    if platform in ("offscreen", "minimal", "vnc"):
        return None
    plugin = plugin_path(platform)
    if plugin is None:
        return None  # a platform Qt finds elsewhere: let Qt say what it thinks
    missing = missing_libraries(resolve(plugin))
    if missing:
        return f"the viewer needs {', '.join(missing)}: {install_hint(missing)}"
    return None
