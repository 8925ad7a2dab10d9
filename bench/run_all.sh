#!/usr/bin/env bash
# Run every Spacechat benchmark (each: 3 runs, medians) and keep what they print.
#
#   bench/run_all.sh                    # the spacechat the venv imports (this checkout)
#   bench/run_all.sh --src /tmp/snap    # a source tree, e.g. `git archive HEAD | tar -x -C /tmp/snap`
#   PROFILE=1 bench/run_all.sh          # plus one unrecorded py-spy run of each, summarised
#   OUT=/tmp/results bench/run_all.sh   # where the output goes (default: a new /tmp/spacechat-bench.* dir)
#
# Any arguments are passed to every benchmark (so only those all three take: --src, --runs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python="python3"
out="${OUT:-$(mktemp -d /tmp/spacechat-bench.XXXXXX)}"
mkdir -p "$out"

for bench in fanout send resume; do
    args=(--json "$out/$bench.json" "$@")
    if [ "${PROFILE:-0}" = "1" ]; then
        args+=(--profile "$out/$bench.pyspy.txt")
    fi
    "$python" "$here/$bench.py" "${args[@]}" | tee "$out/$bench.txt"
    if [ -f "$out/$bench.pyspy.txt" ]; then
        "$python" "$here/profile_summary.py" "$out/$bench.pyspy.txt" > "$out/$bench.profile.txt"
        echo "profile summary: $out/$bench.profile.txt"
    fi
done
echo "output in $out"
