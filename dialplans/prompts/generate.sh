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

# Hold music (not speech): four soft chords, 8 s, looped while a caller waits
# or is held. Replace hold_music.wav with licensed music of your own if you like.
for i in 1 2 3 4; do
    case $i in
        1) n="523.25 659.25 783.99" ;; 2) n="440 523.25 659.25" ;;
        3) n="349.23 440 523.25" ;;    4) n="392 493.88 587.33" ;;
    esac
    set -- $n
    sox -n -r 8000 -b 16 -c 1 "chord$i.wav" synth 1.0 sine "$1" sine "$2" sine "$3" fade q 0.05 1.0 0.3 gain -18
done
sox chord1.wav chord2.wav chord3.wav chord4.wav chord1.wav chord2.wav chord3.wav chord4.wav hold_music.wav
rm -f chord1.wav chord2.wav chord3.wav chord4.wav
