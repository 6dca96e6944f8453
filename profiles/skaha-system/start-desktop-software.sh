#!/bin/bash
# skaha's start-desktop-software.sh (current skaha): run a desktop-app on its desktop's display.
# $1 is the user, $2 the app's name (its window title). /skaha/init.sh runs first (it must not
# block); then /skaha/startup.sh, when the image has one, gets exactly one argument: the path of
# the xterm launcher, which reads its title from SKAHA_XTERM_TITLE. (A launcher path rather than
# an xterm command line, so an image's `exec $@` cannot re-split xterm's options.)
echo "[skaha] starting desktop-app '$2' for user $1"
if [ -f /skaha/init.sh ]; then
  /skaha/init.sh
fi
xset -b 2>/dev/null  # no bell
export SKAHA_XTERM_TITLE="$2"
launcher=/skaha-system/start-desktop-software-xterm.sh
if [ -f /skaha/startup.sh ]; then
  /skaha/startup.sh "$launcher"
else
  exec "$launcher"
fi
