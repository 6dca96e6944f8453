#!/bin/bash
# Attach a desktop-app to this desktop (skaha's start-software-sh.template): POST .../session/<id>/app.
curl -s -X POST -H "x-auth-token-skaha: ${DESKTOP_SESSION_APP_TOKEN}" --data-urlencode "image=$1" \
  "http://${skaha_hostname}/skaha/${SKAHA_API_VERSION:-v0}/session/${VNC_PW}/app"
