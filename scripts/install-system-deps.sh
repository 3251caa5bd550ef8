#!/usr/bin/env bash
# Optional system programs for the test suite: Graphviz's `dot` (one of the two renderers
# viz can use; the other, pygraphviz, comes from pip) and headless Chromium (to test the HTML
# backward-pass stepper in a real browser).
# Without them the tests that need them are skipped with a stated reason; nothing else fails.
set -u

have() { command -v "$1" >/dev/null 2>&1; }
have_chromium() { have chromium || have chromium-browser || have google-chrome; }

missing=()
have dot || missing+=(graphviz)
have_chromium || missing+=(chromium)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! have apt-get; then
  echo "note: ${missing[*]} not installed (needs apt-get as root); the tests that use them will be skipped"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing ${missing[*]} with apt-get ..."
apt-get update -qq >/dev/null 2>&1 || echo "note: apt-get update failed; trying the package lists already here"
# One package at a time, so a distribution without one of them still gets the other.
for package in "${missing[@]}"; do
  if ! apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1; then
    echo "note: could not install $package; the tests that use it will be skipped"
  fi
done
have dot && echo "dot: $(command -v dot)"
have_chromium && echo "chromium: $(command -v chromium || command -v chromium-browser || command -v google-chrome)"
exit 0
