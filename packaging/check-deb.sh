#!/usr/bin/env bash
# Builds the .deb with cargo-deb and checks it: every file present with its mode and owner, the
# conffiles, the dependencies and the maintainer scripts; the unit passes `systemd-analyze
# verify` and scores "OK" (at most 2.0) in `systemd-analyze security`; the binary runs and the
# packaged configuration passes `check`; lintian (where installed) reports nothing.
#
#   packaging/check-deb.sh                    build and inspect
#   packaging/check-deb.sh --install          also install it on this machine with dpkg -i (as
#                                             root, on Debian or Ubuntu) and check the user, the
#                                             modes, that the service stays disabled, and
#                                             `vast-supervisor check` as the daemon's user
#   packaging/check-deb.sh --install --purge  ... then purge the package again
#
# Needs cargo-deb (cargo install --locked cargo-deb) and dpkg-deb. It builds in release mode, so
# it takes minutes on a small machine: that is why .ci/run leaves it out, while `cargo test`
# (tests/packaging_files.rs) checks the asset lists, the unit and the packaged configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

install=no
purge=no
for arg in "$@"; do
    case "$arg" in
        --install) install=yes ;;
        --purge) purge=yes ;;
        *) echo "usage: $0 [--install [--purge]]" >&2; exit 2 ;;
    esac
done

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "check-deb: ok: $*"; }
skip() { echo "check-deb: skipped: $*"; }

for tool in cargo-deb dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "check-deb: $tool is not installed (cargo install --locked cargo-deb; apt-get install dpkg)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- build ------------------------------------------------------------------------------------
cargo deb --locked --output "$work/"
debs=("$work"/*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] || fail "cargo deb did not produce one .deb"
deb=${debs[0]}
ok "built $(basename "$deb")"

# ---- contents: every file with its mode, owned by root ----------------------------------------
declare -A expected
expect() { expected["$2"]=$1; }
expect -rwxr-xr-x ./usr/bin/vast-supervisor
expect -rw-r--r-- ./usr/lib/systemd/system/vast-supervisor.service
expect -rw-r--r-- ./usr/lib/sysusers.d/vast-supervisor.conf
expect -rw-r--r-- ./usr/lib/tmpfiles.d/vast-supervisor.conf
expect -rw-r----- ./etc/vast-supervisor/vast-supervisor.toml
for example in conf.d/*.toml; do
    expect -rw-r----- "./etc/vast-supervisor/conf.d/$(basename "$example").example"
done
for page in packaging/man/*.1; do expect -rw-r--r-- "./usr/share/man/man1/$(basename "$page").gz"; done
for page in packaging/man/*.5; do expect -rw-r--r-- "./usr/share/man/man5/$(basename "$page").gz"; done
expect -rw-r--r-- ./usr/share/bash-completion/completions/vast-supervisor
expect -rw-r--r-- ./usr/share/zsh/vendor-completions/_vast-supervisor
expect -rw-r--r-- ./usr/share/fish/vendor_completions.d/vast-supervisor.fish
expect -rw-r--r-- ./usr/share/doc/vast-supervisor/README.md
expect -rw-r--r-- ./usr/share/doc/vast-supervisor/CONFIGURATION.md
expect -rw-r--r-- ./usr/share/doc/vast-supervisor/EVENTS.md
expect -rw-r--r-- ./usr/share/doc/vast-supervisor/DEPLOYMENT.md
expect -rw-r--r-- ./usr/share/doc/vast-supervisor/copyright
expect -rw-r--r-- ./usr/share/doc/vast-supervisor/changelog.Debian.gz
expect -rw-r--r-- ./usr/share/lintian/overrides/vast-supervisor

listing=$(dpkg-deb --contents "$deb")
echo "$listing"
declare -A found
while read -r mode owner _size _date _time path _rest; do
    case "$mode" in
        d*) continue ;;
        -*) ;;
        *) fail "unexpected entry type: $mode $path" ;;
    esac
    [ "$owner" = "0/0" ] || fail "$path is owned by $owner, not root"
    [ -n "${expected[$path]+set}" ] || fail "unexpected file in the package: $path"
    [ "$mode" = "${expected[$path]}" ] || fail "$path has mode $mode, expected ${expected[$path]}"
    found["$path"]=1
done <<<"$listing"
for path in "${!expected[@]}"; do
    [ -n "${found[$path]+set}" ] || fail "missing from the package: $path"
done
ok "${#expected[@]} files, each with its expected mode, owned by root"

# ---- control: conffiles, dependencies, maintainer scripts -------------------------------------
dpkg-deb --control "$deb" "$work/control"
expected_conffiles=$(for path in "${!expected[@]}"; do case "$path" in ./etc/*) echo "${path#.}" ;; esac; done | sort)
actual_conffiles=$(sort "$work/control/conffiles")
[ "$actual_conffiles" = "$expected_conffiles" ] || fail "conffiles are:
$actual_conffiles
expected:
$expected_conffiles"
ok "conffiles: every file in /etc, nothing else"

depends=$(dpkg-deb --field "$deb" Depends)
case "$depends" in *libc6*) ;; *) fail "Depends lacks libc6: $depends" ;; esac
case "$depends" in *"systemd | systemd-standalone-sysusers"*) ;; *) fail "Depends lacks a sysusers provider: $depends" ;; esac
ok "Depends: $depends"

postinst=$work/control/postinst
grep -q 'systemd-sysusers' "$postinst" || fail "postinst does not create the user"
grep -q 'chown root:vast-supervisor' "$postinst" || fail "postinst does not give the configuration to the group"
grep -q 'deb-systemd-invoke try-restart' "$postinst" || fail "postinst does not restart a running daemon after an upgrade"
if grep -Eq 'deb-systemd-invoke (start|restart) ' "$postinst"; then fail "postinst starts the service"; fi
if grep -q 'deb-systemd-helper enable' "$postinst" && ! grep -q 'was-enabled' "$postinst"; then
    fail "postinst enables the service on a fresh install"
fi
ok "maintainer scripts: create the user, reload systemd, never start or enable the service"

# ---- the files themselves ---------------------------------------------------------------------
root=$work/root
dpkg-deb --extract "$deb" "$root"
version=$("$root/usr/bin/vast-supervisor" --version)
ok "the packaged binary runs: $version"
"$root/usr/bin/vast-supervisor" check --config "$root/etc/vast-supervisor" || fail "the packaged configuration fails check"
ok "the packaged configuration passes check"
grep -q "MIT License" "$root/usr/share/doc/vast-supervisor/copyright" || fail "copyright lacks the license text"
ok "copyright holds the license"

if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart= to exist: point it at the extracted binary.
    sed "s#/usr/bin/vast-supervisor#$root/usr/bin/vast-supervisor#g" \
        "$root/usr/lib/systemd/system/vast-supervisor.service" >"$work/vast-supervisor.service"
    verify=$(systemd-analyze verify --man=false "$work/vast-supervisor.service" 2>&1) \
        || fail "systemd-analyze verify: $verify"
    [ -z "$verify" ] || fail "systemd-analyze verify: $verify"
    ok "systemd-analyze verify: no warnings"
    score_line=$(systemd-analyze security --offline=true --no-pager "$work/vast-supervisor.service" | tail -n 1)
    score=$(echo "$score_line" | sed -n 's/.*vast-supervisor.service: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || fail "no exposure level in: $score_line"
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score is above 2.0"
    ok "systemd-analyze security --offline=true: $score_line"
else
    skip "systemd-analyze is not installed: unit not verified"
fi

if command -v lintian >/dev/null; then
    lintian --fail-on error,warning "$deb" || fail "lintian"
    ok "lintian: no errors or warnings (overrides: packaging/debian/lintian-overrides)"
else
    skip "lintian is not installed"
fi

[ "$install" = yes ] || { echo "check-deb: all checks passed"; exit 0; }

# ---- install on this machine ------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "--install needs root"
command -v dpkg >/dev/null || fail "--install needs dpkg"
dpkg -i "$deb"
ok "dpkg -i"

passwd=$(getent passwd vast-supervisor) || fail "no user vast-supervisor"
getent group vast-supervisor >/dev/null || fail "no group vast-supervisor"
case "$passwd" in *:/var/lib/vast-supervisor:/usr/sbin/nologin) ;; *) fail "user: $passwd" ;; esac
ok "user: $passwd"

expect_stat() {
    local actual
    actual=$(stat -c '%a %U:%G' "$2") || fail "missing: $2"
    [ "$actual" = "$1" ] || fail "$2 is $actual, expected $1"
}
expect_stat "755 root:root" /usr/bin/vast-supervisor
expect_stat "640 root:vast-supervisor" /etc/vast-supervisor/vast-supervisor.toml
for example in /etc/vast-supervisor/conf.d/*.toml.example; do expect_stat "640 root:vast-supervisor" "$example"; done
expect_stat "750 root:vast-supervisor" /etc/vast-supervisor/keys
expect_stat "750 root:vast-supervisor" /etc/vast-supervisor/secrets
ok "configuration 0640 root:vast-supervisor, keys/ and secrets/ 0750 root:vast-supervisor"

as_daemon() { runuser -u vast-supervisor -- "$@"; }
summary=$(as_daemon vast-supervisor check) || fail "vast-supervisor check fails on the installed configuration"
ok "as vast-supervisor: vast-supervisor check: $summary"

# An account from the host example: rejected while its key file is missing, accepted with it.
conf_d=/etc/vast-supervisor/conf.d
install -m 0640 -o root -g vast-supervisor "$conf_d/10-host-example.toml.example" "$conf_d/10-host-example.toml"
if rejected=$(as_daemon vast-supervisor check 2>&1); then fail "check accepted an account without its key"; fi
ok "as vast-supervisor: check refuses the host example without its key: $rejected"
install -m 0640 -o root -g vast-supervisor /dev/null /etc/vast-supervisor/keys/host-example
echo "check-deb-example-key" >/etc/vast-supervisor/keys/host-example
summary=$(as_daemon vast-supervisor check) || fail "check fails with the key in keys/"
ok "as vast-supervisor: with keys/host-example: $summary"
rm -f "$conf_d/10-host-example.toml" /etc/vast-supervisor/keys/host-example

enabled=$(systemctl is-enabled vast-supervisor.service 2>/dev/null || true)
[ "$enabled" = disabled ] || fail "systemctl is-enabled says '$enabled', expected disabled"
if [ -d /run/systemd/system ]; then
    active=$(systemctl is-active vast-supervisor.service 2>/dev/null || true)
    [ "$active" = inactive ] || fail "the service is $active after installation"
fi
ok "the service is installed disabled and not running"

man -w 5 vast-supervisor.toml >/dev/null || fail "man cannot find vast-supervisor.toml(5)"
man -w 1 vast-supervisor >/dev/null || fail "man cannot find vast-supervisor(1)"
ok "man pages found by man"

if command -v systemd-analyze >/dev/null; then
    verify=$(systemd-analyze verify /usr/lib/systemd/system/vast-supervisor.service 2>&1) \
        || fail "systemd-analyze verify (installed): $verify"
    [ -z "$verify" ] || fail "systemd-analyze verify (installed): $verify"
    ok "systemd-analyze verify on the installed unit, man pages included: no warnings"
fi

if [ "$purge" = yes ]; then
    dpkg --purge vast-supervisor
    [ ! -e /etc/vast-supervisor ] || fail "/etc/vast-supervisor is left after purge"
    ok "dpkg --purge removed the package and its configuration"
fi
echo "check-deb: all checks passed"
