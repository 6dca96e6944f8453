#!/bin/bash
# CANFAR desktop-app contract: start the application, then exec the command line given (an xterm).
ds9 &
exec "$@"
