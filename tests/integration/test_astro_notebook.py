"""The astro-notebook image as a workshop uses it: FITS and a plot written to /arc from a notebook's kernel."""

from __future__ import annotations

import httpx
import pytest

from tests.instance import Instance
from tests.jupyter import execute

pytestmark = pytest.mark.slow

IMAGE = "skaha-emulator/astro-notebook:latest"

IMPORTS = """
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits
from photutils.centroids import centroid_com
print(matplotlib.get_backend())
"""

# A notebook cell: a Gaussian source to FITS with a header keyword, read back, measured and plotted.
ANALYSIS = """
folder = "/arc/home/{user}/workshop"
import os
os.makedirs(folder, exist_ok=True)
y, x = np.mgrid[0:64, 0:48]
source = 100.0 * np.exp(-((x - 30) ** 2 + (y - 20) ** 2) / (2 * 3.0**2))
hdu = fits.PrimaryHDU(source)
hdu.header["OBJECT"] = ("gaussian", "a synthetic source")
hdu.writeto(f"{{folder}}/gaussian.fits", overwrite=True)
with fits.open(f"{{folder}}/gaussian.fits") as hdul:
    data, header = hdul[0].data, hdul[0].header
    assert data.shape == (64, 48) and np.allclose(data, source), data.shape
    assert header["OBJECT"] == "gaussian" and header.comments["OBJECT"] == "a synthetic source"
    cx, cy = centroid_com(data)
    fig, ax = plt.subplots()
    ax.imshow(data, origin="lower", cmap="viridis")
    ax.set_title(header["OBJECT"])
    fig.savefig(f"{{folder}}/gaussian.png")
    plt.close(fig)
print(header["OBJECT"], round(float(cx), 2), round(float(cy), 2))
"""


def test_astro_notebook_writes_fits_and_a_plot_to_arc(fresh: Instance) -> None:
    notebooks = fresh.http.get("/image", params={"type": "notebook"}).json()
    offered = next((i for i in notebooks if i["id"] == f"localhost/{IMAGE}"), None)
    assert offered is not None, f"{IMAGE} is not offered (build it: emulate images build astro-notebook)"
    assert {"notebook", "headless"} <= set(offered["types"]) and offered["digest"].startswith("sha256:")

    session_id = fresh.launch(name="workshop", image=IMAGE, cores="1", ram="2")
    try:
        user = fresh.session(session_id)["userid"]
        api = f"{fresh.url}/session/notebook/{session_id}/api"
        auth = {"Authorization": f"token {session_id}"}
        kernel = httpx.post(f"{api}/kernels", headers=auth, json={"name": "python3"}, timeout=30).json()
        ws_url = (
            f"ws://{fresh.url.removeprefix('http://')}/session/notebook/{session_id}/api/kernels/{kernel['id']}"
            f"/channels?token={session_id}"
        )
        # The kernel plots inline (the image sets no MPLBACKEND); savefig still writes files.
        assert "inline" in execute(ws_url, IMPORTS)
        assert execute(ws_url, ANALYSIS.format(user=user)).split() == ["gaussian", "30.0", "20.0"]

        folder = fresh.arc_dir / "home" / user / "workshop"
        fits_bytes = (folder / "gaussian.fits").read_bytes()
        assert fits_bytes.startswith(b"SIMPLE  =") and b"OBJECT  = 'gaussian'" in fits_bytes[:2880]
        assert len(fits_bytes) % 2880 == 0  # whole FITS blocks
        assert (folder / "gaussian.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    finally:
        assert fresh.http.delete(f"/session/{session_id}").status_code == 200
    fresh.wait_gone(session_id)
