#!/bin/bash
# skaha's start-desktop-software.sh: run a desktop-app on the desktop's display.
# $1 is the user, $2 the app's name (its window title). /skaha/init.sh must not block;
# /skaha/startup.sh receives the xterm command line and must end with exec "$@".
[ -x /skaha/init.sh ] && /skaha/init.sh
if [ -x /skaha/startup.sh ]; then
  exec /skaha/startup.sh xterm -fg white -bg black -title "$2"
fi
exec xterm -fg white -bg black -title "$2"
