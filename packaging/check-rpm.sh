#!/usr/bin/env bash
# Builds the .rpm (rpmbuild, packaging/rpm/vast-supervisor.spec, from the release binary) and
# checks it: every file and directory present with its mode, owner and flags (config noreplace in
# /etc, docs, the license, compressed man pages), the summary, description, URL, packager and
# changelog, Requires(pre) for the %pre script that creates the user, the scriptlets; the
# packaged binary runs and the packaged configuration passes `check`; rpmlint (where installed)
# reports no error.
#
#   packaging/check-rpm.sh            build and inspect; the package is left in target/rpm/
#
# Needs rpmbuild, rpm2cpio and cpio (apt-get install rpm cpio, or dnf install rpm-build cpio).
# It builds in release mode, so it takes minutes on a small machine: that is why .ci/run leaves
# it out, while `cargo test` (tests/packaging_files.rs) checks the spec against the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$#" -eq 0 ] || { echo "usage: $0" >&2; exit 2; }

fail() { echo "check-rpm: FAIL: $*" >&2; exit 1; }
ok() { echo "check-rpm: ok: $*"; }
skip() { echo "check-rpm: skipped: $*"; }

for tool in rpmbuild rpm rpm2cpio cpio gzip; do
    command -v "$tool" >/dev/null || { echo "check-rpm: $tool is not installed (apt-get install rpm cpio; dnf install rpm-build cpio)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- build ------------------------------------------------------------------------------------
cargo build --release --locked
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || fail "no version in Cargo.toml"
# --nodeps: the build host need not be an RPM system (its packages are not in the rpm database).
rpmbuild -bb --nodeps --quiet \
    --define "_sourcedir $PWD" \
    --define "_topdir $work/rpmbuild" \
    --define "pkg_version $version" \
    packaging/rpm/vast-supervisor.spec
rpms=("$work"/rpmbuild/RPMS/*/*.rpm)
[ "${#rpms[@]}" -eq 1 ] && [ -f "${rpms[0]}" ] || fail "rpmbuild did not produce one .rpm"
mkdir -p target/rpm
cp "${rpms[0]}" target/rpm/
rpm=${rpms[0]}
ok "built $(basename "$rpm") (also in target/rpm/)"

q() { rpm -qp "$@" "$rpm" 2>/dev/null; }

# ---- header: summary, description, URL, license, packager, changelog ---------------------------
summary=$(q --qf '%{SUMMARY}')
[ -n "$summary" ] && [ "${#summary}" -lt 80 ] || fail "summary must be one line under 80 characters: $summary"
description=$(q --qf '%{DESCRIPTION}')
[ "$(echo "$description" | wc -l)" -ge 3 ] || fail "the description is not a paragraph: $description"
url=$(q --qf '%{URL}')
[ -n "$url" ] && [ "$url" != "(none)" ] || fail "no URL"
license=$(q --qf '%{LICENSE}')
[ "$license" = MIT ] || fail "license is $license"
packager=$(q --qf '%{PACKAGER}')
[ "$packager" != "(none)" ] || fail "no packager"
q --changelog | head -n 1 | grep -q -- "- $version-1\$" || fail "the changelog has no entry for $version-1"
ok "summary: $summary; URL: $url; license: $license; packager: $packager; changelog for $version-1"

# ---- contents: every file and directory with its mode, owner and flags -------------------------
declare -A expected
expect() { expected["$3"]="$1 $2"; }
expect -rwxr-xr-x root:root /usr/bin/vast-supervisor
expect -rw-r--r-- root:root /usr/lib/systemd/system/vast-supervisor.service
expect -rw-r--r-- root:root /usr/lib/sysusers.d/vast-supervisor.conf
expect -rw-r--r-- root:root /usr/lib/tmpfiles.d/vast-supervisor.conf
expect drwxr-xr-x root:root /etc/vast-supervisor
expect drwxr-xr-x root:root /etc/vast-supervisor/conf.d
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
pre=$(q --qf '[%{REQUIRENAME} %{REQUIREFLAGS:deptype}\n]' | grep -E '^systemd .*pre' || true)
[ -n "$pre" ] || fail "no Requires(pre): systemd (systemd-sysusers in %pre): $requires"
echo "$requires" | grep -q '^/bin/sh' || fail "Requires lacks /bin/sh for the scriptlets"
ok "Requires(pre): systemd; Requires: $(echo "$requires" | grep -v '^rpmlib' | tr '\n' ' ')"
scripts=$(q --scripts)
echo "$scripts" | grep -q 'systemd-sysusers' || fail "%pre does not create the user"
# (The %post message tells the administrator to enable it: echo lines do not count.)
if echo "$scripts" | grep -v '^[[:space:]]*echo ' | grep -Eq 'systemctl (enable|start|restart) '; then
    fail "a scriptlet enables or starts the service"
fi
ok "scriptlets: %pre creates the user; nothing enables or starts the service"

# ---- the files themselves ---------------------------------------------------------------------
root=$work/root
mkdir -p "$root"
# Some rpm2cpio versions exit 1 after writing a zstd payload completely: the extraction is
# checked by what it produced instead.
rpm2cpio "$rpm" >"$work/payload.cpio" || true
(cd "$root" && cpio -idm --quiet <"$work/payload.cpio") || fail "cannot extract the payload"
[ -x "$root/usr/bin/vast-supervisor" ] || fail "the payload holds no binary"
version=$("$root/usr/bin/vast-supervisor" --version)
ok "the packaged binary runs: $version"
"$root/usr/bin/vast-supervisor" check --config "$root/etc/vast-supervisor" || fail "the packaged configuration fails check"
ok "the packaged configuration passes check"
gzip -t "$root"/usr/share/man/man*/*.gz || fail "a man page is not valid gzip"
ok "man pages are valid gzip"

if command -v rpmlint >/dev/null; then
    # rpmlint.toml tells rpmlint this package's conventions (gzip man pages, the MIT license);
    # vast-supervisor.rpmlintrc names each finding kept on purpose, and why.
    lint=$(rpmlint -c packaging/rpm/rpmlint.toml -r packaging/rpm/vast-supervisor.rpmlintrc "$rpm" 2>&1) || true
    echo "$lint"
    summary_line=$(echo "$lint" | grep -E '[0-9]+ errors, [0-9]+ warnings' | tail -n 1)
    errors=$(echo "$summary_line" | sed -n 's/.* \([0-9][0-9]*\) errors, .*/\1/p')
    [ -n "$errors" ] || fail "no rpmlint summary"
    [ "$errors" -eq 0 ] || fail "rpmlint: $errors errors"
    ok "rpmlint:$summary_line"
else
    skip "rpmlint is not installed"
fi
echo "check-rpm: all checks passed"
