"""Write ~/.local/skaha/openbox-{menu,rc}.xml from the platform's desktop-app images, with a
Resolution menu from /desktopstartup/skaha-resolutions.properties (skaha's desktop templates)."""

import json
import os
import sys
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

host = sys.argv[1]
version = os.environ.get("SKAHA_API_VERSION", "v0")
request = urllib.request.Request(
    f"http://{host}/skaha/{version}/image?type=desktop-app",
    headers={"x-auth-token-skaha": os.environ.get("DESKTOP_SESSION_APP_TOKEN", "")},
)
try:
    images = [entry["id"] for entry in json.load(urllib.request.urlopen(request, timeout=10))]
except Exception as exc:  # the desktop must still come up; the menu says what went wrong
    print(f"build-menu: cannot list desktop-app images: {exc}", file=sys.stderr)
    images = None

items = []
for image in images or []:
    label = image.rsplit("/", 1)[-1]
    command = f"/skaha-system/launch-app.sh {image}"
    items.append(f'<item label={quoteattr(label)}><action name="Execute"><command>{escape(command)}</command></action></item>')
if not items:
    note = "No desktop-app images: emulate images build ds9" if images is not None else "Cannot reach the skaha API"
    items.append(f"<item label={quoteattr(note)} />")

resolutions_file = Path("/desktopstartup/skaha-resolutions.properties")
resolutions = resolutions_file.read_text().split() if resolutions_file.exists() else []
sizes = "".join(
    f'<item label={quoteattr(size)}><action name="Execute"><command>xrandr -s {escape(size)}</command></action></item>'
    for size in resolutions
)

folder = Path.home() / ".local" / "skaha"
folder.mkdir(parents=True, exist_ok=True)
menu = folder / "openbox-menu.xml"
menu.write_text(
    '<?xml version="1.0" encoding="UTF-8"?>\n<openbox_menu xmlns="http://openbox.org/3.4/menu">\n'
    '<menu id="astro" label="Astro Software">' + "".join(items) + "</menu>\n"
    '<menu id="resolution" label="Resolution">' + sizes + "</menu>\n"
    '<menu id="root-menu" label="Desktop">\n<menu id="astro" />\n<menu id="resolution" />\n'
    '<item label="Terminal"><action name="Execute"><command>xterm</command></action></item>\n'
    "</menu>\n</openbox_menu>\n"
)
rc = Path("/etc/xdg/openbox/rc.xml").read_text()
(folder / "openbox-rc.xml").write_text(rc.replace("<file>menu.xml</file>", f"<file>{menu}</file>"))
print(f"build-menu: {len(images or [])} desktop-app image(s) in the menu", file=sys.stderr)
