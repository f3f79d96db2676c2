#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/; clang, ASan + UBSan) in build-fuzz and runs them one at a time, each over
# its seed corpus fuzz/corpus/<name> plus what earlier runs found (build-fuzz/fuzz-corpus/<name>). docs/fuzzing.md
# describes the harnesses, the limits and what to do with a crash.
#   scripts/fuzz.sh --smoke            each harness for a few seconds (scripts/test.sh runs this in CI)
#   scripts/fuzz.sh [--runs N]         N executions each (default 1000000)
#   scripts/fuzz.sh ... NAME...        only these harnesses (default: all, in the order below)
# Crashes, leaks, timeouts and out-of-memory inputs go to build-fuzz/fuzz-artifacts/<name>/, each harness's output
# to build-fuzz/fuzz-logs/<name>.log. Exit status 1 when any harness found something.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(safetensors model_config csv tfjs image tokenizer study_config)
BUILD_DIR="${FAIRDIFF_FUZZ_BUILD_DIR:-build-fuzz}"
SMOKE_SECONDS="${FAIRDIFF_FUZZ_SMOKE_SECONDS:-10}"
runs=1000000
smoke=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --runs) runs="$2"; shift ;;
    --runs=*) runs="${1#--runs=}" ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (expected --smoke, --runs N or harness names)" >&2; exit 2 ;;
    *)
      if [[ ! " ${ALL[*]} " == *" $1 "* ]]; then
        echo "fuzz.sh: unknown harness '$1' (expected one of: ${ALL[*]})" >&2; exit 2
      fi
      names+=("$1") ;;
  esac
  shift
done
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")

if ! command -v clang++ >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a \
  >/dev/null 2>&1; then
  echo "fuzz.sh: needs clang++ and libFuzzer's runtime (Debian: clang libclang-rt-14-dev; scripts/install.sh installs them)" >&2
  exit 3
fi
# A separate clang build: the compiler is only chosen when build-fuzz is first configured.
# FAIRDIFF_DEPS_ROOT: the extra prefix of unpacked .deb files that scripts/install.sh also searches.
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  deps=()
  if [ -n "${FAIRDIFF_DEPS_ROOT:-}" ]; then
    deps=("-DCMAKE_PREFIX_PATH=$FAIRDIFF_DEPS_ROOT/usr" "-DICU_ROOT=$FAIRDIFF_DEPS_ROOT/usr")
  fi
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFAIRDIFF_FUZZ=ON "${deps[@]}"
fi
targets=()
for name in "${names[@]}"; do targets+=("${name}_fuzzer"); done
cmake --build "$BUILD_DIR" --parallel "${FAIRDIFF_FUZZ_JOBS:-$(nproc)}" --target "${targets[@]}"

final_stat() {  # final_stat NAME LOG: a value of libFuzzer's -print_final_stats
  sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

failed=0
printf '%-13s %11s %7s %7s %6s %7s  %s\n' harness executions exec/s wall_s edges rss_mb result
for name in "${names[@]}"; do
  work="$BUILD_DIR/fuzz-corpus/$name"
  artifacts="$BUILD_DIR/fuzz-artifacts/$name"
  log="$BUILD_DIR/fuzz-logs/$name.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  args=(-print_final_stats=1 -print_funcs=0 -timeout=30 -rss_limit_mb=2560 -artifact_prefix="$artifacts/")
  if [ "$smoke" = 1 ]; then
    args+=(-max_total_time="$SMOKE_SECONDS")
  else
    args+=(-runs="$runs")
  fi
  start=$(date +%s.%N)
  result=ok
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$BUILD_DIR/fuzz/${name}_fuzzer" "${args[@]}" "$work" "fuzz/corpus/$name" >"$log" 2>&1 || result=FAILED
  wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
  if [ "$result" != ok ]; then
    failed=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    result="FAILED: $(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|FINDING' "$log" ||
      echo 'see the log') (input: ${artifact:-none}; log: $log)"
  fi
  edges=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)  # code edges covered, libFuzzer's "cov:"
  printf '%-13s %11s %7s %7s %6s %7s  %s\n' "$name" "$(final_stat number_of_executed_units "$log")" \
    "$(final_stat average_exec_per_sec "$log")" "$wall" "${edges:-?}" "$(final_stat peak_rss_mb "$log")" "$result"
done
exit $failed
