"""The trace viewer in a real headless browser (Debian's Chromium, scripts/install_browser.sh).

Skipped only when Chromium is missing outside CI; with CI=true a missing browser fails.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mrt_engine.report import read_progress, write_report

from test_report import parse, sample_results, write_progress

ROOT = Path(__file__).resolve().parents[1]
CONSOLE = re.compile(r":CONSOLE[:(\]]")  # Chromium's log line for a page console message


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe:
        return exe
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail("chromium is not installed but CI=true: run scripts/install_browser.sh (make test does)")
    pytest.skip("chromium is not installed (scripts/install_browser.sh installs it)")


def run_browser(tmp_path: Path, url: str, *flags: str) -> tuple[str, list[str]]:
    """(stdout, page console lines) of one headless Chromium run; fresh profile each time."""
    cmd = [chromium(), "--headless", "--disable-gpu", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run", *flags, url]
    if os.geteuid() == 0:
        cmd.insert(2, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]


def report_file(tmp_path: Path, html: str | None = None) -> Path:
    src = write_progress(tmp_path / "progress.jsonl", sample_results())
    out = tmp_path / "report.html"
    write_report(str(src), str(out), budgets=[100, 400])
    if html is not None:
        out.write_text(html, encoding="utf-8")
    return out


def test_page_loads_without_errors_and_shows_every_episode(tmp_path):
    out = report_file(tmp_path)
    dom, console = run_browser(tmp_path, out.as_uri(), "--dump-dom")
    assert console == []
    page = parse(dom)
    body = [a for t, a in page.elements if t == "body"][0]
    assert body["data-report-status"] == "ok"
    assert "loaded: 4 episodes" in dom and '<div id="report-errors"></div>' in dom
    results = sample_results()
    assert [float(e["data-j"]) for e in page.with_class("episode")] == [j for r in results for j in r.j[1:]]


def test_url_sort_orders_the_index_table(tmp_path):
    out = report_file(tmp_path)
    records = read_progress(str(tmp_path / "progress.jsonl"))
    j_end = [r.result.j[-1] for r in records]
    for key, want in (("-j_last", sorted(range(3), key=lambda k: -j_end[k])),
                      ("j_last", sorted(range(3), key=lambda k: j_end[k])),
                      ("-outcome", [0, 1, 2])):  # the ungraded trace (outcome null) sorts last
        dom, console = run_browser(tmp_path, f"{out.as_uri()}#sort={key}", "--dump-dom")
        assert console == []
        rows = [int(a["data-trace"]) for t, a in parse(dom).elements if t == "tr" and "data-trace" in a]
        assert rows == want, key
        assert ("descending" if key.startswith("-") else "ascending") in dom


def test_a_broken_script_is_caught(tmp_path):
    # The harness must be able to fail: break the main script and see the error reported.
    html = report_file(tmp_path).read_text(encoding="utf-8")
    out = report_file(tmp_path, html.replace("getElementById('index')", "getElementById('no-such-table')"))
    dom, console = run_browser(tmp_path, out.as_uri(), "--dump-dom")
    assert 'data-report-status="error"' in dom
    assert any("Uncaught" in line for line in console)
    assert "report-errors\"></div>" not in dom  # the error box holds the message


def test_screenshot_shows_the_loaded_report(tmp_path):
    """One load gives both the DOM and the pixels: the script finished (status ok, no console
    error) and the picture is the report, not a blank or an error page."""
    import numpy as np
    from PIL import Image  # matplotlib's own dependency

    out = report_file(tmp_path)
    png = tmp_path / "viewer.png"
    dom, console = run_browser(tmp_path, out.as_uri(), "--dump-dom", f"--screenshot={png}", "--window-size=1200,800")
    assert console == [] and 'data-report-status="ok"' in dom
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
    assert pixels.shape == (800, 1200, 3)
    assert pixels.std() > 15, f"a near-uniform screenshot (std {pixels.std():.1f}): a blank page"
    # the J charts' line and points (#3b5bdb), in the first screen of a 1200x800 window
    chart = int((np.abs(pixels - (0x3B, 0x5B, 0xDB)).sum(axis=-1) <= 6).sum())
    assert chart > 100, f"{chart} pixels of the J charts' colour: the charts did not render"


def test_install_script_skips_when_present_and_installs_otherwise(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(shutil.which("id"))
    log = tmp_path / "apt.log"
    fake_apt = bin_dir / "apt-get"
    fake_apt.write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                        f'if [ "$1" = install ]; then printf "#!/bin/sh\\n" > {bin_dir}/chromium; '
                        f'/bin/chmod +x {bin_dir}/chromium; fi\n')
    fake_apt.chmod(0o755)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')  # for a non-root run
    (bin_dir / "sudo").chmod(0o755)
    script = str(ROOT / "scripts" / "install_browser.sh")
    env = {"PATH": str(bin_dir)}
    first = subprocess.run(["/bin/bash", script], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert log.read_text().splitlines() == ["update -q", "install -y -q chromium"]
    second = subprocess.run(["/bin/bash", script], env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and log.read_text().count("install") == 1  # already there: skipped
