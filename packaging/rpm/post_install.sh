# %post of vast-supervisor: create keys/ and secrets/, and let systemd see the unit. The
# service is neither enabled nor started: it needs an account first (see vast-supervisor.toml(5)).
systemd-tmpfiles --create vast-supervisor.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    echo "vast-supervisor: add an account in /etc/vast-supervisor/conf.d/ (see the *.toml.example files"
    echo "there and vast-supervisor.toml(5)), run 'vast-supervisor check', then"
    echo "'systemctl enable --now vast-supervisor'."
fi
