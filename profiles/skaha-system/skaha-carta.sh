#!/bin/bash
# skaha's legacy CARTA launch script (skaha-carta.sh): $1 is the top-level folder, $2 the start folder.
exec carta --no_browser --top_level_folder="$1" --port=6901 --idle_timeout=100000 --debug_no_auth "$2"
