# Shared by the bench scripts: source it after setting $assay and $work.

# The generated 60-day season of STYLES styles with N events (seed 7), made once and
# reused: prints its directory.
dataset() {
  local n=$1 styles=$2 data="$work/gen-$1-$2"
  if [ ! -f "$data/.complete" ]; then
    rm -rf "$data"
    "$assay" generate --out "$data" --styles "$styles" --days 60 --events "$n" --seed 7 >/dev/null
    touch "$data/.complete"
  fi
  echo "$data"
}
