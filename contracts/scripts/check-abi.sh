#!/usr/bin/env bash
# Fail when the committed contracts/abi/*.json differ from a fresh export.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

bash "$here/scripts/export-abi.sh" "$tmp" >/dev/null 2>"$tmp.log" || {
  cat "$tmp.log" >&2
  rm -f "$tmp.log"
  echo "check-abi: export failed" >&2
  exit 1
}
rm -f "$tmp.log"

if ! diff -r -q "$here/abi" "$tmp" >/dev/null 2>&1; then
  diff -r -q "$here/abi" "$tmp" >&2 || true
  echo "contracts/abi is stale: run make abi" >&2
  exit 1
fi
echo "contracts/abi is up to date"
