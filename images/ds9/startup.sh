#!/bin/bash
# CANFAR desktop-app contract: start the application, then exec the one argument given (the
# platform's xterm launcher).
ds9 &
exec "$@"
