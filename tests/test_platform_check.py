"""The check before the QApplication exists: no display, a platform plugin with missing shared
libraries, and a plugin that can load — decided and worded without a display."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.ui.platform_check import install_hint, ldd, missing_libraries, platform_name, platform_problem, plugin_path

# what ldd printed for PySide6 6.11's libqxcb.so on a stock desktop without the xcb utility libraries
LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd5b3f1000)
\tlibQt6XcbQpa.so.6 => /venv/lib/python3.11/site-packages/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f0c1c200000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1be00000)
"""


def test_the_platform_follows_the_environment():
    assert platform_name({}) is None
    assert platform_name({"DISPLAY": ":0"}) == "xcb"
    assert platform_name({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}) == "wayland"
    assert platform_name({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}) == "offscreen"
    assert platform_name({"QT_QPA_PLATFORM": "xcb:fontengine=freetype"}) == "xcb"


def test_no_display_names_the_headless_commands():
    problem = platform_problem({})
    assert problem is not None and "needs a display" in problem
    assert "slicewise predict" in problem and "slicewise render" in problem
    assert platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_missing_libraries_are_named_with_the_packages_that_bring_them():
    missing = missing_libraries(LDD_MISSING)
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    problem = platform_problem({"DISPLAY": ":0"}, resolve=lambda path: LDD_MISSING)
    assert problem == (
        "the viewer needs libxcb-cursor.so.0, libxcb-icccm.so.4, libxcb-keysyms.so.1: "
        "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 (Debian/Ubuntu) · "
        "sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms (Fedora)"
    )
    assert platform_problem({"DISPLAY": ":0"}, resolve=lambda path: "\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") is None
    assert install_hint(["libunknown.so.7"]).startswith("sudo apt-get install libunknown.so.7")


def test_the_real_plugin_is_found_and_resolved():
    """PySide6's own xcb plugin, resolved by the real ldd: whatever this machine lacks is named."""
    plugin = plugin_path("xcb")
    if plugin is None:
        pytest.skip("this PySide6 has no xcb plugin")
    output = ldd(plugin)
    if not output:
        pytest.skip("no ldd here")
    assert "libQt6XcbQpa" in output
    missing = missing_libraries(output)
    problem = platform_problem({"DISPLAY": ":0"})
    assert (problem is None) == (not missing)
    for library in missing:
        assert library in problem


def test_slicewise_without_a_display_says_so_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "app", str(tmp_path / "none.nii")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: the viewer needs a display")
    assert "Qt" not in done.stderr  # Qt never got to abort with its own message
