# Shared by scripts/demo, scripts/check and bench/run: install what is missing, build.
# Sourced, not run.

N3_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages, by what needs them.
N3_BUILD_PACKAGES=(build-essential autoconf automake pkg-config
    libncurses-dev libssh2-1-dev libgit2-dev libcjson-dev libcurl4-openssl-dev
    check libuv1-dev libarchive-dev libssl-dev)
# curl: the tests' HTTP client; prometheus: promtool checks the sample app's /metrics text.
N3_TEST_PACKAGES=(tmux jq procps util-linux openssh-server openssh-client iproute2 time git faketime
    socat haproxy nginx curl prometheus)
# bench/switch: HAProxy in front of the slots, socat to its runtime API, curl, git for the app.
N3_BENCH_PACKAGES=(hyperfine parallel time jq findutils openssl nginx wrk iproute2 haproxy socat curl git make)
# bench/ssh (installed there, as root only: the sshd fleet needs root anyway).
N3_BENCH_SSH_PACKAGES=(hyperfine jq pdsh pssh openssh-server openssh-client iproute2 procps)

n3_say() {
    printf '\033[1m==> %s\033[0m\n' "$*" >&2
}

n3_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Install the packages that are not installed yet (apt-get, as root or through sudo).
n3_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || n3_die "missing packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})"
        sudo=sudo
    fi
    n3_say "installing ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        n3_die "apt-get update failed; is the Debian mirror reachable?"
    # Packages with a daemon (prometheus) would start it on install, listening on every
    # address; the tests start their own on 127.0.0.1 and stop them. invoke-rc.d (and
    # deb-systemd-invoke) ask /usr/sbin/policy-rc.d first, and 101 is "not now": one is put
    # there for the install, unless the machine has its own.
    local policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# n3ctl scripts/lib.sh: no daemons started while it installs packages\nexit 101\n' |
            $sudo tee "$policy" >/dev/null && $sudo chmod 0755 "$policy" ||
            n3_die "cannot write $policy (it keeps installed daemons from starting)"
    fi
    local rc=0
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        rc=$?
    [ -z "$policy" ] || $sudo rm -f "$policy"
    [ "$rc" -eq 0 ] || n3_die "apt-get install ${missing[*]} failed"
}

# n3_build NAME [configure options...]: configure and build out of tree in _build/NAME.
# Prints the build directory.
n3_build() {
    local name=$1
    shift
    local dir="$N3_TOP/_build/$name"
    if [ ! -x "$N3_TOP/configure" ] || [ "$N3_TOP/configure.ac" -nt "$N3_TOP/configure" ] ||
        [ "$N3_TOP/Makefile.am" -nt "$N3_TOP/Makefile.in" ]; then
        n3_say "autoreconf"
        (cd "$N3_TOP" && autoreconf -fi >/dev/null 2>&1) || (cd "$N3_TOP" && autoreconf -fi) ||
            n3_die "autoreconf failed"
    fi
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.n3-configure-args" 2>/dev/null)" != "$*" ]; then
        n3_say "configure $* (in _build/$name)"
        (cd "$dir" && "$N3_TOP/configure" -q "$@") >&2 || n3_die "configure failed"
        printf '%s' "$*" >"$dir/.n3-configure-args"
    fi
    n3_say "make (in _build/$name)"
    make -s -C "$dir" -j"$(nproc)" >&2 || n3_die "the build failed"
    printf '%s\n' "$dir"
}
