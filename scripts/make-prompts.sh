#!/bin/sh
# Make the demo flows' own prompts (ivr_flows/prompts/<language>/NAME.wav) from text.
#
# Voice: espeak-ng (voice "en-us", speed 150 wpm); audio: sox (-D: no dither, so runs are
# byte-identical) to WAV, 8 kHz, mono, 16-bit signed PCM, which Asterisk plays as is.
# The generated files are committed; run this again after changing a text below (needs
# espeak-ng and sox: apt-get install espeak-ng sox). Output depends only on the texts
# and the tool versions.
set -eu
cd "$(dirname "$0")/.."
out=ivr_flows/prompts/en
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() {  # say NAME TEXT
    espeak-ng -v en-us -s 150 -w "$tmp/$1.wav" "$2"
    sox -D "$tmp/$1.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$1.wav"
    echo "$out/$1.wav"
}

say welcome "Welcome to the callcontrol support hotline."
say main-menu "For your account and billing, press 1. To speak with support, press 2. To hear these options again, press 9."
say invalid-option "Sorry, that is not a valid option."
say no-input "Sorry, I did not hear your choice."
say enter-account "Please enter your account number, followed by the hash key."
say closed "Our offices are closed right now. Our opening hours are Monday to Friday, 8 to 1 and 2 to 8, and Saturday morning."
say leave-message "Please leave a message after the tone. Press hash when you are done."
say thanks "Thank you for calling."
say rate-the-call "Please rate this call from 1 to 5."
say goodbye "Goodbye."
