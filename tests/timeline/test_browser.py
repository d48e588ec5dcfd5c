"""The timeline page in a real browser: headless Chromium (Debian's package `chromium`)
opens the page the planted election bug leaves and renders one lane per server and
the failure marker, in the DOM its script built and in the pixels of a screenshot; and
a long lock hold as a bar over its server's lane.

Run by `make test-browser` (pytest --timeline-browser); plain runs deselect it, since
a clean machine has no browser.  Without Chromium it fails, saying how to install it.
"""

import re
import shutil
import struct
import subprocess
import zlib

import pytest

from .test_timeline import run_planted

pytestmark = [pytest.mark.browser, pytest.mark.needs_lab, pytest.mark.realtime]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1300, 600
PAGE_MARGIN = 8  # the page's body margin, in pixels


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("the browser test needs Chromium, and none is on PATH: install Debian's package "
                    "(apt-get install chromium), then run make test-browser again")
    return exe


def browse(tmp_path, page, *what):
    cmd = [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},{HEIGHT}",
           *what, page.as_uri()]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_chromium_renders_a_lane_per_server_and_the_failure(tmp_path):
    rc, out = run_planted(tmp_path / "out")
    assert rc == 1, out
    page = tmp_path / "out" / "TestInitialElection2A.timeline.html"

    dom = browse(tmp_path, page, "--dump-dom")
    lanes = re.findall(r'<g class="lane" data-lane="([^"]*)" data-group="servers">', dom)
    assert lanes == ["0", "1", "2"], dom[:3000]
    assert len(re.findall(r'class="band candidate"', dom)) >= 3, "no candidate band drawn"
    marker = re.search(r'<line x1="([\d.]+)"[^>]*class="failure-marker"', dom)
    assert marker, "no failure marker in the rendered page"

    shot = tmp_path / "shot.png"
    browse(tmp_path, page, f"--screenshot={shot}")
    width, height, pixels = read_png(shot.read_bytes())
    # the chart sits after the body's margin and its own border
    x = round(float(marker.group(1))) + PAGE_MARGIN + 1
    red = [max(sum(1 for y in range(height) if is_red(pixels[y][x0])) for x0 in range(x - 3, x + 4))]
    assert red[0] >= 100, f"the failure marker is not visible in the screenshot (at x={x}: {red[0]} red pixels)"


def test_chromium_draws_a_long_lock_hold_on_its_servers_lane(tmp_path):
    """A page made up here: S1's Raft.mu held 200 ms, as lockwatch tells the recorder."""
    from timeline import recorder, render

    recorder.begin()
    try:
        for s in range(3):
            recorder.net("AddServer", s)
        recorder.lock_held("1", recorder._t0 + 1.0, 0.2, "Raft[1].mu held 200 ms by raft1-ticker: taken at raft.py:9")
        recorder.failure("planted failure")
        snap = render.snapshot(3_000_000)
    finally:
        recorder.stop()
    page = tmp_path / "hold.timeline.html"
    page.write_text(render.render(snap, {"test": "hold"}))
    dom = browse(tmp_path, page, "--dump-dom")
    lane_y = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'<g class="lane" data-lane="([^"]*)" data-group="servers">.*?<rect[^>]* y="([\d.]+)"', dom)}
    hold = re.search(r'<rect x="[\d.]+" y="([\d.]+)" width="([\d.]+)"[^>]*class="hold"><title>([^<]*)</title>', dom)
    assert hold, dom[:3000]
    assert "Raft[1].mu held 200 ms by raft1-ticker" in hold.group(3) and "1.000 s to 1.200 s" in hold.group(3)
    assert float(hold.group(2)) > 10  # 200 ms of a 3 s chart over about 1,100 pixels
    assert abs(float(hold.group(1)) - lane_y["1"]) < 5, (hold.group(1), lane_y)  # over S1's lane


def is_red(rgb):
    r, g, b = rgb
    return r > 170 and g < 90 and b < 90


def read_png(data):
    """(width, height, rows of (r, g, b)) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows
