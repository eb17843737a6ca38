#!/bin/bash
# The guest must prove its containment before it is sealed.
set -euo pipefail
/usr/local/sbin/vibe-selftest
