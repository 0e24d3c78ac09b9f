# What the resumable benchmark scripts do alike; each sources it from the repository root
# (`. benchmarks/lib.sh`), with OUT set.

# stamp LABEL START: "LABEL: N s", the seconds since START (a $SECONDS), on stdout and added
# to $OUT/times.txt.
stamp() { echo "$1: $(( SECONDS - $2 )) s" | tee -a "$OUT/times.txt"; }

# run_or_resume FILE ARGS...: the `reason bench run` results file FILE, continued with
# `--resume` when it exists (the run keeps the settings it started with), else started as
# `reason bench run ARGS...` (the data set first); quiet, its stdout dropped.
run_or_resume() {
  local file=$1
  shift
  if [ -s "$file" ]; then
    reason bench run --resume "$file" -q >/dev/null
  else
    reason bench run "$@" -q -o "$file" >/dev/null
  fi
}
