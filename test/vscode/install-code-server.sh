#!/usr/bin/env bash
# Installs the VS Code server that the `code-server` npm package bundles into a gitignored cache
# in the repo (.cache/code-server/), for the extension tests in a real VS Code. Kept out of the
# project's dependencies: it is ~300 MB and its install needs the environment set up below.
# Idempotent: returns at once when the pinned version is already installed.
# Prints the server entry point (server-main.js) on stdout; progress goes to stderr.
set -euo pipefail

# 4.100.3 bundles VS Code 1.100.3, the last one that runs on Node 20.
CODE_SERVER_VERSION=4.100.3
# What code-server 4.100.3's lib/vscode pins (npm-shrinkwrap.json): @vscode/ripgrep 1.15.11,
# which downloads ripgrep v13.0.0-10 from GitHub in its postinstall.
VSCODE_RIPGREP_VERSION=1.15.11
RIPGREP_VERSION=v13.0.0-10

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${DROVER_CODE_SERVER_DIR:-$repo/.cache/code-server}
vscode=$dir/node_modules/code-server/lib/vscode
entry=$vscode/out/server-main.js
marker=$dir/.installed-$CODE_SERVER_VERSION

if [[ -e $marker && -e $entry ]]; then
  echo "$entry"
  exit 0
fi

mkdir -p "$dir"
# Two test runs at once must not install over each other.
exec 9>"$dir.lock"
flock 9
if [[ -e $marker && -e $entry ]]; then
  echo "$entry"
  exit 0
fi

log() { echo "install-code-server: $*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [[ $node_major != 20 ]]; then
  log "code-server $CODE_SERVER_VERSION needs Node 20 (this is $(node --version))"
  exit 1
fi

# The kerberos module builds from source against the Kerberos headers.
if [[ $(uname) == Linux && ! -e /usr/include/krb5.h ]]; then
  log "warning: no /usr/include/krb5.h; the kerberos module will not build (apt-get install libkrb5-dev)"
fi

case "$(uname -m)" in
  x86_64) rg_target=x86_64-unknown-linux-musl ;;
  aarch64 | arm64) rg_target=aarch64-unknown-linux-musl ;;
  *) rg_target='' ;;
esac

started=$SECONDS
log "installing code-server $CODE_SERVER_VERSION into $dir (once; about a minute)"
rm -rf "$dir/node_modules" "$dir/package.json" "$dir/package-lock.json" "$dir"/.installed-*

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp

# @vscode/ripgrep's postinstall downloads rg from GitHub unless the release tarball is already in
# its cache, $TMPDIR/vscode-ripgrep-cache-<its version>/ripgrep-<rg version>-<target>.tar.gz,
# which it untars expecting `rg` at the top. Offline, hand it the system's ripgrep instead.
if [[ -n $rg_target ]] && command -v rg >/dev/null; then
  mkdir -p "$tmp/rg" "$tmp/vscode-ripgrep-cache-$VSCODE_RIPGREP_VERSION"
  cp "$(command -v rg)" "$tmp/rg/rg"
  tar -czf "$tmp/vscode-ripgrep-cache-$VSCODE_RIPGREP_VERSION/ripgrep-$RIPGREP_VERSION-$rg_target.tar.gz" -C "$tmp/rg" rg
else
  log "no system ripgrep (apt-get install ripgrep): @vscode/ripgrep will try to download it"
fi

# Native modules (node-pty, spdlog, kerberos, argon2...) build against the running Node's headers;
# use the ones installed beside it rather than downloading them.
node_prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
if [[ -e $node_prefix/include/node/node.h ]]; then
  export npm_config_nodedir=$node_prefix
fi

# The environment, not flags, so that the nested `npm install`s code-server's postinstall runs in
# lib/vscode and lib/vscode/extensions get it too:
# - unsafe_perm: as root, code-server's postinstall refuses to run without it;
# - yes: node-pty's postinstall runs npx, which would otherwise ask;
# - dangerously_allow_all_scripts: npm >= 11.x skips dependencies' install scripts unless they are
#   approved in the package.json, and these native modules are nothing without them.
export npm_config_unsafe_perm=true
export npm_config_yes=true
export npm_config_dangerously_allow_all_scripts=true
export npm_config_audit=false
export npm_config_fund=false
export npm_config_update_notifier=false

(cd "$dir" && npm install --prefix "$dir" --no-save --loglevel=error "code-server@$CODE_SERVER_VERSION" >&2)

# npm can succeed while having skipped a script; check what the server needs is really there.
missing=()
for file in \
  "$entry" \
  "$vscode/node_modules/node-pty/build/Release/pty.node" \
  "$vscode/node_modules/@vscode/spdlog/build/Release/spdlog.node" \
  "$vscode/node_modules/native-watchdog/build/Release/watchdog.node" \
  "$vscode/node_modules/kerberos/build/Release/kerberos.node" \
  "$vscode/node_modules/@vscode/ripgrep/bin/rg" \
  "$vscode/node_modules.asar" \
  "$vscode/extensions/node_modules/typescript/package.json"; do
  [[ -e $file ]] || missing+=("${file#"$dir"/}")
done
if ((${#missing[@]} > 0)); then
  log "the install is incomplete (an install script did not run or failed); missing:"
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi

touch "$marker"
log "installed in $((SECONDS - started)) s"
echo "$entry"
