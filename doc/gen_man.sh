#!/bin/sh
# doc/gen_man.sh BIN: writes the man page megatron-c(1) on stdout, from the
# program's own help (megatron-c --help and CMD --help for every command),
# so that it lists every subcommand and every flag of the build it ships
# with. POSIX sh and awk only: `make' runs it after linking the program.
set -u
BIN=${1:?usage: doc/gen_man.sh path/to/megatron-c}
VERSION=$("$BIN" --version | sed 's/^megatron-c //')
# roff-safe text: backslashes, hyphens of flags, a leading dot or quote
esc() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

cat <<EOF2
.TH MEGATRON-C 1 "" "megatron-c $VERSION" "User Commands"
.SH NAME
megatron-c \\- Megatron-LM-style transformer training, evaluation and serving in portable C
.SH SYNOPSIS
.B megatron-c
.I command
.RI [ flags ]
.br
.B megatron-c help
.I command
.br
.B megatron-c \\-\\-version
.SH DESCRIPTION
.B megatron-c
trains GPT-2, Llama-style and BERT models with Megatron-LM's flags and
defaults (data, tensor and pipeline parallelism under
.BR mpiexec ,
mixed precision, activation recompute, exact checkpoint resume), and
evaluates, fine-tunes, converts, plots and serves them.
.B megatron-c train
with no flags trains the teaching default, a character-level GPT on the
shipped tiny Shakespeare.
Each command below lists its flags;
.B megatron-c
.I command
.B \\-\\-help
prints the same.
.SH COMMANDS
EOF2
"$BIN" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print }' | while read -r cmd what; do
  printf '.TP\n.B %s\n%s\n' "$cmd" "$(echo "$what" | esc)"
done
"$BIN" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }' | while read -r cmd; do
  [ "$cmd" = version ] && continue
  echo ".SH \"MEGATRON\\-C $(echo "$cmd" | tr a-z A-Z)\""
  # one flag per line: the help wrapped to a very wide terminal
  COLUMNS=100000 "$BIN" "$cmd" --help | awk -v cmd="$cmd" '
    function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); if (s ~ /^[.\047]/) s = "\\&" s; return s }
    NR == 1 { sub(/^usage: /, ""); print ".B " esc($0); print ".PP"; next }
    !flags && /^$/ { flags = 1; next }
    !flags { sub(/^ +/, ""); print esc($0); next }
    /^[^ ].*:$/ { sub(/:$/, ""); if ($0 != "flags") print ".SS " esc($0); next }
    /^  --/ {
      line = substr($0, 3); n = index(line, "  ")
      if (n == 0) { spec = line; help = "" } else { spec = substr(line, 1, n - 1); help = substr(line, n); sub(/^ +/, "", help) }
      split(spec, w, " ")
      printf ".TP\n.B %s", esc(w[1]); if (w[2] != "") printf " \\fI%s\\fR", esc(w[2]); printf "\n%s\n", esc(help)
      next
    }
    /^ +/ { sub(/^ +/, ""); print esc($0) }'
done
cat <<'EOF2'
.SH ENVIRONMENT
.TP
.B OMP_NUM_THREADS
threads of the cpu backend (OpenMP and OpenBLAS).
.TP
.B MT_DATA_DIR
where the shipped data (vocabularies, tiny Shakespeare) is read from,
instead of the installed copy.
.TP
.B COLUMNS
the width --help wraps to.
.SH EXIT STATUS
0 on success; 1 on a user error (a bad flag, a missing or malformed file,
a run that diverged: the message on stderr names the file or value, with a
hint); 2 when a system call or library fails (out of memory, a disk
error); 134 on a broken internal invariant. compare exits 1 when the traces
differ.
.SH FILES
The shipped data (GPT-2 and BERT vocabularies, tiny Shakespeare) is
installed under the package data directory, data/.
.SH SEE ALSO
.BR mpiexec (1).
The project's doc/ directory: architecture, numerics, parallelism,
evaluation, serving, CUDA.
EOF2
