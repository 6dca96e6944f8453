#!/bin/bash
# skaha's build-menu.sh: list the desktop-app images (GET /image?type=desktop-app, authenticated
# with the desktop's x-auth-token-skaha) and write the desktop's "Astro Software" menu.
# Unlike skaha, a desktop with no desktop-app images still starts; its menu says how to add some.
exec python3 /skaha-system/build_menu.py "$1"
