#!/bin/sh
# Seeds both fuzz targets with the RFC 4475 torture messages (and AFL++'s input dir).
# Usage: fuzz/seed_corpus.sh [RFC4475_DIR]
set -eu
src=${1:-/work/shared/conformance/rfc4475}
here=$(cd "$(dirname "$0")" && pwd)
for t in sip_message sip_frame; do
    mkdir -p "$here/corpus/$t"
    cp "$src"/*.dat "$here/corpus/$t/"
done
mkdir -p "$here/afl-in"
cp "$src"/*.dat "$here/afl-in/"
echo "seeded $(ls "$src"/*.dat | wc -l) files into $here/corpus/{sip_message,sip_frame} and $here/afl-in"
