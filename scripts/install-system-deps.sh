#!/usr/bin/env bash
# Optional system programs for the test suite: Graphviz's `dot` (one of the two renderers
# viz can use) and headless Chromium (to test the HTML backward-pass stepper).
# Without them the tests that need them are skipped with a stated reason; nothing else fails.
set -u
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${missing[*]} not installed (needs apt-get as root); the tests that use them will be skipped"
  exit 0
fi
echo "installing ${missing[*]} with apt-get ..."
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "note: could not install ${missing[*]}; the tests that use them will be skipped"
fi
exit 0
