#!/bin/sh
# Regenerates matterline's built-in prompts: 8 kHz mono 16-bit PCM WAV files.
# Needs espeak-ng and sox. Run from anywhere: ./configs/prompts/generate.sh
set -eu

cd "$(dirname "$0")"

VOICE="${VOICE:-en-us}"
SPEED="${SPEED:-150}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

say() {
	name="$1"
	text="$2"
	espeak-ng -v "$VOICE" -s "$SPEED" -w "$tmp/$name.wav" "$text"
	# Resample to 8 kHz mono 16-bit, normalise to -3 dBFS, add 200 ms of lead-in silence.
	sox "$tmp/$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" \
		gain -n -3 pad 0.2 0.1
	echo "$name.wav"
}

say greeting "Thank you for calling. To reach the person handling your matter, press 1. For the operator, press 0."
say invalid "Sorry, that is not a valid choice."
say goodbye "Thank you for calling. Goodbye."
say please_hold "Please hold while we connect your call."
say transferring "One moment please, I am transferring your call."
say nobody_available "I am sorry, nobody is available to take your call right now."
say leave_message "Please leave your name, number and a brief message after the tone. When you are done, you may hang up."
say thank_you "Your message has been recorded. Thank you, someone from our office will get back to you."
say outside_hours "Thank you for calling. Our office is currently closed. Please call again during business hours, or leave a message after the tone."
