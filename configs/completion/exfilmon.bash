# SPDX-License-Identifier: Apache-2.0
# bash completion for exfilmon(8), installed as
# /usr/share/bash-completion/completions/exfilmon (bash-completion loads it
# the first time exfilmon is completed).
#
# Subcommands, options and the values of --kind, --sort, --format,
# --datapath and --scenario come from the binary's own --help (CLI11 prints an option's
# allowed values as TEXT:{a,b,c}); --window from the running daemon's
# windows (exfilmon status). So nothing here repeats a list the code keeps.

# The --help text of the exfilmon being completed (as typed: a build tree's
# binary completes its own options).
_exfilmon_help()
{
    "${words[0]}" "$@" --help 2>/dev/null
}

# The subcommands (of subcommand $1, e.g. fleet; none: the top level's): the
# "Subcommands:" section of `exfilmon [$1] --help`.
_exfilmon_subcommands()
{
    _exfilmon_help "$@" | sed -n '/^Subcommands:/,$s/^  \([a-z][a-z-]*\) .*/\1/p'
}

# The options of subcommand $1 (none: the global ones): "-c,--config TEXT".
_exfilmon_options()
{
    _exfilmon_help "$@" | sed -n 's/^  \(-[^ ]*\).*/\1/p' | tr ',' '\n'
}

# The allowed values of option $2 of subcommand $1: "--kind TEXT:{a,b}=a".
_exfilmon_option_values()
{
    _exfilmon_help "$1" | sed -n "s/^  \(-[a-z],\)\{0,1\}$2 [A-Z]*:{\([^}]*\)}.*/\2/p" | tr ',' ' '
}

# The windows `top --window` accepts: those of the daemon at --socket (or
# the default socket); without a daemon to ask, the default of --window.
_exfilmon_windows()
{
    local socket= i json
    for ((i = 1; i < cword - 1; i++)); do
        [[ ${words[i]} == --socket ]] && socket=${words[i + 1]}
    done
    # A daemon that does not answer would hold the prompt: 2 s at most.
    json=$(timeout 2 "${words[0]}" status ${socket:+--socket "$socket"} --format json 2>/dev/null)
    if [[ $json =~ \"windows\":\[([^]]*)\] ]]; then
        local list=${BASH_REMATCH[1]//\"/}
        echo "${list//,/ }"
    else
        _exfilmon_help top | sed -n 's/^  --window [A-Z]*=\([^ ]*\).*/\1/p'
    fi
}

_exfilmon()
{
    local cur prev words cword split
    _init_completion -s || return

    # The subcommand, and the subcommand's own one (fleet init).
    local sub= subsub= i
    for ((i = 1; i < cword; i++)); do
        if [[ ${words[i]} != -* ]]; then
            if [[ -z $sub ]]; then
                sub=${words[i]}
            elif [[ $sub == fleet ]]; then
                subsub=${words[i]}
                break
            fi
        fi
    done

    case $prev in
    -c | --config | --script | --socket)
        _filedir
        return
        ;;
    -i | --interface)
        _available_interfaces
        return
        ;;
    --window)
        COMPREPLY=($(compgen -W "$(_exfilmon_windows)" -- "$cur"))
        return
        ;;
    --kind | --sort | --format | --datapath | --scenario)
        COMPREPLY=($(compgen -W "$(_exfilmon_option_values "$sub" "$prev")" -- "$cur"))
        return
        ;;
    -n | --interval)
        # A number, a duration: nothing to offer.
        return
        ;;
    esac
    $split && return

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_exfilmon_options $sub $subsub)" -- "$cur"))
    elif [[ -z $sub ]]; then
        COMPREPLY=($(compgen -W "$(_exfilmon_subcommands)" -- "$cur"))
    elif [[ $sub == fleet && -z $subsub ]]; then
        COMPREPLY=($(compgen -W "$(_exfilmon_subcommands fleet)" -- "$cur"))
    elif [[ $sub == replay || $sub == check-config ]]; then
        # The capture file (replay; "-" is standard input) or the configuration.
        _filedir
    fi
} &&
    complete -F _exfilmon exfilmon
