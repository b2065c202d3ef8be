#!/usr/bin/env bash
# Downloads ChEBI-20 (Edwards et al., MolT5, 2022) from the MolT5 repository's ChEBI-20_data/
# folder: train.txt, validation.txt and test.txt, TSV with the header CID<TAB>SMILES<TAB>description.
#
#   scripts/fetch_chebi20.sh                    # all three splits into data/chebi20/
#   scripts/fetch_chebi20.sh validation         # only some splits
#   scripts/fetch_chebi20.sh --dir DIR [SPLIT...]
#
# Environment: LA3_CHEBI20_DIR (default data/chebi20 in the repository; --dir wins),
# LA3_CHEBI20_BASE_URL (default: the files at MolT5 commit 754f9bf, below; any URL curl
# reads, file:// included).
#
# Each file is downloaded into a temporary file beside its destination, checked (header, the
# published row count, the git blob id of the file at that commit) and only then renamed into
# place: an interrupted or refused download leaves nothing behind. A file already present and
# passing the checks is kept. Exit status: 0 done, 1 a download or a check failed, 2 usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
molt5_commit=754f9bffa4a638e2f1386d0ca19b5c3ed0a5b4aa
folder_url=https://github.com/blender-nlp/MolT5/tree/main/ChEBI-20_data
base_url=${LA3_CHEBI20_BASE_URL:-https://raw.githubusercontent.com/blender-nlp/MolT5/$molt5_commit/ChEBI-20_data}
base_url=${base_url%/}
dir=${LA3_CHEBI20_DIR:-$root/data/chebi20}
header=$'CID\tSMILES\tdescription'

# Molecules per split as published, and the git blob id of each file at molt5_commit (what
# `git hash-object` prints for an intact copy). The train count is not pinned: the blob id is.
declare -A expected_rows=([validation]=3301 [test]=3300)
declare -A expected_blob=(
  [train]=c1b42b82fdc8fb5287614e159196e25370763aac
  [validation]=694d328d621966d5c9ad0f36083fdfcf293191d5
  [test]=cf6da70d55c2745c6e64cf6864ea8cdbcdc80663
)

usage() {
  echo "usage: scripts/fetch_chebi20.sh [--dir DIR] [train|validation|test ...]" >&2
  exit 2
}

splits=()
while (($# > 0)); do
  case $1 in
    --dir) (($# >= 2)) || usage; dir=$2; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    train | validation | test) splits+=("$1"); shift ;;
    *) echo "fetch_chebi20: unknown argument '$1'" >&2; usage ;;
  esac
done
((${#splits[@]} > 0)) || splits=(train validation test)

command -v curl >/dev/null || { echo "fetch_chebi20: curl is not installed (apt-get install curl)" >&2; exit 1; }

# The topmost directory this run creates, so that a run that installs nothing removes them.
created_top=""
if [[ ! -d $dir ]]; then
  created_top=$dir
  while [[ ! -d $(dirname "$created_top") ]]; do created_top=$(dirname "$created_top"); done
  mkdir -p "$dir"
fi
partial=""
curl_log=$(mktemp)
cleanup() {
  [[ -n $partial ]] && rm -f "$partial"
  rm -f "$curl_log"
  if [[ -n $created_top ]]; then
    local d=$dir
    while rmdir "$d" 2>/dev/null && [[ $d != "$created_top" ]]; do d=$(dirname "$d"); done
  fi
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

git_blob_id() {
  { printf 'blob %s\0' "$(stat -c %s "$1")"; cat "$1"; } | sha1sum | cut -d' ' -f1
}

# Prints what is wrong with the file $1 as split $2, nothing when it is intact.
problem_with() {
  local file=$1 split=$2 first rows blob
  IFS= read -r first <"$file" || true
  if [[ $first != "$header" ]]; then
    printf "the first line is '%s', not ChEBI-20's header 'CID<TAB>SMILES<TAB>description'" "${first:0:80}"
    return
  fi
  rows=$(($(awk 'END { print NR }' "$file") - 1))
  if ((rows <= 0)); then
    echo "it holds no molecule"
  elif [[ -n ${expected_rows[$split]:-} && $rows != "${expected_rows[$split]}" ]]; then
    echo "it holds $rows molecules, the published $split split ${expected_rows[$split]}"
  elif blob=$(git_blob_id "$file"); [[ $blob != "${expected_blob[$split]}" ]]; then
    echo "its content differs from MolT5's file (git blob $blob, expected ${expected_blob[$split]})"
  fi
}

for split in "${splits[@]}"; do
  target=$dir/$split.txt
  if [[ -f $target && -z $(problem_with "$target" "$split") ]]; then
    echo "fetch_chebi20: $target is already there and intact"
    continue
  fi
  url=$base_url/$split.txt
  partial=$(mktemp "$dir/.$split.txt.XXXXXX.part")
  echo "fetch_chebi20: downloading $url"
  if ! curl --fail --silent --show-error --location --connect-timeout 20 --retry 2 \
      --output "$partial" "$url" 2>"$curl_log"; then
    cat >&2 <<EOF
fetch_chebi20: could not download ChEBI-20's $split split ($target not written)
  from: $url
  $(tail -n 1 "$curl_log")
ChEBI-20 is published in the MolT5 repository's ChEBI-20_data/ folder:
  $folder_url
Without network access here, copy its train.txt, validation.txt and test.txt by hand into
  $dir
and run this script again to check them, or set LA3_CHEBI20_BASE_URL to a copy it can reach.
EOF
    exit 1
  fi
  reason=$(problem_with "$partial" "$split")
  if [[ -n $reason ]]; then
    echo "fetch_chebi20: refused $url: $reason ($target not written)" >&2
    exit 1
  fi
  chmod "$(printf '%o' $((0666 & ~$(umask))))" "$partial"  # mktemp made it 0600
  mv -f "$partial" "$target"
  partial=""
  created_top=""
  echo "fetch_chebi20: $target: $(($(awk 'END { print NR }' "$target") - 1)) molecules"
done
