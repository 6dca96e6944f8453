#!/bin/bash
echo "startup-probe: $# argument(s): $*; title=${SKAHA_XTERM_TITLE:-unset}"
exec $@
