#!/bin/bash
# The xterm a desktop-app shows (skaha's start-desktop-software-xterm.sh): white on black, titled
# with SKAHA_XTERM_TITLE, its bell silenced.
exec xterm -fg white -bg black -title "${SKAHA_XTERM_TITLE:-xterm}" \
  -xrm 'XTerm*bellIsUrgent: false' -xrm 'XTerm*bellIsAudible: false'
