# Sourced by the scripts here: installs Debian packages that are missing.
# Usage: ensure_packages <command>=<package> ...

ensure_packages() {
    local missing=()
    local pair cmd pkg
    for pair in "$@"; do
        cmd=${pair%%=*}
        pkg=${pair#*=}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Garage, the S3 server the off-site tests store repositories in: built once
# from crates.io into ~/.cargo/bin and reused while its version matches.
# Only what a one-node test store needs (SQLite metadata, no metrics).
GARAGE_VERSION=2.5.0
ensure_garage() {
    local bin="$HOME/.cargo/bin/garage"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q ":$GARAGE_VERSION "; then
        return 0
    fi
    echo "building garage $GARAGE_VERSION (once; reused from ~/.cargo/bin)" >&2
    local target
    target=$(mktemp -d /tmp/garage-build.XXXXXX)
    # opt-level 1: about half the build time of a full release build, fast
    # enough for a test store.
    CARGO_TARGET_DIR="$target" CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
        cargo install --quiet --locked --version "$GARAGE_VERSION" garage \
        --no-default-features --features bundled-libs,sqlite
    rm -rf "$target"
}
