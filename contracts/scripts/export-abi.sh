#!/usr/bin/env bash
# Build the contracts and write trimmed artifacts for the Rust side:
#   abi/<Name>.json = {"abi": [...], "bytecode": {"object": "0x..."}, "deployedBytecode": {"object": "0x..."}}
# Usage: scripts/export-abi.sh [OUT_DIR]   (default: contracts/abi)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
out_dir="${1:-$here/abi}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

# The native binary: npm's node_modules/.bin/forge wrapper exits 0 even when the build fails.
forge_bin="$(compgen -G "$here/node_modules/@foundry-rs/forge-*/bin/forge" | head -n1 || true)"
if [[ -z "$forge_bin" || ! -x "$forge_bin" ]]; then
  forge_bin="$(command -v forge || true)"
fi
if [[ -z "$forge_bin" ]]; then
  echo "forge not found: run 'npm ci' in contracts/ first" >&2
  exit 1
fi

# a pinned profile so FOUNDRY_PROFILE=ci etc. cannot change the exported bytecode
FOUNDRY_PROFILE=default "$forge_bin" build >&2

ARTIFACTS_DIR="$here/out" OUT_DIR="$out_dir" node - FareToken Ticket Clearing DelayInsurance PlanMarket <<'NODE'
const fs = require("fs");
const path = require("path");
const names = process.argv.slice(2);
for (const name of names) {
  const src = path.join(process.env.ARTIFACTS_DIR, `${name}.sol`, `${name}.json`);
  const art = JSON.parse(fs.readFileSync(src, "utf8"));
  const hex = (b) => {
    const o = b && b.object;
    if (typeof o !== "string" || o.length === 0) throw new Error(`${name}: missing bytecode in ${src}`);
    return o.startsWith("0x") ? o : "0x" + o;
  };
  const trimmed = {
    abi: art.abi,
    bytecode: { object: hex(art.bytecode) },
    deployedBytecode: { object: hex(art.deployedBytecode) },
  };
  if (/__\$[0-9a-f]{34}\$__/.test(trimmed.bytecode.object)) throw new Error(`${name}: unlinked library reference`);
  fs.writeFileSync(path.join(process.env.OUT_DIR, `${name}.json`), JSON.stringify(trimmed, null, 2) + "\n");
  console.error(`wrote ${path.join(process.env.OUT_DIR, name + ".json")}`);
}
NODE
