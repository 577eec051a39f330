# %pre of vast-supervisor: the user and group must exist before rpm installs the configuration
# files that belong to the group. The line is packaging/sysusers.d/vast-supervisor.conf, which
# is not on disk yet (tests/packaging_files.rs keeps the two equal).
systemd-sysusers --replace=/usr/lib/sysusers.d/vast-supervisor.conf - <<'SYSUSERS'
u vast-supervisor - "vast-supervisor daemon" /var/lib/vast-supervisor /usr/sbin/nologin
SYSUSERS
