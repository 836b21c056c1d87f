"""The steering explorer and the token view in a real browser.

A notebook with the explorer is executed (widget state stored), exported to HTML as nbconvert does for
a reader without a kernel, and opened in headless Chromium: the sliders and both replies must be in the
rendered page. The widget manager's JavaScript (``@jupyter-widgets/html-manager``, the one nbconvert's
export loads from a CDN) is fetched once from the npm registry into the cache, so the page opens offline.

``WORKBENCH_SCREENSHOTS=figures`` also keeps the screenshots there (``make screenshots``: the README's).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbench.io import cache_dir
from workbench.plots import chromium_path

NPM_PACKAGES = {"html-manager": "@jupyter-widgets/html-manager@1", "requirejs": "requirejs@2"}  # ipywidgets 8's manager

EXPLORER_NOTEBOOK = [
    "from workbench import load_model\nfrom workbench.apps.explorer import Explorer\n\nmodel = load_model()",
    "explorer = Explorer(model, instruction='french', prompt='Explain how tides work.', layer=12,\n"
    "                    max_new_tokens=32, background=False)\nexplorer",
    "explorer.layer.value = 18  # a slider moved: the steered reply follows\n"
    "import json\nprint(json.dumps({'plain': explorer.plain_out.value, 'steered': explorer.steered_out.value,\n"
    "                 'status': explorer.status.value}))",
]


def _needs(tool: str | None, what: str):
    if tool:
        return tool
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: the browser test needs it in CI")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def widget_js() -> dict[str, Path]:
    """``embed-amd.js`` and ``require.js`` on disk, from the npm registry once."""
    folder = cache_dir() / "widget-js"
    files = {
        "html-manager": folder / "html-manager" / "dist" / "embed-amd.js",
        "requirejs": folder / "requirejs" / "require.js",
    }
    for name, spec in NPM_PACKAGES.items():
        if files[name].exists():
            continue
        npm = _needs(shutil.which("npm"), "npm (to fetch the widget manager's JavaScript)")
        (folder / name).mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            [npm, "pack", spec, "--silent"], cwd=folder, capture_output=True, text=True, timeout=300, check=True
        )
        tarball = folder / packed.stdout.strip().splitlines()[-1]
        shutil.unpack_archive(tarball, folder / name)
        for item in (folder / name / "package").iterdir():
            item.rename(folder / name / item.name)
        tarball.unlink()
    return files


def _chromium(*args: str, html: Path) -> str:
    browser = _needs(chromium_path(), "Chromium")
    command = [
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        "--virtual-time-budget=20000",
        "--window-size=1300,900",
        *args,
        html.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout


def _keep(screenshot: Path) -> None:
    if folder := os.environ.get("WORKBENCH_SCREENSHOTS"):
        shutil.copy(screenshot, Path(folder) / screenshot.name)


def _text(card_html: str) -> str:
    """The reply inside an explorer card, as the browser shows it."""
    import html

    return html.unescape(re.search(r"<div[^>]*>(.*?)</div>", card_html, re.S).group(1))


def test_explorer_renders_in_chromium(widget_js, tmp_path):
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in EXPLORER_NOTEBOOK])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(
        nb, timeout=600, kernel_name="python3", store_widget_state=True, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0]["evalue"]
    shown = json.loads(nb.cells[2].outputs[0]["text"])
    assert "layer 18" in shown["status"]
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata["widgets"]

    exporter = HTMLExporter(
        widget_renderer_url=widget_js["html-manager"].as_uri(), require_js_url=widget_js["requirejs"].as_uri()
    )
    page = tmp_path / "explorer.html"
    page.write_text(exporter.from_notebook_node(nb)[0])
    dom = _chromium("--dump-dom", html=page)

    assert dom.count("widget-slider") >= 2, "the layer and coefficient sliders were not rendered"
    assert "widget-readout" in dom and ">18<" in dom.replace(" ", ""), "the layer slider does not read 18"
    for key in ("plain", "steered"):
        reply = _text(shown[key])
        assert reply.strip() and reply[:40] in _dom_text(dom), f"the {key} reply is not on the rendered page"
    screenshot = tmp_path / "explorer.png"
    _chromium(f"--screenshot={screenshot}", "--window-size=1300,545", html=page)  # down to the explorer's last line
    assert screenshot.stat().st_size > 20_000
    _keep(screenshot)


def _dom_text(dom: str) -> str:
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", dom))


def test_token_view_renders_in_chromium(tmp_path):
    from workbench import load_model
    from workbench.generation.generate import generate
    from workbench.store import cached_vector
    from workbench.tokens import token_projections

    model = load_model()
    vec = cached_vector(model, "french", n_pairs=32)
    prompt = "Explain how tides work."
    reply = generate(model, [prompt], steer=vec.steer(18, 1.0), max_new_tokens=32)[0].text
    view = token_projections(model, vec, prompt, reply, layer=18)
    page = tmp_path / "token_view.html"
    page.write_text(
        "<!doctype html><meta charset='utf-8'><body style='font-family:sans-serif;max-width:1200px'>"
        f"{view._repr_html_()}</body>"
    )
    dom = _chromium("--dump-dom", html=page)
    assert 'type="range"' in dom and reply.split()[0] in _dom_text(dom)
    screenshot = tmp_path / "token_view.png"
    _chromium(f"--screenshot={screenshot}", "--window-size=1100,520", html=page)
    assert screenshot.stat().st_size > 10_000
    _keep(screenshot)
