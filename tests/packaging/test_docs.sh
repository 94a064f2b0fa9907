#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Man pages, help texts, example config and bash completion agree:
#  - every page renders with `man --warnings` and no message;
#  - every option of `discd --help` is in discd(8), every config key in
#    discd.conf(5) and in the example config, whose every line (uncommented)
#    passes discd --check-config;
#  - every option of `discctl --help` and of each `discctl COMMAND --help`
#    is in discctl(1), and every command has its section;
#  - the bash completion completes commands, options and service names.
#   test_docs.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"

discd=$build/daemon/discd
discctl=$build/tools/discctl
man=$build/man
tmp=$(mktemp -d /tmp/discshm-docs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for page in "$man"/discd.8 "$man"/discd.conf.5 "$man"/discctl.1 "$man"/libdiscshm.3; do
    [[ -f $page ]] || fail "man page not built: $page"
    MANWIDTH=80 man --warnings -l "$page" >/dev/null 2>"$tmp/warn" || fail "man -l $page failed"
    [[ ! -s $tmp/warn ]] || { cat "$tmp/warn"; fail "warnings rendering $page"; }
done
echo "ok: 4 man pages render without warnings"

# discd(8) and discd.conf(5)
"$discd" --help | help_flags >"$tmp/discd-flags"
[[ $(wc -l <"$tmp/discd-flags") -gt 20 ]] || fail "too few flags parsed from discd --help"
render_man "$man/discd.8" >"$tmp/discd.8.txt"
render_man "$man/discd.conf.5" >"$tmp/discd.conf.5.txt"
while read -r flag; do
    grep -qF -- "$flag" "$tmp/discd.8.txt" || fail "discd --help has $flag, discd(8) does not"
    key=${flag#--}
    case $key in config | check-config | help | version) continue ;; esac
    grep -qE "^ +$key = " "$tmp/discd.conf.5.txt" || fail "discd.conf(5) lacks key $key"
    grep -qE "^#?$key =" "$src/packaging/discd.conf" || fail "packaging/discd.conf lacks key $key"
done <"$tmp/discd-flags"
# and nothing in the pages that discd does not know
render_man "$man/discd.8" | help_flags | comm -13 "$tmp/discd-flags" - >"$tmp/extra"
[[ ! -s $tmp/extra ]] || fail "discd(8) mentions options discd --help does not: $(cat "$tmp/extra")"
echo "ok: discd(8), discd.conf(5) and packaging/discd.conf cover $(wc -l <"$tmp/discd-flags") options of discd --help"

# The example config: as shipped, and with every commented setting enabled.
"$discd" --config "$src/packaging/discd.conf" --check-config >/dev/null || fail "packaging/discd.conf"
sed -E 's/^#([a-z][a-z0-9-]* =)/\1/; s/^(host-id =).*/\1 example-host/' "$src/packaging/discd.conf" >"$tmp/all.conf"
"$discd" --config "$tmp/all.conf" --check-config >/dev/null || fail "packaging/discd.conf with every setting enabled"
echo "ok: packaging/discd.conf passes --check-config, also with every setting enabled"

# discctl(1)
render_man "$man/discctl.1" >"$tmp/discctl.1.txt"
commands=$("$discctl" --help | sed -n '/^COMMANDS/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
[[ $(wc -w <<<"$commands") -ge 8 ]] || fail "too few commands parsed from discctl --help"
{
    "$discctl" --help
    for c in $commands; do "$discctl" "$c" --help; done
} | help_flags >"$tmp/discctl-flags"
while read -r flag; do
    grep -qF -- "$flag" "$tmp/discctl.1.txt" || fail "discctl's help has $flag, discctl(1) does not"
done <"$tmp/discctl-flags"
for c in $commands; do
    grep -qE "^   ?[a-z, ]*\\b$c\\b" "$tmp/discctl.1.txt" || fail "discctl(1) has no section for '$c'"
done
echo "ok: discctl(1) covers $(wc -l <"$tmp/discctl-flags") options and $(wc -w <<<"$commands") commands"

# bash completion (with discctl from the build on PATH)
complete_words() {
    PATH="$build/tools:$PATH" bash -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _discctl
        printf "%s\n" "${COMPREPLY[@]}"' _ "$src/packaging/bash-completion/discctl" "$@"
}
[[ $(complete_words discctl reg) == register ]] || fail "completion of 'discctl reg'"
[[ $(complete_words discctl register --chec) == --check ]] || fail "completion of 'register --chec'"
[[ $(complete_words discctl register --check h) == http ]] || fail "completion of '--check h'"
# every command is offered
offered=$(complete_words discctl "")
for c in $commands; do
    grep -qx -- "$c" <<<"$offered" || fail "completion does not offer '$c'"
done
echo "ok: bash completion"
