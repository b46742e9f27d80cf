#!/bin/sh
# Regenerates the demo prompts in this directory: English speech from espeak-ng, converted by
# sox to 8 kHz mono 16-bit PCM WAV (the telephone rate: no resampling at play time, and the
# files stay small enough to commit). Needs espeak-ng and sox (Debian: apt-get install
# espeak-ng sox). Run from anywhere; the output does not depend on the working directory.
set -eu

cd "$(dirname "$0")"
command -v espeak-ng >/dev/null || { echo "make-prompts.sh: espeak-ng is missing (apt-get install espeak-ng)" >&2; exit 1; }
command -v sox >/dev/null || { echo "make-prompts.sh: sox is missing (apt-get install sox)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say NAME TEXT: speak TEXT into NAME.wav
say() {
    espeak-ng -v en-us -s 150 -w "$tmp/$1.wav" "$2"
    # A little silence after each prompt so concatenated prompts do not run together; the
    # level is normalised to -3 dBFS so the speech does not clip after G.711 encoding. -R makes
    # the dither repeatable, so regenerating gives the same bytes.
    sox -R "$tmp/$1.wav" -r 8000 -c 1 -b 16 "$1.wav" gain -n -3 pad 0 0.3
}

say welcome "Welcome to the demo call center. For sales, press 1. For service, press 2. To leave a message, press 0."
say invalid "Sorry, that is not a valid choice."
say no-input "Sorry, we did not receive your selection."
say after-hours "Thank you for calling. Our office is closed now. We are open Monday to Friday, from 8 a.m. to 8 p.m., Berlin time."
say voicemail-greeting "Please leave a message after the tone. When you are done, simply hang up."
say please-hold "Please hold. Your call is important to us, and the next available agent will be with you shortly."
say connecting "Please wait while we connect your call."
say customer-id "If you know your customer number, enter it now, followed by the hash key. Otherwise, please hold."
say caller-number "You are caller number"
say expected-wait "Your expected waiting time is about"
say minutes "minutes"
say minute "minute"
say goodbye "Thank you for calling. Goodbye."
for d in 0 1 2 3 4 5 6 7 8 9; do
    say "digit-$d" "$d"
done

# The voicemail tone: 400 ms of 1 kHz, then 200 ms of silence.
sox -R -n -r 8000 -c 1 -b 16 beep.wav synth 0.4 sine 1000 gain -6 pad 0 0.2
