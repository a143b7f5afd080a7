# Helpers for scripts/readme-check and the harnesses in scripts/readme/ (sourced).
#
# A README block is saved as a file named after the README line of its first
# command line (00042.sh); `readme_script` turns blocks into one bash script that
# stops at the first failing command and names it with its README line.

# The README being checked (scripts/readme-check exports it).
README_FILE=${README_FILE:-README.md}

# Prints a message prefixed with the caller's name, on standard error.
say() { echo "${README_TAG:-readme-check}: $*" >&2; }

# readme_script OUT BLOCK... — OUT runs the blocks in order in one shell (so
# variables and functions carry from one block to the next, as in one terminal),
# with errexit and pipefail; the first failing command is reported as
# "README.md:LINE: exit STATUS: COMMAND".
readme_script() {
  local out=$1 block first
  shift
  {
    echo 'set -Eeuo pipefail'
    echo '__readme_off=0'
    # shellcheck disable=SC2016
    echo 'trap '\''__s=$?; echo "readme-check: FAILED at '"$README_FILE"':$((LINENO + __readme_off)): exit $__s: $BASH_COMMAND" >&2'\'' ERR'
    for block in "$@"; do
      first=$(basename "$block" .sh)
      first=$((10#$first))
      echo "__readme_off=\$(( $first - LINENO - 1 ))"
      cat "$block"
      echo
    done
  } > "$out"
}

# The command lines of blocks: comments, blank lines and trailing comments
# removed, continuation lines joined.
command_lines() {
  sed -E -e 's/[[:space:]]+#.*$//' -e '/^[[:space:]]*#/d' -e 's/[[:space:]]+$//' -e '/^$/d' "$@" |
    sed -e ':a' -e '/\\$/{N; s/\\\n[[:space:]]*/ /; ba' -e '}'
}

# start_tansu DIR — starts the tansu broker (scripts/install-broker) on a free
# 127.0.0.1 port with SQLite storage in DIR and creates the gpux topics; sets
# TANSU_PID and TANSU_ADDR. Call it in the shell that will stop (and reap) it.
start_tansu() {
  local dir=$1 tansu
  tansu=$(scripts/install-broker)
  TANSU_ADDR="127.0.0.1:$(scripts/free-port)"
  mkdir -p "$dir"
  (cd "$dir" && exec "$tansu" broker --storage-engine sqlite://tansu.db \
    --listener-url "tcp://$TANSU_ADDR" --advertised-listener-url "tcp://$TANSU_ADDR") > "$dir/tansu.log" 2>&1 &
  TANSU_PID=$!
  for _ in $(seq 300); do
    "$tansu" topic list --broker "tcp://$TANSU_ADDR" > /dev/null 2>&1 && break
    kill -0 "$TANSU_PID" 2> /dev/null || { say "tansu exited: $(tail -5 "$dir/tansu.log")"; return 1; }
    sleep 0.2
  done
  "$tansu" topic create gpux.commands --partitions 1 --broker "tcp://$TANSU_ADDR" > /dev/null
  "$tansu" topic create gpux.events --partitions 1 --broker "tcp://$TANSU_ADDR" > /dev/null
}

# json_field FIELD — the top-level FIELD of the JSON object on standard input.
json_field() {
  python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print(v if not isinstance(v, bool) else str(v).lower())' "$1"
}
