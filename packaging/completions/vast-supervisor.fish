# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_vast_supervisor_global_optspecs
    string join \n config= socket= log-format= v/verbose q/quiet h/help V/version
end

function __fish_vast_supervisor_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_vast_supervisor_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_vast_supervisor_using_subcommand
    set -l cmd (__fish_vast_supervisor_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -s V -l version -d 'Print version'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "run" -d 'Run the daemon in the foreground (systemd Type=notify)'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "demo" -d 'Run the real supervisor against a simulated Vast cloud and print its notifications'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "check" -d 'Validate every configuration file; print file:line:col: message per problem'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "status" -d 'Ask the running daemon for its status'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "reload" -d 'Ask the running daemon to reload its configuration (same as SIGHUP); exit 2 when a file was rejected'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "notify-test" -d 'Send a test message through one target of the running daemon and print the answer'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "events" -d 'Show recent events from the running daemon'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "logs" -d 'Print an instance\'s log, using the key of a configured account'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "simulate" -d 'Run the simulated Vast cloud alone (for trying configurations and your own tooling)'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "import" -d 'Move in from vast-monitor: its configuration and state become vast-supervisor\'s'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "completions" -d 'Print the completion script for a shell (bash, zsh, fish, elvish, powershell)'
complete -c vast-supervisor -n "__fish_vast_supervisor_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand run" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand run" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand run" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand run" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand run" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand run" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand demo" -l duration -d 'Stop by itself after this long (default: run until Ctrl+C)' -r
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand demo" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand demo" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand demo" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand demo" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand demo" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand demo" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand check" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand check" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand check" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand check" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand check" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand check" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand status" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand status" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand status" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand status" -l json -d 'Print the status as JSON'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand status" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand status" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand status" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand reload" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand reload" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand reload" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand reload" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand reload" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand reload" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand notify-test" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand notify-test" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand notify-test" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand notify-test" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand notify-test" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand notify-test" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -l limit -d 'How many recent events to show' -r
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -l follow -d 'Keep printing new events until Ctrl+C'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -l json -d 'Print events as JSON lines'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand events" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -l tail -d 'How many lines of the existing log to print' -r
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -l follow -d 'Keep fetching and print new lines until Ctrl+C'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand logs" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -l listen -d 'Address to listen on' -r
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -l scenario -d 'Scenario file (TOML); default: the demo scenario' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand simulate" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l to -d 'Configuration directory to write conf.d/, keys/ and secrets/ into (created if missing)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l snapshots -d 'Its state directory (vast-monitor: the directory of config.json, with rental_snapshot.json and machine_snapshots/)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l account -d 'Name of the account in vast-supervisor (names are unique across conf.d)' -r
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l state-dir -d 'State directory to import the snapshots into (default: state_dir of DIR/vast-supervisor.toml, else /var/lib/vast-supervisor)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -l force -d 'Replace the files of an earlier import instead of refusing'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand completions" -l config -d 'Configuration directory holding vast-supervisor.toml and conf.d/*.toml' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand completions" -l socket -d 'Control socket of the running daemon (default: control_socket of the configuration, else /run/vast-supervisor/control.sock)' -r -F
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand completions" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand completions" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand completions" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand completions" -s h -l help -d 'Print help'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "run" -d 'Run the daemon in the foreground (systemd Type=notify)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "demo" -d 'Run the real supervisor against a simulated Vast cloud and print its notifications'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "check" -d 'Validate every configuration file; print file:line:col: message per problem'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "status" -d 'Ask the running daemon for its status'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "reload" -d 'Ask the running daemon to reload its configuration (same as SIGHUP); exit 2 when a file was rejected'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "notify-test" -d 'Send a test message through one target of the running daemon and print the answer'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "events" -d 'Show recent events from the running daemon'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "logs" -d 'Print an instance\'s log, using the key of a configured account'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "simulate" -d 'Run the simulated Vast cloud alone (for trying configurations and your own tooling)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "import" -d 'Move in from vast-monitor: its configuration and state become vast-supervisor\'s'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "completions" -d 'Print the completion script for a shell (bash, zsh, fish, elvish, powershell)'
complete -c vast-supervisor -n "__fish_vast_supervisor_using_subcommand help; and not __fish_seen_subcommand_from run demo check status reload notify-test events logs simulate import completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
