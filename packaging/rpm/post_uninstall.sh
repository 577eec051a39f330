# %postun of vast-supervisor: forget the removed unit, or restart a running daemon on the new
# binary after an upgrade.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart vast-supervisor.service >/dev/null 2>&1 || :
    fi
fi
