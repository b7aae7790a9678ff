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

# Builds a tool from crates.io into ~/.cargo/bin once and reuses it while
# `<bin> --version` shows `pattern`. opt-level 1, no LTO, parallel codegen:
# a fraction of a full release build's time (cargo-deny's own profile asks
# for fat LTO and one codegen unit), fast enough for test tools.
# Usage: cargo_tool_once <bin> <pattern> <crate> <version> [cargo install args]
cargo_tool_once() {
    local bin="$HOME/.cargo/bin/$1" pattern=$2 crate=$3 version=$4
    shift 4
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qF -- "$pattern"; then
        return 0
    fi
    echo "building $crate $version (once; reused from ~/.cargo/bin)" >&2
    local target
    target=$(mktemp -d "/tmp/$crate-build.XXXXXX")
    CARGO_TARGET_DIR="$target" CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo install --quiet --locked --version "$version" "$crate" "$@"
    rm -rf "$target"
}

# Garage, the S3 server the off-site tests store repositories in. Only what a
# one-node test store needs (SQLite metadata, no metrics).
GARAGE_VERSION=2.5.0
ensure_garage() {
    cargo_tool_once garage ":$GARAGE_VERSION " garage "$GARAGE_VERSION" \
        --no-default-features --features bundled-libs,sqlite
}

# cargo-deny checks the dependency policy in deny.toml.
CARGO_DENY_VERSION=0.20.2
ensure_cargo_deny() {
    cargo_tool_once cargo-deny " $CARGO_DENY_VERSION" cargo-deny "$CARGO_DENY_VERSION"
}
