#!/usr/bin/env bash
# scripts/fetch_chebi20.sh without network access and against file:// copies.
#
#   tests/scripts/fetch_chebi20_test.sh refusals
#       an unreachable server (exit 1, a message naming the URL, curl's error and the manual
#       fallback, no file or directory left behind), a wrong header, a truncated split, a file
#       with the right header and length but other content, an unknown split (exit 2).
#   tests/scripts/fetch_chebi20_test.sh file_url VALIDATION_TXT
#       the success path: a copy of ChEBI-20's validation split served as file:// is installed
#       byte for byte with no temporary file left, and a second run keeps it. Exits 77
#       (skipped) when VALIDATION_TXT is missing (CI provides the split beside the checkout).
set -euo pipefail

script=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/fetch_chebi20.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "fetch_chebi20_test: FAIL: $*" >&2; exit 1; }

# run EXPECTED_STATUS ARGS...: runs the script, output in $out.
run() {
  local expected=$1 status=0
  shift
  out=$("$script" "$@" 2>&1) || status=$?
  echo "$out"
  [[ $status == "$expected" ]] || fail "exit status $status, expected $expected: $*"
}
expect_output() { grep -qF -- "$1" <<<"$out" || fail "output lacks '$1'"; }
expect_empty_dir() {
  [[ ! -e $1 || -z $(ls -A "$1") ]] || fail "$1 holds $(ls -A "$1" | tr '\n' ' ')"
}

case ${1:-} in
  refusals)
    # Nothing listens on port 9 (discard) here: the connection is refused at once.
    LA3_CHEBI20_BASE_URL=http://127.0.0.1:9/ run 1 --dir "$work/new/chebi20" validation
    expect_output "could not download ChEBI-20's validation split"
    expect_output "from: http://127.0.0.1:9/validation.txt"
    expect_output "curl: (7)"
    expect_output "https://github.com/blender-nlp/MolT5/tree/main/ChEBI-20_data"
    expect_output "by hand into"
    [[ ! -e $work/new ]] || fail "the unreachable download left $work/new behind"

    mkdir -p "$work/served" "$work/out"
    printf 'cid,smiles,description\n1,CCO,Ethanol.\n' >"$work/served/validation.txt"
    LA3_CHEBI20_BASE_URL=file://$work/served run 1 --dir "$work/out" validation
    expect_output "the first line is 'cid,smiles,description', not ChEBI-20's header"
    expect_empty_dir "$work/out"

    printf 'CID\tSMILES\tdescription\n1\tCCO\tThe molecule is ethanol.\n' >"$work/served/test.txt"
    LA3_CHEBI20_BASE_URL=file://$work/served run 1 --dir "$work/out" test
    expect_output "it holds 1 molecules, the published test split 3300"
    expect_empty_dir "$work/out"

    # Right header and row count (the train split's count is not pinned), other content.
    LA3_CHEBI20_BASE_URL=file://$work/served/ run 1 --dir "$work/out" train
    expect_output "curl: (37)"
    cp "$work/served/test.txt" "$work/served/train.txt"
    LA3_CHEBI20_BASE_URL=file://$work/served/ run 1 --dir "$work/out" train
    expect_output "its content differs from MolT5's file"
    expect_empty_dir "$work/out"

    run 2 --dir "$work/out" training
    expect_output "unknown argument 'training'"
    ;;
  file_url)
    validation=${2:?usage: fetch_chebi20_test.sh file_url VALIDATION_TXT}
    if [[ ! -f $validation ]]; then
      echo "fetch_chebi20_test: SKIP: ChEBI-20's validation split not found at $validation"
      exit 77
    fi
    mkdir -p "$work/served"
    cp "$validation" "$work/served/validation.txt"
    LA3_CHEBI20_BASE_URL=file://$work/served run 0 --dir "$work/out" validation
    expect_output "validation.txt: 3301 molecules"
    cmp "$validation" "$work/out/validation.txt" || fail "the installed file differs from the served one"
    [[ $(ls -A "$work/out") == validation.txt ]] || fail "left behind: $(ls -A "$work/out" | tr '\n' ' ')"
    # Present and intact: kept, nothing downloaded (the server is gone).
    rm -rf "$work/served"
    LA3_CHEBI20_BASE_URL=file://$work/served LA3_CHEBI20_DIR=$work/out run 0 validation
    expect_output "validation.txt is already there and intact"
    ;;
  *)
    echo "usage: fetch_chebi20_test.sh refusals | file_url VALIDATION_TXT" >&2
    exit 2
    ;;
esac
echo "fetch_chebi20_test: PASS ($1)"
