#!/bin/sh
# SPDX-License-Identifier: MIT
# Fill a man page's option list from the program's own --help, so that the
# page and --help cannot disagree:
#
#   help2scd.sh MODE PAGE.scd.in OUT.scd -- PROGRAM --help
#
# Copies PAGE.scd.in to OUT.scd, replacing the line "@OPTIONS@" with the
# OPTIONS section of the help text in scdoc. MODE "flags" lists every option
# as it is given on the command line (discd(8)); MODE "keys" lists the long
# options as config-file keys, "key = VALUE" (discd.conf(5)), leaving out
# those that cannot be set in a file (config, check-config, help, version).
set -eu
mode=$1 in=$2 out=$3
shift 4
help=$("$@")
options=$(printf '%s\n' "$help" | awk -v mode="$mode" '
    function esc(s) { gsub(/\\/, "\\\\", s); gsub(/\*/, "\\*", s); gsub(/_/, "\\_", s); return s }
    /^[A-Z][A-Z ]*$/ { in_opts = ($0 == "OPTIONS"); next }
    !in_opts { next }
    /^    -/ {
        line = $0; sub(/^ +/, "", line)
        skip = 0
        if (mode == "keys") {
            n = split(line, parts, ", ")
            opt = parts[n]
            if (opt !~ /^--/ || opt ~ /^--(config|check-config|help|version)( |$)/) { skip = 1; next }
            key = opt; sub(/^--/, "", key); arg = ""
            if (key ~ / /) { arg = key; sub(/^[^ ]+ /, "", arg); sub(/ .*/, "", key) }
            if (key ~ /\[=true\|false\]$/) { sub(/\[=true\|false\]$/, "", key); arg = "true|false" }
            printf "%s*%s* = _%s_\n", (started ? "\n" : ""), esc(key), esc(arg)
        } else {
            n = split(line, words, " ")
            out = ""
            for (i = 1; i <= n; i++) {
                w = words[i]
                if (w ~ /^-/) { c = ""; if (w ~ /,$/) { c = ","; sub(/,$/, "", w) }
                    out = out (i > 1 ? " " : "") "*" esc(w) "*" c }
                else out = out " _" esc(w) "_"
            }
            printf "%s%s\n", (started ? "\n" : ""), out
        }
        started = 1
        next
    }
    /^        / { if (skip) next; line = $0; sub(/^ +/, "", line); printf "\t%s\n", esc(line); next }
')
awk -v opts="$options" '$0 == "@OPTIONS@" { print opts; next } { print }' "$in" >"$out"
