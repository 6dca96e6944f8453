# JupyterLab's start-up configuration: Jupyter runs this file every time a session of the image starts, on
# CANFAR too. CANFAR ignores the image's CMD and starts `jupyter lab` itself (its base URL, root folder, port
# and token on the command line, which win over this file), but Jupyter still reads the configuration of the
# Python it runs from, and the Dockerfile puts this file there: /opt/env/etc/jupyter/.
# `c` is the server's configuration (https://jupyter-server.readthedocs.io/en/latest/other/full-config.html).
# `emulate dev .` rebuilds the image and restarts the session each time you save it.

# Sessions never call out to jupyter.org: no news feed, no update check.
c.LabApp.news_url = None  # noqa: F821  (Jupyter defines `c` before it runs this file)
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"  # noqa: F821
