#!/usr/bin/env bash
# Builds the .rpm with cargo-generate-rpm and checks it: every file present with its mode, owner
# and flags (config noreplace in /etc, docs, compressed man pages), the directories it owns, the
# summary, URL and dependencies, the scriptlets; the packaged binary runs and the packaged
# configuration passes `check`; rpmlint (where installed) reports no error.
#
#   packaging/check-rpm.sh            build and inspect
#
# Needs cargo-generate-rpm (cargo install --locked cargo-generate-rpm), rpm (for rpm -qp and
# rpm2cpio) and cpio. It builds in release mode, so it takes minutes on a small machine: that is
# why .ci/run leaves it out, while `cargo test` (tests/packaging_files.rs) checks the asset lists.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$#" -eq 0 ] || { echo "usage: $0" >&2; exit 2; }

fail() { echo "check-rpm: FAIL: $*" >&2; exit 1; }
ok() { echo "check-rpm: ok: $*"; }
skip() { echo "check-rpm: skipped: $*"; }

for tool in cargo-generate-rpm rpm rpm2cpio cpio gzip; do
    command -v "$tool" >/dev/null || { echo "check-rpm: $tool is not installed (cargo install --locked cargo-generate-rpm; apt-get install rpm cpio)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- build ------------------------------------------------------------------------------------
cargo build --release --locked
# cargo-generate-rpm packages files as they are: the man pages go in compressed, as rpmbuild's
# brp-compress would leave them. -n keeps the archives reproducible (no name, no time stamp).
mkdir -p target/man
rm -f target/man/*.gz
for page in packaging/man/*.[15]; do
    gzip -9 -n -c "$page" >"target/man/$(basename "$page").gz"
done
cargo generate-rpm --output "$work/"
rpms=("$work"/*.rpm)
[ "${#rpms[@]}" -eq 1 ] && [ -f "${rpms[0]}" ] || fail "cargo generate-rpm did not produce one .rpm"
rpm=${rpms[0]}
ok "built $(basename "$rpm")"

q() { rpm -qp "$@" "$rpm" 2>/dev/null; }

# ---- header: summary, description, URL, license ------------------------------------------------
summary=$(q --qf '%{SUMMARY}')
[ -n "$summary" ] && [ "${#summary}" -lt 80 ] || fail "summary must be one line under 80 characters: $summary"
url=$(q --qf '%{URL}')
[ -n "$url" ] && [ "$url" != "(none)" ] || fail "no URL"
license=$(q --qf '%{LICENSE}')
[ "$license" = MIT ] || fail "license is $license"
ok "summary: $summary; URL: $url; license: $license"

# ---- contents: every file and directory with its mode, owner and flags -------------------------
declare -A expected
expect() { expected["$3"]="$1 $2"; }
expect -rwxr-xr-x root:root /usr/bin/vast-supervisor
expect -rw-r--r-- root:root /usr/lib/systemd/system/vast-supervisor.service
expect -rw-r--r-- root:root /usr/lib/sysusers.d/vast-supervisor.conf
expect -rw-r--r-- root:root /usr/lib/tmpfiles.d/vast-supervisor.conf
expect drwxr-xr-x root:root /etc/vast-supervisor
expect drwxr-xr-x root:root /etc/vast-supervisor/conf.d
expect drwxr-x--- root:vast-supervisor /etc/vast-supervisor/keys
expect drwxr-x--- root:vast-supervisor /etc/vast-supervisor/secrets
expect -rw-r----- root:vast-supervisor /etc/vast-supervisor/vast-supervisor.toml
for example in conf.d/*.toml; do
    expect -rw-r----- root:vast-supervisor "/etc/vast-supervisor/conf.d/$(basename "$example").example"
done
for page in packaging/man/*.1; do expect -rw-r--r-- root:root "/usr/share/man/man1/$(basename "$page").gz"; done
for page in packaging/man/*.5; do expect -rw-r--r-- root:root "/usr/share/man/man5/$(basename "$page").gz"; done
expect -rw-r--r-- root:root /usr/share/bash-completion/completions/vast-supervisor
expect -rw-r--r-- root:root /usr/share/zsh/site-functions/_vast-supervisor
expect -rw-r--r-- root:root /usr/share/fish/vendor_completions.d/vast-supervisor.fish
expect drwxr-xr-x root:root /usr/share/doc/vast-supervisor
for doc in README.md CONFIGURATION.md EVENTS.md DEPLOYMENT.md; do
    expect -rw-r--r-- root:root "/usr/share/doc/vast-supervisor/$doc"
done
expect drwxr-xr-x root:root /usr/share/licenses/vast-supervisor
expect -rw-r--r-- root:root /usr/share/licenses/vast-supervisor/LICENSE

listing=$(q --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]')
echo "$listing"
declare -A found
while read -r mode owner path; do
    [ -n "${expected[$path]+set}" ] || fail "unexpected entry in the package: $path"
    [ "$mode $owner" = "${expected[$path]}" ] || fail "$path is $mode $owner, expected ${expected[$path]}"
    found["$path"]=1
done <<<"$listing"
for path in "${!expected[@]}"; do
    [ -n "${found[$path]+set}" ] || fail "missing from the package: $path"
done
ok "${#expected[@]} files and directories, each with its mode and owner"

expected_config=$(for path in "${!expected[@]}"; do
    case "$path" in /etc/*) [ "${expected[$path]:0:1}" = - ] && echo "$path" ;; esac
done | sort)
actual_config=$(q --configfiles | sort)
[ "$actual_config" = "$expected_config" ] || fail "config files are:
$actual_config
expected:
$expected_config"
noreplace=$(q --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' | awk '$2 ~ /^\/etc\// && $1 !~ /n/ && $1 ~ /c/')
[ -z "$noreplace" ] || fail "config files without noreplace: $noreplace"
ok "config files: every file in /etc, %config(noreplace)"
for page in $(q --list | grep '^/usr/share/man/'); do
    case "$page" in *.gz) ;; *) fail "man page not compressed: $page" ;; esac
done
ok "man pages compressed"

# ---- dependencies and scriptlets ---------------------------------------------------------------
requires=$(q --requires)
echo "$requires" | grep -q '^systemd' || fail "Requires lacks systemd (systemd-sysusers in %pre): $requires"
echo "$requires" | grep -q '^/bin/sh' || fail "Requires lacks /bin/sh for the scriptlets"
ok "Requires: $(echo "$requires" | tr '\n' ' ')"
scripts=$(q --scripts)
echo "$scripts" | grep -q 'systemd-sysusers' || fail "%pre does not create the user"
if echo "$scripts" | grep -Eq 'systemctl (enable|start|restart) '; then fail "a scriptlet enables or starts the service"; fi
ok "scriptlets: %pre creates the user; nothing enables or starts the service"

# ---- the files themselves ---------------------------------------------------------------------
root=$work/root
mkdir -p "$root"
(cd "$root" && rpm2cpio "$rpm" | cpio -idm --quiet)
version=$("$root/usr/bin/vast-supervisor" --version)
ok "the packaged binary runs: $version"
"$root/usr/bin/vast-supervisor" check --config "$root/etc/vast-supervisor" || fail "the packaged configuration fails check"
ok "the packaged configuration passes check"
gzip -t "$root"/usr/share/man/man*/*.gz || fail "a man page is not valid gzip"
ok "man pages are valid gzip"

if command -v rpmlint >/dev/null; then
    # The rpmlint configuration names each finding this package keeps on purpose, and why.
    lint=$(rpmlint -r packaging/rpm/vast-supervisor.rpmlintrc "$rpm" 2>&1) || true
    echo "$lint"
    errors=$(echo "$lint" | sed -n 's/.* \([0-9][0-9]*\) errors, .*/\1/p' | tail -n 1)
    [ -n "$errors" ] || fail "no rpmlint summary"
    [ "$errors" -eq 0 ] || fail "rpmlint: $errors errors"
    ok "rpmlint: $(echo "$lint" | tail -n 1)"
else
    skip "rpmlint is not installed"
fi
echo "check-rpm: all checks passed"
