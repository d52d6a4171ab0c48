#!/bin/sh
# Regenerates every prompt WAV (8 kHz, 16-bit, mono) from prompts.tsv with
# espeak-ng's Mandarin voice. Synthetic voice is a placeholder: see README.md
# for replacing the files with recordings.
#
#   ./generate.sh                    # all prompts
#   COMPANY=海尔 ./generate.sh        # company name in the greetings
set -eu
cd "$(dirname "$0")"
command -v espeak-ng >/dev/null || { echo "espeak-ng not installed" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox not installed" >&2; exit 1; }
company="${COMPANY:-}"
tmp="$(mktemp --suffix=.wav)"
trap 'rm -f "$tmp"' EXIT
count=0
while IFS="$(printf '\t')" read -r name text; do
    case "$name" in ''|'#'*) continue ;; esac
    [ -n "$text" ] || { echo "prompts.tsv: no text for $name" >&2; exit 1; }
    # Plain substitution; a company name containing / or & is not expected.
    text="$(printf '%s' "$text" | sed "s/{company}/$company/g")"
    espeak-ng -v cmn -s 150 -w "$tmp" "$text"
    # gain -n -3: normalise to -3 dBFS so resampling does not clip.
    sox "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" gain -n -3
    count=$((count + 1))
done < prompts.tsv
echo "generated $count prompts in $(pwd)"
