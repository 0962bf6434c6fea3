#!/usr/bin/env bash
# `make check`: static checks that need no running system.
# clang-format must agree with the committed .clang-format, and cppcheck must
# find nothing in the library and the services (tests are Criterion macros,
# which cppcheck cannot read).
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
files=$(git ls-files '*.c' '*.h')
if ! clang-format --dry-run --Werror $files; then
    echo "check: formatting differs; run 'make fmt'" >&2
    rc=1
fi
if command -v cppcheck >/dev/null 2>&1; then
    if ! cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
        --suppress=missingIncludeSystem -Ishared \
        $(git ls-files 'shared/*.c' 'services/*.c'); then
        rc=1
    fi
else
    echo "check: cppcheck is not installed; skipping it" >&2
fi
exit $rc
