"""__IMAGE__ as a CANFAR desktop-app, attached to a desktop session (skaha-emulator's skaha_session)."""

import os
import time

IMAGE = os.environ.get("SKAHA_IMAGE", "__IMAGE__")


def test_the_application_opens_its_window_on_the_desktop(skaha_session):
    desktop = skaha_session(type="desktop")  # the platform's desktop image
    desktop.desktop_app(IMAGE)
    deadline = time.monotonic() + 60
    while "__TITLE__" not in desktop.exec("xwininfo -root -tree").output:
        assert time.monotonic() < deadline, "no window titled __TITLE__ on the desktop"
        time.sleep(0.5)
