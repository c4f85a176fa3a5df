#!/bin/sh
# Replay the seed corpus through the reassembler fuzz target (run by
# `make check`, which sets top_srcdir and top_builddir).
: "${top_srcdir:=.}"
: "${top_builddir:=.}"
exec "$top_builddir/tests/fuzz/replay-reasm" "$top_srcdir/tests/fuzz/corpus"
